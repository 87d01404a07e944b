//! `[mesh]` and `[hosts.*]`: the settings every host shares, and each host.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{ovsdb_remote_problem, Resolver, MAX_VNI};
use crate::topology::ident::Kind;
use crate::topology::model::*;
use crate::topology::raw::*;
use crate::topology::source::{Diagnostic, KeyPath};

impl Resolver<'_> {
    pub fn mesh(&mut self, raw: &RawMesh) -> Mesh {
        let at = KeyPath::root().key("mesh");
        self.check_name(&at.key("name"), Kind::Mesh, &raw.name);
        self.check_encap_family(&at, raw);
        let max_key = if raw.encap.is_gre() {
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
            underlay: raw.underlay,
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

    /// OVS's `gre` carries GRE over IPv4 only and `ip6gre` over IPv6 only
    /// (antrea#3150: a `gre` port with an IPv6 `remote_ip` fails silently);
    /// VXLAN and Geneve take either.
    fn check_encap_family(&mut self, at: &KeyPath, raw: &RawMesh) {
        match (raw.encap, raw.underlay) {
            // Located at `underlay`: `encap` may be the default, not in the file.
            (Encap::Gre, Family::Ipv6) => self.error(
                &at.key("underlay"),
                "tunnels over an IPv6 underlay need an encap that runs over IPv6: encap = \"gre\" (the default) is OVS's gre type, IPv4 only; set encap = \"ip6gre\", \"vxlan\" or \"geneve\"",
            ),
            (Encap::Ip6gre, Family::Ipv4) => self.error(
                &at.key("encap"),
                "encap = \"ip6gre\" runs over an IPv6 underlay: set [mesh] underlay = \"ipv6\" (and each host's underlay_address6), or use \"gre\"",
            ),
            _ => {}
        }
    }

    /// `dst_port`: a UDP port, only for the UDP encapsulations.
    fn dst_port(&mut self, path: &KeyPath, raw: &RawMesh) -> Option<u16> {
        let port = raw.dst_port?;
        if raw.encap.is_gre() {
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
        let underlay_address = self
            .underlay_address(
                &at,
                "underlay_address",
                &raw.underlay_address,
                mesh,
                Family::Ipv4,
            )
            .and_then(|net| match net {
                IpNet::V4(net) => Some(net),
                IpNet::V6(_) => None,
            });
        let underlay_address6 = self
            .underlay_address(
                &at,
                "underlay_address6",
                &raw.underlay_address6,
                mesh,
                Family::Ipv6,
            )
            .and_then(|net| match net {
                IpNet::V6(net) => Some(net),
                IpNet::V4(_) => None,
            });
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
            [
                underlay_address.map(IpNet::V4),
                underlay_address6.map(IpNet::V6),
            ],
            "the underlay subnet",
            [
                "the host's `underlay_address`",
                "the host's `underlay_address6`",
            ],
        );
        // The tunnels' endpoint must be there.
        let endpoint_ok = match mesh.underlay {
            Family::Ipv4 => underlay_address.is_some(),
            Family::Ipv6 => underlay_address6.is_some(),
        };
        if !endpoint_ok {
            return None;
        }
        Some(Host {
            name: name.to_string(),
            underlay_address,
            underlay_address6,
            ovsdb: raw.ovsdb.clone(),
            datapath: raw.datapath,
            underlay_nic: raw.underlay_nic.clone(),
            uplink_nic: raw.uplink_nic.clone(),
            underlay_mtu: raw.underlay_mtu.unwrap_or(mesh.underlay_mtu),
            routes,
            origin: at,
        })
    }

    /// `underlay_address` / `underlay_address6`: `ADDRESS/PREFIX` of `family`;
    /// required when it is the family of the mesh's underlay.
    fn underlay_address(
        &mut self,
        at: &KeyPath,
        key: &str,
        text: &Option<String>,
        mesh: &Mesh,
        family: Family,
    ) -> Option<IpNet> {
        let path = at.key(key);
        let Some(text) = text else {
            if mesh.underlay == family {
                let why = match family {
                    Family::Ipv4 => String::new(),
                    Family::Ipv6 => " ([mesh] underlay = \"ipv6\": the tunnels run between IPv6 underlay addresses)".to_string(),
                };
                // Where serde puts a missing key: the table's own span.
                self.problems.push(Diagnostic::value(
                    at,
                    format!("missing required key `{key}`{why}"),
                ));
            }
            return None;
        };
        let bare = !text.contains('/')
            && text
                .parse::<IpAddr>()
                .is_ok_and(|a| Family::of(a) == family);
        if bare {
            let prefix = match family {
                Family::Ipv4 => 24,
                Family::Ipv6 => 64,
            };
            self.error(
                &path,
                format!("{text:?} needs its prefix length, e.g. {text}/{prefix}"),
            );
            return None;
        }
        let example = match family {
            Family::Ipv4 => "ADDRESS/PREFIX, e.g. 192.0.2.11/24",
            Family::Ipv6 => "ADDRESS/PREFIX, e.g. 2001:db8::11/64",
        };
        self.host_cidr_of(&path, text, family, example)
    }
}
