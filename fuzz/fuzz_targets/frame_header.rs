//! Arbitrary bytes -> `FrameHeader::decode`.
//!
//! Invariants: never panics; a decoded header takes at most the bytes given (and at most
//! `MAX_HEADER_LEN`); every shorter prefix is "need more"; re-encoding the header (shortest
//! length form) decodes to the same header; the only error is a 64-bit length with its MSB set.
#![no_main]

use ferrosocket_proto::{FrameHeader, HeaderError, MAX_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match FrameHeader::decode(data) {
        Ok(Some((h, n))) => {
            assert!(n <= data.len(), "header length {n} > input {}", data.len());
            assert!((2..=MAX_HEADER_LEN).contains(&n));
            assert!(h.opcode <= 0x0f);
            assert!(h.payload_len >> 63 == 0);
            // The header alone decodes the same; any shorter prefix needs more bytes.
            assert_eq!(FrameHeader::decode(&data[..n]), Ok(Some((h, n))));
            for cut in 0..n {
                assert_eq!(FrameHeader::decode(&data[..cut]), Ok(None), "prefix {cut}");
            }
            let mut buf = [0u8; MAX_HEADER_LEN];
            let m = h.encode(&mut buf);
            assert_eq!(m, h.encoded_len());
            assert!(m <= n, "shortest form {m} longer than the decoded form {n}");
            assert_eq!(FrameHeader::decode(&buf[..m]), Ok(Some((h, m))));
            // The first byte round-trips exactly (FIN, RSV1-3, opcode).
            assert_eq!(buf[0], data[0]);
        }
        Ok(None) => assert!(data.len() < MAX_HEADER_LEN),
        Err(HeaderError::LengthTooLarge) => {
            assert!(data.len() >= 10 && data[1] & 0x7f == 127 && data[2] & 0x80 != 0);
        }
    }
});
