//! The mesh's rules in the host firewall, as state: what the topology wants
//! (from `desired`), what a host has (from `host::firewall`), diffed by the plan
//! like ports and routes.
//!
//! A rule is typed by what it does, not by how a backend spells it: the iptables
//! backend writes a [`Masquerade`] as a few lines (a RETURN per kept destination,
//! then the MASQUERADE), nftables as one rule with a set. Addresses are
//! [`IpNet`], so IPv6 rules need new values, not new types. Every rule is one
//! mesh's: marked with the comment `ovsmesh:MESH` in either backend.

use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::topology::Family;

/// One rule of a mesh in the host firewall (for a masquerade: the lines that make it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallRule {
    pub rule: Rule,
    /// Where it is (observed) or must be (target).
    pub place: Place,
    /// Observed: why the rule is not as its chain's order needs it (after
    /// Docker's final RETURN, listed twice, a kept destination after the
    /// MASQUERADE). The target never has one, so such a rule is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misplaced: Option<String>,
}

impl FirewallRule {
    pub fn new(rule: Rule, place: Place) -> Self {
        Self {
            rule,
            place,
            misplaced: None,
        }
    }
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Rule {
    /// Forwarded packets the mesh lets through.
    Accept(Accept),
    /// A network's traffic to outside the mesh leaves with the address of the
    /// host's outgoing interface (`egress = "nat"`).
    Masquerade(Masquerade),
    /// iptables (or ip6tables): a built-in chain jumps to ovsmesh's own chain.
    Jump {
        from: String,
        to: String,
        #[serde(default, skip_serializing_if = "Family::is_ipv4")]
        family: Family,
    },
    /// Observed: a rule with this mesh's mark that ovsmesh does not write (removed).
    Other { text: String },
}

/// An accept rule in the forward path; a field left out matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// The family it matches: IPv4 (`iptables`) or IPv6 (`ip6tables`; `meta
    /// nfproto ipv6` in nftables). Addresses, where given, are of this family.
    #[serde(default, skip_serializing_if = "Family::is_ipv4")]
    pub family: Family,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_if: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_if: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpNet>,
    /// Only packets of connections already seen (conntrack RELATED,ESTABLISHED):
    /// the replies to a network's egress traffic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replies: bool,
}

/// Source NAT of `source`'s traffic, except to `keep` and to multicast.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Masquerade {
    pub source: IpNet,
    /// Destinations whose traffic keeps its source address: every subnet of the
    /// mesh (aggregated, sorted).
    pub keep: Vec<IpNet>,
}

/// The multicast range of `net`'s family: never translated.
pub fn multicast(net: &IpNet) -> IpNet {
    match net {
        IpNet::V4(_) => "224.0.0.0/4".parse().expect("a network"),
        IpNet::V6(_) => "ff00::/8".parse().expect("a network"),
    }
}

impl Accept {
    /// The match in iptables' words, e.g. `-i obr0 -o obr0` (`-6 -i obr0 -o
    /// obr0` for IPv6: iptables-restore's own flag for an ip6tables-only rule).
    pub fn describe(&self) -> String {
        let mut words = Vec::new();
        if self.family == Family::Ipv6 {
            words.push("-6".to_string());
        }
        for (flag, value) in [
            ("-i", self.in_if.clone()),
            ("-o", self.out_if.clone()),
            ("-s", self.src.map(|n| n.to_string())),
            ("-d", self.dst.map(|n| n.to_string())),
        ] {
            if let Some(value) = value {
                words.push(format!("{flag} {value}"));
            }
        }
        if self.replies {
            words.push("replies".to_string());
        }
        words.join(" ")
    }
}

impl Rule {
    /// The family the rule is written for (`iptables` or `ip6tables`).
    pub fn family(&self) -> Family {
        match self {
            Rule::Accept(accept) => accept.family,
            Rule::Masquerade(masquerade) => Family::of(masquerade.source.addr()),
            Rule::Jump { family, .. } => *family,
            Rule::Other { text } if text.starts_with("ip6 ") => Family::Ipv6,
            Rule::Other { .. } => Family::Ipv4,
        }
    }

    /// The rule's identity in the state: what it matches, e.g.
    /// `accept -i obr0 -o obr0`, `masquerade -s 172.17.1.0/24`.
    pub fn id(&self) -> String {
        match self {
            Rule::Accept(accept) => format!("accept {}", accept.describe()),
            Rule::Masquerade(masquerade) => format!("masquerade -s {}", masquerade.source),
            Rule::Jump {
                from,
                to,
                family: Family::Ipv4,
            } => format!("jump {from} -> {to}"),
            Rule::Jump { from, to, .. } => format!("jump -6 {from} -> {to}"),
            Rule::Other { text } => format!("other {text}"),
        }
    }
}

/// Where a rule lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Place {
    /// Desired, not yet fitted to a host: the forward path.
    Forward,
    /// Desired, not yet fitted to a host: source NAT after routing.
    SourceNat,
    /// An iptables chain.
    Iptables { table: String, chain: String },
    /// A chain of ovsmesh's own nftables table `inet ovsmesh`.
    Nftables { chain: String },
}

impl Place {
    pub fn iptables(table: &str, chain: &str) -> Self {
        Place::Iptables {
            table: table.to_string(),
            chain: chain.to_string(),
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Forward => write!(f, "forward"),
            Place::SourceNat => write!(f, "source-nat"),
            // iptables' own words: the filter table is the default.
            Place::Iptables { table, chain } if table == "filter" => write!(f, "{chain}"),
            Place::Iptables { table, chain } => write!(f, "{table} {chain}"),
            Place::Nftables { chain } => write!(f, "nft inet ovsmesh {chain}"),
        }
    }
}

/// Observed only: the host's firewall as found, which decides where the rules go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum FirewallHost {
    /// iptables, the chains Docker and the admin use (`variant`: `legacy` or `nf_tables`).
    Iptables {
        variant: String,
        /// Docker's `DOCKER-USER` chain exists: the accept rules go there.
        docker_user: bool,
        /// The same in ip6tables (Docker makes it only with `ip6tables` on):
        /// the IPv6 accept rules go there.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        docker_user6: bool,
    },
    /// Native nftables: ovsmesh's own table `inet ovsmesh`.
    Nftables,
    /// Neither `iptables` nor `nft` is installed: the firewall is left alone.
    Missing,
    /// The firewall could not be read: nothing is changed in it.
    Unreadable { error: String },
}
