//! Read the OVS side of a host into the shared state type.
//!
//! One `transact` of four selects reads Open_vSwitch, Bridge, Port and
//! Interface. Of those, ovsmesh keeps the bridges it manages (by name, or by
//! its mark) and every port carrying this mesh's marks, keyed by the identity
//! the marks spell out. Foreign rows are only counted (per bridge), so `down`
//! knows whether a bridge still holds someone else's ports. Row uuids and
//! `_version`s are kept for apply's guards.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::marks::{self, Role};
use crate::ovsdb::transact::select;
use crate::ovsdb::value::{Atom, Datum};
use crate::ovsdb::{Client, OvsdbError, DB};
use crate::state::{Bridge, HostState, Port, PortId};

/// A row's identity for guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRef {
    pub uuid: String,
    pub version: String,
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
    /// Bridge name → names of ports on it that carry no mark of this mesh
    /// (the bridge's own local port excluded).
    pub foreign_ports: BTreeMap<String, Vec<String>>,
    /// Port key → (port row, interface row, bridge name).
    pub ports: BTreeMap<String, (RowRef, RowRef, String)>,
    /// Port key → interface status.
    pub status: BTreeMap<String, InterfaceStatus>,
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
    fn row_ref(&self) -> RowRef {
        RowRef {
            uuid: self.uuid("_uuid"),
            version: self.uuid("_version"),
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
    let all = json!([]);
    let replies = client
        .transact(
            DB,
            vec![
                select(
                    "Open_vSwitch",
                    all.clone(),
                    &["_uuid", "bridges", "next_cfg", "cur_cfg"],
                ),
                select(
                    "Bridge",
                    all.clone(),
                    &[
                        "_uuid",
                        "_version",
                        "name",
                        "ports",
                        "datapath_type",
                        "external_ids",
                    ],
                ),
                select(
                    "Port",
                    all.clone(),
                    &[
                        "_uuid",
                        "_version",
                        "name",
                        "interfaces",
                        "tag",
                        "trunks",
                        "protected",
                        "external_ids",
                    ],
                ),
                select(
                    "Interface",
                    all,
                    &[
                        "_uuid",
                        "_version",
                        "name",
                        "type",
                        "options",
                        "bfd",
                        "bfd_status",
                        "error",
                        "ofport",
                    ],
                ),
            ],
        )
        .await?;
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
    for bridge in bridges.iter().map(Row) {
        if !attached.contains(&bridge.uuid("_uuid")) {
            continue;
        }
        let name = bridge.string("name");
        let ids = bridge.map("external_ids");
        let owned = ids.get(marks::MESH).is_some_and(|m| m == mesh);
        let managed = owned || managed_bridges.contains(&name.as_str());
        let mut foreign = Vec::new();
        for port_uuid in bridge.uuids("ports") {
            let Some(port) = ports_by_uuid.get(&port_uuid) else {
                continue;
            };
            let port_ids = port.map("external_ids");
            if port_ids.get(marks::MESH).map(String::as_str) != Some(mesh) {
                if port.string("name") != name {
                    foreign.push(port.string("name"));
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
            let Some(id) = port_id(&name, &port_ids) else {
                continue;
            };
            let mut key = id.key();
            if out.state.ports.contains_key(&key) {
                // A stray duplicate: keep it under its own key so the plan deletes it.
                key = format!("{key}#{}", port.uuid("_uuid"));
            }
            let role = port_ids
                .get(marks::ROLE)
                .and_then(|r| Role::parse(r))
                .unwrap_or(Role::Access);
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
                    external_ids: port_ids.clone(),
                },
            );
            out.rows
                .ports
                .insert(key.clone(), (port.row_ref(), iface.row_ref(), name.clone()));
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
        if managed {
            out.state.bridges.insert(
                name.clone(),
                Bridge {
                    datapath_type: bridge.string("datapath_type"),
                    owned,
                },
            );
            out.rows.bridges.insert(name.clone(), bridge.row_ref());
            out.rows.foreign_ports.insert(name, foreign);
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

/// The identity a port's marks spell out.
fn port_id(bridge: &str, ids: &BTreeMap<String, String>) -> Option<PortId> {
    let get = |k: &str| ids.get(k).cloned();
    Some(match Role::parse(ids.get(marks::ROLE)?)? {
        Role::Tunnel => PortId::Tunnel {
            bridge: bridge.to_string(),
            peer: get(marks::PEER)?,
        },
        Role::Access => PortId::Access {
            container: get(marks::CONTAINER)?,
            ifname: get(marks::IFNAME)?,
        },
        Role::Gateway => PortId::Gateway {
            network: get(marks::NETWORK)?,
        },
        Role::Uplink => PortId::Uplink {
            bridge: bridge.to_string(),
        },
        Role::Underlay => PortId::Underlay {
            bridge: bridge.to_string(),
        },
    })
}
