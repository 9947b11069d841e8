//! What [`Upgrader::decide`](super::Upgrader::decide) returns: an accepted upgrade
//! ([`Upgrade`]: the 101 to send and everything the connection needs) or a refusal
//! ([`Refusal`]: the response to send and the error to report). No I/O happens here: the
//! raw-transport path writes these to its socket, the hyper path hands them to hyper.

use crate::conn::{Conn, ConnOptions};
use crate::error::Error;
use crate::slot::ConnSlot;
use bytes::Bytes;
use ferrosocket_proto::{DeflateParams, Negotiated, Role, write_response};
use http::StatusCode;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// An accepted upgrade request: the `101 Switching Protocols` response to send, what the
/// handshake agreed on, and what the connection needs (the upgrader's [`ConnOptions`] and its
/// place under the upgrader's [connection limit](super::Upgrader::max_connections)).
///
/// Send [`response`](Self::response) (or [`write_response`](Self::write_response) for a raw
/// transport), then turn the transport into a connection with [`into_conn`](Self::into_conn).
/// Dropping it gives the connection place back.
#[must_use = "an accepted upgrade does nothing until its response is sent and it becomes a Conn"]
pub struct Upgrade {
    pub(crate) response: http::Response<()>,
    pub(crate) negotiated: Negotiated,
    pub(crate) options: Arc<ConnOptions>,
    pub(crate) slot: Option<ConnSlot>,
}

impl std::fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrade")
            .field("response", &self.response)
            .field("negotiated", &self.negotiated)
            .finish_non_exhaustive()
    }
}

impl Upgrade {
    /// The `101 Switching Protocols` response (`200 OK` to an HTTP/2 or HTTP/3 extended
    /// CONNECT, without the three headers of the upgrade): `Upgrade`, `Connection`,
    /// `Sec-WebSocket-Accept`, the chosen `Sec-WebSocket-Protocol` and
    /// `Sec-WebSocket-Extensions`, the upgrader's [response
    /// headers](super::Upgrader::response_header) and the callback's.
    pub fn response(&self) -> &http::Response<()> {
        &self.response
    }

    /// The subprotocol chosen, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.negotiated.subprotocol.as_deref()
    }

    /// The permessage-deflate parameters agreed on, when compression was negotiated.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.negotiated.deflate.as_ref()
    }

    /// Everything the handshake agreed on.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Appends the response, serialized as HTTP/1.1, to `dst` (for a raw transport).
    pub fn write_response(&self, dst: &mut Vec<u8>) {
        write_response(self.response.status(), self.response.headers(), &[], dst);
    }

    /// The connection over `io`, once the response was sent on it: every option of the
    /// upgrader applies (limits, buffers, compression, keepalive, idle timeout, slow-peer
    /// policy, write-buffer pool, shutdown) and the connection holds its place under the
    /// upgrader's connection limit until it is dropped. `leftover` holds bytes that arrived
    /// after the request head (a first frame sent with the request); they are processed
    /// before the first read.
    pub fn into_conn<S>(self, io: S, leftover: &[u8]) -> Conn<S>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut conn = Conn::from_raw_with(io, Role::Server, self.options, &self.negotiated, leftover);
        if let Some(slot) = self.slot {
            conn.set_slot(slot);
        }
        conn
    }
}

/// A refused upgrade request: the response to send instead of the 101, and the error the
/// upgrade reports.
///
/// The response is complete: status, headers (`Connection: close` among them, since the
/// transport is closed after it, except with [`error_response`](super::Upgrader::error_response),
/// which writes what its callback built) and body. What the error is depends on who refused:
///
/// | who | status | error |
/// |---|---|---|
/// | the handshake rules (not an upgrade, bad version, ...) | 400, 405, 426, ... | [`Error::Handshake`] |
/// | the origin check | 403 | [`Error::Handshake`] ([`HandshakeError::OriginNotAllowed`](ferrosocket_proto::HandshakeError::OriginNotAllowed)) |
/// | the connection limit | 503 | [`Error::Handshake`] ([`HandshakeError::TooManyConnections`](ferrosocket_proto::HandshakeError::TooManyConnections)) |
/// | the [`on_request`](super::Upgrader::on_request) callback | its own | [`Error::Rejected`] |
/// | a callback bug | 500 | [`Error::BadDecision`] |
///
/// One pointer wide (boxed), so a `Result<_, Refusal>` stays small.
#[derive(Debug)]
pub struct Refusal(Box<RefusalInner>);

#[derive(Debug)]
struct RefusalInner {
    response: http::Response<Bytes>,
    error: Error,
}

impl Refusal {
    /// A refusal to answer with `response`, reporting `error`; counted as a rejected handshake
    /// (feature `metrics`) whichever server sends it.
    pub(crate) fn new(response: http::Response<Bytes>, error: Error) -> Self {
        crate::metrics::handshake_rejected(response.status());
        Self(Box::new(RefusalInner { response, error }))
    }

    /// The status of the response.
    pub fn status(&self) -> StatusCode {
        self.0.response.status()
    }

    /// The response to send.
    pub fn response(&self) -> &http::Response<Bytes> {
        &self.0.response
    }

    /// Why the upgrade was refused.
    pub fn error(&self) -> &Error {
        &self.0.error
    }

    /// The response and the error.
    pub fn into_parts(self) -> (http::Response<Bytes>, Error) {
        let RefusalInner { response, error } = *self.0;
        (response, error)
    }

    /// The response (dropping the error).
    pub fn into_response(self) -> http::Response<Bytes> {
        self.0.response
    }

    /// The error (dropping the response).
    pub fn into_error(self) -> Error {
        self.0.error
    }

    /// Appends the response, serialized as HTTP/1.1, to `dst` (for a raw transport).
    pub fn write_response(&self, dst: &mut Vec<u8>) {
        let response = &self.0.response;
        write_response(response.status(), response.headers(), response.body(), dst);
    }
}
