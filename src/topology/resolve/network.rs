//! `[networks.*]`: VLAN segments and the routed overlay.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

use super::{first_host, first_host6, Resolver};
use crate::topology::model::*;
use crate::topology::raw::*;
use crate::topology::source::KeyPath;

impl Resolver<'_> {
    pub fn network(
        &mut self,
        mesh: &Mesh,
        name: &str,
        raw: &RawNetwork,
        hosts: &BTreeMap<String, Host>,
    ) -> Option<Network> {
        let at = KeyPath::root().key("networks").key(name);
        let egress = match raw {
            RawNetwork::Vlan(vlan) => vlan.egress,
            RawNetwork::Routed(routed) => routed.egress,
        };
        if egress == Egress::Nat && !mesh.manage_firewall {
            self.error(
                &at.key("egress"),
                "egress = \"nat\" needs the host firewall (the masquerading happens there), and [mesh] manage_firewall = false leaves the firewall to you",
            );
        }
        match raw {
            RawNetwork::Vlan(vlan) => self.vlan_network(&at, name, vlan).map(Network::Vlan),
            RawNetwork::Routed(routed) => self
                .routed_network(&at, name, routed, hosts)
                .map(Network::Routed),
        }
    }

    fn vlan_network(
        &mut self,
        at: &KeyPath,
        name: &str,
        raw: &RawVlanNetwork,
    ) -> Option<VlanNetwork> {
        let vlan_ok = (1..=4094).contains(&raw.vlan);
        if !vlan_ok {
            self.error(
                &at.key("vlan"),
                format!("VLAN tag {} is outside 1..4094", raw.vlan),
            );
        }
        let subnet = raw
            .subnet
            .as_ref()
            .and_then(|s| self.network_cidr(&at.key("subnet"), s));
        let subnet6 = raw.subnet6.as_ref().and_then(|s| {
            let path = at.key("subnet6");
            let net = self.network_cidr6(&path, s)?;
            self.room_for_hosts(&path, IpNet::V6(net)).then_some(net)
        });
        let gateway = self
            .vlan_gateway(
                at,
                "gateway",
                &raw.gateway,
                raw.subnet.is_some(),
                subnet.map(IpNet::V4),
                Family::Ipv4,
            )
            .and_then(|g| {
                g.narrow(|a| match a {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                })
            });
        let gateway6 = self
            .vlan_gateway(
                at,
                "gateway6",
                &raw.gateway6,
                raw.subnet6.is_some(),
                subnet6.map(IpNet::V6),
                Family::Ipv6,
            )
            .and_then(|g| {
                g.narrow(|a| match a {
                    IpAddr::V6(a) => Some(a),
                    IpAddr::V4(_) => None,
                })
            });
        if raw.egress == Egress::Nat && !matches!(raw.gateway, Some(RawVlanGateway::Hosted(_))) {
            let why = match (&raw.gateway, &raw.gateway6) {
                (None, Some(RawVlanGateway::Hosted(_))) => {
                    "it has an IPv6 gateway only, and IPv6 is never translated (NAT66 is not offered: IPv6 leaves routed)"
                }
                (None, _) => "the network has no gateway",
                (Some(_), _) => "its gateway is an external router, not an ovsmesh host",
            };
            self.error(
                &at.key("egress"),
                format!("egress = \"nat\" needs a gateway on an ovsmesh host (gateway = {{ host = \"NAME\", address = \"ADDRESS\" }}), which masquerades the traffic leaving the mesh; {why}"),
            );
        }
        let pools = self.pools(at, raw, subnet, gateway.as_ref().map(VlanGateway::address));
        if !vlan_ok {
            return None;
        }
        Some(VlanNetwork {
            name: name.to_string(),
            vlan: raw.vlan as u16,
            subnet,
            gateway,
            subnet6,
            gateway6,
            egress: raw.egress,
            pools,
        })
    }

    /// `pools`: inside the subnet, disjoint, and never holding the subnet's
    /// network or broadcast address or the gateway (a pooled container would get
    /// it). Fixed container addresses are checked cluster-wide (`cluster`).
    fn pools(
        &mut self,
        at: &KeyPath,
        raw: &RawVlanNetwork,
        subnet: Option<Ipv4Net>,
        gateway: Option<std::net::Ipv4Addr>,
    ) -> BTreeMap<String, Ipv4Net> {
        let mut pools: BTreeMap<String, Ipv4Net> = BTreeMap::new();
        if raw.pools.is_empty() {
            return pools;
        }
        if raw.subnet.is_none() {
            self.error(
                &at.key("pools"),
                "pools need the network's `subnet` (they are ranges of it)",
            );
            return pools;
        }
        for (host, text) in &raw.pools {
            let path = at.key("pools").key(host);
            let known = self.host_ref(&path, host);
            let Some(pool) = self.network_cidr(&path, text) else {
                continue;
            };
            let Some(subnet) = subnet else { continue };
            if !subnet.contains(&pool) {
                self.error(&path, format!("pool {pool} is outside the subnet {subnet}"));
                continue;
            }
            let reserved = [
                (subnet.network(), "the subnet's network address"),
                (subnet.broadcast(), "the subnet's broadcast address"),
            ];
            let gateway = gateway.map(|g| (g, "the network's gateway"));
            if let Some((address, what)) = reserved
                .into_iter()
                .chain(gateway)
                .find(|(address, _)| pool.contains(address))
            {
                self.error(&path, format!("pool {pool} contains {address}, {what}"));
            }
            if let Some((other, theirs)) = pools
                .iter()
                .find(|(_, p)| p.contains(&pool.network()) || pool.contains(&p.network()))
            {
                self.error(
                    &path,
                    format!("pool {pool} overlaps host {other}'s pool {theirs}"),
                );
                continue;
            }
            if known {
                pools.insert(host.clone(), pool);
            }
        }
        pools
    }

    /// A VLAN network's gateway of `family` (`key`: `gateway` or `gateway6`):
    /// hosted on an ovsmesh host (which needs the subnet: its address gets
    /// that prefix) or an external router; inside the subnet when there is one.
    fn vlan_gateway(
        &mut self,
        at: &KeyPath,
        key: &str,
        raw: &Option<RawVlanGateway>,
        subnet_given: bool,
        subnet: Option<IpNet>,
        family: Family,
    ) -> Option<VlanGateway<IpAddr>> {
        let path = at.key(key);
        let subnet_key = if family == Family::Ipv4 {
            "subnet"
        } else {
            "subnet6"
        };
        let gateway = match raw.as_ref()? {
            RawVlanGateway::External(text) => {
                VlanGateway::External(self.address_of(&path, text, family)?)
            }
            RawVlanGateway::Hosted(hosted) => {
                let known = self.host_ref(&path.key("host"), &hosted.host);
                let address = self.address_of(&path.key("address"), &hosted.address, family);
                if !subnet_given {
                    self.error(
                        &path,
                        format!("a gateway on an ovsmesh host needs the network's `{subnet_key}` (its address gets that prefix)"),
                    );
                }
                match (known, address) {
                    (true, Some(address)) => VlanGateway::Hosted {
                        host: hosted.host.clone(),
                        address,
                    },
                    _ => return None,
                }
            }
        };
        if let Some(subnet) = subnet {
            let path = match gateway {
                VlanGateway::Hosted { .. } => path.key("address"),
                VlanGateway::External(_) => path.clone(),
            };
            if subnet.contains(&gateway.address()) {
                self.check_host_address(&path, gateway.address(), subnet);
            } else {
                self.error(
                    &path,
                    format!(
                        "gateway {} is outside the subnet {subnet}",
                        gateway.address()
                    ),
                );
            }
        }
        Some(gateway)
    }

    /// Whether an IPv6 subnet leaves room for a gateway and a container (up to /126).
    fn room_for_hosts(&mut self, path: &KeyPath, subnet: IpNet) -> bool {
        let limit = match subnet {
            IpNet::V4(_) => 30,
            IpNet::V6(_) => 126,
        };
        if subnet.prefix_len() > limit {
            self.error(
                path,
                format!("{subnet} is too small for a gateway and containers"),
            );
            return false;
        }
        true
    }

    fn routed_network(
        &mut self,
        at: &KeyPath,
        name: &str,
        raw: &RawRoutedNetwork,
        hosts: &BTreeMap<String, Host>,
    ) -> Option<RoutedNetwork> {
        let subnets: BTreeMap<String, ipnet::Ipv4Net> = self
            .routed_subnets(at, "subnets", &raw.subnets, Family::Ipv4)
            .into_iter()
            .filter_map(|(h, n)| match n {
                IpNet::V4(n) => Some((h, n)),
                IpNet::V6(_) => None,
            })
            .collect();
        let subnets6: BTreeMap<String, ipnet::Ipv6Net> = self
            .routed_subnets(at, "subnets6", &raw.subnets6, Family::Ipv6)
            .into_iter()
            .filter_map(|(h, n)| match n {
                IpNet::V6(n) => Some((h, n)),
                IpNet::V4(_) => None,
            })
            .collect();
        let as_ip = |map: &BTreeMap<String, ipnet::Ipv4Net>| -> BTreeMap<String, IpNet> {
            map.iter()
                .map(|(h, n)| (h.clone(), IpNet::V4(*n)))
                .collect()
        };
        let as_ip6 = |map: &BTreeMap<String, ipnet::Ipv6Net>| -> BTreeMap<String, IpNet> {
            map.iter()
                .map(|(h, n)| (h.clone(), IpNet::V6(*n)))
                .collect()
        };
        let mut gateways: BTreeMap<String, Ipv4Addr> = self
            .routed_gateways(
                at,
                "gateways",
                &raw.gateways,
                &raw.subnets,
                &as_ip(&subnets),
                Family::Ipv4,
            )
            .into_iter()
            .filter_map(|(h, a)| match a {
                IpAddr::V4(a) => Some((h, a)),
                IpAddr::V6(_) => None,
            })
            .collect();
        let mut gateways6: BTreeMap<String, Ipv6Addr> = self
            .routed_gateways(
                at,
                "gateways6",
                &raw.gateways6,
                &raw.subnets6,
                &as_ip6(&subnets6),
                Family::Ipv6,
            )
            .into_iter()
            .filter_map(|(h, a)| match a {
                IpAddr::V6(a) => Some((h, a)),
                IpAddr::V4(_) => None,
            })
            .collect();
        for (host, subnet) in &subnets {
            gateways
                .entry(host.clone())
                .or_insert_with(|| first_host(*subnet));
        }
        for (host, subnet) in &subnets6 {
            gateways6
                .entry(host.clone())
                .or_insert_with(|| first_host6(*subnet));
        }
        if raw.mode == RoutedMode::Direct {
            self.check_direct_on_link(at, "subnets", subnets.keys(), hosts, Family::Ipv4);
            self.check_direct_on_link(at, "subnets6", subnets6.keys(), hosts, Family::Ipv6);
        }
        if raw.egress == Egress::Nat && raw.subnets.is_empty() && !raw.subnets6.is_empty() {
            self.error(
                &at.key("egress"),
                "egress = \"nat\" masquerades IPv4 only (NAT66 is not offered: IPv6 leaves routed), and the network has no IPv4 `subnets`",
            );
        }
        Some(RoutedNetwork {
            name: name.to_string(),
            mode: raw.mode,
            subnets,
            gateways,
            subnets6,
            gateways6,
            egress: raw.egress,
        })
    }

    /// `subnets` / `subnets6`: host → subnet of `family`, each with room for a
    /// gateway and containers (IPv6: a /64 or longer).
    fn routed_subnets(
        &mut self,
        at: &KeyPath,
        key: &str,
        raw: &BTreeMap<String, String>,
        family: Family,
    ) -> BTreeMap<String, IpNet> {
        let mut subnets = BTreeMap::new();
        for (host, text) in raw {
            let path = at.key(key).key(host);
            let known = self.host_ref(&path, host);
            let Some(subnet) = self.network_cidr_of(&path, text, family) else {
                continue;
            };
            if family == Family::Ipv6 && subnet.prefix_len() < 64 {
                self.error(
                    &path,
                    format!(
                        "{subnet} is shorter than /64: each host's IPv6 subnet is a /64 or longer"
                    ),
                );
            } else if self.room_for_hosts(&path, subnet) && known {
                subnets.insert(host.clone(), subnet);
            }
        }
        subnets
    }

    /// `gateways` / `gateways6`: host → gateway address inside that host's subnet.
    fn routed_gateways(
        &mut self,
        at: &KeyPath,
        key: &str,
        raw_gateways: &BTreeMap<String, String>,
        raw_subnets: &BTreeMap<String, String>,
        subnets: &BTreeMap<String, IpNet>,
        family: Family,
    ) -> BTreeMap<String, IpAddr> {
        let subnets_key = if family == Family::Ipv4 {
            "subnets"
        } else {
            "subnets6"
        };
        let mut gateways = BTreeMap::new();
        for (host, text) in raw_gateways {
            let path = at.key(key).key(host);
            if !self.host_ref(&path, host) {
                continue;
            }
            let Some(address) = self.address_of(&path, text, family) else {
                continue;
            };
            match subnets.get(host) {
                None if raw_subnets.contains_key(host) => {}
                None => self.error(
                    &path,
                    format!("host {host:?} has no subnet in `{subnets_key}`"),
                ),
                Some(subnet) if !subnet.contains(&address) => {
                    self.error(
                        &path,
                        format!("gateway {address} is outside {host}'s subnet {subnet}"),
                    );
                }
                Some(subnet) => {
                    self.check_host_address(&path, address, *subnet);
                    gateways.insert(host.clone(), address);
                }
            }
        }
        gateways
    }

    /// Direct routing sends to a peer's underlay address (of the subnets'
    /// family) as next hop: every member needs one, on-link from the others.
    fn check_direct_on_link<'h>(
        &mut self,
        at: &KeyPath,
        key: &str,
        members: impl Iterator<Item = &'h String>,
        hosts: &BTreeMap<String, Host>,
        family: Family,
    ) {
        let members: Vec<&Host> = members.filter_map(|h| hosts.get(h)).collect();
        let underlay_key = match family {
            Family::Ipv4 => "underlay_address",
            Family::Ipv6 => "underlay_address6",
        };
        for host in &members {
            let Some(mine) = host.underlay(family) else {
                self.error(
                    &at.key(key).key(&host.name),
                    format!(
                        "mode \"direct\" routes {} via peers' {} underlay addresses, but {} has no `{underlay_key}`",
                        family.name(),
                        family.name(),
                        host.name
                    ),
                );
                continue;
            };
            for peer in &members {
                let Some(theirs) = peer.underlay(family) else {
                    continue;
                };
                if host.name != peer.name && !mine.trunc().contains(&theirs.addr()) {
                    self.error(
                        &at.key(key).key(&host.name),
                        format!(
                            "mode \"direct\" routes via peers' underlay addresses, but {}'s {} is not on-link from {} ({})",
                            peer.name,
                            theirs.addr(),
                            host.name,
                            mine.trunc()
                        ),
                    );
                }
            }
        }
    }
}
