//! Ownership against a real host: one netdev host (ovsdb-server + ovs-vswitchd
//! in its own namespace, userspace datapath) shared with an admin's objects and
//! another tool's routes. ovsmesh touches only what is its own (README
//! "Identity and ownership"); one test per finding of issue 10.

mod common;
mod ownership;

use std::time::Duration;

use common::*;
use ovsmesh::marks::Policy;
use ownership::*;

#[test]
#[ignore = "needs root + OVS"]
fn an_admins_br_phy_holding_the_nic_is_adopted_as_it_is() {
    let host = host();
    // The userspace-datapath recipe of the OVS docs, done by an admin.
    host.server.vsctl(&[
        "add-br",
        "br-phy",
        "--",
        "set",
        "bridge",
        "br-phy",
        "datapath_type=netdev",
    ]);
    host.server.vsctl(&["add-port", "br-phy", "u0"]);
    assert!(eventually(Duration::from_secs(10), || {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &host.netns.name,
                "ip",
                "link",
                "show",
                "br-phy",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    }));
    host.ip(&["addr", "del", "192.0.2.1/24", "dev", "u0"]);
    host.ip(&["addr", "add", "192.0.2.1/24", "dev", "br-phy"]);
    host.ip(&["link", "set", "br-phy", "up"]);

    let a = Mesh::new(&host, 1);
    host.apply(&a); // no "constraint violation … index on column name"
    host.assert_converged(&a, "apply");
    assert!(host.reaches(&a));
    // Nothing of the admin's is rewritten or marked.
    assert_eq!(host.external_ids("Bridge", "br-phy"), "{}");
    assert_eq!(host.external_ids("Port", "u0"), "{}");
    assert_eq!(
        host.server
            .vsctl(&["get", "Bridge", "br-phy", "datapath_type"])
            .trim(),
        "netdev"
    );

    host.down(&a);
    assert_eq!(host.server.vsctl(&["list-ports", "br-phy"]).trim(), "u0");
    assert!(host.addresses_of("br-phy").contains("192.0.2.1/24"));
    assert!(!host.addresses_of("u0").contains("192.0.2.1"));
    assert!(!host.bridges().contains("ovs1"));
}

#[test]
#[ignore = "needs root + OVS"]
fn an_extra_address_on_the_underlay_bridge_is_the_admins_and_stays() {
    let host = host();
    let a = Mesh::new(&host, 1);
    host.apply(&a);
    host.ip(&["addr", "add", "198.51.100.7/24", "dev", "br-phy"]);
    host.assert_converged(&a, "an address added by hand");
    host.apply(&a);
    assert!(host.addresses_of("br-phy").contains("198.51.100.7/24"));
    assert!(!host.addresses_of("u0").contains("198.51.100.7"));
    host.down(&a);
    // The underlay address goes back to the NIC; the admin's does not follow it.
    assert!(host.addresses_of("u0").contains("192.0.2.1/24"));
    assert!(!host.addresses_of("u0").contains("198.51.100.7"));
}

#[test]
#[ignore = "needs root + OVS"]
fn routes_with_protocol_79_that_are_not_this_meshs_are_kept() {
    let host = host();
    let a = Mesh::new(&host, 1);
    let other_mesh = Policy::new("another-mesh").route_metric().to_string();
    // Another tool using 79 (metric 0), and another mesh's route.
    host.ip(&[
        "route",
        "add",
        "198.18.5.0/24",
        "via",
        "203.0.113.2",
        "proto",
        "79",
    ]);
    host.ip(&[
        "route",
        "add",
        "198.18.6.0/24",
        "via",
        "203.0.113.2",
        "proto",
        "79",
        "metric",
        &other_mesh,
    ]);
    let kept = |routes: &str| {
        routes.contains("198.18.5.0/24 via 203.0.113.2")
            && routes.contains(&format!(
                "198.18.6.0/24 via 203.0.113.2 dev f0 proto 79 metric {other_mesh}"
            ))
    };
    host.apply(&a);
    host.assert_converged(&a, "apply");
    let routes = host.ip(&["route"]);
    assert!(kept(&routes), "{routes}");
    assert!(
        routes.contains(&format!("{} via", a.peer_subnet())),
        "{routes}"
    );
    host.down(&a);
    let routes = host.ip(&["route"]);
    assert!(kept(&routes), "{routes}");
    assert!(!routes.contains(&a.peer_subnet()), "{routes}");
}

#[test]
#[ignore = "needs root + OVS"]
fn a_foreign_route_holding_our_destination_and_metric_is_a_conflict_never_overwritten() {
    let host = host();
    let a = Mesh::new(&host, 1);
    let metric = a.metric().to_string();
    let subnet = a.peer_subnet();
    host.ip(&[
        "route",
        "add",
        &subnet,
        "via",
        "203.0.113.2",
        "metric",
        &metric,
    ]);
    let outcome = host.run(&a, false);
    assert!(outcome.failed());
    let conflicts: Vec<String> = outcome
        .plan
        .conflicts
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert!(
        conflicts[0].starts_with(&format!("route {subnet}: "))
            && conflicts[0].contains("203.0.113.2"),
        "{conflicts:?}"
    );
    // The rest of the host was made; the foreign route is as it was.
    assert!(host.bridges().contains("ovs1"));
    let routes = host.ip(&["route", "show", &subnet]);
    assert!(
        routes.contains("via 203.0.113.2 dev f0") && !routes.contains("proto 79"),
        "{routes}"
    );
    // The CLI names it and exits 1, for plan and for apply.
    for command in ["plan", "apply"] {
        let (code, text) = host.cli(command, &a);
        assert_eq!(code, Some(1), "{command}: {text}");
        assert!(
            text.contains(&format!("conflict: route {subnet}")),
            "{text}"
        );
    }
    assert!(host
        .ip(&["route", "show", &subnet])
        .contains("via 203.0.113.2"));
}

#[test]
#[ignore = "needs root + OVS"]
fn a_foreign_link_with_our_ifname_in_a_container_is_a_named_conflict_and_left_alone() {
    let host = host();
    let a = Mesh::new(&host, 1);
    let c1 = a.container("c1");
    let ip_c1 = |args: &[&str]| {
        let mut all = vec!["netns", "exec", c1.as_str(), "ip"];
        all.extend_from_slice(args);
        run("ip", &all)
    };
    // Someone else's eth1 (a veth whose peer stays in the container too).
    ip_c1(&[
        "link", "add", "eth1", "type", "veth", "peer", "name", "other1",
    ]);
    let outcome = host.run(&a, false);
    assert!(outcome.failed());
    assert_eq!(
        outcome.plan.conflicts.len(),
        1,
        "{:?}",
        outcome.plan.conflicts
    );
    let conflict = outcome.plan.conflicts[0].to_string();
    assert!(
        conflict.contains("c1/eth1")
            && conflict.contains("container c1")
            && conflict.contains("eth1"),
        "{conflict}"
    );
    let link = ip_c1(&["-o", "link", "show", "eth1"]);
    assert!(
        link.contains("eth1@other1"),
        "the foreign link is untouched: {link}"
    );
    // The other container is plumbed.
    let c2 = run(
        "ip",
        &[
            "netns",
            "exec",
            &a.container("c2"),
            "ip",
            "-d",
            "link",
            "show",
            "eth1",
        ],
    );
    assert!(c2.contains("veth"), "{c2}");
    let (code, text) = host.cli("plan", &a);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("conflict: container-interface c1/eth1"),
        "{text}"
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn a_foreign_device_with_our_host_end_name_is_never_deleted_or_bridged() {
    let host = host();
    let a = Mesh::new(&host, 1);
    let name = ovsmesh::topology::names::access_port(&a.name, "c1", "eth1");
    host.ip(&[
        "link", "add", &name, "type", "veth", "peer", "name", "other1",
    ]);
    let outcome = host.run(&a, false);
    assert!(outcome.failed());
    let conflict = outcome.plan.conflicts[0].to_string();
    assert!(
        conflict.starts_with("port access/c1/eth1") && conflict.contains(&name),
        "{conflict}"
    );
    let link = host.ip(&["-o", "link", "show", &name]);
    assert!(link.contains(&format!("{name}@other1")), "{link}");
    let bridged = host
        .server
        .vsctl(&["--columns=name", "find", "port", &format!("name={name}")]);
    assert!(bridged.trim().is_empty(), "{bridged}");
}

#[test]
#[ignore = "needs root + OVS"]
fn an_adopted_bridge_keeps_its_datapath_type_and_gets_no_marks() {
    // No vswitchd needed: only what is written to OVSDB is checked.
    let server = OvsdbServer::start(None, false);
    let netns = Netns::new("ood");
    let container = Netns::new("oodc");
    server.vsctl(&[
        "add-br",
        "ovs0",
        "--",
        "set",
        "bridge",
        "ovs0",
        "datapath_type=netdev",
    ]);
    let topology = topology(&format!(
        r#"
[mesh]
name = "{}"
[hosts.A]
underlay_address = "192.0.2.1/24"
[hosts.B]
underlay_address = "192.0.2.2/24"
[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
[containers.a]
host = "A"
netns = "{}"
network = "blue"
address = "192.168.0.1"
[containers.b]
host = "B"
network = "blue"
address = "192.168.0.3"
"#,
        unique("m"),
        container.name
    ));
    let (outcome, _) = engine_run(&server, &netns, &topology, "A", false, None);
    assert!(!outcome.failed(), "{}", failures(&outcome));
    assert!(
        outcome
            .plan
            .kept
            .iter()
            .any(|k| k.id == "ovs0" && k.reason.contains("datapath_type netdev")),
        "{:?}",
        outcome.plan.kept
    );
    let column = |col: &str| {
        server
            .vsctl(&["get", "Bridge", "ovs0", col])
            .trim()
            .to_string()
    };
    assert_eq!(column("datapath_type"), "netdev", "never rewritten");
    assert_eq!(column("external_ids"), "{}");
    assert_eq!(
        server.vsctl(&["list-ports", "ovs0"]).lines().count(),
        2,
        "the access port and the tunnel"
    );
    let (again, writes) = engine_run(&server, &netns, &topology, "A", false, None);
    assert!(
        again.plan.is_empty() && writes == 0,
        "{:?}",
        again.plan.changes
    );
    engine_run(&server, &netns, &topology, "A", true, None);
    assert!(server.vsctl(&["list-br"]).contains("ovs0"));
    assert!(server.vsctl(&["list-ports", "ovs0"]).trim().is_empty());
}
