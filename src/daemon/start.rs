//! The daemon's start-up: the topology from its source (a file, or a git
//! remote's first commit, see `rollout`), the metrics listener, the watchers
//! that turn the host's events into triggers, the Docker network plugin (see
//! `plugin`), and the loop's first state: a reconcile at once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::backoff::Backoff;
use super::containers::{self, Watchers};
use super::echoes::Echoes;
use super::metrics::{self, Metrics};
use super::owned::{self, Interest};
use super::rollout::{self, FetchResult};
use super::running;
use super::systemd::Systemd;
use super::triggers::{self, Trigger};
use super::wake::{Schedule, Signals};
use super::{
    load, notices, plugin, remote, stuck, unix_now, Daemon, DaemonConfig, DaemonError, MAX_BACKOFF,
};
use crate::plugin::ToDaemon;
use crate::runtime::{DockerSocket, Runtimes};
use crate::source::Spec;

/// What the loop waits on besides its timers.
pub(super) struct Inputs {
    pub rx: mpsc::UnboundedReceiver<Trigger>,
    pub fetches: mpsc::UnboundedReceiver<FetchResult>,
    pub signals: Signals,
}

impl Daemon {
    /// Load the topology, start the watchers and the plugin; the first reconcile is due now.
    pub(super) async fn start(config: DaemonConfig) -> Result<(Daemon, Inputs), DaemonError> {
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
        // From here on `ovsmesh down` of this mesh and host refuses to run under us.
        let registration = running::Registration::register(
            std::path::Path::new(running::DIR),
            &topology.mesh.name,
            &config.host,
        )
        .map_err(
            |error| tracing::warn!(%error, "no record for `ovsmesh down` to find this daemon by"),
        )
        .ok();
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
        let (tx, rx) = mpsc::unbounded_channel();
        // Filled in by `loaded` below, before any watcher task first runs.
        let (interest, interested) = watch::channel(Interest::default());
        // The plugin's own OVSDB writes, which the monitor's watcher drops.
        let echoes = Echoes::default();
        triggers::watch_ovsdb(remote.clone(), echoes.clone(), tx.clone());
        owned::watch_netlink(interested.clone(), tx.clone())?;
        triggers::watch_netns(interested.clone(), tx.clone())?;
        let (fetch_tx, fetches) = mpsc::unbounded_channel();
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
        let to_daemon = ToDaemon {
            calls: metrics.plugin_calls.clone(),
            echoes,
        };
        let plugin = plugin::Running::start(&config, &topology, remote.clone(), to_daemon)?;
        let watchers = Watchers::new(tx);
        let signals = Signals::new()?;
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
            leftovers: Default::default(),
            systemd: Systemd::new(),
            registration,
        };
        daemon.loaded();
        daemon.publish_info();
        daemon.publish();
        daemon.schedule.at(Duration::ZERO);
        Ok((
            daemon,
            Inputs {
                rx,
                fetches,
                signals,
            },
        ))
    }
}
