//! Benchmark: attaching N Docker containers to Open vSwitch on one host,
//! ovs-docker (Debian's openvswitch-common, `add-port … --ipaddress --mtu` +
//! `set-vlan` per container, as users do today) side by side with one
//! `ovsmesh apply`, same addresses, MACs and MTU, on 4 VLANs.
//!
//! Each round gets a fresh lab-style host (a namespace with its own ovsdb-server
//! and ovs-vswitchd, userspace datapath); the containers (`--net=none`, the lab's
//! busybox image on a private dockerd) are reused. A timing counts only after
//! both tools ended with the same OVS ports and tags, the same interface inside
//! every container and working pings (a sample of pairs per VLAN).
//!
//! Prints, per N: both times (median of 3), the ratio and ovsmesh's ms per
//! container; the no-op reconcile at the largest N (zero OVSDB and kernel
//! writes); and `docker restart` → pingable p50/p99 under the daemon at N = 200.
//!
//! Run (root; OVS, docker.io, openvswitch-common's ovs-docker installed):
//!   cargo bench --bench attach                     # full: N = 10, 50, 200, 1000
//!   ATTACH_QUICK=1 cargo bench --bench attach      # CI: N = 10, 50, 200, one ovs-docker round at 200
//!   ATTACH_N=10,200 cargo bench --bench attach     # any set
//! ovs-docker stops at N = 200 (`ATTACH_OVS_DOCKER_MAX`): at 1000 it takes many minutes.

#[path = "../../tests/common/mod.rs"]
mod common;
mod fleet;
mod floor;
mod reconcile;
mod tools;
mod verify;

use std::io::Write as _;
use std::time::Duration;

use fleet::{Fleet, Host, Spec};
use verify::Tool;

const ROUNDS: usize = 3;
const RESTART_N: usize = 200;
const RESTARTS: usize = 20;
const NOOP_ROUNDS: usize = 5;

struct Config {
    sizes: Vec<usize>,
    ovs_docker_max: usize,
    quick: bool,
}

fn env_number(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

impl Config {
    fn from_env() -> Self {
        let quick = std::env::var("ATTACH_QUICK").is_ok_and(|v| v != "0")
            || std::env::args().any(|a| a == "quick");
        let sizes = std::env::var("ATTACH_N")
            .ok()
            .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_else(|| {
                if quick {
                    vec![10, 50, 200]
                } else {
                    vec![10, 50, 200, 1000]
                }
            });
        Self {
            sizes,
            ovs_docker_max: env_number("ATTACH_OVS_DOCKER_MAX").unwrap_or(200),
            quick,
        }
    }

    /// ovs-docker rounds at `n`: 3, but one at the largest N of the quick set.
    fn ovs_docker_rounds(&self, n: usize) -> usize {
        if n > self.ovs_docker_max {
            0
        } else if self.quick && n >= 200 {
            1
        } else {
            ROUNDS
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn list(samples: &[Duration]) -> String {
    samples
        .iter()
        .map(|d| format!("{:.0}", ms(*d)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn say(line: String) {
    println!("attach: {line}");
    let _ = std::io::stdout().flush();
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Row {
    n: usize,
    ovs_docker: Option<Duration>,
    ovsmesh: Duration,
    /// ovsmesh's own share: the apply less its wait for ovs-vswitchd.
    own: Duration,
}

/// Removes the topology files' directory.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    // OVSMESH_LOG=ovsmesh=debug shows where the in-process reconciles spend their time.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("OVSMESH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let config = Config::from_env();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    say(format!(
        "sizes {:?}, ovs-docker up to N = {}, {cores} cores, load average {} at start",
        config.sizes,
        config.ovs_docker_max,
        load_average()
    ));
    let dir = TempDir(std::env::temp_dir().join(common::unique("ovsmesh-attach-")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let docker = common::Dockerd::start();
    let socket = docker.socket.clone();
    let mut fleet = Fleet::new(&docker);
    let largest = config.sizes.iter().copied().max().unwrap_or(0);
    let mut rows = Vec::new();
    for &n in &config.sizes {
        fleet.grow(n);
        let spec = Spec::new(&fleet, n, &dir.0);
        let mut ovs_docker = Vec::new();
        for _ in 0..config.ovs_docker_rounds(n) {
            let host = Host::new();
            let took = tools::ovs_docker(&host, &spec, &socket);
            verify::verify(&host, &fleet, &spec, Tool::OvsDocker);
            ovs_docker.push(took);
            drop(host);
            fleet.wait_clean(n);
        }
        let floor = {
            let host = Host::new();
            let floor = floor::measure(&host, &fleet, &spec);
            drop(host);
            fleet.wait_clean(n);
            floor
        };
        let mut ovsmesh = Vec::new();
        let mut own = Vec::new();
        let mut last = None;
        let mut phases = String::new();
        for round in 0..ROUNDS {
            let host = Host::new();
            let (took, steps) = tools::ovsmesh_apply(&host, &spec, &socket);
            own.push(took.saturating_sub(steps.vswitchd));
            phases = steps.text;
            verify::verify(&host, &fleet, &spec, Tool::Ovsmesh);
            ovsmesh.push(took);
            if round + 1 < ROUNDS {
                drop(host);
                fleet.wait_clean(n);
            } else {
                last = Some(host);
            }
        }
        let host = last.expect("a converged host");
        let row = Row {
            n,
            ovs_docker: (!ovs_docker.is_empty()).then(|| median(&ovs_docker)),
            ovsmesh: median(&ovsmesh),
            own: median(&own),
        };
        say(format!(
            "N={n}: ovs-docker {} ms [{}], ovsmesh apply {:.0} ms [{}]{}, ovsmesh {:.2} ms/container (load {})",
            row.ovs_docker
                .map_or("-".to_string(), |d| format!("{:.0}", ms(d))),
            list(&ovs_docker),
            ms(row.ovsmesh),
            list(&ovsmesh),
            row.ovs_docker.map_or(String::new(), |d| format!(
                ", ratio {:.1}x",
                d.as_secs_f64() / row.ovsmesh.as_secs_f64()
            )),
            ms(row.ovsmesh) / n as f64,
            load_average()
        ));
        say(format!("N={n}: ovsmesh apply, last round: {phases}"));
        say(format!(
            "N={n}: floor {:.0} ms (one ip -batch of the veths {:.0} ms + one ovs-vsctl transaction with ovs-vswitchd {:.0} ms); ovsmesh apply / floor {:.2}",
            ms(floor.total()),
            ms(floor.veths),
            ms(floor.transaction),
            row.ovsmesh.as_secs_f64() / floor.total().as_secs_f64()
        ));
        rows.push(row);
        if n == largest {
            let noop = reconcile::noop(&host, &spec, &socket, NOOP_ROUNDS);
            say(format!(
                "no-op reconcile at N={n} (daemon: one engine kept): first {:.0} ms, then median {:.1} ms [{}] (target <= 50 ms); OVSDB write transactions {}, kernel writes {} (targets 0); ip monitor on the host: {} line(s){}",
                ms(noop.reconciles[0]),
                ms(median(&noop.reconciles[1..])),
                list(&noop.reconciles),
                noop.ovsdb_writes,
                noop.kernel_writes,
                noop.monitor.len(),
                if noop.monitor.is_empty() {
                    String::new()
                } else {
                    format!(", first: {:?}", &noop.monitor[..noop.monitor.len().min(3)])
                }
            ));
            say(format!(
                "no-op `ovsmesh apply` at N={n} (fresh process): median {:.0} ms [{}]",
                ms(median(&noop.process)),
                list(&noop.process)
            ));
        }
        if n == RESTART_N {
            let samples = reconcile::restarts(&host, &mut fleet, &spec, &socket, RESTARTS);
            say(format!(
                "docker restart -> pingable, daemon running, N={n} containers on the host, {RESTARTS} restarts: p50 {:.0} ms, p99 {:.0} ms [{}] (target p99 <= 200 ms)",
                ms(percentile(&samples, 0.5)),
                ms(percentile(&samples, 0.99)),
                list(&samples)
            ));
        }
        drop(host);
        fleet.wait_clean(n);
    }
    say("| N containers | ovs-docker | ovsmesh apply | ratio | ovsmesh per container | without the wait for ovs-vswitchd |".into());
    say("|---|---|---|---|---|---|".into());
    for row in &rows {
        say(format!(
            "| {} | {} | {:.0} ms | {} | {:.2} ms | {:.0} ms, {:.2} ms per container |",
            row.n,
            row.ovs_docker
                .map_or("-".to_string(), |d| format!("{:.0} ms", ms(d))),
            ms(row.ovsmesh),
            row.ovs_docker.map_or("-".to_string(), |d| format!(
                "{:.1}×",
                d.as_secs_f64() / row.ovsmesh.as_secs_f64()
            )),
            ms(row.ovsmesh) / row.n as f64,
            ms(row.own),
            ms(row.own) / row.n as f64
        ));
    }
    if let (Some(small), Some(big)) = (rows.first(), rows.last()) {
        let per = |d: Duration, n: usize| ms(d) / n as f64;
        say(format!(
            "ms per container at N={} / at N={}: {:.2} (target <= 1.5); without the wait for ovs-vswitchd {:.2}; load average {} at the end",
            big.n,
            small.n,
            per(big.ovsmesh, big.n) / per(small.ovsmesh, small.n),
            per(big.own, big.n) / per(small.own, small.n),
            load_average()
        ));
    }
}
