//! A `wss://` echo server and a client that dials it, in one program.
//!
//! The server terminates TLS with rustls through the crate's [`tls`] module
//! (a [`TlsAcceptor`] from [`tls::server_config`] or [`tls::server_config_from_pem`]), then
//! upgrades the decrypted stream with the same [`Upgrader`] as a plain server: the upgrader
//! works over any `AsyncRead + AsyncWrite`. The client trusts exactly the server's certificate
//! ([`tls::client_config_with_roots`] given to [`Dialer::tls_config`]), sends a message over
//! `wss://localhost:PORT/ws`, checks the echo, closes with 1000 and prints `tls: ok`.
//!
//! ```text
//! cargo run -p ferrosocket --example tls                                 # self-signed, any free port
//! cargo run -p ferrosocket --example tls -- --cert cert.pem --key key.pem --listen 127.0.0.1:8443
//! cargo run -p ferrosocket --example tls -- --serve                      # keep serving afterwards
//! ```
//! The certificate must be valid for `localhost`. With `--serve` it goes on serving
//! `https://` (a page at `/`) and `wss://` until Ctrl-C; a browser will warn about a
//! self-signed certificate.

#[allow(dead_code)]
#[path = "common/mod.rs"]
mod common;

use ferrosocket::tls::rustls::RootCertStore;
use ferrosocket::tls::rustls::pki_types::pem::PemObject as _;
use ferrosocket::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use ferrosocket::tls::{self, TlsAcceptor};
use ferrosocket::{CloseCode, CloseFrame, Dialer, Message, Upgrader};
use std::time::Duration;

/// Bound on a client's TLS handshake (the WebSocket handshake has the upgrader's own).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const PAGE: &str = "<!doctype html><meta charset=utf-8><title>ferrosocket tls</title>\
<p id=log>connecting…</p><script>\
const ws = new WebSocket(\"wss://\" + location.host + \"/ws\");\
ws.onopen = () => ws.send(\"hello over TLS\");\
ws.onmessage = (ev) => { document.getElementById(\"log\").textContent = \"echoed: \" + ev.data; };\
</script>";

/// The server's certificate chain and key, and the roots a client needs to trust it.
fn certificate() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Box<dyn std::error::Error>>
{
    match (common::arg("cert"), common::arg("key")) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(&cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read certificates from {cert}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| format!("cannot read the key from {key}: {e}"))?;
            Ok((chain, key))
        }
        (None, None) => {
            let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
            println!("made a self-signed certificate for localhost");
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
            Ok((vec![made.cert.der().clone()], key))
        }
        _ => Err("give both --cert and --key, or neither (a self-signed certificate is made)".into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Port 0 by default: the program checks itself, it needs no well-known port.
    let listener = common::listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let port = listener.local_addr()?.port();
    let (chain, key) = certificate()?;
    let mut roots = RootCertStore::empty();
    for cert in &chain {
        roots.add(cert.clone())?;
    }
    let acceptor = TlsAcceptor::from(tls::server_config(chain, key)?);

    // The server: TLS first, then the same routing and echo as a plain server.
    let upgrader = Upgrader::new();
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let (acceptor, upgrader) = (acceptor.clone(), upgrader.clone());
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return eprintln!("{peer} tls handshake failed: {e}"),
                    Err(_) => return eprintln!("{peer} tls handshake timed out"),
                };
                let Some(mut conn) = common::route(&upgrader, stream, PAGE).await else {
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

    // The client: trusts the server's certificate and nothing else.
    let url = format!("wss://localhost:{port}/ws");
    let dialer = Dialer::new()
        .proxy_from_env(false)
        .tls_config(tls::client_config_with_roots(roots)?);
    let (mut conn, _) = dialer
        .connect(url.as_str())
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    conn.send_text("hello over TLS").await?;
    let reply = conn.recv().await?;
    if reply != Message::text("hello over TLS") {
        return Err(format!("unexpected echo: {}", common::printable(&reply)).into());
    }
    let closed = conn
        .close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "done")))
        .await?;
    println!(
        "tls: ok: {url} echoed {reply:?}, closed with {}",
        closed.code.as_u16()
    );

    if std::env::args().any(|a| a == "--serve") {
        println!("serving https://localhost:{port}/ until Ctrl-C");
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}
