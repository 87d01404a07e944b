//! Apply the OVS part of a plan as one transaction.
//!
//! Interface → Port → `Bridge.ports` (and new bridges → `Open_vSwitch.bridges`)
//! are inserted and referenced in the same transaction, since Port and
//! Interface are not root tables. Every row the plan read and now changes is
//! guarded by a `wait` on the columns ovsmesh manages (`columns`' config
//! columns, as observed), so a concurrent edit of them fails the whole
//! transaction cleanly (and the caller re-plans) — but not ovs-vswitchd
//! rewriting an Interface's statistics or status every few seconds, which a
//! guard on `_version` turned into needless retries at scale. Tunnel ports are created with
//! `protected=true` in the same insert, never set afterwards. The transaction
//! also bumps `next_cfg` so the caller can wait for vswitchd's `cur_cfg`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::marks::{self, Policy};
use crate::ovsdb::transact::{
    comment, insert, mutate, select, update, wait_absent, wait_unchanged,
};
use crate::ovsdb::value::{named_json, uuid_json, Atom, Datum};
use crate::plan::{Kind, Op, Plan};
use crate::state::{Bridge, Item, Port};

use super::observe::{RowRef, Rows};

/// A built transaction and what it is for.
#[derive(Debug, Default)]
pub struct Transaction {
    pub operations: Vec<Value>,
    /// Index of the `select` of `next_cfg` (after the bump), if any.
    pub next_cfg_select: Option<usize>,
}

/// The guard of a row the plan read: its managed columns are as observed.
fn guard(table: &str, row: &RowRef) -> Value {
    wait_unchanged(table, &row.uuid, &row.config)
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
    // Only where ovsmesh manages it (see `desired::settle`: elsewhere the owner's value stays).
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

/// `external_ids` mutations: delete `keys`, then insert `pairs`.
fn external_ids_mutation(keys: Vec<String>, pairs: BTreeMap<String, String>) -> Option<Value> {
    let mut mutations = Vec::new();
    if !keys.is_empty() {
        let keys = keys.into_iter().map(Atom::String).collect();
        mutations.push(json!([
            "external_ids",
            "delete",
            Datum::set(keys).to_json()
        ]));
    }
    if !pairs.is_empty() {
        mutations.push(json!([
            "external_ids",
            "insert",
            Datum::map(&pairs).to_json()
        ]));
    }
    (!mutations.is_empty()).then_some(Value::Array(mutations))
}

/// The marks a bridge update changes: claims of meshes that start or stop
/// using it, and its owner when it is handed over (the heir's claim goes).
fn bridge_marks_mutation(before: Option<&Bridge>, after: &Bridge) -> Option<Value> {
    let empty = Default::default();
    let had = before.map_or(&empty, |b| &b.users);
    let mut keys: Vec<String> = had
        .difference(&after.users)
        .map(|m| marks::claim_key(m))
        .collect();
    let mut pairs: BTreeMap<String, String> = after
        .users
        .difference(had)
        .map(|m| (marks::claim_key(m), "yes".to_string()))
        .collect();
    if let Some(heir) = &after.hand_to {
        keys.push(marks::MESH.to_string());
        pairs.insert(marks::MESH.to_string(), heir.clone());
    }
    external_ids_mutation(keys, pairs)
}

/// A port handed over to another mesh with its bridge: its owner mark changes.
fn owner_mutation(before: Option<&Port>, after: &Port) -> Option<Value> {
    let owner = after.external_ids.get(marks::MESH)?;
    if before.and_then(|p| p.external_ids.get(marks::MESH)) == Some(owner) {
        return None;
    }
    external_ids_mutation(
        vec![marks::MESH.to_string()],
        BTreeMap::from([(marks::MESH.to_string(), owner.clone())]),
    )
}

/// Build the OVS transaction for `plan` (bridge and port changes only).
pub fn build(plan: &Plan, mesh: &str, rows: &Rows) -> Transaction {
    let mut tx = Transaction::default();
    let ops = &mut tx.operations;
    // Guards compare columns as the transaction has them so far: they all go
    // first, before any operation changes a row they look at.
    let mut guards = Vec::new();
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
    let mut new_bridges: BTreeMap<String, (String, &Bridge, Vec<Value>)> = BTreeMap::new();
    for (i, change) in plan
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == Kind::Bridge)
    {
        let Some(bridge) = change.after.as_ref().and_then(Item::bridge) else {
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
                    (format!("br{i}"), bridge, vec![named_json(&local_port)]),
                );
            }
            Op::Update | Op::Replace => {
                if let Some(row) = rows.bridges.get(&change.id) {
                    let before = change.before.as_ref().and_then(Item::bridge);
                    guards.push(guard("Bridge", row));
                    // Only what differs: an adopted bridge's settings are never written.
                    if before.is_none_or(|b| b.datapath_type != bridge.datapath_type) {
                        ops.push(update(
                            "Bridge",
                            &row.uuid,
                            json!({"datapath_type": bridge.datapath_type}),
                        ));
                    }
                    if let Some(mutations) = bridge_marks_mutation(before, bridge) {
                        ops.push(mutate(
                            "Bridge",
                            json!([["_uuid", "==", uuid_json(&row.uuid)]]),
                            mutations,
                        ));
                    }
                    // The bridge's own interface: vswitchd rewrites its status
                    // columns all the time, so no version guard; setting one
                    // column is idempotent.
                    if let (Some(local), Some(mtu)) =
                        (rows.local_interfaces.get(&change.id), bridge.mtu_request)
                    {
                        if before.is_none_or(|b| b.mtu_request != Some(mtu)) {
                            ops.push(update("Interface", local, json!({"mtu_request": mtu})));
                        }
                    }
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
                guards.push(guard("Port", port_row));
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
        let Some(port) = change.after.as_ref().and_then(Item::port) else {
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
                    (Some((_, _, members)), _) => members.push(named_json(&port_name)),
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
                    guards.push(guard("Port", port_row));
                    guards.push(guard("Interface", iface_row));
                    ops.push(update("Port", &port_row.uuid, port_columns(port)));
                    ops.push(update(
                        "Interface",
                        &iface_row.uuid,
                        interface_columns(port),
                    ));
                    let before = change.before.as_ref().and_then(Item::port);
                    if let Some(mutations) = owner_mutation(before, port) {
                        for (table, uuid) in
                            [("Port", &port_row.uuid), ("Interface", &iface_row.uuid)]
                        {
                            ops.push(mutate(
                                table,
                                json!([["_uuid", "==", uuid_json(uuid)]]),
                                mutations.clone(),
                            ));
                        }
                    }
                }
            }
            Op::Delete => {}
        }
    }

    for (name, (uuid_name, bridge, members)) in &new_bridges {
        let ids = Policy::new(mesh).bridge_marks(&plan.host);
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
        if let Some(row) = rows.bridges.get(&change.id) {
            guards.push(guard("Bridge", row));
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

    tx.operations.splice(1..1, guards);
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
