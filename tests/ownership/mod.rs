//! Shared by the ownership tests: host A (netdev, NIC u0, ovsdb-server and
//! ovs-vswitchd in its own namespace) and meshes on it, driven through the
//! engine and the CLI.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;
use ovsmesh::engine::Outcome;
use ovsmesh::marks::Policy;

/// One mesh on host A (netdev, NIC u0 in the shared underlay bridge br-phy),
/// with its own bridges and tunnel keys: two containers on a VLAN, a tunnel
/// and a route to peer B (which does not need to exist), a routed gateway.
const MESH: &str = r#"
[mesh]
name = "{m}"
vlan_bridge = "ovs{n}"
overlay_bridge = "obr{n}"
vlan_tunnel_key = {n}001
overlay_tunnel_key = {n}002

[hosts.A]
underlay_address = "192.0.2.1/24"
datapath = "netdev"
underlay_nic = "u0"

[hosts.B]
underlay_address = "192.0.2.2/24"

[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.{n}.0/24"

[networks.pods]
kind = "routed"
subnets = { A = "172.2{n}.1.0/24", B = "172.2{n}.2.0/24" }

[containers.c1]
host = "A"
netns = "{p}-c1"
network = "blue"
address = "192.168.{n}.1"

[containers.c2]
host = "A"
netns = "{p}-c2"
network = "blue"
address = "192.168.{n}.2"

[containers.c3]
host = "B"
network = "blue"
address = "192.168.{n}.3"
"#;

/// Host A: its namespace (NIC u0 with the underlay address, f0 towards another
/// router), its ovsdb-server and ovs-vswitchd.
pub struct Host {
    pub server: OvsdbServer,
    pub netns: Netns,
    _vswitchd: Vswitchd,
}

pub fn host() -> Host {
    let server = OvsdbServer::start(None, false);
    let netns = Netns::new("oow");
    let ip = |args: &[&str]| netns.exec("ip", args);
    ip(&["link", "add", "u0", "type", "veth", "peer", "name", "u0p"]);
    ip(&["addr", "add", "192.0.2.1/24", "dev", "u0"]);
    ip(&["link", "set", "u0", "up"]);
    ip(&["link", "set", "u0p", "up"]);
    ip(&["link", "add", "f0", "type", "veth", "peer", "name", "f1"]);
    ip(&["addr", "add", "203.0.113.1/24", "dev", "f0"]);
    ip(&["link", "set", "f0", "up"]);
    ip(&["link", "set", "f1", "up"]);
    let vswitchd = Vswitchd::start_in(&server, &netns);
    Host {
        server,
        netns,
        _vswitchd: vswitchd,
    }
}

/// A mesh: its topology (also as a file, for the CLI) and its containers.
pub struct Mesh {
    pub name: String,
    pub n: u8,
    pub topology: ovsmesh::topology::Topology,
    pub file: PathBuf,
    pub prefix: String,
    _containers: Vec<Netns>,
}

impl Mesh {
    pub fn new(host: &Host, n: u8) -> Self {
        let name = unique("m");
        let prefix = unique("w");
        let text = MESH
            .replace("{m}", &name)
            .replace("{n}", &n.to_string())
            .replace("{p}", &prefix);
        let file = host.server.dir.join(format!("{name}.toml"));
        std::fs::write(&file, &text).unwrap();
        let containers = ["c1", "c2"]
            .iter()
            .map(|c| Netns::named(&format!("{prefix}-{c}")))
            .collect();
        Self {
            topology: topology(&text),
            name,
            n,
            file,
            prefix,
            _containers: containers,
        }
    }

    pub fn container(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    pub fn metric(&self) -> u32 {
        Policy::new(&self.name).route_metric()
    }

    /// The destination of this mesh's route to B's subnet.
    pub fn peer_subnet(&self) -> String {
        format!("172.2{}.2.0/24", self.n)
    }
}

impl Host {
    pub fn ip(&self, args: &[&str]) -> String {
        self.netns.exec("ip", args)
    }

    pub fn run(&self, mesh: &Mesh, down: bool) -> Outcome {
        let wait = Some(Duration::from_secs(20));
        engine_run(&self.server, &self.netns, &mesh.topology, "A", down, wait).0
    }

    pub fn apply(&self, mesh: &Mesh) -> Outcome {
        let outcome = self.run(mesh, false);
        assert!(!outcome.failed(), "{}", failures(&outcome));
        outcome
    }

    pub fn down(&self, mesh: &Mesh) -> Outcome {
        let outcome = self.run(mesh, true);
        assert!(!outcome.failed(), "{}", failures(&outcome));
        outcome
    }

    /// `ovsmesh COMMAND --host A FILE` in the host's namespace: exit code, stdout.
    pub fn cli(&self, command: &str, mesh: &Mesh) -> (Option<i32>, String) {
        self.cli_with(&[command], mesh)
    }

    /// `ovsmesh ARGS --host A FILE` in the host's namespace: exit code, stdout and stderr.
    pub fn cli_with(&self, args: &[&str], mesh: &Mesh) -> (Option<i32>, String) {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.netns.name])
            .arg(env!("CARGO_BIN_EXE_ovsmesh"))
            .args(args)
            .args(["--host", "A"])
            .arg(&mesh.file)
            .env("OVSMESH_OVSDB", self.server.remote())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }

    /// The mesh is converged: `ovsmesh plan` exits 0 for it.
    pub fn assert_converged(&self, mesh: &Mesh, after: &str) {
        let (code, text) = self.cli("plan", mesh);
        assert_eq!(code, Some(0), "mesh {} after {after}:\n{text}", mesh.name);
    }

    /// Container c1 of the mesh reaches c2 across the mesh's VLAN bridge.
    pub fn reaches(&self, mesh: &Mesh) -> bool {
        let to = format!("192.168.{}.2", mesh.n);
        let ns = mesh.container("c1");
        eventually(Duration::from_secs(10), || {
            std::process::Command::new("ip")
                .args(["netns", "exec", &ns, "ping", "-c", "1", "-W", "1", &to])
                .output()
                .is_ok_and(|o| o.status.success())
        })
    }

    pub fn addresses_of(&self, dev: &str) -> String {
        self.ip(&["-o", "-4", "addr", "show", "dev", dev])
    }

    /// A row's external_ids as ovs-vsctl prints them, quotes left out.
    pub fn external_ids(&self, table: &str, record: &str) -> String {
        self.server
            .vsctl(&["get", table, record, "external_ids"])
            .trim()
            .replace('"', "")
    }

    /// One `external_ids` key of a row, "" when it has none.
    pub fn mark(&self, table: &str, record: &str, key: &str) -> String {
        let column = format!("external_ids:\"{key}\"");
        self.server
            .vsctl(&["--if-exists", "get", table, record, &column])
            .trim()
            .trim_matches('"')
            .to_string()
    }

    pub fn bridges(&self) -> String {
        self.server.vsctl(&["list-br"])
    }
}

pub fn failures(outcome: &Outcome) -> String {
    format!(
        "ovs: {:?}\nnetlink: {:?}\nconflicts: {:?}",
        outcome.ovs.failures, outcome.netlink.failures, outcome.plan.conflicts
    )
}
