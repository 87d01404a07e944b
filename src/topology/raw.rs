//! The topology file exactly as written.
//!
//! These types mirror the TOML keys one to one; serde checks types and unknown
//! keys, schemars derives `schemas/topology.schema.json` from them. Nothing here
//! is cross-checked yet: `resolve` turns these into a validated `Topology`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole topology file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ovsmesh topology")]
pub struct RawTopology {
    pub mesh: RawMesh,
    #[serde(default)]
    pub hosts: BTreeMap<String, RawHost>,
    #[serde(default)]
    pub networks: BTreeMap<String, RawNetwork>,
    #[serde(default)]
    pub containers: BTreeMap<String, RawContainer>,
}

/// Keys allowed at the top level of a topology file.
pub const TOP_LEVEL_KEYS: &[&str] = &["mesh", "hosts", "networks", "containers"];

/// Tunnel encapsulation between hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encap {
    #[default]
    /// GRE over an IPv4 underlay (OVS `gre` is IPv4 only).
    Gre,
    /// GRE over an IPv6 underlay (OVS `ip6gre`).
    Ip6gre,
    Vxlan,
    Geneve,
}

impl Encap {
    pub fn as_str(self) -> &'static str {
        match self {
            Encap::Gre => "gre",
            Encap::Ip6gre => "ip6gre",
            Encap::Vxlan => "vxlan",
            Encap::Geneve => "geneve",
        }
    }

    /// GRE, over either family: IP protocol 47, no UDP port.
    pub fn is_gre(self) -> bool {
        matches!(self, Encap::Gre | Encap::Ip6gre)
    }
}

/// An IP family: the underlay's (which family the tunnels run over), a
/// setting's, a firewall rule's.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Deserialize,
    Serialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    #[default]
    Ipv4,
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(address: std::net::IpAddr) -> Self {
        match address {
            std::net::IpAddr::V4(_) => Family::Ipv4,
            std::net::IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// `ipv4` / `ipv6`: the word in settings' names (`net.ipv6.conf`) and the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    /// `IPv4` / `IPv6`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }

    pub fn is_ipv4(&self) -> bool {
        *self == Family::Ipv4
    }
}

/// How VLAN segments on the VLAN bridge reach other hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VlanTransport {
    /// Tunnels to every peer sharing a VLAN, trunking the shared VLANs.
    #[default]
    Tunnel,
    /// Each host's `uplink_nic` is a VLAN trunk port (needs a trunking switch).
    Uplink,
}

/// Open vSwitch datapath of a host's bridges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Datapath {
    /// The kernel datapath.
    #[default]
    System,
    /// The userspace datapath.
    Netdev,
}

impl Datapath {
    pub fn as_str(self) -> &'static str {
        match self {
            Datapath::System => "system",
            Datapath::Netdev => "netdev",
        }
    }
}

/// What happens to a network's traffic to addresses outside the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    /// Not translated: it reaches only what routes back to the network (the default).
    #[default]
    None,
    /// Masqueraded to the routing host's address on the outgoing interface; traffic
    /// to the mesh's own subnets keeps its source address.
    Nat,
}

/// How the routed network carries traffic between hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoutedMode {
    /// A tunnel mesh on the overlay bridge; routes via peers' gateways, onlink.
    #[default]
    Tunnel,
    /// No encapsulation: routes via peers' underlay addresses.
    Direct,
}

fn default_vlan_key() -> u64 {
    1001
}
fn default_overlay_key() -> u64 {
    1002
}
fn default_mtu() -> u32 {
    1500
}
fn default_vlan_bridge() -> String {
    "ovs0".into()
}
fn default_overlay_bridge() -> String {
    "obr0".into()
}
fn default_underlay_bridge() -> String {
    "br-phy".into()
}
fn default_true() -> bool {
    true
}

/// `[mesh]`: settings shared by every host.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMesh {
    /// Namespaces everything ovsmesh owns on a host.
    pub name: String,
    /// Tunnel type; `gre` needs an IPv4 underlay, `ip6gre` an IPv6 one.
    #[serde(default)]
    pub encap: Encap,
    /// The family of the underlay the tunnels run over: `ipv4` (each host's
    /// `underlay_address`, the default) or `ipv6` (each host's `underlay_address6`).
    #[serde(default)]
    pub underlay: Family,
    #[serde(default)]
    pub vlan_transport: VlanTransport,
    /// Tunnel key (GRE) or VNI (VXLAN, Geneve) of the VLAN bridge's tunnels.
    #[serde(default = "default_vlan_key")]
    pub vlan_tunnel_key: u64,
    /// Tunnel key or VNI of the overlay bridge's tunnels.
    #[serde(default = "default_overlay_key")]
    pub overlay_tunnel_key: u64,
    /// Underlay MTU; hosts may override.
    #[serde(default = "default_mtu")]
    pub underlay_mtu: u32,
    #[serde(default = "default_vlan_bridge")]
    pub vlan_bridge: String,
    #[serde(default = "default_overlay_bridge")]
    pub overlay_bridge: String,
    /// Bridge that takes the underlay address on netdev hosts.
    #[serde(default = "default_underlay_bridge")]
    pub underlay_bridge: String,
    /// BFD on tunnel interfaces.
    #[serde(default)]
    pub bfd: bool,
    /// UDP destination port of VXLAN or Geneve tunnels (default: the protocol's own,
    /// 4789 or 6081); a port of its own keeps ovsmesh off the kernel tunnel device
    /// Docker Swarm or flannel use. Not for GRE.
    #[schemars(range(min = 1, max = 65535))]
    pub dst_port: Option<i64>,
    /// Accept rules in the host firewall for forwarding between the mesh's own routing
    /// interfaces (Docker's FORWARD policy is DROP); `false` leaves the firewall to you.
    #[serde(default = "default_true")]
    pub manage_firewall: bool,
}

/// A static route: `{ to = "CIDR", via = "ADDRESS" }`, IPv4 or IPv6 (both the same family).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub to: String,
    pub via: String,
}

/// `[hosts.NAME]`: one machine running Open vSwitch.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// This host's IPv4 underlay address, `ADDRESS/PREFIX`: the tunnel endpoint of
    /// an IPv4 underlay (required then).
    pub underlay_address: Option<String>,
    /// This host's IPv6 underlay address, `ADDRESS/PREFIX`: the tunnel endpoint when
    /// `[mesh] underlay = "ipv6"` (required then).
    pub underlay_address6: Option<String>,
    /// OVSDB remote: `unix:PATH` or `tcp:IP:PORT` (default `unix:/var/run/openvswitch/db.sock`).
    pub ovsdb: Option<String>,
    #[serde(default)]
    pub datapath: Datapath,
    /// Required with netdev: becomes a port of the underlay bridge, which takes the underlay address.
    pub underlay_nic: Option<String>,
    /// Required on hosts with VLAN members when `vlan_transport = "uplink"`.
    pub uplink_nic: Option<String>,
    pub underlay_mtu: Option<u32>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

/// `[networks.NAME]`: a VLAN segment or the routed overlay.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RawNetwork {
    Vlan(RawVlanNetwork),
    Routed(RawRoutedNetwork),
}

/// A VLAN segment on the VLAN bridge.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVlanNetwork {
    /// 802.1Q tag, 1..4094.
    pub vlan: i64,
    /// Optional; members must be inside; allows bare member addresses.
    pub subnet: Option<String>,
    pub gateway: Option<RawVlanGateway>,
    /// The IPv6 subnet; members' `address6` must be inside; allows bare `address6` values.
    pub subnet6: Option<String>,
    /// The IPv6 gateway: on an ovsmesh host, or an external router's address.
    pub gateway6: Option<RawVlanGateway>,
    /// `"nat"`: IPv4 traffic to outside the mesh leaves masqueraded by the gateway's
    /// host (needs a gateway on an ovsmesh host), IPv6 traffic leaves routed, never
    /// translated; default `"none"`.
    #[serde(default)]
    pub egress: Egress,
    /// Host name → the range that host's Docker containers started without `--ip` get
    /// addresses from (`docker run --network NAME`); a host with a pool takes part in
    /// the VLAN even with no container yet. Needs `subnet`; pools may not overlap.
    #[serde(default)]
    pub pools: BTreeMap<String, String>,
}

/// A VLAN network's gateway: on an ovsmesh host, or an external router's address.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "an address string or a table { host = \"NAME\", address = \"ADDRESS\" }"
)]
pub enum RawVlanGateway {
    External(String),
    Hosted(RawHostedGateway),
}

/// A gateway address ovsmesh puts on an internal port of the host's VLAN bridge.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHostedGateway {
    pub host: String,
    pub address: String,
}

/// The routed overlay: one container subnet per host.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoutedNetwork {
    #[serde(default)]
    pub mode: RoutedMode,
    /// Host name → that host's container subnet.
    #[serde(default)]
    pub subnets: BTreeMap<String, String>,
    /// Host name → gateway address; default: the first address of the host's subnet.
    #[serde(default)]
    pub gateways: BTreeMap<String, String>,
    /// Host name → that host's IPv6 container subnet (a /64 or longer).
    #[serde(default)]
    pub subnets6: BTreeMap<String, String>,
    /// Host name → IPv6 gateway address; default: the first address of the host's `subnets6`.
    #[serde(default)]
    pub gateways6: BTreeMap<String, String>,
    /// `"nat"`: IPv4 traffic to outside the mesh leaves each host masqueraded, IPv6
    /// traffic routed (never translated); default `"none"`.
    #[serde(default)]
    pub egress: Egress,
}

/// `[containers.NAME]`: a container and its interfaces.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawContainer {
    pub host: String,
    /// Docker container name or id (default: the key).
    pub docker: Option<String>,
    /// A named network namespace instead of a Docker container.
    pub netns: Option<String>,
    /// The container's one IPv4 default route.
    pub gateway: Option<String>,
    /// The container's one IPv6 default route.
    pub gateway6: Option<String>,
    /// Shorthand for one interface: its network.
    pub network: Option<String>,
    pub address: Option<String>,
    pub address6: Option<String>,
    pub ifname: Option<String>,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    pub routes: Option<Vec<RawRoute>>,
    /// Several interfaces; excludes the inline shorthand.
    pub interfaces: Option<Vec<RawInterface>>,
}

/// One interface of a container.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInterface {
    pub network: String,
    /// IPv4 `ADDRESS/PREFIX`, or a bare address when the network has a `subnet`.
    pub address: Option<String>,
    /// IPv6 `ADDRESS/PREFIX`, or a bare address when the network has a `subnet6`
    /// (an interface has `address`, `address6` or both).
    pub address6: Option<String>,
    /// Name inside the container, default `eth1`.
    pub ifname: Option<String>,
    /// Default: derived from SHA-256 of `mesh/container/ifname`.
    pub mac: Option<String>,
    /// Default: the MTU budget of the path.
    pub mtu: Option<u32>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}
