//! Changes that do not stay: applied, and back in the next plan, again and again.
//!
//! Something on the host undoes them (another tool fighting over the same port,
//! a setting the kernel or vswitchd rewrites). Re-applying such a change every
//! time it comes back is a busy loop that fixes nothing, so once a change has
//! come back [`STUCK_AFTER`] times in a row the daemon backs off (exponentially,
//! like after a failure) and reports it: the `ovsmesh_stuck_changes` gauge, a
//! warning in the log, and a record `ovsmesh status` shows.
//!
//! The record is a small JSON file under [`RECORD_DIR`], one per daemon, named
//! after the Open_vSwitch root row of its ovsdb-server (so the twin hosts of
//! several labs on one machine never mix) and a digest of its mesh and host.
//! It exists only while something is stuck, and names the daemon's PID: a
//! record left by a killed daemon is ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::{Change, Kind, Op};

/// Times a change may come back before it counts as stuck.
pub const STUCK_AFTER: u32 = 3;

/// Where daemons leave their stuck-change records.
pub const RECORD_DIR: &str = "/run/ovsmesh/daemon";

/// A change that keeps coming back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StuckChange {
    pub kind: String,
    pub op: String,
    pub id: String,
    pub reason: String,
    /// Reconciles in a row that applied it.
    pub applied: u32,
}

/// Consecutive applications of each change.
#[derive(Debug, Default)]
pub struct Tracker {
    applied: BTreeMap<(Kind, String), (u32, &'static str, String)>,
}

impl Tracker {
    /// Note the changes a successful reconcile applied (none: converged). Returns
    /// whether the set of stuck changes changed.
    pub fn applied(&mut self, changes: &[Change]) -> bool {
        let before = self.stuck_keys();
        let mut next = BTreeMap::new();
        for change in changes {
            let key = (change.kind, change.id.clone());
            let times = self.applied.get(&key).map_or(1, |(n, _, _)| n + 1);
            next.insert(key, (times, op_str(change.op), change.reason.clone()));
        }
        self.applied = next;
        before != self.stuck_keys()
    }

    fn stuck_keys(&self) -> Vec<(Kind, String)> {
        self.applied
            .iter()
            .filter(|(_, (times, _, _))| *times > STUCK_AFTER)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Forget everything (a new topology: its changes are new).
    pub fn clear(&mut self) -> bool {
        let was_stuck = !self.stuck_keys().is_empty();
        self.applied.clear();
        was_stuck
    }

    /// The changes applied more than [`STUCK_AFTER`] times in a row (back that often).
    pub fn stuck(&self) -> Vec<StuckChange> {
        self.applied
            .iter()
            .filter(|(_, (times, _, _))| *times > STUCK_AFTER)
            .map(|((kind, id), (times, op, reason))| StuckChange {
                kind: kind.as_str().to_string(),
                op: (*op).to_string(),
                id: id.clone(),
                reason: reason.clone(),
                applied: *times,
            })
            .collect()
    }
}

fn op_str(op: Op) -> &'static str {
    match op {
        Op::Create => "create",
        Op::Update => "update",
        Op::Replace => "replace",
        Op::Delete => "delete",
    }
}

/// What a daemon tells `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub mesh: String,
    pub host: String,
    pub pid: u32,
    pub changes: Vec<StuckChange>,
}

/// The record file of the daemon keeping `host` of `mesh` on the ovsdb-server
/// whose Open_vSwitch row is `root`; `None` for a root that is not a UUID.
pub fn record_path(root: &str, mesh: &str, host: &str) -> Option<PathBuf> {
    let uuid_like = !root.is_empty() && root.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if !uuid_like {
        return None;
    }
    let digest = Sha256::digest(format!("{mesh}\0{host}").as_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Some(PathBuf::from(RECORD_DIR).join(format!("{root}.{name}.json")))
}

/// Write this daemon's record, or remove it when nothing is stuck.
pub fn write(root: &str, mesh: &str, host: &str, changes: Vec<StuckChange>) -> std::io::Result<()> {
    let Some(path) = record_path(root, mesh, host) else {
        return Ok(());
    };
    if changes.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        };
    }
    std::fs::create_dir_all(RECORD_DIR)?;
    let record = Record {
        mesh: mesh.to_string(),
        host: host.to_string(),
        pid: std::process::id(),
        changes,
    };
    let text = serde_json::to_string_pretty(&record).map_err(std::io::Error::other)?;
    let fresh = path.with_extension("json.new");
    std::fs::write(&fresh, text)?;
    std::fs::rename(&fresh, &path)
}

/// The stuck changes a running daemon reports for this host (none without a daemon).
pub fn read(root: &str, mesh: &str, host: &str) -> Vec<StuckChange> {
    let Some(path) = record_path(root, mesh, host) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    match serde_json::from_str::<Record>(&text) {
        Ok(record)
            if record.mesh == mesh
                && record.host == host
                && std::path::Path::new(&format!("/proc/{}", record.pid)).exists() =>
        {
            record.changes
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: &str) -> Change {
        Change {
            op: Op::Update,
            kind: Kind::Port,
            id: id.into(),
            fields: Vec::new(),
            changed: Vec::new(),
            reason: "drifted from the topology (tag)".into(),
            before: None,
            after: None,
        }
    }

    #[test]
    fn a_change_is_stuck_after_coming_back_three_times_and_free_once_it_stays() {
        let mut tracker = Tracker::default();
        let fought = [change("access/edge/eth1")];
        for _ in 0..=STUCK_AFTER {
            assert!(tracker.stuck().is_empty());
            tracker.applied(&fought);
        }
        let stuck = tracker.stuck();
        assert_eq!(stuck.len(), 1);
        assert_eq!(stuck[0].id, "access/edge/eth1");
        assert_eq!(stuck[0].applied, STUCK_AFTER + 1);
        // Another change in between does not reset it; a plan without it does.
        assert!(!tracker.applied(&[change("access/edge/eth1"), change("access/x/eth1")]));
        assert!(tracker.applied(&[change("access/x/eth1")]));
        assert!(tracker.stuck().is_empty());
    }

    #[test]
    fn record_paths_are_per_ovsdb_mesh_and_host_and_never_leave_the_directory() {
        let root = "6a5b1f1e-0000-4000-8000-000000000001";
        let a = record_path(root, "lab", "node1").unwrap();
        assert!(a.starts_with(RECORD_DIR));
        assert_ne!(a, record_path(root, "lab", "node2").unwrap());
        assert_ne!(a, record_path(root, "other", "node1").unwrap());
        assert_eq!(record_path("../../etc", "lab", "node1"), None);
        assert!(record_path(root, "../..", "../x")
            .unwrap()
            .starts_with(RECORD_DIR));
    }

    #[test]
    #[ignore = "needs root (writes /run/ovsmesh)"]
    fn a_record_is_read_back_only_while_its_daemon_runs() {
        let root = format!("00000000-0000-4000-8000-{:012x}", std::process::id());
        let stuck = vec![StuckChange {
            kind: "port".into(),
            op: "update".into(),
            id: "access/edge/eth1".into(),
            reason: "drifted".into(),
            applied: 4,
        }];
        write(&root, "lab", "node1", stuck.clone()).unwrap();
        assert_eq!(read(&root, "lab", "node1"), stuck);
        assert!(read(&root, "lab", "node2").is_empty());
        // A dead daemon's record is ignored.
        let path = record_path(&root, "lab", "node1").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut record: Record = serde_json::from_str(&text).unwrap();
        record.pid = u32::MAX;
        std::fs::write(&path, serde_json::to_string(&record).unwrap()).unwrap();
        assert!(read(&root, "lab", "node1").is_empty());
        write(&root, "lab", "node1", Vec::new()).unwrap();
        assert!(!path.exists());
    }
}
