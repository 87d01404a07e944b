//! `[mesh]` and `[hosts.*]`: the settings every host shares, and each host.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::{ovsdb_remote_problem, Resolver, MAX_VNI};
use crate::topology::ident::Kind;
use crate::topology::model::*;
use crate::topology::raw::*;
use crate::topology::source::KeyPath;

impl Resolver<'_> {
    pub fn mesh(&mut self, raw: &RawMesh) -> Mesh {
        let at = KeyPath::root().key("mesh");
        self.check_name(&at.key("name"), Kind::Mesh, &raw.name);
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
        let dst_port = self.dst_port(&at.key("dst_port"), raw);
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
            dst_port,
            manage_firewall: raw.manage_firewall,
        }
    }

    /// `dst_port`: a UDP port, only for the UDP encapsulations.
    fn dst_port(&mut self, path: &KeyPath, raw: &RawMesh) -> Option<u16> {
        let port = raw.dst_port?;
        if raw.encap == Encap::Gre {
            self.error(
                path,
                "GRE has no UDP port (it is IP protocol 47): dst_port is only for vxlan and geneve",
            );
            return None;
        }
        match u16::try_from(port) {
            Ok(port) if port > 0 => Some(port),
            _ => {
                self.error(path, format!("UDP port {port} is outside 1..65535"));
                None
            }
        }
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
}
