//! The settle rules on plain states.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::desired::desired;
use crate::state::{Bridge, Occupied};
use crate::topology::parse;

const HOST: &str = r#"
[mesh]
name = "t"
[hosts.a]
underlay_address = "192.0.2.1/24"
datapath = "netdev"
underlay_nic = "u0"
[hosts.b]
underlay_address = "192.0.2.2/24"
[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
[networks.pods]
kind = "routed"
subnets = { a = "172.17.1.0/24", b = "172.17.2.0/24" }
[containers.c1]
host = "a"
network = "blue"
address = "192.168.0.1"
[containers.c2]
host = "b"
network = "blue"
address = "192.168.0.2"
"#;

fn desired_a() -> HostState {
    desired(&parse(Path::new("t.toml"), HOST).unwrap(), "a").unwrap()
}

fn nothing() -> HostState {
    HostState {
        host: "a".into(),
        ..HostState::default()
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_vanished_interface_gets_the_next_incarnation_and_a_reason() {
    let want = desired_a();
    let mut seen = want.clone();
    seen.containers.remove("c1/eth1");
    let settled = settle("t", &want, &seen);
    let old = &want.ports["access/c1/eth1"].name;
    let new = &settled.target.ports["access/c1/eth1"].name;
    assert_eq!(new, &names::next_access_incarnation("t", "c1", "eth1", old));
    assert_eq!(&settled.target.containers["c1/eth1"].host_end, new);
    assert_eq!(
        settled.notes[&(Kind::Port, "access/c1/eth1".to_string())].reason,
        REPLUMB
    );
    assert!(settled
        .notes
        .contains_key(&(Kind::ContainerInterface, "c1/eth1".to_string())));
}

#[test]
fn a_waiting_container_is_left_out_of_both_states() {
    let want = desired_a();
    let mut seen = want.clone();
    seen.waiting.insert("c1".into());
    let settled = settle("t", &want, &seen);
    assert!(settled.target.containers.is_empty());
    assert!(!settled.observed.ports.contains_key("access/c1/eth1"));
    assert_eq!(settled.waiting, vec!["c1".to_string()]);
}

#[test]
fn an_adopted_bridge_keeps_its_settings_and_another_meshs_gets_our_claim() {
    let want = desired_a();
    let mut seen = want.clone();
    // An admin's ovs0 (system datapath), and br-phy made by mesh m1.
    seen.bridges.insert(
        "ovs0".into(),
        Bridge {
            datapath_type: "system".into(),
            ..Bridge::default()
        },
    );
    seen.bridges.insert(
        "br-phy".into(),
        Bridge {
            datapath_type: "netdev".into(),
            owned_by: Some("m1".into()),
            ..Bridge::default()
        },
    );
    let settled = settle("t", &want, &seen);
    let ovs0 = &settled.target.bridges["ovs0"];
    assert_eq!(ovs0.datapath_type, "system", "never rewritten");
    assert!(ovs0.users.is_empty(), "an admin's bridge gets no claim");
    assert!(settled
        .kept
        .iter()
        .any(|k| k.id == "ovs0" && k.reason.contains("datapath_type system")));
    assert_eq!(settled.target.bridges["br-phy"].users, set(&["t"]));
}

#[test]
fn a_nic_already_on_the_bridge_is_adopted_other_taken_names_conflict() {
    let want = desired_a();
    let mut seen = nothing();
    seen.foreign_ports.insert("u0".into(), "br-phy".into());
    let tunnel = want.ports["tunnel/ovs0/b"].name.clone();
    seen.foreign_ports.insert(tunnel.clone(), "ovs0".into());
    let settled = settle("t", &want, &seen);
    assert!(!settled.target.ports.contains_key("underlay/br-phy"));
    assert!(!settled.target.ports.contains_key("tunnel/ovs0/b"));
    assert_eq!(settled.conflicts.len(), 1, "{:?}", settled.conflicts);
    assert_eq!(settled.conflicts[0].id, "tunnel/ovs0/b");
    assert!(settled.conflicts[0].reason.contains(&tunnel));
    // The NIC on another bridge is a conflict too.
    let mut seen = nothing();
    seen.foreign_ports.insert("u0".into(), "br-other".into());
    let settled = settle("t", &want, &seen);
    assert_eq!(settled.conflicts[0].id, "underlay/br-phy");
    assert!(settled.conflicts[0].reason.contains("br-other"));
}

#[test]
fn occupied_places_are_conflicts_and_what_is_there_is_left_alone() {
    let want = desired_a();
    let mut seen = want.clone();
    seen.occupied = vec![
        Occupied {
            kind: Kind::Route,
            id: "172.17.2.0/24".into(),
            by: "172.17.2.0/24 via 203.0.113.2".into(),
            inside: false,
        },
        Occupied {
            kind: Kind::ContainerInterface,
            id: "c1/eth1".into(),
            by: "link eth1".into(),
            inside: false,
        },
    ];
    seen.containers.remove("c1/eth1");
    let settled = settle("t", &want, &seen);
    assert!(!settled.target.routes.contains_key("172.17.2.0/24"));
    assert!(!settled.target.containers.contains_key("c1/eth1"));
    assert!(!settled.target.ports.contains_key("access/c1/eth1"));
    assert!(
        !settled.observed.ports.contains_key("access/c1/eth1"),
        "our old port is left as it is"
    );
    let ids: Vec<&str> = settled.conflicts.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["172.17.2.0/24", "c1/eth1"]);
    assert!(settled.conflicts[1].reason.contains("container c1"));
}

#[test]
fn a_clash_inside_a_container_interface_is_a_conflict_and_the_interface_stays_as_it_is() {
    let want = desired_a();
    let mut seen = want.clone();
    seen.containers.get_mut("c1/eth1").unwrap().mtu = 1280;
    seen.occupied = vec![Occupied {
        kind: Kind::ContainerInterface,
        id: "c1/eth1".into(),
        by: "address 192.168.0.1/16 (not ovsmesh's) has the topology's address 192.168.0.1/24 with another prefix".into(),
        inside: true,
    }];
    let settled = settle("t", &want, &seen);
    let plan = crate::plan::plan(&settled);
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    assert_eq!(settled.conflicts.len(), 1);
    assert_eq!(
        settled.conflicts[0].reason,
        "inside container c1, on its interface eth1: address 192.168.0.1/16 (not ovsmesh's) has the topology's address 192.168.0.1/24 with another prefix; ovsmesh neither removes it nor changes the interface"
    );
}

#[test]
fn a_foreign_device_with_an_access_ports_name_is_a_conflict() {
    let want = desired_a();
    let mut seen = nothing();
    let name = want.ports["access/c1/eth1"].name.clone();
    seen.foreign_links.insert(name.clone());
    let settled = settle("t", &want, &seen);
    assert!(!settled.target.ports.contains_key("access/c1/eth1"));
    assert!(!settled.target.containers.contains_key("c1/eth1"));
    assert!(settled.conflicts[0].reason.contains(&name));
}

#[test]
fn a_bridge_another_mesh_uses_is_handed_over_with_its_underlay() {
    let want = desired_a();
    let mut seen = want.clone();
    seen.bridges.get_mut("br-phy").unwrap().users = set(&["m2"]);
    let settled = settle("t", &nothing(), &seen);
    let bridge = &settled.target.bridges["br-phy"];
    assert_eq!(bridge.hand_to.as_deref(), Some("m2"));
    assert!(bridge.users.is_empty(), "the heir's claim goes");
    let port = &settled.target.ports["underlay/br-phy"];
    assert_eq!(port.external_ids[marks::MESH], "m2");
    let underlay = want.addresses.values().find(|a| a.dev == "br-phy").unwrap();
    assert!(
        settled.target.addresses.contains_key(&underlay.key()),
        "the underlay address stays"
    );
    // The rest of this mesh goes.
    assert!(!settled.target.bridges.contains_key("obr0"));
    assert!(!settled.target.ports.contains_key("tunnel/ovs0/b"));
}

#[test]
fn a_claim_is_released_and_an_adopted_underlay_keeps_its_address() {
    let want = desired_a();
    let mut seen = want.clone();
    let phy = seen.bridges.get_mut("br-phy").unwrap();
    phy.owned = false;
    phy.owned_by = Some("m1".into());
    phy.users = set(&["t"]);
    seen.ports.remove("underlay/br-phy");
    let settled = settle("t", &nothing(), &seen);
    let bridge = &settled.target.bridges["br-phy"];
    assert!(bridge.users.is_empty() && bridge.hand_to.is_none());
    assert!(settled.target.addresses.values().any(|a| a.dev == "br-phy"));
    // An owned, unshared underlay bridge goes, and its address with it.
    let settled = settle("t", &nothing(), &want.clone());
    assert!(settled.target.addresses.is_empty());
    assert!(settled.target.bridges.is_empty());
}

#[test]
fn mtu_requests_are_ours_only_where_desired_sets_one_and_adopted_bridges_keep_theirs() {
    let want = desired_a();
    assert_eq!(want.bridges["br-phy"].mtu_request, Some(1500));
    assert!(want.bridges["obr0"].mtu_request.is_some());
    assert_eq!(want.bridges["ovs0"].mtu_request, None);
    let mut seen = want.clone();
    // Values ovsmesh does not set (ovs0's own interface, a tunnel) are the owner's.
    seen.bridges.get_mut("ovs0").unwrap().mtu_request = Some(1400);
    seen.ports.get_mut("tunnel/ovs0/b").unwrap().mtu_request = Some(9000);
    let settled = settle("t", &want, &seen);
    assert_eq!(settled.observed.bridges["ovs0"].mtu_request, None);
    assert_eq!(settled.observed.ports["tunnel/ovs0/b"].mtu_request, None);
    assert!(crate::plan::plan(&settled).changes.is_empty());

    // An adopted routing bridge keeps its own MTU, and the plan says so.
    let mut seen = want.clone();
    let obr0 = seen.bridges.get_mut("obr0").unwrap();
    obr0.owned = false;
    obr0.mtu_request = None;
    let settled = settle("t", &want, &seen);
    assert_eq!(settled.target.bridges["obr0"].mtu_request, None);
    assert!(
        settled.kept.iter().any(|k| k.id == "obr0"
            && k.reason
                .contains("mtu_request of its own interface (unset)")),
        "{:?}",
        settled.kept
    );
    assert!(crate::plan::plan(&settled).changes.is_empty());
}

#[test]
fn a_setting_already_as_needed_but_not_claimed_is_claimed_with_a_reason() {
    let want = desired_a();
    let id = "net.ipv4.conf.all.send_redirects";
    assert!(want.sysctls[id].claimed);
    let mut seen = want.clone();
    seen.sysctls.get_mut(id).unwrap().claimed = false;
    let settled = settle("t", &want, &seen);
    let plan = crate::plan::plan(&settled);
    assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
    let change = &plan.changes[0];
    assert_eq!((change.kind, change.id.as_str()), (Kind::Sysctl, id));
    assert_eq!(change.changed[0].field, "claimed");
    assert_eq!(change.reason, CLAIM);
    // Claimed: nothing to do.
    assert!(crate::plan::plan(&settle("t", &want, &want))
        .changes
        .is_empty());
}
