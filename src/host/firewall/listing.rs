//! `iptables -S` as data: the filter table's policies, chains and rules, and which
//! listed rules are a mesh's own (pure, unit-tested in `super::tests`). The lines
//! are parsed by `crate::host::iptables_read::statements`, shared with the INPUT check.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;

use super::{mark, Rule};
use crate::host::iptables_read::{statements, Statement};

/// One `-A CHAIN ARGS` line of `iptables -S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub chain: String,
    pub args: Vec<String>,
}

/// The filter table as `iptables -S` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Built-in chain → policy.
    pub policies: BTreeMap<String, String>,
    pub chains: BTreeSet<String>,
    pub rules: Vec<Listed>,
}

/// Parse `iptables -S` output (pure), with the one listing parser.
pub fn parse(text: &str) -> Ruleset {
    let mut set = Ruleset::default();
    for statement in statements(text) {
        match statement {
            Statement::Chain { name, policy } => {
                if let Some(policy) = policy {
                    set.policies.insert(name.clone(), policy);
                }
                set.chains.insert(name);
            }
            Statement::Append { chain, args, .. } => set.rules.push(Listed { chain, args }),
        }
    }
    set
}

/// The rule a listed line is, if it is one of `mesh`'s and of a shape ovsmesh writes.
pub(super) fn ours(args: &[String], mesh: &str) -> Option<Option<Rule>> {
    let marked = args
        .windows(2)
        .any(|w| w[0] == "--comment" && w[1] == mark(mesh));
    if !marked {
        return None;
    }
    let mut rule = Rule::default();
    let mut rest = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            flag @ ("-s" | "-d" | "-i" | "-o") => {
                let Some(value) = words.next() else {
                    return Some(None);
                };
                match flag {
                    "-i" => rule.in_if = Some(value.clone()),
                    "-o" => rule.out_if = Some(value.clone()),
                    _ => {
                        let Ok(net) = value.parse::<Ipv4Net>() else {
                            return Some(None);
                        };
                        if flag == "-s" {
                            rule.src = Some(net);
                        } else {
                            rule.dst = Some(net);
                        }
                    }
                }
            }
            other => rest.push(other.to_string()),
        }
    }
    let expected = ["-m", "comment", "--comment", &mark(mesh), "-j", "ACCEPT"];
    Some((rest == expected).then_some(rule))
}
