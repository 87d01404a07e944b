//! What one host must look like, computed from the topology alone.
//!
//! A pure function of (topology, host): bridges, tunnels to peers that share a
//! VLAN or the tunnelled routed network, uplink and access ports, gateway ports
//! and addresses (internal ports with the MTU of their path), routes,
//! forwarding and the routing bridge's other IPv4 settings, container
//! interfaces, and the host firewall's rules (`firewall`). No I/O, so it is tested without root and the same answer comes
//! out on every run.
//!
//! [`settle`] then fits the desired state to what a host has (the names and
//! incarnations of access ports, containers that are waiting), so the plan is a
//! plain diff of two states.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::marks::{self, Policy, Role};
use crate::state::{AddressRole, Bridge, HostAddress, HostRoute, HostState, Port, PortId, Sysctl};
use crate::topology::names::{self, BridgeRole};
use crate::topology::{Datapath, Family, Host, Network, RoutedMode, Topology, VlanTransport};

mod containers;
pub mod endpoint;
pub mod firewall;
mod settle;

pub use settle::settle;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DesiredError {
    #[error("host {host:?} is not in the topology (hosts: {known})")]
    UnknownHost { host: String, known: String },
}

/// Everything `host` must have.
pub fn desired(topology: &Topology, host: &str) -> Result<HostState, DesiredError> {
    let this = topology
        .hosts
        .get(host)
        .ok_or_else(|| DesiredError::UnknownHost {
            host: host.to_string(),
            known: topology
                .hosts
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let mut builder = Builder {
        topology,
        host: this,
        state: HostState {
            host: host.to_string(),
            ..HostState::default()
        },
    };
    builder.underlay();
    builder.vlan_bridge();
    builder.overlay_bridge();
    builder.containers();
    builder.host_routes();
    builder.state.firewall = firewall::rules(topology, &builder.state);
    if topology.mesh.manage_firewall && !firewall::egress_networks(topology, host).is_empty() {
        // Replies to egress traffic come in on whichever interface leads outside
        // (and are forwarded back to the network): IPv4 forwarding on all of them,
        // as Docker sets it. `down` puts the setting back.
        builder.state.forwarding.insert("all".to_string(), true);
    }
    Ok(builder.state)
}

struct Builder<'a> {
    topology: &'a Topology,
    host: &'a Host,
    state: HostState,
}

impl Builder<'_> {
    fn mesh_name(&self) -> &str {
        &self.topology.mesh.name
    }

    fn marks(&self, role: Role, identity: &[(&str, &str)]) -> BTreeMap<String, String> {
        Policy::new(self.mesh_name()).port_marks(role, identity)
    }

    /// A bridge; `mtu_request` for its own internal interface when the host
    /// uses that interface (an address on it).
    fn bridge(&mut self, name: &str, mtu_request: Option<u32>) {
        self.state.bridges.insert(
            name.to_string(),
            Bridge {
                datapath_type: self.host.datapath.as_str().to_string(),
                owned: true,
                mtu_request,
                ..Bridge::default()
            },
        );
    }

    fn port(&mut self, id: PortId, port: Port) {
        self.state.ports.insert(id.key(), port);
    }

    fn address(&mut self, dev: &str, address: ipnet::IpNet, role: AddressRole) {
        let address = HostAddress {
            dev: dev.to_string(),
            address,
            role,
        };
        self.state.addresses.insert(address.key(), address);
    }

    /// Netdev hosts: the NIC joins the underlay bridge, which takes the address.
    fn underlay(&mut self) {
        if self.host.datapath != Datapath::Netdev {
            return;
        }
        let Some(nic) = self.host.underlay_nic.clone() else {
            return;
        };
        let bridge = self.topology.mesh.underlay_bridge.clone();
        self.bridge(&bridge, Some(self.host.underlay_mtu));
        let external_ids = self.marks(Role::Underlay, &[]);
        self.port(
            PortId::Underlay {
                bridge: bridge.clone(),
            },
            Port {
                name: nic,
                bridge: bridge.clone(),
                role: Role::Underlay,
                iface_type: String::new(),
                options: BTreeMap::new(),
                tag: None,
                trunks: Vec::new(),
                protected: false,
                bfd: BTreeMap::new(),
                mtu_request: None,
                external_ids,
            },
        );
        // Every underlay address the topology gives the host moves: the NIC,
        // a port of the bridge now, no longer carries the host's own traffic.
        for family in [Family::Ipv4, Family::Ipv6] {
            if let Some(address) = self.host.underlay(family) {
                self.address(&bridge, address, AddressRole::Underlay);
            }
        }
        self.switch_port_nic(&self.host.underlay_nic.clone().unwrap_or_default());
    }

    /// A NIC that becomes a port of a userspace-datapath bridge is only a
    /// switch port: the host must not answer ARP on it (see
    /// [`marks::SWITCH_PORT_ARP_IGNORE`]). A claimed setting: `down` puts the
    /// NIC's own value back.
    fn switch_port_nic(&mut self, nic: &str) {
        if self.host.datapath != Datapath::Netdev {
            return;
        }
        let setting = Sysctl {
            family: Family::Ipv4,
            dev: nic.to_string(),
            key: "arp_ignore".to_string(),
            value: marks::SWITCH_PORT_ARP_IGNORE,
            claimed: true,
        };
        self.state.sysctls.insert(setting.name(), setting);
    }

    /// Forwarding where the host routes `family` through `dev`: IPv4 per
    /// device (the kernel checks the interface a packet arrives on); IPv6 only
    /// globally (Linux 6.1 forwards IPv6 by `net.ipv6.conf.all.forwarding`
    /// alone), as a setting claimed like the others.
    fn forward(&mut self, dev: &str, family: Family) {
        match family {
            Family::Ipv4 => {
                self.state.forwarding.insert(dev.to_string(), true);
            }
            Family::Ipv6 => {
                let setting = Sysctl {
                    family: Family::Ipv6,
                    dev: "all".to_string(),
                    key: "forwarding".to_string(),
                    value: 1,
                    claimed: true,
                };
                self.state.sysctls.insert(setting.name(), setting);
            }
        }
    }

    fn tunnel(&mut self, role: BridgeRole, bridge: &str, key: u32, peer: &Host, trunks: Vec<u16>) {
        let mesh = &self.topology.mesh;
        let mut options = BTreeMap::from([
            (
                "remote_ip".to_string(),
                peer.tunnel_ip(mesh.underlay).to_string(),
            ),
            (
                "local_ip".to_string(),
                self.host.tunnel_ip(mesh.underlay).to_string(),
            ),
            ("key".to_string(), key.to_string()),
        ]);
        if let Some(port) = mesh.dst_port {
            options.insert("dst_port".to_string(), port.to_string());
        }
        let bfd = if mesh.bfd {
            BTreeMap::from([("enable".to_string(), "true".to_string())])
        } else {
            BTreeMap::new()
        };
        let external_ids = self.marks(Role::Tunnel, &[(marks::PEER, &peer.name)]);
        self.port(
            PortId::Tunnel {
                bridge: bridge.to_string(),
                peer: peer.name.clone(),
            },
            Port {
                name: names::tunnel_port(&mesh.name, role, bridge, &peer.name),
                bridge: bridge.to_string(),
                role: Role::Tunnel,
                iface_type: mesh.encap.as_str().to_string(),
                options,
                tag: None,
                trunks,
                protected: true,
                bfd,
                mtu_request: None,
                external_ids,
            },
        );
    }

    /// VLAN bridge: on hosts taking part in a VLAN network; tunnels or uplink
    /// trunk; hosted gateway ports.
    fn vlan_bridge(&mut self) {
        let topology = self.topology;
        let mesh = &topology.mesh;
        let participation = crate::topology::vlan_hosts(topology);
        // VLAN tag → hosts taking part in it.
        let mut vlans_by_host: BTreeMap<&str, BTreeSet<u16>> = BTreeMap::new();
        for (network, hosts) in &participation {
            let Some(vlan) = topology.vlan(network) else {
                continue;
            };
            for host in hosts {
                vlans_by_host.entry(host).or_default().insert(vlan.vlan);
            }
        }
        let Some(mine) = vlans_by_host.get(self.host.name.as_str()).cloned() else {
            return;
        };
        let bridge = mesh.vlan_bridge.clone();
        self.bridge(&bridge, None);
        match mesh.vlan_transport {
            VlanTransport::Tunnel => {
                for (peer, theirs) in &vlans_by_host {
                    if *peer == self.host.name {
                        continue;
                    }
                    let shared: Vec<u16> = mine.intersection(theirs).copied().collect();
                    if shared.is_empty() {
                        continue;
                    }
                    let peer = &topology.hosts[*peer];
                    self.tunnel(
                        BridgeRole::Vlan,
                        &bridge,
                        mesh.vlan_tunnel_key,
                        peer,
                        shared,
                    );
                }
            }
            VlanTransport::Uplink => {
                if let Some(nic) = self.host.uplink_nic.clone() {
                    self.switch_port_nic(&nic);
                    let external_ids = self.marks(Role::Uplink, &[]);
                    self.port(
                        PortId::Uplink {
                            bridge: bridge.clone(),
                        },
                        Port {
                            name: nic,
                            bridge: bridge.clone(),
                            role: Role::Uplink,
                            iface_type: String::new(),
                            options: BTreeMap::new(),
                            tag: None,
                            trunks: mine.iter().copied().collect(),
                            protected: false,
                            bfd: BTreeMap::new(),
                            mtu_request: None,
                            external_ids,
                        },
                    );
                }
            }
        }
        for network in topology.networks.values() {
            let Network::Vlan(vlan) = network else {
                continue;
            };
            let here: Vec<ipnet::IpNet> = vlan
                .hosted_gateways()
                .into_iter()
                .filter(|(host, _)| *host == self.host.name)
                .map(|(_, address)| address)
                .collect();
            if here.is_empty() {
                continue;
            }
            let name = names::gateway_port(&mesh.name, &vlan.name);
            let external_ids = self.marks(Role::Gateway, &[(marks::NETWORK, &vlan.name)]);
            self.port(
                PortId::Gateway {
                    network: vlan.name.clone(),
                },
                Port {
                    name: name.clone(),
                    bridge: bridge.clone(),
                    role: Role::Gateway,
                    iface_type: "internal".into(),
                    options: BTreeMap::new(),
                    tag: Some(vlan.vlan),
                    trunks: Vec::new(),
                    protected: false,
                    bfd: BTreeMap::new(),
                    mtu_request: participation
                        .get(vlan.name.as_str())
                        .map(|hosts| crate::topology::vlan_budget(topology, hosts)),
                    external_ids,
                },
            );
            for address in here {
                self.address(&name, address, AddressRole::VlanGateway);
                self.forward(&name, Family::of(address.addr()));
            }
        }
    }

    /// Overlay bridge: on hosts with a routed subnet; gateway address; tunnels in
    /// tunnel mode.
    fn overlay_bridge(&mut self) {
        let topology = self.topology;
        let mesh = &topology.mesh;
        let Some(routed) = topology.routed() else {
            return;
        };
        let mine = routed.subnets_of(&self.host.name);
        if mine.is_empty() {
            return;
        }
        let bridge = mesh.overlay_bridge.clone();
        self.bridge(
            &bridge,
            Some(crate::topology::routed_budget(topology, routed)),
        );
        for (subnet, gateway) in &mine {
            let address =
                ipnet::IpNet::new(*gateway, subnet.prefix_len()).expect("prefix from a subnet");
            self.address(&bridge, address, AddressRole::OverlayGateway);
            self.forward(&bridge, Family::of(*gateway));
        }
        match routed.mode {
            RoutedMode::Tunnel => {
                if routed.subnets.contains_key(&self.host.name) {
                    self.no_redirects(&bridge);
                }
                for peer in routed.hosts() {
                    if peer != self.host.name {
                        let peer = &topology.hosts[peer];
                        self.tunnel(
                            BridgeRole::Overlay,
                            &bridge,
                            mesh.overlay_tunnel_key,
                            peer,
                            Vec::new(),
                        );
                    }
                }
            }
            RoutedMode::Direct => {
                // Packets from peers arrive on the underlay device: forward there too.
                let underlay_dev = match (self.host.datapath, &self.host.underlay_nic) {
                    (Datapath::Netdev, _) => mesh.underlay_bridge.clone(),
                    (Datapath::System, Some(nic)) => nic.clone(),
                    (Datapath::System, None) => "all".to_string(),
                };
                for (subnet, _) in &mine {
                    self.forward(&underlay_dev, Family::of(subnet.addr()));
                }
            }
        }
    }

    /// In tunnel mode the overlay bridge routes peers' subnets back out of
    /// itself (a hairpin), so the kernel would send ICMP redirects to the
    /// containers. It sends them when `all` *or* the device says so, so both
    /// are turned off; other devices keep their own setting.
    fn no_redirects(&mut self, bridge: &str) {
        for dev in ["all", bridge] {
            let setting = Sysctl {
                family: Family::Ipv4,
                dev: dev.to_string(),
                key: "send_redirects".to_string(),
                value: 0,
                claimed: true,
            };
            self.state.sysctls.insert(setting.name(), setting);
        }
    }

    /// Routes to peers' container subnets (of each family this host has a
    /// subnet of), and the host's own extra routes.
    fn host_routes(&mut self) {
        let topology = self.topology;
        if let Some(routed) = topology.routed() {
            let mine = routed.subnets_of(&self.host.name);
            for peer in routed.hosts() {
                if peer == self.host.name {
                    continue;
                }
                for (subnet, gateway) in routed.subnets_of(peer) {
                    let family = Family::of(gateway);
                    if !mine.iter().any(|(s, _)| Family::of(s.addr()) == family) {
                        continue;
                    }
                    let route = match routed.mode {
                        RoutedMode::Tunnel => HostRoute {
                            to: subnet,
                            via: gateway,
                            dev: Some(topology.mesh.overlay_bridge.clone()),
                            onlink: true,
                        },
                        RoutedMode::Direct => HostRoute {
                            to: subnet,
                            via: topology.hosts[peer].tunnel_ip(family),
                            dev: None,
                            onlink: false,
                        },
                    };
                    self.state.routes.insert(subnet.to_string(), route);
                }
            }
        }
        for route in &self.host.routes {
            self.state.routes.insert(
                route.to.to_string(),
                HostRoute {
                    to: route.to,
                    via: route.via,
                    dev: None,
                    onlink: false,
                },
            );
        }
    }
}

#[cfg(test)]
mod ipv6_tests;
