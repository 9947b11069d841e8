//! The connection test suite: RFC 6455 behaviour of [`Connection`], asserted on exact wire
//! bytes, close codes and events. Each test is named after the RFC section it checks.
//!
//! Frames are built and decoded with the crate's test-only wire codec (`test_wire.rs`), written
//! independently of `frame.rs`, so an encoding bug there cannot hide behind a matching decoding bug.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::close::MAX_REASON_LEN;
use crate::mask::FixedMaskSource;
use crate::test_wire::*;
use proptest::prelude::*;
use proptest::sample::Index;

// ---- connections and events -------------------------------------------------------------------

pub(crate) fn server_with(config: Config) -> Connection {
    Connection::new(Role::Server, config)
}

fn server() -> Connection {
    server_with(Config::default())
}

pub(crate) fn client_with(config: Config) -> Connection {
    let mut c = Connection::new(Role::Client, config);
    c.set_mask_source(Box::new(FixedMaskSource(KEY)));
    c
}

fn client() -> Connection {
    client_with(Config::default())
}

/// Polls until more input is needed or an error; returns the events and the error.
pub(crate) fn poll_all(conn: &mut Connection) -> (Vec<Event>, Option<ReadError>) {
    let mut events = Vec::new();
    loop {
        match conn.poll_event() {
            Ok(Some(e)) => events.push(e),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e)),
        }
    }
}

/// Polls until more input is needed, asserting no error.
pub(crate) fn events(conn: &mut Connection) -> Vec<Event> {
    let (events, err) = poll_all(conn);
    assert_eq!(err, None, "after events {events:?}");
    events
}

/// Feeds `wire` cut at `cuts` (ascending; clamped), polling after each piece, through the three
/// input paths in turn (`receive`, `read_buffer`, `receive_owned`). Stops at the first error.
fn feed_chunks(conn: &mut Connection, wire: &[u8], cuts: &[usize]) -> (Vec<Event>, Option<ReadError>) {
    let mut all = Vec::new();
    let mut last = 0;
    for (i, &cut) in cuts.iter().chain(std::iter::once(&wire.len())).enumerate() {
        let cut = cut.clamp(last, wire.len());
        let piece = &wire[last..cut];
        last = cut;
        match i % 3 {
            0 => conn.receive(piece),
            1 => conn.read_buffer().extend_from_slice(piece),
            _ => conn.receive_owned(BytesMut::from(piece)),
        }
        let (events, err) = poll_all(conn);
        all.extend(events);
        if err.is_some() {
            return (all, err);
        }
    }
    (all, None)
}

/// Valid UTF-8 of exactly `len` bytes, mixing 1- to 4-byte code points so that cuts fall inside them.
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

fn message_of(kind: MessageKind, len: usize) -> Message {
    match kind {
        MessageKind::Text => Message::text(text_of_len(len)),
        MessageKind::Binary => Message::binary(binary_of_len(len)),
    }
}

fn opcode_of(kind: MessageKind) -> u8 {
    match kind {
        MessageKind::Text => OP_TEXT,
        MessageKind::Binary => OP_BINARY,
    }
}

fn ping(p: &[u8]) -> Event {
    Event::Ping(Bytes::copy_from_slice(p))
}

// ---- the in-memory pair -----------------------------------------------------------------------

/// A client and a server wired back to back in memory.
struct Pair {
    client: Connection,
    server: Connection,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
    client_error: Option<ReadError>,
    server_error: Option<ReadError>,
    /// Everything each side wrote, in order.
    client_wire: Vec<u8>,
    server_wire: Vec<u8>,
}

impl Pair {
    fn new() -> Self {
        Self::with(Config::default(), Config::default())
    }

    fn with(client: Config, server: Config) -> Self {
        Self {
            client: client_with(client),
            server: server_with(server),
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_error: None,
            server_error: None,
            client_wire: Vec::new(),
            server_wire: Vec::new(),
        }
    }

    fn poll_into(conn: &mut Connection, events: &mut Vec<Event>, error: &mut Option<ReadError>) {
        if error.is_none() {
            let (e, err) = poll_all(conn);
            events.extend(e);
            *error = err;
        }
    }

    /// One round: both sides poll, then each side's output goes to the other. Returns whether
    /// any byte moved.
    fn step(&mut self) -> bool {
        Self::poll_into(&mut self.client, &mut self.client_events, &mut self.client_error);
        Self::poll_into(&mut self.server, &mut self.server_events, &mut self.server_error);
        let c = self.client.take_output();
        let s = self.server.take_output();
        self.server.receive(&c);
        self.client.receive(&s);
        self.client_wire.extend_from_slice(&c);
        self.server_wire.extend_from_slice(&s);
        !c.is_empty() || !s.is_empty()
    }

    /// Shuttles output both ways until both sides are idle.
    fn drive(&mut self) {
        for _ in 0..64 {
            if !self.step() {
                return;
            }
        }
        panic!("the pair never went idle");
    }

    fn take_client_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.client_events)
    }

    fn take_server_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.server_events)
    }
}

#[test]
fn pair_exchanges_messages_both_ways() {
    let mut p = Pair::new();
    p.client.send(Message::text("hi")).unwrap();
    p.server.send(Message::binary(vec![1, 2, 3])).unwrap();
    p.client.send_ping(b"x").unwrap();
    p.drive();
    assert_eq!(
        p.take_server_events(),
        [Event::Message(Message::text("hi")), ping(b"x")]
    );
    assert_eq!(
        p.take_client_events(),
        [
            Event::Message(Message::binary(vec![1, 2, 3])),
            Event::Pong(Bytes::from_static(b"x"))
        ]
    );
    assert_eq!(
        p.client_wire,
        [cf(OP_TEXT, true, b"hi"), cf(OP_PING, true, b"x")].concat()
    );
    assert_eq!(
        p.server_wire,
        [sf(OP_BINARY, true, &[1, 2, 3]), sf(OP_PONG, true, b"x")].concat()
    );
    assert_eq!((p.client.state(), p.server.state()), (State::Open, State::Open));
}

// ---- §5.2/§5.6: chunking × size matrix ----------------------------------------------------------

/// The cut sets for a wire of `len` bytes: whole, split once at every offset (small frames) or
/// at a sample including every header boundary (large frames), and byte by byte.
fn cut_sets(len: usize) -> Vec<Vec<usize>> {
    let mut sets = vec![vec![]];
    if len <= 1024 + 14 {
        sets.extend((1..len).map(|c| vec![c]));
    } else {
        let mut cuts: Vec<usize> = (1..=16).collect();
        cuts.extend([
            100,
            4095,
            4096,
            4097,
            4110,
            len / 3,
            len / 2,
            len - 4,
            len - 3,
            len - 2,
            len - 1,
        ]);
        cuts.extend((1..len).step_by(7919));
        cuts.retain(|&c| c > 0 && c < len);
        cuts.sort_unstable();
        cuts.dedup();
        sets.extend(cuts.into_iter().map(|c| vec![c]));
    }
    sets.push((1..len).collect());
    sets
}

#[test]
fn rfc6455_5_2_every_length_form_survives_any_chunking_both_ways() {
    for size in [0, 1, 125, 126, 127, 4096, 4097, 65535, 65536] {
        for kind in [MessageKind::Text, MessageKind::Binary] {
            let msg = message_of(kind, size);
            let mut c = client();
            c.send(msg.clone()).unwrap();
            let wire = c.take_output();
            assert_eq!(
                wire,
                cf(opcode_of(kind), true, msg.as_bytes()),
                "client encoding of {size}"
            );
            let header_len = match size {
                0..=125 => 2,
                126..=65535 => 4,
                _ => 10,
            };
            assert_eq!(wire.len(), header_len + 4 + size);

            let echo_wire = sf(opcode_of(kind), true, msg.as_bytes());
            for cuts in cut_sets(wire.len()) {
                let mut s = server();
                let (events, err) = feed_chunks(&mut s, &wire, &cuts);
                assert_eq!(
                    err,
                    None,
                    "size {size} {kind:?} cuts {:?}",
                    &cuts[..cuts.len().min(3)]
                );
                assert_eq!(events, [Event::Message(msg.clone())], "size {size} {kind:?}");
                assert_eq!(s.buffered_input(), 0);
                // The server's echo decodes back to the same message on the client.
                s.send(msg.clone()).unwrap();
                let echo = s.take_output();
                assert_eq!(echo, echo_wire, "server encoding of {size}");
                let mut c = client();
                let (events, err) = feed_chunks(&mut c, &echo, &cuts);
                assert_eq!(err, None);
                assert_eq!(
                    events,
                    [Event::Message(msg.clone())],
                    "echo of size {size} {kind:?}"
                );
            }
        }
    }
}

#[test]
fn rfc6455_5_4_fragmented_messages_with_interleaved_pings_reassemble() {
    for kind in [MessageKind::Text, MessageKind::Binary] {
        let msg = message_of(kind, 300);
        let payload = msg.as_bytes().clone();
        for frag in [1, 2, 3, 5, 7, 125, 126, 299, 300, 301] {
            let mut c = client();
            let pieces: Vec<&[u8]> = payload.chunks(frag).collect();
            let mut expected = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                let last = i + 1 == pieces.len();
                c.send_fragment(kind, Bytes::copy_from_slice(piece), last)
                    .unwrap();
                if !last {
                    let p = format!("ping {i}");
                    c.send_ping(p.as_bytes()).unwrap();
                    expected.push(ping(p.as_bytes()));
                }
            }
            expected.push(Event::Message(msg.clone()));
            let wire = c.take_output();
            // Opcode on the first fragment only, FIN on the last only, pings in between.
            let data: Vec<Wire> = parse_wire(&wire)
                .into_iter()
                .filter(|w| w.opcode != OP_PING)
                .collect();
            assert_eq!(data.len(), pieces.len());
            for (i, w) in data.iter().enumerate() {
                assert_eq!(w.opcode, if i == 0 { opcode_of(kind) } else { OP_CONT });
                assert_eq!(w.fin, i + 1 == data.len());
                assert_eq!(w.payload, pieces[i]);
            }
            for cuts in [
                vec![],
                (1..wire.len()).step_by(3).collect(),
                (1..wire.len()).collect(),
            ] {
                let mut s = server();
                let (events, err) = feed_chunks(&mut s, &wire, &cuts);
                assert_eq!(err, None, "{kind:?} fragments of {frag}");
                assert_eq!(events, expected, "{kind:?} fragments of {frag}");
                // Every ping is answered with a pong carrying the same payload, in order.
                let pongs: Vec<Wire> = take_wire(&mut s);
                let want: Vec<Vec<u8>> = (0..pieces.len() - 1)
                    .map(|i| format!("ping {i}").into_bytes())
                    .collect();
                assert!(pongs.iter().all(|w| w.opcode == OP_PONG && w.fin));
                assert_eq!(pongs.into_iter().map(|w| w.payload).collect::<Vec<_>>(), want);
            }
        }
    }
}

#[test]
fn rfc6455_5_4_empty_fragments_are_allowed() {
    let mut s = server();
    let wire = [
        cf(OP_TEXT, false, b""),
        cf(OP_CONT, false, "é".as_bytes()),
        cf(OP_CONT, true, b""),
    ]
    .concat();
    s.receive(&wire);
    assert_eq!(events(&mut s), [Event::Message(Message::text("é"))]);
    let mut s = server();
    s.receive(&[cf(OP_BINARY, false, b""), cf(OP_CONT, true, b"")].concat());
    assert_eq!(events(&mut s), [Event::Message(Message::binary(Vec::new()))]);
}

#[test]
fn rfc6455_8_1_code_point_split_by_fragments_and_a_ping_is_valid() {
    // "€" = e2 82 ac, cut across two fragments with a ping between them.
    let mut s = server();
    let wire = [
        cf(OP_TEXT, false, &[b'a', 0xe2, 0x82]),
        cf(OP_PING, true, b"p"),
        cf(OP_CONT, true, &[0xac, b'b']),
    ]
    .concat();
    s.receive(&wire);
    assert_eq!(events(&mut s), [ping(b"p"), Event::Message(Message::text("a€b"))]);
}

#[test]
fn rfc6455_5_4_server_fragments_reassemble_on_the_client() {
    let mut p = Pair::new();
    p.server
        .send_fragment(MessageKind::Binary, Bytes::from_static(b"ab"), false)
        .unwrap();
    p.server.send_ping(b"!").unwrap();
    p.server
        .send_fragment(MessageKind::Binary, Bytes::from_static(b"cd"), false)
        .unwrap();
    p.server
        .send_fragment(MessageKind::Binary, Bytes::from_static(b"e"), true)
        .unwrap();
    p.drive();
    assert_eq!(
        p.take_client_events(),
        [ping(b"!"), Event::Message(Message::binary(b"abcde".to_vec()))]
    );
    assert_eq!(p.client_wire, cf(OP_PONG, true, b"!"));
}

// ---- hostile peers: §5, §7, §8, §10 -----------------------------------------------------------

/// What a connection did with hostile input.
#[derive(Debug)]
struct Failure {
    /// The events delivered before the error.
    events: Vec<Event>,
    error: ProtocolError,
    /// Every frame written, the last being the close frame.
    out: Vec<Wire>,
}

/// Feeds `input` in one piece and expects the connection to fail with `code`.
fn fail_on(mut conn: Connection, input: &[u8], code: u16) -> Failure {
    conn.receive(input);
    poll_to_failure(conn, code)
}

/// Polls until a protocol error, answering each message with an echo as an application would,
/// then checks RFC 6455 §7.1.7 ("Fail the WebSocket Connection"): the error carries `code`, the
/// output ends with exactly one close frame with that code, and the failure is sticky.
fn poll_to_failure(mut conn: Connection, code: u16) -> Failure {
    let mut events = Vec::new();
    let error = loop {
        match conn.poll_event() {
            Ok(Some(ev)) => {
                if let Event::Message(m) = &ev {
                    conn.send(m.clone()).unwrap();
                }
                events.push(ev);
            }
            Ok(None) => panic!("no error; events {events:?}"),
            Err(ReadError::Protocol(e)) => break e,
            Err(e) => panic!("expected a protocol error, got {e:?}"),
        }
    };
    assert_eq!(error.close_code().as_u16(), code, "{error:?}");
    assert_eq!(conn.error(), Some(&error));
    assert_eq!(conn.state(), State::Closed);
    assert!(!conn.close_expected());
    assert!(
        !conn.should_close_transport(),
        "the close frame is not written yet"
    );
    let out = take_wire(&mut conn);
    let last = out.last().expect("a close frame");
    assert_eq!((last.opcode, last.fin), (OP_CLOSE, true));
    assert_eq!(last.close_code(), Some(code));
    assert_eq!(out.iter().filter(|w| w.opcode == OP_CLOSE).count(), 1);
    assert!(conn.should_close_transport());
    assert_sticky(&mut conn, &error);
    Failure { events, error, out }
}

/// After a failure: polling repeats the error, input is ignored, sending is refused, and nothing
/// more is written.
fn assert_sticky(conn: &mut Connection, error: &ProtocolError) {
    for _ in 0..2 {
        assert_eq!(conn.poll_event(), Err(ReadError::Protocol(error.clone())));
    }
    conn.receive(&cf(OP_TEXT, true, b"more"));
    assert_eq!(conn.buffered_input(), 0);
    assert_eq!(conn.poll_event(), Err(ReadError::Protocol(error.clone())));
    assert_eq!(conn.send(Message::text("x")), Err(SendError::Closed));
    assert_eq!(
        conn.send_fragment(MessageKind::Binary, Bytes::new(), false),
        Err(SendError::Closed)
    );
    assert_eq!(conn.send_ping(b""), Err(SendError::Closed));
    assert_eq!(conn.send_pong(b""), Err(SendError::Closed));
    assert_eq!(conn.send_close(None), Err(SendError::Closed));
    assert!(!conn.wants_write());
}

#[test]
fn rfc6455_5_2_rsv_bits_without_extension_fail_with_1002() {
    for rsv in [0x40u8, 0x20, 0x10, 0x70] {
        for (op, payload) in [
            (OP_TEXT, &b"hi"[..]),
            (OP_BINARY, b"\x00"),
            (OP_PING, b""),
            (OP_CLOSE, b"\x03\xe8"),
        ] {
            let mut f = cf(op, true, payload);
            f[0] |= rsv;
            let fail = fail_on(server(), &f, 1002);
            assert_eq!(fail.error, ProtocolError::ReservedBits);
            assert!(fail.events.is_empty());
        }
        // On a continuation too.
        let mut f = cf(OP_CONT, true, b"b");
        f[0] |= rsv;
        let fail = fail_on(server(), &[cf(OP_TEXT, false, b"a"), f].concat(), 1002);
        assert_eq!(fail.error, ProtocolError::ReservedBits);
    }
    // Via the rsv1 parameter, to a client.
    let fail = fail_on(client(), &frame(OP_TEXT, true, true, None, b"x"), 1002);
    assert_eq!(fail.error, ProtocolError::ReservedBits);
}

#[test]
fn rfc6455_5_2_reserved_opcodes_fail_with_1002() {
    for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
        for (fin, payload) in [(true, &b""[..]), (false, b"data")] {
            let fail = fail_on(server(), &cf(op, fin, payload), 1002);
            assert_eq!(fail.error, ProtocolError::ReservedOpcode(op));
            // The header alone is enough.
            let fail = fail_on(server(), &header(op, fin, false, Some(KEY), 1000), 1002);
            assert_eq!(fail.error, ProtocolError::ReservedOpcode(op));
        }
        let fail = fail_on(client(), &sf(op, true, b""), 1002);
        assert_eq!(fail.error, ProtocolError::ReservedOpcode(op));
    }
}

#[test]
fn rfc6455_5_2_64bit_length_with_msb_set_fails_with_1002() {
    let mut h = vec![0x82, 0xff];
    h.extend_from_slice(&(1u64 << 63).to_be_bytes());
    let fail = fail_on(server(), &h, 1002);
    assert_eq!(fail.error, ProtocolError::LengthTooLarge);
    let mut h = vec![0x82, 0x7f];
    h.extend_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(fail_on(client(), &h, 1002).error, ProtocolError::LengthTooLarge);
}

#[test]
fn rfc6455_5_5_control_frame_over_125_bytes_fails_with_1002() {
    for op in [OP_PING, OP_PONG, OP_CLOSE] {
        let fail = fail_on(server(), &cf(op, true, &[b'a'; 126]), 1002);
        assert_eq!(fail.error, ProtocolError::ControlTooLong(126));
        // Refused on the header, before the payload arrives.
        let fail = fail_on(server(), &header(op, true, false, Some(KEY), 65536), 1002);
        assert_eq!(fail.error, ProtocolError::ControlTooLong(65536));
    }
    // 125 is fine: the pong carries the same 125 bytes.
    let mut s = server();
    s.receive(&cf(OP_PING, true, &[7; 125]));
    assert_eq!(events(&mut s), [ping(&[7; 125])]);
    assert_eq!(s.take_output(), sf(OP_PONG, true, &[7; 125]));
}

#[test]
fn rfc6455_5_5_fragmented_control_frame_fails_with_1002() {
    for op in [OP_PING, OP_PONG, OP_CLOSE] {
        let fail = fail_on(server(), &cf(op, false, b""), 1002);
        assert_eq!(fail.error, ProtocolError::FragmentedControl);
    }
    // Autobahn 5.1/5.2: a fragmented ping followed by its "continuation".
    let fail = fail_on(
        server(),
        &[cf(OP_PING, false, b"frag"), cf(OP_CONT, true, b"ment")].concat(),
        1002,
    );
    assert_eq!(fail.error, ProtocolError::FragmentedControl);
}

#[test]
fn rfc6455_5_1_unmasked_client_frame_to_a_server_fails_with_1002() {
    for op in [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE] {
        let fail = fail_on(server(), &sf(op, true, b""), 1002);
        assert_eq!(fail.error, ProtocolError::UnmaskedFrame);
    }
    // Unless the server was told to accept them.
    let mut s = server_with(Config::default().dangerous_accept_unmasked_frames(true));
    s.receive(&sf(OP_TEXT, true, b"ok"));
    assert_eq!(events(&mut s), [Event::Message(Message::text("ok"))]);
}

#[test]
fn rfc6455_5_1_masked_server_frame_to_a_client_fails_with_1002() {
    for op in [OP_TEXT, OP_BINARY, OP_PONG, OP_CLOSE] {
        let fail = fail_on(client(), &cf(op, true, b""), 1002);
        assert_eq!(fail.error, ProtocolError::MaskedFrame);
    }
    // The client's own setting for servers does not apply to it.
    let c = client_with(Config::default().dangerous_accept_unmasked_frames(true));
    assert_eq!(
        fail_on(c, &cf(OP_TEXT, true, b"x"), 1002).error,
        ProtocolError::MaskedFrame
    );
}

#[test]
fn rfc6455_5_4_continuation_without_start_fails_with_1002() {
    for fin in [true, false] {
        let fail = fail_on(server(), &cf(OP_CONT, fin, b"x"), 1002);
        assert_eq!(fail.error, ProtocolError::UnexpectedContinuation);
    }
    // After a complete message, too; the message is delivered and its echo goes out first.
    let fail = fail_on(
        server(),
        &[cf(OP_TEXT, true, b"done"), cf(OP_CONT, true, b"x")].concat(),
        1002,
    );
    assert_eq!(fail.error, ProtocolError::UnexpectedContinuation);
    assert_eq!(fail.events, [Event::Message(Message::text("done"))]);
    assert_eq!(fail.out[0].payload, b"done");
}

#[test]
fn rfc6455_5_4_new_data_frame_while_fragmented_fails_with_1002() {
    for (first, second) in [
        (OP_TEXT, OP_TEXT),
        (OP_TEXT, OP_BINARY),
        (OP_BINARY, OP_TEXT),
        (OP_BINARY, OP_BINARY),
    ] {
        for fin in [true, false] {
            let input = [cf(first, false, b"a"), cf(second, fin, b"b")].concat();
            let fail = fail_on(server(), &input, 1002);
            assert_eq!(fail.error, ProtocolError::ExpectedContinuation);
            assert!(fail.events.is_empty());
        }
    }
}

#[test]
fn rfc6455_8_1_invalid_utf8_in_a_single_frame_fails_with_1007() {
    // Autobahn 6.3.1 (κόσμε with a surrogate), overlongs, bytes that never occur.
    let bad: [&[u8]; 6] = [
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xff",
        b"ok\xf8\x88\x80\x80\x80",
        b"\xf4\x90\x80\x80",
    ];
    for payload in bad {
        let fail = fail_on(server(), &cf(OP_TEXT, true, payload), 1007);
        assert_eq!(fail.error, ProtocolError::InvalidUtf8);
        let fail = fail_on(client(), &sf(OP_TEXT, true, payload), 1007);
        assert_eq!(fail.error, ProtocolError::InvalidUtf8);
    }
    // The same bytes as binary are fine.
    let mut s = server();
    s.receive(&cf(OP_BINARY, true, b"\xff"));
    assert_eq!(events(&mut s), [Event::Message(Message::binary(vec![0xff]))]);
}

#[test]
fn rfc6455_8_1_invalid_utf8_fails_before_the_frame_is_complete() {
    // Autobahn 6.4.x (strict): the error comes with the first impossible byte, not at the end.
    let mut payload = "κόσμε".as_bytes().to_vec();
    let bad_at = payload.len() + 1; // f4 is a valid prefix; 90 is not (> U+10FFFF)
    payload.extend_from_slice(&[0xf4, 0x90, 0x80, 0x80]);
    payload.extend_from_slice("edited".repeat(50).as_bytes());
    let wire = cf(OP_TEXT, true, &payload);
    let header = 8;

    // Half the frame.
    let mut s = server();
    s.receive(&wire[..wire.len() / 2]);
    let fail = poll_to_failure(s, 1007);
    assert_eq!(fail.error, ProtocolError::InvalidUtf8);

    // Byte by byte: exactly at the impossible byte.
    let mut s = server();
    for (i, b) in wire.iter().enumerate() {
        s.receive(std::slice::from_ref(b));
        match s.poll_event() {
            Ok(None) => assert!(i < header + bad_at, "no error at byte {i}"),
            Err(ReadError::Protocol(ProtocolError::InvalidUtf8)) => {
                assert_eq!(i, header + bad_at);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(s.error(), Some(&ProtocolError::InvalidUtf8));

    // Same inside a continuation that has only partly arrived.
    let mut s = server();
    let cont = cf(OP_CONT, true, &payload);
    s.receive(&cf(OP_TEXT, false, b"fine "));
    s.receive(&cont[..cont.len() / 2]);
    assert_eq!(poll_to_failure(s, 1007).error, ProtocolError::InvalidUtf8);
}

#[test]
fn rfc6455_8_1_invalid_utf8_split_across_fragments_fails_with_1007() {
    // A surrogate (ed a0 80) cut after its first byte: each fragment alone could be valid.
    let first = cf(OP_TEXT, false, &[b'a', 0xed]);
    let second = cf(OP_CONT, true, &[0xa0, 0x80, b'b']);
    let fail = fail_on(server(), &[first.clone(), second.clone()].concat(), 1007);
    assert_eq!(fail.error, ProtocolError::InvalidUtf8);
    // Detected on the first payload byte of the second fragment.
    let mut s = server();
    s.receive(&first);
    assert_eq!(events(&mut s), []);
    s.receive(&second[..6 + 1]);
    assert_eq!(poll_to_failure(s, 1007).error, ProtocolError::InvalidUtf8);
    // With a ping between the fragments: the pong goes out before the close.
    let input = [first, cf(OP_PING, true, b"p"), second].concat();
    let fail = fail_on(server(), &input, 1007);
    assert_eq!(fail.events, [ping(b"p")]);
    assert_eq!(fail.out.len(), 2);
    assert_eq!(
        (fail.out[0].opcode, &fail.out[0].payload[..]),
        (OP_PONG, &b"p"[..])
    );
}

#[test]
fn rfc6455_8_1_text_ending_mid_code_point_fails_with_1007() {
    // "a€" without its last byte.
    let fail = fail_on(server(), &cf(OP_TEXT, true, &[b'a', 0xe2, 0x82]), 1007);
    assert_eq!(fail.error, ProtocolError::InvalidUtf8);
    // Fragmented: the final fragment leaves the code point unfinished.
    let input = [cf(OP_TEXT, false, &[b'a', 0xe2]), cf(OP_CONT, true, &[0x82])].concat();
    assert_eq!(fail_on(server(), &input, 1007).error, ProtocolError::InvalidUtf8);
    // An empty final fragment after an unfinished code point.
    let input = [cf(OP_TEXT, false, &[0xf0, 0x9f]), cf(OP_CONT, true, b"")].concat();
    assert_eq!(fail_on(server(), &input, 1007).error, ProtocolError::InvalidUtf8);
    // An unfinished code point does not leak into the next message.
    let mut s = server();
    s.receive(&[cf(OP_TEXT, true, "é".as_bytes()), cf(OP_TEXT, true, b"x")].concat());
    assert_eq!(
        events(&mut s),
        [
            Event::Message(Message::text("é")),
            Event::Message(Message::text("x"))
        ]
    );
}

#[test]
fn rfc6455_5_5_1_close_payload_of_one_byte_fails_with_1002() {
    let fail = fail_on(server(), &cf(OP_CLOSE, true, &[0x03]), 1002);
    assert_eq!(fail.error, ProtocolError::InvalidClosePayload);
    assert_eq!(
        fail_on(client(), &sf(OP_CLOSE, true, &[0x03]), 1002).error,
        ProtocolError::InvalidClosePayload
    );
}

#[test]
fn rfc6455_7_4_1_invalid_close_codes_fail_with_1002() {
    // Autobahn 7.9.x.
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let fail = fail_on(server(), &cf(OP_CLOSE, true, &close_payload(code, b"")), 1002);
        assert_eq!(fail.error, ProtocolError::InvalidClosePayload, "code {code}");
        assert!(fail.events.is_empty());
    }
}

#[test]
fn rfc6455_5_5_1_close_reason_with_invalid_utf8_fails_with_1007() {
    // Autobahn 7.5.1.
    let payload = close_payload(
        1000,
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    );
    assert_eq!(
        fail_on(server(), &cf(OP_CLOSE, true, &payload), 1007).error,
        ProtocolError::InvalidUtf8
    );
    let payload = close_payload(1000, b"\xe2\x82");
    assert_eq!(
        fail_on(client(), &sf(OP_CLOSE, true, &payload), 1007).error,
        ProtocolError::InvalidUtf8
    );
}

#[test]
fn rfc6455_7_4_1_valid_close_codes_are_echoed() {
    // Autobahn 7.7.x.
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
    ] {
        let mut s = server();
        s.receive(&cf(OP_CLOSE, true, &close_payload(code, "bye ✓".as_bytes())));
        let (events, err) = poll_all(&mut s);
        assert_eq!(events, [Event::Close(Some(CloseFrame::new(code, "bye ✓")))]);
        assert_eq!(err, Some(ReadError::Closed));
        assert_eq!(
            s.take_output(),
            sf(OP_CLOSE, true, &code.to_be_bytes()),
            "echo of {code}"
        );
        assert_eq!(s.state(), State::Closed);
        assert!(s.should_close_transport());

        let mut c = client();
        c.receive(&sf(OP_CLOSE, true, &close_payload(code, b"")));
        assert_eq!(
            events_until_closed(&mut c),
            [Event::Close(Some(CloseFrame::new(code, "")))]
        );
        assert_eq!(c.take_output(), cf(OP_CLOSE, true, &code.to_be_bytes()));
    }
}

/// Polls, expecting the events to end with the peer's close.
fn events_until_closed(conn: &mut Connection) -> Vec<Event> {
    let (events, err) = poll_all(conn);
    assert_eq!(err, Some(ReadError::Closed), "after {events:?}");
    assert!(matches!(events.last(), Some(Event::Close(_))));
    events
}

#[test]
fn rfc6455_5_4_close_between_fragments_is_answered_with_its_code() {
    // Autobahn 5.x: a close may be injected between fragments; it ends the half message.
    let mut s = server();
    s.receive(
        &[
            cf(OP_TEXT, false, b"frag"),
            cf(OP_CLOSE, true, &close_payload(1001, b"away")),
        ]
        .concat(),
    );
    assert_eq!(
        events_until_closed(&mut s),
        [Event::Close(Some(CloseFrame::new(1001, "away")))]
    );
    assert_eq!(s.take_output(), sf(OP_CLOSE, true, &1001u16.to_be_bytes()));
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn rfc6455_7_1_7_messages_before_a_bad_frame_are_delivered_and_answered_first() {
    // Autobahn 5.15: a 2-fragment text, then a continuation with nothing to continue, then
    // text, all in one chop. The first message is echoed; then the close.
    let input = [
        cf(OP_TEXT, false, b"fragment1"),
        cf(OP_CONT, true, b"fragment2"),
        cf(OP_CONT, false, b"fragment3"),
        cf(OP_CONT, true, b"fragment4"),
    ]
    .concat();
    let fail = fail_on(server(), &input, 1002);
    assert_eq!(fail.error, ProtocolError::UnexpectedContinuation);
    assert_eq!(fail.events, [Event::Message(Message::text("fragment1fragment2"))]);
    assert_eq!(fail.out.len(), 2);
    assert_eq!(
        (fail.out[0].opcode, &fail.out[0].payload[..]),
        (OP_TEXT, &b"fragment1fragment2"[..])
    );

    // Autobahn 3.2/4.1.3: text, then a frame with RSV=2 (or opcode 5), then a ping that must
    // not be answered. A ping before the bad frame is answered before the close.
    for bad in [
        {
            let mut f = cf(OP_TEXT, true, b"Hello");
            f[0] |= 0x20;
            f
        },
        cf(5, true, b""),
    ] {
        let input = [
            cf(OP_PING, true, b"p1"),
            cf(OP_TEXT, true, b"Hello"),
            bad,
            cf(OP_PING, true, b"p2"),
        ]
        .concat();
        let fail = fail_on(server(), &input, 1002);
        assert_eq!(fail.events, [ping(b"p1"), Event::Message(Message::text("Hello"))]);
        let ops: Vec<u8> = fail.out.iter().map(|w| w.opcode).collect();
        assert_eq!(ops, [OP_PONG, OP_TEXT, OP_CLOSE]);
        assert_eq!(fail.out[0].payload, b"p1");
        assert_eq!(fail.out[1].payload, b"Hello");
    }
}

#[test]
fn rfc6455_10_4_frame_over_max_frame_size_fails_with_1009_before_the_payload() {
    let config = Config::default().max_frame_size(Some(1000));
    // At the limit: fine.
    let mut s = server_with(config.clone());
    s.receive(&cf(OP_BINARY, true, &[1; 1000]));
    assert_eq!(events(&mut s), [Event::Message(Message::binary(vec![1; 1000]))]);
    // One byte over: refused on the header alone.
    for len in [1001u64, 1 << 40] {
        let mut s = server_with(config.clone());
        s.read_buffer()
            .extend_from_slice(&header(OP_BINARY, true, false, Some(KEY), len));
        let fail = poll_to_failure(s, 1009);
        assert_eq!(
            fail.error,
            ProtocolError::FrameTooLarge {
                size: len,
                limit: 1000
            }
        );
    }
    // Continuations count per frame too.
    let mut s = server_with(config.clone());
    s.receive(&cf(OP_TEXT, false, b"a"));
    s.receive(&header(OP_CONT, true, false, Some(KEY), 1001));
    assert_eq!(
        poll_to_failure(s, 1009).error,
        ProtocolError::FrameTooLarge {
            size: 1001,
            limit: 1000
        }
    );
    // The default limit (16 MiB) against a client.
    let c = client();
    let fail = fail_on(c, &header(OP_BINARY, true, false, None, (16 << 20) + 1), 1009);
    assert!(matches!(fail.error, ProtocolError::FrameTooLarge { .. }));
}

#[test]
fn rfc6455_10_4_message_over_max_message_size_fails_with_1009_before_the_payload() {
    let config = Config::default().max_message_size(Some(1000));
    let mut s = server_with(config.clone());
    s.read_buffer()
        .extend_from_slice(&header(OP_TEXT, true, false, Some(KEY), 1001));
    assert_eq!(s.buffered_input(), 8);
    let fail = poll_to_failure_checking_buffer(s, 1009);
    assert_eq!(
        fail.error,
        ProtocolError::MessageTooLarge {
            size: 1001,
            limit: 1000
        }
    );

    // Fragmented: 600 + ping + 400 fits exactly; 600 + 401 crosses on the second header.
    let mut s = server_with(config.clone());
    s.receive(
        &[
            cf(OP_BINARY, false, &[0; 600]),
            cf(OP_PING, true, b"p"),
            cf(OP_CONT, true, &[0; 400]),
        ]
        .concat(),
    );
    assert_eq!(
        events(&mut s),
        [ping(b"p"), Event::Message(Message::binary(vec![0; 1000]))]
    );
    let mut s = server_with(config.clone());
    s.receive(&[cf(OP_BINARY, false, &[0; 600]), cf(OP_PING, true, b"p")].concat());
    s.receive(&header(OP_CONT, false, false, Some(KEY), 401));
    let fail = poll_to_failure_checking_buffer(s, 1009);
    assert_eq!(
        fail.error,
        ProtocolError::MessageTooLarge {
            size: 1001,
            limit: 1000
        }
    );
    assert_eq!(fail.events, [ping(b"p")]);
    assert_eq!(
        fail.out.iter().map(|w| w.opcode).collect::<Vec<_>>(),
        [OP_PONG, OP_CLOSE]
    );

    // Many small fragments whose sum crosses the limit.
    let mut s = server_with(config.clone());
    for i in 0..10 {
        s.receive(&cf(if i == 0 { OP_TEXT } else { OP_CONT }, false, &[b'a'; 100]));
    }
    s.receive(&header(OP_CONT, true, false, Some(KEY), 1));
    assert!(matches!(
        poll_to_failure(s, 1009).error,
        ProtocolError::MessageTooLarge { size: 1001, .. }
    ));

    // Lowered at run time (gorilla's SetReadLimit).
    let mut s = server();
    s.set_max_message_size(Some(3));
    assert_eq!(
        fail_on(s, &cf(OP_TEXT, true, b"four"), 1009).error,
        ProtocolError::MessageTooLarge { size: 4, limit: 3 }
    );
}

/// [`poll_to_failure`], also checking that the refused payload was never buffered or reserved.
fn poll_to_failure_checking_buffer(mut conn: Connection, code: u16) -> Failure {
    let (events, err) = poll_all(&mut conn);
    assert!(matches!(err, Some(ReadError::Protocol(_))), "{err:?}");
    assert_eq!(conn.buffered_input(), 0);
    let cap = conn.read_buffer().capacity();
    assert!(
        cap <= 2 * Config::default().read_buffer_size,
        "read buffer grew to {cap}"
    );
    let mut fail = poll_to_failure(conn, code);
    fail.events.splice(0..0, events);
    fail
}

#[test]
fn rfc6455_10_4_a_declared_length_alone_does_not_allocate() {
    // Within the limits (none here), a huge declared frame grows the buffer only with the data.
    let config = Config::default().max_frame_size(None).max_message_size(None);
    let mut s = server_with(config);
    s.read_buffer()
        .extend_from_slice(&header(OP_BINARY, true, false, Some(KEY), 1 << 50));
    assert_eq!(s.poll_event(), Ok(None));
    assert!(s.read_buffer().capacity() <= 2 * MIN_GROWTH);
    for _ in 0..64 {
        let buf = s.read_buffer();
        buf.extend_from_slice(&[0; 64 << 10]);
        assert_eq!(s.poll_event(), Ok(None));
        let (len, cap) = (s.buffered_input(), s.read_buffer().capacity());
        // Geometric growth driven by the data (ours, then `BytesMut`'s doubling), never by
        // the declared length.
        assert!(cap <= 4 * (len + MIN_GROWTH), "capacity {cap} for {len} bytes");
    }
}

#[test]
fn rfc6455_7_1_7_errors_are_sticky() {
    let mut s = server();
    s.receive(&cf(OP_CONT, true, b""));
    let err = s.poll_event().unwrap_err();
    assert_eq!(err, ReadError::Protocol(ProtocolError::UnexpectedContinuation));
    let out = s.take_output();
    assert_sticky(&mut s, &ProtocolError::UnexpectedContinuation);
    // EOF after the failure does not change the error.
    s.receive_eof();
    assert_eq!(s.poll_event(), Err(err));
    assert_eq!(parse_wire(&out).len(), 1);
    assert!(s.should_close_transport());
}

#[test]
fn rfc6455_5_5_1_no_second_close_frame_when_failing_after_our_close() {
    // We sent a close; while waiting for the reply, the peer breaks the protocol. Only one
    // close frame may ever be sent.
    let mut s = server();
    s.send_close(Some(CloseFrame::new(1001, "shutdown"))).unwrap();
    assert_eq!(
        s.take_output(),
        sf(OP_CLOSE, true, &close_payload(1001, b"shutdown"))
    );
    s.receive(&sf(OP_TEXT, true, b"unmasked"));
    assert_eq!(
        s.poll_event(),
        Err(ReadError::Protocol(ProtocolError::UnmaskedFrame))
    );
    assert_eq!(s.take_output(), []);
    assert_eq!(s.state(), State::Closed);
    assert!(s.should_close_transport());
}

// ---- §7: the close handshake --------------------------------------------------------------------

#[test]
fn rfc6455_7_1_2_client_initiated_close() {
    let mut c = client();
    let mut s = server();
    assert_eq!((c.state(), s.state()), (State::Open, State::Open));
    c.send_close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "bye")))
        .unwrap();
    assert_eq!(c.state(), State::Closing);
    assert!(c.close_expected());
    assert!(!c.should_close_transport());
    let wire = c.take_output();
    assert_eq!(wire, cf(OP_CLOSE, true, &close_payload(1000, b"bye")));

    s.receive(&wire);
    assert_eq!(
        events_until_closed(&mut s),
        [Event::Close(Some(CloseFrame::new(1000, "bye")))]
    );
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.close_received(), Some(&Some(CloseFrame::new(1000, "bye"))));
    assert!(!s.close_expected());
    assert!(!s.should_close_transport(), "the reply is not written yet");
    let reply = s.take_output();
    assert_eq!(reply, sf(OP_CLOSE, true, &[0x03, 0xe8]));
    assert!(
        s.should_close_transport(),
        "RFC 6455 §7.1.1: the server closes the TCP first"
    );

    c.receive(&reply);
    assert_eq!(
        events_until_closed(&mut c),
        [Event::Close(Some(CloseFrame::new(1000, "")))]
    );
    assert_eq!(c.state(), State::Closed);
    assert!(!c.close_expected());
    assert!(c.should_close_transport());
    assert_eq!(c.take_output(), [], "no second close frame");
    // Neither side may send anything more.
    for conn in [&mut c, &mut s] {
        assert_eq!(conn.send(Message::text("late")), Err(SendError::Closed));
        assert_eq!(conn.send_close(None), Err(SendError::Closed));
    }
}

#[test]
fn rfc6455_7_1_2_server_initiated_close() {
    let mut p = Pair::new();
    p.server
        .send_close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "restart")))
        .unwrap();
    assert_eq!(
        (p.server.state(), p.server.close_expected()),
        (State::Closing, true)
    );
    p.drive();
    assert_eq!(
        p.take_client_events(),
        [Event::Close(Some(CloseFrame::new(1001, "restart")))]
    );
    assert_eq!(
        p.take_server_events(),
        [Event::Close(Some(CloseFrame::new(1001, "")))]
    );
    assert_eq!(
        p.server_wire,
        sf(OP_CLOSE, true, &close_payload(1001, b"restart"))
    );
    assert_eq!(p.client_wire, cf(OP_CLOSE, true, &[0x03, 0xe9]));
    for conn in [&p.client, &p.server] {
        assert_eq!(conn.state(), State::Closed);
        assert!(conn.should_close_transport());
        assert!(!conn.close_expected());
    }
    assert_eq!(p.client_error, Some(ReadError::Closed));
}

#[test]
fn rfc6455_7_1_3_simultaneous_close() {
    let mut p = Pair::new();
    p.client.send_close(Some(CloseFrame::new(1000, "c"))).unwrap();
    p.server.send_close(Some(CloseFrame::new(1001, "s"))).unwrap();
    assert!(p.client.close_expected() && p.server.close_expected());
    p.drive();
    assert_eq!(
        p.take_client_events(),
        [Event::Close(Some(CloseFrame::new(1001, "s")))]
    );
    assert_eq!(
        p.take_server_events(),
        [Event::Close(Some(CloseFrame::new(1000, "c")))]
    );
    // Each side sent exactly its own close frame.
    assert_eq!(p.client_wire, cf(OP_CLOSE, true, &close_payload(1000, b"c")));
    assert_eq!(p.server_wire, sf(OP_CLOSE, true, &close_payload(1001, b"s")));
    assert_eq!(
        (p.client.state(), p.server.state()),
        (State::Closed, State::Closed)
    );
    assert!(p.client.should_close_transport() && p.server.should_close_transport());
}

#[test]
fn rfc6455_7_1_5_close_without_status_is_echoed_empty() {
    let mut p = Pair::new();
    p.client.send_close(None).unwrap();
    p.drive();
    assert_eq!(p.client_wire, cf(OP_CLOSE, true, b""));
    assert_eq!(p.client_wire, [0x88, 0x80, 0x37, 0xfa, 0x21, 0x3d]);
    assert_eq!(p.server_wire, [0x88, 0x00]);
    assert_eq!(p.take_server_events(), [Event::Close(None)]);
    assert_eq!(p.take_client_events(), [Event::Close(None)]);
    assert_eq!(p.server.close_received(), Some(&None));
    assert_eq!(p.client.close_sent(), Some(&None));
    assert_eq!(
        (p.client.state(), p.server.state()),
        (State::Closed, State::Closed)
    );
}

#[test]
fn rfc6455_7_1_2_data_before_the_peer_close_is_delivered() {
    // After we sent a close, the peer may still be sending data: it is delivered.
    let mut p = Pair::new();
    p.server.send_close(Some(CloseFrame::new(1000, ""))).unwrap();
    p.client.send(Message::text("in flight")).unwrap();
    p.drive();
    assert_eq!(
        p.take_server_events(),
        [
            Event::Message(Message::text("in flight")),
            Event::Close(Some(CloseFrame::new(1000, "")))
        ]
    );
    assert_eq!(p.server.state(), State::Closed);
}

#[test]
fn rfc6455_5_5_1_data_after_a_received_close_is_ignored() {
    let mut s = server();
    s.receive(
        &[
            cf(OP_CLOSE, true, &close_payload(1000, b"")),
            cf(OP_TEXT, true, b"after"),
            cf(OP_PING, true, b""),
        ]
        .concat(),
    );
    assert_eq!(
        events_until_closed(&mut s),
        [Event::Close(Some(CloseFrame::new(1000, "")))]
    );
    assert_eq!(s.buffered_input(), 0);
    s.receive(&cf(OP_TEXT, true, b"later"));
    s.receive(&[0xff; 3]); // not even a valid frame
    assert_eq!(s.buffered_input(), 0);
    assert_eq!(s.poll_event(), Err(ReadError::Closed));
    assert_eq!(
        s.take_output(),
        sf(OP_CLOSE, true, &[0x03, 0xe8]),
        "only the close reply; no pong"
    );
    // EOF afterwards is not abnormal.
    s.receive_eof();
    assert_eq!(s.poll_event(), Err(ReadError::Closed));
}

#[test]
fn rfc6455_5_5_1_no_data_after_sending_close() {
    let mut c = client();
    c.send_close(Some(CloseFrame::new(1000, ""))).unwrap();
    c.take_output();
    assert_eq!(c.send(Message::text("x")), Err(SendError::Closed));
    assert_eq!(
        c.send_fragment(MessageKind::Text, Bytes::new(), true),
        Err(SendError::Closed)
    );
    assert_eq!(c.send_ping(b""), Err(SendError::Closed));
    assert_eq!(c.send_pong(b""), Err(SendError::Closed));
    assert_eq!(c.send_close(None), Err(SendError::Closed));
    assert_eq!(c.take_output(), []);
    // A ping received while closing is reported but not answered.
    c.receive(&sf(OP_PING, true, b"?"));
    assert_eq!(events(&mut c), [ping(b"?")]);
    assert_eq!(c.take_output(), []);
    assert!(c.close_expected());
}

#[test]
fn rfc6455_7_4_1_unsendable_close_codes_are_refused() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let mut s = server();
        assert_eq!(
            s.send_close(Some(CloseFrame::new(code, ""))),
            Err(SendError::InvalidCloseCode(code))
        );
        assert_eq!(s.take_output(), []);
        assert_eq!(s.state(), State::Open);
        // Still usable.
        s.send_close(Some(CloseFrame::new(1000, ""))).unwrap();
        assert_eq!(s.state(), State::Closing);
    }
}

#[test]
fn rfc6455_5_5_close_reason_is_cut_to_123_bytes_on_a_char_boundary() {
    for (reason, want) in [
        ("é".repeat(100), 122),
        ("a".repeat(200), MAX_REASON_LEN),
        ("€".repeat(41), 123),
    ] {
        let mut p = Pair::new();
        p.client
            .send_close(Some(CloseFrame::new(1000, reason.clone())))
            .unwrap();
        p.drive();
        let sent = parse_wire(&p.client_wire);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].payload.len(), 2 + want);
        assert!(sent[0].payload.len() <= 125);
        let Event::Close(Some(got)) = &p.take_server_events()[0] else {
            panic!()
        };
        assert_eq!(got.reason, reason[..want]);
    }
    // The same applies to `fail`.
    let mut s = server();
    s.fail(CloseCode::POLICY_VIOLATION, &"ü".repeat(70));
    let out = take_wire(&mut s);
    assert_eq!(out[0].payload.len(), 2 + 122);
}

#[test]
fn rfc6455_7_1_5_eof_without_close_is_an_abnormal_closure() {
    let mut s = server();
    s.receive(&cf(OP_TEXT, true, b"last"));
    s.receive_eof();
    assert!(s.is_eof());
    let (events, err) = poll_all(&mut s);
    assert_eq!(events, [Event::Message(Message::text("last"))]);
    assert_eq!(err, Some(ReadError::AbnormalClosure));
    assert_eq!(s.poll_event(), Err(ReadError::AbnormalClosure));
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.take_output(), [], "no close frame to a transport that is gone");
    assert!(s.should_close_transport());
    assert_eq!(s.send(Message::text("x")), Err(SendError::Closed));
    assert_eq!(s.send_close(None), Err(SendError::Closed));
}

#[test]
fn rfc6455_7_1_5_eof_mid_frame_is_an_abnormal_closure() {
    let wire = cf(OP_BINARY, true, &[9; 300]);
    for cut in [1, 2, 3, 4, 7, 8, 9, 150, wire.len() - 1] {
        let mut s = server();
        s.receive(&wire[..cut]);
        assert_eq!(s.poll_event(), Ok(None));
        s.receive_eof();
        assert_eq!(s.poll_event(), Err(ReadError::AbnormalClosure), "cut {cut}");
        assert_eq!(s.buffered_input(), 0);
        assert_eq!(s.state(), State::Closed);
    }
    // Also while closing: our close sent, no reply.
    let mut c = client();
    c.send_close(None).unwrap();
    c.receive_eof();
    assert_eq!(c.poll_event(), Err(ReadError::AbnormalClosure));
    assert!(!c.close_expected());
}

#[test]
fn rfc6455_5_5_1_auto_close_reply_off_leaves_the_reply_to_the_application() {
    let mut s = server_with(Config::default().auto_close_reply(false));
    s.receive(&cf(OP_CLOSE, true, &close_payload(4000, b"app")));
    assert_eq!(
        events_until_closed(&mut s),
        [Event::Close(Some(CloseFrame::new(4000, "app")))]
    );
    assert_eq!(s.take_output(), []);
    assert_eq!(s.state(), State::Closing);
    assert!(!s.close_expected(), "we are not waiting for anything");
    assert!(!s.should_close_transport());
    s.send(Message::text("last words")).unwrap();
    s.send_close(Some(CloseFrame::new(4001, "done"))).unwrap();
    assert_eq!(
        s.take_output(),
        [
            sf(OP_TEXT, true, b"last words"),
            sf(OP_CLOSE, true, &close_payload(4001, b"done"))
        ]
        .concat()
    );
    assert_eq!(s.state(), State::Closed);
    assert!(s.should_close_transport());
    // set_auto_close_reply at run time.
    let mut c = client();
    c.set_auto_close_reply(false);
    c.receive(&sf(OP_CLOSE, true, b""));
    events_until_closed(&mut c);
    assert_eq!(c.take_output(), []);
}

#[test]
fn rfc6455_5_5_2_auto_pong_off_sends_no_pong() {
    let mut s = server_with(Config::default().auto_pong(false));
    s.receive(&cf(OP_PING, true, b"hb"));
    assert_eq!(events(&mut s), [ping(b"hb")]);
    assert_eq!(s.take_output(), []);
    s.send_pong(b"hb").unwrap();
    assert_eq!(s.take_output(), sf(OP_PONG, true, b"hb"));
    // Back on at run time.
    s.set_auto_pong(true);
    s.receive(&cf(OP_PING, true, b""));
    assert_eq!(events(&mut s), [ping(b"")]);
    assert_eq!(s.take_output(), [0x8a, 0x00]);
}

#[test]
fn rfc6455_5_5_3_unsolicited_pong_is_reported_and_not_answered() {
    let mut s = server();
    s.receive(&cf(OP_PONG, true, b"beat"));
    assert_eq!(events(&mut s), [Event::Pong(Bytes::from_static(b"beat"))]);
    assert_eq!(s.take_output(), []);
}

#[test]
fn rfc6455_7_1_7_application_fail_sends_its_code_and_stops_reading() {
    let mut s = server();
    s.receive(&cf(OP_TEXT, true, b"unread"));
    s.fail(CloseCode::POLICY_VIOLATION, "no");
    assert_eq!(s.take_output(), sf(OP_CLOSE, true, &close_payload(1008, b"no")));
    assert_eq!(s.state(), State::Closed);
    assert!(s.should_close_transport());
    assert_eq!(s.buffered_input(), 0);
    assert_eq!(s.poll_event(), Err(ReadError::Closed));
    s.receive(&cf(OP_TEXT, true, b"more"));
    assert_eq!(s.buffered_input(), 0);
    assert_eq!(s.send(Message::text("x")), Err(SendError::Closed));
    assert_eq!(s.send_close(None), Err(SendError::Closed));
    // An unsendable code becomes 1002.
    let mut c = client();
    c.fail(CloseCode::ABNORMAL_CLOSURE, "");
    assert_eq!(c.take_output(), cf(OP_CLOSE, true, &[0x03, 0xea]));
    // After our close, fail sends nothing more.
    let mut s = server();
    s.send_close(None).unwrap();
    s.take_output();
    s.fail(CloseCode::INTERNAL_ERROR, "x");
    assert_eq!(s.take_output(), []);
    assert_eq!(s.state(), State::Closed);
}

// ---- output -------------------------------------------------------------------------------------

#[test]
fn rfc6455_5_7_client_frames_are_masked_with_the_mask_source_key() {
    // "A single-frame masked text message".
    let mut c = client();
    c.send(Message::text("Hello")).unwrap();
    assert_eq!(
        c.take_output(),
        [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    );
    // "Unmasked Ping request and masked Ping response" (our pong to a server ping).
    c.receive(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(events(&mut c), [ping(b"Hello")]);
    assert_eq!(
        c.take_output(),
        [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    );
    // Every frame takes a fresh key from the source.
    struct Counting(u8);
    impl crate::mask::MaskSource for Counting {
        fn next_key(&mut self) -> Result<[u8; 4], crate::mask::RandomnessError> {
            self.0 += 1;
            Ok([self.0, 0, 0, self.0])
        }
    }
    let mut c = Connection::new(Role::Client, Config::default());
    c.set_mask_source(Box::new(Counting(0)));
    c.send(Message::binary(vec![0; 3])).unwrap();
    c.send_ping(b"").unwrap();
    c.send_close(None).unwrap();
    let keys: Vec<_> = parse_wire(&c.take_output()).into_iter().map(|w| w.mask).collect();
    assert_eq!(keys, [Some([1, 0, 0, 1]), Some([2, 0, 0, 2]), Some([3, 0, 0, 3])]);
}

/// A mask source that answers from a script (`false`: the OS generator failed), then fails.
struct Scripted(std::collections::VecDeque<bool>);

impl crate::mask::MaskSource for Scripted {
    fn next_key(&mut self) -> Result<[u8; 4], crate::mask::RandomnessError> {
        match self.0.pop_front() {
            Some(true) => Ok(KEY),
            _ => Err(crate::mask::RandomnessError::new("injected failure")),
        }
    }
}

fn client_with_keys(script: &[bool]) -> Connection {
    let mut c = Connection::new(Role::Client, Config::default());
    c.set_mask_source(Box::new(Scripted(script.iter().copied().collect())));
    c
}

#[test]
fn rfc6455_5_3_a_client_without_a_mask_key_sends_nothing_and_ends() {
    // The generator fails for the data frame and again for the close frame: nothing unmasked
    // may go out, so nothing goes out at all (the peer will see 1006).
    let mut c = client_with_keys(&[]);
    let err = c.send(Message::text("hi")).unwrap_err();
    assert!(matches!(err, SendError::Randomness(_)), "{err:?}");
    assert_eq!(c.take_output(), []);
    assert_eq!(c.close_sent(), None);
    assert_eq!(c.state(), State::Closed);
    assert!(c.should_close_transport());
    let (events, err) = poll_all(&mut c);
    assert_eq!(events, []);
    assert!(matches!(err, Some(ReadError::Randomness(_))), "{err:?}");
    // Sticky, and no further send is possible.
    assert!(matches!(c.poll_event(), Err(ReadError::Randomness(_))));
    assert_eq!(c.send_ping(b""), Err(SendError::Closed));
    assert_eq!(c.send_close(None), Err(SendError::Closed));
}

#[test]
fn rfc6455_5_3_a_client_that_recovers_one_key_closes_with_1011() {
    // Key for the first message, none for the second, one more for the close frame.
    let mut c = client_with_keys(&[true, false, true]);
    c.send(Message::text("one")).unwrap();
    assert!(matches!(
        c.send(Message::text("two")),
        Err(SendError::Randomness(_))
    ));
    let wire = take_wire(&mut c);
    assert_eq!(wire.len(), 2, "{wire:?}");
    assert_eq!(wire[0].payload, b"one");
    assert_eq!(wire[1].close_code(), Some(1011));
    assert_eq!(&wire[1].payload[2..], b"no randomness for a mask key");
    assert_eq!(c.state(), State::Closed);
    assert!(matches!(poll_all(&mut c).1, Some(ReadError::Randomness(_))));
}

#[test]
fn rfc6455_5_3_frames_the_core_sends_itself_fail_the_same_way() {
    // Auto-pong: the ping is reported, then the connection has ended.
    let mut c = client_with_keys(&[]);
    c.receive(&sf(OP_PING, true, b"x"));
    let (events, err) = poll_all(&mut c);
    assert_eq!(events, [ping(b"x")]);
    assert!(matches!(err, Some(ReadError::Randomness(_))), "{err:?}");
    assert_eq!(c.take_output(), []);
    // Close reply: the close is reported, then the missing key.
    let mut c = client_with_keys(&[]);
    c.receive(&sf(OP_CLOSE, true, &close_payload(1000, b"")));
    let (events, err) = poll_all(&mut c);
    assert_eq!(events, [Event::Close(Some(CloseFrame::new(1000, "")))]);
    assert!(matches!(err, Some(ReadError::Randomness(_))), "{err:?}");
    assert_eq!(c.close_sent(), None);
    assert_eq!(c.state(), State::Closed);
    // A protocol error stays the reason even when its close frame cannot be masked.
    let mut c = client_with_keys(&[]);
    c.receive(&sf(OP_TEXT, true, b"\xff"));
    let (_, err) = poll_all(&mut c);
    assert_eq!(err, Some(ReadError::Protocol(ProtocolError::InvalidUtf8)));
    assert_eq!(c.take_output(), []);
}

#[test]
fn rfc6455_5_7_server_length_forms() {
    let mut s = server();
    s.send(Message::text("Hello")).unwrap();
    assert_eq!(s.take_output(), [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    s.send(Message::binary(vec![0; 256])).unwrap();
    assert_eq!(s.take_output()[..4], [0x82, 0x7e, 0x01, 0x00]);
    s.send(Message::binary(vec![0; 65536])).unwrap();
    assert_eq!(s.take_output()[..10], [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
}

#[test]
fn output_server_payload_over_4096_bytes_is_queued_without_copy() {
    let payload = Bytes::from(binary_of_len(5000));
    let mut s = server();
    s.send(Message::binary(b"small".to_vec())).unwrap();
    s.send(Message::Binary(payload.clone())).unwrap();
    s.send_ping(b"after").unwrap();
    {
        let mut slots = [IoSlice::new(&[]); 8];
        let n = s.pending_output(&mut slots);
        assert!(n > 1, "{n} slices");
        assert_eq!(n, 3);
        assert_eq!(
            &*slots[0],
            [sf(OP_BINARY, true, b"small"), vec![0x82, 0x7e, 0x13, 0x88]].concat()
        );
        assert_eq!(slots[1].as_ptr(), payload.as_ptr(), "the payload was copied");
        assert_eq!(&*slots[1], &payload[..]);
        assert_eq!(&*slots[2], sf(OP_PING, true, b"after"));
        assert_eq!(s.pending_output_first(), &*slots[0]);
    }
    assert_eq!(s.pending_output_len(), 7 + 4 + 5000 + 7);
    assert_eq!(
        s.take_output(),
        [
            sf(OP_BINARY, true, b"small"),
            sf(OP_BINARY, true, &payload),
            sf(OP_PING, true, b"after")
        ]
        .concat()
    );
    // At the threshold the payload is copied next to its header; a client always copies.
    let mut s = server();
    s.send(Message::binary(vec![0; COPY_THRESHOLD])).unwrap();
    let mut slots = [IoSlice::new(&[]); 8];
    assert_eq!(s.pending_output(&mut slots), 1);
    let mut c = client();
    c.send(Message::Binary(payload.clone())).unwrap();
    let mut slots = [IoSlice::new(&[]); 8];
    assert_eq!(c.pending_output(&mut slots), 1);
    assert_eq!(&*slots[0], cf(OP_BINARY, true, &payload));
}

#[test]
fn rfc6455_5_5_control_payload_over_125_bytes_is_refused_on_send() {
    let mut s = server();
    assert_eq!(s.send_ping(&[0; 126]), Err(SendError::ControlTooLong(126)));
    assert_eq!(s.send_pong(&[0; 200]), Err(SendError::ControlTooLong(200)));
    assert_eq!(s.take_output(), []);
    s.send_ping(&[1; 125]).unwrap();
    assert_eq!(s.take_output(), sf(OP_PING, true, &[1; 125]));
}

#[test]
fn rfc6455_5_4_send_fragment_sets_opcode_first_and_fin_last() {
    // RFC 6455 §5.7: "A fragmented unmasked text message".
    let mut s = server();
    s.send_fragment(MessageKind::Text, Bytes::from_static(b"Hel"), false)
        .unwrap();
    s.send_fragment(MessageKind::Text, Bytes::from_static(b"lo"), true)
        .unwrap();
    assert_eq!(
        s.take_output(),
        [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
    );
    // Three binary fragments with a ping between (control frames may be interleaved).
    s.send_fragment(MessageKind::Binary, Bytes::from_static(b"a"), false)
        .unwrap();
    s.send_ping(b"p").unwrap();
    s.send_fragment(MessageKind::Binary, Bytes::from_static(b"b"), false)
        .unwrap();
    s.send_fragment(MessageKind::Binary, Bytes::from_static(b"c"), true)
        .unwrap();
    assert_eq!(
        s.take_output(),
        [
            sf(OP_BINARY, false, b"a"),
            sf(OP_PING, true, b"p"),
            sf(OP_CONT, false, b"b"),
            sf(OP_CONT, true, b"c")
        ]
        .concat()
    );
    // Large fragments go out without copy and keep their order.
    let big = Bytes::from(binary_of_len(5000));
    s.send_fragment(MessageKind::Binary, big.clone(), false).unwrap();
    s.send_fragment(MessageKind::Binary, big.clone(), true).unwrap();
    assert_eq!(
        s.take_output(),
        [sf(OP_BINARY, false, &big), sf(OP_CONT, true, &big)].concat()
    );
}

#[test]
fn rfc6455_5_4_new_message_while_one_is_in_progress_is_refused() {
    let mut s = server();
    s.send_fragment(MessageKind::Text, Bytes::from_static(b"part"), false)
        .unwrap();
    assert_eq!(
        s.send(Message::text("interloper")),
        Err(SendError::MessageInProgress)
    );
    assert_eq!(
        s.send_raw_frame(Bytes::from(sf(OP_TEXT, true, b"raw"))),
        Err(SendError::MessageInProgress)
    );
    // `send_fragment` cannot tell a new message from a continuation: its `kind` is ignored
    // after the first fragment (documented), so this continues the text message.
    s.send_fragment(MessageKind::Binary, Bytes::from_static(b"!"), true)
        .unwrap();
    assert_eq!(
        s.take_output(),
        [sf(OP_TEXT, false, b"part"), sf(OP_CONT, true, b"!")].concat()
    );
    // Afterwards, whole messages go through again.
    s.send(Message::text("next")).unwrap();
    assert_eq!(s.take_output(), sf(OP_TEXT, true, b"next"));
}

#[test]
fn output_partial_writes_keep_the_order() {
    let build = || {
        let mut s = server();
        s.send(Message::text("a")).unwrap();
        s.send(Message::binary(binary_of_len(5000))).unwrap();
        s.send_ping(b"p").unwrap();
        s.send(Message::binary(binary_of_len(10_000))).unwrap();
        s.send(Message::text("end")).unwrap();
        s
    };
    let mut expected = build().take_output();
    expected.extend(sf(OP_TEXT, true, b"late"));
    for write_size in [1, 2, 3, 7, 100, 4095, 4096, 5003, 100_000] {
        for slots_len in [1, 2, 8] {
            let mut s = build();
            let mut written = Vec::new();
            let mut late_sent = false;
            while s.wants_write() {
                let took = {
                    let mut slots = vec![IoSlice::new(&[]); slots_len];
                    let n = s.pending_output(&mut slots);
                    assert!(n > 0);
                    let mut budget = write_size;
                    for sl in &slots[..n] {
                        let k = sl.len().min(budget);
                        written.extend_from_slice(&sl[..k]);
                        budget -= k;
                        if budget == 0 {
                            break;
                        }
                    }
                    write_size - budget
                };
                s.advance_output(took);
                if !late_sent && written.len() > expected.len() / 2 {
                    // More output queued mid-write goes after everything already queued.
                    s.send(Message::text("late")).unwrap();
                    late_sent = true;
                }
                assert_eq!(
                    s.pending_output_len() + written.len(),
                    expected.len() - if late_sent { 0 } else { 6 }
                );
            }
            assert!(late_sent);
            assert_eq!(
                written, expected,
                "writes of {write_size} into {slots_len} slices"
            );
        }
    }
    // Through pending_output_first only.
    let mut s = build();
    let mut written = Vec::new();
    while s.wants_write() {
        let first = s.pending_output_first();
        let k = first.len().min(777);
        written.extend_from_slice(&first[..k]);
        s.advance_output(k);
    }
    assert_eq!(written, expected[..expected.len() - 6]);
}

// ---- property tests -----------------------------------------------------------------------------

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        "\\PC{0,200}".prop_map(Message::text),
        prop::collection::vec(any::<u8>(), 0..1500).prop_map(Message::binary),
    ]
}

/// Sorted cut positions in `0..=len` from arbitrary indices.
fn cuts_of(indices: &[Index], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = indices.iter().map(|i| i.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

/// A plausible frame: mostly valid opcodes, masks as the receiver expects, few RSV bits, text
/// that is mostly UTF-8 and close payloads with valid and invalid codes.
fn arb_frame(receiver: Role) -> impl Strategy<Value = Vec<u8>> {
    let opcode = prop_oneof![8 => prop::sample::select(vec![0u8, 1, 2, 8, 9, 10]), 1 => 0u8..16];
    let payload = prop_oneof![
        3 => "\\PC{0,40}".prop_map(String::into_bytes),
        2 => prop::collection::vec(any::<u8>(), 0..40),
        1 => (prop::sample::select(vec![1000u16, 1001, 1002, 1005, 1006, 3000, 4999, 5000, 0]), "\\PC{0,10}")
            .prop_map(|(c, r)| close_payload(c, r.as_bytes())),
        1 => prop::collection::vec(any::<u8>(), 100..300),
    ];
    let rsv = prop_oneof![9 => Just(0u8), 1 => 0u8..8];
    (
        prop::bool::weighted(0.7),
        rsv,
        opcode,
        prop::bool::weighted(0.95),
        any::<[u8; 4]>(),
        payload,
    )
        .prop_map(move |(fin, rsv, op, mask_ok, key, payload)| {
            let masked = (receiver == Role::Server) == mask_ok;
            let mut f = frame(op, fin, false, masked.then_some(key), &payload);
            f[0] |= rsv << 4;
            f
        })
}

fn arb_input(receiver: Role) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (prop::collection::vec(arb_frame(receiver), 0..10), prop::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(frames, tail)| [frames.concat(), tail].concat()),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ]
}

/// Feeds arbitrary input and checks that only documented results come out.
fn check_hostile(
    role: Role,
    config: Config,
    input: &[u8],
    cuts: &[usize],
    eof: bool,
) -> Result<(), TestCaseError> {
    let max = config.max_message_size;
    let mut conn = match role {
        Role::Server => server_with(config),
        Role::Client => client_with(config),
    };
    let (mut events, mut error) = feed_chunks(&mut conn, input, cuts);
    if error.is_none() && eof {
        conn.receive_eof();
        let (more, err) = poll_all(&mut conn);
        events.extend(more);
        error = err;
        prop_assert!(error.is_some());
    }
    let closed = match events.iter().position(|e| matches!(e, Event::Close(_))) {
        Some(i) => {
            prop_assert_eq!(i + 1, events.len(), "no event after the close");
            true
        }
        None => false,
    };
    match &error {
        None => prop_assert_eq!(conn.state(), State::Open),
        Some(ReadError::Closed) => prop_assert!(closed),
        Some(ReadError::AbnormalClosure) => prop_assert!(eof && !closed),
        Some(ReadError::Protocol(e)) => {
            prop_assert!(!closed);
            prop_assert_eq!(conn.poll_event(), Err(ReadError::Protocol(e.clone())));
        }
        // No timer runs here: this test never calls handle_timeout.
        Some(ReadError::TimedOut(t)) => prop_assert!(false, "timer {t:?} fired without handle_timeout"),
        // The fixed mask source never fails.
        Some(ReadError::Randomness(e)) => prop_assert!(false, "mask source failed: {e}"),
        // No other arm: a new `ReadError` variant must be added here (exhaustive in-crate).
    }
    for e in &events {
        if let (Event::Message(m), Some(max)) = (e, max) {
            prop_assert!(m.len() <= max);
        }
    }
    let out = take_wire(&mut conn);
    prop_assert!(
        out.iter()
            .all(|w| w.fin && matches!(w.opcode, OP_PONG | OP_CLOSE))
    );
    // One pong per ping, same payload, in order.
    let pongs: Vec<&[u8]> = out
        .iter()
        .filter(|w| w.opcode == OP_PONG)
        .map(|w| &w.payload[..])
        .collect();
    let pings: Vec<&[u8]> = events
        .iter()
        .filter_map(|e| {
            if let Event::Ping(p) = e {
                Some(&p[..])
            } else {
                None
            }
        })
        .collect();
    prop_assert_eq!(pongs, pings);
    let closes = out.iter().filter(|w| w.opcode == OP_CLOSE).count();
    match (&error, events.last()) {
        (Some(ReadError::Protocol(e)), _) => {
            let last = out.last().unwrap();
            let code = last.close_code().unwrap();
            prop_assert_eq!(last.opcode, OP_CLOSE);
            prop_assert!(matches!(code, 1002 | 1007 | 1009), "code {}", code);
            prop_assert_eq!(code, e.close_code().as_u16());
            prop_assert_eq!(closes, 1);
        }
        (_, Some(Event::Close(frame))) => {
            prop_assert_eq!(closes, 1);
            prop_assert_eq!(
                out.last().unwrap().close_code(),
                frame.as_ref().map(|f| f.code.as_u16())
            );
        }
        _ => prop_assert_eq!(closes, 0),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn prop_rfc6455_5_4_any_fragmentation_and_chunking_reassembles(
        msg in arb_message(),
        from_client: bool,
        frag_cuts in prop::collection::vec(any::<Index>(), 0..8),
        pings in prop::collection::vec(any::<bool>(), 8),
        wire_cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let (mut sender, mut receiver) = if from_client { (client(), server()) } else { (server(), client()) };
        let payload = msg.as_bytes().clone();
        let cuts = cuts_of(&frag_cuts, payload.len());
        let bounds: Vec<usize> = std::iter::once(0).chain(cuts).chain(std::iter::once(payload.len())).collect();
        let mut expected = Vec::new();
        for (i, w) in bounds.windows(2).enumerate() {
            let last = i + 2 == bounds.len();
            sender.send_fragment(msg.kind(), payload.slice(w[0]..w[1]), last).unwrap();
            if !last && pings[i] {
                sender.send_ping(&[i as u8]).unwrap();
                expected.push(ping(&[i as u8]));
            }
        }
        expected.push(Event::Message(msg.clone()));
        let wire = sender.take_output();
        let (events, err) = feed_chunks(&mut receiver, &wire, &cuts_of(&wire_cuts, wire.len()));
        prop_assert_eq!(err, None);
        prop_assert_eq!(events, expected);
        prop_assert_eq!(receiver.buffered_input(), 0);
    }

    #[test]
    fn prop_rfc6455_7_1_7_arbitrary_bytes_to_a_server_never_panic(
        input in arb_input(Role::Server),
        cuts in prop::collection::vec(any::<Index>(), 0..10),
        small_limits: bool,
        eof: bool,
    ) {
        let config = if small_limits {
            Config::default().max_frame_size(Some(100)).max_message_size(Some(150))
        } else {
            Config::default()
        };
        check_hostile(Role::Server, config, &input, &cuts_of(&cuts, input.len()), eof)?;
    }

    #[test]
    fn prop_rfc6455_7_1_7_arbitrary_bytes_to_a_client_never_panic(
        input in arb_input(Role::Client),
        cuts in prop::collection::vec(any::<Index>(), 0..10),
        small_limits: bool,
        eof: bool,
    ) {
        let config = if small_limits {
            Config::default().max_frame_size(Some(100)).max_message_size(Some(150))
        } else {
            Config::default()
        };
        check_hostile(Role::Client, config, &input, &cuts_of(&cuts, input.len()), eof)?;
    }
}

// ---- lending buffers (release_idle_buffers / give_read_buffer / give_write_buffer) ----------

/// Appends `wire` to the connection's read buffer, as a transport read would.
fn read_in(conn: &mut Connection, wire: &[u8]) {
    conn.read_buffer().extend_from_slice(wire);
}

#[test]
fn an_idle_connection_hands_back_both_buffers_and_reuses_lent_ones() {
    let mut conn = server();
    read_in(&mut conn, &frame(OP_TEXT, true, false, Some(KEY), b"hello"));
    assert_eq!(
        conn.poll_event(),
        Ok(Some(Event::Message(Message::text("hello"))))
    );
    conn.send(Message::text("hello")).unwrap();
    assert!(conn.poll_event().unwrap().is_none());
    // Output queued: the write buffer stays.
    let idle = conn.release_idle_buffers();
    assert!(idle.read.is_some(), "the empty read buffer is handed back");
    assert!(idle.write.is_none(), "queued output keeps its buffer");
    assert_eq!(conn.take_output(), sf(OP_TEXT, true, b"hello"));
    let idle = conn.release_idle_buffers();
    let write = idle.write.expect("the drained write buffer is handed back");
    assert!(
        idle.read.is_none(),
        "the connection holds no read buffer any more"
    );
    assert!(write.capacity() > 0 && write.is_empty());

    // Lent back, the buffers are used, and not handed back while the connection holds its own.
    let read = BytesMut::with_capacity(64 << 10);
    let read_ptr = read.as_ptr();
    assert!(conn.give_read_buffer(read).is_none());
    assert!(conn.give_read_buffer(BytesMut::with_capacity(10)).is_some());
    assert_eq!(
        conn.read_buffer().as_ptr(),
        read_ptr,
        "reads go into the lent buffer"
    );
    assert!(conn.give_write_buffer(write).is_none());
    assert!(conn.give_write_buffer(BytesMut::with_capacity(10)).is_some());
}

#[test]
fn a_partial_frame_tail_moves_out_so_the_big_buffer_can_be_lent() {
    let mut conn = server();
    let wire = frame(OP_BINARY, true, false, Some(KEY), &binary_of_len(300));
    // The first message whole and 100 bytes of the next: the tail stays, in a buffer its size.
    let mut first = frame(OP_TEXT, true, false, Some(KEY), b"one");
    first.extend_from_slice(&wire[..100]);
    read_in(&mut conn, &first);
    assert_eq!(conn.poll_event(), Ok(Some(Event::Message(Message::text("one")))));
    assert!(conn.poll_event().unwrap().is_none());
    let idle = conn.release_idle_buffers();
    assert!(
        idle.read.is_some_and(|b| b.capacity() > 60_000),
        "the big buffer is handed back"
    );
    // The rest arrives in a lent buffer: the tail moves into it and the frame completes.
    assert!(conn.give_read_buffer(BytesMut::with_capacity(64 << 10)).is_none());
    read_in(&mut conn, &wire[100..]);
    assert_eq!(
        conn.poll_event(),
        Ok(Some(Event::Message(Message::binary(binary_of_len(300)))))
    );
}

#[test]
fn a_partial_frame_longer_than_the_tail_limit_keeps_its_buffer() {
    let mut conn = server();
    let payload = binary_of_len(10_000);
    let wire = frame(OP_BINARY, true, false, Some(KEY), &payload);
    read_in(&mut conn, &wire[..6000]);
    assert!(conn.poll_event().unwrap().is_none());
    let idle = conn.release_idle_buffers();
    assert!(
        idle.read.is_none(),
        "5,992 bytes of payload are more than a tail: no copy"
    );
    assert!(conn.give_read_buffer(BytesMut::with_capacity(64 << 10)).is_some());
    read_in(&mut conn, &wire[6000..]);
    assert_eq!(
        conn.poll_event(),
        Ok(Some(Event::Message(Message::binary(payload))))
    );
}

#[test]
fn the_keepalive_ping_sheds_the_idle_compressor_and_context_takeover_survives() {
    use crate::extensions::deflate::negotiate_server;
    use crate::{DeflateConfig, Keepalive, parse_extensions};
    use std::time::{Duration, Instant};
    let cfg = DeflateConfig::default();
    let offers = parse_extensions(["permessage-deflate"]).unwrap();
    let (params, _) = negotiate_server(&offers, &cfg).unwrap();
    let second = Duration::from_secs(1);
    let keepalive = Config::default().keepalive(Some(Keepalive::new(10 * second, 5 * second)));
    let mut s = Connection::new(Role::Server, keepalive);
    s.enable_deflate(&params, &cfg);
    let mut c = Connection::new(Role::Client, Config::default());
    c.enable_deflate(&params, &cfg);
    // Letters from a small generator: barely compressible on their own (and shorter than the
    // 4 KiB history the codec keeps).
    let mut x = 7u32;
    let text: String = (0..2000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + (x >> 16) as u8 % 26)
        })
        .collect();
    let t0 = Instant::now();
    s.handle_timeout(t0);

    s.send(Message::text(text.clone())).unwrap();
    let first = s.take_output();
    c.read_buffer().extend_from_slice(&first);
    assert_eq!(
        c.poll_event(),
        Ok(Some(Event::Message(Message::text(text.clone()))))
    );
    assert!(
        s.deflate.as_ref().unwrap().holds().0,
        "a compressor after sending"
    );

    s.handle_timeout(t0 + 10 * second); // a silent interval: ping, and shed
    assert!(
        !s.deflate.as_ref().unwrap().holds().0,
        "the idle compressor is gone"
    );
    c.read_buffer().extend_from_slice(&s.take_output());
    assert!(matches!(c.poll_event(), Ok(Some(Event::Ping(_)))));

    // The same text again: still decodable by a peer that kept its context, and far
    // smaller than the first time (it refers back into what was sent).
    s.send(Message::text(text.clone())).unwrap();
    let again = s.take_output();
    assert!(
        again.len() < first.len() / 4,
        "{} vs {} bytes",
        again.len(),
        first.len()
    );
    c.read_buffer().extend_from_slice(&again);
    assert_eq!(c.poll_event(), Ok(Some(Event::Message(Message::text(text)))));
}
