//! Bytes as the compressed payload of a permessage-deflate message received by a client
//! `Connection` with a small `max_message_size`.
//!
//! First byte: 0x01 text, bits 1-2 fragments - 1, 0x08 server_no_context_takeover,
//! 0x10 low_memory, 0x20 send the message twice (context takeover), bits 6-7 the limit
//! (1 MiB, 1000 B, 64 KiB, 2.5 MiB). The rest is the payload.
//!
//! Invariants: never panics; a message is at most the limit; the heap never holds much more
//! than the limit (the codec documents "the limit plus one growth step of at most 1 MiB");
//! where plain zlib inflates the payload cleanly within the limit, the message is exactly that
//! (or a UTF-8 error for bad text); where it inflates past the limit, the error is 1009.
#![no_main]

use ferrosocket_fuzz::{Input, alloc};
use ferrosocket_proto::{DeflateConfig, DeflateParams};
use ferrosocket_proto::{FrameHeader, MAX_HEADER_LEN, OpCode};
use ferrosocket_proto::{Config, Connection, Event, Message, ProtocolError, ReadError, Role};
use flate2::{Decompress, FlushDecompress, Status};
use libfuzzer_sys::fuzz_target;

/// Plain zlib's verdict on `payload` + the RFC 7692 tail, within `limit`.
enum Reference {
    /// Inflated all of it, no end of stream, at most `limit` bytes.
    Clean(Vec<u8>),
    /// More than `limit` bytes came out before any error or end of stream.
    TooLarge,
    /// An error or an end of stream (which the codec handles by starting a new stream).
    Other,
}

fn reference(payload: &[u8], limit: usize) -> Reference {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut d = Decompress::new_with_window_bits(false, 15);
    let mut out = Vec::with_capacity(limit.min(1 << 16) + 1);
    loop {
        let consumed = d.total_in() as usize;
        if out.len() == out.capacity() {
            out.reserve(64 << 10);
        }
        let before = out.len();
        match d.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync) {
            Err(_) | Ok(Status::StreamEnd) => return Reference::Other,
            Ok(_) => {}
        }
        if out.len() > limit {
            return Reference::TooLarge;
        }
        let now = d.total_in() as usize;
        if now == input.len() && out.len() < out.capacity() {
            return Reference::Clean(out);
        }
        if now == consumed && out.len() == before && out.len() < out.capacity() {
            return Reference::Other; // truncated stream: needs more input
        }
    }
}

fn frame(wire: &mut Vec<u8>, opcode: OpCode, fin: bool, rsv1: bool, payload: &[u8]) {
    let mut h = FrameHeader::new(opcode, fin, payload.len() as u64);
    h.rsv1 = rsv1;
    let mut buf = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut buf);
    wire.extend_from_slice(&buf[..n]);
    wire.extend_from_slice(payload);
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let payload = input.rest();
    let text = flags & 0x01 != 0;
    let fragments = usize::from((flags >> 1) & 3) + 1;
    let times = if flags & 0x20 != 0 { 2 } else { 1 };
    let limit = [1 << 20, 1000, 64 << 10, 5 << 19][usize::from(flags >> 6)];

    let mut wire = Vec::new();
    for _ in 0..times {
        let step = payload.len().div_ceil(fragments).max(1);
        let mut pieces: Vec<&[u8]> = payload.chunks(step).collect();
        if pieces.is_empty() {
            pieces.push(&[]);
        }
        let last = pieces.len() - 1;
        for (i, p) in pieces.iter().enumerate() {
            let opcode = match (i, text) {
                (0, true) => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            frame(&mut wire, opcode, i == last, i == 0, p);
        }
    }

    let base = alloc::start();
    let mut conn = Connection::new(
        Role::Client,
        Config::default().max_message_size(Some(limit)).max_frame_size(None),
    );
    let params = DeflateParams {
        server_no_context_takeover: flags & 0x08 != 0,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    conn.enable_deflate(&params, &DeflateConfig::default().low_memory(flags & 0x10 != 0));
    conn.receive(&wire);
    let first = conn.poll_event();
    let mut second = None;
    if times == 2 && matches!(first, Ok(Some(_))) {
        second = Some(conn.poll_event());
    }
    let peak = alloc::peak_since(base);
    if std::env::var_os("FUZZ_DEBUG").is_some() {
        eprintln!("peak {peak} first {first:?}");
    }
    drop(conn);
    // The read buffer holds the input; each inflated message (its capacity) is at most the
    // limit plus one growth step, and the first is still held while the second inflates; zlib
    // state is far below 256 KiB.
    let bound = 2 * wire.len() + times * limit + (1 << 20) + (256 << 10);
    assert!(peak <= bound, "heap peak {peak} above {bound} for a limit of {limit}");

    for r in [Some(&first), second.as_ref()].into_iter().flatten() {
        if let Ok(Some(Event::Message(m))) = r {
            assert!(m.len() <= limit, "inflated {} > limit {limit}", m.len());
        }
    }
    // Compare the first message with plain zlib.
    match reference(payload, limit) {
        Reference::Clean(expected) => match first {
            Ok(Some(Event::Message(Message::Binary(b)))) => {
                assert!(!text);
                assert_eq!(&b[..], &expected[..]);
            }
            Ok(Some(Event::Message(Message::Text(t)))) => {
                assert!(text);
                assert_eq!(t.as_bytes(), &expected[..]);
            }
            Err(ReadError::Protocol(ProtocolError::InvalidUtf8)) => {
                assert!(text && std::str::from_utf8(&expected).is_err());
            }
            other => panic!("zlib inflates {} bytes cleanly, we got {other:?}", expected.len()),
        },
        Reference::TooLarge if !text => match first {
            Err(ReadError::Protocol(ProtocolError::MessageTooLarge { .. })) => {}
            other => panic!("zlib inflates past {limit}, we got {other:?}"),
        },
        _ => {}
    }
});
