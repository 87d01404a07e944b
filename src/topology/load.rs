//! From TOML text to raw, per-entry typed sections.
//!
//! serde stops at the first error, but users want every problem at once. So the
//! file is parsed once into a spanned tree, and each section entry (`[mesh]`,
//! every `[hosts.X]`, `[networks.X]`, `[containers.X]`) is deserialized on its
//! own: one bad host does not hide a bad container. Errors carry the parser's
//! exact span and the key path, and unknown keys get a "did you mean". Entry
//! keys are checked here as names (`ident`), whether or not the entry parses.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::ident::{self, Kind};
use super::raw::{RawContainer, RawHost, RawMesh, RawNetwork, TOP_LEVEL_KEYS};
use super::source::{At, Diagnostic, KeyPath};

/// What survived the structural pass, plus every declared name (even of
/// entries that failed), so later reference checks do not pile up noise.
#[derive(Debug, Default)]
pub struct Sections {
    pub mesh: Option<RawMesh>,
    pub hosts: BTreeMap<String, RawHost>,
    pub networks: BTreeMap<String, RawNetwork>,
    pub containers: BTreeMap<String, RawContainer>,
    pub declared_hosts: BTreeSet<String>,
    pub declared_networks: BTreeSet<String>,
}

/// Split the parsed document into typed sections, collecting problems.
/// Consumes the tree: each entry moves into its own deserializer.
pub fn sections(root: DeTable<'_>, problems: &mut Vec<Diagnostic>) -> Sections {
    let top = KeyPath::root();
    let mut out = Sections::default();
    let mut saw_mesh = false;
    for (key, value) in root {
        let section = key.get_ref().to_string();
        match section.as_str() {
            "mesh" => {
                saw_mesh = true;
                out.mesh = entry(&top.key("mesh"), value, problems);
            }
            "hosts" | "networks" | "containers" => {
                for (name, value) in table_entries(&section, value, problems) {
                    let path = top.key(section.as_str()).key(&name);
                    if let Some(problem) = ident::problem(entry_kind(&section), &name) {
                        problems.push(Diagnostic::key(&path, problem));
                    }
                    match section.as_str() {
                        "hosts" => {
                            out.declared_hosts.insert(name.clone());
                            if let Some(host) = entry(&path, value, problems) {
                                out.hosts.insert(name, host);
                            }
                        }
                        "networks" => {
                            out.declared_networks.insert(name.clone());
                            if let Some(network) = network_entry(&path, value, problems) {
                                out.networks.insert(name, network);
                            }
                        }
                        _ => {
                            if let Some(container) = entry(&path, value, problems) {
                                out.containers.insert(name, container);
                            }
                        }
                    }
                }
            }
            other => problems.push(Diagnostic::key(
                &top.key(other),
                unknown_key_message(other, TOP_LEVEL_KEYS),
            )),
        }
    }
    if !saw_mesh {
        problems.push(Diagnostic::key(
            &top,
            "missing required table [mesh] (it needs at least `name`)",
        ));
    }
    out
}

/// What the keys of a named-entry section name.
fn entry_kind(section: &str) -> Kind {
    match section {
        "hosts" => Kind::Host,
        "networks" => Kind::Network,
        _ => Kind::Container,
    }
}

fn find<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

/// The entries of a top-level section such as `[hosts.*]`.
fn table_entries<'i>(
    section: &str,
    value: Spanned<DeValue<'i>>,
    problems: &mut Vec<Diagnostic>,
) -> Vec<(String, Spanned<DeValue<'i>>)> {
    match value.into_inner() {
        DeValue::Table(table) => table
            .into_iter()
            .map(|(k, v)| (k.get_ref().to_string(), v))
            .collect(),
        other => {
            problems.push(Diagnostic::value(
                &KeyPath::root().key(section),
                format!(
                    "expected a table of named entries, found {}",
                    other.type_str()
                ),
            ));
            Vec::new()
        }
    }
}

/// A network entry: dispatch on `kind` by hand so that errors inside the
/// variant keep their exact key path and span (serde's internally tagged enums
/// buffer the content and lose both).
fn network_entry(
    path: &KeyPath,
    value: Spanned<DeValue<'_>>,
    problems: &mut Vec<Diagnostic>,
) -> Option<RawNetwork> {
    let span = value.span();
    let DeValue::Table(table) = value.get_ref() else {
        problems.push(Diagnostic::value(
            path,
            format!("expected a table, found {}", value.get_ref().type_str()),
        ));
        return None;
    };
    let kinds = ["vlan", "routed"];
    let Some(kind) = find(table, "kind") else {
        problems.push(Diagnostic::key(
            path,
            "missing required key `kind` (\"vlan\" or \"routed\")",
        ));
        return None;
    };
    let kind_text = kind.get_ref().as_str().unwrap_or_default().to_string();
    let DeValue::Table(table) = value.into_inner() else {
        return None;
    };
    let mut rest = DeTable::new();
    for (key, item) in table.into_iter().filter(|(k, _)| k.get_ref() != "kind") {
        rest.insert(key, item);
    }
    let rest = Spanned::new(span, DeValue::Table(rest));
    match kind_text.as_str() {
        "vlan" => entry(path, rest, problems).map(RawNetwork::Vlan),
        "routed" => entry(path, rest, problems).map(RawNetwork::Routed),
        other => {
            problems.push(Diagnostic::value(
                &path.key("kind"),
                unknown_key_message(other, &kinds).replace("unknown key", "unknown network kind"),
            ));
            None
        }
    }
}

/// Deserialize one entry, turning a serde error into a located diagnostic.
fn entry<T: DeserializeOwned>(
    path: &KeyPath,
    value: Spanned<DeValue<'_>>,
    problems: &mut Vec<Diagnostic>,
) -> Option<T> {
    let deserializer = ValueDeserializer::from(value);
    match serde_path_to_error::deserialize::<_, T>(deserializer) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            let mut key_path = path.clone();
            for segment in error.path().iter() {
                match segment {
                    serde_path_to_error::Segment::Map { key } => {
                        key_path = key_path.key(key.as_str())
                    }
                    serde_path_to_error::Segment::Seq { index } => {
                        key_path = key_path.index(*index)
                    }
                    serde_path_to_error::Segment::Enum { .. }
                    | serde_path_to_error::Segment::Unknown => {}
                }
            }
            let inner = error.inner();
            let mut diagnostic = describe(&key_path, inner.message());
            diagnostic.offset = inner.span().map(|span| span.start);
            problems.push(diagnostic);
            None
        }
    }
}

/// A diagnostic for a serde message, with "did you mean" for unknown keys.
fn describe(path: &KeyPath, message: &str) -> Diagnostic {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
            let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            let key_path = if path_ends_with(path, field) {
                path.clone()
            } else {
                path.key(field)
            };
            return Diagnostic::key(&key_path, unknown_key_message(field, &candidates));
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        return Diagnostic {
            path: path.clone(),
            message: format!("missing required key `{field}`"),
            at: At::Key,
            offset: None,
        };
    }
    let mut text = message.trim_end().to_string();
    for (rust, plain) in [
        ("expected i64", "expected an integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected a boolean", "expected true or false"),
    ] {
        text = text.replace(rust, plain);
    }
    Diagnostic::value(path, text)
}

fn path_ends_with(path: &KeyPath, field: &str) -> bool {
    path.parent()
        .is_some_and(|parent| parent.key(field) == *path)
}

/// "unknown key `X`" with the closest known key when one is close enough.
pub fn unknown_key_message(found: &str, known: &[&str]) -> String {
    let closest = known
        .iter()
        .map(|k| (strsim::levenshtein(found, k), *k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 3))
        .min();
    match closest {
        Some((_, suggestion)) => format!("unknown key `{found}`; did you mean `{suggestion}`?"),
        None => format!(
            "unknown key `{found}`; expected one of: {}",
            known.join(", ")
        ),
    }
}
