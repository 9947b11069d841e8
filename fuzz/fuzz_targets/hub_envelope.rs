//! Arbitrary bytes -> `ferrosocket_hub::Envelope::decode` (what a broker hands a hub: other
//! software may share the broker, so any bytes can arrive).
//!
//! Invariants: never panics; a decoded envelope re-encodes to exactly the input bytes; the
//! only way to fail is a short or foreign header, an unknown kind or a text payload that is
//! not UTF-8.
#![no_main]

use bytes::Bytes;
use ferrosocket_hub::{Envelope, EnvelopeError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Envelope::decode(Bytes::copy_from_slice(data)) {
        Ok(env) => assert_eq!(&env.encode()[..], data, "decode then encode is the identity"),
        Err(EnvelopeError::NotOurs) => assert!(data.len() < 13 || &data[..4] != b"FSH1"),
        Err(EnvelopeError::Kind(k)) => assert!(k != 1 && k != 2 && data[12] == k),
        Err(EnvelopeError::Utf8) => {
            assert_eq!(data[12], 1);
            assert!(std::str::from_utf8(&data[13..]).is_err());
        }
    }
});
