//! What wakes the daemon. Every watcher only says "something changed"; the
//! reconcile that follows does not care why (level-triggered).
//!
//! - OVSDB: `monitor_cond` on exactly the tables and columns ovsmesh manages
//!   (`ovs::columns`) — not the status columns vswitchd rewrites every few seconds.
//!   Reconnects when ovsdb-server restarts.
//! - rtnetlink: link, IPv4 address and IPv4 route notifications about the
//!   mesh's own objects (see `owned`).
//! - Named namespaces: inotify on /run/netns (a new file appears before its bind
//!   mount, so the daemon retries while containers are waiting).
//! - The topology file: inotify on the directory of every hop of its symlinks
//!   and of the target (writes, rename-over, flipped links); SIGHUP is handled
//!   by the main loop.
//! - Docker: container start, restart, die, destroy and rename events, subscribed
//!   with `since=` the daemon's start, so a restart between the first observe and
//!   the subscription is not lost; after dockerd restarts, reconnects with `since=`
//!   the last event and asks for a full resync. A rename from or to one of our
//!   names makes the daemon forget remembered container processes.
//! - Inside plumbed containers: see `containers`.
//!
//! Container events, reconnections, topology edits and SIGHUP cut a backoff
//! short ([`Trigger::pre_empts_backoff`]); OVSDB and netlink changes, which the
//! daemon's own writes and a tool fighting it also cause, do not.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio::sync::{mpsc::UnboundedSender, watch};

use super::echoes::{Echoes, Mirror};
use super::owned::Interest;
use super::unix_now;
use crate::ovs::columns::monitor_requests;
use crate::ovsdb::{self, ConnectOptions, Notification};
use crate::runtime::DockerSocket;
use crate::source::file;

pub use super::wake::{Trigger, WatchError};

/// Watch OVSDB; reconnect with backoff when the server goes away. The echoes
/// of the Docker plugin's own writes do not wake the daemon (`echoes`).
pub fn watch_ovsdb(remote: String, echoes: Echoes, tx: UnboundedSender<Trigger>) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        let mut first = true;
        loop {
            match ovsdb::connect(&remote, ConnectOptions::default()).await {
                Ok((client, mut updates)) => {
                    let mut mirror = Mirror::default();
                    if let Ok(initial) = client
                        .monitor_cond(ovsdb::DB, json!("ovsmesh-daemon"), monitor_requests())
                        .await
                    {
                        mirror.initial(&initial);
                        delay = Duration::from_millis(200);
                        if !first {
                            tracing::info!(%remote, "reconnected to ovsdb-server");
                            let _ = tx.send(Trigger::OvsdbReconnected);
                        }
                        first = false;
                        while let Some(notification) = updates.recv().await {
                            let Notification::Update { updates, .. } = notification else {
                                continue;
                            };
                            if mirror.echo(&updates, &echoes) {
                                tracing::debug!("ovsdb change: the Docker plugin's own write");
                                continue;
                            }
                            if tx.send(Trigger::Ovsdb).is_err() {
                                return;
                            }
                        }
                        tracing::warn!(%remote, "lost ovsdb-server; reconnecting");
                    }
                }
                Err(error) => tracing::debug!(%error, "ovsdb monitor connect"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
}

/// Watch a directory for entries appearing, disappearing or being renamed over,
/// of the names `wanted` accepts.
fn watch_dir(
    dir: &Path,
    wanted: impl Fn(&str) -> bool + Send + 'static,
    trigger: Trigger,
    tx: UnboundedSender<Trigger>,
) -> Result<(), WatchError> {
    use inotify::{Inotify, WatchMask};
    let failed = |source| WatchError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let inotify = Inotify::init().map_err(failed)?;
    inotify
        .watches()
        .add(
            dir,
            WatchMask::CREATE
                | WatchMask::DELETE
                | WatchMask::MOVED_TO
                | WatchMask::CLOSE_WRITE
                | WatchMask::ATTRIB,
        )
        .map_err(failed)?;
    let mut events = inotify.into_event_stream([0u8; 4096]).map_err(failed)?;
    tokio::spawn(async move {
        while let Some(Ok(event)) = events.next().await {
            let name = event.name.map(|n| n.to_string_lossy().to_string());
            if name.as_deref().is_some_and(&wanted) && tx.send(trigger).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Named network namespaces of this host's containers come and go in /run/netns.
pub fn watch_netns(
    interest: watch::Receiver<Interest>,
    tx: UnboundedSender<Trigger>,
) -> Result<(), WatchError> {
    let ours = move |name: &str| interest.borrow().netns(name);
    watch_dir(Path::new("/run/netns"), ours, Trigger::Netns, tx)
}

/// The topology file and every symlink on the way to it (`source::file::hops`):
/// the directory of each is watched for that entry, so a write, a rename-over
/// (editors, `git checkout`) and a flipped link (git-sync, a `..data` swap) are
/// all seen. After each event the hops are resolved again and new directories
/// watched (a flip moves the target into a new one).
pub fn watch_topology(path: &Path, tx: UnboundedSender<Trigger>) -> Result<(), WatchError> {
    use inotify::{Inotify, WatchMask};
    let failed = |source| WatchError::Dir {
        path: path.to_path_buf(),
        source,
    };
    let mask = WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::CLOSE_WRITE
        | WatchMask::ATTRIB;
    let inotify = Inotify::init().map_err(failed)?;
    let mut watches = inotify.watches();
    let mut hops = file::hops(path);
    let mut dirs = HashMap::new();
    for hop in &hops {
        if !dirs.values().any(|d| d == &hop.dir) {
            let wd = watches.add(&hop.dir, mask).map_err(failed)?;
            dirs.insert(wd, hop.dir.clone());
        }
    }
    let mut events = inotify.into_event_stream([0u8; 4096]).map_err(failed)?;
    let path = path.to_path_buf();
    tokio::spawn(async move {
        while let Some(Ok(event)) = events.next().await {
            // A directory gone (an old checkout removed): its watch is gone too.
            if event.mask.contains(inotify::EventMask::IGNORED) {
                dirs.remove(&event.wd);
                continue;
            }
            let (Some(dir), Some(name)) = (dirs.get(&event.wd), event.name) else {
                continue;
            };
            if !hops.iter().any(|h| &h.dir == dir && h.name == name) {
                continue;
            }
            hops = file::hops(&path);
            for hop in &hops {
                if !dirs.values().any(|d| d == &hop.dir) {
                    if let Ok(wd) = watches.add(&hop.dir, mask) {
                        dirs.insert(wd, hop.dir.clone());
                    }
                }
            }
            if tx.send(Trigger::Topology).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// The Docker event watcher, started once the topology has a Docker container
/// (at start-up or after an edit that adds the first one), then kept.
pub struct DockerEvents {
    pending: Option<(
        DockerSocket,
        i64,
        watch::Receiver<Interest>,
        UnboundedSender<Trigger>,
    )>,
}

impl DockerEvents {
    pub fn new(
        socket: DockerSocket,
        since: i64,
        interest: watch::Receiver<Interest>,
        tx: UnboundedSender<Trigger>,
    ) -> Self {
        Self {
            pending: Some((socket, since, interest, tx)),
        }
    }

    /// Start watching, if not yet; events since the daemon's start are replayed.
    pub fn start(&mut self) {
        if let Some((socket, since, interest, tx)) = self.pending.take() {
            watch_docker(socket, since, interest, tx);
        }
    }

    pub fn started(&self) -> bool {
        self.pending.is_none()
    }
}

/// Docker container events since `since` (unix seconds: the daemon's start);
/// reconnects with `since=` the last event after dockerd restarts.
pub fn watch_docker(
    socket: DockerSocket,
    since: i64,
    interest: watch::Receiver<Interest>,
    tx: UnboundedSender<Trigger>,
) {
    tokio::spawn(async move {
        let mut since = Some(since);
        let mut delay = Duration::from_millis(200);
        let mut connected_before = false;
        loop {
            let docker = socket.client(120).ok();
            let reachable = match &docker {
                Some(docker) => docker.ping().await.is_ok(),
                None => false,
            };
            if let (Some(docker), true) = (docker, reachable) {
                if connected_before {
                    tracing::info!(socket = %socket.uri, "reconnected to dockerd");
                    let _ = tx.send(Trigger::DockerReconnected);
                }
                connected_before = true;
                let filters = HashMap::from([
                    ("type".to_string(), vec!["container".to_string()]),
                    (
                        "event".to_string(),
                        ["start", "restart", "die", "destroy", "rename"]
                            .iter()
                            .map(|e| e.to_string())
                            .collect(),
                    ),
                ]);
                let options = bollard::query_parameters::EventsOptions {
                    since: since.map(|s| s.to_string()),
                    until: None,
                    filters: Some(filters),
                };
                let mut stream = docker.events(Some(options));
                delay = Duration::from_millis(200);
                while let Some(event) = stream.next().await {
                    let Ok(event) = event else { break };
                    let name = event
                        .actor
                        .as_ref()
                        .and_then(|a| a.attributes.as_ref())
                        .and_then(|a| a.get("name"));
                    tracing::debug!(container = ?name, action = ?event.action, time = ?event.time, "docker event");
                    since = event.time.or(since);
                    // A rename keeps the process: its old name (Docker reports it
                    // with a leading '/') may be one of ours.
                    let old_name = event
                        .actor
                        .as_ref()
                        .and_then(|a| a.attributes.as_ref())
                        .and_then(|a| a.get("oldName"))
                        .map(|n| n.trim_start_matches('/'));
                    let id = event.actor.as_ref().and_then(|a| a.id.as_deref());
                    let ours = |n: Option<&str>| interest.borrow().docker_event(n, id);
                    let trigger = if event.action.as_deref() == Some("rename") {
                        (ours(name.map(String::as_str)) || ours(old_name))
                            .then_some(Trigger::DockerRenamed)
                    } else {
                        ours(name.map(String::as_str)).then_some(Trigger::Docker)
                    };
                    if trigger.is_some_and(|t| tx.send(t).is_err()) {
                        return;
                    }
                }
                since = Some(since.unwrap_or_else(unix_now));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
}
