//! The rules a host needs, and where they go on the host as found.

use std::path::Path;

use super::*;
use crate::desired::desired;
use crate::state::Family;
use crate::topology::{self, names};

const MESH: &str = r#"
[mesh]
name = "m"
MANAGE

[hosts.node1]
underlay_address = "203.0.113.11/25"

[hosts.node2]
underlay_address = "203.0.113.12/25"

[hosts.node3]
underlay_address = "203.0.113.13/25"

[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.0.2.0/24"
gateway = { host = "node1", address = "192.0.2.254" }
BLUE_EGRESS

[networks.red]
kind = "vlan"
vlan = 200

[networks.pods]
kind = "routed"
mode = "MODE"
subnets = { node1 = "203.0.113.128/27", node2 = "203.0.113.160/27" }
PODS_EGRESS

[containers.b1]
host = "node1"
network = "blue"
address = "192.0.2.1"

[containers.b3]
host = "node3"
network = "blue"
address = "192.0.2.3"

[containers.r3]
host = "node3"
network = "red"
address = "198.51.100.3/25"
"#;

fn state(mode: &str, manage: &str, egress: bool, host: &str) -> HostState {
    let nat = if egress { "egress = \"nat\"" } else { "" };
    let text = MESH
        .replace("MODE", mode)
        .replace("MANAGE", manage)
        .replace("BLUE_EGRESS", nat)
        .replace("PODS_EGRESS", nat);
    let topology = topology::parse(Path::new("t.toml"), &text).unwrap();
    desired(&topology, host).unwrap()
}

fn ids(mode: &str, egress: bool, host: &str) -> Vec<String> {
    state(mode, "", egress, host)
        .firewall
        .keys()
        .cloned()
        .collect()
}

#[test]
fn tunnel_mode_accepts_the_hairpin_and_between_routing_interfaces() {
    let gw = names::gateway_port("m", "blue");
    assert_eq!(
        ids("tunnel", false, "node1"),
        [
            format!("accept -i {gw} -o obr0"),
            format!("accept -i obr0 -o {gw}"),
            "accept -i obr0 -o obr0".to_string(),
        ]
    );
    // node2 has only the routed subnet: the hairpin alone; node3 routes nothing.
    assert_eq!(ids("tunnel", false, "node2"), ["accept -i obr0 -o obr0"]);
    assert!(ids("tunnel", false, "node3").is_empty());
    let rules = state("tunnel", "", false, "node2").firewall;
    assert!(rules
        .values()
        .all(|r| r.place == Place::Forward && r.misplaced.is_none()));
}

#[test]
fn direct_mode_accepts_only_between_own_and_peer_subnets() {
    assert_eq!(
        ids("direct", false, "node2"),
        [
            "accept -i obr0 -s 203.0.113.160/27 -d 203.0.113.128/27",
            "accept -o obr0 -s 203.0.113.128/27 -d 203.0.113.160/27",
        ]
    );
}

#[test]
fn opting_out_wants_no_rules() {
    assert!(state("tunnel", "manage_firewall = false", false, "node1")
        .firewall
        .is_empty());
}

#[test]
fn egress_masquerades_each_routed_network_where_it_is_routed_keeping_every_mesh_subnet() {
    let gw = names::gateway_port("m", "blue");
    let node1 = state("tunnel", "", true, "node1").firewall;
    // Every subnet of the mesh, aggregated: blue's, red's containers' (no subnet), the routed ones.
    let keep: Vec<IpNet> = ["192.0.2.0/24", "198.51.100.0/25", "203.0.113.128/26"]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    for (dev, net) in [("obr0", "203.0.113.128/27"), (gw.as_str(), "192.0.2.0/24")] {
        let masquerade = &node1[&format!("masquerade -s {net}")];
        assert_eq!(
            masquerade.rule,
            Rule::Masquerade(Masquerade {
                source: net.parse().unwrap(),
                keep: keep.clone(),
            })
        );
        assert_eq!(masquerade.place, Place::SourceNat);
        assert!(node1.contains_key(&format!("accept -i {dev} -s {net}")));
        assert!(node1.contains_key(&format!("accept -o {dev} -d {net} replies")));
    }
    // node2 routes its own subnet only; blue's gateway is node1's; node3 routes nothing.
    let node2: Vec<String> = ids("tunnel", true, "node2");
    assert!(node2.contains(&"masquerade -s 203.0.113.160/27".to_string()));
    assert_eq!(
        node2.iter().filter(|i| i.starts_with("masquerade")).count(),
        1
    );
    assert!(ids("tunnel", true, "node3").is_empty());
}

fn placed(host: Option<FirewallHost>, observed: &[FirewallRule]) -> (HostState, Vec<Conflict>) {
    let mut target = state("tunnel", "", true, "node2");
    let seen = HostState {
        firewall: observed.iter().map(|r| (r.rule.id(), r.clone())).collect(),
        firewall_host: host,
        ..HostState::default()
    };
    let mut conflicts = Vec::new();
    place(&mut target, &seen, &mut conflicts);
    (target, conflicts)
}

fn places(target: &HostState) -> Vec<(String, String)> {
    target
        .firewall
        .iter()
        .map(|(id, r)| (id.clone(), r.place.to_string()))
        .collect()
}

#[test]
fn rules_go_into_docker_user_or_own_chains_with_their_jumps() {
    let docker = FirewallHost::Iptables {
        variant: "nf_tables".into(),
        docker_user: true,
        docker_user6: false,
    };
    let (target, conflicts) = placed(Some(docker), &[]);
    assert!(conflicts.is_empty());
    assert_eq!(
        places(&target),
        [
            ("accept -i obr0 -o obr0", "DOCKER-USER"),
            ("accept -i obr0 -s 203.0.113.160/27", "DOCKER-USER"),
            ("accept -o obr0 -d 203.0.113.160/27 replies", "DOCKER-USER"),
            ("jump POSTROUTING -> OVSMESH-POSTROUTING", "nat POSTROUTING"),
            ("masquerade -s 203.0.113.160/27", "nat OVSMESH-POSTROUTING"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let plain = FirewallHost::Iptables {
        variant: "legacy".into(),
        docker_user: false,
        docker_user6: false,
    };
    let (target, _) = placed(Some(plain), &[]);
    assert_eq!(
        target.firewall["accept -i obr0 -o obr0"].place,
        Place::iptables("filter", OWN_FORWARD)
    );
    assert_eq!(
        target.firewall["jump FORWARD -> OVSMESH-FORWARD"].place,
        Place::iptables("filter", "FORWARD")
    );
}

#[test]
fn native_nftables_missing_unreadable_and_offline() {
    let (target, _) = placed(Some(FirewallHost::Nftables), &[]);
    assert!(places(&target)
        .iter()
        .all(|(id, place)| !id.starts_with("jump") && place.starts_with("nft inet ovsmesh ")));
    assert_eq!(
        target.firewall["masquerade -s 203.0.113.160/27"]
            .place
            .to_string(),
        "nft inet ovsmesh postrouting"
    );
    // Without iptables and nft nothing is managed.
    let (target, conflicts) = placed(Some(FirewallHost::Missing), &[]);
    assert!(target.firewall.is_empty() && conflicts.is_empty());
    // Unreadable: nothing changes (the target is what is there), and the plan says why.
    let there = FirewallRule::new(
        Rule::Jump {
            from: "FORWARD".into(),
            to: OWN_FORWARD.into(),
            family: Family::Ipv4,
        },
        Place::iptables("filter", "FORWARD"),
    );
    let unreadable = FirewallHost::Unreadable {
        error: "nft: no answer within 10 s".into(),
    };
    let (target, conflicts) = placed(Some(unreadable), std::slice::from_ref(&there));
    assert_eq!(target.firewall.values().collect::<Vec<_>>(), [&there]);
    assert_eq!(conflicts.len(), 1);
    assert!(conflicts[0]
        .reason
        .contains("could not be read (nft: no answer within 10 s)"));
    // Offline (nothing observed): the logical places stay.
    let (target, _) = placed(None, &[]);
    assert!(target
        .firewall
        .values()
        .all(|r| matches!(r.place, Place::Forward | Place::SourceNat)));
}
