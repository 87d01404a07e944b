//! The containers of one host in its desired state: an access port on the
//! VLAN or overlay bridge for each interface, and the container interface
//! itself (veth, addresses, the gateway on the interface whose subnet holds it).

use super::Builder;
use crate::marks::{self, Role};
use crate::state::{ContainerInterface, Port, PortId};
use crate::topology::names;
use crate::topology::{Datapath, Network};

impl Builder<'_> {
    /// Access ports and container interfaces of the containers on this host.
    pub(super) fn containers(&mut self) {
        let topology = self.topology;
        let mesh = &topology.mesh;
        for container in topology
            .containers
            .values()
            .filter(|c| c.host == self.host.name)
        {
            let gateway_iface = container.gateway.and_then(|gw| {
                container
                    .interfaces
                    .iter()
                    .position(|i| i.address.is_some_and(|a| a.trunc().contains(&gw)))
            });
            let gateway6_iface = container.gateway6.and_then(|gw| {
                container
                    .interfaces
                    .iter()
                    .position(|i| i.address6.is_some_and(|a| a.trunc().contains(&gw)))
            });
            for (index, iface) in container.interfaces.iter().enumerate() {
                let (bridge, tag) = match &topology.networks[&iface.network] {
                    Network::Vlan(vlan) => (mesh.vlan_bridge.clone(), Some(vlan.vlan)),
                    Network::Routed(_) => (mesh.overlay_bridge.clone(), None),
                };
                let name = names::access_port(&mesh.name, &container.name, &iface.ifname);
                let external_ids = self.marks(
                    Role::Access,
                    &[
                        (marks::CONTAINER, &container.name),
                        (marks::IFNAME, &iface.ifname),
                    ],
                );
                self.port(
                    PortId::Access {
                        container: container.name.clone(),
                        ifname: iface.ifname.clone(),
                    },
                    Port::veth(&name, &bridge, Role::Access, tag, external_ids),
                );
                let interface = ContainerInterface {
                    container: container.name.clone(),
                    runtime: container.runtime.clone(),
                    ifname: iface.ifname.clone(),
                    host_end: name,
                    mac: iface.mac,
                    mtu: iface.mtu,
                    address: iface.address,
                    address6: iface.address6,
                    gateway: container.gateway.filter(|_| gateway_iface == Some(index)),
                    gateway6: container.gateway6.filter(|_| gateway6_iface == Some(index)),
                    routes: {
                        let mut routes = iface.routes.clone();
                        routes.sort();
                        routes
                    },
                    tx_checksum_off: self.host.datapath == Datapath::Netdev,
                    stale: Vec::new(),
                };
                self.state.containers.insert(interface.key(), interface);
            }
        }
    }
}
