//! `--metrics ADDR`: the library's metrics (feature `metrics`) in the Prometheus text format at
//! `http://ADDR/metrics` (and `/`).
//!
//! The recorder is `metrics-exporter-prometheus`; the endpoint is served here, on the echo
//! server's runtime, rather than by the exporter's own HTTP listener, so that
//! `--metrics 127.0.0.1:0` works and the bound address can be printed.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head read from a scraper.
const MAX_REQUEST: usize = 8 << 10;
/// A scraper has this long to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the recorder's histograms are drained (the exporter's own default).
const UPKEEP: Duration = Duration::from_secs(5);
/// Ping round-trip buckets, in seconds: a LAN's 100 µs to a dying link's 10 s.
const RTT_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// Installs the Prometheus recorder as the global recorder and serves it on `addr`; returns
/// the address bound. Call it inside the runtime, before any connection is made.
pub(crate) async fn install(addr: SocketAddr) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("ferrosocket_ping_rtt_seconds".into()), RTT_BUCKETS)?
        .install_recorder()?;
    ferrosocket::metrics::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(scrape(stream, handle.clone()));
                }
                // e.g. out of file descriptors: back off instead of spinning
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    Ok(bound)
}

/// Answers one HTTP request: the metrics for `GET /metrics` or `GET /`, 404 or 405 otherwise.
async fn scrape(mut stream: TcpStream, handle: PrometheusHandle) {
    let Ok(Some(head)) = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream))
        .await
        .map(Result::ok)
        .map(Option::flatten)
    else {
        return;
    };
    let (status, body) = answer(&head, &handle);
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The status line's text and the body for a request head.
fn answer(head: &str, handle: &PrometheusHandle) -> (&'static str, String) {
    let mut words = head.split_ascii_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics" | "/") => ("200 OK", handle.render()),
        ("GET", _) => ("404 Not Found", "not found: the metrics are at /metrics\n".into()),
        _ => ("405 Method Not Allowed", "only GET\n".into()),
    }
}

/// Reads up to the end of the request head (bounded); `None` if the peer sent none.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_REQUEST {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}
