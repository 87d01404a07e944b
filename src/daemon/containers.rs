//! Drift inside plumbed containers: a cheap look every second.
//!
//! Notifications about a container's interfaces are sent in the container's
//! namespace, where the daemon does not listen: a netlink socket opened there
//! would pin the namespace (and the veth in it) after the container dies. So
//! once a second the daemon looks, on a short-lived thread, at the interfaces
//! it made in each container the last reconcile found running — their links,
//! addresses and routes — and wakes when that differs from the previous look.
//! A namespace that was replaced or is gone wakes it as a container event.
//! The reconcile that follows decides what, if anything, to do.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio::sync::{mpsc::UnboundedSender, watch};

use super::triggers::Trigger;
use crate::netlink::{in_netns, Link, NetlinkError, Route};
use crate::runtime::{is_netns, Runtimes};
use crate::state::HostState;
use crate::topology::Runtime;

/// How often plumbed containers are looked at.
pub const PERIOD: Duration = Duration::from_secs(1);

/// A container the last reconcile plumbed, and the interfaces ovsmesh made in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plumbed {
    pub runtime: Runtime,
    pub ifnames: Vec<String>,
}

/// The containers of `want` that are not waiting, by name.
pub fn plumbed(want: &HostState, waiting: &[String]) -> BTreeMap<String, Plumbed> {
    let mut out: BTreeMap<String, Plumbed> = BTreeMap::new();
    for iface in want.containers.values() {
        if waiting.contains(&iface.container) {
            continue;
        }
        out.entry(iface.container.clone())
            .or_insert_with(|| Plumbed {
                runtime: iface.runtime.clone(),
                ifnames: Vec::new(),
            })
            .ifnames
            .push(iface.ifname.clone());
    }
    out
}

/// What one look at a container's interfaces saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// The namespace (device, inode) and the interfaces' links, addresses and routes.
    Running {
        netns: (u64, u64),
        links: Vec<Link>,
        addresses: Vec<(u32, Ipv4Net)>,
        routes: Vec<Route>,
    },
    Gone,
}

/// Look at every plumbed container each [`PERIOD`]; send a trigger on a difference.
pub fn watch(
    runtimes: Arc<Runtimes>,
    mut plumbed: watch::Receiver<BTreeMap<String, Plumbed>>,
    tx: UnboundedSender<Trigger>,
) {
    tokio::spawn(async move {
        let mut last: BTreeMap<String, Seen> = BTreeMap::new();
        let mut ticks = tokio::time::interval(PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let containers = plumbed.borrow_and_update().clone();
            last.retain(|name, _| containers.contains_key(name));
            let targets: Vec<(String, Option<std::path::PathBuf>, Vec<String>)> = containers
                .into_iter()
                .map(|(name, p)| (name, runtimes.netns_path(&p.runtime), p.ifnames))
                .collect();
            let Ok(seen) = tokio::task::spawn_blocking(move || {
                targets
                    .into_iter()
                    .map(|(name, path, ifnames)| {
                        let seen = path.map_or(Seen::Gone, |p| look(&p, &ifnames));
                        (name, seen)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            else {
                continue;
            };
            let mut triggers = std::collections::BTreeSet::new();
            for (name, now) in seen {
                let before = last.insert(name.clone(), now.clone());
                let changed = match (&before, &now) {
                    (Some(before), now) if before == now => None,
                    (Some(Seen::Running { netns: a, .. }), Seen::Running { netns: b, .. })
                        if a == b =>
                    {
                        Some(Trigger::ContainerDrift)
                    }
                    // First look (the state may have changed since the reconcile that
                    // plumbed it), a new namespace, or gone.
                    (None, Seen::Running { .. }) => Some(Trigger::ContainerDrift),
                    _ => Some(Trigger::ContainerNetns),
                };
                if let Some(found) = changed {
                    tracing::debug!(container = %name, trigger = found.as_str(), "container looked different");
                    triggers.insert(found);
                }
            }
            for trigger in triggers {
                if tx.send(trigger).is_err() {
                    return;
                }
            }
        }
    });
}

/// One look at a container's interfaces (a blocking call: it enters the namespace
/// on a thread of its own).
fn look(path: &std::path::Path, ifnames: &[String]) -> Seen {
    let Ok(file) = File::open(path) else {
        return Seen::Gone;
    };
    let Ok(meta) = file.metadata() else {
        return Seen::Gone;
    };
    if !is_netns(&file) {
        return Seen::Gone;
    }
    let read = in_netns(&file, |netlink| async move {
        let links = netlink.links().await?;
        let addresses = netlink.addresses().await?;
        let routes = netlink.routes().await?;
        Ok::<_, NetlinkError>((links, addresses, routes))
    });
    let Ok((links, addresses, routes)) = read else {
        return Seen::Gone;
    };
    let links: Vec<Link> = links
        .into_iter()
        .filter(|l| ifnames.contains(&l.name))
        .collect();
    let ours = |index: u32| links.iter().any(|l| l.index == index);
    let addresses = addresses.into_iter().filter(|(i, _)| ours(*i)).collect();
    let routes = routes
        .into_iter()
        .filter(|r| r.oif.is_some_and(ours))
        .collect();
    Seen::Running {
        netns: (meta.dev(), meta.ino()),
        links,
        addresses,
        routes,
    }
}
