//! One state type for what a host should have and what it has.
//!
//! Desired state (computed from the topology) and observed state (read from
//! OVSDB and netlink) share this type, so the plan is a plain diff of two values
//! and golden fixtures can write observed state as JSON. Every collection is keyed
//! by a stable identity derived from ownership marks, never by a device name
//! alone: `tunnel/ovs0/node2`, `access/test1/eth1`, `gateway/blue`, ….

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

pub use crate::marks::PortId;
use crate::marks::{EndpointMark, Role};
pub use crate::topology::Family;
use crate::topology::{Mac, Route, Runtime};

mod firewall;
pub use firewall::{multicast, Accept, FirewallHost, FirewallRule, Masquerade, Place, Rule};

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
    /// `net.ipv4.conf.DEV.KEY` / `net.ipv6.conf.DEV.KEY` → the other
    /// per-interface settings the routed path needs, IPv6 forwarding among them
    /// (see [`Sysctl`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, Sysctl>,
    /// `CONTAINER/IFNAME` → the container's interface.
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerInterface>,
    /// Rule id (see [`Rule::id`]) → the mesh's rule in the host firewall.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub firewall: BTreeMap<String, FirewallRule>,
    /// Observed only: the host's firewall as found (which backend, Docker's chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall_host: Option<FirewallHost>,
    /// Observed only: containers that are not running.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub waiting: BTreeSet<String>,
    /// Observed only: OVS ports that are not this mesh's, name → bridge (the
    /// name index is global: a port of ours cannot take such a name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub foreign_ports: BTreeMap<String, String>,
    /// Observed only: host links that are not this mesh's (no alias of its own).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub foreign_links: BTreeSet<String>,
    /// Observed only: places this mesh's objects need that something not ours holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub occupied: Vec<Occupied>,
    /// Observed only: Docker endpoints of this mesh whose veth host end exists,
    /// by endpoint id (their facts come from the host end's alias, see `marks`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, EndpointLink>,
    /// Observed only: default routes of this mesh inside containers that
    /// another default route wins over, one sentence each (for warnings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<String>,
    /// Observed only: devices with an IPv6 default route learned from router
    /// advertisements (`proto ra`), which IPv6 forwarding would make the
    /// kernel drop unless their `accept_ra` is 2 (see `desired::settle`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub ra_routes: BTreeSet<String>,
}

/// A Docker endpoint's veth host end, as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointLink {
    /// The host end's name (the OVS port's).
    pub host_end: String,
    pub mark: EndpointMark,
    /// Docker moved the container end into the container (`Join`): the plugin's
    /// `CreateEndpoint` is over. Before that, the plugin is still making the
    /// endpoint's port, and the daemon does not make it too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub joined: bool,
}

/// A place an object of this mesh needs, held by something that is not ours
/// (a foreign route with our destination and metric, a foreign link with our
/// container interface's name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Occupied {
    pub kind: Kind,
    /// The id our object has in the state.
    pub id: String,
    /// What holds it, for the conflict message.
    pub by: String,
    /// A container interface that is ours but holds, inside, an address or
    /// route not ours that clashes with what the topology gives it (rather
    /// than a foreign link under its name).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inside: bool,
}

/// An OVS bridge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bridge {
    pub datapath_type: String,
    /// Observed: the bridge carries this mesh's mark (ovsmesh created it).
    /// A bridge without it is adopted and never deleted.
    #[serde(default)]
    pub owned: bool,
    /// Observed: the other mesh whose mark the bridge carries (it made it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
    /// Meshes with a claim on the bridge (`ovsmesh-user:MESH`): they adopted
    /// it from the mesh that made it. Observed, and what the target needs.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub users: BTreeSet<String>,
    /// Target only: the mesh this one hands the bridge over to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand_to: Option<String>,
    /// Observed: ports on it that carry no mark of this mesh (its own local
    /// port aside). A bridge that holds them outlives this mesh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_ports: Vec<String>,
    /// `Interface.mtu_request` of the bridge's own internal interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu_request: Option<u32>,
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

impl Port {
    /// The port of a container's veth host end: a system device, untagged on
    /// the overlay bridge or an access port of VLAN `tag`.
    pub fn veth(
        name: &str,
        bridge: &str,
        role: Role,
        tag: Option<u16>,
        external_ids: BTreeMap<String, String>,
    ) -> Self {
        Port {
            name: name.to_string(),
            bridge: bridge.to_string(),
            role,
            iface_type: String::new(),
            options: BTreeMap::new(),
            tag,
            trunks: Vec::new(),
            protected: false,
            bfd: BTreeMap::new(),
            mtu_request: None,
            external_ids,
        }
    }
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
    pub address: IpNet,
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
    pub to: IpNet,
    pub via: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onlink: bool,
}

/// One `net.ipv4.conf.DEV.KEY` or `net.ipv6.conf.DEV.KEY` setting, written
/// through /proc/sys. The value it replaces is remembered the first time and
/// put back by `down`, like forwarding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sysctl {
    /// `ipv4` (the default) or `ipv6`.
    #[serde(default, skip_serializing_if = "Family::is_ipv4")]
    pub family: Family,
    /// A device, or `all`.
    pub dev: String,
    /// The setting under `net.FAMILY.conf.DEV`, e.g. `send_redirects`, `accept_ra`.
    pub key: String,
    pub value: u32,
    /// This mesh remembers the value the setting had before (its claim on it,
    /// see `marks`): observed, and always in the target. A setting another mesh
    /// already made as this one needs it is claimed all the same, so the
    /// other mesh's `down` leaves it in place.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub claimed: bool,
}

impl Sysctl {
    pub fn name(&self) -> String {
        format!(
            "net.{}.conf.{}.{}",
            self.family.as_str(),
            self.dev,
            self.key
        )
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Net>,
    /// The container's default route, on the interface where it is on-link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// The container's IPv6 default route, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Transmit checksum offload off on the veth (userspace datapath needs it for TCP).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tx_checksum_off: bool,
    /// Observed only: addresses and routes of this mesh on the interface that
    /// the topology no longer gives it (an old address, a default route with
    /// an older metric), described; never in the target, so apply removes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stale: Vec<String>,
}

impl ContainerInterface {
    pub fn key(&self) -> String {
        format!("{}/{}", self.container, self.ifname)
    }

    /// Its addresses, IPv4 first.
    pub fn addresses(&self) -> Vec<IpNet> {
        let v4 = self.address.map(IpNet::V4);
        v4.into_iter().chain(self.address6.map(IpNet::V6)).collect()
    }

    /// Its default routes' next hops, IPv4 first.
    pub fn gateways(&self) -> Vec<IpAddr> {
        let v4 = self.gateway.map(IpAddr::V4);
        v4.into_iter()
            .chain(self.gateway6.map(IpAddr::V6))
            .collect()
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

/// Which kind of object a state entry (and a plan change) is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Bridge,
    Port,
    Address,
    Route,
    Forwarding,
    Sysctl,
    ContainerInterface,
    Firewall,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bridge => "bridge",
            Kind::Port => "port",
            Kind::Address => "address",
            Kind::Route => "route",
            Kind::Forwarding => "forwarding",
            Kind::Sysctl => "sysctl",
            Kind::ContainerInterface => "container-interface",
            Kind::Firewall => "firewall",
        }
    }
}

/// One state object of any kind, as a plan change carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Bridge(Bridge),
    Port(Port),
    Address(HostAddress),
    Route(HostRoute),
    Forwarding(bool),
    Sysctl(Sysctl),
    ContainerInterface(ContainerInterface),
    Firewall(FirewallRule),
}

impl Item {
    pub fn bridge(&self) -> Option<&Bridge> {
        match self {
            Item::Bridge(b) => Some(b),
            _ => None,
        }
    }
    pub fn port(&self) -> Option<&Port> {
        match self {
            Item::Port(p) => Some(p),
            _ => None,
        }
    }
    pub fn address(&self) -> Option<&HostAddress> {
        match self {
            Item::Address(a) => Some(a),
            _ => None,
        }
    }
    pub fn route(&self) -> Option<&HostRoute> {
        match self {
            Item::Route(r) => Some(r),
            _ => None,
        }
    }
    pub fn forwarding(&self) -> Option<bool> {
        match self {
            Item::Forwarding(on) => Some(*on),
            _ => None,
        }
    }
    pub fn sysctl(&self) -> Option<&Sysctl> {
        match self {
            Item::Sysctl(s) => Some(s),
            _ => None,
        }
    }
    pub fn container_interface(&self) -> Option<&ContainerInterface> {
        match self {
            Item::ContainerInterface(c) => Some(c),
            _ => None,
        }
    }
    pub fn firewall(&self) -> Option<&FirewallRule> {
        match self {
            Item::Firewall(r) => Some(r),
            _ => None,
        }
    }
}

/// Desired state settled against what a host has (see `desired::settle`): the
/// two states the plan diffs, and the settle step's decisions.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// What apply makes real: desired state with names and incarnations settled.
    pub target: HostState,
    /// What the host has, less what is left alone (waiting containers).
    pub observed: HostState,
    /// Containers not running: nothing is made for them.
    pub waiting: Vec<String>,
    /// Why an object changes, where the settle step decided it.
    pub notes: BTreeMap<(Kind, String), Note>,
    /// Objects left as they are although the topology would have them otherwise.
    pub kept: Vec<Kept>,
    /// Objects the topology needs whose place something not ours holds: not
    /// made, and reported (exit 1).
    pub conflicts: Vec<Conflict>,
}

/// An object left as it is: not removed because others use it, or adopted
/// with settings the topology would not give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub kind: Kind,
    pub id: String,
    pub reason: String,
    /// What holds on to it (foreign ports, other meshes), if anything.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<String>,
}

/// An object ovsmesh needs but does not make, because something that is not
/// its own is in the way; ovsmesh never overwrites or deletes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub kind: Kind,
    pub id: String,
    pub reason: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind.as_str(), self.id, self.reason)
    }
}

/// The settle step's word on one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub reason: String,
    /// Replace (delete + create) rather than update in place.
    pub replace: bool,
}
