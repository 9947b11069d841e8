//! The body of a refused handshake's answer, decoded as it arrives.
//!
//! A server that refuses the upgrade (401, 403, 503...) often explains why in the body of its
//! answer. [`BodyDecoder`] takes the response head and then the bytes that follow it, in
//! pieces of any size, and keeps the start of the body: framed by `Content-Length`, by chunked
//! transfer coding, or running until the server closes, never more than a cap. It only
//! decodes; reading, waiting and giving up are the caller's.
//!
//! ```
//! use ferrosocket_proto::BodyDecoder;
//! use http::Response;
//!
//! let resp = Response::builder()
//!     .status(401)
//!     .header("transfer-encoding", "chunked")
//!     .body(())
//!     .unwrap();
//! let mut body = BodyDecoder::new(&resp, 1024);
//! body.feed(b"6\r\nlog i");
//! assert!(!body.is_done());
//! body.feed(b"n\r\n0\r\n\r\n");
//! assert!(body.is_done());
//! assert_eq!(&body.into_body()[..], b"log in");
//! ```

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Response, StatusCode};

use super::header_has_token;

/// The most of a refused handshake's body worth keeping by default: 64 KiB (an error page
/// explaining a 401 or a 403 is rarely longer than this).
pub const DEFAULT_BODY_CAP: usize = 64 << 10;

/// Room allowed for chunk-size lines on top of the cap before a chunked body stops being read.
const CHUNK_OVERHEAD: usize = 4096;

/// Decodes the start of a response body, fed in pieces of any size.
///
/// Framing follows the head: no body for 1xx, 204 and 304; chunked when `Transfer-Encoding`
/// names `chunked`; else `Content-Length` bytes; else everything until the server closes.
/// At most `cap` bytes of body are kept. Malformed chunked input ends the decoding (what was
/// decoded so far is kept); the decoder then waits for the caller to give up, as it does for
/// a body that never completes.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    cap: usize,
    /// Raw input bytes after which reading stops, whatever they held.
    want: usize,
    /// Raw input bytes fed so far.
    seen: usize,
    body: BytesMut,
    framing: Framing,
}

#[derive(Debug, Clone)]
enum Framing {
    /// The status has no body.
    Empty,
    /// The first `want` raw bytes are the body (`Content-Length`, or until close).
    Raw,
    /// Chunked transfer coding.
    Chunked(Chunked),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunked {
    /// Reading a chunk-size line (the bytes so far, up to and including a final CR).
    Size(Vec<u8>),
    /// Inside a chunk: this many data bytes to go.
    Data(usize),
    /// After a chunk's data: this many bytes of its line end to skip.
    Skip(usize),
    /// The last chunk was seen.
    Done,
    /// The cap is reached or the input is malformed: nothing more is decoded.
    Stopped,
}

impl BodyDecoder {
    /// A decoder for the body that follows `resp`'s head, keeping at most `cap` bytes.
    pub fn new(resp: &Response<()>, cap: usize) -> Self {
        let status = resp.status();
        let empty = status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let chunked = header_has_token(resp.headers(), TRANSFER_ENCODING, "chunked");
        let length = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        let (framing, want) = if empty {
            (Framing::Empty, 0)
        } else if chunked {
            (
                Framing::Chunked(Chunked::Size(Vec::new())),
                cap.saturating_add(CHUNK_OVERHEAD),
            )
        } else {
            (Framing::Raw, length.map_or(cap, |n| n.min(cap)))
        };
        Self {
            cap,
            want,
            seen: 0,
            body: BytesMut::new(),
            framing,
        }
    }

    /// Takes the next bytes of the input. Bytes past the end of the body are ignored.
    pub fn feed(&mut self, input: &[u8]) {
        if self.is_done() {
            return;
        }
        let room = self.want.saturating_sub(self.seen);
        let input = input.get(..room.min(input.len())).unwrap_or_default();
        self.seen += input.len();
        match &mut self.framing {
            Framing::Empty => {}
            Framing::Raw => self.body.extend_from_slice(input),
            Framing::Chunked(state) => {
                let mut rest = input;
                while !rest.is_empty() {
                    rest = step(state, rest, &mut self.body, self.cap);
                }
            }
        }
    }

    /// Whether reading more is pointless: the body is complete, or as much input as is worth
    /// reading arrived.
    pub fn is_done(&self) -> bool {
        match &self.framing {
            Framing::Empty => true,
            Framing::Chunked(Chunked::Done) => true,
            _ => self.seen >= self.want,
        }
    }

    /// The body decoded so far, at most the cap.
    pub fn into_body(self) -> Bytes {
        let mut body = self.body;
        body.truncate(self.cap);
        body.freeze()
    }
}

/// Advances the chunked decoder over the start of `input`; returns the rest.
fn step<'a>(state: &mut Chunked, input: &'a [u8], body: &mut BytesMut, cap: usize) -> &'a [u8] {
    match state {
        Chunked::Size(line) => {
            let mut used = 0;
            for &b in input {
                used += 1;
                line.push(b);
                if line.ends_with(b"\r\n") {
                    *state = match chunk_size(line.get(..line.len() - 2).unwrap_or_default()) {
                        Some(0) => Chunked::Done,
                        Some(n) => Chunked::Data(n),
                        None => Chunked::Stopped,
                    };
                    break;
                }
            }
            input.get(used..).unwrap_or_default()
        }
        Chunked::Data(left) => {
            let take = (*left).min(input.len());
            body.extend_from_slice(input.get(..take).unwrap_or_default());
            *left -= take;
            if body.len() >= cap {
                *state = Chunked::Stopped;
            } else if *left == 0 {
                *state = Chunked::Skip(2);
            }
            input.get(take..).unwrap_or_default()
        }
        Chunked::Skip(left) => {
            let take = (*left).min(input.len());
            *left -= take;
            if *left == 0 {
                *state = Chunked::Size(Vec::new());
            }
            input.get(take..).unwrap_or_default()
        }
        Chunked::Done | Chunked::Stopped => &[],
    }
}

/// The size on a chunk-size line (hexadecimal, extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Option<usize> {
    let text = line.split(|b| *b == b';').next().unwrap_or_default();
    let text = std::str::from_utf8(text).ok()?;
    usize::from_str_radix(text.trim(), 16).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn head(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut b = Response::builder().status(status);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    fn chunked() -> Response<()> {
        head(401, &[("transfer-encoding", "chunked")])
    }

    /// Feeds `input` whole, then split at every offset, and checks both give `(body, done)`.
    fn same_at_every_split(resp: &Response<()>, cap: usize, input: &[u8], body: &[u8], done: bool) {
        let mut whole = BodyDecoder::new(resp, cap);
        whole.feed(input);
        assert_eq!(whole.is_done(), done, "whole input");
        assert_eq!(&whole.into_body()[..], body, "whole input");
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            let mut dec = BodyDecoder::new(resp, cap);
            dec.feed(a);
            dec.feed(b);
            assert_eq!(dec.is_done(), done, "split at {cut}");
            assert_eq!(&dec.into_body()[..], body, "split at {cut}");
        }
        let mut dec = BodyDecoder::new(resp, cap);
        for b in input {
            dec.feed(std::slice::from_ref(b));
        }
        assert_eq!(dec.is_done(), done, "byte by byte");
        assert_eq!(&dec.into_body()[..], body, "byte by byte");
    }

    /// The whole-buffer decoder the shell used before this module: the reference.
    fn decode_chunked_whole(raw: &[u8], cap: usize) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut rest = raw;
        loop {
            let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
                return (out, false);
            };
            let Some(size) = chunk_size(rest.get(..line_end).unwrap_or_default()) else {
                return (out, false);
            };
            if size == 0 {
                return (out, true);
            }
            let data_start = line_end + 2;
            let take = size.min(rest.len().saturating_sub(data_start));
            out.extend_from_slice(rest.get(data_start..data_start + take).unwrap_or_default());
            if take < size || out.len() >= cap {
                return (out, false);
            }
            rest = rest.get(data_start + size + 2..).unwrap_or_default();
        }
    }

    #[test]
    fn chunked_bodies() {
        same_at_every_split(
            &chunked(),
            1024,
            b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
            b"hello world",
            true,
        );
        same_at_every_split(&chunked(), 1024, b"5\r\nhel", b"hel", false);
        same_at_every_split(&chunked(), 1024, b"zz\r\n5\r\nhello\r\n", b"", false);
        same_at_every_split(&chunked(), 1024, b"", b"", false);
        same_at_every_split(&chunked(), 1024, b"A\r\n0123456789\r\n0\r\n", b"0123456789", true);
    }

    #[test]
    fn chunked_body_stops_at_the_cap_and_never_completes() {
        same_at_every_split(
            &chunked(),
            4,
            b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n",
            b"abcd",
            false,
        );
        // Reading stops once the cap and the allowance for size lines have arrived.
        let mut dec = BodyDecoder::new(&chunked(), 4);
        dec.feed(&[b'0'; CHUNK_OVERHEAD + 3]);
        assert!(!dec.is_done());
        dec.feed(b"0");
        assert!(dec.is_done());
    }

    #[test]
    fn content_length_bodies() {
        let resp = head(403, &[("content-length", "5")]);
        same_at_every_split(&resp, 1024, b"hello, and more", b"hello", true);
        same_at_every_split(&resp, 1024, b"hel", b"hel", false);
        same_at_every_split(&resp, 3, b"hello", b"hel", true);
        let resp = head(403, &[("content-length", " 0 ")]);
        same_at_every_split(&resp, 1024, b"ignored", b"", true);
    }

    #[test]
    fn bodies_until_close_stop_at_the_cap() {
        let resp = head(500, &[("content-length", "nonsense")]);
        same_at_every_split(&resp, 1024, b"all of it", b"all of it", false);
        same_at_every_split(&resp, 4, b"all of it", b"all ", true);
    }

    #[test]
    fn chunked_wins_over_content_length() {
        let resp = head(
            401,
            &[("transfer-encoding", "gzip, chunked"), ("content-length", "2")],
        );
        same_at_every_split(&resp, 1024, b"3\r\nabc\r\n0\r\n", b"abc", true);
    }

    #[test]
    fn statuses_without_a_body() {
        for status in [100, 204, 304] {
            let resp = head(status, &[("content-length", "5")]);
            same_at_every_split(&resp, 1024, b"hello", b"", true);
        }
    }

    /// A chunked encoding of `data` cut into pieces of the given sizes.
    fn encode_chunked(data: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = data;
        for &s in sizes {
            let s = s.min(rest.len());
            if s == 0 {
                continue;
            }
            let (chunk, tail) = rest.split_at(s);
            out.extend_from_slice(format!("{s:x};ext=1\r\n").as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
            rest = tail;
        }
        if !rest.is_empty() {
            out.extend_from_slice(format!("{:X}\r\n", rest.len()).as_bytes());
            out.extend_from_slice(rest);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
        out
    }

    proptest! {
        #[test]
        fn prop_chunked_round_trip_in_any_pieces(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            sizes in proptest::collection::vec(1usize..80, 0..8),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
        ) {
            let wire = encode_chunked(&data, &sizes);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            points.push(wire.len());
            points.sort_unstable();
            let mut dec = BodyDecoder::new(&chunked(), 1024);
            let mut fed = 0;
            for p in points {
                dec.feed(wire.get(fed..p).unwrap_or_default());
                fed = p;
            }
            prop_assert!(dec.is_done());
            prop_assert_eq!(&dec.into_body()[..], &data[..]);
        }

        #[test]
        fn prop_chunked_matches_the_whole_buffer_decoder(
            wire in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'0'), Just(b'3'), Just(b';'), Just(b'a'), any::<u8>()],
                0..200,
            ),
            cap in 1usize..64,
            cut in any::<proptest::sample::Index>(),
        ) {
            let (want, complete) = decode_chunked_whole(&wire, cap);
            let (a, b) = wire.split_at(cut.index(wire.len() + 1));
            let mut dec = BodyDecoder::new(&chunked(), cap);
            dec.feed(a);
            dec.feed(b);
            prop_assert_eq!(dec.is_done(), complete);
            let mut want = want;
            want.truncate(cap);
            prop_assert_eq!(&dec.into_body()[..], &want[..]);
        }
    }
}
