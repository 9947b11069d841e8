//! The server end of a test: hand-written upgrade requests ([`Req`]), handshakes against an
//! [`Upgrader`] over TCP or an in-memory pipe, and echo loops.

use super::client::Client;
use super::{ACCEPT, DUPLEX_CAPACITY, KEY, duplex_pair, listen, tcp_pair, within};
use bytes::BytesMut;
use ferrosocket::{Conn, Error, Upgrader};
use ferrosocket_proto::{Limits, parse_response};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

// ---- hand-written upgrade requests ---------------------------------------------------------

/// An upgrade request that can be broken header by header.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: &'static str,
    pub(crate) version: &'static str,
    pub(crate) headers: Vec<(String, String)>,
}

impl Req {
    /// A valid request: `GET /chat HTTP/1.1` with Host `localhost`, the sample key, version 13.
    pub(crate) fn valid() -> Self {
        Self {
            method: "GET",
            version: "HTTP/1.1",
            headers: [
                ("Host", "localhost"),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", KEY),
                ("Sec-WebSocket-Version", "13"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        }
    }

    /// Removes every header called `name`.
    pub(crate) fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    /// Replaces the header `name` (or adds it).
    pub(crate) fn set(self, name: &str, value: &str) -> Self {
        self.without(name).add(name, value)
    }

    /// Adds a header line.
    pub(crate) fn add(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The request head on the wire.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut s = format!("{} /chat {}\r\n", self.method, self.version);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        s.push_str("\r\n");
        s.into_bytes()
    }
}

/// What a refused handshake looked like from both ends.
pub(crate) struct Refused {
    pub(crate) error: Error,
    pub(crate) response: http::Response<()>,
    pub(crate) body: Vec<u8>,
}

/// Writes `request` (raw bytes) on `client`, then runs `upgrader.accept` on `server`.
async fn handshake_on<S, C>(
    upgrader: &Upgrader,
    server: S,
    client: &mut C,
    request: &[u8],
) -> Result<Conn<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: AsyncWrite + Unpin,
{
    within("writing the request", client.write_all(request))
        .await
        .expect("write request");
    within("accept", upgrader.accept(server)).await
}

/// Sends `request` (raw bytes) to `upgrader.accept` over TCP and returns the server's result
/// and the client socket (the response, if any, unread).
pub(crate) async fn handshake(
    upgrader: &Upgrader,
    request: &[u8],
) -> (Result<Conn<TcpStream>, Error>, TcpStream) {
    let (server, mut client) = tcp_pair().await;
    let result = handshake_on(upgrader, server, &mut client, request).await;
    (result, client)
}

/// [`handshake`] over an in-memory pipe of [`DUPLEX_CAPACITY`].
pub(crate) async fn handshake_duplex(
    upgrader: &Upgrader,
    request: &[u8],
) -> (Result<Conn<DuplexStream>, Error>, DuplexStream) {
    let (server, mut client) = duplex_pair(DUPLEX_CAPACITY);
    let result = handshake_on(upgrader, server, &mut client, request).await;
    (result, client)
}

/// Runs a handshake that must be refused; returns the error and the whole response (the
/// server closes the connection after it).
pub(crate) async fn refused(upgrader: &Upgrader, request: &[u8]) -> Refused {
    let (result, mut client) = handshake(upgrader, request).await;
    let error = match result {
        Ok(conn) => panic!("handshake accepted: {conn:?}"),
        Err(e) => e,
    };
    let mut raw = Vec::new();
    // The server closes after the response; a reset after it was read is fine too.
    let _ = within("the rejection response", client.read_to_end(&mut raw)).await;
    let mut buf = BytesMut::from(&raw[..]);
    let response = parse_response(&mut buf, &Limits::default())
        .expect("a well-formed response")
        .expect("a complete response head");
    if let Some(len) = response.headers().get("content-length") {
        let len: usize = len.to_str().expect("ascii").parse().expect("a number");
        assert_eq!(buf.len(), len, "body length matches Content-Length");
    }
    Refused {
        error,
        response,
        body: buf.to_vec(),
    }
}

/// Checks the 101 and its accept key; returns the server's `Conn` and the test client.
async fn upgraded<S, C>(result: Result<Conn<S>, Error>, io: C) -> (Conn<S>, Client<C>)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let conn = result.expect("handshake accepted");
    let client = Client::after_handshake(io).await;
    assert_eq!(client.response.status(), 101);
    assert_eq!(client.response.headers()["sec-websocket-accept"], ACCEPT);
    (conn, client)
}

/// Upgrades a TCP connection with `upgrader` and `req`; checks the 101 and its accept key.
/// Returns the server's `Conn` and the test client.
pub(crate) async fn connect_with(upgrader: &Upgrader, req: Req) -> (Conn<TcpStream>, Client) {
    let (result, io) = handshake(upgrader, &req.bytes()).await;
    upgraded(result, io).await
}

/// [`connect_with`] the valid request.
pub(crate) async fn connect(upgrader: &Upgrader) -> (Conn<TcpStream>, Client) {
    connect_with(upgrader, Req::valid()).await
}

/// [`connect`] over an in-memory pipe holding `capacity` bytes each way (see
/// [`duplex_pair`](super::duplex_pair)): for tests on a paused clock.
pub(crate) async fn connect_duplex_with(
    upgrader: &Upgrader,
    capacity: usize,
) -> (Conn<DuplexStream>, Client<DuplexStream>) {
    let (server, mut client) = duplex_pair(capacity);
    let result = handshake_on(upgrader, server, &mut client, &Req::valid().bytes()).await;
    upgraded(result, client).await
}

/// [`connect_duplex_with`] [`DUPLEX_CAPACITY`].
pub(crate) async fn connect_duplex(upgrader: &Upgrader) -> (Conn<DuplexStream>, Client<DuplexStream>) {
    connect_duplex_with(upgrader, DUPLEX_CAPACITY).await
}

/// Echoes every message (recv → feed) until the session ends; returns how it ended.
pub(crate) async fn echo_until_error<S>(conn: &mut Conn<S>) -> Error
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match conn.recv().await {
            Ok(msg) => {
                if let Err(e) = conn.feed(msg).await {
                    return e;
                }
            }
            Err(e) => return e,
        }
    }
}

/// A task that echoes `conn` ([`echo_until_error`]); it returns how the session ended.
pub(crate) fn spawn_echo<S>(mut conn: Conn<S>) -> JoinHandle<Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move { echo_until_error(&mut conn).await })
}

/// A listener on 127.0.0.1 whose one connection, upgraded by `upgrader`, echoes until the
/// session ends; the task returns how it ended.
pub(crate) async fn serve_echo_once(upgrader: Upgrader) -> (SocketAddr, JoinHandle<Error>) {
    let (listener, addr) = listen().await;
    let task = tokio::spawn(async move {
        let (s, _) = listener.accept().await.expect("accept");
        let mut conn = upgrader.accept(s).await.expect("handshake accepted");
        echo_until_error(&mut conn).await
    });
    (addr, task)
}
