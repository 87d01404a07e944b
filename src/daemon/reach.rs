//! Which tunnel peers this host reached lately, for the baseline of a commit's
//! probation (see `follow`).
//!
//! Why not only a probe at the moment a new commit arrives: the fleet moves
//! together. Every host polls the same ref, so by the time this host fetches a
//! commit that cuts it off, its peers may already run that commit and no longer
//! answer it. A baseline probed then is empty, nothing is required of the new
//! commit, and this host keeps it while its peers roll back: a split fleet (seen
//! in the VM suite). So the daemon also probes its peers every [`PROBE_EVERY`]
//! while no commit is on probation, and a peer reached within [`RECENT`] counts
//! as reached before the change. A peer gone for longer is not required: a host
//! long cut off must still be able to take the commit that fixes it.
//!
//! The periodic probe runs as its own task (pings take up to seconds when a
//! peer does not answer): the daemon's loop never waits for it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::probe;

/// How often the peers are probed while no commit is on probation.
pub const PROBE_EVERY: Duration = Duration::from_secs(10);
/// How long a reached peer counts as reached.
pub const RECENT: Duration = Duration::from_secs(120);

/// When each peer last answered.
#[derive(Debug, Default)]
struct Seen {
    last: BTreeMap<String, Instant>,
    /// The answer of the last probe, to log changes only.
    answered: Option<BTreeSet<String>>,
}

/// The peers reached lately, shared with the probe task.
#[derive(Debug, Default)]
pub struct Reached {
    seen: Arc<Mutex<Seen>>,
    probing: Arc<AtomicBool>,
    last_probe: Option<Instant>,
}

impl Reached {
    /// Record the peers that answered a probe made at `at`.
    pub fn note(&self, answered: &BTreeSet<String>, at: Instant) {
        note(&self.seen, answered, at);
    }

    /// The peers the next commit must still reach: those answering now and
    /// those reached within [`RECENT`] before `at`.
    pub fn baseline(&self, now: &BTreeSet<String>, at: Instant) -> BTreeSet<String> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        baseline(now, &seen.last, at, RECENT)
    }

    /// Start a probe of the peers `peers` gives in the background when one is
    /// due and none runs (asked every second: the peers are worked out only then).
    pub fn probe_if_due(&mut self, peers: impl FnOnce() -> BTreeMap<String, IpAddr>) {
        let due = self.last_probe.is_none_or(|t| t.elapsed() >= PROBE_EVERY);
        if !due || self.probing.load(Ordering::Acquire) {
            return;
        }
        let peers = peers();
        if peers.is_empty() || self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.last_probe = Some(Instant::now());
        let (seen, probing) = (self.seen.clone(), self.probing.clone());
        tokio::spawn(async move {
            let at = Instant::now();
            let answered = probe::reachable(&peers).await;
            note(&seen, &answered, at);
            probing.store(false, Ordering::Release);
        });
    }
}

fn note(seen: &Mutex<Seen>, answered: &BTreeSet<String>, at: Instant) {
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    for peer in answered {
        seen.last.insert(peer.clone(), at);
    }
    if seen.answered.as_ref() != Some(answered) {
        tracing::info!(peers = ?answered, "tunnel peers answering");
        seen.answered = Some(answered.clone());
    }
}

/// `now` and the peers last reached no longer than `recent` before `at`.
pub fn baseline(
    now: &BTreeSet<String>,
    last: &BTreeMap<String, Instant>,
    at: Instant,
    recent: Duration,
) -> BTreeSet<String> {
    let lately = last
        .iter()
        .filter(|(_, &t)| at.saturating_duration_since(t) <= recent)
        .map(|(peer, _)| peer.clone());
    now.iter().cloned().chain(lately).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_peer_reached_lately_is_required_though_it_does_not_answer_now() {
        let at = Instant::now() + Duration::from_secs(300);
        let last = BTreeMap::from([
            ("node2".to_string(), at - Duration::from_secs(8)),
            ("node3".to_string(), at - Duration::from_secs(10)),
        ]);
        // The peers took the commit first and no longer answer this host.
        assert_eq!(
            baseline(&set(&[]), &last, at, RECENT),
            set(&["node2", "node3"])
        );
    }

    #[test]
    fn a_peer_gone_for_long_is_not_required_and_one_answering_now_is() {
        let at = Instant::now() + Duration::from_secs(300);
        let last = BTreeMap::from([("node2".to_string(), at - Duration::from_secs(200))]);
        assert_eq!(
            baseline(&set(&["node4"]), &last, at, RECENT),
            set(&["node4"])
        );
    }

    #[test]
    fn noted_answers_make_the_baseline() {
        let reached = Reached::default();
        let at = Instant::now();
        reached.note(&set(&["node2"]), at);
        reached.note(&set(&["node3"]), at);
        assert_eq!(reached.baseline(&set(&[]), at), set(&["node2", "node3"]));
    }
}
