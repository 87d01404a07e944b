//! The containers of a reconcile, found all at once: where each one's namespace
//! is (its runtime is asked for many containers concurrently) and what its
//! interfaces look like inside (read on a few dedicated threads, each visiting
//! several namespaces; see [`crate::netlink::many`]).
//!
//! One container after the other, each on a fresh thread with a fresh runtime,
//! made observing a host cost a few milliseconds per container before anything
//! was compared; side by side it is a fraction of that.
//!
//! Inside, only what `marks` says is this mesh's counts as the interface's
//! state ([`classify`]); the rest is someone else's (a keepalived address, an
//! application's route, Docker's `eth0`): left alone, a conflict where it
//! clashes with what the topology gives the interface, and a warning where
//! another default route wins over this mesh's.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::StreamExt;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::marks::Policy;
use crate::netlink::{ethtool, many, Address, Link, Netlink, NetlinkError, Route};
use crate::runtime::{Located, Runtimes};
use crate::state::ContainerInterface;

use super::ObserveError;

/// Docker inspections in flight at once.
const LOCATE_AT_ONCE: usize = 16;

/// Container side of one interface, read inside the container.
pub(super) struct Inside {
    pub link: Option<Link>,
    /// The addresses on the interface, whoever added them.
    pub addresses: Vec<Address>,
    /// Every route of the container's main table (both families), in the kernel's order.
    pub routes: Vec<Route>,
    /// The container's link names by index (to name other routes' devices).
    pub names: BTreeMap<u32, String>,
    pub tx_checksum_on: bool,
}

/// A container of the topology, as found.
pub(super) enum Found {
    /// Not running (the reason); nothing is made for it.
    Waiting(String),
    /// Its namespace (held for this reconcile) and, per wanted interface in
    /// order, what is inside.
    Running(File, Vec<Inside>),
}

/// Locate and read every container of `wanted` (container → its interfaces).
/// Containers are read as soon as they are located, a batch at a time, so one
/// slow answer (Docker holds an inspection while the container restarts) does
/// not keep the others waiting. The first error, in container order, fails the
/// whole observation, as a one-by-one walk would have.
pub(super) async fn find_all<'a>(
    runtimes: &Runtimes,
    wanted: &BTreeMap<&'a str, Vec<&ContainerInterface>>,
) -> Result<BTreeMap<&'a str, Found>, ObserveError> {
    let started = std::time::Instant::now();
    let entries: Vec<(&'a str, &Vec<&ContainerInterface>)> =
        wanted.iter().map(|(c, i)| (*c, i)).collect();
    let mut outcomes: Vec<Option<Result<Found, ObserveError>>> =
        entries.iter().map(|_| None).collect();
    let mut located = futures::stream::iter(entries.iter().enumerate())
        .map(|(position, (_, ifaces))| async move {
            (position, runtimes.locate(&ifaces[0].runtime).await)
        })
        .buffer_unordered(LOCATE_AT_ONCE)
        .ready_chunks(LOCATE_AT_ONCE * 8);
    let mut reading = std::time::Duration::ZERO;
    while let Some(batch) = located.next().await {
        let mut running = Vec::new();
        for (position, result) in batch {
            match result {
                Err(error) => outcomes[position] = Some(Err(error.into())),
                Ok(Located::Waiting(reason)) => {
                    outcomes[position] = Some(Ok(Found::Waiting(reason)));
                }
                Ok(Located::Running(netns)) => {
                    let ifnames: Vec<String> = entries[position]
                        .1
                        .iter()
                        .map(|i| i.ifname.clone())
                        .collect();
                    running.push((position, netns, ifnames));
                }
            }
        }
        // Blocks this task meanwhile; the other inspections' answers wait in their sockets.
        let read_started = std::time::Instant::now();
        let items = running
            .iter()
            .map(|(_, netns, ifnames)| (netns, ifnames.as_slice()))
            .collect();
        let read = many::in_each_netns(items, many::threads(), |_, inner, ifnames| async move {
            read_inside(&inner, ifnames).await
        });
        reading += read_started.elapsed();
        for ((position, netns, _), inside) in running.into_iter().zip(read) {
            outcomes[position] = Some(
                inside
                    .map(|inside| Found::Running(netns, inside))
                    .map_err(ObserveError::from),
            );
        }
    }
    tracing::debug!(
        containers = wanted.len(),
        ms = started.elapsed().as_secs_f64() * 1e3,
        read_ms = reading.as_secs_f64() * 1e3,
        "containers found"
    );
    let mut found = BTreeMap::new();
    drop(located);
    for ((container, _), outcome) in entries.into_iter().zip(outcomes) {
        if let Some(outcome) = outcome {
            found.insert(container, outcome?);
        }
    }
    Ok(found)
}

/// Read interfaces `ifnames` inside a container's namespace (the caller's thread is in it).
async fn read_inside(netlink: &Netlink, ifnames: &[String]) -> Result<Vec<Inside>, NetlinkError> {
    let links = netlink.links().await?;
    let addresses = netlink.addresses_marked().await?;
    let routes = netlink.routes().await?;
    let names: BTreeMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
    Ok(ifnames
        .iter()
        .map(|ifname| {
            let link = links.iter().find(|l| &l.name == ifname).cloned();
            let Some(found) = &link else {
                return Inside {
                    link: None,
                    addresses: Vec::new(),
                    routes: Vec::new(),
                    names: BTreeMap::new(),
                    tx_checksum_on: false,
                };
            };
            Inside {
                addresses: addresses
                    .iter()
                    .filter(|a| a.index == found.index)
                    .copied()
                    .collect(),
                routes: routes.clone(),
                names: names.clone(),
                tx_checksum_on: ethtool::tx_checksum(ifname).unwrap_or(true),
                link,
            }
        })
        .collect())
}

/// One container interface as `marks` sees it: what of it is this mesh's.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct View {
    /// The mesh's IPv4 address on it (the wanted one if there, else another of its own).
    pub address: Option<Ipv4Net>,
    /// The mesh's IPv6 address on it, likewise.
    pub address6: Option<Ipv6Net>,
    /// The gateway of the mesh's IPv4 default route (with the container default metric).
    pub gateway: Option<Ipv4Addr>,
    /// The gateway of the mesh's IPv6 default route, likewise.
    pub gateway6: Option<Ipv6Addr>,
    /// The mesh's other routes through it (with the mesh's metric), sorted.
    pub routes: Vec<crate::topology::Route>,
    /// The mesh's addresses and routes on it that `want` does not have.
    pub stale: Vec<String>,
    /// What is not the mesh's and clashes with `want`, one description each.
    pub conflicts: Vec<String>,
    /// Other default routes that win over the mesh's (one per family at most), described.
    pub overridden: Vec<String>,
}

/// Sort the addresses and routes on the interface `index` (`inside`) into the
/// mesh's and everyone else's, against `want`; both families alike. Pure.
pub(super) fn classify(
    policy: &Policy,
    want: &ContainerInterface,
    index: u32,
    inside: &Inside,
) -> View {
    let mut view = View::default();
    let describe = |route: &Route| route.describe(|i| inside.names.get(&i).map(String::as_str));
    let wanted_addresses = want.addresses();
    let ours: Vec<IpNet> = inside
        .addresses
        .iter()
        .filter(|a| policy.owns_container_address(a.address, a.protocol, &wanted_addresses))
        .map(|a| a.address)
        .collect();
    // Per family: the wanted address if there, else another of the mesh's.
    let pick = |v6: bool| {
        let family = || ours.iter().filter(move |a| a.addr().is_ipv6() == v6);
        family()
            .find(|a| wanted_addresses.contains(a))
            .or_else(|| family().next())
            .copied()
    };
    let kept: Vec<IpNet> = [pick(false), pick(true)].into_iter().flatten().collect();
    for address in &kept {
        match address {
            IpNet::V4(a) => view.address = Some(*a),
            IpNet::V6(a) => view.address6 = Some(*a),
        }
    }
    for address in ours.iter().filter(|a| !kept.contains(a)) {
        view.stale.push(format!("address {address}"));
    }
    for address in inside.addresses.iter().map(|a| a.address) {
        let same = wanted_addresses.iter().find(|w| w.addr() == address.addr());
        if let (false, Some(wanted)) = (ours.contains(&address), same) {
            view.conflicts.push(format!(
                "address {address} (not ovsmesh's) has the topology's address {wanted} with another prefix"
            ));
        }
    }
    // Destinations the topology routes through this interface.
    let mut wanted: Vec<IpNet> = want.routes.iter().map(|r| r.to).collect();
    wanted.extend(want.gateways().into_iter().map(default_of));
    let mut ours_defaults = Vec::new();
    for route in inside.routes.iter().filter(|r| r.oif == Some(index)) {
        if !policy.owns_container_route(route.to, route.protocol, route.metric) {
            // The kernel's own route to the interface's subnet is no clash.
            let kernel = route.protocol == RTPROT_KERNEL;
            if wanted.contains(&route.to) && !kernel {
                view.conflicts.push(format!(
                    "route {} (not ovsmesh's) goes to a destination the topology routes through it",
                    describe(route)
                ));
            }
            continue;
        }
        let fits = route.metric == policy.container_route_metric(route.to);
        match route.via {
            Some(IpAddr::V4(via))
                if fits && route.to.prefix_len() == 0 && view.gateway.is_none() =>
            {
                view.gateway = Some(via);
                ours_defaults.push(route);
            }
            Some(IpAddr::V6(via))
                if fits && route.to.prefix_len() == 0 && view.gateway6.is_none() =>
            {
                view.gateway6 = Some(via);
                ours_defaults.push(route);
            }
            Some(via) if fits && route.to.prefix_len() > 0 => {
                view.routes
                    .push(crate::topology::Route { to: route.to, via });
            }
            _ => view.stale.push(format!("route {}", describe(route))),
        }
    }
    view.routes.sort();
    for ours in ours_defaults {
        let winner = default_route_winner(&inside.routes, ours.to.addr().is_ipv6());
        if let Some(winner) = winner.filter(|w| *w != ours) {
            view.overridden.push(format!(
                "its default route via {} loses to {}, which is not ovsmesh's: traffic to other networks leaves the other way",
                ours.via.map(|v| v.to_string()).unwrap_or_default(),
                describe(winner)
            ));
        }
    }
    view
}

/// The default destination of `gateway`'s family.
fn default_of(gateway: IpAddr) -> IpNet {
    match gateway {
        IpAddr::V4(_) => IpNet::V4(Ipv4Net::default()),
        IpAddr::V6(_) => IpNet::V6(Ipv6Net::default()),
    }
}

/// `RTPROT_KERNEL`: a route the kernel made for an address's subnet.
const RTPROT_KERNEL: u8 = 2;

/// The default route of a family (`ipv6` or not) the kernel uses: the lowest
/// metric, the first of equals.
fn default_route_winner(routes: &[Route], ipv6: bool) -> Option<&Route> {
    routes
        .iter()
        .filter(|r| r.to.prefix_len() == 0 && r.to.addr().is_ipv6() == ipv6)
        .fold(None, |best: Option<&Route>, r| match best {
            Some(b) if b.metric <= r.metric => Some(b),
            _ => Some(r),
        })
}

#[cfg(test)]
#[path = "inside_tests.rs"]
mod tests;
