//! tokio-tungstenite echo server, written the idiomatic way: `next()` then `send()`, default
//! configuration, one thread.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

fn main() {
    let addr = match ferrosocket_bench_peers::listen_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tokio-tungstenite-echo: {e}");
            std::process::exit(2);
        }
    };
    let result: std::io::Result<()> = ferrosocket_bench_peers::runtime().and_then(|rt| {
        rt.block_on(async move {
            let listener = TcpListener::bind(addr).await?;
            println!("tokio-tungstenite-echo: listening on {}", listener.local_addr()?);
            loop {
                let (stream, _) = listener.accept().await?;
                tokio::spawn(serve(stream));
            }
        })
    });
    if let Err(e) = result {
        eprintln!("tokio-tungstenite-echo: {e}");
        std::process::exit(1);
    }
}
