//! QPACK field sections (RFC 9204 §4.5) without a dynamic table: we advertise a table
//! capacity of 0, so every section a peer sends must have a Required Insert Count of 0 and
//! refer to the static table only. Decoding accepts Huffman-coded strings; encoding uses
//! static references where the table has the name and plain literals otherwise.

use super::codes::{self, CodecError};
use super::huffman::{self, HuffmanError};
use super::static_table::STATIC_TABLE;

/// One decoded field line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) name: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

/// The size a field counts for against SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114 §4.2.2).
fn field_size(name: usize, value: usize) -> usize {
    name + value + 32
}

fn fail(reason: impl Into<String>) -> CodecError {
    CodecError::new(codes::QPACK_DECOMPRESSION_FAILED, reason.into())
}

/// A prefixed integer (RFC 7541 §5.1) whose first byte's low `prefix` bits start it.
fn decode_int(buf: &[u8], pos: &mut usize, prefix: u8) -> Result<u64, CodecError> {
    let first = *buf
        .get(*pos)
        .ok_or_else(|| fail("field section ends inside an integer"))?;
    *pos += 1;
    let max = (1u16 << prefix) as u64 - 1;
    let mut value = u64::from(first) & max;
    if value < max {
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let b = *buf
            .get(*pos)
            .ok_or_else(|| fail("field section ends inside an integer"))?;
        *pos += 1;
        if shift > 56 {
            return Err(fail("integer too large"));
        }
        value += u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// A string whose first byte holds the Huffman flag at bit `prefix` and the length in the
/// low `prefix` bits; at most `limit` decoded bytes.
fn decode_str(buf: &[u8], pos: &mut usize, prefix: u8, limit: usize) -> Result<Vec<u8>, CodecError> {
    let first = *buf
        .get(*pos)
        .ok_or_else(|| fail("field section ends before a string"))?;
    let huffman = first & (1 << prefix) != 0;
    let len = decode_int(buf, pos, prefix)?;
    let end = pos
        .checked_add(usize::try_from(len).map_err(|_| fail("string length too large"))?)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| fail("string longer than the field section"))?;
    let raw = &buf[*pos..end];
    *pos = end;
    if !huffman {
        if raw.len() > limit {
            return Err(too_big(limit));
        }
        return Ok(raw.to_vec());
    }
    let mut out = Vec::with_capacity(raw.len().min(limit));
    huffman::decode(raw, limit, &mut out).map_err(|e| match e {
        HuffmanError::TooLong => too_big(limit),
        HuffmanError::Eos => fail("Huffman string contains EOS"),
        HuffmanError::Padding => fail("Huffman string has invalid padding"),
    })?;
    Ok(out)
}

fn too_big(limit: usize) -> CodecError {
    CodecError::new(
        codes::H3_EXCESSIVE_LOAD,
        format!("header section larger than our limit ({limit} bytes left)"),
    )
}

fn static_entry(index: u64) -> Result<(&'static str, &'static str), CodecError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| STATIC_TABLE.get(i))
        .copied()
        .ok_or_else(|| fail(format!("static table index {index} out of range (0..=98)")))
}

/// Decodes a field section (a HEADERS frame's payload). `max_size` caps the decoded header
/// list as RFC 9114 §4.2.2 counts it (name + value + 32 per field); going over is
/// H3_EXCESSIVE_LOAD.
pub(crate) fn decode(buf: &[u8], max_size: usize) -> Result<Vec<Field>, CodecError> {
    let mut pos = 0;
    let required_insert_count = decode_int(buf, &mut pos, 8)?;
    if required_insert_count != 0 {
        return Err(fail(
            "field section refers to the dynamic table, whose capacity we set to 0",
        ));
    }
    // Sign bit and Delta Base: meaningless without a dynamic table.
    decode_int(buf, &mut pos, 7)?;
    let mut fields = Vec::new();
    let mut size = 0usize;
    while pos < buf.len() {
        let b = buf[pos];
        let left = max_size.saturating_sub(size);
        let (name, value) = if b & 0x80 != 0 {
            // Indexed field line: 1 T index(6).
            if b & 0x40 == 0 {
                return Err(fail("indexed field line refers to the dynamic table"));
            }
            let (n, v) = static_entry(decode_int(buf, &mut pos, 6)?)?;
            (n.as_bytes().to_vec(), v.as_bytes().to_vec())
        } else if b & 0x40 != 0 {
            // Literal with name reference: 01 N T index(4), then the value.
            if b & 0x10 == 0 {
                return Err(fail("literal field line refers to a dynamic table name"));
            }
            let (n, _) = static_entry(decode_int(buf, &mut pos, 4)?)?;
            let value = decode_str(buf, &mut pos, 7, left.saturating_sub(n.len() + 32))?;
            (n.as_bytes().to_vec(), value)
        } else if b & 0x20 != 0 {
            // Literal with literal name: 001 N H len(3), name, then the value.
            let name = decode_str(buf, &mut pos, 3, left.saturating_sub(32))?;
            let value = decode_str(buf, &mut pos, 7, left.saturating_sub(name.len() + 32))?;
            (name, value)
        } else {
            return Err(fail("post-base field line refers to the dynamic table"));
        };
        size = size.saturating_add(field_size(name.len(), value.len()));
        if size > max_size {
            return Err(too_big(left));
        }
        fields.push(Field { name, value });
    }
    Ok(fields)
}

fn encode_int(value: u64, prefix: u8, first_bits: u8, out: &mut Vec<u8>) {
    let max = (1u16 << prefix) as u64 - 1;
    if value < max {
        out.push(first_bits | value as u8);
        return;
    }
    out.push(first_bits | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

fn encode_str(s: &[u8], prefix: u8, first_bits: u8, out: &mut Vec<u8>) {
    encode_int(s.len() as u64, prefix, first_bits, out);
    out.extend_from_slice(s);
}

/// A HEADERS frame carrying `fields`, QPACK-encoded (a request's or a response's head).
pub(crate) fn headers_frame<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let mut block = Vec::new();
    encode(fields, &mut block);
    let mut out = Vec::with_capacity(block.len() + 8);
    super::frame::encode_frame(super::frame::HEADERS, &block, &mut out);
    out
}

/// Encodes `fields` as a field section with Required Insert Count 0: exact static matches
/// as indexed lines, static names with a literal value, other names as literals (no
/// Huffman coding).
pub(crate) fn encode<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0]);
    for (name, value) in fields {
        let exact = STATIC_TABLE
            .iter()
            .position(|&(n, v)| n.as_bytes() == name && v.as_bytes() == value);
        if let Some(i) = exact {
            encode_int(i as u64, 6, 0xc0, out);
            continue;
        }
        match STATIC_TABLE.iter().position(|&(n, _)| n.as_bytes() == name) {
            Some(i) => {
                encode_int(i as u64, 4, 0x50, out);
                encode_str(value, 7, 0x00, out);
            }
            None => {
                encode_str(name, 3, 0x20, out);
                encode_str(value, 7, 0x00, out);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(fields: &[Field]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(&f.name).into_owned(),
                    String::from_utf8_lossy(&f.value).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn static_table_is_rfc9204_appendix_a() {
        assert_eq!(STATIC_TABLE.len(), 99);
        assert_eq!(STATIC_TABLE[0], (":authority", ""));
        assert_eq!(STATIC_TABLE[15], (":method", "CONNECT"));
        assert_eq!(STATIC_TABLE[25], (":status", "200"));
        assert_eq!(STATIC_TABLE[72], ("accept-language", ""));
        assert_eq!(STATIC_TABLE[98], ("x-frame-options", "sameorigin"));
    }

    /// RFC 9204 Appendix B.1: a literal with a static name reference (`:path /index.html`).
    #[test]
    fn rfc9204_b1_example() {
        let wire = b"\x00\x00\x51\x0b/index.html";
        let fields = decode(wire, 1000).unwrap();
        assert_eq!(pairs(&fields), [(":path".into(), "/index.html".into())]);
        let mut out = Vec::new();
        encode([(&b":path"[..], &b"/index.html"[..])], &mut out);
        assert_eq!(out, wire);
    }

    #[test]
    fn huffman_strings_and_literal_names() {
        // 001 N=0 H=1 len: "custom-key" Huffman (8 bytes, 3-bit prefix: 7 + 1), value
        // "custom-value" Huffman (9 bytes).
        let mut wire = vec![0x00, 0x00, 0x2f, 0x01];
        wire.extend_from_slice(&[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f]);
        wire.push(0x89);
        wire.extend_from_slice(&[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf]);
        // Indexed static :method CONNECT (15), then :protocol literal name.
        wire.push(0xc0 | 15);
        let fields = decode(&wire, 1000).unwrap();
        assert_eq!(
            pairs(&fields),
            [
                ("custom-key".into(), "custom-value".into()),
                (":method".into(), "CONNECT".into())
            ]
        );
    }

    #[test]
    fn dynamic_references_and_limits_fail() {
        assert_eq!(
            decode(&[0x01, 0x00], 100).unwrap_err().code,
            codes::QPACK_DECOMPRESSION_FAILED
        );
        assert_eq!(
            decode(&[0x00, 0x00, 0x80], 100).unwrap_err().code,
            codes::QPACK_DECOMPRESSION_FAILED
        );
        assert_eq!(
            decode(&[0x00, 0x00, 0x10], 100).unwrap_err().code,
            codes::QPACK_DECOMPRESSION_FAILED
        );
        assert_eq!(
            decode(&[0x00, 0x00, 0xff, 0x7f], 100).unwrap_err().code,
            codes::QPACK_DECOMPRESSION_FAILED
        );
        assert_eq!(
            decode(&[0x00, 0x00, 0x51, 0x05, b'a'], 100).unwrap_err().code,
            codes::QPACK_DECOMPRESSION_FAILED
        );
        let mut big = Vec::new();
        encode([(&b"x-big"[..], &[b'a'; 100][..])], &mut big);
        assert_eq!(decode(&big, 120).unwrap_err().code, codes::H3_EXCESSIVE_LOAD);
        assert!(decode(&big, 137).is_ok());
    }

    proptest! {
        #[test]
        fn round_trip(fields in proptest::collection::vec(
            (prop_oneof![
                Just(b":path".to_vec()), Just(b":method".to_vec()), Just(b"origin".to_vec()),
                "[a-z-]{1,20}".prop_map(String::into_bytes)
            ], prop_oneof![
                Just(b"CONNECT".to_vec()), Just(b"/".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..300)
            ]), 0..10)) {
            let mut out = Vec::new();
            encode(fields.iter().map(|(n, v)| (&n[..], &v[..])), &mut out);
            let decoded = decode(&out, usize::MAX).unwrap();
            let back: Vec<(Vec<u8>, Vec<u8>)> = decoded.into_iter().map(|f| (f.name, f.value)).collect();
            prop_assert_eq!(back, fields);
        }
    }
}
