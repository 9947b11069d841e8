//! Phase 2 of a run: the per-connection load loop and the counters all connections share.
//!
//! - the K frames of [`Frames::wire`] leave with one write, and the r frames due after a read
//!   leave with one (vectored) write, straight from the shared buffer;
//! - replies are read into one reusable buffer per connection and checked in place by
//!   [`Replies`]; nothing is allocated per message;
//! - one `Instant::now()` per read: replies that arrive together share a receive time, and
//!   frames written together share a send time; latency (send to echo, per message) goes to
//!   an HDR histogram, locked once per read.

use super::connect::Upgraded;
use super::plan::{Frames, Plan};
use super::reply::Replies;
use hdrhistogram::Histogram;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Counters and the histogram, shared by all connections.
pub(super) struct Shared {
    pub(super) plan: Plan,
    pub(super) frames: Frames,
    /// When latencies start to count (after the warm-up).
    pub(super) measure_start: Instant,
    /// When the measurement ends.
    pub(super) end: Instant,
    /// Messages left to send under `--messages` (`u64::MAX`: unlimited).
    pub(super) budget: AtomicU64,
    /// Measured messages sent.
    pub(super) sent: AtomicU64,
    /// Measured messages echoed.
    pub(super) done: AtomicU64,
    /// Micros after `measure_start` of the last measured echo.
    pub(super) last_done_us: AtomicU64,
    pub(super) histogram: Mutex<Histogram<u64>>,
}

impl Shared {
    /// Takes up to `want` messages from the `--messages` budget.
    pub(super) fn claim(&self, want: u64) -> u64 {
        if want == 0 {
            return 0;
        }
        let mut granted = 0;
        let _ = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                if left == u64::MAX {
                    granted = want;
                    return None;
                }
                granted = want.min(left);
                (granted > 0).then(|| left - granted)
            });
        granted
    }
}

/// How a connection's load ended without an error.
pub(super) enum Outcome {
    /// The deadline passed or the message budget is spent.
    Finished,
}

/// One connection's state. Nothing here is allocated per message.
pub(super) struct Load {
    stream: TcpStream,
    shared: Arc<Shared>,
    replies: Replies,
    /// When each outstanding message was sent, oldest first (a ring of K).
    sent_at: Box<[Instant]>,
    head: usize,
    outstanding: usize,
    /// Next byte of `frames.wire` to write, and how many bytes are queued from there.
    wpos: usize,
    wleft: usize,
    budget_spent: bool,
}

impl Load {
    /// The load of one upgraded connection.
    pub(super) fn new(up: Upgraded, shared: Arc<Shared>) -> Self {
        let replies = Replies::new(
            &shared.plan,
            shared.frames.frame_len,
            up.deflate.as_ref(),
            &up.leftover,
        );
        let now = Instant::now();
        Self {
            stream: up.stream,
            sent_at: vec![now; shared.plan.in_flight].into_boxed_slice(),
            shared,
            replies,
            head: 0,
            outstanding: 0,
            wpos: 0,
            wleft: 0,
            budget_spent: false,
        }
    }

    /// Sends and reads until the deadline or the budget; an error fails this connection.
    pub(super) async fn run(mut self) -> Result<Outcome, String> {
        let shared = self.shared.clone();
        let deadline = tokio::time::sleep_until(shared.end);
        tokio::pin!(deadline);
        let now = Instant::now();
        if self.replies.has_input() {
            self.on_input(now)?;
        }
        self.refill(now);
        loop {
            self.write_some()?;
            if self.budget_spent && self.outstanding == 0 && !self.wants_write() {
                self.send_close();
                return Ok(Outcome::Finished);
            }
            let interest = if self.wants_write() {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let ready = tokio::select! {
                biased;
                r = self.stream.ready(interest) => r.map_err(|e| format!("i/o error: {e}"))?,
                () = &mut deadline => {
                    self.send_close();
                    return Ok(Outcome::Finished);
                }
            };
            if !(ready.is_readable() || ready.is_read_closed()) {
                continue;
            }
            let (n, room) = match self.replies.try_read(&self.stream) {
                Ok((0, _)) => return Err("the server closed the connection".into()),
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(format!("read error: {e}")),
            };
            if n < room {
                // A short read drained the socket: drop the cached readiness now rather than
                // spend a read syscall to learn it (edge-triggered epoll reports new data).
                let _ = self.stream.try_io(Interest::READABLE, || {
                    Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                });
            }
            let now = Instant::now();
            if now >= shared.end {
                self.send_close();
                return Ok(Outcome::Finished);
            }
            self.on_input(now)?;
            self.refill(now);
        }
    }

    fn wants_write(&self) -> bool {
        self.wleft > 0 || self.replies.wants_write()
    }

    /// Writes as much queued output as the socket takes now, in one vectored write.
    fn write_some(&mut self) -> Result<(), String> {
        let frame_len = self.shared.frames.frame_len;
        loop {
            // Control frames go out only between data frames.
            let at_boundary = self.wpos.is_multiple_of(frame_len.max(1));
            let n = if self.replies.wants_write() && at_boundary {
                match self.stream.try_write(self.replies.output()) {
                    Ok(n) => {
                        self.replies.advance_output(n);
                        n
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(format!("write error: {e}")),
                }
            } else if self.wleft > 0 {
                let wire = &self.shared.frames.wire;
                let first_end = (self.wpos + self.wleft).min(wire.len());
                let first = &wire[self.wpos..first_end];
                let second = &wire[..self.wleft - first.len()];
                let slices = [IoSlice::new(first), IoSlice::new(second)];
                let count = if second.is_empty() { 1 } else { 2 };
                match self.stream.try_write_vectored(&slices[..count]) {
                    Ok(n) => {
                        self.wleft -= n;
                        self.wpos = (self.wpos + n) % wire.len().max(1);
                        n
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(format!("write error: {e}")),
                }
            } else {
                return Ok(());
            };
            if n == 0 {
                return Err("write error: the socket took no bytes".into());
            }
        }
    }

    /// Best effort: a close frame if the socket takes it now (the run is over either way).
    fn send_close(&mut self) {
        if !self.wants_write() {
            let _ = self.stream.try_write(&self.shared.frames.close);
        }
    }

    /// Queues as many new messages as the window allows.
    fn refill(&mut self, now: Instant) {
        let k = self.shared.plan.in_flight;
        let want = (k - self.outstanding) as u64;
        if want == 0 || self.budget_spent {
            return;
        }
        let shared = &self.shared;
        let granted = if now < shared.measure_start {
            want
        } else {
            let g = shared.claim(want);
            if g < want {
                self.budget_spent = true;
            }
            if g > 0 {
                shared.sent.fetch_add(g, Ordering::Relaxed);
            }
            g
        };
        for _ in 0..granted {
            let i = (self.head + self.outstanding) % k;
            self.sent_at[i] = now;
            self.outstanding += 1;
        }
        self.wleft += granted as usize * shared.frames.frame_len;
    }

    /// Checks what was read, then accounts for the messages that came back.
    fn on_input(&mut self, now: Instant) -> Result<(), String> {
        let shared = &*self.shared;
        let completed = self.replies.poll(&shared.plan, &shared.frames)?;
        if completed == 0 {
            return Ok(());
        }
        if completed > self.outstanding {
            return Err("the server sent more messages than it was sent".into());
        }
        let k = shared.plan.in_flight;
        let mut measured = 0u64;
        let mut last = None;
        {
            let mut hist = shared.histogram.lock().unwrap_or_else(|p| p.into_inner());
            for _ in 0..completed {
                let sent = self.sent_at[self.head];
                self.head = (self.head + 1) % k;
                self.outstanding -= 1;
                if sent >= shared.measure_start && now <= shared.end {
                    let us = now.saturating_duration_since(sent).as_micros();
                    hist.saturating_record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
                    measured += 1;
                    last = Some(now);
                }
            }
        }
        if measured > 0 {
            shared.done.fetch_add(measured, Ordering::Relaxed);
            if let Some(t) = last {
                let us = t.saturating_duration_since(shared.measure_start).as_micros();
                shared
                    .last_done_us
                    .fetch_max(u64::try_from(us).unwrap_or(u64::MAX), Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
