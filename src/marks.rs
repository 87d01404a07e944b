//! The ownership policy: the one place that answers "is this ours, and of which
//! mesh?" for the observers (OVSDB rows, links, addresses, routes) and for the
//! settle step and the planner (what may be changed or removed).
//!
//! Objects are identified by marks, never by name alone, so a port added by hand
//! to `ovs0`, a foreign route, or another mesh's objects are never touched:
//! - OVS rows (Bridge when ovsmesh created it, Port, Interface) carry
//!   `external_ids` with the mesh name, the role and the role's identity keys;
//! - routes carry the route protocol [`ROUTE_PROTOCOL`];
//! - veth host ends carry an interface alias `ovsmesh:MESH/CONTAINER/IFNAME`;
//! - addresses count as owned when they sit on a device ovsmesh manages
//!   ([`AddressPolicy`]).
//!
//! This module is a leaf: it knows marks and rules, and is handed plain facts
//! (maps, names, numbers), so every rule is unit-tested without a host.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ipnet::Ipv4Net;
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
/// `external_ids` key on a bridge ovsmesh created: the host it was created for.
pub const HOST: &str = "ovsmesh-host";

/// Route protocol number on every route ovsmesh installs (`ip route … proto 79`).
/// Add `79 ovsmesh` to `/etc/iproute2/rt_protos.d/ovsmesh.conf` to see it by name.
pub const ROUTE_PROTOCOL: u8 = 79;

/// Start of every veth host end's alias.
const ALIAS_PREFIX: &str = "ovsmesh:";

/// What an owned OVS port is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Tunnel,
    Access,
    Gateway,
    Uplink,
    Underlay,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Tunnel => "tunnel",
            Role::Access => "access",
            Role::Gateway => "gateway",
            Role::Uplink => "uplink",
            Role::Underlay => "underlay",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Role::Tunnel,
            Role::Access,
            Role::Gateway,
            Role::Uplink,
            Role::Underlay,
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
        };
        Some((id, role))
    }

    /// How this mesh holds a bridge: owned by its mark, adopted when the
    /// topology names it (`managed`), otherwise not at all.
    pub fn bridge_hold(
        &self,
        name: &str,
        ids: &BTreeMap<String, String>,
        managed: &[&str],
    ) -> Option<BridgeHold> {
        if self.owner(ids) == Owner::Us {
            Some(BridgeHold::Owned)
        } else if managed.contains(&name) {
            Some(BridgeHold::Adopted)
        } else {
            None
        }
    }

    // --- links ----------------------------------------------------------

    /// The alias of a veth host end this mesh makes.
    pub fn veth_alias(&self, container: &str, ifname: &str) -> String {
        format!("{ALIAS_PREFIX}{}/{container}/{ifname}", self.mesh)
    }

    /// The (container, ifname) a link's alias says it is, if it is this mesh's veth.
    pub fn veth_identity(&self, alias: Option<&str>) -> Option<(String, String)> {
        let rest = alias?
            .strip_prefix(ALIAS_PREFIX)?
            .strip_prefix(self.mesh)?
            .strip_prefix('/')?;
        let (container, ifname) = rest.split_once('/')?;
        Some((container.to_string(), ifname.to_string()))
    }

    /// Whether a link with `alias` is this mesh's host end of `container`'s `ifname`.
    pub fn owns_veth(&self, alias: Option<&str>, container: &str, ifname: &str) -> bool {
        alias == Some(self.veth_alias(container, ifname).as_str())
    }

    // --- addresses ------------------------------------------------------

    /// Which host addresses are this mesh's: every address on the devices it
    /// manages (the overlay and underlay bridges, the gateway ports, and every
    /// device the topology puts an address on).
    pub fn address_policy(&self, devices: &DeviceFacts) -> AddressPolicy {
        let mut owned: BTreeSet<String> = devices
            .topology_addresses
            .iter()
            .map(|(dev, _)| dev.clone())
            .collect();
        owned.insert(devices.overlay_bridge.clone());
        owned.insert(devices.underlay_bridge.clone());
        owned.extend(devices.gateway_ports.iter().cloned());
        AddressPolicy { owned }
    }

    // --- routes ---------------------------------------------------------

    /// The marks on every route this mesh installs.
    pub fn route_mark(&self) -> RouteMark {
        RouteMark {
            protocol: ROUTE_PROTOCOL,
        }
    }

    /// Whether a route of the main table is this mesh's.
    pub fn owns_route(&self, protocol: u8) -> bool {
        protocol == ROUTE_PROTOCOL
    }
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

/// What becomes of a bridge no longer wanted: removed only if this mesh owns it
/// and it holds no port of anyone else; an adopted bridge always stays.
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

/// The marks a route carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMark {
    pub protocol: u8,
}

/// Facts about a host's devices that address ownership depends on.
#[derive(Debug, Clone, Default)]
pub struct DeviceFacts {
    pub overlay_bridge: String,
    pub underlay_bridge: String,
    /// Internal ports carrying VLAN gateways: this mesh's in OVS, or about to be.
    pub gateway_ports: BTreeSet<String>,
    /// (device, address) pairs the topology puts on this host.
    pub topology_addresses: Vec<(String, Ipv4Net)>,
}

/// Which IPv4 addresses on host devices are a mesh's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    owned: BTreeSet<String>,
}

impl AddressPolicy {
    /// Whether `address` on device `dev` is the mesh's.
    pub fn is_ours(&self, dev: &str, _address: Ipv4Net) -> bool {
        self.owned.contains(dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rows_are_ours_only_with_our_mesh_mark() {
        let policy = Policy::new("m1");
        assert_eq!(policy.owner(&ids(&[(MESH, "m1")])), Owner::Us);
        assert_eq!(
            policy.owner(&ids(&[(MESH, "m2")])),
            Owner::Mesh("m2".into())
        );
        assert_eq!(policy.owner(&ids(&[])), Owner::Nobody);
        let marks = policy.port_marks(Role::Tunnel, &[(PEER, "b")]);
        assert_eq!(
            policy.port_identity("ovs0", &marks),
            Some((
                PortId::Tunnel {
                    bridge: "ovs0".into(),
                    peer: "b".into()
                },
                Role::Tunnel
            ))
        );
        assert_eq!(Policy::new("m2").port_identity("ovs0", &marks), None);
        // Incomplete marks identify nothing.
        let partial = policy.port_marks(Role::Access, &[(CONTAINER, "c")]);
        assert_eq!(policy.port_identity("ovs0", &partial), None);
    }

    #[test]
    fn bridges_are_owned_by_mark_adopted_by_name() {
        let policy = Policy::new("m1");
        let managed = ["ovs0"];
        assert_eq!(
            policy.bridge_hold("x", &policy.bridge_marks("h"), &managed),
            Some(BridgeHold::Owned)
        );
        assert_eq!(
            policy.bridge_hold("ovs0", &ids(&[]), &managed),
            Some(BridgeHold::Adopted)
        );
        assert_eq!(policy.bridge_hold("other", &ids(&[]), &managed), None);
        assert_eq!(bridge_removal(true, &[]), Removal::Remove);
        assert_eq!(bridge_removal(false, &[]), Removal::Leave);
        assert!(matches!(
            bridge_removal(true, &["handmade".into()]),
            Removal::Keep { holders, .. } if holders == ["handmade"]
        ));
    }

    #[test]
    fn veth_aliases_name_mesh_container_and_interface() {
        let policy = Policy::new("m1");
        let alias = policy.veth_alias("c1", "eth1");
        assert_eq!(alias, "ovsmesh:m1/c1/eth1");
        assert_eq!(
            policy.veth_identity(Some(&alias)),
            Some(("c1".into(), "eth1".into()))
        );
        assert!(policy.owns_veth(Some(&alias), "c1", "eth1"));
        assert!(!policy.owns_veth(Some(&alias), "c1", "eth2"));
        assert_eq!(Policy::new("m").veth_identity(Some(&alias)), None);
        assert_eq!(Policy::new("m1/c1").veth_identity(Some(&alias)), None);
        assert_eq!(policy.veth_identity(None), None);
    }
}
