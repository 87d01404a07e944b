//! Framing for OVSDB's JSON-RPC stream.
//!
//! OVSDB sends JSON messages back to back with no length prefix or delimiter
//! (RFC 7047 §4). A frame ends where the top-level object's braces balance,
//! counting only braces outside strings (and honouring `\"` escapes). A read may
//! hold several messages or part of one: the decoder answers "incomplete, read
//! more" (`Ok(None)`) and keeps its scan position so bytes are never rescanned.
//! A message longer than the limit is refused as soon as its bytes pass the
//! limit, whether it arrives in one read or many, so memory stays bounded.

use bytes::{Buf, BytesMut};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

/// Refuse a single message larger than this (a broken or hostile peer).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("invalid JSON from the OVSDB server: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unexpected byte {0:?} between OVSDB messages")]
    Garbage(char),
    #[error("OVSDB message larger than {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Scanner state carried across reads.
#[derive(Debug)]
pub struct JsonCodec {
    /// Bytes of the current frame already scanned.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    max_frame: usize,
}

impl Default for JsonCodec {
    fn default() -> Self {
        Self::with_max_frame(MAX_FRAME)
    }
}

impl JsonCodec {
    /// A codec refusing messages larger than `max_frame` bytes.
    pub fn with_max_frame(max_frame: usize) -> Self {
        Self {
            scanned: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            max_frame,
        }
    }
}

impl Decoder for JsonCodec {
    type Item = Value;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Value>, CodecError> {
        if self.depth == 0 && self.scanned == 0 {
            // Skip whitespace between messages.
            let skip = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
            buf.advance(skip);
            if let Some(&first) = buf.first() {
                if first != b'{' && first != b'[' {
                    return Err(CodecError::Garbage(first as char));
                }
            }
        }
        while self.scanned < buf.len() {
            // Counted as scanned, not per read: the limit holds however the bytes arrive.
            if self.scanned >= self.max_frame {
                return Err(CodecError::TooLarge(self.max_frame));
            }
            let byte = buf[self.scanned];
            self.scanned += 1;
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        let frame = buf.split_to(self.scanned);
                        self.scanned = 0;
                        return Ok(Some(serde_json::from_slice(&frame)?));
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }
}

impl Encoder<Value> for JsonCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Value, dst: &mut BytesMut) -> Result<(), CodecError> {
        let text = serde_json::to_vec(&item)?;
        dst.extend_from_slice(&text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode_all(codec: &mut JsonCodec, buf: &mut BytesMut) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(v) = codec.decode(buf).unwrap() {
            out.push(v);
        }
        out
    }

    #[test]
    fn several_messages_in_one_read() {
        let mut codec = JsonCodec::default();
        let mut buf = BytesMut::from(
            &br#"{"id":1,"result":[]} {"id":2,"result":{"a":"}"}}
{"method":"echo","params":[],"id":"echo"}"#[..],
        );
        let got = decode_all(&mut codec, &mut buf);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], json!({"id":2,"result":{"a":"}"}}));
        assert!(buf.is_empty());
    }

    #[test]
    fn one_message_over_many_reads_with_braces_and_escapes_in_strings() {
        let message =
            br#"{"id":7,"result":{"s":"a \"quoted\" {brace} [and] \\","n":[1,{"x":"]"}]}}"#;
        for split in 1..message.len() {
            let mut codec = JsonCodec::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in message.chunks(split) {
                buf.extend_from_slice(chunk);
                got.extend(decode_all(&mut codec, &mut buf));
            }
            assert_eq!(got.len(), 1, "split every {split} bytes");
            assert_eq!(got[0]["result"]["s"], "a \"quoted\" {brace} [and] \\");
        }
    }

    #[test]
    fn incomplete_message_asks_for_more() {
        let mut codec = JsonCodec::default();
        let mut buf = BytesMut::from(&br#"{"id":1,"res"#[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(br#"ult":null,"error":null}"#);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap()["id"], 1);
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_also_when_it_arrives_in_one_read() {
        // Found by tests/ovsdb_fuzz.rs: the limit was only checked on incomplete frames.
        let mut codec = JsonCodec::with_max_frame(10);
        let mut buf = BytesMut::from(&br#"{"id":1,"result":null}"#[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::TooLarge(10))
        ));
        let mut codec = JsonCodec::with_max_frame(10);
        let mut buf = BytesMut::from(&br#"{"a":12345}"#[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::TooLarge(10))
        ));
        let mut buf = BytesMut::from(&br#"{"a":1234}"#[..]);
        let mut codec = JsonCodec::with_max_frame(10);
        assert!(
            codec.decode(&mut buf).unwrap().is_some(),
            "exactly the limit"
        );
    }

    #[test]
    fn garbage_between_messages_is_an_error() {
        let mut codec = JsonCodec::default();
        let mut buf = BytesMut::from(&b"x{}"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::Garbage('x'))
        ));
    }
}
