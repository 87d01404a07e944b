//! Apply the netlink part of a plan, in order, reporting each failure precisely.
//!
//! Order: container interfaces (before the OVS transaction, see
//! [`CONTAINER_KINDS`]), then, after it, host addresses, routes and
//! forwarding. One failing object does not stop the others; the next apply
//! retries what failed, since it starts from what is.
//!
//! The underlay move on netdev hosts keeps the host reachable as long as
//! possible: the address is first added to the underlay bridge and the bridge
//! brought up, then the NIC's gateway routes are re-pointed at the bridge, and
//! only then is the address removed from the NIC. `down` does the reverse.

use super::context::{after, index_of, io, HostContext};
use crate::marks::RouteMark;
use crate::netlink::index::LinkIndex;
use crate::netlink::{sysctl, Netlink, NetlinkError, Route};
use crate::plan::{Change, Kind, Op, Plan};
use crate::state::{AddressRole, Family, HostAddress, HostRoute, Item};

use super::observe::NetlinkRows;

/// A netlink object that could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    pub id: String,
    pub error: String,
}

#[derive(Debug, Default)]
pub struct NetlinkReport {
    pub applied: Vec<Change>,
    pub failures: Vec<Failure>,
}

/// The container interfaces: done before the OVS transaction on the way up, so
/// vswitchd opens a veth that already exists and is up. (Measured on the
/// userspace datapath: a Port row whose device appears later can leave the
/// device set down by vswitchd's failed first open, and it passes no traffic.)
pub const CONTAINER_KINDS: &[Kind] = &[Kind::ContainerInterface];
/// Host addresses, routes and forwarding: after the OVS transaction on the way
/// up (internal ports must exist), before it on the way down.
pub const HOST_KINDS: &[Kind] = &[Kind::Address, Kind::Route, Kind::Forwarding, Kind::Sysctl];
/// Everything of netlink, for `down`: veths first, then the underlay address
/// back to the NIC, all before the OVS rows (and the underlay bridge) go.
pub const ALL_KINDS: &[Kind] = &[
    Kind::ContainerInterface,
    Kind::Address,
    Kind::Route,
    Kind::Forwarding,
    Kind::Sysctl,
];

/// Apply the changes of the given kinds, in the order given.
pub async fn apply(
    netlink: &Netlink,
    context: &HostContext<'_>,
    plan: &Plan,
    rows: &NetlinkRows,
    kinds: &[Kind],
) -> NetlinkReport {
    let mut report = NetlinkReport::default();
    // Device indices for routes: one dump, when the first route needs it.
    let mut links: Option<LinkIndex> = None;
    for &kind in kinds {
        // Deletes first, so a replaced object never collides with its old self.
        let mut changes: Vec<&Change> = plan.changes.iter().filter(|c| c.kind == kind).collect();
        changes.sort_by_key(|c| c.op != Op::Delete);
        if kind == Kind::ContainerInterface {
            // Many containers at once, each inside its namespace (see `plumb`).
            let results =
                super::plumb::container_interfaces(netlink, context, &changes, rows).await;
            for (change, result) in changes.into_iter().zip(results) {
                report.record(kind, change, result);
            }
            continue;
        }
        if kind == Kind::Sysctl {
            // IPv6 forwarding last: turning it on drops the RA default routes
            // of every interface whose `accept_ra` is not 2 yet.
            changes.sort_by_key(|c| {
                let forwarding6 = c
                    .after
                    .as_ref()
                    .and_then(Item::sysctl)
                    .is_some_and(|s| s.family == Family::Ipv6 && s.key == "forwarding");
                (c.op != Op::Delete, forwarding6)
            });
        }
        for change in changes {
            let result = match kind {
                Kind::Address => address(netlink, context, change).await,
                Kind::Route => route(netlink, context, &mut links, change).await,
                Kind::Forwarding => forwarding(context, change),
                Kind::Sysctl => setting(context, change),
                Kind::ContainerInterface | Kind::Bridge | Kind::Port | Kind::Firewall => continue,
            };
            report.record(kind, change, result);
        }
    }
    report
}

impl NetlinkReport {
    fn record(&mut self, kind: Kind, change: &Change, result: Result<(), NetlinkError>) {
        match result {
            Ok(()) => self.applied.push(change.clone()),
            Err(error) => self.failures.push(Failure {
                kind,
                id: change.id.clone(),
                error: error.to_string(),
            }),
        }
    }
}

async fn address(
    netlink: &Netlink,
    context: &HostContext<'_>,
    change: &Change,
) -> Result<(), NetlinkError> {
    if change.op == Op::Delete {
        let Some(old) = change.before.as_ref().and_then(Item::address) else {
            return Ok(());
        };
        if old.role == AddressRole::Underlay {
            if let Some(nic) = context.underlay_nic {
                move_underlay(netlink, context, old, &old.dev, nic).await?;
            }
        }
        if let Some(link) = netlink.link_by_name(&old.dev).await? {
            netlink.delete_address(link.index, old.address).await?;
        }
        return Ok(());
    }
    let want: &HostAddress = after(change, Item::address)?;
    let index = index_of(netlink, &want.dev).await?;
    netlink.set_up(index).await?;
    netlink.add_address(index, want.address).await?;
    if want.role == AddressRole::Underlay {
        if let Some(nic) = context.underlay_nic {
            move_underlay(netlink, context, want, nic, &want.dev).await?;
            if let Some(link) = netlink.link_by_name(nic).await? {
                netlink.delete_address(link.index, want.address).await?;
            }
        }
    }
    Ok(())
}

/// Re-point the gateway routes of `from` at `to`, and make sure `to` has the
/// address and is up (the address on `from` is removed by the caller). The
/// routes moved are the host's own (not this mesh's): they keep their marks.
async fn move_underlay(
    netlink: &Netlink,
    context: &HostContext<'_>,
    address: &HostAddress,
    from: &str,
    to: &str,
) -> Result<(), NetlinkError> {
    let Some(to_link) = netlink.link_by_name(to).await? else {
        return Ok(());
    };
    netlink.set_up(to_link.index).await?;
    netlink.add_address(to_link.index, address.address).await?;
    let Some(from_link) = netlink.link_by_name(from).await? else {
        return Ok(());
    };
    for route in netlink.routes().await? {
        if route.oif == Some(from_link.index)
            && route.via.is_some()
            && !context.policy().owns_route(route.protocol, route.metric)
        {
            let moved = Route {
                oif: Some(to_link.index),
                ..route.clone()
            };
            netlink.replace_route(&moved).await?;
        }
    }
    Ok(())
}

fn to_netlink_route(route: &HostRoute, links: &LinkIndex, mark: RouteMark) -> Route {
    Route {
        to: route.to,
        via: Some(route.via),
        oif: route
            .dev
            .as_ref()
            .and_then(|d| links.by_name(d))
            .map(|l| l.index),
        onlink: route.onlink,
        protocol: mark.protocol,
        metric: mark.metric,
    }
}

async fn route(
    netlink: &Netlink,
    context: &HostContext<'_>,
    links: &mut Option<LinkIndex>,
    change: &Change,
) -> Result<(), NetlinkError> {
    let mut indices = match links.take() {
        Some(indices) => indices,
        None => LinkIndex::dump(netlink).await?,
    };
    let result = route_with(netlink, context, &mut indices, change).await;
    *links = Some(indices);
    result
}

async fn route_with(
    netlink: &Netlink,
    context: &HostContext<'_>,
    indices: &mut LinkIndex,
    change: &Change,
) -> Result<(), NetlinkError> {
    let mark = context.policy().route_mark();
    if change.op == Op::Delete {
        let Some(old) = change.before.as_ref().and_then(Item::route) else {
            return Ok(());
        };
        return netlink
            .delete_route(&to_netlink_route(old, indices, mark))
            .await;
    }
    let want = after(change, Item::route)?;
    if let Some(dev) = &want.dev {
        if indices.by_name(dev).is_none() {
            // Not there at the dump: look again (it says why if it is still missing).
            index_of(netlink, dev).await?;
            *indices = LinkIndex::dump(netlink).await?;
        }
    }
    let route = to_netlink_route(want, indices, mark);
    if change.op == Op::Create {
        // Never overwrite: a route that appeared at our key since the plan was
        // made fails the add (the next plan names it as a conflict).
        netlink.add_route(&route).await
    } else {
        netlink.replace_route(&route).await
    }
}

fn forwarding(context: &HostContext<'_>, change: &Change) -> Result<(), NetlinkError> {
    // Forwarding is only ever enabled, remembering the setting before; `down`
    // puts it back ([`restore_forwarding`]).
    if change.after.as_ref().and_then(Item::forwarding) != Some(true) {
        return Ok(());
    }
    sysctl::enable_remembering(context.mesh, &change.id)
        .map_err(io(format!("forwarding on {}", change.id)))
}

/// A `net.FAMILY.conf.DEV.KEY` setting, remembering the value it replaces. A
/// setting no longer wanted is left as it is until `down` puts back the
/// remembered value.
fn setting(context: &HostContext<'_>, change: &Change) -> Result<(), NetlinkError> {
    let Some(want) = change.after.as_ref().and_then(Item::sysctl) else {
        return Ok(());
    };
    sysctl::set_remembering(context.mesh, want.family, &want.dev, &want.key, want.value)
        .map_err(io(change.id.clone()))
}

/// `down`: forwarding and the other settings back to what they were before
/// ovsmesh changed them.
pub fn restore_forwarding(mesh: &str) -> Result<Vec<String>, NetlinkError> {
    sysctl::restore_every_key(mesh).map_err(io("restore forwarding and settings".to_string()))
}
