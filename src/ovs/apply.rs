//! Apply the OVS part of a plan as one transaction.
//!
//! Interface → Port → `Bridge.ports` (and new bridges → `Open_vSwitch.bridges`)
//! are inserted and referenced in the same transaction, since Port and
//! Interface are not root tables. Every row the plan read and now changes is
//! guarded by a `wait` on its `_version`, so a concurrent edit fails the whole
//! transaction cleanly (and the caller re-plans). Tunnel ports are created with
//! `protected=true` in the same insert, never set afterwards. The transaction
//! also bumps `next_cfg` so the caller can wait for vswitchd's `cur_cfg`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::marks;
use crate::ovsdb::transact::{comment, insert, mutate, select, update, wait_absent, wait_version};
use crate::ovsdb::value::{named_json, uuid_json, Atom, Datum};
use crate::plan::{Kind, Op, Plan};
use crate::state::{Bridge, Port};

use super::observe::Rows;

/// A built transaction and what it is for.
#[derive(Debug, Default)]
pub struct Transaction {
    pub operations: Vec<Value>,
    /// Index of the `select` of `next_cfg` (after the bump), if any.
    pub next_cfg_select: Option<usize>,
    /// Bridges the plan deletes but that still hold foreign ports: kept.
    pub kept_bridges: Vec<(String, Vec<String>)>,
}

fn port_columns(port: &Port) -> Value {
    let tag = match port.tag {
        Some(tag) => json!(tag),
        None => Datum::set(vec![]).to_json(),
    };
    json!({
        "tag": tag,
        "trunks": Datum::set(port.trunks.iter().map(|t| Atom::Integer(i64::from(*t))).collect()).to_json(),
        "protected": port.protected,
    })
}

/// An optional integer column: the value, or the empty set.
fn optional_integer(value: Option<u32>) -> Value {
    match value {
        Some(value) => json!(value),
        None => Datum::set(vec![]).to_json(),
    }
}

fn interface_columns(port: &Port) -> Value {
    let mut columns = json!({
        "type": port.iface_type,
        "options": Datum::map(&port.options).to_json(),
        "bfd": Datum::map(&port.bfd).to_json(),
    });
    // Only where ovsmesh manages it (see `observe::forget_unmanaged_mtu_requests`).
    if let Some(mtu) = port.mtu_request {
        columns["mtu_request"] = json!(mtu);
    }
    columns
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a_map), Value::Object(b_map)) = (a.as_object_mut(), b) {
        a_map.extend(b_map);
    }
    a
}

/// Build the OVS transaction for `plan` (bridge and port changes only).
pub fn build(plan: &Plan, mesh: &str, rows: &Rows) -> Transaction {
    let mut tx = Transaction::default();
    let ops = &mut tx.operations;
    let ovs_changes = plan
        .changes
        .iter()
        .filter(|c| matches!(c.kind, Kind::Bridge | Kind::Port))
        .count();
    if ovs_changes == 0 {
        return tx;
    }
    ops.push(comment(&format!(
        "ovsmesh: mesh {mesh}, host {}: {ovs_changes} change(s)",
        plan.host
    )));

    // New bridges first: their named uuids collect the ports created on them.
    let mut new_bridges: BTreeMap<String, (String, Vec<Value>)> = BTreeMap::new();
    for (i, change) in plan
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == Kind::Bridge)
    {
        let Some(bridge) = plan.target.bridges.get(&change.id) else {
            continue;
        };
        match change.op {
            Op::Create => {
                let local_iface = format!("bi{i}");
                let local_port = format!("bp{i}");
                ops.push(wait_absent("Bridge", &change.id));
                ops.push(insert(
                    "Interface",
                    json!({
                        "name": change.id,
                        "type": "internal",
                        "mtu_request": optional_integer(bridge.mtu_request),
                    }),
                    &local_iface,
                ));
                ops.push(insert(
                    "Port",
                    json!({"name": change.id, "interfaces": named_json(&local_iface)}),
                    &local_port,
                ));
                new_bridges.insert(
                    change.id.clone(),
                    (format!("br{i}"), vec![named_json(&local_port)]),
                );
            }
            Op::Update | Op::Replace => {
                if let Some(row) = rows.bridges.get(&change.id) {
                    ops.push(wait_version("Bridge", &row.uuid, &row.version));
                    ops.push(update(
                        "Bridge",
                        &row.uuid,
                        json!({"datapath_type": bridge.datapath_type}),
                    ));
                }
                // The bridge's own interface: vswitchd rewrites its status columns
                // all the time, so no version guard; setting one column is idempotent.
                if let (Some(local), Some(mtu)) =
                    (rows.local_interfaces.get(&change.id), bridge.mtu_request)
                {
                    ops.push(update("Interface", local, json!({"mtu_request": mtu})));
                }
            }
            Op::Delete => {}
        }
    }

    for (i, change) in plan
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == Kind::Port)
    {
        let observed = rows.ports.get(&change.id);
        if matches!(change.op, Op::Delete | Op::Replace) {
            if let Some((port_row, _, bridge)) = observed {
                ops.push(wait_version("Port", &port_row.uuid, &port_row.version));
                if let Some(bridge_row) = rows.bridges.get(bridge) {
                    ops.push(mutate(
                        "Bridge",
                        json!([["_uuid", "==", uuid_json(&bridge_row.uuid)]]),
                        json!([[
                            "ports",
                            "delete",
                            Datum::set(vec![Atom::Uuid(port_row.uuid.clone())]).to_json()
                        ]]),
                    ));
                }
            }
        }
        let Some(port) = plan.target.ports.get(&change.id) else {
            continue;
        };
        match change.op {
            Op::Create | Op::Replace => {
                let iface_name = format!("i{i}");
                let port_name = format!("p{i}");
                let ids = Datum::map(&port.external_ids).to_json();
                let iface = merge(
                    json!({"name": port.name, "external_ids": ids}),
                    interface_columns(port),
                );
                ops.push(insert("Interface", iface, &iface_name));
                let row = merge(
                    json!({"name": port.name, "interfaces": named_json(&iface_name), "external_ids": ids}),
                    port_columns(port),
                );
                ops.push(insert("Port", row, &port_name));
                match (
                    new_bridges.get_mut(&port.bridge),
                    rows.bridges.get(&port.bridge),
                ) {
                    (Some((_, members)), _) => members.push(named_json(&port_name)),
                    (None, Some(bridge_row)) => ops.push(mutate(
                        "Bridge",
                        json!([["_uuid", "==", uuid_json(&bridge_row.uuid)]]),
                        json!([["ports", "insert", json!(["set", [named_json(&port_name)]])]]),
                    )),
                    (None, None) => {}
                }
            }
            Op::Update => {
                if let Some((port_row, iface_row, _)) = observed {
                    ops.push(wait_version("Port", &port_row.uuid, &port_row.version));
                    ops.push(wait_version(
                        "Interface",
                        &iface_row.uuid,
                        &iface_row.version,
                    ));
                    ops.push(update("Port", &port_row.uuid, port_columns(port)));
                    ops.push(update(
                        "Interface",
                        &iface_row.uuid,
                        interface_columns(port),
                    ));
                }
            }
            Op::Delete => {}
        }
    }

    for (name, (uuid_name, members)) in &new_bridges {
        let bridge: &Bridge = &plan.target.bridges[name];
        let ids = BTreeMap::from([
            (marks::MESH.to_string(), mesh.to_string()),
            ("ovsmesh-host".to_string(), plan.host.clone()),
        ]);
        ops.push(insert(
            "Bridge",
            json!({
                "name": name,
                "ports": ["set", members],
                "datapath_type": bridge.datapath_type,
                "external_ids": Datum::map(&ids).to_json(),
            }),
            uuid_name,
        ));
        ops.push(mutate(
            "Open_vSwitch",
            json!([]),
            json!([["bridges", "insert", json!(["set", [named_json(uuid_name)]])]]),
        ));
    }

    for change in plan
        .changes
        .iter()
        .filter(|c| c.kind == Kind::Bridge && c.op == Op::Delete)
    {
        let foreign = rows
            .foreign_ports
            .get(&change.id)
            .cloned()
            .unwrap_or_default();
        if !foreign.is_empty() {
            tx.kept_bridges.push((change.id.clone(), foreign));
            continue;
        }
        if let Some(row) = rows.bridges.get(&change.id) {
            ops.push(wait_version("Bridge", &row.uuid, &row.version));
            ops.push(mutate(
                "Open_vSwitch",
                json!([]),
                json!([[
                    "bridges",
                    "delete",
                    Datum::set(vec![Atom::Uuid(row.uuid.clone())]).to_json()
                ]]),
            ));
        }
    }

    tx.operations.push(mutate(
        "Open_vSwitch",
        json!([]),
        json!([["next_cfg", "+=", 1]]),
    ));
    tx.next_cfg_select = Some(tx.operations.len());
    tx.operations
        .push(select("Open_vSwitch", json!([]), &["next_cfg"]));
    tx
}
