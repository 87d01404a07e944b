//! The validated topology.
//!
//! A `Topology` only exists once every cluster-wide rule has passed, so code
//! downstream (desired state, plan, apply) never re-checks references, ranges or
//! address plans. Defaults are resolved here too: effective MTUs, MACs, gateways.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

pub use super::raw::{Datapath, Egress, Encap, Family, RoutedMode, VlanTransport};
use super::source::KeyPath;

/// A validated topology.
#[derive(Debug, Clone)]
pub struct Topology {
    pub mesh: Mesh,
    pub hosts: BTreeMap<String, Host>,
    pub networks: BTreeMap<String, Network>,
    pub containers: BTreeMap<String, Container>,
}

#[derive(Debug, Clone)]
pub struct Mesh {
    pub name: String,
    pub encap: Encap,
    /// The family the tunnels run over (validated: every host has an underlay
    /// address of it, and the encap suits it).
    pub underlay: Family,
    pub vlan_transport: VlanTransport,
    pub vlan_tunnel_key: u32,
    pub overlay_tunnel_key: u32,
    pub underlay_mtu: u32,
    pub vlan_bridge: String,
    pub overlay_bridge: String,
    pub underlay_bridge: String,
    pub bfd: bool,
    /// UDP destination port of VXLAN/Geneve tunnels; `None`: the protocol's default.
    pub dst_port: Option<u16>,
    /// Accept rules for the mesh's routing interfaces in the host firewall (`host::firewall`).
    pub manage_firewall: bool,
}

impl Mesh {
    /// The UDP port tunnels listen on, or `None` for GRE (IP protocol 47).
    pub fn udp_port(&self) -> Option<u16> {
        match self.encap {
            Encap::Gre | Encap::Ip6gre => None,
            Encap::Vxlan => Some(self.dst_port.unwrap_or(4789)),
            Encap::Geneve => Some(self.dst_port.unwrap_or(6081)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// IPv4 underlay address with the prefix of the underlay subnet (always
    /// there with an IPv4 underlay).
    pub underlay_address: Option<Ipv4Net>,
    /// IPv6 underlay address (always there with an IPv6 underlay).
    pub underlay_address6: Option<Ipv6Net>,
    pub ovsdb: Option<String>,
    pub datapath: Datapath,
    pub underlay_nic: Option<String>,
    pub uplink_nic: Option<String>,
    /// Effective underlay MTU (host override or mesh default).
    pub underlay_mtu: u32,
    pub routes: Vec<Route>,
    pub origin: KeyPath,
}

impl Host {
    /// The underlay address of `family`, with its prefix.
    pub fn underlay(&self, family: Family) -> Option<IpNet> {
        match family {
            Family::Ipv4 => self.underlay_address.map(IpNet::V4),
            Family::Ipv6 => self.underlay_address6.map(IpNet::V6),
        }
    }

    /// This host's tunnel endpoint on an underlay of `family`; validation makes
    /// sure every host has one for the mesh's underlay.
    pub fn tunnel_ip(&self, family: Family) -> IpAddr {
        self.underlay(family)
            .map(|net| net.addr())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// A static route, IPv4 or IPv6 (`to` and `via` are of one family).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Route {
    pub to: IpNet,
    pub via: IpAddr,
}

impl Route {
    pub fn family(&self) -> Family {
        Family::of(self.via)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.to, self.via)
    }
}

#[derive(Debug, Clone)]
pub enum Network {
    Vlan(VlanNetwork),
    Routed(RoutedNetwork),
}

#[derive(Debug, Clone)]
pub struct VlanNetwork {
    pub name: String,
    pub vlan: u16,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<VlanGateway>,
    pub subnet6: Option<Ipv6Net>,
    pub gateway6: Option<VlanGateway<Ipv6Addr>>,
    pub egress: Egress,
    /// Host → the pool its Docker containers without `--ip` get addresses from.
    pub pools: BTreeMap<String, Ipv4Net>,
}

impl VlanNetwork {
    /// The subnet and gateway of each family the network has.
    pub fn families(&self) -> Vec<(IpNet, Option<VlanGateway<IpAddr>>)> {
        let mut out = Vec::new();
        if let Some(subnet) = self.subnet {
            out.push((
                IpNet::V4(subnet),
                self.gateway.as_ref().map(VlanGateway::ip),
            ));
        }
        if let Some(subnet) = self.subnet6 {
            out.push((
                IpNet::V6(subnet),
                self.gateway6.as_ref().map(VlanGateway::ip),
            ));
        }
        out
    }

    /// The gateways ovsmesh hosts for this network: (host, address with the
    /// subnet's prefix), IPv4 first.
    pub fn hosted_gateways(&self) -> Vec<(String, IpNet)> {
        self.families()
            .into_iter()
            .filter_map(|(subnet, gateway)| match gateway? {
                VlanGateway::Hosted { host, address } => {
                    Some((host, IpNet::new(address, subnet.prefix_len()).ok()?))
                }
                VlanGateway::External(_) => None,
            })
            .collect()
    }
}

/// A VLAN network's gateway of one family (`A`: its address type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VlanGateway<A = Ipv4Addr> {
    /// ovsmesh puts the address on an internal port of this host's VLAN bridge.
    Hosted { host: String, address: A },
    /// A router outside ovsmesh.
    External(A),
}

impl<A: Copy + Into<IpAddr>> VlanGateway<A> {
    pub fn address(&self) -> A {
        match self {
            VlanGateway::Hosted { address, .. } | VlanGateway::External(address) => *address,
        }
    }

    /// The same gateway with its address as an [`IpAddr`].
    pub fn ip(&self) -> VlanGateway<IpAddr> {
        match self {
            VlanGateway::Hosted { host, address } => VlanGateway::Hosted {
                host: host.clone(),
                address: (*address).into(),
            },
            VlanGateway::External(address) => VlanGateway::External((*address).into()),
        }
    }

    /// The host that holds it, if ovsmesh does.
    pub fn host(&self) -> Option<&str> {
        match self {
            VlanGateway::Hosted { host, .. } => Some(host),
            VlanGateway::External(_) => None,
        }
    }
}

impl VlanGateway<IpAddr> {
    /// The same gateway with its address narrowed by `to` (to one family's
    /// type); `None` where `to` refuses the address.
    pub fn narrow<B>(self, to: impl Fn(IpAddr) -> Option<B>) -> Option<VlanGateway<B>> {
        Some(match self {
            VlanGateway::Hosted { host, address } => VlanGateway::Hosted {
                host,
                address: to(address)?,
            },
            VlanGateway::External(address) => VlanGateway::External(to(address)?),
        })
    }
}

#[derive(Debug, Clone)]
pub struct RoutedNetwork {
    pub name: String,
    pub mode: RoutedMode,
    pub subnets: BTreeMap<String, Ipv4Net>,
    /// Resolved gateway of every host that has a subnet.
    pub gateways: BTreeMap<String, Ipv4Addr>,
    /// Host → its IPv6 container subnet.
    pub subnets6: BTreeMap<String, Ipv6Net>,
    /// Resolved IPv6 gateway of every host that has an IPv6 subnet.
    pub gateways6: BTreeMap<String, Ipv6Addr>,
    pub egress: Egress,
}

impl RoutedNetwork {
    /// Hosts with a subnet of either family: the routed network's members.
    pub fn hosts(&self) -> std::collections::BTreeSet<&str> {
        self.subnets
            .keys()
            .chain(self.subnets6.keys())
            .map(String::as_str)
            .collect()
    }

    pub fn has_host(&self, host: &str) -> bool {
        self.subnets.contains_key(host) || self.subnets6.contains_key(host)
    }

    /// `host`'s subnets with their gateways, IPv4 first.
    pub fn subnets_of(&self, host: &str) -> Vec<(IpNet, IpAddr)> {
        let mut out = Vec::new();
        if let (Some(subnet), Some(gateway)) = (self.subnets.get(host), self.gateways.get(host)) {
            out.push((IpNet::V4(*subnet), IpAddr::V4(*gateway)));
        }
        if let (Some(subnet), Some(gateway)) = (self.subnets6.get(host), self.gateways6.get(host)) {
            out.push((IpNet::V6(*subnet), IpAddr::V6(*gateway)));
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub host: String,
    pub runtime: Runtime,
    pub interfaces: Vec<Interface>,
    /// The one IPv4 default route, resolved from the networks when not given.
    pub gateway: Option<Ipv4Addr>,
    /// The one IPv6 default route, likewise.
    pub gateway6: Option<Ipv6Addr>,
    pub origin: KeyPath,
}

/// How ovsmesh finds a container's network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "name")]
pub enum Runtime {
    Docker(String),
    Netns(String),
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Runtime::Docker(name) => write!(f, "docker:{name}"),
            Runtime::Netns(name) => write!(f, "netns:{name}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Interface {
    pub network: String,
    /// At least one of the two is there.
    pub address: Option<Ipv4Net>,
    pub address6: Option<Ipv6Net>,
    pub ifname: String,
    pub mac: Mac,
    /// Effective MTU: configured, else the path's budget.
    pub mtu: u32,
    pub routes: Vec<Route>,
    pub origin: KeyPath,
}

impl Interface {
    /// The interface's addresses, IPv4 first.
    pub fn addresses(&self) -> Vec<IpNet> {
        let v4 = self.address.map(IpNet::V4);
        let v6 = self.address6.map(IpNet::V6);
        v4.into_iter().chain(v6).collect()
    }

    /// Whether `address` is on-link for one of the interface's subnets.
    pub fn on_link(&self, address: IpAddr) -> bool {
        self.addresses()
            .iter()
            .any(|a| a.trunc().contains(&address))
    }
}

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(format!(
                "invalid MAC address {s:?}: expected six hex pairs like 02:00:00:00:00:01"
            ));
        }
        let mut bytes = [0u8; 6];
        for (byte, part) in bytes.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(format!(
                    "invalid MAC address {s:?}: expected six hex pairs like 02:00:00:00:00:01"
                ));
            }
            *byte = u8::from_str_radix(part, 16)
                .map_err(|_| format!("invalid MAC address {s:?}: {part:?} is not hex"))?;
        }
        Ok(Mac(bytes))
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Topology {
    /// The routed network, if the topology has one (at most one is allowed).
    pub fn routed(&self) -> Option<&RoutedNetwork> {
        self.networks.values().find_map(|n| match n {
            Network::Routed(r) => Some(r),
            Network::Vlan(_) => None,
        })
    }

    /// The pool `host`'s Docker containers without `--ip` get addresses from on
    /// `network`: the VLAN network's `pools` entry, or on the routed network the
    /// host's subnet.
    pub fn pool(&self, network: &str, host: &str) -> Option<Ipv4Net> {
        match self.networks.get(network)? {
            Network::Vlan(vlan) => vlan.pools.get(host).copied(),
            Network::Routed(routed) => routed.subnets.get(host).copied(),
        }
    }

    pub fn vlan(&self, name: &str) -> Option<&VlanNetwork> {
        match self.networks.get(name) {
            Some(Network::Vlan(v)) => Some(v),
            _ => None,
        }
    }
}
