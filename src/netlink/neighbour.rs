//! The neighbour tables (IPv4's ARP, IPv6's NDP), read by one rtnetlink dump.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::AddressFamily;

use super::{nl, Netlink, NetlinkError};
use crate::topology::Mac;

/// A resolved neighbour: `address` is at `mac` on link `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub index: u32,
    pub address: IpAddr,
    pub mac: Mac,
}

/// The entry a message describes, if it is resolved: it has a link-layer
/// address and is not incomplete or failed (what `/proc/net/arp` shows with
/// flags other than 0x0).
pub fn resolved(message: &NeighbourMessage) -> Option<Neighbour> {
    let header = &message.header;
    if !matches!(header.family, AddressFamily::Inet | AddressFamily::Inet6)
        || matches!(
            header.state,
            NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None
        )
    {
        return None;
    }
    let mut address = None;
    let mut mac = None;
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                address = Some(IpAddr::V4(*a))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                address = Some(IpAddr::V6(*a))
            }
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(Mac)
            }
            _ => {}
        }
    }
    Some(Neighbour {
        index: header.ifindex,
        address: address?,
        mac: mac?,
    })
}

impl Netlink {
    /// Every resolved neighbour of the namespace, IPv4 and IPv6.
    pub async fn neighbours(&self) -> Result<Vec<Neighbour>, NetlinkError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let messages: Vec<NeighbourMessage> = self
                .handle
                .neighbours()
                .get()
                .set_address_family(family)
                .execute()
                .try_collect()
                .await
                .map_err(nl("list neighbours"))?;
            out.extend(messages.iter().filter_map(resolved));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(state: NeighbourState, mac: Option<Vec<u8>>) -> NeighbourMessage {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.ifindex = 7;
        message.header.state = state;
        message
            .attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                std::net::Ipv4Addr::new(192, 0, 2, 9),
            )));
        if let Some(mac) = mac {
            message
                .attributes
                .push(NeighbourAttribute::LinkLayerAddress(mac));
        }
        message
    }

    #[test]
    fn resolved_entries_carry_their_mac_and_unresolved_ones_do_not_count() {
        let mac = vec![2, 0, 0, 0, 0, 9];
        assert_eq!(
            resolved(&message(NeighbourState::Reachable, Some(mac.clone()))),
            Some(Neighbour {
                index: 7,
                address: IpAddr::from([192, 0, 2, 9]),
                mac: Mac([2, 0, 0, 0, 0, 9]),
            })
        );
        assert!(resolved(&message(NeighbourState::Stale, Some(mac.clone()))).is_some());
        assert_eq!(resolved(&message(NeighbourState::Incomplete, None)), None);
        assert_eq!(resolved(&message(NeighbourState::Failed, Some(mac))), None);
        assert_eq!(resolved(&message(NeighbourState::Reachable, None)), None);
    }
}
