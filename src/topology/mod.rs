//! The topology: the declarative TOML file users keep in git, and its validation.
//!
//! `parse` is the only way to get a `Topology`: TOML syntax, then per-entry
//! structure (`load`), then per-entry meaning (`resolve`), then cluster-wide
//! rules (`cluster`). Every problem found on the way is reported together, each
//! located as `FILE:LINE:COL: key.path: message`.

mod cluster;
pub mod ident;
mod load;
pub mod model;
pub mod mtu;
pub mod names;
pub mod raw;
mod resolve;
pub mod source;

use std::collections::BTreeMap;
use std::path::Path;

pub use cluster::{network_budgets, routed_budget, vlan_budget, vlan_hosts};
pub use model::*;
pub use resolve::ovsdb_remote_problem;
use source::{Diagnostic, KeyPath, Source};

/// A topology that failed validation: every problem, located.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct Invalid {
    pub file: Source,
    pub problems: Vec<Diagnostic>,
}

impl Invalid {
    /// One located line per problem, in file order.
    pub fn messages(&self) -> Vec<String> {
        let mut located: Vec<(usize, String)> = self
            .problems
            .iter()
            .map(|d| {
                let line = self.file.render(d);
                let order = line
                    .strip_prefix(&format!("{}:", self.file.path().display()))
                    .and_then(|rest| {
                        let mut parts = rest.splitn(3, ':');
                        let line: usize = parts.next()?.parse().ok()?;
                        let col: usize = parts.next()?.parse().ok()?;
                        Some(line * 100_000 + col)
                    })
                    .unwrap_or(0);
                (order, line)
            })
            .collect();
        located.sort();
        located.dedup();
        located.into_iter().map(|(_, line)| line).collect()
    }

    fn render(&self) -> String {
        let messages = self.messages();
        format!(
            "{}\n{} problem(s) in {}",
            messages.join("\n"),
            messages.len(),
            self.file.path().display()
        )
    }
}

/// Failure to get a topology at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read topology {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error(transparent)]
    Invalid(#[from] Box<Invalid>),
}

/// Read and validate a topology file.
pub fn load(path: &Path) -> Result<Topology, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|error| LoadError::Read {
        path: path.display().to_string(),
        error,
    })?;
    parse(path, &text).map_err(LoadError::Invalid)
}

/// Validate topology text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Topology, Box<Invalid>> {
    let (root, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        let problems = syntax_errors
            .iter()
            .map(|error| Diagnostic {
                path: KeyPath::root(),
                message: format!("TOML syntax: {}", error.message().trim_end()),
                at: source::At::Key,
                offset: error
                    .span()
                    .map(|s| s.start)
                    .or_else(|| first_line_with(text, error.message())),
            })
            .collect();
        return Err(Box::new(Invalid {
            file: Source::unparsed(path, text),
            problems,
        }));
    }
    let mut problems = Vec::new();
    let topology = validate(root.into_inner(), &mut problems);
    match topology {
        Some(topology) if problems.is_empty() => Ok(topology),
        _ => {
            // Only a failing file needs the key → span index: parse it again for that.
            let (root, _) = toml::de::DeTable::parse_recoverable(text);
            Err(Box::new(Invalid {
                file: Source::new(path, text, &root),
                problems,
            }))
        }
    }
}

/// Where a syntax error the parser reports without a span starts (a dotted key
/// past its nesting limit): the first line whose prefix of the file already has
/// the error, at its first non-blank character.
fn first_line_with(text: &str, message: &str) -> Option<usize> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, _) in text.match_indices('\n') {
        lines.push((start, i + 1));
        start = i + 1;
    }
    lines.push((start, text.len()));
    let fails = |end: usize| {
        let (_, errors) = toml::de::DeTable::parse_recoverable(&text[..end]);
        errors
            .iter()
            .any(|e| e.span().is_none() && e.message() == message)
    };
    let line = lines.partition_point(|&(_, end)| !fails(end));
    let &(start, end) = lines.get(line)?;
    let blank = text[start..end].len() - text[start..end].trim_start().len();
    Some(start + blank)
}

fn validate(root: toml::de::DeTable<'_>, problems: &mut Vec<Diagnostic>) -> Option<Topology> {
    let sections = load::sections(root, problems);
    let mut resolver = resolve::Resolver::new(&sections, problems);
    let raw_mesh = sections.mesh.as_ref()?;
    let mesh = resolver.mesh(raw_mesh);
    let mut hosts = BTreeMap::new();
    for (name, raw) in &sections.hosts {
        if let Some(host) = resolver.host(&mesh, name, raw) {
            hosts.insert(name.clone(), host);
        }
    }
    let mut networks = BTreeMap::new();
    for (name, raw) in &sections.networks {
        if let Some(network) = resolver.network(&mesh, name, raw, &hosts) {
            networks.insert(name.clone(), network);
        }
    }
    let mut containers = BTreeMap::new();
    for (name, raw) in &sections.containers {
        if let Some(container) = resolver.container(&mesh, name, raw, &hosts, &networks) {
            containers.insert(name.clone(), container);
        }
    }
    let mut topology = Topology {
        mesh,
        hosts,
        networks,
        containers,
    };
    cluster::check(&mut topology, problems);
    Some(topology)
}

/// The JSON schema of the topology file, generated from the raw types.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(raw::RawTopology);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
