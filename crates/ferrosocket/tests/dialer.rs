//! The `Dialer`'s extension points against real sockets on 127.0.0.1 and in-process pipes:
//! the connector hook, requests as URL strings, URIs and whole `http::Request`s, and
//! `https://` proxies (a TLS proxy the test starts, with rcgen certificates made at run time).
//! Every wait is bounded; timeouts are tested on paused time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::within;
use ferrosocket::http::header::{HOST, HeaderName, HeaderValue, ORIGIN};
use ferrosocket::http::{self, Request, Uri};
use ferrosocket::proto::HandshakeError;
use ferrosocket::proto::accept_key;
use ferrosocket::{
    Dialer, Error, MaybeTlsStream, Message, ProxyConfig, ProxyError, RequestError, TimeoutKind, Upgrader,
};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn dialer() -> Dialer {
    Dialer::new()
        .proxy_from_env(false)
        .connect_timeout(Some(Duration::from_secs(2)))
        .handshake_timeout(Some(Duration::from_secs(2)))
}

/// Echoes every message of an accepted connection until it ends.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(upgrader: Upgrader, io: S) {
    let Ok(mut conn) = upgrader.accept(io).await else {
        return;
    };
    while let Ok(msg) = conn.recv().await {
        if conn.send(msg).await.is_err() {
            break;
        }
    }
}

/// An echo server built on ferrosocket's `Upgrader`.
async fn echo_server(upgrader: Upgrader) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(echo(upgrader.clone(), tcp));
        }
    });
    addr
}

/// Reads an HTTP head; returns it as text and the bytes after it.
async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8(buf).unwrap(), rest);
        }
        let mut chunk = [0u8; 1024];
        let n = io.read(&mut chunk).await.unwrap();
        assert!(n > 0, "peer closed before the end of the head");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn headers_named<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

/// A server that accepts one connection, answers the upgrade and sends the request head.
async fn head_server() -> (SocketAddr, tokio::sync::oneshot::Receiver<String>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let (head, _) = read_head(&mut tcp).await;
        let accept = accept_key(header(&head, "sec-websocket-key").unwrap().as_bytes());
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        tcp.write_all(resp.as_bytes()).await.unwrap();
        tx.send(head).unwrap();
        let _ = tcp.read(&mut [0; 64]).await;
    });
    (addr, rx)
}

type Calls = Arc<Mutex<Vec<(String, u16)>>>;

/// A dialer whose connector records every address it is asked for and connects with TCP.
fn recording_dialer() -> (Dialer, Calls) {
    let calls = Calls::default();
    let seen = calls.clone();
    let dialer = dialer().connector(move |host: &str, port: u16| {
        seen.lock().unwrap().push((host.to_owned(), port));
        let host = host.to_owned();
        async move { TcpStream::connect((host.as_str(), port)).await }
    });
    (dialer, calls)
}

fn calls(c: &Calls) -> Vec<(String, u16)> {
    c.lock().unwrap().clone()
}

// ---- the proxy -----------------------------------------------------------------------------

/// `Basic` credentials the test proxies require: `user` / `pa:ss`.
fn proxy_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("user:pa:ss")
    )
}

/// Serves one CONNECT request on `client`: checks the credentials (407 without them), dials
/// the target's port on 127.0.0.1 and relays. Records each request head in `heads`.
async fn serve_connect<S>(mut client: S, heads: Arc<Mutex<Vec<String>>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (head, rest) = read_head(&mut client).await;
    assert!(rest.is_empty(), "bytes after CONNECT before the answer");
    heads.lock().unwrap().push(head.clone());
    let first = head.lines().next().unwrap().to_owned();
    let mut parts = first.split(' ');
    assert_eq!(parts.next(), Some("CONNECT"));
    let target = parts.next().unwrap().to_owned();
    assert_eq!(header(&head, "host"), Some(target.as_str()));
    if header(&head, "proxy-authorization") != Some(proxy_auth().as_str()) {
        let _ = client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
            .await;
        let _ = client.shutdown().await;
        return;
    }
    let port: u16 = target.rsplit_once(':').unwrap().1.parse().unwrap();
    let mut upstream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .unwrap();
    client.flush().await.unwrap();
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// A plain `http://` CONNECT proxy.
async fn http_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(serve_connect(client, seen.clone()));
        }
    });
    (addr, heads)
}

// ---- the connector hook --------------------------------------------------------------------

#[tokio::test]
async fn connector_is_asked_for_the_target_and_its_stream_is_used() {
    let addr = echo_server(Upgrader::new()).await;
    let (dialer, seen) = recording_dialer();
    let (mut conn, resp) = within("dialer.connect", dialer.connect(format!("ws://{addr}/hook")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(calls(&seen), [("127.0.0.1".to_owned(), addr.port())]);
    let stream = conn.get_ref();
    assert!(matches!(stream, MaybeTlsStream::Layered(s) if s.is_custom()));
    assert!(!stream.is_tls());
    assert!(stream.tcp().is_none());
    let err = conn.peer_addr().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    within("conn.send_text", conn.send_text("hooked")).await.unwrap();
    assert_eq!(
        within("conn.recv", conn.recv()).await.unwrap(),
        Message::text("hooked")
    );
    within("conn.close", conn.close(None)).await.unwrap();
}

#[tokio::test]
async fn connector_over_an_in_process_pipe() {
    let upgrader = Upgrader::new().subprotocols(["pipe.v1"]);
    let dialer = dialer()
        .subprotocols(["pipe.v1"])
        .connector(move |host: &str, port: u16| {
            assert_eq!((host, port), ("in-process.invalid", 80));
            let (client, server) = tokio::io::duplex(64 << 10);
            tokio::spawn(echo(upgrader.clone(), server));
            async move { Ok(client) }
        });
    // No name is resolved: the hook is the only way to this host.
    let (mut conn, _) = within("dialer.connect", dialer.connect("ws://in-process.invalid/echo"))
        .await
        .unwrap();
    assert_eq!(conn.subprotocol(), Some("pipe.v1"));
    let big = vec![3u8; 200_000];
    within("conn.send_binary", conn.send_binary(big.clone()))
        .await
        .unwrap();
    assert_eq!(
        within("conn.recv", conn.recv()).await.unwrap(),
        Message::binary(big)
    );
    within("conn.close", conn.close(None)).await.unwrap();
}

#[tokio::test]
async fn connector_is_asked_for_the_proxy_address() {
    let target = echo_server(Upgrader::new()).await;
    let (proxy, heads) = http_proxy().await;
    let (dialer, seen) = recording_dialer();
    let dialer = dialer.proxy_url(&format!("http://user:pa%3Ass@{proxy}")).unwrap();
    let (mut conn, _) = within("dialer.connect", dialer.connect(format!("ws://{target}/")))
        .await
        .unwrap();
    assert_eq!(calls(&seen), [("127.0.0.1".to_owned(), proxy.port())]);
    let heads = heads.lock().unwrap().clone();
    assert!(
        heads[0].starts_with(&format!("CONNECT {target} HTTP/1.1\r\n")),
        "{heads:?}"
    );
    within("conn.send_text", conn.send_text("hook, then proxy"))
        .await
        .unwrap();
    assert_eq!(
        within("conn.recv", conn.recv()).await.unwrap(),
        Message::text("hook, then proxy")
    );
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_bounds_a_hook_that_never_completes() {
    let dialer = dialer()
        .connect_timeout(Some(Duration::from_secs(3)))
        .connector(|_: &str, _: u16| std::future::pending::<io::Result<TcpStream>>());
    let started = tokio::time::Instant::now();
    let err = dialer.connect("ws://never.invalid/").await.unwrap_err();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Connect)), "{err:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_millis(3100),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn handshake_timeout_applies_over_a_hook_transport() {
    // The server end stays open and silent.
    let kept = Arc::new(Mutex::new(Vec::new()));
    let keep = kept.clone();
    let dialer = dialer()
        .handshake_timeout(Some(Duration::from_secs(4)))
        .connector(move |_: &str, _: u16| {
            let (client, server) = tokio::io::duplex(1024);
            keep.lock().unwrap().push(server);
            async move { Ok(client) }
        });
    let started = tokio::time::Instant::now();
    let err = dialer.connect("ws://silent.invalid/").await.unwrap_err();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Handshake)), "{err:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_millis(4100),
        "{waited:?}"
    );
    assert_eq!(kept.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn connector_errors_reach_the_caller_unchanged() {
    #[derive(Debug, thiserror::Error)]
    #[error("no route in the test network")]
    struct NoRoute;
    let dialer = dialer().connector(|_: &str, _: u16| async {
        Err::<TcpStream, _>(io::Error::new(io::ErrorKind::HostUnreachable, NoRoute))
    });
    let err = within("dialer.connect", dialer.connect("ws://somewhere.invalid/"))
        .await
        .unwrap_err();
    let Error::Io(e) = &err else { panic!("{err:?}") };
    assert_eq!(e.kind(), io::ErrorKind::HostUnreachable);
    assert!(e.get_ref().unwrap().downcast_ref::<NoRoute>().is_some());
}

#[test]
fn streams_stay_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<MaybeTlsStream>();
    send_sync::<Dialer>();
    send::<ferrosocket::Conn<MaybeTlsStream>>();
}

// ---- requests: strings, URIs, http::Request ------------------------------------------------

#[tokio::test]
async fn connect_takes_strings_uris_and_requests() {
    let addr = echo_server(Upgrader::new()).await;
    let url = format!("ws://{addr}/any");
    let uri: Uri = url.parse().unwrap();
    let d = dialer();
    let conns = vec![
        within("d.connect", d.connect(url.as_str())).await.unwrap().0,
        within("d.connect", d.connect(&url)).await.unwrap().0,
        within("d.connect", d.connect(url.clone())).await.unwrap().0,
        within("d.connect", d.connect(&uri)).await.unwrap().0,
        within("d.connect", d.connect(uri.clone())).await.unwrap().0,
        within("d.connect", d.connect(Request::get(&url).body(()).unwrap()))
            .await
            .unwrap()
            .0,
    ];
    for (i, mut conn) in conns.into_iter().enumerate() {
        let text = format!("conn {i}");
        within("conn.send_text", conn.send_text(text.clone()))
            .await
            .unwrap();
        assert_eq!(
            within("conn.recv", conn.recv()).await.unwrap(),
            Message::text(text)
        );
    }
}

#[tokio::test]
async fn request_headers_merge_with_the_dialers_and_win() {
    let (addr, head) = head_server().await;
    let d = dialer()
        .header(ORIGIN, HeaderValue::from_static("https://dialer.example"))
        .header(
            HeaderName::from_static("x-both"),
            HeaderValue::from_static("dialer-1"),
        )
        .header(
            HeaderName::from_static("x-both"),
            HeaderValue::from_static("dialer-2"),
        );
    let req = Request::get(format!("ws://{addr}/merge?x=1"))
        .header("x-both", "request")
        .header("x-call", "only here")
        .body(())
        .unwrap();
    let _conn = within("d.connect", d.connect(req)).await.unwrap();
    let head = within("head", head).await.unwrap();
    assert!(head.starts_with("GET /merge?x=1 HTTP/1.1\r\n"), "{head}");
    // The derived Host comes first, as for a URL string.
    let second = head.lines().nth(1).unwrap();
    assert_eq!(second, format!("host: {addr}"));
    assert_eq!(header(&head, "origin"), Some("https://dialer.example"));
    assert_eq!(headers_named(&head, "x-both"), ["request"]);
    assert_eq!(header(&head, "x-call"), Some("only here"));
    assert_eq!(header(&head, "sec-websocket-version"), Some("13"));
}

#[tokio::test]
async fn host_from_the_request_then_the_dialer_then_the_url() {
    let d = dialer().header(HOST, HeaderValue::from_static("dialer.example"));
    let (addr, head) = head_server().await;
    let req = Request::get(format!("ws://{addr}/"))
        .header(HOST, "request.example")
        .body(())
        .unwrap();
    let _conn = within("d.connect", d.connect(req)).await.unwrap();
    assert_eq!(
        headers_named(&within("head", head).await.unwrap(), "host"),
        ["request.example"]
    );

    let (addr, head) = head_server().await;
    let _conn = within("d.connect", d.connect(format!("ws://{addr}/")))
        .await
        .unwrap();
    assert_eq!(
        headers_named(&within("head", head).await.unwrap(), "host"),
        ["dialer.example"]
    );

    let (addr, head) = head_server().await;
    let uri: Uri = format!("ws://{addr}/").parse().unwrap();
    let _conn = within("dialer.connect", dialer().connect(uri)).await.unwrap();
    assert_eq!(
        headers_named(&within("head", head).await.unwrap(), "host"),
        [addr.to_string()]
    );
}

#[tokio::test]
async fn request_subprotocols_replace_the_dialers() {
    // The server prefers "a": had the offers been merged, it would pick "a".
    let addr = echo_server(Upgrader::new().subprotocols(["a", "b"])).await;
    let d = dialer().subprotocols(["a"]);
    let (conn, _) = within("d.connect", d.connect(format!("ws://{addr}/")))
        .await
        .unwrap();
    assert_eq!(conn.subprotocol(), Some("a"));
    let req = Request::get(format!("ws://{addr}/"))
        .header("sec-websocket-protocol", "b, c")
        .body(())
        .unwrap();
    let (conn, resp) = within("d.connect", d.connect(req)).await.unwrap();
    assert_eq!(conn.subprotocol(), Some("b"));
    assert_eq!(resp.headers()["sec-websocket-protocol"], "b");
}

#[tokio::test]
async fn handshake_headers_in_a_request_are_refused_before_connecting() {
    let (d, seen) = recording_dialer();
    for name in [
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-accept",
        "sec-websocket-extensions",
    ] {
        let req = Request::get("ws://127.0.0.1:9/")
            .header(name, "x")
            .body(())
            .unwrap();
        let err = within("d.connect", d.connect(req)).await.unwrap_err();
        match &err {
            Error::Request(RequestError::ManagedHeader(h)) => assert_eq!(h.as_str(), name),
            other => panic!("{name}: {other:?}"),
        }
        assert!(err.to_string().contains(name), "{err}");
    }
    assert!(calls(&seen).is_empty(), "nothing may be dialled");
}

#[tokio::test]
async fn requests_must_be_get_with_an_absolute_websocket_url() {
    let (d, seen) = recording_dialer();
    let post = Request::post("ws://127.0.0.1:9/").body(()).unwrap();
    let err = within("d.connect", d.connect(post)).await.unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::MethodNotGet)),
        "{err:?}"
    );
    for uri in ["/relative", "ftp://127.0.0.1/"] {
        let req = Request::get(uri).header(HOST, "127.0.0.1").body(()).unwrap();
        let err = within("d.connect", d.connect(req)).await.unwrap_err();
        assert!(
            matches!(err, Error::Handshake(HandshakeError::BadUrl(_))),
            "{uri}: {err:?}"
        );
    }
    let err = within("d.connect", d.connect(Uri::from_static("/path")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::BadUrl(_))),
        "{err:?}"
    );
    assert!(calls(&seen).is_empty());
}

#[test]
fn http_is_reexported() {
    let _: ferrosocket::http::StatusCode = http::StatusCode::SWITCHING_PROTOCOLS;
}

// ---- https:// proxies ----------------------------------------------------------------------

#[cfg(feature = "rustls")]
mod tls_proxy {
    use super::*;
    use ferrosocket::tls::rustls::RootCertStore;
    use ferrosocket::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use ferrosocket::tls::{TlsAcceptor, client_config_with_roots, rustls, server_config};

    struct Cert {
        der: CertificateDer<'static>,
        key: Vec<u8>,
    }

    fn self_signed() -> Cert {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        Cert {
            der: ck.cert.der().clone(),
            key: ck.signing_key.serialize_der(),
        }
    }

    fn acceptor(cert: &Cert) -> TlsAcceptor {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone()));
        TlsAcceptor::from(server_config(vec![cert.der.clone()], key).unwrap())
    }

    fn trusting(cert: &Cert) -> Arc<rustls::ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(cert.der.clone()).unwrap();
        client_config_with_roots(roots).unwrap()
    }

    /// An `https://` CONNECT proxy with `cert`: TLS accept, then [`serve_connect`].
    async fn https_proxy(cert: &Cert) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = acceptor(cert);
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    serve_connect(tls, seen).await;
                });
            }
        });
        (addr, heads)
    }

    /// A `wss://` echo server with `cert`.
    async fn wss_echo_server(cert: &Cert) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = acceptor(cert);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                    {
                        echo(Upgrader::new(), tls).await;
                    }
                });
            }
        });
        addr
    }

    fn proxy_url(proxy: SocketAddr) -> String {
        format!("https://user:pa%3Ass@localhost:{}", proxy.port())
    }

    #[tokio::test]
    async fn ws_through_an_https_proxy_with_the_dialers_tls_config() {
        let cert = self_signed();
        let (proxy, heads) = https_proxy(&cert).await;
        let target = echo_server(Upgrader::new()).await;
        let d = dialer()
            .tls_config(trusting(&cert))
            .proxy_url(&proxy_url(proxy))
            .unwrap();
        let (mut conn, _) = within("d.connect", d.connect(format!("ws://{target}/")))
            .await
            .unwrap();
        let heads = heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 1);
        assert!(heads[0].starts_with(&format!("CONNECT {target} HTTP/1.1\r\n")));
        assert_eq!(
            header(&heads[0], "proxy-authorization"),
            Some(proxy_auth().as_str())
        );
        let stream = conn.get_ref();
        assert!(matches!(stream, MaybeTlsStream::Layered(s) if !s.is_custom()));
        assert!(!stream.is_tls(), "tls to the proxy only");
        assert_eq!(conn.peer_addr().unwrap(), proxy);
        for i in 0..10 {
            let text = format!("via tls proxy {i}");
            within("conn.send_text", conn.send_text(text.clone()))
                .await
                .unwrap();
            assert_eq!(
                within("conn.recv", conn.recv()).await.unwrap(),
                Message::text(text)
            );
        }
        within("conn.close", conn.close(None)).await.unwrap();
    }

    #[tokio::test]
    async fn wss_through_an_https_proxy_is_tls_in_tls() {
        // Different certificates: the proxy's is trusted by its own configuration, the
        // server's by the dialer's.
        let (proxy_cert, server_cert) = (self_signed(), self_signed());
        let (proxy, heads) = https_proxy(&proxy_cert).await;
        let target = wss_echo_server(&server_cert).await;
        let config = ProxyConfig::from_url(&proxy_url(proxy))
            .unwrap()
            .tls_config(trusting(&proxy_cert));
        assert!(config.is_tls());
        let d = dialer().tls_config(trusting(&server_cert)).proxy(config);
        let url = format!("wss://localhost:{}/secure", target.port());
        let (mut conn, _) = within("d.connect", d.connect(url)).await.unwrap();
        let heads = heads.lock().unwrap().clone();
        assert!(heads[0].starts_with(&format!("CONNECT localhost:{} HTTP/1.1\r\n", target.port())));
        assert!(conn.get_ref().is_tls());
        assert!(matches!(conn.get_ref(), MaybeTlsStream::Layered(_)));
        let big = vec![0x5a_u8; 1 << 20];
        within("conn.send_binary", conn.send_binary(big.clone()))
            .await
            .unwrap();
        assert_eq!(
            within("conn.recv", conn.recv()).await.unwrap(),
            Message::binary(big)
        );
        within("conn.send_text", conn.send_text("inner")).await.unwrap();
        assert_eq!(
            within("conn.recv", conn.recv()).await.unwrap(),
            Message::text("inner")
        );
        within("conn.close", conn.close(None)).await.unwrap();
    }

    #[tokio::test]
    async fn https_proxy_over_a_connector_hook_with_a_wss_target() {
        let cert = self_signed();
        let (proxy, _) = https_proxy(&cert).await;
        let target = wss_echo_server(&cert).await;
        let (d, seen) = recording_dialer();
        let d = d
            .tls_config(trusting(&cert))
            .proxy_url(&proxy_url(proxy))
            .unwrap();
        let url = format!("wss://localhost:{}/", target.port());
        let (mut conn, _) = within("d.connect", d.connect(url)).await.unwrap();
        assert_eq!(calls(&seen), [("localhost".to_owned(), proxy.port())]);
        let stream = conn.get_ref();
        assert!(stream.is_tls() && stream.tcp().is_none());
        within("conn.send_text", conn.send_text("three layers"))
            .await
            .unwrap();
        assert_eq!(
            within("conn.recv", conn.recv()).await.unwrap(),
            Message::text("three layers")
        );
    }

    #[tokio::test]
    async fn wss_over_a_connector_hook() {
        let cert = self_signed();
        let target = wss_echo_server(&cert).await;
        let (d, seen) = recording_dialer();
        let d = d.tls_config(trusting(&cert));
        let (mut conn, _) = within(
            "d.connect",
            d.connect(format!("wss://localhost:{}/", target.port())),
        )
        .await
        .unwrap();
        assert_eq!(calls(&seen), [("localhost".to_owned(), target.port())]);
        assert!(conn.get_ref().is_tls());
        within("conn.send_text", conn.send_text("tls over a hook"))
            .await
            .unwrap();
        assert_eq!(
            within("conn.recv", conn.recv()).await.unwrap(),
            Message::text("tls over a hook")
        );
    }

    #[tokio::test]
    async fn https_proxy_checks_credentials() {
        let cert = self_signed();
        let (proxy, _) = https_proxy(&cert).await;
        let target = echo_server(Upgrader::new()).await;
        let config = ProxyConfig::new("localhost", proxy.port())
            .tls(true)
            .basic_auth("user", "wrong");
        let d = dialer().tls_config(trusting(&cert)).proxy(config);
        let err = within("d.connect", d.connect(format!("ws://{target}/")))
            .await
            .unwrap_err();
        match &err {
            Error::Proxy(ProxyError::Refused { status, headers, .. }) => {
                assert_eq!(*status, 407);
                assert!(headers.contains_key("proxy-authenticate"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn untrusted_proxy_certificate_is_refused() {
        let (proxy_cert, other) = (self_signed(), self_signed());
        let (proxy, heads) = https_proxy(&proxy_cert).await;
        // The dialer trusts the server's certificate, not the proxy's.
        let d = dialer()
            .tls_config(trusting(&other))
            .proxy_url(&proxy_url(proxy))
            .unwrap();
        let err = within("d.connect", d.connect("ws://127.0.0.1:9/"))
            .await
            .unwrap_err();
        let Error::Io(e) = &err else { panic!("{err:?}") };
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let text = err.to_string();
        assert!(
            text.contains("tls handshake with the proxy localhost")
                && text.contains("ProxyConfig::tls_config"),
            "{text}"
        );
        assert!(
            heads.lock().unwrap().is_empty(),
            "no CONNECT before the proxy is verified"
        );
    }

    #[tokio::test]
    async fn plain_proxy_behind_an_https_url_fails_cleanly() {
        // A plain HTTP proxy answers the TLS hello with an HTTP error.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.read(&mut [0; 1024]).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        });
        let cert = self_signed();
        let d = dialer()
            .tls_config(trusting(&cert))
            .proxy_url(&format!("https://localhost:{}", proxy.port()))
            .unwrap();
        let err = within("d.connect", d.connect("ws://127.0.0.1:9/"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Io(_) | Error::Closed(_)), "{err:?}");
        assert!(err.to_string().contains("proxy"), "{err}");
    }
}

/// A jar that keeps every `name=value` the server set, by name, and records the URLs it saw.
#[derive(Default)]
struct RecordingJar {
    pairs: Mutex<Vec<(String, String)>>,
    seen: Mutex<Vec<String>>,
}

impl ferrosocket::CookieJar for RecordingJar {
    fn cookies(&self, uri: &http::Uri) -> Option<http::HeaderValue> {
        self.seen.lock().unwrap().push(format!("get {uri}"));
        let pairs = self.pairs.lock().unwrap();
        let joined: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        (!joined.is_empty()).then(|| joined.join("; ").parse().unwrap())
    }

    fn set_cookies(&self, uri: &http::Uri, set_cookie: &mut dyn Iterator<Item = &http::HeaderValue>) {
        self.seen.lock().unwrap().push(format!("set {uri}"));
        let mut pairs = self.pairs.lock().unwrap();
        for value in set_cookie {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            pairs.retain(|(n, _)| n != name);
            pairs.push((name.to_owned(), value.to_owned()));
        }
    }
}

/// gorilla's `Dialer.Jar`: the jar's cookies go with every handshake (after the request's own
/// `Cookie` pairs, in one header), and the `Set-Cookie` headers of every answer go to the
/// jar, a 101 and a refusal alike. Without a jar only the request's own cookies go.
#[tokio::test]
async fn the_cookie_jar_sends_and_keeps_cookies_across_handshakes() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let record = received.clone();
    let upgrader = Upgrader::new().on_request(move |req| {
        let cookie = req.headers().get(http::header::COOKIE);
        let cookie = cookie.map_or("-", |c| c.to_str().unwrap()).to_owned();
        let mut log = record.lock().unwrap();
        log.push(cookie);
        let set = http::HeaderValue::try_from(format!("n={}; Path=/; HttpOnly", log.len())).unwrap();
        if req.path() == "/refuse" {
            let set_too = http::HeaderValue::from_static("refused=yes");
            let reject = ferrosocket::Reject::new(http::StatusCode::FORBIDDEN);
            return Err(reject
                .header(http::header::SET_COOKIE, set)
                .header(http::header::SET_COOKIE, set_too));
        }
        Ok(ferrosocket::Accept::new().header(http::header::SET_COOKIE, set))
    });
    let addr = echo_server(upgrader).await;
    let jar = Arc::new(RecordingJar::default());
    let d = dialer().cookie_jar(jar.clone());
    let url = format!("ws://{addr}/ws");

    let (_a, resp) = d.connect(url.as_str()).await.unwrap();
    assert_eq!(resp.headers()[http::header::SET_COOKIE], "n=1; Path=/; HttpOnly");
    let mut own = ferrosocket::IntoClientRequest::into_client_request(url.as_str()).unwrap();
    own.headers_mut()
        .insert(http::header::COOKIE, http::HeaderValue::from_static("own=x"));
    let _b = d.connect(own).await.unwrap();
    match d.connect(format!("ws://{addr}/refuse")).await {
        Err(Error::BadHandshake(r)) => assert_eq!(r.status, http::StatusCode::FORBIDDEN),
        other => panic!("expected a 403, got {:?}", other.map(|(_, r)| r)),
    }
    let _c = d.connect(url.as_str()).await.unwrap();
    let _d = dialer().connect(url.as_str()).await.unwrap(); // no jar

    assert_eq!(
        *received.lock().unwrap(),
        ["-", "own=x; n=1", "n=2", "n=3; refused=yes", "-"]
    );
    let seen = jar.seen.lock().unwrap();
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert!(
        seen.iter().all(|s| s.contains(&format!("ws://{addr}/"))),
        "{seen:?}"
    );
}
