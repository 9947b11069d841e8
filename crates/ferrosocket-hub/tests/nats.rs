//! The NATS backplane against a real `nats-server -js` (skipped with a loud line when it is
//! not installed, unless `CI` is set).
#![allow(clippy::expect_used)]

mod common;

use common::{Kind, Server, drain_after, eventually, topic, wait_routed};
use ferrosocket_hub::Hub;
use ferrosocket_hub::backplane::{NatsBackplane, NatsOptions};
use std::time::Duration;

fn hub_at(url: &str, history: usize) -> Hub {
    let mut o = NatsOptions::default();
    o.prefix = "t".into();
    o.min_backoff = Duration::from_millis(20);
    o.max_backoff = Duration::from_millis(200);
    o.timeout = Duration::from_secs(2);
    let bp = NatsBackplane::with_options(url, o).expect("a NATS URL");
    Hub::builder().history(history).backplane(bp).build()
}

#[tokio::test]
async fn two_nodes_deliver_exactly_once() {
    let Some(server) = Server::start(Kind::Nats).await else {
        return;
    };
    let url = server.url();
    common::two_nodes_deliver_exactly_once(&|h| hub_at(&url, h)).await;
}

#[tokio::test]
async fn history_keeps_the_last_n_in_jetstream() {
    let Some(server) = Server::start(Kind::Nats).await else {
        return;
    };
    let url = server.url();
    common::history_keeps_the_last_n(&|h| hub_at(&url, h)).await;
}

#[tokio::test]
async fn bytes_that_are_not_an_envelope_count_as_malformed() {
    let Some(server) = Server::start(Kind::Nats).await else {
        return;
    };
    let url = server.url();
    let (a, b) = (hub_at(&url, 0), hub_at(&url, 0));
    let room = topic("garbage");
    let mut sb = b.subscriber();
    sb.subscribe(&room);
    wait_routed(&a, &room, &mut sb).await;
    let received = b.stats().received;
    let raw = async_nats::connect(url.as_str()).await.expect("a test client");
    for junk in [&b"hello"[..], b"FSH1short", b"FSH112345678\x09x"] {
        raw.publish("t.garbage", bytes::Bytes::copy_from_slice(junk))
            .await
            .expect("publish");
    }
    raw.flush().await.expect("flush");
    eventually("3 malformed", || b.stats().malformed == 3).await;
    assert!(drain_after(&mut sb, Duration::from_millis(100)).await.is_empty());
    assert_eq!(b.stats().received, received, "nothing delivered");
}

#[tokio::test]
async fn survives_a_broker_restart() {
    let Some(mut server) = Server::start(Kind::Nats).await else {
        return;
    };
    let url = server.url();
    common::survives_a_broker_restart(&mut server, &|h| hub_at(&url, h)).await;
}

#[tokio::test]
async fn history_survives_a_broker_restart() {
    // JetStream keeps the stream on disk (`-sd`), and the backplane checks it again after
    // reconnecting.
    let Some(mut server) = Server::start(Kind::Nats).await else {
        return;
    };
    let url = server.url();
    let a = hub_at(&url, 2);
    let room = topic("kept");
    eventually("A up", || a.stats().backplane_up).await;
    a.publish(&room, "before");
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while a.history(&room).await.map(|h| h.len()).unwrap_or(0) < 1 {
        assert!(tokio::time::Instant::now() < deadline, "never stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.restart().await;
    eventually("A back up", || a.stats().backplane_up).await;
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        a.publish(&room, "after");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let h = a.history(&room).await;
        if let Ok(h) = &h
            && h.last().map(|m| &m.as_bytes()[..]) == Some(&b"after"[..])
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history after restart: {h:?}"
        );
    }
}

#[tokio::test]
async fn the_task_ends_with_the_hub() {
    let Some(server) = Server::start(Kind::Nats).await else {
        return;
    };
    // The start-up probe's connection may still be counted for a moment.
    connections_become(&server, 0).await;
    let url = server.url();
    let (a, b) = (hub_at(&url, 0), hub_at(&url, 0));
    let room = topic("bye");
    let mut sb = b.subscriber();
    sb.subscribe(&room);
    wait_routed(&a, &room, &mut sb).await;
    assert_eq!(server.nats_connections().await, 2, "one client per hub");
    drop(sb);
    drop(b);
    connections_become(&server, 1).await;
    drop(a);
    connections_become(&server, 0).await;
}

async fn connections_become(server: &Server, want: u64) {
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        let n = server.nats_connections().await;
        if n == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} connections, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_url_that_is_not_nats_is_refused() {
    let e = NatsBackplane::new("nats://[::1").expect_err("not NATS");
    assert_eq!(e.backplane, "nats");
    assert!(e.to_string().contains("not a NATS URL"), "{e}");
}
