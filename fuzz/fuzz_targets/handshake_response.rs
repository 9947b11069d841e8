//! Bytes -> `parse_response` (cut in two at a point the first byte picks) ->
//! `ClientHandshake::verify` for a request with a fixed nonce offering subprotocols "a", "b"
//! and permessage-deflate (one of two configurations).
//!
//! Invariants: never panics; the split does not change the outcome; an accepted response is a
//! 101 with the right Sec-WebSocket-Accept, an offered subprotocol, and deflate parameters
//! within 8..=15 that honour the offer and actually work: a message compressed by each side
//! with them inflates on the other.
#![no_main]

use ferrosocket_proto::DeflateConfig;
use ferrosocket_proto::{ClientHandshake, request_from_url};
use ferrosocket_proto::parse_response;
use ferrosocket_proto::{accept_key, generate_key};
use ferrosocket_proto::fuzzing::FixedMaskSource;
use ferrosocket_proto::{Config, Connection, Event, Message, Role};
use ferrosocket_fuzz::http::{limits, parse_split};
use http::HeaderValue;
use http::header::SEC_WEBSOCKET_ACCEPT;
use libfuzzer_sys::fuzz_target;

const NONCE: [u8; 16] = *b"the sample nonce";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else { return };
    let limits = limits(selector);
    let (result, _rest) = parse_split(data, selector, &limits, parse_response, |a, b| {
        a.status() == b.status() && a.version() == b.version() && a.headers() == b.headers()
    });
    let Ok(Some(resp)) = result else { return };

    let mut req = request_from_url("ws://example.com/chat").expect("url");
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("a, b"));
    let (mut hs, mut req) = ClientHandshake::new(req, NONCE).expect("request");
    let cfg = if data.len() % 2 == 0 {
        DeflateConfig::default()
    } else {
        DeflateConfig::default()
            .server_no_context_takeover(true)
            .server_max_window_bits(10)
            .client_max_window_bits(9)
    };
    hs.offer_deflate(cfg.clone(), &mut req);
    assert_eq!(hs.key(), generate_key(NONCE));

    let Ok(neg) = hs.verify(&resp) else { return };
    assert_eq!(resp.status(), 101);
    let accepts: Vec<_> = resp.headers().get_all(SEC_WEBSOCKET_ACCEPT).iter().collect();
    assert_eq!(accepts.len(), 1);
    assert_eq!(accepts[0].as_bytes().trim_ascii(), accept_key(hs.key().as_bytes()).as_bytes());
    if let Some(p) = &neg.subprotocol {
        assert!(p == "a" || p == "b", "unoffered subprotocol {p:?}");
    }
    if let Some(p) = neg.deflate {
        assert!(neg.extensions.is_some());
        assert!((8..=15).contains(&p.server_max_window_bits));
        assert!((8..=15).contains(&p.client_max_window_bits));
        assert!(p.server_max_window_bits <= cfg.server_max_window_bits);
        assert!(p.client_max_window_bits <= cfg.client_max_window_bits);
        assert!(p.server_no_context_takeover || !cfg.server_no_context_takeover);

        // The agreed parameters work: each side's compressed message inflates on the other.
        let mut client = Connection::new(Role::Client, Config::default());
        client.set_mask_source(Box::new(FixedMaskSource([9, 8, 7, 6])));
        let mut server = Connection::new(Role::Server, Config::default());
        client.enable_deflate(&p, &cfg);
        server.enable_deflate(&p, &DeflateConfig::default());
        let text = "permessage-deflate round trip ".repeat(20);
        for round in 0..4 {
            let (from, to) = if round % 2 == 0 {
                (&mut client, &mut server)
            } else {
                (&mut server, &mut client)
            };
            from.send(Message::text(text.as_str())).expect("send");
            let wire = from.take_output();
            assert!(wire[0] & 0x40 != 0, "message not compressed");
            to.receive(&wire);
            match to.poll_event() {
                Ok(Some(Event::Message(m))) => assert_eq!(m.as_text(), Some(text.as_str())),
                other => panic!("negotiated parameters do not work: {other:?} with {p:?}"),
            }
        }
    }
});
