//! The validated topology.
//!
//! A `Topology` only exists once every cluster-wide rule has passed, so code
//! downstream (desired state, plan, apply) never re-checks references, ranges or
//! address plans. Defaults are resolved here too: effective MTUs, MACs, gateways.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub use super::raw::{Datapath, Egress, Encap, RoutedMode, VlanTransport};
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
            Encap::Gre => None,
            Encap::Vxlan => Some(self.dst_port.unwrap_or(4789)),
            Encap::Geneve => Some(self.dst_port.unwrap_or(6081)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// Tunnel endpoint with the prefix of the underlay subnet.
    pub underlay_address: Ipv4Net,
    pub ovsdb: Option<String>,
    pub datapath: Datapath,
    pub underlay_nic: Option<String>,
    pub uplink_nic: Option<String>,
    /// Effective underlay MTU (host override or mesh default).
    pub underlay_mtu: u32,
    pub routes: Vec<Route>,
    pub origin: KeyPath,
}

/// A static route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Route {
    pub to: Ipv4Net,
    pub via: Ipv4Addr,
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
    pub egress: Egress,
    /// Host → the pool its Docker containers without `--ip` get addresses from.
    pub pools: BTreeMap<String, Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VlanGateway {
    /// ovsmesh puts the address on an internal port of this host's VLAN bridge.
    Hosted { host: String, address: Ipv4Addr },
    /// A router outside ovsmesh.
    External(Ipv4Addr),
}

impl VlanGateway {
    pub fn address(&self) -> Ipv4Addr {
        match self {
            VlanGateway::Hosted { address, .. } | VlanGateway::External(address) => *address,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RoutedNetwork {
    pub name: String,
    pub mode: RoutedMode,
    pub subnets: BTreeMap<String, Ipv4Net>,
    /// Resolved gateway of every host that has a subnet.
    pub gateways: BTreeMap<String, Ipv4Addr>,
    pub egress: Egress,
}

#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub host: String,
    pub runtime: Runtime,
    pub interfaces: Vec<Interface>,
    /// The one default route, resolved from the networks when not given.
    pub gateway: Option<Ipv4Addr>,
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
    pub address: Ipv4Net,
    pub ifname: String,
    pub mac: Mac,
    /// Effective MTU: configured, else the path's budget.
    pub mtu: u32,
    pub routes: Vec<Route>,
    pub origin: KeyPath,
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
