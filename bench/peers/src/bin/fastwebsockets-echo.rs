//! fastwebsockets echo server as its own `echo_server` example writes it: hyper serves the
//! upgrade (feature `upgrade`), auto-close and auto-pong on (the defaults), and the loop is
//! `read_frame` then `write_frame` through a `FragmentCollector` (so fragmented messages are
//! echoed whole, as by every other server here). One thread.

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        let _ = tokio::task::unconstrained(handle_client(fut)).await;
    });
    Ok(response)
}

fn main() {
    let addr = match ferrosocket_bench_peers::listen_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fastwebsockets-echo: {e}");
            std::process::exit(2);
        }
    };
    let result: std::io::Result<()> = ferrosocket_bench_peers::runtime().and_then(|rt| {
        rt.block_on(async move {
            let listener = TcpListener::bind(addr).await?;
            println!("fastwebsockets-echo: listening on {}", listener.local_addr()?);
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = http1::Builder::new()
                        .serve_connection(io, service_fn(server_upgrade))
                        .with_upgrades()
                        .await;
                });
            }
        })
    });
    if let Err(e) = result {
        eprintln!("fastwebsockets-echo: {e}");
        std::process::exit(1);
    }
}
