//! Errors, and gorilla-style close classification.

use ferrosocket_proto::HandshakeError;
use ferrosocket_proto::{CloseCode, CloseFrame, ProtocolError, SendError};
use std::fmt;
use std::io;

/// How a WebSocket session ended, as the peer (or the transport) told us.
///
/// `code` is the peer's close code; [`CloseCode::NO_STATUS_RECEIVED`] (1005) when its close
/// frame had none, and [`CloseCode::ABNORMAL_CLOSURE`] (1006) when the transport ended or was
/// reset without any close frame. This mirrors gorilla's `CloseError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseError {
    /// The close code.
    pub code: CloseCode,
    /// The reason text the peer gave (empty for 1005 and 1006 unless we describe the cause).
    pub reason: String,
}

impl CloseError {
    /// The session ended with the peer's close frame (`None`: no status code, 1005).
    pub fn from_frame(frame: Option<&CloseFrame>) -> Self {
        match frame {
            Some(f) => Self {
                code: f.code,
                reason: f.reason.clone(),
            },
            None => Self {
                code: CloseCode::NO_STATUS_RECEIVED,
                reason: String::new(),
            },
        }
    }

    /// The transport ended without a close frame (1006).
    pub fn abnormal(reason: impl Into<String>) -> Self {
        Self {
            code: CloseCode::ABNORMAL_CLOSURE,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "websocket closed: {}", self.code)
        } else {
            write!(f, "websocket closed: {}: {}", self.code, self.reason)
        }
    }
}

impl std::error::Error for CloseError {}

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// The opening handshake did not finish in time.
    Handshake,
    /// The read deadline passed before a message arrived.
    Read,
    /// The write deadline passed before the output was written.
    Write,
    /// Connecting to the server took too long.
    Connect,
    /// The peer did not answer our close frame within the close timeout.
    Close,
    /// No message went either way for the idle timeout; we sent close 1001.
    Idle,
}

/// Everything that can go wrong on a connection.
///
/// Display texts are lowercase, have no final period, and are not a stable interface: match
/// on the variants or use the predicates instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session ended: the peer closed it (its code), or the transport ended without a close
    /// frame (1006). Classify it with [`is_close_error`] and [`is_unexpected_close_error`].
    #[error(transparent)]
    Closed(#[from] CloseError),
    /// The connection was used after it reported that it ended. A bug in the caller.
    #[error("connection already closed; do not use it after it reported an error")]
    AlreadyClosed,
    /// The peer broke RFC 6455 or a configured limit; we sent the close code of the error
    /// (1002, 1007 or 1009) and closed the connection.
    #[error("peer violated the protocol (sent close {code}): {0}", code = .0.close_code().as_u16())]
    Protocol(#[from] ProtocolError),
    /// The call is not allowed in the connection's state (e.g. sending after close).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The opening handshake failed.
    #[error("websocket handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server refused the opening handshake (a status other than 101; gorilla's
    /// `ErrBadHandshake`): its status, headers and the start of its body.
    #[error(transparent)]
    BadHandshake(Box<crate::dialer::HandshakeResponse>),
    /// The [`Upgrader::on_request`](crate::Upgrader::on_request) callback refused the upgrade:
    /// its response, with this status, was sent and the transport closed.
    #[error("upgrade rejected by the request callback with {status}")]
    Rejected {
        /// The status the callback answered with.
        status: http::StatusCode,
    },
    /// The [`Upgrader::on_request`](crate::Upgrader::on_request) callback made a decision the
    /// handshake cannot honour (a bug in the callback); 500 was sent and the transport closed.
    #[error("upgrade callback error: {0}")]
    BadDecision(#[from] crate::DecisionError),
    /// A deadline or timeout passed.
    #[error("timed out: {0:?}")]
    Timeout(TimeoutKind),
    /// The transport failed.
    #[error("i/o error: {0}")]
    Io(#[source] io::Error),
    /// A received message was not the JSON the caller asked for (`recv_json`; feature
    /// `json`). The message was consumed, and the connection remains open: the next `recv`
    /// or `recv_json` reads the next message. Close it yourself if bad input ends the session
    /// (e.g. with [`CloseCode::UNSUPPORTED_DATA`] or [`CloseCode::POLICY_VIOLATION`]).
    #[cfg(feature = "json")]
    #[error("received message is not the expected json (it was consumed; the connection remains open): {0}")]
    Json(#[source] serde_json::Error),
    /// A value could not be serialized as JSON (`send_json`; feature `json`), e.g. a map
    /// with non-string keys. Nothing was sent; the connection remains open.
    #[cfg(feature = "json")]
    #[error("value could not be serialized as json (nothing was sent): {0}")]
    JsonEncode(#[source] serde_json::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            // gorilla reports an unexpected EOF as 1006; a reset or broken pipe is the same
            // event seen from the write side.
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Error::Closed(CloseError::abnormal(e.to_string())),
            _ => Error::Io(e),
        }
    }
}

impl Error {
    /// The close details, when the session ended.
    pub fn close_error(&self) -> Option<&CloseError> {
        match self {
            Error::Closed(c) => Some(c),
            _ => None,
        }
    }

    /// The session ended cleanly: the peer sent 1000 (normal) or 1001 (going away), or a
    /// close frame without a code (1005).
    pub fn is_normal_close(&self) -> bool {
        is_close_error(
            self,
            &[
                CloseCode::NORMAL_CLOSURE,
                CloseCode::GOING_AWAY,
                CloseCode::NO_STATUS_RECEIVED,
            ],
        )
    }
}

/// Whether `err` is a [`CloseError`] with one of `codes` (gorilla's `IsCloseError`).
///
/// ```
/// use ferrosocket::{CloseError, Error, is_close_error, CloseCode};
/// let err = Error::Closed(CloseError::abnormal("reset"));
/// assert!(is_close_error(&err, &[CloseCode::ABNORMAL_CLOSURE]));
/// assert!(!is_close_error(&err, &[CloseCode::NORMAL_CLOSURE]));
/// ```
pub fn is_close_error(err: &Error, codes: &[CloseCode]) -> bool {
    matches!(err, Error::Closed(c) if codes.contains(&c.code))
}

/// Whether `err` is a [`CloseError`] whose code is NOT one of `expected` (gorilla's
/// `IsUnexpectedCloseError`): log these, ignore the expected ones.
///
/// ```
/// use ferrosocket::{CloseError, Error, is_unexpected_close_error, CloseCode};
/// let err = Error::Closed(CloseError::abnormal("reset"));
/// assert!(is_unexpected_close_error(&err, &[CloseCode::NORMAL_CLOSURE, CloseCode::GOING_AWAY]));
/// ```
pub fn is_unexpected_close_error(err: &Error, expected: &[CloseCode]) -> bool {
    matches!(err, Error::Closed(c) if !expected.contains(&c.code))
}
