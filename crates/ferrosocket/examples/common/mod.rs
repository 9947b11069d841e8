//! The few lines every example server needs and none of them is about: reading `--flag VALUE`
//! arguments, binding the listener and announcing its address, and routing one HTTP request to
//! a page, the WebSocket endpoint or a 404. Each example includes this file with
//! `#[path = "common/mod.rs"] mod common;` (it is not an example itself).

use ferrosocket::{Conn, Upgrader};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Where the example servers listen unless told otherwise.
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// The value of `--name VALUE` or `--name=VALUE` among the program's arguments (only those
/// before a `--`).
pub(crate) fn arg(name: &str) -> Option<String> {
    let flag = format!("--{name}");
    let mut args = std::env::args().skip(1).take_while(|a| a != "--");
    while let Some(a) = args.next() {
        if a == flag {
            return args.next();
        }
        if let Some(value) = a.strip_prefix(&flag).and_then(|rest| rest.strip_prefix('=')) {
            return Some(value.to_owned());
        }
    }
    None
}

/// Parses `--name` with `parse`, or returns `default`; a value that does not parse is an error
/// naming the flag.
pub(crate) fn arg_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match arg(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e| format!("--{name} {v:?}: {e}")),
    }
}

/// Binds `--listen ADDR` (default `default`, e.g. `127.0.0.1:8080`) and prints `listening on ADDR` as the first
/// line of standard output: with `--listen 127.0.0.1:0` the line tells which port was chosen.
pub(crate) async fn listen(default: SocketAddr) -> Result<TcpListener, Box<dyn std::error::Error>> {
    let addr: SocketAddr = arg_or("listen", default)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e} (choose another with --listen ADDR)"))?;
    println!("listening on {}", listener.local_addr()?);
    Ok(listener)
}

/// Reads one HTTP request from `stream`: `/ws` is upgraded and returned, `/` gets `page`,
/// anything else a 404. `None` when the request was not a successful upgrade (the reason is
/// printed to standard error).
pub(crate) async fn route<S>(upgrader: &Upgrader, mut stream: S, page: &str) -> Option<Conn<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let incoming = match upgrader.read_request(&mut stream).await {
        Ok(incoming) => incoming,
        Err(e) => {
            eprintln!("bad request: {e}");
            return None;
        }
    };
    match incoming.request.uri().path() {
        "/ws" => match upgrader
            .upgrade(stream, &incoming.request, &incoming.leftover)
            .await
        {
            Ok(conn) => Some(conn),
            Err(e) => {
                eprintln!("upgrade refused: {e}");
                None
            }
        },
        "/" => {
            respond(&mut stream, "200 OK", "text/html; charset=utf-8", page).await;
            None
        }
        _ => {
            let body = "not found: the page is at / and the WebSocket endpoint at /ws\n";
            respond(&mut stream, "404 Not Found", "text/plain; charset=utf-8", body).await;
            None
        }
    }
}

/// Writes a whole HTTP/1.1 response and closes the connection. Errors mean the client left;
/// there is nobody to tell.
pub(crate) async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    content_type: &str,
    body: &str,
) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A message as one printable line: text with control characters escaped (a peer must not be
/// able to forge log lines or send escape sequences to the terminal) and cut after 200
/// characters; binary as its length.
pub(crate) fn printable(msg: &ferrosocket::Message) -> String {
    match msg {
        ferrosocket::Message::Text(text) => {
            let mut out: String = text.chars().take(200).flat_map(char::escape_debug).collect();
            if text.chars().nth(200).is_some() {
                out.push('…');
            }
            out
        }
        ferrosocket::Message::Binary(_) => msg.to_string(),
    }
}
