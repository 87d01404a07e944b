//! Rules that compare entries across the whole cluster.
//!
//! A duplicate address, an overlapping subnet or a tunnel path too small for the
//! configured MTU only shows when looking at every host, network and container
//! together; these are the checks pipework never made. They also settle what
//! depends on the whole topology: each interface's effective MTU.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::Ipv4Net;

use super::model::*;
use super::mtu;
use super::names::{self, BridgeRole};
use super::source::{Diagnostic, KeyPath};

/// Run every cross-entry rule, fixing up effective MTUs on the way.
pub fn check(topology: &mut Topology, problems: &mut Vec<Diagnostic>) {
    single_routed_network(topology, problems);
    unique_vlan_tags(topology, problems);
    disjoint_subnets(topology, problems);
    unique_underlay_addresses(topology, problems);
    unique_container_addresses(topology, problems);
    pools_without_fixed_addresses(topology, problems);
    unique_macs(topology, problems);
    uplink_nics_present(topology, problems);
    apply_mtu_budgets(topology, problems);
    unique_port_names(topology, problems);
}

fn networks_at() -> KeyPath {
    KeyPath::root().key("networks")
}

fn single_routed_network(topology: &Topology, problems: &mut Vec<Diagnostic>) {
    let routed: Vec<&String> = topology
        .networks
        .iter()
        .filter(|(_, n)| matches!(n, Network::Routed(_)))
        .map(|(name, _)| name)
        .collect();
    for extra in routed.iter().skip(1) {
        problems.push(Diagnostic::key(
            &networks_at().key(extra.as_str()),
            format!(
                "only one routed network is allowed; {:?} is already routed",
                routed[0]
            ),
        ));
    }
}

fn unique_vlan_tags(topology: &Topology, problems: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<u16, &str> = BTreeMap::new();
    for (name, network) in &topology.networks {
        if let Network::Vlan(vlan) = network {
            if let Some(first) = seen.insert(vlan.vlan, name) {
                problems.push(Diagnostic::value(
                    &networks_at().key(name).key("vlan"),
                    format!("VLAN {} is already used by network {first:?}", vlan.vlan),
                ));
                seen.insert(vlan.vlan, first);
            }
        }
    }
}

fn disjoint_subnets(topology: &Topology, problems: &mut Vec<Diagnostic>) {
    let Some(routed) = topology.routed() else {
        return;
    };
    let mut checked: Vec<(&str, Ipv4Net)> = Vec::new();
    for (host, subnet) in &routed.subnets {
        let path = networks_at().key(&routed.name).key("subnets").key(host);
        if let Some((other, other_net)) = checked.iter().find(|(_, n)| overlaps(*n, *subnet)) {
            problems.push(Diagnostic::value(
                &path,
                format!("{subnet} overlaps {other}'s subnet {other_net}"),
            ));
        }
        for (name, network) in &topology.networks {
            if let Network::Vlan(VlanNetwork {
                subnet: Some(vlan_net),
                ..
            }) = network
            {
                if overlaps(*vlan_net, *subnet) {
                    problems.push(Diagnostic::value(
                        &path,
                        format!("{subnet} overlaps the subnet {vlan_net} of VLAN network {name:?}"),
                    ));
                }
            }
        }
        checked.push((host, *subnet));
    }
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn unique_underlay_addresses(topology: &Topology, problems: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<std::net::Ipv4Addr, &str> = HashMap::new();
    for host in topology.hosts.values() {
        if let Some(first) = seen.insert(host.underlay_address.addr(), &host.name) {
            problems.push(Diagnostic::value(
                &host.origin.key("underlay_address"),
                format!(
                    "{} is already host {first:?}'s underlay address",
                    host.underlay_address.addr()
                ),
            ));
            seen.insert(host.underlay_address.addr(), first);
        }
    }
}

/// Addresses are unique within one VLAN network and within the routed network;
/// the same address on two VLANs is fine, they are isolated.
fn unique_container_addresses(topology: &Topology, problems: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<(&str, std::net::Ipv4Addr), &str> = HashMap::new();
    for container in topology.containers.values() {
        for iface in &container.interfaces {
            let key = (iface.network.as_str(), iface.address.addr());
            match seen.get(&key) {
                Some(first) => problems.push(Diagnostic::value(
                    &iface.origin.key("address"),
                    format!(
                        "{} is already container {first:?}'s address on network {:?}",
                        iface.address.addr(),
                        iface.network
                    ),
                )),
                None => {
                    seen.insert(key, &container.name);
                }
            }
        }
    }
    // A hosted VLAN gateway also occupies its address.
    for (name, network) in &topology.networks {
        if let Network::Vlan(VlanNetwork {
            gateway: Some(gateway),
            ..
        }) = network
        {
            if let Some(container) = seen.get(&(name.as_str(), gateway.address())) {
                problems.push(Diagnostic::value(
                    &networks_at().key(name).key("gateway"),
                    format!(
                        "gateway {} is container {container:?}'s address",
                        gateway.address()
                    ),
                ));
            }
        }
    }
}

/// A pooled Docker container must never get a declared container's address.
fn pools_without_fixed_addresses(topology: &Topology, problems: &mut Vec<Diagnostic>) {
    for container in topology.containers.values() {
        for iface in &container.interfaces {
            let Some(vlan) = topology.vlan(&iface.network) else {
                continue;
            };
            for (host, pool) in &vlan.pools {
                if pool.contains(&iface.address.addr()) {
                    problems.push(Diagnostic::value(
                        &networks_at().key(&vlan.name).key("pools").key(host),
                        format!(
                            "pool {pool} contains {}, container {:?}'s address on network {:?}",
                            iface.address.addr(),
                            container.name,
                            vlan.name
                        ),
                    ));
                }
            }
        }
    }
}

fn unique_macs(topology: &Topology, problems: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<Mac, (&str, &str)> = HashMap::new();
    for container in topology.containers.values() {
        for iface in &container.interfaces {
            match seen.get(&iface.mac) {
                Some((first, ifname)) => problems.push(Diagnostic::value(
                    &iface.origin.key("mac"),
                    format!("MAC {} is already used by {first}/{ifname}", iface.mac),
                )),
                None => {
                    seen.insert(iface.mac, (&container.name, &iface.ifname));
                }
            }
        }
    }
}

/// Hosts that take part in each VLAN network: members' hosts, a hosted gateway,
/// and hosts with a pool (their Docker containers may join at any time).
pub fn vlan_hosts(topology: &Topology) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut hosts: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, network) in &topology.networks {
        if let Network::Vlan(vlan) = network {
            let entry = hosts.entry(name.as_str()).or_default();
            if let Some(VlanGateway::Hosted { host, .. }) = &vlan.gateway {
                entry.insert(host.as_str());
            }
            entry.extend(vlan.pools.keys().map(String::as_str));
        }
    }
    for container in topology.containers.values() {
        for iface in &container.interfaces {
            if let Some(entry) = hosts.get_mut(iface.network.as_str()) {
                entry.insert(container.host.as_str());
            }
        }
    }
    hosts
}

fn uplink_nics_present(topology: &Topology, problems: &mut Vec<Diagnostic>) {
    if topology.mesh.vlan_transport != VlanTransport::Uplink {
        return;
    }
    let needing: BTreeSet<&str> = vlan_hosts(topology).into_values().flatten().collect();
    for name in needing {
        if let Some(host) = topology.hosts.get(name) {
            if host.uplink_nic.is_none() {
                problems.push(Diagnostic::key(
                    &host.origin,
                    "vlan_transport = \"uplink\" needs `uplink_nic` on hosts with VLAN members",
                ));
            }
        }
    }
}

/// The MTU budget of each network's path across its hosts.
pub fn network_budgets(topology: &Topology) -> BTreeMap<String, u32> {
    let mut budgets = BTreeMap::new();
    for (name, hosts) in vlan_hosts(topology) {
        budgets.insert(name.to_string(), vlan_budget(topology, &hosts));
    }
    if let Some(routed) = topology.routed() {
        budgets.insert(routed.name.clone(), routed_budget(topology, routed));
    }
    budgets
}

/// The smallest underlay MTU of `hosts` (the mesh's when there are none).
fn path_underlay_mtu<'a>(topology: &Topology, hosts: impl Iterator<Item = &'a str>) -> u32 {
    hosts
        .filter_map(|h| topology.hosts.get(h))
        .map(|h| h.underlay_mtu)
        .min()
        .unwrap_or(topology.mesh.underlay_mtu)
}

/// The budget of a VLAN network whose members live on `hosts` ([`vlan_hosts`]).
pub fn vlan_budget(topology: &Topology, hosts: &BTreeSet<&str>) -> u32 {
    let mesh = &topology.mesh;
    let tunnel = (mesh.vlan_transport == VlanTransport::Tunnel).then_some((mesh.encap, true));
    mtu::budget(path_underlay_mtu(topology, hosts.iter().copied()), tunnel)
}

/// The budget of the routed network, across every host with a subnet.
pub fn routed_budget(topology: &Topology, routed: &RoutedNetwork) -> u32 {
    let underlay = path_underlay_mtu(topology, routed.subnets.keys().map(String::as_str));
    let tunnel = (routed.mode == RoutedMode::Tunnel).then_some((topology.mesh.encap, false));
    mtu::budget(underlay, tunnel)
}

fn apply_mtu_budgets(topology: &mut Topology, problems: &mut Vec<Diagnostic>) {
    let budgets = network_budgets(topology);
    for container in topology.containers.values_mut() {
        for iface in &mut container.interfaces {
            let Some(&budget) = budgets.get(&iface.network) else {
                continue;
            };
            if iface.mtu == 0 {
                iface.mtu = budget;
            } else if iface.mtu > budget {
                problems.push(Diagnostic::value(
                    &iface.origin.key("mtu"),
                    format!(
                        "MTU {} is above the path budget {budget} of network {:?} (underlay MTU minus encapsulation)",
                        iface.mtu, iface.network
                    ),
                ));
            }
        }
    }
}

/// Derived port names must be unique per host (OVS indexes names globally).
fn unique_port_names(topology: &Topology, problems: &mut Vec<Diagnostic>) {
    let mesh = &topology.mesh;
    let mut tunnel_names: HashMap<String, KeyPath> = HashMap::new();
    for host in topology.hosts.values() {
        for (role, bridge) in [
            (BridgeRole::Vlan, &mesh.vlan_bridge),
            (BridgeRole::Overlay, &mesh.overlay_bridge),
        ] {
            let name = names::tunnel_port(&mesh.name, role, bridge, &host.name);
            if tunnel_names
                .insert(name.clone(), host.origin.clone())
                .is_some()
            {
                problems.push(Diagnostic::key(
                    &host.origin,
                    format!("derived tunnel port name {name} clashes; rename the host"),
                ));
            }
        }
    }
    let mut per_host: HashMap<&str, HashMap<String, KeyPath>> = HashMap::new();
    for container in topology.containers.values() {
        let names_here = per_host.entry(container.host.as_str()).or_default();
        for iface in &container.interfaces {
            let name = names::access_port(&mesh.name, &container.name, &iface.ifname);
            let clash = tunnel_names.contains_key(&name) || names_here.contains_key(&name);
            if clash {
                problems.push(Diagnostic::key(
                    &container.origin,
                    format!("derived port name {name} clashes with another port on host {:?}; rename the container", container.host),
                ));
            }
            names_here.insert(name, iface.origin.clone());
        }
    }
}
