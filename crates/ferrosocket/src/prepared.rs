//! Messages framed once and sent to many connections.

use bytes::{BufMut, Bytes, BytesMut};
use ferrosocket_proto::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use ferrosocket_proto::{Message, MessageKind};
use std::sync::OnceLock;

/// A message whose wire form is computed once and reused for every connection it is sent to
/// (gorilla's `PreparedMessage`): broadcast to thousands of server connections costs one
/// encoding and no copy per connection.
///
/// Server frames are cached whole. Client frames must be masked with a fresh key each time,
/// so for client connections only the payload is shared.
///
/// ```
/// use ferrosocket::PreparedMessage;
/// let msg = PreparedMessage::new(ferrosocket::Message::text("tick"));
/// assert_eq!(&msg.server_frame()[..], b"\x81\x04tick");
/// ```
#[derive(Debug)]
pub struct PreparedMessage {
    message: Message,
    server_frame: OnceLock<Bytes>,
}

impl PreparedMessage {
    /// Prepares `message`; its frame is built on first use.
    pub fn new(message: Message) -> Self {
        Self {
            message,
            server_frame: OnceLock::new(),
        }
    }

    /// The message.
    pub fn message(&self) -> Message {
        self.message.clone()
    }

    /// The unmasked wire bytes (header and payload) a server sends.
    pub fn server_frame(&self) -> Bytes {
        self.server_frame
            .get_or_init(|| {
                let payload = self.message.as_bytes();
                let opcode = match self.message.kind() {
                    MessageKind::Text => OpCode::Text,
                    MessageKind::Binary => OpCode::Binary,
                };
                let mut hbuf = [0u8; MAX_HEADER_LEN];
                let n = FrameHeader::new(opcode, true, payload.len() as u64).encode(&mut hbuf);
                let mut buf = BytesMut::with_capacity(n + payload.len());
                buf.put_slice(&hbuf[..n]);
                buf.put_slice(payload);
                buf.freeze()
            })
            .clone()
    }
}
