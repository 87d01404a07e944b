//! What of a container interface is the mesh's, on plain facts.

use super::*;
use crate::marks::{CONTAINER_DEFAULT_METRIC, ROUTE_PROTOCOL};
use crate::topology::{Mac, Runtime};

const ETH0: u32 = 2;
const ETH1: u32 = 3;

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn v4(text: &str) -> Ipv4Net {
    text.parse().unwrap()
}

fn want() -> ContainerInterface {
    ContainerInterface {
        container: "web".into(),
        runtime: Runtime::Netns("web".into()),
        ifname: "eth1".into(),
        host_end: "vweb-1".into(),
        mac: Mac([2, 0, 0, 0, 0, 1]),
        mtu: 1450,
        address: Some(v4("172.17.1.2/24")),
        address6: None,
        gateway: Some("172.17.1.1".parse().unwrap()),
        gateway6: None,
        routes: vec![crate::topology::Route {
            to: net("198.51.100.0/24"),
            via: "172.17.1.254".parse().unwrap(),
        }],
        tx_checksum_off: false,
        stale: Vec::new(),
    }
}

fn address(text: &str, protocol: u8) -> Address {
    Address {
        index: ETH1,
        address: net(text),
        protocol,
    }
}

fn route(to: &str, via: Option<&str>, oif: u32, protocol: u8, metric: u32) -> Route {
    Route {
        to: net(to),
        via: via.map(|v| v.parse().unwrap()),
        oif: Some(oif),
        onlink: false,
        protocol,
        metric,
    }
}

fn inside(addresses: Vec<Address>, routes: Vec<Route>) -> Inside {
    Inside {
        link: None,
        addresses,
        routes,
        names: BTreeMap::from([(ETH0, "eth0".to_string()), (ETH1, "eth1".to_string())]),
        tx_checksum_on: false,
    }
}

/// The routes ovsmesh makes for [`want`], as the kernel lists them.
fn ours(policy: &Policy) -> Vec<Route> {
    vec![
        route(
            "0.0.0.0/0",
            Some("172.17.1.1"),
            ETH1,
            ROUTE_PROTOCOL,
            CONTAINER_DEFAULT_METRIC,
        ),
        route("172.17.1.0/24", None, ETH1, 2, 0),
        route(
            "198.51.100.0/24",
            Some("172.17.1.254"),
            ETH1,
            ROUTE_PROTOCOL,
            policy.route_metric(),
        ),
    ]
}

#[test]
fn an_address_and_a_route_someone_else_put_on_the_interface_are_not_the_meshes() {
    let policy = Policy::new("m");
    let mut routes = ours(&policy);
    // keepalived's VIP and an application's route, on the mesh's interface.
    routes.push(route("203.0.113.0/24", Some("172.17.1.9"), ETH1, 4, 0));
    let seen = inside(
        vec![address("172.17.1.2/24", 0), address("172.17.1.100/32", 18)],
        routes,
    );
    let view = classify(&policy, &want(), ETH1, &seen);
    assert_eq!(
        view,
        View {
            address: Some(v4("172.17.1.2/24")),
            gateway: Some("172.17.1.1".parse().unwrap()),
            routes: want().routes,
            ..View::default()
        }
    );
}

#[test]
fn what_the_mesh_added_and_the_topology_no_longer_has_is_stale() {
    let policy = Policy::new("m");
    let mut routes = ours(&policy);
    // An older ovsmesh's default route (the mesh's metric) and an old address of ours.
    routes[0].metric = policy.route_metric();
    let seen = inside(
        vec![
            address("172.17.1.7/24", ROUTE_PROTOCOL),
            address("172.17.1.2/24", ROUTE_PROTOCOL),
        ],
        routes,
    );
    let view = classify(&policy, &want(), ETH1, &seen);
    assert_eq!(view.address, Some(v4("172.17.1.2/24")));
    assert_eq!(view.gateway, None);
    assert_eq!(
        view.stale,
        [
            "address 172.17.1.7/24".to_string(),
            format!(
                "route default via 172.17.1.1 dev eth1 proto 79 metric {}",
                policy.route_metric()
            ),
        ]
    );
    assert!(view.conflicts.is_empty());
}

#[test]
fn the_same_address_with_another_prefix_or_a_route_to_the_same_place_conflicts() {
    let policy = Policy::new("m");
    let mut routes = ours(&policy);
    routes.push(route("198.51.100.0/24", Some("172.17.1.9"), ETH1, 3, 100));
    // Docker's eth0 route to the same destination is not on the mesh's interface.
    routes.push(route("198.51.100.0/24", Some("10.0.0.1"), ETH0, 3, 0));
    let seen = inside(vec![address("172.17.1.2/16", 0)], routes);
    let view = classify(&policy, &want(), ETH1, &seen);
    assert_eq!(view.address, None);
    assert_eq!(
        view.conflicts,
        [
            "address 172.17.1.2/16 (not ovsmesh's) has the topology's address 172.17.1.2/24 with another prefix",
            "route 198.51.100.0/24 via 172.17.1.9 dev eth1 proto 3 metric 100 (not ovsmesh's) goes to a destination the topology routes through it",
        ]
    );
}

#[test]
fn another_default_route_that_wins_is_named() {
    let policy = Policy::new("m");
    let docker = route("0.0.0.0/0", Some("172.18.0.1"), ETH0, 4, 0);
    // First among equals: the kernel uses it.
    let mut routes = vec![docker.clone()];
    routes.extend(ours(&policy));
    let view = classify(&policy, &want(), ETH1, &inside(Vec::new(), routes));
    assert_eq!(
        view.overridden,
        ["its default route via 172.17.1.1 loses to default via 172.18.0.1 dev eth0 proto 4 metric 0, which is not ovsmesh's: traffic to other networks leaves the other way"]
    );
    // Ours first (as ovsmesh adds it), or the other one with a higher metric: ours wins.
    let mut routes = ours(&policy);
    routes.push(docker.clone());
    let view = classify(&policy, &want(), ETH1, &inside(Vec::new(), routes));
    assert!(view.overridden.is_empty());
    let mut routes = vec![route("0.0.0.0/0", Some("172.18.0.1"), ETH0, 4, 100)];
    routes.extend(ours(&policy));
    let view = classify(&policy, &want(), ETH1, &inside(Vec::new(), routes));
    assert!(view.overridden.is_empty());
}

#[test]
fn a_dual_stack_interface_is_sorted_per_family_with_the_same_rules() {
    let policy = Policy::new("m");
    let mut want = want();
    want.address6 = Some("fd00:1::2/64".parse().unwrap());
    want.gateway6 = Some("fd00:1::1".parse().unwrap());
    let mut routes = ours(&policy);
    routes.extend([
        // The kernel's routes: the subnet and link-local, never a clash.
        route("fd00:1::/64", None, ETH1, 2, 256),
        route("fe80::/64", None, ETH1, 2, 256),
        // The mesh's IPv6 default (metric 1: IPv6 has no 0) wins over
        // Docker's on eth0, which the kernel keeps at 1024.
        route("::/0", Some("fd00:1::1"), ETH1, ROUTE_PROTOCOL, 1),
        route("::/0", Some("fd00:9::1"), ETH0, 3, 1024),
        // A route of ours the topology no longer has: the interface's
        // state (the plan's diff takes it away), like an IPv4 one.
        route(
            "2001:db8:1::/48",
            Some("fd00:1::1"),
            ETH1,
            ROUTE_PROTOCOL,
            policy.route_metric(),
        ),
    ]);
    let seen = inside(
        vec![
            address("172.17.1.2/24", ROUTE_PROTOCOL),
            address("fd00:1::2/64", ROUTE_PROTOCOL),
            address("fd00:1::7/64", ROUTE_PROTOCOL),
            // The kernel's link-local address and someone else's address.
            address("fe80::1/64", 0),
            address("fd00:1::99/128", 0),
        ],
        routes,
    );
    let view = classify(&policy, &want, ETH1, &seen);
    assert_eq!(view.address, Some(v4("172.17.1.2/24")));
    assert_eq!(view.address6, want.address6);
    assert_eq!(view.gateway6, want.gateway6);
    let mut routes = want.routes.clone();
    routes.push(crate::topology::Route {
        to: net("2001:db8:1::/48"),
        via: "fd00:1::1".parse().unwrap(),
    });
    assert_eq!(view.routes, routes);
    assert_eq!(view.stale, ["address fd00:1::7/64"]);
    assert!(view.conflicts.is_empty(), "{:?}", view.conflicts);
    assert!(view.overridden.is_empty(), "{:?}", view.overridden);

    // Another IPv6 default route with a lower metric wins: named; an address
    // with the topology's IPv6 address and another prefix clashes.
    let mut routes = seen.routes.clone();
    routes.push(route("::/0", Some("fd00:9::1"), ETH0, 3, 0));
    let mut addresses = seen.addresses.clone();
    addresses.retain(|a| a.address != net("fd00:1::2/64"));
    addresses.push(address("fd00:1::2/48", 0));
    let view = classify(&policy, &want, ETH1, &inside(addresses, routes));
    assert_eq!(view.overridden.len(), 1, "{:?}", view.overridden);
    assert!(view.overridden[0].contains("via fd00:1::1 loses to default via fd00:9::1"));
    assert_eq!(
        view.conflicts,
        ["address fd00:1::2/48 (not ovsmesh's) has the topology's address fd00:1::2/64 with another prefix"]
    );
    // The mesh's other IPv6 address stands in for the wanted one.
    assert_eq!(view.address6, Some("fd00:1::7/64".parse().unwrap()));
}
