//! When the daemon wakes: the schedule of the next reconcile, and the signals
//! (with the deadline by which a stop signal ends the process).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};

use super::triggers::WatchError;

/// Triggers arriving within this window share one reconcile.
pub const DEBOUNCE: Duration = Duration::from_millis(30);

/// When the next reconcile runs. Drift notifications never bring a planned
/// reconcile forward (a backoff holds); events that
/// [`pre_empt`](Trigger::pre_empts_backoff) do.
///
/// [`Trigger::pre_empts_backoff`]: super::triggers::Trigger::pre_empts_backoff
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
