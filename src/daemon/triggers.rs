//! What wakes the daemon. Every watcher only says "something changed"; the
//! reconcile that follows does not care why (level-triggered).
//!
//! - OVSDB: `monitor_cond` on exactly the tables and columns ovsmesh manages —
//!   not the statistics and status columns vswitchd rewrites every few seconds.
//!   Reconnects when ovsdb-server restarts.
//! - rtnetlink: link, IPv4 address and IPv4 route notifications.
//! - Named namespaces: inotify on /run/netns (a new file appears before its bind
//!   mount, so the daemon retries while containers are waiting).
//! - The topology file: inotify on its directory (writes and rename-over, as
//!   editors and `git checkout` do); SIGHUP is handled by the main loop.
//! - Docker: container start, restart, die, destroy and rename events; after
//!   dockerd restarts, reconnects with `since=` and asks for a full resync.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio::sync::mpsc::UnboundedSender;

use crate::ovsdb::{self, ConnectOptions, Notification};

/// Why the daemon woke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trigger {
    Ovsdb,
    OvsdbReconnected,
    Netlink,
    Netns,
    Topology,
    Docker,
    /// A container was renamed: its process no longer says which name it has.
    DockerRenamed,
    DockerReconnected,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Ovsdb => "ovsdb change",
            Trigger::OvsdbReconnected => "ovsdb reconnected",
            Trigger::Netlink => "netlink change",
            Trigger::Netns => "netns change",
            Trigger::Topology => "topology file change",
            Trigger::Docker => "docker event",
            Trigger::DockerRenamed => "docker rename",
            Trigger::DockerReconnected => "docker reconnected",
        }
    }

    /// Triggers after which remembered container processes may name the wrong
    /// container (see [`crate::runtime::DockerRuntime::forget`]).
    pub fn forgets_containers(self) -> bool {
        matches!(self, Trigger::DockerRenamed | Trigger::DockerReconnected)
    }

    /// Triggers the daemon's own writes also cause.
    pub fn may_be_own_write(self) -> bool {
        matches!(self, Trigger::Ovsdb | Trigger::Netlink)
    }
}

/// Columns whose changes matter: what ovsmesh writes, nothing vswitchd updates on its own.
fn monitored() -> serde_json::Value {
    json!({
        "Open_vSwitch": [{"columns": ["bridges"]}],
        "Bridge": [{"columns": ["name", "ports", "datapath_type", "external_ids"]}],
        "Port": [{"columns": ["name", "interfaces", "tag", "trunks", "protected", "external_ids"]}],
        "Interface": [{"columns": ["name", "type", "options", "bfd", "external_ids"]}]
    })
}

/// Watch OVSDB; reconnect with backoff when the server goes away.
pub fn watch_ovsdb(remote: String, tx: UnboundedSender<Trigger>) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        let mut first = true;
        loop {
            match ovsdb::connect(&remote, ConnectOptions::default()).await {
                Ok((client, mut updates)) => {
                    if client
                        .monitor_cond(ovsdb::DB, json!("ovsmesh-daemon"), monitored())
                        .await
                        .is_ok()
                    {
                        delay = Duration::from_millis(200);
                        if !first {
                            tracing::info!(%remote, "reconnected to ovsdb-server");
                            let _ = tx.send(Trigger::OvsdbReconnected);
                        }
                        first = false;
                        while let Some(notification) = updates.recv().await {
                            if matches!(notification, Notification::Update { .. })
                                && tx.send(Trigger::Ovsdb).is_err()
                            {
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

/// Watch rtnetlink notifications in the daemon's namespace.
pub fn watch_netlink(tx: UnboundedSender<Trigger>) -> std::io::Result<()> {
    use rtnetlink::MulticastGroup;
    let (connection, _handle, mut messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv4Route,
    ])?;
    tokio::spawn(connection);
    tokio::spawn(async move {
        while messages.next().await.is_some() {
            if tx.send(Trigger::Netlink).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Watch a directory for entries appearing, disappearing or being renamed over.
fn watch_dir(
    dir: &Path,
    only: Option<String>,
    trigger: Trigger,
    tx: UnboundedSender<Trigger>,
) -> std::io::Result<()> {
    use inotify::{Inotify, WatchMask};
    std::fs::create_dir_all(dir)?;
    let inotify = Inotify::init()?;
    inotify.watches().add(
        dir,
        WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_TO
            | WatchMask::CLOSE_WRITE
            | WatchMask::ATTRIB,
    )?;
    let mut events = inotify.into_event_stream([0u8; 4096])?;
    tokio::spawn(async move {
        while let Some(Ok(event)) = events.next().await {
            let name = event.name.map(|n| n.to_string_lossy().to_string());
            if only
                .as_ref()
                .is_none_or(|wanted| name.as_ref() == Some(wanted))
                && tx.send(trigger).is_err()
            {
                return;
            }
        }
    });
    Ok(())
}

/// Named network namespaces come and go in /run/netns.
pub fn watch_netns(tx: UnboundedSender<Trigger>) -> std::io::Result<()> {
    watch_dir(Path::new("/run/netns"), None, Trigger::Netns, tx)
}

/// The topology file: its directory, so rename-over is seen too.
pub fn watch_topology(path: &Path, tx: UnboundedSender<Trigger>) -> std::io::Result<()> {
    let absolute: PathBuf = std::path::absolute(path)?;
    let dir = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
    let name = absolute
        .file_name()
        .map(|n| n.to_string_lossy().to_string());
    watch_dir(&dir, name, Trigger::Topology, tx)
}

/// Docker container events; reconnects with `since=` after dockerd restarts.
pub fn watch_docker(socket: Option<String>, tx: UnboundedSender<Trigger>) {
    tokio::spawn(async move {
        let socket = socket
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let path = socket
            .strip_prefix("unix://")
            .unwrap_or(&socket)
            .to_string();
        let mut since: Option<i64> = None;
        let mut delay = Duration::from_millis(200);
        let mut connected_before = false;
        loop {
            let docker =
                bollard::Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION).ok();
            let reachable = match &docker {
                Some(docker) => docker.ping().await.is_ok(),
                None => false,
            };
            if let (Some(docker), true) = (docker, reachable) {
                if connected_before {
                    tracing::info!(%socket, "reconnected to dockerd");
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
                    since = event.time.or(since);
                    let trigger = if event.action.as_deref() == Some("rename") {
                        Trigger::DockerRenamed
                    } else {
                        Trigger::Docker
                    };
                    if tx.send(trigger).is_err() {
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

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
