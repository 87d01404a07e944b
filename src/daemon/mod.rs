//! `ovsmesh daemon`: keep one host equal to the topology.
//!
//! Level-triggered, like a kube-rs controller: every trigger (see `triggers`)
//! and a periodic resync run the same observe → plan → apply path as
//! `ovsmesh apply` — a restarted container is not a special code path, it is
//! just a host that differs from its topology. Triggers are debounced, one
//! reconcile runs at a time under the mesh's OVSDB lock, failures back off
//! exponentially with jitter. An edited topology that fails validation is
//! logged with its located errors and counted; the last good one stays in
//! force. SIGTERM/SIGINT finish the current step and exit 0 without touching
//! the network; SIGHUP reloads the topology.

pub mod metrics;
pub mod triggers;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::engine::{self, HostTarget, Outcome};
use crate::marks::Role;
use crate::ovs::{self, Session};
use crate::plan::{Kind, Op};
use crate::runtime::Runtimes;
use crate::topology::{self, LoadError, Runtime, Topology};
use metrics::{KindLabel, Metrics, ResultLabel};
use triggers::Trigger;

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub topology: PathBuf,
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
}

/// A rewrite of the topology, applied to every (re)load of the file.
#[derive(Clone)]
pub struct Rewrite(pub Arc<dyn Fn(&Topology) -> Topology + Send + Sync>);

impl std::fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rewrite(..)")
    }
}

/// The topology the daemon enforces: the file's, or its rewrite.
fn load(config: &DaemonConfig) -> Result<Topology, LoadError> {
    let topology = topology::load(&config.topology)?;
    Ok(match &config.rewrite {
        Some(Rewrite(rewrite)) => rewrite(&topology),
        None => topology,
    })
}

const DEBOUNCE: Duration = Duration::from_millis(30);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Topology(#[from] LoadError),
    #[error("host {0:?} is not in the topology")]
    UnknownHost(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        what: what.to_string(),
        source,
    }
}

/// Exponential backoff with jitter.
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        self.failures += 1;
        let base = Duration::from_millis(200) * 2u32.saturating_pow(self.failures.min(10));
        let capped = base.min(MAX_BACKOFF);
        // Jitter: 50–100 % of the delay, from the clock's low bits.
        let noise = Instant::now().elapsed().subsec_nanos() ^ std::process::id();
        let factor = 0.5 + f64::from(noise % 1000) / 2000.0;
        capped.mul_f64(factor)
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Run until SIGTERM or SIGINT.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    // Every reconcile reads container namespaces on short-lived threads; glibc would
    // give each its own malloc arena and keep them. Two arenas keep the RSS small.
    // SAFETY: mallopt only tunes the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let mut topology = load(&config)?;
    if !topology.hosts.contains_key(&config.host) {
        return Err(DaemonError::UnknownHost(config.host.clone()));
    }
    let metrics = Metrics::new();
    metrics.generation.set(1);
    if let Some(address) = config.metrics {
        let listener = metrics.clone();
        tokio::spawn(async move {
            if let Err(error) = metrics::serve(address, listener).await {
                tracing::error!(%address, %error, "metrics endpoint failed");
            }
        });
    }
    let remote = remote(&config, &topology);
    let (tx, mut rx) = mpsc::unbounded_channel();
    triggers::watch_ovsdb(remote.clone(), tx.clone());
    triggers::watch_netlink(tx.clone()).map_err(io("netlink notifications"))?;
    triggers::watch_netns(tx.clone()).map_err(io("watch /run/netns"))?;
    triggers::watch_topology(&config.topology, tx.clone())
        .map_err(io("watch the topology file"))?;
    if topology
        .containers
        .values()
        .any(|c| matches!(c.runtime, Runtime::Docker(_)))
    {
        triggers::watch_docker(config.docker.clone(), tx.clone());
    }
    let mut sigterm = signal(SignalKind::terminate()).map_err(io("SIGTERM"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io("SIGINT"))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(io("SIGHUP"))?;

    let runtimes = Runtimes::new(config.docker.as_deref());
    let mut session: Option<Session> = None;
    let mut backoff = Backoff { failures: 0 };
    let mut reasons: BTreeSet<&'static str> = BTreeSet::from(["startup"]);
    let mut due: Option<Instant> = Some(Instant::now());
    let mut next_resync = Instant::now() + config.resync;
    let mut reload = false;
    let mut waiting_retries = 0u32;
    let mut generation = 1i64;
    tracing::info!(host = %config.host, topology = %config.topology.display(), %remote, "daemon started");

    loop {
        let wake = due.map_or(next_resync, |d| d.min(next_resync));
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: exiting, network left as it is"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT: exiting, network left as it is"); break; }
            _ = sighup.recv() => {
                reload = true;
                reasons.insert("SIGHUP");
                due.get_or_insert(Instant::now() + DEBOUNCE);
            }
            Some(trigger) = rx.recv() => {
                note(trigger, &runtimes, &mut reasons, &mut reload, &mut waiting_retries);
                due.get_or_insert(Instant::now() + DEBOUNCE);
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if now >= next_resync {
                    reasons.insert("periodic resync");
                    next_resync = now + config.resync;
                }
                if reload {
                    reload = false;
                    match load(&config) {
                        Ok(fresh) if fresh.hosts.contains_key(&config.host) => {
                            generation += 1;
                            metrics.generation.set(generation);
                            tracing::info!(generation, "topology reloaded");
                            topology = fresh;
                        }
                        Ok(_) => {
                            metrics.reload_errors.inc();
                            tracing::error!(host = %config.host, "edited topology no longer has this host; keeping the last good one");
                        }
                        Err(error) => {
                            metrics.reload_errors.inc();
                            tracing::error!(%error, "edited topology is invalid; keeping the last good one");
                        }
                    }
                }
                let why: Vec<&str> = reasons.iter().copied().collect();
                reasons.clear();
                let started = Instant::now();
                let result = reconcile(&config, &topology, &runtimes, &mut session, &metrics, &why).await;
                metrics.reconcile_seconds.observe(started.elapsed().as_secs_f64());
                // A reconcile of many containers allocates a lot briefly; give it back while idle.
                // SAFETY: malloc_trim only releases free heap memory.
                unsafe {
                    libc::malloc_trim(0);
                }
                due = None;
                match result {
                    Ok(outcome) => {
                        backoff.reset();
                        metrics.reconciles.get_or_create(&ResultLabel { result: "ok".into() }).inc();
                        metrics.last_success.set(unix_now());
                        metrics.waiting.set(outcome.plan.waiting.len() as i64);
                        let changed = !outcome.plan.is_empty();
                        // Our own writes echo back as OVSDB and netlink notifications:
                        // drop those that arrived meanwhile, and verify once instead.
                        if changed {
                            while let Ok(trigger) = rx.try_recv() {
                                if !trigger.may_be_own_write() {
                                    note(trigger, &runtimes, &mut reasons, &mut reload, &mut waiting_retries);
                                }
                            }
                            reasons.insert("verify after own changes");
                            due = Some(Instant::now() + Duration::from_millis(150));
                        }
                        // A new namespace file appears before its bind mount: retry a few times.
                        if !outcome.plan.waiting.is_empty() && waiting_retries < 20 && due.is_none() {
                            waiting_retries += 1;
                            reasons.insert("waiting containers");
                            due = Some(Instant::now() + Duration::from_millis(100 * u64::from(waiting_retries.min(10))));
                        }
                    }
                    Err(error) => {
                        metrics.reconciles.get_or_create(&ResultLabel { result: "error".into() }).inc();
                        let delay = backoff.next();
                        tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "reconcile failed");
                        session = None;
                        reasons.insert("retry after failure");
                        due = Some(Instant::now() + delay);
                    }
                }
            }
        }
    }
    if let Some(mut session) = session {
        session.unlock().await;
    }
    Ok(())
}

/// Record what a trigger asks for: a reload, fresh retries for waiting containers,
/// forgetting remembered container processes.
fn note(
    trigger: Trigger,
    runtimes: &Runtimes,
    reasons: &mut BTreeSet<&'static str>,
    reload: &mut bool,
    waiting_retries: &mut u32,
) {
    if trigger == Trigger::Topology {
        *reload = true;
    }
    if trigger.forgets_containers() {
        runtimes.docker.forget();
    }
    if matches!(
        trigger,
        Trigger::Netns | Trigger::Docker | Trigger::DockerRenamed
    ) {
        *waiting_retries = 0;
    }
    reasons.insert(trigger.as_str());
}

fn remote(config: &DaemonConfig, topology: &Topology) -> String {
    engine::ovsdb_remote_from_env(config.ovsdb.as_deref(), topology, &config.host)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One reconcile: observe → plan → apply, logging every change with its reason.
async fn reconcile(
    config: &DaemonConfig,
    topology: &Topology,
    runtimes: &Runtimes,
    session: &mut Option<Session>,
    metrics: &Metrics,
    why: &[&str],
) -> Result<Outcome, String> {
    if session.is_none() {
        let remote = remote(config, topology);
        *session = Some(
            Session::open(&remote, &topology.mesh.name)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let session = session.as_mut().expect("session just opened");
    let target = HostTarget {
        topology,
        host: &config.host,
        runtimes,
        wait: Some(config.wait),
    };
    let outcome = engine::apply_host(session, &target)
        .await
        .map_err(|e| e.to_string())?;
    for change in &outcome.plan.changes {
        tracing::info!(
            op = ?change.op,
            kind = change.kind.as_str(),
            id = %change.id,
            reason = %change.reason,
            trigger = %why.join(", "),
            "changed"
        );
        let drift = !why.contains(&"startup")
            && !why.contains(&"topology file change")
            && !why.contains(&"SIGHUP");
        if drift {
            metrics
                .drift_corrections
                .get_or_create(&KindLabel {
                    kind: change.kind.as_str().to_string(),
                })
                .inc();
        }
        if change.kind == Kind::Port && change.op == Op::Replace && change.id.starts_with("access/")
        {
            metrics.replumbs.inc();
        }
    }
    for container in &outcome.plan.waiting {
        tracing::info!(container = %container, "waiting: container not running");
    }
    if !outcome.plan.is_empty() || why.contains(&"periodic resync") {
        let unhealthy = tunnel_health(session, topology, &config.host).await;
        metrics.unhealthy_tunnels.set(unhealthy as i64);
    }
    if outcome.failed() {
        let failures: Vec<String> = outcome
            .ovs
            .failures
            .iter()
            .map(|f| format!("{}: {}", f.id, f.error))
            .chain(
                outcome
                    .netlink
                    .failures
                    .iter()
                    .map(|f| format!("{}: {}", f.id, f.error)),
            )
            .collect();
        return Err(format!("partly applied; failed: {}", failures.join("; ")));
    }
    Ok(outcome)
}

/// Tunnel ports with an interface error or BFD down.
async fn tunnel_health(session: &Session, topology: &Topology, host: &str) -> usize {
    let bridges = engine::managed_bridges(topology);
    let Ok(observed) = ovs::observe(&session.client, host, &topology.mesh.name, &bridges).await
    else {
        return 0;
    };
    observed
        .state
        .ports
        .iter()
        .filter(|(_, p)| p.role == Role::Tunnel)
        .filter(|(key, _)| {
            observed
                .rows
                .status
                .get(*key)
                .is_some_and(|s| s.unhealthy())
        })
        .count()
}
