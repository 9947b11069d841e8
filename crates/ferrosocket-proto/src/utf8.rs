//! Incremental UTF-8 validation across fragments and partial frames.
//!
//! Autobahn's strict cases (6.4.x) require a text message to fail as soon as an invalid byte
//! arrives, even when the frame that carries it is not complete yet. [`Utf8Validator`] is fed the
//! payload piece by piece in arrival order and keeps at most three bytes of an unfinished code
//! point between pieces. Whole pieces are checked with `simdutf8`.

/// The bytes seen so far are not the prefix of any valid UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid utf-8 in text payload")]
pub struct Utf8Error;

/// Validates UTF-8 text that arrives in pieces, failing at the first byte that cannot start
/// or continue valid text, even mid-frame; it keeps at most three bytes of an unfinished code
/// point between pieces.
///
/// ```
/// use ferrosocket_proto::fuzzing::Utf8Validator;
/// let text = "κόσμε".as_bytes();
/// let mut v = Utf8Validator::new();
/// for b in text {
///     v.feed(std::slice::from_ref(b)).unwrap(); // split inside code points: fine
/// }
/// assert!(v.finish().is_ok());
/// assert!(Utf8Validator::new().feed(&[0xce, 0xba, 0xf4, 0x90]).is_err()); // > U+10FFFF
/// ```
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))] // re-exported by `fuzzing`
pub struct Utf8Validator {
    partial: [u8; 4],
    len: u8,
}

/// The length of the code point a valid leading byte starts.
fn width(lead: u8) -> usize {
    match lead {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 1,
    }
}

#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))] // re-exported by `fuzzing`
impl Utf8Validator {
    /// A validator at the start of a text.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next piece. Fails as soon as the text so far cannot be valid UTF-8.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), Utf8Error> {
        if self.len > 0 {
            let have = usize::from(self.len);
            let want = width(self.partial[0]);
            let take = (want - have).min(input.len());
            let (head, rest) = input.split_at(take);
            self.partial[have..have + take].copy_from_slice(head);
            let now = have + take;
            input = rest;
            match std::str::from_utf8(&self.partial[..now]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix of an unfinished code point; `input` is empty.
                    self.len = now as u8;
                    return Ok(());
                }
                Err(_) => return Err(Utf8Error),
            }
        }
        match simdutf8::compat::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &input[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(Utf8Error),
        }
    }

    /// Checks that the text ends on a code point boundary, and resets for the next text.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.len == 0;
        self.len = 0;
        if complete { Ok(()) } else { Err(Utf8Error) }
    }

    /// Forgets any unfinished code point, ready for a new text.
    pub fn reset(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed_split(data: &[u8], cuts: &[usize]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        let mut last = 0;
        for &c in cuts {
            let c = c.clamp(last, data.len());
            v.feed(&data[last..c])?;
            last = c;
        }
        v.feed(&data[last..])?;
        v.finish()
    }

    #[test]
    fn fails_on_first_bad_byte_before_the_end() {
        // 6.4.1-style: valid prefix, then a byte that can never be valid.
        let mut v = Utf8Validator::new();
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        assert_eq!(v.feed(&[0xf4, 0x90, 0x80]), Err(Utf8Error));
    }

    #[test]
    fn unfinished_code_point_at_the_end_fails_finish() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xe2, 0x82]).is_ok());
        assert_eq!(v.finish(), Err(Utf8Error));
        // finish resets
        assert!(v.feed(b"ok").is_ok());
        assert!(v.finish().is_ok());
    }

    #[test]
    fn surrogates_and_overlongs_are_rejected_across_splits() {
        for bad in [
            &[0xed, 0xa0, 0x80][..],
            &[0xc0, 0xaf],
            &[0xe0, 0x80, 0xaf],
            &[0xf8, 0x88, 0x80, 0x80, 0x80],
        ] {
            for cut in 0..=bad.len() {
                assert!(feed_split(bad, &[cut]).is_err(), "{bad:x?} cut at {cut}");
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_std_on_any_split(data in proptest::collection::vec(any::<u8>(), 0..64),
                                        cuts in proptest::collection::vec(0usize..64, 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(feed_split(&data, &cuts).is_ok(), std::str::from_utf8(&data).is_ok());
        }

        #[test]
        fn valid_text_passes_on_any_split(s in "\\PC{0,40}", cuts in proptest::collection::vec(0usize..160, 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert!(feed_split(s.as_bytes(), &cuts).is_ok());
        }
    }
}
