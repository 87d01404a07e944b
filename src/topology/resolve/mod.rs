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
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

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

    /// `ADDRESS/PREFIX` that must name a host address (not the network or broadcast).
    pub fn host_cidr(&mut self, path: &KeyPath, text: &str) -> Option<Ipv4Net> {
        let net = self.parse_net(path, text, "ADDRESS/PREFIX, e.g. 192.0.2.11/24")?;
        self.check_host_address(path, net.addr(), net);
        Some(net)
    }

    fn parse_net(&mut self, path: &KeyPath, text: &str, example: &str) -> Option<Ipv4Net> {
        match text.parse::<Ipv4Net>() {
            Ok(net) => Some(net),
            Err(_)
                if text.parse::<ipnet::Ipv6Net>().is_ok()
                    || text.parse::<std::net::Ipv6Addr>().is_ok() =>
            {
                self.error(
                    path,
                    format!("{text:?} is IPv6; ovsmesh supports IPv4 only for now"),
                );
                None
            }
            Err(_) => {
                self.error(path, format!("{text:?} is not {example}"));
                None
            }
        }
    }

    /// A network in CIDR form whose host bits are zero.
    pub fn network_cidr(&mut self, path: &KeyPath, text: &str) -> Option<Ipv4Net> {
        let net = self.parse_net(path, text, "a network like 192.168.0.0/24")?;
        if net.trunc() != net {
            self.error(
                path,
                format!("{text:?} has host bits set; did you mean {}?", net.trunc()),
            );
            return None;
        }
        Some(net)
    }

    pub fn address(&mut self, path: &KeyPath, text: &str) -> Option<Ipv4Addr> {
        match text.parse::<Ipv4Addr>() {
            Ok(address) => Some(address),
            Err(_) if text.parse::<std::net::Ipv6Addr>().is_ok() => {
                self.error(
                    path,
                    format!("{text:?} is IPv6; ovsmesh supports IPv4 only for now"),
                );
                None
            }
            Err(_) => {
                self.error(path, format!("{text:?} is not an IPv4 address"));
                None
            }
        }
    }

    /// Reject the network and broadcast addresses of `net` (for prefixes up to /30).
    fn check_host_address(&mut self, path: &KeyPath, address: Ipv4Addr, net: Ipv4Net) {
        if net.prefix_len() <= 30 {
            if address == net.network() {
                self.error(
                    path,
                    format!("{address} is the network address of {}", net.trunc()),
                );
            } else if address == net.broadcast() {
                self.error(
                    path,
                    format!("{address} is the broadcast address of {}", net.trunc()),
                );
            }
        }
    }

    fn routes(
        &mut self,
        path: &KeyPath,
        raw: &[RawRoute],
        on_link: Option<Ipv4Net>,
        link_name: &str,
    ) -> Vec<Route> {
        let mut routes = Vec::new();
        for (i, route) in raw.iter().enumerate() {
            let at = path.index(i);
            let to = self.network_cidr(&at.key("to"), &route.to);
            let via = self.address(&at.key("via"), &route.via);
            if let (Some(via), Some(link)) = (via, on_link) {
                if !link.trunc().contains(&via) {
                    self.error(
                        &at.key("via"),
                        format!(
                            "next hop {via} is not on-link: {link_name} is {}",
                            link.trunc()
                        ),
                    );
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
