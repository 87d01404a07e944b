//! Property tests of what ovsmesh parses from ovsdb-server, on stable Rust with
//! a seeded PRNG (deterministic: a failure names its seed and case):
//! - framing: random bytes never panic and never buffer past the frame limit;
//!   a valid stream decodes to the same messages however it is split; an
//!   oversized frame is a clean `TooLarge` however it arrives;
//! - values: random JSON never panics and is either a datum that round-trips
//!   or a typed error;
//! - transaction replies and selected rows: random JSON never panics.
//!
//! The client against a random fake server is in `ovsdb_client_fuzz.rs`.

mod fuzz;

use bytes::BytesMut;
use ovsmesh::ovsdb::codec::{CodecError, JsonCodec};
use ovsmesh::ovsdb::value::{Atom, Datum, ValueError};
use serde_json::{json, Map, Value};
use tokio_util::codec::Decoder;

use fuzz::*;

/// Feed `chunks` to a codec as successive reads; stop at the first error.
fn decode_chunks(
    codec: &mut JsonCodec,
    chunks: &[&[u8]],
    max_buffered: &mut usize,
) -> Result<Vec<Value>, CodecError> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        *max_buffered = (*max_buffered).max(buf.len());
        while let Some(message) = codec.decode(&mut buf)? {
            out.push(message);
        }
    }
    if let Some(message) = codec.decode_eof(&mut buf)? {
        out.push(message);
    }
    Ok(out)
}

/// Split `bytes` at random points.
fn split<'a>(rng: &mut Rng, bytes: &'a [u8]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let take = match rng.below(4) {
            0 => 1,
            1 => rng.below(8) + 1,
            _ => rng.below(rest.len()) + 1,
        }
        .min(rest.len());
        let (head, tail) = rest.split_at(take);
        chunks.push(head);
        rest = tail;
    }
    chunks
}

#[test]
fn random_bytes_never_panic_and_never_buffer_past_the_limit() {
    const LIMIT: usize = 4096;
    const CHUNK: usize = 512;
    let mut rng = Rng(1);
    let mut outcomes = [0; 4];
    for case in 0..3000 {
        // Mostly structural bytes, so frames open and grow instead of failing at once.
        let len = rng.below(3 * LIMIT);
        let mut bytes: Vec<u8> = (0..len)
            .map(|_| match rng.below(10) {
                0..=5 => *rng.pick(b"{}[]\"\\ ,:a1"),
                _ => rng.next() as u8,
            })
            .collect();
        if rng.chance(70) && !bytes.is_empty() {
            bytes[0] = *rng.pick(b"{[");
        }
        let mut chunks = split(&mut rng, &bytes);
        let chunks: Vec<&[u8]> = chunks
            .drain(..)
            .flat_map(|c| c.chunks(CHUNK).collect::<Vec<_>>())
            .collect();
        let mut codec = JsonCodec::with_max_frame(LIMIT);
        let mut buffered = 0;
        let result = decode_chunks(&mut codec, &chunks, &mut buffered);
        assert!(
            buffered <= LIMIT + CHUNK,
            "case {case}: {buffered} bytes buffered ({result:?})"
        );
        outcomes[match result {
            Ok(_) => 0,
            Err(CodecError::TooLarge(_)) => 1,
            Err(CodecError::Json(_)) => 2,
            Err(_) => 3,
        }] += 1;
    }
    // Every outcome happened: messages, oversized frames, bad JSON, garbage.
    assert!(outcomes.iter().all(|n| *n > 0), "{outcomes:?}");
}

#[test]
fn a_valid_stream_decodes_to_the_same_messages_however_it_is_split() {
    let mut rng = Rng(2);
    for case in 0..1500 {
        let messages: Vec<Value> = (0..rng.below(5) + 1)
            .map(|_| {
                let mut map = Map::new();
                map.insert("id".into(), json!(rng.below(100)));
                map.insert("result".into(), json_value(&mut rng, 4));
                Value::Object(map)
            })
            .collect();
        let mut stream = Vec::new();
        for message in &messages {
            const GAPS: [&[u8]; 4] = [b"", b" ", b"\n", b"\r\n\t "];
            stream.extend_from_slice(GAPS[rng.below(GAPS.len())]);
            stream.extend_from_slice(&serde_json::to_vec(message).unwrap());
        }
        for _ in 0..5 {
            let chunks = split(&mut rng, &stream);
            let got =
                decode_chunks(&mut JsonCodec::default(), &chunks, &mut 0).unwrap_or_else(|e| {
                    panic!("case {case}: {e} on {}", String::from_utf8_lossy(&stream))
                });
            assert_eq!(got, messages, "case {case}");
        }
    }
}

#[test]
fn an_oversized_frame_is_refused_however_it_arrives() {
    const LIMIT: usize = 1000;
    let mut rng = Rng(3);
    for case in 0..300 {
        // One message just over the limit, complete, followed by a small one.
        let padding = "x".repeat(LIMIT + rng.below(200));
        let big = serde_json::to_vec(&json!({"id": 1, "result": padding})).unwrap();
        let small = serde_json::to_vec(&json!({"id": 2, "result": []})).unwrap();
        let stream = [big.as_slice(), &small].concat();
        // However it is split, even all in one read: the same clean error.
        let chunks = if case % 10 == 0 {
            vec![stream.as_slice()]
        } else {
            split(&mut rng, &stream)
        };
        let mut buffered = 0;
        let result = decode_chunks(
            &mut JsonCodec::with_max_frame(LIMIT),
            &chunks,
            &mut buffered,
        );
        assert!(
            matches!(result, Err(CodecError::TooLarge(LIMIT))),
            "case {case}: {result:?}"
        );
    }
    // A message at the limit passes.
    let exact = serde_json::to_vec(&json!({"id": 1, "result": "x".repeat(LIMIT - 20)})).unwrap();
    assert_eq!(exact.len(), LIMIT);
    let got = decode_chunks(&mut JsonCodec::with_max_frame(LIMIT), &[&exact], &mut 0).unwrap();
    assert_eq!(got.len(), 1);
}

#[test]
fn random_json_is_a_datum_that_round_trips_or_a_typed_error() {
    let mut rng = Rng(4);
    let mut parsed = 0;
    for case in 0..20_000 {
        let value = json_value(&mut rng, 4);
        match Datum::parse(&value) {
            Ok(datum) => {
                parsed += 1;
                // Nothing is lost or reinterpreted: the datum writes back the same JSON.
                assert_eq!(datum.to_json(), value, "case {case}");
                let again = Datum::parse(&datum.to_json());
                assert_eq!(again.as_ref(), Ok(&datum), "case {case}: {value}");
                assert_eq!(Datum::from_json(&value), Some(datum));
            }
            Err(error) => {
                // A typed error whose message stays short whatever the input.
                assert!(error.to_string().len() < 400, "case {case}: {error}");
                assert_eq!(Datum::from_json(&value), None, "case {case}");
            }
        }
    }
    assert!(parsed > 1000, "the generator hardly makes datums: {parsed}");
}

#[test]
fn random_datums_round_trip() {
    let mut rng = Rng(5);
    for case in 0..20_000 {
        let datum = datum(&mut rng);
        assert_eq!(
            Datum::parse(&datum.to_json()),
            Ok(datum.clone()),
            "case {case}"
        );
    }
}

/// Shapes the parser used to accept silently (an integer beyond i64 read as a
/// real, a map pair with a third element, any string as a uuid): typed errors now.
#[test]
fn malformed_values_are_typed_errors() {
    let cases = [
        (json!(["map", [["a", "b", "c"]]]), "pair"),
        (json!(["map", [["a"]]]), "pair"),
        (json!(["uuid", "not-a-uuid"]), "UUID"),
        (json!(["named-uuid", "1abc"]), "named-uuid"),
        (json!(18446744073709551615u64), "64-bit"),
        (json!(["set", [["set", []]]]), "atom"),
        (json!({"a": 1}), "atom"),
        (json!(null), "atom"),
        (json!(["set", "x"]), "set"),
        (json!(["map", {"a": "b"}]), "map"),
    ];
    for (value, says) in cases {
        let error: ValueError = Datum::parse(&value).expect_err(&value.to_string());
        assert!(error.to_string().contains(says), "{value}: {error}");
    }
    // A long value is cut in the message, also inside a multi-byte character.
    let long = json!(["uuid", "€".repeat(500)]);
    let error = Datum::parse(&long).unwrap_err().to_string();
    assert!(error.len() < 400, "{error}");
}

/// Found by the split property: serde_json's default float parser is off by an
/// ulp for some reals, so a real read from the wire differed from the one sent.
#[test]
fn a_real_read_from_the_wire_is_the_real_that_was_sent() {
    let real = Atom::Real(2.2097192429919217e18);
    let text = serde_json::to_vec(&json!({"id": 1, "result": real.to_json()})).unwrap();
    let mut buf = BytesMut::from(&text[..]);
    let read = JsonCodec::default().decode(&mut buf).unwrap().unwrap();
    assert_eq!(Atom::parse(&read["result"]), Ok(real));
}

#[test]
fn random_transact_replies_never_panic() {
    let mut rng = Rng(6);
    for _ in 0..5000 {
        let operations: Vec<Value> = (0..rng.below(4))
            .map(|_| {
                json!({"op": rng.pick(&["wait", "assert", "insert", "select"]), "table": "Port", "lock": "l"})
            })
            .collect();
        let replies: Vec<Value> = (0..rng.below(6))
            .map(|_| match rng.below(4) {
                0 => {
                    json!({"error": rng.pick(&["timed out", "not owner", "constraint violation"])})
                }
                1 => json!({"error": json_value(&mut rng, 2), "details": json_value(&mut rng, 1)}),
                _ => json_value(&mut rng, 2),
            })
            .collect();
        let _ = ovsmesh::ovsdb::transact::check_reply("unix:x", &operations, &replies);
    }
}

#[test]
fn random_rows_never_panic_the_observer() {
    let mut rng = Rng(7);
    let columns = [
        "_uuid",
        "_version",
        "name",
        "ports",
        "interfaces",
        "bridges",
        "tag",
        "trunks",
        "protected",
        "external_ids",
        "type",
        "options",
        "bfd",
        "bfd_status",
        "error",
        "ofport",
        "datapath_type",
        "next_cfg",
        "cur_cfg",
    ];
    let uuids: Vec<String> = (0..6).map(|_| uuid(&mut rng)).collect();
    for _ in 0..3000 {
        let table = |rng: &mut Rng| -> Vec<Value> {
            (0..rng.below(4))
                .map(|_| {
                    let mut row = Map::new();
                    for column in columns {
                        if rng.chance(60) {
                            let value = match rng.below(5) {
                                0 => json!(["uuid", rng.pick(&uuids)]),
                                1 => json!([
                                    "set",
                                    [["uuid", rng.pick(&uuids)], ["uuid", rng.pick(&uuids)]]
                                ]),
                                2 => json!([
                                    "map",
                                    [
                                        ["ovsmesh-mesh", "m"],
                                        [
                                            "ovsmesh-role",
                                            rng.pick(&[
                                                "tunnel", "access", "gateway", "uplink",
                                                "underlay", "x"
                                            ])
                                        ],
                                        ["ovsmesh-peer", "B"],
                                        ["ovsmesh-container", "c"],
                                        ["ovsmesh-ifname", "eth1"],
                                        ["ovsmesh-network", "n"]
                                    ]
                                ]),
                                3 => datum(rng).to_json(),
                                _ => json_value(rng, 3),
                            };
                            row.insert(column.to_string(), value);
                        }
                    }
                    Value::Object(row)
                })
                .collect()
        };
        let (roots, bridges, ports, interfaces) = (
            table(&mut rng),
            table(&mut rng),
            table(&mut rng),
            table(&mut rng),
        );
        let _ = ovsmesh::ovs::observe::interpret(
            "A",
            "m",
            &["ovs0"],
            &roots,
            &bridges,
            &ports,
            &interfaces,
        );
    }
}
