//! `ferrosocket echo`: a WebSocket echo server with a page to try it from a browser.

use ferrosocket::{CloseCode, CloseFrame, Conn, Error, Message, Upgrader};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const PAGE: &str = include_str!("echo.html");

/// Options of `ferrosocket echo`.
#[derive(clap::Args, Debug)]
pub(crate) struct EchoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Path of the WebSocket endpoint; the page at / connects to it.
    #[arg(long, default_value = "/ws")]
    path: String,
    /// Do not print each message (for benchmarks).
    #[arg(long, short)]
    quiet: bool,
    /// Worker threads (1 runs everything on one thread).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Accept connections from pages of any origin (default: same origin only).
    #[arg(long)]
    allow_any_origin: bool,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_message_size: usize,
}

/// Parses `EchoArgs` from an argument list (for the default job).
impl EchoArgs {
    pub(crate) fn parse_from<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: EchoArgs,
        }
        <Wrapper as clap::Parser>::parse_from(args).args
    }
}

pub(crate) fn run(args: EchoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if args.threads > 1 {
            b.worker_threads(args.threads);
        }
        b
    };
    let runtime = builder.enable_all().build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: EchoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(args.listen).await?;
    let mut upgrader = Upgrader::new().max_message_size(Some(args.max_message_size));
    if args.allow_any_origin {
        upgrader = upgrader.check_origin(|_| true);
    }
    let page = PAGE.replace("{{WS_PATH}}", &args.path);
    let local = listener.local_addr()?;
    println!(
        "ferrosocket echo: listening on ws://{local}{} (page at http://{local}/)",
        args.path
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = std::sync::Arc::new(Shared {
        upgrader,
        page,
        path: args.path,
        quiet: args.quiet,
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // e.g. out of file descriptors: back off instead of spinning
                        eprintln!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let stop = stop_rx.clone();
                tokio::spawn(async move { handle(shared, stream, addr, stop).await });
            }
            _ = tokio::signal::ctrl_c() => {
                println!("ferrosocket echo: shutting down");
                let _ = stop_tx.send(true);
                break;
            }
        }
    }
    // Give connections a moment to exchange their 1001 close frames.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while stop_tx.receiver_count() > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

struct Shared {
    upgrader: Upgrader,
    page: String,
    path: String,
    quiet: bool,
}

async fn handle(
    shared: std::sync::Arc<Shared>,
    mut stream: TcpStream,
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let Ok(incoming) = shared.upgrader.read_request(&mut stream).await else {
        return;
    };
    let path = incoming.request.uri().path();
    if path == shared.path {
        match shared
            .upgrader
            .upgrade(stream, &incoming.request, &incoming.leftover)
            .await
        {
            Ok(conn) => echo(conn, addr, shared.quiet, stop).await,
            Err(e) => {
                if !shared.quiet {
                    eprintln!("{addr} handshake failed: {e}");
                }
            }
        }
    } else if path == "/" || path == "/index.html" {
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
            shared.page.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(shared.page.as_bytes()).await;
        let _ = stream.shutdown().await;
    } else {
        let body =
            "not found: the page is at / and the websocket endpoint at ".to_string() + &shared.path + "\n";
        let head = format!(
            "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

async fn echo(mut conn: Conn<TcpStream>, addr: SocketAddr, quiet: bool, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            received = conn.recv() => match received {
                Ok(msg) => {
                    if !quiet {
                        print_message(addr, &msg);
                    }
                    if conn.feed(msg).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    if !quiet && !e.is_normal_close() {
                        report_end(addr, &e);
                    }
                    break;
                }
            },
            _ = stop.changed() => {
                let _ = conn.close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "server shutting down"))).await;
                break;
            }
        }
    }
}

fn print_message(addr: SocketAddr, msg: &Message) {
    let mut out = std::io::stdout().lock();
    let _ = match msg {
        Message::Text(t) => writeln!(out, "{addr} sent: {t}"),
        Message::Binary(b) => writeln!(out, "{addr} sent: <binary {} bytes>", b.len()),
    };
}

fn report_end(addr: SocketAddr, e: &Error) {
    eprintln!("{addr} closed: {e}");
}
