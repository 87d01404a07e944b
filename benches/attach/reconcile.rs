//! After the cold applies: what a converged host costs.
//!
//! - The no-op reconcile, as the daemon runs it (one OVSDB session and one set of
//!   runtimes kept across reconciles), counting OVSDB write transactions and
//!   kernel writes (ovsmesh's own counter, and `ip monitor` on the host: silent);
//!   and `ovsmesh apply` on the converged host, a fresh process each time.
//! - `docker restart` → pingable again, with the daemon running and N containers
//!   on the host: pings (`-D`, 20 ms timeout, retried every 2 ms) from inside the
//!   restarted container to a peer on its VLAN, its neighbour entries flushed
//!   between attempts (an unanswered ARP would otherwise hold the next pings for
//!   the kernel's 1 s retry); the time from `docker restart` returning to the
//!   first reply. Pings *to* the container would not do: the old namespace is
//!   torn down asynchronously and keeps answering for a while.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ovsmesh::engine::{self, HostTarget};
use ovsmesh::ovs::Session;
use ovsmesh::runtime::Runtimes;

use crate::fleet::{Fleet, Host, Spec, MESH, VLANS};

pub struct Noop {
    /// Each reconcile of one long-lived engine (the first one has no warm state).
    pub reconciles: Vec<Duration>,
    pub ovsdb_writes: usize,
    pub kernel_writes: u64,
    /// What `ip monitor` printed on the host meanwhile (nothing expected).
    pub monitor: Vec<String>,
    /// `ovsmesh apply` as a fresh process.
    pub process: Vec<Duration>,
}

/// Kills and reaps a child on drop.
struct Reaped(Option<Child>);

impl Reaped {
    fn new(child: Child) -> Self {
        Self(Some(child))
    }

    /// Stop it and return what it printed.
    fn finish(mut self) -> String {
        let mut child = self.0.take().expect("running");
        let _ = child.kill();
        child
            .wait_with_output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn noop(host: &Host, spec: &Spec, docker_socket: &str, rounds: usize) -> Noop {
    let text = std::fs::read_to_string(&spec.topology_file).unwrap();
    let topology = crate::common::topology(&text);
    let ns = host.file();
    // Let ovs-vswitchd settle after the apply and the checks.
    std::thread::sleep(Duration::from_secs(2));
    let monitor = Reaped::new(
        ovsmesh::netns::command(&ns, "ip")
            .args(["monitor", "link", "address", "route"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("ip monitor"),
    );
    std::thread::sleep(Duration::from_millis(200));
    let (reconciles, ovsdb_writes, kernel_writes) = ovsmesh::netns::block_on(&ns, || async {
        let runtimes = Runtimes::new(Some(docker_socket));
        let mut session = Session::open(&host.server.remote(), MESH).await.unwrap();
        let target = HostTarget {
            topology: &topology,
            host: "A",
            runtimes: &runtimes,
            wait: Some(Duration::from_secs(600)),
        };
        let kernel_before = ovsmesh::netlink::writes();
        let mut times = Vec::new();
        for _ in 0..rounds {
            let start = Instant::now();
            let outcome = engine::apply_host(&mut session, &target)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            times.push(start.elapsed());
            assert!(
                outcome.plan.is_empty(),
                "not a no-op: {:?}",
                outcome.plan.changes.first()
            );
        }
        (
            times,
            session.write_transactions,
            ovsmesh::netlink::writes() - kernel_before,
        )
    })
    .expect("enter the host");
    std::thread::sleep(Duration::from_millis(200));
    let output = monitor.finish();
    let process = (0..rounds)
        .map(|_| crate::tools::ovsmesh_apply(host, spec, docker_socket).0)
        .collect();
    Noop {
        reconciles,
        ovsdb_writes,
        kernel_writes,
        monitor: output.lines().map(str::to_string).collect(),
        process,
    }
}

/// Restart `count` containers one after the other under a running daemon.
pub fn restarts(
    host: &Host,
    fleet: &mut Fleet,
    spec: &Spec,
    docker_socket: &str,
    count: usize,
) -> Vec<Duration> {
    let ns = host.file();
    let _daemon = Reaped::new(
        ovsmesh::netns::command(&ns, env!("CARGO_BIN_EXE_ovsmesh"))
            .arg("daemon")
            .arg(&spec.topology_file)
            .args([
                "--host",
                "A",
                "--ovsdb",
                &host.server.remote(),
                "--docker",
                docker_socket,
                "--resync",
                "600s",
            ])
            // ATTACH_DAEMON_LOG=ovsmesh=debug shows each reconcile's steps (on stderr).
            .env(
                "OVSMESH_LOG",
                std::env::var("ATTACH_DAEMON_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("ovsmesh daemon"),
    );
    // Its start-up reconcile (a no-op here) first.
    std::thread::sleep(Duration::from_secs(3));
    let n = spec.members.len();
    let mut samples = Vec::new();
    for r in 0..count {
        // Spread over the host, every VLAN; the peer is the next member of the VLAN.
        let target = (r * 37 + 3) % n;
        let peer = if target + VLANS < n {
            target + VLANS
        } else {
            target - VLANS
        };
        let address = spec.members[peer].address.addr().to_string();
        let name = &spec.members[target].docker;
        fleet.docker.docker(&["restart", "-t", "0", name.as_str()]);
        let returned = SystemTime::now();
        // Pinged from inside the restarted container: only its new namespace can
        // send these (the old one may linger a moment and still answer pings).
        let pid = fleet
            .docker
            .docker(&["inspect", "-f", "{{.State.Pid}}", name]);
        let netns = std::fs::File::open(format!("/proc/{}/ns/net", pid.trim()))
            .expect("the restarted container's namespace");
        let deadline = Instant::now() + Duration::from_secs(20);
        let pingable = loop {
            if let Some(at) = ping_once(&netns, &address) {
                break at;
            }
            assert!(
                Instant::now() < deadline,
                "{name} cannot ping its peer 20 s after docker restart"
            );
            // An ARP that went unanswered (port not ready yet) would hold the
            // next pings for the kernel's 1 s retry: start each attempt afresh.
            let _ = ovsmesh::netns::output(&netns, "ip", &["neigh", "flush", "dev", "eth1"]);
            std::thread::sleep(Duration::from_millis(2));
        };
        samples.push(pingable.duration_since(returned).unwrap_or_default());
        if std::env::var_os("ATTACH_DAEMON_LOG").is_some() {
            let at = |t: SystemTime| {
                t.duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64()
            };
            eprintln!(
                "restart of {name}: returned at {:.3}, pingable at {:.3}",
                at(returned),
                at(pingable)
            );
        }
    }
    fleet.refresh();
    samples
}

/// One `ping -D` from `netns`: when the reply came, if one did.
fn ping_once(netns: &std::fs::File, address: &str) -> Option<SystemTime> {
    let out = ovsmesh::netns::output(
        netns,
        "ping",
        &["-n", "-D", "-c", "1", "-W", "0.02", address],
    )
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("bytes from"))?;
    let seconds: f64 = line.strip_prefix('[')?.split(']').next()?.parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_secs_f64(seconds))
}
