//! The ownership rules, one by one, on plain facts.

use super::*;

fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

#[test]
fn rows_are_ours_only_with_our_mesh_mark() {
    let policy = Policy::new("m1");
    assert_eq!(policy.owner(&ids(&[(MESH, "m1")])), Owner::Us);
    assert_eq!(
        policy.owner(&ids(&[(MESH, "m2")])),
        Owner::Mesh("m2".into())
    );
    assert_eq!(policy.owner(&ids(&[])), Owner::Nobody);
    let marks = policy.port_marks(Role::Tunnel, &[(PEER, "b")]);
    assert_eq!(
        policy.port_identity("ovs0", &marks),
        Some((
            PortId::Tunnel {
                bridge: "ovs0".into(),
                peer: "b".into()
            },
            Role::Tunnel
        ))
    );
    assert_eq!(Policy::new("m2").port_identity("ovs0", &marks), None);
    // Incomplete marks identify nothing.
    let partial = policy.port_marks(Role::Access, &[(CONTAINER, "c")]);
    assert_eq!(policy.port_identity("ovs0", &partial), None);
}

#[test]
fn bridges_are_owned_by_mark_adopted_by_name_or_claim() {
    let policy = Policy::new("m1");
    let managed = ["ovs0"];
    assert_eq!(
        policy.bridge_hold("x", &policy.bridge_marks("h"), &managed),
        Some(BridgeHold::Owned)
    );
    assert_eq!(
        policy.bridge_hold("ovs0", &ids(&[]), &managed),
        Some(BridgeHold::Adopted)
    );
    let claimed = ids(&[(MESH, "m2"), (&policy.claim_key(), "yes")]);
    assert_eq!(
        policy.bridge_hold("renamed", &claimed, &managed),
        Some(BridgeHold::Adopted),
        "a bridge we claimed stays in view, to release the claim"
    );
    assert_eq!(policy.bridge_hold("other", &ids(&[]), &managed), None);
    assert_eq!(users(&claimed), BTreeSet::from(["m1".to_string()]));
}

#[test]
fn another_meshs_bridge_is_claimed_an_admins_is_not() {
    let policy = Policy::new("m2");
    let none = BTreeSet::new();
    assert_eq!(
        policy.adopted_users(Some("m1"), &none),
        BTreeSet::from(["m2".to_string()])
    );
    assert!(policy.adopted_users(None, &none).is_empty());
}

#[test]
fn an_owned_bridge_others_use_is_handed_over_not_removed() {
    let policy = Policy::new("m1");
    let users = BTreeSet::from(["m2".to_string(), "m3".to_string()]);
    assert_eq!(policy.heir(true, &users), Some("m2".into()));
    assert_eq!(policy.heir(false, &users), None, "not ours to hand over");
    assert_eq!(policy.heir(true, &BTreeSet::new()), None);
    assert!(policy.underlay_address_stays(true, true));
    assert!(policy.underlay_address_stays(false, false));
    assert!(!policy.underlay_address_stays(true, false));
    assert_eq!(bridge_removal(true, &[]), Removal::Remove);
    assert_eq!(bridge_removal(false, &[]), Removal::Leave);
    assert!(matches!(
        bridge_removal(true, &["handmade".into()]),
        Removal::Keep { holders, .. } if holders == ["handmade"]
    ));
}

#[test]
fn only_nics_are_adopted_in_place() {
    let policy = Policy::new("m1");
    assert!(policy.adopts_port(Role::Underlay));
    assert!(policy.adopts_port(Role::Uplink));
    assert!(!policy.adopts_port(Role::Tunnel));
    assert!(!policy.adopts_port(Role::Access));
    assert!(!policy.adopts_port(Role::Gateway));
}

#[test]
fn veth_aliases_name_mesh_container_and_interface() {
    let policy = Policy::new("m1");
    let alias = policy.veth_alias("c1", "eth1");
    assert_eq!(alias, "ovsmesh:m1/c1/eth1");
    assert_eq!(
        policy.veth_identity(Some(&alias)),
        Some(("c1".into(), "eth1".into()))
    );
    assert!(policy.owns_veth(Some(&alias), "c1", "eth1"));
    assert!(!policy.owns_veth(Some(&alias), "c1", "eth2"));
    assert_eq!(Policy::new("m").veth_identity(Some(&alias)), None);
    assert_eq!(Policy::new("m1/c1").veth_identity(Some(&alias)), None);
    assert_eq!(policy.veth_identity(None), None);
}

#[test]
fn addresses_are_ours_on_owned_links_and_exactly_elsewhere() {
    let policy = Policy::new("m1").address_policy(&DeviceFacts {
        underlay_bridge: "br-phy".into(),
        owned_bridges: BTreeSet::from(["obr0".to_string(), "br-phy".to_string()]),
        gateway_ports: BTreeSet::from(["gblue-abc".to_string()]),
        topology_addresses: vec![
            ("obr0".into(), net("172.17.1.1/24")),
            ("br-phy".into(), net("192.0.2.1/24")),
            ("ovs0".into(), net("10.9.0.1/24")),
        ],
    });
    // Owned links: every address (a stale gateway address goes).
    assert!(policy.is_ours("obr0", net("172.17.9.1/24")));
    assert!(policy.is_ours("gblue-abc", net("192.168.0.254/24")));
    // The underlay bridge, even when ovsmesh made it: only the underlay address.
    assert!(policy.is_ours("br-phy", net("192.0.2.1/24")));
    assert!(!policy.is_ours("br-phy", net("198.51.100.7/24")));
    // An adopted device: only the exact address.
    assert!(policy.is_ours("ovs0", net("10.9.0.1/24")));
    assert!(!policy.is_ours("ovs0", net("10.9.0.1/16")));
    assert!(!policy.is_ours("eth0", net("192.0.2.1/24")));
}

#[test]
fn routes_are_ours_by_protocol_and_our_metric() {
    let m1 = Policy::new("m1");
    let m2 = Policy::new("m2");
    assert_ne!(m1.route_metric(), m2.route_metric());
    assert_eq!(m1.route_metric() >> 24, 79);
    assert_eq!(m1.route_metric(), Policy::new("m1").route_metric());
    assert!(m1.owns_route(79, m1.route_metric()));
    assert!(!m1.owns_route(79, m2.route_metric()), "another mesh's");
    assert!(!m1.owns_route(79, 0), "another tool using 79");
    assert!(
        !m1.owns_route(3, m1.route_metric()),
        "a boot route at our metric"
    );
    assert!(m1.route_in_the_way(3, m1.route_metric()));
    assert!(!m1.route_in_the_way(79, m1.route_metric()));
    assert!(!m1.route_in_the_way(3, 0));
    assert_eq!(
        m1.route_mark(),
        RouteMark {
            protocol: 79,
            metric: m1.route_metric()
        }
    );
}

#[test]
fn a_shared_setting_keeps_the_hosts_value_and_the_last_mesh_out_restores_it() {
    let (m1, m2) = (Policy::new("m1"), Policy::new("m2"));
    let nobody = BTreeMap::new();
    // The first mesh to change it remembers what the host has.
    assert_eq!(m1.setting_original(Some(1), &nobody), Some(1));
    assert_eq!(m1.setting_original(None, &nobody), None);
    // The second finds m1's setting (0) in place and copies m1's memory instead.
    let m1_only = BTreeMap::from([("m1".to_string(), 1)]);
    assert_eq!(m2.setting_original(Some(0), &m1_only), Some(1));
    // Its own memory is no other mesh's.
    assert_eq!(m1.setting_original(Some(0), &m1_only), Some(0));
    let both = BTreeMap::from([("m1".to_string(), 1), ("m2".to_string(), 1)]);
    // Whichever goes first leaves it to the other; the last one restores it.
    assert_eq!(
        m1.setting_release(&both),
        Removal::Keep {
            reason: "another mesh on this host still needs the setting",
            holders: vec!["m2".to_string()],
        }
    );
    let m2_only = BTreeMap::from([("m2".to_string(), 1)]);
    assert_eq!(m2.setting_release(&m2_only), Removal::Remove);
    assert_eq!(m2.setting_release(&nobody), Removal::Remove);
}

#[test]
fn an_endpoint_alias_carries_its_facts_and_only_this_mesh_reads_it() {
    let policy = Policy::new("lab");
    let mark = EndpointMark {
        network: "red".into(),
        endpoint: "4f0c9a".into(),
        address: "10.31.0.64/24".parse().unwrap(),
        mac: "02:00:00:00:00:2a".parse().unwrap(),
    };
    let alias = policy.endpoint_alias(&mark);
    assert_eq!(policy.endpoint_identity(Some(&alias)), Some(mark));
    assert_eq!(Policy::new("la").endpoint_identity(Some(&alias)), None);
    assert_eq!(Policy::new("lab2").endpoint_identity(Some(&alias)), None);
    // Not a container veth of this mesh either (the daemon would remove it as one).
    assert_eq!(policy.veth_identity(Some(&alias)), None);
    assert_eq!(policy.endpoint_identity(Some("ovsmesh:lab/c/eth1")), None);
    assert_eq!(
        policy.endpoint_identity(Some(&format!("{alias} extra"))),
        None
    );
}

#[test]
fn inside_a_container_only_the_topologys_address_and_the_meshs_marked_routes_are_ours() {
    let policy = Policy::new("m1");
    let wanted = [net("172.17.1.2/24"), net("fd00:1::2/64")];
    assert!(policy.owns_container_address(wanted[0], 0, &wanted));
    assert!(policy.owns_container_address(wanted[1], 0, &wanted));
    assert!(policy.owns_container_address(net("172.17.1.7/24"), ROUTE_PROTOCOL, &wanted));
    assert!(policy.owns_container_address(net("fd00:1::7/64"), ROUTE_PROTOCOL, &wanted));
    assert!(!policy.owns_container_address(net("172.17.1.100/32"), 0, &wanted));
    assert!(!policy.owns_container_address(net("172.17.1.2/16"), 0, &wanted));
    assert!(!policy.owns_container_address(net("fd00:1::2/48"), 0, &wanted));
    // The kernel's link-local address is never ours, whatever its protocol.
    assert!(!policy.owns_container_address(net("fe80::1/64"), ROUTE_PROTOCOL, &wanted));

    let default = IpNet::V4(Default::default());
    let default6 = IpNet::V6(Default::default());
    let other = net("198.51.100.0/24");
    // IPv6 has no metric 0 (the kernel makes it 1024): 1 wins over Docker's.
    assert_eq!(policy.container_route_metric(default6), 1);
    assert!(policy.owns_container_route(default6, ROUTE_PROTOCOL, 1));
    assert!(!policy.owns_container_route(default6, ROUTE_PROTOCOL, 1024));
    assert_eq!(
        policy.container_route_metric(net("2001:db8::/32")),
        policy.route_metric()
    );
    let mine = policy.route_metric();
    // The default route gets the lowest metric (it must win over Docker's, also 0).
    assert_eq!(policy.container_route_metric(default), 0);
    assert_eq!(policy.container_route_metric(other), mine);
    assert!(policy.owns_container_route(default, ROUTE_PROTOCOL, 0));
    assert!(policy.owns_container_route(other, ROUTE_PROTOCOL, mine));
    // An older ovsmesh's default route (the mesh's metric) is ours too: stale.
    assert!(policy.owns_container_route(default, ROUTE_PROTOCOL, mine));
    // Docker's default route (protocol boot/static, metric 0) and another mesh's are not.
    assert!(!policy.owns_container_route(default, 3, 0));
    let theirs = Policy::new("m2").route_metric();
    assert!(!policy.owns_container_route(other, ROUTE_PROTOCOL, theirs));
    assert!(!policy.owns_container_route(other, ROUTE_PROTOCOL, 0));
}
