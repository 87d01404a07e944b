//! The typed diff between what a host should have and what it has.
//!
//! `plan(settled)` yields the changes that make the observed state equal to the
//! target (desired state settled against the host, see `desired::settle`):
//! create, update (with the changed fields), replace and delete, each with a
//! reason and the typed object it makes or removes. Fields are compared as
//! values. Only owned objects are in observed state (the observers ask `marks`),
//! and the one exception, an adopted bridge, is removed only if `marks` says so.

mod objects;
mod render;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::marks::{self, Removal};
pub use crate::state::{Conflict, Kept, Kind};
use crate::state::{Item, Note, Settled};
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
    /// The object as the host has it (update, replace, delete).
    #[serde(skip)]
    pub before: Option<Item>,
    /// The object as it must be (create, update, replace).
    #[serde(skip)]
    pub after: Option<Item>,
}

/// The changes that bring one host to its desired state.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub host: String,
    pub changes: Vec<Change>,
    /// Containers not running: nothing is made for them.
    pub waiting: Vec<String>,
    /// Objects left as they are although the topology would have them
    /// otherwise (kept because others use them; adopted as they are).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Kept>,
    /// Objects not made because something not ovsmesh's holds their place.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    /// Nothing to change and nothing in the way: the host matches the topology.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.conflicts.is_empty()
    }

    pub fn count(&self, op: Op) -> usize {
        self.changes.iter().filter(|c| c.op == op).count()
    }
}

/// Diff the settled observed state against the settled target.
pub fn plan(settled: &Settled) -> Plan {
    let (target, observed) = (&settled.target, &settled.observed);
    let mut out = Plan {
        host: target.host.clone(),
        changes: Vec::new(),
        waiting: settled.waiting.clone(),
        kept: settled.kept.clone(),
        conflicts: settled.conflicts.clone(),
    };
    let notes = &settled.notes;
    let removal = |b: &crate::state::Bridge| marks::bridge_removal(b.owned, &b.foreign_ports);
    diff(&target.bridges, &observed.bridges, &mut out, removal, notes);
    // Everything else is in observed state only if it is ours.
    diff(&target.ports, &observed.ports, &mut out, ours, notes);
    diff(
        &target.addresses,
        &observed.addresses,
        &mut out,
        ours,
        notes,
    );
    diff(&target.routes, &observed.routes, &mut out, ours, notes);
    diff(
        &target.forwarding,
        &observed.forwarding,
        &mut out,
        ours,
        notes,
    );
    diff(&target.sysctls, &observed.sysctls, &mut out, ours, notes);
    diff(
        &target.containers,
        &observed.containers,
        &mut out,
        ours,
        notes,
    );
    diff(&target.firewall, &observed.firewall, &mut out, ours, notes);
    out
}

fn diff<T: Object>(
    desired: &BTreeMap<String, T>,
    observed: &BTreeMap<String, T>,
    plan: &mut Plan,
    removal: impl Fn(&T) -> Removal,
    notes: &BTreeMap<(Kind, String), Note>,
) {
    let changes = &mut plan.changes;
    for (id, want) in desired {
        match observed.get(id) {
            None => changes.push(Change {
                op: Op::Create,
                kind: T::KIND,
                id: id.clone(),
                fields: want.fields(),
                changed: Vec::new(),
                reason: want.purpose(),
                before: None,
                after: Some(want.item()),
            }),
            Some(have) => {
                let changed = have.changes_to(want);
                if changed.is_empty() {
                    continue;
                }
                let note = notes.get(&(T::KIND, id.clone()));
                let replace = note.is_some_and(|n| n.replace)
                    || changed
                        .iter()
                        .any(|c| T::REPLACE_ON.contains(&c.field.as_str()));
                let reason = note.map(|n| n.reason.clone()).unwrap_or_else(|| {
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
                    before: Some(have.item()),
                    after: Some(want.item()),
                });
            }
        }
    }
    for (id, have) in observed.iter().filter(|(id, _)| !desired.contains_key(*id)) {
        match removal(have) {
            Removal::Remove => {}
            Removal::Leave => continue,
            Removal::Keep { reason, holders } => {
                plan.kept.push(Kept {
                    kind: T::KIND,
                    id: id.clone(),
                    reason: reason.to_string(),
                    holders,
                });
                continue;
            }
        }
        plan.changes.push(Change {
            op: Op::Delete,
            kind: T::KIND,
            id: id.clone(),
            fields: have.fields(),
            changed: Vec::new(),
            reason: "no longer in the topology".into(),
            before: Some(have.item()),
            after: None,
        });
    }
}

/// Observed objects other than bridges are there only if they are ours.
fn ours<T>(_: &T) -> Removal {
    Removal::Remove
}

pub use render::{render_json, render_text};

#[cfg(test)]
mod tests;
