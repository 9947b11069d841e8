//! Holds many idle WebSocket connections open, for `cargo xtask bench-memory`.
//!
//! ```text
//! ws-hold --url ws://127.0.0.1:PORT/PATH [--connections 10000] [--size 65536] [--timeout 300]
//! ```
//!
//! 1. opens and upgrades every connection (256 handshakes at a time), prints
//!    `upgraded OK FAILED`, and waits for a line on stdin;
//! 2. sends one binary message of `--size` bytes on every connection and reads its echo
//!    (64 connections at a time), prints `echoed OK FAILED`, and waits for a line on stdin;
//! 3. closes everything and exits.
//!
//! Every step is bounded by `--timeout` seconds overall (exit status 1 then). Loopback only:
//! the URL must name 127.0.0.1 or localhost.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

struct Args {
    host: String,
    port: u16,
    path: String,
    connections: usize,
    size: usize,
    timeout: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let (mut connections, mut size, mut timeout) = (10_000usize, 65_536usize, 300u64);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--url" => url = Some(val("--url")?),
            "--connections" => connections = val("--connections")?.parse().map_err(|e| format!("{e}"))?,
            "--size" => size = val("--size")?.parse().map_err(|e| format!("{e}"))?,
            "--timeout" => timeout = val("--timeout")?.parse().map_err(|e| format!("{e}"))?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let url = url.ok_or("--url ws://127.0.0.1:PORT/PATH is required")?;
    let rest = url.strip_prefix("ws://").ok_or("only ws:// urls")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = authority.rsplit_once(':').ok_or("the url needs a port")?;
    if host != "127.0.0.1" && host != "localhost" {
        return Err("ws-hold only connects to 127.0.0.1 or localhost".into());
    }
    Ok(Args {
        host: host.to_string(),
        port: port.parse().map_err(|e| format!("bad port: {e}"))?,
        path: path.to_string(),
        connections,
        size,
        timeout,
    })
}

async fn upgrade(host: &str, port: u16, path: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect((host, port)).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    // Byte by byte so that nothing after the head is consumed (the server sends nothing more).
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || s.read(&mut byte).await? == 0 {
            return Err(std::io::Error::other("bad handshake response"));
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other("server did not switch protocols"));
    }
    Ok(s)
}

/// Sends `frame` and reads server frames until a whole message of `size` bytes came back.
async fn echo_once(s: &mut TcpStream, frame: &[u8], size: usize) -> std::io::Result<()> {
    s.write_all(frame).await?;
    let mut got = 0usize;
    let mut buf = vec![0u8; 16 << 10];
    let (mut have, mut need_payload, mut fin) = (0usize, 0usize, false);
    loop {
        if need_payload > 0 {
            let cap = need_payload.min(buf.len());
            let n = s.read(&mut buf[..cap]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            need_payload -= n;
            got += n;
            if need_payload == 0 && fin && got >= size {
                return Ok(());
            }
            continue;
        }
        // Read a header one piece at a time (2, then the extended length).
        while have < 2 {
            let n = s.read(&mut buf[have..2]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            have += n;
        }
        let ext = match buf[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if buf[1] & 0x80 != 0 { 4 } else { 0 };
        s.read_exact(&mut buf[2..2 + ext + mask]).await?;
        let len = match ext {
            2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
            8 => u64::from_be_bytes([buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8], buf[9]]),
            _ => u64::from(buf[1] & 0x7f),
        };
        let opcode = buf[0] & 0x0f;
        fin = buf[0] & 0x80 != 0;
        have = 0;
        need_payload = usize::try_from(len).map_err(std::io::Error::other)?;
        if opcode >= 8 && need_payload > 0 {
            // A control frame (ping): skip it; it does not count toward the echo.
            let mut skip = vec![0u8; need_payload];
            s.read_exact(&mut skip).await?;
            need_payload = 0;
            fin = false;
        } else if need_payload == 0 && fin && got >= size {
            return Ok(());
        }
    }
}

async fn wait_line(stdin: &mut tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>) -> bool {
    matches!(stdin.next_line().await, Ok(Some(_)))
}

async fn run(args: Args) -> Result<(), String> {
    let args = Arc::new(args);
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();

    let gate = Arc::new(Semaphore::new(256));
    let mut set = JoinSet::new();
    for _ in 0..args.connections {
        let (args, gate) = (args.clone(), gate.clone());
        set.spawn(async move {
            let _permit = gate.acquire().await.ok()?;
            let fut = upgrade(&args.host, args.port, &args.path);
            tokio::time::timeout(Duration::from_secs(10), fut)
                .await
                .ok()?
                .ok()
        });
    }
    let mut conns = Vec::with_capacity(args.connections);
    let mut failed = 0usize;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Some(s)) => conns.push(s),
            _ => failed += 1,
        }
    }
    println!("upgraded {} {failed}", conns.len());
    if !wait_line(&mut stdin).await {
        return Ok(());
    }

    // One masked binary frame, key 0 (XOR with zero: the payload goes as it is).
    let mut frame = vec![0x82u8];
    match args.size {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend((0..args.size).map(|i| (i % 251) as u8));
    let frame: Arc<[u8]> = frame.into();

    let gate = Arc::new(Semaphore::new(64));
    let mut set = JoinSet::new();
    for mut s in conns {
        let (args, gate, frame) = (args.clone(), gate.clone(), frame.clone());
        set.spawn(async move {
            let ok = match gate.acquire().await {
                Ok(_permit) => matches!(
                    tokio::time::timeout(Duration::from_secs(30), echo_once(&mut s, &frame, args.size)).await,
                    Ok(Ok(()))
                ),
                Err(_) => false,
            };
            (s, ok)
        });
    }
    let mut conns = Vec::with_capacity(args.connections);
    let (mut ok, mut bad) = (0usize, 0usize);
    while let Some(r) = set.join_next().await {
        if let Ok((s, good)) = r {
            if good {
                ok += 1;
            } else {
                bad += 1;
            }
            conns.push(s);
        } else {
            bad += 1;
        }
    }
    println!("echoed {ok} {bad}");
    wait_line(&mut stdin).await;
    drop(conns);
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ws-hold: {e}");
            std::process::exit(2);
        }
    };
    let timeout = Duration::from_secs(args.timeout);
    let result = ferrosocket_bench_peers::runtime()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async move {
                tokio::time::timeout(timeout, run(args))
                    .await
                    .map_err(|_| "timed out".to_string())?
            })
        });
    if let Err(e) = result {
        eprintln!("ws-hold: {e}");
        std::process::exit(1);
    }
}
