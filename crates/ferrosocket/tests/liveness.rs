//! Liveness, backpressure and graceful shutdown. The timers (keepalive, idle timeout) run on a
//! paused clock over an in-memory pipe and are asserted exactly; backpressure, memory, the
//! shutdown of several connections and the connection limit run over real sockets on
//! 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, Req, assert_waited, connect_duplex, listen};
use ferrosocket::proto::Event;
use ferrosocket::{
    CloseCode, Error, Message, Shutdown, SlowPeerPolicy, TimeoutKind, Upgrader, is_unexpected_close_error,
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

#[tokio::test(start_paused = true)]
async fn keepalive_detects_a_peer_that_stops_answering() {
    let upgrader = Upgrader::new().keepalive(Duration::from_millis(100), Duration::from_millis(200));
    // The client completes the handshake, then neither reads nor writes: a dead peer.
    let (mut conn, _client) = connect_duplex(&upgrader).await;
    let server = tokio::spawn(async move {
        let start = Instant::now();
        let err = conn.recv().await.unwrap_err();
        (err, start.elapsed())
    });
    let (err, elapsed) = timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    assert!(
        is_unexpected_close_error(&err, &[CloseCode::NORMAL_CLOSURE, CloseCode::GOING_AWAY]),
        "{err}"
    );
    assert_eq!(err.close_error().unwrap().code, CloseCode::ABNORMAL_CLOSURE);
    // interval 100 ms + timeout 200 ms
    assert_waited(elapsed, Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn keepalive_keeps_a_live_quiet_peer() {
    let upgrader = Upgrader::new().keepalive(Duration::from_millis(50), Duration::from_millis(100));
    let (mut conn, mut client) = connect_duplex(&upgrader).await;
    let server = tokio::spawn(async move { conn.recv().await });
    // Answer pings (the core auto-pongs) for 600 ms: the server must not drop us.
    let mut pings = 0;
    let deadline = Instant::now() + Duration::from_millis(600);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, client.next_answering()).await {
        if let Event::Ping(_) = ev {
            pings += 1;
        }
    }
    assert!(pings >= 3, "server sent {pings} pings");
    client.send(Message::text("still here")).await;
    let got = timeout(Duration::from_secs(2), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, Message::text("still here"));
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_with_1001() {
    let upgrader = Upgrader::new().idle_timeout(Some(Duration::from_millis(150)));
    let (mut conn, mut client) = connect_duplex(&upgrader).await;
    let start = Instant::now();
    let server = tokio::spawn(async move { conn.recv().await });
    let code = client.next_close().await.map(|f| f.code);
    assert_eq!(code, Some(CloseCode::GOING_AWAY));
    assert_waited(start.elapsed(), Duration::from_millis(150));
    client.flush().await; // the close reply
    let err = timeout(Duration::from_secs(3), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(TimeoutKind::Idle)), "{err}");
}

#[tokio::test]
async fn shutdown_sends_1001_after_everything_queued() {
    let (listener, addr) = listen().await;
    let shutdown = Shutdown::new();
    let upgrader = Upgrader::new();
    let clients = 5;
    let per_client = 200;
    let sd = shutdown.clone();
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (s, _) = listener.accept().await.unwrap();
            let mut conn = upgrader.accept(s).await.unwrap();
            conn.set_shutdown(sd.token());
            tasks.push(tokio::spawn(async move {
                // Queue messages without flushing: shutdown must not lose them.
                for i in 0..per_client {
                    conn.feed(Message::text(format!("m{i}"))).await.unwrap();
                }
                loop {
                    match conn.recv().await {
                        Ok(_) => continue,
                        Err(e) => return e,
                    }
                }
            }));
        }
        tasks
    });
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(Client::connect_to(addr).await);
    }
    let tasks = timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    shutdown.trigger();
    for client in &mut conns {
        let mut received = 0;
        let code = loop {
            match timeout(Duration::from_secs(5), client.next_answering())
                .await
                .unwrap()
            {
                Some(Event::Message(m)) => {
                    assert_eq!(m, Message::text(format!("m{received}")));
                    received += 1;
                }
                Some(Event::Close(f)) => break f.map(|f| f.code),
                Some(_) => {}
                None => panic!("eof before close"),
            }
        };
        assert_eq!(
            received, per_client,
            "every queued message arrives before the close"
        );
        assert_eq!(code, Some(CloseCode::GOING_AWAY));
    }
    for t in tasks {
        let err = timeout(Duration::from_secs(5), t).await.unwrap().unwrap();
        assert!(err.is_normal_close(), "{err}");
    }
    assert!(shutdown.wait(Duration::from_secs(2)).await);
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_memory_is_bounded_and_others_are_served() {
    let (listener, addr) = listen().await;
    let upgrader = Upgrader::new().slow_peer_policy(SlowPeerPolicy::Close {
        after: Duration::from_millis(700),
        code: CloseCode::POLICY_VIOLATION,
    });
    let server = tokio::spawn(async move {
        let mut results = Vec::new();
        for _ in 0..2 {
            let (s, _) = listener.accept().await.unwrap();
            let upgrader = upgrader.clone();
            results.push(tokio::spawn(async move {
                let mut conn = upgrader.accept(s).await.unwrap();
                loop {
                    match conn.recv().await {
                        Ok(m) => {
                            if let Err(e) = conn.feed(m).await {
                                return e;
                            }
                        }
                        Err(e) => return e,
                    }
                }
            }));
        }
        results
    });
    // The slow client writes 64 KiB messages as fast as it can and never reads.
    let slow = Client::connect_to(addr).await;
    let mut good = Client::connect_to(addr).await;
    let tasks = timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    let before = rss_kib();
    let Client {
        io: mut stream,
        mut core,
        ..
    } = slow;
    let writer = tokio::spawn(async move {
        let payload = vec![7u8; 64 << 10];
        let mut sent = 0usize;
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && sent < 4096 {
            core.send(Message::binary(payload.clone())).unwrap();
            let out = core.take_output();
            match timeout(Duration::from_millis(300), stream.write_all(&out)).await {
                Ok(Ok(())) => sent += 1,
                _ => break, // the server stopped reading: backpressure reached us
            }
        }
        (sent, stream)
    });
    // Meanwhile the well-behaved client is served.
    for i in 0..50 {
        good.send(Message::text(format!("ping {i}"))).await;
        match timeout(Duration::from_secs(2), good.next_answering())
            .await
            .unwrap()
        {
            Some(Event::Message(m)) => assert_eq!(m, Message::text(format!("ping {i}"))),
            other => panic!("good client got {other:?}"),
        }
    }
    let (sent, _stream) = timeout(Duration::from_secs(10), writer).await.unwrap().unwrap();
    let grown_kib = rss_kib().saturating_sub(before);
    // Bounded: at most the 4 MiB output cap, the read buffer, socket buffers in user space
    // are not counted. Without backpressure this would approach sent * 64 KiB.
    assert!(
        grown_kib < 24 * 1024,
        "rss grew by {grown_kib} KiB after {sent} messages"
    );
    let mut tasks = tasks.into_iter();
    let slow_err = timeout(Duration::from_secs(5), tasks.next().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(slow_err, Error::Timeout(TimeoutKind::Write)),
        "{slow_err}"
    );
}

#[tokio::test]
async fn max_connections_answers_503_beyond_the_limit() {
    let (listener, addr) = listen().await;
    let upgrader = Upgrader::new().max_connections(Some(2));
    let probe = upgrader.clone();
    let server = tokio::spawn(async move {
        let mut results = Vec::new();
        for i in 0..4 {
            let (s, _) = listener.accept().await.unwrap();
            results.push(upgrader.accept(s).await);
            if i == 2 {
                // Free one place: the fourth connection must get in.
                drop(results.remove(0));
            }
        }
        results
    });
    let _a = Client::connect_to(addr).await;
    let _b = Client::connect_to(addr).await;
    // The third is refused with 503 while two are open.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(&Req::valid().bytes()).await.unwrap();
    let mut answer = Vec::new();
    timeout(Duration::from_secs(2), third.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let _d = Client::connect_to(addr).await;
    let results = timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    assert!(
        results[0].is_ok(),
        "{:?}",
        results
            .iter()
            .map(|r| r.as_ref().err().map(|e| e.to_string()))
            .collect::<Vec<_>>()
    );
    assert!(matches!(
        &results[1],
        Err(Error::Handshake(
            ferrosocket::proto::HandshakeError::TooManyConnections
        ))
    ));
    assert!(results[2].is_ok());
    assert_eq!(probe.live_connections(), 2);
}
