//! Read the netlink side of a host into the shared state type.
//!
//! Host side (what is ours is `marks`' answer): this mesh's addresses, routes
//! carrying its marks, forwarding and the other IPv4 settings on the devices the
//! topology routes through, and every veth host end carrying this mesh's alias
//! (so a container removed from the
//! topology is still found and cleaned up). Container side: each container's
//! runtime is asked for its namespace; a container that is not running is
//! *waiting*; a running one is read on a dedicated thread inside its namespace.
//! A container interface counts as present only if it is the peer of one of our
//! host ends — after a restart it is gone, and the plan re-plumbs it; a link
//! with its name that is not is noted as *occupied* (a conflict, never touched),
//! and so is a foreign route that holds the destination and metric of ours.

use std::collections::BTreeMap;
use std::fs::File;

use crate::marks::{AddressPolicy, Policy};
use crate::netlink::index::LinkIndex;
use crate::netlink::{ethtool, is_link_local, sysctl, Link, Netlink, RTPROT_RA};
use crate::runtime::Runtimes;
use crate::state::{
    AddressRole, ContainerInterface, EndpointLink, Family, HostAddress, HostRoute, HostState, Kind,
    Occupied, Sysctl,
};
use crate::topology::Runtime;

use super::inside::{classify, find_all, Found};
use super::ObserveError;

/// What apply needs beyond the state: the namespaces, held for this reconcile
/// only; and the host's links as observe dumped them (the reconcile's one link
/// dump, which the host facts are read from too).
#[derive(Debug, Default)]
pub struct NetlinkRows {
    pub netns: BTreeMap<String, File>,
    pub links: LinkIndex,
}

/// The devices ovsmesh configures on a host, and which of their addresses are
/// its own (decided by `marks`).
pub struct Devices {
    pub overlay_bridge: String,
    pub underlay_bridge: String,
    pub addresses: AddressPolicy,
}

/// Observe the netlink side, for the containers and devices of `desired`.
pub async fn observe(
    netlink: &Netlink,
    mesh: &str,
    desired: &HostState,
    devices: &Devices,
    runtimes: &Runtimes,
) -> Result<(HostState, NetlinkRows), ObserveError> {
    let mut state = HostState {
        host: desired.host.clone(),
        ..HostState::default()
    };
    let mut rows = NetlinkRows::default();
    let index = LinkIndex::dump(netlink).await?;
    let links = &index;
    let by_index: BTreeMap<u32, &Link> = links.iter().map(|l| (l.index, l)).collect();

    let policy = Policy::new(mesh);
    // Addresses that are ours.
    for (index, address) in netlink.addresses().await? {
        let Some(link) = by_index.get(&index) else {
            continue;
        };
        // The kernel's IPv6 link-local address is never ours, on any device.
        if is_link_local(&address) || !devices.addresses.is_ours(&link.name, address) {
            continue;
        }
        let role = if link.name == devices.overlay_bridge {
            AddressRole::OverlayGateway
        } else if link.name == devices.underlay_bridge {
            AddressRole::Underlay
        } else {
            AddressRole::VlanGateway
        };
        let address = HostAddress {
            dev: link.name.clone(),
            address,
            role,
        };
        state.addresses.insert(address.key(), address);
    }

    // Routes with this mesh's marks. ovsmesh sets `dev` only together with `onlink`.
    for route in netlink.routes().await? {
        if route.protocol == RTPROT_RA && route.to.prefix_len() == 0 {
            if let Some(link) = route.oif.and_then(|i| by_index.get(&i)) {
                state.ra_routes.insert(link.name.clone());
            }
        }
        if policy.route_in_the_way(route.protocol, route.metric) {
            state.occupied.push(Occupied {
                kind: Kind::Route,
                id: route.to.to_string(),
                by: route.describe(|i| by_index.get(&i).map(|l| l.name.as_str())),
                inside: false,
            });
        }
        if !policy.owns_route(route.protocol, route.metric) {
            continue;
        }
        let Some(via) = route.via else { continue };
        let dev = route
            .onlink
            .then(|| {
                route
                    .oif
                    .and_then(|i| by_index.get(&i))
                    .map(|l| l.name.clone())
            })
            .flatten();
        state.routes.insert(
            route.to.to_string(),
            HostRoute {
                to: route.to,
                via,
                dev,
                onlink: route.onlink,
            },
        );
    }

    for dev in desired.forwarding.keys() {
        if let Some(on) = sysctl::forwarding(dev) {
            state.forwarding.insert(dev.clone(), on);
        }
    }
    let mut settings: Vec<Sysctl> = desired.sysctls.values().cloned().collect();
    if forwards_ipv6(desired) {
        // `accept_ra` where IPv6 forwarding would cost the host its RA default
        // route, and where this mesh set it before (see `desired::settle`).
        let mut devices = state.ra_routes.clone();
        devices.extend(sysctl::remembered_devices(mesh, Family::Ipv6, "accept_ra"));
        settings.extend(devices.into_iter().map(|dev| Sysctl {
            family: Family::Ipv6,
            dev,
            key: "accept_ra".to_string(),
            value: 0,
            claimed: false,
        }));
    }
    for want in settings {
        if let Some(value) = sysctl::read_of(want.family, &want.dev, &want.key) {
            let seen = Sysctl {
                value,
                claimed: sysctl::remembers(mesh, want.family, &want.key, &want.dev),
                ..want
            };
            state.sysctls.insert(seen.name(), seen);
        }
    }

    state.foreign_links = links
        .iter()
        .filter(|l| policy.veth_identity(l.alias.as_deref()).is_none())
        .map(|l| l.name.clone())
        .collect();

    // Docker endpoints' veth host ends, by alias (see `desired::endpoint::serve`).
    state.endpoints = links
        .iter()
        .filter_map(|l| {
            let mark = policy.endpoint_identity(l.alias.as_deref())?;
            let (_, container_end) = crate::topology::names::endpoint_ends(mesh, &mark.endpoint);
            let link = EndpointLink {
                host_end: l.name.clone(),
                joined: links.by_name(&container_end).is_none(),
                mark,
            };
            Some((link.mark.endpoint.clone(), link))
        })
        .collect();

    // Our veth host ends, by alias.
    let host_ends: BTreeMap<(String, String), &Link> = links
        .iter()
        .filter_map(|l| Some((policy.veth_identity(l.alias.as_deref())?, l)))
        .collect();

    // Containers of the topology.
    let mut wanted: BTreeMap<&str, Vec<&ContainerInterface>> = BTreeMap::new();
    for iface in desired.containers.values() {
        wanted
            .entry(iface.container.as_str())
            .or_default()
            .push(iface);
    }
    // All located and read at once (see `inside`), then taken one by one.
    let mut found = find_all(runtimes, &wanted).await?;
    let host_ethtool = ethtool::Socket::open().ok();
    for (container, ifaces) in wanted {
        let runtime = &ifaces[0].runtime;
        let (netns, inside) = match found.remove(container) {
            Some(Found::Running(netns, inside)) => (netns, inside),
            Some(Found::Waiting(reason)) => {
                tracing::info!(container, %reason, "container waiting");
                state.waiting.insert(container.to_string());
                continue;
            }
            None => continue,
        };
        for (iface, inside) in ifaces.iter().zip(inside) {
            let Some(link) = &inside.link else { continue };
            let host_end = link
                .peer_index
                .and_then(|i| by_index.get(&i))
                .filter(|l| policy.owns_veth(l.alias.as_deref(), container, &iface.ifname));
            if host_end.is_none() {
                // A link with our name that is not the peer of our host end.
                state.occupied.push(Occupied {
                    kind: Kind::ContainerInterface,
                    id: iface.key(),
                    by: format!("link {} (index {})", link.name, link.index),
                    inside: false,
                });
                continue;
            }
            // Only what is ours on it is its state; the rest is someone else's.
            let view = classify(&policy, iface, link.index, &inside);
            for clash in view.conflicts {
                state.occupied.push(Occupied {
                    kind: Kind::ContainerInterface,
                    id: iface.key(),
                    by: clash,
                    inside: true,
                });
            }
            for overridden in view.overridden {
                state.overridden.push(format!(
                    "container {container}, interface {}: {overridden}",
                    iface.ifname
                ));
            }
            let host_tx_on = host_end.is_some_and(|l| {
                host_ethtool
                    .as_ref()
                    .and_then(|s| s.tx_checksum(&l.name).ok())
                    .unwrap_or(true)
            });
            let observed = ContainerInterface {
                container: container.to_string(),
                runtime: runtime.clone(),
                ifname: iface.ifname.clone(),
                host_end: host_end.map(|l| l.name.clone()).unwrap_or_default(),
                mac: link.mac.unwrap_or(crate::topology::Mac([0; 6])),
                mtu: link.mtu,
                address: view.address,
                address6: view.address6,
                gateway: view.gateway,
                gateway6: view.gateway6,
                routes: view.routes,
                tx_checksum_off: !inside.tx_checksum_on && !host_tx_on,
                stale: view.stale,
            };
            state.containers.insert(observed.key(), observed);
        }
        rows.netns.insert(container.to_string(), netns);
    }

    // Host ends of containers no longer in the topology: found by their mark.
    for ((container, ifname), link) in &host_ends {
        let key = format!("{container}/{ifname}");
        if desired.containers.contains_key(&key) || state.waiting.contains(container) {
            continue;
        }
        state.containers.insert(
            key,
            ContainerInterface {
                container: container.clone(),
                runtime: Runtime::Netns(String::new()),
                ifname: ifname.clone(),
                host_end: link.name.clone(),
                mac: link.mac.unwrap_or(crate::topology::Mac([0; 6])),
                mtu: link.mtu,
                address: None,
                address6: None,
                gateway: None,
                gateway6: None,
                routes: Vec::new(),
                tx_checksum_off: false,
                stale: Vec::new(),
            },
        );
    }
    rows.links = index;
    Ok((state, rows))
}

/// Whether a state turns IPv6 forwarding on.
pub fn forwards_ipv6(state: &HostState) -> bool {
    state
        .sysctls
        .values()
        .any(|s| s.family == Family::Ipv6 && s.key == "forwarding" && s.value == 1)
}
