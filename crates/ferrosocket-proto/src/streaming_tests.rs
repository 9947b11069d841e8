//! Streamed reception ([`ReadMode::Streamed`]): chunks, limits, UTF-8 and permessage-deflate,
//! asserted on wire bytes and events. Tests are named after the RFC section they exercise, or
//! `streamed_*` for the delivery contract itself.
//!
//! Frames are built and decoded with the crate's test-only wire codec (`test_wire.rs`), written
//! independently of `frame.rs`; compressed payloads come from flate2 directly or from a peer
//! [`Connection`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::test_wire::*;
use flate2::{Compress, Compression, FlushCompress};
use proptest::prelude::*;

// ---- wire helpers -----------------------------------------------------------------------------

/// `(opcode, payload)` of every frame in `b`, unmasked.
fn parse_frames(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    parse_wire(b).into_iter().map(|w| (w.opcode, w.payload)).collect()
}

/// The status code of the single close frame `conn` wrote last.
fn close_code_out(conn: &mut Connection) -> u16 {
    let frames = parse_frames(&conn.take_output());
    let (op, p) = frames.last().expect("a close frame");
    assert_eq!(*op, OP_CLOSE);
    assert_eq!(frames.iter().filter(|(o, _)| *o == OP_CLOSE).count(), 1);
    u16::from_be_bytes([p[0], p[1]])
}

// ---- connections and events -------------------------------------------------------------------

fn streamed(role: Role, config: Config) -> Connection {
    let mut c = Connection::new(role, config);
    c.set_read_mode(ReadMode::Streamed);
    c
}

fn client(config: Config) -> Connection {
    streamed(Role::Client, config)
}

/// Polls until more input is needed or an error.
fn poll_all(conn: &mut Connection) -> (Vec<Event>, Option<ReadError>) {
    let mut events = Vec::new();
    loop {
        match conn.poll_event() {
            Ok(Some(e)) => events.push(e),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e)),
        }
    }
}

fn events(conn: &mut Connection) -> Vec<Event> {
    let (ev, err) = poll_all(conn);
    assert_eq!(err, None, "after {ev:?}");
    ev
}

fn chunk(kind: MessageKind, data: &[u8], first: bool, last: bool) -> Event {
    Event::Chunk(Chunk {
        kind,
        data: Bytes::copy_from_slice(data),
        first,
        last,
    })
}

fn chunks_of(events: &[Event]) -> Vec<&Chunk> {
    events
        .iter()
        .map(|e| match e {
            Event::Chunk(c) => c,
            other => panic!("expected a chunk, got {other:?}"),
        })
        .collect()
}

/// Checks the chunk contract for one message's chunks and returns its payload.
fn assemble(chunks: &[&Chunk], cap: usize) -> Vec<u8> {
    assert!(!chunks.is_empty());
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.first, i == 0, "first flag of chunk {i}");
        assert_eq!(c.last, i + 1 == chunks.len(), "last flag of chunk {i}");
        assert!(c.data.len() <= cap, "chunk of {} > {cap}", c.data.len());
        assert!(c.last || !c.data.is_empty(), "empty chunk before the last");
        assert_eq!(c.kind, chunks[0].kind);
        out.extend_from_slice(&c.data);
    }
    out
}

fn text_of_len(len: usize) -> String {
    let pieces = ["a", "é", "€", "😀", "κ", "z"];
    let mut s = String::with_capacity(len);
    for p in pieces.iter().cycle() {
        if s.len() == len {
            break;
        }
        s.push_str(if s.len() + p.len() <= len { p } else { "a" });
    }
    s
}

fn binary_of_len(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
}

// ---- the delivery contract --------------------------------------------------------------------

#[test]
fn streamed_mode_defaults_to_whole_and_is_sampled_per_message() {
    let mut c = Connection::new(Role::Client, Config::default());
    assert_eq!(c.read_mode(), ReadMode::Whole);
    assert!(!c.streaming_message());
    c.receive(&sf(OP_TEXT, true, b"whole"));
    assert_eq!(events(&mut c), [Event::Message(Message::text("whole"))]);
    c.set_read_mode(ReadMode::Streamed);
    assert_eq!(c.read_mode(), ReadMode::Streamed);
    c.receive(&sf(OP_TEXT, true, b"streamed"));
    assert_eq!(
        events(&mut c),
        [chunk(MessageKind::Text, b"streamed", true, true)]
    );
}

#[test]
fn streamed_mode_change_mid_message_applies_to_the_next_message() {
    // Streamed -> Whole while a streamed message is in progress: it stays streamed.
    let mut c = client(Config::default());
    c.receive(&sf(OP_TEXT, false, b"ab"));
    assert_eq!(events(&mut c), [chunk(MessageKind::Text, b"ab", true, false)]);
    c.set_read_mode(ReadMode::Whole);
    assert!(c.streaming_message());
    c.receive(&sf(OP_CONT, true, b"cd"));
    c.receive(&sf(OP_TEXT, true, b"ef"));
    assert_eq!(
        events(&mut c),
        [
            chunk(MessageKind::Text, b"cd", false, true),
            Event::Message(Message::text("ef"))
        ]
    );
    // Whole -> Streamed while a whole message is being reassembled: it stays whole.
    c.receive(&sf(OP_BINARY, false, b"gh"));
    assert_eq!(events(&mut c), []);
    c.set_read_mode(ReadMode::Streamed);
    assert!(!c.streaming_message());
    c.receive(&sf(OP_CONT, true, b"ij"));
    c.receive(&sf(OP_BINARY, true, b"kl"));
    assert_eq!(
        events(&mut c),
        [
            Event::Message(Message::binary(b"ghij".to_vec())),
            chunk(MessageKind::Binary, b"kl", true, true)
        ]
    );
}

#[test]
fn streamed_header_alone_starts_the_message() {
    // The mode is sampled on the first header, before any payload: from then on the message
    // is streamed whatever the mode says.
    let mut c = client(Config::default());
    c.receive(&header(OP_BINARY, true, false, None, 3));
    assert_eq!(events(&mut c), []);
    assert!(c.streaming_message());
    c.set_read_mode(ReadMode::Whole);
    c.receive(&[1, 2, 3]);
    assert_eq!(
        events(&mut c),
        [chunk(MessageKind::Binary, &[1, 2, 3], true, true)]
    );
}

#[test]
fn rfc6455_5_2_single_frame_is_one_chunk_first_and_last_without_copy() {
    let mut c = client(Config::default());
    let wire = sf(OP_BINARY, true, &binary_of_len(1000));
    c.receive(&wire);
    let ev = events(&mut c);
    let chunks = chunks_of(&ev);
    assert_eq!(chunks.len(), 1);
    assert_eq!(assemble(&chunks, 64 << 10), binary_of_len(1000));
    assert!(!c.streaming_message());
    assert_eq!(c.buffered_input(), 0);
}

#[test]
fn rfc6455_5_4_fragmented_message_streams_frame_by_frame() {
    let mut c = client(Config::default());
    c.receive(&sf(OP_TEXT, false, b"Hel"));
    assert_eq!(events(&mut c), [chunk(MessageKind::Text, b"Hel", true, false)]);
    assert!(c.streaming_message());
    c.receive(&sf(OP_CONT, false, b"lo, "));
    assert_eq!(events(&mut c), [chunk(MessageKind::Text, b"lo, ", false, false)]);
    // An empty middle fragment yields no event.
    c.receive(&sf(OP_CONT, false, b""));
    assert_eq!(events(&mut c), []);
    c.receive(&sf(OP_CONT, true, b"world"));
    assert_eq!(events(&mut c), [chunk(MessageKind::Text, b"world", false, true)]);
    assert!(!c.streaming_message());
    // Then the next message, streamed too.
    c.receive(&sf(OP_BINARY, true, &[1, 2]));
    assert_eq!(events(&mut c), [chunk(MessageKind::Binary, &[1, 2], true, true)]);
}

#[test]
fn rfc6455_5_4_empty_messages_are_one_empty_chunk() {
    let mut c = client(Config::default());
    c.receive(&sf(OP_TEXT, true, b""));
    assert_eq!(events(&mut c), [chunk(MessageKind::Text, b"", true, true)]);
    // Fragmented into empty frames: still a single chunk.
    c.receive(&sf(OP_BINARY, false, b""));
    c.receive(&sf(OP_CONT, false, b""));
    c.receive(&sf(OP_CONT, true, b""));
    assert_eq!(events(&mut c), [chunk(MessageKind::Binary, b"", true, true)]);
    // A last fragment that is empty ends a non-empty message with an empty last chunk.
    c.receive(&sf(OP_BINARY, false, b"ab"));
    c.receive(&sf(OP_CONT, true, b""));
    assert_eq!(
        events(&mut c),
        [
            chunk(MessageKind::Binary, b"ab", true, false),
            chunk(MessageKind::Binary, b"", false, true)
        ]
    );
}

#[test]
fn streamed_payload_is_delivered_before_the_frame_completes() {
    // A masked frame to a server, fed in pieces that cut the mask phase anywhere.
    let payload = binary_of_len(1001);
    let wire = cf(OP_BINARY, true, &payload);
    for first in [2usize, 6, 7, 9, 100, 506] {
        let mut s = streamed(Role::Server, Config::default());
        s.receive(&wire[..first]);
        let mut got = events(&mut s);
        if first > 8 {
            assert_eq!(got.len(), 1, "part of the frame is out before the rest arrived");
            let c = chunks_of(&got)[0].clone();
            assert_eq!(&c.data[..], &payload[..first - 8]);
            assert!(c.first && !c.last);
        }
        for piece in wire[first..].chunks(333) {
            s.receive(piece);
            got.extend(events(&mut s));
        }
        assert_eq!(assemble(&chunks_of(&got), 64 << 10), payload);
    }
}

#[test]
fn streamed_chunks_are_bounded_by_stream_chunk_size() {
    for cap in [1usize, 3, 4, 5, 1000] {
        let mut s = streamed(Role::Server, Config::default().stream_chunk_size(cap));
        let payload = binary_of_len(4099);
        s.receive(&cf(OP_BINARY, false, &payload[..2000]));
        s.receive(&cf(OP_CONT, true, &payload[2000..]));
        let ev = events(&mut s);
        let chunks = chunks_of(&ev);
        assert_eq!(chunks.len(), 2000_usize.div_ceil(cap) + 2099_usize.div_ceil(cap));
        assert_eq!(assemble(&chunks, cap), payload);
    }
}

#[test]
fn streamed_events_are_produced_one_per_poll() {
    // Lazy parsing: a chunk is returned before the bytes behind it are looked at, so a bad
    // frame after a message fails only once the message's chunks were taken.
    let mut c = client(Config::default().stream_chunk_size(2));
    let mut wire = sf(OP_BINARY, true, &[1, 2, 3]);
    wire.extend_from_slice(&[0xf0, 0x00]); // RSV bits set: 1002
    c.receive(&wire);
    assert_eq!(
        c.poll_event(),
        Ok(Some(chunk(MessageKind::Binary, &[1, 2], true, false)))
    );
    assert_eq!(
        c.poll_event(),
        Ok(Some(chunk(MessageKind::Binary, &[3], false, true)))
    );
    assert!(matches!(
        c.poll_event(),
        Err(ReadError::Protocol(ProtocolError::ReservedBits))
    ));
    assert_eq!(close_code_out(&mut c), 1002);
}

#[test]
fn streamed_a_1_gib_frame_needs_no_more_than_the_read_buffer() {
    // The peer declares a 1 GiB frame (above max_message_size: streamed messages are not
    // bound by it); we feed 64 MiB of it through read_buffer() and take chunks as we go.
    let config = Config::default().max_frame_size(None);
    let mut c = client(config);
    c.receive(&header(OP_BINARY, true, false, None, 1 << 30));
    let block = vec![7u8; 64 << 10];
    let mut total = 0usize;
    for _ in 0..1024 {
        let buf = c.read_buffer();
        assert!(
            buf.capacity() <= 128 << 10,
            "read buffer grew to {}",
            buf.capacity()
        );
        buf.extend_from_slice(&block);
        for ev in events(&mut c) {
            let Event::Chunk(ch) = ev else { panic!() };
            assert!(ch.data.len() <= 64 << 10 && !ch.last);
            total += ch.data.len();
        }
        assert_eq!(c.buffered_input(), 0);
    }
    assert_eq!(total, 64 << 20);
    assert!(c.streaming_message());
}

// ---- control frames between fragments ---------------------------------------------------------

#[test]
fn rfc6455_5_4_control_frames_between_fragments_come_between_chunks() {
    let mut s = streamed(Role::Server, Config::default());
    let mut wire = cf(OP_TEXT, false, b"one ");
    wire.extend(cf(OP_PING, true, b"p"));
    wire.extend(cf(OP_CONT, false, b"two "));
    wire.extend(cf(OP_PONG, true, b"q"));
    wire.extend(cf(OP_CONT, true, b"three"));
    s.receive(&wire);
    assert_eq!(
        events(&mut s),
        [
            chunk(MessageKind::Text, b"one ", true, false),
            Event::Ping(Bytes::from_static(b"p")),
            chunk(MessageKind::Text, b"two ", false, false),
            Event::Pong(Bytes::from_static(b"q")),
            chunk(MessageKind::Text, b"three", false, true),
        ]
    );
    // The automatic pong went out.
    assert_eq!(parse_frames(&s.take_output()), [(OP_PONG, b"p".to_vec())]);
}

#[test]
fn rfc6455_5_5_1_close_inside_a_streamed_message_ends_it() {
    let mut s = streamed(Role::Server, Config::default());
    s.receive(&cf(OP_BINARY, false, b"part"));
    s.receive(&cf(OP_CLOSE, true, &[0x03, 0xe8]));
    let (ev, err) = poll_all(&mut s);
    assert_eq!(
        ev,
        [
            chunk(MessageKind::Binary, b"part", true, false),
            Event::Close(Some(CloseFrame::new(1000u16, "")))
        ]
    );
    assert_eq!(err, Some(ReadError::Closed));
    assert!(!s.streaming_message());
    assert_eq!(close_code_out(&mut s), 1000);
}

#[test]
fn rfc6455_7_1_5_eof_inside_a_streamed_frame_is_abnormal() {
    let mut c = client(Config::default());
    let wire = sf(OP_BINARY, true, b"abcdef");
    c.receive(&wire[..5]);
    assert_eq!(events(&mut c), [chunk(MessageKind::Binary, b"abc", true, false)]);
    c.receive_eof();
    assert_eq!(c.poll_event(), Err(ReadError::AbnormalClosure));
    assert!(!c.streaming_message());
}

#[test]
fn rfc6455_5_4_frames_out_of_order_in_a_streamed_message_fail_with_1002() {
    let mut c = client(Config::default());
    c.receive(&sf(OP_TEXT, false, b"a"));
    c.receive(&sf(OP_BINARY, true, b"b"));
    let (ev, err) = poll_all(&mut c);
    assert_eq!(ev, [chunk(MessageKind::Text, b"a", true, false)]);
    assert_eq!(
        err,
        Some(ReadError::Protocol(ProtocolError::ExpectedContinuation))
    );
    assert_eq!(close_code_out(&mut c), 1002);
    assert!(!c.streaming_message());

    let mut c = client(Config::default());
    c.receive(&sf(OP_CONT, true, b"a"));
    let (ev, err) = poll_all(&mut c);
    assert!(ev.is_empty());
    assert_eq!(
        err,
        Some(ReadError::Protocol(ProtocolError::UnexpectedContinuation))
    );
}

// ---- UTF-8 (RFC 6455 §8.1) ----------------------------------------------------------------------

#[test]
fn rfc6455_8_1_code_point_split_across_frames_and_reads_is_delivered_as_bytes() {
    let text = "a€😀b";
    let bytes = text.as_bytes();
    // Frames cut inside "€" and inside "😀"; reads cut everywhere.
    let mut wire = cf(OP_TEXT, false, &bytes[..2]);
    wire.extend(cf(OP_CONT, false, &bytes[2..6]));
    wire.extend(cf(OP_CONT, true, &bytes[6..]));
    for cut in 0..=wire.len() {
        let mut s = streamed(Role::Server, Config::default());
        s.receive(&wire[..cut]);
        let mut ev = events(&mut s);
        s.receive(&wire[cut..]);
        ev.extend(events(&mut s));
        assert_eq!(assemble(&chunks_of(&ev), 64 << 10), bytes, "cut at {cut}");
    }
}

#[test]
fn rfc6455_8_1_invalid_utf8_fails_with_1007_before_the_chunk_that_holds_it() {
    let mut payload = b"hello".to_vec();
    payload.extend_from_slice(&[0xce, 0xba, 0xff, b'!']);
    let wire = cf(OP_TEXT, true, &payload);
    let mut s = streamed(Role::Server, Config::default());
    s.receive(&wire[..6 + 5]);
    assert_eq!(events(&mut s), [chunk(MessageKind::Text, b"hello", true, false)]);
    s.receive(&wire[6 + 5..6 + 7]); // "κ": valid so far
    assert_eq!(
        events(&mut s),
        [chunk(MessageKind::Text, "κ".as_bytes(), false, false)]
    );
    s.receive(&wire[6 + 7..]); // 0xff: never valid, arrives with a valid '!'
    let (ev, err) = poll_all(&mut s);
    assert_eq!(ev, []);
    assert_eq!(err, Some(ReadError::Protocol(ProtocolError::InvalidUtf8)));
    assert_eq!(close_code_out(&mut s), 1007);
    assert!(!s.streaming_message());
}

#[test]
fn rfc6455_8_1_streamed_text_ending_mid_code_point_fails_with_1007_on_the_last_frame() {
    let mut s = streamed(Role::Server, Config::default());
    s.receive(&cf(OP_TEXT, false, b"ok\xe2"));
    assert_eq!(events(&mut s), [chunk(MessageKind::Text, b"ok\xe2", true, false)]);
    s.receive(&cf(OP_CONT, true, b"\x82"));
    let (ev, err) = poll_all(&mut s);
    assert_eq!(ev, []);
    assert_eq!(err, Some(ReadError::Protocol(ProtocolError::InvalidUtf8)));
    assert_eq!(close_code_out(&mut s), 1007);
}

// ---- limits (RFC 6455 §10.4) ------------------------------------------------------------------

#[test]
fn rfc6455_10_4_streamed_message_limit_spans_frames_and_fails_with_1009() {
    let config = Config::default()
        .max_streamed_message_size(Some(10))
        .max_message_size(Some(1));
    let mut s = streamed(Role::Server, config);
    s.receive(&cf(OP_BINARY, false, b"123456"));
    s.receive(&cf(OP_CONT, false, b"7890"));
    s.receive(&header(OP_CONT, true, false, Some(KEY), 1));
    let (ev, err) = poll_all(&mut s);
    // Exactly the limit is fine (max_message_size does not apply); one byte more is not.
    assert_eq!(
        ev,
        [
            chunk(MessageKind::Binary, b"123456", true, false),
            chunk(MessageKind::Binary, b"7890", false, false)
        ]
    );
    assert_eq!(
        err,
        Some(ReadError::Protocol(ProtocolError::MessageTooLarge {
            size: 11,
            limit: 10
        }))
    );
    let out = s.take_output();
    // 1009 "message of at least 11 bytes exceeds the limit of 10", unmasked from a server.
    assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xf1]);
    assert_eq!(parse_frames(&out).len(), 1);
    assert!(!s.streaming_message());
}

#[test]
fn rfc6455_10_4_max_message_size_does_not_apply_to_streamed_messages() {
    let config = Config::default().max_message_size(Some(100));
    let mut s = streamed(Role::Server, config);
    let payload = binary_of_len(10_000);
    s.receive(&cf(OP_BINARY, false, &payload[..5000]));
    s.receive(&cf(OP_CONT, true, &payload[5000..]));
    assert_eq!(assemble(&chunks_of(&events(&mut s)), 64 << 10), payload);
    // Whole mode still applies it.
    s.set_read_mode(ReadMode::Whole);
    s.receive(&cf(OP_BINARY, true, &payload[..101]));
    let (_, err) = poll_all(&mut s);
    assert!(matches!(
        err,
        Some(ReadError::Protocol(ProtocolError::MessageTooLarge { .. }))
    ));
    assert_eq!(close_code_out(&mut s), 1009);
}

#[test]
fn rfc6455_10_4_max_frame_size_still_applies_to_streamed_frames() {
    let config = Config::default().max_frame_size(Some(100));
    let mut s = streamed(Role::Server, config);
    s.receive(&cf(OP_BINARY, false, &[1; 100]));
    s.receive(&header(OP_CONT, true, false, Some(KEY), 101));
    let (ev, err) = poll_all(&mut s);
    assert_eq!(chunks_of(&ev).len(), 1);
    assert_eq!(
        err,
        Some(ReadError::Protocol(ProtocolError::FrameTooLarge {
            size: 101,
            limit: 100
        }))
    );
    assert_eq!(close_code_out(&mut s), 1009);
}

#[test]
fn rfc6455_10_4_unlimited_streamed_size() {
    let config = Config::default()
        .max_streamed_message_size(None)
        .max_frame_size(None);
    let mut c = client(config);
    c.receive(&header(OP_BINARY, true, false, None, u64::MAX >> 1));
    c.receive(&[1, 2, 3]);
    assert_eq!(
        events(&mut c),
        [chunk(MessageKind::Binary, &[1, 2, 3], true, false)]
    );
}

// ---- permessage-deflate (RFC 7692) ------------------------------------------------------------

fn params(no_context_takeover: bool) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: no_context_takeover,
        client_no_context_takeover: no_context_takeover,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    }
}

/// A compressing server (threshold 0: every message compressed) and a client receiving in
/// streamed mode, both with permessage-deflate.
fn deflate_pair(no_context_takeover: bool, config: Config) -> (Connection, Connection) {
    let p = params(no_context_takeover);
    let mut server = Connection::new(Role::Server, Config::default());
    server.enable_deflate(&p, &DeflateConfig::default().threshold(0));
    let mut client = client(config);
    client.enable_deflate(&p, &DeflateConfig::default());
    (server, client)
}

/// Raw deflate of `data` with a sync flush, the RFC 7692 tail removed.
fn deflate_raw(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() / 100 + 1024);
    loop {
        let done = c.total_in() as usize;
        if out.capacity() - out.len() < 1024 {
            out.reserve(1 << 16);
        }
        c.compress_vec(&data[done..], &mut out, FlushCompress::Sync)
            .unwrap();
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

#[test]
fn rfc7692_streamed_compressed_messages_with_and_without_context_takeover() {
    for nct in [false, true] {
        for cap in [7usize, 1000, 64 << 10] {
            let (mut server, mut client) = deflate_pair(nct, Config::default().stream_chunk_size(cap));
            let msgs = [
                text_of_len(3000).into_bytes(),
                text_of_len(3000).into_bytes(), // a repeat: context takeover makes it tiny
                binary_of_len(100_000),
                Vec::new(),
            ];
            for (i, m) in msgs.iter().enumerate() {
                if i % 2 == 0 {
                    server.send(Message::binary(m.clone())).unwrap();
                } else {
                    // Fragmented on the wire.
                    let b = Bytes::from(m.clone());
                    let mid = b.len() / 3;
                    server
                        .send_fragment(MessageKind::Text, b.slice(..mid), false)
                        .unwrap();
                    server
                        .send_fragment(MessageKind::Text, b.slice(mid..), true)
                        .unwrap();
                }
                let wire = server.take_output();
                assert_ne!(wire[0] & 0x40, 0, "compressed");
                // Fed in odd pieces, polling in between.
                let mut ev = Vec::new();
                for piece in wire.chunks(97) {
                    client.receive(piece);
                    ev.extend(events(&mut client));
                }
                let chunks = chunks_of(&ev);
                assert_eq!(&assemble(&chunks, cap), m, "message {i}, nct {nct}, cap {cap}");
            }
        }
    }
}

#[test]
fn rfc7692_8_a_bomb_streams_in_bounded_chunks() {
    // 16 MiB of zeros in a few KiB: one small compressed frame.
    let total = 16usize << 20;
    let payload = deflate_raw(&vec![0u8; total]);
    assert!(payload.len() < 64 << 10, "{}", payload.len());
    let mut c = client(Config::default());
    c.enable_deflate(&params(false), &DeflateConfig::default());
    c.receive(&frame(OP_BINARY, true, true, None, &payload));
    let mut got = 0usize;
    let mut n = 0usize;
    loop {
        match c.poll_event().unwrap() {
            Some(Event::Chunk(ch)) => {
                n += 1;
                assert!(ch.data.len() <= 64 << 10);
                assert!(ch.data.iter().all(|&b| b == 0));
                assert_eq!(ch.first, n == 1);
                // Unconsumed compressed input stays buffered, not inflated ahead.
                if n == 1 {
                    assert!(c.buffered_input() > payload.len() / 2, "{}", c.buffered_input());
                }
                got += ch.data.len();
                if ch.last {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, total);
    assert!(n >= total / (64 << 10));
    assert_eq!(c.buffered_input(), 0);
}

#[test]
fn rfc7692_8_streamed_inflated_total_is_limited_with_1009() {
    let payload = deflate_raw(&vec![0u8; 1 << 20]);
    let config = Config::default()
        .max_streamed_message_size(Some(100_000))
        .stream_chunk_size(30_000);
    let mut c = client(config);
    c.enable_deflate(&params(false), &DeflateConfig::default());
    c.receive(&frame(OP_BINARY, true, true, None, &payload));
    let (ev, err) = poll_all(&mut c);
    let delivered: usize = chunks_of(&ev).iter().map(|c| c.data.len()).sum();
    assert_eq!(delivered, 90_000, "three chunks, the fourth would pass the limit");
    assert_eq!(
        err,
        Some(ReadError::Protocol(ProtocolError::MessageTooLarge {
            size: 120_000,
            limit: 100_000
        }))
    );
    let out = parse_frames(&c.take_output());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, OP_CLOSE);
    assert_eq!(&out[0].1[..2], &[0x03, 0xf1]);
}

#[test]
fn rfc7692_6_2_invalid_utf8_after_inflating_a_stream_is_1007() {
    let mut text = b"valid start ".repeat(10);
    text.push(0xff);
    let payload = deflate_raw(&text);
    let mut c = client(Config::default().stream_chunk_size(50));
    c.enable_deflate(&params(false), &DeflateConfig::default());
    c.receive(&frame(OP_TEXT, true, true, None, &payload));
    let (ev, err) = poll_all(&mut c);
    let chunks = chunks_of(&ev);
    assert_eq!(chunks.len(), 2, "the first 100 bytes are valid");
    assert!(chunks.iter().all(|c| !c.data.contains(&0xff)));
    assert_eq!(err, Some(ReadError::Protocol(ProtocolError::InvalidUtf8)));
    assert_eq!(close_code_out(&mut c), 1007);
}

#[test]
fn rfc7692_6_2_corrupt_compressed_stream_fails_with_1007() {
    let mut c = client(Config::default());
    c.enable_deflate(&params(false), &DeflateConfig::default());
    c.receive(&frame(OP_BINARY, true, true, None, &[0xff, 0xff, 0xff]));
    let (_, err) = poll_all(&mut c);
    assert!(matches!(
        err,
        Some(ReadError::Protocol(ProtocolError::Inflate(_)))
    ));
    assert_eq!(close_code_out(&mut c), 1007);
}

#[test]
fn rfc7692_7_2_context_takeover_carries_across_read_modes() {
    let (mut server, mut client) = deflate_pair(false, Config::default().stream_chunk_size(100));
    let msg = text_of_len(5000);
    for round in 0..6 {
        let mode = if round % 3 == 0 {
            ReadMode::Whole
        } else {
            ReadMode::Streamed
        };
        client.set_read_mode(mode);
        server.send(Message::text(msg.clone())).unwrap();
        let wire = server.take_output();
        if round > 0 {
            assert!(wire.len() < 100, "context takeover: a repeat is a back-reference");
        }
        // A partial frame first: streamed mode already delivers, whole mode waits.
        client.receive(&wire[..wire.len() / 2]);
        let mut ev = events(&mut client);
        client.receive(&wire[wire.len() / 2..]);
        ev.extend(events(&mut client));
        match mode {
            ReadMode::Whole => assert_eq!(ev, [Event::Message(Message::text(msg.clone()))]),
            ReadMode::Streamed => assert_eq!(assemble(&chunks_of(&ev), 100), msg.as_bytes()),
        }
    }
}

#[test]
fn rfc7692_streamed_compressed_message_with_control_frames_between_fragments() {
    let (mut server, mut client) = deflate_pair(false, Config::default());
    let b = Bytes::from(text_of_len(2000));
    server
        .send_fragment(MessageKind::Text, b.slice(..700), false)
        .unwrap();
    server.send_ping(b"mid").unwrap();
    server
        .send_fragment(MessageKind::Text, b.slice(700..), true)
        .unwrap();
    client.receive(&server.take_output());
    let ev = events(&mut client);
    assert_eq!(ev[1], Event::Ping(Bytes::from_static(b"mid")));
    let mut chunks = chunks_of(&ev[..1]);
    chunks.extend(chunks_of(&ev[2..]));
    assert_eq!(assemble(&chunks, 64 << 10), &b[..]);
}

// ---- any message, any split --------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Msg {
    text: bool,
    len: usize,
    compressed: bool,
    /// Fragment sizes (the rest goes in the last fragment).
    frags: Vec<usize>,
    streamed: bool,
}

fn arb_msg() -> impl Strategy<Value = Msg> {
    (
        any::<bool>(),
        prop_oneof![0usize..200, 0usize..5000, 0usize..200_000],
        any::<bool>(),
        proptest::collection::vec(0usize..70_000, 0..4),
        any::<bool>(),
    )
        .prop_map(|(text, len, compressed, frags, streamed)| Msg {
            text,
            len,
            compressed,
            frags,
            streamed,
        })
}

/// Sends `m` from `from` in its fragments; returns the payload.
fn send_msg(from: &mut Connection, m: &Msg) -> Vec<u8> {
    let payload = if m.text {
        text_of_len(m.len).into_bytes()
    } else {
        binary_of_len(m.len)
    };
    let kind = if m.text {
        MessageKind::Text
    } else {
        MessageKind::Binary
    };
    from.set_write_compression(m.compressed);
    let b = Bytes::from(payload.clone());
    let mut at = 0;
    for &s in &m.frags {
        let end = (at + s).min(b.len());
        from.send_fragment(kind, b.slice(at..end), false).unwrap();
        at = end;
    }
    from.send_fragment(kind, b.slice(at..), true).unwrap();
    payload
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn streamed_chunks_concatenate_to_the_whole_message(
        msgs in proptest::collection::vec(arb_msg(), 1..4),
        reads in proptest::collection::vec(1usize..40_000, 1..8),
        cap in prop_oneof![Just(7usize), Just(1000), Just(4096), Just(64 << 10)],
        nct in any::<bool>(),
        deflate in any::<bool>(),
    ) {
        // A client sends (masked) to two servers: one streaming per the message's flag, one whole.
        let mut sender = Connection::new(Role::Client, Config::default());
        let mut stream = Connection::new(Role::Server, Config::default().stream_chunk_size(cap));
        let mut whole = Connection::new(Role::Server, Config::default());
        if deflate {
            let p = params(nct);
            let cfg = DeflateConfig::default().threshold(0);
            for c in [&mut sender, &mut stream, &mut whole] {
                c.enable_deflate(&p, &cfg);
            }
        }
        let mut payloads = Vec::new();
        let mut wire = Vec::new();
        for m in &msgs {
            payloads.push(send_msg(&mut sender, m));
            wire.extend(sender.take_output());
        }

        // Streamed side: feed in random reads; the mode of each next message is set right
        // after the previous message's last event.
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut current: Vec<Event> = Vec::new();
        stream.set_read_mode(if msgs[0].streamed { ReadMode::Streamed } else { ReadMode::Whole });
        let mut pos = 0;
        let mut i = 0;
        while pos < wire.len() {
            let n = reads[i % reads.len()].min(wire.len() - pos);
            i += 1;
            if i % 2 == 0 {
                stream.read_buffer().extend_from_slice(&wire[pos..pos + n]);
            } else {
                stream.receive(&wire[pos..pos + n]);
            }
            pos += n;
            while let Some(ev) = stream.poll_event().unwrap() {
                let done = match &ev {
                    Event::Message(m) => {
                        prop_assert!(!msgs[got.len()].streamed);
                        got.push(m.as_bytes().to_vec());
                        true
                    }
                    Event::Chunk(c) => {
                        prop_assert!(msgs[got.len()].streamed);
                        prop_assert_eq!(stream.streaming_message(), !c.last);
                        let last = c.last;
                        current.push(ev.clone());
                        if last {
                            got.push(assemble(&chunks_of(&current), cap));
                            current.clear();
                        }
                        last
                    }
                    other => panic!("{other:?}"),
                };
                if done && let Some(next) = msgs.get(got.len()) {
                    stream.set_read_mode(if next.streamed { ReadMode::Streamed } else { ReadMode::Whole });
                }
            }
        }
        prop_assert_eq!(&got, &payloads);

        whole.receive(&wire);
        let mut whole_got = Vec::new();
        while let Some(ev) = whole.poll_event().unwrap() {
            let Event::Message(m) = ev else { panic!("{ev:?}") };
            whole_got.push(m.as_bytes().to_vec());
        }
        prop_assert_eq!(&whole_got, &payloads);
    }
}
