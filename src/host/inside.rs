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
