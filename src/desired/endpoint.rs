//! Docker endpoints: which address a container started with `docker run
//! --network NET [--ip A]` may have on this host, and what its interface and
//! OVS port look like. Pure: the plugin's handlers (and the daemon's reconcile,
//! which keeps live endpoints' ports) ask, given the topology, the host and the
//! addresses in use.
//!
//! Addresses are cluster-wide without a central store: every host decides alone,
//! from the same topology. A fixed address the topology declares for a container
//! on this host gets exactly that entry (MAC, MTU, default route, routes); an
//! address of this host's pool (`pools`, on the routed network the host's
//! subnet) is free to take; anything else is refused with the reason, which
//! Docker prints (`10.31.0.2 belongs to container bzr2 on host gamma`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use thiserror::Error;

use crate::marks::{self, EndpointMark, Policy, Role};
use crate::state::{EndpointLink, HostState, Port, PortId};
use crate::topology::{self, names, Datapath, Mac, Network, Route, Topology};

/// Why an address (or any address) cannot be had.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("network {0:?} is not in the topology of this mesh")]
    UnknownNetwork(String),
    #[error(
        "host {host} takes no part in network {network} (no pool, no subnet, no container there)"
    )]
    NotHere { host: String, network: String },
    #[error(
        "network {0} has no subnet: Docker containers need one (add `subnet` to [networks.{0}])"
    )]
    NoSubnet(String),
    #[error("{address} belongs to container {container} on host {host}")]
    Declared {
        address: Ipv4Addr,
        container: String,
        host: String,
    },
    #[error("{address} is outside network {network}'s subnet {subnet} on this host")]
    Outside {
        address: Ipv4Addr,
        network: String,
        subnet: Ipv4Net,
    },
    #[error("{address} is the {what} address of {subnet}")]
    Reserved {
        address: Ipv4Addr,
        what: &'static str,
        subnet: Ipv4Net,
    },
    #[error("{address} is network {network}'s gateway")]
    Gateway { address: Ipv4Addr, network: String },
    #[error("{address} is in host {host}'s {what} {range} of network {network}")]
    OtherHost {
        address: Ipv4Addr,
        host: String,
        what: &'static str,
        range: Ipv4Net,
        network: String,
    },
    #[error("{address} is not in host {host}'s pool {pool} of network {network}, and no container of the topology on {host} has it")]
    NotInPool {
        address: Ipv4Addr,
        host: String,
        pool: Ipv4Net,
        network: String,
    },
    #[error("host {host} has no pool on network {network}: add `pools = {{ {host} = \"CIDR\" }}` to [networks.{network}], or start the container with --ip and an address the topology gives a container on {host}")]
    NoPool { host: String, network: String },
    #[error("{address} is already in use on host {host} ({by})")]
    InUse {
        address: Ipv4Addr,
        host: String,
        by: String,
    },
    #[error("host {host}'s pool {pool} of network {network} has no free address")]
    Exhausted {
        host: String,
        pool: Ipv4Net,
        network: String,
    },
}

/// Addresses in use on one network of this host, each with who uses it.
pub type InUse = BTreeMap<Ipv4Addr, String>;

/// The subnet a container of `network` on `host` is in, and its default gateway.
pub fn subnet_of(
    topology: &Topology,
    host: &str,
    network: &str,
) -> Result<(Ipv4Net, Option<Ipv4Addr>), Refusal> {
    match topology.networks.get(network) {
        None => Err(Refusal::UnknownNetwork(network.to_string())),
        Some(Network::Vlan(vlan)) => {
            let subnet = vlan.subnet.ok_or(Refusal::NoSubnet(network.to_string()))?;
            Ok((subnet, vlan.gateway.as_ref().map(|g| g.address())))
        }
        Some(Network::Routed(routed)) => match routed.subnets.get(host) {
            Some(subnet) => Ok((*subnet, routed.gateways.get(host).copied())),
            None => Err(Refusal::NotHere {
                host: host.to_string(),
                network: network.to_string(),
            }),
        },
    }
}

/// The container of the topology that declares `address` on `network`, with
/// its host and interface.
fn declared<'t>(
    topology: &'t Topology,
    network: &str,
    address: Ipv4Addr,
) -> Option<(&'t topology::Container, &'t topology::Interface)> {
    topology.containers.values().find_map(|c| {
        c.interfaces
            .iter()
            .find(|i| i.network == network && i.address.is_some_and(|a| a.addr() == address))
            .map(|i| (c, i))
    })
}

/// Whether `address` may be had on `network` by a Docker container on `host`
/// (`None`: the lowest free address of the host's pool), given what is in use.
pub fn address(
    topology: &Topology,
    host: &str,
    network: &str,
    requested: Option<Ipv4Addr>,
    in_use: &InUse,
) -> Result<Ipv4Net, Refusal> {
    let (subnet, gateway) = subnet_of(topology, host, network)?;
    let Some(address) = requested else {
        return lowest_free(topology, host, network, subnet, gateway, in_use);
    };
    let taken = |address: Ipv4Addr| match in_use.get(&address) {
        Some(by) => Err(Refusal::InUse {
            address,
            host: host.to_string(),
            by: by.clone(),
        }),
        None => Ok(Ipv4Net::new(address, subnet.prefix_len()).expect("a subnet's prefix")),
    };
    if let Some((container, _)) = declared(topology, network, address) {
        if container.host == host {
            return taken(address);
        }
        return Err(Refusal::Declared {
            address,
            container: container.name.clone(),
            host: container.host.clone(),
        });
    }
    let pools: Vec<(&str, Ipv4Net, &'static str)> = match &topology.networks[network] {
        Network::Vlan(vlan) => vlan
            .pools
            .iter()
            .map(|(h, p)| (h.as_str(), *p, "pool"))
            .collect(),
        Network::Routed(routed) => routed
            .subnets
            .iter()
            .map(|(h, p)| (h.as_str(), *p, "subnet"))
            .collect(),
    };
    if let Some((other, range, what)) = pools
        .iter()
        .find(|(h, p, _)| *h != host && p.contains(&address))
    {
        return Err(Refusal::OtherHost {
            address,
            host: other.to_string(),
            what,
            range: *range,
            network: network.to_string(),
        });
    }
    if !subnet.contains(&address) {
        return Err(Refusal::Outside {
            address,
            network: network.to_string(),
            subnet,
        });
    }
    if let Some(what) = reserved(subnet, address) {
        return Err(Refusal::Reserved {
            address,
            what,
            subnet,
        });
    }
    if gateway == Some(address) {
        return Err(Refusal::Gateway {
            address,
            network: network.to_string(),
        });
    }
    match topology.pool(network, host) {
        Some(pool) if pool.contains(&address) => taken(address),
        Some(pool) => Err(Refusal::NotInPool {
            address,
            host: host.to_string(),
            pool,
            network: network.to_string(),
        }),
        None => Err(Refusal::NoPool {
            host: host.to_string(),
            network: network.to_string(),
        }),
    }
}

/// "network" or "broadcast" when `address` is that of `subnet` (prefixes up to /30).
fn reserved(subnet: Ipv4Net, address: Ipv4Addr) -> Option<&'static str> {
    if subnet.prefix_len() > 30 {
        None
    } else if address == subnet.network() {
        Some("network")
    } else if address == subnet.broadcast() {
        Some("broadcast")
    } else {
        None
    }
}

fn lowest_free(
    topology: &Topology,
    host: &str,
    network: &str,
    subnet: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    in_use: &InUse,
) -> Result<Ipv4Net, Refusal> {
    let pool = topology
        .pool(network, host)
        .ok_or_else(|| Refusal::NoPool {
            host: host.to_string(),
            network: network.to_string(),
        })?;
    let start = u32::from(pool.network());
    let end = u32::from(pool.broadcast());
    (start..=end)
        .map(Ipv4Addr::from)
        .find(|a| {
            reserved(subnet, *a).is_none()
                && Some(*a) != gateway
                && !in_use.contains_key(a)
                && declared(topology, network, *a).is_none()
        })
        .map(|a| Ipv4Net::new(a, subnet.prefix_len()).expect("a subnet's prefix"))
        .ok_or_else(|| Refusal::Exhausted {
            host: host.to_string(),
            pool,
            network: network.to_string(),
        })
}

/// Everything a Docker endpoint's interface gets on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub network: String,
    pub address: Ipv4Net,
    pub mac: Mac,
    pub mtu: u32,
    pub gateway: Option<Ipv4Addr>,
    pub routes: Vec<Route>,
    /// The name Docker gives the interface starts with this (Docker adds a number).
    pub ifname_prefix: String,
    /// The topology container whose entry this is, for a declared address.
    pub declared: Option<String>,
}

/// The entry of an endpoint with `address` on `network` (already decided by
/// [`address`]): a declared container's own, else the network's.
pub fn entry(topology: &Topology, host: &str, network: &str, address: Ipv4Net) -> Entry {
    let budgets = topology::network_budgets(topology);
    if let Some((container, iface)) =
        declared(topology, network, address.addr()).filter(|(c, _)| c.host == host)
    {
        // `declared` found it by its IPv4 address; a Docker endpoint is IPv4
        // only (the plugin offers no IPv6 yet), so are its routes.
        let own = iface.address.unwrap_or(address);
        let gateway = container.gateway.filter(|g| own.trunc().contains(g));
        return Entry {
            network: network.to_string(),
            address: own,
            mac: iface.mac,
            mtu: iface.mtu,
            gateway,
            routes: iface
                .routes
                .iter()
                .filter(|r| r.to.addr().is_ipv4())
                .cloned()
                .collect(),
            ifname_prefix: ifname_prefix(&iface.ifname),
            declared: Some(container.name.clone()),
        };
    }
    let gateway = subnet_of(topology, host, network).ok().and_then(|(_, g)| g);
    Entry {
        network: network.to_string(),
        address,
        mac: names::endpoint_mac(&topology.mesh.name, network, address.addr()),
        mtu: budgets
            .get(network)
            .copied()
            .unwrap_or(topology.mesh.underlay_mtu),
        gateway,
        routes: Vec::new(),
        ifname_prefix: "eth".to_string(),
        declared: None,
    }
}

/// Docker names a plugin's interface PREFIX + a number: the declared name
/// without its trailing digits (`eth1` → `eth`).
fn ifname_prefix(ifname: &str) -> String {
    let prefix = ifname.trim_end_matches(|c: char| c.is_ascii_digit());
    if prefix.is_empty() {
        "eth".to_string()
    } else {
        prefix.to_string()
    }
}

/// The OVS port of a Docker endpoint whose veth host end is `link`: on the
/// network's bridge (tagged on the VLAN bridge), with the endpoint's marks.
/// `None` when the network is no longer in the topology.
pub fn port(topology: &Topology, link: &EndpointLink) -> Option<(String, Port)> {
    let mesh = &topology.mesh;
    let (bridge, tag) = match topology.networks.get(&link.mark.network)? {
        Network::Vlan(vlan) => (mesh.vlan_bridge.clone(), Some(vlan.vlan)),
        Network::Routed(_) => (mesh.overlay_bridge.clone(), None),
    };
    let address = link.mark.address.to_string();
    let mac = link.mark.mac.to_string();
    let external_ids = Policy::new(&mesh.name).port_marks(
        Role::Endpoint,
        &[
            (marks::ENDPOINT, &link.mark.endpoint),
            (marks::NETWORK, &link.mark.network),
            (marks::ADDRESS, &address),
            (marks::MAC, &mac),
        ],
    );
    let key = PortId::Endpoint {
        endpoint: link.mark.endpoint.clone(),
    }
    .key();
    let port = Port::veth(&link.host_end, &bridge, Role::Endpoint, tag, external_ids);
    Some((key, port))
}

/// Whether the host's veths need transmit checksum offload off (userspace datapath).
pub fn tx_checksum_off(topology: &Topology, host: &str) -> bool {
    topology
        .hosts
        .get(host)
        .is_some_and(|h| h.datapath == Datapath::Netdev)
}

/// What is in use on `network` of this host: Docker endpoints (their ports'
/// marks, plus `reserved` addresses handed out but not yet made) and the
/// topology's containers plumbed here by the `--net=none` path (their access
/// ports). `ports` are the host's observed ports of this mesh.
pub fn in_use<'a>(
    topology: &Topology,
    network: &str,
    ports: impl IntoIterator<Item = &'a Port>,
) -> InUse {
    let mut used = InUse::new();
    for port in ports {
        let ids = &port.external_ids;
        match port.role {
            Role::Endpoint if ids.get(marks::NETWORK).map(String::as_str) == Some(network) => {
                if let Some(address) = ids
                    .get(marks::ADDRESS)
                    .and_then(|a| a.parse::<Ipv4Net>().ok())
                {
                    let id = ids
                        .get(marks::ENDPOINT)
                        .map_or("", |e| &e[..e.len().min(12)]);
                    used.insert(address.addr(), format!("Docker endpoint {id}"));
                }
            }
            Role::Access => {
                let container = ids
                    .get(marks::CONTAINER)
                    .and_then(|c| topology.containers.get(c));
                let ifname = ids.get(marks::IFNAME);
                if let Some(container) = container {
                    for iface in &container.interfaces {
                        let own = iface
                            .address
                            .filter(|_| iface.network == network && Some(&iface.ifname) == ifname);
                        if let Some(own) = own {
                            used.insert(
                                own.addr(),
                                format!("container {} (--net=none)", container.name),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
    used
}

/// The desired and observed states of a host with its live Docker endpoints
/// taken in: the port of every endpoint whose veth host end exists is wanted
/// (level-triggered: a dead endpoint's port goes, a live one's is never
/// removed, and one lost with the OVS database comes back once the container
/// has its end — before that the plugin is making it), and a topology
/// container whose declared address an endpoint has is left to Docker (the
/// `--net=none` path neither plumbs nor unplumbs it).
pub fn serve(topology: &Topology, host: &str, want: &mut HostState, observed: &mut HostState) {
    if observed.endpoints.is_empty() {
        return;
    }
    for link in observed.endpoints.values() {
        if let Some((key, port)) = port(topology, link) {
            // Not joined yet and no port: the plugin is making it right now.
            if link.joined || observed.ports.contains_key(&key) {
                want.ports.insert(key, port);
            }
        }
    }
    let served: Vec<(String, String)> = topology
        .containers
        .values()
        .filter(|c| c.host == host)
        .flat_map(|c| c.interfaces.iter().map(move |i| (c, i)))
        .filter(|(_, i)| {
            observed.endpoints.values().any(|e| {
                e.mark.network == i.network
                    && i.address.is_some_and(|a| a.addr() == e.mark.address.addr())
            })
        })
        .map(|(c, i)| (c.name.clone(), i.ifname.clone()))
        .collect();
    for (container, ifname) in served {
        super::settle::leave_container(want, observed, &container, Some(&ifname));
    }
}

/// The endpoint mark of a new endpoint.
pub fn mark(endpoint: &str, entry: &Entry, mac: Mac) -> EndpointMark {
    EndpointMark {
        network: entry.network.clone(),
        endpoint: endpoint.to_string(),
        address: entry.address,
        mac,
    }
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
