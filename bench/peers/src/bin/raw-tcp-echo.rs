//! The ceiling: a plain TCP echo (no WebSocket at all) on one thread. Every byte read is
//! written back as it came, so a client's masked frames return as they were sent; the bench
//! client only counts frames, so it is a fair upper bound for any WebSocket echo.
//! There is no HTTP upgrade: `ferrosocket bench --raw-echo` skips the handshake and accepts
//! its own (masked) frames coming back.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn main() {
    let addr = match ferrosocket_bench_peers::listen_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("raw-tcp-echo: {e}");
            std::process::exit(2);
        }
    };
    let result: std::io::Result<()> = ferrosocket_bench_peers::runtime().and_then(|rt| {
        rt.block_on(async move {
            let listener = TcpListener::bind(addr).await?;
            println!("raw-tcp-echo: listening on {}", listener.local_addr()?);
            loop {
                let (mut stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        })
    });
    if let Err(e) = result {
        eprintln!("raw-tcp-echo: {e}");
        std::process::exit(1);
    }
}
