//! Harness of the git-source tests: throwaway repositories made with the `git`
//! program (the product reads them with gix), SSH signing keys made with
//! `ssh-keygen`, and `git daemon` on 127.0.0.1. Everything lives in a temp dir
//! named after the process and removed on drop, also when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temp dir removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ovsmesh-git-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `git` with no user or system configuration and a fixed identity.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Operator")
        .env("GIT_AUTHOR_EMAIL", "ops@example.org")
        .env("GIT_COMMITTER_NAME", "Test Operator")
        .env("GIT_COMMITTER_EMAIL", "ops@example.org")
        .output()
        .unwrap_or_else(|e| panic!("git: {e} (is git installed?)"));
    assert!(
        out.status.success(),
        "git {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An SSH signing key made by `ssh-keygen`.
pub struct Key {
    pub private: PathBuf,
    pub public: String,
}

impl Key {
    pub fn new(dir: &Path, name: &str) -> Self {
        let private = dir.join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&private)
            .output()
            .expect("ssh-keygen (openssh-client)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = std::fs::read_to_string(private.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string();
        Self { private, public }
    }

    /// An allowed-signers line for this key (namespace git).
    pub fn allowed(&self, principal: &str) -> String {
        format!("{principal} namespaces=\"git\" {}\n", self.public)
    }
}

/// A bare repository (the remote) and a work tree that pushes `main` to it.
pub struct Repo {
    pub tmp: TempDir,
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Repo {
    pub fn new() -> Self {
        let tmp = TempDir::new("repo");
        let bare = tmp.0.join("mesh.git");
        let work = tmp.0.join("work");
        std::fs::create_dir_all(&bare).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Self { tmp, bare, work }
    }

    /// Commit `file` with `text` (signed with `key` through `ssh-keygen -Y sign`,
    /// as `git -c gpg.format=ssh` does), push it to `main`; the commit id.
    pub fn commit(&self, file: &str, text: &str, key: Option<&Key>) -> String {
        let path = self.work.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        git(&self.work, &["add", "-A"]);
        let message = format!("edit {file}");
        match key {
            Some(key) => {
                let signing = format!("user.signingkey={}", key.private.display());
                git(
                    &self.work,
                    &[
                        "-c",
                        "gpg.format=ssh",
                        "-c",
                        &signing,
                        "commit",
                        "-q",
                        "-S",
                        "--allow-empty",
                        "-m",
                        &message,
                    ],
                )
            }
            None => git(
                &self.work,
                &["commit", "-q", "--allow-empty", "-m", &message],
            ),
        };
        git(&self.work, &["push", "-q", "-f", "origin", "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
}

impl Default for Repo {
    fn default() -> Self {
        Self::new()
    }
}

/// `git daemon` serving a directory's repositories on 127.0.0.1; stopped on drop.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    pub fn serve(base: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // git-daemon itself (`git daemon` would run it as a child the drop cannot reach).
        let exec_path = git(base, &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "git daemon did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sshd` in a network namespace on 127.0.0.1:[`Sshd::PORT`], letting root in
/// with a key of its own only; stopped on drop. Its files (host key, client
/// key, known_hosts, config) live in a temp dir of their own.
pub struct Sshd {
    child: Child,
    pub dir: TempDir,
}

impl Sshd {
    pub const PORT: u16 = 2222;

    pub fn serve_in(netns: &str) -> Self {
        let dir = TempDir::new("sshd");
        let host_key = Key::new(&dir.0, "host_key");
        let client = Key::new(&dir.0, "client_key");
        std::fs::write(
            dir.0.join("authorized_keys"),
            format!("{}\n", client.public),
        )
        .unwrap();
        std::fs::write(
            dir.0.join("known_hosts"),
            format!("[127.0.0.1]:{} {}\n", Self::PORT, host_key.public),
        )
        .unwrap();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nStrictModes no\n\
             UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n",
            port = Self::PORT,
            d = dir.0.display()
        );
        std::fs::write(dir.0.join("sshd_config"), config).unwrap();
        // The privilege separation directory sshd insists on.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(dir.0.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.0.join("sshd.log")).unwrap())
            .spawn()
            .expect("sshd (openssh-server)");
        let sshd = Self { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sshd.answers(netns) {
            assert!(
                Instant::now() < deadline,
                "sshd did not let the client in: {}",
                std::fs::read_to_string(sshd.dir.0.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        sshd
    }

    /// What `GIT_SSH_COMMAND` must be for a client to log in: this server's
    /// key in known_hosts (checked strictly), the client key, no agent or prompt.
    pub fn ssh_command(&self) -> String {
        format!(
            "ssh -F /dev/null -i {d}/client_key -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=yes -o UserKnownHostsFile={d}/known_hosts",
            d = self.dir.0.display()
        )
    }

    pub fn url(&self, repo: &Path) -> String {
        format!("ssh://root@127.0.0.1:{}{}", Self::PORT, repo.display())
    }

    fn answers(&self, netns: &str) -> bool {
        let mut command = vec!["netns", "exec", netns];
        let ssh = self.ssh_command();
        command.extend(ssh.split(' '));
        let port = Self::PORT.to_string();
        command.extend(["-p", &port, "root@127.0.0.1", "true"]);
        Command::new("ip")
            .args(&command)
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
