//! Parses an HTTP head from fuzz input in two pieces and checks that the split does not
//! change the outcome.

use bytes::BytesMut;
use ferrosocket_proto::{HandshakeError, Limits};

/// The limits picked by the low bit of `selector`: the defaults or small ones.
pub fn limits(selector: u8) -> Limits {
    if selector & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_header_bytes: 300,
            max_headers: 6,
        }
    }
}

/// Feeds `data` to `parse` cut at a point chosen by `selector` (parsing after each piece, as a
/// server reading from a socket does) and all at once; both must agree. Returns the result and
/// the bytes left after the head.
pub fn parse_split<T: std::fmt::Debug>(
    data: &[u8],
    selector: u8,
    limits: &Limits,
    parse: impl Fn(&mut BytesMut, &Limits) -> Result<Option<T>, HandshakeError>,
    same: impl Fn(&T, &T) -> bool,
) -> (Result<Option<T>, HandshakeError>, BytesMut) {
    let cut = usize::from(selector >> 1) * data.len() / 128;
    let mut whole = BytesMut::from(data);
    let all_at_once = parse(&mut whole, limits);

    let mut buf = BytesMut::from(&data[..cut]);
    let mut result = parse(&mut buf, limits);
    if matches!(result, Ok(None)) {
        buf.extend_from_slice(&data[cut..]);
        result = parse(&mut buf, limits);
    } else {
        buf.extend_from_slice(&data[cut..]);
    }
    match (&result, &all_at_once) {
        (Ok(Some(a)), Ok(Some(b))) => {
            assert!(same(a, b), "split changed the head: {a:?} vs {b:?}");
            assert_eq!(buf, whole, "split changed the bytes left after the head");
        }
        (Ok(None), Ok(None)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b, "split changed the error"),
        (a, b) => panic!("split changed the outcome: {a:?} vs {b:?}"),
    }
    match &result {
        Ok(Some(_)) => assert!(data.len() - buf.len() <= limits.max_header_bytes),
        Ok(None) => assert!(data.len() <= limits.max_header_bytes),
        Err(_) => assert_eq!(&buf[..], data, "the buffer is untouched on error"),
    }
    (result, buf)
}
