//! The MTU budget of a path.
//!
//! On the userspace datapath an oversized frame is not fragmented: ping works and
//! TCP stalls. So every container interface gets an MTU that fits inside the
//! encapsulation, and a configured MTU above the budget is a validation error.
//!
//! budget = underlay MTU − overhead, where the overhead of a tunnel is the outer
//! IPv4 header (20) + the encapsulation header (GRE 4, +4 with a key — ovsmesh
//! always sets one; VXLAN 16 and Geneve 16 including UDP) + the inner Ethernet
//! header (14) + 4 when the tunnel carries VLAN tags. Direct routing and the
//! uplink trunk carry no encapsulation.

use super::raw::Encap;

const OUTER_IPV4: u32 = 20;
const INNER_ETHERNET: u32 = 14;
const VLAN_TAG: u32 = 4;

/// Bytes of encapsulation header, GRE counted with its key.
pub fn encap_header(encap: Encap) -> u32 {
    match encap {
        Encap::Gre => 4 + 4,
        Encap::Vxlan => 8 + 8,
        Encap::Geneve => 8 + 8,
    }
}

/// Bytes a tunnel adds around a container's IP packet.
pub fn tunnel_overhead(encap: Encap, carries_vlan_tags: bool) -> u32 {
    OUTER_IPV4 + encap_header(encap) + INNER_ETHERNET + if carries_vlan_tags { VLAN_TAG } else { 0 }
}

/// The largest container MTU a path allows.
pub fn budget(underlay_mtu: u32, tunnel: Option<(Encap, bool)>) -> u32 {
    match tunnel {
        Some((encap, tagged)) => underlay_mtu.saturating_sub(tunnel_overhead(encap, tagged)),
        None => underlay_mtu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_with_key_on_a_vlan_trunk_costs_46() {
        assert_eq!(tunnel_overhead(Encap::Gre, true), 46);
        assert_eq!(budget(1500, Some((Encap::Gre, true))), 1454);
        assert_eq!(budget(1500, Some((Encap::Gre, false))), 1458);
        assert_eq!(budget(1500, Some((Encap::Vxlan, true))), 1446);
        assert_eq!(budget(1500, Some((Encap::Geneve, false))), 1450);
        assert_eq!(budget(9000, None), 9000);
    }
}
