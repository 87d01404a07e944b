//! Read the OVS side of a host into the shared state type.
//!
//! One `transact` of four selects reads Open_vSwitch, Bridge, Port and
//! Interface (the columns listed in `columns`). Of those, ovsmesh keeps the bridges it holds and every port of
//! this mesh, keyed by the identity its marks spell out — `marks` decides what
//! is ours. Foreign rows are only named (per bridge), so `down` knows whether a
//! bridge still holds someone else's ports. Row uuids and the values of the
//! columns ovsmesh manages (`columns`' config columns) are kept for apply's
//! guards.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::marks::{self, BridgeHold, Owner, Policy};
use crate::ovsdb::value::{Atom, Datum};
use crate::ovsdb::{Client, OvsdbError, DB};
use crate::state::{Bridge, HostState, Port};

use super::columns;

/// A row's identity for guards: its uuid, and the values its managed
/// (config) columns had when it was read — what a change must find unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRef {
    pub uuid: String,
    pub version: String,
    pub config: serde_json::Map<String, Value>,
}

/// Status of an interface as vswitchd reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStatus {
    pub error: Option<String>,
    pub ofport: Option<i64>,
    pub bfd_state: Option<String>,
}

impl InterfaceStatus {
    /// vswitchd reports an error, or BFD says the far end is down.
    pub fn unhealthy(&self) -> bool {
        self.error.is_some() || self.bfd_state.as_deref() == Some("down")
    }
}

/// What apply and down need to know about the rows behind the state.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub root: String,
    pub next_cfg: i64,
    pub cur_cfg: i64,
    /// Bridge name → row.
    pub bridges: BTreeMap<String, RowRef>,
    /// Port key → (port row, interface row, bridge name).
    pub ports: BTreeMap<String, (RowRef, RowRef, String)>,
    /// Port key → interface status.
    pub status: BTreeMap<String, InterfaceStatus>,
    /// Bridge name → uuid of the bridge's own internal interface (for its `mtu_request`).
    pub local_interfaces: BTreeMap<String, String>,
}

/// The OVS half of a host's observed state.
#[derive(Debug, Clone, Default)]
pub struct OvsObserved {
    pub state: HostState,
    pub rows: Rows,
}

struct Row<'a>(&'a Value);

impl Row<'_> {
    fn datum(&self, column: &str) -> Option<Datum> {
        self.0.get(column).and_then(Datum::from_json)
    }
    fn string(&self, column: &str) -> String {
        self.0
            .get(column)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
    fn uuid(&self, column: &str) -> String {
        self.datum(column)
            .and_then(|d| {
                d.atoms()
                    .first()
                    .and_then(|a| a.as_str().map(str::to_string))
            })
            .unwrap_or_default()
    }
    fn uuids(&self, column: &str) -> Vec<String> {
        self.datum(column)
            .map(|d| {
                d.atoms()
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
    fn map(&self, column: &str) -> BTreeMap<String, String> {
        self.datum(column)
            .map(|d| d.string_map())
            .unwrap_or_default()
    }
    fn integers(&self, column: &str) -> Vec<i64> {
        self.datum(column)
            .map(|d| d.atoms().iter().filter_map(Atom::as_i64).collect())
            .unwrap_or_default()
    }
    fn row_ref(&self, table: &columns::Table) -> RowRef {
        RowRef {
            uuid: self.uuid("_uuid"),
            version: self.uuid("_version"),
            config: table
                .config
                .iter()
                .filter_map(|c| Some((c.to_string(), self.0.get(*c)?.clone())))
                .collect(),
        }
    }
}

/// Read the OVS side of this host for `mesh`, caring about `managed_bridges`.
pub async fn observe(
    client: &Client,
    host: &str,
    mesh: &str,
    managed_bridges: &[&str],
) -> Result<OvsObserved, OvsdbError> {
    let selects = columns::TABLES.iter().map(columns::Table::select_all);
    let replies = client.transact(DB, selects.collect()).await?;
    // Borrowed, not cloned: at a thousand ports a copy of the rows cost as much as reading them.
    let rows = |i: usize| replies[i]["rows"].as_array().map_or(&[][..], Vec::as_slice);
    Ok(interpret(
        host,
        mesh,
        managed_bridges,
        rows(0),
        rows(1),
        rows(2),
        rows(3),
    ))
}

/// Turn selected rows into state; pure, so it is unit-tested on JSON.
pub fn interpret(
    host: &str,
    mesh: &str,
    managed_bridges: &[&str],
    roots: &[Value],
    bridges: &[Value],
    ports: &[Value],
    interfaces: &[Value],
) -> OvsObserved {
    let mut out = OvsObserved {
        state: HostState {
            host: host.to_string(),
            ..HostState::default()
        },
        rows: Rows::default(),
    };
    let root = roots.first().map(Row);
    if let Some(root) = &root {
        out.rows.root = root.uuid("_uuid");
        out.rows.next_cfg = root.integers("next_cfg").first().copied().unwrap_or(0);
        out.rows.cur_cfg = root.integers("cur_cfg").first().copied().unwrap_or(0);
    }
    let attached: Vec<String> = root.map(|r| r.uuids("bridges")).unwrap_or_default();
    let ports_by_uuid: BTreeMap<String, Row> = ports
        .iter()
        .map(|p| (Row(p).uuid("_uuid"), Row(p)))
        .collect();
    let ifaces_by_uuid: BTreeMap<String, Row> = interfaces
        .iter()
        .map(|i| (Row(i).uuid("_uuid"), Row(i)))
        .collect();
    let policy = Policy::new(mesh);
    for bridge in bridges.iter().map(Row) {
        if !attached.contains(&bridge.uuid("_uuid")) {
            continue;
        }
        let name = bridge.string("name");
        let bridge_ids = bridge.map("external_ids");
        let hold = policy.bridge_hold(&name, &bridge_ids, managed_bridges);
        let mut foreign = Vec::new();
        let mut local_mtu_request = None;
        for port_uuid in bridge.uuids("ports") {
            let Some(port) = ports_by_uuid.get(&port_uuid) else {
                continue;
            };
            let port_ids = port.map("external_ids");
            if policy.owner(&port_ids) != Owner::Us {
                let port_name = port.string("name");
                if port_name != name {
                    foreign.push(port_name.clone());
                    out.state.foreign_ports.insert(port_name, name.clone());
                } else if let Some(local) = port
                    .uuids("interfaces")
                    .iter()
                    .filter_map(|u| ifaces_by_uuid.get(u))
                    .find(|i| i.string("name") == name)
                {
                    // The bridge's own port: its interface's `mtu_request`.
                    local_mtu_request = mtu_request(local);
                    if hold.is_some() {
                        out.rows
                            .local_interfaces
                            .insert(name.clone(), local.uuid("_uuid"));
                    }
                }
                continue;
            }
            let iface_uuid = port
                .uuids("interfaces")
                .into_iter()
                .next()
                .unwrap_or_default();
            let Some(iface) = ifaces_by_uuid.get(&iface_uuid) else {
                continue;
            };
            let Some((id, role)) = policy.port_identity(&name, &port_ids) else {
                continue;
            };
            let mut key = id.key();
            if out.state.ports.contains_key(&key) {
                // A stray duplicate: keep it under its own key so the plan deletes it.
                key = format!("{key}#{}", port.uuid("_uuid"));
            }
            out.state.ports.insert(
                key.clone(),
                Port {
                    name: port.string("name"),
                    bridge: name.clone(),
                    role,
                    iface_type: iface.string("type"),
                    options: iface.map("options"),
                    tag: port.integers("tag").first().map(|t| *t as u16),
                    trunks: port.integers("trunks").iter().map(|t| *t as u16).collect(),
                    protected: port
                        .datum("protected")
                        .and_then(|d| d.atoms().first().cloned())
                        == Some(Atom::Boolean(true)),
                    bfd: iface.map("bfd"),
                    mtu_request: mtu_request(iface),
                    external_ids: port_ids.clone(),
                },
            );
            out.rows.ports.insert(
                key.clone(),
                (
                    port.row_ref(&columns::PORT),
                    iface.row_ref(&columns::INTERFACE),
                    name.clone(),
                ),
            );
            let ofport = iface.integers("ofport").first().copied();
            let error = iface.datum("error").and_then(|d| {
                d.atoms()
                    .first()
                    .and_then(|a| a.as_str().map(str::to_string))
            });
            let bfd_state = iface.map("bfd_status").get("state").cloned();
            out.rows.status.insert(
                key,
                InterfaceStatus {
                    error,
                    ofport,
                    bfd_state,
                },
            );
        }
        if let Some(hold) = hold {
            out.state.bridges.insert(
                name.clone(),
                Bridge {
                    datapath_type: bridge.string("datapath_type"),
                    owned: hold == BridgeHold::Owned,
                    owned_by: match policy.owner(&bridge_ids) {
                        Owner::Mesh(other) => Some(other),
                        Owner::Us | Owner::Nobody => None,
                    },
                    users: marks::users(&bridge_ids),
                    hand_to: None,
                    foreign_ports: foreign,
                    mtu_request: local_mtu_request,
                },
            );
            out.rows
                .bridges
                .insert(name, bridge.row_ref(&columns::BRIDGE));
        }
    }
    // Bridges report "" for the default datapath: that is "system".
    for bridge in out.state.bridges.values_mut() {
        if bridge.datapath_type.is_empty() {
            bridge.datapath_type = "system".into();
        }
    }
    out
}

/// `Interface.mtu_request` (an optional integer).
fn mtu_request(iface: &Row<'_>) -> Option<u32> {
    iface
        .integers("mtu_request")
        .first()
        .and_then(|m| u32::try_from(*m).ok())
}
