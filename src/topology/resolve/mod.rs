//! From raw sections to the validated model, one entry at a time.
//!
//! Each entry is checked on its own here (formats, ranges, references to declared
//! names) and defaults are filled in; rules that compare entries with each other
//! live in `cluster`. Problems are collected, never returned early, so a user sees
//! every mistake in one run.
//!
//! This file holds the [`Resolver`] and the parsers every entry shares (addresses,
//! CIDRs, MTUs, routes, references, names); `host` resolves `[mesh]` and
//! `[hosts.*]`, `network` the `[networks.*]` and `container` the `[containers.*]`
//! entries. Entry keys are checked as names earlier, in `load`.

mod container;
mod host;
mod network;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::ident;
use super::load::Sections;
use super::model::*;
use super::names;
use super::raw::*;
use super::source::{Diagnostic, KeyPath};

/// Collects problems while resolving.
pub struct Resolver<'a> {
    pub problems: &'a mut Vec<Diagnostic>,
    declared_hosts: BTreeSet<String>,
    declared_networks: BTreeSet<String>,
}

const MIN_MTU: u32 = 68;
const MAX_MTU: u32 = 65535;
const MAX_VNI: u64 = (1 << 24) - 1;

impl<'a> Resolver<'a> {
    pub fn new(sections: &Sections, problems: &'a mut Vec<Diagnostic>) -> Self {
        Self {
            problems,
            declared_hosts: sections.declared_hosts.clone(),
            declared_networks: sections.declared_networks.clone(),
        }
    }

    fn error(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.problems.push(Diagnostic::value(path, message));
    }

    fn check_mtu(&mut self, path: &KeyPath, mtu: u32) {
        if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
            self.error(path, format!("MTU {mtu} is outside {MIN_MTU}..{MAX_MTU}"));
        }
    }

    pub fn check_ifname(&mut self, path: &KeyPath, name: &str) {
        if let Some(problem) = names::ifname_problem(name) {
            self.error(path, problem);
        }
    }

    fn host_ref(&mut self, path: &KeyPath, host: &str) -> bool {
        if self.declared_hosts.contains(host) {
            return true;
        }
        let known: Vec<&str> = self.declared_hosts.iter().map(String::as_str).collect();
        self.error(path, unknown_name("host", host, &known));
        false
    }

    fn network_ref(&mut self, path: &KeyPath, network: &str) -> bool {
        if self.declared_networks.contains(network) {
            return true;
        }
        let known: Vec<&str> = self.declared_networks.iter().map(String::as_str).collect();
        self.error(path, unknown_name("network", network, &known));
        false
    }

    /// `ADDRESS/PREFIX` of `family` that must name a host address (not IPv4's
    /// network or broadcast address, not IPv6's Subnet-Router anycast address).
    pub fn host_cidr_of(
        &mut self,
        path: &KeyPath,
        text: &str,
        family: Family,
        example: &str,
    ) -> Option<IpNet> {
        let net = self.parse_net(path, text, family, example)?;
        self.check_host_address(path, net.addr(), net);
        Some(net)
    }

    /// `ADDRESS/PREFIX` of `family`; one of the other family gets a hint to the
    /// key that takes it.
    fn parse_net(
        &mut self,
        path: &KeyPath,
        text: &str,
        family: Family,
        example: &str,
    ) -> Option<IpNet> {
        let parsed = text
            .parse::<IpNet>()
            .ok()
            .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from));
        match parsed {
            Some(net) if Family::of(net.addr()) == family && text.contains('/') => Some(net),
            Some(net) if Family::of(net.addr()) != family => {
                self.wrong_family(path, text, family);
                None
            }
            _ => {
                self.error(path, format!("{text:?} is not {example}"));
                None
            }
        }
    }

    /// A value of the other family than the key takes.
    fn wrong_family(&mut self, path: &KeyPath, text: &str, family: Family) {
        let other = match family {
            Family::Ipv4 => Family::Ipv6,
            Family::Ipv6 => Family::Ipv4,
        };
        let message = match sibling_key(path, other) {
            Some(key) => format!(
                "{text:?} is {}, this key takes {}: write it as `{key}`",
                other.name(),
                family.name()
            ),
            None => format!(
                "{text:?} is {}; this key takes {}",
                other.name(),
                family.name()
            ),
        };
        self.error(path, message);
    }

    /// A network in CIDR form whose host bits are zero.
    pub fn network_cidr(&mut self, path: &KeyPath, text: &str) -> Option<Ipv4Net> {
        match self.network_cidr_of(path, text, Family::Ipv4)? {
            IpNet::V4(net) => Some(net),
            IpNet::V6(_) => None,
        }
    }

    /// An IPv6 network in CIDR form whose host bits are zero.
    pub fn network_cidr6(&mut self, path: &KeyPath, text: &str) -> Option<Ipv6Net> {
        match self.network_cidr_of(path, text, Family::Ipv6)? {
            IpNet::V6(net) => Some(net),
            IpNet::V4(_) => None,
        }
    }

    /// [`Self::network_cidr`] of `family`.
    fn network_cidr_of(&mut self, path: &KeyPath, text: &str, family: Family) -> Option<IpNet> {
        let example = match family {
            Family::Ipv4 => "a network like 192.168.0.0/24",
            Family::Ipv6 => "a network like fd00:1::/64",
        };
        let net = self.parse_net(path, text, family, example)?;
        self.host_bits_clear(path, text, net)
    }

    fn host_bits_clear(&mut self, path: &KeyPath, text: &str, net: IpNet) -> Option<IpNet> {
        if net.trunc() != net {
            self.error(
                path,
                format!("{text:?} has host bits set; did you mean {}?", net.trunc()),
            );
            return None;
        }
        Some(net)
    }

    /// A network of either family in CIDR form (a route's destination).
    fn any_network_cidr(&mut self, path: &KeyPath, text: &str) -> Option<IpNet> {
        match text.parse::<IpNet>() {
            Ok(net) => self.host_bits_clear(path, text, net),
            Err(_) => {
                self.error(
                    path,
                    format!("{text:?} is not a network like 192.168.0.0/24 or fd00:1::/64"),
                );
                None
            }
        }
    }

    /// A bare address of `family`.
    pub fn address_of(&mut self, path: &KeyPath, text: &str, family: Family) -> Option<IpAddr> {
        match text.parse::<IpAddr>() {
            Ok(address) if Family::of(address) == family => Some(address),
            Ok(_) => {
                self.wrong_family(path, text, family);
                None
            }
            Err(_) => {
                self.error(
                    path,
                    format!("{text:?} is not an {} address", family.name()),
                );
                None
            }
        }
    }

    /// Reject the addresses of `net` no host may have: IPv4's network and
    /// broadcast addresses (for prefixes up to /30), IPv6's Subnet-Router
    /// anycast address (all host bits zero, RFC 4291; up to /126).
    fn check_host_address(&mut self, path: &KeyPath, address: IpAddr, net: IpNet) {
        match net {
            IpNet::V4(v4) if net.prefix_len() <= 30 => {
                if address == IpAddr::V4(v4.network()) {
                    self.error(
                        path,
                        format!("{address} is the network address of {}", net.trunc()),
                    );
                } else if address == IpAddr::V4(v4.broadcast()) {
                    self.error(
                        path,
                        format!("{address} is the broadcast address of {}", net.trunc()),
                    );
                }
            }
            IpNet::V6(v6) if net.prefix_len() <= 126 && address == IpAddr::V6(v6.network()) => {
                self.error(
                    path,
                    format!(
                        "{address} is the Subnet-Router anycast address of {} (all host bits zero)",
                        net.trunc()
                    ),
                );
            }
            _ => {}
        }
    }

    /// Routes of either family; `links` holds the subnet each family's next hops
    /// must be on (`None`: that family has none here, `link_name` says whose).
    fn routes(
        &mut self,
        path: &KeyPath,
        raw: &[RawRoute],
        links: [Option<IpNet>; 2],
        link_name: &str,
        missing: [&str; 2],
    ) -> Vec<Route> {
        let mut routes = Vec::new();
        for (i, route) in raw.iter().enumerate() {
            let at = path.index(i);
            let to = self.any_network_cidr(&at.key("to"), &route.to);
            let family = to.map(|t| Family::of(t.addr())).unwrap_or_else(|| {
                route
                    .via
                    .parse::<IpAddr>()
                    .map(Family::of)
                    .unwrap_or_default()
            });
            let via = match route.via.parse::<IpAddr>() {
                Ok(via) if Family::of(via) == family => Some(via),
                Ok(via) => {
                    self.error(
                        &at.key("via"),
                        format!(
                            "next hop {via} is {}, but `to` is {}",
                            Family::of(via).name(),
                            family.name()
                        ),
                    );
                    None
                }
                Err(_) => {
                    self.error(
                        &at.key("via"),
                        format!("{:?} is not an IPv4 or IPv6 address", route.via),
                    );
                    None
                }
            };
            let slot = usize::from(family == Family::Ipv6);
            if let Some(via) = via {
                match links[slot] {
                    Some(link) if !link.trunc().contains(&via) => self.error(
                        &at.key("via"),
                        format!(
                            "next hop {via} is not on-link: {link_name} is {}",
                            link.trunc()
                        ),
                    ),
                    Some(_) => {}
                    None => self.error(
                        &at.key("via"),
                        format!(
                            "an {} route needs {} (its next hop must be on-link)",
                            family.name(),
                            missing[slot]
                        ),
                    ),
                }
            }
            if let (Some(to), Some(via)) = (to, via) {
                routes.push(Route { to, via });
            }
        }
        routes
    }

    /// A value that names something (mesh name, `netns`, `docker`), by its rule.
    fn check_name(&mut self, path: &KeyPath, kind: ident::Kind, name: &str) {
        if let Some(problem) = ident::problem(kind, name) {
            self.error(path, problem);
        }
    }
}

/// First usable address of a subnet, the default routed gateway.
pub fn first_host(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// First usable address of an IPv6 subnet (`::1` of the prefix), the default
/// routed IPv6 gateway.
pub fn first_host6(subnet: Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) + 1)
}

/// The key beside `path` that takes addresses of `family`, where there is one:
/// `address` ↔ `address6`, `subnet` ↔ `subnet6`, ….
fn sibling_key(path: &KeyPath, family: Family) -> Option<String> {
    let last = path.last_key()?;
    const PAIRS: &[(&str, &str)] = &[
        ("address", "address6"),
        ("subnet", "subnet6"),
        ("gateway", "gateway6"),
        ("underlay_address", "underlay_address6"),
        ("subnets", "subnets6"),
        ("gateways", "gateways6"),
    ];
    // Under a table (`subnets.HOST`, `gateway.address`) the table's name decides.
    let parent = path.parent().and_then(|p| p.last_key().map(str::to_string));
    let is_pair = |k: &str| PAIRS.iter().any(|(a, b)| *a == k || *b == k);
    let key = match parent {
        Some(parent) if last == "address" && parent.starts_with("gateway") => parent,
        _ if is_pair(last) => last.to_string(),
        Some(parent) if is_pair(&parent) => parent,
        _ => return None,
    };
    PAIRS.iter().find_map(|(v4, v6)| match family {
        Family::Ipv6 if key == *v4 => Some(v6.to_string()),
        Family::Ipv4 if key == *v6 => Some(v4.to_string()),
        _ => None,
    })
}

fn unknown_name(kind: &str, name: &str, known: &[&str]) -> String {
    let closest = known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(distance, _)| *distance <= 2)
        .min();
    match closest {
        Some((_, suggestion)) => format!("unknown {kind} {name:?}; did you mean {suggestion:?}?"),
        None if known.is_empty() => format!("unknown {kind} {name:?}: no {kind}s are defined"),
        None => format!("unknown {kind} {name:?}; defined: {}", known.join(", ")),
    }
}

/// Why an OVSDB remote string is unusable, or `None`.
pub fn ovsdb_remote_problem(remote: &str) -> Option<String> {
    if let Some(path) = remote.strip_prefix("unix:") {
        return path
            .is_empty()
            .then(|| "unix: remote needs a socket path".to_string());
    }
    for scheme in ["tcp:", "ssl:"] {
        if let Some(rest) = remote.strip_prefix(scheme) {
            let ok = rest
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            return (!ok).then(|| format!("{remote:?} is not {scheme}HOST:PORT"));
        }
    }
    Some(format!(
        "{remote:?} is not an OVSDB remote: use unix:PATH or tcp:HOST:PORT"
    ))
}
