//! How each kind of state object presents itself to the diff.
//!
//! The diff compares objects field by field as rendered text, so every kind
//! says which fields it has, which changes force a replace rather than an
//! in-place update, and why the topology wants it.

use crate::marks::Role;
use crate::state::{AddressRole, Bridge, ContainerInterface, HostAddress, HostRoute, Port, Sysctl};

use super::Kind;

/// A state object the plan can diff.
pub trait Object {
    const KIND: Kind;
    /// Fields that force delete + create when they change.
    const REPLACE_ON: &'static [&'static str] = &[];
    /// Fields compared (and their `field:sub` children); empty means all.
    const COMPARED: &'static [&'static str] = &[];
    /// Field name and rendered value, in display order.
    fn fields(&self) -> Vec<(String, String)>;
    /// Why the topology wants this object.
    fn purpose(&self) -> String;
}

fn field(name: &str, value: impl ToString) -> (String, String) {
    (name.to_string(), value.to_string())
}

impl Object for Bridge {
    const KIND: Kind = Kind::Bridge;
    const COMPARED: &'static [&'static str] = &["datapath_type", "mtu_request"];

    fn fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![field("datapath_type", &self.datapath_type)];
        if let Some(mtu) = self.mtu_request {
            fields.push(field("mtu_request", mtu));
        }
        fields
    }

    fn purpose(&self) -> String {
        "bridge used by the topology".into()
    }
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl Object for Port {
    const KIND: Kind = Kind::Port;
    const REPLACE_ON: &'static [&'static str] = &["name", "bridge"];

    fn fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![field("name", &self.name), field("bridge", &self.bridge)];
        if !self.iface_type.is_empty() {
            fields.push(field("type", &self.iface_type));
        }
        for (key, value) in &self.options {
            fields.push(field(&format!("options:{key}"), value));
        }
        if let Some(tag) = self.tag {
            fields.push(field("tag", tag));
        }
        if !self.trunks.is_empty() {
            fields.push(field("trunks", join(&self.trunks)));
        }
        if self.protected {
            fields.push(field("protected", true));
        }
        for (key, value) in &self.bfd {
            fields.push(field(&format!("bfd:{key}"), value));
        }
        if let Some(mtu) = self.mtu_request {
            fields.push(field("mtu_request", mtu));
        }
        fields
    }

    fn purpose(&self) -> String {
        let id = |key: &str| self.external_ids.get(key).cloned().unwrap_or_default();
        match self.role {
            Role::Tunnel if self.trunks.is_empty() => {
                format!("tunnel to peer {}", id(crate::marks::PEER))
            }
            Role::Tunnel => format!(
                "tunnel to peer {}, which shares VLAN{} {}",
                id(crate::marks::PEER),
                if self.trunks.len() == 1 { "" } else { "s" },
                join(&self.trunks)
            ),
            Role::Access => format!(
                "access port of container {} interface {}",
                id(crate::marks::CONTAINER),
                id(crate::marks::IFNAME)
            ),
            Role::Gateway => format!("gateway port of VLAN network {}", id(crate::marks::NETWORK)),
            Role::Uplink => "VLAN trunk to the uplink switch".into(),
            Role::Underlay => "underlay NIC joins the underlay bridge (userspace datapath)".into(),
        }
    }
}

impl Object for HostAddress {
    const KIND: Kind = Kind::Address;

    fn fields(&self) -> Vec<(String, String)> {
        vec![field("dev", &self.dev), field("address", self.address)]
    }

    fn purpose(&self) -> String {
        match self.role {
            AddressRole::OverlayGateway => "the routed network's gateway on this host".into(),
            AddressRole::VlanGateway => "the VLAN network's gateway hosted here".into(),
            AddressRole::Underlay => {
                "the underlay address moves from the NIC to the underlay bridge".into()
            }
        }
    }
}

impl Object for HostRoute {
    const KIND: Kind = Kind::Route;

    fn fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![field("to", self.to), field("via", self.via)];
        if let Some(dev) = &self.dev {
            fields.push(field("dev", dev));
        }
        if self.onlink {
            fields.push(field("onlink", true));
        }
        fields
    }

    fn purpose(&self) -> String {
        if self.onlink {
            "a peer's container subnet, via its gateway across the overlay".into()
        } else {
            "static route from the topology".into()
        }
    }
}

impl Object for bool {
    const KIND: Kind = Kind::Forwarding;

    fn fields(&self) -> Vec<(String, String)> {
        vec![field("enabled", self)]
    }

    fn purpose(&self) -> String {
        "the host routes container traffic through this interface".into()
    }
}

impl Object for Sysctl {
    const KIND: Kind = Kind::Sysctl;

    fn fields(&self) -> Vec<(String, String)> {
        vec![field("value", self.value)]
    }

    fn purpose(&self) -> String {
        match (self.key.as_str(), self.dev.as_str()) {
            ("send_redirects", "all") => {
                "the kernel redirects when `all` or the device says so: off for all, other devices keep their own setting".into()
            }
            ("send_redirects", _) => {
                "the routing bridge hairpins peers' traffic: no ICMP redirects to the containers".into()
            }
            _ => "the routed overlay needs it".into(),
        }
    }
}

impl Object for ContainerInterface {
    const KIND: Kind = Kind::ContainerInterface;
    const REPLACE_ON: &'static [&'static str] = &["host_end", "runtime"];

    fn fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![
            field("runtime", &self.runtime),
            field("host_end", &self.host_end),
            field("mac", self.mac),
            field("mtu", self.mtu),
            field("address", self.address),
        ];
        if let Some(gateway) = self.gateway {
            fields.push(field("gateway", gateway));
        }
        if !self.routes.is_empty() {
            fields.push(field("routes", join(&self.routes)));
        }
        if self.tx_checksum_off {
            fields.push(field("tx_checksum", "off"));
        }
        fields
    }

    fn purpose(&self) -> String {
        format!(
            "container {} needs interface {}",
            self.container, self.ifname
        )
    }
}
