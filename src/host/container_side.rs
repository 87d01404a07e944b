//! One container interface of a plan: the veth pair (its host end a quiet
//! switch port named by this mesh's alias), and everything inside the container
//! (addresses, default and extra routes, IPv6 settings), touching only what
//! `marks` says is this mesh's. Split from `apply`, which orders the changes.

use std::fs::File;
use std::net::IpAddr;

use ipnet::IpNet;

use super::context::{after, index_of, io, HostContext};
use crate::marks::{Policy, ROUTE_PROTOCOL};
use crate::netlink::many::Home;
use crate::netlink::{ethtool, sysctl, LinkChange, Netlink, NetlinkError, Route};
use crate::plan::{Change, Op};
use crate::state::{ContainerInterface, Family, Item};

/// Delete the host end of `iface`'s veth named `name`, only if its alias is
/// ours; a device by that name that is not ours is left alone (`Ok(false)`).
async fn delete_host_end(
    netlink: &Netlink,
    context: &HostContext<'_>,
    iface: &ContainerInterface,
    name: &str,
) -> Result<bool, NetlinkError> {
    if name.is_empty() {
        return Ok(true);
    }
    match netlink.link_by_name(name).await? {
        Some(link)
            if context.policy().owns_veth(
                link.alias.as_deref(),
                &iface.container,
                &iface.ifname,
            ) =>
        {
            netlink.delete_link(link.index).await?;
            Ok(true)
        }
        Some(_) => Ok(false),
        None => Ok(true),
    }
}

fn in_the_way(what: String, why: &str) -> NetlinkError {
    NetlinkError::Io {
        what,
        source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, why.to_string()),
    }
}

/// One container interface. Host-side work goes through `home` (sockets in the
/// host's namespace), work inside the container through `inside`: the caller
/// runs this on a thread that has entered the container's namespace.
pub(crate) async fn container_interface(
    home: &Home,
    inside: Option<(&Netlink, &File)>,
    context: &HostContext<'_>,
    change: &Change,
) -> Result<(), NetlinkError> {
    let netlink = &home.netlink;
    let seen = change.before.as_ref().and_then(Item::container_interface);
    if change.op == Op::Delete {
        if let Some(old) = seen {
            delete_host_end(netlink, context, old, &old.host_end).await?;
        }
        return Ok(());
    }
    let want = after(change, Item::container_interface)?;
    let (inner, netns) = inside.ok_or_else(|| NetlinkError::Io {
        what: format!("container {}", want.container),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "its network namespace went away",
        ),
    })?;
    if matches!(change.op, Op::Create | Op::Replace) {
        if let Some(old) = seen {
            delete_host_end(netlink, context, old, &old.host_end).await?;
        }
        // A device under the new name: ours (a half-made attempt) goes; any
        // other is in the way and stays.
        if !delete_host_end(netlink, context, want, &want.host_end).await? {
            return Err(in_the_way(
                format!("device {}", want.host_end),
                "exists and is not ovsmesh's (its alias is not this mesh's): not deleted",
            ));
        }
        // Inside, touch only what ovsmesh made: a link with our name is in the way.
        if inner.link_by_name(&want.ifname).await?.is_some() {
            return Err(in_the_way(
                format!("interface {} in container {}", want.ifname, want.container),
                "exists and ovsmesh did not make it: left alone",
            ));
        }
        netlink
            .create_veth(
                &want.host_end,
                &want.ifname,
                Some(netns),
                want.mac,
                want.mtu,
            )
            .await?;
        // The alias makes the veth ours; a veth without it would never be
        // recognised (or removed) again, so it goes if the alias cannot be set.
        let alias = context.policy().veth_alias(&want.container, &want.ifname);
        let named = async {
            // Silent before it comes up: the container's first ARP for its
            // gateway must get only the gateway's answer.
            quiet_host_end(home, netns, &want.host_end)?;
            let index = index_of(netlink, &want.host_end).await?;
            let up = LinkChange {
                up: true,
                alias: Some(&alias),
                ..LinkChange::default()
            };
            netlink.set_link(index, up).await
        };
        if let Err(error) = named.await {
            if let Ok(Some(link)) = netlink.link_by_name(&want.host_end).await {
                let _ = netlink.delete_link(link.index).await;
            }
            return Err(error);
        }
    } else if let Some(old) = seen {
        if old.mtu != want.mtu {
            let index = index_of(netlink, &want.host_end).await?;
            netlink
                .set_link(
                    index,
                    LinkChange {
                        up: true,
                        mtu: Some(want.mtu),
                        ..LinkChange::default()
                    },
                )
                .await?;
        }
    }
    if want.tx_checksum_off {
        home.ethtool
            .set_tx_checksum(&want.host_end, false)
            .map_err(io(format!("tx checksum off on {}", want.host_end)))?;
    }
    configure_inside(inner, want, context.policy()).await
}

/// A new veth host end is a switch port only: the host's IP stack answers
/// nothing on it ([`sysctl::quiet_switch_port`]). Its settings live in the
/// host's namespace, where this thread (inside `container`) goes back for them.
fn quiet_host_end(home: &Home, container: &File, host_end: &str) -> Result<(), NetlinkError> {
    let quiet = || {
        sysctl::quiet_switch_port(host_end).map_err(io(format!("quiet the host end {host_end}")))
    };
    match &home.netns {
        Some(home_netns) => crate::netns::visit(home_netns, container, quiet)?,
        None => quiet(),
    }
}

/// Everything inside the container: lo up, the interface's MAC, MTU, address,
/// default route and routes. On the interface, only what `marks` says is this
/// mesh's is removed when the topology no longer has it; an address or route
/// someone else put there stays.
async fn configure_inside(
    netlink: &Netlink,
    want: &ContainerInterface,
    policy: Policy<'_>,
) -> Result<(), NetlinkError> {
    if let Some(lo) = netlink.link_by_name("lo").await? {
        if !lo.up {
            netlink.set_up(lo.index).await?;
        }
    }
    let link = netlink
        .link_by_name(&want.ifname)
        .await?
        .ok_or_else(|| NetlinkError::Io {
            what: format!("interface {} in container {}", want.ifname, want.container),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "missing after creation"),
        })?;
    ipv6_inside(want)?;
    netlink
        .set_link(
            link.index,
            LinkChange {
                up: true,
                mtu: (link.mtu != want.mtu).then_some(want.mtu),
                mac: (link.mac != Some(want.mac)).then_some(want.mac),
                alias: None,
            },
        )
        .await?;
    let addresses = want.addresses();
    for address in netlink.addresses_marked().await? {
        let ours = policy.owns_container_address(address.address, address.protocol, &addresses);
        if address.index == link.index && ours && !addresses.contains(&address.address) {
            netlink.delete_address(link.index, address.address).await?;
        }
    }
    for address in addresses {
        netlink
            .add_address_marked(link.index, address, ROUTE_PROTOCOL)
            .await?;
    }
    let route = |to: IpNet, via: IpAddr| Route {
        to,
        via: Some(via),
        oif: Some(link.index),
        onlink: false,
        protocol: ROUTE_PROTOCOL,
        metric: policy.container_route_metric(to),
    };
    let extra: Vec<Route> = want.routes.iter().map(|r| route(r.to, r.via)).collect();
    let defaults: Vec<Route> = want
        .gateways()
        .into_iter()
        .map(|gateway| {
            let default = match gateway {
                IpAddr::V4(_) => IpNet::V4(Default::default()),
                IpAddr::V6(_) => IpNet::V6(Default::default()),
            };
            route(default, gateway)
        })
        .collect();
    let wanted: Vec<&Route> = extra.iter().chain(&defaults).collect();
    // Routes of ours on the interface that the topology no longer has are stale.
    for existing in netlink.routes().await? {
        let stale = existing.oif == Some(link.index)
            && policy.owns_container_route(existing.to, existing.protocol, existing.metric)
            && !wanted.iter().any(|w| {
                w.to == existing.to && w.via == existing.via && w.metric == existing.metric
            });
        if stale {
            netlink.delete_route(&existing).await?;
        }
    }
    for route in &extra {
        netlink.replace_route(route).await?;
    }
    for default in &defaults {
        // First among the default routes of its metric, replacing none of them
        // (Docker's on eth0 has the same metric, see `marks`).
        netlink.prepend_route(default).await?;
    }
    if want.tx_checksum_off {
        ethtool::set_tx_checksum(&want.ifname, false)
            .map_err(io(format!("tx checksum off on {}", want.ifname)))?;
    }
    Ok(())
}

/// IPv6 inside the container, on ovsmesh's interface only, before it comes up
/// and gets its addresses: router advertisements ignored (`accept_ra=0`, so
/// no SLAAC address or RA route races the static ones: containernetworking/
/// plugins#160), and IPv6 on where the interface has an IPv6 address (Docker
/// turns `disable_ipv6` on in containers of networks without IPv6, and a new
/// interface inherits it). Without IPv6 in the container's kernel at all
/// only an interface that needs it fails.
fn ipv6_inside(want: &ContainerInterface) -> Result<(), NetlinkError> {
    let needed = want.address6.is_some();
    let setting = |key: &str, value: u32| {
        if sysctl::read_of(Family::Ipv6, &want.ifname, key) == Some(value) {
            return Ok(());
        }
        sysctl::write_of(Family::Ipv6, &want.ifname, key, value).map_err(io(format!(
            "net.ipv6.conf.{}.{key} in container {}",
            want.ifname, want.container
        )))
    };
    let result = setting("accept_ra", 0).and_then(|()| {
        if needed {
            setting("disable_ipv6", 0)
        } else {
            Ok(())
        }
    });
    match result {
        Err(error) if needed => Err(error),
        _ => Ok(()),
    }
}
