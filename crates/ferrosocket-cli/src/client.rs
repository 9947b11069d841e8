//! `ferrosocket client URL`: an interactive WebSocket client in the spirit of websocat.
//!
//! Each stdin line becomes a message; every message received is printed on stdout; how the
//! session ended goes to stderr. Exit status: 0 after a clean close (1000, 1001, 1005), 1 when
//! connecting or the handshake failed, 2 after an abnormal close or a protocol error.

use bytes::Bytes;
use ferrosocket::tls;
use ferrosocket::{CloseCode, CloseError, CloseFrame, Conn, Dialer, Error, MaybeTlsStream, Message};
use http::header::{HeaderName, HeaderValue, ORIGIN};
use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval};

/// How long we wait for the server's close frame after sending ours.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Options of `ferrosocket client`.
#[derive(clap::Args, Debug)]
pub(crate) struct ClientArgs {
    /// The server: `ws://host[:port]/path` or `wss://host[:port]/path`.
    url: String,
    /// Send each stdin line as a binary message instead of text.
    #[arg(long)]
    binary: bool,
    /// Do not offer permessage-deflate compression (offered by default).
    #[arg(long)]
    no_compression: bool,
    /// Print received binary messages as hex instead of `<binary N bytes>`.
    #[arg(long)]
    binary_hex: bool,
    /// Offer this subprotocol (repeat for several, most preferred first); the server picks
    /// one or none.
    #[arg(
        long = "subprotocol",
        visible_alias = "protocol",
        value_name = "NAME",
        value_parser = crate::echo::endpoint::parse_subprotocol
    )]
    protocols: Vec<String>,
    /// Add a request header, written 'Name: value' (repeatable).
    #[arg(long = "header", value_name = "'NAME: VALUE'")]
    headers: Vec<String>,
    /// Send this Origin header (e.g. `https://example.com`).
    #[arg(long, value_name = "URL")]
    origin: Option<String>,
    /// Send a ping every SECS seconds.
    #[arg(long, value_name = "SECS")]
    ping_interval: Option<u64>,
    /// Read all of stdin, send it unchanged as one message, print the first reply, close with
    /// 1000 and exit.
    #[arg(long)]
    once: bool,
    /// Connect through this HTTP proxy (`http://[user:password@]host:port`) instead of the one
    /// HTTP_PROXY / HTTPS_PROXY name.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// Also trust the certificate authorities in this PEM file (for a private CA or a
    /// self-signed server certificate); Mozilla's roots stay trusted.
    #[arg(long, value_name = "FILE")]
    cacert: Option<std::path::PathBuf>,
    /// Seconds allowed for connecting, and again for the TLS and WebSocket handshakes.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
}

pub(crate) fn run(args: ClientArgs) -> ExitCode {
    // --once reads stdin first, so that nothing else waits on it.
    let once_input = if args.once {
        let mut data = Vec::new();
        if let Err(e) = std::io::stdin().lock().read_to_end(&mut data) {
            eprintln!("ferrosocket client: cannot read stdin: {e}");
            return ExitCode::from(1);
        }
        Some(data)
    } else {
        None
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrosocket client: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(session(args, once_input));
    // The stdin reader thread may be blocked in a read: do not wait for it.
    runtime.shutdown_background();
    code
}

fn build_dialer(args: &ClientArgs) -> Result<Dialer, String> {
    let timeout = Some(Duration::from_secs(args.timeout));
    let mut dialer = Dialer::new()
        .connect_timeout(timeout)
        .handshake_timeout(timeout)
        .close_timeout(CLOSE_WAIT)
        .enable_compression(!args.no_compression)
        .subprotocols(args.protocols.iter().cloned());
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: write it as 'Name: value'"))?;
        let name = HeaderName::try_from(name.trim())
            .map_err(|_| format!("--header {h:?}: {:?} is not a valid header name", name.trim()))?;
        let value = HeaderValue::try_from(value.trim())
            .map_err(|_| format!("--header {h:?}: the value is not a valid header value"))?;
        dialer = dialer.header(name, value);
    }
    if let Some(origin) = &args.origin {
        let value = HeaderValue::try_from(origin.as_str())
            .map_err(|_| format!("--origin {origin:?}: not a valid header value"))?;
        dialer = dialer.header(ORIGIN, value);
    }
    if let Some(path) = &args.cacert {
        dialer = dialer.tls_config(tls_config_with(path)?);
    }
    if let Some(proxy) = &args.proxy {
        dialer = dialer.proxy_url(proxy).map_err(|e| e.to_string())?;
    }
    Ok(dialer)
}

/// Mozilla's roots plus the certificates in `path`.
fn tls_config_with(path: &std::path::Path) -> Result<std::sync::Arc<tls::rustls::ClientConfig>, String> {
    use tls::rustls::pki_types::CertificateDer;
    use tls::rustls::pki_types::pem::PemObject as _;
    let bad = |e: &dyn std::fmt::Display| format!("--cacert {}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(bad(&"no PEM `BEGIN CERTIFICATE` block found"));
    }
    let mut roots = tls::webpki_roots();
    for cert in certs {
        roots.add(cert).map_err(|e| bad(&e))?;
    }
    tls::client_config_with_roots(roots).map_err(|e| e.to_string())
}

async fn session(args: ClientArgs, once_input: Option<Vec<u8>>) -> ExitCode {
    let dialer = match build_dialer(&args) {
        Ok(d) => d,
        Err(msg) => {
            eprintln!("ferrosocket client: {msg}");
            return ExitCode::from(1);
        }
    };
    let conn = match dialer.connect(&args.url).await {
        Ok((conn, _)) => conn,
        Err(e) => {
            eprintln!("ferrosocket client: cannot connect to {}: {e}", args.url);
            return ExitCode::from(1);
        }
    };
    let printer = Printer { hex: args.binary_hex };
    let end = match once_input {
        Some(data) => match message_from(data, args.binary) {
            Ok(msg) => once(conn, msg, &printer).await,
            Err(text) => {
                eprintln!("ferrosocket client: {text}");
                let mut conn = conn;
                let _ = conn
                    .close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "")))
                    .await;
                return ExitCode::from(1);
            }
        },
        None => interactive(conn, &args, &printer).await,
    };
    report(end)
}

fn message_from(data: Vec<u8>, binary: bool) -> Result<Message, String> {
    if binary {
        return Ok(Message::binary(data));
    }
    String::from_utf8(data)
        .map(Message::text)
        .map_err(|_| "the input is not valid UTF-8; pass --binary to send it as a binary message".to_owned())
}

/// `--once`: one message out, the first reply printed, a normal close.
async fn once(mut conn: Conn<MaybeTlsStream>, msg: Message, printer: &Printer) -> Result<CloseError, Error> {
    conn.send(msg).await?;
    let reply = conn.recv().await?;
    printer.print(&reply);
    conn.close(Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, "")))
        .await
}

/// Lines from stdin, read on a thread of their own (a blocking read cannot be cancelled, so it
/// must not sit in the runtime's pool); the channel closes at end of input.
fn stdin_lines() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if line.ends_with(b"\n") {
                        line.pop();
                        if line.ends_with(b"\r") {
                            line.pop();
                        }
                    }
                    if tx.blocking_send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn interactive(
    mut conn: Conn<MaybeTlsStream>,
    args: &ClientArgs,
    printer: &Printer,
) -> Result<CloseError, Error> {
    let mut lines = stdin_lines();
    let mut ping = args.ping_interval.filter(|s| *s > 0).map(|s| {
        let period = Duration::from_secs(s);
        tokio::time::interval_at(Instant::now() + period, period)
    });
    let mut close_deadline: Option<Instant> = None;
    let normal = || Some(CloseFrame::new(CloseCode::NORMAL_CLOSURE, ""));
    loop {
        tokio::select! {
            received = conn.recv() => printer.print(&received?),
            line = lines.recv(), if close_deadline.is_none() => match line {
                Some(line) => match message_from(line, args.binary) {
                    Ok(msg) => conn.send(msg).await?,
                    Err(text) => eprintln!("ferrosocket client: line not sent: {text}"),
                },
                None => {
                    // End of input: close, and keep printing until the server's close arrives.
                    conn.send_close(normal()).await?;
                    close_deadline = Some(Instant::now() + CLOSE_WAIT);
                }
            },
            _ = tick(&mut ping), if close_deadline.is_none() => conn.ping(b"").await?,
            _ = tokio::signal::ctrl_c(), if close_deadline.is_none() => {
                conn.send_close(normal()).await?;
                close_deadline = Some(Instant::now() + CLOSE_WAIT);
            }
            _ = until(close_deadline) => {
                return Err(Error::Closed(CloseError::abnormal(format!(
                    "the server did not answer our close within {} s",
                    CLOSE_WAIT.as_secs()
                ))));
            }
        }
    }
}

/// Prints how the session ended; returns the exit status.
fn report(end: Result<CloseError, Error>) -> ExitCode {
    let close = match end {
        Ok(c) | Err(Error::Closed(c)) => c,
        Err(Error::Protocol(e)) => {
            eprintln!("closed: {}: {e}", e.close_code());
            return ExitCode::from(2);
        }
        Err(e) => CloseError::abnormal(e.to_string()),
    };
    if close.reason.is_empty() {
        eprintln!("closed: {}", close.code);
    } else {
        eprintln!("closed: {}: {}", close.code, close.reason);
    }
    let clean = [
        CloseCode::NORMAL_CLOSURE,
        CloseCode::GOING_AWAY,
        CloseCode::NO_STATUS_RECEIVED,
    ];
    if clean.contains(&close.code) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

struct Printer {
    hex: bool,
}

impl Printer {
    fn print(&self, msg: &Message) {
        let mut out = std::io::stdout().lock();
        let _ = match msg {
            Message::Text(t) => writeln!(out, "{t}"),
            Message::Binary(b) if self.hex => writeln!(out, "{}", hex(b)),
            Message::Binary(b) => writeln!(out, "<binary {} bytes>", b.len()),
        };
        let _ = out.flush();
    }
}

fn hex(data: &Bytes) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(data.len() * 2);
    for b in data.iter() {
        let _ = write!(s, "{b:02x}");
    }
    s
}
