//! Phase 1 of a run: open every connection and upgrade it with the core's sans-I/O client
//! handshake; after that each connection is a raw `TcpStream`.

use ferrosocket_proto::{ClientHandshake, request_from_url};
use ferrosocket_proto::{DeflateConfig, DeflateParams};
use ferrosocket_proto::{Limits, parse_response, write_request};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// Handshakes in progress at once (a single-threaded server's accept backlog is finite).
const HANDSHAKES_AT_ONCE: usize = 256;

/// An upgraded connection: the stream, bytes that came after the 101 head, and the
/// permessage-deflate parameters if the server agreed.
pub(super) struct Upgraded {
    pub(super) stream: TcpStream,
    pub(super) leftover: Vec<u8>,
    pub(super) deflate: Option<DeflateParams>,
}

/// Where and how to connect.
pub(super) struct Target {
    pub(super) url: String,
    pub(super) host: String,
    pub(super) port: u16,
    /// A plain TCP echo: no handshake.
    pub(super) raw_echo: bool,
    /// Offer permessage-deflate and require it.
    pub(super) compress: bool,
    /// For each connect and handshake.
    pub(super) timeout: Duration,
}

/// The connections that could be upgraded, and how many could not (with the first reason).
pub(super) struct Connected {
    pub(super) upgraded: Vec<Upgraded>,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
}

/// Opens `connections` connections, at most [`HANDSHAKES_AT_ONCE`] handshakes at a time.
pub(super) async fn connect_all(target: Target, connections: usize) -> Connected {
    let gate = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_AT_ONCE));
    let target = Arc::new(target);
    let mut set = JoinSet::new();
    for _ in 0..connections {
        let (gate, t) = (gate.clone(), target.clone());
        set.spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            let fut = async {
                let stream = TcpStream::connect((t.host.as_str(), t.port))
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let _ = stream.set_nodelay(true);
                if t.raw_echo {
                    return Ok(Upgraded {
                        stream,
                        leftover: Vec::new(),
                        deflate: None,
                    });
                }
                handshake(stream, &t.url, t.compress).await
            };
            match tokio::time::timeout(t.timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err("connect or handshake timed out".to_string()),
            }
        });
    }
    let mut done = Connected {
        upgraded: Vec::with_capacity(connections),
        errors: 0,
        first_error: None,
    };
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(u)) => done.upgraded.push(u),
            Ok(Err(e)) => {
                done.errors += 1;
                done.first_error.get_or_insert(e);
            }
            Err(e) => {
                done.errors += 1;
                done.first_error.get_or_insert(e.to_string());
            }
        }
    }
    done
}

async fn handshake(mut stream: TcpStream, url: &str, compress: bool) -> Result<Upgraded, String> {
    let req = request_from_url(url).map_err(|e| e.to_string())?;
    let mut nonce = [0u8; 16];
    if getrandom::fill(&mut nonce).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        nonce = t.to_le_bytes();
    }
    let (mut hs, mut req) = ClientHandshake::new(req, nonce).map_err(|e| e.to_string())?;
    let deflate_config = DeflateConfig::default().client_no_context_takeover(true);
    if compress {
        hs.offer_deflate(deflate_config.clone(), &mut req);
    }
    let mut out = Vec::with_capacity(256);
    write_request(&req, &mut out);
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("sending the handshake: {e}"))?;
    let mut buf = bytes::BytesMut::with_capacity(1024);
    let limits = Limits::default();
    let resp = loop {
        if let Some(resp) = parse_response(&mut buf, &limits).map_err(|e| e.to_string())? {
            break resp;
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("reading the handshake: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection during the handshake".into());
        }
    };
    let negotiated = hs.verify(&resp).map_err(|e| e.to_string())?;
    if compress && negotiated.deflate.is_none() {
        return Err("the server did not accept permessage-deflate (--compress)".into());
    }
    Ok(Upgraded {
        stream,
        leftover: buf.to_vec(),
        deflate: negotiated.deflate,
    })
}
