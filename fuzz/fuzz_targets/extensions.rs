//! Bytes as UTF-8 (one header line per `\n`) -> `parse_extensions` -> `negotiate_server` under
//! several server configurations.
//!
//! Invariants: never panics; an accepted offer yields window bits in 8..=15 that honour the
//! server's configuration, a response that is a valid header value, the first acceptable offer
//! is the one chosen, and the response round-trips: `negotiate_client`, configured as the
//! chosen offer was, accepts it and agrees on exactly the same parameters.
#![no_main]

use ferrosocket_proto::DeflateConfig;
use ferrosocket_proto::fuzzing::{negotiate_client, negotiate_server};
use ferrosocket_proto::{ExtensionOffer, parse_extensions};
use libfuzzer_sys::fuzz_target;

/// The configuration of a client that sent `offer`.
fn client_config(offer: &ExtensionOffer) -> DeflateConfig {
    let mut cfg = DeflateConfig::default();
    for (name, value) in &offer.params {
        let bits = value.as_deref().and_then(|v| v.parse::<u8>().ok());
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => cfg = cfg.server_no_context_takeover(true),
            "client_no_context_takeover" => cfg = cfg.client_no_context_takeover(true),
            "server_max_window_bits" => cfg = cfg.server_max_window_bits(bits.expect("checked")),
            "client_max_window_bits" => cfg = cfg.client_max_window_bits(bits.unwrap_or(15)),
            other => panic!("accepted an offer with parameter {other:?}"),
        }
    }
    cfg
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(offers) = parse_extensions(text.split('\n')) else { return };
    for o in &offers {
        assert!(!o.name.is_empty());
    }
    let configs = [
        DeflateConfig::default(),
        DeflateConfig::default()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true),
        DeflateConfig::default().server_max_window_bits(10),
        DeflateConfig::default().client_max_window_bits(9),
        DeflateConfig::default()
            .server_max_window_bits(8)
            .client_max_window_bits(8)
            .low_memory(true),
    ];
    for cfg in &configs {
        let Some((params, header)) = negotiate_server(&offers, cfg) else { continue };
        assert!((8..=15).contains(&params.server_max_window_bits));
        assert!((8..=15).contains(&params.client_max_window_bits));
        assert!(params.server_max_window_bits <= cfg.server_max_window_bits);
        assert!(params.client_max_window_bits <= cfg.client_max_window_bits);
        assert!(params.server_no_context_takeover || !cfg.server_no_context_takeover);
        assert!(params.client_no_context_takeover || !cfg.client_no_context_takeover);
        assert!(http::HeaderValue::try_from(header.as_str()).is_ok(), "{header:?}");

        let chosen = offers
            .iter()
            .find(|o| negotiate_server(std::slice::from_ref(*o), cfg).is_some())
            .expect("some offer was accepted");
        assert_eq!(
            negotiate_server(std::slice::from_ref(chosen), cfg),
            Some((params, header.clone())),
            "not the first acceptable offer"
        );
        let client = client_config(chosen);
        match negotiate_client([header.as_str()], &client) {
            Ok(Some(p)) => assert_eq!(p, params, "server and client disagree on {header:?} for {chosen:?}"),
            other => panic!("client rejects {header:?} for its offer {chosen:?}: {other:?}"),
        }
    }
});
