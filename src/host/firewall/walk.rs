//! Would another nftables table drop the mesh's forwarded traffic? (pure)
//!
//! nftables evaluates every base chain of a hook: an accept in ovsmesh's table
//! (or in iptables-nft's) ends only that chain, and a drop in any other base
//! chain (firewalld's, an `nftables.conf`'s `inet filter`) still drops the
//! packet. For one accept rule of the mesh, each foreign `forward` base chain is
//! walked as the kernel would for a new connection, as far as it can be sure
//! (as `iptables_read::verdict` does for INPUT): a rule whose matches are all
//! understood (interfaces, addresses, `ct state`) certainly matches or not; a
//! rule with anything else is skipped as "not obviously matching". Jumps and
//! gotos are followed.

use ipnet::IpNet;
use nftables::expr::Expression;
use nftables::stmt::{Match, Operator, Statement};

use super::nft::{field_of, nets, states, Field, ListedChain, Listing, TABLE};
use crate::state::{Accept, Family};

/// A foreign base chain that drops the traffic of an accept rule, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub family: String,
    pub table: String,
    pub chain: String,
    /// `policy drop`, or the rule that drops.
    pub by: String,
}

impl Dropped {
    /// The conflict's text: where, by what, and the rule to add.
    pub fn explain(&self, accept: &Accept) -> String {
        format!(
            "nftables table {} {}, chain {} drops this traffic ({}), whatever ovsmesh accepts in its own rules; add e.g. `nft insert rule {} {} {} {}`",
            self.family,
            self.table,
            self.chain,
            self.by,
            self.family,
            self.table,
            self.chain,
            suggestion(accept)
        )
    }
}

/// The rule to add, in nft's words.
fn suggestion(accept: &Accept) -> String {
    let mut words = Vec::new();
    if let Some(dev) = &accept.in_if {
        words.push(format!("iifname \"{dev}\""));
    }
    if let Some(dev) = &accept.out_if {
        words.push(format!("oifname \"{dev}\""));
    }
    for (field, net) in [("saddr", accept.src), ("daddr", accept.dst)] {
        if let Some(net) = net {
            let family = if net.addr().is_ipv4() { "ip" } else { "ip6" };
            words.push(format!("{family} {field} {net}"));
        }
    }
    if accept.replies {
        words.push("ct state established,related".into());
    }
    words.push("accept".into());
    words.join(" ")
}

/// The first foreign forward base chain that drops `accept`'s traffic.
pub fn dropped(listing: &Listing, accept: &Accept) -> Option<Dropped> {
    let family = match accept.family {
        Family::Ipv6 => "ip6",
        Family::Ipv4 => "ip",
    };
    listing
        .chains
        .iter()
        .filter(|c| c.hook.as_deref() == Some("forward"))
        .filter(|c| c.family == "inet" || c.family == family)
        .filter(|c| !(c.family == "inet" && c.table == TABLE))
        .filter(|c| !listing.is_xtables(&c.family, &c.table))
        .find_map(|chain| {
            let by = match walk(listing, chain, accept, 0) {
                Some(Verdict::Drop(rule)) => rule,
                Some(Verdict::Accept) => return None,
                None if chain.policy.as_deref() == Some("drop") => "policy drop".to_string(),
                None => return None,
            };
            Some(Dropped {
                family: chain.family.clone(),
                table: chain.table.clone(),
                chain: chain.name.clone(),
                by,
            })
        })
}

enum Verdict {
    Accept,
    /// Dropped or rejected by this rule.
    Drop(String),
}

const MAX_DEPTH: usize = 16;

/// `None`: the chain ends (or returns) without a verdict.
fn walk(listing: &Listing, chain: &ListedChain, accept: &Accept, depth: usize) -> Option<Verdict> {
    let rules = listing
        .rules
        .iter()
        .filter(|r| r.family == chain.family && r.table == chain.table && r.chain == chain.name);
    for rule in rules {
        let Some(expr) = &rule.expr else {
            continue;
        };
        let mut sure = true;
        for statement in expr {
            match statement {
                Statement::Match(m) => match holds(m, accept) {
                    Some(true) => continue,
                    Some(false) => break,
                    None => {
                        sure = false;
                        continue;
                    }
                },
                Statement::Counter(_) | Statement::Log(_) => continue,
                // A verdict of a rule that does not obviously match: not this packet's.
                _ if !sure => break,
                Statement::Accept(_) => return Some(Verdict::Accept),
                Statement::Drop(_) | Statement::Reject(_) => {
                    return Some(Verdict::Drop(format!("rule {}", rule.text)))
                }
                Statement::Return(_) => return None,
                Statement::Jump(target) | Statement::Goto(target) if depth < MAX_DEPTH => {
                    let next = listing.chains.iter().find(|c| {
                        c.family == chain.family
                            && c.table == chain.table
                            && c.name == target.target
                    });
                    let verdict = next.and_then(|next| walk(listing, next, accept, depth + 1));
                    if verdict.is_some() || matches!(statement, Statement::Goto(_)) {
                        return verdict;
                    }
                }
                _ => {}
            }
            break;
        }
    }
    None
}

/// Whether a match holds for every new packet of `accept`'s traffic:
/// `Some(true)` certainly, `Some(false)` certainly not, `None` unsure.
fn holds(m: &Match<'_>, accept: &Accept) -> Option<bool> {
    let Match { left, right, op } = m;
    let result = match field_of(left)? {
        Field::InIf => name_holds(accept.in_if.as_deref()?, right)?,
        Field::OutIf => name_holds(accept.out_if.as_deref()?, right)?,
        Field::Src => net_holds(accept.src?, &nets(right)?)?,
        Field::Dst => net_holds(accept.dst?, &nets(right)?)?,
        Field::CtState => {
            // A new connection's first packet; replies are established.
            let state = if accept.replies { "established" } else { "new" };
            states(right)?.iter().any(|s| s == state)
        }
        Field::Nfproto => match right {
            Expression::String(proto) => proto == accept.family.as_str(),
            _ => return None,
        },
    };
    match op {
        Operator::EQ | Operator::IN => Some(result),
        Operator::NEQ => Some(!result),
        _ => None,
    }
}

/// `eth0`, `veth*` or a set of them against the device `dev`.
fn name_holds(dev: &str, right: &Expression<'_>) -> Option<bool> {
    let one = |pattern: &str| match pattern.strip_suffix('*') {
        Some(prefix) => dev.starts_with(prefix),
        None => dev == pattern,
    };
    match right {
        Expression::String(pattern) => Some(one(pattern)),
        Expression::Named(nftables::expr::NamedExpression::Set(items)) => {
            let mut any = false;
            for item in items {
                match item {
                    nftables::expr::SetItem::Element(Expression::String(p)) => any |= one(p),
                    _ => return None,
                }
            }
            Some(any)
        }
        _ => None,
    }
}

/// All of `net` inside the listed networks: true; none of it: false; else unsure.
fn net_holds(net: IpNet, listed: &[IpNet]) -> Option<bool> {
    if listed.iter().any(|l| l.contains(&net)) {
        Some(true)
    } else if listed
        .iter()
        .all(|l| !l.contains(&net.network()) && !net.contains(&l.network()))
    {
        Some(false)
    } else {
        None
    }
}
