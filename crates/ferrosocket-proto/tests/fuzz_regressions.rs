//! Replays of inputs the fuzzers (`fuzz/`, `cargo xtask fuzz`) found, through the public API.
//! Each test names the file in `fuzz/regressions/` it comes from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrosocket_proto::extensions::deflate::{DeflateConfig, DeflateParams};
use ferrosocket_proto::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use ferrosocket_proto::{Config, Connection, Event, Message, ProtocolError, ReadError, Role};

/// A client with permessage-deflate (context takeover, 15-bit windows) and `limit`.
fn deflate_client(limit: usize) -> Connection {
    let mut conn = Connection::new(
        Role::Client,
        Config::default()
            .max_message_size(Some(limit))
            .max_frame_size(None),
    );
    let params = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    conn.enable_deflate(&params, &DeflateConfig::default());
    conn
}

/// An unmasked (server-to-client) compressed binary frame.
fn compressed_frame(payload: &[u8]) -> Vec<u8> {
    let mut h = FrameHeader::new(OpCode::Binary, true, payload.len() as u64);
    h.rsv1 = true;
    let mut buf = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut buf);
    let mut wire = buf[..n].to_vec();
    wire.extend_from_slice(payload);
    wire
}

fn binary(event: Result<Option<Event>, ReadError>) -> Vec<u8> {
    match event {
        Ok(Some(Event::Message(Message::Binary(b)))) => b.to_vec(),
        other => panic!("expected a binary message, got {other:?}"),
    }
}

/// The RFC 7692 "Hello" with BFINAL set, then the usual "Hello": two deflate streams in one
/// message.
const BFINAL_THEN_MORE: [u8; 14] = [
    0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00,
];

/// fuzz/regressions/inflate-1: after a BFINAL block the inflater restarted on the message's
/// first byte (zlib's reset zeroes `total_in`), inflating "Hello" over and over until the
/// 1 MiB limit failed the connection with 1009.
#[test]
fn inflate_1_bfinal_block_then_more_data() {
    let mut client = deflate_client(1 << 20);
    client.receive(&compressed_frame(&BFINAL_THEN_MORE));
    assert_eq!(binary(client.poll_event()), b"HelloHello");
}

/// The same input as the second message of a connection: the position arithmetic underflowed
/// (a panic in debug builds; in release the rest of the frame was silently dropped).
#[test]
fn inflate_1_bfinal_block_in_a_later_message() {
    let mut client = deflate_client(1 << 20);
    client.receive(&compressed_frame(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]));
    assert_eq!(binary(client.poll_event()), b"Hello");
    client.receive(&compressed_frame(&BFINAL_THEN_MORE));
    assert_eq!(binary(client.poll_event()), b"HelloHello");
    client.receive(&compressed_frame(&[0xf2, 0x00, 0x11, 0x00, 0x00]));
    assert_eq!(binary(client.poll_event()), b"Hello");
}

/// fuzz/regressions/inflate-2 (3 MiB of zeros, deflated, against a 2.5 MiB limit): `Vec::reserve`
/// doubled the inflate buffer from 2 to 4 MiB and zlib filled it, so 3 MiB were inflated and
/// held before the limit check, against the documented "limit plus one growth step (at most
/// 1 MiB)". The inflater now stops one byte past the limit.
#[test]
fn inflate_2_never_inflates_past_the_limit() {
    use flate2::{Compress, Compression, FlushCompress};
    let mut c = Compress::new(Compression::default(), false);
    let zeros = vec![0u8; 3 << 20];
    let mut payload = Vec::with_capacity(8 << 10);
    c.compress_vec(&zeros, &mut payload, FlushCompress::Sync).unwrap();
    assert!(payload.len() < 8 << 10 && payload.ends_with(&[0, 0, 0xff, 0xff]));
    payload.truncate(payload.len() - 4);

    let limit = 5 << 19; // 2.5 MiB
    let mut client = deflate_client(limit);
    client.receive(&compressed_frame(&payload));
    match client.poll_event() {
        Err(ReadError::Protocol(ProtocolError::MessageTooLarge { size, limit: l })) => {
            assert_eq!(l, limit);
            assert_eq!(
                size,
                limit as u64 + 1,
                "inflated {size} bytes for a limit of {limit}"
            );
        }
        other => panic!("expected 1009, got {other:?}"),
    }
    let close = client.take_output();
    assert_eq!(close[0], 0x88, "a close frame went out");
}

/// A server and a client that agreed on permessage-deflate with `params`; the server compresses
/// every message (threshold 0).
fn deflate_pair(params: &DeflateParams) -> (Connection, Connection) {
    let mut server = Connection::new(Role::Server, Config::default());
    server.enable_deflate(params, &DeflateConfig::default().threshold(0));
    let mut client = Connection::new(Role::Client, Config::default());
    client.enable_deflate(params, &DeflateConfig::default());
    (server, client)
}

fn text(event: Result<Option<Event>, ReadError>) -> String {
    match event {
        Ok(Some(Event::Message(Message::Text(t)))) => t.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// fuzz/regressions/connection_server-1: a server echoing three empty text messages with
/// compression on (threshold 0, context takeover). zlib emits nothing for a sync flush right
/// after another one, so the second empty message went out as an empty compressed payload,
/// which is not a valid RFC 7692 message (it must end in an empty stored block before the tail
/// is removed): the peer failed with 1007 "invalid stored block lengths".
#[test]
fn connection_server_1_empty_compressed_messages() {
    let params = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: true,
        server_max_window_bits: 12,
        client_max_window_bits: 9,
    };
    let (mut server, mut client) = deflate_pair(&params);
    for _ in 0..3 {
        server.send(Message::text("")).unwrap();
        client.receive(&server.take_output());
        assert_eq!(text(client.poll_event()), "");
    }
    server.send(Message::text("after")).unwrap();
    client.receive(&server.take_output());
    assert_eq!(text(client.poll_event()), "after");
}

/// The same flaw with the default threshold: a streamed message whose last fragment is empty
/// (the usual way to end a stream of unknown length) was undecodable.
#[test]
fn connection_server_1_empty_last_fragment() {
    use ferrosocket_proto::MessageKind;
    let params = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let mut server = Connection::new(Role::Server, Config::default());
    server.enable_deflate(&params, &DeflateConfig::default());
    let mut client = Connection::new(Role::Client, Config::default());
    client.enable_deflate(&params, &DeflateConfig::default());
    for _ in 0..2 {
        server
            .send_fragment(MessageKind::Text, "streamed ".repeat(10).into(), false)
            .unwrap();
        server
            .send_fragment(MessageKind::Text, bytes_empty(), true)
            .unwrap();
        client.receive(&server.take_output());
        assert_eq!(text(client.poll_event()), "streamed ".repeat(10));
    }
}

fn bytes_empty() -> bytes::Bytes {
    bytes::Bytes::new()
}
