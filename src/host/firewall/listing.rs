//! `iptables -S` as data: the filter table's policies, chains and rules, and which
//! listed rules are a mesh's own (pure, unit-tested in `super::tests`).

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;

use super::{mark, Rule};

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

/// Parse `iptables -S` output (pure).
pub fn parse(text: &str) -> Ruleset {
    let mut set = Ruleset::default();
    for line in text.lines() {
        let words = split_words(line);
        match words.first().map(String::as_str) {
            Some("-P") if words.len() >= 3 => {
                set.chains.insert(words[1].clone());
                set.policies.insert(words[1].clone(), words[2].clone());
            }
            Some("-N") if words.len() >= 2 => {
                set.chains.insert(words[1].clone());
            }
            Some("-A") if words.len() >= 2 => set.rules.push(Listed {
                chain: words[1].clone(),
                args: words[2..].to_vec(),
            }),
            _ => {}
        }
    }
    set
}

/// Words of a line, double quotes removed (`--comment "a b"` is one word).
pub(super) fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut escaped, mut started) = (false, false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                word.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
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
