//! How ovsmesh recognises what it owns on a host.
//!
//! Objects are identified by marks, never by name alone, so a port added by hand
//! to `ovs0`, a foreign route, or another mesh's objects are never touched:
//! - OVS rows (Bridge when ovsmesh created it, Port, Interface) carry
//!   `external_ids` with the mesh name, the role and the role's identity keys;
//! - routes carry the route protocol [`ROUTE_PROTOCOL`];
//! - veth host ends carry an interface alias `ovsmesh:MESH/CONTAINER/IFNAME`;
//! - addresses count as owned when they sit on an owned interface.

use std::fmt;

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

/// Route protocol number on every route ovsmesh installs (`ip route … proto 79`).
/// Add `79 ovsmesh` to `/etc/iproute2/rt_protos.d/ovsmesh.conf` to see it by name.
pub const ROUTE_PROTOCOL: u8 = 79;

/// Interface alias of a veth host end.
pub fn veth_alias(mesh: &str, container: &str, ifname: &str) -> String {
    format!("ovsmesh:{mesh}/{container}/{ifname}")
}

/// Whether an interface alias marks a veth host end of `mesh` (see [`veth_alias`]).
pub fn is_veth_alias_of(alias: &str, mesh: &str) -> bool {
    alias
        .strip_prefix("ovsmesh:")
        .and_then(|rest| rest.strip_prefix(mesh))
        .is_some_and(|rest| rest.starts_with('/'))
}

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
