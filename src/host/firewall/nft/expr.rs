//! nft's JSON expressions as ovsmesh reads and writes them: addresses
//! (an address, a prefix, a range, a set of them), interface names, conntrack
//! states, and the match statements made of them.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;
use nftables::expr::{
    Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, SetItem, CT,
};
use nftables::stmt::{Match, Operator, Statement};

/// The addresses an expression names: an address, a prefix, a range, a set of them.
pub fn nets(expr: &Expression<'_>) -> Option<Vec<IpNet>> {
    match expr {
        Expression::String(text) => {
            let address: IpAddr = text.parse().ok()?;
            Some(vec![IpNet::from(address)])
        }
        Expression::Named(NamedExpression::Prefix(Prefix { addr, len })) => {
            let Expression::String(text) = addr.as_ref() else {
                return None;
            };
            let address: IpAddr = text.parse().ok()?;
            Some(vec![IpNet::new(address, u8::try_from(*len).ok()?).ok()?])
        }
        Expression::Range(range) => match (&range.range[0], &range.range[1]) {
            (Expression::String(low), Expression::String(high)) => {
                let (low, high): (IpAddr, IpAddr) = (low.parse().ok()?, high.parse().ok()?);
                match (low, high) {
                    (IpAddr::V4(l), IpAddr::V4(h)) => {
                        Some(ipnet::Ipv4Subnets::new(l, h, 0).map(IpNet::V4).collect())
                    }
                    (IpAddr::V6(l), IpAddr::V6(h)) => {
                        Some(ipnet::Ipv6Subnets::new(l, h, 0).map(IpNet::V6).collect())
                    }
                    _ => None,
                }
            }
            _ => None,
        },
        Expression::Named(NamedExpression::Set(items)) => {
            let mut all = Vec::new();
            for item in items {
                let SetItem::Element(element) = item else {
                    return None;
                };
                all.extend(nets(element)?);
            }
            Some(all)
        }
        _ => None,
    }
}

/// What a match statement's left side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    InIf,
    OutIf,
    Src,
    Dst,
    CtState,
    /// `meta nfproto`: the family of an `inet` table's packet.
    Nfproto,
}

pub fn field_of(left: &Expression<'_>) -> Option<Field> {
    match left {
        Expression::Named(NamedExpression::Meta(Meta {
            key: MetaKey::Iifname,
        })) => Some(Field::InIf),
        Expression::Named(NamedExpression::Meta(Meta {
            key: MetaKey::Oifname,
        })) => Some(Field::OutIf),
        Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
            protocol,
            field,
        }))) if protocol == "ip" || protocol == "ip6" => match field.as_ref() {
            "saddr" => Some(Field::Src),
            "daddr" => Some(Field::Dst),
            _ => None,
        },
        Expression::Named(NamedExpression::CT(CT { key, .. })) if key == "state" => {
            Some(Field::CtState)
        }
        Expression::Named(NamedExpression::Meta(Meta {
            key: MetaKey::Nfproto,
        })) => Some(Field::Nfproto),
        _ => None,
    }
}

/// The conntrack states a `ct state` match names.
pub fn states(right: &Expression<'_>) -> Option<Vec<String>> {
    match right {
        Expression::String(state) => Some(vec![state.to_string()]),
        Expression::List(items) => items
            .iter()
            .map(|i| states(i).map(|s| s.concat()))
            .collect(),
        Expression::Named(NamedExpression::Set(items)) => items
            .iter()
            .map(|item| match item {
                SetItem::Element(e) => states(e).map(|s| s.concat()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

pub(super) fn single(nets: Option<Vec<IpNet>>) -> Option<IpNet> {
    match nets?.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

pub(super) fn address_expr(net: &IpNet) -> Expression<'static> {
    if net.prefix_len() == net.max_prefix_len() {
        Expression::String(Cow::Owned(net.addr().to_string()))
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(Cow::Owned(net.network().to_string()))),
            len: u32::from(net.prefix_len()),
        }))
    }
}

pub(super) fn matches(
    field: Field,
    op: Operator,
    right: Expression<'static>,
    family: &IpNet,
) -> Statement<'static> {
    let protocol = match family {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    };
    let payload = |name: &'static str| {
        Expression::Named(NamedExpression::Payload(Payload::PayloadField(
            PayloadField {
                protocol: Cow::Borrowed(protocol),
                field: Cow::Borrowed(name),
            },
        )))
    };
    let left = match field {
        Field::InIf => Expression::Named(NamedExpression::Meta(Meta {
            key: MetaKey::Iifname,
        })),
        Field::OutIf => Expression::Named(NamedExpression::Meta(Meta {
            key: MetaKey::Oifname,
        })),
        Field::Src => payload("saddr"),
        Field::Dst => payload("daddr"),
        Field::CtState => Expression::Named(NamedExpression::CT(CT {
            key: Cow::Borrowed("state"),
            family: None,
            dir: None,
        })),
        Field::Nfproto => Expression::Named(NamedExpression::Meta(Meta {
            key: MetaKey::Nfproto,
        })),
    };
    Statement::Match(Match { left, right, op })
}
