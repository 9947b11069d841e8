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

/// One subscriber's state.
pub(super) struct Sub {
    stream: TcpStream,
    /// The start of a frame that has not fully arrived.
    tail: Vec<u8>,
    /// The next sequence number expected (deliveries come in publication order).
    next: u64,
    probed: bool,
}

/// What a batch of frames asked for.
#[derive(Default)]
struct Parsed {
    /// Pong frames to write back.
    pongs: Vec<u8>,
    /// The server closed (its close code, if any).
    closed: Option<u16>,
    /// A frame this reader does not take (fragmented, reserved opcode).
    bad: Option<String>,
}

impl Sub {
    pub(super) fn new(stream: TcpStream, leftover: Vec<u8>) -> Self {
        Self {
            stream,
            tail: leftover,
            next: 0,
            probed: false,
        }
    }

    /// Reads deliveries until every message arrived; the caller aborts it at the deadline.
    pub(super) async fn run(mut self, shared: std::sync::Arc<Shared>) -> Result<(), String> {
        if !self.tail.is_empty() {
            // Bytes that came with the 101: run them through the parser first.
            let tail = std::mem::take(&mut self.tail);
            let p = self.parse(&tail, &shared);
            self.after(p).await?;
        }
        loop {
            if self.next >= shared.total.load(Ordering::Relaxed) {
                shared.finished.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            self.stream
                .readable()
                .await
                .map_err(|e| format!("waiting for input: {e}"))?;
            let p = SCRATCH_BUF.with(|cell| {
                let mut scratch = cell.borrow_mut();
                let held = self.tail.len();
                if scratch.len() < held + SCRATCH {
                    scratch.resize(held + SCRATCH, 0);
                }
                scratch[..held].copy_from_slice(&self.tail);
                self.tail.clear();
                match self.stream.try_read(&mut scratch[held..]) {
                    Ok(0) => Err("the server closed the connection".to_string()),
                    Ok(n) => Ok(Some(self.parse(&scratch[..held + n], &shared))),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        self.tail.extend_from_slice(&scratch[..held]);
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

    /// Takes every whole frame of `buf`, keeps the rest in `self.tail`.
    fn parse(&mut self, buf: &[u8], shared: &Shared) -> Parsed {
        let mut out = Parsed::default();
        let mut pos = 0;
        let now = now_ns();
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
