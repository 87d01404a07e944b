//! A topology kept in a git remote, fetched with `gix` (no `git` binary).
//!
//! Network remotes (`git://`, `ssh://` — the latter through the `ssh` program,
//! as git does) are fetched into a bare cache repository under the state
//! directory (`/var/lib/ovsmesh/git/<digest of the URL>`), one ref at a time
//! (`+REF:refs/ovsmesh/tip`, no tags). A repository on this machine (`file://`
//! or a plain path) is read in place: `gix` would otherwise spawn
//! `git-upload-pack` for it, and its objects are local already. Either way the
//! file at `path` is read from the commit's tree — no work tree, nothing
//! checked out, nothing half-written for a reader to see — and handed on with
//! the commit id, its committer time and its signature, if any.
//!
//! `http(s)://` is not compiled in (gix would bring an HTTP client and a TLS
//! stack): such a URL is refused with that reason.
//!
//! Everything here blocks: the daemon calls it on a thread of its own, bounded.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::ByteSlice;
use sha2::{Digest, Sha256};

/// A git remote to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub url: String,
    /// A branch name (`main`) or a full ref (`refs/tags/prod`).
    pub reference: String,
    /// The topology file's path in the commit's tree.
    pub path: String,
    /// The state directory; network remotes are cached in `git/` under it.
    pub state_dir: PathBuf,
}

/// A commit of the remote's ref, and the topology file in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub commit: String,
    /// The file's text; `Err` says why there is none (missing, not UTF-8, a directory).
    pub text: Result<String, String>,
    /// Committer time, seconds since the epoch (signature validity is checked at it).
    pub time: i64,
    /// The `gpgsig` header and the bytes it signs.
    pub signature: Option<(Vec<u8>, Vec<u8>)>,
}

/// The ref could not be read at all (the remote is down, the ref is gone).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url} {reference}: {reason}")]
pub struct Unreachable {
    pub url: String,
    pub reference: String,
    pub reason: String,
}

/// How the remote is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    /// Opened in place.
    Local(PathBuf),
    /// Fetched over the network into the cache.
    Network,
}

impl Remote {
    /// `URL REF:PATH`, for logs and `status`.
    pub fn describe(&self) -> String {
        format!("{} {}:{}", self.url, self.reference, self.path)
    }

    /// The full ref name: `main` is `refs/heads/main`.
    pub fn full_ref(&self) -> String {
        if self.reference.starts_with("refs/") {
            self.reference.clone()
        } else {
            format!("refs/heads/{}", self.reference)
        }
    }

    /// The bare repository network remotes are fetched into.
    pub fn cache_dir(&self) -> PathBuf {
        let digest = Sha256::digest(self.url.as_bytes());
        let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        self.state_dir.join("git").join(name)
    }

    /// Whether this URL can be followed by this build, and how.
    fn access(&self) -> Result<Access, String> {
        let url = self.url.as_str();
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Access::Local(PathBuf::from(path)));
        }
        if url.starts_with('/') || url.starts_with("./") || url.starts_with("../") {
            return Ok(Access::Local(PathBuf::from(url)));
        }
        if url.starts_with("git://") || url.starts_with("ssh://") || scp_like(url) {
            return Ok(Access::Network);
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            return Err(
                "http(s) remotes are not supported by this build (use git://, ssh:// or file://)"
                    .into(),
            );
        }
        Err("unknown URL scheme (use git://, ssh://, file:// or a path)".into())
    }

    /// Check the URL before the daemon starts.
    pub fn check(&self) -> Result<(), String> {
        self.access().map(|_| ())
    }

    /// Fetch the ref and read the topology file from its commit.
    pub fn fetch(&self, interrupt: &AtomicBool) -> Result<Fetched, Unreachable> {
        let unreachable = |reason: String| Unreachable {
            url: self.url.clone(),
            reference: self.reference.clone(),
            reason,
        };
        let access = self.access().map_err(unreachable)?;
        let (repo, id) = match access {
            Access::Local(path) => self.local(&path),
            Access::Network => self.network(interrupt),
        }
        .map_err(unreachable)?;
        self.read(&repo, id)
            .map_err(|e| unreachable(format!("commit {id}: {e}")))
    }

    /// Read `commit` again from where it was fetched (a restarted daemon's last
    /// good commit, when the ref has moved to a bad one or cannot be fetched).
    pub fn at(&self, commit: &str) -> Result<Fetched, Unreachable> {
        let unreachable = |reason: String| Unreachable {
            url: self.url.clone(),
            reference: self.reference.clone(),
            reason,
        };
        let dir = match self.access().map_err(unreachable)? {
            Access::Local(path) => path,
            Access::Network => self.cache_dir(),
        };
        let options = gix::open::Options::isolated().bail_if_untrusted(false);
        let repo = gix::open_opts(&dir, options)
            .map_err(|e| unreachable(format!("cannot open {}: {e}", dir.display())))?;
        let id = gix::ObjectId::from_hex(commit.as_bytes())
            .map_err(|e| unreachable(format!("bad commit id {commit}: {e}")))?;
        self.read(&repo, id)
            .map_err(|e| unreachable(format!("commit {commit}: {e}")))
    }

    /// Open a repository on this machine and resolve the ref in it.
    fn local(&self, path: &Path) -> Result<(gix::Repository, gix::ObjectId), String> {
        let options = gix::open::Options::isolated().bail_if_untrusted(false);
        let repo = gix::open_opts(path, options)
            .map_err(|e| format!("cannot open the repository: {e}"))?;
        let full = self.full_ref();
        let id = repo
            .find_reference(full.as_str())
            .map_err(|_| format!("no ref {full}"))?
            .into_fully_peeled_id()
            .map_err(|e| format!("ref {full}: {e}"))?
            .detach();
        Ok((repo, id))
    }

    /// Fetch the ref into the cache; the commit it points at on the remote.
    fn network(&self, interrupt: &AtomicBool) -> Result<(gix::Repository, gix::ObjectId), String> {
        let dir = self.cache_dir();
        // Opened like `init_bare` makes it: with the environment and git configuration
        // (GIT_SSH_COMMAND, core.sshCommand, url.*.insteadOf apply to every fetch).
        let repo = if dir.join("HEAD").exists() {
            gix::open(&dir).map_err(|e| format!("cache {}: {e}", dir.display()))?
        } else {
            std::fs::create_dir_all(&dir).map_err(|e| format!("cache {}: {e}", dir.display()))?;
            gix::init_bare(&dir).map_err(|e| format!("cache {}: {e}", dir.display()))?
        };
        let full = self.full_ref();
        let spec = format!("+{full}:refs/ovsmesh/tip");
        let remote = repo
            .remote_at(self.url.as_str())
            .map_err(|e| format!("bad URL: {e}"))?
            .with_fetch_tags(gix::remote::fetch::Tags::None)
            .with_refspecs([spec.as_str()], gix::remote::Direction::Fetch)
            .map_err(|e| format!("refspec {spec}: {e}"))?;
        let connection = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| format!("cannot connect: {e}"))?;
        let prepare = connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| format!("cannot list the remote's refs: {e}"))?;
        let tip = prepare
            .ref_map()
            .mappings
            .iter()
            .filter(|m| m.remote.as_name().is_some_and(|name| name == full.as_str()))
            .find_map(|m| m.remote.as_id().map(|id| id.to_owned()));
        let Some(tip) = tip else {
            return Err(format!("no ref {full} on the remote"));
        };
        prepare
            .receive(gix::progress::Discard, interrupt)
            .map_err(|e| format!("fetch failed: {e}"))?;
        Ok((repo, tip))
    }

    /// The commit `id` points at (through annotated tags), and the file at `path` in it.
    fn read(&self, repo: &gix::Repository, id: gix::ObjectId) -> Result<Fetched, String> {
        let commit = repo
            .find_object(id)
            .map_err(|e| e.to_string())?
            .peel_to_commit()
            .map_err(|e| format!("not a commit: {e}"))?;
        let time = commit.time().map_err(|e| e.to_string())?.seconds;
        let signature = commit
            .signature()
            .map_err(|e| e.to_string())?
            .map(|(sig, signed)| (sig.to_vec(), signed.to_bstring().to_vec()));
        let tree = commit.tree().map_err(|e| e.to_string())?;
        let text = match tree.lookup_entry_by_path(&self.path) {
            Ok(Some(entry)) if entry.mode().is_blob() => match entry.object() {
                Ok(blob) => String::from_utf8(blob.data.clone())
                    .map_err(|_| format!("{} is not UTF-8 text", self.path)),
                Err(e) => Err(format!("{}: {e}", self.path)),
            },
            Ok(Some(_)) => Err(format!("{} is not a file", self.path)),
            Ok(None) => Err(format!("no file {} in the commit", self.path)),
            Err(e) => Err(format!("{}: {e}", self.path)),
        };
        Ok(Fetched {
            commit: commit.id.to_string(),
            text,
            time,
            signature,
        })
    }
}

/// `user@host:path`, git's scp-like syntax for ssh.
fn scp_like(url: &str) -> bool {
    !url.contains("://")
        && url
            .split_once(':')
            .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/'))
}

impl Fetched {
    /// The commit id's first 12 hex digits.
    pub fn short(&self) -> &str {
        super::short(&self.commit)
    }
}

/// The text of `bytes` for messages (lossy).
pub fn lossy(bytes: &[u8]) -> String {
    bytes.to_str_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str) -> Remote {
        Remote {
            url: url.into(),
            reference: "main".into(),
            path: "topology.toml".into(),
            state_dir: "/var/lib/ovsmesh".into(),
        }
    }

    #[test]
    fn urls_are_sorted_into_local_network_and_unsupported() {
        assert_eq!(
            remote("file:///srv/mesh.git").access(),
            Ok(Access::Local("/srv/mesh.git".into()))
        );
        assert_eq!(
            remote("/srv/mesh.git").access(),
            Ok(Access::Local("/srv/mesh.git".into()))
        );
        for url in [
            "git://192.0.2.1/mesh.git",
            "ssh://git@host/mesh.git",
            "git@host:mesh.git",
        ] {
            assert_eq!(remote(url).access(), Ok(Access::Network), "{url}");
        }
        assert!(remote("https://host/mesh.git")
            .check()
            .unwrap_err()
            .contains("not supported by this build"));
        assert!(remote("ftp://host/x").check().is_err());
    }

    #[test]
    fn refs_and_cache_dirs() {
        let mut r = remote("git://192.0.2.1/mesh.git");
        assert_eq!(r.full_ref(), "refs/heads/main");
        r.reference = "refs/tags/prod".into();
        assert_eq!(r.full_ref(), "refs/tags/prod");
        let dir = r.cache_dir();
        assert!(dir.starts_with("/var/lib/ovsmesh/git"));
        assert_ne!(dir, remote("git://192.0.2.2/mesh.git").cache_dir());
    }
}
