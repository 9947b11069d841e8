//! Messages framed once and sent to many connections.

use bytes::Bytes;
use ferrosocket_proto::{
    Connection, Message, PreparedForm, SendError, SharedCompression, compressed_server_frame, server_frame,
};
use std::sync::{Mutex, OnceLock};

/// A message whose wire form is computed once and reused for every connection it is sent to:
/// broadcast to thousands of server connections costs one encoding and no copy per connection.
///
/// The frames are the core's ([`proto::server_frame`](crate::proto::server_frame),
/// [`proto::compressed_server_frame`](crate::proto::compressed_server_frame)), and each
/// connection says which one it can take
/// ([`Connection::prepared_form`](crate::proto::Connection::prepared_form)); this type only
/// caches them. Server frames are cached whole: one uncompressed form, and one compressed form per
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

    /// The payload's length in bytes (before any compression).
    pub fn len(&self) -> usize {
        self.message.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.message.is_empty()
    }

    /// The unmasked wire bytes (header and payload) a server sends.
    pub fn server_frame(&self) -> Bytes {
        self.server_frame
            .get_or_init(|| server_frame(&self.message))
            .clone()
    }

    /// The server frame compressed under `settings` (uncompressed below their threshold).
    pub fn compressed_server_frame(&self, settings: SharedCompression) -> Bytes {
        let mut cache = self.compressed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, frame)) = cache.iter().find(|(k, _)| *k == settings) {
            return frame.clone();
        }
        let frame = compressed_server_frame(&self.message, &settings).unwrap_or_else(|| self.server_frame());
        cache.push((settings, frame.clone()));
        frame
    }

    /// Queues this message on `core` in the cheapest form its settings allow.
    pub(crate) fn queue_on(&self, core: &mut Connection) -> Result<(), SendError> {
        match core.prepared_form() {
            PreparedForm::Uncompressed => core.send_raw_frame(self.server_frame()),
            PreparedForm::Compressed(settings) => core.send_raw_frame(self.compressed_server_frame(settings)),
            PreparedForm::PerConnection => core.send(self.message()),
        }
    }
}
