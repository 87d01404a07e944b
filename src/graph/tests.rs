use std::path::Path;

use super::*;

fn topology(text: &str) -> Topology {
    crate::topology::parse(Path::new("test.toml"), text).expect("valid topology")
}

const THREE_HOSTS: &str = r#"
[mesh]
name = "t"
encap = "vxlan"

[hosts.a]
underlay_address = "192.0.2.1/24"
[hosts.b]
underlay_address = "192.0.2.2/24"
[hosts.c]
underlay_address = "192.0.2.3/24"

[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
gateway = { host = "a", address = "192.168.0.254" }

[networks.red]
kind = "vlan"
vlan = 200
subnet = "192.168.1.0/24"
gateway = "192.168.1.254"

[networks.pods]
kind = "routed"
subnets = { a = "172.17.1.0/24", b = "172.17.2.0/24" }

[containers.x]
host = "a"
network = "blue"
address = "192.168.0.1"

[containers.y]
host = "b"
netns = "y"
network = "blue"
address = "192.168.0.2"

[containers.z]
host = "c"
network = "red"
address = "192.168.1.3"

[containers.p]
host = "b"
network = "pods"
address = "172.17.2.10"
"#;

fn edges_between<'a>(graph: &'a Graph, a: &str, b: &str) -> Vec<&'a Edge> {
    graph
        .edges
        .iter()
        .filter(|e| (e.from == a && e.to == b) || (e.from == b && e.to == a))
        .collect()
}

#[test]
fn tunnels_join_hosts_that_share_a_vlan_or_the_routed_network_once_each() {
    let graph = build(&topology(THREE_HOSTS), None).unwrap();
    // a and b share blue (VLAN bridge) and the routed network (overlay bridge).
    let vlan = edges_between(&graph, "a/ovs0", "b/ovs0");
    assert_eq!(vlan.len(), 1, "{:?}", graph.edges);
    assert_eq!(vlan[0].label, ["vxlan key 1001", "VLAN 100"]);
    assert_eq!(vlan[0].colour, Some(PALETTE[0]), "blue, the first VLAN");
    assert_eq!(vlan[0].line, Line::Tunnel);
    let routed = edges_between(&graph, "a/obr0", "b/obr0");
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].label, ["vxlan key 1002"]);
    assert_eq!(routed[0].colour, Some(ROUTED));
    // c is only on red, which no other host has: no tunnel to it at all.
    assert!(graph
        .edges
        .iter()
        .all(|e| e.line != Line::Tunnel || !(e.from.starts_with("c/") || e.to.starts_with("c/"))));
}

#[test]
fn each_vlan_has_its_own_colour_and_the_legend_says_where_gateways_are() {
    let graph = build(&topology(THREE_HOSTS), None).unwrap();
    let legend = graph.clusters.iter().find(|c| c.id == "legend").unwrap();
    let blue = legend
        .nodes
        .iter()
        .find(|n| n.id == "network/blue")
        .unwrap();
    let red = legend.nodes.iter().find(|n| n.id == "network/red").unwrap();
    let pods = legend
        .nodes
        .iter()
        .find(|n| n.id == "network/pods")
        .unwrap();
    assert_ne!(blue.colour, red.colour);
    assert_ne!(blue.colour, pods.colour);
    assert_eq!(
        blue.label,
        [
            "blue · VLAN 100",
            "subnet 192.168.0.0/24",
            "gateway 192.168.0.254 on a"
        ]
    );
    assert_eq!(red.label[2], "gateway 192.168.1.254 (external router)");
    assert_eq!(
        pods.label,
        [
            "pods · routed (tunnel)",
            "a 172.17.1.0/24 gw 172.17.1.1",
            "b 172.17.2.0/24 gw 172.17.2.1"
        ]
    );
}

#[test]
fn hosts_hold_bridges_gateways_and_containers_with_addresses() {
    let graph = build(&topology(THREE_HOSTS), None).unwrap();
    let a = graph.clusters.iter().find(|c| c.id == "host/a").unwrap();
    assert_eq!(a.label[0], "a");
    let ids: Vec<&str> = a.nodes.iter().map(|n| n.id.as_str()).collect();
    assert!(
        ids.contains(&"a/ovs0") && ids.contains(&"a/obr0"),
        "{ids:?}"
    );
    let gateway = a.nodes.iter().find(|n| n.shape == Shape::Gateway).unwrap();
    assert_eq!(gateway.label[0], "gateway of blue");
    assert_eq!(gateway.label[1], "192.168.0.254/24");
    let obr0 = a.nodes.iter().find(|n| n.id == "a/obr0").unwrap();
    assert!(obr0.label.contains(&"gateway 172.17.1.1".to_string()));
    let x = a.nodes.iter().find(|n| n.id == "a/container/x").unwrap();
    assert_eq!(
        x.label,
        [
            "x",
            "docker",
            "eth1 192.168.0.1/24",
            "default via 192.168.0.254"
        ]
    );
    let y = &graph.clusters[1].nodes;
    let y = y.iter().find(|n| n.id == "b/container/y").unwrap();
    assert_eq!(y.label[1], "netns:y");
    // x hangs off ovs0 in blue's colour, tagged.
    let attach = edges_between(&graph, "a/container/x", "a/ovs0");
    assert_eq!(attach[0].label, ["eth1 · VLAN 100"]);
    assert_eq!(attach[0].colour, Some(PALETTE[0]));
}

#[test]
fn one_host_shows_its_peers_as_single_nodes() {
    let graph = build(&topology(THREE_HOSTS), Some("b")).unwrap();
    let hosts: Vec<&str> = graph.clusters.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(hosts, ["host/b", "legend"]);
    assert_eq!(
        graph.nodes.len(),
        1,
        "only a is b's peer: {:?}",
        graph.nodes
    );
    assert_eq!(graph.nodes[0].id, "peer/a");
    assert_eq!(edges_between(&graph, "b/ovs0", "peer/a").len(), 1);
    assert_eq!(edges_between(&graph, "b/obr0", "peer/a").len(), 1);
    assert!(graph.title.ends_with("· host b"));
    let unknown = build(&topology(THREE_HOSTS), Some("nope")).unwrap_err();
    assert!(matches!(unknown, DesiredError::UnknownHost { .. }));
}

#[test]
fn direct_routing_and_the_uplink_trunk_are_dashed_underlay_links() {
    let text = THREE_HOSTS
        .replace("encap = \"vxlan\"", "vlan_transport = \"uplink\"")
        .replace(
            "[hosts.a]\nunderlay_address = \"192.0.2.1/24\"",
            "[hosts.a]\nunderlay_address = \"192.0.2.1/24\"\nuplink_nic = \"eth2\"",
        )
        .replace(
            "[hosts.b]\nunderlay_address = \"192.0.2.2/24\"",
            "[hosts.b]\nunderlay_address = \"192.0.2.2/24\"\nuplink_nic = \"eth2\"",
        )
        .replace(
            "[hosts.c]\nunderlay_address = \"192.0.2.3/24\"",
            "[hosts.c]\nunderlay_address = \"192.0.2.3/24\"\nuplink_nic = \"eth2\"",
        )
        .replace("kind = \"routed\"", "kind = \"routed\"\nmode = \"direct\"");
    let graph = build(&topology(&text), None).unwrap();
    assert!(graph.edges.iter().all(|e| e.line != Line::Tunnel));
    let trunk = edges_between(&graph, "a/ovs0", "uplink-switch");
    assert_eq!(trunk[0].label, ["eth2 trunk", "VLAN 100"]);
    assert_eq!(trunk[0].line, Line::Underlay);
    let direct = edges_between(&graph, "a/obr0", "b/obr0");
    assert_eq!(direct[0].label, ["routed, no encapsulation"]);
    assert!(graph.title.contains("uplink trunk"));
}

#[test]
fn dot_quotes_every_id_and_label() {
    let graph = build(&topology(THREE_HOSTS), None).unwrap();
    let dot = render_dot(&graph);
    assert!(dot.starts_with("graph ovsmesh {\n") && dot.ends_with("}\n"));
    assert!(dot.contains("subgraph \"cluster_host/a\" {"));
    assert!(dot.contains("\"a/ovs0\" -- \"b/ovs0\" [label=\"vxlan key 1001\\nVLAN 100\", penwidth=2, color=\"#1f77b4\""));
    assert_eq!(dot.matches('{').count(), dot.matches('}').count());
}

#[test]
fn mermaid_ids_are_words_and_every_edge_joins_declared_nodes() {
    let graph = build(&topology(THREE_HOSTS), None).unwrap();
    let text = render_mermaid(&graph);
    assert!(text.contains("\nflowchart LR\n"));
    let body: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "flowchart LR")
        .skip(1)
        .map(str::trim)
        .collect();
    assert_eq!(
        body.iter().filter(|l| l.starts_with("subgraph ")).count(),
        body.iter().filter(|l| **l == "end").count()
    );
    let word =
        |t: &str| t.len() > 1 && t.starts_with('n') && t[1..].bytes().all(|b| b.is_ascii_digit());
    let mut declared = std::collections::BTreeSet::new();
    let mut edges = 0;
    for line in &body {
        let id: String = line
            .trim_start_matches("subgraph ")
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if *line == "end" || line.starts_with("style ") || line.starts_with("linkStyle ") {
            continue;
        }
        assert!(word(&id), "{line}");
        let rest = &line[line.find(&*id).unwrap() + id.len()..];
        if let Some(arrow) = ["---", "===", "-.-"]
            .iter()
            .find(|a| rest.starts_with(&format!(" {a}")))
        {
            edges += 1;
            let to = rest.rsplit(' ').next().unwrap();
            assert!(
                declared.contains(&id) && declared.contains(to),
                "{line} ({arrow})"
            );
        } else {
            declared.insert(id);
        }
    }
    assert_eq!(edges, graph.edges.len());
}
