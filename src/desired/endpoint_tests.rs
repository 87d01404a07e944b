use std::path::Path;

use super::*;

const TOPOLOGY: &str = r#"
[mesh]
name = "m"

[hosts.alpha]
underlay_address = "192.0.2.1/24"
[hosts.beta]
underlay_address = "192.0.2.2/24"
[hosts.gamma]
underlay_address = "192.0.2.3/24"

[networks.red]
kind = "vlan"
vlan = 200
subnet = "10.31.0.0/24"
gateway = "10.31.0.254"
pools = { alpha = "10.31.0.64/27", beta = "10.31.0.96/27" }

[networks.pods]
kind = "routed"
subnets = { alpha = "172.20.1.0/24", beta = "172.20.2.0/24" }

[containers.bzr1]
host = "alpha"
network = "red"
address = "10.31.0.1"
mtu = 1400
routes = [{ to = "198.51.100.0/24", via = "10.31.0.254" }]

[containers.bzr2]
host = "gamma"
network = "red"
address = "10.31.0.2"

[containers.pod1]
host = "alpha"
network = "pods"
address = "172.20.1.10"
"#;

fn topology() -> Topology {
    crate::topology::parse(Path::new("t.toml"), TOPOLOGY).expect("valid")
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

fn ask(
    host: &str,
    network: &str,
    requested: Option<&str>,
    in_use: &InUse,
) -> Result<Ipv4Net, String> {
    address(&topology(), host, network, requested.map(ip), in_use).map_err(|r| r.to_string())
}

#[test]
fn another_hosts_declared_address_is_refused_naming_container_and_host() {
    assert_eq!(
        ask("alpha", "red", Some("10.31.0.2"), &InUse::new()),
        Err("10.31.0.2 belongs to container bzr2 on host gamma".into())
    );
}

#[test]
fn a_declared_address_on_this_host_gets_exactly_its_entry() {
    let t = topology();
    let got = address(&t, "alpha", "red", Some(ip("10.31.0.1")), &InUse::new()).unwrap();
    assert_eq!(got.to_string(), "10.31.0.1/24");
    let entry = entry(&t, "alpha", "red", got);
    let declared = &t.containers["bzr1"].interfaces[0];
    assert_eq!(entry.declared.as_deref(), Some("bzr1"));
    assert_eq!(entry.mac, declared.mac);
    assert_eq!(entry.mtu, 1400);
    assert_eq!(entry.gateway, Some(ip("10.31.0.254")));
    assert_eq!(entry.routes, declared.routes);
    assert_eq!(entry.ifname_prefix, "eth");
}

#[test]
fn pooled_addresses_are_the_lowest_free_of_this_hosts_pool() {
    let mut used = InUse::new();
    assert_eq!(
        ask("alpha", "red", None, &used).unwrap().to_string(),
        "10.31.0.64/24"
    );
    used.insert(ip("10.31.0.64"), "Docker endpoint x".into());
    assert_eq!(
        ask("beta", "red", None, &used).unwrap().to_string(),
        "10.31.0.96/24"
    );
    assert_eq!(
        ask("alpha", "red", None, &used).unwrap().to_string(),
        "10.31.0.65/24"
    );
    assert_eq!(
        ask("alpha", "red", Some("10.31.0.70"), &used)
            .unwrap()
            .to_string(),
        "10.31.0.70/24"
    );
}

#[test]
fn refusals_name_why() {
    let mut used = InUse::new();
    used.insert(ip("10.31.0.65"), "Docker endpoint 0123456789ab".into());
    let cases = [
        ("alpha", "red", Some("10.31.0.100"), "10.31.0.100 is in host beta's pool 10.31.0.96/27 of network red"),
        ("alpha", "red", Some("10.31.1.5"), "10.31.1.5 is outside network red's subnet 10.31.0.0/24 on this host"),
        ("alpha", "red", Some("10.31.0.0"), "10.31.0.0 is the network address of 10.31.0.0/24"),
        ("alpha", "red", Some("10.31.0.255"), "10.31.0.255 is the broadcast address of 10.31.0.0/24"),
        ("alpha", "red", Some("10.31.0.254"), "10.31.0.254 is network red's gateway"),
        ("alpha", "red", Some("10.31.0.65"), "10.31.0.65 is already in use on host alpha (Docker endpoint 0123456789ab)"),
        ("alpha", "red", Some("10.31.0.10"), "10.31.0.10 is not in host alpha's pool 10.31.0.64/27 of network red, and no container of the topology on alpha has it"),
        ("alpha", "pods", Some("172.20.2.7"), "172.20.2.7 is in host beta's subnet 172.20.2.0/24 of network pods"),
        ("alpha", "blue", None, "network \"blue\" is not in the topology of this mesh"),
    ];
    for (host, network, requested, why) in cases {
        assert_eq!(
            ask(host, network, requested, &used),
            Err(why.to_string()),
            "{requested:?}"
        );
    }
    let no_pool = ask("gamma", "red", None, &used).unwrap_err();
    assert!(
        no_pool.starts_with("host gamma has no pool on network red"),
        "{no_pool}"
    );
    let not_here = ask("gamma", "pods", None, &used).unwrap_err();
    assert!(not_here.contains("takes no part"), "{not_here}");
}

#[test]
fn the_routed_pool_is_the_hosts_subnet_without_gateway_and_declared_addresses() {
    let t = topology();
    let first = address(&t, "alpha", "pods", None, &InUse::new()).unwrap();
    // .1 is alpha's gateway (the default); .10 is pod1's.
    assert_eq!(first.to_string(), "172.20.1.2/24");
    let mut used = InUse::new();
    for n in 2..10 {
        used.insert(Ipv4Addr::new(172, 20, 1, n), "x".into());
    }
    assert_eq!(
        address(&t, "alpha", "pods", None, &used)
            .unwrap()
            .to_string(),
        "172.20.1.11/24"
    );
    let entry = entry(&t, "alpha", "pods", first);
    assert_eq!(entry.gateway, Some(ip("172.20.1.1")));
    assert_eq!(entry.declared, None);
}

#[test]
fn a_full_pool_says_so() {
    let used: InUse = (64..96)
        .map(|n| (Ipv4Addr::new(10, 31, 0, n), "x".to_string()))
        .collect();
    assert_eq!(
        ask("alpha", "red", None, &used),
        Err("host alpha's pool 10.31.0.64/27 of network red has no free address".into())
    );
}

#[test]
fn a_pooled_endpoint_keeps_its_mac_for_the_same_address() {
    let t = topology();
    let a = address(&t, "alpha", "red", None, &InUse::new()).unwrap();
    let first = entry(&t, "alpha", "red", a);
    let again = entry(&t, "alpha", "red", a);
    assert_eq!(first.mac, again.mac);
    assert_eq!(first.mac.0[0] & 0x03, 0x02, "locally administered unicast");
    let other = entry(&t, "alpha", "red", "10.31.0.65/24".parse().unwrap());
    assert_ne!(first.mac, other.mac);
    assert_eq!(first.gateway, Some(ip("10.31.0.254")));
}

#[test]
fn in_use_reads_endpoint_marks_and_plumbed_topology_containers() {
    let t = topology();
    let link = EndpointLink {
        joined: true,
        host_end: "ve0123".into(),
        mark: EndpointMark {
            network: "red".into(),
            endpoint: "0123456789abcdef0123".into(),
            address: "10.31.0.64/24".parse().unwrap(),
            mac: Mac([2, 0, 0, 0, 0, 1]),
        },
    };
    let (key, endpoint_port) = port(&t, &link).unwrap();
    assert_eq!(key, "endpoint/0123456789abcdef0123");
    assert_eq!(
        (endpoint_port.bridge.as_str(), endpoint_port.tag),
        ("ovs0", Some(200))
    );
    let want = crate::desired::desired(&t, "alpha").unwrap();
    let access = want.ports["access/bzr1/eth1"].clone();
    let used = in_use(&t, "red", [&endpoint_port, &access]);
    assert_eq!(
        used.get(&ip("10.31.0.64")).map(String::as_str),
        Some("Docker endpoint 0123456789ab")
    );
    assert_eq!(
        used.get(&ip("10.31.0.1")).map(String::as_str),
        Some("container bzr1 (--net=none)")
    );
    assert!(in_use(&t, "pods", [&endpoint_port]).is_empty());
}

#[test]
fn a_host_with_a_pool_takes_part_in_the_vlan() {
    let t = topology();
    // beta has no container on red, only a pool: ovs0 and a tunnel to alpha all the same.
    let beta = crate::desired::desired(&t, "beta").unwrap();
    assert!(beta.bridges.contains_key("ovs0"));
    assert!(
        beta.ports.contains_key("tunnel/ovs0/alpha"),
        "{:?}",
        beta.ports.keys()
    );
    let gamma = crate::desired::desired(&t, "gamma").unwrap();
    assert!(gamma.ports.contains_key("tunnel/ovs0/beta"));
}

fn endpoint(id: &str, network: &str, address: &str, host_end: &str) -> EndpointLink {
    EndpointLink {
        joined: true,
        host_end: host_end.into(),
        mark: EndpointMark {
            network: network.into(),
            endpoint: id.into(),
            address: address.parse().unwrap(),
            mac: Mac([2, 0, 0, 0, 0, 7]),
        },
    }
}

#[test]
fn live_endpoints_are_kept_dead_ones_go_and_served_containers_are_left_to_docker() {
    let t = topology();
    let mut want = crate::desired::desired(&t, "alpha").unwrap();
    // Observed: a live endpoint with bzr1's declared address, its port; a dead
    // endpoint's port (its veth is gone); bzr1's --net=none interface is not there.
    let live = endpoint("live", "red", "10.31.0.1/24", "velive");
    let dead = endpoint("dead", "red", "10.31.0.64/24", "vedead");
    let mut observed = crate::state::HostState {
        host: "alpha".into(),
        ..Default::default()
    };
    for link in [&live, &dead] {
        let (key, port) = port(&t, link).unwrap();
        observed.ports.insert(key, port);
    }
    observed.endpoints.insert("live".into(), live);
    serve(&t, "alpha", &mut want, &mut observed);
    assert!(want.ports.contains_key("endpoint/live"));
    assert!(!want.ports.contains_key("endpoint/dead"));
    assert!(
        !want.containers.contains_key("bzr1/eth1"),
        "served by Docker: left alone"
    );
    assert!(!want.ports.contains_key("access/bzr1/eth1"));
    let plan = crate::plan::plan(&crate::desired::settle("m", &want, &observed));
    let ids: Vec<(String, crate::plan::Op)> = plan
        .changes
        .iter()
        .filter(|c| c.id.starts_with("endpoint/") || c.id.contains("bzr1"))
        .map(|c| (c.id.clone(), c.op))
        .collect();
    assert_eq!(
        ids,
        vec![("endpoint/dead".to_string(), crate::plan::Op::Delete)]
    );
}

#[test]
fn an_endpoint_being_made_gets_its_port_from_the_plugin_not_the_daemon() {
    let t = topology();
    let mut want = crate::desired::desired(&t, "alpha").unwrap();
    let mut making = endpoint("new", "red", "10.31.0.65/24", "venew");
    making.joined = false;
    let mut lost = endpoint("lost", "red", "10.31.0.66/24", "velost");
    lost.joined = true;
    let mut observed = crate::state::HostState {
        host: "alpha".into(),
        ..Default::default()
    };
    observed.endpoints.insert("new".into(), making.clone());
    observed.endpoints.insert("lost".into(), lost);
    serve(&t, "alpha", &mut want, &mut observed);
    // Not joined, no port yet: the plugin is writing it (two writers would collide).
    assert!(!want.ports.contains_key("endpoint/new"));
    // Joined, its port lost (OVS database replaced): made again.
    assert!(want.ports.contains_key("endpoint/lost"));
    // Not joined but its port is there: kept.
    let (key, made) = port(&t, &making).unwrap();
    observed.ports.insert(key.clone(), made);
    serve(&t, "alpha", &mut want, &mut observed);
    assert!(want.ports.contains_key(&key));
}
