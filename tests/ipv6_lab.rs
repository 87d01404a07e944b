//! IPv6 end to end in a lab (real OVS per host, userspace datapath), proven
//! with packets by `check`: dual-stack containers on a VLAN network and on the
//! routed network across three hosts over an IPv4 underlay
//! (topology/dual-stack.toml), and the same kinds of networks carried by
//! VXLAN, Geneve and ip6gre over an IPv6-only underlay
//! (topology/ipv6-underlay.toml), and dual-stack Docker containers (a private
//! dockerd per lab host). Each test has its own lab prefix and tears the lab
//! down even when it fails.

mod common;
mod lab_support;

use common::seed;
use lab_support::*;
use ovsmesh::check::{Expect, Report};
use ovsmesh::netns;

/// What a command prints inside the lab namespace `name`.
fn inside(lab: &LabGuard, name: &str, program: &str, args: &[&str]) -> String {
    let out = netns::output(&lab.ns(name), program, args).unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} in {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The IPv6 probes of a report, and that there are some of each kind.
fn assert_ipv6_probed(report: &Report) {
    let ipv6 = |expect: Expect| {
        report
            .probes
            .iter()
            .filter(|p| p.expect == expect && p.from.ends_with("/6") && p.to.ends_with("/6"))
            .count()
    };
    assert!(ipv6(Expect::Reachable) > 0, "no IPv6 reachability probed");
    // Never a probe across families.
    assert!(
        report
            .probes
            .iter()
            .all(|p| p.from.ends_with("/6") == p.to.ends_with("/6")),
        "a probe mixes families"
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn dual_stack_containers_on_vlan_and_routed_networks_across_three_hosts() {
    let lab = up(&seed("dual-stack.toml"), false);
    let report = lab.assert_converged();
    assert_ipv6_probed(&report);
    // VLAN network blue: both families across hosts; blue3 is IPv6 only.
    assert_pair(&report, "blue1/eth1", "blue2/eth1", Expect::Reachable);
    assert_pair(&report, "blue1/eth1/6", "blue2/eth1/6", Expect::Reachable);
    assert_pair(&report, "blue2/eth1/6", "blue3/eth1/6", Expect::Reachable);
    assert_pair(&report, "edge/eth1/6", "blue3/eth1/6", Expect::Reachable);
    assert!(
        !report.probes.iter().any(|p| p.from == "blue3/eth1"),
        "blue3 has no IPv4 address to probe from"
    );
    // red repeats blue's addresses of both families: isolated by the VLAN.
    assert_pair(&report, "red2/eth1/6", "blue3/eth1/6", Expect::Isolated);
    assert_pair(&report, "red3/eth1/6", "blue1/eth1/6", Expect::Isolated);
    assert_pair(&report, "red3/eth1", "blue1/eth1", Expect::Isolated);
    // Routed network pods: one IPv6 prefix per host, routed over the tunnels.
    assert_pair(&report, "pod1/eth1/6", "pod3/eth1/6", Expect::Reachable);
    assert_pair(&report, "pod3/eth1/6", "pod2/eth1/6", Expect::Reachable);
    assert_pair(&report, "pod2/eth1", "pod1/eth1", Expect::Reachable);
    assert_pair(&report, "edge/eth2/6", "pod2/eth1/6", Expect::Reachable);
    // A TCP transfer per network and family.
    for network in ["blue (IPv6)", "pods (IPv6)", "blue", "pods"] {
        assert!(
            report.tcp.iter().any(|t| t.network == network && t.ok),
            "TCP over {network}: {:?}",
            report.tcp
        );
    }

    // The VLAN network's IPv6 gateway on node1 answers, and routes blue's
    // members to the routed network (blue2 on node2 reaches pod1 on node1;
    // as with IPv4, only the gateway's host routes the VLAN subnet).
    assert!(lab.ping("blue2", "fd00:100::fe"), "blue2 -> gateway6");
    assert!(lab.ping("blue2", "fd00:1::10"), "blue2 -> pod1 via node1");
    // edge's IPv6 default route is the one `gateway6` picked (pods, eth2),
    // its extra IPv6 route is there, both marked as ovsmesh's (protocol 79; the IPv6
    // default route metric 1: IPv6 has no 0).
    let routes = inside(&lab, "edge", "ip", &["-6", "route", "show"]);
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with("default via fd00:1::1 dev eth2 proto 79 metric 1 ")),
        "{routes}"
    );
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with("2001:db8:ff::/48 via fd00:1::1 dev eth2 proto 79 ")),
        "{routes}"
    );
    // Inside the container: no router advertisements, no DAD (never tentative).
    let accept_ra = inside(
        &lab,
        "pod1",
        "cat",
        &["/proc/sys/net/ipv6/conf/eth1/accept_ra"],
    );
    assert_eq!(accept_ra.trim(), "0");
    let addresses = inside(&lab, "pod1", "ip", &["-6", "addr", "show", "dev", "eth1"]);
    assert!(
        addresses.lines().any(|l| l.contains("inet6 fd00:1::10/64")
            && l.contains("nodad")
            && !l.contains("tentative")),
        "{addresses}"
    );
    // The host routing IPv6 forwards it (Linux: by `all`).
    let host = netns::open(&lab.lab.host_ns("node2")).unwrap();
    let out = netns::output(&host, "cat", &["/proc/sys/net/ipv6/conf/all/forwarding"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");

    // check proves IPv6 on its own: an IPv6 address taken away by hand is
    // an IPv6 mismatch while IPv4 still passes, and an apply puts it back.
    inside(
        &lab,
        "blue1",
        "ip",
        &["-6", "addr", "del", "fd00:100::1/64", "dev", "eth1"],
    );
    let broken = lab.check();
    let failed: Vec<(&str, &str)> = broken
        .probes
        .iter()
        .filter(|p| !p.ok)
        .map(|p| (p.from.as_str(), p.to.as_str()))
        .collect();
    assert!(
        failed.contains(&("blue2/eth1/6", "blue1/eth1/6")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .all(|(from, to)| from.ends_with("/6") && to.ends_with("/6")),
        "only IPv6 pairs fail: {failed:?}"
    );
    // status shows the IPv6 drift on the interface.
    let file = lab.lab.dir.join("topology.toml");
    std::fs::write(&file, seed("dual-stack.toml")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
        .args(["status", file.to_str().unwrap(), "--host", "node1"])
        .args(["--lab", &lab.lab.prefix])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("blue1/eth1") && l.contains("drifted")),
        "{text}"
    );
    assert!(text.contains("address6"), "{text}");
    let outcome = lab.apply("node1", false);
    assert!(
        !outcome.failed(),
        "{:?} {:?}",
        outcome.ovs.failures,
        outcome.netlink.failures
    );
    let report = lab.assert_converged();
    assert_pair(&report, "blue2/eth1/6", "blue1/eth1/6", Expect::Reachable);
    // A second apply changes nothing.
    for host in ["node1", "node2", "node3"] {
        let outcome = lab.apply(host, false);
        assert!(
            outcome.plan.is_empty(),
            "{host}: {:?}",
            outcome.plan.changes
        );
    }

    // The hosts' IPv6 FORWARD policy drops: the mesh's ip6tables accept
    // rules carry its routed IPv6 traffic anyway; without the jump into
    // them, node1 forwards none (IPv4 goes on), and apply puts it back.
    let ip6tables = |host: &str, args: &[&str]| {
        let ns = netns::open(&lab.lab.host_ns(host)).unwrap();
        let out = netns::output(&ns, "ip6tables", args).unwrap();
        assert!(
            out.status.success(),
            "ip6tables {args:?} on {host}: {out:?}"
        );
    };
    for host in ["node1", "node2", "node3"] {
        ip6tables(host, &["-P", "FORWARD", "DROP"]);
    }
    let report = lab.assert_converged();
    assert_pair(&report, "pod1/eth1/6", "pod3/eth1/6", Expect::Reachable);
    let jump = [
        "FORWARD",
        "-m",
        "comment",
        "--comment",
        "ovsmesh:dual",
        "-j",
        "OVSMESH-FORWARD",
    ];
    ip6tables("node1", &[&["-D"][..], &jump].concat());
    assert!(!lab.ping("pod1", "fd00:3::10"), "node1 drops routed IPv6");
    assert!(lab.ping("pod1", "172.17.3.10"), "IPv4 is not affected");
    assert!(!lab.apply("node1", false).failed());
    assert!(lab.ping("pod1", "fd00:3::10"), "the jump is back");

    // An uplink of node2's (a veth `ra0`: the lab's underlay bridge goes
    // with `down`) has a default route from router advertisements (one made
    // to look so, `proto ra`): forwarding IPv6 would make the kernel drop it
    // unless accept_ra is 2, so apply sets 2 and down puts the old value back.
    let ip = |args: &[&str]| {
        let out = netns::output(&host, "ip", args).unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    };
    ip(&["link", "add", "ra0", "type", "veth", "peer", "name", "ra0p"]);
    ip(&["link", "set", "ra0p", "up"]);
    ip(&["link", "set", "ra0", "up"]);
    let accept_ra = || {
        let path = "/proc/sys/net/ipv6/conf/ra0/accept_ra";
        let out = netns::output(&host, "cat", &[path]).unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let before = accept_ra();
    assert_ne!(before, "2");
    ip(&[
        "-6", "route", "add", "default", "via", "fe80::1", "dev", "ra0", "proto", "ra",
    ]);
    let outcome = lab.apply("node2", false);
    assert!(!outcome.failed(), "{:?}", outcome.netlink.failures);
    assert_eq!(accept_ra(), "2");
    assert!(lab.apply("node2", false).plan.is_empty());
    let outcome = lab.apply("node2", true);
    assert!(!outcome.failed(), "{:?}", outcome.netlink.failures);
    assert_eq!(accept_ra(), before, "down restores accept_ra");
    let out = netns::output(&host, "cat", &["/proc/sys/net/ipv6/conf/all/forwarding"]).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "down turns IPv6 forwarding back off"
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn vxlan_geneve_and_ip6gre_over_an_ipv6_underlay_carry_dual_stack_vlan_and_routed_networks() {
    // The MTU budget counts the 40-byte IPv6 outer header: 1500 - (40 + encap
    // header + inner Ethernet 14 + VLAN tag 4) on the VLAN network's trunk.
    for (encap, mtu) in [("vxlan", 1426), ("geneve", 1426), ("ip6gre", 1434)] {
        let text = seed("ipv6-underlay.toml")
            .replace("encap = \"vxlan\"", &format!("encap = \"{encap}\""));
        over_an_ipv6_underlay(&text, encap, mtu);
    }
}

fn over_an_ipv6_underlay(text: &str, encap: &str, mtu: u32) {
    let lab = up(text, false);
    let report = lab.assert_converged();
    assert_ipv6_probed(&report);
    for (from, to) in [
        ("blue1/eth1", "blue3/eth1"),
        ("blue3/eth1/6", "blue2/eth1/6"),
        ("pod1/eth1", "pod2/eth1"),
        ("pod2/eth1/6", "pod3/eth1/6"),
    ] {
        assert_pair(&report, from, to, Expect::Reachable);
    }
    assert!(
        report.tcp.len() == 4 && report.tcp.iter().all(|t| t.ok),
        "{encap}: {:?}",
        report.tcp
    );
    // The hosts reach each other only by IPv6: IPv4 only on loopback and
    // the routed network's gateway bridge, the underlay bridge has IPv6 alone.
    let host = netns::open(&lab.lab.host_ns("node1")).unwrap();
    let out = netns::output(&host, "ip", &["-o", "addr"]).unwrap();
    let addresses = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        addresses
            .lines()
            .filter(|l| l.contains(" inet "))
            .all(|l| l.contains(" lo ") || l.contains(" obr0 ")),
        "IPv4 on node1: {addresses}"
    );
    assert!(
        addresses
            .lines()
            .any(|l| l.contains(" br-phy ") && l.contains("2001:db8::11/64")),
        "{addresses}"
    );
    // Every tunnel is of the encap's type, to a peer's IPv6 underlay address.
    let tunnels = lab.vsctl(
        "node1",
        &[
            "--columns=options",
            "--bare",
            "find",
            "interface",
            &format!("type={encap}"),
        ],
    );
    let remotes: Vec<&str> = tunnels.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!remotes.is_empty(), "no {encap} tunnel on node1");
    assert!(
        remotes
            .iter()
            .all(|o| o.contains("remote_ip=2001:db8::12") || o.contains("remote_ip=2001:db8::13")),
        "{tunnels}"
    );
    let link = inside(&lab, "blue1", "ip", &["-o", "link", "show", "eth1"]);
    assert!(link.contains(&format!("mtu {mtu}")), "{encap}: {link}");
}

#[test]
#[ignore = "needs root + OVS + Docker"]
fn dual_stack_docker_containers_across_hosts_and_after_a_restart() {
    // pipework-vlan.toml's Docker containers with an IPv6 address each:
    // Docker disables IPv6 in a container whose networks have none, so
    // ovsmesh turns it on for its interface.
    let mut text = String::new();
    for line in seed("pipework-vlan.toml").lines() {
        text.push_str(line);
        text.push('\n');
        if line == "subnet = \"192.168.0.0/24\"" {
            text.push_str("subnet6 = \"fd00:100::/64\"\n");
        }
        if let Some(n) = line
            .strip_prefix("address = \"192.168.0.")
            .and_then(|l| l.strip_suffix('"'))
        {
            text.push_str(&format!("address6 = \"fd00:100::{n}\"\n"));
        }
    }
    let lab = up(&text, true);
    let report = lab.assert_converged();
    assert_ipv6_probed(&report);
    assert_pair(&report, "test1/eth1/6", "test3/eth1/6", Expect::Reachable);
    assert_pair(&report, "test1/eth1/6", "test4/eth1/6", Expect::Isolated);
    assert_pair(&report, "test2/eth1/6", "test4/eth1/6", Expect::Reachable);

    // Docker restarts test1 (a new namespace, IPv6 off again): apply re-plumbs
    // both families.
    let docker = |args: &[&str]| lab.docker(args);
    let name = format!("{}-test1", lab.lab.prefix);
    docker(&["restart", "-t", "0", &name]);
    let outcome = lab.apply("A", false);
    assert!(!outcome.failed(), "{:?}", outcome.netlink.failures);
    let addr = docker(&["exec", &name, "ip", "-o", "-6", "addr", "show", "eth1"]);
    assert!(addr.contains("fd00:100::1/64"), "{addr}");
    let report = lab.assert_converged();
    assert_pair(&report, "test1/eth1/6", "test3/eth1/6", Expect::Reachable);
}
