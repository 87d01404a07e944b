//! Rules that compare entries across the whole cluster.
//!
//! A duplicate address, an overlapping subnet or a tunnel path too small for the
//! configured MTU only shows when looking at every host, network and container
//! together; these are the checks pipework never made. They also settle what
//! depends on the whole topology: each interface's effective MTU.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::net::IpAddr;

use ipnet::IpNet;

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

/// Routed subnets overlap neither each other nor a VLAN network's subnet, in
/// either family (VLAN networks are isolated from each other: they may overlap).
fn disjoint_subnets(topology: &Topology, problems: &mut Vec<Diagnostic>) {
    let Some(routed) = topology.routed() else {
        return;
    };
    let families: [(&str, Vec<(&String, IpNet)>); 2] = [
        (
            "subnets",
            routed
                .subnets
                .iter()
                .map(|(h, s)| (h, IpNet::V4(*s)))
                .collect(),
        ),
        (
            "subnets6",
            routed
                .subnets6
                .iter()
                .map(|(h, s)| (h, IpNet::V6(*s)))
                .collect(),
        ),
    ];
    for (key, subnets) in families {
        let mut checked: Vec<(&str, IpNet)> = Vec::new();
        for (host, subnet) in subnets {
            let path = networks_at().key(&routed.name).key(key).key(host);
            if let Some((other, other_net)) = checked.iter().find(|(_, n)| overlaps(*n, subnet)) {
                problems.push(Diagnostic::value(
                    &path,
                    format!("{subnet} overlaps {other}'s subnet {other_net}"),
                ));
            }
            for (name, network) in &topology.networks {
                let Network::Vlan(vlan) = network else {
                    continue;
                };
                for (vlan_net, _) in vlan.families() {
                    if overlaps(vlan_net, subnet) {
                        problems.push(Diagnostic::value(
                            &path,
                            format!(
                                "{subnet} overlaps the subnet {vlan_net} of VLAN network {name:?}"
                            ),
                        ));
                    }
                }
            }
            checked.push((host, subnet));
        }
    }
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn unique_underlay_addresses(topology: &Topology, problems: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<IpAddr, &str> = HashMap::new();
    for host in topology.hosts.values() {
        for (key, family) in [
            ("underlay_address", Family::Ipv4),
            ("underlay_address6", Family::Ipv6),
        ] {
            let Some(address) = host.underlay(family).map(|n| n.addr()) else {
                continue;
            };
            match seen.get(&address) {
                Some(first) => problems.push(Diagnostic::value(
                    &host.origin.key(key),
                    format!("{address} is already host {first:?}'s underlay address"),
                )),
                None => {
                    seen.insert(address, &host.name);
                }
            }
        }
    }
}

/// Addresses are unique within one VLAN network and within the routed network;
/// the same address on two VLANs is fine, they are isolated.
fn unique_container_addresses(topology: &Topology, problems: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<(&str, IpAddr), &str> = HashMap::new();
    for container in topology.containers.values() {
        for iface in &container.interfaces {
            for address in iface.addresses() {
                let key = (iface.network.as_str(), address.addr());
                let field = match address {
                    IpNet::V4(_) => "address",
                    IpNet::V6(_) => "address6",
                };
                match seen.get(&key) {
                    Some(first) => problems.push(Diagnostic::value(
                        &iface.origin.key(field),
                        format!(
                            "{} is already container {first:?}'s address on network {:?}",
                            address.addr(),
                            iface.network
                        ),
                    )),
                    None => {
                        seen.insert(key, &container.name);
                    }
                }
            }
        }
    }
    // A hosted VLAN gateway also occupies its address.
    for (name, network) in &topology.networks {
        let Network::Vlan(vlan) = network else {
            continue;
        };
        let gateways = [
            (
                "gateway",
                vlan.gateway.as_ref().map(|g| IpAddr::V4(g.address())),
            ),
            (
                "gateway6",
                vlan.gateway6.as_ref().map(|g| IpAddr::V6(g.address())),
            ),
        ];
        for (key, gateway) in gateways {
            let Some(gateway) = gateway else { continue };
            if let Some(container) = seen.get(&(name.as_str(), gateway)) {
                problems.push(Diagnostic::value(
                    &networks_at().key(name).key(key),
                    format!("gateway {gateway} is container {container:?}'s address"),
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
            // Pools are IPv4: an IPv6-only interface takes nothing from them.
            let Some(address) = iface.address.map(|a| a.addr()) else {
                continue;
            };
            for (host, pool) in &vlan.pools {
                if pool.contains(&address) {
                    problems.push(Diagnostic::value(
                        &networks_at().key(&vlan.name).key("pools").key(host),
                        format!(
                            "pool {pool} contains {}, container {:?}'s address on network {:?}",
                            address, container.name, vlan.name
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
            for gateway in [
                vlan.gateway.as_ref().and_then(VlanGateway::host),
                vlan.gateway6.as_ref().and_then(VlanGateway::host),
            ] {
                entry.extend(gateway);
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

/// The mesh's tunnels, carrying VLAN tags or not.
fn tunnel(mesh: &Mesh, tagged: bool) -> mtu::Tunnel {
    mtu::Tunnel {
        encap: mesh.encap,
        underlay: mesh.underlay,
        tagged,
    }
}

/// The budget of a VLAN network whose members live on `hosts` ([`vlan_hosts`]).
pub fn vlan_budget(topology: &Topology, hosts: &BTreeSet<&str>) -> u32 {
    let mesh = &topology.mesh;
    let tunnel = (mesh.vlan_transport == VlanTransport::Tunnel).then(|| tunnel(mesh, true));
    mtu::budget(path_underlay_mtu(topology, hosts.iter().copied()), tunnel)
}

/// The budget of the routed network, across every host with a subnet.
pub fn routed_budget(topology: &Topology, routed: &RoutedNetwork) -> u32 {
    let underlay = path_underlay_mtu(topology, routed.hosts().into_iter());
    let tunnel = (routed.mode == RoutedMode::Tunnel).then(|| tunnel(&topology.mesh, false));
    mtu::budget(underlay, tunnel)
}

fn apply_mtu_budgets(topology: &mut Topology, problems: &mut Vec<Diagnostic>) {
    let budgets = network_budgets(topology);
    for container in topology.containers.values_mut() {
        for iface in &mut container.interfaces {
            let Some(&budget) = budgets.get(&iface.network) else {
                continue;
            };
            let configured = iface.mtu != 0;
            if !configured {
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
            if iface.address6.is_some() && iface.mtu < mtu::IPV6_MIN_MTU {
                let (key, why) = if configured {
                    ("mtu", format!("MTU {}", iface.mtu))
                } else {
                    (
                        "address6",
                        format!("the path budget {budget} of network {:?}", iface.network),
                    )
                };
                problems.push(Diagnostic::value(
                    &iface.origin.key(key),
                    format!(
                        "{why} is below IPv6's minimum MTU {}: Linux turns IPv6 off on a smaller link",
                        mtu::IPV6_MIN_MTU
                    ),
                ));
            }
        }
    }
    // Gateways ovsmesh holds get the network's budget too.
    for (name, network) in &topology.networks {
        let key = match network {
            Network::Vlan(vlan) if vlan.gateway6.as_ref().and_then(VlanGateway::host).is_some() => {
                "gateway6"
            }
            Network::Routed(routed) if !routed.subnets6.is_empty() => "subnets6",
            _ => continue,
        };
        if let Some(&budget) = budgets.get(name) {
            if budget < mtu::IPV6_MIN_MTU {
                problems.push(Diagnostic::key(
                    &networks_at().key(name).key(key),
                    format!(
                        "the path budget {budget} is below IPv6's minimum MTU {}: Linux turns IPv6 off on a smaller link (raise the underlay MTU)",
                        mtu::IPV6_MIN_MTU
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
