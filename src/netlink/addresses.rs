//! Addresses and routes of both families: listed with the protocol that added
//! them (ovsmesh's marks, see `marks`), added without DAD, replaced, prepended
//! and deleted. Split from `netlink` by what they touch; the same socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressProtocol,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use super::counters::wrote;
use super::{deleted, nl, Address, Netlink, NetlinkError, Route};

impl Netlink {
    /// Addresses of both families, with the index of their link (IPv6
    /// link-local ones included: callers that manage addresses skip them, see
    /// [`is_link_local`]).
    pub async fn addresses(&self) -> Result<Vec<(u32, IpNet)>, NetlinkError> {
        Ok(self
            .addresses_marked()
            .await?
            .into_iter()
            .map(|a| (a.index, a.address))
            .collect())
    }

    /// Addresses of both families, with their link and the protocol that added them.
    pub async fn addresses_marked(&self) -> Result<Vec<Address>, NetlinkError> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl("list addresses"))?;
        Ok(messages
            .iter()
            .filter_map(|m| {
                let protocol = m
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        AddressAttribute::Protocol(p) => Some(u8::from(*p)),
                        _ => None,
                    })
                    .unwrap_or(0);
                Some(Address {
                    index: m.header.index,
                    address: IpNet::new(address_of(m)?, m.header.prefix_len).ok()?,
                    protocol,
                })
            })
            .collect())
    }

    /// [`Self::add_address`] with the protocol that adds it (`IFA_PROTO`): a
    /// mark a kernel before 6.1 ignores.
    pub async fn add_address_marked(
        &self,
        index: u32,
        address: IpNet,
        protocol: u8,
    ) -> Result<(), NetlinkError> {
        self.add_address_with(index, address, Some(protocol)).await
    }

    /// Add (or refresh) an address. An IPv6 address is added without duplicate
    /// address detection (`IFA_F_NODAD`, as netavark does): ovsmesh's plan
    /// already rules out duplicates, and DAD would leave the address tentative
    /// — unusable — for a second or more after every (re)plumb.
    pub async fn add_address(&self, index: u32, address: IpNet) -> Result<(), NetlinkError> {
        self.add_address_with(index, address, None).await
    }

    async fn add_address_with(
        &self,
        index: u32,
        address: IpNet,
        protocol: Option<u8>,
    ) -> Result<(), NetlinkError> {
        wrote();
        let mut request = self
            .handle
            .address()
            .add(index, address.addr(), address.prefix_len())
            .replace();
        let message = request.message_mut();
        if let IpNet::V6(_) = address {
            message.header.flags |= AddressHeaderFlags::Nodad;
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        if let Some(protocol) = protocol {
            message
                .attributes
                .push(AddressAttribute::Protocol(AddressProtocol::from(protocol)));
        }
        request
            .execute()
            .await
            .map_err(nl(format!("add address {address} to link {index}")))
    }

    pub async fn delete_address(&self, index: u32, address: IpNet) -> Result<(), NetlinkError> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(nl("list addresses"))?;
        for message in messages {
            let matches = message.header.prefix_len == address.prefix_len()
                && address_of(&message) == Some(address.addr());
            if matches {
                wrote();
                deleted(self.handle.address().del(message).execute().await)
                    .map_err(nl(format!("delete address {address} from link {index}")))?;
            }
        }
        Ok(())
    }

    /// Routes of the main table, both families. Route-cache exceptions (PMTU,
    /// redirects: `RTM_F_CLONED`) are not routes: a kernel answering a legacy
    /// dump lists them too (Debian 12's 6.1 does), and a PMTU exception inside
    /// a container is not drift. The kernel's own routes (`proto kernel`: each
    /// address's prefix route, IPv6's fe80::/64) are listed; they have no next hop.
    pub async fn routes(&self) -> Result<Vec<Route>, NetlinkError> {
        let mut out = Vec::new();
        for request in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            let messages: Vec<RouteMessage> = self
                .handle
                .route()
                .get(request)
                .execute()
                .try_collect()
                .await
                .map_err(nl("list routes"))?;
            out.extend(
                messages
                    .iter()
                    .filter(|m| {
                        m.header.table == 254
                            && matches!(
                                m.header.address_family,
                                AddressFamily::Inet | AddressFamily::Inet6
                            )
                    })
                    .filter(|m| !m.header.flags.contains(RouteFlags::Cloned))
                    .filter_map(route_of),
            );
        }
        Ok(out)
    }

    fn route_message(route: &Route, with_flags: bool) -> RouteMessage {
        let builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(route.to.network(), route.to.prefix_len())
            .expect("one family")
            .protocol(RouteProtocol::from(route.protocol))
            .priority(route.metric);
        let mut builder = match route.via {
            Some(via) => builder.gateway(via).expect("the destination's family"),
            None => builder,
        };
        if let Some(oif) = route.oif {
            builder = builder.output_interface(oif);
        }
        if route.onlink && with_flags {
            builder = builder.onlink();
        }
        builder.build()
    }

    /// Add or replace the route with this destination and metric.
    pub async fn replace_route(&self, route: &Route) -> Result<(), NetlinkError> {
        wrote();
        self.handle
            .route()
            .add(Self::route_message(route, true))
            .replace()
            .execute()
            .await
            .map_err(nl(format!("add route {}", route.to)))
    }

    /// Add a route first among those with its destination and metric (`ip
    /// route prepend`): the kernel uses the first of equals, and none of them is
    /// replaced. The very same route already there is fine.
    pub async fn prepend_route(&self, route: &Route) -> Result<(), NetlinkError> {
        use rtnetlink::packet_core::{
            NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST,
        };
        use rtnetlink::packet_route::RouteNetlinkMessage;
        wrote();
        let mut request = NetlinkMessage::from(RouteNetlinkMessage::NewRoute(Self::route_message(
            route, true,
        )));
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
        let what = || format!("add route {} metric {}", route.to, route.metric);
        let mut handle = self.handle.clone();
        let mut replies = handle.request(request).map_err(nl(what()))?;
        while let Some(reply) = futures::StreamExt::next(&mut replies).await {
            if let NetlinkPayload::Error(error) = reply.payload {
                // 0: the acknowledgement; EEXIST: this very route is there.
                if [0, -libc::EEXIST].contains(&error.raw_code()) {
                    return Ok(());
                }
                return Err(nl(what())(rtnetlink::Error::NetlinkError(error)));
            }
        }
        Ok(())
    }

    /// Add a route; fails (EEXIST) if a route with this destination and metric
    /// exists, whoever's it is: never overwrites.
    pub async fn add_route(&self, route: &Route) -> Result<(), NetlinkError> {
        wrote();
        self.handle
            .route()
            .add(Self::route_message(route, true))
            .execute()
            .await
            .map_err(nl(format!(
                "add route {} metric {}",
                route.to, route.metric
            )))
    }

    pub async fn delete_route(&self, route: &Route) -> Result<(), NetlinkError> {
        wrote();
        let message = Self::route_message(route, false);
        deleted(self.handle.route().del(message).execute().await)
            .map_err(nl(format!("delete route {}", route.to)))
    }
}

fn route_of(message: &RouteMessage) -> Option<Route> {
    let v6 = message.header.address_family == AddressFamily::Inet6;
    let mut to: IpAddr = if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let mut via = None;
    let mut oif = None;
    let mut metric = 0;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => to = (*ip).into(),
            RouteAttribute::Destination(RouteAddress::Inet6(ip)) => to = (*ip).into(),
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => via = Some((*ip).into()),
            RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => via = Some((*ip).into()),
            RouteAttribute::Oif(index) => oif = Some(*index),
            RouteAttribute::Priority(priority) => metric = *priority,
            _ => {}
        }
    }
    Some(Route {
        to: IpNet::new(to, message.header.destination_prefix_length).ok()?,
        via,
        oif,
        onlink: message.header.flags.contains(RouteFlags::Onlink),
        protocol: u8::from(message.header.protocol),
        metric,
    })
}

/// The address an address message is about (`IFA_LOCAL`, else `IFA_ADDRESS`).
fn address_of(message: &AddressMessage) -> Option<IpAddr> {
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    local.or_else(|| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })
}

/// An IPv6 link-local address (fe80::/10): the kernel's own on every IPv6
/// link (neighbour discovery needs it), never a topology's.
pub fn is_link_local(address: &IpNet) -> bool {
    match address {
        IpNet::V4(_) => false,
        IpNet::V6(v6) => (v6.addr().segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Route protocol of routes learned from IPv6 router advertisements (`proto ra`).
pub const RTPROT_RA: u8 = 9;
