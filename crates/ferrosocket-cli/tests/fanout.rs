//! `ferrosocket fanout` end to end against nodes built on `ferrosocket-hub` in this test:
//! the same thing as `ferrosocket chat` in raw mode (every message a client sends is published
//! to the room verbatim; deliveries are the messages). Real sockets on 127.0.0.1, every wait
//! bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferrosocket::Upgrader;
use ferrosocket_hub::backplane::LocalBus;
use ferrosocket_hub::{Hub, Topic};
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_ferrosocket");

/// A raw-mode node: every connection subscribes to `room:bench` and publishes what it sends.
async fn node(hub: Hub) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let room = Topic::new("room:bench").unwrap();
    tokio::spawn(async move {
        let upgrader = Upgrader::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (upgrader, hub, room) = (upgrader.clone(), hub.clone(), room.clone());
            tokio::spawn(async move {
                let Ok(mut conn) = upgrader.accept(stream).await else {
                    return;
                };
                let mut sub = hub.subscriber();
                sub.subscribe(&room);
                while let Ok(m) = sub.pump(&mut conn).await {
                    hub.publish(&room, m);
                }
            });
        }
    });
    addr
}

/// Runs the binary with `args` (bounded by the caller's timeout).
async fn fanout(args: Vec<String>) -> Output {
    let run =
        tokio::task::spawn_blocking(move || Command::new(BIN).arg("fanout").args(args).output().unwrap());
    timeout(Duration::from_secs(60), run)
        .await
        .expect("fanout ran over 60 s")
        .unwrap()
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws?room=bench&raw=1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_on_two_nodes_gets_every_message_once() {
    let bus = LocalBus::new();
    let a = node(
        Hub::builder()
            .backplane(bus.backplane())
            .queue_capacity(1024)
            .build(),
    )
    .await;
    let b = node(
        Hub::builder()
            .backplane(bus.backplane())
            .queue_capacity(1024)
            .build(),
    )
    .await;
    let out = fanout(vec![
        "--url".into(),
        url(a),
        "--url".into(),
        url(b),
        "--subscribers".into(),
        "301".into(),
        "--messages".into(),
        "200".into(),
        "--rate".into(),
        "4000".into(),
        "--size".into(),
        "100".into(),
        "--json".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["connected"], 301, "{v}");
    assert_eq!(v["connect_errors"], 0, "{v}");
    assert_eq!(v["published"], 200, "{v}");
    assert_eq!(v["expected"], 200 * 301, "{v}");
    assert_eq!(v["delivered"], 200 * 301, "{v}");
    assert_eq!(v["missing"], 0, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["size"], 100, "{v}");
    let l = &v["latency_us"];
    assert!(
        l["p50"].as_u64().unwrap() >= 1 && l["p50"].as_u64() <= l["p99"].as_u64(),
        "{v}"
    );
    assert!(l["p99"].as_u64() <= l["max"].as_u64(), "{v}");
    assert!(v["deliveries_per_sec"].as_f64().unwrap() > 0.0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_a_node_never_reaches_fail_the_ready_barrier() {
    // Two hubs with no backplane: node b's subscribers never see what is published on a.
    let a = node(Hub::new()).await;
    let b = node(Hub::new()).await;
    let out = fanout(vec![
        "--url".into(),
        url(a),
        "--url".into(),
        url(b),
        "--subscribers".into(),
        "10".into(),
        "--messages".into(),
        "5".into(),
        "--timeout".into(),
        "1".into(),
    ])
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("only 5 of 10 subscribers received the probe"),
        "{err}"
    );
}

#[tokio::test]
async fn only_loopback_urls_are_accepted() {
    let out = fanout(vec![
        "--url".into(),
        "ws://192.0.2.1:9/ws?room=bench&raw=1".into(),
    ])
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only connects to loopback"), "{err}");
}
