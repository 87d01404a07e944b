//! Each warning rule and the uplink refusal, on hand-made facts.

use std::path::Path;

use super::*;
use crate::desired::desired;
use crate::host::facts::{Device, Uplink};
use crate::host::iptables_read::parse;
use crate::topology::parse as parse_topology;

fn topology(text: &str) -> Topology {
    parse_topology(Path::new("t.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

const ROUTED: &str = r#"
[mesh]
name = "t"
encap = "ENCAP"
[hosts.a]
underlay_address = "192.0.2.1/24"
[hosts.b]
underlay_address = "192.0.2.2/24"
[hosts.c]
underlay_address = "198.51.100.3/24"
routes = [{ to = "203.0.113.0/24", via = "198.51.100.1" }]
[networks.pods]
kind = "routed"
mode = "MODE"
subnets = { a = "172.17.1.0/24", b = "172.17.2.0/24", c = "172.17.3.0/24" }
"#;

fn routed(encap: &str, mode: &str) -> Topology {
    let mut text = ROUTED.replace("ENCAP", encap).replace("MODE", mode);
    if mode == "direct" {
        // Direct routing needs every peer on-link.
        text = text
            .replace("198.51.100.3/24", "192.0.2.3/24")
            .replace("198.51.100.1", "192.0.2.254");
    }
    topology(&text)
}

fn on_eth0(mtu: u32) -> HostFacts {
    HostFacts {
        underlay: Some(Device {
            name: "eth0".into(),
            mtu,
        }),
        ..HostFacts::default()
    }
}

#[test]
fn an_underlay_nic_smaller_than_the_topology_says_is_named_with_the_fix() {
    let topology = routed("gre", "tunnel");
    let want = desired(&topology, "a").unwrap();
    let warnings = warnings(&topology, &want, &on_eth0(1450));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .starts_with("underlay device eth0 has MTU 1450, smaller than the underlay_mtu 1500"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("set underlay_mtu = 1450"));
    assert!(super::warnings(&topology, &want, &on_eth0(1500)).is_empty());
    assert!(super::warnings(&topology, &want, &on_eth0(9000)).is_empty());
}

#[test]
fn tunnels_without_an_underlay_device_are_warned_about() {
    let topology = routed("gre", "tunnel");
    let want = desired(&topology, "a").unwrap();
    let warnings = warnings(&topology, &want, &HostFacts::default());
    assert_eq!(
        warnings,
        ["no interface of this host holds the underlay address 192.0.2.1: tunnels to peers cannot work (local_ip must be an address of this host)"]
    );
}

const UPLINK: &str = r#"
[mesh]
name = "t"
vlan_transport = "uplink"
[hosts.a]
underlay_address = "192.0.2.1/24"
uplink_nic = "eth2"
[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
[containers.c1]
host = "a"
network = "blue"
address = "192.168.0.1"
netns = "c1"
"#;

fn uplink_facts(addresses: &[&str], default_route: bool) -> HostFacts {
    HostFacts {
        underlay: Some(Device {
            name: "eth0".into(),
            mtu: 1500,
        }),
        uplink: Some(Uplink {
            name: "eth2".into(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            default_route,
        }),
        ..HostFacts::default()
    }
}

#[test]
fn an_uplink_nic_with_an_address_or_the_default_route_is_refused_when_attached() {
    let topology = topology(UPLINK);
    let want = desired(&topology, "a").unwrap();
    let empty = HostState {
        host: "a".into(),
        ..HostState::default()
    };
    let plan = crate::plan::plan(&crate::desired::settle("t", &want, &empty));
    let refused = refuse_uplink(&plan, &uplink_facts(&["192.0.2.50/24"], true)).unwrap();
    assert_eq!(refused.nic, "eth2");
    assert_eq!(refused.bridge, "ovs0");
    assert_eq!(
        refused.what,
        "holds 192.0.2.50/24 and carries the default route"
    );
    assert!(refused.to_string().starts_with(
        "refusing to apply on host a: uplink_nic eth2 holds 192.0.2.50/24 and carries the default route;"
    ));
    assert!(refused.to_string().ends_with("nothing was changed"));
    assert!(refuse_uplink(&plan, &uplink_facts(&[], true)).is_some());
    assert!(refuse_uplink(&plan, &uplink_facts(&[], false)).is_none());
    // Already a port: the plan attaches nothing, so nothing to refuse; status still warns.
    let attached = crate::plan::plan(&crate::desired::settle("t", &want, &want));
    assert!(refuse_uplink(&attached, &uplink_facts(&["192.0.2.50/24"], false)).is_none());
    let warnings = warnings(&topology, &want, &uplink_facts(&["192.0.2.50/24"], false));
    assert_eq!(
        warnings,
        ["uplink_nic eth2 carries the host's own address or default route: `apply` refuses to make it a trunk port of ovs0"]
    );
}

fn arp(all: u32, bridge: u32) -> HostFacts {
    HostFacts {
        arp_ignore_all: Some(all),
        arp_ignore_overlay: Some(bridge),
        ..on_eth0(1500)
    }
}

#[test]
fn arp_ignore_2_or_8_on_the_routing_bridge_breaks_tunnel_mode() {
    let topology = routed("gre", "tunnel");
    let want = desired(&topology, "a").unwrap();
    for (all, bridge) in [(0, 0), (1, 0), (0, 1), (3, 1)] {
        assert!(
            warnings(&topology, &want, &arp(all, bridge)).is_empty(),
            "{all} {bridge}"
        );
    }
    let found = warnings(&topology, &want, &arp(2, 0));
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("arp_ignore is 2 on obr0 (the larger of net.ipv4.conf.all.arp_ignore=2 and net.ipv4.conf.obr0.arp_ignore=0): ARP requests for the gateway 172.17.1.1 go unanswered"), "{}", found[0]);
    assert_eq!(warnings(&topology, &want, &arp(1, 8)).len(), 1);
    let direct = routed("gre", "direct");
    let want = desired(&direct, "a").unwrap();
    assert!(warnings(&direct, &want, &arp(2, 0)).is_empty());
    assert_eq!(warnings(&direct, &want, &arp(0, 8)).len(), 1);
}

#[test]
fn networkd_removing_foreign_routes_matters_only_with_routes() {
    let topology = routed("gre", "tunnel");
    let facts = HostFacts {
        networkd_removes_foreign_routes: true,
        ..on_eth0(1500)
    };
    let want = desired(&topology, "a").unwrap();
    let found = warnings(&topology, &want, &facts);
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("ManageForeignRoutes=no"), "{}", found[0]);
    let alone = topology_without_routes();
    let want = desired(&alone, "a").unwrap();
    assert!(want.routes.is_empty());
    assert!(warnings(&alone, &want, &facts).is_empty());
}

fn topology_without_routes() -> Topology {
    topology(
        "[mesh]\nname = \"t\"\n[hosts.a]\nunderlay_address = \"192.0.2.1/24\"\n[networks.pods]\nkind = \"routed\"\nsubnets = { a = \"172.17.1.0/24\" }\n",
    )
}

#[test]
fn input_dropping_the_tunnel_protocol_names_peers_and_a_rule() {
    let topology = routed("gre", "tunnel");
    let want = desired(&topology, "a").unwrap();
    let facts = on_eth0(1500);
    let drop =
        parse("*filter\n:INPUT DROP [0:0]\n-A INPUT -s 192.0.2.0/24 -p gre -j ACCEPT\nCOMMIT\n");
    let found = tunnel_input(&topology, &want, &facts, &drop);
    assert_eq!(
        found,
        ["the firewall drops GRE (IP protocol 47) from c (198.51.100.3) on INPUT (INPUT policy DROP): their tunnel packets never reach Open vSwitch; accept them, e.g. `iptables -I INPUT -p gre -j ACCEPT`"]
    );
    let none = parse("*filter\n:INPUT DROP [0:0]\nCOMMIT\n");
    let found = tunnel_input(&topology, &want, &facts, &none);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].contains("from b (192.0.2.2), c (198.51.100.3)"),
        "{}",
        found[0]
    );
    let open = parse("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n");
    assert!(tunnel_input(&topology, &want, &facts, &open).is_empty());
}

#[test]
fn input_check_uses_the_udp_port_and_skips_the_userspace_datapath() {
    let mut topology = routed("vxlan", "tunnel");
    topology.mesh.dst_port = Some(4790);
    let want = desired(&topology, "a").unwrap();
    let facts = on_eth0(1500);
    let only_4789 = parse(
        "*filter\n:INPUT DROP [0:0]\n-A INPUT -p udp -m udp --dport 4789 -j ACCEPT\nCOMMIT\n",
    );
    let found = tunnel_input(&topology, &want, &facts, &only_4789);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with(
            "the firewall drops VXLAN (UDP 4790) from b (192.0.2.2), c (198.51.100.3)"
        ),
        "{}",
        found[0]
    );
    assert!(found[0].ends_with("`iptables -I INPUT -p udp --dport 4790 -j ACCEPT`"));
    let four_seven_nine_oh = parse(
        "*filter\n:INPUT DROP [0:0]\n-A INPUT -p udp -m udp --dport 4790 -j ACCEPT\nCOMMIT\n",
    );
    assert!(tunnel_input(&topology, &want, &facts, &four_seven_nine_oh).is_empty());
    topology.hosts.get_mut("a").unwrap().datapath = Datapath::Netdev;
    assert!(tunnel_input(&topology, &want, &facts, &only_4789).is_empty());
}
