//! `Upgrader::on_request`: per-request decisions over real sockets, bytes checked on the wire.
//!
//! Requests are hand-written (tests/common `Req`, with the target rewritten where the query
//! matters); responses are read raw by the test client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, Req, connect_with, handshake, refused, spawn_echo, tcp_pair, within};
use ferrosocket::{Accept, DecisionError, Error, Message, Reject, Upgrader};
use http::header::{HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The valid request with `target` instead of `/chat`.
fn request_to(req: &Req, target: &str) -> Vec<u8> {
    let bytes = req.bytes();
    let text = String::from_utf8(bytes).unwrap();
    let rest = text.strip_prefix("GET /chat ").expect("a GET /chat request");
    format!("GET {target} {rest}").into_bytes()
}

/// Accepts `?token=s3cret` only.
fn token_upgrader() -> Upgrader {
    Upgrader::new().on_request(|req| match req.query_param("token") {
        Some(t) if t == "s3cret" => Ok(Accept::new()),
        _ => Err(Reject::new(StatusCode::UNAUTHORIZED)
            .header(WWW_AUTHENTICATE, HeaderValue::from_static("Token"))
            .body("missing or wrong token\n")),
    })
}

/// Reads everything the server sends until it closes the connection.
async fn read_all(client: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    within("the response and EOF", client.read_to_end(&mut raw))
        .await
        .expect("read until EOF");
    raw
}

#[tokio::test]
async fn right_token_upgrades_and_messages_flow() {
    let upgrader = token_upgrader();
    let (result, io) = handshake(&upgrader, &request_to(&Req::valid(), "/chat?room=1&token=s3cret")).await;
    let conn = result.expect("accepted");
    let mut client = Client::after_handshake(io).await;
    assert_eq!(client.response.status(), 101);
    assert_eq!(client.response.headers()["sec-websocket-accept"], common::ACCEPT);
    let echo = spawn_echo(conn);
    client.send("hello").await;
    assert_eq!(client.recv().await, Message::text("hello"));
    client.send(vec![1u8, 2, 3]).await;
    assert_eq!(client.recv().await, Message::binary(vec![1u8, 2, 3]));
    echo.abort();
}

#[tokio::test]
async fn wrong_or_missing_token_gets_exactly_the_401_and_a_closed_socket() {
    let upgrader = token_upgrader();
    let body = "missing or wrong token\n";
    let expected = format!(
        "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Token\r\nconnection: close\r\n\
         content-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    for target in [
        "/chat?token=guess",
        "/chat",
        "/chat?tok=s3cret",
        "/chat?token=S3CRET",
    ] {
        let (result, mut client) = handshake(&upgrader, &request_to(&Req::valid(), target)).await;
        match result {
            Err(Error::Rejected { status }) => assert_eq!(status, StatusCode::UNAUTHORIZED, "{target}"),
            other => panic!("{target}: {other:?}"),
        }
        // Exactly this response, then EOF (read_to_end returns only at EOF).
        let raw = read_all(&mut client).await;
        assert_eq!(String::from_utf8(raw).unwrap(), expected, "{target}");
    }
}

#[tokio::test]
async fn token_check_runs_on_the_read_request_path_too() {
    let upgrader = token_upgrader();
    for (target, ok) in [("/chat?token=s3cret", true), ("/chat?token=no", false)] {
        let (mut server, mut client) = tcp_pair().await;
        client
            .write_all(&request_to(&Req::valid(), target))
            .await
            .unwrap();
        let incoming = within("read_request", upgrader.read_request(&mut server))
            .await
            .expect("a request head");
        let result = within(
            "upgrade",
            upgrader.upgrade(server, &incoming.request, &incoming.leftover),
        )
        .await;
        if ok {
            let conn = result.expect("accepted");
            let mut client = Client::after_handshake(client).await;
            assert_eq!(client.response.status(), 101);
            let echo = spawn_echo(conn);
            client.send("via upgrade").await;
            assert_eq!(client.recv().await, Message::text("via upgrade"));
            echo.abort();
        } else {
            assert!(matches!(result, Err(Error::Rejected { status }) if status == 401));
            let raw = read_all(&mut client).await;
            assert!(raw.starts_with(b"HTTP/1.1 401 Unauthorized\r\n"), "{raw:?}");
        }
    }
}

#[tokio::test]
async fn session_cookie_is_found_among_cookies_and_across_headers() {
    let upgrader = Upgrader::new().on_request(|req| {
        let session = req
            .cookie("session")
            .ok_or(Reject::new(StatusCode::FORBIDDEN).body("no session\n"))?;
        if session == "abc" {
            Ok(Accept::new())
        } else {
            Err(Reject::new(StatusCode::FORBIDDEN).body("bad session\n"))
        }
    });
    for req in [
        Req::valid().add("Cookie", "theme=dark; session=abc; lang=en"),
        Req::valid()
            .add("Cookie", "theme=dark; lang=en")
            .add("Cookie", "x=1;session=abc"),
        Req::valid().add("Cookie", "session=\"abc\""),
    ] {
        let (conn, mut client) = connect_with(&upgrader, req).await;
        let echo = spawn_echo(conn);
        client.send("in").await;
        assert_eq!(client.recv().await, Message::text("in"));
        echo.abort();
    }
    for (req, body) in [
        (Req::valid(), "no session\n"),
        (
            Req::valid().add("Cookie", "theme=dark; sessionx=abc"),
            "no session\n",
        ),
        (Req::valid().add("Cookie", "Session=abc"), "no session\n"),
        (Req::valid().add("Cookie", "session=abd"), "bad session\n"),
    ] {
        let r = refused(&upgrader, &req.bytes()).await;
        assert_eq!(r.response.status(), 403);
        assert_eq!(r.response.headers()["connection"], "close");
        assert_eq!(r.body, body.as_bytes());
        assert!(matches!(r.error, Error::Rejected { status } if status == 403));
    }
}

#[tokio::test]
async fn callback_chooses_an_offered_subprotocol_over_the_static_list() {
    // The static list would pick "v1"; the callback picks what the path asks for.
    let upgrader = Upgrader::new()
        .subprotocols(["v1", "v2"])
        .on_request(|req| match req.path() {
            "/v2" => Ok(Accept::new().subprotocol("v2")),
            "/none" => Ok(Accept::new().no_subprotocol()),
            "/v9" => Ok(Accept::new().subprotocol("v9")),
            _ => Ok(Accept::new()),
        });
    let offer = Req::valid().add("Sec-WebSocket-Protocol", "v1, v2");
    let cases = [("/chat", Some("v1")), ("/v2", Some("v2")), ("/none", None)];
    for (path, want) in cases {
        let (result, io) = handshake(&upgrader, &request_to(&offer, path)).await;
        let conn = result.expect("accepted");
        let client = Client::after_handshake(io).await;
        assert_eq!(client.response.status(), 101, "{path}");
        assert_eq!(conn.subprotocol(), want, "{path}");
        let header = client.response.headers().get("sec-websocket-protocol");
        assert_eq!(header.map(|v| v.to_str().unwrap()), want, "{path}");
        assert_eq!(
            client
                .response
                .headers()
                .get_all("sec-websocket-protocol")
                .iter()
                .count(),
            usize::from(want.is_some()),
            "{path}: one header at most"
        );
    }

    // Choosing a protocol the client did not offer is a bug in the callback: 500.
    let (result, mut client) = handshake(&upgrader, &request_to(&offer, "/v9")).await;
    match result {
        Err(Error::BadDecision(DecisionError::SubprotocolNotOffered(p))) => assert_eq!(p, "v9"),
        other => panic!("{other:?}"),
    }
    let raw = read_all(&mut client).await;
    assert_eq!(
        String::from_utf8(raw).unwrap(),
        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n\
         connection: close\r\ncontent-length: 22\r\n\r\ninternal server error\n"
    );
}

#[tokio::test]
async fn per_connection_header_is_only_in_that_connections_101() {
    let upgrader = Upgrader::new()
        .response_header(
            HeaderName::from_static("x-server"),
            HeaderValue::from_static("ferro"),
        )
        .on_request(|req| {
            let mut accept = Accept::new();
            if let Some(user) = req.query_param("user") {
                let value = HeaderValue::from_str(&user).map_err(|_| Reject::new(StatusCode::BAD_REQUEST))?;
                accept = accept.header(HeaderName::from_static("x-user"), value);
            }
            Ok(accept)
        });
    let mut seen = Vec::new();
    for target in ["/chat?user=alice", "/chat?user=bob", "/chat"] {
        let (result, io) = handshake(&upgrader, &request_to(&Req::valid(), target)).await;
        let _conn = result.expect("accepted");
        let client = Client::after_handshake(io).await;
        let h = client.response.headers();
        assert_eq!(h["x-server"], "ferro", "{target}: the static header stays on all");
        let users: Vec<_> = h
            .get_all("x-user")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        seen.push(users);
    }
    assert_eq!(seen, [vec!["alice".to_owned()], vec!["bob".to_owned()], vec![]]);

    // A header the handshake writes itself cannot be set per connection.
    let bad = Upgrader::new().on_request(|_| {
        Ok(Accept::new().header(
            HeaderName::from_static("sec-websocket-accept"),
            HeaderValue::from_static("forged"),
        ))
    });
    let r = refused(&bad, &Req::valid().bytes()).await;
    assert_eq!(r.response.status(), 500);
    assert!(matches!(
        r.error,
        Error::BadDecision(DecisionError::ReservedHeader(ref n)) if n == "sec-websocket-accept"
    ));
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    subprotocols: Vec<String>,
    extension_names: Vec<String>,
    raw_extensions: Vec<String>,
    peer: Option<std::net::SocketAddr>,
}

#[tokio::test]
async fn callback_sees_method_path_offers_and_peer_address() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    let upgrader = Upgrader::new().enable_compression(true).on_request(move |req| {
        assert_eq!(req.method(), Method::GET);
        *record.lock().unwrap() = Seen {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            query: req.query().map(str::to_owned),
            subprotocols: req.subprotocols().iter().map(|s| (*s).to_owned()).collect(),
            extension_names: req
                .extensions()
                .expect("well-formed offer")
                .into_iter()
                .map(|e| e.name)
                .collect(),
            raw_extensions: req
                .extension_headers()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect(),
            peer: req.peer_addr(),
        };
        Ok(Accept::new())
    });
    let req = Req::valid()
        .add("Sec-WebSocket-Protocol", "b, a")
        .add(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; client_max_window_bits",
        )
        .add("Sec-WebSocket-Extensions", "x-webkit-foo");
    let bytes = request_to(&req, "/rooms/7?x=1");

    // accept: the upgrader cannot know the peer.
    let (result, io) = handshake(&upgrader, &bytes).await;
    let _conn = result.expect("accepted");
    let client = Client::after_handshake(io).await;
    assert_eq!(client.response.status(), 101);
    assert!(
        client.response.headers()["sec-websocket-extensions"]
            .to_str()
            .unwrap()
            .starts_with("permessage-deflate"),
        "compression is still negotiated"
    );
    let expected = Seen {
        method: "GET".into(),
        path: "/rooms/7".into(),
        query: Some("x=1".into()),
        subprotocols: vec!["b".into(), "a".into()],
        extension_names: vec!["permessage-deflate".into(), "x-webkit-foo".into()],
        raw_extensions: vec![
            "permessage-deflate; client_max_window_bits".into(),
            "x-webkit-foo".into(),
        ],
        peer: None,
    };
    assert_eq!(*seen.lock().unwrap(), expected);

    // accept_from: it does.
    let (server, mut client) = tcp_pair().await;
    let peer = client.local_addr().unwrap();
    client.write_all(&bytes).await.unwrap();
    let _conn = within("accept_from", upgrader.accept_from(server, peer))
        .await
        .expect("accepted");
    let client = Client::after_handshake(client).await;
    assert_eq!(client.response.status(), 101);
    assert_eq!(seen.lock().unwrap().peer, Some(peer));
}

#[tokio::test]
async fn callback_does_not_run_for_invalid_or_cross_origin_requests() {
    let calls = Arc::new(Mutex::new(0u32));
    let counter = calls.clone();
    let upgrader = Upgrader::new().on_request(move |_| {
        *counter.lock().unwrap() += 1;
        Ok(Accept::new())
    });
    let r = refused(&upgrader, &Req::valid().without("sec-websocket-key").bytes()).await;
    assert_eq!(r.response.status(), 400);
    let r = refused(
        &upgrader,
        &Req::valid().add("Origin", "http://evil.example").bytes(),
    )
    .await;
    assert_eq!(r.response.status(), 403);
    assert!(matches!(r.error, Error::Handshake(_)));
    assert_eq!(*calls.lock().unwrap(), 0);
    let (_conn, _client) = connect_with(&upgrader, Req::valid()).await;
    assert_eq!(*calls.lock().unwrap(), 1);
}

#[tokio::test]
async fn refusal_below_300_is_a_callback_bug() {
    let upgrader = Upgrader::new().on_request(|_| Err(Reject::new(StatusCode::OK).body("hm")));
    let r = refused(&upgrader, &Req::valid().bytes()).await;
    assert_eq!(r.response.status(), 500);
    assert!(matches!(
        r.error,
        Error::BadDecision(DecisionError::RejectStatus(s)) if s == StatusCode::OK
    ));
}
