//! End-to-end: the seed scenarios in a lab (real OVS per host, userspace
//! datapath), proven with packets by `check`. Each test has its own prefix and
//! tears its lab down even when it fails.

mod common;
mod lab_support;

use std::path::Path;

use common::*;
use lab_support::*;
use ovsmesh::check::Expect;
use ovsmesh::netns;

#[test]
#[ignore = "needs root + OVS"]
fn pipework_vlans_over_gre_tunnels() {
    let lab = up(&as_netns(&seed("pipework-vlan.toml")), false);
    let report = lab.assert_converged();
    assert_pair(&report, "test1/eth1", "test3/eth1", Expect::Reachable);
    assert_pair(&report, "test2/eth1", "test4/eth1", Expect::Reachable);
    assert_pair(&report, "test1/eth1", "test4/eth1", Expect::Isolated);
    assert_pair(&report, "test3/eth1", "test2/eth1", Expect::Isolated);
    assert!(
        report.tcp.iter().all(|t| t.ok) && report.tcp.len() == 2,
        "{:?}",
        report.tcp
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn pipework_vlans_over_an_uplink_trunk() {
    let lab = up(&as_netns(&seed("pipework-uplink.toml")), false);
    let report = lab.assert_converged();
    assert_pair(&report, "test1/eth1", "test3/eth1", Expect::Reachable);
    assert_pair(&report, "test2/eth1", "test3/eth1", Expect::Isolated);
}

#[test]
#[ignore = "needs root + OVS"]
fn vxlan_and_geneve_carry_the_vlans_too() {
    for encap in ["vxlan", "geneve"] {
        let text = as_netns(&seed("pipework-vlan.toml"))
            .replace("encap = \"gre\"", &format!("encap = \"{encap}\""));
        let lab = up(&text, false);
        let report = lab.assert_converged();
        assert_pair(&report, "test1/eth1", "test3/eth1", Expect::Reachable);
        assert_pair(&report, "test1/eth1", "test4/eth1", Expect::Isolated);
        let link = netns::output(&lab.ns("test1"), "ip", &["-o", "link", "show", "eth1"]).unwrap();
        assert!(
            String::from_utf8_lossy(&link.stdout).contains("mtu 1446"),
            "{encap} budget: 1500-20-16-14-4"
        );
    }
}

#[test]
#[ignore = "needs root + OVS"]
fn routed_overlay_over_gre_and_direct() {
    for file in ["routed-gre.toml", "routed-direct.toml"] {
        // A mesh name of its own, to find what it remembers under /run/ovsmesh.
        let mesh = unique("rt");
        let seeded = seed(file);
        let named = seeded.lines().find(|l| l.starts_with("name = ")).unwrap();
        let text = seeded.replacen(named, &format!("name = \"{mesh}\""), 1);
        let lab = up(&as_netns(&text), false);
        let memories = Path::new("/run/ovsmesh/forwarding").join(&mesh);
        assert!(
            memories.is_dir(),
            "{file}: forwarding remembered per host namespace"
        );
        let report = lab.assert_converged();
        assert_pair(&report, "web/eth1", "db/eth1", Expect::Reachable);
        assert_pair(&report, "db/eth1", "web/eth1", Expect::Reachable);
        // Symmetric paths: each side's default route is its own host's gateway.
        let routes = netns::output(&lab.ns("web"), "ip", &["route"]).unwrap();
        assert!(
            String::from_utf8_lossy(&routes.stdout).contains("default via 172.17.1.1"),
            "{file}"
        );
        // `lab down` deletes the host namespaces, and with them what ovsmesh
        // remembered of their settings (it used to pile up under /run/ovsmesh).
        drop(lab);
        for key in ["forwarding", "send_redirects"] {
            let left = Path::new("/run/ovsmesh").join(key).join(&mesh);
            assert!(
                !left.exists(),
                "{file}: {} left after lab down",
                left.display()
            );
        }
    }
}

#[test]
#[ignore = "needs root + OVS"]
fn three_host_lab_full_mesh_gateway_no_storm_idempotent_and_clean_down() {
    let lab = up(&seed("lab.toml"), false);
    let report = lab.assert_converged();
    assert_pair(&report, "blue1/eth1", "blue3/eth1", Expect::Reachable);
    assert_pair(&report, "pod1/eth1", "pod3/eth1", Expect::Reachable);
    assert_pair(&report, "red2/eth1", "blue3/eth1", Expect::Isolated);

    // The VLAN gateway answers, and node1 routes VLAN members to the routed network.
    assert!(
        lab.ping("blue2", "192.168.0.254"),
        "blue2 -> its gateway on node1"
    );
    assert!(
        lab.ping("blue2", "172.17.1.10"),
        "blue2 -> pod1 routed by node1"
    );

    // No broadcast storm: underlay frames stay bounded during a broadcast ping.
    let switch = netns::open(&lab.lab.switch_ns()).unwrap();
    let frames = || {
        let out = netns::output(&switch, "cat", &["/proc/net/dev"]).unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.trim_start().starts_with("br0:"))
            .and_then(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
            .unwrap()
    };
    let before = frames();
    let _ = netns::output(
        &lab.ns("blue1"),
        "ping",
        &["-b", "-c", "5", "-i", "0.2", "-W", "1", "192.168.0.255"],
    );
    let after = frames();
    assert!(
        after - before < 500,
        "underlay frames during 5 broadcasts: {}",
        after - before
    );

    // A second apply changes nothing on any host.
    for host in ["node1", "node2", "node3"] {
        let outcome = lab.apply(host, false);
        assert!(
            outcome.plan.is_empty(),
            "{host}: {:?}",
            outcome.plan.changes
        );
    }

    // down leaves no owned row, link or route; a foreign port and route survive.
    let vsctl = |args: &[&str]| lab.vsctl("node1", args);
    vsctl(&[
        "add-port",
        "ovs0",
        "handmade",
        "--",
        "set",
        "interface",
        "handmade",
        "type=internal",
    ]);
    let host_ns = netns::open(&lab.lab.host_ns("node1")).unwrap();
    let added = netns::output(
        &host_ns,
        "ip",
        &["route", "add", "198.18.7.0/24", "via", "192.0.2.254"],
    )
    .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let outcome = lab.apply("node1", true);
    assert!(
        !outcome.failed(),
        "{:?} {:?}",
        outcome.ovs.failures,
        outcome.netlink.failures
    );
    assert_eq!(
        outcome.ovs.kept_bridges,
        vec![("ovs0".to_string(), vec!["handmade".to_string()])]
    );
    let ports = vsctl(&["list-ports", "ovs0"]);
    assert_eq!(ports.trim(), "handmade");
    let owned = vsctl(&[
        "--columns=name",
        "find",
        "port",
        "external_ids:ovsmesh-mesh=lab",
    ]);
    assert!(owned.trim().is_empty(), "{owned}");
    let links = netns::output(&host_ns, "ip", &["-o", "link"]).unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("ovsmesh:"));
    let routes = netns::output(&host_ns, "ip", &["route"]).unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).to_string();
    assert!(!routes.contains("proto 79"), "{routes}");
    assert!(
        routes.contains("198.18.7.0/24 via 192.0.2.254"),
        "the foreign route survives: {routes}"
    );
    let addrs = netns::output(&host_ns, "ip", &["-o", "-4", "addr"]).unwrap();
    assert!(
        String::from_utf8_lossy(&addrs.stdout)
            .lines()
            .any(|l| l.contains(" eth1 ") && l.contains("192.0.2.11/24")),
        "the underlay address is back on the NIC"
    );
}

#[test]
#[ignore = "needs root + OVS + Docker"]
fn docker_restart_then_apply_restores_reachability_with_the_same_ip_and_mac() {
    let lab = up(&seed("pipework-vlan.toml"), true);
    let report = lab.assert_converged();
    assert_pair(&report, "test1/eth1", "test3/eth1", Expect::Reachable);
    let docker = |args: &[&str]| lab.docker(args);
    let name = format!("{}-test1", lab.lab.prefix);
    let mac = docker(&["exec", &name, "cat", "/sys/class/net/eth1/address"]);
    docker(&["restart", "-t", "0", &name]);
    let outcome = lab.apply("A", false);
    assert!(!outcome.failed());
    assert_eq!(
        mac,
        docker(&["exec", &name, "cat", "/sys/class/net/eth1/address"])
    );
    let addr = docker(&["exec", &name, "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(addr.contains("192.168.0.1/24"), "{addr}");
    let report = lab.assert_converged();
    assert_pair(&report, "test1/eth1", "test3/eth1", Expect::Reachable);
}

#[test]
#[ignore = "needs root + OVS"]
fn check_names_the_broken_pairs_when_an_owned_port_is_deleted_by_hand() {
    let lab = up(&as_netns(&seed("pipework-vlan.toml")), false);
    lab.assert_converged();
    let port = ovsmesh::desired::desired(&lab.lab.twin(&lab.topology), "B")
        .unwrap()
        .ports["access/test3/eth1"]
        .name
        .clone();
    lab.vsctl("B", &["del-port", &port]);
    let file = lab.lab.dir.join("topology.toml");
    std::fs::write(&file, as_netns(&seed("pipework-vlan.toml"))).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
        .args(["check", file.to_str().unwrap(), "--lab", &lab.lab.prefix])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("MISMATCH test1/eth1 -> test3/eth1"), "{text}");
    assert!(text.contains("MISMATCH test3/eth1 -> test1/eth1"), "{text}");
}

#[test]
#[ignore = "needs root + OVS"]
fn status_reports_attached_drifted_waiting_and_tunnels() {
    let lab = up(&as_netns(&seed("pipework-vlan.toml")), false);
    lab.assert_converged();
    let file = lab.lab.dir.join("topology.toml");
    std::fs::write(&file, as_netns(&seed("pipework-vlan.toml"))).unwrap();
    let status = |json: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ovsmesh"));
        command.args([
            "status",
            file.to_str().unwrap(),
            "--host",
            "A",
            "--lab",
            &lab.lab.prefix,
        ]);
        if json {
            command.args(["--format", "json"]);
        }
        let out = command.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = status(false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("host A: converged"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("test1/eth1") && l.contains("attached")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("tunnel/ovs0/B") && l.contains(" up ")),
        "{text}"
    );

    // Drift and a vanished container show, and the exit code says "not converged".
    let port = lab.vsctl(
        "A",
        &[
            "--columns=name",
            "--bare",
            "find",
            "port",
            "external_ids:ovsmesh-container=test1",
        ],
    );
    lab.vsctl("A", &["set", "port", port.trim(), "tag=999"]);
    run(
        "ip",
        &["netns", "del", &format!("{}-test2", lab.lab.prefix)],
    );
    let (code, json) = status(true);
    assert_eq!(code, Some(2), "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["converged"], false);
    let state = |name: &str| {
        report["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["interface"] == name)
            .map(|i| i["state"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(state("test1/eth1"), "drifted");
    assert_eq!(state("test2/eth1"), "waiting");
    assert!(report["pending_changes"].as_u64().unwrap() >= 1);
}
