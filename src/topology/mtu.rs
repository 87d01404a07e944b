//! The MTU budget of a path.
//!
//! On the userspace datapath an oversized frame is not fragmented: ping works and
//! TCP stalls. So every container interface gets an MTU that fits inside the
//! encapsulation, and a configured MTU above the budget is a validation error.
//!
//! budget = underlay MTU − overhead, where the overhead of a tunnel is the outer
//! IP header (IPv4 20, IPv6 40: the underlay's family) + the encapsulation header (GRE 4, +4 with a key — ovsmesh
//! always sets one; VXLAN 16 and Geneve 16 including UDP) + the inner Ethernet
//! header (14) + 4 when the tunnel carries VLAN tags. Direct routing and the
//! uplink trunk carry no encapsulation.

use super::raw::{Encap, Family};

const OUTER_IPV4: u32 = 20;
const OUTER_IPV6: u32 = 40;
/// The smallest MTU IPv6 works on (RFC 8200): Linux disables IPv6 on a smaller link.
pub const IPV6_MIN_MTU: u32 = 1280;
const INNER_ETHERNET: u32 = 14;
const VLAN_TAG: u32 = 4;

/// Bytes of encapsulation header, GRE counted with its key.
pub fn encap_header(encap: Encap) -> u32 {
    match encap {
        Encap::Gre | Encap::Ip6gre => 4 + 4,
        Encap::Vxlan => 8 + 8,
        Encap::Geneve => 8 + 8,
    }
}

/// A tunnel on a path: its encapsulation, the underlay's family, and whether
/// it carries VLAN tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    pub encap: Encap,
    pub underlay: Family,
    pub tagged: bool,
}

/// Bytes a tunnel adds around a container's IP packet.
pub fn tunnel_overhead(tunnel: Tunnel) -> u32 {
    let outer = match tunnel.underlay {
        Family::Ipv4 => OUTER_IPV4,
        Family::Ipv6 => OUTER_IPV6,
    };
    outer + encap_header(tunnel.encap) + INNER_ETHERNET + if tunnel.tagged { VLAN_TAG } else { 0 }
}

/// The largest container MTU a path allows.
pub fn budget(underlay_mtu: u32, tunnel: Option<Tunnel>) -> u32 {
    match tunnel {
        Some(tunnel) => underlay_mtu.saturating_sub(tunnel_overhead(tunnel)),
        None => underlay_mtu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over(encap: Encap, underlay: Family, tagged: bool) -> Option<Tunnel> {
        Some(Tunnel {
            encap,
            underlay,
            tagged,
        })
    }

    #[test]
    fn gre_with_key_on_a_vlan_trunk_costs_46() {
        assert_eq!(
            tunnel_overhead(over(Encap::Gre, Family::Ipv4, true).unwrap()),
            46
        );
        assert_eq!(budget(1500, over(Encap::Gre, Family::Ipv4, true)), 1454);
        assert_eq!(budget(1500, over(Encap::Gre, Family::Ipv4, false)), 1458);
        assert_eq!(budget(1500, over(Encap::Vxlan, Family::Ipv4, true)), 1446);
        assert_eq!(budget(1500, over(Encap::Geneve, Family::Ipv4, false)), 1450);
        assert_eq!(budget(9000, None), 9000);
    }

    #[test]
    fn an_ipv6_underlay_costs_20_bytes_more() {
        assert_eq!(budget(1500, over(Encap::Ip6gre, Family::Ipv6, true)), 1434);
        assert_eq!(budget(1500, over(Encap::Ip6gre, Family::Ipv6, false)), 1438);
        assert_eq!(budget(1500, over(Encap::Vxlan, Family::Ipv6, true)), 1426);
        assert_eq!(budget(1500, over(Encap::Geneve, Family::Ipv6, false)), 1430);
    }
}
