//! Host and container plumbing for real: one netdev host (ovsdb-server +
//! ovs-vswitchd in its own namespace, userspace datapath) with named-netns
//! containers; packets prove reachability, isolation and restart recovery.

mod common;

use std::time::Duration;

use common::*;

const TOPOLOGY: &str = r#"
[mesh]
name = "nl"

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

[networks.red]
kind = "vlan"
vlan = 200
subnet = "192.168.0.0/24"

[containers.c1]
host = "A"
netns = "{p}-c1"
network = "blue"
address = "192.168.0.1"
routes = [{ to = "198.51.100.0/24", via = "192.168.0.254" }]

[containers.c2]
host = "A"
netns = "{p}-c2"
network = "blue"
address = "192.168.0.2"
mac = "02:00:00:00:00:02"
mtu = 1400

[containers.c3]
host = "A"
netns = "{p}-c3"
network = "red"
address = "192.168.0.3"

[containers.c4]
host = "B"
netns = "{p}-c4"
network = "blue"
address = "192.168.0.4"
"#;

struct Host {
    server: OvsdbServer,
    netns: Netns,
    _vswitchd: Vswitchd,
    containers: Vec<Netns>,
    prefix: String,
    topology: ovsmesh::topology::Topology,
}

fn host() -> Host {
    let server = OvsdbServer::start(None, false);
    let netns = Netns::new("onl");
    // The underlay NIC with the host's address, and a foreign route on another link.
    netns.exec(
        "ip",
        &["link", "add", "u0", "type", "veth", "peer", "name", "u0p"],
    );
    netns.exec("ip", &["addr", "add", "192.0.2.1/24", "dev", "u0"]);
    netns.exec("ip", &["link", "set", "u0", "up"]);
    netns.exec("ip", &["link", "set", "u0p", "up"]);
    netns.exec(
        "ip",
        &["link", "add", "f0", "type", "veth", "peer", "name", "f1"],
    );
    netns.exec("ip", &["addr", "add", "203.0.113.1/24", "dev", "f0"]);
    netns.exec("ip", &["link", "set", "f0", "up"]);
    netns.exec(
        "ip",
        &["route", "add", "198.18.0.0/24", "via", "203.0.113.2"],
    );
    let vswitchd = Vswitchd::start_in(&server, &netns);
    let prefix = unique("n");
    let containers = ["c1", "c2", "c3"]
        .iter()
        .map(|c| Netns::named(&format!("{prefix}-{c}")))
        .collect();
    let topology = topology(&TOPOLOGY.replace("{p}", &prefix));
    Host {
        server,
        netns,
        _vswitchd: vswitchd,
        containers,
        prefix,
        topology,
    }
}

impl Host {
    fn apply(&self) -> ovsmesh::engine::Outcome {
        let (outcome, _) = engine_run(
            &self.server,
            &self.netns,
            &self.topology,
            "A",
            false,
            Some(Duration::from_secs(20)),
        );
        assert!(
            !outcome.failed(),
            "ovs: {:?}\nnetlink: {:?}",
            outcome.ovs.failures,
            outcome.netlink.failures
        );
        outcome
    }

    fn container(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn in_container(&self, name: &str, args: &[&str]) -> String {
        let ns = self.container(name);
        let mut all = vec!["netns", "exec", ns.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    fn pings(&self, from: &str, to: &str) -> bool {
        let ns = self.container(from);
        std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "ping", "-c", "1", "-W", "1", to])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Reachable within a few seconds (ARP, vswitchd attaching a new veth).
    fn reaches(&self, from: &str, to: &str) -> bool {
        eventually(Duration::from_secs(10), || self.pings(from, to))
    }
}

#[test]
#[ignore = "needs root + OVS"]
fn apply_plumbs_containers_that_reach_within_a_vlan_and_not_across() {
    let host = host();
    let outcome = host.apply();
    assert!(
        outcome.netlink.applied.len() >= 5,
        "{:?}",
        outcome.netlink.applied
    );

    // Inside c2: interface, MAC, MTU, address, default route via the VLAN gateway.
    let link = host.in_container("c2", &["ip", "-o", "link", "show", "eth1"]);
    assert!(
        link.contains("mtu 1400") && link.contains("02:00:00:00:00:02"),
        "{link}"
    );
    let addr = host.in_container("c2", &["ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(addr.contains("192.168.0.2/24"), "{addr}");
    let routes = host.in_container("c2", &["ip", "route"]);
    assert!(
        routes.contains("default via 192.168.0.254 dev eth1"),
        "{routes}"
    );
    let routes = host.in_container("c1", &["ip", "route"]);
    assert!(
        routes.contains("198.51.100.0/24 via 192.168.0.254 dev eth1"),
        "{routes}"
    );
    let link = host.in_container("c1", &["ip", "-o", "link", "show", "eth1"]);
    assert!(link.contains("mtu 1454"), "the VLAN path budget: {link}");
    let lo = host.in_container("c1", &["ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}");

    // The underlay address moved from the NIC to the underlay bridge.
    let addrs = host.netns.exec("ip", &["-o", "-4", "addr"]);
    assert!(
        addrs
            .lines()
            .any(|l| l.contains("br-phy") && l.contains("192.0.2.1/24")),
        "{addrs}"
    );
    assert!(
        !addrs
            .lines()
            .any(|l| l.contains(" u0 ") && l.contains("192.0.2.1")),
        "{addrs}"
    );

    // Packets: same VLAN reaches, the gateway answers, other VLAN is isolated.
    assert!(host.reaches("c1", "192.168.0.2"), "c1 -> c2 on VLAN 100");
    assert!(
        host.reaches("c1", "192.168.0.254"),
        "c1 -> its VLAN gateway on the host"
    );
    assert!(
        !host.pings("c3", "192.168.0.1"),
        "c3 on VLAN 200 must not reach c1"
    );
    assert!(
        !host.pings("c3", "192.168.0.2"),
        "c3 on VLAN 200 must not reach c2"
    );

    // A second apply changes nothing.
    let again = host.apply();
    assert!(again.plan.is_empty(), "{:?}", again.plan.changes);

    // The foreign route is untouched.
    let routes = host.netns.exec("ip", &["route"]);
    assert!(
        routes.contains("198.18.0.0/24 via 203.0.113.2 dev f0"),
        "{routes}"
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn a_recreated_container_namespace_is_replumbed_with_the_same_mac_and_address_and_passes_traffic() {
    let host = host();
    host.apply();
    assert!(host.reaches("c1", "192.168.0.2"));
    let mac_before = host.in_container("c1", &["cat", "/sys/class/net/eth1/address"]);

    // "Restart" c1: its namespace (and the veth with it) goes, a new one comes.
    let name = host.container("c1");
    run("ip", &["netns", "del", &name]);
    run("ip", &["netns", "add", &name]);
    let outcome = host.apply();
    let replumbed: Vec<_> = outcome
        .plan
        .changes
        .iter()
        .map(|c| (c.op, c.id.as_str()))
        .collect();
    assert!(
        replumbed.contains(&(ovsmesh::plan::Op::Replace, "access/c1/eth1")),
        "{replumbed:?}"
    );

    let mac_after = host.in_container("c1", &["cat", "/sys/class/net/eth1/address"]);
    assert_eq!(mac_before, mac_after);
    let addr = host.in_container("c1", &["ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(addr.contains("192.168.0.1/24"), "{addr}");
    assert!(
        host.reaches("c1", "192.168.0.2"),
        "the re-plumbed container passes traffic"
    );
    assert!(host.reaches("c2", "192.168.0.1"));
    assert!(!host.pings("c3", "192.168.0.1"));
    assert!(host.apply().plan.is_empty());
}

#[test]
#[ignore = "needs root + OVS"]
fn down_removes_owned_links_routes_and_addresses_and_gives_the_underlay_back() {
    let host = host();
    host.apply();
    let (outcome, _) = engine_run(
        &host.server,
        &host.netns,
        &host.topology,
        "A",
        true,
        Some(Duration::from_secs(20)),
    );
    assert!(
        !outcome.failed(),
        "{:?} {:?}",
        outcome.ovs.failures,
        outcome.netlink.failures
    );
    let links = host.netns.exec("ip", &["-o", "link"]);
    assert!(
        !links.contains("ovsmesh:"),
        "no owned veth end is left: {links}"
    );
    for c in &host.containers {
        let inside = c.exec("ip", &["-o", "link"]);
        assert!(!inside.contains("eth1"), "{inside}");
    }
    let addrs = host.netns.exec("ip", &["-o", "-4", "addr"]);
    assert!(
        addrs
            .lines()
            .any(|l| l.contains(" u0 ") && l.contains("192.0.2.1/24")),
        "underlay address back on the NIC: {addrs}"
    );
    let routes = host.netns.exec("ip", &["route", "show", "proto", "79"]);
    assert!(routes.trim().is_empty(), "{routes}");
    assert!(host
        .netns
        .exec("ip", &["route"])
        .contains("198.18.0.0/24 via 203.0.113.2"));
    assert!(
        host.server.vsctl(&["list-br"]).trim().is_empty(),
        "{}",
        host.server.vsctl(&["show"])
    );
}

#[test]
#[ignore = "needs root + OVS + Docker"]
fn docker_containers_are_plumbed_and_recover_after_docker_restart() {
    let dockerd = Dockerd::start();
    let server = OvsdbServer::start(None, false);
    let netns = Netns::new("odk");
    netns.exec(
        "ip",
        &["link", "add", "u0", "type", "veth", "peer", "name", "u0p"],
    );
    let _vswitchd = Vswitchd::start_in(&server, &netns);
    let prefix = unique("d");
    let web = format!("{prefix}-web");
    let peer = Netns::named(&format!("{prefix}-peer"));
    dockerd.run_container(&web);
    let text = format!(
        r#"
[mesh]
name = "dk"
[hosts.A]
underlay_address = "192.0.2.1/24"
datapath = "netdev"
underlay_nic = "u0"
[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
[containers.web]
host = "A"
docker = "{web}"
network = "blue"
address = "192.168.0.5"
[containers.peer]
host = "A"
netns = "{}"
network = "blue"
address = "192.168.0.6"
[containers.absent]
host = "A"
docker = "{prefix}-never-started"
network = "blue"
address = "192.168.0.7"
"#,
        peer.name
    );
    let topology = topology(&text);
    let apply = || {
        let (outcome, _) = engine_run_with_docker(
            &server,
            &netns,
            &topology,
            "A",
            false,
            Some(Duration::from_secs(20)),
            &dockerd.socket,
        );
        assert!(
            !outcome.failed(),
            "{:?} {:?}",
            outcome.ovs.failures,
            outcome.netlink.failures
        );
        outcome
    };
    let outcome = apply();
    assert_eq!(
        outcome.plan.waiting,
        vec!["absent".to_string()],
        "a container that does not run is waiting"
    );
    let pings = |to: &str| {
        eventually(Duration::from_secs(10), || {
            std::process::Command::new("ip")
                .args([
                    "netns", "exec", &peer.name, "ping", "-c", "1", "-W", "1", to,
                ])
                .output()
                .is_ok_and(|o| o.status.success())
        })
    };
    assert!(
        pings("192.168.0.5"),
        "netns container reaches the docker container"
    );
    let mac = dockerd.docker(&["exec", &web, "cat", "/sys/class/net/eth1/address"]);
    let pid = dockerd.docker(&["inspect", "-f", "{{.State.Pid}}", &web]);

    dockerd.docker(&["restart", "-t", "0", &web]);
    assert_ne!(
        pid,
        dockerd.docker(&["inspect", "-f", "{{.State.Pid}}", &web]),
        "a restart gives a new PID"
    );
    let outcome = apply();
    assert!(outcome
        .plan
        .changes
        .iter()
        .any(|c| c.id == "access/web/eth1" && c.op == ovsmesh::plan::Op::Replace));
    assert_eq!(
        mac,
        dockerd.docker(&["exec", &web, "cat", "/sys/class/net/eth1/address"]),
        "same MAC"
    );
    let addr = dockerd.docker(&["exec", &web, "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(addr.contains("192.168.0.5/24"), "same address: {addr}");
    assert!(
        pings("192.168.0.5"),
        "traffic flows again after docker restart"
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn forwarding_enabled_by_ovsmesh_is_put_back_by_down() {
    use ovsmesh::netlink::sysctl;
    let netns = Netns::new("ofw");
    netns.exec(
        "ip",
        &["link", "add", "f0", "type", "veth", "peer", "name", "f1"],
    );
    let mesh = unique("fw");
    in_netns(&netns, || {
        sysctl::set_forwarding("f0", false).unwrap();
        assert_eq!(sysctl::forwarding("f0"), Some(false));
        sysctl::enable_remembering(&mesh, "f0").unwrap();
        sysctl::enable_remembering(&mesh, "f0").unwrap(); // a second apply keeps the first memory
        assert_eq!(sysctl::forwarding("f0"), Some(true));
        assert_eq!(sysctl::restore_all(&mesh).unwrap(), vec!["f0".to_string()]);
        assert_eq!(sysctl::forwarding("f0"), Some(false));
        assert!(
            sysctl::restore_all(&mesh).unwrap().is_empty(),
            "restored once"
        );
    });
}
