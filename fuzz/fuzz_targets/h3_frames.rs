//! Arbitrary bytes -> the HTTP/3 frame decoder (fed in pieces the first byte sizes), QPACK
//! field sections of the HEADERS frames and a Huffman string: what a QUIC peer's streams can
//! carry to `ferrosocket::http3`.
//!
//! Invariants (checked inside `fuzz_decode`): never panics; decoded sections stay within the
//! size cap and round-trip through our encoder; SETTINGS and Huffman strings round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferrosocket::http3::fuzz_decode(data);
});
