//! Errors of the protocol core.

use crate::CloseCode;

/// A violation of RFC 6455 (or of a configured limit) by the peer. The connection has queued a
/// close frame with [`close_code`](Self::close_code) and accepts no more input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV bits set that no negotiated extension defines (RFC 6455 §5.2).
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// An opcode RFC 6455 reserves (0x3-0x7, 0xB-0xF).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A control frame without FIN (RFC 6455 §5.5).
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame payload over 125 bytes (RFC 6455 §5.5).
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(u64),
    /// A server received an unmasked frame (RFC 6455 §5.1).
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A client received a masked frame (RFC 6455 §5.1).
    #[error("server frame is masked")]
    MaskedFrame,
    /// A continuation frame with no message in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress.
    #[error("new message started before the fragmented one finished")]
    ExpectedContinuation,
    /// A 64-bit frame length with its most significant bit set.
    #[error("frame length has its most significant bit set")]
    LengthTooLarge,
    /// Text or a close reason that is not UTF-8 (1007).
    #[error("invalid utf-8 in text message or close reason")]
    InvalidUtf8,
    /// A close frame with a one-byte payload or a code not allowed on the wire.
    #[error("invalid close frame payload")]
    InvalidClosePayload,
    /// A frame over [`Config::max_frame_size`](crate::Config::max_frame_size) (1009).
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// The declared frame size.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message over [`Config::max_message_size`](crate::Config::max_message_size), or over
    /// [`Config::max_streamed_message_size`](crate::Config::max_streamed_message_size) when it
    /// is streamed (1009).
    #[error("message of at least {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// The size reached (or declared) so far.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A compressed message that could not be inflated (1007).
    #[error("compressed message could not be inflated: {0}")]
    Inflate(String),
}

impl ProtocolError {
    /// The close code sent to the peer for this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 | Self::Inflate(_) => CloseCode::INVALID_FRAME_PAYLOAD_DATA,
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// Why [`Connection::poll_event`](crate::Connection::poll_event) produced no more events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The peer broke the protocol; we queued a close frame with the error's code.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The peer's close frame was already reported; nothing more will arrive.
    #[error("connection closed")]
    Closed,
    /// The transport ended without a close frame (reported as 1006 abnormal closure).
    #[error("connection ended without a close frame")]
    AbnormalClosure,
    /// A timer ended the connection (see [`Connection::handle_timeout`](crate::Connection::handle_timeout)).
    #[error("{0}")]
    TimedOut(crate::Timer),
    /// A frame the core had to send on its own (a pong, a close reply, a keepalive ping, a
    /// close) could not be masked because the OS random number generator failed; the
    /// connection ended (see [`SendError::Randomness`]).
    #[error("{0}; the connection ended")]
    Randomness(crate::mask::RandomnessError),
}

/// Why a send was refused. Sending never fails because of the peer; only misuse is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// A close frame was already sent, or the connection failed: no more data may be sent.
    #[error("connection is closing or closed; no more frames can be sent")]
    Closed,
    /// Control payloads are limited to 125 bytes (RFC 6455 §5.5).
    #[error("control payload of {0} bytes exceeds 125")]
    ControlTooLong(usize),
    /// The close code may not be sent (1005, 1006, 1015, unassigned codes).
    #[error("close code {0} may not be sent; use 1000-1003, 1007-1014 or 3000-4999")]
    InvalidCloseCode(u16),
    /// A fragmented message is being sent; finish it before starting another.
    #[error("a fragmented message is in progress; send its last fragment first")]
    MessageInProgress,
    /// Compressing the message failed (a zlib fault, not the caller's); the connection
    /// failed with 1011 (internal error), because sending the data uncompressed would corrupt
    /// the peer's decompression stream.
    #[error("compressing the message failed ({0}); the connection failed with 1011")]
    Compression(String),
    /// A continuation was sent with no fragmented message in progress.
    #[error("no fragmented message in progress to continue")]
    NoMessageInProgress,
    /// A client frame needed a mask key and the OS random number generator failed. The
    /// connection ended: it queued a close frame with 1011 (internal error) if one more key
    /// could be had for it, and nothing otherwise, since a client may send nothing unmasked
    /// (RFC 6455 §5.3; the peer then sees 1006). Frames queued before still go out.
    #[error("{0}; the connection ended")]
    Randomness(crate::mask::RandomnessError),
}
