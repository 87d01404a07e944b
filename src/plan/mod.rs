//! The typed diff between what a host should have and what it has.
//!
//! `plan(desired, observed)` yields the changes that make observed equal to
//! desired: create, update (with the changed fields), replace and delete, each
//! with a reason. Only owned objects are in observed state, so a delete never
//! touches a foreign row. Containers that are not running are *waiting*: their
//! objects are left as they are. A container whose interface is gone (restarted:
//! new netns) is re-plumbed with a fresh host-side port name, because on the
//! userspace datapath a veth recreated under its old name passes no traffic.

mod objects;
mod render;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::marks::Role;
use crate::state::HostState;
use crate::topology::names;
pub use objects::Object;

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    Update,
    Replace,
    Delete,
}

/// Which kind of object a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Bridge,
    Port,
    Address,
    Route,
    Forwarding,
    Sysctl,
    ContainerInterface,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bridge => "bridge",
            Kind::Port => "port",
            Kind::Address => "address",
            Kind::Route => "route",
            Kind::Forwarding => "forwarding",
            Kind::Sysctl => "sysctl",
            Kind::ContainerInterface => "container-interface",
        }
    }
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub from: String,
    pub to: String,
}

/// One change to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub op: Op,
    pub kind: Kind,
    pub id: String,
    /// The object's fields after the change (before it, for a delete).
    pub fields: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<FieldChange>,
    pub reason: String,
}

/// The changes that bring one host to its desired state.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub host: String,
    pub changes: Vec<Change>,
    /// Containers not running: nothing is made for them.
    pub waiting: Vec<String>,
    /// Desired state with re-plumb decisions settled (fresh port names): what
    /// apply makes real.
    #[serde(skip)]
    pub target: HostState,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn count(&self, op: Op) -> usize {
        self.changes.iter().filter(|c| c.op == op).count()
    }
}

/// Diff `observed` against `desired`.
pub fn plan(mesh: &str, desired: &HostState, observed: &HostState) -> Plan {
    let mut target = desired.clone();
    let mut observed = observed.clone();
    let waiting: Vec<String> = observed.waiting.iter().cloned().collect();
    for container in &waiting {
        // Waiting containers: leave whatever exists, make nothing new.
        let prefix = format!("{container}/");
        let access = format!("access/{container}/");
        target.containers.retain(|k, _| !k.starts_with(&prefix));
        observed.containers.retain(|k, _| !k.starts_with(&prefix));
        target.ports.retain(|k, _| !k.starts_with(&access));
        observed.ports.retain(|k, _| !k.starts_with(&access));
    }
    let replumbs = settle_access_names(mesh, &mut target, &observed);
    let mut changes = Vec::new();
    diff(
        &target.bridges,
        &observed.bridges,
        &mut changes,
        |_, b| b.owned,
        &BTreeMap::new(),
    );
    diff(
        &target.ports,
        &observed.ports,
        &mut changes,
        |_, _| true,
        &replumbs,
    );
    diff(
        &target.addresses,
        &observed.addresses,
        &mut changes,
        |_, _| true,
        &BTreeMap::new(),
    );
    diff(
        &target.routes,
        &observed.routes,
        &mut changes,
        |_, _| true,
        &BTreeMap::new(),
    );
    diff(
        &target.forwarding,
        &observed.forwarding,
        &mut changes,
        |_, _| true,
        &BTreeMap::new(),
    );
    diff(
        &target.sysctls,
        &observed.sysctls,
        &mut changes,
        |_, _| true,
        &BTreeMap::new(),
    );
    let container_replumbs: BTreeMap<String, String> = replumbs
        .iter()
        .filter_map(|(port, reason)| {
            port.strip_prefix("access/")
                .map(|k| (k.to_string(), reason.clone()))
        })
        .collect();
    diff(
        &target.containers,
        &observed.containers,
        &mut changes,
        |_, _| true,
        &container_replumbs,
    );
    Plan {
        host: desired.host.clone(),
        changes,
        waiting,
        target,
    }
}

/// Keep a healthy access port's current incarnation; give a container whose
/// interface vanished a fresh one. Returns port key → reason for re-plumbs.
fn settle_access_names(
    mesh: &str,
    target: &mut HostState,
    observed: &HostState,
) -> BTreeMap<String, String> {
    let mut replumbs = BTreeMap::new();
    for (key, port) in target.ports.iter_mut() {
        if port.role != Role::Access {
            continue;
        }
        let Some(current) = observed.ports.get(key) else {
            continue;
        };
        let Some(iface_key) = key.strip_prefix("access/") else {
            continue;
        };
        let Some(wanted) = target.containers.get_mut(iface_key) else {
            continue;
        };
        let (container, ifname) = (wanted.container.clone(), wanted.ifname.clone());
        let healthy = observed
            .containers
            .get(iface_key)
            .is_some_and(|seen| seen.host_end == current.name);
        let name = if healthy
            || !names::is_access_incarnation(mesh, &container, &ifname, &current.name)
        {
            if healthy {
                current.name.clone()
            } else {
                port.name.clone()
            }
        } else {
            replumbs.insert(
                key.clone(),
                "container interface is gone (container restarted?): re-plumb under a fresh host-side name".to_string(),
            );
            names::next_access_incarnation(mesh, &container, &ifname, &current.name)
        };
        port.name = name.clone();
        wanted.host_end = name;
    }
    replumbs
}

fn diff<T: Object>(
    desired: &BTreeMap<String, T>,
    observed: &BTreeMap<String, T>,
    changes: &mut Vec<Change>,
    deletable: impl Fn(&str, &T) -> bool,
    replumbs: &BTreeMap<String, String>,
) {
    for (id, want) in desired {
        match observed.get(id) {
            None => changes.push(Change {
                op: Op::Create,
                kind: T::KIND,
                id: id.clone(),
                fields: want.fields(),
                changed: Vec::new(),
                reason: want.purpose(),
            }),
            Some(have) => {
                let changed = field_changes(&have.fields(), &want.fields(), T::COMPARED);
                if changed.is_empty() {
                    continue;
                }
                let replace = replumbs.contains_key(id)
                    || changed
                        .iter()
                        .any(|c| T::REPLACE_ON.contains(&c.field.as_str()));
                let reason = replumbs.get(id).cloned().unwrap_or_else(|| {
                    let fields: Vec<&str> = changed.iter().map(|c| c.field.as_str()).collect();
                    format!("drifted from the topology ({})", fields.join(", "))
                });
                changes.push(Change {
                    op: if replace { Op::Replace } else { Op::Update },
                    kind: T::KIND,
                    id: id.clone(),
                    fields: want.fields(),
                    changed,
                    reason,
                });
            }
        }
    }
    for (id, have) in observed {
        if !desired.contains_key(id) && deletable(id, have) {
            changes.push(Change {
                op: Op::Delete,
                kind: T::KIND,
                id: id.clone(),
                fields: have.fields(),
                changed: Vec::new(),
                reason: "no longer in the topology".into(),
            });
        }
    }
}

fn field_changes(
    have: &[(String, String)],
    want: &[(String, String)],
    compared: &[&str],
) -> Vec<FieldChange> {
    let have: BTreeMap<&str, &str> = have.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let want_map: BTreeMap<&str, &str> =
        want.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut keys: Vec<&str> = have.keys().chain(want_map.keys()).copied().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| {
            compared.is_empty()
                || compared
                    .iter()
                    .any(|c| k == c || k.starts_with(&format!("{c}:")))
        })
        .filter_map(|k| {
            let from = have.get(k).copied().unwrap_or("");
            let to = want_map.get(k).copied().unwrap_or("");
            (from != to).then(|| FieldChange {
                field: k.to_string(),
                from: from.to_string(),
                to: to.to_string(),
            })
        })
        .collect()
}

pub use render::{render_json, render_text};

#[cfg(test)]
mod tests;
