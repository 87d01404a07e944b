//! IPv6 in the desired state: dual-stack hosts and containers, tunnels over an
//! IPv6 underlay, IPv6 forwarding and the `accept_ra` it needs.

use std::path::Path;

use super::*;
use crate::state::Rule;
use crate::topology::{self, parse};

fn seed(name: &str) -> Topology {
    topology::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("topology")
            .join(name),
    )
    .unwrap()
}

fn from(text: &str) -> Topology {
    parse(Path::new("t.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn setting<'a>(state: &'a HostState, name: &str) -> Option<&'a Sysctl> {
    state.sysctls.get(name)
}

#[test]
fn a_dual_stack_host_gets_both_families_on_its_gateways_routes_and_containers() {
    let topology = seed("dual-stack.toml");
    let node1 = desired(&topology, "node1").unwrap();
    let addresses: Vec<String> = node1.addresses.keys().cloned().collect();
    let gateway_port = names::gateway_port("dual", "blue");
    for address in [
        "obr0 172.17.1.1/24".to_string(),
        "obr0 fd00:1::1/64".to_string(),
        format!("{gateway_port} 192.168.0.254/24"),
        format!("{gateway_port} fd00:100::fe/64"),
    ] {
        assert!(addresses.contains(&address), "{address} in {addresses:?}");
    }
    let route = &node1.routes["fd00:2::/64"];
    assert_eq!(route.via.to_string(), "fd00:2::1");
    assert_eq!(route.dev.as_deref(), Some("obr0"));
    assert!(route.onlink);
    assert_eq!(node1.routes["172.17.3.0/24"].via.to_string(), "172.17.3.1");
    // IPv4 forwarding per device, IPv6 globally.
    assert_eq!(node1.forwarding.get("obr0"), Some(&true));
    assert_eq!(node1.forwarding.get(&gateway_port), Some(&true));
    let forwarding6 = setting(&node1, "net.ipv6.conf.all.forwarding").unwrap();
    assert_eq!((forwarding6.value, forwarding6.claimed), (1, true));
    // The default route of each family on the interface where it is on-link.
    let edge_blue = &node1.containers["edge/eth1"];
    let edge_pods = &node1.containers["edge/eth2"];
    assert_eq!(edge_blue.address6.unwrap().to_string(), "fd00:100::10/64");
    assert_eq!((edge_blue.gateway, edge_blue.gateway6), (None, None));
    assert_eq!(edge_pods.gateway6.unwrap().to_string(), "fd00:1::1");
    assert_eq!(edge_pods.gateway.unwrap().to_string(), "172.17.1.1");
    let routes: Vec<String> = edge_pods.routes.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        routes,
        [
            "198.51.100.0/24 via 172.17.1.1",
            "2001:db8:ff::/48 via fd00:1::1"
        ]
    );
    // An IPv6-only member: a VLAN gateway6 it gets from its network.
    let node3 = desired(&topology, "node3").unwrap();
    let blue3 = &node3.containers["blue3/eth1"];
    assert_eq!(blue3.address, None);
    assert_eq!(blue3.gateway6.unwrap().to_string(), "fd00:100::fe");
    // The firewall accepts both families between the routing interfaces.
    for id in [
        "accept -i obr0 -o obr0".to_string(),
        "accept -6 -i obr0 -o obr0".to_string(),
        format!("accept -6 -i obr0 -o {gateway_port}"),
        format!("accept -6 -i {gateway_port} -o obr0"),
    ] {
        let rule = node1.firewall.get(&id);
        assert!(rule.is_some(), "{id} in {:?}", node1.firewall.keys());
    }
    let Rule::Accept(accept) = &node1.firewall["accept -6 -i obr0 -o obr0"].rule else {
        panic!("an accept rule");
    };
    assert_eq!(accept.family, Family::Ipv6);
}

#[test]
fn tunnels_over_an_ipv6_underlay_use_its_addresses_and_budget_40_bytes() {
    let topology = seed("ipv6-underlay.toml");
    let node1 = desired(&topology, "node1").unwrap();
    let tunnel = &node1.ports["tunnel/ovs0/node2"];
    assert_eq!(tunnel.iface_type, "vxlan");
    assert_eq!(tunnel.options["remote_ip"], "2001:db8::12");
    assert_eq!(tunnel.options["local_ip"], "2001:db8::11");
    assert_eq!(
        node1.containers["blue1/eth1"].mtu,
        1500 - (40 + 16 + 14 + 4)
    );
    assert_eq!(
        node1.bridges["obr0"].mtu_request,
        Some(1500 - (40 + 16 + 14))
    );
    // The underlay address moves to the underlay bridge (netdev).
    assert!(node1.addresses.contains_key("br-phy 2001:db8::11/64"));

    let ip6gre = from(
        r#"
[mesh]
name = "g"
encap = "ip6gre"
underlay = "ipv6"
[hosts.a]
underlay_address = "192.0.2.1/24"
underlay_address6 = "2001:db8::1/64"
[hosts.b]
underlay_address6 = "2001:db8::2/64"
[networks.pods]
kind = "routed"
subnets6 = { a = "fd00:1::/64", b = "fd00:2::/64" }
"#,
    );
    let a = desired(&ip6gre, "a").unwrap();
    let tunnel = &a.ports["tunnel/obr0/b"];
    assert_eq!(tunnel.iface_type, "ip6gre");
    assert_eq!(tunnel.options["remote_ip"], "2001:db8::2");
    assert_eq!(a.bridges["obr0"].mtu_request, Some(1500 - (40 + 8 + 14)));
    // An IPv6-only routed host: no IPv4 forwarding or redirect settings.
    assert!(a.forwarding.is_empty());
    assert_eq!(
        a.sysctls.keys().cloned().collect::<Vec<_>>(),
        ["net.ipv6.conf.all.forwarding"]
    );
    assert!(!a.addresses.keys().any(|k| k.contains("192.0.2.1")));
}

#[test]
fn direct_mode_routes_ipv6_via_peers_ipv6_underlay_addresses() {
    let topology = from(
        r#"
[mesh]
name = "d"
[hosts.a]
underlay_address = "192.0.2.1/24"
underlay_address6 = "2001:db8::1/64"
underlay_nic = "eth1"
[hosts.b]
underlay_address = "192.0.2.2/24"
underlay_address6 = "2001:db8::2/64"
[networks.pods]
kind = "routed"
mode = "direct"
subnets = { a = "172.17.1.0/24", b = "172.17.2.0/24" }
subnets6 = { a = "fd00:1::/64", b = "fd00:2::/64" }
"#,
    );
    let a = desired(&topology, "a").unwrap();
    assert_eq!(a.routes["fd00:2::/64"].via.to_string(), "2001:db8::2");
    assert_eq!(a.routes["fd00:2::/64"].dev, None);
    assert_eq!(a.routes["172.17.2.0/24"].via.to_string(), "192.0.2.2");
    assert_eq!(a.forwarding.get("eth1"), Some(&true));
    assert!(a.ports.values().all(|p| p.role != Role::Tunnel));
    let accepts: Vec<&String> = a.firewall.keys().collect();
    assert!(
        accepts.contains(&&"accept -6 -i obr0 -s fd00:1::/64 -d fd00:2::/64".to_string()),
        "{accepts:?}"
    );
}

#[test]
fn ipv6_forwarding_keeps_router_advertised_default_routes_with_accept_ra_2() {
    let topology = seed("dual-stack.toml");
    let want = desired(&topology, "node1").unwrap();
    let mut seen = HostState {
        host: "node1".into(),
        ..HostState::default()
    };
    seen.ra_routes.insert("eth0".into());
    let settled = settle("dual", &want, &seen);
    let accept_ra = &settled.target.sysctls["net.ipv6.conf.eth0.accept_ra"];
    assert_eq!((accept_ra.value, accept_ra.claimed), (2, true));
    let plan = crate::plan::plan(&settled);
    let change = plan
        .changes
        .iter()
        .find(|c| c.id == "net.ipv6.conf.eth0.accept_ra")
        .unwrap();
    assert!(
        change.reason.contains("router advertisements"),
        "{}",
        change.reason
    );
    // The route gone (the router stopped advertising): kept while this mesh remembers it.
    let mut later = HostState {
        host: "node1".into(),
        ..HostState::default()
    };
    later.sysctls.insert(
        "net.ipv6.conf.eth0.accept_ra".into(),
        Sysctl {
            family: Family::Ipv6,
            dev: "eth0".into(),
            key: "accept_ra".into(),
            value: 2,
            claimed: true,
        },
    );
    let settled = settle("dual", &want, &later);
    assert!(settled
        .target
        .sysctls
        .contains_key("net.ipv6.conf.eth0.accept_ra"));
    // A host that does not forward IPv6 leaves accept_ra alone.
    let v4 = seed("lab.toml");
    let want = desired(&v4, "node1").unwrap();
    let settled = settle("lab", &want, &seen);
    assert!(!settled
        .target
        .sysctls
        .keys()
        .any(|k| k.contains("accept_ra")));
}
