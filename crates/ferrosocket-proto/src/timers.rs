//! The connection's clocks: keepalive, idle timeout, close-handshake timeout and slow-peer
//! deadline, as state driven by a `now` the caller passes in (the core never reads a clock).
//!
//! The contract, as in quinn-proto: after feeding input or queueing commands, and whenever the
//! deadline of [`Connection::poll_timeout`](crate::Connection::poll_timeout) passes, call
//! [`Connection::handle_timeout`](crate::Connection::handle_timeout) with the current time;
//! then arm one timer for the new `poll_timeout()`. Timers that are not configured cost one
//! branch each.

use crate::{CloseCode, Config};
use std::time::{Duration, Instant};

/// Ping a silent peer, and give up on it when nothing at all comes back (dead-peer detection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Send a ping when nothing arrived for this long.
    pub interval: Duration,
    /// After that ping, end the connection (as 1006, abnormal closure) when nothing at all
    /// arrived within this long.
    pub timeout: Duration,
}

impl Keepalive {
    /// The payload of every keepalive ping (a pong answering one carries the same bytes).
    pub const PING_PAYLOAD: &'static [u8] = b"keepalive";

    /// Ping after `interval` of silence; give up `timeout` after the ping.
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        Self { interval, timeout }
    }
}

/// What to do with a peer that does not read what we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowPeerPolicy {
    /// Wait as long as it takes (memory stays bounded anyway: a connection with more than its
    /// maximum write buffer queued stops reading, and writers wait).
    Wait,
    /// When no byte could be written for `after`, fail the connection with `code` (usually
    /// 1008 policy violation or 1013 try again later).
    Close {
        /// How long the output may stall.
        after: Duration,
        /// The close code to send (it may not arrive: the peer is not reading).
        code: CloseCode,
    },
}

impl Default for SlowPeerPolicy {
    /// Close with 1008 after 60 s without progress: a stuck peer must not hold a connection and
    /// its buffers forever.
    fn default() -> Self {
        Self::Close {
            after: Duration::from_secs(60),
            code: CloseCode::POLICY_VIOLATION,
        }
    }
}

/// Which timer ended the connection (reported by
/// [`ReadError::TimedOut`](crate::ReadError::TimedOut)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timer {
    /// Nothing arrived within [`Keepalive::timeout`] of a keepalive ping: the peer is gone.
    Keepalive,
    /// No message went either way for the idle timeout; a close 1001 was queued.
    Idle,
    /// Our close frame was not answered (or, after it, the transport not closed) in time.
    CloseHandshake,
    /// Output made no progress for the slow-peer deadline; the connection failed with the
    /// policy's code.
    SlowPeer,
}

impl std::fmt::Display for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Keepalive => "keepalive: nothing received after a ping",
            Self::Idle => "idle timeout",
            Self::CloseHandshake => "close handshake timed out",
            Self::SlowPeer => "peer too slow to read",
        })
    }
}

/// The running state of the timers. Every instant is one the caller passed in.
#[derive(Debug, Default)]
pub(crate) struct Clocks {
    /// Set by the first `handle_timeout`: timers count from there.
    started: bool,
    /// When input last arrived (keepalive).
    pub(crate) last_input: Option<Instant>,
    /// When the outstanding keepalive ping was queued; cleared by any input.
    pub(crate) ping_sent: Option<Instant>,
    /// When a message last went either way (idle).
    last_message: Option<Instant>,
    /// A message went either way since `last_message` was stamped: stamped at the next
    /// `handle_timeout`, which the driver calls before it waits.
    pub(crate) message_activity: bool,
    /// When the close handshake timer started (our close frame queued).
    close_since: Option<Instant>,
    /// Since when queued output has made no progress.
    pub(crate) stall_since: Option<Instant>,
    /// The timer that ended the connection (sticky).
    pub(crate) expired: Option<Timer>,
    /// The idle timeout was reported by `poll_event` (it is reported once).
    pub(crate) reported: bool,
}

/// What `Clocks::due` decided; the connection carries it out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    Nothing,
    SendPing,
    Expire(Timer),
}

/// The facts about the connection the timers depend on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts {
    /// Data may still flow (no close sent or received, not failed).
    pub(crate) open: bool,
    /// The close timer applies: we queued a close frame and the transport has not ended.
    pub(crate) closing: bool,
    /// Output is queued.
    pub(crate) output_queued: bool,
}

impl Clocks {
    /// Brings the clocks to `now` and says what is due. Called by `Connection::handle_timeout`.
    pub(crate) fn due(&mut self, config: &Config, facts: Facts, now: Instant) -> Due {
        // Once a timer ended the connection only the close-handshake timer still runs: after
        // the idle timeout's close frame it bounds the wait for the peer's answer.
        if self.expired.is_some_and(|t| t != Timer::Idle) {
            return Due::Nothing;
        }
        if !self.started {
            self.started = true;
            self.last_input.get_or_insert(now);
            self.last_message = Some(now);
        }
        if std::mem::take(&mut self.message_activity) {
            self.last_message = Some(now);
        }
        if !facts.output_queued {
            self.stall_since = None;
        }
        if facts.closing {
            let since = *self.close_since.get_or_insert(now);
            if let Some(limit) = config.close_timeout
                && now >= since + limit
            {
                return Due::Expire(Timer::CloseHandshake);
            }
        }
        if let (SlowPeerPolicy::Close { after, .. }, Some(since)) = (config.slow_peer, self.stall_since)
            && now >= since + after
        {
            return Due::Expire(Timer::SlowPeer);
        }
        if !facts.open || self.expired.is_some() {
            return Due::Nothing;
        }
        if let Some(k) = config.keepalive {
            match self.ping_sent {
                Some(sent) if now >= sent + k.timeout => return Due::Expire(Timer::Keepalive),
                Some(_) => {}
                None => {
                    if self.last_input.is_some_and(|t| now >= t + k.interval) {
                        self.ping_sent = Some(now);
                        return Due::SendPing;
                    }
                }
            }
        }
        if let (Some(after), Some(last)) = (config.idle_timeout, self.last_message)
            && now >= last + after
        {
            // The connection queues its close frame now: the close timer starts with it, so
            // that `next` announces it without waiting for another `handle_timeout`.
            self.close_since.get_or_insert(now);
            return Due::Expire(Timer::Idle);
        }
        Due::Nothing
    }

    /// The earliest instant at which `due` would act, given the same facts.
    pub(crate) fn next(&self, config: &Config, facts: Facts) -> Option<Instant> {
        if self.expired.is_some_and(|t| t != Timer::Idle) || !self.started {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if facts.closing {
            consider(self.close_since.zip(config.close_timeout).map(|(s, d)| s + d));
        }
        if let SlowPeerPolicy::Close { after, .. } = config.slow_peer {
            consider(self.stall_since.map(|s| s + after));
        }
        if facts.open && self.expired.is_none() {
            if let Some(k) = config.keepalive {
                consider(match self.ping_sent {
                    Some(sent) => Some(sent + k.timeout),
                    None => self.last_input.map(|t| t + k.interval),
                });
            }
            if let Some(after) = config.idle_timeout {
                consider(self.last_message.map(|t| t + after));
            }
        }
        next
    }
}

#[cfg(test)]
#[path = "timers_tests.rs"]
mod tests;
