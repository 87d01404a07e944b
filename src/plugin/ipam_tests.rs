//! The IPAM side against requests as Docker 20.10 sends them (no OVSDB needed
//! for these: pools, and gateway answers of pools that name their network).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::super::protocol::{RequestAddress, RequestPool};
use super::*;

const TOPOLOGY: &str = r#"
[mesh]
name = "m"
[hosts.alpha]
underlay_address = "192.0.2.1/24"
[hosts.beta]
underlay_address = "192.0.2.2/24"

[networks.red]
kind = "vlan"
vlan = 200
subnet = "10.31.0.0/24"
pools = { alpha = "10.31.0.64/27" }

[networks.blue]
kind = "vlan"
vlan = 100
subnet = "10.31.0.0/24"
gateway = { host = "alpha", address = "10.31.0.254" }
pools = { alpha = "10.31.0.128/27" }

[networks.green]
kind = "vlan"
vlan = 300
subnet = "10.32.0.0/24"
pools = { beta = "10.32.0.64/27" }

[networks.pods]
kind = "routed"
subnets = { alpha = "172.20.1.0/24", beta = "172.20.2.0/24" }
"#;

fn plugin(host: &str) -> Plugin {
    let topology = crate::topology::parse(Path::new("t.toml"), TOPOLOGY).unwrap();
    let (_, rx) = tokio::sync::watch::channel(Arc::new(topology));
    Plugin::new(
        "ovsmesh",
        host,
        rx,
        "unix:/nonexistent".into(),
        Duration::from_secs(1),
        crate::plugin::ToDaemon {
            calls: crate::daemon::metrics::Metrics::new().plugin_calls,
            echoes: Default::default(),
        },
    )
}

fn pool(pool: &str, network: Option<&str>) -> RequestPool {
    RequestPool {
        address_space: "local".into(),
        pool: pool.into(),
        options: Some(network.map_or_else(BTreeMap::new, |n| {
            BTreeMap::from([(NETWORK_OPTION.to_string(), n.to_string())])
        })),
        ..RequestPool::default()
    }
}

#[test]
fn a_host_serves_the_networks_it_takes_part_in() {
    let topology = crate::topology::parse(Path::new("t.toml"), TOPOLOGY).unwrap();
    let names = |host| {
        candidates(&topology, host)
            .into_iter()
            .map(|c| c.network)
            .collect::<Vec<_>>()
    };
    assert_eq!(names("alpha"), ["blue", "pods", "red"]);
    assert_eq!(names("beta"), ["green", "pods"]);
    let pods = candidates(&topology, "beta")
        .into_iter()
        .find(|c| c.network == "pods")
        .unwrap();
    assert_eq!(pods.subnet.to_string(), "172.20.2.0/24");
}

#[test]
fn a_pool_names_its_network_when_the_request_or_the_subnet_says_which() {
    let alpha = plugin("alpha");
    assert_eq!(
        alpha
            .request_pool(&pool("10.31.0.0/24", Some("red")))
            .unwrap(),
        json!({"PoolID": "red/10.31.0.0/24", "Pool": "10.31.0.0/24", "Data": {}})
    );
    // The routed network: this host's subnet, found by its subnet alone.
    assert_eq!(
        alpha.request_pool(&pool("172.20.1.0/24", None)).unwrap()["PoolID"],
        "pods/172.20.1.0/24"
    );
    // No --subnet, the option naming the network: its subnet.
    assert_eq!(
        alpha.request_pool(&pool("", Some("pods"))).unwrap()["Pool"],
        "172.20.1.0/24"
    );
    let beta = plugin("beta");
    assert_eq!(
        beta.request_pool(&pool("", Some("green"))).unwrap()["PoolID"],
        "green/10.32.0.0/24"
    );
}

#[test]
fn a_shared_subnet_leaves_the_pool_pending_until_create_network() {
    let alpha = plugin("alpha");
    let first = alpha.request_pool(&pool("10.31.0.0/24", None)).unwrap();
    let id = first["PoolID"].as_str().unwrap().to_string();
    assert!(id.starts_with('?') && id.ends_with("/10.31.0.0/24"), "{id}");
    let second = alpha.request_pool(&pool("10.31.0.0/24", None)).unwrap();
    assert_ne!(second["PoolID"], first["PoolID"]);
    assert_eq!(alpha.memory.lock().unwrap().pending.len(), 2);
}

#[test]
fn pools_that_cannot_be_are_refused_with_the_reason() {
    let alpha = plugin("alpha");
    let refused = |request: RequestPool| alpha.request_pool(&request).unwrap_err();
    assert!(refused(pool("10.99.0.0/24", None)).starts_with("no network of the topology has subnet 10.99.0.0/24 on host alpha; networks here: blue (10.31.0.0/24), pods (172.20.1.0/24), red (10.31.0.0/24)"));
    assert!(refused(pool("", None)).starts_with("say which network of the topology"));
    assert_eq!(
        refused(pool("10.31.0.0/16", Some("red"))),
        "network red's subnet on host alpha is 10.31.0.0/24, not 10.31.0.0/16"
    );
    assert!(
        refused(pool("", Some("green"))).starts_with("host alpha takes no part in network green")
    );
    assert!(refused(pool("", Some("nope"))).contains("is not in the topology"));
    let v6 = RequestPool {
        v6: true,
        ..pool("", Some("red"))
    };
    assert!(refused(v6).contains("IPv4 only"));
}

fn gateway(pool_id: &str, address: &str) -> RequestAddress {
    RequestAddress {
        pool_id: pool_id.into(),
        address: address.into(),
        options: Some(BTreeMap::from([(
            super::super::protocol::REQUEST_ADDRESS_TYPE.to_string(),
            super::super::protocol::GATEWAY_REQUEST.to_string(),
        )])),
    }
}

#[test]
fn the_gateway_docker_asks_for_is_the_topologys() {
    let alpha = plugin("alpha");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ask = |id: &str, address: &str| rt.block_on(alpha.request_address(&gateway(id, address)));
    assert_eq!(
        ask("blue/10.31.0.0/24", "").unwrap()["Address"],
        "10.31.0.254/24"
    );
    assert_eq!(
        ask("blue/10.31.0.0/24", "10.31.0.254").unwrap()["Address"],
        "10.31.0.254/24"
    );
    assert!(ask("blue/10.31.0.0/24", "10.31.0.1")
        .unwrap_err()
        .contains("is 10.31.0.254, not 10.31.0.1"));
    assert_eq!(
        ask("pods/172.20.1.0/24", "").unwrap()["Address"],
        "172.20.1.1/24"
    );
    // No gateway in the topology: the subnet's network address, which no container can have.
    assert_eq!(
        ask("red/10.31.0.0/24", "").unwrap()["Address"],
        "10.31.0.0/24"
    );
    assert!(ask("red/10.31.0.0/24", "10.31.0.1")
        .unwrap_err()
        .contains("no gateway"));
    assert!(ask("nonsense", "")
        .unwrap_err()
        .contains("is not one of ovsmesh's"));
}
