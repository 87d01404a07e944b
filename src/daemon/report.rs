//! What a running daemon tells `status` and `fleet status`: where its topology
//! comes from, the commit applied and when, commits refused or rolled back with
//! their reasons, and how the host is (converged, tunnels up, warnings).
//!
//! The same JSON is written to a record under [`RECORD_DIR`] (for `status` on
//! the host, which also reads the topology the daemon applied from beside it)
//! and served as `GET /status` on the daemon's metrics listener (for `fleet
//! status`, from anywhere that reaches it). The record names the daemon's PID:
//! a record left by a dead daemon is ignored.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::follow::{Applied, Bad};
use super::stuck::RECORD_DIR;

/// A daemon's report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub host: String,
    pub pid: u32,
    /// The file, or `URL REF:PATH`.
    pub source: String,
    /// The commit in force (git sources only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
    /// The commit in force is on probation (not yet accepted; may be rolled back).
    #[serde(default)]
    pub probation: bool,
    /// Git sources without `--allowed-signers`: any commit of the remote is applied.
    #[serde(default)]
    pub unsigned_trusted: bool,
    /// Commits refused or rolled back on this host, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad: Vec<Bad>,
    /// Why the last fetch failed, until one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_error: Option<String>,
    /// The last reconcile succeeded and left nothing to change.
    #[serde(default)]
    pub converged: bool,
    pub tunnels: usize,
    pub tunnels_up: usize,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// When this report was made (seconds since the epoch).
    pub updated: i64,
}

/// The record of the daemon of `host` (of lab `lab`, `""` for a real host).
pub fn record_path(lab: &str, host: &str) -> PathBuf {
    let digest = Sha256::digest(format!("{lab}\0{host}").as_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    PathBuf::from(RECORD_DIR).join(format!("report.{name}.json"))
}

/// The topology text the daemon applied, beside its record.
pub fn topology_path(lab: &str, host: &str) -> PathBuf {
    record_path(lab, host).with_extension("toml")
}

/// Write the record (and the applied topology's text when given), atomically.
pub fn write(lab: &str, report: &Report, topology: Option<&str>) -> std::io::Result<()> {
    std::fs::create_dir_all(RECORD_DIR)?;
    if let Some(text) = topology {
        replace(&topology_path(lab, &report.host), text)?;
    }
    let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    replace(&record_path(lab, &report.host), &text)
}

fn replace(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, text)?;
    std::fs::rename(&fresh, path)
}

/// The report of the running daemon of `host`, if there is one.
pub fn read(lab: &str, host: &str) -> Option<Report> {
    let text = std::fs::read_to_string(record_path(lab, host)).ok()?;
    let report: Report = serde_json::from_str(&text).ok()?;
    let alive = std::path::Path::new(&format!("/proc/{}", report.pid)).exists();
    (alive && report.host == host).then_some(report)
}

/// Remove the record (the daemon stops).
pub fn remove(lab: &str, host: &str) {
    let _ = std::fs::remove_file(record_path(lab, host));
    let _ = std::fs::remove_file(topology_path(lab, host));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs root (writes under /run/ovsmesh)"]
    fn a_report_is_read_back_only_while_its_daemon_runs() {
        let lab = format!("report-test-{}", std::process::id());
        let mut report = Report {
            host: "node1".into(),
            pid: std::process::id(),
            source: "git://192.0.2.1/mesh.git main:topology.toml".into(),
            converged: true,
            ..Report::default()
        };
        write(&lab, &report, Some("[mesh]\n")).unwrap();
        assert_eq!(read(&lab, "node1"), Some(report.clone()));
        assert_eq!(
            std::fs::read_to_string(topology_path(&lab, "node1")).unwrap(),
            "[mesh]\n"
        );
        assert_eq!(read(&lab, "node2"), None);
        assert_ne!(record_path(&lab, "node1"), record_path("", "node1"));
        report.pid = u32::MAX;
        write(&lab, &report, None).unwrap();
        assert_eq!(read(&lab, "node1"), None);
        remove(&lab, "node1");
        assert!(!record_path(&lab, "node1").exists());
    }
}
