//! Whole runs against small servers: a real echo, garbage, silence, and not WebSocket.
#![allow(clippy::unwrap_used)]

use super::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn args(addr: std::net::SocketAddr, connections: usize, size: usize, in_flight: usize) -> BenchArgs {
    BenchArgs {
        url: format!("ws://{addr}/ws"),
        connections,
        size,
        in_flight,
        duration: 5.0,
        messages: None,
        text: false,
        binary: false,
        compress: false,
        warmup: 0.0,
        json: true,
        verify: true,
        threads: 1,
        timeout: 2.0,
        server_pid: None,
        raw_echo: false,
        conn: false,
        http2: false,
        http3: false,
        tls_ca: None,
    }
}

/// A server that upgrades every connection and then runs `then` on it.
async fn server<F, Fut>(then: F) -> std::net::SocketAddr
where
    F: Fn(ferrosocket::Conn<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let then = Arc::new(then);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let then = then.clone();
            tokio::spawn(async move {
                if let Ok(conn) = ferrosocket::Upgrader::new().accept(stream).await {
                    then(conn).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn every_message_comes_back_from_a_real_echo() {
    let addr = server(|mut conn| async move {
        while let Ok(m) = conn.recv().await {
            if conn.feed(m).await.is_err() {
                break;
            }
        }
    })
    .await;
    for (size, k, text) in [(300, 4, false), (70_000, 2, true), (0, 3, false)] {
        let mut a = args(addr, 3, size, k);
        a.messages = Some(200);
        a.text = text;
        let r = bench(&a).await.unwrap();
        assert_eq!(
            (r.connections, r.messages, r.sent, r.errors),
            (3, 200, 200, 0),
            "{:?}",
            r.first_error
        );
        assert!(r.histogram.len() == 200);
        // The same through Dialer and Conn (--conn).
        a.conn = true;
        let r = bench(&a).await.unwrap();
        assert_eq!(
            (r.connections, r.messages, r.sent, r.errors),
            (3, 200, 200, 0),
            "--conn: {:?}",
            r.first_error
        );
        assert!(r.histogram.len() == 200);
    }
}

#[tokio::test]
async fn garbage_from_the_server_fails_its_connection_without_panicking() {
    let garbage: [&[u8]; 7] = [
        &[0x8f, 0x00],                               // reserved opcode
        &[0x82, 0x7f, 0xff, 0, 0, 0, 0, 0, 0, 0],    // 64-bit length with the top bit set
        &[0x82, 0x05, 1, 2, 3, 4, 5],                // not what was sent (--verify)
        &[0x81, 0x05, b'h', b'e', b'l', b'l', b'o'], // wrong type
        &[0x82, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9],    // masked
        &[0x88, 0x02, 0x03, 0xe8],                   // close 1000
        &[0x82, 0x06, 0, 0, 0, 0, 0, 0],             // longer than sent
    ];
    for g in garbage {
        let addr = server(move |mut conn| async move {
            let _ = conn.recv().await;
            let _ = conn.get_mut().write_all(g).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
        })
        .await;
        let r = bench(&args(addr, 1, 5, 1)).await.unwrap();
        assert_eq!((r.errors, r.messages), (1, 0), "{g:?}");
        assert!(r.first_error.is_some());
        let mut a = args(addr, 1, 5, 1);
        a.conn = true;
        let r = bench(&a).await.unwrap();
        assert_eq!((r.errors, r.messages), (1, 0), "--conn: {g:?}");
    }
}

#[tokio::test]
async fn a_silent_server_ends_at_the_deadline() {
    let addr = server(|mut conn| async move {
        let _ = conn.recv().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let mut a = args(addr, 2, 16, 1);
    a.duration = 0.3;
    let start = std::time::Instant::now();
    let r = bench(&a).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!((r.connections, r.messages, r.errors), (2, 0, 0));
    a.conn = true;
    let start = std::time::Instant::now();
    let r = bench(&a).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "--conn took {:?}",
        start.elapsed()
    );
    assert_eq!((r.connections, r.messages, r.errors), (2, 0, 0));
}

#[tokio::test]
async fn a_server_that_is_not_websocket_is_an_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    // No connection: an error only, with no (all-zero) report to print.
    let Err(e) = bench(&args(addr, 2, 16, 1)).await else {
        panic!("a run without connections must be an error");
    };
    let text = e.to_string();
    assert!(text.contains("no connection to ws://"), "{text}");
    assert!(text.contains("2 attempt(s) failed"), "{text}");
    assert!(text.contains("404"), "{text}");
}
