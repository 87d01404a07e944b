//! The mesh's rules in the host firewall: which rules a host needs (pure, from
//! the topology and the host's desired addresses), and where they go on the
//! host as found (settled against the observed firewall, see [`place`]).
//!
//! Accept rules, only these, for forwarded traffic (Docker leaves the FORWARD
//! policy DROP, and a host that routes the mesh's traffic would drop all of it):
//! - between every two routing interfaces of the host (the devices holding a
//!   gateway address ovsmesh puts there: the overlay bridge, hosted VLAN gateway
//!   ports): `-i A -o B`;
//! - tunnel mode: `-i obr0 -o obr0` (to and from peers' subnets, packets enter
//!   and leave the overlay bridge);
//! - direct mode, per peer subnet P (own subnet S): `-i obr0 -s S -d P` and
//!   `-o obr0 -s P -d S` (the underlay device is not named: it may be any NIC);
//! - `egress = "nat"`, per network the host routes (its routed subnet, a VLAN
//!   network whose gateway it holds) on device D with subnet N: `-i D -s N` out
//!   to anywhere, `-o D -d N` for the replies (conntrack RELATED,ESTABLISHED),
//!   and a [`Masquerade`] of N that keeps the source address for every subnet of
//!   the mesh (and multicast), so cross-host container traffic is never translated.
//!
//! Each for every family the host routes: an IPv6 rule is the same rule with
//! `family` IPv6 (written by `ip6tables`, or with `meta nfproto ipv6`).
//! Egress of IPv6 is accepted but never translated: NAT66 is not offered (an
//! IPv6 container subnet is meant to be a prefix the upstream routes back).
//!
//! Traffic between the mesh and anything else stays the admin's policy unless a
//! network asks for egress. `[mesh] manage_firewall = false`: no rules.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::state::{
    Accept, AddressRole, Conflict, FirewallHost, FirewallRule, HostState, Masquerade, Place, Rule,
};
use crate::topology::{names, Egress, Family, Network, RoutedMode, Topology};

/// Docker's chain for the admin's rules, evaluated first from FORWARD.
pub const DOCKER_CHAIN: &str = "DOCKER-USER";
/// ovsmesh's own filter chain, jumped to from FORWARD when Docker's does not exist.
pub const OWN_FORWARD: &str = "OVSMESH-FORWARD";
/// ovsmesh's own nat chain, jumped to from POSTROUTING.
pub const OWN_POSTROUTING: &str = "OVSMESH-POSTROUTING";

/// The rules `desired` (one host's state, addresses filled in) needs, at their
/// logical places ([`Place::Forward`], [`Place::SourceNat`]), for each family
/// the host routes.
pub fn rules(topology: &Topology, desired: &HostState) -> BTreeMap<String, FirewallRule> {
    let mut out = BTreeMap::new();
    if !topology.mesh.manage_firewall {
        return out;
    }
    let mut add = |rule: Rule, place: Place| {
        out.insert(rule.id(), FirewallRule::new(rule, place));
    };
    let accept = |accept: Accept| Rule::Accept(accept);
    let overlay = &topology.mesh.overlay_bridge;
    for family in [Family::Ipv4, Family::Ipv6] {
        let mut routing: Vec<&str> = Vec::new();
        let mut own_subnet = None;
        for address in desired.addresses.values() {
            if Family::of(address.address.addr()) != family {
                continue;
            }
            match address.role {
                AddressRole::OverlayGateway => own_subnet = Some(address.address.trunc()),
                AddressRole::VlanGateway => {}
                AddressRole::Underlay => continue,
            }
            if !routing.contains(&address.dev.as_str()) {
                routing.push(&address.dev);
            }
        }
        for a in &routing {
            for b in routing.iter().filter(|b| *b != a) {
                add(
                    accept(Accept {
                        family,
                        in_if: Some(a.to_string()),
                        out_if: Some(b.to_string()),
                        ..Accept::default()
                    }),
                    Place::Forward,
                );
            }
        }
        let (Some(routed), Some(own)) = (topology.routed(), own_subnet) else {
            continue;
        };
        match routed.mode {
            RoutedMode::Tunnel => add(
                accept(Accept {
                    family,
                    in_if: Some(overlay.clone()),
                    out_if: Some(overlay.clone()),
                    ..Accept::default()
                }),
                Place::Forward,
            ),
            RoutedMode::Direct => {
                for peer in routed.hosts() {
                    if peer == desired.host {
                        continue;
                    }
                    let theirs = routed
                        .subnets_of(peer)
                        .into_iter()
                        .find(|(s, _)| Family::of(s.addr()) == family);
                    let Some((peer, _)) = theirs else { continue };
                    add(
                        accept(Accept {
                            family,
                            in_if: Some(overlay.clone()),
                            src: Some(own),
                            dst: Some(peer),
                            ..Accept::default()
                        }),
                        Place::Forward,
                    );
                    add(
                        accept(Accept {
                            family,
                            out_if: Some(overlay.clone()),
                            src: Some(peer),
                            dst: Some(own),
                            ..Accept::default()
                        }),
                        Place::Forward,
                    );
                }
            }
        }
    }
    let keep = mesh_subnets(topology);
    for (dev, network) in egress_networks(topology, &desired.host) {
        let family = Family::of(network.addr());
        add(
            accept(Accept {
                family,
                in_if: Some(dev.clone()),
                src: Some(network),
                ..Accept::default()
            }),
            Place::Forward,
        );
        add(
            accept(Accept {
                family,
                out_if: Some(dev),
                dst: Some(network),
                replies: true,
                ..Accept::default()
            }),
            Place::Forward,
        );
        // IPv6 leaves routed: NAT66 is not offered (see README "The host firewall").
        if family == Family::Ipv4 {
            add(
                Rule::Masquerade(Masquerade {
                    source: network,
                    keep: keep.clone(),
                }),
                Place::SourceNat,
            );
        }
    }
    out
}

/// The networks with `egress = "nat"` that `host` routes: the device that
/// holds their gateway here, and their subnet, of each family (IPv4's is
/// masqueraded, IPv6's leaves routed).
pub fn egress_networks(topology: &Topology, host: &str) -> Vec<(String, IpNet)> {
    let mesh = &topology.mesh;
    let mut out = Vec::new();
    for network in topology.networks.values() {
        match network {
            Network::Routed(routed) if routed.egress == Egress::Nat => {
                for (subnet, _) in routed.subnets_of(host) {
                    out.push((mesh.overlay_bridge.clone(), subnet));
                }
            }
            Network::Vlan(vlan) if vlan.egress == Egress::Nat => {
                let port = names::gateway_port(&mesh.name, &vlan.name);
                for (at, address) in vlan.hosted_gateways() {
                    if at == host {
                        out.push((port.clone(), address.trunc()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Every IPv4 subnet of the mesh, aggregated (what a masquerade keeps): the
/// routed subnets, the VLAN networks' subnets, and for a VLAN network without
/// one its containers' networks.
fn mesh_subnets(topology: &Topology) -> Vec<IpNet> {
    let mut nets: Vec<IpNet> = Vec::new();
    for network in topology.networks.values() {
        match network {
            Network::Routed(routed) => nets.extend(routed.subnets.values().map(|s| IpNet::V4(*s))),
            Network::Vlan(vlan) => match vlan.subnet {
                Some(subnet) => nets.push(IpNet::V4(subnet)),
                None => nets.extend(
                    topology
                        .containers
                        .values()
                        .flat_map(|c| &c.interfaces)
                        .filter(|i| i.network == vlan.name)
                        .filter_map(|i| i.address.map(|a| IpNet::V4(a.trunc()))),
                ),
            },
        }
    }
    IpNet::aggregate(&nets)
}

/// Fit the target's rules to the host's firewall as observed: the chain (or
/// nftables table) each goes into, and the jumps to ovsmesh's own iptables
/// chains. Without an observed firewall (an offline plan) the logical places
/// stay; where the firewall is missing nothing is managed; where it could not
/// be read, nothing changes and the plan says why (a conflict).
pub fn place(target: &mut HostState, observed: &HostState, conflicts: &mut Vec<Conflict>) {
    let Some(host) = &observed.firewall_host else {
        return;
    };
    // (IPv4's forward place, IPv6's, the nat place).
    let (forward, forward6, nat) = match host {
        FirewallHost::Iptables {
            docker_user,
            docker_user6,
            ..
        } => {
            let chain = |docker: bool| {
                let chain = if docker { DOCKER_CHAIN } else { OWN_FORWARD };
                Place::iptables("filter", chain)
            };
            (
                chain(*docker_user),
                chain(*docker_user6),
                Place::iptables("nat", OWN_POSTROUTING),
            )
        }
        FirewallHost::Nftables => {
            let forward = Place::Nftables {
                chain: "forward".into(),
            };
            (
                forward.clone(),
                forward,
                Place::Nftables {
                    chain: "postrouting".into(),
                },
            )
        }
        FirewallHost::Missing => {
            target.firewall.clear();
            return;
        }
        FirewallHost::Unreadable { error } => {
            if !target.firewall.is_empty() || !observed.firewall.is_empty() {
                conflicts.push(Conflict {
                    kind: crate::state::Kind::Firewall,
                    id: "ruleset".into(),
                    reason: format!(
                        "the host firewall could not be read ({error}); nothing in it is changed"
                    ),
                });
            }
            target.firewall = observed.firewall.clone();
            return;
        }
    };
    let mut jumps = Vec::new();
    for rule in target.firewall.values_mut() {
        let family = rule.rule.family();
        rule.place = match rule.place {
            Place::Forward if family == Family::Ipv6 => forward6.clone(),
            Place::Forward => forward.clone(),
            Place::SourceNat => nat.clone(),
            ref placed => placed.clone(),
        };
        if let Place::Iptables { table, chain } = &rule.place {
            let from = match chain.as_str() {
                OWN_FORWARD => "FORWARD",
                OWN_POSTROUTING => "POSTROUTING",
                _ => continue,
            };
            let jump = Rule::Jump {
                from: from.to_string(),
                to: chain.clone(),
                family,
            };
            jumps.push(FirewallRule::new(jump, Place::iptables(table, from)));
        }
    }
    for jump in jumps {
        target.firewall.insert(jump.rule.id(), jump);
    }
}

#[cfg(test)]
mod tests;
