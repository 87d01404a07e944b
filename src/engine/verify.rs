//! The verify step: after changing a host, look at it again.
//!
//! Like nmstate, ovsmesh does not trust its own writes: another tool may undo
//! one at once, the kernel may refuse part of a change without an error, a
//! container may go away halfway. So after an apply (or a `down`) the host is
//! observed afresh and planned towards the same state; whatever that plan still
//! has is what the host does not match. The CLI exits 1 with it, the daemon
//! logs and counts it, and anything else that changes a host (a rollback after
//! a failed topology update) can ask the same question.

use crate::desired::settle;
use crate::plan::{plan, Change};
use crate::state::HostState;

use super::{observe, EngineError, HostTarget};
use crate::netlink::Netlink;
use crate::ovs::Session;

/// What the verify step found.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    /// The changes a fresh plan still has: where the host does not match.
    pub remaining: Vec<Change>,
    /// Why the host could not be observed again, if it could not.
    pub error: Option<String>,
}

impl Verified {
    /// The host matches what it must be (or the step did not need to run).
    pub fn matches(&self) -> bool {
        self.remaining.is_empty() && self.error.is_none()
    }

    /// `Ok` when the host matches; else, in one line, why it does not.
    pub fn result(&self) -> Result<(), String> {
        if let Some(error) = &self.error {
            return Err(format!("could not observe the host again: {error}"));
        }
        match self.remaining.len() {
            0 => Ok(()),
            n => Err(format!(
                "{n} change(s) still to make after applying: {}",
                self.remaining
                    .iter()
                    .map(|c| format!("{} {}", c.kind.as_str(), c.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// Observe the host afresh and plan it towards `want` (its desired state, as
/// [`crate::desired::desired`] gives it): the changes that remain. Empty: the
/// host is what `want` says. Conflicts are not counted here: the plan that
/// found them already said so. Read-only; call it under the mesh lock to
/// verify what was just applied.
pub async fn verify(
    session: &Session,
    target: &HostTarget<'_>,
    want: &HostState,
) -> Result<Vec<Change>, EngineError> {
    remaining(session, target, want, want).await
}

/// [`verify`] against any target: `known` is the topology's desired state of
/// the host (for `down`, whose target is an empty host), by which `marks`
/// recognises the exact addresses ovsmesh put on devices it does not own.
pub(super) async fn verify_against(
    session: &Session,
    target: &HostTarget<'_>,
    want: &HostState,
    known: &HostState,
) -> Verified {
    match remaining(session, target, want, known).await {
        Ok(remaining) => {
            for change in &remaining {
                tracing::warn!(op = ?change.op, kind = change.kind.as_str(), id = %change.id,
                    reason = %change.reason, "verify: the host does not match after applying");
            }
            Verified {
                remaining,
                error: None,
            }
        }
        Err(error) => Verified {
            remaining: Vec::new(),
            error: Some(error.to_string()),
        },
    }
}

async fn remaining(
    session: &Session,
    target: &HostTarget<'_>,
    want: &HostState,
    known: &HostState,
) -> Result<Vec<Change>, EngineError> {
    let netlink = Netlink::open()?;
    let observed = observe(session, &netlink, target, want, known).await?;
    Ok(plan(&settle(&target.topology.mesh.name, want, &observed.state)).changes)
}
