//! What can fail in a lab, typed: which step, and the error underneath.

use std::path::PathBuf;

use crate::engine::EngineError;
use crate::netlink::NetlinkError;
use crate::netns::NetnsError;
use crate::ovsdb::OvsdbError;

/// What failed while building, applying or removing a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{0} not found: install the openvswitch-switch package (apt-get install openvswitch-switch)")]
    MissingOvs(String),
    #[error("lab setup: {program}: {source} (apt-get install {package})")]
    Missing {
        program: String,
        package: &'static str,
        source: std::io::Error,
    },
    #[error("lab setup: {0}")]
    Netns(#[from] NetnsError),
    #[error("lab setup: {action} namespace {name}: {source}")]
    Namespace {
        action: &'static str,
        name: String,
        source: rtnetlink::Error,
    },
    #[error("lab setup: {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("lab setup: {what}: {source}")]
    Netlink {
        what: &'static str,
        source: NetlinkError,
    },
    #[error("lab setup: {what}: {source}")]
    Ovsdb {
        what: &'static str,
        source: OvsdbError,
    },
    /// A program could not be started.
    #[error("lab setup: {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// A program ran and failed; what it said on stderr.
    #[error("lab setup: {command}: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("lab setup: dockerd did not start; see {}", log.display())]
    DockerdTimeout { log: PathBuf },
    #[error("lab host {host}: {source}")]
    Enter { host: String, source: NetnsError },
    #[error("lab host {host}: {source}")]
    Apply {
        host: String,
        source: Box<EngineError>,
    },
}

impl LabError {
    /// An I/O error, saying what was being done.
    pub(super) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }

    pub(super) fn netlink(what: &'static str) -> impl FnOnce(NetlinkError) -> Self {
        move |source| Self::Netlink { what, source }
    }

    pub(super) fn ovsdb(what: &'static str) -> impl FnOnce(OvsdbError) -> Self {
        move |source| Self::Ovsdb { what, source }
    }

    pub(super) fn spawn(program: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let program = program.into();
        move |source| Self::Spawn { program, source }
    }

    /// A finished program's failure, if it failed.
    pub(super) fn check(
        command: impl Into<String>,
        out: &std::process::Output,
    ) -> Result<(), Self> {
        if out.status.success() {
            return Ok(());
        }
        Err(Self::Failed {
            command: command.into(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_program_keeps_what_it_said() {
        let out = std::process::Command::new("sh")
            .args(["-c", "echo 'no such bridge' >&2; exit 3"])
            .output()
            .unwrap();
        let error = LabError::check("ovs-vsctl add-br", &out).unwrap_err();
        assert!(
            matches!(&error, LabError::Failed { command, stderr }
                if command == "ovs-vsctl add-br" && stderr == "no such bridge"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "lab setup: ovs-vsctl add-br: no such bridge"
        );
        let ok = std::process::Command::new("true").output().unwrap();
        assert!(LabError::check("true", &ok).is_ok());
    }

    #[test]
    fn the_source_error_stays_reachable() {
        let missing = std::fs::read("/nonexistent/ovsmesh-unit").unwrap_err();
        let error = LabError::io("state dir")(missing);
        let source = std::error::Error::source(&error).expect("a source");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert!(error.to_string().starts_with("lab setup: state dir: "));
    }
}
