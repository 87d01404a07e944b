//! From raw sections to the validated model, one entry at a time.
//!
//! Each entry is checked on its own here (formats, ranges, references to declared
//! names) and defaults are filled in; rules that compare entries with each other
//! live in `cluster`. Problems are collected, never returned early, so a user sees
//! every mistake in one run.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

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

    pub fn mesh(&mut self, raw: &RawMesh) -> Mesh {
        let at = KeyPath::root().key("mesh");
        if raw.name.is_empty()
            || !raw
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            || raw.name.len() > 32
        {
            self.error(
                &at.key("name"),
                "mesh name must be 1 to 32 characters of letters, digits, '_', '.' or '-'",
            );
        }
        let max_key = if raw.encap == Encap::Gre {
            u64::from(u32::MAX)
        } else {
            MAX_VNI
        };
        for (key, value) in [
            ("vlan_tunnel_key", raw.vlan_tunnel_key),
            ("overlay_tunnel_key", raw.overlay_tunnel_key),
        ] {
            if value > max_key {
                self.error(
                    &at.key(key),
                    format!(
                        "{value} is out of range for {}: at most {max_key}",
                        raw.encap.as_str()
                    ),
                );
            }
        }
        if raw.vlan_tunnel_key == raw.overlay_tunnel_key {
            self.error(
                &at.key("overlay_tunnel_key"),
                format!(
                    "equals vlan_tunnel_key ({}); the two bridges' tunnels to one peer need different keys",
                    raw.vlan_tunnel_key
                ),
            );
        }
        self.check_mtu(&at.key("underlay_mtu"), raw.underlay_mtu);
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (key, bridge) in [
            ("vlan_bridge", &raw.vlan_bridge),
            ("overlay_bridge", &raw.overlay_bridge),
            ("underlay_bridge", &raw.underlay_bridge),
        ] {
            self.check_ifname(&at.key(key), bridge);
            if let Some(other) = seen.insert(bridge, key) {
                self.error(
                    &at.key(key),
                    format!("bridge {bridge:?} is already the {other}"),
                );
            }
        }
        Mesh {
            name: raw.name.clone(),
            encap: raw.encap,
            vlan_transport: raw.vlan_transport,
            vlan_tunnel_key: raw.vlan_tunnel_key.min(u64::from(u32::MAX)) as u32,
            overlay_tunnel_key: raw.overlay_tunnel_key.min(u64::from(u32::MAX)) as u32,
            underlay_mtu: raw.underlay_mtu,
            vlan_bridge: raw.vlan_bridge.clone(),
            overlay_bridge: raw.overlay_bridge.clone(),
            underlay_bridge: raw.underlay_bridge.clone(),
            bfd: raw.bfd,
            manage_firewall: raw.manage_firewall,
        }
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

    pub fn host(&mut self, mesh: &Mesh, name: &str, raw: &RawHost) -> Option<Host> {
        let at = KeyPath::root().key("hosts").key(name);
        let underlay_address = if raw.underlay_address.contains('/')
            || raw.underlay_address.parse::<Ipv4Addr>().is_err()
        {
            self.host_cidr(&at.key("underlay_address"), &raw.underlay_address)
        } else {
            self.error(
                &at.key("underlay_address"),
                format!(
                    "{:?} needs its prefix length, e.g. {}/24",
                    raw.underlay_address, raw.underlay_address
                ),
            );
            None
        };
        if let Some(remote) = &raw.ovsdb {
            if let Some(problem) = ovsdb_remote_problem(remote) {
                self.error(&at.key("ovsdb"), problem);
            }
        }
        for (key, nic) in [
            ("underlay_nic", &raw.underlay_nic),
            ("uplink_nic", &raw.uplink_nic),
        ] {
            if let Some(nic) = nic {
                self.check_ifname(&at.key(key), nic);
                if [
                    &mesh.vlan_bridge,
                    &mesh.overlay_bridge,
                    &mesh.underlay_bridge,
                ]
                .contains(&nic)
                {
                    self.error(
                        &at.key(key),
                        format!("{nic:?} is the name of one of ovsmesh's bridges"),
                    );
                }
            }
        }
        if raw.datapath == Datapath::Netdev && raw.underlay_nic.is_none() {
            self.error(
                &at.key("datapath"),
                "datapath \"netdev\" needs `underlay_nic`: the NIC becomes a port of the underlay bridge, which takes the underlay address",
            );
        }
        if raw.underlay_nic.is_some() && raw.underlay_nic == raw.uplink_nic {
            self.error(
                &at.key("uplink_nic"),
                "the uplink NIC cannot also be the underlay NIC",
            );
        }
        if let Some(mtu) = raw.underlay_mtu {
            self.check_mtu(&at.key("underlay_mtu"), mtu);
        }
        let routes = self.routes(
            &at.key("routes"),
            &raw.routes,
            underlay_address,
            "the underlay subnet",
        );
        Some(Host {
            name: name.to_string(),
            underlay_address: underlay_address?,
            ovsdb: raw.ovsdb.clone(),
            datapath: raw.datapath,
            underlay_nic: raw.underlay_nic.clone(),
            uplink_nic: raw.uplink_nic.clone(),
            underlay_mtu: raw.underlay_mtu.unwrap_or(mesh.underlay_mtu),
            routes,
            origin: at,
        })
    }

    pub fn network(
        &mut self,
        name: &str,
        raw: &RawNetwork,
        hosts: &BTreeMap<String, Host>,
    ) -> Option<Network> {
        let at = KeyPath::root().key("networks").key(name);
        self.check_name(&at, name);
        match raw {
            RawNetwork::Vlan(vlan) => self.vlan_network(&at, name, vlan).map(Network::Vlan),
            RawNetwork::Routed(routed) => self
                .routed_network(&at, name, routed, hosts)
                .map(Network::Routed),
        }
    }

    /// Entry names end up in OVSDB external_ids and port-name stems.
    fn check_name(&mut self, at: &KeyPath, name: &str) {
        if name.is_empty()
            || name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            self.problems.push(Diagnostic::key(
                at,
                format!("{name:?} cannot be a name: use letters, digits, '-', '_' or '.'"),
            ));
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
        if !vlan_ok {
            return None;
        }
        Some(VlanNetwork {
            name: name.to_string(),
            vlan: raw.vlan as u16,
            subnet,
            gateway,
        })
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

    pub fn container(
        &mut self,
        mesh: &Mesh,
        name: &str,
        raw: &RawContainer,
        hosts: &BTreeMap<String, Host>,
        networks: &BTreeMap<String, Network>,
    ) -> Option<Container> {
        let at = KeyPath::root().key("containers").key(name);
        self.check_name(&at, name);
        let host_known = self.host_ref(&at.key("host"), &raw.host);
        let runtime = match (&raw.docker, &raw.netns) {
            (Some(_), Some(_)) => {
                self.error(&at.key("netns"), "set either `docker` or `netns`, not both");
                None
            }
            (None, Some(netns)) => {
                if netns.is_empty() || netns.contains('/') || netns == "." || netns == ".." {
                    self.error(
                        &at.key("netns"),
                        format!("{netns:?} is not a network namespace name"),
                    );
                }
                Some(Runtime::Netns(netns.clone()))
            }
            (Some(docker), None) => Some(Runtime::Docker(docker.clone())),
            (None, None) => Some(Runtime::Docker(name.to_string())),
        };
        let raw_interfaces = self.interface_forms(&at, raw)?;
        let host = hosts.get(&raw.host);
        let mut interfaces = Vec::new();
        let mut ifnames = BTreeSet::new();
        for (path, iface) in &raw_interfaces {
            let ifname = iface.ifname.clone().unwrap_or_else(|| "eth1".to_string());
            self.check_ifname(&path.key("ifname"), &ifname);
            if !ifnames.insert(ifname.clone()) {
                self.error(
                    &path.key("ifname"),
                    format!("container {name:?} already has an interface {ifname:?}"),
                );
            }
            if let Some(resolved) =
                self.interface(mesh, name, &raw.host, host, path, iface, ifname, networks)
            {
                interfaces.push(resolved);
            }
        }
        let gateway = self.container_gateway(&at, raw, &raw_interfaces, &interfaces, networks);
        if !host_known || interfaces.len() != raw_interfaces.len() {
            return None;
        }
        Some(Container {
            name: name.to_string(),
            host: raw.host.clone(),
            runtime: runtime?,
            interfaces,
            gateway: gateway?,
            origin: at,
        })
    }

    /// The interfaces of a container, from the inline shorthand or `[[interfaces]]`.
    fn interface_forms(
        &mut self,
        at: &KeyPath,
        raw: &RawContainer,
    ) -> Option<Vec<(KeyPath, RawInterface)>> {
        let inline_used = raw.network.is_some()
            || raw.address.is_some()
            || raw.ifname.is_some()
            || raw.mac.is_some()
            || raw.mtu.is_some()
            || raw.routes.is_some();
        match &raw.interfaces {
            Some(list) => {
                if inline_used {
                    self.problems.push(Diagnostic::key(
                        &at.key("interfaces"),
                        "use either the inline interface keys (network, address, …) or [[interfaces]], not both",
                    ));
                    return None;
                }
                if list.is_empty() {
                    self.error(
                        &at.key("interfaces"),
                        "a container needs at least one interface",
                    );
                    return None;
                }
                Some(
                    list.iter()
                        .enumerate()
                        .map(|(i, iface)| (at.key("interfaces").index(i), iface.clone()))
                        .collect(),
                )
            }
            None => {
                let Some(network) = &raw.network else {
                    self.problems.push(Diagnostic::key(
                        at,
                        "missing required key `network` (or [[containers.NAME.interfaces]] for several interfaces)",
                    ));
                    return None;
                };
                let Some(address) = &raw.address else {
                    self.problems
                        .push(Diagnostic::key(at, "missing required key `address`"));
                    return None;
                };
                Some(vec![(
                    at.clone(),
                    RawInterface {
                        network: network.clone(),
                        address: address.clone(),
                        ifname: raw.ifname.clone(),
                        mac: raw.mac.clone(),
                        mtu: raw.mtu,
                        routes: raw.routes.clone().unwrap_or_default(),
                    },
                )])
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn interface(
        &mut self,
        mesh: &Mesh,
        container: &str,
        host_name: &str,
        host: Option<&Host>,
        at: &KeyPath,
        raw: &RawInterface,
        ifname: String,
        networks: &BTreeMap<String, Network>,
    ) -> Option<Interface> {
        if let Some(mtu) = raw.mtu {
            self.check_mtu(&at.key("mtu"), mtu);
        }
        if !self.network_ref(&at.key("network"), &raw.network) {
            return None;
        }
        let network = networks.get(&raw.network)?;
        // The subnet the address must sit in, and the gateway it must not equal.
        let (subnet, gateway) = match network {
            Network::Vlan(vlan) => (vlan.subnet, vlan.gateway.as_ref().map(VlanGateway::address)),
            Network::Routed(routed) => match routed.subnets.get(host_name) {
                Some(subnet) => (Some(*subnet), routed.gateways.get(host_name).copied()),
                None => {
                    if host.is_some() {
                        self.error(
                            &at.key("network"),
                            format!(
                                "host {host_name:?} has no subnet in the routed network {:?}; add one under networks.{}.subnets",
                                routed.name, routed.name
                            ),
                        );
                    }
                    return None;
                }
            },
        };
        let address_path = at.key("address");
        let address = if raw.address.contains('/') {
            let net = self.parse_net(
                &address_path,
                &raw.address,
                "ADDRESS/PREFIX, e.g. 192.168.0.1/24",
            )?;
            if let Some(subnet) = subnet {
                if net.prefix_len() != subnet.prefix_len() && subnet.contains(&net.addr()) {
                    self.error(
                        &address_path,
                        format!(
                            "prefix /{} differs from the network's subnet {subnet}",
                            net.prefix_len()
                        ),
                    );
                }
            }
            net
        } else {
            let addr = self.address(&address_path, &raw.address)?;
            let Some(subnet) = subnet else {
                self.error(
                    &address_path,
                    format!("a bare address needs a network subnet; write {addr}/PREFIX or give network {:?} a `subnet`", raw.network),
                );
                return None;
            };
            Ipv4Net::new(addr, subnet.prefix_len()).ok()?
        };
        if let Some(subnet) = subnet {
            if !subnet.contains(&address.addr()) {
                let what = match network {
                    Network::Routed(_) => format!("{host_name}'s routed subnet {subnet}"),
                    Network::Vlan(_) => format!("network {:?}'s subnet {subnet}", raw.network),
                };
                self.error(
                    &address_path,
                    format!("{} is outside {what}", address.addr()),
                );
            }
        }
        self.check_host_address(&address_path, address.addr(), address);
        if gateway == Some(address.addr()) {
            self.error(
                &address_path,
                format!("{} is the network's gateway address", address.addr()),
            );
        }
        let mac = match &raw.mac {
            Some(text) => match text.parse::<Mac>() {
                Ok(mac) if mac.is_multicast() => {
                    self.error(
                        &at.key("mac"),
                        format!("{mac} is a multicast MAC (lowest bit of the first byte set)"),
                    );
                    None
                }
                Ok(mac) if mac.0 == [0; 6] => {
                    self.error(&at.key("mac"), "00:00:00:00:00:00 is not a usable MAC");
                    None
                }
                Ok(mac) => Some(mac),
                Err(message) => {
                    self.error(&at.key("mac"), message);
                    None
                }
            },
            None => Some(names::default_mac(&mesh.name, container, &ifname)),
        };
        let routes = self.routes(
            &at.key("routes"),
            &raw.routes,
            Some(address),
            "the interface's subnet",
        );
        Some(Interface {
            network: raw.network.clone(),
            address,
            ifname,
            mac: mac?,
            // Resolved against the path budget in `cluster::apply_mtu_budgets`.
            mtu: raw.mtu.unwrap_or(0),
            routes,
            origin: at.clone(),
        })
    }

    /// The container's one default route: explicit, or the one its networks supply.
    fn container_gateway(
        &mut self,
        at: &KeyPath,
        raw: &RawContainer,
        raw_interfaces: &[(KeyPath, RawInterface)],
        interfaces: &[Interface],
        networks: &BTreeMap<String, Network>,
    ) -> Option<Option<Ipv4Addr>> {
        if let Some(text) = &raw.gateway {
            let path = at.key("gateway");
            let address = self.address(&path, text)?;
            if !interfaces.is_empty()
                && !interfaces
                    .iter()
                    .any(|i| i.address.trunc().contains(&address))
            {
                self.error(
                    &path,
                    format!(
                        "gateway {address} is not on-link on any of the container's interfaces"
                    ),
                );
                return None;
            }
            return Some(Some(address));
        }
        let mut suppliers = Vec::new();
        for iface in interfaces {
            let supplied = match networks.get(&iface.network) {
                Some(Network::Vlan(vlan)) => vlan.gateway.as_ref().map(VlanGateway::address),
                Some(Network::Routed(routed)) => routed.gateways.get(&raw.host).copied(),
                None => None,
            };
            if let Some(address) = supplied {
                suppliers.push((iface.network.clone(), address));
            }
        }
        if suppliers.len() > 1 {
            let list: Vec<String> = suppliers
                .iter()
                .map(|(n, a)| format!("{n} ({a})"))
                .collect();
            let path = if raw_interfaces.len() > 1 {
                at.key("interfaces")
            } else {
                at.clone()
            };
            self.problems.push(Diagnostic::key(
                &path,
                format!(
                    "several interfaces supply a default route: {}; set `gateway`",
                    list.join(", ")
                ),
            ));
            return None;
        }
        Some(suppliers.first().map(|(_, a)| *a))
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
