//! Messages framed once and sent to many connections.

use bytes::{BufMut, Bytes, BytesMut};
use ferrosocket_proto::extensions::deflate::SharedCompression;
use ferrosocket_proto::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use ferrosocket_proto::{Connection, Message, MessageKind, Role, SendError};
use std::sync::{Mutex, OnceLock};

/// A message whose wire form is computed once and reused for every connection it is sent to
/// (gorilla's `PreparedMessage`): broadcast to thousands of server connections costs one
/// encoding and no copy per connection.
///
/// Server frames are cached whole: one uncompressed form, and one compressed form per
/// compression setting for connections that negotiated permessage-deflate without server
/// context takeover. Connections with context takeover compress the message themselves (their
/// output depends on what they sent before). Client frames must be masked with a fresh key
/// each time, so for client connections only the payload is shared.
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
    compressed: Mutex<Vec<(SharedCompression, Bytes)>>,
}

impl PreparedMessage {
    /// Prepares `message`; its frame is built on first use.
    pub fn new(message: Message) -> Self {
        Self {
            message,
            server_frame: OnceLock::new(),
            compressed: Mutex::new(Vec::new()),
        }
    }

    /// The message.
    pub fn message(&self) -> Message {
        self.message.clone()
    }

    /// The unmasked wire bytes (header and payload) a server sends.
    pub fn server_frame(&self) -> Bytes {
        self.server_frame
            .get_or_init(|| self.frame(self.message.as_bytes(), false))
            .clone()
    }

    /// The server frame compressed under `settings` (uncompressed below their threshold).
    pub fn compressed_server_frame(&self, settings: SharedCompression) -> Bytes {
        let mut cache = self.compressed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, frame)) = cache.iter().find(|(k, _)| *k == settings) {
            return frame.clone();
        }
        let frame = match settings.compress(self.message.as_bytes()) {
            Some(deflated) => self.frame(&deflated, true),
            None => self.server_frame(),
        };
        cache.push((settings, frame.clone()));
        frame
    }

    fn frame(&self, payload: &[u8], rsv1: bool) -> Bytes {
        let opcode = match self.message.kind() {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        let mut header = FrameHeader::new(opcode, true, payload.len() as u64);
        header.rsv1 = rsv1;
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut hbuf);
        let mut buf = BytesMut::with_capacity(n + payload.len());
        buf.put_slice(&hbuf[..n]);
        buf.put_slice(payload);
        buf.freeze()
    }

    /// Queues this message on `core` in the cheapest form its settings allow.
    pub(crate) fn queue_on(&self, core: &mut Connection) -> Result<(), SendError> {
        if core.role() == Role::Client {
            return core.send(self.message());
        }
        if !core.compresses_writes() {
            return core.send_raw_frame(self.server_frame());
        }
        match core.shared_compression() {
            Some(settings) => core.send_raw_frame(self.compressed_server_frame(settings)),
            None => core.send(self.message()),
        }
    }
}
