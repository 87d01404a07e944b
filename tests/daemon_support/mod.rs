//! Harness of the daemon tests: a lab (real OVS per host), the topology file in
//! the lab's dir, and `ovsmesh daemon --lab` for one host with its JSON log and
//! metrics endpoint. Everything is torn down on drop, also when a test fails
//! (the daemon log, the host's OVS logs and its state are printed then).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use ovsmesh::lab::{self, Lab};
use ovsmesh::netns;

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Setup {
    pub lab: Lab,
    pub file: PathBuf,
    pub daemon: Option<Daemon>,
    pub metrics_port: u16,
    pub host: String,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- daemon log\n{}", self.log());
            for file in ["vswitchd.log", "ovsdb.log"] {
                let path = self.lab.host_dir(&self.host).join(file);
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- {} {file} (last lines)", self.host);
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
            eprintln!("--- {} state\n{}", self.host, self.host_state());
        }
        self.daemon.take();
        let _ = runtime().block_on(lab::down(&self.lab));
    }
}

/// How long a test awaits a condition: ample for a loaded CI machine; a passing
/// test never waits for it, a failing one reports which condition did not hold.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A lab of `text`, and its daemon for `host`, reconciled once.
pub fn start(text: &str, host: &str, docker: bool) -> Setup {
    let setup = prepare(text, host, docker);
    setup_daemon(setup, &[], &[])
}

/// A lab of `text` with its topology file, no daemon yet.
pub fn prepare(text: &str, host: &str, docker: bool) -> Setup {
    let topology = topology(text);
    let lab = Lab::new(&unique("d"));
    // The guard first: a failing `up` is torn down too.
    let setup = Setup {
        file: lab.dir.join("topology.toml"),
        lab,
        daemon: None,
        metrics_port: 9475,
        host: host.to_string(),
    };
    let report = runtime()
        .block_on(lab::up(&setup.lab, &topology, docker))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.outcomes.values().all(|o| !o.failed()));
    std::fs::write(&setup.file, text).unwrap();
    setup
}

/// Start the daemon (with extra arguments and environment) and wait for its first reconcile.
pub fn setup_daemon(mut setup: Setup, args: &[&str], env: &[(&str, &str)]) -> Setup {
    let host = setup.host.clone();
    setup.spawn_with(&host, args, env);
    assert!(
        eventually(Duration::from_secs(20), || setup
            .metric("ovsmesh_reconciles_total{result=\"ok\"}")
            >= 1.0),
        "the daemon never reconciled: {}",
        setup.log()
    );
    setup
}

impl Setup {
    pub fn spawn(&mut self, host: &str) {
        self.spawn_with(host, &[], &[]);
    }

    pub fn spawn_with(&mut self, host: &str, args: &[&str], env: &[(&str, &str)]) {
        let log = self.lab.dir.join(format!("daemon-{host}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
            .args([
                "daemon",
                self.file.to_str().unwrap(),
                "--host",
                host,
                "--lab",
                &self.lab.prefix,
            ])
            .args(["--log-format", "json"])
            .args(
                (!args.contains(&"--resync"))
                    .then_some(["--resync", "300s"])
                    .into_iter()
                    .flatten(),
            )
            .arg("--metrics")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.daemon = Some(Daemon { child, log });
        self.host = host.to_string();
    }

    pub fn log(&self) -> String {
        self.daemon
            .as_ref()
            .map(|d| std::fs::read_to_string(&d.log).unwrap_or_default())
            .unwrap_or_default()
    }

    /// The daemon's log lines (JSON), parsed.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn ns(&self, name: &str) -> std::fs::File {
        netns::open(&format!("{}-{name}", self.lab.prefix)).unwrap()
    }

    pub fn host_ns(&self) -> std::fs::File {
        netns::open(&self.lab.host_ns(&self.host)).unwrap()
    }

    /// Run a command in a lab namespace (a container's, or the host's with `None`).
    pub fn run_in(&self, ns: Option<&str>, program: &str, args: &[&str]) -> String {
        let netns = ns.map_or_else(|| self.host_ns(), |n| self.ns(n));
        let out = netns::output(&netns, program, args).unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} in {ns:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Links, addresses and routes of the daemon's host, for failure messages.
    pub fn host_state(&self) -> String {
        let Ok(ns) = netns::open(&self.lab.host_ns(&self.host)) else {
            return String::new();
        };
        [["-br", "link"], ["-br", "addr"], ["route", "show"]]
            .iter()
            .map(|args| {
                netns::output(&ns, "ip", args)
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("")
    }

    /// A GET of the daemon's listener, from inside the lab host's namespace (where it listens).
    pub fn get(&self, path: &str) -> String {
        let Ok(ns) = netns::open(&self.lab.host_ns(&self.host)) else {
            return String::new();
        };
        let port = self.metrics_port;
        let request = format!("GET {path} HTTP/1.0\r\n\r\n");
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: a short-lived thread of the test.
                    unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
                    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                    stream.write_all(request.as_bytes()).ok()?;
                    let mut text = String::new();
                    stream.read_to_string(&mut text).ok()?;
                    Some(text)
                })
                .join()
                .unwrap()
        })
        .unwrap_or_default()
    }

    /// A metric's value (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        self.get("/metrics")
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// Reconciles so far, successful or not.
    pub fn reconciles(&self) -> f64 {
        self.metric("ovsmesh_reconciles_total{result=\"ok\"}")
            + self.metric("ovsmesh_reconciles_total{result=\"error\"}")
    }

    /// Wait until no reconcile has run for `quiet`.
    pub fn settle(&self, quiet: Duration) {
        let mut last = self.reconciles();
        let mut since = std::time::Instant::now();
        let deadline = since + Duration::from_secs(30);
        while since.elapsed() < quiet {
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon never settled: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
            let now = self.reconciles();
            if now != last {
                last = now;
                since = std::time::Instant::now();
            }
        }
    }

    pub fn vsctl(&self, host: &str, args: &[&str]) -> String {
        lab_vsctl(&self.lab, host, args)
    }

    /// The lab's Docker CLI (its private engine); panics when the command fails.
    pub fn docker(&self, args: &[&str]) -> String {
        lab_docker(&self.lab, args)
    }

    /// The lab's Docker CLI, for conditions awaited: whether the command succeeded.
    pub fn docker_succeeds(&self, args: &[&str]) -> bool {
        let socket = self.lab.docker_socket().expect("a lab with Docker");
        Command::new("docker")
            .args(["-H", socket.as_str()])
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    pub fn pings(&self, from: &str, address: &str) -> bool {
        netns::output(
            &self.ns(from),
            "ping",
            &["-n", "-c", "1", "-W", "1", address],
        )
        .is_ok_and(|o| o.status.success())
    }

    /// Traffic flows within `patience` (a condition awaited, not a window for a quiet machine).
    pub fn reaches_within(&self, from: &str, address: &str, patience: Duration) -> bool {
        eventually(patience, || self.pings(from, address))
    }

    pub fn reaches(&self, from: &str, address: &str) -> bool {
        self.reaches_within(from, address, PATIENCE)
    }

    /// ovs-vswitchd of the daemon's host has applied the database (`cur_cfg`
    /// caught up with `next_cfg`) and opened every interface (each has an ofport).
    pub fn vswitchd_caught_up(&self) -> bool {
        let db = format!("--db={}", self.lab.ovsdb_remote(&self.host));
        let query = |table: &str, columns: &str| {
            Command::new("ovs-vsctl")
                .args([db.as_str(), "--timeout=5", "--format=csv", "--data=bare"])
                .args([
                    "--no-headings",
                    &format!("--columns={columns}"),
                    "list",
                    table,
                ])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        let Some(cfg) = query("Open_vSwitch", "next_cfg,cur_cfg") else {
            return false;
        };
        let Some(ofports) = query("Interface", "ofport") else {
            return false;
        };
        let mut cfg = cfg.trim().split(',');
        cfg.next() == cfg.next()
            && ofports
                .lines()
                .all(|p| p.trim().parse::<i64>().is_ok_and(|p| p > 0))
    }

    /// `ovsmesh status` finds the daemon's host converged.
    pub fn converged(&self) -> bool {
        Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
            .args(["status", self.file.to_str().unwrap(), "--host", &self.host])
            .args(["--lab", &self.lab.prefix])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    pub fn port_of(&self, host: &str, container: &str) -> String {
        let observed = self.vsctl(
            host,
            &[
                "--columns=name",
                "--bare",
                "find",
                "port",
                &format!("external_ids:ovsmesh-container={container}"),
            ],
        );
        let name = observed.trim().to_string();
        assert!(!name.is_empty(), "{container} has no port on {host}");
        name
    }

    /// The VLAN port (tag 100) of lab.toml's container `edge` on node1.
    pub fn edge_port(&self) -> String {
        self.vsctl(
            "node1",
            &[
                "--columns=name",
                "--bare",
                "find",
                "port",
                "external_ids:ovsmesh-container=edge",
                "tag=100",
            ],
        )
        .trim()
        .to_string()
    }

    /// The PID in one of the daemon host's OVS pid files.
    pub fn ovs_pid(&self, pidfile: &str) -> String {
        let dir = self.lab.host_dir(&self.host);
        std::fs::read_to_string(dir.join(pidfile))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn restart_daemon_process(&self, pidfile: &str, program: &str, args: Vec<String>) {
        let dir = self.lab.host_dir(&self.host);
        let pid = self.ovs_pid(pidfile);
        run("kill", &["-9", &pid]);
        assert!(eventually(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()));
        let ns = netns::open(&self.lab.host_ns(&self.host)).unwrap();
        let out = netns::command(&ns, program)
            .env("OVS_RUNDIR", &dir)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Sends SIGCONT to a stopped process when dropped (also when the test fails).
pub struct Resume(pub String);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}
