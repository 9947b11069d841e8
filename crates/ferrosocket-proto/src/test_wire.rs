//! The test-only wire codec: builds and parses RFC 6455 frames byte by byte for the unit tests
//! of every module (`connection_tests.rs`, `streaming_tests.rs`, `timers_tests.rs`,
//! `extensions/deflate_tests.rs`).
//!
//! It is written independently of `frame.rs` and `mask.rs`, so an encoding bug there cannot hide
//! behind a matching decoding bug: the tests build their input here and decode the library's
//! output here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::{Connection, Role};

/// The test client's mask key: RFC 6455 §5.7's example key.
pub(crate) const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

pub(crate) const OP_CONT: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// A frame header alone with the shortest length form, declaring `len` payload bytes (for limit
/// tests, where no payload follows); RSV1 as given, masked with `key` if given.
pub(crate) fn header(opcode: u8, fin: bool, rsv1: bool, key: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | (opcode & 0x0f)];
    let mask_bit = if key.is_some() { 0x80 } else { 0 };
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if let Some(key) = key {
        out.extend_from_slice(&key);
    }
    out
}

/// A whole frame with the shortest length form, masked with `key` if given.
pub(crate) fn frame(opcode: u8, fin: bool, rsv1: bool, key: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = header(opcode, fin, rsv1, key, payload.len() as u64);
    match key {
        Some(key) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4])),
        None => out.extend_from_slice(payload),
    }
    out
}

/// A frame as the test client sends it: masked with [`KEY`].
pub(crate) fn cf(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    frame(opcode, fin, false, Some(KEY), payload)
}

/// A frame as a server sends it: unmasked.
pub(crate) fn sf(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    frame(opcode, fin, false, None, payload)
}

/// The payload of a close frame: the code, then the reason.
pub(crate) fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// A frame decoded from a connection's output, payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wire {
    pub(crate) fin: bool,
    /// RSV1..RSV3 as the low three bits (RSV1 = 0b100).
    pub(crate) rsv: u8,
    pub(crate) opcode: u8,
    pub(crate) mask: Option<[u8; 4]>,
    pub(crate) payload: Vec<u8>,
}

impl Wire {
    /// RSV1 (permessage-deflate's "compressed" bit).
    pub(crate) fn rsv1(&self) -> bool {
        self.rsv & 0b100 != 0
    }

    /// Whether the frame was masked.
    pub(crate) fn masked(&self) -> bool {
        self.mask.is_some()
    }

    /// The status code of a close frame (`None`: no code); checks that the reason is UTF-8.
    pub(crate) fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, OP_CLOSE);
        match self.payload.as_slice() {
            [] => None,
            [hi, lo, reason @ ..] => {
                assert!(std::str::from_utf8(reason).is_ok(), "close reason is not UTF-8");
                Some(u16::from_be_bytes([*hi, *lo]))
            }
            [_] => panic!("one-byte close payload"),
        }
    }
}

/// Decodes every frame in `b`. Panics on a truncated frame or a non-minimal length
/// (RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length").
pub(crate) fn parse_wire(mut b: &[u8]) -> Vec<Wire> {
    let mut out = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 2, "truncated header: {b:02x?}");
        let (len, mut pos) = match b[1] & 0x7f {
            126 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 => (u64::from_be_bytes(b[2..10].try_into().unwrap()), 10),
            n => (u64::from(n), 2),
        };
        match pos {
            4 => assert!(len >= 126, "non-minimal 16-bit length {len}"),
            10 => assert!(len > 0xffff, "non-minimal 64-bit length {len}"),
            _ => {}
        }
        let mask = (b[1] & 0x80 != 0).then(|| {
            let k: [u8; 4] = b[pos..pos + 4].try_into().unwrap();
            pos += 4;
            k
        });
        let len = usize::try_from(len).unwrap();
        assert!(b.len() >= pos + len, "truncated payload");
        let mut payload = b[pos..pos + len].to_vec();
        if let Some(k) = mask {
            payload.iter_mut().enumerate().for_each(|(i, x)| *x ^= k[i % 4]);
        }
        out.push(Wire {
            fin: b[0] & 0x80 != 0,
            rsv: (b[0] >> 4) & 0x7,
            opcode: b[0] & 0x0f,
            mask,
            payload,
        });
        b = &b[pos + len..];
    }
    out
}

/// Takes a connection's output and decodes it, checking RFC 6455 §5.1/§5.3: a client masks every
/// frame with the key its mask source gave ([`KEY`]), a server masks none, and no RSV bit is set.
pub(crate) fn take_wire(conn: &mut Connection) -> Vec<Wire> {
    let wire = parse_wire(&conn.take_output());
    for w in &wire {
        match conn.role() {
            Role::Client => assert_eq!(w.mask, Some(KEY), "client frame not masked with its key"),
            Role::Server => assert_eq!(w.mask, None, "server frame masked"),
        }
        assert_eq!(w.rsv, 0);
    }
    wire
}
