//! Test harness: real ovsdb-server / ovs-vswitchd instances, each in its own
//! temp dir (and network namespace for vswitchd), torn down on drop — also when
//! the test fails. Names carry the process id and a counter so parallel tests
//! and concurrent runs never collide.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this process and call, short enough for interfaces and netns.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `ovs-vsctl ARGS` against lab host `host`'s OVSDB; its output.
pub fn lab_vsctl(lab: &ovsmesh::lab::Lab, host: &str, args: &[&str]) -> String {
    let db = format!("--db={}", lab.ovsdb_remote(host));
    let mut all = vec![db.as_str(), "--timeout=10"];
    all.extend_from_slice(args);
    run("ovs-vsctl", &all)
}

/// `docker ARGS` against the lab's dockerd (a lab brought up with Docker); its output.
pub fn lab_docker(lab: &ovsmesh::lab::Lab, args: &[&str]) -> String {
    let socket = lab.docker_socket().expect("a lab with Docker");
    let mut all = vec!["-H", socket.as_str()];
    all.extend_from_slice(args);
    run("docker", &all)
}

pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kill_pidfile(path: &Path) {
    if let Ok(pid) = std::fs::read_to_string(path) {
        let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
    }
}

/// A private ovsdb-server on a unix socket (and optionally TCP on loopback).
pub struct OvsdbServer {
    pub dir: PathBuf,
    pub tcp_port: Option<u16>,
}

impl OvsdbServer {
    pub fn start(schema: Option<&Path>, tcp: bool) -> Self {
        let dir = std::env::temp_dir().join(unique("ovsmesh-test-"));
        std::fs::create_dir_all(&dir).unwrap();
        let schema = schema
            .map(Path::to_path_buf)
            .unwrap_or_else(|| "/usr/share/openvswitch/vswitch.ovsschema".into());
        let db = dir.join("conf.db");
        run(
            "ovsdb-tool",
            &["create", db.to_str().unwrap(), schema.to_str().unwrap()],
        );
        let mut server = Self {
            dir: dir.clone(),
            tcp_port: None,
        };
        let sock = format!("--remote=punix:{}", server.socket());
        let mut args = vec![
            db.to_str().unwrap().to_string(),
            sock,
            format!("--pidfile={}", dir.join("ovsdb.pid").display()),
            format!("--unixctl={}", dir.join("ovsdb.ctl").display()),
            format!("--log-file={}", dir.join("ovsdb.log").display()),
            "--detach".into(),
        ];
        if tcp {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            args.push(format!("--remote=ptcp:{port}:127.0.0.1"));
            server.tcp_port = Some(port);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("ovsdb-server", &args);
        server.vsctl(&["init"]);
        server
    }

    pub fn socket(&self) -> String {
        self.dir.join("db.sock").display().to_string()
    }

    pub fn remote(&self) -> String {
        format!("unix:{}", self.socket())
    }

    /// `ovs-vsctl --no-wait` against this server.
    pub fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.socket());
        let mut all = vec![db.as_str(), "--no-wait", "--timeout=10"];
        all.extend_from_slice(args);
        run("ovs-vsctl", &all)
    }

    pub fn kill(&self) {
        kill_pidfile(&self.dir.join("ovsdb.pid"));
    }
}

impl Drop for OvsdbServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
    owned: bool,
}

impl Netns {
    pub fn new(prefix: &str) -> Self {
        Self::named(&unique(prefix))
    }

    pub fn named(name: &str) -> Self {
        run("ip", &["netns", "add", name]);
        Self {
            name: name.to_string(),
            owned: true,
        }
    }

    /// A namespace someone else made (and deletes): not deleted on drop.
    pub fn existing(name: &str) -> Self {
        Self {
            name: name.to_string(),
            owned: false,
        }
    }

    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.owned {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .status();
        }
    }
}

/// Another tool at work in a namespace: a shell script (e.g. one that turns a
/// setting back off, pausing between writes), killed when dropped.
pub struct Fighter(std::process::Child);

impl Fighter {
    pub fn start(netns: &str, script: &str) -> Self {
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "sh", "-c", script])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for Fighter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ovs-vswitchd for a server, inside its own netns with its own OVS_RUNDIR.
pub struct Vswitchd {
    pub netns: Netns,
    /// Read at start: the pid file goes with the server's dir, which may be dropped first.
    pid: String,
}

impl Vswitchd {
    pub fn start(server: &OvsdbServer) -> Self {
        Self::spawn(server, Netns::new("omh"))
    }

    /// Run vswitchd in an existing namespace (which the caller keeps).
    pub fn start_in(server: &OvsdbServer, netns: &Netns) -> Self {
        Self::spawn(
            server,
            Netns {
                name: netns.name.clone(),
                owned: false,
            },
        )
    }

    fn spawn(server: &OvsdbServer, netns: Netns) -> Self {
        let dir = server.dir.clone();
        let db = format!("unix:{}", server.socket());
        let args = [
            "netns",
            "exec",
            netns.name.as_str(),
            "env",
            &format!("OVS_RUNDIR={}", dir.display()),
            "ovs-vswitchd",
            &db,
            &format!("--pidfile={}", dir.join("vswitchd.pid").display()),
            &format!("--unixctl={}", dir.join("vswitchd.ctl").display()),
            &format!("--log-file={}", dir.join("vswitchd.log").display()),
            "--detach",
        ];
        run("ip", &args);
        let pid = std::fs::read_to_string(dir.join("vswitchd.pid"))
            .unwrap()
            .trim()
            .to_string();
        Self { netns, pid }
    }
}

impl Drop for Vswitchd {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-9").arg(&self.pid).status();
    }
}

/// Poll `check` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn topology(text: &str) -> ovsmesh::topology::Topology {
    match ovsmesh::topology::parse(Path::new("test.toml"), text) {
        Ok(t) => t,
        Err(invalid) => panic!("{}", invalid.messages().join("\n")),
    }
}

/// Run `work` on a thread inside `netns` (the test process itself never moves).
pub fn in_netns<T: Send>(netns: &Netns, work: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(format!("/run/netns/{}", netns.name)).unwrap();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                use std::os::fd::AsRawFd;
                // SAFETY: changes only this short-lived thread's namespace.
                assert_eq!(
                    unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
                    0,
                    "setns"
                );
                work()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Apply (or take down) `topology` on `host` from inside the host's namespace.
pub fn engine_run(
    server: &OvsdbServer,
    host_ns: &Netns,
    topology: &ovsmesh::topology::Topology,
    host: &str,
    down: bool,
    wait: Option<Duration>,
) -> (ovsmesh::engine::Outcome, usize) {
    engine_run_with_docker(
        server,
        host_ns,
        topology,
        host,
        down,
        wait,
        "unix:///nonexistent/docker.sock",
    )
}

/// [`engine_run`] with a Docker engine.
pub fn engine_run_with_docker(
    server: &OvsdbServer,
    host_ns: &Netns,
    topology: &ovsmesh::topology::Topology,
    host: &str,
    down: bool,
    wait: Option<Duration>,
    docker: &str,
) -> (ovsmesh::engine::Outcome, usize) {
    in_netns(host_ns, || {
        runtime().block_on(async {
            let runtimes = ovsmesh::runtime::Runtimes::new(Some(docker));
            let target = ovsmesh::engine::HostTarget {
                topology,
                host,
                runtimes: &runtimes,
                wait,
            };
            let mut session = ovsmesh::ovs::Session::open(&server.remote(), &topology.mesh.name)
                .await
                .unwrap();
            let outcome = if down {
                ovsmesh::engine::down_host(&mut session, &target).await
            } else {
                ovsmesh::engine::apply_host(&mut session, &target).await
            };
            let outcome = outcome.unwrap_or_else(|e| panic!("{e}"));
            (outcome, session.write_transactions)
        })
    })
}

/// A private Docker engine with the busybox image, started and stopped the way
/// the lab does it (`ovsmesh::lab::docker`), under a lab directory of its own.
pub struct Dockerd {
    lab: ovsmesh::lab::Lab,
    pub socket: String,
}

impl Dockerd {
    pub fn start() -> Self {
        let lab = ovsmesh::lab::Lab::new(&unique("k"));
        std::fs::create_dir_all(&lab.dir).unwrap();
        let mut dockerd = Self {
            lab,
            socket: String::new(),
        };
        dockerd.socket =
            ovsmesh::lab::docker::ensure_engine(&dockerd.lab).unwrap_or_else(|e| panic!("{e}"));
        dockerd
    }

    pub fn docker(&self, args: &[&str]) -> String {
        let mut all = vec!["-H", self.socket.as_str()];
        all.extend_from_slice(args);
        run("docker", &all)
    }

    /// Run a container with no network, sleeping.
    pub fn run_container(&self, name: &str) {
        ovsmesh::lab::docker::run_container(&self.lab, &self.socket, name)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        ovsmesh::lab::docker::remove_all(&self.lab);
        let _ = std::fs::remove_dir_all(&self.lab.dir);
    }
}

/// A seed topology of `topology/`, as text.
pub fn seed(file: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("topology")
            .join(file),
    )
    .unwrap()
}
