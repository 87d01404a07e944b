//! Seeded random inputs for the property tests (stable Rust, no extra crates):
//! a SplitMix64 generator and JSON / OVSDB value generators biased towards
//! what trips parsers — braces and quotes in strings, tagged arrays, pairs,
//! integers past i64, reals from arbitrary bits.
#![allow(dead_code)]

use ovsmesh::ovsdb::value::{Atom, Datum};
use serde_json::{json, Map, Value};

/// SplitMix64: small, seeded, good enough to drive cases.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Strings with what trips a framer: braces, brackets, quotes, escapes, non-ASCII.
pub fn string(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        "0",
        " ",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "\\",
        "\\\"",
        "/",
        "\n",
        "\t",
        "é",
        "€",
        "𝄞",
        "\u{0}",
        "uuid",
        "set",
        "map",
        "named-uuid",
        ",",
        ":",
    ];
    (0..rng.below(8)).map(|_| *rng.pick(PIECES)).collect()
}

pub fn number(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => json!(rng.next() as i64),
        1 => json!(rng.next()),
        2 => json!(rng.below(5000) as i64 - 2500),
        3 => json!(real(rng)),
        4 => json!(i64::MIN),
        _ => json!(rng.below(3)),
    }
}

pub fn uuid(rng: &mut Rng) -> String {
    let hex = format!("{:016x}{:016x}", rng.next(), rng.next());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Random JSON, biased towards OVSDB's shapes (tagged arrays, pairs).
pub fn json_value(rng: &mut Rng, depth: usize) -> Value {
    let leaf = depth == 0 || rng.chance(35);
    if leaf {
        return match rng.below(7) {
            0 => Value::Null,
            1 => json!(rng.chance(50)),
            2 | 3 => number(rng),
            4 => json!(uuid(rng)),
            _ => json!(string(rng)),
        };
    }
    match rng.below(6) {
        0 => {
            let tag = *rng.pick(&["set", "map", "uuid", "named-uuid", "other"]);
            json!([tag, json_value(rng, depth - 1)])
        }
        1 => json!([json_value(rng, depth - 1), json_value(rng, depth - 1)]),
        2 | 3 => Value::Array(
            (0..rng.below(5))
                .map(|_| json_value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(5) {
                map.insert(string(rng), json_value(rng, depth - 1));
            }
            Value::Object(map)
        }
    }
}

pub fn atom(rng: &mut Rng) -> Atom {
    match rng.below(6) {
        0 => Atom::String(string(rng)),
        1 => Atom::Integer(rng.next() as i64),
        2 => Atom::Real(real(rng)),
        3 => Atom::Boolean(rng.chance(50)),
        4 => Atom::Uuid(uuid(rng)),
        _ => Atom::NamedUuid(format!("row{}", rng.below(1000))),
    }
}

/// Any finite real, from its bits.
pub fn real(rng: &mut Rng) -> f64 {
    loop {
        let r = f64::from_bits(rng.next());
        if r.is_finite() {
            return r;
        }
    }
}

pub fn datum(rng: &mut Rng) -> Datum {
    match rng.below(3) {
        0 => Datum::Atom(atom(rng)),
        1 => Datum::Set((0..rng.below(5)).map(|_| atom(rng)).collect()),
        _ => Datum::Map((0..rng.below(5)).map(|_| (atom(rng), atom(rng))).collect()),
    }
}
