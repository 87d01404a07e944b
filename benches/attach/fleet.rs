//! The benchmark's world: Docker containers `--net=none` on the private engine
//! the lab uses, what each should end up with (one spec, read by both tools),
//! and a fresh lab-style OVS host per round.

use std::fmt::Write as _;
use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::{eventually, run, unique, Dockerd, Netns, OvsdbServer, Vswitchd};
use ovsmesh::topology::Mac;

pub const VLANS: usize = 4;
pub const MTU: u32 = 1400;
pub const MESH: &str = "attach";
/// Parallel `docker run`s while growing the fleet (setup, not timed).
const STARTERS: usize = 4;

/// What container `index` must end with, whichever tool attached it.
#[derive(Debug, Clone)]
pub struct Member {
    pub index: usize,
    pub docker: String,
    pub vlan: u16,
    pub address: ipnet::Ipv4Net,
    pub mac: Mac,
}

/// N containers on 4 VLANs: the ovsmesh topology and the expected end state.
pub struct Spec {
    pub members: Vec<Member>,
    pub topology_file: PathBuf,
}

impl Spec {
    pub fn new(fleet: &Fleet, n: usize, dir: &std::path::Path) -> Self {
        let mut text = format!(
            "[mesh]\nname = \"{MESH}\"\n[hosts.A]\nunderlay_address = \"192.0.2.1/24\"\ndatapath = \"netdev\"\nunderlay_nic = \"eth1\"\n"
        );
        for v in 0..VLANS {
            let _ = write!(
                text,
                "[networks.v{}]\nkind = \"vlan\"\nvlan = {}\nsubnet = \"100.{}.0.0/16\"\n",
                100 + v,
                100 + v,
                64 + v
            );
        }
        for i in 0..n {
            let (v, j) = (i % VLANS, i / VLANS);
            let _ = write!(
                text,
                "[containers.c{i}]\nhost = \"A\"\ndocker = \"{}\"\nnetwork = \"v{}\"\naddress = \"100.{}.{}.{}/16\"\nmtu = {MTU}\n",
                fleet.name(i),
                100 + v,
                64 + v,
                j / 250,
                j % 250 + 1
            );
        }
        let topology = crate::common::topology(&text);
        // MACs as ovsmesh derives them, so ovs-docker sets the very same ones.
        let desired = ovsmesh::desired::desired(&topology, "A").expect("desired state");
        let members = (0..n)
            .map(|i| {
                let iface = &desired.containers[&format!("c{i}/eth1")];
                Member {
                    index: i,
                    docker: fleet.name(i),
                    vlan: 100 + (i % VLANS) as u16,
                    address: iface.address.expect("an IPv4 address"),
                    mac: iface.mac,
                }
            })
            .collect();
        let topology_file = dir.join(format!("attach-{n}.toml"));
        std::fs::write(&topology_file, text).unwrap();
        Self {
            members,
            topology_file,
        }
    }
}

/// The containers, created once and reused by every N and round.
pub struct Fleet<'a> {
    pub docker: &'a Dockerd,
    prefix: String,
    pids: Vec<i32>,
}

impl<'a> Fleet<'a> {
    pub fn new(docker: &'a Dockerd) -> Self {
        Self {
            docker,
            prefix: unique("at"),
            pids: Vec::new(),
        }
    }

    pub fn name(&self, i: usize) -> String {
        format!("{}-c{i}", self.prefix)
    }

    /// Make sure containers 0..n run (`--net=none`, the lab's busybox image).
    pub fn grow(&mut self, n: usize) {
        let have = self.pids.len();
        if n <= have {
            return;
        }
        let next = std::sync::atomic::AtomicUsize::new(have);
        std::thread::scope(|scope| {
            for _ in 0..STARTERS {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    self.docker.run_container(&self.name(i));
                });
            }
        });
        self.pids = self.read_pids(n);
    }

    /// Re-read the PIDs (after `docker restart`).
    pub fn refresh(&mut self) {
        self.pids = self.read_pids(self.pids.len());
    }

    fn read_pids(&self, n: usize) -> Vec<i32> {
        let names: Vec<String> = (0..n).map(|i| self.name(i)).collect();
        let mut pids = Vec::with_capacity(n);
        for chunk in names.chunks(200) {
            let mut args = vec!["inspect", "-f", "{{.State.Pid}}"];
            args.extend(chunk.iter().map(String::as_str));
            pids.extend(
                self.docker
                    .docker(&args)
                    .lines()
                    .map(|l| l.trim().parse::<i32>().expect("a pid")),
            );
        }
        assert!(pids.iter().all(|p| *p > 0), "every container runs");
        pids
    }

    pub fn pid(&self, i: usize) -> i32 {
        self.pids[i]
    }

    pub fn netns(&self, i: usize) -> File {
        File::open(format!("/proc/{}/ns/net", self.pids[i])).expect("container netns")
    }

    /// Wait until no container of 0..n has an `eth1` left from the last round.
    pub fn wait_clean(&self, n: usize) {
        for i in 0..n {
            let ns = self.netns(i);
            let clean = eventually(Duration::from_secs(30), || {
                ovsmesh::netlink::in_netns(&ns, |netlink| async move {
                    Ok(netlink.links().await?.iter().all(|l| l.name != "eth1"))
                })
                .unwrap_or(false)
            });
            assert!(clean, "container {} still has eth1", self.name(i));
        }
    }

    /// Remove every container, one `docker rm -f` after the other. Not many per
    /// call: the CLI removes those in parallel, and Debian 12's dockerd (20.10)
    /// can deadlock in libnetwork when dozens of containers are torn down at once
    /// (seen in CI: `docker rm -f` of 100 names hung for good, 50 removals stuck
    /// in `releaseNetwork`). Each call is bounded, so a wedged engine ends the
    /// run with a message instead of hanging it.
    pub fn remove_all(&self) {
        for i in 0..self.pids.len() {
            let name = self.name(i);
            let out = Command::new("timeout")
                .args(["60", "docker", "-H", &self.docker.socket, "rm", "-f", &name])
                .output();
            if out.is_ok_and(|o| o.status.code() == Some(124)) {
                eprintln!("attach: docker rm -f {name} did not return within 60 s: dockerd is wedged; giving up on the rest");
                return;
            }
        }
    }
}

impl Drop for Fleet<'_> {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// A fresh host as the lab makes one: a namespace running its own ovsdb-server
/// and ovs-vswitchd (userspace datapath), with an underlay NIC `eth1`.
pub struct Host {
    // Drop order: vswitchd, then the namespace (its veths go with it), then the database.
    _vswitchd: Vswitchd,
    pub netns: Netns,
    pub server: OvsdbServer,
}

impl Host {
    pub fn new() -> Self {
        let server = OvsdbServer::start(None, false);
        let netns = Netns::new("ath");
        netns.exec("ip", &["link", "set", "lo", "up"]);
        // No dummy module here: the underlay NIC is a veth whose peer stays put.
        netns.exec(
            "ip",
            &[
                "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
            ],
        );
        netns.exec("ip", &["link", "set", "eth1p", "up"]);
        netns.exec("ip", &["addr", "add", "192.0.2.1/24", "dev", "eth1"]);
        netns.exec("ip", &["link", "set", "eth1", "up"]);
        let vswitchd = Vswitchd::start_in(&server, &netns);
        Self {
            _vswitchd: vswitchd,
            netns,
            server,
        }
    }

    pub fn file(&self) -> File {
        ovsmesh::netns::open(&self.netns.name).expect("host netns")
    }

    /// The bridge `name` on the userspace datapath, as on any netdev host.
    pub fn add_netdev_bridge(&self, name: &str) {
        let datapath = "datapath_type=netdev";
        self.vsctl(&["add-br", name, "--", "set", "bridge", name, datapath]);
    }

    /// `ovs-vsctl` against this host, waiting for vswitchd.
    pub fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db={}", self.server.remote());
        let mut all = vec![db.as_str(), "--timeout=120"];
        all.extend_from_slice(args);
        run("ovs-vsctl", &all)
    }
}
