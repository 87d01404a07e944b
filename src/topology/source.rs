//! Where things are in a topology file.
//!
//! Every validation message must name the file, line, column and key path of the
//! offending key, so a user can fix a topology kept in git without guessing. This
//! module keeps the key paths, an index from key path to byte spans built from the
//! TOML parse tree, and the located diagnostics rendered as
//! `FILE:LINE:COL: key.path: message`.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A dotted key path such as `containers.test1.interfaces[0].address`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a table key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut next = self.0.clone();
        next.push(Segment::Key(key.into()));
        Self(next)
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.0.clone();
        next.push(Segment::Index(index));
        Self(next)
    }

    /// The path one step shorter, or `None` at the root.
    pub fn parent(&self) -> Option<Self> {
        if self.0.is_empty() {
            None
        } else {
            Some(Self(self.0[..self.0.len() - 1].to_vec()))
        }
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last table key of the path, if it ends with one.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last()? {
            Segment::Key(key) => Some(key),
            Segment::Index(_) => None,
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        && !key.is_empty()
                    {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Byte spans of a key and of its value.
#[derive(Debug, Clone)]
struct Spans {
    key: Range<usize>,
    value: Range<usize>,
}

/// The text of a topology file and the spans of every key path in it.
#[derive(Debug, Clone)]
pub struct Source {
    path: PathBuf,
    text: String,
    spans: HashMap<KeyPath, Spans>,
    line_starts: Vec<usize>,
}

impl Source {
    /// Index `text` (already parsed as `root`) for locating diagnostics.
    pub fn new(path: &Path, text: &str, root: &Spanned<DeTable<'_>>) -> Self {
        let mut spans = HashMap::new();
        index_table(&KeyPath::root(), root.get_ref(), &mut spans);
        Self::with_spans(path, text, spans)
    }

    /// A source whose text could not be parsed: only byte offsets can be located.
    pub fn unparsed(path: &Path, text: &str) -> Self {
        Self::with_spans(path, text, HashMap::new())
    }

    fn with_spans(path: &Path, text: &str, spans: HashMap<KeyPath, Spans>) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            path: path.to_path_buf(),
            text: text.to_string(),
            spans,
            line_starts,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the file has this key.
    pub fn has(&self, path: &KeyPath) -> bool {
        self.spans.contains_key(path)
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let end = offset.min(self.text.len());
        let column = self
            .text
            .get(start..end)
            .map_or(end - start, |s| s.chars().count())
            + 1;
        (line + 1, column)
    }

    /// Offset to report for a diagnostic at `path`: the value for value problems, the
    /// key for key problems; an absent key falls back to its nearest present ancestor.
    fn offset_of(&self, path: &KeyPath, at: At) -> usize {
        let mut probe = Some(path.clone());
        let mut exact = true;
        while let Some(candidate) = probe {
            if let Some(spans) = self.spans.get(&candidate) {
                return if exact && at == At::Value {
                    spans.value.start
                } else {
                    spans.key.start
                };
            }
            exact = false;
            probe = candidate.parent();
        }
        0
    }

    /// Render a diagnostic as `FILE:LINE:COL: key.path: message`.
    pub fn render(&self, diagnostic: &Diagnostic) -> String {
        let offset = diagnostic
            .offset
            .unwrap_or_else(|| self.offset_of(&diagnostic.path, diagnostic.at));
        let (line, column) = self.line_col(offset);
        let file = self.path.display();
        if diagnostic.path.is_root() {
            format!("{file}:{line}:{column}: {}", diagnostic.message)
        } else {
            format!(
                "{file}:{line}:{column}: {}: {}",
                diagnostic.path, diagnostic.message
            )
        }
    }
}

fn index_table(prefix: &KeyPath, table: &DeTable<'_>, spans: &mut HashMap<KeyPath, Spans>) {
    for (key, value) in table {
        let path = prefix.key(key.get_ref().as_ref());
        spans.insert(
            path.clone(),
            Spans {
                key: key.span(),
                value: value.span(),
            },
        );
        index_value(&path, value, spans);
    }
}

fn index_value(path: &KeyPath, value: &Spanned<DeValue<'_>>, spans: &mut HashMap<KeyPath, Spans>) {
    match value.get_ref() {
        DeValue::Table(table) => index_table(path, table, spans),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_path = path.index(i);
                spans.insert(
                    item_path.clone(),
                    Spans {
                        key: item.span(),
                        value: item.span(),
                    },
                );
                index_value(&item_path, item, spans);
            }
        }
        _ => {}
    }
}

/// Which part of a key a diagnostic points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Key,
    Value,
}

/// One problem found in a topology, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: KeyPath,
    pub message: String,
    pub at: At,
    /// An exact byte offset when the parser reported one.
    pub offset: Option<usize>,
}

impl Diagnostic {
    /// A problem with the value at `path`.
    pub fn value(path: &KeyPath, message: impl Into<String>) -> Self {
        Self {
            path: path.clone(),
            message: message.into(),
            at: At::Value,
            offset: None,
        }
    }

    /// A problem with the key at `path` itself (unknown, missing, misplaced).
    pub fn key(path: &KeyPath, message: impl Into<String>) -> Self {
        Self {
            path: path.clone(),
            message: message.into(),
            at: At::Key,
            offset: None,
        }
    }
}
