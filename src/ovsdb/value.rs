//! OVSDB's typed values (RFC 7047 §5.1) and their JSON forms.
//!
//! An atom is a string, integer, real, boolean, `["uuid", U]` or
//! `["named-uuid", N]`; a set is `["set", [atoms]]` (a one-element set may be a
//! bare atom); a map is `["map", [[k, v], …]]`. Rows read back are parsed into
//! these types so the rest of the code never handles raw JSON arrays.

use std::collections::BTreeMap;

use serde_json::{json, Value};

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

    pub fn from_json(value: &Value) -> Option<Atom> {
        match value {
            Value::String(s) => Some(Atom::String(s.clone())),
            Value::Bool(b) => Some(Atom::Boolean(*b)),
            Value::Number(n) => n
                .as_i64()
                .map(Atom::Integer)
                .or_else(|| n.as_f64().map(Atom::Real)),
            Value::Array(pair) if pair.len() == 2 => match (pair[0].as_str(), pair[1].as_str()) {
                (Some("uuid"), Some(u)) => Some(Atom::Uuid(u.to_string())),
                (Some("named-uuid"), Some(n)) => Some(Atom::NamedUuid(n.to_string())),
                _ => None,
            },
            _ => None,
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

    pub fn from_json(value: &Value) -> Option<Datum> {
        if let Value::Array(pair) = value {
            if pair.len() == 2 {
                match pair[0].as_str() {
                    Some("set") => {
                        let items = pair[1].as_array()?;
                        return items
                            .iter()
                            .map(Atom::from_json)
                            .collect::<Option<Vec<_>>>()
                            .map(Datum::Set);
                    }
                    Some("map") => {
                        let items = pair[1].as_array()?;
                        return items
                            .iter()
                            .map(|kv| {
                                let kv = kv.as_array()?;
                                Some((Atom::from_json(kv.first()?)?, Atom::from_json(kv.get(1)?)?))
                            })
                            .collect::<Option<Vec<_>>>()
                            .map(Datum::Map);
                    }
                    _ => {}
                }
            }
        }
        Atom::from_json(value).map(Datum::Atom)
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
