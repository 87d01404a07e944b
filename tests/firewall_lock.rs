//! A held xtables lock (`flock /run/xtables.lock …`) on a host whose iptables
//! is iptables-legacy (which takes the lock for every change): `apply` fails in
//! bounded time with a message naming the lock and its holder, and succeeds
//! once the lock is free; a daemon waiting on it exits on SIGTERM within 2 s.
//!
//! "iptables-legacy is the backend in use" is made the way Debian's
//! alternatives make it: `iptables`, `iptables-save`, `iptables-restore` on
//! PATH are xtables-legacy-multi. The lock is the real one, held for a few
//! seconds at most (both tests take turns).

mod common;
mod daemon_support;
mod ownership;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

/// One lock holder at a time in this binary.
static LOCK: Mutex<()> = Mutex::new(());

/// `flock /run/xtables.lock`, held until dropped (its whole process group is killed).
struct HeldLock {
    child: Child,
}

impl HeldLock {
    fn take() -> Self {
        let mut child = Command::new("flock")
            .args(["/run/xtables.lock", "sh", "-c", "echo held; exec sleep 60"])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held");
        Self { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        // SAFETY: signals the process group this test started.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// A directory whose iptables programs are iptables-legacy, and PATH with it first.
struct LegacyPath {
    dir: PathBuf,
}

impl LegacyPath {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("ovsmesh-legacy-"));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["iptables", "iptables-save", "iptables-restore"] {
            std::os::unix::fs::symlink("/usr/sbin/xtables-legacy-multi", dir.join(name)).unwrap();
        }
        Self { dir }
    }

    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
}

impl Drop for LegacyPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Wait for `child` at most `limit`; kill it past that. Its exit code, or `None` when killed.
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root + OVS + iptables-legacy"]
fn apply_under_a_held_xtables_lock_fails_in_bounded_time_naming_the_lock() {
    let _turn = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let host = ownership::host();
    let mesh = ownership::Mesh::new(&host, 1);
    let legacy = LegacyPath::new();
    let apply = || {
        Command::new("ip")
            .args(["netns", "exec", &host.netns.name])
            .arg(env!("CARGO_BIN_EXE_ovsmesh"))
            .args(["apply", "--host", "A"])
            .arg(&mesh.file)
            .env("OVSMESH_OVSDB", host.server.remote())
            .env("PATH", legacy.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let lock = HeldLock::take();
    let started = Instant::now();
    let mut child = apply();
    let code = wait_at_most(&mut child, Duration::from_secs(30));
    let took = started.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        code,
        Some(1),
        "apply under the lock: exit {code:?} after {took:?}: {stderr}"
    );
    eprintln!("apply under the held lock: exit {code:?} after {took:?}");
    assert!(took < Duration::from_secs(15), "bounded: {took:?}");
    let expected = format!(
        "failed: firewall ruleset: iptables-restore: the xtables lock /run/xtables.lock is held by pid {} (flock /run/xtables.lock sh -c echo held; exec sleep 60)",
        lock.pid()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");

    drop(lock);
    let mut child = apply();
    assert_eq!(wait_at_most(&mut child, Duration::from_secs(30)), Some(0));
    let rules = host.netns.exec("iptables-legacy-save", &[]);
    assert!(
        rules.contains(&format!("ovsmesh:{}", mesh.name)),
        "written through iptables-legacy: {rules}"
    );
    host.netns.exec("iptables-legacy", &["-F"]);
    host.netns.exec("iptables-legacy", &["-F", "-t", "nat"]);
}

/// Children of `pid` whose command starts with `iptables`: (pid, command).
fn iptables_children(pid: u32) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid …
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let (child, comm) = comm.split_once(" (").unwrap_or_default();
        let ppid = rest.split_whitespace().nth(1).unwrap_or_default();
        if ppid == pid.to_string() && comm.starts_with("iptables") {
            found.push((child.to_string(), comm.to_string()));
        }
    }
    found
}

#[test]
#[ignore = "needs root + OVS + iptables-legacy"]
fn a_daemon_waiting_on_the_xtables_lock_exits_on_sigterm_within_2_s() {
    let _turn = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut setup = daemon_support::prepare(&seed("lab.toml"), "node1", false);
    let legacy = LegacyPath::new();
    let _lock = HeldLock::take();
    let path = legacy.path();
    setup.spawn_with("node1", &[], &[("PATH", &path)]);
    let pid = setup.daemon.as_ref().unwrap().child.id();
    assert!(
        eventually(Duration::from_secs(30), || !iptables_children(pid)
            .is_empty()),
        "the daemon never reached the firewall: {}",
        setup.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    let waiting = iptables_children(pid);
    assert!(!waiting.is_empty(), "still waiting on the lock");
    let mut daemon = setup.daemon.take().unwrap();
    let sent = Instant::now();
    run("kill", &["-TERM", &pid.to_string()]);
    let code = wait_at_most(&mut daemon.child, Duration::from_secs(6));
    let took = sent.elapsed();
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    assert!(
        code.is_some(),
        "still running 6 s after SIGTERM ({waiting:?}): {log}"
    );
    eprintln!("daemon exited {took:?} after SIGTERM, waiting on {waiting:?}");
    assert!(took <= Duration::from_secs(2), "exit took {took:?}: {log}");
    assert_eq!(code, Some(0), "{log}");
    // Killed with the daemon's step, not left waiting out its `-w 5`.
    assert!(
        eventually(Duration::from_secs(1), || waiting.iter().all(
            |(child, _)| !std::path::Path::new(&format!("/proc/{child}")).exists()
        )),
        "{waiting:?} outlived the daemon"
    );
}
