//! permessage-deflate (RFC 7692) test suite: negotiation (§7.1), the codec (§7.2) and the
//! connection's use of it (§6: RSV1, limits, UTF-8). Each test is named after the section it
//! checks.
//!
//! The independent checks here ([`inflate_raw`], a small RFC 1951 inflater that enforces a
//! window size, and [`zero_bomb`], a hand-built deflate stream) share no code with zlib, so
//! a zlib quirk cannot hide behind a matching zlib quirk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::extensions::parse_extensions;
use crate::handshake::HandshakeError;
use crate::handshake::client::ClientHandshake;
use crate::handshake::server::ServerHandshake;
use crate::test_wire::{KEY, Wire, frame, parse_wire};
use crate::{Config, Connection, Event, Message, MessageKind, ReadError, Role, SendError};
use bytes::Bytes;
use proptest::prelude::*;
use std::time::Instant;

// ---- helpers: negotiation -------------------------------------------------------------------

fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: sbits,
        client_max_window_bits: cbits,
    }
}

const DEFAULT: DeflateParams = DeflateParams {
    server_no_context_takeover: false,
    client_no_context_takeover: false,
    server_max_window_bits: 15,
    client_max_window_bits: 15,
};

/// The server's answer to these `Sec-WebSocket-Extensions` request lines.
fn server_with(cfg: &DeflateConfig, lines: &[&str]) -> Option<(DeflateParams, String)> {
    let offers = parse_extensions(lines.iter().copied()).expect("offer syntax");
    negotiate_server(&offers, cfg)
}

fn server(lines: &[&str]) -> Option<(DeflateParams, String)> {
    server_with(&DeflateConfig::default(), lines)
}

/// The response element the server sends for one offer, `None` if declined.
fn answer(offer: &str) -> Option<String> {
    server(&[offer]).map(|(_, h)| h)
}

fn client(cfg: &DeflateConfig, response: &[&str]) -> Result<Option<DeflateParams>, DeflateNegotiationError> {
    negotiate_client(response.iter().copied(), cfg)
}

/// Malformed permessage-deflate offers: each must be declined on its own.
const MALFORMED_OFFERS: &[&str] = &[
    "permessage-deflate; foo",
    "permessage-deflate; foo=1",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
    "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
    "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=0",
    "permessage-deflate; server_max_window_bits=256",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; server_max_window_bits=08",
    "permessage-deflate; server_max_window_bits=+9",
    "permessage-deflate; server_max_window_bits=9a",
    "permessage-deflate; server_max_window_bits=\"09\"",
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; client_max_window_bits=010",
    "permessage-deflate; client_max_window_bits=+10",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; client_no_context_takeover=true",
    "permessage-deflate; server_max_window_bits",
];

// ---- §7.1 negotiation: the server ---------------------------------------------------------

#[test]
fn rfc7692_7_no_parameters() {
    assert_eq!(
        server(&["permessage-deflate"]),
        Some((DEFAULT, "permessage-deflate".to_string()))
    );
    // Other extensions before it are skipped; names compare case-insensitively.
    assert_eq!(
        answer("x-webkit-deflate-frame, Permessage-Deflate").as_deref(),
        Some("permessage-deflate")
    );
    assert_eq!(server(&["x-webkit-deflate-frame"]), None);
    assert_eq!(server(&[]), None);
}

#[test]
fn rfc7692_7_1_1_1_server_no_context_takeover() {
    let (p, h) = server(&["permessage-deflate; server_no_context_takeover"]).unwrap();
    assert_eq!(p, params(true, false, 15, 15));
    assert_eq!(h, "permessage-deflate; server_no_context_takeover");
    // The parameter takes no value.
    assert_eq!(answer("permessage-deflate; server_no_context_takeover=1"), None);
    assert_eq!(
        answer("permessage-deflate; server_no_context_takeover=\"x\""),
        None
    );
    // §7.1.1.1: a server may add it on its own.
    let cfg = DeflateConfig::default().server_no_context_takeover(true);
    let (p, h) = server_with(&cfg, &["permessage-deflate"]).unwrap();
    assert_eq!(p, params(true, false, 15, 15));
    assert_eq!(h, "permessage-deflate; server_no_context_takeover");
}

#[test]
fn rfc7692_7_1_1_2_client_no_context_takeover() {
    let (p, h) = server(&["permessage-deflate; client_no_context_takeover"]).unwrap();
    assert_eq!(p, params(false, true, 15, 15));
    assert_eq!(h, "permessage-deflate; client_no_context_takeover");
    assert_eq!(answer("permessage-deflate; client_no_context_takeover=1"), None);
    // §7.1.1.2: a server may require it even if the offer did not have it.
    let cfg = DeflateConfig::default().client_no_context_takeover(true);
    let (p, h) = server_with(&cfg, &["permessage-deflate"]).unwrap();
    assert_eq!(p, params(false, true, 15, 15));
    assert_eq!(h, "permessage-deflate; client_no_context_takeover");
}

#[test]
fn rfc7692_7_1_2_1_server_max_window_bits() {
    for bits in 8..=15u8 {
        let offer = format!("permessage-deflate; server_max_window_bits={bits}");
        let (p, h) = server(&[&offer]).unwrap();
        assert_eq!(p, params(false, false, bits, 15));
        // Accepting it means echoing it with the same or a smaller value.
        assert_eq!(h, offer);
        // Quoted-string form (RFC 6455 §9.1) is the same value.
        let quoted = format!("permessage-deflate; server_max_window_bits=\"{bits}\"");
        assert_eq!(server(&[&quoted]).unwrap().0, p);
    }
    // It has no valueless form, and only 8..15 without leading zeros.
    for v in ["", "=7", "=16", "=0", "=08", "=010", "=+9", "=9a", "=1O"] {
        assert_eq!(
            answer(&format!("permessage-deflate; server_max_window_bits{v}")),
            None,
            "{v}"
        );
    }
    // A server capping its own window: the smaller of offer and config, always announced.
    let cfg = DeflateConfig::default().server_max_window_bits(10);
    let cases = [
        ("permessage-deflate", 10),
        ("permessage-deflate; server_max_window_bits=12", 10),
        ("permessage-deflate; server_max_window_bits=9", 9),
    ];
    for (offer, bits) in cases {
        let (p, h) = server_with(&cfg, &[offer]).unwrap();
        assert_eq!(p, params(false, false, bits, 15), "{offer}");
        assert_eq!(
            h,
            format!("permessage-deflate; server_max_window_bits={bits}"),
            "{offer}"
        );
    }
}

#[test]
fn rfc7692_7_1_2_2_client_max_window_bits() {
    // Without a value: accepted, and with the default config not echoed.
    let (p, h) = server(&["permessage-deflate; client_max_window_bits"]).unwrap();
    assert_eq!(p, DEFAULT);
    assert_eq!(h, "permessage-deflate");
    for bits in 8..=15u8 {
        let offer = format!("permessage-deflate; client_max_window_bits={bits}");
        let (p, h) = server(&[&offer]).unwrap();
        assert_eq!(p, params(false, false, 15, bits));
        assert_eq!(h, offer);
    }
    for v in ["=7", "=16", "=0", "=08", "=+10"] {
        assert_eq!(
            answer(&format!("permessage-deflate; client_max_window_bits{v}")),
            None,
            "{v}"
        );
    }
    // A server that wants a smaller client window says so when the client allows it...
    let cfg = DeflateConfig::default().client_max_window_bits(10);
    let cases = [
        ("permessage-deflate; client_max_window_bits", 10),
        ("permessage-deflate; client_max_window_bits=12", 10),
        ("permessage-deflate; client_max_window_bits=9", 9),
    ];
    for (offer, bits) in cases {
        let (p, h) = server_with(&cfg, &[offer]).unwrap();
        assert_eq!(p, params(false, false, 15, bits), "{offer}");
        assert_eq!(
            h,
            format!("permessage-deflate; client_max_window_bits={bits}"),
            "{offer}"
        );
    }
    // ...and declines an offer without the parameter: the response MUST NOT carry it there.
    assert_eq!(server_with(&cfg, &["permessage-deflate"]), None);
    // Absent from the offer -> absent from the response, whatever else the server adds.
    let cfg = DeflateConfig::default()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true)
        .server_max_window_bits(9);
    let (_, h) = server_with(&cfg, &["permessage-deflate"]).unwrap();
    assert!(!h.contains("client_max_window_bits"), "{h}");
}

#[test]
fn rfc7692_7_all_parameters_in_one_offer() {
    let offer = "permessage-deflate; client_max_window_bits=9; server_max_window_bits=10; \
                 client_no_context_takeover; server_no_context_takeover";
    let (p, h) = server(&[offer]).unwrap();
    assert_eq!(p, params(true, true, 10, 9));
    assert_eq!(
        h,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits=9"
    );
}

#[test]
fn rfc7692_5_1_malformed_offers_are_declined() {
    for offer in MALFORMED_OFFERS {
        assert_eq!(answer(offer), None, "{offer}");
    }
}

#[test]
fn rfc7692_5_1_server_takes_the_first_acceptable_offer() {
    // Several offers in one header line: the first acceptable one wins.
    let (p, h) = server(&["permessage-deflate; server_max_window_bits=10, permessage-deflate"]).unwrap();
    assert_eq!(
        (p.server_max_window_bits, h.as_str()),
        (10, "permessage-deflate; server_max_window_bits=10")
    );
    let (p, _) = server(&["permessage-deflate, permessage-deflate; server_max_window_bits=10"]).unwrap();
    assert_eq!(p, DEFAULT);
    // The same across header lines.
    let (p, _) = server(&[
        "permessage-deflate; client_no_context_takeover",
        "permessage-deflate",
    ])
    .unwrap();
    assert_eq!(p, params(false, true, 15, 15));
    // A malformed offer is skipped and the next one tried, in the same line or the next.
    let fallback = "permessage-deflate; client_no_context_takeover";
    for bad in MALFORMED_OFFERS {
        let expected = Some((params(false, true, 15, 15), fallback.to_string()));
        assert_eq!(server(&[&format!("{bad}, {fallback}")]), expected, "{bad}");
        assert_eq!(server(&[bad, fallback]), expected, "{bad} / {fallback}");
        assert_eq!(
            server(&[bad, "x-foo", fallback]),
            expected,
            "{bad} / x-foo / {fallback}"
        );
    }
    // An offer the configuration cannot meet is skipped too.
    let cfg = DeflateConfig::default().client_max_window_bits(10);
    let (p, h) = server_with(
        &cfg,
        &["permessage-deflate", "permessage-deflate; client_max_window_bits"],
    )
    .unwrap();
    assert_eq!(p, params(false, false, 15, 10));
    assert_eq!(h, "permessage-deflate; client_max_window_bits=10");
}

#[test]
fn rfc7692_7_server_config_insisting() {
    let cfg = DeflateConfig::default()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true)
        .server_max_window_bits(9)
        .client_max_window_bits(11);
    let (p, h) = server_with(&cfg, &["permessage-deflate; client_max_window_bits"]).unwrap();
    assert_eq!(p, params(true, true, 9, 11));
    assert_eq!(
        h,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=9; client_max_window_bits=11"
    );
    // The response must satisfy the client that made the offer.
    let ccfg = DeflateConfig::default();
    assert_eq!(client(&ccfg, &[&h]), Ok(Some(p)));
}

// ---- §7.1 negotiation: the client ---------------------------------------------------------

#[test]
fn rfc7692_7_client_offer_text() {
    assert_eq!(
        client_offer(&DeflateConfig::default()),
        "permessage-deflate; client_max_window_bits"
    );
    let cfg = DeflateConfig::default()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true)
        .server_max_window_bits(10)
        .client_max_window_bits(9);
    assert_eq!(
        client_offer(&cfg),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits=9"
    );
}

#[test]
fn rfc7692_7_1_client_accepts_valid_responses() {
    let cfg = DeflateConfig::default();
    assert_eq!(client(&cfg, &[]), Ok(None));
    assert_eq!(client(&cfg, &["permessage-deflate"]), Ok(Some(DEFAULT)));
    let full = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                server_max_window_bits=10; client_max_window_bits=9";
    assert_eq!(client(&cfg, &[full]), Ok(Some(params(true, true, 10, 9))));
    // Quoted values, and a server announcing a window it was not asked for.
    assert_eq!(
        client(&cfg, &["permessage-deflate; server_max_window_bits=\"8\""]),
        Ok(Some(params(false, false, 8, 15)))
    );
    // What the client offered binds it even if the response is silent about it.
    let cfg = DeflateConfig::default()
        .client_no_context_takeover(true)
        .client_max_window_bits(10);
    assert_eq!(
        client(&cfg, &["permessage-deflate"]),
        Ok(Some(params(false, true, 15, 10)))
    );
    assert_eq!(
        client(&cfg, &["permessage-deflate; client_max_window_bits=8"]),
        Ok(Some(params(false, true, 15, 8)))
    );
}

#[test]
fn rfc7692_7_1_client_rejects_invalid_responses() {
    let cfg = DeflateConfig::default();
    let bad = [
        "permessage-deflate; foo",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=09",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_no_context_takeover=1",
        "x-foo",
        "permessage-deflate, x-foo",
        "permessage-deflate, permessage-deflate",
        "permessage-deflate; a b",
    ];
    for response in bad {
        assert!(client(&cfg, &[response]).is_err(), "{response}");
    }
    assert!(client(&cfg, &["permessage-deflate", "permessage-deflate"]).is_err());
    // Values above the offer.
    let cfg = DeflateConfig::default().server_max_window_bits(10);
    assert!(client(&cfg, &["permessage-deflate; server_max_window_bits=11"]).is_err());
    assert!(
        client(&cfg, &["permessage-deflate"]).is_err(),
        "accepting requires echoing it"
    );
    assert_eq!(
        client(&cfg, &["permessage-deflate; server_max_window_bits=9"]),
        Ok(Some(params(false, false, 9, 15)))
    );
    let cfg = DeflateConfig::default().client_max_window_bits(10);
    assert!(client(&cfg, &["permessage-deflate; client_max_window_bits=11"]).is_err());
    // A requested server_no_context_takeover missing from the response.
    let cfg = DeflateConfig::default().server_no_context_takeover(true);
    assert!(client(&cfg, &["permessage-deflate"]).is_err());
    assert_eq!(
        client(&cfg, &["permessage-deflate; server_no_context_takeover"]),
        Ok(Some(params(true, false, 15, 15)))
    );
}

fn arb_config() -> impl Strategy<Value = DeflateConfig> {
    (any::<bool>(), any::<bool>(), 8..=15u8, 8..=15u8).prop_map(|(s, c, sb, cb)| {
        DeflateConfig::default()
            .server_no_context_takeover(s)
            .client_no_context_takeover(c)
            .server_max_window_bits(sb)
            .client_max_window_bits(cb)
    })
}

proptest! {
    /// Whatever each side wants, our server's answer to our client's offer is one the client
    /// accepts, both sides agree on the parameters, and each side's wishes are honoured.
    #[test]
    fn rfc7692_7_1_offer_response_agree(ccfg in arb_config(), scfg in arb_config()) {
        let offer = client_offer(&ccfg);
        let (sp, header) = server_with(&scfg, &[&offer]).expect("our client's offer is acceptable");
        let cp = client(&ccfg, &[&header]).expect("response valid").expect("accepted");
        prop_assert_eq!(sp, cp);
        prop_assert!(cp.server_max_window_bits <= ccfg.server_max_window_bits.min(scfg.server_max_window_bits));
        prop_assert!(cp.client_max_window_bits <= ccfg.client_max_window_bits.min(scfg.client_max_window_bits));
        prop_assert!(cp.server_no_context_takeover >= (ccfg.server_no_context_takeover || scfg.server_no_context_takeover));
        prop_assert!(cp.client_no_context_takeover >= (ccfg.client_no_context_takeover || scfg.client_no_context_takeover));
    }
}

// ---- §7.1 through the opening handshake ----------------------------------------------------

const NONCE: [u8; 16] = *b"the sample nonce";

/// A client request offering `ccfg` (plus `extra` offers before it), answered by a server
/// with `scfg`: the response's extension header, and both sides' `Negotiated`.
fn handshake(
    ccfg: Option<DeflateConfig>,
    scfg: Option<DeflateConfig>,
    extra: Option<&str>,
) -> (
    Option<String>,
    crate::handshake::Negotiated,
    crate::handshake::Negotiated,
) {
    let mut b = http::Request::builder().uri("ws://example.com/chat");
    if let Some(e) = extra {
        b = b.header("sec-websocket-extensions", e);
    }
    let (mut hs, mut req) = ClientHandshake::new(b.body(()).unwrap(), NONCE).unwrap();
    if let Some(c) = ccfg {
        hs.offer_deflate(c, &mut req);
    }
    let (parts, ()) = req.into_parts();
    let accepted = ServerHandshake::new().deflate(scfg).validate(&parts).unwrap();
    let header = accepted
        .response
        .headers()
        .get("sec-websocket-extensions")
        .map(|v| v.to_str().unwrap().to_owned());
    let client_side = hs.verify(&accepted.response).unwrap();
    (header, accepted.negotiated, client_side)
}

#[test]
fn rfc7692_7_handshake_negotiates_deflate() {
    let (h, s, c) = handshake(
        Some(DeflateConfig::default()),
        Some(DeflateConfig::default()),
        None,
    );
    assert_eq!(h.as_deref(), Some("permessage-deflate"));
    assert_eq!((s.deflate, c.deflate), (Some(DEFAULT), Some(DEFAULT)));
    assert_eq!(s.extensions.as_deref(), Some("permessage-deflate"));
    assert_eq!(c.extensions.as_deref(), Some("permessage-deflate"));

    let ccfg = DeflateConfig::default()
        .server_max_window_bits(12)
        .client_no_context_takeover(true);
    let scfg = DeflateConfig::default()
        .server_no_context_takeover(true)
        .client_max_window_bits(10);
    let (h, s, c) = handshake(Some(ccfg), Some(scfg), None);
    assert_eq!(
        h.as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12; client_max_window_bits=10"
        )
    );
    assert_eq!(s.deflate, Some(params(true, true, 12, 10)));
    assert_eq!(c.deflate, s.deflate);
}

#[test]
fn rfc7692_7_handshake_declines() {
    // Server without compression, client without an offer.
    let (h, s, c) = handshake(Some(DeflateConfig::default()), None, None);
    assert_eq!((h, s.deflate, c.deflate), (None, None, None));
    let (h, s, c) = handshake(None, Some(DeflateConfig::default()), None);
    assert_eq!((h, s.deflate, c.deflate), (None, None, None));
    // Only a malformed offer: declined, the handshake still succeeds.
    let (h, s, _) = handshake(
        None,
        Some(DeflateConfig::default()),
        Some("permessage-deflate; foo"),
    );
    assert_eq!((h, s.deflate), (None, None));
    // A malformed offer first, ours second: ours is taken.
    let (h, s, c) = handshake(
        Some(DeflateConfig::default()),
        Some(DeflateConfig::default()),
        Some("permessage-deflate; server_max_window_bits=16"),
    );
    assert_eq!(h.as_deref(), Some("permessage-deflate"));
    assert_eq!((s.deflate, c.deflate), (Some(DEFAULT), Some(DEFAULT)));
}

#[test]
fn rfc7692_7_handshake_other_offered_extension() {
    // The client also offers x-foo by hand; the server (deflate only) ignores it.
    let (h, _, c) = handshake(
        Some(DeflateConfig::default()),
        Some(DeflateConfig::default()),
        Some("x-foo"),
    );
    assert_eq!(h.as_deref(), Some("permessage-deflate"));
    assert_eq!(c.deflate, Some(DEFAULT));
}

/// A 101 response to `hs` carrying these extension lines.
fn response(hs: &ClientHandshake, ext: &[&str]) -> http::Response<()> {
    let mut b = http::Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header(
            "sec-websocket-accept",
            crate::handshake::accept_key(hs.key().as_bytes()),
        );
    for e in ext {
        b = b.header("sec-websocket-extensions", *e);
    }
    b.body(()).unwrap()
}

fn offering(cfg: Option<DeflateConfig>, extra: Option<&str>) -> ClientHandshake {
    let mut b = http::Request::builder().uri("ws://example.com/");
    if let Some(e) = extra {
        b = b.header("sec-websocket-extensions", e);
    }
    let (mut hs, mut req) = ClientHandshake::new(b.body(()).unwrap(), NONCE).unwrap();
    if let Some(c) = cfg {
        hs.offer_deflate(c.clone(), &mut req);
        let offers: Vec<_> = req.headers().get_all("sec-websocket-extensions").iter().collect();
        assert_eq!(offers.last().unwrap().to_str().unwrap(), client_offer(&c));
    }
    hs
}

#[test]
fn rfc7692_7_1_verify_checks_the_response() {
    let hs = offering(
        Some(DeflateConfig::default().server_no_context_takeover(true)),
        None,
    );
    let ok = hs
        .verify(&response(
            &hs,
            &["permessage-deflate; server_no_context_takeover; client_max_window_bits=9"],
        ))
        .unwrap();
    assert_eq!(ok.deflate, Some(params(true, false, 15, 9)));
    assert_eq!(hs.verify(&response(&hs, &[])).unwrap().deflate, None);
    let bad: [&[&str]; 7] = [
        &["permessage-deflate"], // server_no_context_takeover was requested
        &["permessage-deflate; server_no_context_takeover; client_max_window_bits"],
        &["permessage-deflate; server_no_context_takeover; bogus"],
        &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
        &["permessage-deflate; server_no_context_takeover, permessage-deflate; server_no_context_takeover"],
        &[
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
        ],
        &["permessage-deflate; server_no_context_takeover", "x-foo"],
    ];
    for bad in bad {
        assert!(
            matches!(
                hs.verify(&response(&hs, bad)),
                Err(HandshakeError::UnexpectedExtension(_))
            ),
            "{bad:?}"
        );
    }
    // No offer: a permessage-deflate response is an unoffered extension.
    let hs = offering(None, None);
    assert!(matches!(
        hs.verify(&response(&hs, &["permessage-deflate"])),
        Err(HandshakeError::UnexpectedExtension(_))
    ));
}

#[test]
fn rfc7692_7_1_verify_with_another_accepted_extension() {
    // The client offered x-foo itself besides permessage-deflate, and the server accepted
    // both: x-foo is the application's business, deflate is still negotiated.
    let hs = offering(Some(DeflateConfig::default()), Some("x-foo"));
    let n = hs
        .verify(&response(&hs, &["x-foo", "permessage-deflate"]))
        .unwrap();
    assert_eq!(n.deflate, Some(DEFAULT));
    assert_eq!(n.extensions.as_deref(), Some("x-foo, permessage-deflate"));
    let n = hs.verify(&response(&hs, &["x-foo"])).unwrap();
    assert_eq!(n.deflate, None);
    assert!(
        hs.verify(&response(&hs, &["x-foo, permessage-deflate, permessage-deflate"]))
            .is_err()
    );
}

// ---- an independent inflater (RFC 1951) with a window limit ---------------------------------

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    bit: u32,
}

impl BitReader<'_> {
    fn bits(&mut self, n: u32) -> Result<u32, String> {
        let mut v = 0;
        for i in 0..n {
            let byte = *self.data.get(self.pos).ok_or("out of input")?;
            v |= u32::from((byte >> self.bit) & 1) << i;
            self.bit += 1;
            if self.bit == 8 {
                self.bit = 0;
                self.pos += 1;
            }
        }
        Ok(v)
    }
    fn align(&mut self) {
        if self.bit != 0 {
            self.bit = 0;
            self.pos += 1;
        }
    }
    fn decode(&mut self, h: &Huffman) -> Result<u16, String> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= self.bits(1)? as i32;
            let count = i32::from(h.count[len]);
            if code - count < first {
                return Ok(h.symbol[(index + code - first) as usize]);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err("bad huffman code".into())
    }
}

struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Self {
        let mut count = [0u16; 16];
        lengths.iter().for_each(|&l| count[l as usize] += 1);
        count[0] = 0;
        let mut offs = [0u16; 16];
        for l in 1..15 {
            offs[l + 1] = offs[l] + count[l];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (s, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[offs[l as usize] as usize] = s as u16;
                offs[l as usize] += 1;
            }
        }
        Self { count, symbol }
    }
}

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
    227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u32; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
    4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
];

/// Inflates a raw deflate stream made of whole blocks (several messages, each with the RFC
/// 7692 tail restored, may follow each other), refusing any back-reference farther than
/// `window` bytes. Stops at the end of the input or after a final block.
fn inflate_raw(data: &[u8], window: usize) -> Result<Vec<u8>, String> {
    let mut r = BitReader { data, pos: 0, bit: 0 };
    let mut out: Vec<u8> = Vec::new();
    while r.pos < data.len() {
        let last = r.bits(1)? == 1;
        match r.bits(2)? {
            0 => {
                r.align();
                let b = data.get(r.pos..r.pos + 4).ok_or("truncated stored header")?;
                let (len, nlen) = (u16::from_le_bytes([b[0], b[1]]), u16::from_le_bytes([b[2], b[3]]));
                if len != !nlen {
                    return Err("stored length mismatch".into());
                }
                r.pos += 4;
                let body = data
                    .get(r.pos..r.pos + len as usize)
                    .ok_or("truncated stored block")?;
                out.extend_from_slice(body);
                r.pos += len as usize;
            }
            t @ (1 | 2) => {
                let (lit, dist) = if t == 1 {
                    let mut l = [8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    (Huffman::new(&l), Huffman::new(&[5u8; 30]))
                } else {
                    let hlit = r.bits(5)? as usize + 257;
                    let hdist = r.bits(5)? as usize + 1;
                    let hclen = r.bits(4)? as usize + 4;
                    const ORDER: [usize; 19] =
                        [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
                    let mut cl = [0u8; 19];
                    for &i in &ORDER[..hclen] {
                        cl[i] = r.bits(3)? as u8;
                    }
                    let clh = Huffman::new(&cl);
                    let mut lengths = Vec::with_capacity(hlit + hdist);
                    while lengths.len() < hlit + hdist {
                        let (v, n) = match r.decode(&clh)? {
                            s @ 0..=15 => (s as u8, 1),
                            16 => (*lengths.last().ok_or("repeat with no length")?, 3 + r.bits(2)?),
                            17 => (0, 3 + r.bits(3)?),
                            _ => (0, 11 + r.bits(7)?),
                        };
                        lengths.extend(std::iter::repeat_n(v, n as usize));
                    }
                    if lengths.len() != hlit + hdist {
                        return Err("code lengths overrun".into());
                    }
                    (Huffman::new(&lengths[..hlit]), Huffman::new(&lengths[hlit..]))
                };
                loop {
                    let sym = r.decode(&lit)?;
                    match sym {
                        0..=255 => out.push(sym as u8),
                        256 => break,
                        _ => {
                            let i = usize::from(sym - 257);
                            let len = LEN_BASE.get(i).ok_or("bad length symbol")?;
                            let len = usize::from(*len) + r.bits(u32::from(LEN_EXTRA[i]))? as usize;
                            let d = usize::from(r.decode(&dist)?);
                            let base = DIST_BASE.get(d).ok_or("bad distance symbol")?;
                            let d = *base as usize + r.bits(u32::from(DIST_EXTRA[d]))? as usize;
                            if d > window {
                                return Err(format!("distance {d} beyond the {window}-byte window"));
                            }
                            if d > out.len() {
                                return Err("distance before the start".into());
                            }
                            for _ in 0..len {
                                out.push(out[out.len() - d]);
                            }
                        }
                    }
                }
            }
            _ => return Err("reserved block type".into()),
        }
        if last {
            break;
        }
    }
    Ok(out)
}

// ---- a hand-built deflate bomb ------------------------------------------------------------

struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, bits: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code: sent most significant bit first.
    fn code(&mut self, code: u32, bits: u32) {
        self.put(code.reverse_bits() >> (32 - bits), bits);
    }
}

/// An RFC 7692 message payload (tail removed) that inflates to `total` zero bytes: one
/// fixed-Huffman block of a literal 0 and matches of 258 bytes at distance 1 (13 bits per
/// 258 bytes: 1 GiB in 6.6 MB), then the header of the empty stored block a sync flush ends
/// with.
fn zero_bomb(total: u64) -> Vec<u8> {
    assert!(total >= 1);
    let matches = (total - 1) / 258;
    let literals = (total - 1) % 258;
    let mut w = BitWriter {
        out: Vec::with_capacity((matches * 13 / 8 + 64) as usize),
        acc: 0,
        n: 0,
    };
    w.put(0, 1); // BFINAL = 0
    w.put(1, 2); // BTYPE = 01, fixed Huffman
    for _ in 0..=literals {
        w.code(0x30, 8); // literal 0
    }
    let length_258 = 0xc5u32.reverse_bits() >> 24; // symbol 285: 11000101
    for _ in 0..matches {
        w.put(length_258, 13); // symbol 285, then distance code 0 (5 zero bits): distance 1
    }
    w.code(0, 7); // end of block (symbol 256)
    w.put(0, 3); // BFINAL = 0, BTYPE = 00: the empty stored block the receiver's tail completes
    if w.n > 0 {
        w.put(0, 8 - w.n);
    }
    w.out
}

#[test]
fn zero_bomb_is_what_it_claims() {
    for total in [1u64, 2, 258, 259, 260, 1 << 20, (1 << 20) + 7] {
        let mut bomb = zero_bomb(total);
        bomb.extend_from_slice(&TAIL);
        let ours = inflate_raw(&bomb, 1).unwrap();
        assert_eq!(ours.len() as u64, total);
        assert!(ours.iter().all(|&b| b == 0));
    }
    let gib = zero_bomb(1 << 30);
    assert!(gib.len() < 7 << 20, "{} bytes", gib.len());
}

// ---- §7.2 the codec ------------------------------------------------------------------------

/// A server and a client codec for these parameters.
fn codecs(p: &DeflateParams, cfg: &DeflateConfig) -> (DeflateCodec, DeflateCodec) {
    (DeflateCodec::new(p, cfg, true), DeflateCodec::new(p, cfg, false))
}

/// Compresses one message in fragments of the given sizes (the rest goes in the last).
fn compress_fragments(c: &mut DeflateCodec, msg: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut frags = Vec::new();
    let mut rest = msg;
    for &s in sizes {
        let s = s.min(rest.len());
        let mut out = Vec::new();
        c.compress(&rest[..s], false, &mut out).unwrap();
        frags.push(out);
        rest = &rest[s..];
    }
    let mut out = Vec::new();
    c.compress(rest, true, &mut out).unwrap();
    frags.push(out);
    frags
}

fn compress_one(c: &mut DeflateCodec, msg: &[u8]) -> Vec<u8> {
    compress_fragments(c, msg, &[]).remove(0)
}

fn decompress_frames(d: &mut DeflateCodec, frames: &[Vec<u8>]) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        d.decompress(f, i + 1 == frames.len(), &mut out, None)?;
    }
    Ok(out)
}

fn decompress_one(d: &mut DeflateCodec, payload: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    decompress_frames(d, &[payload.to_vec()])
}

/// The wire form of a message's payload as RFC 7692 §7.2.1 defines it: non-empty, no tail
/// (a message ends with the header bits of an empty stored block, not with 00 00 ff ff).
fn assert_rfc_payload(frames: &[Vec<u8>]) {
    let all: Vec<u8> = frames.concat();
    assert!(!all.is_empty(), "a compressed message has at least one byte");
    assert!(
        !all.ends_with(&TAIL),
        "message ends with the sync-flush tail: {:02x?}",
        &all[all.len().saturating_sub(8)..]
    );
}

fn text_like(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dogs\n",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % 8) as usize].as_bytes());
    }
    out.truncate(len);
    out
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

const HELLO_7_2_3_1: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
const HELLO_AGAIN_7_2_3_2: [u8; 5] = [0xf2, 0x00, 0x11, 0x00, 0x00];

#[test]
fn rfc7692_7_2_3_1_hello() {
    let (_, mut d) = codecs(&DEFAULT, &DeflateConfig::default());
    assert_eq!(decompress_one(&mut d, &HELLO_7_2_3_1).unwrap(), b"Hello");
    // The same frame through a connection: 0xc1 = FIN + RSV1 + text.
    let mut c = Connection::new(Role::Client, Config::default());
    c.enable_deflate(&DEFAULT, &DeflateConfig::default());
    c.receive(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(
        c.poll_event().unwrap(),
        Some(Event::Message(Message::text("Hello")))
    );
    // zlib produces exactly the RFC's bytes, at every level but 0 (stored).
    for level in 1..=9 {
        let cfg = DeflateConfig::default().level(level);
        let (mut s, _) = codecs(&DEFAULT, &cfg);
        assert_eq!(compress_one(&mut s, b"Hello"), HELLO_7_2_3_1, "level {level}");
    }
}

#[test]
fn rfc7692_7_2_3_2_sharing_the_window() {
    let (_, mut d) = codecs(&DEFAULT, &DeflateConfig::default());
    assert_eq!(decompress_one(&mut d, &HELLO_7_2_3_1).unwrap(), b"Hello");
    assert_eq!(decompress_one(&mut d, &HELLO_AGAIN_7_2_3_2).unwrap(), b"Hello");
    assert_eq!(decompress_one(&mut d, &HELLO_AGAIN_7_2_3_2).unwrap(), b"Hello");
    // The sender's side of the same example.
    let (mut s, _) = codecs(&DEFAULT, &DeflateConfig::default().level(6));
    assert_eq!(compress_one(&mut s, b"Hello"), HELLO_7_2_3_1);
    assert_eq!(compress_one(&mut s, b"Hello"), HELLO_AGAIN_7_2_3_2);
    // Without context takeover the receiver forgets "Hello": the reference is invalid.
    let (_, mut d) = codecs(&params(true, false, 15, 15), &DeflateConfig::default());
    assert_eq!(decompress_one(&mut d, &HELLO_7_2_3_1).unwrap(), b"Hello");
    assert!(matches!(
        decompress_one(&mut d, &HELLO_AGAIN_7_2_3_2),
        Err(ProtocolError::Inflate(_))
    ));
    // And a sender without context takeover never refers back.
    let (mut s, _) = codecs(&params(true, false, 15, 15), &DeflateConfig::default());
    assert_eq!(compress_one(&mut s, b"Hello"), HELLO_7_2_3_1);
    assert_eq!(compress_one(&mut s, b"Hello"), HELLO_7_2_3_1);
}

#[test]
fn rfc7692_7_2_3_3_stored_block() {
    let (_, mut d) = codecs(&DEFAULT, &DeflateConfig::default());
    let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
    assert_eq!(decompress_one(&mut d, &stored).unwrap(), b"Hello");
    assert_eq!(decompress_one(&mut d, &HELLO_AGAIN_7_2_3_2).unwrap(), b"Hello");
}

#[test]
fn rfc7692_7_2_3_4_bfinal_block() {
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    // As the first message of a fresh inflater...
    let (_, mut d) = codecs(&DEFAULT, &DeflateConfig::default());
    assert_eq!(decompress_one(&mut d, &bfinal).unwrap(), b"Hello");
    assert_eq!(decompress_one(&mut d, &HELLO_7_2_3_1).unwrap(), b"Hello");
    // ...and after other messages, several times: the stream stays in step.
    for _ in 0..3 {
        assert_eq!(decompress_one(&mut d, &bfinal).unwrap(), b"Hello");
        assert_eq!(decompress_one(&mut d, &HELLO_7_2_3_1).unwrap(), b"Hello");
    }
    // Blocks may follow a final block inside one message.
    let two = [
        0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x0a, 0xcf, 0x2f, 0xca, 0x49, 0x01, 0x00,
    ];
    assert_eq!(inflate_raw(&two, 1 << 15).unwrap(), b"Hello");
    assert_eq!(decompress_one(&mut d, &two).unwrap(), b"HelloWorld");
    assert_eq!(decompress_one(&mut d, &HELLO_7_2_3_1).unwrap(), b"Hello");
}

#[test]
fn rfc7692_7_2_3_5_two_blocks_in_one_message() {
    let (_, mut d) = codecs(&DEFAULT, &DeflateConfig::default());
    let two = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(decompress_one(&mut d, &two).unwrap(), b"Hello");
    // Split over two frames at the block boundary.
    let frames = [two[..8].to_vec(), two[8..].to_vec()];
    assert_eq!(decompress_frames(&mut d, &frames).unwrap(), b"Hello");
}

#[test]
fn rfc7692_7_2_3_6_empty_fragment() {
    // "Hello" flushed in a first frame, then an empty final fragment (payload 0x00).
    let (_, mut d) = codecs(&DEFAULT, &DeflateConfig::default());
    let frames = [
        vec![0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff],
        vec![0x00],
    ];
    assert_eq!(decompress_frames(&mut d, &frames).unwrap(), b"Hello");
    assert_eq!(decompress_one(&mut d, &HELLO_AGAIN_7_2_3_2).unwrap(), b"Hello");

    // Our sender ending a streamed message with an empty fragment, and empty messages after
    // others: every message is well-formed and the next one still decodes.
    for (p, low) in [
        (DEFAULT, false),
        (params(true, true, 15, 15), true),
        (params(false, false, 8, 8), false),
    ] {
        let cfg = DeflateConfig::default().low_memory(low);
        let (mut s, mut d) = codecs(&p, &cfg);
        let (mut c, mut sd) = (
            DeflateCodec::new(&p, &cfg, false),
            DeflateCodec::new(&p, &cfg, true),
        );
        let msgs: [&[u8]; 6] = [b"Hello", b"", b"", b"Hello", b"Hello world", b""];
        for msg in msgs {
            for (tx, rx) in [(&mut s, &mut d), (&mut c, &mut sd)] {
                let frames = compress_fragments(tx, msg, &[msg.len()]);
                assert_rfc_payload(&frames);
                assert_eq!(decompress_frames(rx, &frames).unwrap(), msg, "{p:?} {msg:?}");
                let whole = compress_one(tx, msg);
                assert_rfc_payload(std::slice::from_ref(&whole));
                assert_eq!(decompress_one(rx, &whole).unwrap(), msg, "{p:?} {msg:?}");
            }
        }
    }
}

#[test]
fn rfc7692_7_2_1_levels_and_tail() {
    let text = text_like(7, 20_000);
    for level in 0..=9 {
        let cfg = DeflateConfig::default().level(level);
        let (mut s, mut d) = codecs(&DEFAULT, &cfg);
        let random = random_bytes(level.into(), 3000);
        for msg in [&text[..], &b"x"[..], &random[..]] {
            let out = compress_one(&mut s, msg);
            assert_rfc_payload(std::slice::from_ref(&out));
            assert_eq!(decompress_one(&mut d, &out).unwrap(), msg, "level {level}");
        }
        let first = compress_one(&mut DeflateCodec::new(&DEFAULT, &cfg, true), &text);
        if level == 0 {
            assert!(first.len() > text.len(), "level 0 stores");
        } else {
            assert!(
                first.len() < text.len() / 2,
                "level {level}: {} bytes",
                first.len()
            );
        }
    }
}

#[test]
fn rfc7692_7_2_context_takeover_shrinks_repeats() {
    let msg = text_like(3, 4000);
    // Level 6: level 1 (zlib-rs's "quick" strategy) follows one hash candidate and seldom
    // reaches back into the previous message.
    for (p, repeat_small) in [(DEFAULT, true), (params(true, true, 15, 15), false)] {
        let (mut s, mut d) = codecs(&p, &DeflateConfig::default().level(6));
        let a = compress_one(&mut s, &msg);
        let b = compress_one(&mut s, &msg);
        assert_eq!(decompress_one(&mut d, &a).unwrap(), msg);
        assert_eq!(decompress_one(&mut d, &b).unwrap(), msg);
        if repeat_small {
            assert!(b.len() < a.len() / 4, "{} then {}", a.len(), b.len());
        } else {
            assert_eq!(a, b, "no context: the same message compresses the same");
        }
    }
}

#[test]
fn rfc7692_7_2_window_bits_on_the_sender() {
    // Each window size: the output decodes with an inflater whose window is exactly that
    // size (8 bits: 256 bytes), across messages with context takeover.
    for bits in 8..=15u8 {
        let p = params(false, false, bits, bits);
        let (mut s, mut d) = codecs(&p, &DeflateConfig::default().level(9));
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        let w = 1usize << bits;
        for i in 0..4u64 {
            // A repeat at a distance zlib can use (it keeps 262 bytes of lookahead in its
            // window), one at twice the window (it must not).
            let near = random_bytes(i + 100, w.saturating_sub(300).max(100));
            let far = random_bytes(i + 200, w * 2);
            let msg = [&near[..], &near, &far, &far, &text_like(i, 700)].concat();
            let out = compress_one(&mut s, &msg);
            assert_eq!(decompress_one(&mut d, &out).unwrap(), msg);
            stream.extend_from_slice(&out);
            stream.extend_from_slice(&TAIL);
            expected.extend_from_slice(&msg);
        }
        assert_eq!(
            inflate_raw(&stream, w).map(|o| o == expected),
            Ok(true),
            "{bits} bits"
        );
        if bits >= 10 {
            // The window was used: an inflater with half of it fails.
            assert!(inflate_raw(&stream, w / 2).is_err(), "{bits} bits");
        } else if bits == 8 {
            // zlib has no 8-bit raw window: we store, so not even a 1-byte window is needed.
            assert_eq!(
                inflate_raw(&stream, 0).map(|o| o.len()),
                Ok(expected.len()),
                "8 bits: stored blocks only"
            );
        }
    }
}

#[derive(Debug, Clone)]
struct Msg {
    data: Vec<u8>,
    /// Sizes of all fragments but the last.
    frags: Vec<usize>,
}

fn arb_msg() -> impl Strategy<Value = Msg> {
    let data = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2000),
        (any::<u64>(), 0..6000usize).prop_map(|(s, n)| text_like(s, n)),
        (any::<u8>(), 0..3000usize).prop_map(|(b, n)| vec![b; n]),
    ];
    (data, prop::collection::vec(0..1500usize, 0..4)).prop_map(|(data, frags)| Msg { data, frags })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// compress -> decompress is the identity in both directions, for every window size,
    /// level and context-takeover setting, whole or in fragments; every message is RFC 7692
    /// §7.2.1 shaped, and the sender's window is honoured (checked by the independent inflater).
    #[test]
    fn rfc7692_7_2_round_trip(
        msgs in prop::collection::vec(arb_msg(), 1..10),
        snct in any::<bool>(), cnct in any::<bool>(),
        sbits in 8..=15u8, cbits in 8..=15u8,
        level in 0..=9u32, low in any::<bool>(),
    ) {
        let p = params(snct, cnct, sbits, cbits);
        let cfg = DeflateConfig::default().level(level).low_memory(low);
        let (mut server_tx, mut client_rx) = codecs(&p, &cfg);
        let (mut server_rx, mut client_tx) = codecs(&p, &cfg);
        for (tx, rx, bits) in [(&mut server_tx, &mut client_rx, sbits), (&mut client_tx, &mut server_rx, cbits)] {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for m in &msgs {
                let frames = compress_fragments(tx, &m.data, &m.frags);
                assert_rfc_payload(&frames);
                prop_assert_eq!(decompress_frames(rx, &frames).unwrap(), m.data.clone());
                stream.extend_from_slice(&frames.concat());
                stream.extend_from_slice(&TAIL);
                expected.extend_from_slice(&m.data);
            }
            prop_assert_eq!(inflate_raw(&stream, 1 << bits), Ok(expected));
        }
    }
}

#[test]
fn rfc7692_7_2_shared_compression_is_the_connection_payload() {
    let p = params(true, true, 11, 11);
    let cfg = DeflateConfig::default().level(5).threshold(10);
    let mut server = Connection::new(Role::Server, Config::default());
    server.enable_deflate(&p, &cfg);
    let shared = server.shared_compression().unwrap();
    assert_eq!(
        shared,
        SharedCompression {
            window_bits: 11,
            level: 5,
            threshold: 10
        }
    );
    let msg = text_like(1, 5000);
    for _ in 0..2 {
        server.send(Message::binary(msg.clone())).unwrap();
        let frames = parse_frames(&server.take_output());
        assert_eq!(frames[0].payload, shared.compress(&msg).unwrap());
    }
    assert_eq!(shared.compress(b"short"), None);
    // Context takeover: nothing to share.
    let mut c = Connection::new(Role::Server, Config::default());
    c.enable_deflate(&DEFAULT, &cfg);
    assert_eq!(c.shared_compression(), None);
}

#[test]
fn rfc7692_7_2_2_corrupt_data() {
    let (_, mut d) = codecs(&DEFAULT, &DeflateConfig::default());
    // BTYPE 11 is reserved; a stored block with LEN != ~NLEN; a distance before the start.
    for bad in [
        &[0xff, 0xff, 0xff][..],
        &[0x00, 0x05, 0x00, 0x00, 0x00, b'a'],
        &HELLO_AGAIN_7_2_3_2,
    ] {
        let (_, mut fresh) = codecs(&DEFAULT, &DeflateConfig::default());
        assert!(
            matches!(decompress_one(&mut fresh, bad), Err(ProtocolError::Inflate(_))),
            "{bad:02x?}"
        );
    }
    assert_eq!(decompress_one(&mut d, &HELLO_7_2_3_1).unwrap(), b"Hello");
}

// ---- the inflation limit -------------------------------------------------------------------

const LIMIT: usize = 64 << 20;

#[test]
fn rfc7692_8_inflation_limit_codec() {
    let t = Instant::now();
    let bomb = zero_bomb(1 << 30);
    let built = t.elapsed();
    // Whole: one 6.6 MB frame claiming 1 GiB.
    let (_, mut d) = codecs(&DEFAULT, &DeflateConfig::default());
    let mut out = Vec::new();
    let t = Instant::now();
    let err = d.decompress(&bomb, true, &mut out, Some(LIMIT)).unwrap_err();
    assert!(
        matches!(err, ProtocolError::MessageTooLarge { limit: LIMIT, .. }),
        "{err:?}"
    );
    assert!(out.len() > LIMIT, "stopped after passing the limit, not before");
    assert!(
        out.capacity() <= LIMIT + (1 << 20),
        "capacity {} MiB",
        out.capacity() >> 20
    );
    let whole = t.elapsed();
    // Frame by frame (64 KiB of compressed data each).
    let (_, mut d) = codecs(&DEFAULT, &DeflateConfig::default());
    let mut out = Vec::new();
    let mut result = Ok(());
    let chunks: Vec<&[u8]> = bomb.chunks(64 << 10).collect();
    for (i, c) in chunks.iter().enumerate() {
        result = d.decompress(c, i + 1 == chunks.len(), &mut out, Some(LIMIT));
        assert!(
            out.capacity() <= LIMIT + (1 << 20),
            "capacity {} MiB",
            out.capacity() >> 20
        );
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(result, Err(ProtocolError::MessageTooLarge { .. })),
        "{result:?}"
    );
    eprintln!(
        "bomb: built in {built:?}, whole frame refused in {whole:?}, all in {:?}",
        t.elapsed()
    );
}

#[test]
fn rfc7692_8_limit_is_on_the_inflated_size() {
    for (limit, ok) in [(9999, false), (10_000, true)] {
        let (mut s, mut d) = codecs(&DEFAULT, &DeflateConfig::default());
        let msg = text_like(5, 10_000);
        let frames = compress_fragments(&mut s, &msg, &[100, 2000]);
        let mut out = Vec::new();
        let mut r = Ok(());
        for (i, f) in frames.iter().enumerate() {
            r = d.decompress(f, i + 1 == frames.len(), &mut out, Some(limit));
            if r.is_err() {
                break;
            }
        }
        assert_eq!(r.is_ok(), ok, "limit {limit}: {r:?}");
        assert!(
            out.capacity() <= limit + 1,
            "capacity {} for limit {limit}",
            out.capacity()
        );
        if ok {
            assert_eq!(out, msg);
        }
    }
}

// ---- §6 through Connection -----------------------------------------------------------------

/// Every frame in a connection's output (payload unmasked); RSV2 and RSV3 are never set.
fn parse_frames(b: &[u8]) -> Vec<Wire> {
    let frames = parse_wire(b);
    assert!(frames.iter().all(|f| f.rsv & 0b011 == 0), "RSV2/RSV3 never set");
    frames
}

/// A client frame (masked with [`KEY`]), with RSV1 as given.
fn client_frame(opcode: u8, fin: bool, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    frame(opcode, fin, rsv1, Some(KEY), payload)
}

fn pair(p: &DeflateParams, cfg: &DeflateConfig) -> (Connection, Connection) {
    let mut server = Connection::new(Role::Server, Config::default());
    let mut client = Connection::new(Role::Client, Config::default());
    server.enable_deflate(p, cfg);
    client.enable_deflate(p, cfg);
    (server, client)
}

/// Moves everything `from` wrote to `to`; returns the frames.
fn transfer(from: &mut Connection, to: &mut Connection) -> Vec<Wire> {
    let bytes = from.take_output();
    to.receive(&bytes);
    parse_frames(&bytes)
}

fn next_message(c: &mut Connection) -> Message {
    loop {
        match c.poll_event().unwrap() {
            Some(Event::Message(m)) => return m,
            Some(_) => {}
            None => panic!("no message"),
        }
    }
}

/// The protocol error `c` failed with and the close code it sent.
fn failure(c: &mut Connection) -> (ProtocolError, u16) {
    let err = loop {
        match c.poll_event() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("no failure"),
            Err(ReadError::Protocol(e)) => break e,
            Err(e) => panic!("{e:?}"),
        }
    };
    let frames = parse_frames(&c.take_output());
    let close = frames.iter().rfind(|f| f.opcode == 8).expect("a close frame");
    assert!(!close.rsv1());
    (err, u16::from_be_bytes([close.payload[0], close.payload[1]]))
}

#[test]
fn rfc7692_6_round_trip_both_directions() {
    let msgs = [
        Message::text(String::from_utf8(text_like(1, 3000)).unwrap()),
        Message::binary(random_bytes(2, 5000)),
        Message::text(String::from_utf8(text_like(1, 3000)).unwrap()),
        Message::text("héllo wörld, ünïcödé ✓ ".repeat(50)),
        Message::binary(vec![0u8; 100_000]),
    ];
    for p in [
        DEFAULT,
        params(true, true, 9, 10),
        params(false, false, 8, 8),
        params(false, true, 12, 9),
    ] {
        let (mut server, mut client) = pair(&p, &DeflateConfig::default().level(6));
        for from_client in [true, false] {
            let (tx, rx) = if from_client {
                (&mut client, &mut server)
            } else {
                (&mut server, &mut client)
            };
            let mut sizes = Vec::new();
            for m in &msgs {
                tx.send(m.clone()).unwrap();
                let frames = transfer(tx, rx);
                assert_eq!(frames.len(), 1);
                assert!(frames[0].rsv1() && frames[0].fin);
                assert_eq!(frames[0].masked(), from_client);
                sizes.push(frames[0].payload.len());
                assert_eq!(&next_message(rx), m, "{p:?} from_client={from_client}");
            }
            let (reset, bits) = if from_client {
                (p.client_no_context_takeover, p.client_max_window_bits)
            } else {
                (p.server_no_context_takeover, p.server_max_window_bits)
            };
            // The third message repeats the first, 8000 bytes back: far smaller with context
            // takeover and a window that reaches back to it.
            assert_eq!(sizes[2] < sizes[0] / 4, !reset && bits >= 14, "{p:?} {sizes:?}");
            if bits == 8 {
                assert!(sizes[4] > 100_000, "8-bit window: stored blocks");
            } else {
                assert!(sizes[4] < 1000, "zeros compress: {sizes:?}");
            }
        }
    }
}

#[test]
fn rfc7692_6_1_rsv1_on_the_first_frame_only() {
    let (mut server, mut client) = pair(&DEFAULT, &DeflateConfig::default());
    let part = text_like(9, 500);
    client
        .send_fragment(MessageKind::Text, Bytes::from(part.clone()), false)
        .unwrap();
    client
        .send_fragment(MessageKind::Text, Bytes::from(part.clone()), false)
        .unwrap();
    client.send_ping(b"p").unwrap();
    client.send_pong(b"q").unwrap();
    client
        .send_fragment(MessageKind::Text, Bytes::from(part.clone()), true)
        .unwrap();
    let frames = transfer(&mut client, &mut server);
    let shape: Vec<_> = frames.iter().map(|f| (f.opcode, f.fin, f.rsv1())).collect();
    assert_eq!(
        shape,
        [
            (1, false, true),
            (0, false, false),
            (9, true, false),
            (10, true, false),
            (0, true, false)
        ]
    );
    assert_eq!(frames[2].payload, b"p");
    assert_eq!(
        server.poll_event().unwrap(),
        Some(Event::Ping(Bytes::from_static(b"p")))
    );
    assert_eq!(
        server.poll_event().unwrap(),
        Some(Event::Pong(Bytes::from_static(b"q")))
    );
    assert_eq!(next_message(&mut server).as_bytes(), &part.repeat(3));
    // The auto-pong and the close frame are not compressed either.
    server.send(Message::text("after")).unwrap();
    server
        .send_close(Some(crate::CloseFrame::new(
            crate::CloseCode::NORMAL_CLOSURE,
            "bye",
        )))
        .unwrap();
    let frames = transfer(&mut server, &mut client);
    assert!(frames.iter().all(|f| !f.rsv1() || f.opcode == 1));
    assert!(frames.iter().any(|f| f.opcode == 10) && frames.iter().any(|f| f.opcode == 8));
}

#[test]
fn rfc7692_6_1_rsv1_on_continuation_is_1002() {
    let (mut server, _) = pair(&DEFAULT, &DeflateConfig::default());
    let mut codec = DeflateCodec::new(&DEFAULT, &DeflateConfig::default(), false);
    let frames = compress_fragments(&mut codec, &text_like(1, 300), &[100]);
    server.receive(&client_frame(1, false, true, &frames[0]));
    server.receive(&client_frame(0, true, true, &frames[1]));
    assert_eq!(failure(&mut server), (ProtocolError::ReservedBits, 1002));
}

#[test]
fn rfc7692_6_rsv1_without_negotiation_is_1002() {
    let mut server = Connection::new(Role::Server, Config::default());
    server.receive(&client_frame(1, true, true, &HELLO_7_2_3_1));
    assert_eq!(failure(&mut server), (ProtocolError::ReservedBits, 1002));
    // A client too.
    let mut client = Connection::new(Role::Client, Config::default());
    client.receive(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(failure(&mut client), (ProtocolError::ReservedBits, 1002));
}

#[test]
fn rfc7692_6_rsv1_on_control_frames_is_1002() {
    for opcode in [8u8, 9, 10] {
        let (mut server, _) = pair(&DEFAULT, &DeflateConfig::default());
        server.receive(&client_frame(opcode, true, true, b""));
        assert_eq!(
            failure(&mut server),
            (ProtocolError::ReservedBits, 1002),
            "opcode {opcode}"
        );
    }
}

#[test]
fn rfc7692_6_2_invalid_utf8_after_inflating_is_1007() {
    let cfg = DeflateConfig::default();
    // Invalid in the middle, and a sequence cut at the end of the message.
    for text in [
        &b"valid text, then \xff\xfe and more"[..],
        b"ends in the middle of \xe2\x82",
    ] {
        let (mut server, _) = pair(&DEFAULT, &cfg);
        let mut codec = DeflateCodec::new(&DEFAULT, &cfg, false);
        server.receive(&client_frame(1, true, true, &compress_one(&mut codec, text)));
        assert_eq!(failure(&mut server), (ProtocolError::InvalidUtf8, 1007));
    }
    // A code point split across compressed frames is fine.
    let (mut server, _) = pair(&DEFAULT, &cfg);
    let mut codec = DeflateCodec::new(&DEFAULT, &cfg, false);
    let text = "price: 20 € — ok".as_bytes();
    let cut = text.iter().position(|&b| b == 0xe2).unwrap() + 1;
    let frames = compress_fragments(&mut codec, text, &[cut]);
    server.receive(&client_frame(1, false, true, &frames[0]));
    server.receive(&client_frame(0, true, false, &frames[1]));
    assert_eq!(next_message(&mut server).as_bytes(), text);
    // Binary is not checked.
    let frames = compress_fragments(&mut codec, b"\xff\xfe", &[]);
    server.receive(&client_frame(2, true, true, &frames[0]));
    assert_eq!(next_message(&mut server), Message::binary(&b"\xff\xfe"[..]));
}

#[test]
fn rfc7692_6_2_corrupt_deflate_data_is_1007() {
    for payload in [&[0xff, 0xff, 0xff, 0xff][..], &HELLO_AGAIN_7_2_3_2] {
        let (mut server, _) = pair(&DEFAULT, &DeflateConfig::default());
        server.receive(&client_frame(2, true, true, payload));
        let (err, code) = failure(&mut server);
        assert!(matches!(err, ProtocolError::Inflate(_)), "{err:?}");
        assert_eq!(code, 1007);
    }
}

#[test]
fn rfc7692_6_write_compression_off_and_threshold() {
    let cfg = DeflateConfig::default().threshold(64);
    let (mut server, mut client) = pair(&DEFAULT, &cfg);
    let long = text_like(4, 1000);
    client.set_write_compression(false);
    assert!(!client.compresses_writes());
    client.send(Message::binary(long.clone())).unwrap();
    let f = transfer(&mut client, &mut server);
    assert!(!f[0].rsv1());
    assert_eq!(f[0].payload, long);
    assert_eq!(next_message(&mut server).as_bytes(), &long);
    client.set_write_compression(true);
    for (len, compressed) in [(63, false), (64, true), (0, false), (1000, true)] {
        let msg = text_like(len as u64, len);
        client.send(Message::binary(msg.clone())).unwrap();
        let f = transfer(&mut client, &mut server);
        assert_eq!(f[0].rsv1(), compressed, "{len} bytes");
        if !compressed {
            assert_eq!(f[0].payload, msg);
        }
        assert_eq!(next_message(&mut server).as_bytes(), &msg);
    }
    // A fragmented message is compressed whatever its first fragment's size.
    client
        .send_fragment(MessageKind::Binary, Bytes::from_static(b"ab"), false)
        .unwrap();
    client
        .send_fragment(MessageKind::Binary, Bytes::from_static(b"c"), true)
        .unwrap();
    let f = transfer(&mut client, &mut server);
    assert_eq!((f[0].rsv1(), f[1].rsv1()), (true, false));
    assert_eq!(next_message(&mut server).as_bytes(), &b"abc"[..]);
}

#[test]
fn rfc7692_7_2_3_6_streamed_message_ending_empty() {
    // send_fragment(.., false)... then an empty last fragment, the usual way to end a
    // message of unknown size; then more messages must still decode (context takeover).
    for threshold in [0, 64] {
        let cfg = DeflateConfig::default().threshold(threshold);
        let (mut server, mut client) = pair(&DEFAULT, &cfg);
        for round in 0..3 {
            client
                .send_fragment(MessageKind::Text, Bytes::from(text_like(round, 300)), false)
                .unwrap();
            client
                .send_fragment(MessageKind::Text, Bytes::new(), true)
                .unwrap();
            transfer(&mut client, &mut server);
            assert_eq!(next_message(&mut server).as_bytes(), &text_like(round, 300));
            for m in ["", "", "x", "Hello Hello Hello Hello"] {
                client.send(Message::text(m)).unwrap();
                let f = transfer(&mut client, &mut server);
                assert_eq!(f[0].rsv1(), m.len() >= threshold, "{m:?}");
                assert_eq!(
                    next_message(&mut server),
                    Message::text(m),
                    "threshold {threshold}"
                );
            }
        }
    }
}

#[test]
fn rfc7692_8_inflation_limit_connection() {
    let bomb = zero_bomb(1 << 30);
    for chunk in [bomb.len(), 1 << 20] {
        let mut server = Connection::new(Role::Server, Config::default().max_message_size(Some(LIMIT)));
        server.enable_deflate(&DEFAULT, &DeflateConfig::default());
        let chunks: Vec<&[u8]> = bomb.chunks(chunk).collect();
        let t = Instant::now();
        let mut result = None;
        for (i, c) in chunks.iter().enumerate() {
            let opcode = if i == 0 { 2 } else { 0 };
            server.receive(&client_frame(opcode, i + 1 == chunks.len(), i == 0, c));
            match server.poll_event() {
                Ok(None) => {}
                Err(ReadError::Protocol(e)) => {
                    result = Some(e);
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(
            matches!(result, Some(ProtocolError::MessageTooLarge { limit: LIMIT, .. })),
            "{result:?}"
        );
        let frames = parse_frames(&server.take_output());
        assert_eq!(
            frames.last().map(|f| f.payload[..2].to_vec()),
            Some(1009u16.to_be_bytes().to_vec())
        );
        eprintln!("bomb in {} KiB frames refused in {:?}", chunk >> 10, t.elapsed());
    }
}

#[test]
fn rfc7692_8_limit_counts_inflated_bytes_across_frames() {
    for (limit, ok) in [(4999, false), (5000, true)] {
        let mut server = Connection::new(Role::Server, Config::default().max_message_size(Some(limit)));
        server.enable_deflate(&DEFAULT, &DeflateConfig::default());
        let mut codec = DeflateCodec::new(&DEFAULT, &DeflateConfig::default(), false);
        let msg = text_like(8, 5000);
        let frames = compress_fragments(&mut codec, &msg, &[1000, 2000]);
        for (i, f) in frames.iter().enumerate() {
            server.receive(&client_frame(
                if i == 0 { 1 } else { 0 },
                i + 1 == frames.len(),
                i == 0,
                f,
            ));
        }
        if ok {
            assert_eq!(next_message(&mut server).as_bytes(), &msg);
        } else {
            let (err, code) = failure(&mut server);
            assert!(matches!(err, ProtocolError::MessageTooLarge { .. }), "{err:?}");
            assert_eq!(code, 1009);
        }
    }
}

/// Sends `data` as one message in fragments of `frags` sizes (pings between them) from `tx`
/// to `rx`; returns what `rx` received.
fn send_fragmented(
    tx: &mut Connection,
    rx: &mut Connection,
    kind: MessageKind,
    data: &[u8],
    frags: &[usize],
) -> Message {
    let mut rest = data;
    for &s in frags {
        let s = s.min(rest.len());
        // Text cut inside a character is fine: UTF-8 is checked across the message.
        tx.send_fragment(kind, Bytes::copy_from_slice(&rest[..s]), false)
            .unwrap();
        tx.send_ping(b"").unwrap();
        rest = &rest[s..];
    }
    tx.send_fragment(kind, Bytes::copy_from_slice(rest), true)
        .unwrap();
    let frames = transfer(tx, rx);
    // Only the first data frame may carry RSV1 (auto-pongs may come first).
    assert!(frames.iter().filter(|f| f.opcode <= 2).skip(1).all(|f| !f.rsv1()));
    assert!(frames.iter().filter(|f| f.opcode > 2).all(|f| !f.rsv1()));
    next_message(rx)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Connections in both directions, whole messages and fragmented ones, interleaved pings.
    #[test]
    fn rfc7692_6_connection_round_trip(
        msgs in prop::collection::vec((arb_msg(), any::<bool>()), 1..8),
        snct in any::<bool>(), cnct in any::<bool>(),
        sbits in 8..=15u8, cbits in 8..=15u8, threshold in 0..200usize,
    ) {
        let p = params(snct, cnct, sbits, cbits);
        let cfg = DeflateConfig::default().threshold(threshold);
        let (mut server, mut client) = pair(&p, &cfg);
        for (m, binary) in &msgs {
            let data = if *binary { m.data.clone() } else { String::from_utf8_lossy(&m.data).into_owned().into_bytes() };
            let kind = if *binary { MessageKind::Binary } else { MessageKind::Text };
            let got = send_fragmented(&mut client, &mut server, kind, &data, &m.frags);
            prop_assert_eq!(got.kind(), kind);
            prop_assert_eq!(got.as_bytes(), &data);
            let got = send_fragmented(&mut server, &mut client, kind, &data, &m.frags);
            prop_assert_eq!(got.kind(), kind);
            prop_assert_eq!(got.as_bytes(), &data);
        }
    }
}

#[test]
fn compression_level_changes_between_messages_and_the_peer_still_inflates() {
    let text = Message::text(String::from_utf8(text_like(7, 20_000)).unwrap());
    for p in [DEFAULT, params(true, true, 15, 15)] {
        let (mut server, mut client) = pair(&p, &DeflateConfig::default().level(9));
        server.send(text.clone()).unwrap();
        let best = transfer(&mut server, &mut client);
        assert_eq!(next_message(&mut client), text);
        server.set_compression_level(0);
        server.send(text.clone()).unwrap();
        let stored = transfer(&mut server, &mut client);
        assert_eq!(
            next_message(&mut client),
            text,
            "context takeover survives the switch"
        );
        assert!(best[0].rsv1() && stored[0].rsv1());
        assert!(
            stored[0].payload.len() > text.len() && best[0].payload.len() < text.len() / 2,
            "level 0 stores ({} bytes), level 9 compresses ({} bytes)",
            stored[0].payload.len(),
            best[0].payload.len()
        );
        server.set_compression_level(9);
        server.send(text.clone()).unwrap();
        transfer(&mut server, &mut client);
        assert_eq!(next_message(&mut client), text);
    }
}

#[test]
fn a_compression_fault_fails_the_connection_with_1011_and_sends_nothing_uncompressed() {
    let (mut server, mut client) = pair(&DEFAULT, &DeflateConfig::default());
    server
        .send(Message::text("before the fault ".repeat(10)))
        .unwrap();
    transfer(&mut server, &mut client);
    assert_eq!(
        next_message(&mut client),
        Message::text("before the fault ".repeat(10))
    );
    server.fail_next_compression();
    let err = server.send(Message::text("lost ".repeat(100))).unwrap_err();
    assert!(matches!(err, SendError::Compression(_)), "{err:?}");
    let frames = transfer(&mut server, &mut client);
    assert_eq!(frames.len(), 1, "only the close frame: {frames:?}");
    assert_eq!(frames[0].opcode, 8);
    assert_eq!(
        u16::from_be_bytes([frames[0].payload[0], frames[0].payload[1]]),
        1011
    );
    assert_eq!(server.send(Message::text("after")), Err(SendError::Closed));
    // Inside a fragmented message too: the continuation is never sent uncompressed.
    let (mut server, mut client) = pair(&DEFAULT, &DeflateConfig::default());
    server
        .send_fragment(MessageKind::Text, Bytes::from("first half ".repeat(20)), false)
        .unwrap();
    server.fail_next_compression();
    assert!(
        server
            .send_fragment(MessageKind::Text, Bytes::from("second half"), true)
            .is_err()
    );
    let frames = transfer(&mut server, &mut client);
    assert_eq!(frames.last().map(|f| f.opcode), Some(8));
    assert!(
        frames.iter().all(|f| f.opcode != 0),
        "no continuation after the fault"
    );
}

// ---- idle shedding -------------------------------------------------------------------------

#[test]
fn shed_idle_keeps_context_takeover_valid_over_many_messages() {
    // Shedding every few messages (and, with `low_memory`, after every one): each message
    // still inflates, and the whole stream is valid for a 15-bit inflater that never reset.
    for low in [false, true] {
        let cfg = DeflateConfig::default().low_memory(low);
        let (mut s, mut c) = codecs(&DEFAULT, &cfg);
        let (mut stream, mut expected) = (Vec::new(), Vec::new());
        for i in 0..300u64 {
            let len = 100 + (i as usize * 997) % 12_000;
            let msg = if i % 5 == 4 {
                random_bytes(i, len)
            } else {
                text_like(i % 3, len)
            };
            let out = compress_one(&mut s, &msg);
            assert_rfc_payload(std::slice::from_ref(&out));
            assert_eq!(
                decompress_one(&mut c, &out).unwrap(),
                msg,
                "message {i}, low {low}"
            );
            stream.extend_from_slice(&out);
            stream.extend_from_slice(&TAIL);
            expected.extend_from_slice(&msg);
            if i % 3 == 0 {
                s.shed_idle();
                c.shed_idle();
                assert_eq!(s.holds(), (false, false), "the compressor goes; no inflate yet");
                assert!(c.holds().1, "the inflater keeps the peer's window");
            }
        }
        assert_eq!(inflate_raw(&stream, 1 << 15), Ok(expected));
    }
}

#[test]
fn shed_idle_compressor_still_refers_back_to_what_was_sent() {
    // Incompressible on its own; the second time, after a shed, it is a back-reference into
    // the history the new compressor starts from.
    let (mut s, mut c) = codecs(&DEFAULT, &DeflateConfig::default());
    let msg = random_bytes(3, 2000);
    let first = compress_one(&mut s, &msg);
    assert!(first.len() > 1900, "{} bytes", first.len());
    assert_eq!(decompress_one(&mut c, &first).unwrap(), msg);
    s.shed_idle();
    assert!(!s.holds().0);
    let again = compress_one(&mut s, &msg);
    assert!(again.len() < 40, "{} bytes", again.len());
    assert_eq!(decompress_one(&mut c, &again).unwrap(), msg);
    // The history is the last 8 KiB: a message sent further back is not in it.
    let (mut s, mut c) = codecs(&DEFAULT, &DeflateConfig::default());
    let old = random_bytes(6, 2000);
    for m in [&old, &random_bytes(9, HISTORY)] {
        let out = compress_one(&mut s, m);
        assert_eq!(decompress_one(&mut c, &out).unwrap(), *m);
    }
    s.shed_idle();
    let out = compress_one(&mut s, &old);
    assert!(out.len() > 1900, "{} bytes", out.len());
    assert_eq!(decompress_one(&mut c, &out).unwrap(), old);
}

#[test]
fn shed_idle_mid_message_is_a_no_op() {
    let (mut s, mut c) = codecs(&DEFAULT, &DeflateConfig::default());
    let msg = text_like(2, 4000);
    let mut frames = vec![Vec::new(), Vec::new()];
    s.compress(&msg[..1000], false, &mut frames[0]).unwrap();
    s.shed_idle();
    assert!(s.holds().0, "half a message sent: the compressor stays");
    s.compress(&msg[1000..], true, &mut frames[1]).unwrap();
    assert_eq!(decompress_frames(&mut c, &frames).unwrap(), msg);
    s.shed_idle();
    assert!(!s.holds().0);
}

#[test]
fn shed_idle_frees_the_inflater_only_without_the_peers_context_takeover() {
    let msg = text_like(1, 3000);
    for (client_nct, kept) in [(false, true), (true, false)] {
        let p = params(false, client_nct, 15, 15);
        let (mut server, mut client) = codecs(&p, &DeflateConfig::default());
        let out = compress_one(&mut client, &msg);
        assert_eq!(decompress_one(&mut server, &out).unwrap(), msg);
        server.shed_idle();
        assert_eq!(server.holds().1, kept, "client_no_context_takeover {client_nct}");
        // And the next message inflates either way.
        let out = compress_one(&mut client, &msg);
        assert_eq!(decompress_one(&mut server, &out).unwrap(), msg);
    }
}

#[test]
fn history_is_the_tail_of_what_was_sent() {
    // The ring of the last bytes compressed, in order, for windows that bound it (9 bits:
    // 512 bytes) and that do not (15 bits: HISTORY).
    for (bits, keep) in [(15, HISTORY), (9, 512)] {
        let mut s = DeflateCodec::new(&params(false, false, bits, 15), &DeflateConfig::default(), true);
        let mut all = Vec::new();
        for i in 0..200u64 {
            let msg = random_bytes(i, [1, 7, 300, 511, 512, 513, 4095, 4096, 5000][i as usize % 9]);
            compress_one(&mut s, &msg);
            all.extend_from_slice(&msg);
            if i % 7 == 0 {
                let tail = &all[all.len().saturating_sub(keep)..];
                assert_eq!(s.history(), tail, "{bits} bits, message {i}");
            }
        }
    }
}
