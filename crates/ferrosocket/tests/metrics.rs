//! Feature `metrics`: after known traffic, every metric holds the exact count, byte total,
//! label and value the module's table promises. Each test runs its own current-thread runtime
//! under its own local recorder (`metrics::with_local_recorder`), so tests in parallel never see
//! each other's numbers.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrosocket::{CloseCode, CloseFrame, Conn, Dialer, Error, Message, Reject, Role, Upgrader, http};
use metrics::{Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder};
use metrics::{SharedString, Unit};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---- a recorder that keeps every value --------------------------------------------------------

#[derive(Default)]
struct Cell {
    count: AtomicU64,
    gauge: Mutex<f64>,
    samples: Mutex<Vec<f64>>,
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.count.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.count.store(value, Ordering::Relaxed);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        *self.gauge.lock().unwrap() += value;
    }
    fn decrement(&self, value: f64) {
        *self.gauge.lock().unwrap() -= value;
    }
    fn set(&self, value: f64) {
        *self.gauge.lock().unwrap() = value;
    }
}

impl HistogramFn for Cell {
    fn record(&self, value: f64) {
        self.samples.lock().unwrap().push(value);
    }
}

/// Metrics by `name{label=value,...}` (labels sorted), plus the descriptions registered.
#[derive(Default)]
struct TestRecorder {
    cells: Mutex<BTreeMap<String, Arc<Cell>>>,
    described: Mutex<Vec<String>>,
}

impl TestRecorder {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.cells.lock().unwrap().entry(name).or_default().clone()
    }

    fn get(&self, name: &str) -> Option<Arc<Cell>> {
        self.cells.lock().unwrap().get(name).cloned()
    }

    /// A counter's value (0 when it was never registered).
    fn counter(&self, name: &str) -> u64 {
        self.get(name).map_or(0, |c| c.count.load(Ordering::Relaxed))
    }

    fn gauge(&self, name: &str) -> f64 {
        self.get(name).map_or(0.0, |c| *c.gauge.lock().unwrap())
    }

    fn samples(&self, name: &str) -> Vec<f64> {
        self.get(name)
            .map_or_else(Vec::new, |c| c.samples.lock().unwrap().clone())
    }

    /// Every metric that moved: counters above 0, gauges not at 0, histograms with samples.
    fn nonzero(&self) -> Vec<String> {
        let cells = self.cells.lock().unwrap();
        cells
            .iter()
            .filter(|(_, c)| {
                c.count.load(Ordering::Relaxed) > 0
                    || *c.gauge.lock().unwrap() != 0.0
                    || !c.samples.lock().unwrap().is_empty()
            })
            .map(|(k, _)| k.clone())
            .collect()
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.described.lock().unwrap().push(key.as_str().to_owned());
    }
    fn describe_gauge(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.described.lock().unwrap().push(key.as_str().to_owned());
    }
    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.described.lock().unwrap().push(key.as_str().to_owned());
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

/// Runs `test` on a current-thread runtime (real clock, or paused) with `recorder` as this
/// thread's recorder: every task of the runtime records into it. Bounded by 10 s.
fn run_with<F: Future<Output = ()>>(recorder: &TestRecorder, paused: bool, test: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(paused)
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), test)
                .await
                .expect("the test did not finish within 10 s");
        });
    });
}

fn dialer() -> Dialer {
    Dialer::new()
        .proxy_from_env(false)
        .connect_timeout(Some(Duration::from_secs(2)))
        .handshake_timeout(Some(Duration::from_secs(2)))
}

/// A server that accepts one connection and echoes it until it ends; returns its address and
/// the task (which ends with the connection).
async fn echo_once(upgrader: Upgrader) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(mut conn) = upgrader.accept(tcp).await else {
            return;
        };
        while let Ok(msg) = conn.recv().await {
            if conn.send(msg).await.is_err() {
                break;
            }
        }
    });
    (addr, task)
}

/// Sends `count` text messages of `size` bytes, reads their echoes, closes with 4000 "bye".
async fn echo_traffic(addr: SocketAddr, dialer: Dialer, count: usize, size: usize) {
    let (mut conn, _) = dialer.connect(format!("ws://{addr}/")).await.unwrap();
    let text = "a".repeat(size);
    for _ in 0..count {
        conn.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(conn.recv().await.unwrap().len(), size);
    }
    let end = conn
        .close(Some(CloseFrame::new(CloseCode::from(4000), "bye")))
        .await
        .unwrap();
    assert_eq!(end.code, CloseCode::from(4000), "the server echoes the code");
}

const S: &str = "role=server";
const C: &str = "role=client";

fn m(name: &str, labels: &str) -> String {
    format!("ferrosocket_{name}{{{labels}}}")
}

#[test]
fn uncompressed_echo_counts_messages_payload_and_wire_bytes_and_close_codes_exactly() {
    let rec = TestRecorder::default();
    run_with(&rec, false, async {
        let (addr, server) = echo_once(Upgrader::new()).await;
        echo_traffic(addr, dialer(), 3, 100).await;
        server.await.unwrap();
    });
    assert_eq!(rec.counter(&m("connections_accepted_total", "")), 1);
    assert_eq!(rec.counter(&m("handshakes_accepted_total", "http=1.1")), 1);
    assert_eq!(rec.counter(&m("connections_dialed_total", "")), 1);
    for role in [S, C] {
        assert_eq!(rec.counter(&m("messages_received_total", role)), 3, "{role}");
        assert_eq!(rec.counter(&m("messages_sent_total", role)), 3, "{role}");
        assert_eq!(
            rec.counter(&m("payload_bytes_received_total", role)),
            300,
            "{role}"
        );
        assert_eq!(rec.counter(&m("payload_bytes_sent_total", role)), 300, "{role}");
        // Both connections were dropped: nothing open, nothing queued.
        assert_eq!(rec.gauge(&m("connections_open", role)), 0.0, "{role}");
        assert_eq!(rec.gauge(&m("queued_bytes", role)), 0.0, "{role}");
    }
    // Client to server: 3 x (2 header + 4 mask + 100) and the close frame (2 + 4 + 2 code + "bye").
    let client_wire = 3 * (2 + 4 + 100) + (2 + 4 + 2 + 3);
    // Server to client: 3 x (2 + 100) and the close reply (the code echoed without the reason).
    let server_wire = 3 * (2 + 100) + (2 + 2);
    assert_eq!(rec.counter(&m("wire_bytes_received_total", S)), client_wire);
    assert_eq!(rec.counter(&m("wire_bytes_sent_total", C)), client_wire);
    assert_eq!(rec.counter(&m("wire_bytes_sent_total", S)), server_wire);
    assert_eq!(rec.counter(&m("wire_bytes_received_total", C)), server_wire);
    // 4000 is in the private range: one bucket for 4000-4999.
    for role in [S, C] {
        assert_eq!(
            rec.counter(&m("close_frames_sent_total", &format!("code=4xxx,{role}"))),
            1
        );
        assert_eq!(
            rec.counter(&m("close_frames_received_total", &format!("code=4xxx,{role}"))),
            1
        );
    }
    // Nothing else moved (no rejection, no ping).
    let mut moved = rec.nonzero();
    moved.retain(|k| !k.contains("_total"));
    assert!(moved.is_empty(), "unexpected gauges or histograms: {moved:?}");
    assert!(rec.get(&m("connections_rejected_total", "status=403")).is_none());
}

#[test]
fn compressed_echo_shows_the_ratio_between_payload_and_wire_bytes() {
    let rec = TestRecorder::default();
    run_with(&rec, false, async {
        let (addr, server) = echo_once(Upgrader::new().enable_compression(true)).await;
        echo_traffic(addr, dialer().enable_compression(true), 3, 4000).await;
        server.await.unwrap();
    });
    for role in [S, C] {
        assert_eq!(rec.counter(&m("messages_received_total", role)), 3, "{role}");
        assert_eq!(rec.counter(&m("messages_sent_total", role)), 3, "{role}");
        // Payload bytes are counted inflated (received) and before deflating (sent).
        assert_eq!(
            rec.counter(&m("payload_bytes_received_total", role)),
            12_000,
            "{role}"
        );
        assert_eq!(
            rec.counter(&m("payload_bytes_sent_total", role)),
            12_000,
            "{role}"
        );
    }
    // 4000 equal bytes compress to a few dozen: the wire carries far less than the payload.
    let wire_in = rec.counter(&m("wire_bytes_received_total", S));
    let wire_out = rec.counter(&m("wire_bytes_sent_total", S));
    assert!(
        wire_in > 0 && wire_in < 12_000 / 10,
        "server received {wire_in} wire bytes"
    );
    assert!(
        wire_out > 0 && wire_out < 12_000 / 10,
        "server sent {wire_out} wire bytes"
    );
    assert_eq!(rec.counter(&m("wire_bytes_sent_total", C)), wire_in);
    assert_eq!(rec.counter(&m("wire_bytes_received_total", C)), wire_out);
}

#[test]
fn refused_handshakes_are_counted_by_the_status_answered() {
    let rec = TestRecorder::default();
    run_with(&rec, false, async {
        let upgrader = Upgrader::new().on_request(|_| Err(Reject::new(http::StatusCode::FORBIDDEN)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                assert!(upgrader.accept(tcp).await.is_err());
            }
        });
        // Refused by the callback: 403.
        let refused = dialer().connect(format!("ws://{addr}/")).await;
        assert!(refused.is_err(), "the handshake was refused");
        // Not a WebSocket request (no Sec-WebSocket-Key): 400 from validation.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        server.await.unwrap();
    });
    assert_eq!(rec.counter(&m("connections_rejected_total", "status=403")), 1);
    assert_eq!(rec.counter(&m("connections_rejected_total", "status=400")), 1);
    assert_eq!(rec.counter(&m("connections_accepted_total", "")), 0);
    assert_eq!(rec.counter(&m("handshakes_accepted_total", "http=1.1")), 0);
    assert_eq!(rec.counter(&m("connections_dialed_total", "")), 0);
}

#[test]
fn refusals_decided_for_another_http_server_are_counted_too() {
    // `Upgrader::decide` is what the hyper and axum paths run: its refusals count as well.
    let rec = TestRecorder::default();
    run_with(&rec, false, async {
        let upgrader = Upgrader::new();
        let request = http::Request::get("/ws")
            .header("host", "example.com")
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
            .header("origin", "http://elsewhere.example")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let refusal = upgrader.decide(&parts, None).err().unwrap();
        assert_eq!(refusal.status(), http::StatusCode::FORBIDDEN);
    });
    assert_eq!(rec.counter(&m("connections_rejected_total", "status=403")), 1);
}

/// Two connections over an in-memory pipe, with the handshake done elsewhere.
fn pair() -> (Conn<tokio::io::DuplexStream>, Conn<tokio::io::DuplexStream>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let config = ferrosocket::proto::Config::default();
    (
        Conn::from_raw(a, Role::Server, config.clone(), &[]),
        Conn::from_raw(b, Role::Client, config, &[]),
    )
}

#[test]
fn ping_round_trip_runs_from_our_ping_to_the_pong_with_its_payload() {
    let rec = TestRecorder::default();
    run_with(&rec, true, async {
        let (mut server, mut client) = pair();
        let peer = tokio::spawn(async move {
            // An unsolicited pong at 20 ms: not the answer, not measured.
            tokio::time::sleep(Duration::from_millis(20)).await;
            server.pong(b"heartbeat").await.unwrap();
            // The ping waits 50 ms in the pipe before the server reads (and answers) it.
            tokio::time::sleep(Duration::from_millis(30)).await;
            let err = server.recv().await.unwrap_err();
            assert!(matches!(err, Error::Closed(_)), "{err}");
        });
        client.ping(b"p1").await.unwrap();
        // recv handles the pongs while waiting; the close ends it.
        let reader = async {
            let err = client.recv().await.unwrap_err();
            assert!(matches!(err, Error::Closed(_)), "{err}");
        };
        let closer = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        tokio::select! {
            () = reader => panic!("the session ended early"),
            () = closer => {}
        }
        client.close(None).await.unwrap();
        peer.await.unwrap();
    });
    assert_eq!(rec.samples(&m("ping_rtt_seconds", C)), [0.05]);
    assert!(rec.samples(&m("ping_rtt_seconds", S)).is_empty());
    // No status code: labelled 1005.
    assert_eq!(
        rec.counter(&m("close_frames_sent_total", "code=1005,role=client")),
        1
    );
    assert_eq!(
        rec.counter(&m("close_frames_received_total", "code=1005,role=server")),
        1
    );
}

#[test]
fn keepalive_ping_round_trip_is_measured_from_the_instant_it_was_queued() {
    let rec = TestRecorder::default();
    run_with(&rec, true, async {
        let (mut server, mut client) = pair();
        server.set_keepalive(Some((Duration::from_secs(1), Duration::from_secs(5))));
        let peer = tokio::spawn(async move {
            // Busy for 1.03 s: the keepalive ping (sent at 1 s) is answered at 1.03 s.
            tokio::time::sleep(Duration::from_millis(1030)).await;
            let msg = client.recv().await.unwrap();
            assert_eq!(msg.as_text(), Some("done"));
            let _ = client.recv().await;
        });
        let reader = async {
            let _ = server.recv().await;
        };
        tokio::select! {
            () = reader => panic!("the session ended early"),
            () = tokio::time::sleep(Duration::from_millis(1500)) => {}
        }
        server.send(Message::text("done")).await.unwrap();
        server.close(None).await.unwrap();
        peer.await.unwrap();
    });
    let samples = rec.samples(&m("ping_rtt_seconds", S));
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert!((samples[0] - 0.03).abs() < 1e-9, "{samples:?}");
}

#[test]
fn queued_bytes_follow_the_queue_and_a_dropped_connection_gives_its_share_back() {
    let rec = TestRecorder::default();
    run_with(&rec, false, async {
        let (mut server, client) = pair();
        let (mut other, _client2) = pair();
        server.queue(Message::binary(vec![7u8; 1000])).unwrap();
        // 1000 bytes need a 2-byte extended length: 4 header bytes.
        assert_eq!(rec.gauge(&m("queued_bytes", S)), 1004.0);
        other.queue(Message::text("hi")).unwrap();
        assert_eq!(
            rec.gauge(&m("queued_bytes", S)),
            1008.0,
            "summed over connections"
        );
        assert_eq!(rec.gauge(&m("connections_open", S)), 2.0);
        server.flush().await.unwrap();
        assert_eq!(rec.gauge(&m("queued_bytes", S)), 4.0);
        assert_eq!(rec.counter(&m("wire_bytes_sent_total", S)), 1004);
        drop(other);
        assert_eq!(rec.gauge(&m("queued_bytes", S)), 0.0);
        assert_eq!(rec.gauge(&m("connections_open", S)), 1.0);
        drop(client);
    });
}

#[test]
fn streamed_messages_count_at_their_last_chunk_and_fragments_at_the_final_one() {
    let rec = TestRecorder::default();
    run_with(&rec, false, async {
        let (mut server, mut client) = pair();
        client
            .send_fragment(ferrosocket::MessageKind::Binary, vec![1u8; 300], false)
            .await
            .unwrap();
        client
            .send_fragment(ferrosocket::MessageKind::Binary, vec![2u8; 200], true)
            .await
            .unwrap();
        let mut total = 0;
        loop {
            let chunk = server.recv_chunk().await.unwrap();
            total += chunk.data.len();
            if chunk.last {
                break;
            }
        }
        assert_eq!(total, 500);
    });
    assert_eq!(rec.counter(&m("messages_sent_total", C)), 1);
    assert_eq!(rec.counter(&m("payload_bytes_sent_total", C)), 500);
    assert_eq!(rec.counter(&m("messages_received_total", S)), 1);
    assert_eq!(rec.counter(&m("payload_bytes_received_total", S)), 500);
}

#[test]
fn describe_names_every_metric_once() {
    let rec = TestRecorder::default();
    metrics::with_local_recorder(&rec, ferrosocket::metrics::describe);
    let described = rec.described.lock().unwrap().clone();
    assert_eq!(described.len(), 15, "{described:?}");
    assert!(described.iter().all(|n| n.starts_with("ferrosocket_")));
    let mut unique = described.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), described.len());
}
