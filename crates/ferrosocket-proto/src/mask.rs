//! In-place payload masking (RFC 6455 §5.3).
//!
//! Masking is an XOR of every payload byte with one of the four key bytes, chosen by the byte's
//! position in the payload modulo 4. The fast path works on eight bytes at a time with plain
//! `u64` arithmetic, which the compiler turns into SIMD lanes on targets that have them, so no
//! `unsafe` code is needed. [`apply_mask_bytewise`] is the obviously-correct reference the
//! property tests compare against.

/// XORs `buf` with `key`, as if `buf` started at payload position `offset`.
///
/// Masking a payload in several pieces gives the same bytes as masking it at once, as long as
/// each call passes the position of the piece's first byte in the whole payload:
///
/// ```
/// use ferrosocket_proto::mask::apply_mask;
/// let key = [1, 2, 3, 4];
/// let mut whole = *b"hello world";
/// apply_mask(&mut whole, key, 0);
/// let mut pieces = *b"hello world";
/// let (a, b) = pieces.split_at_mut(3);
/// apply_mask(a, key, 0);
/// apply_mask(b, key, 3);
/// assert_eq!(whole, pieces);
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let rot = offset % 4;
    let k = [
        key[rot],
        key[(rot + 1) % 4],
        key[(rot + 2) % 4],
        key[(rot + 3) % 4],
    ];
    let wide = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let (chunks, rest) = buf.as_chunks_mut::<8>();
    for chunk in chunks {
        *chunk = (u64::from_ne_bytes(*chunk) ^ wide).to_ne_bytes();
    }
    // Every chunk is 8 bytes long, so the remainder starts at a multiple of 4 from `offset`.
    for (b, m) in rest.iter_mut().zip(k.iter().cycle()) {
        *b ^= m;
    }
}

/// The byte-at-a-time reference implementation of [`apply_mask`].
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) % 4];
    }
}

/// Where client mask keys come from. RFC 6455 §5.3: the key "MUST be derived from a strong
/// source of entropy" and unpredictable per frame. Tests substitute a fixed source.
pub trait MaskSource: Send + Sync {
    /// The key for the next frame.
    fn next_key(&mut self) -> [u8; 4];
}

/// Keys from the operating system's CSPRNG, fetched 256 bytes (64 keys) at a time so that
/// sending stays cheap.
pub struct OsMaskSource {
    pool: [u8; 256],
    pos: usize,
    counter: u64,
}

impl OsMaskSource {
    /// A source that fills its pool on first use.
    pub fn new() -> Self {
        Self {
            pool: [0; 256],
            pos: 256,
            counter: 0,
        }
    }

    fn refill(&mut self) {
        if getrandom::fill(&mut self.pool).is_err() {
            // The OS RNG is not expected to fail after start-up. If it does, keep keys
            // unpredictable to a peer that cannot see our memory by stirring the old pool
            // with a counter (splitmix64) rather than stopping the connection.
            for chunk in self.pool.chunks_exact_mut(8) {
                self.counter = self.counter.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = self.counter;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                let old = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
                chunk.copy_from_slice(&(old ^ z ^ (z >> 31)).to_ne_bytes());
            }
        }
        self.pos = 0;
    }
}

impl Default for OsMaskSource {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for OsMaskSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OsMaskSource")
    }
}

impl MaskSource for OsMaskSource {
    fn next_key(&mut self) -> [u8; 4] {
        if self.pos + 4 > self.pool.len() {
            self.refill();
        }
        let mut key = [0; 4];
        key.copy_from_slice(&self.pool[self.pos..self.pos + 4]);
        self.pos += 4;
        key
    }
}

/// A fixed key, for tests and for reproducing captured traffic. Never use it on a network.
#[derive(Debug, Clone, Copy)]
pub struct FixedMaskSource(pub [u8; 4]);

impl MaskSource for FixedMaskSource {
    fn next_key(&mut self) -> [u8; 4] {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc6455_5_7_masked_hello() {
        // RFC 6455 §5.7: "A single-frame masked text message" with key 37 fa 21 3d.
        let mut payload = *b"Hello";
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    proptest! {
        #[test]
        fn word_masking_equals_bytewise(data in proptest::collection::vec(any::<u8>(), 0..300),
                                        key in any::<[u8; 4]>(), offset in 0usize..16) {
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast, key, offset);
            apply_mask_bytewise(&mut slow, key, offset);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn masking_in_pieces_equals_whole(data in proptest::collection::vec(any::<u8>(), 0..200),
                                          key in any::<[u8; 4]>(), cut in 0usize..200) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            prop_assert_eq!(whole, pieces);
        }
    }
}
