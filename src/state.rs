//! One state type for what a host should have and what it has.
//!
//! Desired state (computed from the topology) and observed state (read from
//! OVSDB and netlink) share this type, so the plan is a plain diff of two values
//! and golden fixtures can write observed state as JSON. Every collection is keyed
//! by a stable identity derived from ownership marks, never by a device name
//! alone: `tunnel/ovs0/node2`, `access/test1/eth1`, `gateway/blue`, ….

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::marks::Role;
use crate::topology::{Mac, Route, Runtime};

/// Everything ovsmesh manages on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostState {
    pub host: String,
    /// Bridge name → bridge.
    #[serde(default)]
    pub bridges: BTreeMap<String, Bridge>,
    /// Port identity (see [`PortId`]) → port.
    #[serde(default)]
    pub ports: BTreeMap<String, Port>,
    /// `DEV ADDRESS/PREFIX` → address on a host interface.
    #[serde(default)]
    pub addresses: BTreeMap<String, HostAddress>,
    /// Destination → route in the host's main table.
    #[serde(default)]
    pub routes: BTreeMap<String, HostRoute>,
    /// Device (or `all`) → IPv4 forwarding enabled.
    #[serde(default)]
    pub forwarding: BTreeMap<String, bool>,
    /// `net.ipv4.conf.DEV.KEY` → the other per-interface IPv4 settings the routed
    /// path needs (see [`Sysctl`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, Sysctl>,
    /// `CONTAINER/IFNAME` → the container's interface.
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerInterface>,
    /// Observed only: containers that are not running.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub waiting: BTreeSet<String>,
}

/// An OVS bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bridge {
    pub datapath_type: String,
    /// Observed: the bridge carries this mesh's mark (ovsmesh created it).
    /// A bridge without it is adopted and never deleted.
    #[serde(default)]
    pub owned: bool,
    /// `Interface.mtu_request` of the bridge's own internal interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu_request: Option<u32>,
}

/// Identity of an owned port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortId {
    Tunnel { bridge: String, peer: String },
    Access { container: String, ifname: String },
    Gateway { network: String },
    Uplink { bridge: String },
    Underlay { bridge: String },
}

impl PortId {
    /// The key used in [`HostState::ports`].
    pub fn key(&self) -> String {
        match self {
            PortId::Tunnel { bridge, peer } => format!("tunnel/{bridge}/{peer}"),
            PortId::Access { container, ifname } => format!("access/{container}/{ifname}"),
            PortId::Gateway { network } => format!("gateway/{network}"),
            PortId::Uplink { bridge } => format!("uplink/{bridge}"),
            PortId::Underlay { bridge } => format!("underlay/{bridge}"),
        }
    }
}

/// An OVS port with its single interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub name: String,
    pub bridge: String,
    pub role: Role,
    /// Interface type: "" (a system device), "internal", "gre", "vxlan", "geneve".
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub iface_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// Access VLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<u16>,
    /// Trunked VLANs; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunks: Vec<u16>,
    /// Split horizon: protected ports never forward to each other.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bfd: BTreeMap<String, String>,
    /// `Interface.mtu_request`: the MTU of an internal port (its device's MTU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu_request: Option<u32>,
    /// Ownership marks (see `marks`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_ids: BTreeMap<String, String>,
}

/// What an address on a host interface is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressRole {
    /// The routed network's gateway on the overlay bridge.
    OverlayGateway,
    /// A VLAN network's gateway on its internal port.
    VlanGateway,
    /// The underlay address, moved from the NIC to the underlay bridge (netdev).
    Underlay,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostAddress {
    pub dev: String,
    pub address: Ipv4Net,
    pub role: AddressRole,
}

impl HostAddress {
    pub fn key(&self) -> String {
        format!("{} {}", self.dev, self.address)
    }
}

/// A route in the host's main table, installed with ovsmesh's route protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRoute {
    pub to: Ipv4Net,
    pub via: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onlink: bool,
}

/// One `net.ipv4.conf.DEV.KEY` setting, written through /proc/sys. The value
/// it replaces is remembered the first time and put back by `down`, like
/// forwarding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sysctl {
    /// A device, or `all`.
    pub dev: String,
    /// The setting under `net.ipv4.conf.DEV`, e.g. `send_redirects`.
    pub key: String,
    pub value: u32,
}

impl Sysctl {
    pub fn name(&self) -> String {
        format!("net.ipv4.conf.{}.{}", self.dev, self.key)
    }
}

/// A container's interface: the inner end of a veth whose host end is an access port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerInterface {
    pub container: String,
    pub runtime: Runtime,
    pub ifname: String,
    /// Name of the veth's host end (the access port).
    pub host_end: String,
    pub mac: Mac,
    pub mtu: u32,
    pub address: Ipv4Net,
    /// The container's default route, on the interface where it is on-link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Transmit checksum offload off on the veth (userspace datapath needs it for TCP).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tx_checksum_off: bool,
}

impl ContainerInterface {
    pub fn key(&self) -> String {
        format!("{}/{}", self.container, self.ifname)
    }
}

impl HostState {
    /// Only what lives in OVSDB (bridges and ports): what the OVS engine manages.
    pub fn ovs_part(&self) -> HostState {
        HostState {
            host: self.host.clone(),
            bridges: self.bridges.clone(),
            ports: self.ports.clone(),
            waiting: self.waiting.clone(),
            ..HostState::default()
        }
    }
}
