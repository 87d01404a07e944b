//! The nftables backend, for hosts whose firewall is native nftables: a table of
//! ovsmesh's own, `inet ovsmesh`, with a `forward` filter chain and a
//! `postrouting` nat chain (both policy accept: they only add), written through
//! the `nftables` crate's JSON types (as netavark does) in one `nft -j -f -`
//! transaction. Pure: `nft -j list ruleset` in, this mesh's rules out; changes
//! in, the transaction out. Every rule carries the comment `ovsmesh:MESH`; the
//! table goes when no mesh has a rule left in it.
//!
//! An accept in one base chain does not override a drop in another base chain
//! of the same hook: `walk` tells when another table would drop the mesh's
//! forwarded traffic anyway.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::expr::{Expression, NamedExpression, SetItem};
use nftables::schema::{Chain, NfListObject, Table};
use nftables::stmt::{Match, NATFlag, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

mod expr;

use expr::{address_expr, matches, single};
pub use expr::{field_of, nets, states, Field};

use super::iptables::mark;
use crate::state::{multicast, Accept, Family, FirewallRule, Masquerade, Place, Rule};

/// ovsmesh's table (family `inet`).
pub const TABLE: &str = "ovsmesh";
pub const FORWARD: &str = "forward";
pub const POSTROUTING: &str = "postrouting";

/// One chain as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedChain {
    pub family: String,
    pub table: String,
    pub name: String,
    /// Base chains: their hook and policy.
    pub hook: Option<String>,
    pub policy: Option<String>,
}

/// One rule as listed; `expr` is `None` when the crate does not understand it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRule {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: Option<u32>,
    pub comment: Option<String>,
    pub expr: Option<Vec<Statement<'static>>>,
    /// The rule's JSON, for messages.
    pub text: String,
}

/// `nft -j list ruleset`, as far as ovsmesh needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub tables: Vec<(String, String)>,
    pub chains: Vec<ListedChain>,
    pub rules: Vec<ListedRule>,
}

fn text(value: &serde_json::Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_string()
}

/// Parse `nft -j list ruleset`; objects it does not know are skipped, rules
/// whose expressions it cannot type are kept untyped.
pub fn parse(json: &str) -> Result<Listing, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("nft -j list ruleset: {e}"))?;
    let mut listing = Listing::default();
    for object in value["nftables"].as_array().into_iter().flatten() {
        if let Some(table) = object.get("table") {
            listing
                .tables
                .push((text(table, "family"), text(table, "name")));
        } else if let Some(chain) = object.get("chain") {
            listing.chains.push(ListedChain {
                family: text(chain, "family"),
                table: text(chain, "table"),
                name: text(chain, "name"),
                hook: chain["hook"].as_str().map(str::to_string),
                policy: chain["policy"].as_str().map(str::to_string),
            });
        } else if let Some(rule) = object.get("rule") {
            let mut expr = rule["expr"].clone();
            one_flag_as_a_list(&mut expr);
            let expr = serde_json::from_value::<Vec<Statement<'static>>>(expr).ok();
            listing.rules.push(ListedRule {
                family: text(rule, "family"),
                table: text(rule, "table"),
                chain: text(rule, "chain"),
                handle: rule["handle"].as_u64().and_then(|h| u32::try_from(h).ok()),
                comment: rule["comment"].as_str().map(str::to_string),
                expr,
                text: rule["expr"].to_string(),
            });
        }
    }
    Ok(listing)
}

/// nft writes a single NAT flag as a string (`"flags": "fully-random"`), the
/// crate reads a list.
fn one_flag_as_a_list(expr: &mut serde_json::Value) {
    for statement in expr.as_array_mut().into_iter().flatten() {
        for nat in ["masquerade", "snat", "dnat", "redirect"] {
            if let Some(flags) = statement.get_mut(nat).and_then(|n| n.get_mut("flags")) {
                if flags.is_string() {
                    *flags = serde_json::Value::Array(vec![flags.take()]);
                }
            }
        }
    }
}

impl Listing {
    /// A table other than ovsmesh's and iptables-nft's: the host's own nftables firewall.
    pub fn has_native_tables(&self) -> bool {
        self.tables
            .iter()
            .any(|(family, name)| !self.is_xtables(family, name))
    }

    /// iptables-nft's tables (`ip filter`, `ip6 nat`, …, with the built-in chains
    /// in capitals): read through iptables, not here.
    pub fn is_xtables(&self, family: &str, table: &str) -> bool {
        ["ip", "ip6", "arp", "bridge"].contains(&family)
            && ["filter", "nat", "mangle", "raw", "security"].contains(&table)
            && self.chains.iter().any(|c| {
                c.family == family
                    && c.table == table
                    && ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"]
                        .contains(&c.name.as_str())
            })
    }

    fn ours(&self) -> impl Iterator<Item = &ListedRule> {
        self.rules
            .iter()
            .filter(|r| r.family == "inet" && r.table == TABLE)
    }

    fn has_own_table(&self) -> bool {
        self.tables.iter().any(|(f, n)| f == "inet" && n == TABLE)
    }
}

/// This mesh's rules in ovsmesh's table, and the handles each is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub rules: BTreeMap<String, FirewallRule>,
    pub handles: BTreeMap<String, Vec<(String, u32)>>,
}

pub fn observe(listing: &Listing, mesh: &str) -> Found {
    let mark = mark(mesh);
    let mut found = Found::default();
    for listed in listing
        .ours()
        .filter(|r| r.comment.as_deref() == Some(mark.as_str()))
    {
        let rule = listed
            .expr
            .as_deref()
            .and_then(rule_of)
            .unwrap_or_else(|| Rule::Other {
                text: format!("{} {}", listed.chain, listed.text),
            });
        let id = rule.id();
        let handles = found.handles.entry(id.clone()).or_default();
        if let Some(handle) = listed.handle {
            handles.push((listed.chain.clone(), handle));
        }
        let count = handles.len();
        let place = Place::Nftables {
            chain: listed.chain.clone(),
        };
        let entry = found
            .rules
            .entry(id)
            .or_insert(FirewallRule::new(rule, place));
        if count > 1 {
            entry.misplaced = Some(format!("listed {count} times"));
        }
    }
    found
}

/// The rule a statement list of ours is, if it is of a shape ovsmesh writes.
fn rule_of(expr: &[Statement<'_>]) -> Option<Rule> {
    let mut accept = Accept::default();
    let mut not_dst: Option<Vec<IpNet>> = None;
    let mut verdict = None;
    for statement in expr {
        match statement {
            Statement::Match(Match { left, right, op }) => match (field_of(left)?, op) {
                (Field::InIf, Operator::EQ) => match right {
                    Expression::String(name) => accept.in_if = Some(name.to_string()),
                    _ => return None,
                },
                (Field::OutIf, Operator::EQ) => match right {
                    Expression::String(name) => accept.out_if = Some(name.to_string()),
                    _ => return None,
                },
                (Field::Src, Operator::EQ) => accept.src = Some(single(nets(right))?),
                (Field::Dst, Operator::EQ) => accept.dst = Some(single(nets(right))?),
                (Field::Dst, Operator::NEQ) => not_dst = Some(nets(right)?),
                (Field::Nfproto, Operator::EQ) => match right {
                    Expression::String(proto) if proto == "ipv4" => accept.family = Family::Ipv4,
                    Expression::String(proto) if proto == "ipv6" => accept.family = Family::Ipv6,
                    _ => return None,
                },
                (Field::CtState, Operator::IN | Operator::EQ) => {
                    let mut found = states(right)?;
                    found.sort();
                    if found != ["established", "related"] {
                        return None;
                    }
                    accept.replies = true;
                }
                _ => return None,
            },
            Statement::Counter(_) => {}
            Statement::Accept(_) if verdict.is_none() => verdict = Some(true),
            Statement::Masquerade(Some(NAT {
                flags: Some(flags),
                addr: None,
                port: None,
                ..
            })) if verdict.is_none()
                && flags.contains(&NATFlag::FullyRandom)
                && flags.len() == 1 =>
            {
                verdict = Some(false)
            }
            _ => return None,
        }
    }
    // Addresses say the family themselves.
    if let Some(net) = accept.src.or(accept.dst) {
        accept.family = Family::of(net.addr());
    }
    match (verdict?, not_dst) {
        (true, None) => Some(Rule::Accept(accept)),
        (false, Some(excluded)) => {
            let source = accept.src?;
            if accept
                != (Accept {
                    family: Family::of(source.addr()),
                    src: Some(source),
                    ..Accept::default()
                })
            {
                return None;
            }
            let multicast = multicast(&source);
            let mut keep: Vec<IpNet> = IpNet::aggregate(&excluded)
                .into_iter()
                .filter(|n| *n != multicast)
                .collect();
            keep.sort();
            Some(Rule::Masquerade(Masquerade { source, keep }))
        }
        _ => None,
    }
}

/// The statements that write `rule`.
pub fn statements(rule: &Rule) -> Option<Vec<Statement<'static>>> {
    let v4: IpNet = "0.0.0.0/0".parse().expect("a network");
    let name = |n: &str| Expression::String(Cow::Owned(n.to_string()));
    let mut out = Vec::new();
    match rule {
        Rule::Accept(accept) => {
            // An `inet` table sees both families: a rule without addresses
            // names the family it is for.
            if accept.src.is_none() && accept.dst.is_none() {
                out.push(matches(
                    Field::Nfproto,
                    Operator::EQ,
                    name(accept.family.as_str()),
                    &v4,
                ));
            }
            if let Some(dev) = &accept.in_if {
                out.push(matches(Field::InIf, Operator::EQ, name(dev), &v4));
            }
            if let Some(dev) = &accept.out_if {
                out.push(matches(Field::OutIf, Operator::EQ, name(dev), &v4));
            }
            for (field, net) in [(Field::Src, accept.src), (Field::Dst, accept.dst)] {
                if let Some(net) = net {
                    out.push(matches(field, Operator::EQ, address_expr(&net), &net));
                }
            }
            if accept.replies {
                let states = vec![name("established"), name("related")];
                out.push(matches(
                    Field::CtState,
                    Operator::IN,
                    Expression::List(states),
                    &v4,
                ));
            }
            out.push(Statement::Accept(None));
        }
        Rule::Masquerade(masquerade) => {
            let source = masquerade.source;
            out.push(matches(
                Field::Src,
                Operator::EQ,
                address_expr(&source),
                &source,
            ));
            let mut excluded = masquerade.keep.clone();
            excluded.push(multicast(&source));
            let set = IpNet::aggregate(&excluded)
                .iter()
                .map(|n| SetItem::Element(address_expr(n)))
                .collect();
            out.push(matches(
                Field::Dst,
                Operator::NEQ,
                Expression::Named(NamedExpression::Set(set)),
                &source,
            ));
            out.push(Statement::Masquerade(Some(NAT {
                addr: None,
                family: None,
                port: None,
                flags: Some(HashSet::from([NATFlag::FullyRandom])),
            })));
        }
        Rule::Jump { .. } | Rule::Other { .. } => return None,
    }
    Some(out)
}

fn base_chain(name: &str, kind: NfChainType, hook: NfHook, prio: i32) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Owned(name.to_string()),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    })
}

/// The `nft -j -f -` transaction that deletes the rules of `delete` (ids of
/// `found`) and writes `write`; `None` when there is nothing to do.
pub fn batch(
    listing: &Listing,
    found: &Found,
    mesh: &str,
    delete: &[&str],
    write: &[&FirewallRule],
) -> Option<String> {
    let mut batch = Batch::new();
    let mut changed = false;
    let mut deleted = 0;
    for id in delete {
        for (chain, handle) in found.handles.get(*id).into_iter().flatten() {
            batch.delete(NfListObject::Rule(nftables::schema::Rule {
                family: NfFamily::INet,
                table: Cow::Borrowed(TABLE),
                chain: Cow::Owned(chain.clone()),
                handle: Some(*handle),
                ..nftables::schema::Rule::default()
            }));
            deleted += 1;
            changed = true;
        }
    }
    let writes: Vec<(&str, Vec<Statement<'static>>)> = write
        .iter()
        .filter_map(|rule| match &rule.place {
            Place::Nftables { chain } => Some((chain.as_str(), statements(&rule.rule)?)),
            _ => None,
        })
        .collect();
    if !writes.is_empty() {
        batch.add(NfListObject::Table(Table {
            family: NfFamily::INet,
            name: Cow::Borrowed(TABLE),
            handle: None,
        }));
        batch.add(base_chain(FORWARD, NfChainType::Filter, NfHook::Forward, 0));
        batch.add(base_chain(
            POSTROUTING,
            NfChainType::NAT,
            NfHook::Postrouting,
            100,
        ));
        for (chain, expr) in writes {
            batch.add(NfListObject::Rule(nftables::schema::Rule {
                family: NfFamily::INet,
                table: Cow::Borrowed(TABLE),
                chain: Cow::Owned(chain.to_string()),
                expr: Cow::Owned(expr),
                comment: Some(Cow::Owned(mark(mesh))),
                ..nftables::schema::Rule::default()
            }));
            changed = true;
        }
    } else if listing.has_own_table() && listing.ours().count() == deleted {
        // No mesh has a rule left in the table: it goes.
        batch.delete(NfListObject::Table(Table {
            family: NfFamily::INet,
            name: Cow::Borrowed(TABLE),
            handle: None,
        }));
    }
    changed.then(|| serde_json::to_string(&batch.to_nftables()).expect("a batch serializes"))
}

#[cfg(test)]
mod tests;
