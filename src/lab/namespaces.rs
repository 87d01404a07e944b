//! Named network namespaces and processes inside them, for the lab.
//!
//! Namespaces are made and removed the way `ip netns` does it (a bind mount
//! under /run/netns), through rtnetlink's helper; daemons are started inside a
//! namespace by entering it between fork and exec, so no `ip netns exec` is
//! needed and the calling process never moves.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use super::LabError;
use crate::topology::ident::under;

pub const NETNS_DIR: &str = "/run/netns";

pub fn path(name: &str) -> Result<std::path::PathBuf, LabError> {
    under(std::path::Path::new(NETNS_DIR), name).map_err(|e| LabError::Setup(e.to_string()))
}

pub fn exists(name: &str) -> bool {
    path(name).is_ok_and(|path| path.exists())
}

pub fn open(name: &str) -> Result<File, LabError> {
    File::open(path(name)?).map_err(|e| LabError::Setup(format!("open namespace {name}: {e}")))
}

/// Create a named namespace (no-op if it exists).
pub async fn add(name: &str) -> Result<(), LabError> {
    if path(name)?.exists() {
        return Ok(());
    }
    rtnetlink::NetworkNamespace::add(name)
        .await
        .map_err(|e| LabError::Setup(format!("create namespace {name}: {e}")))
}

/// Remove a named namespace (no-op if it is gone).
pub async fn del(name: &str) -> Result<(), LabError> {
    if !exists(name) {
        return Ok(());
    }
    rtnetlink::NetworkNamespace::del(name)
        .await
        .map_err(|e| LabError::Setup(format!("delete namespace {name}: {e}")))
}

/// Names of existing namespaces starting with `prefix`.
pub fn with_prefix(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A command that runs inside namespace `netns`.
pub fn command_in(netns: &File, program: &str) -> Command {
    let mut command = Command::new(program);
    let fd = netns.as_raw_fd();
    // SAFETY: only setns (async-signal-safe) runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.stdin(Stdio::null());
    command
}

/// Run a command inside a namespace and return its output, or an error naming it.
pub fn run_in(
    netns: &File,
    program: &str,
    args: &[&str],
) -> Result<std::process::Output, LabError> {
    command_in(netns, program)
        .args(args)
        .output()
        .map_err(|e| LabError::Setup(format!("{program}: {e}")))
}
