//! [`Http3Error`]: what can fail in the HTTP/3 layer under a WebSocket.

/// An HTTP/3 (RFC 9220) failure, as [`Error::Http3`](crate::Error::Http3).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Http3Error {
    /// The server's SETTINGS do not enable extended CONNECT
    /// (`SETTINGS_ENABLE_CONNECT_PROTOCOL`, RFC 9220 §3): it cannot carry WebSockets over
    /// HTTP/3. Connect over HTTP/1.1 (`wss://`) instead.
    #[error(
        "the server does not support WebSockets over HTTP/3 (RFC 9220: no SETTINGS_ENABLE_CONNECT_PROTOCOL); connect with wss:// over TCP instead"
    )]
    NoExtendedConnect,
    /// The QUIC connection could not be set up: a bad address, or a TLS configuration QUIC
    /// cannot use (QUIC needs TLS 1.3).
    #[error("could not start the QUIC connection: {0}")]
    Connect(String),
    /// The QUIC connection failed or was closed (by the peer, a timeout, or an HTTP/3
    /// protocol error; the message names the error code).
    #[error("the QUIC connection ended: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The peer broke HTTP/3 on the request stream (bad frames or header section); the
    /// stream or connection was closed with the HTTP/3 error `code` (RFC 9114 §8.1).
    #[error("http/3 protocol error {code:#x}: {reason}")]
    Protocol {
        /// The HTTP/3 or QPACK error code.
        code: u64,
        /// What was wrong.
        reason: String,
    },
}
