//! The Redis backplane against a real `redis-server` (skipped with a loud line when it is not
//! installed, unless `CI` is set).
#![allow(clippy::expect_used)]

mod common;

use common::{Kind, PATIENCE, Server, drain_after, eventually, topic, wait_routed};
use ferrosocket_hub::Hub;
use ferrosocket_hub::backplane::{RedisBackplane, RedisOptions};
use std::time::Duration;

fn hub(server: &Server, history: usize) -> Hub {
    let mut o = RedisOptions::default();
    o.prefix = "t".into();
    o.min_backoff = Duration::from_millis(20);
    o.max_backoff = Duration::from_millis(200);
    o.timeout = Duration::from_secs(2);
    let bp = RedisBackplane::with_options(&server.url(), o).expect("a Redis URL");
    Hub::builder().history(history).backplane(bp).build()
}

async fn raw(server: &Server) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("a test connection")
}

#[tokio::test]
async fn two_nodes_deliver_exactly_once() {
    let Some(server) = Server::start(Kind::Redis).await else {
        return;
    };
    common::two_nodes_deliver_exactly_once(&|h| hub(&server, h)).await;
}

#[tokio::test]
async fn history_keeps_the_last_n_in_a_list() {
    let Some(server) = Server::start(Kind::Redis).await else {
        return;
    };
    common::history_keeps_the_last_n(&|h| hub(&server, h)).await;
    // The list is where the docs say, trimmed.
    let mut c = raw(&server).await;
    let len: usize = redis::cmd("LLEN")
        .arg("t:history:history-room")
        .query_async(&mut c)
        .await
        .expect("LLEN");
    assert_eq!(len, 3);
}

#[tokio::test]
async fn bytes_that_are_not_an_envelope_count_as_malformed() {
    let Some(server) = Server::start(Kind::Redis).await else {
        return;
    };
    let (a, b) = (hub(&server, 0), hub(&server, 0));
    let room = topic("garbage");
    let mut sb = b.subscriber();
    sb.subscribe(&room);
    wait_routed(&a, &room, &mut sb).await;
    let received = b.stats().received;
    let mut c = raw(&server).await;
    for junk in [&b"hello"[..], b"FSH1short", b"FSH112345678\x09x"] {
        let n: i64 = redis::cmd("PUBLISH")
            .arg("t:garbage")
            .arg(junk)
            .query_async(&mut c)
            .await
            .expect("PUBLISH");
        assert_eq!(n, 1, "B's subscription took it");
    }
    eventually("3 malformed", || b.stats().malformed == 3).await;
    assert!(drain_after(&mut sb, Duration::from_millis(100)).await.is_empty());
    assert_eq!(b.stats().received, received, "nothing delivered");
}

#[tokio::test]
async fn survives_a_broker_restart() {
    let Some(mut server) = Server::start(Kind::Redis).await else {
        return;
    };
    let url = server.url();
    let make = move |h: usize| {
        let mut o = RedisOptions::default();
        o.prefix = "t".into();
        o.min_backoff = Duration::from_millis(20);
        o.max_backoff = Duration::from_millis(200);
        o.timeout = Duration::from_secs(2);
        Hub::builder()
            .history(h)
            .backplane(RedisBackplane::with_options(&url, o).expect("a Redis URL"))
            .build()
    };
    common::survives_a_broker_restart(&mut server, &make).await;
}

async fn clients(c: &mut redis::aio::MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(c)
        .await
        .expect("CLIENT LIST");
    list.lines().filter(|l| !l.trim().is_empty()).count()
}

#[tokio::test]
async fn the_task_ends_with_the_hub() {
    let Some(server) = Server::start(Kind::Redis).await else {
        return;
    };
    let mut c = raw(&server).await;
    // Only this test's connection (the start-up probe's may still be listed for a moment).
    let before = 1;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while clients(&mut c).await != before {
        assert!(tokio::time::Instant::now() < deadline, "stray clients");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let h = hub(&server, 0);
    let room = topic("bye");
    let mut s = h.subscriber();
    s.subscribe(&room);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let subs: (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("t:bye")
            .query_async(&mut c)
            .await
            .expect("PUBSUB NUMSUB");
        if subs.1 == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        clients(&mut c).await,
        before + 2,
        "a pub/sub and a command connection"
    );
    // The last local subscriber leaves: the node unsubscribes from that channel at once.
    drop(s);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while numsub(&mut c, "t:bye").await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "never unsubscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(clients(&mut c).await, before + 2, "the node stays connected");
    drop(h);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let n = clients(&mut c).await;
        if n == before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} clients, not {before}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn without_a_runtime_the_hub_serves_locally_and_says_why() {
    // No tokio runtime here: the backplane cannot start its task; it must not panic.
    let bp = RedisBackplane::new("redis://127.0.0.1:1").expect("a Redis URL");
    let h = Hub::builder().backplane(bp).build();
    let room = topic("alone");
    let mut s = h.subscriber();
    s.subscribe(&room);
    assert_eq!(h.publish(&room, "hi"), 1);
    assert_eq!(common::drain(&mut s), ["hi"]);
    let st = h.stats();
    assert!(!st.backplane_up);
    assert_eq!((st.outages, st.publish_failed), (1, 1));
}

#[test]
fn a_url_that_is_not_redis_is_refused() {
    let e = RedisBackplane::new("http://example.com").expect_err("not Redis");
    assert_eq!(e.backplane, "redis");
    assert!(e.to_string().contains("not a Redis URL"), "{e}");
}

async fn numsub(c: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(c)
        .await
        .expect("PUBSUB NUMSUB");
    n
}
