//! The hub with real WebSocket connections on 127.0.0.1: fan-out, the slow-consumer policies,
//! kicks, compression, the leak checks, and two hubs joined by a `LocalBus`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferrosocket::proto::DeflateConfig;
use ferrosocket::{CloseCode, CloseFrame, Conn, Dialer, Error, MaybeTlsStream, Message, Upgrader};
use ferrosocket_hub::backplane::LocalBus;
use ferrosocket_hub::{Delivery, Hub, SlowConsumer, Topic};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

fn lobby() -> Topic {
    Topic::new("lobby").unwrap()
}

/// A server whose connections all join `lobby` and publish there what they send.
async fn serve(hub: Hub, upgrader: Upgrader) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (hub, upgrader) = (hub.clone(), upgrader.clone());
            tokio::spawn(async move {
                let Ok(mut conn) = upgrader.accept(stream).await else {
                    return;
                };
                let mut me = hub.subscriber();
                me.subscribe(&lobby());
                while let Ok(msg) = me.pump(&mut conn).await {
                    hub.publish(&lobby(), msg);
                }
            });
        }
    });
    addr
}

async fn client(addr: SocketAddr, dialer: &Dialer) -> Conn<MaybeTlsStream> {
    let (conn, _) = timeout(LIMIT, dialer.connect(format!("ws://{addr}/")))
        .await
        .unwrap()
        .unwrap();
    conn
}

/// Waits (bounded) until `hub` has `n` subscribers on `lobby`.
async fn until_subscribed(hub: &Hub, n: usize) {
    timeout(LIMIT, async {
        while hub.subscriber_count(&lobby()) != n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} subscribers, not {n}", hub.subscriber_count(&lobby())));
}

async fn recv(conn: &mut Conn<MaybeTlsStream>) -> Message {
    timeout(LIMIT, conn.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_message_sent_by_one_reaches_every_subscriber_once() {
    let hub = Hub::new();
    let addr = serve(hub.clone(), Upgrader::new()).await;
    let dialer = Dialer::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(client(addr, &dialer).await);
    }
    until_subscribed(&hub, 3).await;
    clients[0].send_text("hello").await.unwrap();
    for c in &mut clients {
        assert_eq!(recv(c).await, Message::text("hello"));
    }
    clients[2].send_binary(vec![1u8, 2, 3]).await.unwrap();
    for c in &mut clients {
        assert_eq!(recv(c).await, Message::binary(vec![1u8, 2, 3]));
    }
    let s = hub.stats();
    assert_eq!((s.published, s.queued, s.delivered), (2, 6, 6));
    assert_eq!((s.dropped, s.disconnected, s.subscribers, s.topics), (0, 0, 3, 1));
}

#[tokio::test]
async fn compressed_and_plain_subscribers_receive_the_same_message() {
    let hub = Hub::new();
    // Server without context takeover: the compressed frame is made once and shared.
    let mut shared = DeflateConfig::default();
    shared.server_no_context_takeover = true;
    let addr = serve(
        hub.clone(),
        Upgrader::new().enable_compression(true).deflate(Some(shared)),
    )
    .await;
    let plain = Dialer::new();
    let deflate = Dialer::new().enable_compression(true);
    let mut clients = vec![
        client(addr, &plain).await,
        client(addr, &deflate).await,
        client(addr, &deflate).await,
    ];
    // A third path: a connection with context takeover compresses the message itself.
    let takeover = serve(hub.clone(), Upgrader::new().enable_compression(true)).await;
    clients.push(client(takeover, &deflate).await);
    until_subscribed(&hub, 4).await;
    let text = "the same words again and again; ".repeat(200);
    hub.publish(&lobby(), text.as_str());
    hub.publish(&lobby(), "short");
    for c in &mut clients {
        assert_eq!(recv(c).await, Message::text(text.clone()));
        assert_eq!(recv(c).await, Message::text("short"));
    }
}

/// Publishes 64 KiB messages until `done` says so (bounded: 50 MiB at most).
async fn flood(hub: &Hub, done: impl Fn(&Hub) -> bool) -> u32 {
    let payload = vec![7u8; 64 << 10];
    for n in 1..=800 {
        hub.publish(&lobby(), payload.clone());
        // Let the pump move what it can into the socket before the next one.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        if done(hub) {
            return n;
        }
    }
    panic!("the policy never applied: {:?}", hub.stats());
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_disconnected_with_1013_and_the_others_go_on() {
    let hub = Hub::builder().queue_capacity(8).build();
    let addr = serve(hub.clone(), Upgrader::new().max_write_buffer_size(1 << 20)).await;
    let dialer = Dialer::new();
    let mut stalled = client(addr, &dialer).await;
    until_subscribed(&hub, 1).await;
    flood(&hub, |h| h.stats().disconnected == 1).await;
    // It leaves the topic at once, while its close handshake waits for the peer; a newcomer
    // is served.
    until_subscribed(&hub, 0).await;
    let mut fresh = client(addr, &dialer).await;
    until_subscribed(&hub, 1).await;
    hub.publish(&lobby(), "after");
    assert_eq!(recv(&mut fresh).await, Message::text("after"));
    // The stalled peer reads what had been written, then the close frame that says why.
    let close = timeout(LIMIT, async {
        loop {
            match stalled.recv().await {
                Ok(_) => continue,
                Err(e) => return e,
            }
        }
    })
    .await
    .unwrap();
    let Error::Closed(c) = close else {
        panic!("{close:?}")
    };
    assert_eq!(c.code, CloseCode::TRY_AGAIN_LATER);
    assert!(c.reason.contains("too slow"), "{}", c.reason);
}

#[tokio::test]
async fn drop_oldest_keeps_a_stalled_subscriber_and_it_ends_on_the_newest_message() {
    let hub = Hub::builder()
        .queue_capacity(8)
        .slow_consumer(SlowConsumer::DropOldest)
        .build();
    let addr = serve(hub.clone(), Upgrader::new().max_write_buffer_size(1 << 20)).await;
    let mut stalled = client(addr, &Dialer::new()).await;
    until_subscribed(&hub, 1).await;
    flood(&hub, |h| h.stats().dropped > 0).await;
    hub.publish(&lobby(), "last");
    let last = timeout(LIMIT, async {
        loop {
            let m = stalled.recv().await.unwrap();
            if m.is_text() {
                return m;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(last, Message::text("last"));
    let s = hub.stats();
    assert_eq!(s.disconnected, 0);
    // Drop-oldest always makes room: every publication was queued, older ones gave way.
    assert_eq!(s.queued, s.published);
    assert!(s.dropped > 0);
    assert_eq!(hub.subscriber_count(&lobby()), 1);
}

#[tokio::test]
async fn kick_all_closes_every_subscriber_with_the_given_frame() {
    let hub = Hub::new();
    let addr = serve(hub.clone(), Upgrader::new()).await;
    let dialer = Dialer::new();
    let mut clients = vec![client(addr, &dialer).await, client(addr, &dialer).await];
    until_subscribed(&hub, 2).await;
    assert_eq!(
        hub.kick_all(CloseFrame::new(CloseCode::SERVICE_RESTART, "restarting")),
        2
    );
    for c in &mut clients {
        let err = timeout(LIMIT, c.recv()).await.unwrap().unwrap_err();
        let Error::Closed(close) = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            (close.code, close.reason.as_str()),
            (CloseCode::SERVICE_RESTART, "restarting")
        );
    }
    until_subscribed(&hub, 0).await;
    assert_eq!(hub.stats().disconnected, 2);
}

#[test]
fn a_hundred_thousand_subscribers_leave_no_trace() {
    let hub = Hub::new();
    let all = Topic::new("all").unwrap();
    let rooms: Vec<Topic> = (0..1000)
        .map(|i| Topic::new(&format!("room-{i}")).unwrap())
        .collect();
    let mut live = Vec::with_capacity(10_000);
    for i in 0..100_000usize {
        let mut s = hub.subscriber();
        s.subscribe(&all);
        s.subscribe(&rooms[i % rooms.len()]);
        if i % 3 == 0 {
            s.unsubscribe(&all);
        }
        live.push(s);
        if live.len() == 10_000 {
            assert_eq!(hub.stats().subscribers, 10_000);
            hub.publish(&all, "tick");
            live.clear();
        }
    }
    let s = hub.stats();
    assert_eq!((s.subscribers, s.topics), (0, 0), "{s:?}");
    assert_eq!(hub.subscriber_count(&all), 0);
    assert_eq!(hub.publish(&all, "nobody"), 0);
}

#[tokio::test]
async fn connections_that_vanish_leave_no_subscriber_behind() {
    let hub = Hub::new();
    let addr = serve(hub.clone(), Upgrader::new()).await;
    let dialer = Dialer::new();
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(client(addr, &dialer).await);
    }
    until_subscribed(&hub, 200).await;
    // Half close properly, half just drop their sockets.
    for (i, mut c) in clients.into_iter().enumerate() {
        if i % 2 == 0 {
            let _ = timeout(LIMIT, c.close(None)).await;
        }
    }
    until_subscribed(&hub, 0).await;
    timeout(LIMIT, async {
        while hub.stats().subscribers != 0 || hub.stats().topics != 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap();
}

#[test]
fn two_hubs_on_a_bus_deliver_each_publication_once_everywhere() {
    let bus = LocalBus::new();
    let a = Hub::builder().backplane(bus.backplane()).history(3).build();
    let b = Hub::builder().backplane(bus.backplane()).history(3).build();
    let (mut on_a, mut on_b) = (a.subscriber(), b.subscriber());
    on_a.subscribe(&lobby());
    on_b.subscribe(&lobby());
    for n in 0..5 {
        a.publish(&lobby(), format!("m{n}"));
    }
    let texts = |s: &mut ferrosocket_hub::Subscriber| {
        std::iter::from_fn(|| match s.try_next() {
            Some(Delivery::Message(m)) => Some(m.message()),
            _ => None,
        })
        .collect::<Vec<_>>()
    };
    let expected: Vec<Message> = (0..5).map(|n| Message::text(format!("m{n}"))).collect();
    assert_eq!(texts(&mut on_a), expected);
    assert_eq!(texts(&mut on_b), expected);
    assert_eq!((a.stats().received, b.stats().received), (0, 5));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let history = rt.block_on(b.history(&lobby())).unwrap();
    assert_eq!(history, expected[2..]);
    // A topic nobody on b wants is not delivered to b.
    let other = Topic::new("other").unwrap();
    a.publish(&other, "x");
    assert_eq!(b.stats().received, 5);
}

#[test]
fn history_without_a_backplane_keeps_the_last_n() {
    let hub = Hub::builder().history(2).build();
    for n in 0..4 {
        hub.publish(&lobby(), format!("m{n}"));
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(
        rt.block_on(hub.history(&lobby())).unwrap(),
        vec![Message::text("m2"), Message::text("m3")]
    );
    assert!(rt.block_on(Hub::new().history(&lobby())).unwrap().is_empty());
}

#[tokio::test]
async fn a_subscriber_that_unsubscribes_gets_nothing_more() {
    let hub = Hub::new();
    let mut s = hub.subscriber();
    s.subscribe(&lobby());
    assert!(!s.subscribe(&lobby()));
    hub.publish(&lobby(), "one");
    assert!(s.unsubscribe(&lobby()));
    assert!(!s.unsubscribe(&lobby()));
    hub.publish(&lobby(), "two");
    assert!(matches!(s.try_next(), Some(Delivery::Message(m)) if m.message() == Message::text("one")));
    assert!(s.try_next().is_none());
    assert_eq!(hub.stats().topics, 0);
}
