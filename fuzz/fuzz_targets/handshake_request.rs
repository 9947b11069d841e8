//! Bytes -> `parse_request` (cut in two at a point the first byte picks) ->
//! `ServerHandshake::validate` with subprotocols ["a", "b"] and permessage-deflate on.
//!
//! Invariants: never panics; the split does not change the outcome; an accepted request gets a
//! 101 whose single Sec-WebSocket-Accept is `accept_key` of the request's single key, whose
//! subprotocol was offered, whose extension answer is a valid permessage-deflate response, and
//! which survives `write_to` + `parse_response`; a rejection's status matches its error and its
//! default response parses.
#![no_main]

use bytes::BytesMut;
use ferrosocket_proto::DeflateConfig;
use ferrosocket_proto::fuzzing::negotiate_client;
use ferrosocket_proto::{parse_request, parse_response};
use ferrosocket_proto::ServerHandshake;
use ferrosocket_proto::{Limits, accept_key, header_tokens};
use ferrosocket_fuzz::http::{limits, parse_split};
use http::header::{SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else { return };
    let limits = limits(selector);
    let (result, _rest) = parse_split(data, selector, &limits, parse_request, |a, b| {
        a.method() == b.method() && a.uri() == b.uri() && a.version() == b.version() && a.headers() == b.headers()
    });
    let Ok(Some(req)) = result else { return };
    let (parts, ()) = req.into_parts();
    let server = ServerHandshake::new()
        .subprotocols(["a", "b"])
        .deflate(Some(DeflateConfig::default()));
    match server.validate(&parts) {
        Ok(accepted) => {
            let resp = &accepted.response;
            assert_eq!(resp.status(), 101);
            let keys: Vec<_> = parts.headers.get_all(SEC_WEBSOCKET_KEY).iter().collect();
            assert_eq!(keys.len(), 1, "accepted without exactly one key");
            let accepts: Vec<_> = resp.headers().get_all(SEC_WEBSOCKET_ACCEPT).iter().collect();
            assert_eq!(accepts.len(), 1);
            assert_eq!(
                accepts[0].as_bytes(),
                accept_key(keys[0].as_bytes().trim_ascii()).as_bytes(),
                "wrong Sec-WebSocket-Accept"
            );
            if let Some(p) = resp.headers().get(SEC_WEBSOCKET_PROTOCOL) {
                let offered: Vec<&str> = parts
                    .headers
                    .get_all(SEC_WEBSOCKET_PROTOCOL)
                    .iter()
                    .flat_map(header_tokens)
                    .collect();
                let p = p.to_str().expect("ascii");
                assert!(["a", "b"].contains(&p) && offered.contains(&p));
                assert_eq!(accepted.negotiated.subprotocol.as_deref(), Some(p));
            }
            let ext = resp.headers().get(SEC_WEBSOCKET_EXTENSIONS);
            assert_eq!(ext.is_some(), accepted.negotiated.deflate.is_some());
            if let Some(ext) = ext {
                let params = accepted.negotiated.deflate.expect("params");
                assert!((8..=15).contains(&params.server_max_window_bits));
                assert!((8..=15).contains(&params.client_max_window_bits));
                // A client that offered everything accepts the answer and agrees on it.
                let client = DeflateConfig::default().client_max_window_bits(15);
                if let Ok(Some(p)) = negotiate_client([ext.to_str().expect("ascii")], &client) {
                    assert_eq!(p.server_max_window_bits, params.server_max_window_bits);
                    assert_eq!(p.server_no_context_takeover, params.server_no_context_takeover);
                }
            }
            let mut wire = Vec::new();
            accepted.write_to(&mut wire);
            let mut buf = BytesMut::from(&wire[..]);
            let back = parse_response(&mut buf, &Limits::default())
                .expect("our 101 parses")
                .expect("our 101 is complete");
            assert!(buf.is_empty());
            assert_eq!(back.status(), 101);
            assert_eq!(back.headers(), resp.headers());
        }
        Err(rejection) => {
            assert_eq!(rejection.status, rejection.error.status());
            let mut wire = Vec::new();
            rejection.write_default_response(&mut wire);
            let mut buf = BytesMut::from(&wire[..]);
            let back = parse_response(&mut buf, &Limits::default())
                .expect("our rejection parses")
                .expect("our rejection is complete");
            assert_eq!(back.status(), rejection.status);
        }
    }
});
