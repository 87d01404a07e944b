//! The git source against real repositories: a bare repository on this machine
//! (read in place) and one served by `git daemon` on 127.0.0.1 (fetched with gix
//! into a cache), commits signed by `ssh-keygen -Y sign` (through `git -c
//! gpg.format=ssh`) and unsigned, a missing ref, a missing file. Needs `git`
//! (the tests' side only: the product uses gix) and `ssh-keygen`.

mod git_support;

use std::sync::atomic::AtomicBool;

use git_support::*;
use ovsmesh::source::git::Remote;
use ovsmesh::source::signers::{AllowedSigners, Untrusted};
use ovsmesh::source::{self, trust};

fn remote(url: &str, state: &TempDir) -> Remote {
    Remote {
        url: url.into(),
        reference: "main".into(),
        path: "mesh/topology.toml".into(),
        state_dir: state.0.clone(),
    }
}

static NO: AtomicBool = AtomicBool::new(false);

#[test]
fn a_bare_repository_on_this_machine_is_read_in_place_by_url_and_by_path() {
    let repo = Repo::new();
    let state = TempDir::new("state");
    let first = repo.commit("mesh/topology.toml", "# one\n", None);
    for url in [repo.url(), repo.bare.display().to_string()] {
        let fetched = remote(&url, &state).fetch(&NO).unwrap();
        assert_eq!(fetched.commit, first);
        assert_eq!(fetched.text.as_deref(), Ok("# one\n"));
        assert!(fetched.signature.is_none());
    }
    // Nothing was cached for a local repository.
    assert!(!state.0.join("git").exists());
    let second = repo.commit("mesh/topology.toml", "# two\n", None);
    let fetched = remote(&repo.url(), &state).fetch(&NO).unwrap();
    assert_eq!(
        (fetched.commit.as_str(), fetched.text.as_deref()),
        (second.as_str(), Ok("# two\n"))
    );
}

#[test]
fn git_daemon_on_loopback_is_fetched_into_the_cache_and_followed() {
    let repo = Repo::new();
    let state = TempDir::new("state");
    let first = repo.commit("mesh/topology.toml", "# one\n", None);
    let daemon = GitDaemon::serve(&repo.tmp.0);
    let source = remote(&daemon.url("mesh.git"), &state);
    let fetched = source.fetch(&NO).unwrap();
    assert_eq!(fetched.commit, first);
    assert_eq!(fetched.text.as_deref(), Ok("# one\n"));
    // The cache is a bare repository with the commit, and the file was never checked out.
    let cache = source.cache_dir();
    assert!(cache.starts_with(state.0.join("git")));
    assert_eq!(git(&cache, &["rev-parse", "refs/ovsmesh/tip"]), first);
    assert!(!cache.join("mesh").exists());
    // A pushed edit is fetched on the next poll (the cache is reused).
    let second = repo.commit("mesh/topology.toml", "# two\n", None);
    let fetched = source.fetch(&NO).unwrap();
    assert_eq!(fetched.commit, second);
    assert_eq!(fetched.text.as_deref(), Ok("# two\n"));
    assert_eq!(git(&cache, &["rev-parse", "refs/ovsmesh/tip"]), second);
    // A commit without the file: fetched, with the reason there is no text.
    repo.commit("other.txt", "x", None);
    git(&repo.work, &["rm", "-q", "mesh/topology.toml"]);
    let third = repo.commit("other.txt", "y", None);
    let fetched = source.fetch(&NO).unwrap();
    assert_eq!(fetched.commit, third);
    assert_eq!(
        fetched.text,
        Err("no file mesh/topology.toml in the commit".to_string())
    );
    // A ref that is not there, and a daemon that is gone: unreachable, with the reason.
    let mut missing = remote(&daemon.url("mesh.git"), &state);
    missing.reference = "prod".into();
    let error = missing.fetch(&NO).unwrap_err();
    assert!(error.reason.contains("refs/heads/prod"), "{error}");
    let url = daemon.url("mesh.git");
    drop(daemon);
    let error = remote(&url, &state).fetch(&NO).unwrap_err();
    assert!(error.to_string().starts_with(&url), "{error}");
}

#[test]
fn only_commits_signed_by_an_allowed_key_are_trusted() {
    let repo = Repo::new();
    let state = TempDir::new("state");
    let keys = TempDir::new("keys");
    let ops = Key::new(&keys.0, "ops");
    let stranger = Key::new(&keys.0, "stranger");
    let signers = AllowedSigners::parse(&ops.allowed("ops@example.org"));
    let source = remote(&repo.url(), &state);

    repo.commit("mesh/topology.toml", "# signed\n", Some(&ops));
    let fetched = source.fetch(&NO).unwrap();
    assert!(fetched.signature.is_some());
    assert_eq!(
        trust(Some(&signers), &fetched),
        Ok(Some("ops@example.org".to_string()))
    );
    // git itself agrees (ssh-keygen -Y verify with the same allowed-signers file).
    let allowed = keys.0.join("allowed_signers");
    std::fs::write(&allowed, ops.allowed("ops@example.org")).unwrap();
    let config = format!("gpg.ssh.allowedSignersFile={}", allowed.display());
    git(&repo.work, &["-c", &config, "verify-commit", "HEAD"]);
    // Without signers required, any commit is trusted (unsigned).
    assert_eq!(trust(None, &fetched), Ok(None));

    repo.commit("mesh/topology.toml", "# unsigned\n", None);
    let fetched = source.fetch(&NO).unwrap();
    assert_eq!(trust(Some(&signers), &fetched), Err(Untrusted::Unsigned));

    repo.commit("mesh/topology.toml", "# stranger\n", Some(&stranger));
    let fetched = source.fetch(&NO).unwrap();
    assert!(matches!(
        trust(Some(&signers), &fetched),
        Err(Untrusted::UnknownKey(ref fp)) if fp.starts_with("SHA256:")
    ));

    // The signed bytes altered (the message of the commit): the signature does not verify.
    repo.commit("mesh/topology.toml", "# signed again\n", Some(&ops));
    let mut fetched = source.fetch(&NO).unwrap();
    let (_, signed) = fetched.signature.as_mut().unwrap();
    let at = signed.len() - 2;
    signed[at] ^= 1;
    assert!(matches!(
        trust(Some(&signers), &fetched),
        Err(Untrusted::Bad { .. })
    ));

    // A key listed only for another namespace, or no longer valid, is not trusted.
    let fetched = source.fetch(&NO).unwrap();
    let file_only = AllowedSigners::parse(&format!(
        "ops@example.org namespaces=\"file\" {}\n",
        ops.public
    ));
    assert!(matches!(
        trust(Some(&file_only), &fetched),
        Err(Untrusted::UnknownKey(_))
    ));
    let expired = AllowedSigners::parse(&format!(
        "ops@example.org valid-before=\"20200101\" {}\n",
        ops.public
    ));
    assert!(matches!(
        trust(Some(&expired), &fetched),
        Err(Untrusted::Expired { .. })
    ));
    assert_eq!(source::short(&fetched.commit).len(), 12);
}
