//! `CreateEndpoint`, `Join`, `DeleteEndpoint`: the endpoint's veth and OVS port.
//!
//! `CreateEndpoint` decides the endpoint's entry again (Docker's address may
//! not come from our IPAM side, and the host may have changed since), makes
//! the veth in the host's namespace and writes the port, and returns once
//! ovs-vswitchd has it: at `Join` Docker only moves the container end in and
//! sets address, gateway and routes, so the container's first packet passes.

use serde_json::Value;

use super::protocol::{self, CreateEndpoint, Join, StaticRoute};
use super::Plugin;
use crate::desired::endpoint;
use crate::host;
use crate::marks::{Policy, PortId};
use crate::netlink::Netlink;
use crate::state::EndpointLink;
use crate::topology::{names, Mac};

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

impl Plugin {
    pub(super) async fn create_endpoint(&self, create: &CreateEndpoint) -> Result<Value, String> {
        let iface = create.interface.clone().unwrap_or_default();
        if iface.address.is_empty() {
            return Err(format!(
                "no IPv4 address for the endpoint: create the network with --ipam-driver {}",
                self.name
            ));
        }
        let asked: ipnet::Ipv4Net = iface
            .address
            .parse()
            .map_err(|_| format!("{:?} is not an IPv4 address", iface.address))?;
        let topology = self.topology();
        // One read: the Docker network's record and the ports in use.
        let seen = self.store.observe(&topology).await.map_err(text)?;
        let network = self.network_of(&seen, &create.network_id, asked.addr())?;
        let mesh = &topology.mesh.name;
        let key = PortId::Endpoint {
            endpoint: create.endpoint_id.clone(),
        }
        .key();
        let others = seen
            .ovs
            .state
            .ports
            .iter()
            .filter(|(k, _)| **k != key)
            .map(|(_, p)| p);
        let in_use = endpoint::in_use(&topology, &network, others);
        let address =
            endpoint::address(&topology, &self.host, &network, Some(asked.addr()), &in_use)
                .map_err(text)?;
        let entry = endpoint::entry(&topology, &self.host, &network, address);
        let mac: Mac = match iface.mac_address.as_str() {
            "" => entry.mac,
            given => given.parse().map_err(|e: String| e)?,
        };
        let mark = endpoint::mark(&create.endpoint_id, &entry, mac);
        let (host_end, container_end) = names::endpoint_ends(mesh, &create.endpoint_id);
        let policy = Policy::new(mesh);
        let netlink = Netlink::open().map_err(text)?;
        let tx_off = endpoint::tx_checksum_off(&topology, &self.host);
        host::endpoint::make(
            &netlink,
            &policy,
            (&host_end, &container_end),
            &mark,
            entry.mtu,
            tx_off,
        )
        .await
        .map_err(text)?;
        let link = EndpointLink {
            host_end: host_end.clone(),
            mark,
            joined: false,
        };
        let written = match endpoint::port(&topology, &link) {
            Some((key, port)) => self
                .store
                .write_port(&key, Some(port), &seen.ovs)
                .await
                .map_err(text),
            None => Err(format!("network {network} is not in the topology")),
        };
        if let Err(error) = written {
            let _ = host::endpoint::remove(&netlink, &policy, &host_end, &create.endpoint_id).await;
            return Err(error);
        }
        tracing::info!(endpoint = %create.endpoint_id, %network, %address, %mac, port = %host_end,
            declared = ?entry.declared, "Docker endpoint made");
        Ok(protocol::endpoint_created(
            iface.mac_address.is_empty().then(|| mac.to_string()),
        ))
    }

    pub(super) async fn join(&self, join: &Join) -> Result<Value, String> {
        let topology = self.topology();
        let mesh = &topology.mesh.name;
        let (host_end, container_end) = names::endpoint_ends(mesh, &join.endpoint_id);
        let netlink = Netlink::open().map_err(text)?;
        let mark = host::endpoint::exists(&netlink, &Policy::new(mesh), &host_end, &join.endpoint_id)
            .await
            .map_err(text)?
            .ok_or_else(|| {
                format!(
                    "endpoint {} has no veth on this host ({host_end} is missing): restart the container",
                    join.endpoint_id
                )
            })?;
        let entry = endpoint::entry(&topology, &self.host, &mark.network, mark.address);
        let routes = entry
            .routes
            .iter()
            .map(|r| StaticRoute {
                destination: r.to.to_string(),
                route_type: 0,
                next_hop: r.via.to_string(),
            })
            .collect();
        Ok(protocol::joined(
            &container_end,
            &entry.ifname_prefix,
            entry.gateway,
            routes,
        ))
    }

    pub(super) async fn delete_endpoint(&self, endpoint_id: &str) -> Result<Value, String> {
        let topology = self.topology();
        let mesh = &topology.mesh.name;
        let (host_end, _) = names::endpoint_ends(mesh, endpoint_id);
        let netlink = Netlink::open().map_err(text)?;
        let policy = Policy::new(mesh);
        let key = PortId::Endpoint {
            endpoint: endpoint_id.to_string(),
        }
        .key();
        // Side by side: deleting a veth takes the kernel a while.
        let veth = async {
            host::endpoint::remove(&netlink, &policy, &host_end, endpoint_id)
                .await
                .map_err(text)
        };
        let port = async {
            let seen = self.store.observe(&topology).await.map_err(text)?;
            self.store
                .write_port(&key, None, &seen.ovs)
                .await
                .map_err(text)
        };
        let (veth, port) = tokio::join!(veth, port);
        veth?;
        port?;
        tracing::info!(endpoint = %endpoint_id, port = %host_end, "Docker endpoint removed");
        Ok(protocol::empty())
    }
}
