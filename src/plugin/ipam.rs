//! The IPAM side: pools and addresses, and which topology network a Docker
//! network is.
//!
//! A pool id names its topology network (`red/10.31.0.0/24`) when the network
//! is known at `RequestPool`: from `--ipam-opt ovsmesh.network=NET` (the daemon
//! passes it), or from the subnet when one network of this host has it. Docker
//! asks for the pool before it names the network to the driver (`CreateNetwork`
//! carries `-o ovsmesh.network=NET`, and never the network's name), so when
//! several networks share a subnet (VLANs may) the pool id is *pending*
//! (`?N/10.31.0.0/24`) until `CreateNetwork` binds it; the binding is recorded
//! in OVSDB, like every Docker network id's network.
//!
//! The gateway Docker asks for at `docker network create` is the topology's
//! (a `--gateway` that differs is refused). A VLAN network without a gateway
//! has none to give: the answer is the subnet's network address, which no
//! container can have, and which Docker only records (the container's default
//! route comes from `Join`, which gives none there).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde_json::Value;

use super::protocol::{self, CreateNetwork, RequestAddress, RequestPool, NETWORK_OPTION};
use super::{Plugin, Seen};
use crate::desired::endpoint;
use crate::topology::{self, Network, Topology};

/// How long an address handed out by `RequestAddress` stays reserved without
/// an endpoint (Docker creates it within milliseconds).
const RESERVED_FOR: Duration = Duration::from_secs(120);
/// How long a pending pool waits for its `CreateNetwork`.
const PENDING_FOR: Duration = Duration::from_secs(60);

/// What the IPAM side holds in memory only (see the module docs of `plugin`).
#[derive(Debug, Default)]
pub struct Memory {
    reserved: BTreeMap<(String, Ipv4Addr), Instant>,
    /// Pending pool ids and their subnets, newest last.
    pending: Vec<(String, Ipv4Net, Instant)>,
    nonce: u64,
}

impl Memory {
    fn expire(&mut self) {
        let now = Instant::now();
        self.reserved
            .retain(|_, at| now.duration_since(*at) < RESERVED_FOR);
        self.pending
            .retain(|(_, _, at)| now.duration_since(*at) < PENDING_FOR);
    }
}

/// A network this host can put Docker containers on: name, subnet here, gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub network: String,
    pub subnet: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
}

/// The topology networks this host takes part in that have a subnet here.
pub fn candidates(topology: &Topology, host: &str) -> Vec<Candidate> {
    let vlan_hosts = topology::vlan_hosts(topology);
    topology
        .networks
        .iter()
        .filter(|(name, network)| match network {
            Network::Vlan(_) => vlan_hosts
                .get(name.as_str())
                .is_some_and(|h| h.contains(host)),
            Network::Routed(routed) => routed.subnets.contains_key(host),
        })
        .filter_map(|(name, _)| {
            let (subnet, gateway) = endpoint::subnet_of(topology, host, name).ok()?;
            Some(Candidate {
                network: name.clone(),
                subnet,
                gateway,
            })
        })
        .collect()
}

fn listing(candidates: &[Candidate]) -> String {
    if candidates.is_empty() {
        return "none".to_string();
    }
    candidates
        .iter()
        .map(|c| format!("{} ({})", c.network, c.subnet))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A pool id: the topology network (or `?N` while pending) and the subnet.
fn pool_id(head: &str, subnet: Ipv4Net) -> String {
    format!("{head}/{subnet}")
}

fn parse_pool_id(id: &str) -> Result<(&str, Ipv4Net), String> {
    id.split_once('/')
        .and_then(|(head, subnet)| Some((head, subnet.parse().ok()?)))
        .ok_or_else(|| format!("pool {id:?} is not one of ovsmesh's"))
}

/// The candidate `name` names, checked against the pool Docker asks for.
fn named(
    topology: &Topology,
    host: &str,
    name: &str,
    pool: Option<Ipv4Net>,
) -> Result<Candidate, String> {
    let all = candidates(topology, host);
    let Some(found) = all.iter().find(|c| c.network == name) else {
        return Err(match topology.networks.contains_key(name) {
            true => format!("host {host} takes no part in network {name} (no pool, no subnet, no container there); networks here: {}", listing(&all)),
            false => format!("network {name:?} is not in the topology of mesh {}", topology.mesh.name),
        });
    };
    match pool {
        Some(pool) if pool != found.subnet => Err(format!(
            "network {name}'s subnet on host {host} is {}, not {pool}",
            found.subnet
        )),
        _ => Ok(found.clone()),
    }
}

impl Plugin {
    pub(super) fn request_pool(&self, request: &RequestPool) -> Result<Value, String> {
        if request.v6 {
            return Err(
                "ovsmesh networks are IPv4 only: create the Docker network without --ipv6".into(),
            );
        }
        let topology = self.topology();
        let pool: Option<Ipv4Net> = match request.pool.as_str() {
            "" => None,
            text => Some(
                text.parse()
                    .map_err(|_| format!("{text:?} is not an IPv4 subnet"))?,
            ),
        };
        let option = request.options.as_ref().and_then(|o| o.get(NETWORK_OPTION));
        if let Some(name) = option {
            let found = named(&topology, &self.host, name, pool)?;
            return Ok(protocol::pool(
                &pool_id(&found.network, found.subnet),
                &found.subnet.to_string(),
            ));
        }
        let all = candidates(&topology, &self.host);
        let fitting: Vec<&Candidate> = all
            .iter()
            .filter(|c| pool.is_none_or(|p| p == c.subnet))
            .collect();
        let mut subnets: Vec<Ipv4Net> = fitting.iter().map(|c| c.subnet).collect();
        subnets.dedup();
        let subnet = match subnets.as_slice() {
            [one] => *one,
            [] => {
                return Err(match pool {
                    Some(pool) => format!("no network of the topology has subnet {pool} on host {}; networks here: {}", self.host, listing(&all)),
                    None => format!("host {} takes part in no network of the topology with a subnet", self.host),
                })
            }
            _ => {
                return Err(format!(
                    "say which network of the topology: --ipam-opt {NETWORK_OPTION}=NET, or --subnet of one; networks here: {}",
                    listing(&all)
                ))
            }
        };
        if let [only] = fitting.as_slice() {
            return Ok(protocol::pool(
                &pool_id(&only.network, subnet),
                &subnet.to_string(),
            ));
        }
        // Several networks share the subnet: CreateNetwork's `-o ovsmesh.network` decides.
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.expire();
        memory.nonce += 1;
        let id = pool_id(&format!("?{}", memory.nonce), subnet);
        memory.pending.push((id.clone(), subnet, Instant::now()));
        Ok(protocol::pool(&id, &subnet.to_string()))
    }

    pub(super) async fn release_pool(&self, id: &str) -> Result<Value, String> {
        if id.starts_with('?') {
            self.memory
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pending
                .retain(|(p, _, _)| p != id);
            self.store
                .record(None, Some(id), None)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(protocol::empty())
    }

    /// The topology network of a pool id, if it is known (pending pools: once
    /// bound, as `seen` or a fresh read shows).
    async fn pool_network(&self, id: &str, seen: Option<&Seen>) -> Result<Option<String>, String> {
        let (head, _) = parse_pool_id(id)?;
        if !head.starts_with('?') {
            return Ok(Some(head.to_string()));
        }
        match seen {
            Some(seen) => Ok(seen.recorded(None, Some(id))),
            None => self
                .store
                .recorded(None, Some(id))
                .await
                .map_err(|e| e.to_string()),
        }
    }

    pub(super) async fn request_address(&self, request: &RequestAddress) -> Result<Value, String> {
        let (_, subnet) = parse_pool_id(&request.pool_id)?;
        let requested: Option<Ipv4Addr> = match request.address.as_str() {
            "" => None,
            text => Some(
                text.parse()
                    .map_err(|_| format!("{text:?} is not an IPv4 address"))?,
            ),
        };
        let topology = self.topology();
        if request.for_gateway() {
            let network = self.pool_network(&request.pool_id, None).await?;
            let gateway = match &network {
                Some(network) => {
                    endpoint::subnet_of(&topology, &self.host, network)
                        .map_err(|e| e.to_string())?
                        .1
                }
                None => requested,
            };
            let answer = match (gateway, requested) {
                (Some(gateway), Some(asked)) if gateway != asked => {
                    return Err(format!("the topology's gateway of this network is {gateway}, not {asked}"))
                }
                (None, Some(asked)) => {
                    return Err(format!(
                        "the topology gives this network no gateway: create the Docker network without --gateway (not {asked})"
                    ))
                }
                (Some(gateway), _) => gateway,
                (None, None) => subnet.network(),
            };
            return Ok(protocol::address(
                &Ipv4Net::new(answer, subnet.prefix_len())
                    .expect("prefix")
                    .to_string(),
            ));
        }
        // One read: the pool's binding (if pending) and the ports in use.
        let observed = self
            .store
            .observe(&topology)
            .await
            .map_err(|e| e.to_string())?;
        let Some(network) = self.pool_network(&request.pool_id, Some(&observed)).await? else {
            return Err(format!(
                "pool {} is not bound to a topology network (its docker network create did not finish?)",
                request.pool_id
            ));
        };
        let mut in_use = endpoint::in_use(&topology, &network, observed.ovs.state.ports.values());
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.expire();
        for (net, address) in memory.reserved.keys() {
            if *net == network {
                in_use
                    .entry(*address)
                    .or_insert_with(|| "reserved for a container being started".to_string());
            }
        }
        let address = endpoint::address(&topology, &self.host, &network, requested, &in_use)
            .map_err(|e| e.to_string())?;
        memory
            .reserved
            .insert((network, address.addr()), Instant::now());
        Ok(protocol::address(&address.to_string()))
    }

    pub(super) fn release_address(&self, release: &protocol::ReleaseAddress) -> Value {
        let address = release
            .address
            .split('/')
            .next()
            .and_then(|a| a.parse::<Ipv4Addr>().ok());
        if let Some(address) = address {
            let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            memory.reserved.retain(|(_, a), _| *a != address);
        }
        protocol::empty()
    }

    pub(super) async fn create_network(&self, create: &CreateNetwork) -> Result<Value, String> {
        let topology = self.topology();
        let pool: Option<Ipv4Net> = create.pool().and_then(|p| p.parse().ok());
        let network = match create.topology_network() {
            Some(name) => named(&topology, &self.host, &name, pool)?.network,
            None => {
                let all = candidates(&topology, &self.host);
                let fitting: Vec<&Candidate> =
                    all.iter().filter(|c| Some(c.subnet) == pool).collect();
                match fitting.as_slice() {
                    [one] => one.network.clone(),
                    _ => {
                        return Err(format!(
                            "say which network of the topology this is: -o {NETWORK_OPTION}=NET; networks here: {}",
                            listing(&all)
                        ))
                    }
                }
            }
        };
        let bound = pool.and_then(|subnet| {
            let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            memory.expire();
            let at = memory.pending.iter().rposition(|(_, s, _)| *s == subnet)?;
            Some(memory.pending.remove(at).0)
        });
        self.store
            .record(Some(&create.network_id), bound.as_deref(), Some(&network))
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(network_id = %create.network_id, %network, "Docker network created");
        Ok(protocol::empty())
    }

    pub(super) async fn delete_network(&self, network_id: &str) -> Result<Value, String> {
        self.store
            .record(Some(network_id), None, None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(protocol::empty())
    }

    /// The topology network of a Docker network id: as recorded at
    /// `CreateNetwork`, else (an id never seen: created while OVSDB was
    /// replaced) the one network of this host whose subnet holds `address`.
    pub(super) fn network_of(
        &self,
        seen: &Seen,
        network_id: &str,
        address: Ipv4Addr,
    ) -> Result<String, String> {
        if let Some(network) = seen.recorded(Some(network_id), None) {
            return Ok(network);
        }
        let all = candidates(&self.topology(), &self.host);
        let fitting: Vec<&Candidate> = all.iter().filter(|c| c.subnet.contains(&address)).collect();
        match fitting.as_slice() {
            [one] => Ok(one.network.clone()),
            _ => Err(format!(
                "Docker network {network_id} is unknown to ovsmesh on host {} (not created through it); recreate it with -d {name} --ipam-driver {name} -o {NETWORK_OPTION}=NET",
                self.host,
                name = self.name
            )),
        }
    }
}

#[cfg(test)]
#[path = "ipam_tests.rs"]
mod tests;
