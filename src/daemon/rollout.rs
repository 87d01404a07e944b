//! The daemon following a git remote: the poller, and what the daemon does with
//! each fetched commit (see `follow` for the rules: refuse, apply on probation,
//! accept or roll back), and the report it publishes for `status`.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};

use super::backoff::jittered;
use super::follow::{self, Applied, Bad, Checks, Decision, Follower, Judged, Probation, Verdict};
use super::report::{self, Report};
use super::{probe, unix_now, Daemon, DaemonError, Rewrite};
use crate::marks::Role;
use crate::source::git::{Fetched, Remote, Unreachable};
use crate::source::short;
use crate::source::signers::AllowedSigners;
use crate::topology::Topology;

/// Bound on one fetch (connect, negotiate, receive the pack).
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a commit on probation is checked.
pub const PROBATION_TICK: Duration = Duration::from_secs(1);

pub type FetchResult = Result<Fetched, Unreachable>;

/// Fetch on its own thread, bounded; a fetch that overruns is told to stop.
pub async fn fetch(remote: &Remote) -> FetchResult {
    let interrupt = Arc::new(AtomicBool::new(false));
    let (flag, remote_) = (interrupt.clone(), remote.clone());
    let work = tokio::task::spawn_blocking(move || remote_.fetch(&flag));
    let failed = |reason: String| Unreachable {
        url: remote.url.clone(),
        reference: remote.reference.clone(),
        reason,
    };
    match tokio::time::timeout(FETCH_TIMEOUT, work).await {
        Ok(Ok(result)) => result,
        Ok(Err(error)) => Err(failed(format!("fetch failed: {error}"))),
        Err(_) => {
            interrupt.store(true, std::sync::atomic::Ordering::Relaxed);
            Err(failed(format!(
                "no answer within {} s",
                FETCH_TIMEOUT.as_secs()
            )))
        }
    }
}

/// Poll the remote every `poll` (± 20 %), and at once when `now` is notified (SIGHUP).
pub fn spawn_poller(
    remote: Remote,
    poll: Duration,
    now: Arc<Notify>,
    tx: mpsc::UnboundedSender<FetchResult>,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(jittered(poll)) => {}
                _ = now.notified() => {}
            }
            if tx.send(fetch(&remote).await).is_err() {
                return;
            }
        }
    });
}

/// Start following `remote`: its allowed signers, the record of what this host
/// applied and refused, and the first commit to apply (see [`first`]).
pub async fn start(
    remote: &Remote,
    config: &super::DaemonConfig,
) -> Result<(Follower, Topology, String), DaemonError> {
    remote.check().map_err(DaemonError::Source)?;
    let signers = match &config.allowed_signers {
        Some(path) => {
            let signers = AllowedSigners::load(path)?;
            for line in &signers.skipped {
                tracing::warn!(file = %path.display(), %line, "allowed signer skipped");
            }
            Some(signers)
        }
        None => {
            tracing::warn!(remote = %remote.url, "no --allowed-signers: every commit of the remote is trusted unsigned (whoever can push owns this host)");
            None
        }
    };
    let mut follower = Follower::new(remote.clone(), signers);
    let (topology, text) = first(&mut follower, &config.host, config.rewrite.as_ref()).await?;
    Ok((follower, topology, text))
}

/// The first commit to apply at start: the ref's commit if it is good, else the
/// last good one on record (read again from the cache). No good commit at all
/// is an error: the daemon has nothing to enforce.
async fn first(
    follower: &mut Follower,
    host: &str,
    rewrite: Option<&Rewrite>,
) -> Result<(Topology, String), DaemonError> {
    let why = match fetch(&follower.remote).await {
        Ok(fetched) if follower.is_bad(&fetched.commit) => format!(
            "the ref's commit {} was refused or rolled back before",
            short(&fetched.commit)
        ),
        Ok(fetched) => match follower.check(&fetched, host) {
            Ok(candidate) => {
                follower.accept(Applied {
                    commit: candidate.commit.clone(),
                    at: unix_now(),
                    signer: candidate.signer.clone(),
                });
                tracing::info!(commit = %candidate.commit, signer = ?candidate.signer, "applying the remote's commit");
                return Ok((rewritten(candidate.topology, rewrite), candidate.text));
            }
            Err(reason) => {
                tracing::error!(commit = %fetched.commit, %reason, "commit refused");
                let why = format!("commit {} refused: {reason}", short(&fetched.commit));
                follower.mark_bad(Bad {
                    commit: fetched.commit,
                    verdict: Verdict::Refused,
                    reason,
                    at: unix_now(),
                });
                why
            }
        },
        Err(error) => {
            follower.fetch_error = Some(error.to_string());
            error.to_string()
        }
    };
    let Some(last) = follower.record.applied.clone() else {
        return Err(DaemonError::Source(format!(
            "no good commit to apply: {why}"
        )));
    };
    tracing::warn!(commit = %last.commit, %why, "starting from the last good commit");
    let fetched = follower
        .remote
        .at(&last.commit)
        .map_err(|e| DaemonError::Source(format!("{why}; the last good commit: {e}")))?;
    match follower.check(&fetched, host) {
        Ok(candidate) => Ok((rewritten(candidate.topology, rewrite), candidate.text)),
        Err(reason) => Err(DaemonError::Source(format!(
            "{why}; the last good commit {}: {reason}",
            short(&last.commit)
        ))),
    }
}

fn rewritten(topology: Topology, rewrite: Option<&Rewrite>) -> Topology {
    match rewrite {
        Some(Rewrite(rewrite)) => rewrite(&topology),
        None => topology,
    }
}

/// The report `status` and `fleet status` read, shared with the listener.
pub type Published = Arc<Mutex<String>>;

impl Daemon {
    /// A fetch came back.
    pub(super) async fn fetched(&mut self, result: FetchResult) {
        let Some(follower) = self.follower.as_mut() else {
            return;
        };
        match result {
            Err(error) => {
                let reason = error.to_string();
                if follower.fetch_error.as_deref() != Some(reason.as_str()) {
                    tracing::error!(%reason, "cannot fetch the topology; the last good commit stays applied");
                    self.metrics.topology_refused.inc();
                }
                follower.fetch_error = Some(reason);
            }
            Ok(fetched) => {
                if follower.fetch_error.take().is_some() {
                    tracing::info!("the remote answers again");
                }
                match follower.judge(&fetched, &self.config.host) {
                    Judged::Known => {}
                    Judged::Refused(bad) => {
                        tracing::error!(commit = %bad.commit, reason = %bad.reason,
                            "commit refused; the last good one stays applied");
                        self.metrics.topology_refused.inc();
                        follower.mark_bad(bad);
                    }
                    Judged::Apply(candidate) => self.switch_to(*candidate).await,
                }
            }
        }
        self.publish();
    }

    /// Apply a good commit; on probation when there is a good one to go back to.
    async fn switch_to(&mut self, candidate: follow::Candidate) {
        let host = self.config.host.clone();
        let topology = rewritten(candidate.topology, self.config.rewrite.as_ref());
        let applied = Applied {
            commit: candidate.commit.clone(),
            at: unix_now(),
            signer: candidate.signer.clone(),
        };
        let Some(follower) = self.follower.as_mut() else {
            return;
        };
        let pending = follower.probation.take();
        let (previous, baseline) = match pending {
            // A newer commit while one is on probation: back to the same good one if need be.
            Some(p) => (p.previous, p.baseline),
            None => match follower.record.applied.clone() {
                Some(last) => {
                    let peers = follow::peers(&self.topology, &host);
                    let at = Instant::now();
                    let answering = probe::reachable(&peers).await;
                    follower.reached.note(&answering, at);
                    let baseline = follower.reached.baseline(&answering, at);
                    let previous = (last, self.topology.clone(), self.text.clone());
                    (Some(previous), baseline)
                }
                None => (None, Default::default()),
            },
        };
        let Some(follower) = self.follower.as_mut() else {
            return;
        };
        tracing::info!(commit = %applied.commit, signer = ?applied.signer, reachable_peers = ?baseline,
            on_probation = previous.is_some(), "applying a new commit");
        if previous.is_some() {
            follower.probation = Some(Probation {
                applied: applied.clone(),
                since: Instant::now(),
                previous,
                baseline,
            });
        } else {
            follower.accept(applied.clone());
        }
        self.install(topology, candidate.text, "git commit");
    }

    /// Put a topology in force and reconcile now.
    fn install(&mut self, topology: Topology, text: String, why: &'static str) {
        self.generation += 1;
        self.metrics.generation.set(self.generation);
        self.topology = topology;
        self.text = text;
        self.verified = None;
        self.loaded();
        self.publish_info();
        self.reasons.insert(why);
        self.schedule.pre_empt();
    }

    /// Check a commit on probation: accept it, wait, or roll back.
    pub(super) async fn check_probation(&mut self) {
        let Some(follower) = self.follower.as_mut() else {
            return;
        };
        let Some(probation) = follower.probation.clone() else {
            // Between commits: keep the baseline of the next one fresh.
            let (topology, host) = (&self.topology, &self.config.host);
            follower
                .reached
                .probe_if_due(|| follow::peers(topology, host));
            return;
        };
        let required: std::collections::BTreeMap<_, _> =
            follow::peers(&self.topology, &self.config.host)
                .into_iter()
                .filter(|(name, _)| probation.baseline.contains(name))
                .collect();
        let checks = Checks {
            reachable: probe::reachable(&required).await,
            required: required.into_keys().collect(),
            verified: self.verified.clone(),
            elapsed: probation.since.elapsed(),
        };
        let window = self.config.window;
        let settle = (window / 2).min(Duration::from_secs(5));
        let decision = follow::decide(&checks, settle, window);
        let Some(follower) = self.follower.as_mut() else {
            return;
        };
        match decision {
            Decision::Wait => return,
            Decision::Accept => {
                tracing::info!(commit = %probation.applied.commit, "commit accepted: peers reached and verified");
                follower.probation = None;
                follower.reached.note(&checks.reachable, Instant::now());
                follower.accept(probation.applied);
            }
            Decision::RollBack(reason) => {
                tracing::error!(commit = %probation.applied.commit, %reason,
                    "rolling back to the last good commit; this commit is bad on this host");
                self.metrics.topology_rollbacks.inc();
                follower.probation = None;
                follower.mark_bad(Bad {
                    commit: probation.applied.commit.clone(),
                    verdict: Verdict::RolledBack,
                    reason,
                    at: unix_now(),
                });
                if let Some((applied, topology, text)) = probation.previous {
                    tracing::info!(commit = %applied.commit, "back to the last good commit");
                    self.install(topology, text, "rollback");
                }
            }
        }
        self.publish();
    }

    /// The `ovsmesh_topology_info` gauge: one series, for the commit in force.
    pub(super) fn publish_info(&self) {
        let commit = self
            .follower
            .as_ref()
            .and_then(|f| f.current())
            .map_or_else(String::new, |a| a.commit.clone());
        self.metrics.topology_info.clear();
        self.metrics
            .topology_info
            .get_or_create(&super::metrics::InfoLabel {
                commit,
                source: self.config.source.describe(),
            })
            .set(1);
    }

    /// Tell `status` (the record) and `fleet status` (the listener) how this daemon is.
    pub(super) fn publish(&mut self) {
        let tunnels = self.want.as_ref().map_or(0, |want| {
            want.ports
                .values()
                .filter(|p| p.role == Role::Tunnel)
                .count()
        });
        let unhealthy = usize::try_from(self.metrics.unhealthy_tunnels.get()).unwrap_or(0);
        let follower = self.follower.as_ref();
        let mut report = Report {
            host: self.config.host.clone(),
            pid: std::process::id(),
            source: self.config.source.describe(),
            applied: follower.and_then(|f| f.current().cloned()),
            probation: follower.is_some_and(|f| f.probation.is_some()),
            unsigned_trusted: follower.is_some_and(|f| f.signers.is_none()),
            bad: follower.map(|f| f.record.bad.clone()).unwrap_or_default(),
            fetch_error: follower.and_then(|f| f.fetch_error.clone()),
            converged: matches!(self.verified, Some(Ok(()))),
            tunnels,
            tunnels_up: tunnels.saturating_sub(unhealthy),
            warnings: self.warnings.clone(),
            updated: 0,
        };
        if self.report.as_ref() == Some(&report) {
            return;
        }
        self.report = Some(report.clone());
        report.updated = unix_now();
        let text = serde_json::to_string(&report).unwrap_or_default();
        *self.published.lock().expect("published report") = text;
        if let Err(error) = report::write(&self.config.lab, &report, Some(&self.text)) {
            tracing::warn!(%error, "could not write the report for status");
        }
    }
}
