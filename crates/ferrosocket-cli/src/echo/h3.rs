//! The echo server over HTTP/3 (`--http3`): a QUIC endpoint on the same port as the TCP
//! listener, UDP, every WebSocket an extended CONNECT (RFC 9220) on a request stream; a QUIC
//! connection carries as many as the client opens.

use super::{Shared, open_line, refused_line};
use ferrosocket::http3::quinn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Binds the QUIC endpoint at `addr` (UDP) with the TLS settings of the TCP listener.
pub(crate) fn bind(
    tls: &ferrosocket::tls::rustls::ServerConfig,
    addr: SocketAddr,
) -> Result<quinn::Endpoint, Box<dyn std::error::Error>> {
    let config = ferrosocket::http3::server_config(tls)?;
    quinn::Endpoint::server(config, addr).map_err(|e| {
        format!("cannot listen for HTTP/3 on udp {addr}: {e}; is the port taken by another process?").into()
    })
}

/// Accepts QUIC connections until the endpoint is closed (at shutdown).
pub(crate) async fn serve(shared: Arc<Shared>, endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let addr = incoming.remote_address();
            let quic = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    if !shared.quiet {
                        eprintln!("{addr} quic handshake failed: {e}");
                    }
                    return;
                }
            };
            let mut h3 = match shared.upgrader.accept_http3(quic).await {
                Ok(h3) => h3,
                Err(e) => {
                    if !shared.quiet {
                        eprintln!("{}", refused_line(addr, &e));
                    }
                    return;
                }
            };
            // At shutdown the connection says GOAWAY (no new WebSockets on it); its
            // WebSockets get 1001 from their own tokens.
            let stop = shared.shutdown.token();
            let mut goaway = Box::pin(async move { stop.triggered().await });
            let mut going = false;
            loop {
                let conn = tokio::select! {
                    conn = h3.accept() => conn,
                    () = &mut goaway, if !going => {
                        going = true;
                        if let Err(e) = h3.shutdown().await && !shared.quiet {
                            eprintln!("{addr} http/3 GOAWAY failed: {e}");
                        }
                        continue;
                    }
                };
                let Some(conn) = conn else { break };
                shared.connections.fetch_add(1, Ordering::Relaxed);
                if !shared.quiet {
                    println!("{}", open_line(addr, Some("HTTP/3"), conn.subprotocol()));
                }
                let stop = shared.shutdown.token();
                if shared.stream {
                    tokio::spawn(super::echo_streamed(conn, addr, shared.quiet, stop));
                } else {
                    tokio::spawn(super::echo(conn, addr, shared.quiet, stop));
                }
            }
        });
    }
}
