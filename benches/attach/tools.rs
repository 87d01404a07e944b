//! The two ways of attaching the containers, timed from the outside.
//!
//! - ovs-docker (Debian's openvswitch-common), as users run it today: per
//!   container `add-port BRIDGE eth1 CONTAINER --ipaddress=… --mtu=…` (plus
//!   `--macaddress`, so both tools set the same MAC) and `set-vlan`. It calls
//!   `ovs-vsctl`, `ip` and `docker`; it runs inside the host's namespace with
//!   `OVS_RUNDIR` pointing at the host's private ovsdb-server (ovs-vsctl's default
//!   `--db` is `unix:$OVS_RUNDIR/db.sock`) and `DOCKER_HOST` at the private engine.
//! - One `ovsmesh apply` of the topology, the binary, inside the same kind of host.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::fleet::{Host, Spec, MTU};

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ovs-docker, one container after the other; the bridge exists beforehand
/// (made by hand with the userspace datapath, as on any netdev host).
pub fn ovs_docker(host: &Host, spec: &Spec, docker_socket: &str) -> Duration {
    host.add_netdev_bridge("ovs0");
    let ns = host.file();
    let rundir = host.server.dir.display().to_string();
    let ovs_docker = |args: &[&str]| {
        let out = ovsmesh::netns::command(&ns, "ovs-docker")
            .args(args)
            .env("OVS_RUNDIR", &rundir)
            .env("DOCKER_HOST", docker_socket)
            .output()
            .expect("ovs-docker (apt-get install openvswitch-common)");
        check(&format!("ovs-docker {args:?}"), &out);
    };
    let start = Instant::now();
    for member in &spec.members {
        let address = format!("--ipaddress={}", member.address);
        let mac = format!("--macaddress={}", member.mac);
        let mtu = format!("--mtu={MTU}");
        ovs_docker(&[
            "add-port",
            "ovs0",
            "eth1",
            &member.docker,
            &address,
            &mtu,
            &mac,
        ]);
        ovs_docker(&[
            "set-vlan",
            "ovs0",
            "eth1",
            &member.docker,
            &member.vlan.to_string(),
        ]);
    }
    start.elapsed()
}

/// `ovsmesh apply` of the whole topology, once; it returns after ovs-vswitchd
/// has taken the transaction (`cur_cfg`), like each `ovs-vsctl` in ovs-docker.
/// With `ATTACH_PERF_DIR` set, each apply runs under `perf record` (a profiling
/// run: its timings are not comparable).
pub fn ovsmesh_apply(host: &Host, spec: &Spec, docker_socket: &str) -> (Duration, Phases) {
    let ns = host.file();
    let binary = env!("CARGO_BIN_EXE_ovsmesh");
    let mut command = match std::env::var("ATTACH_PERF_DIR") {
        Ok(dir) => {
            let n = spec.members.len();
            let file = (0..)
                .map(|i| format!("{dir}/apply-{n}-{i}.data"))
                .find(|f| !std::path::Path::new(f).exists())
                .expect("a free name");
            let mut perf = ovsmesh::netns::command(&ns, "perf");
            perf.args([
                "record",
                "-q",
                "-F",
                "499",
                "--call-graph",
                "dwarf,32768",
                "-o",
            ])
            .arg(file)
            .arg("--")
            .arg(binary);
            perf
        }
        Err(_) => ovsmesh::netns::command(&ns, binary),
    };
    let start = Instant::now();
    let out = command
        .env("OVSMESH_LOG", "ovsmesh=debug")
        .env("NO_COLOR", "1")
        .arg("apply")
        .arg(&spec.topology_file)
        .args([
            "--host",
            "A",
            "--ovsdb",
            &host.server.remote(),
            "--docker",
            docker_socket,
            "--wait-seconds",
            "600",
        ])
        .output()
        .expect("ovsmesh binary");
    let took = start.elapsed();
    check("ovsmesh apply", &out);
    (took, phases(&String::from_utf8_lossy(&out.stderr)))
}

/// The `ms=` field of the first debug line saying `message`.
fn field(log: &str, message: &str, name: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains(message))?;
    let key = format!(" {name}=");
    let at = line.find(&key)? + key.len();
    line[at..].split_whitespace().next()?.parse().ok()
}

/// Where the time of one `ovsmesh apply` went, from its debug log.
pub struct Phases {
    pub text: String,
    /// Waiting for ovs-vswitchd to take the transaction.
    pub vswitchd: Duration,
}

pub fn phases(log: &str) -> Phases {
    let get = |message: &str| field(log, message, "ms").unwrap_or(f64::NAN);
    let planned = get("phase: observed and planned");
    let before = get("phase: netlink before OVS");
    let applied = get("phase: OVS applied");
    let after = get("phase: netlink after OVS");
    let vswitchd = get("ovs-vswitchd caught up");
    let text = format!(
        "observe {planned:.0} ms (OVSDB {:.0}, containers and host {:.0}), containers plumbed {:.0} ms, OVSDB transaction {:.0} ms, ovs-vswitchd {vswitchd:.0} ms, host addresses and routes {:.0} ms",
        field(log, "observed", "ovs_ms").unwrap_or(f64::NAN),
        field(log, "observed", "netlink_ms").unwrap_or(f64::NAN),
        before - planned,
        get("OVSDB transaction committed"),
        after - applied,
    );
    Phases {
        text,
        vswitchd: Duration::from_secs_f64(if vswitchd.is_finite() {
            vswitchd / 1e3
        } else {
            0.0
        }),
    }
}
