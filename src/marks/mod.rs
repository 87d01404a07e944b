//! The ownership policy: the one place that answers "is this ours, and of which
//! mesh?" for the observers (OVSDB rows, links, addresses, routes) and for the
//! settle step and the planner (what may be made, changed, handed over or
//! removed). docs/ownership.md says the same in prose.
//!
//! - OVS rows are ours by `external_ids` (`ovsmesh-mesh` = this mesh). A bridge
//!   that exists without our mark is *adopted*: used as it is, with the ports it
//!   holds, never rewritten, never removed. A mesh that adopts a bridge another
//!   mesh made puts a claim on it (`ovsmesh-user:MESH`); the owner hands such a
//!   bridge over instead of removing it.
//! - Links are ours by alias (`ovsmesh:MESH/CONTAINER/IFNAME`, veth host ends),
//!   or through an OVS row of ours (a bridge's own port, a gateway port).
//! - An address is ours only on a link we own; on any other device (an adopted
//!   bridge, the underlay bridge) only the exact address the topology puts there.
//!   IPv6 link-local addresses (fe80::/10) are the kernel's on every device.
//! - Routes are ours by protocol [`ROUTE_PROTOCOL`] **and** the mesh's own metric
//!   ([`Policy::route_metric`]). The metric is part of the kernel's key of a
//!   route, so a write of one mesh can never land on another's route; a foreign
//!   route that holds our key is a conflict, never overwritten.
//! - Inside a container, only on the interface ovsmesh made (the peer of its
//!   veth host end, which is the mesh's by its alias): routes of either family
//!   with protocol [`ROUTE_PROTOCOL`] and the mesh's metric, or, for a default
//!   route, [`CONTAINER_DEFAULT_METRIC`]; addresses that are the topology's
//!   exact address (IPv4 or IPv6) or carry [`ROUTE_PROTOCOL`] as their
//!   protocol (`IFA_PROTO`, Linux 6.1+). Everything else there is someone
//!   else's: left alone, and a conflict where it holds what the topology gives
//!   the interface. IPv6 link-local addresses are the kernel's there too.
//! - Settings (`net.ipv4.conf.DEV.KEY`: forwarding, `send_redirects`,
//!   `arp_ignore`; `net.ipv6.conf.DEV.KEY`: `all.forwarding`, `accept_ra`)
//!   carry no mark, and meshes may share one (`all`). A mesh claims a setting
//!   by remembering, per network namespace, the value it had before: the first
//!   remembers the host's own value and the others copy it, and `down` puts it
//!   back only when no other mesh still claims it (the last one out restores it).
//!
//! This module is a leaf: it knows marks and rules, and is handed plain facts
//! (maps, names, numbers), so every rule is unit-tested without a host.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// `external_ids` key: the mesh that owns the row.
pub const MESH: &str = "ovsmesh-mesh";
/// `external_ids` key: the row's [`Role`].
pub const ROLE: &str = "ovsmesh-role";
/// `external_ids` key: the peer host of a tunnel.
pub const PEER: &str = "ovsmesh-peer";
/// `external_ids` key: the container of an access port.
pub const CONTAINER: &str = "ovsmesh-container";
/// `external_ids` key: the interface name inside the container of an access port.
pub const IFNAME: &str = "ovsmesh-ifname";
/// `external_ids` key: the VLAN network of a gateway port.
pub const NETWORK: &str = "ovsmesh-network";
/// `external_ids` key: the Docker endpoint id of an endpoint port.
pub const ENDPOINT: &str = "ovsmesh-endpoint";
/// `external_ids` key: the address (`ADDRESS/PREFIX`) of an endpoint port's container.
pub const ADDRESS: &str = "ovsmesh-address";
/// `external_ids` key: the MAC of an endpoint port's container interface.
pub const MAC: &str = "ovsmesh-mac";
/// `external_ids` key on a bridge ovsmesh created: the host it was created for.
pub const HOST: &str = "ovsmesh-host";
/// `external_ids` key prefix on a bridge another mesh made: `ovsmesh-user:MESH`
/// says MESH uses it too.
pub const USER_PREFIX: &str = "ovsmesh-user:";

/// Route protocol number on every route ovsmesh installs (`ip route … proto 79`).
/// Add `79 ovsmesh` to `/etc/iproute2/rt_protos.d/ovsmesh.conf` to see it by name.
pub const ROUTE_PROTOCOL: u8 = 79;

/// `net.ipv4.conf.DEV.arp_ignore` on a device that is only a switch port of
/// a userspace-datapath bridge (a veth host end, the underlay or uplink NIC of
/// a netdev host): answer no ARP request on it at all. OVS reads such ports as
/// ordinary devices, so the host's IP stack sees every frame too and, by
/// default, answers ARP for any of its addresses on any device — racing the
/// OVS internal port that owns the address (`obr0`, the underlay bridge) with
/// the switch port's MAC. A neighbour that keeps that first answer sends its
/// traffic to the port's MAC, where the host drops it (forwarding is off there)
/// or takes a tunnel packet for itself. A veth host end is ovsmesh's and gets
/// it when made; a NIC's own value is claimed and put back by `down`.
pub const SWITCH_PORT_ARP_IGNORE: u32 = 8;

/// What an owned OVS port is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Tunnel,
    Access,
    Gateway,
    Uplink,
    Underlay,
    /// A Docker endpoint's veth, made by the network plugin (`plugin`).
    Endpoint,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Tunnel => "tunnel",
            Role::Access => "access",
            Role::Gateway => "gateway",
            Role::Uplink => "uplink",
            Role::Underlay => "underlay",
            Role::Endpoint => "endpoint",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Role::Tunnel,
            Role::Access,
            Role::Gateway,
            Role::Uplink,
            Role::Underlay,
            Role::Endpoint,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of an owned port, as its marks spell it out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortId {
    Tunnel { bridge: String, peer: String },
    Access { container: String, ifname: String },
    Gateway { network: String },
    Uplink { bridge: String },
    Underlay { bridge: String },
    Endpoint { endpoint: String },
}

impl PortId {
    /// The key used in the state's port map.
    pub fn key(&self) -> String {
        match self {
            PortId::Tunnel { bridge, peer } => format!("tunnel/{bridge}/{peer}"),
            PortId::Access { container, ifname } => format!("access/{container}/{ifname}"),
            PortId::Gateway { network } => format!("gateway/{network}"),
            PortId::Uplink { bridge } => format!("uplink/{bridge}"),
            PortId::Underlay { bridge } => format!("underlay/{bridge}"),
            PortId::Endpoint { endpoint } => format!("endpoint/{endpoint}"),
        }
    }
}

/// Whose a marked object is, seen from one mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This mesh's.
    Us,
    /// Another mesh's (its name).
    Mesh(String),
    /// Nobody's: an admin's or another tool's.
    Nobody,
}

/// How a mesh holds a bridge it cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeHold {
    /// It carries this mesh's mark: ovsmesh created it for this mesh.
    Owned,
    /// It existed without this mesh's mark: used as it is, never removed.
    Adopted,
}

/// What becomes of an observed object that the target no longer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// It is this mesh's and nobody else's: remove it.
    Remove,
    /// It is this mesh's but others hold on to it: keep it, and say so.
    Keep {
        reason: &'static str,
        holders: Vec<String>,
    },
    /// It is not this mesh's (adopted): leave it, nothing to say.
    Leave,
}

/// The ownership policy of one mesh.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    mesh: &'a str,
}

impl<'a> Policy<'a> {
    pub fn new(mesh: &'a str) -> Self {
        Self { mesh }
    }

    pub fn mesh(&self) -> &'a str {
        self.mesh
    }

    // --- OVS rows -------------------------------------------------------

    /// Whose an OVS row is, from its `external_ids`.
    pub fn owner(&self, external_ids: &BTreeMap<String, String>) -> Owner {
        match external_ids.get(MESH) {
            Some(mesh) if mesh == self.mesh => Owner::Us,
            Some(mesh) => Owner::Mesh(mesh.clone()),
            None => Owner::Nobody,
        }
    }

    /// The `external_ids` of a port (and its interface) this mesh makes.
    pub fn port_marks(&self, role: Role, identity: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut ids = BTreeMap::from([
            (MESH.to_string(), self.mesh.to_string()),
            (ROLE.to_string(), role.as_str().to_string()),
        ]);
        for (key, value) in identity {
            ids.insert((*key).to_string(), (*value).to_string());
        }
        ids
    }

    /// The `external_ids` of a bridge this mesh creates on `host`.
    pub fn bridge_marks(&self, host: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MESH.to_string(), self.mesh.to_string()),
            (HOST.to_string(), host.to_string()),
        ])
    }

    /// The identity and role of a port on `bridge`, if it is this mesh's and its
    /// marks are complete.
    pub fn port_identity(
        &self,
        bridge: &str,
        ids: &BTreeMap<String, String>,
    ) -> Option<(PortId, Role)> {
        if self.owner(ids) != Owner::Us {
            return None;
        }
        let get = |k: &str| ids.get(k).cloned();
        let role = Role::parse(ids.get(ROLE)?)?;
        let id = match role {
            Role::Tunnel => PortId::Tunnel {
                bridge: bridge.to_string(),
                peer: get(PEER)?,
            },
            Role::Access => PortId::Access {
                container: get(CONTAINER)?,
                ifname: get(IFNAME)?,
            },
            Role::Gateway => PortId::Gateway {
                network: get(NETWORK)?,
            },
            Role::Uplink => PortId::Uplink {
                bridge: bridge.to_string(),
            },
            Role::Underlay => PortId::Underlay {
                bridge: bridge.to_string(),
            },
            Role::Endpoint => PortId::Endpoint {
                endpoint: get(ENDPOINT)?,
            },
        };
        Some((id, role))
    }

    /// How this mesh holds a bridge: owned by its mark; adopted when the
    /// topology names it (`managed`) or this mesh has a claim on it; otherwise
    /// not at all.
    pub fn bridge_hold(
        &self,
        name: &str,
        ids: &BTreeMap<String, String>,
        managed: &[&str],
    ) -> Option<BridgeHold> {
        if self.owner(ids) == Owner::Us {
            Some(BridgeHold::Owned)
        } else if managed.contains(&name) || users(ids).contains(self.mesh) {
            Some(BridgeHold::Adopted)
        } else {
            None
        }
    }

    /// The `external_ids` key of this mesh's claim on a bridge another mesh made.
    pub fn claim_key(&self) -> String {
        claim_key(self.mesh)
    }

    /// The users an adopted bridge must have: this mesh claims a bridge another
    /// mesh made (so that mesh hands it over rather than removing it); an
    /// admin's bridge is never removed by ovsmesh and gets no claim.
    pub fn adopted_users(
        &self,
        owned_by: Option<&str>,
        users: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        let mut users = users.clone();
        if owned_by.is_some() {
            users.insert(self.mesh.to_string());
        }
        users
    }

    /// The mesh a bridge this mesh owns but no longer wants is handed to: the
    /// first other mesh with a claim on it, if any.
    pub fn heir(&self, owned: bool, users: &BTreeSet<String>) -> Option<String> {
        if !owned {
            return None;
        }
        users.iter().find(|u| *u != self.mesh).cloned()
    }

    /// Whether a topology port whose name a foreign port already holds on the
    /// same bridge is adopted as it is (a NIC the admin already put there) rather
    /// than a conflict (a tunnel, access or gateway name is ovsmesh's own).
    pub fn adopts_port(&self, role: Role) -> bool {
        matches!(role, Role::Underlay | Role::Uplink)
    }

    // --- addresses ------------------------------------------------------

    /// Which host addresses are this mesh's: every address on a link it owns
    /// (a bridge it owns other than the underlay bridge, a gateway port of its
    /// own); on every other device only the exact addresses the topology puts
    /// there. The underlay bridge is the host's own uplink (and may be shared by
    /// meshes), so only the underlay address on it is ours.
    pub fn address_policy(&self, devices: &DeviceFacts) -> AddressPolicy {
        let mut owned: BTreeSet<String> = devices
            .owned_bridges
            .iter()
            .filter(|b| **b != devices.underlay_bridge)
            .cloned()
            .collect();
        owned.extend(devices.gateway_ports.iter().cloned());
        let mut exact: BTreeMap<String, BTreeSet<IpNet>> = BTreeMap::new();
        for (dev, address) in &devices.topology_addresses {
            if !owned.contains(dev) {
                exact.entry(dev.clone()).or_default().insert(*address);
            }
        }
        AddressPolicy { owned, exact }
    }

    /// Whether the underlay address on the underlay bridge stays where it is
    /// although this mesh no longer wants it: unless this mesh owns the bridge
    /// and removes it (no other mesh takes it over), the bridge outlives this
    /// mesh and the host needs its address there.
    pub fn underlay_address_stays(&self, bridge_owned: bool, handed_over: bool) -> bool {
        !bridge_owned || handed_over
    }

    // --- routes ---------------------------------------------------------

    // --- IPv4 settings ----------------------------------------------------

    /// The value this mesh remembers for a setting it is about to change, given
    /// `now` (what the host has) and `remembered` (mesh → value every mesh
    /// remembers for the same setting in the same namespace): the host's own
    /// value, which a mesh that changed it earlier remembers; else `now`.
    pub fn setting_original(
        &self,
        now: Option<u32>,
        remembered: &BTreeMap<String, u32>,
    ) -> Option<u32> {
        remembered
            .iter()
            .find(|(mesh, _)| *mesh != self.mesh)
            .map(|(_, value)| *value)
            .or(now)
    }

    /// What `down` does with a setting this mesh changed: put the remembered
    /// value back, unless another mesh still has the setting changed (it
    /// remembers it too); then it stays as it is, for that mesh's sake.
    pub fn setting_release(&self, remembered: &BTreeMap<String, u32>) -> Removal {
        let holders: Vec<String> = remembered
            .keys()
            .filter(|mesh| *mesh != self.mesh)
            .cloned()
            .collect();
        if holders.is_empty() {
            Removal::Remove
        } else {
            Removal::Keep {
                reason: "another mesh on this host still needs the setting",
                holders,
            }
        }
    }
}

/// The `external_ids` key of `mesh`'s claim on a bridge.
pub fn claim_key(mesh: &str) -> String {
    format!("{USER_PREFIX}{mesh}")
}

/// The meshes with a claim on a row.
pub fn users(ids: &BTreeMap<String, String>) -> BTreeSet<String> {
    ids.keys()
        .filter_map(|k| k.strip_prefix(USER_PREFIX))
        .map(str::to_string)
        .collect()
}

/// What becomes of a bridge no longer wanted: removed only if this mesh owns it
/// and it holds no port of anyone else; an adopted bridge always stays (a
/// claimed one is handed over before it gets here, see [`Policy::heir`]).
pub fn bridge_removal(owned: bool, foreign_ports: &[String]) -> Removal {
    if !owned {
        Removal::Leave
    } else if !foreign_ports.is_empty() {
        Removal::Keep {
            reason: "it still holds ports ovsmesh does not own",
            holders: foreign_ports.to_vec(),
        }
    } else {
        Removal::Remove
    }
}

/// Facts about a host's devices that address ownership depends on.
#[derive(Debug, Clone, Default)]
pub struct DeviceFacts {
    pub underlay_bridge: String,
    /// Bridges this mesh owns (their own port is a device of the same name).
    pub owned_bridges: BTreeSet<String>,
    /// Internal ports carrying VLAN gateways that are this mesh's in OVS.
    pub gateway_ports: BTreeSet<String>,
    /// (device, address) pairs the topology puts on this host.
    pub topology_addresses: Vec<(String, IpNet)>,
}

/// Which addresses (of both families) on host devices are a mesh's; an IPv6
/// link-local address is the kernel's, and the observer never asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Devices the mesh owns: every address on them is its.
    owned: BTreeSet<String>,
    /// Other devices: only these addresses are its.
    exact: BTreeMap<String, BTreeSet<IpNet>>,
}

impl AddressPolicy {
    /// Whether `address` on device `dev` is the mesh's.
    pub fn is_ours(&self, dev: &str, address: IpNet) -> bool {
        self.owned.contains(dev) || self.exact.get(dev).is_some_and(|a| a.contains(&address))
    }
}

mod links;
mod routes;
pub use links::EndpointMark;
pub use routes::{RouteMark, CONTAINER_DEFAULT_METRIC, CONTAINER_DEFAULT_METRIC6};

#[cfg(test)]
mod tests;
