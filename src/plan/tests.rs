//! Unit tests of the diff rules that golden fixtures do not pin down alone.

use std::path::Path;

use super::*;
use crate::desired::{desired, settle};
use crate::state::HostState;
use crate::topology::{names, parse};

/// Settle, then diff: what the engine does.
fn plan(mesh: &str, want: &HostState, seen: &HostState) -> Plan {
    super::plan(&settle(mesh, want, seen))
}

const TWO_HOSTS: &str = r#"
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
    let topology = parse(Path::new("t.toml"), TWO_HOSTS).unwrap();
    desired(&topology, "a").unwrap()
}

#[test]
fn empty_host_gets_everything_created() {
    let want = desired_a();
    let plan = plan(
        "t",
        &want,
        &HostState {
            host: "a".into(),
            ..Default::default()
        },
    );
    assert!(plan.changes.iter().all(|c| c.op == Op::Create));
    assert_eq!(
        plan.count(Op::Create),
        want.bridges.len()
            + want.ports.len()
            + want.addresses.len()
            + want.routes.len()
            + want.forwarding.len()
            + want.sysctls.len()
            + want.containers.len()
    );
    // The netdev host's underlay NIC is only a switch port: it answers no ARP.
    let nic = &want.sysctls["net.ipv4.conf.u0.arp_ignore"];
    assert_eq!((nic.value, nic.claimed), (8, true));
}

#[test]
fn equal_states_plan_nothing() {
    let want = desired_a();
    assert!(plan("t", &want, &want).is_empty());
}

#[test]
fn drifted_tag_is_an_update_of_that_field() {
    let want = desired_a();
    let mut seen = want.clone();
    seen.ports.get_mut("access/c1/eth1").unwrap().tag = Some(999);
    let plan = plan("t", &want, &seen);
    assert_eq!(plan.changes.len(), 1);
    let change = &plan.changes[0];
    assert_eq!(
        (change.op, change.kind, change.id.as_str()),
        (Op::Update, Kind::Port, "access/c1/eth1")
    );
    assert_eq!(
        change.changed,
        vec![FieldChange {
            field: "tag".into(),
            from: "999".into(),
            to: "100".into()
        }]
    );
}

#[test]
fn vanished_container_interface_is_replumbed_under_a_fresh_name() {
    let want = desired_a();
    let mut seen = want.clone();
    seen.containers.remove("c1/eth1");
    let settled = settle("t", &want, &seen);
    let plan = super::plan(&settled);
    let old = &want.ports["access/c1/eth1"].name;
    let new = &settled.target.ports["access/c1/eth1"].name;
    assert_ne!(old, new);
    assert_eq!(&settled.target.containers["c1/eth1"].host_end, new);
    let port = plan.changes.iter().find(|c| c.kind == Kind::Port).unwrap();
    assert_eq!(port.op, Op::Replace);
    let iface = plan
        .changes
        .iter()
        .find(|c| c.kind == Kind::ContainerInterface)
        .unwrap();
    assert_eq!(iface.op, Op::Create);
}

#[test]
fn healthy_later_incarnation_is_kept() {
    let want = desired_a();
    let mut seen = want.clone();
    let fresh =
        names::next_access_incarnation("t", "c1", "eth1", &want.ports["access/c1/eth1"].name);
    seen.ports.get_mut("access/c1/eth1").unwrap().name = fresh.clone();
    seen.containers.get_mut("c1/eth1").unwrap().host_end = fresh;
    assert!(plan("t", &want, &seen).is_empty());
}

#[test]
fn waiting_container_is_left_alone() {
    let want = desired_a();
    let mut seen = want.clone();
    seen.containers.remove("c1/eth1");
    seen.waiting.insert("c1".into());
    let plan = plan("t", &want, &seen);
    assert!(plan.is_empty(), "{:?}", plan.changes);
    assert_eq!(plan.waiting, vec!["c1".to_string()]);
}

#[test]
fn adopted_bridge_is_never_deleted_but_owned_one_is() {
    let want = HostState {
        host: "a".into(),
        ..Default::default()
    };
    let mut seen = want.clone();
    seen.bridges.insert(
        "foreign".into(),
        crate::state::Bridge {
            datapath_type: "system".into(),
            owned: false,
            ..Default::default()
        },
    );
    seen.bridges.insert(
        "ours".into(),
        crate::state::Bridge {
            datapath_type: "system".into(),
            owned: true,
            ..Default::default()
        },
    );
    let plan = plan("t", &want, &seen);
    let ids: Vec<&str> = plan.changes.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["ours"]);
    assert_eq!(plan.changes[0].op, Op::Delete);
}

#[test]
fn field_changes_compare_values_and_name_each_map_entry() {
    let want = desired_a();
    let mut seen = want.clone();
    let key = "tunnel/ovs0/b";
    let tunnel = seen.ports.get_mut(key).unwrap();
    tunnel
        .options
        .insert("remote_ip".into(), "192.0.2.9".into());
    tunnel.options.insert("extra".into(), "x".into());
    tunnel.trunks = vec![100, 200];
    tunnel.protected = false;
    let plan = plan("t", &want, &seen);
    assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
    let change = &plan.changes[0];
    assert_eq!((change.op, change.id.as_str()), (Op::Update, key));
    let changed: Vec<(&str, &str, &str)> = change
        .changed
        .iter()
        .map(|c| (c.field.as_str(), c.from.as_str(), c.to.as_str()))
        .collect();
    assert_eq!(
        changed,
        vec![
            ("options:extra", "x", ""),
            ("options:remote_ip", "192.0.2.9", "192.0.2.2"),
            ("protected", "", "true"),
            ("trunks", "100,200", "100"),
        ]
    );
    // The change carries the typed objects apply works from.
    assert_eq!(
        change.after.as_ref().and_then(crate::state::Item::port),
        Some(&want.ports[key])
    );
    assert_eq!(
        change.before.as_ref().and_then(crate::state::Item::port),
        Some(&seen.ports[key])
    );
}
