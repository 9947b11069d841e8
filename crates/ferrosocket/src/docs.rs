//! Long-form documentation: how the library uses memory, checks origins, compresses, limits
//! peers, reports errors, and streams large messages. This module has no items.
//!
//! # Buffers and memory
//!
//! A connection holds two buffers, and neither is held while the connection is idle.
//!
//! - **Read buffer.** Before each read, room is made for
//!   [`read_buffer_size`](crate::ConnOptions::read_buffer_size) bytes (64 KiB), so one system
//!   call takes in a whole burst of frames. The buffer is lent by the thread: when a read
//!   would block, the connection gives it back (copying out a partial frame's tail of up to
//!   4 KiB first), and the next connection on that thread to read borrows it. Ten thousand
//!   idle connections hold no read buffers, and a busy one allocates nothing per message.
//!   A frame larger than the
//!   buffer grows it, by at most 256 KiB (or what is already buffered) per read, so a length a
//!   peer merely declares never allocates much; limits are checked on the frame header
//!   before any payload is buffered.
//! - **Received messages are slices of the read buffer.** A message that arrived in one frame
//!   is handed out as [`Bytes`](bytes::Bytes) pointing into the buffer it was read into: no
//!   copy. Keeping such a message keeps that buffer (up to 64 KiB) alive; to store many
//!   small messages for a long time, copy them (`Bytes::copy_from_slice`). A fragmented
//!   message is reassembled into a buffer of its own, bounded by the message size limit.
//! - **Write buffer.** [`Conn::feed`](crate::Conn::feed) queues a message;
//!   queued messages leave together when [`Conn::flush`](crate::Conn::flush) is called, when
//!   the queue passes [`write_buffer_size`](crate::ConnOptions::write_buffer_size) (64 KiB),
//!   or when [`Conn::recv`](crate::Conn::recv) is about to wait for input. Small frames are
//!   gathered in one buffer; a large payload is written from where it is (vectored write, no
//!   copy). [`Conn::send`](crate::Conn::send) is `feed` followed by `flush`. The write
//!   buffer is lent by the thread like the read buffer, and given back once everything is
//!   written and the connection waits for input.
//! - **Shared write buffers.** With [`write_buffer_pool`](crate::ConnOptions::write_buffer_pool)
//!   (a [`WriteBufferPool`](crate::WriteBufferPool) or your own [`BufferPool`](crate::BufferPool)),
//!   write buffers come from that pool instead of the thread (shared across threads, behind
//!   a lock): for buffers of your own making or sizing.
//! - **A peer that does not read.** When more than
//!   [`max_write_buffer_size`](crate::ConnOptions::max_write_buffer_size) (4 MiB) is queued,
//!   the connection stops reading from that peer until the queue drains, and writers wait;
//!   the [`SlowPeerPolicy`](crate::SlowPeerPolicy) (default: close with 1008 after 60 s
//!   without write progress) then frees the connection.
//! - **Broadcast.** A [`PreparedMessage`](crate::PreparedMessage) is framed once and sent to
//!   many connections without a copy per connection.
//! - **Large messages** need not fit in memory at all: see [Streaming](#streaming).
//!
//! # Origin
//!
//! Browsers attach cookies to WebSocket handshakes whatever page opens the connection, and
//! they send that page's origin in the `Origin` header. Without a check, any site a user visits
//! could open a connection to your server with the user's cookies (cross-site WebSocket
//! hijacking, a form of CSRF). So by default an [`Upgrader`](crate::Upgrader) accepts a
//! request only when
//!
//! - it has no `Origin` header (a client that is not a browser), or
//! - the `host[:port]` of its `Origin` equals its `Host` header, ignoring ASCII case
//!   ([`proto::check_same_origin`](crate::proto::check_same_origin); `https://example.com:443`
//!   does not match `Host: example.com`: the port is compared as written).
//!
//! Other requests are answered with 403 Forbidden and the upgrade returns
//! [`Error::Handshake`](crate::Error::Handshake) with
//! [`HandshakeError::OriginNotAllowed`](crate::proto::HandshakeError::OriginNotAllowed).
//! To allow other origins, give [`Upgrader::check_origin`](crate::Upgrader::check_origin) a
//! function of the request head; `.check_origin(|_| true)` allows every origin (only for
//! servers that do not rely on cookies or other ambient credentials):
//!
//! ```
//! use ferrosocket::Upgrader;
//! let upgrader = Upgrader::new().check_origin(|req| {
//!     req.headers
//!         .get("origin")
//!         .is_none_or(|o| o == "https://app.example.com")
//! });
//! # let _ = upgrader;
//! ```
//!
//! A client sets the header it sends with [`Dialer::header`](crate::Dialer::header).
//!
//! # Compression
//!
//! permessage-deflate (RFC 7692) compresses each message with deflate. It is off by default
//! on both sides, because it costs CPU and memory: in zlib-rs a compressor is about 370 KiB
//! and an inflater about 47 KiB (its state and a 32 KiB window) while a connection is
//! active. Text-heavy protocols such as JSON shrink severalfold. An idle connection sheds the
//! compressor when the keepalive timer sends its ping (a whole silent interval) and keeps
//! context takeover through the last 4 KiB it sent, the next compressor's dictionary, so it
//! holds about 60 KiB; with the peer's context takeover the inflater and its window must
//! stay. [`Connection::shed_idle_memory`](crate::proto::Connection::shed_idle_memory) does the
//! same on your own schedule. Turn compression on with
//! [`enable_compression(true)`](crate::ConnOptions::enable_compression), or tune it with
//! [`deflate`](crate::ConnOptions::deflate) and a [`DeflateConfig`](crate::proto::DeflateConfig):
//!
//! | setting | default | meaning |
//! |---|---|---|
//! | `level` | 1 | zlib level 0-9; 1 gets most of the ratio on text at a fraction of level 6's CPU |
//! | `threshold` | 64 bytes | shorter messages are sent uncompressed (deflate's overhead exceeds the saving) |
//! | `server_no_context_takeover`, `client_no_context_takeover` | `false` | `true`: each message compressed on its own (less memory, worse ratio) |
//! | `server_max_window_bits`, `client_max_window_bits` | 15 | the LZ77 window, 8-15 (256 B to 32 KiB) |
//! | `low_memory` | `false` | free the compressor after every message (its 4 KiB history keeps context takeover), and the inflater where the peer takes no context over: about 60 KiB per connection, for a new compressor per message (about 0.5 M instructions) |
//!
//! The server accepts a client's offer within these settings; the client offers them and
//! checks the server's answer against its offer. Context takeover and every window size are
//! supported in both directions. Inflation stops at the message size limit, so a small
//! compressed message cannot expand into gigabytes (1009). Per connection,
//! [`Conn::set_write_compression`](crate::Conn::set_write_compression) and
//! [`Conn::set_compression_level`](crate::Conn::set_compression_level) change what is sent
//! from then on. A [`PreparedMessage`](crate::PreparedMessage) is compressed once for all
//! connections without server context takeover; connections with it compress the message
//! themselves, since their output depends on what they sent before.
//!
//! # Limits and defaults
//!
//! Every size and every wait a peer controls is bounded by default. The connection options
//! ([`ConnOptions`](crate::ConnOptions), the same for [`Upgrader`](crate::Upgrader) and
//! [`Dialer`](crate::Dialer), each also a setter on both builders):
//!
//! | limit | default | why | beyond it |
//! |---|---|---|---|
//! | [`max_message_size`](crate::ConnOptions::max_message_size) | 64 MiB | finite, so a peer cannot make us allocate without bound; large enough for nearly every protocol | close 1009 |
//! | [`max_frame_size`](crate::ConnOptions::max_frame_size) | 16 MiB | bounds what one frame makes us buffer | close 1009 |
//! | [`max_streamed_message_size`](crate::proto::Config::max_streamed_message_size) | 16 GiB | streamed messages are never held whole; finite so one message cannot go on forever | close 1009 |
//! | [`stream_chunk_size`](crate::proto::Config::stream_chunk_size) | 64 KiB | one read's worth; also bounds what is inflated per chunk | (a bound, not a limit) |
//! | [`read_buffer_size`](crate::ConnOptions::read_buffer_size) | 64 KiB | a burst of frames per read; freed while idle | (grows for a large frame) |
//! | [`write_buffer_size`](crate::ConnOptions::write_buffer_size) | 64 KiB | replies queued while reading leave in few writes | `feed` writes |
//! | [`max_write_buffer_size`](crate::ConnOptions::max_write_buffer_size) | 4 MiB | memory per connection stays bounded while a slow peer catches up | stop reading, writers wait |
//! | [`slow_peer_policy`](crate::ConnOptions::slow_peer_policy) | close after 60 s without write progress | a stuck peer must not hold a connection and its buffers forever | close 1008 |
//! | [`close_timeout`](crate::ConnOptions::close_timeout) | 10 s | a peer that never answers our close frame must not hold the connection | [`TimeoutKind::Close`](crate::TimeoutKind::Close) |
//! | [`keepalive`](crate::ConnOptions::keepalive) | off | the application chooses its liveness policy (the CLI uses 30 s) | 1006 reported |
//! | [`idle_timeout`](crate::ConnOptions::idle_timeout) | off | idle connections are legitimate in many protocols | close 1001 |
//! | [`enable_compression`](crate::ConnOptions::enable_compression) | off | compression costs CPU and memory per connection | |
//!
//! The server's handshake ([`Upgrader`](crate::Upgrader)):
//!
//! | limit | default | why | beyond it |
//! |---|---|---|---|
//! | [`handshake_timeout`](crate::Upgrader::handshake_timeout) | 10 s | a client that sends its request slowly must not hold a connection (slowloris) | [`TimeoutKind::Handshake`](crate::TimeoutKind::Handshake), transport closed |
//! | [`max_header_bytes`](crate::Upgrader::max_header_bytes) | 16 KiB | browsers' requests with cookies fit; nothing more is buffered before refusing | 431 |
//! | header lines ([`proto::Limits`](crate::proto::Limits)) | 64 | browsers send 15-20; bounds the work per request | 431 |
//! | [`max_connections`](crate::Upgrader::max_connections) | none | the file-descriptor limit bounds it; set it to shed load early | 503 |
//! | [`check_origin`](crate::Upgrader::check_origin) | same origin | see [Origin](#origin) | 403 |
//!
//! The client ([`Dialer`](crate::Dialer)): [`connect_timeout`](crate::Dialer::connect_timeout)
//! 10 s (DNS, TCP, a proxy's tunnel: a host that drops packets must not hang the caller for the
//! OS's minutes of retries), [`handshake_timeout`](crate::Dialer::handshake_timeout) 10 s
//! (TLS and the upgrade), the body of a refused handshake read up to 64 KiB.
//!
//! `None` turns a size limit off; doing so lets any peer exhaust memory.
//!
//! # Errors and close codes
//!
//! Every fallible call returns [`Error`](crate::Error). What ends a session, what the peer is
//! sent, and what you get:
//!
//! | what happened | sent to the peer | returned |
//! |---|---|---|
//! | the peer sent a close frame | the same code back (RFC 6455 §5.5.1) | [`Error::Closed`](crate::Error::Closed) with the peer's code (1005 when its frame had none) |
//! | the transport ended or was reset without a close frame | nothing | `Error::Closed` with 1006 (abnormal closure) |
//! | keepalive: nothing arrived after a ping | nothing | `Error::Closed` with 1006 |
//! | the peer broke RFC 6455: reserved bits or opcodes, bad masking, bad fragmentation, an oversized or fragmented control frame, a bad close payload | 1002 (protocol error) | [`Error::Protocol`](crate::Error::Protocol) |
//! | text or a close reason that is not UTF-8, or a compressed message that does not inflate | 1007 (invalid payload data) | `Error::Protocol` |
//! | a frame or message over its limit | 1009 (message too big) | `Error::Protocol` |
//! | the idle timeout passed | 1001 (going away) | [`Error::Timeout`](crate::Error::Timeout)`(`[`Idle`](crate::TimeoutKind::Idle)`)` |
//! | a server-wide [`Shutdown`](crate::Shutdown) was triggered | 1001 | `Error::Closed` with the peer's answer |
//! | the peer stopped reading (slow-peer policy) | 1008 (policy violation), or the policy's code | `Error::Timeout(`[`Write`](crate::TimeoutKind::Write)`)` |
//! | compressing an outgoing message failed | 1011 (internal error) | [`Error::Send`](crate::Error::Send) |
//! | our close frame was not answered within the close timeout | (our close frame) | `Error::Timeout(`[`Close`](crate::TimeoutKind::Close)`)` |
//! | the read or write deadline passed | nothing; the connection stays usable (queued output stays queued) | `Error::Timeout(`[`Read`](crate::TimeoutKind::Read)` / Write)` |
//! | you called [`Conn::close`](crate::Conn::close) | your frame (no code when `None`) | `Ok` with the peer's answer |
//!
//! After a session ended, every further call returns
//! [`Error::AlreadyClosed`](crate::Error::AlreadyClosed). When the library fails a connection
//! it sends the close frame, then keeps reading and discarding until the peer closes (at most
//! the close timeout and 64 MiB), so that the peer reads why it was cut off rather than a
//! reset.
//!
//! The opening handshake fails with [`Error::Handshake`](crate::Error::Handshake) (the server
//! answered the client with the status of
//! [`HandshakeError::status`](crate::proto::HandshakeError::status): 400, 403, 405, 426, 431,
//! 503 or 505), [`Error::Rejected`](crate::Error::Rejected) (your
//! [`on_request`](crate::Upgrader::on_request) callback refused),
//! [`Error::BadHandshake`](crate::Error::BadHandshake) (client side: the server did not answer
//! 101; its status, headers and body are in the error), [`Error::Proxy`](crate::Error::Proxy),
//! [`Error::Request`](crate::Error::Request), [`Error::Timeout`](crate::Error::Timeout) or
//! [`Error::Io`](crate::Error::Io).
//!
//! To tell an expected end from a lost peer, test the close code:
//! [`Error::is_normal_close`](crate::Error::is_normal_close) (1000, 1001, 1005),
//! [`is_close_error`](crate::is_close_error) and
//! [`is_unexpected_close_error`](crate::is_unexpected_close_error):
//!
//! ```
//! use ferrosocket::{CloseCode, Error, is_unexpected_close_error};
//! fn log_end(err: &Error) {
//!     if is_unexpected_close_error(err, &[CloseCode::NORMAL_CLOSURE, CloseCode::GOING_AWAY]) {
//!         eprintln!("connection lost: {err}");
//!     }
//! }
//! # log_end(&Error::AlreadyClosed);
//! ```
//!
//! # Streaming
//!
//! [`Conn::recv`](crate::Conn::recv) returns whole messages, so a message must fit under the
//! message size limit and in memory. For larger ones (files, media, logs), receive and send
//! messages piece by piece:
//!
//! - [`Conn::recv_stream`](crate::Conn::recv_stream) returns a
//!   [`MessageReader`](crate::MessageReader): its
//!   [`next_chunk`](crate::MessageReader::next_chunk) hands out each piece as it arrives
//!   (a slice of the read buffer, no copy), and it is an `AsyncRead`, so
//!   `tokio::io::copy` can write a message to a file. Memory stays at the read buffer plus the
//!   chunks you hold, whatever the message size; chunks are at most
//!   [`stream_chunk_size`](crate::proto::Config::stream_chunk_size) (64 KiB), also for
//!   compressed messages, which are inflated a chunk at a time. Text is checked for UTF-8 as
//!   it arrives (a chunk may end inside a character; a bad byte fails the connection with 1007
//!   before it is handed out). The limit is
//!   [`max_streamed_message_size`](crate::proto::Config::max_streamed_message_size) (16 GiB)
//!   instead of the message size limit. Dropping a reader before the end is fine: the rest of
//!   the message is skipped by the next receive.
//! - [`Conn::send_stream`](crate::Conn::send_stream) returns a
//!   [`MessageWriter`](crate::MessageWriter), an `AsyncWrite`: what you write is sent as
//!   fragments of the write buffer size, and `shutdown` ends the message. It waits while the
//!   output queue is full, so a fast producer cannot outrun a slow peer.
//! - [`Conn::recv_chunk`](crate::Conn::recv_chunk) and
//!   [`Conn::send_fragment`](crate::Conn::send_fragment) are the low-level forms.
//!
//! Both work on the split halves too, and pings, the close handshake and the timers keep
//! running while a message streams.
//!
//! ```no_run
//! # async fn save(conn: &mut ferrosocket::Conn<tokio::net::TcpStream>) -> Result<(), Box<dyn std::error::Error>> {
//! use ferrosocket::MessageKind;
//! use tokio::io::AsyncWriteExt;
//!
//! // Receive one message of any size into a file.
//! let mut reader = conn.recv_stream().await?;
//! let mut file = tokio::fs::File::create("upload.bin").await?;
//! tokio::io::copy(&mut reader, &mut file).await?;
//!
//! // Send a file as one binary message.
//! let mut file = tokio::fs::File::open("download.bin").await?;
//! let mut writer = conn.send_stream(MessageKind::Binary);
//! tokio::io::copy(&mut file, &mut writer).await?;
//! writer.shutdown().await?; // ends the message
//! # Ok(()) }
//! ```
//!
//! # Coming from gorilla/websocket
//!
//! The feature set follows Go's gorilla/websocket; the names map as follows.
//!
//! | gorilla/websocket | ferrosocket |
//! |---|---|
//! | `Upgrader`, `Upgrader.Upgrade` | [`Upgrader`](crate::Upgrader), [`Upgrader::accept`](crate::Upgrader::accept) (or [`read_request`](crate::Upgrader::read_request) + [`upgrade`](crate::Upgrader::upgrade)) |
//! | `Upgrader.CheckOrigin` | [`Upgrader::check_origin`](crate::Upgrader::check_origin) |
//! | `Upgrader.Subprotocols` | [`Upgrader::subprotocols`](crate::Upgrader::subprotocols), or per request [`Accept::subprotocol`](crate::Accept::subprotocol) |
//! | `Upgrader.Error` | [`Upgrader::error_response`](crate::Upgrader::error_response) |
//! | `Upgrader.HandshakeTimeout` | [`Upgrader::handshake_timeout`](crate::Upgrader::handshake_timeout) |
//! | `ReadBufferSize`, `WriteBufferSize`, `WriteBufferPool` | [`ConnOptions::read_buffer_size`](crate::ConnOptions::read_buffer_size), [`write_buffer_size`](crate::ConnOptions::write_buffer_size), [`write_buffer_pool`](crate::ConnOptions::write_buffer_pool) |
//! | `EnableCompression` | [`ConnOptions::enable_compression`](crate::ConnOptions::enable_compression) |
//! | `Dialer`, `Dialer.Dial` / `DialContext` | [`Dialer`](crate::Dialer), [`Dialer::connect`](crate::Dialer::connect) |
//! | `Dialer.NetDialContext` | [`Dialer::connector`](crate::Dialer::connector) |
//! | `Dialer.Proxy`, `http.ProxyFromEnvironment` | [`Dialer::proxy`](crate::Dialer::proxy), [`Dialer::proxy_from_env`](crate::Dialer::proxy_from_env) (on by default) |
//! | `Dialer.TLSClientConfig` | [`Dialer::tls_config`](crate::Dialer::tls_config) |
//! | `Dialer.Jar` | [`Dialer::cookie_jar`](crate::Dialer::cookie_jar) with a [`CookieJar`](crate::CookieJar) |
//! | `NewClient` | [`Dialer::connect_with_stream`](crate::Dialer::connect_with_stream) |
//! | `ErrBadHandshake` | [`Error::BadHandshake`](crate::Error::BadHandshake) |
//! | `Conn` | [`Conn`](crate::Conn) |
//! | `ReadMessage`, `WriteMessage` | [`Conn::recv`](crate::Conn::recv), [`Conn::send`](crate::Conn::send) |
//! | `NextReader`, `NextWriter` | [`Conn::recv_stream`](crate::Conn::recv_stream), [`Conn::send_stream`](crate::Conn::send_stream) |
//! | `ReadJSON`, `WriteJSON` | `Conn::recv_json`, `Conn::send_json` (feature `json`) |
//! | `WriteControl(PingMessage, ...)`, `CloseMessage` | [`Conn::ping`](crate::Conn::ping), [`Conn::send_close`](crate::Conn::send_close), [`Conn::close`](crate::Conn::close) |
//! | `SetPingHandler`, `SetPongHandler`, `SetCloseHandler` | [`Conn::set_ping_handler`](crate::Conn::set_ping_handler), [`set_pong_handler`](crate::Conn::set_pong_handler), [`set_close_handler`](crate::Conn::set_close_handler) |
//! | `SetReadDeadline`, `SetWriteDeadline` | [`Conn::set_read_deadline`](crate::Conn::set_read_deadline), [`set_write_deadline`](crate::Conn::set_write_deadline) (the connection stays usable after a timeout) |
//! | `SetReadLimit` | [`Conn::set_read_limit`](crate::Conn::set_read_limit) |
//! | `EnableWriteCompression`, `SetCompressionLevel` | [`Conn::set_write_compression`](crate::Conn::set_write_compression), [`Conn::set_compression_level`](crate::Conn::set_compression_level) |
//! | `Subprotocol` | [`Conn::subprotocol`](crate::Conn::subprotocol) |
//! | `NetConn`, `UnderlyingConn` | [`Conn::into_inner`](crate::Conn::into_inner), [`Conn::get_ref`](crate::Conn::get_ref) |
//! | `LocalAddr`, `RemoteAddr` | [`Conn::local_addr`](crate::Conn::local_addr), [`Conn::peer_addr`](crate::Conn::peer_addr) |
//! | one reader goroutine and one writer goroutine (enforced by panics) | [`Conn::split`](crate::Conn::split) into owned halves (enforced by types) |
//! | `PreparedMessage` | [`PreparedMessage`](crate::PreparedMessage) |
//! | `CloseError`, `IsCloseError`, `IsUnexpectedCloseError` | [`CloseError`](crate::CloseError), [`is_close_error`](crate::is_close_error), [`is_unexpected_close_error`](crate::is_unexpected_close_error) |
//! | `FormatCloseMessage` | [`CloseFrame::new`](crate::CloseFrame::new) |
//! | `CloseNormalClosure`, ... | [`CloseCode::NORMAL_CLOSURE`](crate::CloseCode::NORMAL_CLOSURE), ... |
//! | `TextMessage`, `BinaryMessage` | [`MessageKind`](crate::MessageKind), [`Message`](crate::Message) |
