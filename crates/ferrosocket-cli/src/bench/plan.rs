//! The load plan: what every connection sends, checked once and built once per run.
//!
//! The K frames a connection keeps in flight are built and masked once per run (one fixed
//! mask key: fine for a load generator, never for a real client) and shared by every
//! connection.

use super::args::BenchArgs;
use ferrosocket_proto::apply_mask;
use ferrosocket_proto::{DeflateConfig, DeflateParams, SharedCompression};
use ferrosocket_proto::{FrameHeader, MAX_HEADER_LEN, OpCode};

/// A checked run configuration.
pub(super) struct Plan {
    pub(super) connections: usize,
    pub(super) size: usize,
    pub(super) in_flight: usize,
    pub(super) text: bool,
    pub(super) verify: bool,
    pub(super) raw_echo: bool,
    pub(super) compress: bool,
}

impl Plan {
    /// The plan for checked arguments.
    pub(super) fn new(args: &BenchArgs) -> Self {
        Self {
            connections: args.connections,
            size: args.size,
            in_flight: args.in_flight,
            text: args.text,
            verify: args.verify,
            raw_echo: args.raw_echo,
            compress: args.compress,
        }
    }
}

/// The K frames of every connection, built once.
pub(super) struct Frames {
    /// K frames back to back, masked, ready for the wire.
    pub(super) wire: Vec<u8>,
    /// The length of each frame (all frames have the same length).
    pub(super) frame_len: usize,
    /// Where the payload starts in a frame.
    pub(super) header_len: usize,
    /// K unmasked payloads back to back (what a WebSocket echo must send back).
    pub(super) plain: Vec<u8>,
    /// A masked close frame (1000), sent when a connection ends normally.
    pub(super) close: Vec<u8>,
}

/// The payload of slot `slot`: text-like words for text (and for compression), a byte
/// pattern otherwise. Slots differ so that `--verify` also catches reordered echoes.
pub(super) fn payload(size: usize, slot: usize, text_like: bool) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "socket ", "frame ", "the ", "echo ", "message ", "of ", "server ", "client ", "mask ", "bytes ",
        "and ", "a ", "latency ", "to ", "ping ", "close ",
    ];
    let mut out = Vec::with_capacity(size);
    if text_like {
        let mut x = (slot as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        while out.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(WORDS[(x % 16) as usize].as_bytes());
        }
        out.truncate(size);
    } else {
        out.extend((0..size).map(|i| (i as u64 * 31 + slot as u64 * 101 + 7) as u8));
    }
    out
}

/// A mask key from the OS (a fixed one if that fails).
pub(super) fn mask_key() -> [u8; 4] {
    let mut key = [0u8; 4];
    if getrandom::fill(&mut key).is_err() {
        key = [0x37, 0xfa, 0x21, 0x3d];
    }
    key
}

/// Builds the K frames (compressed with the agreed parameters, if any) and the close frame.
pub(super) fn build_frames(plan: &Plan, deflate: Option<&DeflateParams>) -> Result<Frames, String> {
    let key = mask_key();
    let opcode = if plan.text { OpCode::Text } else { OpCode::Binary };
    let k = plan.in_flight;
    // With compression every slot carries the same payload, so that every frame has the
    // same length.
    let slots: Vec<Vec<u8>> = (0..k)
        .map(|s| {
            let slot = if plan.compress { 0 } else { s };
            payload(plan.size, slot, plan.text || plan.compress)
        })
        .collect();
    let mut wire = Vec::new();
    let mut frame_len = 0;
    let mut header_len = 0;
    for p in &slots {
        let (body, rsv1) = match deflate {
            Some(params) => {
                let shared = SharedCompression {
                    window_bits: params.client_max_window_bits,
                    level: DeflateConfig::default().level,
                    threshold: 0,
                };
                let body = shared.compress(p).ok_or("compressing the payload failed")?;
                (body, true)
            }
            None => (p.clone(), false),
        };
        let mut h = FrameHeader::new(opcode, true, body.len() as u64);
        h.rsv1 = rsv1;
        h.mask = Some(key);
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        header_len = h.encode(&mut hbuf);
        let start = wire.len();
        wire.extend_from_slice(&hbuf[..header_len]);
        wire.extend_from_slice(&body);
        apply_mask(&mut wire[start + header_len..], key, 0);
        frame_len = wire.len() - start;
    }
    let mut close = Vec::with_capacity(8);
    let mut h = FrameHeader::new(OpCode::Close, true, 2);
    h.mask = Some(key);
    let mut hbuf = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut hbuf);
    close.extend_from_slice(&hbuf[..n]);
    close.extend_from_slice(&1000u16.to_be_bytes());
    apply_mask(&mut close[n..], key, 0);
    Ok(Frames {
        wire,
        frame_len,
        header_len,
        plain: slots.concat(),
        close,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn payload_slots_differ_and_text_is_ascii() {
        let a = payload(100, 0, true);
        let b = payload(100, 1, true);
        assert_eq!(a.len(), 100);
        assert_ne!(a, b);
        assert!(a.is_ascii());
        assert_ne!(payload(16, 0, false), payload(16, 1, false));
    }

    #[test]
    fn frames_decode_back_to_their_payloads() {
        for size in [0, 5, 125, 126, 70_000] {
            let plan = Plan {
                connections: 1,
                size,
                in_flight: 3,
                text: false,
                verify: true,
                raw_echo: false,
                compress: false,
            };
            let f = build_frames(&plan, None).unwrap();
            assert_eq!(f.wire.len(), 3 * f.frame_len);
            for slot in 0..3 {
                let frame = &f.wire[slot * f.frame_len..(slot + 1) * f.frame_len];
                let (h, n) = FrameHeader::decode(frame).unwrap().unwrap();
                assert_eq!((h.payload_len, n), (size as u64, f.header_len));
                let mut p = frame[n..].to_vec();
                apply_mask(&mut p, h.mask.unwrap(), 0);
                assert_eq!(p, f.plain[slot * size..(slot + 1) * size]);
            }
        }
    }
}
