//! Container interfaces, many at once.
//!
//! Each container is independent of the others, so their interfaces are
//! plumbed side by side: a few dedicated threads ([`crate::netlink::many`])
//! each enter one container's namespace after another and do, for every
//! interface of that container in turn, what [`super::apply`] says — host-side
//! requests through sockets that stay in the host's namespace, the rest inside.
//! Deletes (a host end only; the container may be gone) run first, on the
//! caller's runtime in the caller's namespace, as do changes whose container
//! has no namespace (they fail the way they always did).

use std::collections::BTreeMap;
use std::fs::File;

use crate::netlink::many::{self, Home};
use crate::netlink::{ethtool, Netlink, NetlinkError};
use crate::plan::{Change, Op};
use crate::state::Item;

use super::container_side::container_interface;
use super::context::HostContext;
use super::observe::NetlinkRows;

/// One container's share: its namespace and its changes (with their positions).
type Share<'a> = (&'a File, Vec<(usize, &'a Change)>);

/// The same failure for each of several changes.
fn each(what: &str, error: &impl std::fmt::Display) -> NetlinkError {
    NetlinkError::Io {
        what: what.into(),
        source: std::io::Error::other(error.to_string()),
    }
}

/// Apply `changes` (all of kind container interface, deletes first); one
/// result per change, in the same order.
pub async fn container_interfaces(
    netlink: &Netlink,
    context: &HostContext<'_>,
    changes: &[&Change],
    rows: &NetlinkRows,
) -> Vec<Result<(), NetlinkError>> {
    let ethtool = match ethtool::Socket::open() {
        Ok(socket) => socket,
        Err(error) => {
            return changes
                .iter()
                .map(|_| Err(each("open an ethtool socket", &error)))
                .collect();
        }
    };
    let mut results: Vec<Option<Result<(), NetlinkError>>> =
        (0..changes.len()).map(|_| None).collect();

    let mut shares: BTreeMap<&str, Share<'_>> = BTreeMap::new();
    let mut here = Vec::new();
    for (position, change) in changes.iter().enumerate() {
        let inside = change
            .after
            .as_ref()
            .and_then(Item::container_interface)
            .filter(|_| change.op != Op::Delete)
            .and_then(|want| Some((want.container.as_str(), rows.netns.get(&want.container)?)));
        match inside {
            Some((container, netns)) => shares
                .entry(container)
                .or_insert_with(|| (netns, Vec::new()))
                .1
                .push((position, *change)),
            None => here.push((position, *change)),
        }
    }

    let home = Home {
        netlink: netlink.clone(),
        ethtool: std::sync::Arc::new(ethtool),
        netns: None,
    };
    for (position, change) in here {
        let result = container_interface(&home, None, context, change).await;
        results[position] = Some(result);
    }

    let shares: Vec<Share<'_>> = shares.into_values().collect();
    let positions: Vec<Vec<usize>> = shares
        .iter()
        .map(|(_, changes)| changes.iter().map(|(p, _)| *p).collect())
        .collect();
    let items = shares
        .into_iter()
        .map(|(netns, changes)| (netns, (netns, changes)))
        .collect();
    let done = many::in_each_netns(
        items,
        many::threads(),
        |home, inner, (netns, changes): Share<'_>| async move {
            let mut out = Vec::with_capacity(changes.len());
            for (position, change) in changes {
                let inside = Some((&inner, netns));
                let result = container_interface(&home, inside, context, change).await;
                out.push((position, result));
            }
            Ok(out)
        },
    );
    for (outcome, positions) in done.into_iter().zip(positions) {
        match outcome {
            Ok(per_change) => {
                for (position, result) in per_change {
                    results[position] = Some(result);
                }
            }
            // The container could not be entered: each of its changes failed so.
            Err(error) => {
                for position in positions {
                    results[position] = Some(Err(each("in the container's namespace", &error)));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(each("container interface", &"not attempted"))))
        .collect()
}
