//! What `sockudo-echo` and `sockudo-batched-echo` share: the HTTP upgrade done with sockudo-ws's
//! own handshake functions (as its `simple_echo` example does), permessage-deflate negotiated
//! with its `negotiate_server_deflate` when the server runs with `--compress`, and the accept
//! loop. The two binaries differ only in their echo loop. [`echo`] is the loop of sockudo-h2 and
//! sockudo-h3.

use std::future::Future;

use bytes::{Buf, BytesMut};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use sockudo_ws::deflate::{DeflateConfig, negotiate_server_deflate};
use sockudo_ws::handshake::{build_response, generate_accept_key, parse_request};
use sockudo_ws::{CompressedWebSocketStream, Config, Message, Role, WebSocketStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest upgrade request read before giving up on a connection.
const MAX_REQUEST: usize = 16 << 10;

/// Reads the upgrade request, answers 101 (with permessage-deflate if `compress` and the client
/// offered it) and returns the negotiated deflate parameters and any bytes read past the
/// request. `Ok(None)` if the peer went away or sent something that is not an upgrade.
async fn handshake(
    stream: &mut TcpStream,
    compress: bool,
) -> std::io::Result<Option<(Option<DeflateConfig>, Option<bytes::Bytes>)>> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if buf.len() > MAX_REQUEST || stream.read_buf(&mut buf).await? == 0 {
            return Ok(None);
        }
        let (response, deflate, consumed) = match parse_request(&buf) {
            Ok(Some((req, consumed))) => {
                let negotiated = req
                    .extensions
                    .filter(|_| compress)
                    .and_then(|offers| negotiate_server_deflate(offers, &DeflateConfig::default()));
                let header = negotiated.as_ref().map(|n| n.to_response_header());
                let accept = generate_accept_key(req.key);
                let response = build_response(&accept, None, header.as_deref());
                (response, negotiated.map(|n| n.config), consumed)
            }
            Ok(None) => continue,
            Err(_) => {
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
                return Ok(None);
            }
        };
        stream.write_all(&response).await?;
        buf.advance(consumed);
        let leftover = (!buf.is_empty()).then(|| buf.freeze());
        return Ok(Some((deflate, leftover)));
    }
}

/// The echo loop of sockudo-ws's README and its `http2_echo` and `http3_echo` examples: `next()`,
/// then `send()` (which flushes) for each text or binary message, until the WebSocket closes or
/// fails. Ping, Pong and Close replies are the library's own.
pub async fn echo<W>(mut ws: W)
where
    W: Stream<Item = sockudo_ws::Result<Message>> + Sink<Message, Error = sockudo_ws::Error> + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        let reply = match msg {
            Message::Text(text) => Message::Text(text),
            Message::Binary(data) => Message::Binary(data),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if ws.send(reply).await.is_err() {
            break;
        }
    }
}

/// An echo loop over either kind of sockudo-ws stream.
pub trait EchoLoop: Clone + Send + 'static {
    /// Echoes every data message of `ws` until it closes or fails.
    fn run<W>(self, ws: W) -> impl Future<Output = sockudo_ws::Result<()>> + Send
    where
        W: Stream<Item = sockudo_ws::Result<Message>>
            + Sink<Message, Error = sockudo_ws::Error>
            + Unpin
            + Send;
}

async fn serve<L: EchoLoop>(mut stream: TcpStream, compress: bool, echo: L) {
    let _ = stream.set_nodelay(true);
    let Ok(Some((deflate, leftover))) = handshake(&mut stream, compress).await else {
        return;
    };
    // The library's defaults, as its examples use them (keepalive Ping after 30 s idle).
    let config = Config::default();
    let _ = match deflate {
        Some(deflate) => {
            let ws = CompressedWebSocketStream::server_with_leftover(stream, config, deflate, leftover);
            echo.run(ws).await
        }
        None => {
            let ws = WebSocketStream::from_raw_with_leftover(stream, Role::Server, config, leftover);
            echo.run(ws).await
        }
    };
}

/// Parses the command line, then serves `echo` on one thread until killed.
pub fn main(name: &str, echo: impl EchoLoop) {
    let opts = match crate::options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(2);
        }
    };
    // sockudo-ws asks for its clock to be calibrated before the runtime starts.
    sockudo_ws::init_clock();
    let result: std::io::Result<()> = crate::runtime().and_then(|rt| {
        rt.block_on(async move {
            let listener = TcpListener::bind(opts.listen).await?;
            let deflate = if opts.compress { ", permessage-deflate" } else { "" };
            println!("{name}: listening on {}{deflate}", listener.local_addr()?);
            loop {
                let (stream, _) = listener.accept().await?;
                tokio::spawn(serve(stream, opts.compress, echo.clone()));
            }
        })
    });
    if let Err(e) = result {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}
