//! The iptables backend: the chains Docker and the admin use (pure: a listing
//! in, this mesh's rules out; changes in, one `iptables-restore` input out).
//!
//! Accept rules go into Docker's `DOCKER-USER` when it exists, before its final
//! `RETURN` (so the admin's rules there come first), else into ovsmesh's own
//! `OVSMESH-FORWARD`, jumped to from FORWARD. A masquerade is a RETURN per kept
//! destination, then `MASQUERADE --random-fully` (as flannel's `--ip-masq`),
//! in ovsmesh's own nat chain `OVSMESH-POSTROUTING`, jumped to from POSTROUTING,
//! so a RETURN leaves only that chain. Every rule and jump carries the comment
//! `ovsmesh:MESH`. A change is written as deletes of the lines as listed and
//! inserts at explicit positions, in one `iptables-restore --noflush` input
//! (each table commits atomically); an own chain left empty goes with its jumps.
//!
//! IPv6 rules live in ip6tables, listed by `ip6tables-save` and written by
//! `ip6tables-restore`: the same words, chains and marks, read and written by
//! the same functions for the listing's family.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::desired::firewall::{DOCKER_CHAIN, OWN_FORWARD, OWN_POSTROUTING};
use crate::host::iptables_read::Tables;
use crate::state::{multicast, Accept, Family, FirewallRule, Masquerade, Place, Rule};

/// The comment marking a rule as `mesh`'s.
pub fn mark(mesh: &str) -> String {
    format!("ovsmesh:{mesh}")
}

/// A listed rule: its table, chain and arguments as `iptables-save` wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub table: String,
    pub chain: String,
    pub args: Vec<String>,
}

/// This mesh's rules in the listing, and the lines each is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub rules: BTreeMap<String, FirewallRule>,
    pub lines: BTreeMap<String, Vec<Line>>,
}

/// One marked line, understood.
enum Part {
    Whole(Rule),
    /// A RETURN of a masquerade: its source keeps this destination.
    Keep(IpNet, IpNet),
    /// The MASQUERADE of a masquerade.
    Masquerade(IpNet),
}

/// The words of a rule ovsmesh writes, as far as they are understood.
#[derive(Default)]
struct Words {
    accept: Accept,
    not_dst: Option<IpNet>,
    target: Option<String>,
    target_options: Vec<String>,
    unknown: bool,
}

fn words(args: &[String], mark: &str) -> Words {
    let mut out = Words::default();
    let mut negated = false;
    let mut iter = args.iter();
    while let Some(word) = iter.next() {
        let mut value = || iter.next().cloned().unwrap_or_default();
        match word.as_str() {
            "!" => {
                negated = true;
                continue;
            }
            "-i" => out.accept.in_if = Some(value()),
            "-o" => out.accept.out_if = Some(value()),
            "-s" | "-d" => {
                let Ok(net) = value().parse::<IpNet>() else {
                    out.unknown = true;
                    continue;
                };
                match (word.as_str(), negated) {
                    ("-s", false) => out.accept.src = Some(net),
                    ("-d", false) => out.accept.dst = Some(net),
                    ("-d", true) => out.not_dst = Some(net),
                    _ => out.unknown = true,
                }
            }
            "-m" => match value().as_str() {
                "comment" | "conntrack" => {}
                _ => out.unknown = true,
            },
            "--comment" => {
                if value() != mark {
                    out.unknown = true;
                }
            }
            "--ctstate" => {
                let mut states: Vec<String> = value().split(',').map(str::to_string).collect();
                states.sort();
                if states == ["ESTABLISHED", "RELATED"] {
                    out.accept.replies = true;
                } else {
                    out.unknown = true;
                }
            }
            "-j" => {
                out.target = Some(value());
                out.target_options = iter.by_ref().cloned().collect();
            }
            _ => out.unknown = true,
        }
        if negated && word != "-d" {
            out.unknown = true;
        }
        negated = false;
    }
    out
}

fn part(table: &str, chain: &str, args: &[String], mark: &str, family: Family) -> Part {
    let mut w = words(args, mark);
    w.accept.family = family;
    let other = || {
        let prefix = if family == Family::Ipv6 { "ip6 " } else { "" };
        Part::Whole(Rule::Other {
            text: format!("{prefix}{table} {chain} {}", args.join(" ")),
        })
    };
    if w.unknown {
        return other();
    }
    // No match but the mark (of this family: the default Accept is IPv4's).
    let bare = Accept {
        family,
        ..Accept::default()
    };
    let plain = w.accept == bare && w.not_dst.is_none();
    match (table, w.target.as_deref(), w.target_options.as_slice()) {
        ("filter", Some("ACCEPT"), []) if w.not_dst.is_none() => {
            Part::Whole(Rule::Accept(w.accept))
        }
        ("filter", Some(OWN_FORWARD), []) if plain && chain == "FORWARD" => {
            Part::Whole(Rule::Jump {
                from: chain.to_string(),
                to: OWN_FORWARD.to_string(),
                family,
            })
        }
        ("nat", Some(OWN_POSTROUTING), []) if plain && chain == "POSTROUTING" => {
            Part::Whole(Rule::Jump {
                from: chain.to_string(),
                to: OWN_POSTROUTING.to_string(),
                family,
            })
        }
        ("nat", Some("RETURN"), []) => match w.accept {
            Accept {
                src: Some(src),
                dst: Some(dst),
                in_if: None,
                out_if: None,
                replies: false,
                ..
            } if w.not_dst.is_none() => Part::Keep(src, dst),
            _ => other(),
        },
        ("nat", Some("MASQUERADE"), [fully]) if fully == "--random-fully" => match w.accept {
            Accept {
                src: Some(src),
                dst: None,
                in_if: None,
                out_if: None,
                replies: false,
                ..
            } if w.not_dst == Some(multicast(&src)) => Part::Masquerade(src),
            _ => other(),
        },
        _ => other(),
    }
}

/// This mesh's rules in `tables` (a listing of `family`'s: `iptables-save`
/// or `ip6tables-save`), with what is out of order marked misplaced.
pub fn observe(tables: &Tables, mesh: &str, family: Family) -> Found {
    let mark = mark(mesh);
    let mut found = Found::default();
    // Source → (kept destinations, the lines in listing order).
    let mut masquerades: BTreeMap<IpNet, (Vec<IpNet>, Vec<Line>)> = BTreeMap::new();
    for (table, ruleset) in tables {
        for (chain, rules) in &ruleset.chains {
            let mut after_return = false;
            for rule in &rules.rules {
                let args = &rule.args;
                if chain == DOCKER_CHAIN && args == &["-j", "RETURN"] {
                    after_return = true;
                }
                if !args.windows(2).any(|w| w[0] == "--comment" && w[1] == mark) {
                    continue;
                }
                let line = Line {
                    table: table.clone(),
                    chain: chain.clone(),
                    args: args.clone(),
                };
                match part(table, chain, args, &mark, family) {
                    Part::Whole(found_rule) => {
                        let id = found_rule.id();
                        let mut entry =
                            FirewallRule::new(found_rule, Place::iptables(table, chain));
                        if after_return {
                            entry.misplaced = Some(format!(
                                "after {DOCKER_CHAIN}'s final RETURN, where it is never evaluated"
                            ));
                        }
                        add(&mut found, id, entry, line);
                    }
                    Part::Keep(source, keep) => {
                        let group = masquerades.entry(source).or_default();
                        group.0.push(keep);
                        group.1.push(line);
                    }
                    Part::Masquerade(source) => masquerades.entry(source).or_default().1.push(line),
                }
            }
        }
    }
    for (source, (mut keep, lines)) in masquerades {
        let is_masquerade = |l: &Line| l.args.iter().any(|a| a == "MASQUERADE");
        let masquerades = lines.iter().filter(|l| is_masquerade(l)).count();
        let mut chains: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l.table.as_str(), l.chain.as_str()))
            .collect();
        chains.dedup();
        let place = Place::iptables(chains[0].0, chains[0].1);
        let kept_after = lines
            .iter()
            .skip_while(|l| !is_masquerade(l))
            .any(|l| !is_masquerade(l));
        let misplaced = if masquerades == 0 {
            Some("its MASQUERADE rule is missing".to_string())
        } else if masquerades > 1 {
            Some(format!("its MASQUERADE rule is listed {masquerades} times"))
        } else if kept_after {
            Some("a kept destination comes after the MASQUERADE".to_string())
        } else if chains.len() > 1 {
            Some("its lines are spread over chains".to_string())
        } else {
            None
        };
        keep.sort();
        keep.dedup();
        let rule = Rule::Masquerade(Masquerade { source, keep });
        let id = rule.id();
        let mut entry = FirewallRule::new(rule, place);
        entry.misplaced = misplaced;
        found.rules.insert(id.clone(), entry);
        found.lines.insert(id, lines);
    }
    found
}

/// Record a whole rule; a second line with the same rule makes it misplaced.
fn add(found: &mut Found, id: String, entry: FirewallRule, line: Line) {
    let lines = found.lines.entry(id.clone()).or_default();
    lines.push(line);
    let count = lines.len();
    let rule = found.rules.entry(id).or_insert(entry);
    if count > 1 {
        rule.misplaced = Some(format!("listed {count} times"));
    }
}

/// The arguments that write `accept` for `mesh` (after `-A CHAIN`).
fn accept_spec(accept: &Accept, mark: &str) -> Vec<String> {
    let mut args = Vec::new();
    for (flag, value) in [
        ("-s", accept.src.map(|n| n.to_string())),
        ("-d", accept.dst.map(|n| n.to_string())),
        ("-i", accept.in_if.clone()),
        ("-o", accept.out_if.clone()),
    ] {
        if let Some(value) = value {
            args.extend([flag.to_string(), value]);
        }
    }
    if accept.replies {
        args.extend(["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"].map(String::from));
    }
    args.extend(comment(mark));
    args.extend(["-j", "ACCEPT"].map(String::from));
    args
}

fn comment(mark: &str) -> [String; 4] {
    [
        "-m".into(),
        "comment".into(),
        "--comment".into(),
        mark.into(),
    ]
}

/// A word as iptables-restore reads it back.
fn quote(word: &str) -> String {
    if !word.is_empty() && !word.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        return word.to_string();
    }
    format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The chains of a table as the batch leaves them, to compute positions.
struct Model {
    chains: BTreeMap<(String, String), Vec<Vec<String>>>,
    script: BTreeMap<String, Vec<String>>,
}

impl Model {
    fn emit(&mut self, table: &str, words: Vec<String>) {
        let line: Vec<String> = words.iter().map(|w| quote(w)).collect();
        self.script
            .entry(table.to_string())
            .or_default()
            .push(line.join(" "));
    }

    fn chain(&mut self, table: &str, chain: &str) -> &mut Vec<Vec<String>> {
        self.chains
            .entry((table.to_string(), chain.to_string()))
            .or_default()
    }

    fn ensure_chain(&mut self, table: &str, chain: &str) {
        if !self
            .chains
            .contains_key(&(table.to_string(), chain.to_string()))
        {
            self.chain(table, chain);
            self.emit(table, vec!["-N".into(), chain.into()]);
        }
    }

    fn delete(&mut self, table: &str, chain: &str, args: &[String]) {
        let rules = self.chain(table, chain);
        if let Some(at) = rules.iter().position(|r| r == args) {
            rules.remove(at);
        }
        let mut words = vec!["-D".to_string(), chain.to_string()];
        words.extend(args.iter().cloned());
        self.emit(table, words);
    }

    /// Insert at 1-based `position`, or append.
    fn insert(&mut self, table: &str, chain: &str, position: Option<usize>, args: Vec<String>) {
        let rules = self.chain(table, chain);
        let mut words = match position {
            Some(at) => {
                rules.insert(at - 1, args.clone());
                vec!["-I".to_string(), chain.to_string(), at.to_string()]
            }
            None => {
                rules.push(args.clone());
                vec!["-A".to_string(), chain.to_string()]
            }
        };
        words.extend(args);
        self.emit(table, words);
    }
}

/// The `iptables-restore --noflush` input that deletes the lines of `delete`
/// (rule ids of `found`) and writes `write`; `None` when there is nothing to do.
pub fn batch(
    tables: &Tables,
    found: &Found,
    mesh: &str,
    delete: &[&str],
    write: &[&FirewallRule],
) -> Option<String> {
    let mark = mark(mesh);
    let mut model = Model {
        chains: tables
            .iter()
            .flat_map(|(table, ruleset)| {
                ruleset.chains.iter().map(move |(chain, rules)| {
                    (
                        (table.clone(), chain.clone()),
                        rules.rules.iter().map(|r| r.args.clone()).collect(),
                    )
                })
            })
            .collect(),
        script: BTreeMap::new(),
    };
    for id in delete {
        for line in found.lines.get(*id).into_iter().flatten() {
            model.delete(&line.table, &line.chain, &line.args);
        }
    }
    for rule in write {
        let Place::Iptables { table, chain } = &rule.place else {
            continue;
        };
        match &rule.rule {
            Rule::Accept(accept) => {
                model.ensure_chain(table, chain);
                let position = (chain == DOCKER_CHAIN)
                    .then(|| {
                        model
                            .chain(table, chain)
                            .iter()
                            .position(|r| r == &["-j", "RETURN"])
                            .map(|at| at + 1)
                    })
                    .flatten();
                model.insert(table, chain, position, accept_spec(accept, &mark));
            }
            Rule::Jump { from, to, .. } => {
                model.ensure_chain(table, to);
                let mut args = comment(&mark).to_vec();
                args.extend(["-j".to_string(), to.clone()]);
                model.insert(table, from, Some(1), args);
            }
            Rule::Masquerade(masquerade) => {
                model.ensure_chain(table, chain);
                let source = masquerade.source.to_string();
                for keep in masquerade.keep.iter().rev() {
                    let mut args = vec!["-s".into(), source.clone(), "-d".into(), keep.to_string()];
                    args.extend(comment(&mark));
                    args.extend(["-j".to_string(), "RETURN".to_string()]);
                    model.insert(table, chain, Some(1), args);
                }
                let mut args = vec!["-s".into(), source, "!".into(), "-d".into()];
                args.push(multicast(&masquerade.source).to_string());
                args.extend(comment(&mark));
                args.extend(["-j", "MASQUERADE", "--random-fully"].map(String::from));
                model.insert(table, chain, None, args);
            }
            Rule::Other { .. } => {}
        }
    }
    // An own chain nothing is left in goes, with every jump to it (also the
    // unmarked jumps of earlier versions).
    for (table, own) in [("filter", OWN_FORWARD), ("nat", OWN_POSTROUTING)] {
        let key = (table.to_string(), own.to_string());
        if model.chains.get(&key).is_none_or(|rules| !rules.is_empty()) {
            continue;
        }
        let jumps: Vec<(String, Vec<String>)> = model
            .chains
            .iter()
            .filter(|((t, _), _)| t == table)
            .flat_map(|((_, chain), rules)| {
                rules
                    .iter()
                    .filter(|r| r.windows(2).any(|w| w[0] == "-j" && w[1] == own))
                    .map(move |r| (chain.clone(), r.clone()))
            })
            .collect();
        for (chain, args) in jumps {
            model.delete(table, &chain, &args);
        }
        model.chains.remove(&key);
        model.emit(table, vec!["-X".into(), own.into()]);
    }
    let mut input = String::new();
    for (table, lines) in &model.script {
        input.push_str(&format!("*{table}\n"));
        for line in lines {
            input.push_str(line);
            input.push('\n');
        }
        input.push_str("COMMIT\n");
    }
    (!input.is_empty()).then_some(input)
}

#[cfg(test)]
mod tests;
