//! The time API of a [`Connection`]: what the driver tells it (input arrived, output blocked,
//! the time now) and when it next needs the clock. The timer rules themselves are in
//! `timers.rs`. A child module of `connection`, so it sees the connection's private state.

use super::*;

impl Connection {
    // ---- time ----------------------------------------------------------------------------

    /// Tells the core that the transport delivered input (bytes or its end) at `now`: any
    /// input is a sign of life for [keepalive](Config::keepalive).
    pub fn note_input(&mut self, now: Instant) {
        self.clocks.last_input = Some(now);
        self.clocks.ping_sent = None;
    }

    /// Tells the core that the transport could not take queued output at `now`: the
    /// [slow-peer](Config::slow_peer) timer runs from the first such moment until output
    /// progresses ([`advance_output`](Self::advance_output) with a non-zero count).
    pub fn note_output_blocked(&mut self, now: Instant) {
        if !self.out.is_empty() {
            self.clocks.stall_since.get_or_insert(now);
        }
    }

    /// Lets the timers act at `now`: queue a keepalive ping, close an idle connection with
    /// 1001, or end the connection when the keepalive, close-handshake or slow-peer timer ran
    /// out (then [`poll_event`](Self::poll_event) returns [`ReadError::TimedOut`]).
    ///
    /// Call it after input and commands, before waiting, and whenever the deadline of
    /// [`poll_timeout`](Self::poll_timeout) passes. Timers start counting at the first call.
    ///
    /// ```
    /// use ferrosocket_proto::{Config, Connection, Keepalive, ReadError, Role, Timer};
    /// use std::time::{Duration, Instant};
    /// let second = Duration::from_secs(1);
    /// let config = Config::default().keepalive(Some(Keepalive::new(10 * second, 5 * second)));
    /// let mut conn = Connection::new(Role::Server, config);
    /// let t0 = Instant::now();
    /// conn.handle_timeout(t0);
    /// assert_eq!(conn.poll_timeout(), Some(t0 + 10 * second));
    /// conn.handle_timeout(t0 + 10 * second); // silence: a ping goes out
    /// assert_eq!(conn.take_output(), [0x89, 9, b'k', b'e', b'e', b'p', b'a', b'l', b'i', b'v', b'e']);
    /// assert_eq!(conn.poll_timeout(), Some(t0 + 15 * second));
    /// conn.handle_timeout(t0 + 15 * second); // still nothing: the peer is gone
    /// assert_eq!(conn.poll_event(), Err(ReadError::TimedOut(Timer::Keepalive)));
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        let facts = self.timer_facts();
        match self.clocks.due(&self.config, facts, now) {
            Due::Nothing => {}
            Due::SendPing => {
                // Silent for a whole keepalive interval: the connection is idle, so let the
                // compressor go (context takeover survives through the codec's history).
                self.shed_idle_memory();
                if self.check_can_send().is_ok()
                    && let Err(e) = self.write_frame(OpCode::Ping, true, crate::Keepalive::PING_PAYLOAD)
                {
                    self.lose_randomness(e);
                }
            }
            Due::Expire(timer) => {
                match timer {
                    Timer::Idle => {
                        let frame = CloseFrame::new(CloseCode::GOING_AWAY, "idle timeout");
                        // Fails only when a close was already sent.
                        let _ = self.send_close(Some(frame));
                    }
                    Timer::SlowPeer => {
                        if let crate::SlowPeerPolicy::Close { code, .. } = self.config.slow_peer {
                            self.fail(code, "peer too slow to read");
                        }
                    }
                    Timer::Keepalive | Timer::CloseHandshake => {
                        self.rbuf = BytesMut::new();
                        self.frame = None;
                        self.assembly = None;
                    }
                }
                self.clocks.expired = Some(timer);
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next needs to run, if any timer is armed.
    /// Valid after a `handle_timeout` call that followed the latest input or command.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clocks.next(&self.config, self.timer_facts())
    }

    /// When the keepalive ping that no input has followed yet was queued: the `now` given to
    /// the [`handle_timeout`](Self::handle_timeout) that queued it (its payload is
    /// [`Keepalive::PING_PAYLOAD`](crate::Keepalive::PING_PAYLOAD)). Any input clears it
    /// ([`note_input`](Self::note_input)), so read it before reporting input to measure the
    /// ping's round trip.
    #[inline]
    pub fn keepalive_ping_sent(&self) -> Option<Instant> {
        self.clocks.ping_sent
    }

    /// The timer that ended the connection, if one did.
    pub fn timed_out(&self) -> Option<Timer> {
        self.clocks.expired
    }

    /// Changes the keepalive settings from now on (see [`Config::keepalive`]).
    pub fn set_keepalive(&mut self, keepalive: Option<crate::Keepalive>) {
        if self.config.keepalive != keepalive {
            Arc::make_mut(&mut self.config).keepalive = keepalive;
        }
        self.clocks.ping_sent = None;
    }

    /// Changes the idle timeout from now on (see [`Config::idle_timeout`]).
    pub fn set_idle_timeout(&mut self, after: Option<std::time::Duration>) {
        if self.config.idle_timeout != after {
            Arc::make_mut(&mut self.config).idle_timeout = after;
        }
        self.clocks.message_activity = true;
    }

    /// Changes the slow-peer policy (see [`Config::slow_peer`]).
    pub fn set_slow_peer_policy(&mut self, policy: crate::SlowPeerPolicy) {
        if self.config.slow_peer != policy {
            Arc::make_mut(&mut self.config).slow_peer = policy;
        }
    }

    /// Changes the close-handshake timeout (see [`Config::close_timeout`]).
    pub fn set_close_timeout(&mut self, timeout: Option<std::time::Duration>) {
        if self.config.close_timeout != timeout {
            Arc::make_mut(&mut self.config).close_timeout = timeout;
        }
    }

    pub(super) fn timer_facts(&self) -> Facts {
        Facts {
            open: self.state() == State::Open,
            closing: self.close_sent.is_some() && !self.eof,
            output_queued: !self.out.is_empty(),
        }
    }
}
