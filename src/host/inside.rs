//! The containers of a reconcile, found all at once: where each one's namespace
//! is (its runtime is asked for many containers concurrently) and what its
//! interfaces look like inside (read on a few dedicated threads, each visiting
//! several namespaces; see [`crate::netlink::many`]).
//!
//! One container after the other, each on a fresh thread with a fresh runtime,
//! made observing a host cost a few milliseconds per container before anything
//! was compared; side by side it is a fraction of that.

use std::collections::BTreeMap;
use std::fs::File;

use futures::StreamExt;

use crate::netlink::{ethtool, many, Link, Netlink, NetlinkError};
use crate::runtime::{Located, Runtimes};
use crate::state::ContainerInterface;
use crate::topology::Route;

use super::observe::ObserveError;

/// Docker inspections in flight at once.
const LOCATE_AT_ONCE: usize = 16;

/// Container side of one interface, read inside the container.
pub(super) struct Inside {
    pub link: Option<Link>,
    pub addresses: Vec<ipnet::Ipv4Net>,
    pub gateway: Option<std::net::Ipv4Addr>,
    pub routes: Vec<Route>,
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
/// The first error, in container order, fails the whole observation, as a
/// one-by-one walk would have.
pub(super) async fn find_all<'a>(
    runtimes: &Runtimes,
    wanted: &BTreeMap<&'a str, Vec<&ContainerInterface>>,
) -> Result<BTreeMap<&'a str, Found>, ObserveError> {
    let located: Vec<_> = futures::stream::iter(wanted.values())
        .map(|ifaces| runtimes.locate(&ifaces[0].runtime))
        .buffered(LOCATE_AT_ONCE)
        .collect()
        .await;
    let mut found = BTreeMap::new();
    let mut running = Vec::new();
    for ((container, ifaces), located) in wanted.iter().zip(located) {
        match located? {
            Located::Waiting(reason) => {
                found.insert(*container, Found::Waiting(reason));
            }
            Located::Running(netns) => {
                let ifnames: Vec<String> = ifaces.iter().map(|i| i.ifname.clone()).collect();
                running.push((*container, netns, ifnames));
            }
        }
    }
    let items = running
        .iter()
        .map(|(_, netns, ifnames)| (netns, ifnames.as_slice()))
        .collect();
    let read = many::in_each_netns(items, many::threads(), |_, inner, ifnames| async move {
        read_inside(&inner, ifnames).await
    });
    for ((container, netns, _), inside) in running.into_iter().zip(read) {
        found.insert(container, Found::Running(netns, inside?));
    }
    Ok(found)
}

/// Read interfaces `ifnames` inside a container's namespace (the caller's thread is in it).
async fn read_inside(netlink: &Netlink, ifnames: &[String]) -> Result<Vec<Inside>, NetlinkError> {
    let links = netlink.links().await?;
    let addresses = netlink.addresses().await?;
    let routes = netlink.routes().await?;
    Ok(ifnames
        .iter()
        .map(|ifname| {
            let link = links.iter().find(|l| &l.name == ifname).cloned();
            let Some(found) = &link else {
                return Inside {
                    link: None,
                    addresses: Vec::new(),
                    gateway: None,
                    routes: Vec::new(),
                    tx_checksum_on: false,
                };
            };
            let mine = |oif: Option<u32>| oif == Some(found.index);
            let gateway = routes
                .iter()
                .find(|r| mine(r.oif) && r.to.prefix_len() == 0)
                .and_then(|r| r.via);
            let mut extra: Vec<Route> = routes
                .iter()
                .filter(|r| mine(r.oif) && r.to.prefix_len() > 0)
                .filter_map(|r| {
                    Some(Route {
                        to: r.to,
                        via: r.via?,
                    })
                })
                .collect();
            extra.sort();
            Inside {
                addresses: addresses
                    .iter()
                    .filter(|(i, _)| *i == found.index)
                    .map(|(_, a)| *a)
                    .collect(),
                gateway,
                routes: extra,
                tx_checksum_on: ethtool::tx_checksum(ifname).unwrap_or(true),
                link,
            }
        })
        .collect())
}
