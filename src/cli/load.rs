//! What most commands do first: load the topology (or print why not) and
//! compute one host's desired state.

use std::path::Path;

use serde_json::json;

use super::{Format, EXIT_INVALID};
use crate::desired::desired;
use crate::lab::Lab;
use crate::state::HostState;
use crate::topology::{self, LoadError, Topology};

/// Load a topology or print why not; `Err` holds the exit code.
pub(super) fn load(path: &Path, format: Format) -> Result<Topology, i32> {
    match topology::load(path) {
        Ok(topology) => Ok(topology),
        Err(LoadError::Read { path, error }) => {
            eprintln!("ovsmesh: cannot read topology {path}: {error}");
            Err(EXIT_INVALID)
        }
        Err(LoadError::Invalid(invalid)) => {
            let messages = invalid.messages();
            if format == Format::Json {
                println!(
                    "{}",
                    json!({ "valid": false, "file": path.display().to_string(), "problems": messages })
                );
            } else {
                for message in &messages {
                    eprintln!("{message}");
                }
                eprintln!(
                    "{}: {} problem(s); nothing was changed",
                    path.display(),
                    messages.len()
                );
            }
            Err(EXIT_INVALID)
        }
    }
}

/// `--host`, else `$OVSMESH_HOST` (via clap), else the machine's hostname.
pub(super) fn host_name(host: Option<String>) -> Option<String> {
    host.or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
    })
}

/// The topology and one host's desired state, or the exit code explaining why not.
pub(super) fn topology_and_desired(
    path: &Path,
    host: Option<String>,
    format: Format,
) -> Result<(Topology, HostState), i32> {
    topology_and_desired_of(path, host, format, None)
}

/// [`topology_and_desired`], for a lab host's twin when `lab` is given.
pub(super) fn topology_and_desired_of(
    path: &Path,
    host: Option<String>,
    format: Format,
    lab: Option<&Lab>,
) -> Result<(Topology, HostState), i32> {
    let topology = load(path, format)?;
    let topology = match lab {
        Some(lab) => lab.twin(&topology),
        None => topology,
    };
    let Some(host) = host_name(host) else {
        eprintln!("ovsmesh: no --host given, OVSMESH_HOST unset and no hostname");
        return Err(EXIT_INVALID);
    };
    match desired(&topology, &host) {
        Ok(state) => Ok((topology, state)),
        Err(error) => {
            eprintln!("ovsmesh: {error}");
            Err(EXIT_INVALID)
        }
    }
}
