//! End-to-end: `ovsmesh daemon` keeping a lab host converged — drift, restarts,
//! topology edits, server restarts and a clean SIGTERM — with no manual apply.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use ovsmesh::lab::{self, Lab};
use ovsmesh::netns;

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    lab: Lab,
    file: PathBuf,
    daemon: Option<Daemon>,
    metrics_port: u16,
    host: String,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.daemon.take();
        let _ = runtime().block_on(lab::down(&self.lab));
    }
}

fn seed(file: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("topology")
            .join(file),
    )
    .unwrap()
}

fn start(text: &str, host: &str, docker: bool) -> Setup {
    let topology = topology(text);
    let lab = Lab::new(&unique("d"));
    // The guard first: a failing `up` is torn down too.
    let mut setup = Setup {
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
    setup.spawn(host);
    assert!(
        eventually(Duration::from_secs(10), || setup
            .metric("ovsmesh_reconciles_total{result=\"ok\"}")
            >= 1.0),
        "the daemon never reconciled: {}",
        setup.log()
    );
    setup
}

impl Setup {
    fn spawn(&mut self, host: &str) {
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
            .args(["--resync", "300s", "--log-format", "json"])
            .arg("--metrics")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.daemon = Some(Daemon { child, log });
        self.host = host.to_string();
    }

    fn log(&self) -> String {
        self.daemon
            .as_ref()
            .map(|d| std::fs::read_to_string(&d.log).unwrap_or_default())
            .unwrap_or_default()
    }

    fn ns(&self, name: &str) -> std::fs::File {
        netns::open(&format!("{}-{name}", self.lab.prefix)).unwrap()
    }

    /// A metric's value, read from inside the lab host's namespace (where the daemon listens).
    fn metric(&self, name: &str) -> f64 {
        let ns = netns::open(&self.lab.host_ns(&self.host)).unwrap();
        let port = self.metrics_port;
        let text = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: a short-lived thread of the test.
                    unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
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

    fn vsctl(&self, host: &str, args: &[&str]) -> String {
        let db = format!("--db={}", self.lab.ovsdb_remote(host));
        let mut all = vec![db.as_str(), "--timeout=10"];
        all.extend_from_slice(args);
        run("ovs-vsctl", &all)
    }

    fn pings(&self, from: &str, address: &str) -> bool {
        netns::output(
            &self.ns(from),
            "ping",
            &["-n", "-c", "1", "-W", "1", address],
        )
        .is_ok_and(|o| o.status.success())
    }

    fn reaches(&self, from: &str, address: &str) -> bool {
        eventually(Duration::from_secs(8), || self.pings(from, address))
    }

    fn port_of(&self, host: &str, container: &str) -> String {
        let twin = self
            .lab
            .twin(&topology(&std::fs::read_to_string(&self.file).unwrap()));
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
        assert!(
            !name.is_empty(),
            "{container} has no port on {host}; twin has {}",
            twin.containers.len()
        );
        name
    }

    fn restart_daemon_process(&self, pidfile: &str, program: &str, args: Vec<String>) {
        let dir = self.lab.host_dir(&self.host);
        let pid = std::fs::read_to_string(dir.join(pidfile)).unwrap();
        run("kill", &["-9", pid.trim()]);
        assert!(eventually(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{}",
            pid.trim()
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

#[test]
fn daemon_undoes_drift_follows_restarts_and_edits_and_exits_cleanly() {
    let mut setup = start(&seed("lab.toml"), "node1", false);
    let mac = |s: &Setup| {
        netns::output(&s.ns("blue1"), "cat", &["/sys/class/net/eth1/address"])
            .unwrap()
            .stdout
    };
    let blue1_mac = mac(&setup);

    // del-port of an owned port: restored, and traffic flows.
    let port = setup.port_of("node1", "blue1");
    setup.vsctl("node1", &["del-port", &port]);
    assert!(
        eventually(Duration::from_secs(3), || setup
            .vsctl("node1", &["list-ports", "ovs0"])
            .contains("vblue1")),
        "{}",
        setup.log()
    );
    assert!(setup.reaches("blue1", "192.168.0.2"));

    // A changed tag: restored.
    let edge = setup.vsctl(
        "node1",
        &[
            "--columns=name",
            "--bare",
            "find",
            "port",
            "external_ids:ovsmesh-container=edge",
            "tag=100",
        ],
    );
    let edge = edge.trim().to_string();
    setup.vsctl("node1", &["set", "port", &edge, "tag=999"]);
    assert!(eventually(Duration::from_secs(3), || setup
        .vsctl("node1", &["get", "port", &edge, "tag"])
        .trim()
        == "100"));

    // An owned route deleted by hand: restored.
    let host_ns = netns::open(&setup.lab.host_ns("node1")).unwrap();
    netns::output(&host_ns, "ip", &["route", "del", "172.17.2.0/24"]).unwrap();
    let route_back = || {
        let out = netns::output(&host_ns, "ip", &["route", "show", "172.17.2.0/24"]).unwrap();
        String::from_utf8_lossy(&out.stdout).contains("proto 79")
    };
    assert!(
        eventually(Duration::from_secs(3), route_back),
        "{}",
        setup.log()
    );

    // A foreign port is left alone.
    setup.vsctl(
        "node1",
        &[
            "add-port",
            "ovs0",
            "handmade",
            "--",
            "set",
            "interface",
            "handmade",
            "type=internal",
        ],
    );
    setup.vsctl("node1", &["set", "port", &edge, "tag=998"]);
    assert!(eventually(Duration::from_secs(3), || setup
        .vsctl("node1", &["get", "port", &edge, "tag"])
        .trim()
        == "100"));
    assert!(setup
        .vsctl("node1", &["list-ports", "ovs0"])
        .contains("handmade"));

    // The container's namespace deleted and recreated: re-plumbed, same MAC, traffic flows.
    let name = format!("{}-blue1", setup.lab.prefix);
    run("ip", &["netns", "del", &name]);
    std::thread::sleep(Duration::from_millis(300));
    run("ip", &["netns", "add", &name]);
    assert!(setup.reaches("blue1", "192.168.0.2"), "{}", setup.log());
    assert_eq!(mac(&setup), blue1_mac);
    // Traffic flows once the veth and port exist; the re-plumb is counted when
    // that reconcile returns (after waiting for vswitchd), so wait for it.
    assert!(eventually(Duration::from_secs(5), || setup
        .metric("ovsmesh_container_replumbs_total")
        >= 1.0));

    // A topology edit adding a container: attached without restarting the daemon.
    run(
        "ip",
        &["netns", "add", &format!("{}-extra", setup.lab.prefix)],
    );
    let edited = seed("lab.toml") + "\n[containers.extra]\nhost = \"node1\"\nnetns = \"extra\"\nnetwork = \"blue\"\naddress = \"192.168.0.50\"\n";
    let tmp = setup.lab.dir.join("topology.toml.new");
    std::fs::write(&tmp, &edited).unwrap();
    std::fs::rename(&tmp, &setup.file).unwrap();
    assert!(setup.reaches("extra", "192.168.0.2"), "{}", setup.log());
    assert!(setup.metric("ovsmesh_topology_generation") >= 2.0);

    // A broken edit: rejected with its located error, the old state kept.
    std::fs::write(&setup.file, edited.replace("vlan = 100", "vlan = 5000")).unwrap();
    assert!(eventually(Duration::from_secs(3), || setup
        .metric("ovsmesh_reload_errors_total")
        >= 1.0));
    assert!(
        setup.log().contains("VLAN tag 5000 is outside 1..4094"),
        "{}",
        setup.log()
    );
    assert!(setup.pings("extra", "192.168.0.2"));
    std::fs::write(&setup.file, &edited).unwrap();

    // ovsdb-server restarted: the daemon reconnects, and drift is fixed again.
    let dir = setup.lab.host_dir("node1");
    let path = |f: &str| dir.join(f).display().to_string();
    setup.restart_daemon_process(
        "ovsdb.pid",
        "ovsdb-server",
        vec![
            path("conf.db"),
            format!("--remote=punix:{}", path("db.sock")),
            format!("--pidfile={}", path("ovsdb.pid")),
            format!("--unixctl={}", path("ovsdb.ctl")),
            format!("--log-file={}", path("ovsdb.log")),
            "--detach".into(),
        ],
    );
    let port = setup.port_of("node1", "pod1");
    setup.vsctl("node1", &["del-port", &port]);
    assert!(
        eventually(Duration::from_secs(8), || setup
            .vsctl("node1", &["list-ports", "obr0"])
            .contains("vpod1")),
        "{}",
        setup.log()
    );

    // ovs-vswitchd restarted: internal ports come back empty; the daemon re-converges.
    setup.restart_daemon_process(
        "vswitchd.pid",
        "ovs-vswitchd",
        vec![
            setup.lab.ovsdb_remote("node1"),
            format!("--pidfile={}", path("vswitchd.pid")),
            format!("--unixctl={}", path("vswitchd.ctl")),
            format!("--log-file={}", path("vswitchd.log")),
            "--detach".into(),
        ],
    );
    assert!(
        setup.reaches("blue2", "192.168.0.254"),
        "gateway address back on node1: {}",
        setup.log()
    );
    assert!(setup.reaches("blue1", "192.168.0.2"));
    assert!(setup.reaches("pod1", "172.17.2.10"));

    // SIGTERM: exit 0, the network left intact.
    let mut daemon = setup.daemon.take().unwrap();
    run("kill", &["-TERM", &daemon.child.id().to_string()]);
    let status = daemon.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(setup.pings("blue1", "192.168.0.2"));
    assert!(setup.pings("pod1", "172.17.3.10"));
    drop(daemon);
}

#[test]
fn docker_restart_is_healed_without_a_manual_apply() {
    let setup = start(&seed("pipework-vlan.toml"), "A", true);
    let socket = setup.lab.docker_socket().unwrap();
    let docker = |args: &[&str]| {
        let mut all = vec!["-H", socket.as_str()];
        all.extend_from_slice(args);
        run("docker", &all)
    };
    let test1 = format!("{}-test1", setup.lab.prefix);
    let test3 = format!("{}-test3", setup.lab.prefix);
    let reaches = || {
        eventually(Duration::from_secs(8), || {
            Command::new("docker")
                .args([
                    "-H",
                    &socket,
                    "exec",
                    &test3,
                    "ping",
                    "-c",
                    "1",
                    "-W",
                    "1",
                    "192.168.0.1",
                ])
                .output()
                .is_ok_and(|o| o.status.success())
        })
    };
    let mac = docker(&["exec", &test1, "cat", "/sys/class/net/eth1/address"]);
    assert!(reaches());
    docker(&["restart", "-t", "0", &test1]);
    assert!(reaches(), "{}", setup.log());
    assert_eq!(
        mac,
        docker(&["exec", &test1, "cat", "/sys/class/net/eth1/address"])
    );
    docker(&["stop", "-t", "0", &test1]);
    assert!(eventually(Duration::from_secs(5), || setup
        .metric("ovsmesh_containers_waiting")
        >= 1.0));
    docker(&["start", &test1]);
    assert!(reaches(), "{}", setup.log());
    // Counted when the reconcile returns, which can be after traffic flows.
    assert!(eventually(Duration::from_secs(5), || setup
        .metric("ovsmesh_container_replumbs_total")
        >= 2.0));
}

/// The daemon remembers which process each running Docker container is, so it
/// need not ask Docker every reconcile; a rename keeps the process, so the
/// daemon must forget it then. Otherwise a new container under the old name
/// would be taken for the renamed one and never plumbed.
#[test]
fn a_new_container_under_a_renamed_ones_name_is_plumbed() {
    let setup = start(&seed("pipework-vlan.toml"), "A", true);
    let socket = setup.lab.docker_socket().unwrap();
    let docker = |args: &[&str]| {
        let mut all = vec!["-H", socket.as_str()];
        all.extend_from_slice(args);
        run("docker", &all)
    };
    let test1 = format!("{}-test1", setup.lab.prefix);
    let renamed = format!("{}-old1", setup.lab.prefix);
    let has_eth1 = |name: &str| {
        Command::new("docker")
            .args([
                "-H",
                &socket,
                "exec",
                name,
                "cat",
                "/sys/class/net/eth1/address",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // `start` waited for the start-up reconcile: the daemon has seen test1 running.
    assert!(eventually(Duration::from_secs(10), || has_eth1(&test1)));
    docker(&["rename", &test1, &renamed]);
    assert!(
        eventually(Duration::from_secs(10), || setup
            .metric("ovsmesh_containers_waiting")
            >= 1.0),
        "the renamed container still counted as {test1}: {}",
        setup.log()
    );
    ovsmesh::lab::docker::run_container(&setup.lab, &socket, &test1).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || has_eth1(&test1)),
        "the new {test1} was not plumbed: {}",
        setup.log()
    );
    assert!(eventually(Duration::from_secs(5), || setup
        .metric("ovsmesh_containers_waiting")
        == 0.0));
}
