//! What a real host has that the topology only assumes.
//!
//! The topology says what the underlay MTU is and which NIC is the uplink; the
//! host may disagree (a cloud NIC of 1450 bytes, an uplink NIC that carries
//! the host's own address). These facts are read with the rest of the observed
//! state — netlink, /proc/sys and networkd's configuration files, no binaries —
//! so the plan stays free of I/O, and [`super::warnings`] turns them into
//! warnings for `status` and `apply`, and into the refusal of an uplink NIC
//! that would cut the host off.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::networkd;
use crate::netlink::index::LinkIndex;
use crate::netlink::{is_link_local, sysctl, Link, Netlink, NetlinkError};
use crate::topology::Topology;

/// A device and its MTU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub mtu: u32,
}

/// The uplink NIC as the host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    pub name: String,
    /// Its addresses (IPv6 link-local ones left out: every IPv6 link has one).
    pub addresses: Vec<IpNet>,
    /// The host's default route leaves through it.
    pub default_route: bool,
}

/// The facts of one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// The device carrying the tunnels: `underlay_nic` when set, else the
    /// device holding the underlay address; `None` when there is none.
    pub underlay: Option<Device>,
    /// The uplink NIC, when the topology names one and it exists.
    pub uplink: Option<Uplink>,
    /// `net.ipv4.conf.all.arp_ignore`.
    pub arp_ignore_all: Option<u32>,
    /// `arp_ignore` of the overlay bridge, when it exists.
    pub arp_ignore_overlay: Option<u32>,
    /// systemd-networkd runs with `ManageForeignRoutes=yes`.
    pub networkd_removes_foreign_routes: bool,
}

/// Read the facts of `host` from the namespace `netlink` is in, whose links
/// observe has already dumped (`links`).
pub async fn read(
    netlink: &Netlink,
    links: &LinkIndex,
    topology: &Topology,
    host: &str,
) -> Result<HostFacts, NetlinkError> {
    let Some(this) = topology.hosts.get(host) else {
        return Ok(HostFacts::default());
    };
    // Each dump only when needed: the daemon observes on every trigger.
    let addresses = if this.underlay_nic.is_none() || this.uplink_nic.is_some() {
        netlink.addresses().await?
    } else {
        Vec::new()
    };
    let routes = if this.uplink_nic.is_some() {
        netlink.routes().await?
    } else {
        Vec::new()
    };
    let by_name = |name: &str| links.by_name(name);
    let device = |link: &Link| Device {
        name: link.name.clone(),
        mtu: link.mtu,
    };
    let underlay = match &this.underlay_nic {
        Some(nic) => by_name(nic).map(device),
        None => holder(links, &addresses, this.tunnel_ip(topology.mesh.underlay)).map(device),
    };
    let uplink = this
        .uplink_nic
        .as_deref()
        .and_then(by_name)
        .map(|link| Uplink {
            name: link.name.clone(),
            addresses: addresses
                .iter()
                .filter(|(index, a)| *index == link.index && !is_link_local(a))
                .map(|(_, address)| *address)
                .collect(),
            default_route: routes
                .iter()
                .any(|r| r.to.prefix_len() == 0 && r.oif == Some(link.index)),
        });
    let overlay = &topology.mesh.overlay_bridge;
    Ok(HostFacts {
        underlay,
        uplink,
        arp_ignore_all: sysctl::read("all", "arp_ignore"),
        arp_ignore_overlay: by_name(overlay).and_then(|_| sysctl::read(overlay, "arp_ignore")),
        networkd_removes_foreign_routes: networkd::removes_foreign_routes(
            Path::new("/"),
            Path::new("/proc"),
        ),
    })
}

/// The link holding `address`.
fn holder<'a>(
    links: &'a LinkIndex,
    addresses: &[(u32, IpNet)],
    address: IpAddr,
) -> Option<&'a Link> {
    let (index, _) = addresses.iter().find(|(_, a)| a.addr() == address)?;
    links.by_index(*index)
}
