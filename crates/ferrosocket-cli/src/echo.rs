//! `ferrosocket echo`: a WebSocket echo server with a page to try it from a browser.

pub(crate) mod endpoint;
mod h2;
mod h3;
pub(crate) mod listen;
pub(crate) mod shown;

use ferrosocket::proto::DeflateConfig;
use ferrosocket::{Conn, Error, Message, Shutdown, ShutdownToken, Upgrader};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

const PAGE: &str = include_str!("echo.html");

/// Bound on a client's TLS handshake, and on a cleartext client's first bytes (the WebSocket
/// handshake has its own).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `ferrosocket echo`.
#[derive(clap::Args, Debug)]
pub(crate) struct EchoArgs {
    /// Address to listen on: IP:PORT or HOST:PORT. A host name is resolved and its first
    /// address that can be bound is used; port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Path of the WebSocket endpoint (`ws` means `/ws`); the page at / connects to it.
    #[arg(long, default_value = "/ws", value_parser = endpoint::parse_path)]
    path: String,
    /// Accept this subprotocol when the client offers it (repeat for several, most preferred
    /// first: the first one of these the client offers is chosen; none in common, none chosen).
    #[arg(long = "subprotocol", value_name = "NAME", value_parser = endpoint::parse_subprotocol)]
    subprotocols: Vec<String>,
    /// Print only the start, the shutdown and errors of the server itself: not each
    /// connection, message, close or refused handshake (for benchmarks).
    #[arg(long, short)]
    quiet: bool,
    /// Worker threads (0: one per CPU core; 1 runs everything on one thread).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Accept connections from pages of any origin (default: same origin only).
    #[arg(long)]
    allow_any_origin: bool,
    /// Ping a silent client after this many seconds (0 turns keepalive off).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    keepalive: u64,
    /// Drop a client that sends nothing this many seconds after a keepalive ping.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    keepalive_timeout: u64,
    /// On Ctrl-C or SIGTERM, how long to wait for clients to answer the 1001 close.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    shutdown_timeout: u64,
    /// Trade compression ratio and CPU for memory: no server context takeover, and the
    /// compressor (and the inflater, where the client takes no context over) freed after
    /// every message (see DeflateConfig::low_memory).
    #[arg(long)]
    compression_low_memory: bool,
    /// Most clients connected at once; more get 503 (default: no limit).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Do not negotiate permessage-deflate compression (on by default).
    #[arg(long)]
    no_compression: bool,
    /// Largest message accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    max_message_size: usize,
    /// Serve wss:// and the page over https with this PEM certificate chain (leaf first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Speak HTTP/1.1 only. By default the server also speaks HTTP/2: offered by ALPN (`h2`)
    /// with TLS, and to cleartext clients that open with the HTTP/2 preface (prior
    /// knowledge); its WebSockets are extended CONNECTs (RFC 8441), many on one connection.
    #[arg(long)]
    http1_only: bool,
    /// Also serve HTTP/3 (RFC 9220) on the same port over UDP (needs --tls-cert/--tls-key):
    /// WebSockets as streams of a QUIC connection.
    #[arg(long, requires = "tls_cert", conflicts_with = "http1_only")]
    http3: bool,
    /// Echo each message piece by piece as it arrives (streamed messages: memory stays bounded
    /// whatever the message size, up to the core's streamed-message limit of 16 GiB).
    #[arg(long)]
    stream: bool,
    /// Serve connection, message, byte, close-code and ping metrics in the Prometheus text
    /// format at http://ADDR/metrics (e.g. 127.0.0.1:9090; port 0 picks one, printed).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
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
    let runtime = crate::runtime(args.threads)?;
    runtime.block_on(serve(args))
}

async fn serve(args: EchoArgs) -> Result<(), Box<dyn std::error::Error>> {
    // Before any connection: the library's metric handles bind to the recorder then in force.
    if let Some(addr) = args.metrics {
        let bound = crate::metrics::install(addr).await?;
        println!("ferrosocket echo: metrics at http://{bound}/metrics");
    }
    let listener = listen::bind(&args.listen).await?;
    let mut upgrader = Upgrader::new()
        .max_message_size(Some(args.max_message_size))
        .max_connections(args.max_connections)
        .subprotocols(args.subprotocols.iter().cloned());
    if !args.no_compression {
        let mut deflate = DeflateConfig::default();
        if args.compression_low_memory {
            deflate = deflate.server_no_context_takeover(true).low_memory(true);
        }
        upgrader = upgrader.deflate(Some(deflate));
    }
    if args.keepalive > 0 {
        upgrader = upgrader.keepalive(
            Duration::from_secs(args.keepalive),
            Duration::from_secs(args.keepalive_timeout.max(1)),
        );
    }
    if args.allow_any_origin {
        upgrader = upgrader.check_origin(|_| true);
    }
    let mut quic = None;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let mut config = (*ferrosocket::tls::server_config_from_pem(cert, key)?).clone();
            if args.http3 {
                quic = Some(h3::bind(&config, listener.local_addr()?)?);
            }
            if !args.http1_only {
                config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            }
            Some(ferrosocket::tls::TlsAcceptor::from(std::sync::Arc::new(config)))
        }
        _ => None,
    };
    let http2 = !args.http1_only;
    let (ws, http) = if tls.is_some() {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    let page = endpoint::page_with_path(PAGE, &args.path);
    let local = listener.local_addr()?;
    println!(
        "ferrosocket echo: listening on {ws}://{local}{} (page at {http}://{local}/; {})",
        args.path,
        match (http2, quic.is_some()) {
            (true, true) => "HTTP/1.1 and HTTP/2, HTTP/3 on udp",
            (true, false) => "HTTP/1.1 and HTTP/2",
            _ => "HTTP/1.1 only",
        }
    );
    let shutdown = Shutdown::new();
    let shutdown_timeout = Duration::from_secs(args.shutdown_timeout);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shared = std::sync::Arc::new(Shared {
        upgrader,
        page,
        path: args.path,
        quiet: args.quiet,
        stream: args.stream,
        connections: AtomicU64::new(0),
        shutdown: shutdown.clone(),
    });
    if let Some(endpoint) = &quic {
        tokio::spawn(h3::serve(shared.clone(), endpoint.clone()));
    }
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
                let stop = shutdown.token();
                match tls.clone() {
                    None if http2 => tokio::spawn(async move {
                        // Bounded like a TLS handshake: a client that sends nothing is dropped.
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, h2::opens_with_preface(&stream)).await {
                            Ok(true) => h2::serve(shared, stream, addr, stop).await,
                            Ok(false) => handle(shared, stream, addr, stop).await,
                            Err(_) => {}
                        }
                    }),
                    None => tokio::spawn(async move { handle(shared, stream, addr, stop).await }),
                    Some(acceptor) => tokio::spawn(async move {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                                h2::serve(shared, stream, addr, stop).await;
                            }
                            Ok(Ok(stream)) => handle(shared, stream, addr, stop).await,
                            Ok(Err(e)) if !shared.quiet => eprintln!("{addr} tls handshake failed: {e}"),
                            _ => {}
                        }
                    }),
                };
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    // Stop accepting, send 1001 to every connection, wait for their close frames.
    drop(listener);
    if let Some(endpoint) = &quic {
        // New QUIC connections are refused; the open ones finish their WebSockets' closes.
        endpoint.set_server_config(None);
    }
    println!(
        "ferrosocket echo: shutting down ({} connections)",
        shutdown.live()
    );
    shutdown.trigger();
    if !shutdown.wait(shutdown_timeout).await {
        println!(
            "ferrosocket echo: {} connections did not close in time",
            shutdown.live()
        );
    }
    println!(
        "ferrosocket echo: server stopped after {}",
        count(shared.connections.load(Ordering::Relaxed), "connection")
    );
    Ok(())
}

/// `1 connection`, `2 connections`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

struct Shared {
    upgrader: Upgrader,
    page: String,
    path: String,
    quiet: bool,
    stream: bool,
    /// WebSocket connections upgraded so far.
    connections: AtomicU64,
    /// The server's shutdown switch, for connections that carry several WebSockets (HTTP/2):
    /// each of those gets a token of its own.
    shutdown: Shutdown,
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    shared: std::sync::Arc<Shared>,
    mut stream: S,
    addr: SocketAddr,
    stop: ShutdownToken,
) {
    let Ok(incoming) = shared.upgrader.read_request(&mut stream).await else {
        return;
    };
    let path = incoming.request.uri().path();
    if path == shared.path {
        let upgraded = shared
            .upgrader
            .upgrade(stream, &incoming.request, &incoming.leftover)
            .await;
        // The request head is not needed any more: don't keep it for the connection's life.
        drop(incoming);
        if let Ok(conn) = &upgraded {
            shared.connections.fetch_add(1, Ordering::Relaxed);
            if !shared.quiet {
                println!("{}", open_line(addr, None, conn.subprotocol()));
            }
        }
        match upgraded {
            // A task of its own: its future holds only the echo loop's state, not the
            // handshake's, which keeps an idle connection small.
            Ok(conn) if shared.stream => {
                tokio::spawn(echo_streamed(conn, addr, shared.quiet, stop));
            }
            Ok(conn) => {
                tokio::spawn(echo(conn, addr, shared.quiet, stop));
            }
            Err(e) => {
                if !shared.quiet {
                    eprintln!("{}", refused_line(addr, &e));
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

async fn echo<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    mut conn: Conn<S>,
    addr: SocketAddr,
    quiet: bool,
    stop: ShutdownToken,
) {
    // On shutdown, recv sends 1001 and completes the close handshake itself.
    conn.set_shutdown(stop);
    loop {
        match conn.recv().await {
            Ok(msg) => {
                if !quiet {
                    print_message(addr, &msg);
                }
                // Replies are queued and leave together when recv next waits for input.
                if conn.feed(msg).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                if !quiet {
                    report_end(addr, &e);
                }
                break;
            }
        }
    }
}

/// The `--stream` echo: every message goes back piece by piece as it arrives, never whole in
/// memory (the streamed API: `recv_chunk` + `feed_fragment`).
async fn echo_streamed<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    mut conn: Conn<S>,
    addr: SocketAddr,
    quiet: bool,
    stop: ShutdownToken,
) {
    conn.set_shutdown(stop);
    let mut size = 0usize;
    loop {
        match conn.recv_chunk().await {
            Ok(chunk) => {
                size = if chunk.first { 0 } else { size } + chunk.data.len();
                if chunk.last && !quiet {
                    println!("{addr} sent: <streamed {:?} message, {size} bytes>", chunk.kind);
                }
                // Fragments are queued and leave together when recv_chunk next waits.
                if conn
                    .feed_fragment(chunk.kind, chunk.data, chunk.last)
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Err(e) => {
                if !quiet {
                    report_end(addr, &e);
                }
                break;
            }
        }
    }
}

/// A message, escaped and cut short: the peer's text is untrusted (see [`shown`]).
fn print_message(addr: SocketAddr, msg: &Message) {
    let mut out = std::io::stdout().lock();
    let _ = match msg {
        Message::Text(t) => writeln!(out, "{addr} sent: {}", shown::text_for_log(t)),
        Message::Binary(b) => writeln!(out, "{addr} sent: {}", shown::binary_for_log(b)),
    };
}

/// How a connection ended: a normal close on stdout, anything else on stderr.
fn report_end(addr: SocketAddr, e: &Error) {
    if e.is_normal_close() {
        println!("{}", end_line(addr, e));
    } else {
        eprintln!("{}", end_line(addr, e));
    }
}

/// `ADDR connected`, with the HTTP version when it is not 1.1 (`over HTTP/2`) and the
/// subprotocol chosen if any.
fn open_line(addr: SocketAddr, over: Option<&str>, subprotocol: Option<&str>) -> String {
    let mut line = format!("{addr} connected");
    if let Some(over) = over {
        line = line + " over " + over;
    }
    match subprotocol {
        Some(p) => format!("{line} (subprotocol {p})"),
        None => line,
    }
}

/// `ADDR closed: CODE[: REASON]`, or `ADDR closed: ERROR`. The close reason is the peer's
/// text, so it is escaped like a message.
fn end_line(addr: SocketAddr, e: &Error) -> String {
    match e {
        Error::Closed(close) if close.reason.is_empty() => format!("{addr} closed: {}", close.code),
        Error::Closed(close) => format!(
            "{addr} closed: {}: {}",
            close.code,
            shown::text_for_log(&close.reason)
        ),
        other => format!("{addr} closed: {}", shown::text_for_log(&other.to_string())),
    }
}

/// A refused or failed upgrade. `Error::Handshake` already says "websocket handshake failed",
/// so it is not said twice.
fn refused_line(addr: SocketAddr, e: &Error) -> String {
    let text = shown::text_for_log(&e.to_string());
    match e {
        Error::Handshake(_) => format!("{addr} {text}"),
        _ => format!("{addr} handshake failed: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosocket::proto::HandshakeError;
    use ferrosocket::{CloseCode, CloseError};

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 4242))
    }

    #[test]
    fn a_refused_handshake_says_handshake_failed_once() {
        let e = Error::Handshake(HandshakeError::OriginNotAllowed);
        let line = refused_line(addr(), &e);
        assert!(
            line.starts_with("127.0.0.1:4242 websocket handshake failed: origin not allowed"),
            "{line}"
        );
        assert_eq!(line.matches("handshake failed").count(), 1, "{line}");
        let e = Error::Io(std::io::Error::other("reset"));
        assert_eq!(
            refused_line(addr(), &e),
            "127.0.0.1:4242 handshake failed: i/o error: reset"
        );
    }

    #[test]
    fn close_lines_name_the_code_once_and_escape_the_reason() {
        let normal = Error::Closed(CloseError {
            code: CloseCode::NORMAL_CLOSURE,
            reason: "bye\\n\n\u{1b}[2J".to_owned(),
        });
        assert_eq!(
            end_line(addr(), &normal),
            "127.0.0.1:4242 closed: 1000 (normal closure): bye\\\\n\\n\\u{1b}[2J"
        );
        let abnormal = Error::Closed(CloseError::abnormal(""));
        let line = end_line(addr(), &abnormal);
        assert!(line.starts_with("127.0.0.1:4242 closed: 1006"), "{line}");
        assert!(!line.contains("closed: websocket closed"), "{line}");
    }

    #[test]
    fn open_lines_name_the_subprotocol() {
        assert_eq!(open_line(addr(), None, None), "127.0.0.1:4242 connected");
        assert_eq!(
            open_line(addr(), None, Some("chat")),
            "127.0.0.1:4242 connected (subprotocol chat)"
        );
        assert_eq!(
            open_line(addr(), Some("HTTP/2"), Some("chat")),
            "127.0.0.1:4242 connected over HTTP/2 (subprotocol chat)"
        );
        assert_eq!(count(1, "connection"), "1 connection");
        assert_eq!(count(0, "connection"), "0 connections");
    }
}
