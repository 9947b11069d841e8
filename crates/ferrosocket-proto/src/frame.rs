//! Frame headers (RFC 6455 §5.2): incremental decoding and encoding.
//!
//! ```text
//!  0               1               2               3
//!  0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! Decoding only reads the header; it never looks at (or allocates for) the payload, so the
//! connection can apply its limits to the declared length before any payload arrives.

/// The largest header: 2 fixed bytes, 8 bytes of extended length, 4 bytes of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame's opcode (RFC 6455 §5.2, §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The opcode for a wire value, or `None` for the reserved values 0x3-0x7 and 0xB-0xF.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong are control frames (RFC 6455 §5.5).
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// The opcode of a message's first frame (RFC 6455 §5.6).
impl From<crate::MessageKind> for OpCode {
    fn from(kind: crate::MessageKind) -> Self {
        match kind {
            crate::MessageKind::Text => Self::Text,
            crate::MessageKind::Binary => Self::Binary,
        }
    }
}

/// A decoded or to-be-encoded frame header.
///
/// `opcode` keeps the raw 4-bit value so that the connection, not the decoder, decides what a
/// reserved opcode means (it fails the connection with 1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1 (permessage-deflate marks compressed messages with it).
    pub rsv1: bool,
    /// RSV2, unused by any extension we negotiate.
    pub rsv2: bool,
    /// RSV3, unused by any extension we negotiate.
    pub rsv3: bool,
    /// The raw opcode, 0..=15.
    pub opcode: u8,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// The payload length as declared.
    pub payload_len: u64,
}

/// Why a header could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// RFC 6455 §5.2: "the most significant bit MUST be 0" in a 64-bit length.
    #[error("frame length has its most significant bit set")]
    LengthTooLarge,
}

impl FrameHeader {
    /// A header for an unmasked, unfragmented frame with no reserved bits.
    pub fn new(opcode: OpCode, fin: bool, payload_len: u64) -> Self {
        Self {
            fin,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: opcode.as_u8(),
            mask: None,
            payload_len,
        }
    }

    /// Decodes a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a header (call again with more bytes),
    /// or the header and the number of bytes it took.
    ///
    /// ```
    /// use ferrosocket_proto::FrameHeader;
    /// // RFC 6455 §5.7: unmasked "Hello"
    /// let (h, n) = FrameHeader::decode(&[0x81, 0x05, b'H']).unwrap().unwrap();
    /// assert_eq!((h.fin, h.opcode, h.payload_len, n), (true, 1, 5, 2));
    /// assert_eq!(FrameHeader::decode(&[0x81]), Ok(None));
    /// ```
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, HeaderError> {
        let [b0, b1, rest @ ..] = buf else {
            return Ok(None);
        };
        let (payload_len, ext) = match b1 & 0x7f {
            126 => match rest {
                [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
                _ => return Ok(None),
            },
            127 => match rest.first_chunk::<8>() {
                Some(bytes) => {
                    let len = u64::from_be_bytes(*bytes);
                    if len >> 63 != 0 {
                        return Err(HeaderError::LengthTooLarge);
                    }
                    (len, 8)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 0),
        };
        let masked = b1 & 0x80 != 0;
        let mask = if masked {
            match rest.get(ext..).and_then(|r| r.first_chunk::<4>()) {
                Some(k) => Some(*k),
                None => return Ok(None),
            }
        } else {
            None
        };
        let header = Self {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode: b0 & 0x0f,
            mask,
            payload_len,
        };
        Ok(Some((header, 2 + ext + if masked { 4 } else { 0 })))
    }

    /// The number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let ext = match self.payload_len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encodes the header with the shortest length form and returns the bytes written.
    ///
    /// ```
    /// use ferrosocket_proto::{FrameHeader, OpCode, MAX_HEADER_LEN};
    /// let mut buf = [0u8; MAX_HEADER_LEN];
    /// let n = FrameHeader::new(OpCode::Binary, true, 256).encode(&mut buf);
    /// assert_eq!(&buf[..n], &[0x82, 0x7e, 0x01, 0x00]);
    /// ```
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7)
            | (u8::from(self.rsv1) << 6)
            | (u8::from(self.rsv2) << 5)
            | (u8::from(self.rsv3) << 4)
            | (self.opcode & 0x0f);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = 2;
        match self.payload_len {
            len @ 0..=125 => out[1] = mask_bit | len as u8,
            len @ 126..=0xffff => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                n = 4;
            }
            len => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                n = 10;
            }
        }
        if let Some(key) = self.mask {
            out[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(h: FrameHeader) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut buf);
        assert_eq!(n, h.encoded_len());
        assert_eq!(FrameHeader::decode(&buf[..n]), Ok(Some((h, n))));
        for cut in 0..n {
            assert_eq!(
                FrameHeader::decode(&buf[..cut]),
                Ok(None),
                "prefix of {cut} bytes"
            );
        }
    }

    #[test]
    fn rfc6455_5_2_length_forms_at_boundaries() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, u64::MAX >> 1] {
            for mask in [None, Some([1, 2, 3, 4])] {
                roundtrip(FrameHeader {
                    mask,
                    ..FrameHeader::new(OpCode::Binary, true, len)
                });
            }
        }
        let mut buf = [0u8; MAX_HEADER_LEN];
        assert_eq!(FrameHeader::new(OpCode::Text, true, 125).encode(&mut buf), 2);
        assert_eq!(FrameHeader::new(OpCode::Text, true, 126).encode(&mut buf), 4);
        assert_eq!(FrameHeader::new(OpCode::Text, true, 65535).encode(&mut buf), 4);
        assert_eq!(FrameHeader::new(OpCode::Text, true, 65536).encode(&mut buf), 10);
    }

    #[test]
    fn rfc6455_5_2_64bit_length_msb_must_be_zero() {
        let buf = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::decode(&buf), Err(HeaderError::LengthTooLarge));
    }

    #[test]
    fn rfc6455_5_7_examples() {
        // A single-frame masked text message.
        let (h, n) = FrameHeader::decode(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d])
            .unwrap()
            .unwrap();
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        // A fragmented unmasked text message: first fragment has FIN clear.
        let (h, _) = FrameHeader::decode(&[0x01, 0x03]).unwrap().unwrap();
        assert!(!h.fin);
        assert_eq!(OpCode::from_u8(h.opcode), Some(OpCode::Text));
        // 256 bytes binary, 16-bit length.
        let (h, n) = FrameHeader::decode(&[0x82, 0x7e, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
        // 64 KiB binary, 64-bit length.
        let (h, n) = FrameHeader::decode(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn reserved_opcodes_are_reported_raw() {
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(OpCode::from_u8(op), None);
            let (h, _) = FrameHeader::decode(&[0x80 | op, 0]).unwrap().unwrap();
            assert_eq!(h.opcode, op);
        }
    }

    proptest! {
        #[test]
        fn encode_decode_roundtrip(fin: bool, rsv1: bool, rsv2: bool, rsv3: bool, opcode in 0u8..16,
                                   mask: Option<[u8; 4]>, len in 0u64..(1 << 63)) {
            roundtrip(FrameHeader { fin, rsv1, rsv2, rsv3, opcode, mask, payload_len: len });
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..20)) {
            let _ = FrameHeader::decode(&data);
        }
    }
}
