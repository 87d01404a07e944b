//! Following a git remote: which commit is applied, which are bad, and the
//! probation of a new one.
//!
//! Flux's order: fetch, verify, then apply. A fetched commit is judged before
//! anything on the host changes ([`Follower::judge`]): its signature (when
//! allowed signers are given), the file at the path, the topology's validity,
//! this host in it. A commit that fails is **refused**: the last good one stays
//! applied, and the commit is remembered as bad (with the reason) until the ref
//! moves to another commit — it is never retried.
//!
//! A commit that passes is applied on **probation** (kubernetes-nmstate's
//! rollback): within the window the host must still reach every tunnel peer it
//! reached before the change (a ping of each peer across the overlay, see
//! [`peers`]; "before" includes the last minutes, see `reach`) and the
//! engine's verification after apply must pass. If it does not, the daemon rolls
//! back to the last good commit and marks this one bad on this host. The
//! decision is the pure function [`decide`] of what the checks found.
//!
//! What the daemon follows and refused is kept in the state directory
//! (`git/<digest>.json`), so a restarted daemon neither retries a bad commit nor
//! forgets the last good one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::source::git::{Fetched, Remote};
use crate::source::signers::AllowedSigners;
use crate::source::{self, commit_label};
use crate::topology::{self, Topology};

/// The commit in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub commit: String,
    /// When this host applied it (seconds since the epoch).
    pub at: i64,
    /// The allowed signer's principals; `None` when unsigned commits are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
}

/// Refused before applying, or rolled back after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Refused,
    RolledBack,
}

/// A commit this host will not apply (until the ref moves away and back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bad {
    pub commit: String,
    pub verdict: Verdict,
    pub reason: String,
    pub at: i64,
}

/// What is kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub applied: Option<Applied>,
    pub bad: Vec<Bad>,
}

/// A commit judged good, ready to apply.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub commit: String,
    pub text: String,
    pub topology: Topology,
    pub signer: Option<String>,
}

/// What the follower makes of a fetched commit.
#[derive(Debug)]
pub enum Judged {
    /// The commit in force (or on probation) or already known bad: nothing to do.
    Known,
    Refused(Bad),
    Apply(Box<Candidate>),
}

/// A new commit applied, not yet accepted.
#[derive(Debug, Clone)]
pub struct Probation {
    pub applied: Applied,
    pub since: std::time::Instant,
    /// The previous commit, its topology and text, to roll back to.
    pub previous: Option<(Applied, Topology, String)>,
    /// The peers (host names) reachable before the change.
    pub baseline: BTreeSet<String>,
}

/// The git side of the daemon.
pub struct Follower {
    pub remote: Remote,
    pub signers: Option<AllowedSigners>,
    pub record: Record,
    pub probation: Option<Probation>,
    /// The last fetch's failure (a remote down, a ref gone), until one succeeds.
    pub fetch_error: Option<String>,
    /// The tunnel peers reached lately: the baseline of the next probation.
    pub reached: super::reach::Reached,
}

impl Follower {
    pub fn new(remote: Remote, signers: Option<AllowedSigners>) -> Self {
        let record = std::fs::read_to_string(record_path(&remote))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        Self {
            remote,
            signers,
            record,
            probation: None,
            fetch_error: None,
            reached: Default::default(),
        }
    }

    /// The commit in force: on probation, else the last good one.
    pub fn current(&self) -> Option<&Applied> {
        self.probation
            .as_ref()
            .map(|p| &p.applied)
            .or(self.record.applied.as_ref())
    }

    /// Judge a fetched commit for `host` (no I/O).
    pub fn judge(&self, fetched: &Fetched, host: &str) -> Judged {
        let commit = &fetched.commit;
        if self.current().is_some_and(|a| &a.commit == commit) || self.is_bad(commit) {
            return Judged::Known;
        }
        match self.check(fetched, host) {
            Ok(candidate) => Judged::Apply(Box::new(candidate)),
            Err(reason) => Judged::Refused(Bad {
                commit: commit.clone(),
                verdict: Verdict::Refused,
                reason,
                at: super::unix_now(),
            }),
        }
    }

    /// Whether `commit` was refused or rolled back on this host.
    pub fn is_bad(&self, commit: &str) -> bool {
        self.record.bad.iter().any(|b| b.commit == commit)
    }

    /// Everything a commit must pass before it may change the host (no I/O).
    pub fn check(&self, fetched: &Fetched, host: &str) -> Result<Candidate, String> {
        candidate(self.signers.as_ref(), &self.remote.path, fetched, host)
    }

    /// Remember a bad commit (newest first; the ref moved on: older ones are kept
    /// for the record, a few).
    pub fn mark_bad(&mut self, bad: Bad) {
        self.record.bad.retain(|b| b.commit != bad.commit);
        self.record.bad.insert(0, bad);
        self.record.bad.truncate(20);
        self.save();
    }

    pub fn accept(&mut self, applied: Applied) {
        self.record.applied = Some(applied);
        self.save();
    }

    fn save(&self) {
        let path = record_path(&self.remote);
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let text = serde_json::to_string_pretty(&self.record).map_err(std::io::Error::other)?;
            let fresh = path.with_extension("json.new");
            std::fs::write(&fresh, text)?;
            std::fs::rename(&fresh, &path)
        };
        if let Err(error) = write() {
            tracing::warn!(path = %path.display(), %error, "could not keep the git source's record");
        }
    }
}

/// `STATE/git/<digest of the URL>.json`.
fn record_path(remote: &Remote) -> PathBuf {
    remote.cache_dir().with_extension("json")
}

/// Everything a commit must pass before it may change the host.
fn candidate(
    signers: Option<&AllowedSigners>,
    path: &str,
    fetched: &Fetched,
    host: &str,
) -> Result<Candidate, String> {
    let short = source::short(&fetched.commit);
    let signer = source::trust(signers, fetched).map_err(|e| format!("untrusted: {e}"))?;
    let text = fetched.text.clone()?;
    let topology =
        topology::parse(&commit_label(&fetched.commit, path), &text).map_err(|invalid| {
            let messages = invalid.messages();
            format!(
                "invalid topology ({} problem(s)): {}",
                messages.len(),
                messages.join("; ")
            )
        })?;
    if !topology.hosts.contains_key(host) {
        return Err(format!("host {host:?} is not in the topology of {short}"));
    }
    crate::desired::desired(&topology, host).map_err(|e| format!("no desired state: {e}"))?;
    Ok(Candidate {
        commit: fetched.commit.clone(),
        text,
        topology,
        signer,
    })
}

/// What the checks after applying a commit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checks {
    /// Peers reachable before the change that are still in the topology.
    pub required: BTreeSet<String>,
    /// Peers reachable now.
    pub reachable: BTreeSet<String>,
    /// The engine's verification after apply: `None` until a reconcile ran.
    pub verified: Option<Result<(), String>>,
    pub elapsed: Duration,
}

/// The outcome of a probation check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Everything holds: the commit is the last good one now.
    Accept,
    /// Not yet settled; look again.
    Wait,
    RollBack(String),
}

/// Accept once every peer reached before is reached again and verify passed,
/// no sooner than `settle` after the change (tunnels, ARP and BFD need a moment;
/// a cut that shows late must not be accepted early); roll back when the window
/// ends without that.
pub fn decide(checks: &Checks, settle: Duration, window: Duration) -> Decision {
    let lost: Vec<&str> = checks
        .required
        .difference(&checks.reachable)
        .map(String::as_str)
        .collect();
    let verified = matches!(checks.verified, Some(Ok(())));
    if lost.is_empty() && verified && checks.elapsed >= settle {
        return Decision::Accept;
    }
    if checks.elapsed < window {
        return Decision::Wait;
    }
    let mut reasons = Vec::new();
    if !lost.is_empty() {
        reasons.push(format!("peers unreachable: {}", lost.join(", ")));
    }
    match &checks.verified {
        Some(Ok(())) => {}
        Some(Err(error)) => reasons.push(format!("verify failed: {error}")),
        None => reasons.push("never verified".to_string()),
    }
    Decision::RollBack(format!(
        "after {} s: {}",
        window.as_secs(),
        reasons.join("; ")
    ))
}

/// The peers of `host` and the address that shows this host reaches each: the
/// peer's gateway on the routed overlay when both have a subnet on it (the ping
/// crosses the tunnel), else the peer's underlay address.
pub fn peers(topology: &Topology, host: &str) -> BTreeMap<String, std::net::IpAddr> {
    let overlay = topology.routed().filter(|r| r.has_host(host));
    let families = |h: &str| {
        overlay
            .map(|r| r.subnets_of(h))
            .unwrap_or_default()
            .into_iter()
            .map(|(_, gateway)| gateway)
            .collect::<Vec<_>>()
    };
    let mine = families(host);
    topology
        .hosts
        .iter()
        .filter(|(name, _)| name.as_str() != host)
        .map(|(name, peer)| {
            // A gateway of a family both have (IPv4 first), else the underlay.
            let address = families(name)
                .into_iter()
                .find(|g| mine.iter().any(|m| m.is_ipv4() == g.is_ipv4()))
                .unwrap_or_else(|| peer.tunnel_ip(topology.mesh.underlay));
            (name.clone(), address)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn checks(reachable: &[&str], verified: Option<Result<(), String>>, secs: u64) -> Checks {
        Checks {
            required: set(&["node2", "node3"]),
            reachable: set(reachable),
            verified,
            elapsed: Duration::from_secs(secs),
        }
    }

    const SETTLE: Duration = Duration::from_secs(5);
    const WINDOW: Duration = Duration::from_secs(30);

    fn lab_text() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/topology/lab.toml")).unwrap()
    }

    fn fetched(commit: char, text: Result<String, String>) -> Fetched {
        Fetched {
            commit: commit.to_string().repeat(40),
            text,
            time: 0,
            signature: None,
        }
    }

    fn refused(judged: Judged) -> String {
        match judged {
            Judged::Refused(bad) => bad.reason,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn commits_are_judged_before_anything_changes_and_bad_ones_remembered() {
        let state = std::env::temp_dir().join(format!("ovsmesh-follow-{}", std::process::id()));
        let remote = Remote {
            url: "git://192.0.2.1/mesh.git".into(),
            reference: "main".into(),
            path: "topology.toml".into(),
            state_dir: state.clone(),
        };
        let mut follower = Follower::new(remote.clone(), None);
        assert!(matches!(
            follower.judge(&fetched('a', Ok(lab_text())), "node1"),
            Judged::Apply(_)
        ));
        assert_eq!(
            refused(follower.judge(
                &fetched('b', Err("no file topology.toml in the commit".into())),
                "node1"
            )),
            "no file topology.toml in the commit"
        );
        let invalid = refused(follower.judge(
            &fetched('c', Ok(lab_text().replace("vlan = 100", "vlan = 5000"))),
            "node1",
        ));
        assert!(
            invalid.starts_with("invalid topology (1 problem(s)): git:cccccccccccc:topology.toml:"),
            "{invalid}"
        );
        assert!(
            refused(follower.judge(&fetched('d', Ok(lab_text())), "node9"))
                .contains("\"node9\" is not in the topology")
        );
        let signed_only = Follower::new(remote.clone(), Some(AllowedSigners::default()));
        assert_eq!(
            refused(signed_only.judge(&fetched('e', Ok(lab_text())), "node1")),
            "untrusted: the commit is not signed"
        );
        // A bad commit and the applied one are known; the record outlives the daemon.
        let bad = match follower.judge(&fetched('c', Ok(String::new())), "node1") {
            Judged::Refused(bad) => bad,
            other => panic!("{other:?}"),
        };
        follower.mark_bad(bad);
        follower.accept(Applied {
            commit: "a".repeat(40),
            at: 1,
            signer: None,
        });
        let again = Follower::new(remote, None);
        let _ = std::fs::remove_dir_all(&state);
        assert!(matches!(
            again.judge(&fetched('c', Ok(lab_text())), "node1"),
            Judged::Known
        ));
        assert!(matches!(
            again.judge(&fetched('a', Ok(lab_text())), "node1"),
            Judged::Known
        ));
        assert_eq!(again.record.bad[0].verdict, Verdict::Refused);
    }

    #[test]
    fn peers_are_probed_across_the_overlay_where_both_have_a_subnet() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/topology/lab.toml"))
                .unwrap();
        let topology = crate::topology::parse(std::path::Path::new("lab.toml"), &text).unwrap();
        let found = peers(&topology, "node1");
        assert_eq!(found.len(), 2);
        assert_eq!(found["node2"].to_string(), "172.17.2.1");
        let mut no_overlay = topology.clone();
        no_overlay
            .networks
            .retain(|_, n| !matches!(n, crate::topology::Network::Routed(_)));
        assert_eq!(
            peers(&no_overlay, "node1")["node3"].to_string(),
            "192.0.2.13"
        );
    }

    #[test]
    fn accepted_once_every_peer_answers_and_verify_passed_after_settling() {
        let ok = Some(Ok(()));
        assert_eq!(
            decide(&checks(&["node2", "node3"], ok.clone(), 2), SETTLE, WINDOW),
            Decision::Wait
        );
        assert_eq!(
            decide(&checks(&["node2", "node3"], ok.clone(), 5), SETTLE, WINDOW),
            Decision::Accept
        );
        // A peer not required (unreachable before, or gone from the topology) does not matter.
        let mut extra = checks(&["node2", "node3"], ok, 6);
        extra.reachable.insert("node4".into());
        assert_eq!(decide(&extra, SETTLE, WINDOW), Decision::Accept);
    }

    #[test]
    fn rolled_back_when_the_window_ends_with_a_peer_lost_or_verify_failing() {
        assert_eq!(
            decide(&checks(&["node2"], Some(Ok(())), 29), SETTLE, WINDOW),
            Decision::Wait
        );
        assert_eq!(
            decide(&checks(&["node2"], Some(Ok(())), 30), SETTLE, WINDOW),
            Decision::RollBack("after 30 s: peers unreachable: node3".into())
        );
        assert_eq!(
            decide(
                &checks(&[], Some(Err("2 changes remain".into())), 31),
                SETTLE,
                WINDOW
            ),
            Decision::RollBack(
                "after 30 s: peers unreachable: node2, node3; verify failed: 2 changes remain"
                    .into()
            )
        );
        assert_eq!(
            decide(&checks(&["node2", "node3"], None, 30), SETTLE, WINDOW),
            Decision::RollBack("after 30 s: never verified".into())
        );
    }
}
