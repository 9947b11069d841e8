//! sockudo-ws 3.1 over HTTP/3 (RFC 9220): WebSockets as extended CONNECT streams on path `/ws`,
//! many on one QUIC connection, on UDP. QUIC needs TLS, so `--tls-cert` and `--tls-key` (PEM)
//! are required; ALPN is `h3`.
//!
//! The library's own server, as its README and `http3_echo` example write it:
//! `WebSocketServer<Http3>::bind` with a rustls `ServerConfig` and `Config::default()` (QUIC
//! idle timeout 30 s, Quinn's windows), `serve_with_filter` to answer other paths 403, and the
//! example's echo loop (`ferrosocket_bench_peers::sockudo::echo`). Its HTTP/3 server does not
//! negotiate permessage-deflate, so there is no `--compress`. One thread.
//!
//! A client must send `:protocol webtransport`, as sockudo-ws's own HTTP/3 client does (its
//! server maps that value to `websocket`). RFC 9220's `:protocol websocket` never reaches
//! sockudo-ws: the `h3` 0.0.8 crate under it knows only `webtransport` and `connect-udp`, so it
//! rejects the request as malformed (H3_MESSAGE_ERROR on that stream) and the server logs
//! "Failed to resolve request". Nothing in this binary can change that.
//!
//! ```text
//! sockudo-h3 [--listen ADDR] --tls-cert CERT.pem --tls-key KEY.pem
//! ```
//!
//! It prints `sockudo-h3: listening on ADDR (h3 over QUIC, UDP, ...)` once the UDP socket is
//! bound; there is no TCP port to poll for readiness.

use std::net::SocketAddr;

use ferrosocket_bench_peers::sockudo::echo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sockudo_ws::{Config, ExtendedConnectRequest, Http3, WebSocketServer};

const NAME: &str = "sockudo-h3";
/// The one path WebSockets are served on.
const PATH: &str = "/ws";

/// `--listen ADDR` (default 127.0.0.1:9001), `--tls-cert FILE`, `--tls-key FILE`.
struct Options {
    listen: SocketAddr,
    cert: String,
    key: String,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:9001".to_string();
    let (mut cert, mut key) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "--tls-cert" => cert = Some(args.next().ok_or("--tls-cert needs a file")?),
            "--tls-key" => key = Some(args.next().ok_or("--tls-key needs a file")?),
            "-h" | "--help" => {
                println!("usage: {NAME} [--listen ADDR] --tls-cert CERT.pem --tls-key KEY.pem");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let listen = listen
        .parse()
        .map_err(|e| format!("bad --listen {listen:?}: {e}"))?;
    Ok(Options {
        listen,
        cert: cert.ok_or("--tls-cert is required (QUIC needs TLS)")?,
        key: key.ok_or("--tls-key is required (QUIC needs TLS)")?,
    })
}

/// The rustls configuration of the `http3_echo` example: the certificate chain and key, no
/// client authentication, ALPN `h3`.
fn tls(opts: &Options) -> Result<rustls::ServerConfig, String> {
    let certs = CertificateDer::pem_file_iter(&opts.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", opts.cert))?;
    let key = PrivateKeyDer::from_pem_file(&opts.key).map_err(|e| format!("{}: {e}", opts.key))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS: {e}"))?;
    config.alpn_protocols = vec![b"h3".to_vec()];
    Ok(config)
}

async fn run(opts: Options) -> Result<(), String> {
    let tls = tls(&opts)?;
    let server = WebSocketServer::<Http3>::bind(opts.listen, tls, Config::default())
        .await
        .map_err(|e| format!("bind {}: {e}", opts.listen))?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    println!("{NAME}: listening on {addr} (h3 over QUIC, UDP, WebSockets on {PATH})");
    let on_path = |req: &ExtendedConnectRequest| req.path == PATH;
    server
        .serve_with_filter(on_path, |ws, _req| echo(ws))
        .await
        .map_err(|e| e.to_string())
}

fn main() {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{NAME}: {e}");
            std::process::exit(2);
        }
    };
    // sockudo-ws asks for its clock to be calibrated before the runtime starts.
    sockudo_ws::init_clock();
    let result = match ferrosocket_bench_peers::runtime() {
        Ok(rt) => rt.block_on(run(opts)),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        eprintln!("{NAME}: {e}");
        std::process::exit(1);
    }
}
