//! Telling systemd how the daemon is doing (`Type=notify`, through `sd-notify`).
//!
//! `READY=1` once the first reconcile succeeded — units ordered after
//! ovsmesh.service then start on a host whose network is in place; `STATUS=`
//! after every reconcile (what `systemctl status` shows); `WATCHDOG=1` from the
//! daemon's main loop at half of `WatchdogSec`, so a wedged loop (a reconcile
//! that never ends, a select that never wakes) gets the service restarted.
//! Without `$NOTIFY_SOCKET` (not under systemd) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::engine::Outcome;
use crate::marks::Role;
use crate::state::HostState;

#[derive(Debug)]
pub struct Systemd {
    ready: bool,
    watchdog: Option<Duration>,
}

fn send(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "could not notify systemd");
    }
}

impl Default for Systemd {
    fn default() -> Self {
        Self::new()
    }
}

impl Systemd {
    pub fn new() -> Self {
        let watchdog = sd_notify::watchdog_enabled();
        if let Some(period) = watchdog {
            tracing::info!(
                watchdog_ms = period.as_millis() as u64,
                "systemd watchdog enabled"
            );
        }
        Self {
            ready: false,
            watchdog,
        }
    }

    /// How often the main loop must say it is alive: half the watchdog period.
    pub fn keepalive_every(&self) -> Option<Duration> {
        self.watchdog.map(|period| period / 2)
    }

    pub fn alive(&self) {
        send(&[NotifyState::Watchdog]);
    }

    /// A reconcile succeeded: ready (the first time) and its status.
    pub fn reconciled(&mut self, status: &str) {
        if self.ready {
            send(&[NotifyState::Status(status)]);
        } else {
            self.ready = true;
            send(&[NotifyState::Ready, NotifyState::Status(status)]);
        }
    }

    pub fn status(&self, status: &str) {
        send(&[NotifyState::Status(status)]);
    }

    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

/// The status line after a successful reconcile.
pub fn converged_status(want: Option<&HostState>, outcome: &Outcome, stuck: usize) -> String {
    let interfaces = want.map_or(0, |w| w.containers.len());
    let tunnels = want.map_or(0, |w| {
        w.ports.values().filter(|p| p.role == Role::Tunnel).count()
    });
    let plan = &outcome.plan;
    let mut status = if plan.is_empty() {
        "converged".to_string()
    } else {
        format!("applied {} change(s), verifying", plan.changes.len())
    };
    status.push_str(&format!(
        ": {interfaces} container interface(s), {tunnels} tunnel(s)"
    ));
    if !plan.waiting.is_empty() {
        status.push_str(&format!("; {} container(s) waiting", plan.waiting.len()));
    }
    if stuck > 0 {
        status.push_str(&format!("; {stuck} change(s) keep coming back"));
    }
    if !outcome.warnings.is_empty() {
        status.push_str(&format!("; {} host warning(s)", outcome.warnings.len()));
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::parse;

    fn outcome(plan: crate::plan::Plan) -> Outcome {
        Outcome {
            plan,
            ovs: Default::default(),
            netlink: Default::default(),
            warnings: Vec::new(),
            verified: Default::default(),
        }
    }

    #[test]
    fn status_counts_interfaces_tunnels_and_what_is_not_done() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/topology/lab.toml"))
                .unwrap();
        let topology = parse(std::path::Path::new("lab.toml"), &text).unwrap();
        let want = crate::desired::desired(&topology, "node1").unwrap();
        let mut done = outcome(crate::plan::Plan {
            host: "node1".into(),
            changes: Vec::new(),
            waiting: Vec::new(),
            kept: Vec::new(),
            conflicts: Vec::new(),
        });
        assert_eq!(
            converged_status(Some(&want), &done, 0),
            "converged: 4 container interface(s), 4 tunnel(s)"
        );
        done.plan.waiting = vec!["pod1".into()];
        done.warnings = vec!["x".into()];
        assert_eq!(
            converged_status(Some(&want), &done, 2),
            "converged: 4 container interface(s), 4 tunnel(s); 1 container(s) waiting; \
             2 change(s) keep coming back; 1 host warning(s)"
        );
    }

    #[test]
    fn without_systemd_nothing_is_sent_and_no_watchdog() {
        // Tests do not run under systemd: no socket, no watchdog.
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            let mut systemd = Systemd::new();
            assert_eq!(systemd.keepalive_every(), None);
            systemd.reconciled("converged");
            assert!(systemd.ready);
        }
    }
}
