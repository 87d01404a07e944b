//! Deterministic names and MACs for what ovsmesh creates.
//!
//! Linux limits interface names to 15 bytes and OVS indexes port names globally
//! across bridges, so names are derived, not typed by users: a role prefix, a
//! readable stem and a stable hash of the object's identity (which includes the
//! mesh, so two meshes on one host never collide). Access ports also carry an
//! incarnation character: a re-plumbed container gets a fresh host-side name,
//! because on the userspace datapath a veth recreated under its old name while
//! its Port row stays passes no traffic.
//!
//! The default MAC of a container interface is the first six bytes of
//! SHA-256(`MESH/CONTAINER/IFNAME`), with the locally-administered bit set and
//! the multicast bit cleared.

use sha2::{Digest, Sha256};

use super::model::Mac;

/// Longest Linux interface name in bytes (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// Characters used for the access-port incarnation, in order.
const INCARNATIONS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Why a name cannot be a Linux interface / OVS port name, or `None` if it can.
pub fn ifname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("an interface name cannot be empty".into());
    }
    if name.len() > MAX_IFNAME {
        return Some(format!(
            "{name:?} is {} bytes; interface names are at most {MAX_IFNAME}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Some(format!("{name:?} is not a valid interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || *c == '/' || *c == ':' || c.is_control())
    {
        return Some(format!(
            "{name:?} cannot be an interface name: it contains {c:?}"
        ));
    }
    None
}

fn digest(identity: &str) -> [u8; 32] {
    Sha256::digest(identity.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Keep the characters that read well in an interface name, at most `max` of them.
fn stem(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .take(max)
        .collect()
}

/// `PREFIX STEM - HASH6`, at most 15 - `reserve` bytes.
fn derived(prefix: &str, readable: &str, identity: &str, reserve: usize) -> String {
    let hash = hex(&digest(identity)[..3]);
    let room = MAX_IFNAME - reserve - prefix.len() - 1 - hash.len();
    format!("{prefix}{}-{hash}", stem(readable, room))
}

/// Tunnel port on `bridge` to `peer`: the same name on every host, since names
/// only need to be unique per host.
pub fn tunnel_port(mesh: &str, bridge_role: BridgeRole, bridge: &str, peer: &str) -> String {
    let prefix = match bridge_role {
        BridgeRole::Vlan => "tv",
        BridgeRole::Overlay => "to",
    };
    derived(prefix, peer, &format!("{mesh}/tunnel/{bridge}/{peer}"), 0)
}

/// Internal port carrying a VLAN network's gateway address.
pub fn gateway_port(mesh: &str, network: &str) -> String {
    derived("g", network, &format!("{mesh}/gateway/{network}"), 0)
}

/// Host end of a container interface's veth, first incarnation.
pub fn access_port(mesh: &str, container: &str, ifname: &str) -> String {
    access_port_incarnation(mesh, container, ifname, 0)
}

/// Host end of a container interface's veth, incarnation `n` (wraps after 36).
pub fn access_port_incarnation(mesh: &str, container: &str, ifname: &str, n: usize) -> String {
    let base = derived(
        "v",
        container,
        &format!("{mesh}/access/{container}/{ifname}"),
        1,
    );
    let c = INCARNATIONS[n % INCARNATIONS.len()] as char;
    format!("{base}{c}")
}

/// The incarnation after the one in `name`, given the access port's base.
pub fn next_access_incarnation(mesh: &str, container: &str, ifname: &str, current: &str) -> String {
    let n = (0..INCARNATIONS.len())
        .find(|&n| access_port_incarnation(mesh, container, ifname, n) == current)
        .map_or(0, |n| n + 1);
    access_port_incarnation(mesh, container, ifname, n)
}

/// Whether `name` is some incarnation of this access port.
pub fn is_access_incarnation(mesh: &str, container: &str, ifname: &str, name: &str) -> bool {
    let first = access_port(mesh, container, ifname);
    // Bytes, not `str` slices: an observed name is anyone's text, and cutting its
    // last byte off a multi-byte character would panic.
    let (name, first) = (name.as_bytes(), first.as_bytes());
    name.len() == first.len() && name[..name.len() - 1] == first[..first.len() - 1]
}

/// The two ends of a Docker endpoint's veth, made in the host's namespace: the
/// host end (the OVS port) and the container end Docker moves into the
/// container and renames. Derived from the endpoint id, so any process finds them.
pub fn endpoint_ends(mesh: &str, endpoint: &str) -> (String, String) {
    let hash = hex(&digest(&format!("{mesh}/endpoint/{endpoint}"))[..6]);
    (format!("ve{hash}"), format!("vc{hash}"))
}

/// The MAC of a pooled Docker endpoint: the same address on the same network
/// gets the same MAC (a `docker restart` keeps both).
pub fn endpoint_mac(mesh: &str, network: &str, address: std::net::Ipv4Addr) -> Mac {
    default_mac(mesh, &format!("@{network}"), &address.to_string())
}

/// Which of ovsmesh's two container bridges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeRole {
    Vlan,
    Overlay,
}

/// Default MAC of a container interface (documented in the module header).
pub fn default_mac(mesh: &str, container: &str, ifname: &str) -> Mac {
    let hash = digest(&format!("{mesh}/{container}/{ifname}"));
    let mut bytes = [0u8; 6];
    bytes.copy_from_slice(&hash[..6]);
    bytes[0] = (bytes[0] & 0xfe) | 0x02;
    Mac(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_fit_and_are_stable() {
        let long = "a-very-long-container-name-indeed";
        for name in [
            tunnel_port("lab", BridgeRole::Vlan, "ovs0", long),
            gateway_port("lab", long),
            access_port("lab", long, "eth1"),
            access_port_incarnation("lab", long, "eth1", 35),
        ] {
            assert!(name.len() <= MAX_IFNAME, "{name} too long");
            assert!(ifname_problem(&name).is_none(), "{name}");
        }
        assert_eq!(
            tunnel_port("lab", BridgeRole::Vlan, "ovs0", "node2"),
            tunnel_port("lab", BridgeRole::Vlan, "ovs0", "node2")
        );
        assert_ne!(
            tunnel_port("lab", BridgeRole::Vlan, "ovs0", "node2"),
            tunnel_port("lab", BridgeRole::Overlay, "obr0", "node2")
        );
        assert_ne!(
            tunnel_port("lab", BridgeRole::Vlan, "ovs0", "node2"),
            tunnel_port("lab2", BridgeRole::Vlan, "ovs0", "node2")
        );
    }

    #[test]
    fn incarnations_cycle_through_fresh_names() {
        let first = access_port("lab", "test1", "eth1");
        let second = next_access_incarnation("lab", "test1", "eth1", &first);
        let third = next_access_incarnation("lab", "test1", "eth1", &second);
        assert_ne!(first, second);
        assert_ne!(second, third);
        assert!(is_access_incarnation("lab", "test1", "eth1", &third));
        assert!(!is_access_incarnation("lab", "test2", "eth1", &third));
        assert!(first.starts_with("vtest1-"), "{first}");
    }

    #[test]
    fn a_foreign_non_ascii_port_name_is_no_incarnation() {
        let first = access_port("lab", "test1", "eth1");
        // Same length in bytes, ending inside a two-byte character.
        let foreign = format!("{}é", &first[..first.len() - 2]);
        assert_eq!(foreign.len(), first.len());
        assert!(!is_access_incarnation("lab", "test1", "eth1", &foreign));
        let next = next_access_incarnation("lab", "test1", "eth1", &foreign);
        assert_eq!(next, first);
    }

    #[test]
    fn default_mac_is_local_unicast_and_stable() {
        let mac = default_mac("lab", "test1", "eth1");
        assert_eq!(mac.0[0] & 0x03, 0x02);
        assert_eq!(mac, default_mac("lab", "test1", "eth1"));
        assert_ne!(mac, default_mac("lab", "test1", "eth2"));
    }

    #[test]
    fn bad_interface_names_are_explained() {
        assert!(ifname_problem("eth1").is_none());
        assert!(ifname_problem("this-name-is-too-long")
            .unwrap()
            .contains("at most 15"));
        assert!(ifname_problem("a b").is_some());
        assert!(ifname_problem("a/b").is_some());
        assert!(ifname_problem("").is_some());
    }
}
