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
//! start observes the host afresh); SIGHUP reloads the topology.
//!
//! The topology comes from a file (every hop of its symlinks watched; every
//! resync re-reads it and applies a changed text) or from a git remote, polled
//! with jitter and fetched at once on SIGHUP (`rollout`): commits are judged
//! before they change anything, applied on probation and rolled back when the
//! host loses its peers (`follow`). `report` is what `status` and `fleet
//! status` learn from a running daemon.

pub mod backoff;
pub mod containers;
pub mod follow;
pub mod metrics;
mod notices;
pub mod owned;
pub mod plugin;
mod probe;
pub mod reconcile;
pub mod report;
mod rollout;
pub mod stuck;
pub mod triggers;
mod wake;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::engine::{self, Outcome};
use crate::ovsdb::ConnectOptions;
use crate::runtime::{DockerSocket, Runtimes};
use crate::source::Spec;
use crate::state::HostState;
use crate::topology::{self, LoadError, Runtime, Topology};
use backoff::Backoff;
use containers::Watchers;
use follow::Follower;
use metrics::{Metrics, ResultLabel};
use owned::Interest;
use reconcile::{Connection, ReconcileError};
use triggers::{Trigger, WatchError};
use wake::{Received, Schedule, Signals};

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
    /// until a reconcile ran; `Err` says what remained. (The seam for the
    /// engine's verify step: today the plan of the reconcile after apply.)
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
}

/// Run until SIGTERM or SIGINT.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    // Every reconcile reads container namespaces on short-lived threads; glibc would
    // give each its own malloc arena and keep them. Two arenas keep the RSS small.
    // SAFETY: mallopt only tunes the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // Before the first observe: Docker events from here on are replayed to us.
    let started = unix_now();
    let (follower, topology, text) = match &config.source {
        Spec::Git(remote) => {
            let (follower, topology, text) = rollout::start(remote, &config).await?;
            (Some(follower), topology, text)
        }
        Spec::File(path) => {
            let (topology, text) = load(&config, path)?;
            (None, topology, text)
        }
    };
    if !topology.hosts.contains_key(&config.host) {
        return Err(DaemonError::UnknownHost(config.host.clone()));
    }
    let metrics = Metrics::new();
    metrics.generation.set(1);
    let published = rollout::Published::default();
    if let Some(address) = config.metrics {
        let listener = metrics.clone();
        let status = published.clone();
        tokio::spawn(async move {
            if let Err(error) = metrics::serve(address, listener, status).await {
                tracing::error!(%address, %error, "metrics endpoint failed");
            }
        });
    }
    let remote = remote(&config, &topology);
    containers::raise_open_files_limit();
    let runtimes = Runtimes::new(config.docker.as_deref());
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Filled in by `loaded` below, before any watcher task first runs.
    let (interest, interested) = watch::channel(Interest::default());
    triggers::watch_ovsdb(remote.clone(), tx.clone());
    owned::watch_netlink(interested.clone(), tx.clone())?;
    triggers::watch_netns(interested.clone(), tx.clone())?;
    let (fetch_tx, mut fetches) = mpsc::unbounded_channel();
    let fetch_now = Arc::new(tokio::sync::Notify::new());
    match &config.source {
        Spec::File(path) => triggers::watch_topology(path, tx.clone())?,
        Spec::Git(remote) => {
            rollout::spawn_poller(remote.clone(), config.poll, fetch_now.clone(), fetch_tx)
        }
    }
    // Started by `loaded` once the topology has a Docker container (also after an edit).
    let docker_events = triggers::DockerEvents::new(
        DockerSocket::resolve(config.docker.as_deref()),
        started,
        interested,
        tx.clone(),
    );
    let plugin = plugin::Running::start(&config, &topology, remote.clone())?;
    let watchers = Watchers::new(tx);
    let mut signals = Signals::new()?;
    tracing::info!(host = %config.host, topology = %config.source.describe(), %remote, "daemon started");

    let is_git = matches!(config.source, Spec::Git(_));
    let mut daemon = Daemon {
        next_resync: Instant::now() + config.resync,
        config,
        topology,
        text,
        follower,
        verified: None,
        warnings: Vec::new(),
        report: None,
        published,
        fetch_now: is_git.then(|| fetch_now.clone()),
        want: None,
        generation: 1,
        metrics,
        runtimes,
        connection: None,
        root: None,
        reasons: BTreeSet::from(["startup"]),
        reload: false,
        waiting_retries: 0,
        schedule: Schedule::default(),
        failures: Backoff::new(MAX_BACKOFF),
        stuck_backoff: Backoff::new(MAX_BACKOFF),
        tracker: stuck::Tracker::default(),
        notices: notices::Notices::default(),
        interest,
        watchers,
        docker_events,
        plugin,
    };
    daemon.loaded();
    daemon.publish_info();
    daemon.publish();
    daemon.schedule.at(Duration::ZERO);

    let mut prune = tokio::time::interval(containers::PRUNE_EVERY);
    let mut probation = tokio::time::interval(rollout::PROBATION_TICK);
    // A check takes a while (pings); ticks missed meanwhile are not made up for.
    probation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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

    /// One reconcile; `Some(signal)` when a stop signal came during it.
    async fn step(
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
        // A reconcile of many containers allocates a lot briefly; give it back while idle.
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe {
            libc::malloc_trim(0);
        }
        match result {
            Ok(outcome) => self.succeeded(&outcome, rx),
            Err(error) => self.failed(error),
        }
        self.publish();
        None
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
        self.verified = Some(if outcome.plan.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} change(s) were still to make",
                outcome.plan.changes.len()
            ))
        });
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
        self.reasons.insert("retry after failure");
        self.schedule.at(delay);
        match error {
            // Objects failed on a healthy server: the session stays, and what was
            // applied (containers plumbed, some waiting) counts.
            ReconcileError::Partial { outcome, .. } => {
                self.follow_containers(&outcome);
                self.retry_waiting(&outcome);
            }
            _ => self.connection = None,
        }
    }

    /// Tell `status` (and the gauge) what is stuck.
    fn publish_stuck(&self) {
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
    async fn stop(&mut self, signal: &'static str) {
        tracing::info!("{signal}: exiting, network left as it is");
        wake::exit_by_deadline(self.record());
        report::remove(&self.config.lab, &self.config.host);
        self.tracker.clear();
        self.publish_stuck();
        if let Some(mut connection) = self.connection.take() {
            let _ = tokio::time::timeout(STOP_GRACE / 4, connection.session.unlock()).await;
        }
    }
}
