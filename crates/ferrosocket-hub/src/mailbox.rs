//! One subscriber's bounded queue of deliveries, and what happens when it is full.

use ferrosocket::{CloseCode, CloseFrame, PreparedMessage};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

/// What the hub does with a message for a subscriber whose queue is full (it reads slower
/// than the topic publishes).
///
/// Whatever the choice, the publisher never waits and the other subscribers are not
/// affected; the hub's counters ([`HubStats`](crate::HubStats)) say how often each
/// happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowConsumer {
    /// Make room by dropping the oldest queued message: the subscriber sees the newest ones
    /// (tickers, dashboards). Counted in `dropped`.
    DropOldest,
    /// Drop the new message: the subscriber sees an unbroken prefix. Counted in `dropped`.
    DropNewest,
    /// End the subscriber's connection with this close code, telling the peer why
    /// ([`CloseCode::POLICY_VIOLATION`] 1008 or [`CloseCode::TRY_AGAIN_LATER`] 1013 are the
    /// usual ones). Counted in `disconnected`.
    Disconnect(CloseCode),
}

impl Default for SlowConsumer {
    /// [`Disconnect`](Self::Disconnect) with 1013 (try again later): no message is lost
    /// silently, and a browser client knows to reconnect.
    fn default() -> Self {
        Self::Disconnect(CloseCode::TRY_AGAIN_LATER)
    }
}

/// What [`Mailbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    DroppedOne,
    Disconnected,
    /// The subscriber was already disconnected or gone: nothing happened.
    Ignored,
}

/// The queue shared by the hub (pushing) and the subscriber (taking).
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Arc<PreparedMessage>>,
    waker: Option<Waker>,
    /// Woken only by a kick: registered by a subscriber that is not taking messages (its
    /// connection is full), so that a kick still reaches it.
    kick_waker: Option<Waker>,
    /// Set once: the subscriber is to be disconnected with this frame.
    kicked: Option<CloseFrame>,
}

/// What the subscriber takes.
pub(crate) enum Taken {
    Message(Arc<PreparedMessage>),
    Kicked(CloseFrame),
    Empty,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves a queue that is still consistent (each
        // operation is one VecDeque call), so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `msg`, applying `policy` when `capacity` messages are already waiting.
    pub(crate) fn push(&self, msg: &Arc<PreparedMessage>, capacity: usize, policy: SlowConsumer) -> Pushed {
        let mut st = self.lock();
        if st.kicked.is_some() {
            return Pushed::Ignored;
        }
        let outcome = if st.queue.len() < capacity {
            st.queue.push_back(msg.clone());
            Pushed::Queued
        } else {
            match policy {
                SlowConsumer::DropOldest => {
                    st.queue.pop_front();
                    st.queue.push_back(msg.clone());
                    Pushed::DroppedOne
                }
                SlowConsumer::DropNewest => return Pushed::DroppedOne,
                SlowConsumer::Disconnect(code) => {
                    drop(st);
                    self.kick(CloseFrame::new(
                        code,
                        format!("too slow: {capacity} messages were waiting"),
                    ));
                    return Pushed::Disconnected;
                }
            }
        };
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        outcome
    }

    /// Disconnects the subscriber with `frame` (hub-initiated), unless it already is.
    pub(crate) fn kick(&self, frame: CloseFrame) -> bool {
        let mut st = self.lock();
        if st.kicked.is_some() {
            return false;
        }
        st.queue.clear();
        st.kicked = Some(frame);
        let wakers = [st.waker.take(), st.kick_waker.take()];
        drop(st);
        for w in wakers.into_iter().flatten() {
            w.wake();
        }
        true
    }

    /// The kick's frame if the subscriber was kicked; otherwise `waker` is woken by a kick.
    pub(crate) fn watch_kick(&self, waker: &Waker) -> Option<CloseFrame> {
        let mut st = self.lock();
        if st.kicked.is_some() {
            return st.kicked.clone();
        }
        match &mut st.kick_waker {
            Some(old) if old.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        None
    }

    /// Takes the next delivery; when there is none, `waker` is woken by the next push.
    pub(crate) fn take(&self, waker: Option<&Waker>) -> Taken {
        let mut st = self.lock();
        if let Some(frame) = &st.kicked {
            return Taken::Kicked(frame.clone());
        }
        match st.queue.pop_front() {
            Some(m) => Taken::Message(m),
            None => {
                if let Some(w) = waker {
                    match &mut st.waker {
                        Some(old) if old.will_wake(w) => {}
                        slot => *slot = Some(w.clone()),
                    }
                }
                Taken::Empty
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub(crate) fn kicked(&self) -> Option<CloseFrame> {
        self.lock().kicked.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosocket::Message;

    fn msg(n: u8) -> Arc<PreparedMessage> {
        Arc::new(PreparedMessage::new(Message::binary(vec![n])))
    }

    fn drain(mb: &Mailbox) -> Vec<u8> {
        let mut out = Vec::new();
        while let Taken::Message(m) = mb.take(None) {
            out.push(m.message().as_bytes()[0]);
        }
        out
    }

    #[test]
    fn drop_oldest_keeps_the_newest() {
        let mb = Mailbox::default();
        let got: Vec<_> = (0..5)
            .map(|n| mb.push(&msg(n), 3, SlowConsumer::DropOldest))
            .collect();
        assert_eq!(got[..3], [Pushed::Queued; 3]);
        assert_eq!(got[3..], [Pushed::DroppedOne; 2]);
        assert_eq!(drain(&mb), [2, 3, 4]);
    }

    #[test]
    fn drop_newest_keeps_the_prefix() {
        let mb = Mailbox::default();
        for n in 0..5 {
            mb.push(&msg(n), 3, SlowConsumer::DropNewest);
        }
        assert_eq!(drain(&mb), [0, 1, 2]);
    }

    #[test]
    fn disconnect_empties_the_queue_and_names_the_code() {
        let mb = Mailbox::default();
        let policy = SlowConsumer::Disconnect(CloseCode::POLICY_VIOLATION);
        for n in 0..3 {
            assert_eq!(mb.push(&msg(n), 3, policy), Pushed::Queued);
        }
        assert_eq!(mb.push(&msg(3), 3, policy), Pushed::Disconnected);
        assert_eq!(mb.push(&msg(4), 3, policy), Pushed::Ignored);
        assert_eq!(mb.len(), 0);
        match mb.take(None) {
            Taken::Kicked(frame) => assert_eq!(frame.code, CloseCode::POLICY_VIOLATION),
            _ => panic!("expected the kick"),
        }
    }
}
