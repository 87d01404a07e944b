//! What a real kernel host showed (issue 11), proven on one simulated host:
//! its own namespace, ovsdb-server and (for the netdev cases) ovs-vswitchd,
//! driven through the `ovsmesh` binary as a user would. Internal ports get the
//! MTU of their path, an underlay NIC smaller than the topology is warned
//! about, an uplink NIC carrying the host's address is refused with nothing
//! changed, and `status` reads the firewall's INPUT chain for the tunnel
//! protocol.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// One host `A`: a namespace with the underlay NIC `u0` (192.0.2.1/24), its
/// ovsdb-server, optionally vswitchd, a topology file, and the mesh's memory
/// under /run removed on drop.
struct Host {
    server: OvsdbServer,
    netns: Netns,
    _vswitchd: Option<Vswitchd>,
    dir: PathBuf,
    mesh: String,
}

impl Host {
    fn new(vswitchd: bool) -> Self {
        let server = OvsdbServer::start(None, false);
        let netns = Netns::new("okh");
        netns.exec(
            "ip",
            &["link", "add", "u0", "type", "veth", "peer", "name", "u0p"],
        );
        netns.exec("ip", &["addr", "add", "192.0.2.1/24", "dev", "u0"]);
        netns.exec("ip", &["link", "set", "u0", "up"]);
        netns.exec("ip", &["link", "set", "u0p", "up"]);
        let vswitchd = vswitchd.then(|| Vswitchd::start_in(&server, &netns));
        let dir = std::env::temp_dir().join(unique("ovsmesh-kh-"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            server,
            netns,
            _vswitchd: vswitchd,
            dir,
            mesh: unique("kh"),
        }
    }

    /// Write the topology (`{mesh}` replaced) and return its path.
    fn topology(&self, text: &str) -> PathBuf {
        let path = self.dir.join("topology.toml");
        std::fs::write(&path, text.replace("{mesh}", &self.mesh)).unwrap();
        path
    }

    /// `ovsmesh COMMAND --host A --ovsdb … TOPOLOGY`, run inside the host's namespace.
    fn ovsmesh(&self, command: &str, extra: &[&str]) -> Output {
        let remote = self.server.remote();
        let topology = self.dir.join("topology.toml");
        let mut args = vec![
            "netns",
            "exec",
            &self.netns.name,
            env!("CARGO_BIN_EXE_ovsmesh"),
            command,
            "--host",
            "A",
            "--ovsdb",
            &remote,
        ];
        args.extend_from_slice(extra);
        args.push(topology.to_str().unwrap());
        Command::new("ip").args(&args).output().unwrap()
    }

    fn sysctl(&self, dev: &str, key: &str) -> String {
        self.netns
            .exec("cat", &[&format!("/proc/sys/net/ipv4/conf/{dev}/{key}")])
            .trim()
            .to_string()
    }

    fn iptables(&self, args: &[&str]) {
        self.netns.exec("iptables", args);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        for key in ovsmesh::netlink::sysctl::KEYS {
            let _ = std::fs::remove_dir_all(format!("/run/ovsmesh/{key}/{}", self.mesh));
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn exit(out: &Output) -> Option<i32> {
    out.status.code()
}

const NETDEV_A: &str = r#"
[mesh]
name = "{mesh}"
[hosts.A]
underlay_address = "192.0.2.1/24"
datapath = "netdev"
underlay_nic = "u0"
[hosts.B]
underlay_address = "192.0.2.2/24"
[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
gateway = { host = "A", address = "192.168.0.254" }
[networks.pods]
kind = "routed"
subnets = { A = "172.17.1.0/24", B = "172.17.2.0/24" }
"#;

#[test]
#[ignore = "needs root + OVS"]
fn internal_ports_get_the_mtu_of_their_path_redirects_go_off_and_drift_is_planned_back() {
    let host = Host::new(true);
    let path = host.topology(NETDEV_A);
    let topology = ovsmesh::topology::load(&path).unwrap();
    let gateway = ovsmesh::desired::desired(&topology, "A").unwrap().ports["gateway/blue"]
        .name
        .clone();
    host.netns.exec(
        "sh",
        &["-c", "echo 1 > /proc/sys/net/ipv4/conf/all/send_redirects"],
    );

    let out = host.ovsmesh("apply", &[]);
    assert_eq!(
        exit(&out),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let mtu_request = |iface: &str| {
        host.server
            .vsctl(&["get", "Interface", iface, "mtu_request"])
            .trim()
            .to_string()
    };
    // GRE: the overlay loses 42 bytes, a VLAN trunk 46.
    assert_eq!(mtu_request("obr0"), "1458");
    assert_eq!(mtu_request(&gateway), "1454");
    assert_eq!(mtu_request("br-phy"), "1500");
    // vswitchd made the devices so.
    for (dev, mtu) in [("obr0", "mtu 1458 "), (gateway.as_str(), "mtu 1454 ")] {
        assert!(
            eventually(Duration::from_secs(5), || host
                .netns
                .exec("ip", &["-o", "link", "show", dev])
                .contains(mtu)),
            "{dev}: {}",
            host.netns.exec("ip", &["-o", "link", "show", dev])
        );
    }
    assert_eq!(host.sysctl("all", "send_redirects"), "0");
    assert_eq!(host.sysctl("obr0", "send_redirects"), "0");

    // Someone changes them: the plan shows each drift, apply puts it back.
    host.server
        .vsctl(&["set", "Interface", "obr0", "mtu_request=1500"]);
    host.server
        .vsctl(&["set", "Interface", &gateway, "mtu_request=9000"]);
    host.netns.exec(
        "sh",
        &["-c", "echo 1 > /proc/sys/net/ipv4/conf/obr0/send_redirects"],
    );
    let plan = host.ovsmesh("plan", &[]);
    let shown = text(&plan.stdout);
    assert_eq!(exit(&plan), Some(2), "{shown}{}", text(&plan.stderr));
    for line in [
        "~ bridge obr0  mtu_request: 1500 -> 1458",
        "~ port gateway/blue  mtu_request: 9000 -> 1454",
        "~ sysctl net.ipv4.conf.obr0.send_redirects  value: 1 -> 0",
    ] {
        assert!(shown.contains(line), "missing {line:?} in\n{shown}");
    }
    assert!(!shown.contains("all.send_redirects"), "{shown}");
    let out = host.ovsmesh("apply", &[]);
    assert_eq!(
        exit(&out),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(mtu_request("obr0"), "1458");
    assert_eq!(mtu_request(&gateway), "1454");
    assert_eq!(host.sysctl("obr0", "send_redirects"), "0");
    let plan = host.ovsmesh("plan", &[]);
    assert_eq!(exit(&plan), Some(0), "{}", text(&plan.stdout));
    // An MTU ovsmesh does not manage (ovs0's own interface carries no address) is left alone.
    host.server
        .vsctl(&["set", "Interface", "ovs0", "mtu_request=1400"]);
    let plan = host.ovsmesh("plan", &[]);
    assert_eq!(exit(&plan), Some(0), "{}", text(&plan.stdout));

    // `down` puts `all` back as it was (obr0 itself is gone).
    let out = host.ovsmesh("down", &[]);
    assert_eq!(
        exit(&out),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(host.sysctl("all", "send_redirects"), "1");
}

#[test]
#[ignore = "needs root + OVS"]
fn an_underlay_nic_smaller_than_the_topology_is_warned_about_in_apply_and_status() {
    let host = Host::new(true);
    host.topology(NETDEV_A);
    host.netns.exec("ip", &["link", "set", "u0", "mtu", "1400"]);
    let warning = "warning: underlay device u0 has MTU 1400, smaller than the underlay_mtu 1500 the topology assumes for host A";

    let out = host.ovsmesh("apply", &[]);
    let stderr = text(&out.stderr);
    assert_eq!(exit(&out), Some(0), "{}{stderr}", text(&out.stdout));
    assert!(stderr.contains(warning), "{stderr}");
    assert!(stderr.contains("set underlay_mtu = 1400"), "{stderr}");
    // The budget stays what the topology says.
    assert_eq!(
        host.server
            .vsctl(&["get", "Interface", "obr0", "mtu_request"])
            .trim(),
        "1458"
    );

    let status = host.ovsmesh("status", &[]);
    let shown = text(&status.stdout);
    assert_eq!(exit(&status), Some(0), "{shown}{}", text(&status.stderr));
    assert!(shown.contains(&format!("  {warning}")), "{shown}");

    host.netns.exec("ip", &["link", "set", "u0", "mtu", "1500"]);
    let status = host.ovsmesh("status", &[]);
    let shown = text(&status.stdout);
    assert!(!shown.contains("underlay device u0"), "{shown}");
}

const UPLINK_A: &str = r#"
[mesh]
name = "{mesh}"
vlan_transport = "uplink"
[hosts.A]
underlay_address = "192.0.2.1/24"
datapath = "netdev"
underlay_nic = "u0"
uplink_nic = "up0"
[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
[containers.c1]
host = "A"
network = "blue"
address = "192.168.0.1"
netns = "{c1}"
"#;

#[test]
#[ignore = "needs root + OVS"]
fn an_uplink_nic_with_the_hosts_address_is_refused_and_nothing_changes() {
    let host = Host::new(true);
    let c1 = Netns::new("okc");
    host.topology(&UPLINK_A.replace("{c1}", &c1.name));
    host.netns.exec(
        "ip",
        &["link", "add", "up0", "type", "veth", "peer", "name", "up0p"],
    );
    host.netns
        .exec("ip", &["addr", "add", "198.51.100.7/24", "dev", "up0"]);
    host.netns.exec("ip", &["link", "set", "up0", "up"]);
    host.netns.exec("ip", &["link", "set", "up0p", "up"]);
    let links_before = host.netns.exec("ip", &["-o", "link"]);
    let addresses_before = host.netns.exec("ip", &["-o", "-4", "addr"]);

    let out = host.ovsmesh("apply", &[]);
    let stderr = text(&out.stderr);
    assert_eq!(exit(&out), Some(1), "{}{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("refusing to apply on host A: uplink_nic up0 holds 198.51.100.7/24;"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    // Nothing changed: no bridge, no veth, no address moved, no setting remembered.
    assert_eq!(host.server.vsctl(&["list-br"]).trim(), "");
    assert_eq!(host.netns.exec("ip", &["-o", "link"]), links_before);
    assert_eq!(
        host.netns.exec("ip", &["-o", "-4", "addr"]),
        addresses_before
    );
    assert!(!c1.exec("ip", &["-o", "link"]).contains("eth1"));
    assert!(!std::path::Path::new(&format!("/run/ovsmesh/forwarding/{}", host.mesh)).exists());
    let status = host.ovsmesh("status", &[]);
    assert!(
        text(&status.stdout).contains("warning: uplink_nic up0 carries the host's own address"),
        "{}",
        text(&status.stdout)
    );

    // Without the address, the NIC becomes the trunk.
    host.netns.exec("ip", &["addr", "flush", "dev", "up0"]);
    let out = host.ovsmesh("apply", &[]);
    assert_eq!(
        exit(&out),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(host.server.vsctl(&["port-to-br", "up0"]).trim(), "ovs0");
}

const SYSTEM_A: &str = r#"
[mesh]
name = "{mesh}"
encap = "ENCAP"
[hosts.A]
underlay_address = "192.0.2.1/24"
[hosts.B]
underlay_address = "192.0.2.2/24"
[networks.pods]
kind = "routed"
subnets = { A = "172.17.1.0/24", B = "172.17.2.0/24" }
"#;

#[test]
#[ignore = "needs root + OVS"]
fn status_warns_when_input_drops_the_tunnel_protocol_and_stops_when_a_rule_accepts_it() {
    // A kernel-datapath host: status only reads, so no vswitchd is needed.
    let host = Host::new(false);
    host.topology(&SYSTEM_A.replace("ENCAP", "gre"));
    let status = |host: &Host| {
        let out = host.ovsmesh("status", &[]);
        assert_eq!(exit(&out), Some(2), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert!(!status(&host).contains("the firewall drops"));

    host.iptables(&["-P", "INPUT", "DROP"]);
    let shown = status(&host);
    assert!(
        shown.contains("  warning: the firewall drops GRE (IP protocol 47) from B (192.0.2.2) on INPUT (INPUT policy DROP): their tunnel packets never reach Open vSwitch; accept them, e.g. `iptables -I INPUT -p gre -s 192.0.2.0/24 -j ACCEPT`"),
        "{shown}"
    );
    host.iptables(&[
        "-A",
        "INPUT",
        "-p",
        "gre",
        "-s",
        "192.0.2.0/24",
        "-j",
        "ACCEPT",
    ]);
    assert!(!status(&host).contains("the firewall drops"));

    // VXLAN on its own port: a rule for 4789 does not accept it.
    host.topology(&SYSTEM_A.replace("\"ENCAP\"", "\"vxlan\"\ndst_port = 4790"));
    host.iptables(&[
        "-A", "INPUT", "-p", "udp", "--dport", "4789", "-j", "ACCEPT",
    ]);
    let shown = status(&host);
    assert!(
        shown.contains("warning: the firewall drops VXLAN (UDP 4790) from B (192.0.2.2) on INPUT (INPUT policy DROP)"),
        "{shown}"
    );
    host.iptables(&[
        "-A", "INPUT", "-p", "udp", "--dport", "4790", "-j", "ACCEPT",
    ]);
    assert!(!status(&host).contains("the firewall drops"));
}

/// Host A routes its pods directly to B over the underlay: besides obr0 (made
/// by ovs-vswitchd), a route to B's subnet, a host route and forwarding on u0.
const DIRECT_A: &str = r#"
[mesh]
name = "{mesh}"
[hosts.A]
underlay_address = "192.0.2.1/24"
underlay_nic = "u0"
routes = [{ to = "198.51.100.0/24", via = "192.0.2.254" }]
[hosts.B]
underlay_address = "192.0.2.2/24"
[networks.pods]
kind = "routed"
mode = "direct"
subnets = { A = "172.17.1.0/24", B = "172.17.2.0/24" }
"#;

#[test]
#[ignore = "needs root + OVS"]
fn a_vswitchd_that_does_not_catch_up_is_reported_after_the_rest_is_applied() {
    // ovsdb-server commits the transaction; no ovs-vswitchd ever applies it.
    let host = Host::new(false);
    host.topology(DIRECT_A);
    let out = host.ovsmesh("apply", &["--wait-seconds", "1"]);
    let stderr = text(&out.stderr);
    assert_eq!(exit(&out), Some(1), "{}{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("failed: ovs-vswitchd: the change committed, but ovs-vswitchd did not apply configuration"),
        "{stderr}"
    );
    // The netlink steps ran all the same: the host is not left half applied.
    let routes = host.netns.exec("ip", &["route"]);
    for route in [
        "172.17.2.0/24 via 192.0.2.2 dev u0 proto 79",
        "198.51.100.0/24 via 192.0.2.254 dev u0 proto 79",
    ] {
        assert!(routes.contains(route), "missing {route:?} in\n{routes}");
    }
    assert_eq!(host.sysctl("u0", "forwarding"), "1");
    // What needs vswitchd's device is named as failed, not silently skipped.
    assert!(
        stderr.contains("failed: address obr0 172.17.1.1/24"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn apply_verifies_the_host_and_exits_1_naming_what_another_tool_undid() {
    let host = Host::new(true);
    host.topology(NETDEV_A);
    let fighter = Fighter::start(
        &host.netns.name,
        "while :; do echo 0 > /proc/sys/net/ipv4/conf/obr0/forwarding; sleep 0.005; done 2>/dev/null",
    );
    let out = host.ovsmesh("apply", &[]);
    drop(fighter);
    let stderr = text(&out.stderr);
    assert_eq!(exit(&out), Some(1), "{}{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("failed: verify: host A does not match after applying; still different:\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("  ~ forwarding obr0  enabled: false -> true"),
        "{stderr}"
    );
    let json = host.ovsmesh("apply", &["--format", "json"]);
    assert_eq!(exit(&json), Some(0), "{}", text(&json.stdout));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["verify"]["matches"], true, "{value}");
}
