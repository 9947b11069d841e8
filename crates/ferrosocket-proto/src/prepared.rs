//! Messages framed ahead of time: the wire bytes a server sends for a message, built once and
//! queued on many connections with [`Connection::send_raw_frame`] (broadcast). The shell's
//! `PreparedMessage` caches these frames; the framing rules live here.

use crate::extensions::deflate::SharedCompression;
use crate::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use crate::{Connection, Message, Role};
use bytes::{BufMut, Bytes, BytesMut};

/// How a connection can send a message whose frames were built ahead of time
/// ([`Connection::prepared_form`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PreparedForm {
    /// The uncompressed server frame ([`server_frame`]).
    Uncompressed,
    /// The server frame compressed under these settings ([`compressed_server_frame`]).
    Compressed(SharedCompression),
    /// The connection frames the message itself ([`Connection::send`]): a client masks every
    /// frame with a fresh key, and with context takeover a compressed frame depends on what
    /// the connection sent before.
    PerConnection,
}

/// The message as one unmasked final frame: what a server sends without compression.
///
/// ```
/// use ferrosocket_proto::{server_frame, Message};
/// assert_eq!(&server_frame(&Message::text("tick"))[..], b"\x81\x04tick");
/// ```
pub fn server_frame(message: &Message) -> Bytes {
    encode(message, message.as_bytes(), false)
}

/// The message compressed under `settings` as one unmasked final frame with RSV1 set, or
/// `None` when it stays uncompressed (below the settings' threshold): the
/// [`server_frame`] is then the frame to send.
pub fn compressed_server_frame(message: &Message, settings: &SharedCompression) -> Option<Bytes> {
    settings
        .compress(message.as_bytes())
        .map(|deflated| encode(message, &deflated, true))
}

fn encode(message: &Message, payload: &[u8], rsv1: bool) -> Bytes {
    let mut header = FrameHeader::new(OpCode::from(message.kind()), true, payload.len() as u64);
    header.rsv1 = rsv1;
    let mut hbuf = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut hbuf);
    let mut buf = BytesMut::with_capacity(n + payload.len());
    buf.put_slice(&hbuf[..n]);
    buf.put_slice(payload);
    buf.freeze()
}

impl Connection {
    /// How a message framed ahead of time is sent on this connection: the shared uncompressed
    /// or compressed server frame, or framed by the connection itself.
    pub fn prepared_form(&self) -> PreparedForm {
        if self.role() == Role::Client {
            return PreparedForm::PerConnection;
        }
        if !self.compresses_writes() {
            return PreparedForm::Uncompressed;
        }
        match self.shared_compression() {
            Some(settings) => PreparedForm::Compressed(settings),
            None => PreparedForm::PerConnection,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Config, DeflateConfig, DeflateParams};

    #[test]
    fn rfc6455_5_2_server_frames_are_unmasked_final_frames() {
        assert_eq!(&server_frame(&Message::binary(vec![1, 2]))[..], [0x82, 2, 1, 2]);
        let long = Message::text("x".repeat(300));
        let frame = server_frame(&long);
        assert_eq!(&frame[..4], [0x81, 126, 1, 44]);
        assert_eq!(frame.len(), 4 + 300);
    }

    #[test]
    fn rfc7692_compressed_frames_set_rsv1_and_inflate_on_a_client() {
        let settings = SharedCompression {
            window_bits: 15,
            level: 6,
            threshold: 16,
        };
        assert_eq!(compressed_server_frame(&Message::text("short"), &settings), None);
        let msg = Message::text("abc".repeat(100));
        let frame = compressed_server_frame(&msg, &settings).unwrap();
        assert_eq!(frame[0], 0xc1, "FIN, RSV1, text");
        let params = DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        let mut client = Connection::new(Role::Client, Config::default());
        client.enable_deflate(&params, &DeflateConfig::default());
        client.receive(&frame);
        assert_eq!(client.poll_event(), Ok(Some(crate::Event::Message(msg))));
    }

    #[test]
    fn prepared_form_follows_role_and_compression() {
        let server = Connection::new(Role::Server, Config::default());
        assert_eq!(server.prepared_form(), PreparedForm::Uncompressed);
        let client = Connection::new(Role::Client, Config::default());
        assert_eq!(client.prepared_form(), PreparedForm::PerConnection);
        let no_takeover = DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        let mut server = Connection::new(Role::Server, Config::default());
        server.enable_deflate(&no_takeover, &DeflateConfig::default());
        assert!(matches!(server.prepared_form(), PreparedForm::Compressed(_)));
        server.set_write_compression(false);
        assert_eq!(server.prepared_form(), PreparedForm::Uncompressed);
        let takeover = DeflateParams {
            server_no_context_takeover: false,
            ..no_takeover
        };
        let mut server = Connection::new(Role::Server, Config::default());
        server.enable_deflate(&takeover, &DeflateConfig::default());
        assert_eq!(server.prepared_form(), PreparedForm::PerConnection);
    }
}
