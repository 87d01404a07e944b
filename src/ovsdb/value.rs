//! OVSDB's typed values (RFC 7047 §5.1) and their JSON forms.
//!
//! An atom is a string, integer, real, boolean, `["uuid", U]` or
//! `["named-uuid", N]`; a set is `["set", [atoms]]` (a one-element set may be a
//! bare atom); a map is `["map", [[k, v], …]]`. Rows read back are parsed into
//! these types so the rest of the code never handles raw JSON arrays.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Why a JSON value is not an OVSDB datum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{0} is not an OVSDB atom (string, integer, real, boolean, [\"uuid\", U] or [\"named-uuid\", N])")]
    NotAnAtom(String),
    #[error("integer {0} is outside OVSDB's 64-bit signed range")]
    IntegerRange(String),
    #[error("{0} is not a UUID (8-4-4-4-12 hex digits)")]
    BadUuid(String),
    #[error("{0} is not a named-uuid (letters, digits and '_', not starting with a digit)")]
    BadNamedUuid(String),
    #[error("{0} is not a set: expected [\"set\", [atoms]]")]
    BadSet(String),
    #[error("{0} is not a map: expected [\"map\", [[key, value], …]]")]
    BadMap(String),
    #[error("{0} is not a map pair: expected [key, value]")]
    BadPair(String),
}

/// A value for an error message: its JSON, cut to a readable length.
fn short(value: &Value) -> String {
    const MAX: usize = 60;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        return text;
    }
    let cut: String = text.chars().take(MAX).collect();
    format!("{cut}…")
}

/// RFC 4122 text form, as OVSDB writes it.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An OVSDB <id> (RFC 7047 §3.1): `[_a-zA-Z][_a-zA-Z0-9]*`.
fn is_id(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|b| b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

#[derive(Debug, Clone, PartialEq)]
pub enum Atom {
    String(String),
    Integer(i64),
    Real(f64),
    Boolean(bool),
    Uuid(String),
    NamedUuid(String),
}

impl Atom {
    pub fn to_json(&self) -> Value {
        match self {
            Atom::String(s) => json!(s),
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::Uuid(u) => json!(["uuid", u]),
            Atom::NamedUuid(n) => json!(["named-uuid", n]),
        }
    }

    /// An atom, or `None` when `value` is not one (see [`Atom::parse`]).
    pub fn from_json(value: &Value) -> Option<Atom> {
        Atom::parse(value).ok()
    }

    /// Parse an atom; say what is wrong when `value` is not one.
    pub fn parse(value: &Value) -> Result<Atom, ValueError> {
        match value {
            Value::String(s) => Ok(Atom::String(s.clone())),
            Value::Bool(b) => Ok(Atom::Boolean(*b)),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(Atom::Integer(i))
                } else if n.is_u64() {
                    Err(ValueError::IntegerRange(n.to_string()))
                } else {
                    n.as_f64()
                        .map(Atom::Real)
                        .ok_or_else(|| ValueError::NotAnAtom(short(value)))
                }
            }
            Value::Array(pair) if pair.len() == 2 => match (pair[0].as_str(), &pair[1]) {
                (Some("uuid"), Value::String(u)) if is_uuid(u) => Ok(Atom::Uuid(u.clone())),
                (Some("uuid"), _) => Err(ValueError::BadUuid(short(&pair[1]))),
                (Some("named-uuid"), Value::String(n)) if is_id(n) => {
                    Ok(Atom::NamedUuid(n.clone()))
                }
                (Some("named-uuid"), _) => Err(ValueError::BadNamedUuid(short(&pair[1]))),
                _ => Err(ValueError::NotAnAtom(short(value))),
            },
            _ => Err(ValueError::NotAnAtom(short(value))),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) | Atom::Uuid(s) | Atom::NamedUuid(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }
}

/// A column value: atom, set or map.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Atom(Atom),
    Set(Vec<Atom>),
    Map(Vec<(Atom, Atom)>),
}

impl Datum {
    pub fn to_json(&self) -> Value {
        match self {
            Datum::Atom(a) => a.to_json(),
            Datum::Set(items) => {
                json!(["set", items.iter().map(Atom::to_json).collect::<Vec<_>>()])
            }
            Datum::Map(pairs) => json!([
                "map",
                pairs
                    .iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    /// A datum, or `None` when `value` is not one (see [`Datum::parse`]).
    pub fn from_json(value: &Value) -> Option<Datum> {
        Datum::parse(value).ok()
    }

    /// Parse an atom, set or map; say what is wrong when `value` is none of them.
    pub fn parse(value: &Value) -> Result<Datum, ValueError> {
        let Value::Array(pair) = value else {
            return Atom::parse(value).map(Datum::Atom);
        };
        match (pair.len(), pair.first().and_then(Value::as_str)) {
            (2, Some("set")) => {
                let items = pair[1]
                    .as_array()
                    .ok_or_else(|| ValueError::BadSet(short(value)))?;
                items
                    .iter()
                    .map(Atom::parse)
                    .collect::<Result<Vec<_>, _>>()
                    .map(Datum::Set)
            }
            (2, Some("map")) => {
                let items = pair[1]
                    .as_array()
                    .ok_or_else(|| ValueError::BadMap(short(value)))?;
                items
                    .iter()
                    .map(|kv| match kv.as_array().map(Vec::as_slice) {
                        Some([k, v]) => Ok((Atom::parse(k)?, Atom::parse(v)?)),
                        _ => Err(ValueError::BadPair(short(kv))),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Datum::Map)
            }
            _ => Atom::parse(value).map(Datum::Atom),
        }
    }

    /// The atoms of a set (a bare atom is a one-element set).
    pub fn atoms(&self) -> Vec<Atom> {
        match self {
            Datum::Atom(a) => vec![a.clone()],
            Datum::Set(items) => items.clone(),
            Datum::Map(_) => Vec::new(),
        }
    }

    /// A string → string map.
    pub fn string_map(&self) -> BTreeMap<String, String> {
        match self {
            Datum::Map(pairs) => pairs
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    pub fn map(pairs: &BTreeMap<String, String>) -> Datum {
        Datum::Map(
            pairs
                .iter()
                .map(|(k, v)| (Atom::String(k.clone()), Atom::String(v.clone())))
                .collect(),
        )
    }

    pub fn set(atoms: Vec<Atom>) -> Datum {
        Datum::Set(atoms)
    }

    pub fn uuid(uuid: &str) -> Datum {
        Datum::Atom(Atom::Uuid(uuid.to_string()))
    }

    pub fn named(name: &str) -> Datum {
        Datum::Atom(Atom::NamedUuid(name.to_string()))
    }
}

/// Shorthand JSON for a uuid reference.
pub fn uuid_json(uuid: &str) -> Value {
    json!(["uuid", uuid])
}

/// Shorthand JSON for a named-uuid reference.
pub fn named_json(name: &str) -> Value {
    json!(["named-uuid", name])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        for datum in [
            Datum::Atom(Atom::String("x".into())),
            Datum::Atom(Atom::Integer(-3)),
            Datum::Atom(Atom::Boolean(true)),
            Datum::uuid("2a8b3c5e-0000-4000-8000-000000000001"),
            Datum::named("row1"),
            Datum::Set(vec![Atom::Integer(100), Atom::Integer(200)]),
            Datum::map(&BTreeMap::from([("a".to_string(), "b".to_string())])),
        ] {
            assert_eq!(Datum::from_json(&datum.to_json()), Some(datum.clone()));
        }
        assert_eq!(
            Datum::from_json(&json!(["set", []])).unwrap().atoms(),
            vec![]
        );
        assert_eq!(
            Datum::from_json(&json!(7)).unwrap().atoms(),
            vec![Atom::Integer(7)]
        );
    }
}
