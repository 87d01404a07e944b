//! `[containers.*]`: where each container runs and its interfaces.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

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
