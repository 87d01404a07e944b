//! How each kind of state object presents itself to the diff.
//!
//! The diff compares objects field by field as typed values; every kind says
//! which fields it has and how each reads, which changes force a replace rather
//! than an in-place update, and why the topology wants it.

use std::collections::{BTreeMap, BTreeSet};

use crate::marks::Role;
use crate::state::{
    AddressRole, Bridge, ContainerInterface, FirewallRule, HostAddress, HostRoute, Item, Port,
    Rule, Sysctl,
};

use super::{FieldChange, Kind};

/// A state object the plan can diff.
pub trait Object {
    const KIND: Kind;
    /// Fields that force delete + create when they change.
    const REPLACE_ON: &'static [&'static str] = &[];
    /// Field name and rendered value, in display order.
    fn fields(&self) -> Vec<(String, String)>;
    /// The fields whose values differ in `want`, in field-name order.
    fn changes_to(&self, want: &Self) -> Vec<FieldChange>;
    /// Why the topology wants this object.
    fn purpose(&self) -> String;
    /// The object as a plan change carries it.
    fn item(&self) -> Item;
}

fn field(name: &str, value: impl ToString) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// Field-by-field comparison of two values, rendering only what differs.
#[derive(Default)]
struct Diff(Vec<FieldChange>);

impl Diff {
    fn field<V: PartialEq + ?Sized>(
        mut self,
        name: &str,
        have: &V,
        want: &V,
        show: impl Fn(&V) -> String,
    ) -> Self {
        if have != want {
            self.0.push(FieldChange {
                field: name.to_string(),
                from: show(have),
                to: show(want),
            });
        }
        self
    }

    /// A map compared key by key, as `NAME:KEY` fields.
    fn map(
        mut self,
        name: &str,
        have: &BTreeMap<String, String>,
        want: &BTreeMap<String, String>,
    ) -> Self {
        let keys: BTreeSet<&String> = have.keys().chain(want.keys()).collect();
        for key in keys {
            let (from, to) = (have.get(key), want.get(key));
            if from != to {
                self.0.push(FieldChange {
                    field: format!("{name}:{key}"),
                    from: from.cloned().unwrap_or_default(),
                    to: to.cloned().unwrap_or_default(),
                });
            }
        }
        self
    }

    fn done(mut self) -> Vec<FieldChange> {
        self.0.sort_by(|a, b| a.field.cmp(&b.field));
        self.0
    }
}

fn users(meshes: &BTreeSet<String>) -> String {
    meshes.iter().cloned().collect::<Vec<_>>().join(",")
}

fn text<V: ToString + ?Sized>(value: &V) -> String {
    value.to_string()
}

fn optional<V: ToString>(value: &Option<V>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// A flag shown only when set (`shown` is its text then).
fn flag(shown: &'static str) -> impl Fn(&bool) -> String {
    move |on| {
        if *on {
            shown.to_string()
        } else {
            String::new()
        }
    }
}

impl Object for Bridge {
    const KIND: Kind = Kind::Bridge;

    fn fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![field("datapath_type", &self.datapath_type)];
        if let Some(mtu) = self.mtu_request {
            fields.push(field("mtu_request", mtu));
        }
        if !self.users.is_empty() {
            fields.push(field("users", users(&self.users)));
        }
        if let Some(heir) = &self.hand_to {
            fields.push(field("hand_to", heir));
        }
        fields
    }

    fn changes_to(&self, want: &Self) -> Vec<FieldChange> {
        Diff::default()
            .field(
                "datapath_type",
                &self.datapath_type,
                &want.datapath_type,
                text,
            )
            .field(
                "mtu_request",
                &self.mtu_request,
                &want.mtu_request,
                optional,
            )
            .field("users", &self.users, &want.users, users)
            .field("hand_to", &self.hand_to, &want.hand_to, optional)
            .done()
    }

    fn item(&self) -> Item {
        Item::Bridge(self.clone())
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

    fn changes_to(&self, want: &Self) -> Vec<FieldChange> {
        Diff::default()
            .field("name", &self.name, &want.name, text)
            .field("bridge", &self.bridge, &want.bridge, text)
            .field("type", &self.iface_type, &want.iface_type, text)
            .map("options", &self.options, &want.options)
            .field("tag", &self.tag, &want.tag, optional)
            .field("trunks", &self.trunks, &want.trunks, |t| join(t))
            .field("protected", &self.protected, &want.protected, flag("true"))
            .map("bfd", &self.bfd, &want.bfd)
            .field(
                "mtu_request",
                &self.mtu_request,
                &want.mtu_request,
                optional,
            )
            .field(
                "owner",
                &self.external_ids.get(crate::marks::MESH),
                &want.external_ids.get(crate::marks::MESH),
                optional,
            )
            .done()
    }

    fn item(&self) -> Item {
        Item::Port(self.clone())
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
            Role::Endpoint => format!(
                "Docker endpoint {} on network {} ({})",
                id(crate::marks::ENDPOINT),
                id(crate::marks::NETWORK),
                id(crate::marks::ADDRESS)
            ),
        }
    }
}

impl Object for HostAddress {
    const KIND: Kind = Kind::Address;

    fn fields(&self) -> Vec<(String, String)> {
        vec![field("dev", &self.dev), field("address", self.address)]
    }

    fn changes_to(&self, want: &Self) -> Vec<FieldChange> {
        Diff::default()
            .field("dev", &self.dev, &want.dev, text)
            .field("address", &self.address, &want.address, text)
            .done()
    }

    fn item(&self) -> Item {
        Item::Address(self.clone())
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

    fn changes_to(&self, want: &Self) -> Vec<FieldChange> {
        Diff::default()
            .field("to", &self.to, &want.to, text)
            .field("via", &self.via, &want.via, text)
            .field("dev", &self.dev, &want.dev, optional)
            .field("onlink", &self.onlink, &want.onlink, flag("true"))
            .done()
    }

    fn item(&self) -> Item {
        Item::Route(self.clone())
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

    fn changes_to(&self, want: &Self) -> Vec<FieldChange> {
        Diff::default().field("enabled", self, want, text).done()
    }

    fn item(&self) -> Item {
        Item::Forwarding(*self)
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

    fn changes_to(&self, want: &Self) -> Vec<FieldChange> {
        Diff::default()
            .field("value", &self.value, &want.value, text)
            .field("claimed", &self.claimed, &want.claimed, flag("yes"))
            .done()
    }

    fn item(&self) -> Item {
        Item::Sysctl(self.clone())
    }

    fn purpose(&self) -> String {
        match (self.key.as_str(), self.dev.as_str()) {
            ("forwarding", _) => {
                "the host routes IPv6 container traffic (Linux forwards IPv6 by `all` alone)".into()
            }
            ("accept_ra", _) => {
                "IPv6 forwarding makes the kernel drop this interface's default route from router advertisements unless accept_ra is 2".into()
            }
            ("send_redirects", "all") => {
                "the kernel redirects when `all` or the device says so: off for all, other devices keep their own setting".into()
            }
            ("send_redirects", _) => {
                "the routing bridge hairpins peers' traffic: no ICMP redirects to the containers".into()
            }
            ("arp_ignore", _) => {
                "a port of a userspace-datapath bridge: the host answers ARP only through the bridge's own port, never on the NIC".into()
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
        ];
        if let Some(address) = self.address {
            fields.push(field("address", address));
        }
        if let Some(address) = self.address6 {
            fields.push(field("address6", address));
        }
        if let Some(gateway) = self.gateway {
            fields.push(field("gateway", gateway));
        }
        if let Some(gateway) = self.gateway6 {
            fields.push(field("gateway6", gateway));
        }
        if !self.routes.is_empty() {
            fields.push(field("routes", join(&self.routes)));
        }
        if self.tx_checksum_off {
            fields.push(field("tx_checksum", "off"));
        }
        fields
    }

    fn changes_to(&self, want: &Self) -> Vec<FieldChange> {
        Diff::default()
            .field("runtime", &self.runtime, &want.runtime, text)
            .field("host_end", &self.host_end, &want.host_end, text)
            .field("mac", &self.mac, &want.mac, text)
            .field("mtu", &self.mtu, &want.mtu, text)
            .field("address", &self.address, &want.address, optional)
            .field("address6", &self.address6, &want.address6, optional)
            .field("gateway", &self.gateway, &want.gateway, optional)
            .field("gateway6", &self.gateway6, &want.gateway6, optional)
            .field("routes", &self.routes, &want.routes, |r| join(r))
            .field(
                "tx_checksum",
                &self.tx_checksum_off,
                &want.tx_checksum_off,
                flag("off"),
            )
            .field("stale", &self.stale, &want.stale, |s| join(s))
            .done()
    }

    fn item(&self) -> Item {
        Item::ContainerInterface(self.clone())
    }

    fn purpose(&self) -> String {
        format!(
            "container {} needs interface {}",
            self.container, self.ifname
        )
    }
}

impl Object for FirewallRule {
    const KIND: Kind = Kind::Firewall;
    /// A firewall rule is never edited in place: deleted and written again, in
    /// the same batch.
    const REPLACE_ON: &'static [&'static str] = &["place", "keep", "misplaced", "rule"];

    fn fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![field("place", &self.place)];
        if let Rule::Masquerade(masquerade) = &self.rule {
            fields.push(field("keep", join(&masquerade.keep)));
        }
        if let Some(why) = &self.misplaced {
            fields.push(field("misplaced", why));
        }
        fields
    }

    fn changes_to(&self, want: &Self) -> Vec<FieldChange> {
        let keep = |rule: &Rule| match rule {
            Rule::Masquerade(masquerade) => join(&masquerade.keep),
            _ => String::new(),
        };
        Diff::default()
            .field("place", &self.place, &want.place, text)
            .field("keep", &keep(&self.rule), &keep(&want.rule), text)
            .field("misplaced", &self.misplaced, &want.misplaced, optional)
            .done()
    }

    fn item(&self) -> Item {
        Item::Firewall(self.clone())
    }

    fn purpose(&self) -> String {
        match &self.rule {
            Rule::Accept(accept) if accept.replies => {
                "replies to a network's egress traffic come back in".into()
            }
            Rule::Accept(accept) if accept.out_if.is_none() && accept.dst.is_none() => {
                "egress = \"nat\": the network's traffic may leave through any interface".into()
            }
            Rule::Accept(_) => {
                "the host routes the mesh's traffic (the FORWARD policy may drop it)".into()
            }
            Rule::Masquerade(_) => {
                "egress = \"nat\": traffic to outside the mesh leaves with the host's address"
                    .into()
            }
            Rule::Jump { from, to, .. } => format!("{from} evaluates ovsmesh's chain {to}"),
            Rule::Other { .. } => "a rule with this mesh's mark that ovsmesh does not write".into(),
        }
    }
}
