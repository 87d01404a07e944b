//! `ovsmesh daemon` against an ovsdb-server that hangs (SIGSTOP) and resumes
//! (SIGCONT), and against a mesh lock another client holds: reconciles fail
//! (at the request deadline, or after waiting for the lock) and back off, the
//! daemon converges again once the server answers or the lock is free, and
//! the sessions it leaves on the server do not grow (the issue measured one
//! leaked session per failed reconcile).

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ovsmesh::lab::{self, Lab};

const TOPOLOGY: &str = r#"
[mesh]
name = "hang"
[hosts.node1]
underlay_address = "192.0.2.21/24"
[hosts.node2]
underlay_address = "192.0.2.22/24"
[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
[containers.blue1]
host = "node1"
netns = "blue1"
network = "blue"
address = "192.168.0.1"
[containers.blue2]
host = "node2"
netns = "blue2"
network = "blue"
address = "192.168.0.2"
"#;

const METRICS_PORT: u16 = 9476;

/// The lab, its daemon for node1, and node1's ovsdb-server continued if stopped.
struct Setup {
    lab: Lab,
    daemon: Option<Child>,
    log: std::path::PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.signal_server("-CONT");
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        let _ = runtime().block_on(lab::down(&self.lab));
    }
}

impl Setup {
    fn start() -> Self {
        let lab = Lab::new(&unique("h"));
        let log = lab.dir.join("daemon.log");
        let mut setup = Setup {
            lab,
            daemon: None,
            log,
        };
        let report = runtime()
            .block_on(lab::up(&setup.lab, &topology(TOPOLOGY), false))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(report.outcomes.values().all(|o| !o.failed()));
        let file = setup.lab.dir.join("topology.toml");
        std::fs::write(&file, TOPOLOGY).unwrap();
        let daemon = Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
            .arg("daemon")
            .arg(&file)
            .args(["--host", "node1", "--lab", &setup.lab.prefix])
            .args([
                "--timeout",
                "1s",
                "--resync",
                "300s",
                "--log-format",
                "json",
            ])
            .args(["--metrics", &format!("127.0.0.1:{METRICS_PORT}")])
            .env_remove("OVSMESH_OVSDB")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&setup.log).unwrap())
            .spawn()
            .unwrap();
        setup.daemon = Some(daemon);
        setup
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn server_pid(&self) -> String {
        let pidfile = self.lab.host_dir("node1").join("ovsdb.pid");
        std::fs::read_to_string(pidfile)
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn signal_server(&self, signal: &str) {
        let pid = self.server_pid();
        if !pid.is_empty() {
            let _ = Command::new("kill").args([signal, &pid]).status();
        }
    }

    /// Sessions node1's ovsdb-server holds (call only while it runs).
    fn sessions(&self) -> usize {
        let ctl = self.lab.host_dir("node1").join("ovsdb.ctl");
        let out = run("ovs-appctl", &["-t", ctl.to_str().unwrap(), "memory/show"]);
        out.split_whitespace()
            .find_map(|w| w.strip_prefix("sessions:"))
            .map_or(0, |n| n.parse().unwrap())
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db={}", self.lab.ovsdb_remote("node1"));
        let mut all = vec![db.as_str(), "--timeout=10"];
        all.extend_from_slice(args);
        run("ovs-vsctl", &all)
    }

    fn pings(&self) -> bool {
        let ns = format!("{}-blue1", self.lab.prefix);
        Command::new("ip")
            .args(["netns", "exec", &ns, "ping", "-n", "-c", "1", "-W", "1"])
            .arg("192.168.0.2")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// A metric of the daemon, read inside node1's namespace where it listens.
    fn metric(&self, name: &str) -> f64 {
        let ns = std::fs::File::open(format!("/run/netns/{}", self.lab.host_ns("node1"))).unwrap();
        let text = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: changes only this short-lived thread's namespace.
                    unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                    let mut stream =
                        std::net::TcpStream::connect(("127.0.0.1", METRICS_PORT)).ok()?;
                    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
                    let mut text = String::new();
                    stream.read_to_string(&mut text).ok()?;
                    Some(text)
                })
                .join()
                .unwrap()
        })
        .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

const OK: &str = "ovsmesh_reconciles_total{result=\"ok\"}";
const ERROR: &str = "ovsmesh_reconciles_total{result=\"error\"}";

#[test]
#[ignore = "needs root + OVS"]
fn daemon_backs_off_on_a_hung_server_recovers_when_it_resumes_and_leaks_no_sessions() {
    let setup = Setup::start();
    assert!(
        eventually(Duration::from_secs(10), || setup.metric(OK) >= 1.0),
        "the daemon never reconciled: {}",
        setup.log()
    );
    assert!(eventually(Duration::from_secs(10), || setup.pings()));
    // vswitchd, the daemon's monitor and its session.
    let baseline = setup.sessions();
    assert!(baseline >= 2, "sessions at start: {baseline}");

    // Hang the server; a reload makes the daemon reconcile against it.
    setup.signal_server("-STOP");
    let daemon_pid = setup.daemon.as_ref().unwrap().id().to_string();
    run("kill", &["-HUP", &daemon_pid]);
    let start = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || setup.metric(ERROR) >= 3.0),
        "reconciles against the hung server did not fail: {}",
        setup.log()
    );
    let errors = setup.metric(ERROR);
    let elapsed = start.elapsed().as_secs_f64();
    // Each failure waits for the 1 s deadline and then a growing backoff: no tight loop.
    assert!(
        errors <= elapsed + 1.0,
        "{errors} failed reconciles in {elapsed:.1} s"
    );
    let log = setup.log();
    assert!(
        log.contains("did not answer") && log.contains(&setup.lab.ovsdb_remote("node1")),
        "{log}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let ok_before = setup.metric(OK);
    setup.signal_server("-CONT");

    // Back: a reconcile succeeds, drift is undone again, traffic flows.
    assert!(
        eventually(Duration::from_secs(40), || setup.metric(OK) > ok_before),
        "no successful reconcile after the server resumed: {}",
        setup.log()
    );
    let port = setup.vsctl(&[
        "--columns=name",
        "--bare",
        "find",
        "port",
        "external_ids:ovsmesh-container=blue1",
    ]);
    let port = port.trim().to_string();
    setup.vsctl(&["del-port", &port]);
    assert!(
        eventually(Duration::from_secs(10), || setup
            .vsctl(&["list-ports", "ovs0"])
            .contains(&port)),
        "drift not undone after the server resumed: {}",
        setup.log()
    );
    assert!(eventually(Duration::from_secs(10), || setup.pings()));

    // The sessions of the failed reconciles are gone, and stay gone.
    assert!(
        eventually(Duration::from_secs(5), || setup.sessions() <= baseline),
        "sessions {} > {baseline} at start",
        setup.sessions()
    );
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        let now = setup.sessions();
        assert!(now <= baseline, "sessions grew: {now} > {baseline}");
    }

    // Failures that are not a missed deadline: another client holds the mesh lock.
    let rt = runtime();
    let remote = setup.lab.ovsdb_remote("node1");
    let mut holder = rt
        .block_on(ovsmesh::ovs::Session::open(&remote, "hang"))
        .unwrap();
    rt.block_on(holder.lock(Duration::from_secs(5))).unwrap();
    let errors_before = setup.metric(ERROR);
    run("kill", &["-HUP", &daemon_pid]);
    assert!(
        eventually(Duration::from_secs(15), || setup.metric(ERROR)
            >= errors_before + 3.0),
        "reconciles did not fail on the held lock: {}",
        setup.log()
    );
    assert!(
        setup.log().contains("is held by another client"),
        "{}",
        setup.log()
    );
    let held = setup.sessions();
    assert!(
        held <= baseline + 1,
        "each failed reconcile left its session: {held} > {baseline} + the holder"
    );
    let ok_before = setup.metric(OK);
    // Dropped with its runtime: nothing else would run its tasks to close the socket.
    drop(holder);
    drop(rt);
    assert!(
        eventually(Duration::from_secs(40), || setup.metric(OK) > ok_before),
        "no successful reconcile after the lock was released: {}",
        setup.log()
    );
    assert!(eventually(Duration::from_secs(5), || setup.sessions() <= baseline));
}
