//! In-place payload masking (RFC 6455 §5.3).
//!
//! Masking is an XOR of every payload byte with one of the four key bytes, chosen by the byte's
//! position in the payload modulo 4. The fast path works on eight bytes at a time with plain
//! `u64` arithmetic, which the compiler turns into SIMD lanes on targets that have them, so no
//! `unsafe` code is needed. `apply_mask_bytewise` is the obviously-correct reference the
//! property tests compare against.

/// XORs `buf` with `key`, as if `buf` started at payload position `offset`.
///
/// Masking a payload in several pieces gives the same bytes as masking it at once, as long as
/// each call passes the position of the piece's first byte in the whole payload:
///
/// ```
/// use ferrosocket_proto::apply_mask;
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
#[cfg(test)]
fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) % 4];
    }
}

/// The operating system's random number generator failed, so no mask key could be drawn.
///
/// A client may send nothing it cannot mask (RFC 6455 §5.3), not even a close frame: see
/// [`SendError::Randomness`](crate::SendError::Randomness) for what the connection does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no random mask key: {0}")]
pub struct RandomnessError(String);

impl RandomnessError {
    /// An error with `detail` (what failed, for the log).
    pub fn new(detail: impl Into<String>) -> Self {
        Self(detail.into())
    }
}

/// Where client mask keys come from. RFC 6455 §5.3: the key "MUST be derived from a strong
/// source of entropy" and unpredictable per frame. Tests substitute a fixed source.
pub trait MaskSource: Send + Sync {
    /// The key for the next frame, or why none can be had. A source must not make keys up
    /// when its entropy fails: the connection then fails instead.
    fn next_key(&mut self) -> Result<[u8; 4], RandomnessError>;
}

/// Keys from the operating system's CSPRNG, fetched 256 bytes (64 keys) at a time so that
/// sending stays cheap. When the OS generator fails the key request fails (and the next one
/// asks the OS again).
pub(crate) struct OsMaskSource {
    pool: [u8; 256],
    pos: usize,
}

impl OsMaskSource {
    /// A source that fills its pool on first use.
    pub(crate) fn new() -> Self {
        Self {
            pool: [0; 256],
            pos: 256,
        }
    }
}

impl std::fmt::Debug for OsMaskSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OsMaskSource")
    }
}

impl MaskSource for OsMaskSource {
    fn next_key(&mut self) -> Result<[u8; 4], RandomnessError> {
        if self.pos + 4 > self.pool.len() {
            getrandom::fill(&mut self.pool).map_err(|e| RandomnessError::new(e.to_string()))?;
            self.pos = 0;
        }
        let mut key = [0; 4];
        key.copy_from_slice(&self.pool[self.pos..self.pos + 4]);
        self.pos += 4;
        Ok(key)
    }
}

/// A fixed key, for tests and for reproducing captured traffic. Never use it on a network.
/// (Only with the `fuzzing` feature.)
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Debug, Clone, Copy)]
pub struct FixedMaskSource(pub [u8; 4]);

#[cfg(any(test, feature = "fuzzing"))]
impl MaskSource for FixedMaskSource {
    fn next_key(&mut self) -> Result<[u8; 4], RandomnessError> {
        Ok(self.0)
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
