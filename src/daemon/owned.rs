//! Which notifications concern ovsmesh's own objects.
//!
//! A host running containers sees a steady stream of link, address and route
//! notifications, namespaces and container events that have nothing to do with
//! the mesh (Docker's veths, a VPN's routes, other containers). The daemon
//! wakes only for what the ownership marks (`marks`) and the topology make ours:
//! - links: a veth host end carrying this mesh's alias, or a device the host's
//!   desired state names (bridges and their internal ports, the underlay and
//!   uplink NICs, devices whose forwarding ovsmesh sets);
//! - addresses: on such a device, or an address the topology puts somewhere;
//! - routes: with ovsmesh's route protocol, or to a destination the topology
//!   routes (a foreign route taking over one of ours is drift too);
//! - named namespaces and Docker containers of this host's containers.
//!
//! A bridge's own device whose MTU the mesh does not set (no `mtu_request`)
//! gets its smallest port's MTU from ovs-vswitchd: a container's veth joining
//! or leaving changes it. A notification of such a device that differs from
//! its last one in the MTU only is no change of ours (`FloatingMtu`).

use std::collections::{BTreeSet, HashMap};
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::StreamExt;
use ipnet::IpNet;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use tokio::sync::{mpsc::UnboundedSender, watch};

use super::wake::{Trigger, WatchError};
use crate::marks;
use crate::state::HostState;
use crate::topology::{Runtime, Topology};

/// What of the host's netlink state is the mesh's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interest {
    mesh: String,
    devices: BTreeSet<String>,
    addresses: BTreeSet<IpAddr>,
    routes: BTreeSet<IpNet>,
    netns: BTreeSet<String>,
    docker: BTreeSet<String>,
    /// Bridges whose own device's MTU is left to ovs-vswitchd.
    floating_mtu: BTreeSet<String>,
}

impl Interest {
    /// From the topology and the host's desired state.
    pub fn new(topology: &Topology, host: &str, want: &HostState) -> Self {
        let mut devices: BTreeSet<String> = want.bridges.keys().cloned().collect();
        devices.extend(
            want.ports
                .values()
                .filter(|p| p.role != marks::Role::Access && p.role != marks::Role::Tunnel)
                .map(|p| p.name.clone()),
        );
        devices.extend(want.addresses.values().map(|a| a.dev.clone()));
        devices.extend(want.forwarding.keys().cloned());
        if let Some(host) = topology.hosts.get(host) {
            devices.extend(host.underlay_nic.iter().cloned());
            devices.extend(host.uplink_nic.iter().cloned());
        }
        let (mut netns, mut docker) = (BTreeSet::new(), BTreeSet::new());
        for iface in want.containers.values() {
            match &iface.runtime {
                Runtime::Netns(name) => netns.insert(name.clone()),
                Runtime::Docker(name) => docker.insert(name.clone()),
            };
        }
        let floating_mtu = want
            .bridges
            .iter()
            .filter(|(_, b)| b.mtu_request.is_none())
            .map(|(name, _)| name.clone())
            .collect();
        Self {
            mesh: topology.mesh.name.clone(),
            floating_mtu,
            devices,
            addresses: want.addresses.values().map(|a| a.address.addr()).collect(),
            routes: want.routes.values().map(|r| r.to).collect(),
            netns,
            docker,
        }
    }

    /// Whether a file in /run/netns is the namespace of one of this host's containers.
    pub fn netns(&self, name: &str) -> bool {
        self.netns.contains(name)
    }

    /// Whether a Docker container is one of this host's: the topology names it
    /// (`docker = "..."`) by its name, or by its id or a prefix of it.
    pub fn docker(&self, name: &str) -> bool {
        self.docker.contains(name.trim_start_matches('/'))
    }

    /// [`Self::docker`] for an event's container: its name or its full id.
    pub fn docker_event(&self, name: Option<&str>, id: Option<&str>) -> bool {
        name.is_some_and(|n| self.docker(n))
            || id.is_some_and(|id| {
                self.docker.iter().any(|r| {
                    !r.is_empty()
                        && r.bytes().all(|b| b.is_ascii_hexdigit())
                        && id.starts_with(r.as_str())
                })
            })
    }

    /// Whether a notification is about one of ours.
    pub fn concerns(&self, message: &RouteNetlinkMessage) -> bool {
        match message {
            RouteNetlinkMessage::NewLink(link) | RouteNetlinkMessage::DelLink(link) => {
                self.link(link)
            }
            RouteNetlinkMessage::NewAddress(address) | RouteNetlinkMessage::DelAddress(address) => {
                self.address(address)
            }
            RouteNetlinkMessage::NewRoute(route) | RouteNetlinkMessage::DelRoute(route) => {
                self.route(route)
            }
            _ => false,
        }
    }

    fn link(&self, link: &LinkMessage) -> bool {
        link.attributes.iter().any(|a| match a {
            LinkAttribute::IfName(name) => self.devices.contains(name),
            // Not a Docker endpoint's veth: the plugin makes, moves and removes it
            // (several link events per `docker run`, each a reconcile competing with
            // the container's start); its port's OVSDB change wakes the daemon, and a
            // veth gone without the plugin is let go at the next change or resync.
            LinkAttribute::IfAlias(alias) => marks::Policy::new(&self.mesh)
                .veth_identity(Some(alias))
                .is_some(),
            _ => false,
        })
    }

    /// Whether `link` is a bridge's own device whose MTU ovs-vswitchd sets.
    fn mtu_floats(&self, link: &LinkMessage) -> bool {
        link.attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::IfName(n) if self.floating_mtu.contains(n)))
    }

    fn address(&self, address: &AddressMessage) -> bool {
        let addresses: Vec<IpAddr> = address
            .attributes
            .iter()
            .filter_map(|a| match a {
                AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
            .collect();
        // The kernel's IPv6 link-local addresses come and go with links (DAD): never ours.
        let link_local = addresses
            .iter()
            .any(|ip| crate::netlink::is_link_local(&IpNet::from(*ip)));
        if link_local {
            return false;
        }
        let ours = addresses.iter().any(|ip| self.addresses.contains(ip));
        ours || interface_name(address.header.index).is_some_and(|n| self.devices.contains(&n))
    }

    fn route(&self, route: &RouteMessage) -> bool {
        let metric = route
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Priority(metric) => Some(*metric),
                _ => None,
            })
            .unwrap_or(0);
        if marks::Policy::new(&self.mesh).owns_route(u8::from(route.header.protocol), metric) {
            return true;
        }
        let to: IpAddr = route
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some((*ip).into()),
                RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some((*ip).into()),
                _ => None,
            })
            .unwrap_or(
                if route.header.address_family == rtnetlink::packet_route::AddressFamily::Inet6 {
                    Ipv6Addr::UNSPECIFIED.into()
                } else {
                    Ipv4Addr::UNSPECIFIED.into()
                },
            );
        IpNet::new(to, route.header.destination_prefix_length)
            .is_ok_and(|to| self.routes.contains(&to))
    }
}

/// The last notification of each link whose MTU floats, as far as the mesh
/// cares: flags, name, MAC, alias, controller.
#[derive(Debug, Default)]
struct FloatingMtu(HashMap<u32, (u32, Vec<LinkAttribute>)>);

impl FloatingMtu {
    /// Whether `link` (a link whose MTU floats) differs from its last
    /// notification in nothing but what the mesh does not care about (its MTU).
    fn unchanged(&mut self, link: &LinkMessage) -> bool {
        let kept = link
            .attributes
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    LinkAttribute::IfName(_)
                        | LinkAttribute::Address(_)
                        | LinkAttribute::IfAlias(_)
                        | LinkAttribute::Controller(_)
                )
            })
            .cloned()
            .collect();
        let shape = (link.header.flags.bits(), kept);
        self.0
            .insert(link.header.index, shape.clone())
            .is_some_and(|last| last == shape)
    }

    /// Whether a message about one of ours is worth a reconcile.
    fn matters(&mut self, interest: &Interest, message: &RouteNetlinkMessage) -> bool {
        match message {
            RouteNetlinkMessage::NewLink(link) if interest.mtu_floats(link) => {
                !self.unchanged(link)
            }
            RouteNetlinkMessage::DelLink(link) => {
                self.0.remove(&link.header.index);
                true
            }
            _ => true,
        }
    }
}

/// The name of an interface of this namespace.
fn interface_name(index: u32) -> Option<String> {
    let mut buffer = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer has IF_NAMESIZE bytes, as if_indextoname requires.
    let found = unsafe { libc::if_indextoname(index, buffer.as_mut_ptr()) };
    if found.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(buffer.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// Watch rtnetlink notifications in the daemon's namespace; only those about the
/// mesh's objects (as `interest` says at the time) wake the daemon.
pub fn watch_netlink(
    interest: watch::Receiver<Interest>,
    tx: UnboundedSender<Trigger>,
) -> Result<(), WatchError> {
    use rtnetlink::MulticastGroup;
    let (connection, _handle, mut messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv4Route,
        MulticastGroup::Ipv6Ifaddr,
        MulticastGroup::Ipv6Route,
    ])
    .map_err(WatchError::Netlink)?;
    tokio::spawn(connection);
    tokio::spawn(async move {
        let mut floating = FloatingMtu::default();
        while let Some((message, _)) = messages.next().await {
            let NetlinkPayload::InnerMessage(message) = message.payload else {
                continue;
            };
            let wake = {
                let interest = interest.borrow();
                interest.concerns(&message) && floating.matters(&interest, &message)
            };
            if wake && tx.send(Trigger::Netlink).is_err() {
                return;
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::route::RouteProtocol;

    fn interest() -> Interest {
        Interest {
            mesh: "lab".into(),
            devices: ["obr0", "br-phy", "gblue-23198a"].map(String::from).into(),
            addresses: ["192.168.0.254".parse().unwrap()].into(),
            routes: ["172.17.2.0/24".parse().unwrap()].into(),
            netns: ["p-blue1".to_string()].into(),
            docker: ["p-test1".to_string()].into(),
            floating_mtu: ["ovs0".to_string()].into(),
        }
    }

    #[test]
    fn only_this_hosts_namespaces_and_containers_count() {
        let interest = interest();
        assert!(interest.netns("p-blue1"));
        assert!(!interest.netns("cni-1234"));
        assert!(interest.docker("p-test1") && interest.docker("/p-test1"));
        assert!(!interest.docker("redis"));
    }

    #[test]
    fn docker_events_match_by_name_or_by_id_and_id_prefix() {
        let mut interest = interest();
        interest.docker.insert("4f0c9a2b".into());
        let id = "4f0c9a2b17e5aa0d0c7f1e1b2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e";
        assert!(interest.docker_event(Some("/whatever"), Some(id)));
        assert!(interest.docker_event(Some("/p-test1"), Some("ffff")));
        assert!(!interest.docker_event(Some("/redis"), Some("ffff4f0c9a2b")));
        assert!(!interest.docker_event(None, None));
        // A name is no id prefix, even where it looks like the start of one.
        interest.docker.insert("p-test2".into());
        assert!(!interest.docker_event(None, Some("p-test2")));
    }

    fn link(name: &str, alias: Option<&str>) -> RouteNetlinkMessage {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.into()));
        if let Some(alias) = alias {
            message
                .attributes
                .push(LinkAttribute::IfAlias(alias.into()));
        }
        RouteNetlinkMessage::NewLink(message)
    }

    fn route(to: &str, protocol: u8, metric: u32) -> RouteNetlinkMessage {
        let to: IpNet = to.parse().unwrap();
        let mut message = RouteMessage::default();
        message.header.destination_prefix_length = to.prefix_len();
        message.header.protocol = RouteProtocol::from(protocol);
        message
            .attributes
            .push(RouteAttribute::Destination(match to.addr() {
                IpAddr::V4(ip) => RouteAddress::Inet(ip),
                IpAddr::V6(ip) => RouteAddress::Inet6(ip),
            }));
        if to.addr().is_ipv6() {
            message.header.address_family = rtnetlink::packet_route::AddressFamily::Inet6;
        }
        message.attributes.push(RouteAttribute::Priority(metric));
        RouteNetlinkMessage::DelRoute(message)
    }

    #[test]
    fn foreign_links_and_routes_do_not_concern_the_mesh() {
        let interest = interest();
        assert!(!interest.concerns(&link("veth1234", None)));
        assert!(!interest.concerns(&link("vx", Some("ovsmesh:other/c/eth1"))));
        assert!(!interest.concerns(&link("vx", Some("ovsmesh:labx/c/eth1"))));
        assert!(!interest.concerns(&route("10.9.0.0/16", 4, 0)));
        assert!(!interest.concerns(&route("10.9.0.0/16", 3, 0)));
        // Protocol 79 with another mesh's metric (or another tool's) is not ours.
        let other = marks::Policy::new("other").route_metric();
        assert!(!interest.concerns(&route("10.9.0.0/16", marks::ROUTE_PROTOCOL, other)));
        assert!(!interest.concerns(&route("10.9.0.0/16", marks::ROUTE_PROTOCOL, 0)));
    }

    #[test]
    fn owned_links_routes_and_routes_to_our_destinations_do() {
        let interest = interest();
        assert!(interest.concerns(&link("obr0", None)));
        assert!(interest.concerns(&link("vpod1-190ace0", Some("ovsmesh:lab/pod1/eth1"))));
        let endpoint = marks::EndpointMark {
            network: "red".into(),
            endpoint: "4f0c".into(),
            address: "10.31.0.64/24".parse().unwrap(),
            mac: "02:00:00:00:00:01".parse().unwrap(),
        };
        let alias = marks::Policy::new("lab").endpoint_alias(&endpoint);
        // The plugin's own veths do not wake the daemon (their ports' OVSDB rows do).
        assert!(!interest.concerns(&link("ve0123", Some(&alias))));
        let ours = marks::Policy::new("lab").route_metric();
        assert!(interest.concerns(&route("10.9.0.0/16", marks::ROUTE_PROTOCOL, ours)));
        assert!(interest.concerns(&route("172.17.2.0/24", 4, 0)));
    }

    #[test]
    fn addresses_count_by_value_or_by_device() {
        let interest = interest();
        let mut message = AddressMessage::default();
        message.header.index = u32::MAX;
        message
            .attributes
            .push(AddressAttribute::Local("192.168.0.254".parse().unwrap()));
        assert!(interest.concerns(&RouteNetlinkMessage::NewAddress(message.clone())));
        message.attributes = vec![AddressAttribute::Local("10.1.1.1".parse().unwrap())];
        assert!(!interest.concerns(&RouteNetlinkMessage::NewAddress(message)));
    }

    fn bridge_device(name: &str, mtu: u32, up: bool) -> RouteNetlinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = 5;
        if up {
            message.header.flags = rtnetlink::packet_route::link::LinkFlags::Up;
        }
        message.attributes.push(LinkAttribute::IfName(name.into()));
        message.attributes.push(LinkAttribute::Mtu(mtu));
        RouteNetlinkMessage::NewLink(message)
    }

    #[test]
    fn a_bridge_device_whose_mtu_follows_its_ports_wakes_the_daemon_for_other_changes_only() {
        let mut interest = interest();
        interest.devices.insert("ovs0".into());
        let mut floating = FloatingMtu::default();
        let first = bridge_device("ovs0", 1500, false);
        // The first notification of a device counts (nothing to compare with).
        assert!(interest.concerns(&first) && floating.matters(&interest, &first));
        // vswitchd follows a joining veth's MTU, and back: no change of ours.
        assert!(!floating.matters(&interest, &bridge_device("ovs0", 1454, false)));
        assert!(!floating.matters(&interest, &bridge_device("ovs0", 1500, false)));
        // Set up (or down) by someone: a change.
        assert!(floating.matters(&interest, &bridge_device("ovs0", 1500, true)));
        // A bridge whose MTU the mesh sets: every MTU change counts.
        interest.devices.insert("obr0".into());
        let mut floating = FloatingMtu::default();
        assert!(floating.matters(&interest, &bridge_device("obr0", 1500, false)));
        assert!(floating.matters(&interest, &bridge_device("obr0", 1454, false)));
    }
}
