//! What a host's own settings do to the mesh: warnings for `status` and
//! `apply`, and the one thing ovsmesh refuses to do.
//!
//! Pure functions of the topology, the desired state or plan, and the
//! [`HostFacts`] (or the firewall's rules) read beforehand, so each rule is
//! tested without a host. One home for each: the underlay MTU, an uplink NIC
//! that carries the host's address, `arp_ignore` on the routing bridge,
//! systemd-networkd removing foreign routes, and the firewall dropping the
//! tunnel protocol on INPUT.

use std::net::IpAddr;

use super::facts::HostFacts;
use super::iptables_read::{self, Packet, Protocol, Ruleset, Verdict};
use crate::marks::{self, Role};
use crate::plan::{Kind, Op, Plan};
use crate::state::{AddressRole, HostState, Item};
use crate::topology::{Datapath, Encap, Family, Mesh, RoutedMode, Topology};

/// `apply` would make an uplink NIC that carries the host's own address (or
/// default route) a trunk port: the host would lose it. Nothing is changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to apply on host {host}: uplink_nic {nic} {what}; as a trunk port of {bridge} it would carry only VLAN frames and cut the host off. Move the address (and routes) to another interface or name another NIC as uplink_nic; nothing was changed")]
pub struct UplinkRefused {
    pub host: String,
    pub nic: String,
    pub bridge: String,
    /// "holds 192.0.2.50/24", "carries the default route", or both.
    pub what: String,
}

/// The refusal, when the plan attaches an uplink NIC the host itself uses.
pub fn refuse_uplink(plan: &Plan, facts: &HostFacts) -> Option<UplinkRefused> {
    let uplink = facts.uplink.as_ref()?;
    let port = plan
        .changes
        .iter()
        .filter(|c| c.kind == Kind::Port && matches!(c.op, Op::Create | Op::Replace))
        .filter_map(|c| c.after.as_ref().and_then(Item::port))
        .find(|p| p.role == Role::Uplink && p.name == uplink.name)?;
    let mut what = Vec::new();
    if !uplink.addresses.is_empty() {
        let addresses: Vec<String> = uplink.addresses.iter().map(ToString::to_string).collect();
        what.push(format!("holds {}", addresses.join(", ")));
    }
    if uplink.default_route {
        what.push("carries the default route".to_string());
    }
    (!what.is_empty()).then(|| UplinkRefused {
        host: plan.host.clone(),
        nic: uplink.name.clone(),
        bridge: port.bridge.clone(),
        what: what.join(" and "),
    })
}

/// Warnings from the host's facts, for the host's desired state.
pub fn warnings(topology: &Topology, desired: &HostState, facts: &HostFacts) -> Vec<String> {
    let Some(host) = topology.hosts.get(&desired.host) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let tunnels = desired.ports.values().any(|p| p.role == Role::Tunnel);
    match &facts.underlay {
        Some(device) if device.mtu < host.underlay_mtu && !desired.bridges.is_empty() => {
            out.push(format!(
                "underlay device {} has MTU {}, smaller than the underlay_mtu {} the topology assumes for host {}: frames above {} bytes are dropped (ping passes, TCP stalls); set underlay_mtu = {} (hosts.{}.underlay_mtu or mesh.underlay_mtu)",
                device.name, device.mtu, host.underlay_mtu, host.name, device.mtu, device.mtu, host.name
            ));
        }
        None if tunnels => out.push(match &host.underlay_nic {
            Some(nic) => format!("underlay_nic {nic} does not exist on this host: tunnels to peers cannot work"),
            None => format!(
                "no interface of this host holds the underlay address {}: tunnels to peers cannot work (local_ip must be an address of this host)",
                host.tunnel_ip(topology.mesh.underlay)
            ),
        }),
        _ => {}
    }
    if let Some(uplink) = &facts.uplink {
        let attached = desired
            .ports
            .values()
            .any(|p| p.role == Role::Uplink && p.name == uplink.name);
        if attached && (!uplink.addresses.is_empty() || uplink.default_route) {
            out.push(format!(
                "uplink_nic {} carries the host's own address or default route: `apply` refuses to make it a trunk port of {}",
                uplink.name, topology.mesh.vlan_bridge
            ));
        }
    }
    out.extend(arp_ignore(topology, desired, facts));
    if facts.networkd_removes_foreign_routes && !desired.routes.is_empty() {
        out.push(format!(
            "systemd-networkd runs with ManageForeignRoutes=yes: it may remove ovsmesh's routes (protocol {}) when it reconfigures a link; add /etc/systemd/networkd.conf.d/ovsmesh.conf with `[Network] ManageForeignRoutes=no` (the daemon re-adds them meanwhile)",
            marks::ROUTE_PROTOCOL
        ));
    }
    out
}

/// The kernel answers ARP on a device by the larger of `all`'s and the
/// device's `arp_ignore`. Peers ask for this host's overlay gateway from their
/// own gateway address, which is in another subnet: 2 (sender in the same
/// subnet only) and 8 (never) leave them without an answer. In direct mode
/// only containers ask, from inside the subnet: 8 still breaks it.
fn arp_ignore(topology: &Topology, desired: &HostState, facts: &HostFacts) -> Option<String> {
    let gateway = desired
        .addresses
        .values()
        .find(|a| a.role == AddressRole::OverlayGateway && a.address.addr().is_ipv4())?;
    let all = facts.arp_ignore_all.unwrap_or(0);
    let own = facts.arp_ignore_overlay.unwrap_or(0);
    let effective = all.max(own);
    let mode = topology.routed().map(|r| r.mode)?;
    let breaks = match mode {
        RoutedMode::Tunnel => [2, 8].contains(&effective),
        RoutedMode::Direct => effective == 8,
    };
    let bridge = &gateway.dev;
    breaks.then(|| format!(
        "arp_ignore is {effective} on {bridge} (the larger of net.ipv4.conf.all.arp_ignore={all} and net.ipv4.conf.{bridge}.arp_ignore={own}): ARP requests for the gateway {} go unanswered and the routed overlay passes nothing; set net.ipv4.conf.all.arp_ignore and net.ipv4.conf.default.arp_ignore to 0 or 1 ({bridge} takes default's value when Open vSwitch creates it)",
        gateway.address.addr()
    ))
}

/// How the tunnel protocol is named to people.
pub fn tunnel_protocol(mesh: &Mesh) -> String {
    match (mesh.encap, mesh.udp_port()) {
        (Encap::Gre | Encap::Ip6gre, _) | (_, None) => "GRE (IP protocol 47)".to_string(),
        (Encap::Vxlan, Some(port)) => format!("VXLAN (UDP {port})"),
        (Encap::Geneve, Some(port)) => format!("Geneve (UDP {port})"),
    }
}

/// Warnings when the firewall's INPUT chain drops tunnel packets from peers.
/// The userspace datapath (netdev) takes tunnel packets before the host's IP
/// stack, so only kernel-datapath hosts are judged.
pub fn tunnel_input(
    topology: &Topology,
    desired: &HostState,
    facts: &HostFacts,
    ruleset: &Ruleset,
) -> Vec<String> {
    let Some(host) = topology.hosts.get(&desired.host) else {
        return Vec::new();
    };
    if host.datapath == Datapath::Netdev {
        return Vec::new();
    }
    let mesh = &topology.mesh;
    let protocol = match mesh.udp_port() {
        Some(port) => Protocol::Udp(port),
        None => Protocol::Gre,
    };
    let family = mesh.underlay;
    let mut peers: Vec<(&str, IpAddr)> = desired
        .ports
        .values()
        .filter(|p| p.role == Role::Tunnel)
        .filter_map(|p| p.external_ids.get(marks::PEER))
        .filter_map(|peer| topology.hosts.get(peer))
        .map(|peer| (peer.name.as_str(), peer.tunnel_ip(family)))
        .collect();
    peers.sort();
    peers.dedup();
    // Dropping rule or policy → peers it drops.
    let mut dropped: Vec<(String, Vec<(&str, IpAddr)>)> = Vec::new();
    for (name, address) in peers {
        let packet = Packet {
            protocol,
            source: Some(address),
            destination: Some(host.tunnel_ip(family)),
            in_interface: facts.underlay.as_ref().map(|d| d.name.as_str()),
        };
        if let Verdict::Dropped(by) = iptables_read::verdict(ruleset, "INPUT", &packet) {
            match dropped.iter_mut().find(|(reason, _)| *reason == by) {
                Some((_, list)) => list.push((name, address)),
                None => dropped.push((by, vec![(name, address)])),
            }
        }
    }
    let subnet = host.underlay(family).map(|net| net.trunc());
    let program = match family {
        Family::Ipv4 => "iptables",
        Family::Ipv6 => "ip6tables",
    };
    dropped
        .into_iter()
        .map(|(by, list)| {
            let names: Vec<String> = list.iter().map(|(n, a)| format!("{n} ({a})")).collect();
            let source = match subnet {
                Some(subnet) if list.iter().all(|(_, a)| subnet.contains(a)) => {
                    format!(" -s {subnet}")
                }
                _ => String::new(),
            };
            let rule = match protocol {
                Protocol::Gre => format!("{program} -I INPUT -p gre{source} -j ACCEPT"),
                Protocol::Udp(port) => {
                    format!("{program} -I INPUT -p udp --dport {port}{source} -j ACCEPT")
                }
            };
            format!(
                "the firewall drops {} from {} on INPUT ({by}): their tunnel packets never reach Open vSwitch; accept them, e.g. `{rule}`",
                tunnel_protocol(mesh),
                names.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
