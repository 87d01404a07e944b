//! `ovsmesh daemon`: keep one host equal to the topology.
//!
//! Level-triggered, like a kube-rs controller: every trigger (see `triggers`)
//! and a periodic resync run the same observe → plan → apply path as
//! `ovsmesh apply` — a restarted container is not a special code path, it is
//! just a host that differs from its topology. Triggers are debounced, one
//! reconcile runs at a time under the mesh's OVSDB lock. Failures back off
//! exponentially with jitter; so do changes that keep coming back (`stuck`),
//! which are counted and shown by `status`. A container event, a reconnected
//! server or an edited topology cuts a backoff short; drift notifications do
//! not (a tool fighting the daemon causes them too). An edited topology that
//! fails validation is logged with its located errors and counted; the last
//! good one stays in force. SIGTERM/SIGINT exit 0 within two seconds without
//! touching the network, abandoning a step that does not finish (the next
//! start observes the host afresh); SIGHUP reloads the topology. Under systemd
//! it is `Type=notify`: ready after the first successful reconcile, its status
//! after each, watchdog keep-alives from this loop (`systemd`).
//!
//! The topology comes from a file (every hop of its symlinks watched; every
//! resync re-reads it and applies a changed text) or from a git remote, polled
//! with jitter and fetched at once on SIGHUP (`rollout`): commits are judged
//! before they change anything, applied on probation and rolled back when the
//! host loses its peers (`follow`). `report` is what `status` and `fleet
//! status` learn from a running daemon. With `--docker-plugin` (or a socket
//! systemd hands over) the daemon also serves Docker's network plugin, as
//! tasks beside this loop that see every topology it loads (`plugin`).
//!
//! Here: the loop and what each trigger asks of it; `start` is the start-up
//! (source, watchers, plugin), `step` one reconcile and what follows from it.

pub mod backoff;
pub mod containers;
pub mod echoes;
pub mod follow;
mod leftovers;
pub mod metrics;
mod notices;
pub mod owned;
pub mod plugin;
mod probe;
mod reach;
pub mod reconcile;
pub mod report;
mod rollout;
pub mod running;
mod start;
mod step;
pub mod stuck;
pub mod systemd;
pub mod triggers;
mod wake;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::engine;
use crate::ovsdb::ConnectOptions;
use crate::runtime::Runtimes;
use crate::source::Spec;
use crate::state::HostState;
use crate::topology::{self, LoadError, Runtime, Topology};
use backoff::Backoff;
use containers::Watchers;
use follow::Follower;
use metrics::Metrics;
use owned::Interest;
use reconcile::Connection;
use systemd::Systemd;
use triggers::{Trigger, WatchError};
use wake::{Received, Schedule};

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where the topology comes from.
    pub source: Spec,
    /// Poll period of a git source (jittered ± 20 %).
    pub poll: Duration,
    /// Only commits signed by these keys are applied (git sources).
    pub allowed_signers: Option<PathBuf>,
    /// How long a new commit may take to prove the host still reaches its peers.
    pub window: Duration,
    /// The lab prefix for a lab host (`""` on a real host): names the report record.
    pub lab: String,
    pub host: String,
    pub ovsdb: Option<String>,
    pub docker: Option<String>,
    pub metrics: Option<SocketAddr>,
    pub resync: Duration,
    /// Bound on waiting for ovs-vswitchd after a write.
    pub wait: Duration,
    /// Enforce this rewrite of the file's topology instead (the CLI passes a lab
    /// twin here, and runs the daemon inside the lab host's namespace).
    pub rewrite: Option<Rewrite>,
    /// Deadline of each OVSDB request and of waiting for the mesh lock.
    pub timeout: Duration,
    /// Serve the Docker network plugin (also served when systemd hands a socket over).
    pub docker_plugin: Option<plugin::PluginConfig>,
}

impl DaemonConfig {
    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions::with_timeout(self.timeout)
    }
}

/// A rewrite of the topology, applied to every (re)load of the file.
#[derive(Clone)]
pub struct Rewrite(pub Arc<dyn Fn(&Topology) -> Topology + Send + Sync>);

impl std::fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rewrite(..)")
    }
}

/// The topology the daemon enforces from a file: the file's (and its text), or its rewrite.
fn load(config: &DaemonConfig, path: &Path) -> Result<(Topology, String), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|error| LoadError::Read {
        path: path.display().to_string(),
        error,
    })?;
    let topology = topology::parse(path, &text).map_err(LoadError::Invalid)?;
    let topology = match &config.rewrite {
        Some(Rewrite(rewrite)) => rewrite(&topology),
        None => topology,
    };
    Ok((topology, text))
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A look after the daemon's own changes, once their echoes have arrived.
const VERIFY_AFTER: Duration = Duration::from_millis(150);
/// How long a step may go on after SIGTERM before it is abandoned.
const STOP_GRACE: Duration = Duration::from_millis(1200);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Topology(#[from] LoadError),
    #[error("host {0:?} is not in the topology")]
    UnknownHost(String),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("{0}")]
    Source(String),
    #[error(transparent)]
    Signers(#[from] crate::source::signers::SignersError),
    #[error(transparent)]
    Plugin(#[from] crate::plugin::server::ServeError),
}

/// Seconds since the epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn remote(config: &DaemonConfig, topology: &Topology) -> String {
    engine::ovsdb_remote_from_env(config.ovsdb.as_deref(), topology, &config.host)
}

/// What the daemon keeps between reconciles.
struct Daemon {
    config: DaemonConfig,
    topology: Topology,
    /// The text of the topology in force (a file's is compared on every resync).
    text: String,
    /// The git source, when following one.
    follower: Option<Follower>,
    /// Whether the host verified after the last change of topology: `None`
    /// until a reconcile ran; `Err` says what remained (the engine's verify
    /// step, or why the reconcile failed).
    verified: Option<Result<(), String>>,
    warnings: Vec<String>,
    report: Option<report::Report>,
    published: rollout::Published,
    /// Tells the poller of a git source to fetch at once (SIGHUP).
    fetch_now: Option<Arc<tokio::sync::Notify>>,
    want: Option<HostState>,
    generation: i64,
    metrics: Metrics,
    runtimes: Runtimes,
    connection: Option<Connection>,
    /// The Open_vSwitch row of the last server reached (names the stuck record).
    root: Option<String>,
    reasons: BTreeSet<&'static str>,
    reload: bool,
    waiting_retries: u32,
    schedule: Schedule,
    next_resync: Instant,
    failures: Backoff,
    stuck_backoff: Backoff,
    tracker: stuck::Tracker,
    notices: notices::Notices,
    interest: watch::Sender<Interest>,
    watchers: Watchers,
    docker_events: triggers::DockerEvents,
    plugin: Option<plugin::Running>,
    leftovers: leftovers::Leftovers,
    systemd: Systemd,
    /// The record `ovsmesh down` finds this daemon by (see `running`).
    registration: Option<running::Registration>,
}

/// Run until SIGTERM or SIGINT.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    let (mut daemon, inputs) = Daemon::start(config).await?;
    let start::Inputs {
        mut rx,
        mut fetches,
        mut signals,
    } = inputs;
    let mut prune = tokio::time::interval(containers::PRUNE_EVERY);
    let mut probation = tokio::time::interval(rollout::PROBATION_TICK);
    // A check takes a while (pings); ticks missed meanwhile are not made up for.
    probation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // In the main loop, not a task of its own: a wedged loop stops the keep-alives.
    let keepalive_every = daemon.systemd.keepalive_every();
    let mut keepalive = tokio::time::interval(keepalive_every.unwrap_or(Duration::from_secs(3600)));
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let resync = daemon.next_resync;
        let wake = daemon.schedule.due.map_or(resync, |d| d.min(resync));
        tokio::select! {
            received = signals.recv() => match received {
                Received::Stop(name) => {
                    daemon.stop(name).await;
                    break;
                }
                Received::Reload => daemon.wake_for_reload(),
            },
            Some(trigger) = rx.recv() => daemon.wake_for(trigger),
            Some(fetched) = fetches.recv() => daemon.fetched(fetched).await,
            _ = probation.tick() => daemon.check_probation().await,
            _ = keepalive.tick(), if keepalive_every.is_some() => daemon.systemd.alive(),
            _ = prune.tick() => {
                if daemon.watchers.prune() {
                    daemon.wake_for(Trigger::ContainerNetns);
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if let Some(name) = daemon.step(&mut rx, &mut signals).await {
                    daemon.stop(name).await;
                    break;
                }
            }
        }
    }
    Ok(())
}

impl Daemon {
    /// Record what a trigger asks for: a reload, fresh retries for waiting containers,
    /// forgetting remembered container processes.
    fn note(&mut self, trigger: Trigger) {
        if trigger == Trigger::Topology {
            self.reload = true;
        }
        if trigger.forgets_containers() {
            self.runtimes.docker.forget();
        }
        if let (Trigger::DockerReconnected, Some(plugin)) = (trigger, &self.plugin) {
            plugin.nudge();
        }
        if matches!(
            trigger,
            Trigger::Netns | Trigger::Docker | Trigger::DockerRenamed | Trigger::ContainerNetns
        ) {
            self.waiting_retries = 0;
        }
        self.reasons.insert(trigger.as_str());
    }

    fn wake_for(&mut self, trigger: Trigger) {
        self.note(trigger);
        if trigger.pre_empts_backoff() {
            self.schedule.pre_empt();
        } else {
            self.schedule.soon();
        }
    }

    /// SIGHUP: fetch the git remote at once, or re-read the file.
    fn wake_for_reload(&mut self) {
        if let Some(now) = &self.fetch_now {
            now.notify_one();
            return;
        }
        self.reload = true;
        self.reasons.insert("SIGHUP");
        self.schedule.pre_empt();
    }

    /// A topology is in force: tell the watchers what is ours now.
    fn loaded(&mut self) {
        if self
            .topology
            .containers
            .values()
            .any(|c| matches!(c.runtime, Runtime::Docker(_)))
        {
            self.docker_events.start();
        }
        if let Some(plugin) = &self.plugin {
            plugin.loaded(&self.topology);
        }
        match crate::desired::desired(&self.topology, &self.config.host) {
            Ok(want) => {
                let interest = Interest::new(&self.topology, &self.config.host, &want);
                self.interest.send_if_modified(|old| {
                    let changed = *old != interest;
                    *old = interest;
                    changed
                });
                self.want = Some(want);
            }
            Err(error) => tracing::warn!(%error, "no desired state for this host"),
        }
        if self.tracker.clear() {
            self.publish_stuck();
        }
    }

    /// Reload the topology file; keep the last good topology when it is invalid,
    /// and everything as it is when the text did not change.
    fn reload_topology(&mut self) {
        self.reload = false;
        let Spec::File(path) = &self.config.source else {
            return;
        };
        match load(&self.config, path) {
            Ok((_, text)) if text == self.text => {}
            Ok((fresh, text)) if fresh.hosts.contains_key(&self.config.host) => {
                self.generation += 1;
                self.metrics.generation.set(self.generation);
                tracing::info!(generation = self.generation, "topology reloaded");
                self.topology = fresh;
                self.text = text;
                self.verified = None;
                self.loaded();
                self.publish();
                self.update_registration();
            }
            Ok(_) => {
                self.metrics.reload_errors.inc();
                tracing::error!(host = %self.config.host, "edited topology no longer has this host; keeping the last good one");
            }
            Err(error) => {
                self.metrics.reload_errors.inc();
                tracing::error!(%error, "edited topology is invalid; keeping the last good one");
            }
        }
    }
}
