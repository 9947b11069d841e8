//! `--client conn`, `--http2`, `--http3`: the load through ferrosocket's own `Dialer` and
//! `Conn` instead of the raw frame loop, so the same client can open its WebSockets as
//! HTTP/1.1 connections (one TCP connection each), as streams of ONE HTTP/2 connection
//! (RFC 8441), or as streams of ONE QUIC connection (RFC 9220), and the three can be compared
//! like for like.
//!
//! Each connection keeps K messages in flight: K are fed and flushed together, and every echo
//! received feeds the next one (sent together at the next flush). The payload is one shared
//! `Bytes`, so nothing is copied per message on the sending side; the receiving side is the
//! `Conn`'s (one buffer per message). Latency is per message (send to echo, FIFO), into the
//! same histogram and counters as the raw loop.

use super::plan::{Plan, payload};
use super::worker::{Outcome, Shared};
use bytes::Bytes;
use ferrosocket::{Conn, Dialer, HttpVersion, MaybeTlsStream, Message, Utf8Bytes};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Which HTTP version carries the WebSockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Carrier {
    /// One TCP (or TLS) connection per WebSocket.
    Http1,
    /// Every WebSocket a stream of one HTTP/2 connection.
    Http2,
    /// Every WebSocket a stream of one QUIC connection.
    Http3,
}

/// The WebSockets that could be opened, and how many could not (with the first reason).
pub(super) struct Opened {
    pub(super) conns: Vec<Conn<MaybeTlsStream>>,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
}

/// Opens `n` WebSockets to `url` over `carrier`, each within `timeout`.
pub(super) async fn open_all(
    dialer: Dialer,
    url: &str,
    carrier: Carrier,
    n: usize,
    timeout: Duration,
) -> Opened {
    let mut opened = Opened {
        conns: Vec::with_capacity(n),
        errors: 0,
        first_error: None,
    };
    let mut record = |r: Result<Conn<MaybeTlsStream>, String>| match r {
        Ok(c) => opened.conns.push(c),
        Err(e) => {
            opened.errors += 1;
            opened.first_error.get_or_insert(e);
        }
    };
    match carrier {
        Carrier::Http3 => {
            let session = match tokio::time::timeout(timeout, dialer.http3_session(url)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return failed_all(n, format!("http/3 connection: {e}")),
                Err(_) => return failed_all(n, "http/3 connection timed out".into()),
            };
            let mut set = JoinSet::new();
            for _ in 0..n {
                let (session, url) = (session.clone(), url.to_owned());
                set.spawn(async move {
                    match tokio::time::timeout(timeout, session.connect(url.as_str())).await {
                        Ok(Ok((conn, _))) => Ok(conn),
                        Ok(Err(e)) => Err(format!("handshake: {e}")),
                        Err(_) => Err("handshake timed out".into()),
                    }
                });
            }
            while let Some(r) = set.join_next().await {
                record(r.map_err(|e| e.to_string()).and_then(|r| r));
            }
        }
        Carrier::Http1 | Carrier::Http2 => {
            let version = if carrier == Carrier::Http2 {
                HttpVersion::Http2
            } else {
                HttpVersion::Http1
            };
            // HTTP/2: the dialer's pool puts every WebSocket on one connection to the origin.
            let dialer = dialer.http_version(version).share_http2_connections(true);
            let mut set = JoinSet::new();
            for _ in 0..n {
                let (dialer, url) = (dialer.clone(), url.to_owned());
                set.spawn(async move {
                    match tokio::time::timeout(timeout, dialer.connect(url.as_str())).await {
                        Ok(Ok((conn, _))) => Ok(conn),
                        Ok(Err(e)) => Err(format!("connect: {e}")),
                        Err(_) => Err("connect timed out".into()),
                    }
                });
            }
            while let Some(r) = set.join_next().await {
                record(r.map_err(|e| e.to_string()).and_then(|r| r));
            }
        }
    }
    opened
}

fn failed_all(n: usize, why: String) -> Opened {
    Opened {
        conns: Vec::new(),
        errors: n as u64,
        first_error: Some(why),
    }
}

/// The message every connection sends: the plan's payload of slot 0, shared.
pub(super) fn message(plan: &Plan) -> Result<Message, String> {
    let bytes = Bytes::from(payload(plan.size, 0, plan.text));
    if plan.text {
        let text =
            Utf8Bytes::try_from_bytes(bytes).map_err(|e| format!("the text payload is not UTF-8: {e}"))?;
        Ok(Message::text(text))
    } else {
        Ok(Message::binary(bytes))
    }
}

/// One WebSocket's load: K in flight until the deadline or the budget.
pub(super) async fn run(
    mut conn: Conn<MaybeTlsStream>,
    shared: Arc<Shared>,
    msg: Message,
) -> Result<Outcome, String> {
    let k = shared.plan.in_flight;
    let mut sent_at: VecDeque<Instant> = VecDeque::with_capacity(k);
    let mut budget_spent = false;
    let refill = |sent_at: &mut VecDeque<Instant>, budget_spent: &mut bool, now: Instant| -> u64 {
        let want = (k - sent_at.len()) as u64;
        let granted = shared.claim(want);
        if granted < want {
            *budget_spent = true;
        }
        for _ in 0..granted {
            sent_at.push_back(now);
        }
        if now >= shared.measure_start {
            shared.sent.fetch_add(granted, Ordering::Relaxed);
        }
        granted
    };
    let deadline = tokio::time::sleep_until(shared.end);
    tokio::pin!(deadline);
    let granted = refill(&mut sent_at, &mut budget_spent, Instant::now());
    for _ in 0..granted {
        conn.feed(msg.clone()).await.map_err(|e| format!("send: {e}"))?;
    }
    conn.flush().await.map_err(|e| format!("send: {e}"))?;
    loop {
        if budget_spent && sent_at.is_empty() {
            break;
        }
        let got = tokio::select! {
            biased;
            r = conn.recv() => r.map_err(|e| format!("recv: {e}"))?,
            () = &mut deadline => break,
        };
        let now = Instant::now();
        let Some(sent) = sent_at.pop_front() else {
            return Err("the server sent more messages than it was sent".into());
        };
        let wrong = if shared.plan.verify {
            got != msg
        } else {
            got.len() != msg.len()
        };
        if wrong {
            return Err(format!(
                "a wrong echo: {} bytes for a message of {}",
                got.len(),
                msg.len()
            ));
        }
        if sent >= shared.measure_start && now <= shared.end {
            let us = now.saturating_duration_since(sent).as_micros();
            if let Ok(mut h) = shared.histogram.lock() {
                h.saturating_record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
            }
            shared.done.fetch_add(1, Ordering::Relaxed);
            let at = now.saturating_duration_since(shared.measure_start).as_micros();
            shared
                .last_done_us
                .fetch_max(u64::try_from(at).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        if now >= shared.end {
            break;
        }
        if refill(&mut sent_at, &mut budget_spent, now) > 0 {
            conn.send(msg.clone()).await.map_err(|e| format!("send: {e}"))?;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(None)).await;
    Ok(Outcome::Finished)
}
