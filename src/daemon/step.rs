//! One reconcile step of the daemon and what follows from its outcome: the
//! verify after its own changes, backoff after failures and for changes that
//! keep coming back (`stuck`), retries for containers still being started,
//! and the exit on a stop signal.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::metrics::ResultLabel;
use super::reconcile::{self, ReconcileError};
use super::triggers::Trigger;
use super::wake::{self, Received, Schedule, Signals};
use super::{containers, report, stuck, systemd, unix_now, Daemon, STOP_GRACE, VERIFY_AFTER};
use crate::engine::Outcome;

impl Daemon {
    /// One reconcile; `Some(signal)` when a stop signal came during it.
    pub(super) async fn step(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Trigger>,
        signals: &mut Signals,
    ) -> Option<&'static str> {
        let now = Instant::now();
        if now >= self.next_resync {
            self.reasons.insert("periodic resync");
            self.next_resync = now + self.config.resync;
            // A file changed without an event we saw (a network file system, a
            // watch lost): the text is compared, and applied when it changed.
            self.reload = true;
        }
        if self.reload {
            self.reload_topology();
        }
        // A container that died is let go before anything else looks at its veth.
        if self.watchers.prune() {
            self.note(Trigger::ContainerNetns);
        }
        let why: Vec<&str> = self.reasons.iter().copied().collect();
        self.reasons.clear();
        tracing::debug!(trigger = %why.join(", "), "reconcile");
        self.schedule = Schedule::default();
        let started = Instant::now();
        let record = self.record();
        self.metrics.reconcile_in_progress.set(1);
        let result = {
            let run = reconcile::reconcile(
                &self.config,
                &self.topology,
                &self.runtimes,
                &mut self.connection,
                &self.metrics,
                &why,
            );
            tokio::pin!(run);
            loop {
                tokio::select! {
                    result = &mut run => break result,
                    received = signals.recv() => match received {
                        // As `wake_for_reload` (field by field: the step borrows the rest).
                        Received::Reload => match &self.fetch_now {
                            Some(now) => now.notify_one(),
                            None => {
                                self.reload = true;
                                self.reasons.insert("SIGHUP");
                            }
                        },
                        Received::Stop(name) => {
                            wake::exit_by_deadline(record);
                            // Let the step finish if it can; never wait on a hung server.
                            if tokio::time::timeout(STOP_GRACE, &mut run).await.is_err() {
                                tracing::warn!("a reconcile step did not finish; abandoned");
                            }
                            self.metrics.reconcile_in_progress.set(0);
                            return Some(name);
                        }
                    },
                }
            }
        };
        self.metrics.reconcile_in_progress.set(0);
        self.metrics
            .reconcile_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Some(connection) = &self.connection {
            self.root = Some(connection.root.clone());
        }
        self.update_registration();
        // A reconcile of many containers allocates a lot briefly; give it back while idle.
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe {
            libc::malloc_trim(0);
        }
        let resync = why.contains(&"periodic resync");
        match result {
            Ok(outcome) => self.succeeded(&outcome, rx),
            Err(error) => self.failed(error),
        }
        if resync {
            self.sweep_leftovers().await;
        }
        self.publish();
        None
    }

    /// Delete Docker endpoint veths left over by an interrupted `CreateEndpoint`.
    async fn sweep_leftovers(&mut self) {
        let Some(connection) = &self.connection else {
            return;
        };
        let making = self.plugin.as_ref().map(|p| p.making()).unwrap_or_default();
        let sweep = self.leftovers.sweep(
            &connection.session,
            &self.topology,
            &self.config.host,
            &making,
        );
        if tokio::time::timeout(self.config.timeout, sweep)
            .await
            .is_err()
        {
            tracing::warn!("looking for leftover Docker endpoint veths took too long");
        }
    }

    fn succeeded(&mut self, outcome: &Outcome, rx: &mut mpsc::UnboundedReceiver<Trigger>) {
        self.failures.reset();
        let metrics = &self.metrics;
        metrics
            .reconciles
            .get_or_create(&ResultLabel {
                result: "ok".into(),
            })
            .inc();
        metrics.last_success.set(unix_now());
        metrics.waiting.set(outcome.plan.waiting.len() as i64);
        let warnings = self.notices.update(&outcome.warnings);
        metrics.host_warnings.set(warnings as i64);
        self.warnings = outcome.warnings.clone();
        // The engine's verify step observed the host again after any change
        // (a host that still differed failed the reconcile, see `failed`).
        self.verified = Some(outcome.verified.result());
        self.follow_containers(outcome);
        if self.tracker.applied(&outcome.plan.changes) {
            self.publish_stuck();
        }
        let stuck = self.tracker.stuck();
        if outcome.plan.is_empty() {
            self.stuck_backoff.reset();
        } else {
            // Our own writes echo back as OVSDB and netlink notifications: drop
            // those that arrived meanwhile, and verify once instead.
            let mut pre_empt = false;
            while let Ok(trigger) = rx.try_recv() {
                if !trigger.may_be_own_write() {
                    self.note(trigger);
                    pre_empt |= trigger.pre_empts_backoff();
                }
            }
            if stuck.is_empty() {
                self.stuck_backoff.reset();
                self.reasons.insert("verify after own changes");
                self.schedule.at(VERIFY_AFTER);
            } else {
                let delay = self.stuck_backoff.delay();
                let ids: Vec<String> = stuck
                    .iter()
                    .map(|c| format!("{} {}", c.kind, c.id))
                    .collect();
                tracing::warn!(stuck = %ids.join(", "), retry_in_ms = delay.as_millis() as u64,
                    "changes keep coming back after being applied; backing off");
                self.reasons.insert("retry stuck changes");
                self.schedule.at(delay);
            }
            if pre_empt {
                self.schedule.pre_empt();
            }
        }
        if self.schedule.due.is_none() {
            self.retry_waiting(outcome);
        }
        let status = systemd::converged_status(self.want.as_ref(), outcome, stuck.len());
        self.systemd.reconciled(&status);
    }

    /// Watch inside the containers this outcome left plumbed.
    fn follow_containers(&mut self, outcome: &Outcome) {
        if let Some(want) = &self.want {
            let plumbed = containers::plumbed(want, &outcome.plan.waiting);
            self.watchers.follow(&plumbed, &self.runtimes);
        }
    }

    /// A new namespace file appears before its bind mount, a container is being
    /// started: retry a few times, sooner than anything already due.
    fn retry_waiting(&mut self, outcome: &Outcome) {
        if outcome.plan.waiting.is_empty() || self.waiting_retries >= 20 {
            return;
        }
        self.waiting_retries += 1;
        self.reasons.insert("waiting containers");
        let delay = Duration::from_millis(100 * u64::from(self.waiting_retries.min(10)));
        let retry = Instant::now() + delay;
        if self.schedule.due.is_none_or(|due| retry < due) {
            self.schedule.at(delay);
        }
    }

    fn failed(&mut self, error: ReconcileError) {
        self.metrics
            .reconciles
            .get_or_create(&ResultLabel {
                result: "error".into(),
            })
            .inc();
        let delay = self.failures.delay();
        tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "reconcile failed");
        self.verified = Some(Err(error.to_string()));
        self.systemd.status(&format!(
            "reconcile failed, retrying in {} ms: {error}",
            delay.as_millis()
        ));
        self.reasons.insert("retry after failure");
        self.schedule.at(delay);
        match error {
            // Objects failed on a healthy server: the session stays, and what was
            // applied (containers plumbed, some waiting) counts.
            ReconcileError::Partial { outcome, .. } => {
                // Applied cleanly and undone before the verify step looked: a
                // change that keeps coming back, as a later reconcile would find.
                if outcome.applied_cleanly() && self.tracker.applied(&outcome.plan.changes) {
                    self.publish_stuck();
                }
                self.follow_containers(&outcome);
                self.retry_waiting(&outcome);
            }
            _ => self.connection = None,
        }
    }

    /// Keep the record `down` finds this daemon by up to date (mesh, server).
    pub(super) fn update_registration(&mut self) {
        if let Some(registration) = &mut self.registration {
            let mesh = &self.topology.mesh.name;
            if let Err(error) = registration.update(mesh, &self.config.host, self.root.as_deref()) {
                tracing::warn!(%error, "could not update the record `ovsmesh down` finds this daemon by");
            }
        }
    }

    /// Tell `status` (and the gauge) what is stuck.
    pub(super) fn publish_stuck(&self) {
        let stuck = self.tracker.stuck();
        self.metrics.stuck_changes.set(stuck.len() as i64);
        if let Some(root) = &self.root {
            let mesh = &self.topology.mesh.name;
            if let Err(error) = stuck::write(root, mesh, &self.config.host, stuck) {
                tracing::warn!(%error, "could not write the stuck-change record for status");
            }
        }
    }

    /// This daemon's stuck-change record, once a server was reached.
    fn record(&self) -> Option<PathBuf> {
        let root = self.root.as_deref()?;
        stuck::record_path(root, &self.topology.mesh.name, &self.config.host)
    }

    /// Leave: the network as it is, nothing stuck on record, the process gone
    /// within [`STOP_DEADLINE`] of the signal whatever still runs.
    pub(super) async fn stop(&mut self, signal: &'static str) {
        tracing::info!("{signal}: exiting, network left as it is");
        self.systemd.stopping();
        wake::exit_by_deadline(self.record());
        report::remove(&self.config.lab, &self.config.host);
        self.tracker.clear();
        self.publish_stuck();
        if let Some(mut connection) = self.connection.take() {
            let _ = tokio::time::timeout(STOP_GRACE / 4, connection.session.unlock()).await;
        }
    }
}
