//! The entry point of the `h3_frames` fuzz target (`fuzz/fuzz_targets/h3_frames.rs`): the
//! frame decoder and the QPACK and Huffman decoders on arbitrary bytes.

use super::frame::{Frame, FrameDecoder, Settings};
use super::{huffman, qpack};

/// Feeds `data` to the HTTP/3 frame decoder in pieces (the first byte picks their size),
/// decodes every HEADERS payload as a QPACK field section and the raw bytes as a Huffman
/// string, and checks the invariants: no panic; a decoded field section stays within the
/// size cap and re-encodes to a section that decodes to the same fields; decoded SETTINGS
/// re-encode to the same values; a decoded Huffman string re-encodes and decodes back.
///
/// Not an API: public only for the fuzz crate, which builds outside this workspace.
///
/// # Panics
/// When an invariant is broken: that is the finding.
#[doc(hidden)]
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))] // re-exported only with `fuzzing`
pub fn fuzz_decode(data: &[u8]) {
    const CAP: usize = 4096;
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(first % 16) + 1;
    let mut frames = FrameDecoder::new(CAP as u64);
    'feed: for chunk in rest.chunks(piece) {
        frames.push(chunk);
        loop {
            match frames.next_frame() {
                Ok(Some(Frame::Headers(block))) => {
                    if let Ok(fields) = qpack::decode(&block, CAP) {
                        let size: usize = fields.iter().map(|f| f.name.len() + f.value.len() + 32).sum();
                        assert!(size <= CAP, "field section over the cap");
                        let mut again = Vec::new();
                        qpack::encode(fields.iter().map(|f| (&f.name[..], &f.value[..])), &mut again);
                        let back = qpack::decode(&again, usize::MAX);
                        assert_eq!(back.as_ref(), Ok(&fields), "QPACK round trip");
                    }
                }
                Ok(Some(Frame::Settings(s))) => {
                    let mut out = Vec::new();
                    s.encode_frame(&mut out);
                    let mut d = FrameDecoder::new(CAP as u64);
                    d.push(&out);
                    assert_eq!(
                        d.next_frame(),
                        Ok(Some(Frame::Settings(s))),
                        "SETTINGS round trip"
                    );
                    let _: Settings = s;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    let _ = frames.is_mid_frame();
    let mut plain = Vec::new();
    if huffman::decode(rest, CAP, &mut plain).is_ok() {
        let mut coded = Vec::new();
        huffman::encode(&plain, &mut coded);
        let mut back = Vec::new();
        assert_eq!(huffman::decode(&coded, CAP, &mut back), Ok(()));
        assert_eq!(back, plain, "Huffman round trip");
    }
}

#[cfg(test)]
mod tests {
    /// The committed seeds of the fuzz target (`fuzz/corpus/h3_frames`, made by
    /// `fuzz/seeds.py`) hold every invariant.
    #[test]
    fn seeds_hold_the_invariants() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/h3_frames");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Ok(data) = std::fs::read(entry.path()) {
                super::fuzz_decode(&data);
                n += 1;
            }
        }
        assert!(n >= 6, "the seeds are missing ({n})");
    }
}
