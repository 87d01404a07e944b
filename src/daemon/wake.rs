//! Why and when the daemon wakes: the triggers (and the watchers' error), the
//! schedule of the next reconcile, and the signals (with the deadline by which
//! a stop signal ends the process).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};

/// A watcher that could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("netlink notifications: {0}")]
    Netlink(#[source] std::io::Error),
    #[error("watch {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signal handler: {0}")]
    Signal(#[source] std::io::Error),
}

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
    /// A plumbed container's namespace was replaced or is gone.
    ContainerNetns,
    /// Something changed on an interface inside a plumbed container.
    ContainerDrift,
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
            Trigger::ContainerNetns => "container namespace change",
            Trigger::ContainerDrift => "change inside a container",
        }
    }

    /// Triggers after which remembered container processes may name the wrong
    /// container (see [`crate::runtime::DockerRuntime::forget`]).
    pub fn forgets_containers(self) -> bool {
        matches!(self, Trigger::DockerRenamed | Trigger::DockerReconnected)
    }

    /// Triggers the daemon's own writes also cause.
    pub fn may_be_own_write(self) -> bool {
        matches!(
            self,
            Trigger::Ovsdb | Trigger::Netlink | Trigger::ContainerDrift
        )
    }

    /// Events that cut a backoff short: something new happened (a container
    /// started, a server came back, the topology changed), not merely drift.
    pub fn pre_empts_backoff(self) -> bool {
        !self.may_be_own_write()
    }
}

/// Triggers arriving within this window share one reconcile.
pub const DEBOUNCE: Duration = Duration::from_millis(30);

/// When the next reconcile runs. Drift notifications never bring a planned
/// reconcile forward (a backoff holds); events that
/// [`pre_empt`](Trigger::pre_empts_backoff) do.
#[derive(Debug, Default)]
pub struct Schedule {
    pub due: Option<Instant>,
}

impl Schedule {
    /// Soon, unless something is already due (a verify, a retry, a backoff).
    pub fn soon(&mut self) {
        if self.due.is_none() {
            self.at(DEBOUNCE);
        }
    }

    /// Soon, also when a backoff is pending.
    pub fn pre_empt(&mut self) {
        let soon = Instant::now() + DEBOUNCE;
        self.due = Some(self.due.map_or(soon, |due| due.min(soon)));
    }

    pub fn at(&mut self, delay: Duration) {
        self.due = Some(Instant::now() + delay);
    }
}

/// The signals the daemon acts on.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Stop(&'static str),
    Reload,
}

impl Signals {
    pub fn new() -> Result<Self, WatchError> {
        let on = |kind| signal(kind).map_err(WatchError::Signal);
        Ok(Self {
            term: on(SignalKind::terminate())?,
            int: on(SignalKind::interrupt())?,
            hup: on(SignalKind::hangup())?,
        })
    }

    pub async fn recv(&mut self) -> Received {
        tokio::select! {
            _ = self.term.recv() => Received::Stop("SIGTERM"),
            _ = self.int.recv() => Received::Stop("SIGINT"),
            _ = self.hup.recv() => Received::Reload,
        }
    }
}

/// After SIGTERM the process ends by this time, whatever it is waiting for.
const STOP_DEADLINE: Duration = Duration::from_millis(1800);

/// From now on, the process ends within [`STOP_DEADLINE`] whatever it waits for
/// (a thread of its own: not even a blocked runtime holds it up), removing the
/// stuck-change record `status` would otherwise read.
pub fn exit_by_deadline(record: Option<PathBuf>) {
    static ARMED: std::sync::Once = std::sync::Once::new();
    ARMED.call_once(|| {
        std::thread::spawn(move || {
            std::thread::sleep(STOP_DEADLINE);
            if let Some(record) = record {
                let _ = std::fs::remove_file(record);
            }
            std::process::exit(0);
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backoff_holds_against_drift_and_yields_to_events() {
        let mut schedule = Schedule::default();
        schedule.at(Duration::from_secs(30));
        let backoff_due = schedule.due.unwrap();
        schedule.soon();
        assert_eq!(schedule.due, Some(backoff_due));
        schedule.pre_empt();
        assert!(schedule.due.unwrap() <= Instant::now() + DEBOUNCE);
    }
}
