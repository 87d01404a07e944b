//! Which daemons run on this host, so that `ovsmesh down` does not take a host
//! down under a daemon that would put it all back at its next reconcile.
//!
//! A daemon leaves a small record under [`DIR`] for as long as it runs: its
//! mesh, its host, its process (PID and start time, so a PID reused after a
//! crash counts for nothing) and, once it reached its ovsdb-server, that
//! server's Open_vSwitch row — the twin hosts of a lab, each with its own
//! server, never mix. A record whose process is gone is ignored and removed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::process::Process;

/// Where running daemons leave their records.
pub const DIR: &str = "/run/ovsmesh/daemon/running";

/// What a running daemon says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub mesh: String,
    pub host: String,
    pub process: Process,
    /// The Open_vSwitch row of its server, once reached.
    #[serde(default)]
    pub root: Option<String>,
}

/// The records of `mesh` on `host` start with this.
fn prefix(mesh: &str, host: &str) -> String {
    let digest = Sha256::digest(format!("{mesh}\0{host}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// This daemon's record, removed when dropped.
#[derive(Debug)]
pub struct Registration {
    dir: PathBuf,
    path: PathBuf,
    record: Record,
}

impl Registration {
    /// Leave this process's record for `mesh` on `host` under `dir`.
    pub fn register(dir: &Path, mesh: &str, host: &str) -> std::io::Result<Self> {
        let process = Process::current();
        let mut this = Self {
            dir: dir.to_path_buf(),
            path: PathBuf::new(),
            record: Record {
                mesh: mesh.to_string(),
                host: host.to_string(),
                process,
                root: None,
            },
        };
        this.write()?;
        Ok(this)
    }

    /// The mesh, host or server changed (a reloaded topology, a reconnect).
    pub fn update(&mut self, mesh: &str, host: &str, root: Option<&str>) -> std::io::Result<()> {
        let root = root.map(str::to_string).or(self.record.root.clone());
        if self.record.mesh == mesh && self.record.host == host && self.record.root == root {
            return Ok(());
        }
        let _ = std::fs::remove_file(&self.path);
        self.record.mesh = mesh.to_string();
        self.record.host = host.to_string();
        self.record.root = root;
        self.write()
    }

    fn write(&mut self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let name = format!(
            "{}.{}.json",
            prefix(&self.record.mesh, &self.record.host),
            self.record.process.pid
        );
        self.path = self.dir.join(name);
        let text = serde_json::to_string(&self.record).map_err(std::io::Error::other)?;
        let fresh = self.path.with_extension("json.new");
        std::fs::write(&fresh, text)?;
        std::fs::rename(&fresh, &self.path)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The running daemon of `mesh` that keeps `host` on the ovsdb-server whose
/// Open_vSwitch row is `root`, if there is one under `dir`. A daemon that has
/// not reached its server yet counts (it soon will). Records of daemons that
/// are gone are removed on the way.
pub fn find(dir: &Path, mesh: &str, host: &str, root: &str) -> Option<Record> {
    let prefix = prefix(mesh, host);
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&prefix) || !name.ends_with(".json") {
            continue;
        }
        let Some(record) = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|text| serde_json::from_str::<Record>(&text).ok())
        else {
            continue;
        };
        if !record.process.alive() {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        let same_server = record.root.as_deref().is_none_or(|r| r == root);
        if record.mesh == mesh && record.host == host && same_server {
            return Some(record);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ovsmesh-unit-running-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_running_daemon_is_found_for_its_mesh_host_and_server_only() {
        let dir = dir("found");
        let mut me = Registration::register(&dir, "lab", "node1").unwrap();
        // Not connected yet: it counts for any server.
        assert!(find(&dir, "lab", "node1", "root-a").is_some());
        me.update("lab", "node1", Some("root-a")).unwrap();
        let found = find(&dir, "lab", "node1", "root-a").unwrap();
        assert_eq!(found.process, Process::current());
        assert_eq!(found.root.as_deref(), Some("root-a"));
        assert!(
            find(&dir, "lab", "node1", "root-b").is_none(),
            "another switch"
        );
        assert!(find(&dir, "lab", "node2", "root-a").is_none());
        assert!(find(&dir, "other", "node1", "root-a").is_none());
        drop(me);
        assert!(
            find(&dir, "lab", "node1", "root-a").is_none(),
            "gone with it"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_dead_daemons_record_counts_for_nothing_and_is_removed() {
        let dir = dir("dead");
        let me = Registration::register(&dir, "lab", "node1").unwrap();
        let path = me.path.clone();
        std::mem::forget(me);
        // Its PID now belongs to another process (or none): another start time.
        let mut record: Record =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        record.process.started = record.process.started.wrapping_sub(1);
        std::fs::write(&path, serde_json::to_string(&record).unwrap()).unwrap();
        assert!(find(&dir, "lab", "node1", "root-a").is_none());
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
