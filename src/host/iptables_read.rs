//! A read-only view of the host's iptables `filter` table, and what it does to
//! one kind of packet.
//!
//! Pure: the listing is `iptables-save`'s, read once per reconcile by
//! `super::firewall` (the one read path); here it becomes one typed ruleset per
//! table, which the firewall manager, `status` and the INPUT check all use.
//!
//! [`verdict`] walks a built-in chain the way the kernel does for one packet,
//! but only as far as it can be sure: a rule whose matches it understands
//! (protocol, addresses, input interface, UDP destination ports, comments)
//! either certainly matches or certainly does not; a rule with anything else
//! (conntrack state, marks, sets, limits …) is skipped as "not obviously
//! matching". Jumps into user chains are followed.
//!
//! [`table_statements`] is the one parser of a listing, `iptables -S` as well
//! as `iptables-save`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// The rules and policies of the filter table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: BTreeMap<String, Chain>,
}

/// One chain: its policy (built-in chains only) and its rules in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub policy: Option<String>,
    pub rules: Vec<Rule>,
}

/// One rule: its arguments after `-A CHAIN`, and the line as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub args: Vec<String>,
    pub line: String,
}

/// What a packet is, as far as the rules ovsmesh understands can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// IP protocol 47.
    Gre,
    /// UDP to this destination port.
    Udp(u16),
}

/// The packet whose fate is asked.
#[derive(Debug, Clone)]
pub struct Packet<'a> {
    pub protocol: Protocol,
    pub source: Option<IpAddr>,
    pub destination: Option<IpAddr>,
    pub in_interface: Option<&'a str>,
}

/// The chain's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted, by this rule or policy.
    Accepted(String),
    /// Dropped or rejected, by this rule or policy.
    Dropped(String),
}

/// One statement of the filter table's listing; `iptables -S` and
/// `iptables-save -t filter` write the same `-A` lines and differ only in how
/// they declare chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `-P CHAIN POLICY`, `-N CHAIN` or `:CHAIN POLICY [counters]` (policy `-`: none).
    Chain {
        name: String,
        policy: Option<String>,
    },
    /// `-A CHAIN ARGS…`, with the (trimmed) line as written.
    Append {
        chain: String,
        args: Vec<String>,
        line: String,
    },
}

/// The filter table's statements in a listing, in order (see [`table_statements`]).
pub fn statements(text: &str) -> Vec<Statement> {
    table_statements(text)
        .into_iter()
        .filter(|(table, _)| table == "filter")
        .map(|(_, statement)| statement)
        .collect()
}

/// Every statement of a listing with its table, in order: the one parser of
/// both `iptables -S` (no table headers: all of it is the filter table) and
/// `iptables-save` (`*TABLE` sections).
pub fn table_statements(text: &str) -> Vec<(String, Statement)> {
    let mut statements = Vec::new();
    let mut table = "filter".to_string();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('*') {
            table = name.to_string();
            continue;
        }
        if let Some(declaration) = line.strip_prefix(':') {
            if let [name, rest @ ..] = split_words(declaration).as_slice() {
                let policy = rest.first().filter(|p| *p != "-").cloned();
                let chain = Statement::Chain {
                    name: name.clone(),
                    policy,
                };
                statements.push((table.clone(), chain));
            }
            continue;
        }
        let words = split_words(line);
        let statement = match words.as_slice() {
            [p, name, policy, ..] if p == "-P" => Statement::Chain {
                name: name.clone(),
                policy: Some(policy.clone()),
            },
            [n, name, ..] if n == "-N" => Statement::Chain {
                name: name.clone(),
                policy: None,
            },
            [a, chain, args @ ..] if a == "-A" => Statement::Append {
                chain: chain.clone(),
                args: args.to_vec(),
                line: line.to_string(),
            },
            _ => continue,
        };
        statements.push((table.clone(), statement));
    }
    statements
}

/// Every table of a listing, by name (`filter`, `nat`, …).
pub type Tables = BTreeMap<String, Ruleset>;

/// Parse `iptables-save` output into its tables.
pub fn tables(text: &str) -> Tables {
    let mut tables = Tables::new();
    for (table, statement) in table_statements(text) {
        let ruleset = tables.entry(table).or_default();
        match statement {
            Statement::Chain { name, policy } => {
                ruleset.chains.entry(name).or_default().policy = policy;
            }
            Statement::Append { chain, args, line } => {
                ruleset
                    .chains
                    .entry(chain)
                    .or_default()
                    .rules
                    .push(Rule { args, line });
            }
        }
    }
    tables
}

/// Parse `iptables-save` output; only the `filter` table is kept.
pub fn parse(text: &str) -> Ruleset {
    tables(text).remove("filter").unwrap_or_default()
}

/// Words of a listed line, double quotes removed (`--comment "a b"` is one
/// word, `""` an empty one, `\"` inside quotes a quote).
pub fn split_words(line: &str) -> Vec<String> {
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

impl Ruleset {
    /// A chain's policy, e.g. `DROP` for `INPUT`.
    pub fn policy(&self, chain: &str) -> Option<&str> {
        self.chains.get(chain)?.policy.as_deref()
    }
}

/// What the built-in `chain` does to `packet`. Without the chain (no filter
/// table), everything is accepted.
pub fn verdict(ruleset: &Ruleset, chain: &str, packet: &Packet<'_>) -> Verdict {
    if let Some(verdict) = walk(ruleset, chain, packet, 0) {
        return verdict;
    }
    match ruleset.policy(chain) {
        Some(policy @ ("DROP" | "REJECT")) => Verdict::Dropped(format!("{chain} policy {policy}")),
        Some(policy) => Verdict::Accepted(format!("{chain} policy {policy}")),
        None => Verdict::Accepted(format!("no {chain} chain")),
    }
}

/// Nesting bound for jumps into user chains (loops are the kernel's to reject).
const MAX_DEPTH: usize = 16;

fn walk(ruleset: &Ruleset, chain: &str, packet: &Packet<'_>, depth: usize) -> Option<Verdict> {
    let rules = &ruleset.chains.get(chain)?.rules;
    for rule in rules {
        let Some(parsed) = ParsedRule::of(&rule.args) else {
            continue;
        };
        if parsed.matches(packet) != Some(true) {
            continue;
        }
        match parsed.target.as_deref() {
            Some("ACCEPT") => return Some(Verdict::Accepted(rule.line.clone())),
            Some("DROP" | "REJECT") => return Some(Verdict::Dropped(rule.line.clone())),
            Some("RETURN") => return None,
            Some(user) if ruleset.chains.contains_key(user) && depth < MAX_DEPTH => {
                if let Some(verdict) = walk(ruleset, user, packet, depth + 1) {
                    return Some(verdict);
                }
                if parsed.goto {
                    return None;
                }
            }
            // LOG, MARK and other non-terminating targets, or no target.
            _ => {}
        }
    }
    None
}

/// A rule's matches, as far as they are understood.
#[derive(Debug, Default)]
struct ParsedRule {
    /// Each understood match, and whether it is negated (`! -s …`).
    conditions: Vec<(Condition, bool)>,
    target: Option<String>,
    goto: bool,
    /// Something not understood: the rule never obviously matches.
    unknown: bool,
}

#[derive(Debug)]
enum Condition {
    Protocol(String),
    Source(String),
    Destination(String),
    InInterface(String),
    DestinationPorts(String),
}

impl ParsedRule {
    fn of(args: &[String]) -> Option<Self> {
        let mut rule = ParsedRule::default();
        let mut negated = false;
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let mut value = || words.next().cloned();
            let condition = match word.as_str() {
                "!" => {
                    negated = true;
                    continue;
                }
                "-p" | "--protocol" => Condition::Protocol(value()?),
                "-s" | "--source" => Condition::Source(value()?),
                "-d" | "--destination" => Condition::Destination(value()?),
                "-i" | "--in-interface" => Condition::InInterface(value()?),
                "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                    Condition::DestinationPorts(value()?)
                }
                "-m" | "--match" => {
                    let module = value()?;
                    if !["udp", "multiport", "comment"].contains(&module.as_str()) {
                        rule.unknown = true;
                    }
                    continue;
                }
                "--comment" => {
                    value()?;
                    continue;
                }
                "-j" | "--jump" | "-g" | "--goto" => {
                    rule.goto = word == "-g" || word == "--goto";
                    rule.target = value();
                    // Target options (e.g. --reject-with) follow; they match nothing.
                    break;
                }
                _ => {
                    rule.unknown = true;
                    continue;
                }
            };
            rule.conditions.push((condition, negated));
            negated = false;
        }
        Some(rule)
    }

    /// `Some(true)` certainly matches, `Some(false)` certainly not, `None` unsure.
    fn matches(&self, packet: &Packet<'_>) -> Option<bool> {
        let mut sure = !self.unknown;
        for (condition, negated) in &self.conditions {
            match condition.holds(packet) {
                Some(holds) if holds == *negated => return Some(false),
                Some(_) => {}
                None => sure = false,
            }
        }
        sure.then_some(true)
    }
}

impl Condition {
    fn holds(&self, packet: &Packet<'_>) -> Option<bool> {
        match self {
            Condition::Protocol(value) => protocol_matches(value, packet.protocol),
            Condition::Source(value) => {
                let net = parse_net(value)?;
                packet.source.map(|s| net.contains(&s))
            }
            Condition::Destination(value) => {
                let net = parse_net(value)?;
                packet.destination.map(|d| net.contains(&d))
            }
            Condition::InInterface(value) => {
                let dev = packet.in_interface?;
                Some(match value.strip_suffix('+') {
                    Some(prefix) => dev.starts_with(prefix),
                    None => dev == value,
                })
            }
            Condition::DestinationPorts(value) => match packet.protocol {
                Protocol::Udp(port) => ports_contain(value, port),
                Protocol::Gre => Some(false),
            },
        }
    }
}

fn protocol_matches(value: &str, protocol: Protocol) -> Option<bool> {
    let value = value.to_ascii_lowercase();
    Some(match value.as_str() {
        "all" | "0" => true,
        "gre" | "47" => protocol == Protocol::Gre,
        "udp" | "17" => matches!(protocol, Protocol::Udp(_)),
        _ => false,
    })
}

fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// `4789`, `4000:5000` or `53,4789,6000:6100` contain `port`?
fn ports_contain(list: &str, port: u16) -> Option<bool> {
    let mut found = false;
    for item in list.split(',') {
        let (low, high) = match item.split_once(':') {
            Some((low, high)) => (
                if low.is_empty() { 0 } else { low.parse().ok()? },
                if high.is_empty() {
                    u16::MAX
                } else {
                    high.parse().ok()?
                },
            ),
            None => {
                let one: u16 = item.parse().ok()?;
                (one, one)
            }
        };
        found |= (low..=high).contains(&port);
    }
    Some(found)
}

#[cfg(test)]
mod tests;
