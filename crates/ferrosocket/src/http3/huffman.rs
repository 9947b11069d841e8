//! The HPACK/QPACK Huffman decoder (RFC 7541 §5.2, code in Appendix B). We only decode:
//! our encoder writes plain literals.

use std::sync::OnceLock;

use super::huffman_table::HUFFMAN_CODES;

/// Why a Huffman string did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HuffmanError {
    /// The EOS symbol appeared inside the string.
    Eos,
    /// More than 7 bits of padding, padding that is not the EOS prefix (all ones), or bits
    /// that match no code.
    Padding,
    /// The decoded string would be longer than the caller's limit.
    TooLong,
}

/// Canonical-code lookup: for each bit length, the codes of that length sorted, with
/// their symbols.
struct Table {
    by_len: Vec<Vec<(u32, u16)>>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut by_len = vec![Vec::new(); 31];
        for (sym, &(code, len)) in HUFFMAN_CODES.iter().enumerate() {
            if let Some(v) = by_len.get_mut(usize::from(len)) {
                v.push((code, sym as u16));
            }
        }
        for v in &mut by_len {
            v.sort_unstable();
        }
        Table { by_len }
    })
}

/// Decodes `input` into `out`, appending at most `limit` bytes.
pub(crate) fn decode(input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let t = table();
    let start = out.len();
    let mut code: u32 = 0;
    let mut len: usize = 0;
    for byte in input {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            let hit = t
                .by_len
                .get(len)
                .and_then(|v| v.binary_search_by_key(&code, |&(c, _)| c).ok().map(|i| v[i].1));
            if let Some(sym) = hit {
                if sym == 256 {
                    return Err(HuffmanError::Eos);
                }
                if out.len() - start >= limit {
                    return Err(HuffmanError::TooLong);
                }
                out.push(sym as u8);
                code = 0;
                len = 0;
            } else if len >= 30 {
                return Err(HuffmanError::Padding);
            }
        }
    }
    // What is left must be a prefix of EOS (all ones), shorter than a byte.
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HuffmanError::Padding);
    }
    Ok(())
}

/// Encodes `input` (for the fuzz target's and the tests' round trips; the encoder on the
/// wire sends plain literals).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode(input: &[u8], out: &mut Vec<u8>) {
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in input {
        let (code, len) = HUFFMAN_CODES[usize::from(b)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push(((acc << pad) | ((1 << pad) - 1)) as u8);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 7541 Appendix C.4 and C.6 (Huffman-coded strings).
    #[test]
    fn rfc7541_examples() {
        let cases = [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
            ("a8eb 1064 9cbf", "no-cache"),
            ("25a8 49e9 5ba9 7d7f", "custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
            ("6402", "302"),
            ("aec3 771a 4b", "private"),
            (
                "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
                "Mon, 21 Oct 2013 20:13:21 GMT",
            ),
            (
                "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
                "https://www.example.com",
            ),
        ];
        for (coded, plain) in cases {
            let mut out = Vec::new();
            decode(&hex(coded), 1000, &mut out).unwrap();
            assert_eq!(out, plain.as_bytes());
            let mut back = Vec::new();
            encode(plain.as_bytes(), &mut back);
            assert_eq!(back, hex(coded));
        }
    }

    #[test]
    fn bad_padding_and_limits() {
        // 'a' is 00011 (5 bits); padding with zeros is invalid.
        assert_eq!(
            decode(&[0b0001_1000], 10, &mut Vec::new()),
            Err(HuffmanError::Padding)
        );
        assert_eq!(decode(&[0b0001_1111], 10, &mut Vec::new()), Ok(()));
        // A whole byte of ones is more than 7 bits of padding.
        assert_eq!(decode(&[0xff], 10, &mut Vec::new()), Err(HuffmanError::Padding));
        // EOS (30 ones) inside the string.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xfc], 10, &mut Vec::new()),
            Err(HuffmanError::Eos)
        );
        let mut long = Vec::new();
        encode(b"aaaa", &mut long);
        assert_eq!(decode(&long, 3, &mut Vec::new()), Err(HuffmanError::TooLong));
    }

    proptest! {
        #[test]
        fn round_trip(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut coded = Vec::new();
            encode(&input, &mut coded);
            let mut out = Vec::new();
            decode(&coded, input.len(), &mut out).unwrap();
            prop_assert_eq!(out, input);
        }
    }
}
