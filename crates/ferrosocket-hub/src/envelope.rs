//! What travels between nodes: a message and the node that published it.
//!
//! Wire form (the payload of a Redis `PUBLISH` or a NATS message; the topic is the channel or
//! subject): the 4 bytes `FSH1`, the origin node id (8 bytes, big-endian), the kind (1 byte:
//! 1 text, 2 binary), then the payload. Anything else is refused by [`Envelope::decode`]:
//! the backplane counts it and drops it, since other software may share the broker.

use bytes::{BufMut, Bytes, BytesMut};
use ferrosocket::Message;

const MAGIC: &[u8; 4] = b"FSH1";
const HEADER_LEN: usize = MAGIC.len() + 8 + 1;
const KIND_TEXT: u8 = 1;
const KIND_BINARY: u8 = 2;

/// A node's identity: a random 64-bit number chosen when the hub is built, carried by every
/// message it publishes so it can skip its own publications when the broker echoes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub u64);

impl NodeId {
    /// A random id.
    pub fn random() -> Self {
        let mut b = [0u8; 8];
        // A failure of the OS generator leaves a time-derived id: still distinct per process
        // in practice, and only ever used to recognise our own echoes.
        if getrandom::fill(&mut b).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            b = (nanos ^ u64::from(std::process::id()).rotate_left(32)).to_be_bytes();
        }
        Self(u64::from_be_bytes(b))
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A published message with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The node that published it.
    pub origin: NodeId,
    /// The message.
    pub message: Message,
}

/// Why bytes from the broker are not an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Shorter than the header, or without the `FSH1` mark: not ours.
    #[error("not a ferrosocket-hub envelope (no FSH1 header)")]
    NotOurs,
    /// An unknown kind byte.
    #[error("unknown message kind {0} in a hub envelope")]
    Kind(u8),
    /// A text message whose payload is not UTF-8.
    #[error("a text message in a hub envelope is not valid UTF-8")]
    Utf8,
}

impl Envelope {
    /// The wire form.
    pub fn encode(&self) -> Bytes {
        let payload = self.message.as_bytes();
        let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
        out.put_slice(MAGIC);
        out.put_u64(self.origin.0);
        out.put_u8(match self.message {
            Message::Text(_) => KIND_TEXT,
            Message::Binary(_) => KIND_BINARY,
        });
        out.put_slice(payload);
        out.freeze()
    }

    /// Parses the wire form; the payload is shared with `bytes`, not copied.
    ///
    /// # Errors
    /// [`EnvelopeError`] when the bytes are not an envelope this version wrote.
    pub fn decode(bytes: Bytes) -> Result<Self, EnvelopeError> {
        let Some((head, _)) = bytes.split_at_checked(HEADER_LEN) else {
            return Err(EnvelopeError::NotOurs);
        };
        if &head[..4] != MAGIC {
            return Err(EnvelopeError::NotOurs);
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&head[4..12]);
        let kind = head[12];
        let payload = bytes.slice(HEADER_LEN..);
        let message = match kind {
            KIND_TEXT => Message::Text(payload.try_into().map_err(|_| EnvelopeError::Utf8)?),
            KIND_BINARY => Message::Binary(payload),
            other => return Err(EnvelopeError::Kind(other)),
        };
        Ok(Self {
            origin: NodeId(u64::from_be_bytes(id)),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_wire_form_is_the_documented_one() {
        let env = Envelope {
            origin: NodeId(0x0102_0304_0506_0708),
            message: Message::text("hi"),
        };
        assert_eq!(&env.encode()[..], b"FSH1\x01\x02\x03\x04\x05\x06\x07\x08\x01hi");
    }

    #[test]
    fn foreign_and_broken_bytes_are_refused() {
        assert_eq!(
            Envelope::decode(Bytes::from_static(b"hello")),
            Err(EnvelopeError::NotOurs)
        );
        assert_eq!(
            Envelope::decode(Bytes::from_static(b"XXXX12345678\x01")),
            Err(EnvelopeError::NotOurs)
        );
        assert_eq!(
            Envelope::decode(Bytes::from_static(b"FSH112345678\x07")),
            Err(EnvelopeError::Kind(7))
        );
        assert_eq!(
            Envelope::decode(Bytes::from_static(b"FSH112345678\x01\xff")),
            Err(EnvelopeError::Utf8)
        );
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_the_identity(id: u64, text: bool, payload: Vec<u8>) {
            let message = if text {
                Message::text(String::from_utf8_lossy(&payload).into_owned())
            } else {
                Message::binary(payload)
            };
            let env = Envelope { origin: NodeId(id), message };
            prop_assert_eq!(Envelope::decode(env.encode()), Ok(env));
        }

        #[test]
        fn decode_never_panics(bytes: Vec<u8>) {
            let _ = Envelope::decode(Bytes::from(bytes));
        }
    }
}
