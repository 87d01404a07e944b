//! `ovsmesh graph`: a picture of the mesh, drawn from the topology alone.
//!
//! Hosts are clusters holding their bridges, VLAN gateway ports and containers
//! (with their addresses); tunnels are edges between bridges labelled with
//! their encapsulation, key and trunked VLANs; each VLAN network has a colour
//! of its own, the routed network another; a legend lists the networks with
//! their subnets and gateways.
//!
//! What is drawn comes from [`crate::desired::desired`] of each host — the
//! same answer `plan` and `apply` work from, so the picture cannot disagree
//! with what ovsmesh builds (which peers get a tunnel, on which bridge, with
//! which trunks). No I/O: [`build`] makes a small [`Graph`] model, and
//! `dot.rs` and `mermaid.rs` only render it.

mod dot;
mod mermaid;

use std::collections::BTreeMap;

use crate::desired::{desired, DesiredError};
use crate::marks::{self, Role};
use crate::state::{AddressRole, HostState};
use crate::topology::{Network, RoutedMode, Runtime, Topology, VlanGateway, VlanTransport};

pub use dot::render as render_dot;
pub use mermaid::render as render_mermaid;

/// VLAN colours, in the order of the VLAN tags (cycled beyond ten).
const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22",
    "#7f7f7f", "#393b79",
];
/// The routed network's colour (not in the palette).
const ROUTED: &str = "#6a3d9a";

/// What a node is, which decides its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Bridge,
    Container,
    Gateway,
    /// A host outside the picture (a peer, with `--host`) or the trunking switch.
    Outside,
    /// A network in the legend.
    Network,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Unique within the graph; renderers quote or map it.
    pub id: String,
    /// One entry per line.
    pub label: Vec<String>,
    pub shape: Shape,
    pub colour: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// A container's interface or a gateway port on its bridge.
    Attachment,
    /// A tunnel, or the routed path between hosts.
    Tunnel,
    /// The uplink trunk, or unencapsulated routing over the underlay.
    Underlay,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: Vec<String>,
    pub colour: Option<&'static str>,
    pub line: Line,
}

/// A box of nodes: a host, or the legend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub id: String,
    pub label: Vec<String>,
    pub nodes: Vec<Node>,
}

/// The picture, before it is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    pub title: String,
    pub clusters: Vec<Cluster>,
    /// Nodes outside every cluster.
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// The picture of `topology`; with `only`, of that host and its links to peers.
pub fn build(topology: &Topology, only: Option<&str>) -> Result<Graph, DesiredError> {
    let colours = colours(topology);
    let hosts: Vec<&str> = match only {
        Some(host) => vec![host],
        None => topology.hosts.keys().map(String::as_str).collect(),
    };
    let mut graph = Graph {
        title: title(topology, only),
        clusters: Vec::new(),
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    for host in &hosts {
        let state = desired(topology, host)?;
        let cluster = host_cluster(topology, &state, &colours, &mut graph.edges);
        graph.clusters.push(cluster);
        links(topology, &state, &hosts, &colours, &mut graph);
    }
    graph.clusters.push(legend(topology, &colours));
    Ok(graph)
}

fn title(topology: &Topology, only: Option<&str>) -> String {
    let mesh = &topology.mesh;
    let mut title = format!("mesh {} · {}", mesh.name, mesh.encap.as_str());
    if let Some(port) = mesh.dst_port {
        title.push_str(&format!(" port {port}"));
    }
    if mesh.vlan_transport == VlanTransport::Uplink {
        title.push_str(" · VLANs over the uplink trunk");
    }
    if let Some(host) = only {
        title.push_str(&format!(" · host {host}"));
    }
    title
}

/// Network name → its colour: VLAN networks by tag, the routed network apart.
fn colours(topology: &Topology) -> BTreeMap<String, &'static str> {
    let mut vlans: Vec<(u16, &str)> = topology
        .networks
        .values()
        .filter_map(|n| match n {
            Network::Vlan(v) => Some((v.vlan, v.name.as_str())),
            Network::Routed(_) => None,
        })
        .collect();
    vlans.sort();
    let mut colours: BTreeMap<String, &'static str> = vlans
        .into_iter()
        .enumerate()
        .map(|(i, (_, name))| (name.to_string(), PALETTE[i % PALETTE.len()]))
        .collect();
    if let Some(routed) = topology.routed() {
        colours.insert(routed.name.clone(), ROUTED);
    }
    colours
}

fn node_id(host: &str, what: &str) -> String {
    format!("{host}/{what}")
}

/// What a bridge's box says under its name.
fn bridge_label(topology: &Topology, state: &HostState, bridge: &str) -> Vec<String> {
    let mesh = &topology.mesh;
    let mut label = vec![bridge.to_string()];
    if bridge == mesh.vlan_bridge {
        label.push("VLAN bridge".into());
    }
    if bridge == mesh.overlay_bridge {
        if let Some(routed) = topology.routed() {
            label.push(format!("routed: {}", routed.name));
        }
    }
    if bridge == mesh.underlay_bridge {
        label.push("underlay bridge".into());
        for port in state.ports.values() {
            if port.bridge == bridge && port.role == Role::Underlay {
                label.push(format!("NIC {}", port.name));
            }
        }
    }
    for address in state.addresses.values() {
        if address.dev != bridge {
            continue;
        }
        match address.role {
            AddressRole::OverlayGateway => {
                label.push(format!("subnet {}", address.address.trunc()));
                label.push(format!("gateway {}", address.address.addr()));
            }
            AddressRole::Underlay => label.push(format!("address {}", address.address)),
            AddressRole::VlanGateway => label.push(format!("address {}", address.address)),
        }
    }
    label
}

fn host_cluster(
    topology: &Topology,
    state: &HostState,
    colours: &BTreeMap<String, &'static str>,
    edges: &mut Vec<Edge>,
) -> Cluster {
    let host = &topology.hosts[&state.host];
    let underlay: Vec<String> = host
        .underlay_address
        .map(|a| a.to_string())
        .into_iter()
        .chain(host.underlay_address6.map(|a| a.to_string()))
        .collect();
    let mut label = vec![
        host.name.clone(),
        format!(
            "underlay {} · {} datapath",
            underlay.join(" "),
            host.datapath.as_str()
        ),
    ];
    for route in &host.routes {
        label.push(format!("route {route}"));
    }
    let mut nodes = Vec::new();
    for bridge in state.bridges.keys() {
        let colour = (*bridge == topology.mesh.overlay_bridge)
            .then(|| topology.routed().map(|r| colours[&r.name]))
            .flatten();
        nodes.push(Node {
            id: node_id(&host.name, bridge),
            label: bridge_label(topology, state, bridge),
            shape: Shape::Bridge,
            colour,
        });
    }
    // VLAN gateway ports: an internal port with the gateway address.
    for port in state.ports.values().filter(|p| p.role == Role::Gateway) {
        let network = port.external_ids.get(marks::NETWORK).cloned();
        let colour = network.as_ref().and_then(|n| colours.get(n).copied());
        let mut label = vec![format!("gateway of {}", network.as_deref().unwrap_or("?"))];
        label.extend(
            state
                .addresses
                .values()
                .filter(|a| a.dev == port.name)
                .map(|a| a.address.to_string()),
        );
        label.push(format!("port {}", port.name));
        let id = node_id(&host.name, &port.name);
        edges.push(Edge {
            from: id.clone(),
            to: node_id(&host.name, &port.bridge),
            label: port
                .tag
                .map(|t| vec![format!("VLAN {t}")])
                .unwrap_or_default(),
            colour,
            line: Line::Attachment,
        });
        nodes.push(Node {
            id,
            label,
            shape: Shape::Gateway,
            colour,
        });
    }
    for container in topology.containers.values() {
        if container.host != host.name {
            continue;
        }
        let id = node_id(&host.name, &format!("container/{}", container.name));
        let mut label = vec![container.name.clone()];
        match &container.runtime {
            Runtime::Docker(name) if *name == container.name => label.push("docker".into()),
            runtime => label.push(runtime.to_string()),
        }
        for iface in &container.interfaces {
            let addresses: Vec<String> = iface.addresses().iter().map(|a| a.to_string()).collect();
            label.push(format!("{} {}", iface.ifname, addresses.join(" ")));
            let colour = colours.get(&iface.network).copied();
            let (bridge, attachment) = match &topology.networks[&iface.network] {
                Network::Vlan(vlan) => (
                    &topology.mesh.vlan_bridge,
                    format!("{} · VLAN {}", iface.ifname, vlan.vlan),
                ),
                Network::Routed(_) => (&topology.mesh.overlay_bridge, iface.ifname.clone()),
            };
            edges.push(Edge {
                from: id.clone(),
                to: node_id(&host.name, bridge),
                label: vec![attachment],
                colour,
                line: Line::Attachment,
            });
        }
        if let Some(gateway) = container.gateway {
            label.push(format!("default via {gateway}"));
        }
        nodes.push(Node {
            id,
            label,
            shape: Shape::Container,
            colour: None,
        });
    }
    Cluster {
        id: format!("host/{}", host.name),
        label,
        nodes,
    }
}

/// Tunnels, the uplink trunk and direct routing from this host; each link
/// between two drawn hosts once.
fn links(
    topology: &Topology,
    state: &HostState,
    drawn: &[&str],
    colours: &BTreeMap<String, &'static str>,
    graph: &mut Graph,
) {
    let me = state.host.as_str();
    let vlan_colours: BTreeMap<u16, &'static str> = topology
        .networks
        .values()
        .filter_map(|n| match n {
            Network::Vlan(v) => Some((v.vlan, colours[&v.name])),
            Network::Routed(_) => None,
        })
        .collect();
    for port in state.ports.values() {
        match port.role {
            Role::Tunnel => {
                let Some(peer) = port.external_ids.get(marks::PEER) else {
                    continue;
                };
                let to = if drawn.contains(&peer.as_str()) {
                    if peer.as_str() < me {
                        continue; // drawn from the other end
                    }
                    node_id(peer, &port.bridge)
                } else {
                    outside_host(topology, peer, graph)
                };
                let mut label = vec![format!(
                    "{} key {}",
                    port.iface_type,
                    port.options.get("key").map(String::as_str).unwrap_or("?")
                )];
                let colour = if port.bridge == topology.mesh.overlay_bridge {
                    topology.routed().map(|r| colours[&r.name])
                } else {
                    label.push(vlan_list(&port.trunks));
                    match port.trunks[..] {
                        [one] => vlan_colours.get(&one).copied(),
                        _ => None,
                    }
                };
                graph.edges.push(Edge {
                    from: node_id(me, &port.bridge),
                    to,
                    label,
                    colour,
                    line: Line::Tunnel,
                });
            }
            Role::Uplink => {
                let switch = "uplink-switch".to_string();
                if !graph.nodes.iter().any(|n| n.id == switch) {
                    graph.nodes.push(Node {
                        id: switch.clone(),
                        label: vec!["trunking switch".into(), "(uplink)".into()],
                        shape: Shape::Outside,
                        colour: None,
                    });
                }
                graph.edges.push(Edge {
                    from: node_id(me, &port.bridge),
                    to: switch,
                    label: vec![format!("{} trunk", port.name), vlan_list(&port.trunks)],
                    colour: None,
                    line: Line::Underlay,
                });
            }
            _ => {}
        }
    }
    // Direct mode: routed over the underlay, no tunnel port to draw.
    if let Some(routed) = topology.routed() {
        if routed.mode == RoutedMode::Direct && routed.has_host(me) {
            for peer in routed.hosts().into_iter().filter(|p| *p != me) {
                let to = if drawn.contains(&peer) {
                    if peer < me {
                        continue;
                    }
                    node_id(peer, &topology.mesh.overlay_bridge)
                } else {
                    outside_host(topology, peer, graph)
                };
                graph.edges.push(Edge {
                    from: node_id(me, &topology.mesh.overlay_bridge),
                    to,
                    label: vec!["routed, no encapsulation".into()],
                    colour: Some(colours[&routed.name]),
                    line: Line::Underlay,
                });
            }
        }
    }
}

fn vlan_list(vlans: &[u16]) -> String {
    let list: Vec<String> = vlans.iter().map(u16::to_string).collect();
    match list.len() {
        1 => format!("VLAN {}", list[0]),
        _ => format!("VLANs {}", list.join(", ")),
    }
}

/// A peer host that is not drawn in full (with `--host`): one node.
fn outside_host(topology: &Topology, peer: &str, graph: &mut Graph) -> String {
    let id = format!("peer/{peer}");
    if !graph.nodes.iter().any(|n| n.id == id) {
        let host = &topology.hosts[peer];
        graph.nodes.push(Node {
            id: id.clone(),
            label: vec![
                format!("host {peer}"),
                format!("underlay {}", host.tunnel_ip(topology.mesh.underlay)),
            ],
            shape: Shape::Outside,
            colour: None,
        });
    }
    id
}

/// The networks, each in its colour, with subnets and gateways.
fn legend(topology: &Topology, colours: &BTreeMap<String, &'static str>) -> Cluster {
    let mut networks: Vec<&Network> = topology.networks.values().collect();
    networks.sort_by_key(|n| match n {
        Network::Vlan(v) => (0, v.vlan),
        Network::Routed(_) => (1, 0),
    });
    let nodes = networks
        .into_iter()
        .map(|network| match network {
            Network::Vlan(vlan) => {
                let mut label = vec![format!("{} · VLAN {}", vlan.name, vlan.vlan)];
                if let Some(subnet) = vlan.subnet {
                    label.push(format!("subnet {subnet}"));
                }
                if let Some(subnet) = vlan.subnet6 {
                    label.push(format!("subnet6 {subnet}"));
                }
                let gateways = [
                    vlan.gateway.as_ref().map(VlanGateway::ip),
                    vlan.gateway6.as_ref().map(VlanGateway::ip),
                ];
                for gateway in gateways.into_iter().flatten() {
                    match gateway {
                        VlanGateway::Hosted { host, address } => {
                            label.push(format!("gateway {address} on {host}"))
                        }
                        VlanGateway::External(address) => {
                            label.push(format!("gateway {address} (external router)"))
                        }
                    }
                }
                Node {
                    id: format!("network/{}", vlan.name),
                    label,
                    shape: Shape::Network,
                    colour: Some(colours[&vlan.name]),
                }
            }
            Network::Routed(routed) => {
                let mode = match routed.mode {
                    RoutedMode::Tunnel => "tunnel",
                    RoutedMode::Direct => "direct",
                };
                let mut label = vec![format!("{} · routed ({mode})", routed.name)];
                for host in routed.hosts() {
                    for (subnet, gateway) in routed.subnets_of(host) {
                        label.push(format!("{host} {subnet} gw {gateway}"));
                    }
                }
                Node {
                    id: format!("network/{}", routed.name),
                    label,
                    shape: Shape::Network,
                    colour: Some(colours[&routed.name]),
                }
            }
        })
        .collect();
    Cluster {
        id: "legend".into(),
        label: vec!["networks".into()],
        nodes,
    }
}

#[cfg(test)]
mod tests;
