//! HTTP/3 frames (RFC 9114 §7): the frame header, whole frames decoded incrementally from
//! stream bytes, SETTINGS and GOAWAY payloads. No I/O.

use bytes::{Buf, Bytes, BytesMut};

use super::codes::{self, CodecError};
use super::varint;

/// DATA (RFC 9114 §7.2.1).
pub(crate) const DATA: u64 = 0x0;
/// HEADERS (§7.2.2).
pub(crate) const HEADERS: u64 = 0x1;
/// SETTINGS (§7.2.4).
pub(crate) const SETTINGS: u64 = 0x4;
/// PUSH_PROMISE (§7.2.5): we never allow pushes, so receiving one is an error.
pub(crate) const PUSH_PROMISE: u64 = 0x5;
/// GOAWAY (§7.2.6).
pub(crate) const GOAWAY: u64 = 0x7;

/// SETTINGS_QPACK_MAX_TABLE_CAPACITY (RFC 9204 §5).
pub(crate) const SETTINGS_QPACK_MAX_TABLE_CAPACITY: u64 = 0x1;
/// SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114 §7.2.4.1).
pub(crate) const SETTINGS_MAX_FIELD_SECTION_SIZE: u64 = 0x6;
/// SETTINGS_QPACK_BLOCKED_STREAMS (RFC 9204 §5).
pub(crate) const SETTINGS_QPACK_BLOCKED_STREAMS: u64 = 0x7;
/// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3, for HTTP/3 RFC 9220 §3).
pub(crate) const SETTINGS_ENABLE_CONNECT_PROTOCOL: u64 = 0x8;

/// A frame type and payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHead {
    pub(crate) ty: u64,
    pub(crate) len: u64,
}

impl FrameHead {
    /// Decodes a frame header from the start of `buf`: `Some((head, bytes used))`, or `None`
    /// when more bytes are needed.
    pub(crate) fn decode(buf: &[u8]) -> Option<(FrameHead, usize)> {
        let (ty, a) = varint::decode(buf)?;
        let (len, b) = varint::decode(&buf[a..])?;
        Some((FrameHead { ty, len }, a + b))
    }

    /// Appends the header.
    pub(crate) fn encode(self, out: &mut Vec<u8>) {
        varint::encode(self.ty, out);
        varint::encode(self.len, out);
    }

    /// Whether this is a frame type HTTP/3 reserved because it belongs to HTTP/2
    /// (RFC 9114 §7.2.8): receiving one is a connection error H3_FRAME_UNEXPECTED.
    pub(crate) fn is_http2_only(self) -> bool {
        matches!(self.ty, 0x2 | 0x6 | 0x8 | 0x9)
    }
}

/// A whole frame of a type we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    Data(Bytes),
    Headers(Bytes),
    Settings(Settings),
    Goaway(u64),
    PushPromise,
}

/// Decodes whole frames from bytes fed in any pieces. Frames of unknown or reserved types
/// (and CANCEL_PUSH, MAX_PUSH_ID, which we have no use for) are skipped without being
/// buffered; a known frame longer than `max_len` is an error (H3_EXCESSIVE_LOAD).
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    buf: BytesMut,
    skip: u64,
    max_len: u64,
}

impl FrameDecoder {
    pub(crate) fn new(max_len: u64) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            skip: 0,
            max_len,
        }
    }

    /// Adds received bytes.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let skipped = self.skip.min(bytes.len() as u64) as usize;
        self.skip -= skipped as u64;
        self.buf.extend_from_slice(&bytes[skipped..]);
    }

    /// Whether bytes of an unfinished frame are held (a stream that ends now ends mid-frame:
    /// H3_FRAME_ERROR).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn is_mid_frame(&self) -> bool {
        !self.buf.is_empty() || self.skip > 0
    }

    /// The bytes received after the last frame returned, and how many bytes of a frame
    /// being skipped are still to come (for a stream whose frames are read from here on by
    /// other code).
    pub(crate) fn into_remaining(self) -> (BytesMut, u64) {
        (self.buf, self.skip)
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, CodecError> {
        loop {
            let Some((head, used)) = FrameHead::decode(&self.buf) else {
                return Ok(None);
            };
            if head.is_http2_only() {
                return Err(CodecError::new(
                    codes::H3_FRAME_UNEXPECTED,
                    format!("frame type {:#x} is HTTP/2's, reserved in HTTP/3", head.ty),
                ));
            }
            let known = matches!(head.ty, DATA | HEADERS | SETTINGS | GOAWAY | PUSH_PROMISE);
            if !known {
                self.buf.advance(used);
                let here = head.len.min(self.buf.len() as u64);
                self.buf.advance(here as usize);
                self.skip = head.len - here;
                if self.skip > 0 {
                    return Ok(None);
                }
                continue;
            }
            if head.len > self.max_len {
                return Err(CodecError::new(
                    codes::H3_EXCESSIVE_LOAD,
                    format!(
                        "frame of type {:#x} is {} bytes, more than the limit of {}",
                        head.ty, head.len, self.max_len
                    ),
                ));
            }
            let total = used + head.len as usize;
            if self.buf.len() < total {
                self.buf.reserve(total - self.buf.len());
                return Ok(None);
            }
            self.buf.advance(used);
            let payload = self.buf.split_to(head.len as usize).freeze();
            return Ok(Some(match head.ty {
                DATA => Frame::Data(payload),
                HEADERS => Frame::Headers(payload),
                SETTINGS => Frame::Settings(Settings::decode(&payload)?),
                GOAWAY => Frame::Goaway(decode_goaway(&payload)?),
                _ => Frame::PushPromise,
            }));
        }
    }
}

/// The SETTINGS we read and write (RFC 9114 §7.2.4, RFC 9204 §5, RFC 9220 §3). Unknown
/// identifiers are ignored, as required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Settings {
    pub(crate) qpack_max_table_capacity: u64,
    pub(crate) qpack_blocked_streams: u64,
    pub(crate) max_field_section_size: Option<u64>,
    pub(crate) enable_connect_protocol: bool,
}

impl Settings {
    /// Ours: no dynamic table, no blocked streams, extended CONNECT on, and our header cap.
    pub(crate) fn ours(max_field_section_size: u64) -> Self {
        Settings {
            qpack_max_table_capacity: 0,
            qpack_blocked_streams: 0,
            max_field_section_size: Some(max_field_section_size),
            enable_connect_protocol: true,
        }
    }

    /// Decodes a SETTINGS payload.
    pub(crate) fn decode(mut payload: &[u8]) -> Result<Settings, CodecError> {
        let bad = |msg: &str| CodecError::new(codes::H3_SETTINGS_ERROR, msg.to_owned());
        let mut s = Settings::default();
        let mut seen: Vec<u64> = Vec::new();
        while !payload.is_empty() {
            let (id, a) = varint::decode(payload).ok_or_else(|| bad("truncated setting identifier"))?;
            let (value, b) = varint::decode(&payload[a..]).ok_or_else(|| bad("truncated setting value"))?;
            payload = &payload[a + b..];
            if seen.contains(&id) {
                return Err(bad("a setting appears twice"));
            }
            seen.push(id);
            match id {
                // HTTP/2 settings, reserved in HTTP/3 (RFC 9114 §7.2.4.1).
                0x2..=0x5 => return Err(bad("an HTTP/2 setting was sent over HTTP/3")),
                SETTINGS_QPACK_MAX_TABLE_CAPACITY => s.qpack_max_table_capacity = value,
                SETTINGS_QPACK_BLOCKED_STREAMS => s.qpack_blocked_streams = value,
                SETTINGS_MAX_FIELD_SECTION_SIZE => s.max_field_section_size = Some(value),
                SETTINGS_ENABLE_CONNECT_PROTOCOL => match value {
                    0 => s.enable_connect_protocol = false,
                    1 => s.enable_connect_protocol = true,
                    _ => return Err(bad("SETTINGS_ENABLE_CONNECT_PROTOCOL must be 0 or 1")),
                },
                _ => {}
            }
        }
        Ok(s)
    }

    /// Appends a whole SETTINGS frame.
    pub(crate) fn encode_frame(&self, out: &mut Vec<u8>) {
        let mut payload = Vec::new();
        for (id, value) in [
            (
                SETTINGS_QPACK_MAX_TABLE_CAPACITY,
                Some(self.qpack_max_table_capacity),
            ),
            (SETTINGS_QPACK_BLOCKED_STREAMS, Some(self.qpack_blocked_streams)),
            (SETTINGS_MAX_FIELD_SECTION_SIZE, self.max_field_section_size),
            (
                SETTINGS_ENABLE_CONNECT_PROTOCOL,
                Some(u64::from(self.enable_connect_protocol)),
            ),
        ] {
            if let Some(v) = value {
                varint::encode(id, &mut payload);
                varint::encode(v, &mut payload);
            }
        }
        FrameHead {
            ty: SETTINGS,
            len: payload.len() as u64,
        }
        .encode(out);
        out.extend_from_slice(&payload);
    }
}

fn decode_goaway(payload: &[u8]) -> Result<u64, CodecError> {
    match varint::decode(payload) {
        Some((id, used)) if used == payload.len() => Ok(id),
        _ => Err(CodecError::new(
            codes::H3_FRAME_ERROR,
            "GOAWAY payload is not one integer".into(),
        )),
    }
}

/// Appends a frame of type `ty` carrying `payload`.
pub(crate) fn encode_frame(ty: u64, payload: &[u8], out: &mut Vec<u8>) {
    FrameHead {
        ty,
        len: payload.len() as u64,
    }
    .encode(out);
    out.extend_from_slice(payload);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(bytes: &[u8], piece: usize) -> Result<Vec<Frame>, CodecError> {
        let mut d = FrameDecoder::new(1 << 16);
        let mut frames = Vec::new();
        for chunk in bytes.chunks(piece.max(1)) {
            d.push(chunk);
            while let Some(f) = d.next_frame()? {
                frames.push(f);
            }
        }
        assert!(!d.is_mid_frame());
        Ok(frames)
    }

    #[test]
    fn settings_round_trip_and_bytes() {
        let mut out = Vec::new();
        Settings::ours(16_384).encode_frame(&mut out);
        // type 4, length 11, then (1,0) (7,0) (6,16384) (8,1).
        assert_eq!(
            out,
            [
                0x04, 0x0b, 0x01, 0x00, 0x07, 0x00, 0x06, 0x80, 0x00, 0x40, 0x00, 0x08, 0x01
            ]
        );
        let frames = decode_all(&out, 1).unwrap();
        assert_eq!(frames, [Frame::Settings(Settings::ours(16_384))]);
    }

    #[test]
    fn unknown_and_reserved_frames_are_skipped() {
        let mut out = Vec::new();
        // A reserved type 0x1f * 3 + 0x21 = 0x7e with 300 bytes, then DATA "hi".
        encode_frame(0x7e, &[9; 300], &mut out);
        encode_frame(DATA, b"hi", &mut out);
        for piece in [1, 7, 1000] {
            let frames = decode_all(&out, piece).unwrap();
            assert_eq!(frames, [Frame::Data(Bytes::from_static(b"hi"))]);
        }
    }

    #[test]
    fn limits_and_errors() {
        let mut d = FrameDecoder::new(10);
        let mut out = Vec::new();
        encode_frame(HEADERS, &[0; 11], &mut out);
        d.push(&out);
        assert_eq!(d.next_frame().unwrap_err().code, codes::H3_EXCESSIVE_LOAD);

        let mut d = FrameDecoder::new(10);
        d.push(&[0x06, 0x00]);
        assert_eq!(d.next_frame().unwrap_err().code, codes::H3_FRAME_UNEXPECTED);

        assert_eq!(
            Settings::decode(&[0x08, 0x02]).unwrap_err().code,
            codes::H3_SETTINGS_ERROR
        );
        assert_eq!(
            Settings::decode(&[0x08, 0x01, 0x08, 0x01]).unwrap_err().code,
            codes::H3_SETTINGS_ERROR
        );
        assert_eq!(
            Settings::decode(&[0x02, 0x01]).unwrap_err().code,
            codes::H3_SETTINGS_ERROR
        );
        // Unknown settings are ignored.
        let s = Settings::decode(&[0x21, 0x05, 0x08, 0x01]).unwrap();
        assert!(s.enable_connect_protocol);
    }

    proptest! {
        #[test]
        fn frames_round_trip_in_any_pieces(
            frames in proptest::collection::vec((0u8..3, proptest::collection::vec(any::<u8>(), 0..200)), 0..8),
            piece in 1usize..64,
        ) {
            let mut out = Vec::new();
            let mut expected = Vec::new();
            for (kind, payload) in &frames {
                match kind {
                    0 => {
                        encode_frame(DATA, payload, &mut out);
                        expected.push(Frame::Data(Bytes::copy_from_slice(payload)));
                    }
                    1 => {
                        encode_frame(HEADERS, payload, &mut out);
                        expected.push(Frame::Headers(Bytes::copy_from_slice(payload)));
                    }
                    _ => encode_frame(0x21 + 0x1f * payload.len() as u64, payload, &mut out),
                }
            }
            prop_assert_eq!(decode_all(&out, piece).unwrap(), expected);
        }
    }
}
