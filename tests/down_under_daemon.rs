//! `ovsmesh down` while the daemon of the same mesh keeps the host: refused,
//! naming the daemon, exit 1, nothing changed — the daemon would put it all
//! back — unless `--force`. Once the daemon is stopped (SIGTERM, as systemd
//! does) or gone, `down` runs. ovsdb-server only; the daemon and the CLI run in
//! the host's namespace.

mod common;
mod one_host;

use std::process::{Child, Output, Stdio};
use std::time::Duration;

use common::*;
use one_host::OneHost;

const TOPOLOGY: &str = r#"
[mesh]
name = "{mesh}"
[hosts.A]
underlay_address = "192.0.2.1/24"
[hosts.B]
underlay_address = "192.0.2.2/24"
[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
[containers.c1]
host = "A"
netns = "{c1}"
network = "blue"
address = "192.168.0.1"
[containers.c2]
host = "B"
network = "blue"
address = "192.168.0.2"
"#;

struct Setup(OneHost);

impl Setup {
    fn new() -> Self {
        let setup = Setup(OneHost::new());
        setup.0.write(TOPOLOGY);
        setup
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        self.0.command(args)
    }

    fn daemon(&self) -> Daemon {
        Daemon(
            self.command(&["daemon"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn down(&self, extra: &[&str]) -> Output {
        let mut args = vec!["down", "--no-wait"];
        args.extend_from_slice(extra);
        self.command(&args).output().unwrap()
    }

    /// The mesh's bridge is there (the daemon has applied the topology).
    fn applied(&self) -> bool {
        self.0
            .server
            .vsctl(&["list-br"])
            .lines()
            .any(|b| b == "ovs0")
    }
}

/// The daemon (`ip netns exec` execs it: same process), killed if a test fails.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The daemon's pid.
fn pid(daemon: &Daemon) -> String {
    daemon.0.id().to_string()
}

#[test]
#[ignore = "needs root + OVS"]
fn down_is_refused_while_the_meshs_daemon_keeps_the_host() {
    let setup = Setup::new();
    let mut daemon = setup.daemon();
    assert!(
        eventually(Duration::from_secs(20), || setup.applied()),
        "the daemon never applied"
    );
    let out = setup.down(&[]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let refusal = format!(
        "refusing to take host A down: the daemon of mesh {} keeps it (pid {})",
        setup.0.mesh,
        pid(&daemon)
    );
    assert!(text.contains(&refusal), "{text}");
    assert!(text.contains("--force"), "{text}");
    assert!(setup.applied(), "nothing was changed");

    // Stopped the documented way, the daemon is gone and `down` runs.
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    let status = daemon.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the daemon exits 0 on SIGTERM");
    let out = setup.down(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!setup.applied());
}

#[test]
#[ignore = "needs root + OVS"]
fn down_force_runs_under_a_daemon_and_a_killed_daemons_record_blocks_nothing() {
    let setup = Setup::new();
    let mut daemon = setup.daemon();
    assert!(eventually(Duration::from_secs(20), || setup.applied()));
    let out = setup.down(&["--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // A daemon killed outright leaves its record behind: it counts for nothing.
    let _ = daemon.0.kill();
    let _ = daemon.0.wait();
    let out = setup.down(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("refusing"), "{}", stderr(&out));
}
