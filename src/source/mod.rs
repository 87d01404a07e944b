//! Where topology text comes from: a file, or a commit of a git remote.
//!
//! `topology::parse` never knows: it gets text and a label for its error
//! locations. A file's label is its path; a commit's is `git:COMMIT:PATH`, so
//! an invalid commit's errors read `git:3f2a9c1e0b7d:topology.toml:12:5: …`.
//!
//! - `file`: read the file, and the paths to watch for it — every symlink on the
//!   way to the target and the target itself, so a link flipped to a new
//!   checkout (git-sync, a Kubernetes `..data` swap) is seen.
//! - `git`: fetch a ref from a remote with `gix` (no `git` binary) into a bare
//!   cache, read the file at a path from the commit's tree (no work tree), and
//!   hand on the text, the commit id and its signature.
//! - `signers`: git's allowed-signers file and SSHSIG verification of a commit
//!   (`ssh-key`): who may change the hosts.

pub mod file;
pub mod git;
pub mod signers;

use std::path::PathBuf;

/// Where the topology is read from, as the daemon was told.
#[derive(Debug, Clone)]
pub enum Spec {
    File(PathBuf),
    Git(git::Remote),
}

impl Spec {
    /// One line for logs and `status`: the path, or `URL REF:PATH`.
    pub fn describe(&self) -> String {
        match self {
            Spec::File(path) => path.display().to_string(),
            Spec::Git(remote) => remote.describe(),
        }
    }
}

/// The topology path when none is given: `$OVSMESH_TOPOLOGY` (read by clap), else this.
pub const DEFAULT_TOPOLOGY: &str = "/etc/ovsmesh/topology.toml";

/// The label a commit's text gets in error locations: `git:COMMIT12:PATH`.
pub fn commit_label(commit: &str, path: &str) -> PathBuf {
    PathBuf::from(format!("git:{}:{path}", short(commit)))
}

/// The first 12 hex digits of a commit id.
pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// Whether a fetched commit may be applied: `Ok(Some(principals))` when signed by
/// an allowed signer, `Ok(None)` when no signers are required (the remote is
/// trusted unsigned), `Err` with the reason otherwise.
pub fn trust(
    signers: Option<&signers::AllowedSigners>,
    fetched: &git::Fetched,
) -> Result<Option<String>, signers::Untrusted> {
    let Some(signers) = signers else {
        return Ok(None);
    };
    let Some((armored, signed)) = &fetched.signature else {
        return Err(signers::Untrusted::Unsigned);
    };
    signers.verify(armored, signed, fetched.time).map(Some)
}
