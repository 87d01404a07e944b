//! Read the netlink side of a host into the shared state type.
//!
//! Host side: addresses on ovsmesh's devices, routes carrying ovsmesh's route
//! protocol, forwarding on the devices the topology routes through, and every
//! veth host end carrying this mesh's alias (so a container removed from the
//! topology is still found and cleaned up). Container side: each container's
//! runtime is asked for its namespace; a container that is not running is
//! *waiting*; a running one is read on a dedicated thread inside its namespace.
//! A container interface counts as present only if it is the peer of one of our
//! host ends — after a restart it is gone, and the plan re-plumbs it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;

use crate::marks;
use crate::netlink::{ethtool, sysctl, Link, Netlink, NetlinkError};
use crate::runtime::{RuntimeError, Runtimes};
use crate::state::{AddressRole, ContainerInterface, HostAddress, HostRoute, HostState};
use crate::topology::Runtime;

use super::inside::{find_all, Found};

/// What apply needs beyond the state: the namespaces, held for this reconcile only.
#[derive(Debug, Default)]
pub struct NetlinkRows {
    pub netns: BTreeMap<String, File>,
}

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Names of the devices ovsmesh owns or configures on a host.
pub struct Devices<'a> {
    pub overlay_bridge: &'a str,
    pub underlay_bridge: &'a str,
    /// Internal ports carrying VLAN gateways (from OVS observation and desired state).
    pub gateway_ports: BTreeSet<String>,
}

/// Observe the netlink side, for the containers and devices of `desired`.
pub async fn observe(
    netlink: &Netlink,
    mesh: &str,
    desired: &HostState,
    devices: &Devices<'_>,
    runtimes: &Runtimes,
) -> Result<(HostState, NetlinkRows), ObserveError> {
    let mut state = HostState {
        host: desired.host.clone(),
        ..HostState::default()
    };
    let mut rows = NetlinkRows::default();
    let links = netlink.links().await?;
    let by_index: BTreeMap<u32, &Link> = links.iter().map(|l| (l.index, l)).collect();

    // Addresses on owned devices.
    let mut owned_devices: BTreeSet<&str> =
        desired.addresses.values().map(|a| a.dev.as_str()).collect();
    owned_devices.insert(devices.overlay_bridge);
    owned_devices.insert(devices.underlay_bridge);
    owned_devices.extend(devices.gateway_ports.iter().map(String::as_str));
    for (index, address) in netlink.addresses().await? {
        let Some(link) = by_index.get(&index) else {
            continue;
        };
        if !owned_devices.contains(link.name.as_str()) {
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

    // Routes with ovsmesh's protocol. ovsmesh sets `dev` only together with `onlink`.
    for route in netlink.routes().await? {
        if route.protocol != marks::ROUTE_PROTOCOL {
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

    // Our veth host ends, by alias.
    let alias_prefix = format!("ovsmesh:{mesh}/");
    let host_ends: BTreeMap<String, &Link> = links
        .iter()
        .filter_map(|l| {
            Some((
                l.alias.as_deref()?.strip_prefix(&alias_prefix)?.to_string(),
                l,
            ))
        })
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
            let Some(link) = inside.link else { continue };
            let host_end = link.peer_index.and_then(|i| by_index.get(&i)).filter(|l| {
                l.alias.as_deref() == Some(&marks::veth_alias(mesh, container, &iface.ifname))
            });
            let host_tx_on = host_end.is_some_and(|l| {
                host_ethtool
                    .as_ref()
                    .and_then(|s| s.tx_checksum(&l.name).ok())
                    .unwrap_or(true)
            });
            let wanted_address = inside
                .addresses
                .iter()
                .find(|a| **a == iface.address)
                .or(inside.addresses.first());
            let observed = ContainerInterface {
                container: container.to_string(),
                runtime: runtime.clone(),
                ifname: iface.ifname.clone(),
                host_end: host_end.map(|l| l.name.clone()).unwrap_or_default(),
                mac: link.mac.unwrap_or(crate::topology::Mac([0; 6])),
                mtu: link.mtu,
                address: wanted_address.copied().unwrap_or_default(),
                gateway: inside.gateway,
                routes: inside.routes,
                tx_checksum_off: !inside.tx_checksum_on && !host_tx_on,
            };
            state.containers.insert(observed.key(), observed);
        }
        rows.netns.insert(container.to_string(), netns);
    }

    // Host ends of containers no longer in the topology: found by their mark.
    for (identity, link) in &host_ends {
        let Some((container, ifname)) = identity.split_once('/') else {
            continue;
        };
        let key = format!("{container}/{ifname}");
        if desired.containers.contains_key(&key) || state.waiting.contains(container) {
            continue;
        }
        state.containers.insert(
            key,
            ContainerInterface {
                container: container.to_string(),
                runtime: Runtime::Netns(String::new()),
                ifname: ifname.to_string(),
                host_end: link.name.clone(),
                mac: link.mac.unwrap_or(crate::topology::Mac([0; 6])),
                mtu: link.mtu,
                address: ipnet::Ipv4Net::default(),
                gateway: None,
                routes: Vec::new(),
                tx_checksum_off: false,
            },
        );
    }
    Ok((state, rows))
}
