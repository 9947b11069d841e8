//! One subscriber: a raw upgraded `TcpStream` whose deliveries are parsed in place.
//!
//! Lean by design, since 10,000 of them share the cores with the servers: a subscriber holds
//! its stream, a small tail buffer (empty between whole frames) and four counters. Reads go
//! into one scratch buffer per thread, borrowed only between two awaits; frame headers are
//! decoded by the core ([`FrameHeader::decode`]), payloads are read in place, never copied.
//! Pings are answered (a chat node may keep connections alive); a close ends the subscriber.

use super::{PROBE, Shared, now_ns};
use ferrosocket_proto::{FrameHeader, MAX_HEADER_LEN, OpCode};
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The scratch buffer each thread reads into.
const SCRATCH: usize = 64 << 10;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// One subscriber: its stream and its frame reader.
pub(super) struct Sub {
    stream: TcpStream,
    reader: Reader,
}

/// A subscriber's reading state, apart from the socket (so tests can feed it bytes).
#[derive(Default)]
pub(super) struct Reader {
    /// The start of a frame that has not fully arrived.
    tail: Vec<u8>,
    /// The next sequence number expected (deliveries come in publication order).
    next: u64,
    probed: bool,
}

/// What a batch of frames asked for.
#[derive(Default, Debug)]
pub(super) struct Parsed {
    /// Pong frames to write back.
    pub(super) pongs: Vec<u8>,
    /// The server closed (its close code, if any).
    pub(super) closed: Option<u16>,
    /// A frame this reader does not take (fragmented, reserved opcode).
    pub(super) bad: Option<String>,
}

impl Sub {
    pub(super) fn new(stream: TcpStream, leftover: Vec<u8>) -> Self {
        Self {
            stream,
            reader: Reader {
                tail: leftover,
                ..Reader::default()
            },
        }
    }

    /// Reads deliveries until every message arrived; the caller aborts it at the deadline.
    pub(super) async fn run(mut self, shared: std::sync::Arc<Shared>) -> Result<(), String> {
        if !self.reader.tail.is_empty() {
            // Bytes that came with the 101: run them through the parser first.
            let tail = std::mem::take(&mut self.reader.tail);
            let p = self.reader.parse(&tail, &shared, now_ns());
            self.after(p).await?;
        }
        loop {
            if self.reader.next >= shared.total.load(Ordering::Relaxed) {
                shared.finished.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            self.stream
                .readable()
                .await
                .map_err(|e| format!("waiting for input: {e}"))?;
            let p = SCRATCH_BUF.with(|cell| {
                let mut scratch = cell.borrow_mut();
                let r = &mut self.reader;
                let held = r.tail.len();
                if scratch.len() < held + SCRATCH {
                    scratch.resize(held + SCRATCH, 0);
                }
                scratch[..held].copy_from_slice(&r.tail);
                r.tail.clear();
                match self.stream.try_read(&mut scratch[held..]) {
                    Ok(0) => Err("the server closed the connection".to_string()),
                    Ok(n) => Ok(Some(r.parse(&scratch[..held + n], &shared, now_ns()))),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        r.tail.extend_from_slice(&scratch[..held]);
                        Ok(None)
                    }
                    Err(e) => Err(format!("reading: {e}")),
                }
            })?;
            if let Some(p) = p {
                self.after(p).await?;
            }
        }
    }

    /// Writes pongs, and turns a close or a bad frame into this subscriber's error.
    async fn after(&mut self, p: Parsed) -> Result<(), String> {
        if !p.pongs.is_empty() {
            self.stream
                .write_all(&p.pongs)
                .await
                .map_err(|e| format!("writing a pong: {e}"))?;
        }
        if let Some(bad) = p.bad {
            return Err(bad);
        }
        if let Some(code) = p.closed {
            return Err(format!("the server closed the connection with {code}"));
        }
        Ok(())
    }
}

impl Reader {
    /// Takes every whole frame of `buf` (received at `now`, ns), keeps the rest in
    /// `self.tail`, and adds what it found to `shared`.
    pub(super) fn parse(&mut self, buf: &[u8], shared: &Shared, now: u64) -> Parsed {
        let mut out = Parsed::default();
        let mut pos = 0;
        let mut lat = Vec::new();
        let (mut unique, mut dups) = (0u64, 0u64);
        while pos < buf.len() {
            let (h, hlen) = match FrameHeader::decode(&buf[pos..]) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => {
                    out.bad = Some(format!("a bad frame header from the server: {e}"));
                    break;
                }
            };
            let Ok(len) = usize::try_from(h.payload_len) else {
                out.bad = Some("a frame too large for this machine".into());
                break;
            };
            if buf.len() - pos - hlen < len {
                break;
            }
            let payload = &buf[pos + hlen..pos + hlen + len];
            pos += hlen + len;
            match OpCode::from_u8(h.opcode) {
                Some(OpCode::Binary | OpCode::Text) if h.fin && len >= 16 => {
                    let (seq, sent) = fields(payload);
                    if seq == PROBE {
                        if !self.probed {
                            self.probed = true;
                            shared.ready.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if seq < self.next {
                        dups += 1;
                    } else {
                        self.next = seq + 1;
                        unique += 1;
                        lat.push(now.saturating_sub(sent) / 1_000);
                    }
                }
                Some(OpCode::Ping) => {
                    let mut head = FrameHeader::new(OpCode::Pong, true, len as u64);
                    head.mask = Some([0; 4]);
                    let mut hb = [0u8; MAX_HEADER_LEN];
                    let n = head.encode(&mut hb);
                    out.pongs.extend_from_slice(&hb[..n]);
                    out.pongs.extend_from_slice(payload);
                }
                Some(OpCode::Pong) => {}
                Some(OpCode::Close) => {
                    out.closed = Some(
                        payload
                            .get(..2)
                            .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]])),
                    );
                    break;
                }
                _ => {
                    out.bad = Some(format!(
                        "an unexpected frame (opcode {}, fin {}, {len} bytes): deliveries must be single frames of at least 16 bytes",
                        h.opcode, h.fin
                    ));
                    break;
                }
            }
        }
        if out.bad.is_none() && out.closed.is_none() {
            self.tail.extend_from_slice(&buf[pos..]);
        }
        if unique > 0 || dups > 0 {
            shared.delivered.fetch_add(unique, Ordering::Relaxed);
            shared.duplicates.fetch_add(dups, Ordering::Relaxed);
            shared.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
            if let Ok(mut h) = shared.histogram.lock() {
                for us in lat {
                    let _ = h.record(us.max(1));
                }
            }
        }
        out
    }
}

/// The sequence number and send time (ns) at the head of a payload of at least 16 bytes.
pub(super) fn fields(payload: &[u8]) -> (u64, u64) {
    let mut seq = [0u8; 8];
    let mut sent = [0u8; 8];
    seq.copy_from_slice(&payload[..8]);
    sent.copy_from_slice(&payload[8..16]);
    (u64::from_le_bytes(seq), u64::from_le_bytes(sent))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hdrhistogram::Histogram;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU64;

    fn shared() -> Shared {
        Shared {
            total: AtomicU64::new(u64::MAX),
            ready: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            last_delivery_ns: AtomicU64::new(0),
            histogram: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap()),
        }
    }

    /// An unmasked server frame.
    fn frame(op: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut hb = [0u8; MAX_HEADER_LEN];
        let n = FrameHeader::new(op, fin, payload.len() as u64).encode(&mut hb);
        let mut out = hb[..n].to_vec();
        out.extend_from_slice(payload);
        out
    }

    /// A delivery: sequence number, send time (ns), padding to 32 bytes.
    fn delivery(seq: u64, sent_ns: u64) -> Vec<u8> {
        let mut p = vec![0u8; 32];
        p[..8].copy_from_slice(&seq.to_le_bytes());
        p[8..16].copy_from_slice(&sent_ns.to_le_bytes());
        frame(OpCode::Binary, true, &p)
    }

    #[test]
    fn a_gap_is_not_delivered_and_a_repeat_or_late_message_is_a_duplicate() {
        let (sh, mut r) = (shared(), Reader::default());
        let mut buf = Vec::new();
        for seq in [0, 1, 3, 3, 2, 4] {
            buf.extend(delivery(seq, 1_000_000));
        }
        let p = r.parse(&buf, &sh, 6_000_000);
        assert!(p.bad.is_none() && p.closed.is_none() && p.pongs.is_empty());
        // 0, 1, 3, 4 are new (2 was skipped, so it is counted missing by the report).
        assert_eq!(sh.delivered.load(Ordering::Relaxed), 4);
        assert_eq!(sh.duplicates.load(Ordering::Relaxed), 2);
        assert_eq!(r.next, 5);
        let h = sh.histogram.lock().unwrap();
        assert_eq!(h.len(), 4);
        // (6 ms - 1 ms) in µs, at the histogram's 3 significant digits.
        assert!(h.equivalent(h.max(), 5_000), "{}", h.max());
        assert_eq!(sh.last_delivery_ns.load(Ordering::Relaxed), 6_000_000);
    }

    #[test]
    fn probes_mark_the_subscriber_ready_once_and_are_not_deliveries() {
        let (sh, mut r) = (shared(), Reader::default());
        let mut buf = delivery(PROBE, 1);
        buf.extend(delivery(PROBE, 2));
        r.parse(&buf, &sh, 10);
        assert_eq!(sh.ready.load(Ordering::Relaxed), 1);
        assert_eq!(sh.delivered.load(Ordering::Relaxed), 0);
        assert_eq!(r.next, 0);
    }

    #[test]
    fn a_frame_split_across_reads_is_kept_until_whole() {
        let (sh, mut r) = (shared(), Reader::default());
        let f = delivery(0, 1);
        r.parse(&f[..5], &sh, 10);
        assert_eq!(r.tail, f[..5]);
        assert_eq!(sh.delivered.load(Ordering::Relaxed), 0);
        let mut rest = std::mem::take(&mut r.tail);
        rest.extend_from_slice(&f[5..]);
        r.parse(&rest, &sh, 10);
        assert_eq!(sh.delivered.load(Ordering::Relaxed), 1);
        assert!(r.tail.is_empty());
    }

    #[test]
    fn a_ping_gets_a_masked_pong_and_a_close_ends_the_subscriber() {
        let (sh, mut r) = (shared(), Reader::default());
        let mut buf = frame(OpCode::Ping, true, b"hi");
        buf.extend(frame(OpCode::Close, true, &1001u16.to_be_bytes()));
        let p = r.parse(&buf, &sh, 10);
        // FIN + pong, MASK + length 2, a zero key, the payload as is (masked with zeros).
        assert_eq!(p.pongs, [0x8A, 0x82, 0, 0, 0, 0, b'h', b'i']);
        assert_eq!(p.closed, Some(1001));
    }

    #[test]
    fn fragments_and_short_deliveries_are_refused_with_a_reason() {
        for f in [
            frame(OpCode::Binary, false, &[0; 16]),
            frame(OpCode::Text, true, b"short"),
        ] {
            let (sh, mut r) = (shared(), Reader::default());
            let p = r.parse(&f, &sh, 10);
            assert!(
                p.bad
                    .unwrap()
                    .contains("deliveries must be single frames of at least 16 bytes")
            );
        }
    }
}
