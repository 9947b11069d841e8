//! `wss://` against ferrosocket's own `Upgrader` behind rustls, with a self-signed certificate
//! made at run time. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "rustls")]

mod common;

use common::within;
use ferrosocket::tls::rustls::RootCertStore;
use ferrosocket::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use ferrosocket::tls::{TlsAcceptor, client_config_with_roots, server_config, server_config_from_pem};
use ferrosocket::{CloseCode, Dialer, Error, Message, ProxyConfig, Upgrader};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Cert {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    key_der: Vec<u8>,
}

fn self_signed() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Cert {
        der: ck.cert.der().clone(),
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
        key_der: ck.signing_key.serialize_der(),
    }
}

fn key(cert: &Cert) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone()))
}

fn trusting(cert: &Cert) -> Dialer {
    let mut roots = RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    Dialer::new()
        .proxy_from_env(false)
        .handshake_timeout(Some(Duration::from_secs(2)))
        .tls_config(client_config_with_roots(roots).unwrap())
}

/// A wss echo server: TLS accept, then the `Upgrader`.
async fn wss_echo_server(config: Arc<ferrosocket::tls::rustls::ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    let upgrader = Upgrader::new();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, upgrader) = (acceptor.clone(), upgrader.clone());
            tokio::spawn(async move {
                let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                else {
                    return;
                };
                assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
                let Ok(mut conn) = upgrader.accept(tls).await else {
                    return;
                };
                while let Ok(msg) = conn.recv().await {
                    if conn.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn wss_echo_round_trip() {
    let cert = self_signed();
    let addr = wss_echo_server(server_config(vec![cert.der.clone()], key(&cert)).unwrap()).await;
    let url = format!("wss://localhost:{}/secure", addr.port());
    let (mut conn, resp) = within("trusting.connect", trusting(&cert).connect(&url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    assert!(conn.get_ref().is_tls());
    assert!(matches!(conn.get_ref(), ferrosocket::MaybeTlsStream::Rustls(_)));
    for i in 0..20 {
        let text = format!("secret {i}");
        within("conn.send_text", conn.send_text(text.clone()))
            .await
            .unwrap();
        assert_eq!(
            within("conn.recv", conn.recv()).await.unwrap(),
            Message::text(text)
        );
    }
    let big = vec![0x5a_u8; 1 << 20];
    within("conn.send_binary", conn.send_binary(big.clone()))
        .await
        .unwrap();
    assert_eq!(
        within("conn.recv", conn.recv()).await.unwrap(),
        Message::binary(big)
    );
    let closed = within("conn.close", conn.close(None)).await.unwrap();
    assert_eq!(closed.code, CloseCode::NO_STATUS_RECEIVED);
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let cert = self_signed();
    let addr = wss_echo_server(server_config(vec![cert.der.clone()], key(&cert)).unwrap()).await;
    let url = format!("wss://localhost:{}/", addr.port());
    // The default configuration trusts Mozilla's roots only.
    let err = within(
        "Dialer::new.proxy_from_env.connect",
        Dialer::new().proxy_from_env(false).connect(&url),
    )
    .await
    .unwrap_err();
    let Error::Io(e) = &err else { panic!("{err:?}") };
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    let text = err.to_string();
    assert!(
        text.contains("tls handshake") && text.contains("tls_config"),
        "{text}"
    );
}

#[tokio::test]
async fn server_name_must_match_the_url_host() {
    let cert = self_signed(); // valid for "localhost" only
    let addr = wss_echo_server(server_config(vec![cert.der.clone()], key(&cert)).unwrap()).await;
    let err = within(
        "trusting.connect",
        trusting(&cert).connect(&format!("wss://{addr}/")),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData),
        "{err:?}"
    );
}

#[tokio::test]
async fn plain_server_behind_a_wss_url_fails_cleanly() {
    // A server that answers TLS with plain HTTP.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let _ = tcp.read(&mut [0; 512]).await;
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let cert = self_signed();
    let err = within(
        "trusting.connect",
        trusting(&cert).connect(&format!("wss://localhost:{}/", addr.port())),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Io(_) | Error::Closed(_)), "{err:?}");
}

#[tokio::test]
async fn wss_through_a_connect_proxy() {
    let cert = self_signed();
    let target = wss_echo_server(server_config(vec![cert.der.clone()], key(&cert)).unwrap()).await;
    // A proxy without authentication that dials localhost.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            assert_eq!(client.read(&mut b).await.unwrap(), 1);
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let expected = format!("CONNECT localhost:{} HTTP/1.1\r\n", target.port());
        assert!(head.starts_with(&expected), "{head}");
        let mut upstream = TcpStream::connect(("127.0.0.1", target.port())).await.unwrap();
        client.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
    let dialer = trusting(&cert).proxy(ProxyConfig::new("127.0.0.1", proxy.port()));
    let url = format!("wss://localhost:{}/", target.port());
    let (mut conn, _) = within("dialer.connect", dialer.connect(&url)).await.unwrap();
    within("conn.send_text", conn.send_text("tunnelled"))
        .await
        .unwrap();
    assert_eq!(
        within("conn.recv", conn.recv()).await.unwrap(),
        Message::text("tunnelled")
    );
}

#[tokio::test]
async fn proxy_bytes_before_tls_are_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let _ = client.read(&mut [0; 512]).await;
        let _ = client.write_all(b"HTTP/1.1 200 OK\r\n\r\nsurprise").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    let cert = self_signed();
    let dialer = trusting(&cert).proxy(ProxyConfig::new("127.0.0.1", proxy.port()));
    let err = within("dialer.connect", dialer.connect("wss://localhost:1/"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ferrosocket::Error::Proxy(ferrosocket::ProxyError::UnexpectedData)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn server_config_from_pem_files() {
    let cert = self_signed();
    let dir = std::env::temp_dir().join(format!("ferrosocket-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();

    let addr = wss_echo_server(server_config_from_pem(&cert_path, &key_path).unwrap()).await;
    let url = format!("wss://localhost:{}/", addr.port());
    let (mut conn, _) = within("trusting.connect", trusting(&cert).connect(&url))
        .await
        .unwrap();
    within("conn.send_text", conn.send_text("pem")).await.unwrap();
    assert_eq!(
        within("conn.recv", conn.recv()).await.unwrap(),
        Message::text("pem")
    );

    // Wrong files give errors that name the file.
    let err = server_config_from_pem(&key_path, &key_path).unwrap_err();
    assert!(err.to_string().contains("key.pem"), "{err}");
    let err = server_config_from_pem(&cert_path, &cert_path).unwrap_err();
    assert!(err.to_string().contains("private key"), "{err}");
    let err = server_config_from_pem(dir.join("missing.pem"), &key_path).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let other = self_signed();
    std::fs::write(&key_path, &other.key_pem).unwrap();
    let err = server_config_from_pem(&cert_path, &key_path).unwrap_err();
    assert!(err.to_string().contains("key belongs"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
