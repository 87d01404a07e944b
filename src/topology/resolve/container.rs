//! `[containers.*]`: where each container runs and its interfaces.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::Resolver;
use crate::topology::ident::Kind;
use crate::topology::model::*;
use crate::topology::names;
use crate::topology::raw::*;
use crate::topology::source::{Diagnostic, KeyPath};

impl Resolver<'_> {
    pub fn container(
        &mut self,
        mesh: &Mesh,
        name: &str,
        raw: &RawContainer,
        hosts: &BTreeMap<String, Host>,
        networks: &BTreeMap<String, Network>,
    ) -> Option<Container> {
        let at = KeyPath::root().key("containers").key(name);
        let host_known = self.host_ref(&at.key("host"), &raw.host);
        if let Some(docker) = &raw.docker {
            self.check_name(&at.key("docker"), Kind::Docker, docker);
        }
        if let Some(netns) = &raw.netns {
            self.check_name(&at.key("netns"), Kind::Netns, netns);
        }
        let runtime = match (&raw.docker, &raw.netns) {
            (Some(_), Some(_)) => {
                self.error(&at.key("netns"), "set either `docker` or `netns`, not both");
                None
            }
            (None, Some(netns)) => Some(Runtime::Netns(netns.clone())),
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
        let gateway = self.container_gateway(
            &at,
            raw,
            &raw_interfaces,
            &interfaces,
            networks,
            Family::Ipv4,
        );
        let gateway6 = self.container_gateway(
            &at,
            raw,
            &raw_interfaces,
            &interfaces,
            networks,
            Family::Ipv6,
        );
        if !host_known || interfaces.len() != raw_interfaces.len() {
            return None;
        }
        let gateway = match gateway? {
            Some(IpAddr::V4(address)) => Some(address),
            _ => None,
        };
        let gateway6 = match gateway6? {
            Some(IpAddr::V6(address)) => Some(address),
            _ => None,
        };
        Some(Container {
            name: name.to_string(),
            host: raw.host.clone(),
            runtime: runtime?,
            interfaces,
            gateway,
            gateway6,
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
            || raw.address6.is_some()
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
                if raw.address.is_none() && raw.address6.is_none() {
                    self.problems.push(Diagnostic::key(
                        at,
                        "missing required key `address` (or `address6` for IPv6)",
                    ));
                    return None;
                }
                Some(vec![(
                    at.clone(),
                    RawInterface {
                        network: network.clone(),
                        address: raw.address.clone(),
                        address6: raw.address6.clone(),
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
        if raw.address.is_none() && raw.address6.is_none() {
            self.problems.push(Diagnostic::key(
                at,
                "an interface needs `address`, `address6` or both",
            ));
            return None;
        }
        let mut addresses = [None, None];
        for (slot, family, text) in [
            (0, Family::Ipv4, &raw.address),
            (1, Family::Ipv6, &raw.address6),
        ] {
            let Some(text) = text else { continue };
            let key = if family == Family::Ipv4 {
                "address"
            } else {
                "address6"
            };
            addresses[slot] = Some(self.interface_address(
                at.key(key),
                text,
                family,
                network,
                host_name,
                host.is_some(),
                &raw.network,
            )?);
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
            addresses,
            "the interface's subnet",
            ["the interface's `address`", "the interface's `address6`"],
        );
        Some(Interface {
            network: raw.network.clone(),
            address: match addresses[0] {
                Some(IpNet::V4(net)) => Some(net),
                _ => None,
            },
            address6: match addresses[1] {
                Some(IpNet::V6(net)) => Some(net),
                _ => None,
            },
            ifname,
            mac: mac?,
            // Resolved against the path budget in `cluster::apply_mtu_budgets`.
            mtu: raw.mtu.unwrap_or(0),
            routes,
            origin: at.clone(),
        })
    }

    /// One address of an interface (`family`'s key at `path`): in the
    /// network's subnet of that family (a bare address takes its prefix), never
    /// a reserved address or the gateway.
    #[allow(clippy::too_many_arguments)]
    fn interface_address(
        &mut self,
        path: KeyPath,
        text: &str,
        family: Family,
        network: &Network,
        host_name: &str,
        host_known: bool,
        network_name: &str,
    ) -> Option<IpNet> {
        let subnet_key = if family == Family::Ipv4 {
            "subnet"
        } else {
            "subnet6"
        };
        // The subnet the address must sit in, and the gateway it must not equal.
        let (subnet, gateway): (Option<IpNet>, Option<IpAddr>) = match (network, family) {
            (Network::Vlan(vlan), Family::Ipv4) => (
                vlan.subnet.map(IpNet::V4),
                vlan.gateway.as_ref().map(|g| IpAddr::V4(g.address())),
            ),
            (Network::Vlan(vlan), Family::Ipv6) => (
                vlan.subnet6.map(IpNet::V6),
                vlan.gateway6.as_ref().map(|g| IpAddr::V6(g.address())),
            ),
            (Network::Routed(routed), _) => {
                let found = routed
                    .subnets_of(host_name)
                    .into_iter()
                    .find(|(subnet, _)| Family::of(subnet.addr()) == family);
                match found {
                    Some((subnet, gateway)) => (Some(subnet), Some(gateway)),
                    None => {
                        if host_known {
                            let (key, which) = match family {
                                Family::Ipv4 => ("subnets", ""),
                                Family::Ipv6 => ("subnets6", "IPv6 "),
                            };
                            let network = path.parent().unwrap_or_default().key("network");
                            self.error(
                                &network,
                                format!(
                                    "host {host_name:?} has no {which}subnet in the routed network {:?}; add one under networks.{}.{key}",
                                    routed.name,
                                    routed.name
                                ),
                            );
                        }
                        return None;
                    }
                }
            }
        };
        let example = match family {
            Family::Ipv4 => "ADDRESS/PREFIX, e.g. 192.168.0.1/24",
            Family::Ipv6 => "ADDRESS/PREFIX, e.g. fd00:1::10/64",
        };
        let address = if text.contains('/') {
            let net = self.parse_net(&path, text, family, example)?;
            if let Some(subnet) = subnet {
                if net.prefix_len() != subnet.prefix_len() && subnet.contains(&net.addr()) {
                    self.error(
                        &path,
                        format!(
                            "prefix /{} differs from the network's {subnet_key} {subnet}",
                            net.prefix_len()
                        ),
                    );
                }
            }
            net
        } else {
            let addr = self.address_of(&path, text, family)?;
            let Some(subnet) = subnet else {
                self.error(
                    &path,
                    format!("a bare address needs a network {subnet_key}; write {addr}/PREFIX or give network {network_name:?} a `{subnet_key}`"),
                );
                return None;
            };
            IpNet::new(addr, subnet.prefix_len()).ok()?
        };
        if let Some(subnet) = subnet {
            if !subnet.contains(&address.addr()) {
                let what = match network {
                    Network::Routed(_) => format!("{host_name}'s routed subnet {subnet}"),
                    Network::Vlan(_) => format!("network {network_name:?}'s {subnet_key} {subnet}"),
                };
                self.error(&path, format!("{} is outside {what}", address.addr()));
            }
        }
        self.check_host_address(&path, address.addr(), address);
        if gateway == Some(address.addr()) {
            self.error(
                &path,
                format!("{} is the network's gateway address", address.addr()),
            );
        }
        Some(address)
    }

    /// The container's one default route of `family` (`gateway` or
    /// `gateway6`): explicit, or the one its networks supply. `None` when it is
    /// invalid; `Some(None)` when there is none.
    fn container_gateway(
        &mut self,
        at: &KeyPath,
        raw: &RawContainer,
        raw_interfaces: &[(KeyPath, RawInterface)],
        interfaces: &[Interface],
        networks: &BTreeMap<String, Network>,
        family: Family,
    ) -> Option<Option<IpAddr>> {
        let (key, text) = match family {
            Family::Ipv4 => ("gateway", &raw.gateway),
            Family::Ipv6 => ("gateway6", &raw.gateway6),
        };
        let has = |i: &Interface| match family {
            Family::Ipv4 => i.address.map(IpNet::V4),
            Family::Ipv6 => i.address6.map(IpNet::V6),
        };
        if let Some(text) = text {
            let path = at.key(key);
            let address = self.address_of(&path, text, family)?;
            if !interfaces.is_empty()
                && !interfaces
                    .iter()
                    .filter_map(has)
                    .any(|a| a.trunc().contains(&address))
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
        for iface in interfaces.iter().filter(|i| has(i).is_some()) {
            let supplied: Option<IpAddr> = match (networks.get(&iface.network), family) {
                (Some(Network::Vlan(vlan)), Family::Ipv4) => {
                    vlan.gateway.as_ref().map(|g| IpAddr::V4(g.address()))
                }
                (Some(Network::Vlan(vlan)), Family::Ipv6) => {
                    vlan.gateway6.as_ref().map(|g| IpAddr::V6(g.address()))
                }
                (Some(Network::Routed(routed)), Family::Ipv4) => {
                    routed.gateways.get(&raw.host).map(|g| IpAddr::V4(*g))
                }
                (Some(Network::Routed(routed)), Family::Ipv6) => {
                    routed.gateways6.get(&raw.host).map(|g| IpAddr::V6(*g))
                }
                (None, _) => None,
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
            let what = match family {
                Family::Ipv4 => "a default route",
                Family::Ipv6 => "an IPv6 default route",
            };
            self.problems.push(Diagnostic::key(
                &path,
                format!(
                    "several interfaces supply {what}: {}; set `{key}`",
                    list.join(", ")
                ),
            ));
            return None;
        }
        Some(suppliers.first().map(|(_, a)| *a))
    }
}
