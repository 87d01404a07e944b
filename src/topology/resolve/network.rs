//! `[networks.*]`: VLAN segments and the routed overlay.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use super::{first_host, Resolver};
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
        let gateway = match &raw.gateway {
            None => None,
            Some(RawVlanGateway::External(text)) => {
                let path = at.key("gateway");
                self.address(&path, text).map(VlanGateway::External)
            }
            Some(RawVlanGateway::Hosted(hosted)) => {
                let path = at.key("gateway");
                let known = self.host_ref(&path.key("host"), &hosted.host);
                let address = self.address(&path.key("address"), &hosted.address);
                if raw.subnet.is_none() {
                    self.error(
                        &path,
                        "a gateway on an ovsmesh host needs the network's `subnet` (its address gets that prefix)",
                    );
                }
                match (known, address) {
                    (true, Some(address)) => Some(VlanGateway::Hosted {
                        host: hosted.host.clone(),
                        address,
                    }),
                    _ => None,
                }
            }
        };
        if let (Some(gateway), Some(subnet)) = (&gateway, subnet) {
            let path = match gateway {
                VlanGateway::Hosted { .. } => at.key("gateway").key("address"),
                VlanGateway::External(_) => at.key("gateway"),
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
        if raw.egress == Egress::Nat && !matches!(raw.gateway, Some(RawVlanGateway::Hosted(_))) {
            let why = match raw.gateway {
                None => "the network has no gateway",
                Some(_) => "its gateway is an external router, not an ovsmesh host",
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

    fn routed_network(
        &mut self,
        at: &KeyPath,
        name: &str,
        raw: &RawRoutedNetwork,
        hosts: &BTreeMap<String, Host>,
    ) -> Option<RoutedNetwork> {
        let mut subnets = BTreeMap::new();
        for (host, text) in &raw.subnets {
            let path = at.key("subnets").key(host);
            let known = self.host_ref(&path, host);
            if let Some(subnet) = self.network_cidr(&path, text) {
                if subnet.prefix_len() > 30 {
                    self.error(
                        &path,
                        format!("{subnet} is too small for a gateway and containers"),
                    );
                } else if known {
                    subnets.insert(host.clone(), subnet);
                }
            }
        }
        let mut gateways = BTreeMap::new();
        for (host, text) in &raw.gateways {
            let path = at.key("gateways").key(host);
            if !self.host_ref(&path, host) {
                continue;
            }
            let Some(address) = self.address(&path, text) else {
                continue;
            };
            match subnets.get(host) {
                None if raw.subnets.contains_key(host) => {}
                None => self.error(&path, format!("host {host:?} has no subnet in `subnets`")),
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
        for (host, subnet) in &subnets {
            gateways
                .entry(host.clone())
                .or_insert_with(|| first_host(*subnet));
        }
        if raw.mode == RoutedMode::Direct {
            self.check_direct_on_link(at, &subnets, hosts);
        }
        Some(RoutedNetwork {
            name: name.to_string(),
            mode: raw.mode,
            subnets,
            gateways,
            egress: raw.egress,
        })
    }

    /// Direct routing sends to a peer's underlay address as next hop: it must be on-link.
    fn check_direct_on_link(
        &mut self,
        at: &KeyPath,
        subnets: &BTreeMap<String, Ipv4Net>,
        hosts: &BTreeMap<String, Host>,
    ) {
        let members: Vec<&Host> = subnets.keys().filter_map(|h| hosts.get(h)).collect();
        for host in &members {
            for peer in &members {
                if host.name != peer.name
                    && !host
                        .underlay_address
                        .trunc()
                        .contains(&peer.underlay_address.addr())
                {
                    self.error(
                        &at.key("subnets").key(&host.name),
                        format!(
                            "mode \"direct\" routes via peers' underlay addresses, but {}'s {} is not on-link from {} ({})",
                            peer.name,
                            peer.underlay_address.addr(),
                            host.name,
                            host.underlay_address.trunc()
                        ),
                    );
                }
            }
        }
    }
}
