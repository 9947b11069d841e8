//! The timer test suite: keepalive, idle, close-handshake and slow-peer timers of
//! [`Connection`], driven only by instants built from one `Instant::now()` (nothing sleeps).
//! Every test asserts the exact deadline `poll_timeout()` announces, that nothing happens one
//! nanosecond before it, and what goes on the wire at it (decoded with the crate's test-only wire
//! codec, `test_wire.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::connection::tests::{client_with, events, poll_all, server_with};
use crate::test_wire::{
    KEY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Wire, cf, close_payload, parse_wire, sf, take_wire,
};
use crate::{
    CloseCode, CloseFrame, Config, Connection, Event, Keepalive, Message, ProtocolError, ReadError, Role,
    SendError, SlowPeerPolicy, State, Timer,
};
use proptest::prelude::*;
use std::io::IoSlice;
use std::time::{Duration, Instant};

// ---- helpers ----------------------------------------------------------------------------------

const NS: Duration = Duration::from_nanos(1);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Keepalive: ping after 10 s of silence, give up 5 s after the ping.
fn ka() -> Keepalive {
    Keepalive::new(secs(10), secs(5))
}

fn conn(role: Role, config: Config) -> Connection {
    match role {
        Role::Server => server_with(config),
        Role::Client => client_with(config),
    }
}

/// A frame as the peer of `conn` sends it: masked with [`KEY`] towards a server, unmasked
/// towards a client.
fn peer_frame(conn: &Connection, opcode: u8, payload: &[u8]) -> Vec<u8> {
    match conn.role() {
        Role::Server => cf(opcode, true, payload),
        Role::Client => sf(opcode, true, payload),
    }
}

/// The peer sends one frame; the connection reads it and reports its events (after a close
/// event, `poll_event` says `Closed`).
fn feed(conn: &mut Connection, opcode: u8, payload: &[u8]) -> Vec<Event> {
    let wire = peer_frame(conn, opcode, payload);
    conn.receive(&wire);
    if opcode != OP_CLOSE {
        return events(conn);
    }
    let (events, error) = poll_all(conn);
    assert_eq!(error, Some(ReadError::Closed), "after {events:?}");
    events
}

/// The queued output, without consuming it.
fn pending(conn: &Connection) -> Vec<u8> {
    let mut slices = [IoSlice::new(&[]); 64];
    let n = conn.pending_output(&mut slices);
    slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
}

/// What a driver can observe of the timers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    output: Vec<u8>,
    timed_out: Option<Timer>,
    deadline: Option<Instant>,
    state: State,
}

fn observe(conn: &Connection) -> Observed {
    Observed {
        output: pending(conn),
        timed_out: conn.timed_out(),
        deadline: conn.poll_timeout(),
        state: conn.state(),
    }
}

/// `handle_timeout(at)` changes nothing observable.
fn assert_quiet(conn: &mut Connection, at: Instant) {
    let before = observe(conn);
    conn.handle_timeout(at);
    assert_eq!(observe(conn), before, "handle_timeout acted early");
}

/// Asserts `wire` is exactly one keepalive ping, masked as `role` requires.
fn assert_keepalive_ping(wire: &[Wire], role: Role) {
    assert_eq!(wire.len(), 1, "{wire:?}");
    assert_eq!(wire[0].opcode, OP_PING);
    assert!(wire[0].fin);
    assert_eq!(wire[0].payload, b"keepalive");
    match role {
        Role::Client => assert_eq!(wire[0].mask, Some(KEY)),
        Role::Server => assert_eq!(wire[0].mask, None),
    }
}

/// Asserts `wire` is exactly one close frame with `code` and `reason`.
fn assert_close(wire: &[Wire], code: u16, reason: &str) {
    assert_eq!(wire.len(), 1, "{wire:?}");
    assert_eq!(wire[0].close_code(), Some(code));
    assert_eq!(&wire[0].payload[2..], reason.as_bytes());
}

fn sticky(conn: &mut Connection, expected: &ReadError) {
    for _ in 0..3 {
        assert_eq!(conn.poll_event().as_ref(), Err(expected));
    }
}

// ---- Config -----------------------------------------------------------------------------------

#[test]
fn config_defaults_are_the_documented_values() {
    let c = Config::default();
    assert_eq!(c.keepalive, None);
    assert_eq!(c.idle_timeout, None);
    assert_eq!(c.close_timeout, Some(secs(10)));
    assert_eq!(
        c.slow_peer,
        SlowPeerPolicy::Close {
            after: secs(60),
            code: CloseCode::POLICY_VIOLATION
        }
    );
    assert_eq!(SlowPeerPolicy::default(), c.slow_peer);
    let k = Keepalive::new(secs(3), secs(4));
    assert_eq!((k.interval, k.timeout), (secs(3), secs(4)));
}

#[test]
fn config_setters_set_each_timer_field() {
    let slow = SlowPeerPolicy::Close {
        after: secs(7),
        code: CloseCode::TRY_AGAIN_LATER,
    };
    let c = Config::default()
        .keepalive(Some(ka()))
        .idle_timeout(Some(secs(30)))
        .close_timeout(None)
        .slow_peer(slow);
    assert_eq!(c.keepalive, Some(ka()));
    assert_eq!(c.idle_timeout, Some(secs(30)));
    assert_eq!(c.close_timeout, None);
    assert_eq!(c.slow_peer, slow);
    assert_eq!(
        Config::default().slow_peer(SlowPeerPolicy::Wait).slow_peer,
        SlowPeerPolicy::Wait
    );

    let mut conn = server_with(Config::default());
    conn.set_keepalive(Some(ka()));
    conn.set_idle_timeout(Some(secs(30)));
    conn.set_close_timeout(Some(secs(2)));
    conn.set_slow_peer_policy(SlowPeerPolicy::Wait);
    assert_eq!(conn.config().keepalive, Some(ka()));
    assert_eq!(conn.config().idle_timeout, Some(secs(30)));
    assert_eq!(conn.config().close_timeout, Some(secs(2)));
    assert_eq!(conn.config().slow_peer, SlowPeerPolicy::Wait);
}

#[test]
fn timer_display_names_the_cause() {
    assert_eq!(
        Timer::Keepalive.to_string(),
        "keepalive: nothing received after a ping"
    );
    assert_eq!(Timer::Idle.to_string(), "idle timeout");
    assert_eq!(Timer::CloseHandshake.to_string(), "close handshake timed out");
    assert_eq!(Timer::SlowPeer.to_string(), "peer too slow to read");
}

// ---- no timers ----------------------------------------------------------------------------------

#[test]
fn default_config_arms_no_timer_while_open() {
    for role in [Role::Server, Role::Client] {
        let t0 = Instant::now();
        let mut c = conn(role, Config::default());
        assert_eq!(c.poll_timeout(), None, "before the first handle_timeout");
        c.handle_timeout(t0);
        assert_eq!(c.poll_timeout(), None);
        // Messages both ways and input change nothing: close and slow-peer timers wait for a
        // close or blocked output.
        c.send(Message::text("hi")).unwrap();
        c.take_output();
        assert_eq!(
            feed(&mut c, OP_TEXT, b"yo"),
            [Event::Message(Message::text("yo"))]
        );
        c.note_input(t0 + secs(1));
        c.handle_timeout(t0 + secs(1));
        assert_eq!(c.poll_timeout(), None);
        c.handle_timeout(t0 + secs(1_000_000));
        assert_eq!(c.take_output(), b"");
        assert_eq!((c.state(), c.timed_out()), (State::Open, None));
        assert_eq!(c.poll_event(), Ok(None));
    }
}

#[test]
fn handle_timeout_before_any_timer_starts_nothing_and_poll_timeout_waits_for_it() {
    let t0 = Instant::now();
    let mut c = server_with(
        Config::default()
            .keepalive(Some(ka()))
            .idle_timeout(Some(secs(30))),
    );
    assert_eq!(
        c.poll_timeout(),
        None,
        "timers count from the first handle_timeout"
    );
    c.handle_timeout(t0 + secs(100));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(110)));
    assert_eq!(c.take_output(), b"");
}

// ---- keepalive ----------------------------------------------------------------------------------

#[test]
fn keepalive_first_handle_timeout_arms_the_interval() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default().keepalive(Some(ka())));
    c.handle_timeout(t0);
    assert_eq!(c.poll_timeout(), Some(t0 + secs(10)));
}

#[test]
fn keepalive_input_pushes_the_deadline() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default().keepalive(Some(ka())));
    c.handle_timeout(t0);
    c.note_input(t0 + secs(4));
    c.handle_timeout(t0 + secs(4));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(14)));
    assert_quiet(&mut c, t0 + secs(10));
    assert_quiet(&mut c, t0 + secs(14) - NS);
    // Input noted before the first handle_timeout counts too.
    let mut d = server_with(Config::default().keepalive(Some(ka())));
    d.note_input(t0 + secs(2));
    d.handle_timeout(t0 + secs(3));
    assert_eq!(d.poll_timeout(), Some(t0 + secs(12)));
}

#[test]
fn keepalive_silence_sends_exactly_one_ping_at_the_interval_masked_by_a_client_only() {
    for role in [Role::Server, Role::Client] {
        let t0 = Instant::now();
        let mut c = conn(role, Config::default().keepalive(Some(ka())));
        c.handle_timeout(t0);
        assert_quiet(&mut c, t0 + secs(10) - NS);
        c.handle_timeout(t0 + secs(10));
        assert_keepalive_ping(&take_wire(&mut c), role);
        assert_eq!(c.poll_timeout(), Some(t0 + secs(15)));
        // The same instant again, and later instants before the timeout: no second ping.
        for at in [t0 + secs(10), t0 + secs(10), t0 + secs(12), t0 + secs(15) - NS] {
            assert_quiet(&mut c, at);
        }
        assert_eq!(c.take_output(), b"");
        assert_eq!((c.state(), c.timed_out()), (State::Open, None));
    }
}

#[test]
fn keepalive_input_after_the_ping_cancels_the_timeout_and_rearms_from_that_input() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default().keepalive(Some(ka())));
    c.handle_timeout(t0);
    c.handle_timeout(t0 + secs(10));
    assert_keepalive_ping(&take_wire(&mut c), Role::Server);
    // The pong arrives.
    assert_eq!(
        feed(&mut c, OP_PONG, b"keepalive"),
        [Event::Pong("keepalive".into())]
    );
    c.note_input(t0 + secs(12));
    c.handle_timeout(t0 + secs(12));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(22)));
    assert_quiet(&mut c, t0 + secs(15));
    assert_quiet(&mut c, t0 + secs(22) - NS);
    assert_eq!(c.timed_out(), None);
    c.handle_timeout(t0 + secs(22));
    assert_keepalive_ping(&take_wire(&mut c), Role::Server);
    assert_eq!(c.poll_timeout(), Some(t0 + secs(27)));
}

#[test]
fn keepalive_ping_sent_is_the_instant_it_was_queued_until_input_arrives() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default().keepalive(Some(ka())));
    c.handle_timeout(t0);
    assert_eq!(c.keepalive_ping_sent(), None);
    c.handle_timeout(t0 + secs(10));
    let wire = take_wire(&mut c);
    assert_keepalive_ping(&wire, Role::Server);
    assert_eq!(wire[0].payload, Keepalive::PING_PAYLOAD);
    assert_eq!(c.keepalive_ping_sent(), Some(t0 + secs(10)));
    // Still outstanding at a later instant; any input clears it.
    c.handle_timeout(t0 + secs(12));
    assert_eq!(c.keepalive_ping_sent(), Some(t0 + secs(10)));
    c.note_input(t0 + secs(13));
    assert_eq!(c.keepalive_ping_sent(), None);
}

#[test]
fn keepalive_no_input_within_the_timeout_ends_the_connection_without_a_close_frame() {
    for role in [Role::Server, Role::Client] {
        let t0 = Instant::now();
        let mut c = conn(role, Config::default().keepalive(Some(ka())));
        c.handle_timeout(t0);
        c.handle_timeout(t0 + secs(10));
        assert_keepalive_ping(&take_wire(&mut c), role);
        assert_quiet(&mut c, t0 + secs(15) - NS);
        c.handle_timeout(t0 + secs(15));
        assert_eq!(c.take_output(), b"", "no close frame: the peer is gone");
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.timed_out(), Some(Timer::Keepalive));
        assert_eq!(c.poll_timeout(), None);
        assert!(c.should_close_transport());
        sticky(&mut c, &ReadError::TimedOut(Timer::Keepalive));
        // Nothing more happens, whatever comes.
        c.receive(&peer_frame(&c, OP_TEXT, b"late"));
        c.note_input(t0 + secs(16));
        c.handle_timeout(t0 + secs(100));
        sticky(&mut c, &ReadError::TimedOut(Timer::Keepalive));
        assert_eq!(c.take_output(), b"");
        assert_eq!(c.timed_out(), Some(Timer::Keepalive));
    }
}

#[test]
fn keepalive_expiry_refuses_further_sends() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default().keepalive(Some(ka())));
    c.handle_timeout(t0);
    c.handle_timeout(t0 + secs(10));
    c.handle_timeout(t0 + secs(15));
    c.take_output();
    assert_eq!(c.timed_out(), Some(Timer::Keepalive));
    assert_eq!(c.send(Message::text("x")), Err(SendError::Closed));
    assert_eq!(c.send_ping(b"x"), Err(SendError::Closed));
    assert_eq!(c.send_close(None), Err(SendError::Closed));
    assert_eq!(c.take_output(), b"");
    assert!(c.should_close_transport());
}

#[test]
fn keepalive_input_in_time_never_pings() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default().keepalive(Some(ka())));
    c.handle_timeout(t0);
    for i in 1..=100u32 {
        let at = t0 + secs(9) * i;
        c.note_input(at);
        c.handle_timeout(at);
        assert_eq!(c.poll_timeout(), Some(at + secs(10)));
    }
    assert_eq!(c.take_output(), b"");
}

#[test]
fn keepalive_stops_once_our_close_frame_is_queued() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default().keepalive(Some(ka())).close_timeout(None));
    c.handle_timeout(t0);
    c.send_close(Some(CloseFrame::new(1000, ""))).unwrap();
    c.take_output();
    c.handle_timeout(t0 + secs(1));
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + secs(1000));
    assert_eq!(c.take_output(), b"");
    assert_eq!(c.timed_out(), None);
}

#[test]
fn keepalive_stops_once_the_peers_close_frame_is_received() {
    let t0 = Instant::now();
    let mut c = server_with(
        Config::default()
            .keepalive(Some(ka()))
            .auto_close_reply(false)
            .close_timeout(None),
    );
    c.handle_timeout(t0);
    // A ping is outstanding when the close arrives: its timeout is cancelled too.
    c.handle_timeout(t0 + secs(10));
    c.take_output();
    let ev = feed(&mut c, OP_CLOSE, &close_payload(1000, b"bye"));
    assert_eq!(ev, [Event::Close(Some(CloseFrame::new(1000, "bye")))]);
    c.handle_timeout(t0 + secs(11));
    assert_eq!(c.state(), State::Closing);
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + secs(1000));
    assert_eq!(c.take_output(), b"");
    assert_eq!(c.timed_out(), None);
}

#[test]
fn set_keepalive_none_disarms_it_even_with_a_ping_outstanding() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default().keepalive(Some(ka())));
    c.handle_timeout(t0);
    c.handle_timeout(t0 + secs(10));
    assert_keepalive_ping(&take_wire(&mut c), Role::Server);
    c.set_keepalive(None);
    c.handle_timeout(t0 + secs(10));
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + secs(1000));
    assert_eq!(c.take_output(), b"");
    assert_eq!((c.state(), c.timed_out()), (State::Open, None));
}

#[test]
fn set_keepalive_at_runtime_counts_from_the_last_input() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default());
    c.handle_timeout(t0);
    c.note_input(t0 + secs(3));
    c.set_keepalive(Some(ka()));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(13)));
}

// ---- idle ---------------------------------------------------------------------------------------

fn idle_config() -> Config {
    Config::default().idle_timeout(Some(secs(30)))
}

#[test]
fn idle_deadline_is_armed_by_the_first_handle_timeout() {
    let t0 = Instant::now();
    let mut c = server_with(idle_config());
    c.handle_timeout(t0);
    assert_eq!(c.poll_timeout(), Some(t0 + secs(30)));
    assert_quiet(&mut c, t0 + secs(30) - NS);
}

#[test]
fn idle_a_received_message_resets_it() {
    for role in [Role::Server, Role::Client] {
        let t0 = Instant::now();
        let mut c = conn(role, idle_config());
        c.handle_timeout(t0);
        assert_eq!(
            feed(&mut c, OP_TEXT, b"hello"),
            [Event::Message(Message::text("hello"))]
        );
        c.handle_timeout(t0 + secs(20));
        assert_eq!(c.poll_timeout(), Some(t0 + secs(50)));
        assert_quiet(&mut c, t0 + secs(30));
        assert_quiet(&mut c, t0 + secs(50) - NS);
    }
}

#[test]
fn idle_a_fragmented_message_counts_when_complete() {
    let t0 = Instant::now();
    let mut c = server_with(idle_config());
    c.handle_timeout(t0);
    c.receive(&cf(OP_TEXT, false, b"hel"));
    assert_eq!(events(&mut c), []);
    c.handle_timeout(t0 + secs(10));
    assert_eq!(
        c.poll_timeout(),
        Some(t0 + secs(30)),
        "a fragment is not a message"
    );
    c.receive(&cf(0, true, b"lo"));
    assert_eq!(events(&mut c), [Event::Message(Message::text("hello"))]);
    c.handle_timeout(t0 + secs(20));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(50)));
}

#[test]
fn idle_a_sent_message_resets_it() {
    let t0 = Instant::now();
    let mut c = server_with(idle_config());
    c.handle_timeout(t0);
    c.send(Message::binary(vec![1, 2, 3])).unwrap();
    c.take_output();
    c.handle_timeout(t0 + secs(20));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(50)));
    assert_quiet(&mut c, t0 + secs(50) - NS);
}

#[test]
fn idle_activity_is_stamped_at_the_next_handle_timeout() {
    let t0 = Instant::now();
    let mut c = server_with(idle_config());
    c.handle_timeout(t0);
    c.send(Message::text("x")).unwrap();
    // Until handle_timeout runs the old deadline stands (poll_timeout is only valid after it).
    assert_eq!(c.poll_timeout(), Some(t0 + secs(30)));
    c.handle_timeout(t0 + secs(25));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(55)));
}

#[test]
fn idle_pings_and_pongs_do_not_count_as_activity() {
    let t0 = Instant::now();
    let mut c = server_with(idle_config());
    c.handle_timeout(t0);
    assert_eq!(feed(&mut c, OP_PING, b"p"), [Event::Ping("p".into())]);
    assert_eq!(feed(&mut c, OP_PONG, b"q"), [Event::Pong("q".into())]);
    c.send_ping(b"r").unwrap();
    c.send_pong(b"s").unwrap();
    c.note_input(t0 + secs(10));
    c.handle_timeout(t0 + secs(10));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(30)));
    c.take_output();
    c.handle_timeout(t0 + secs(30));
    assert_close(&take_wire(&mut c), 1001, "idle timeout");
    assert_eq!(c.timed_out(), Some(Timer::Idle));
}

#[test]
fn idle_keepalive_pings_do_not_keep_an_idle_connection_alive() {
    let t0 = Instant::now();
    let mut c = server_with(idle_config().keepalive(Some(ka())));
    c.handle_timeout(t0);
    let mut now = t0;
    let mut pings = 0;
    // A live peer answers every keepalive ping at once, and sends nothing else.
    while c.timed_out().is_none() {
        let next = c.poll_timeout().unwrap();
        assert!(next > now);
        now = next;
        c.handle_timeout(now);
        for w in take_wire(&mut c) {
            match w.opcode {
                OP_PING => {
                    pings += 1;
                    assert_eq!(
                        feed(&mut c, OP_PONG, &w.payload),
                        [Event::Pong("keepalive".into())]
                    );
                    c.note_input(now);
                    c.handle_timeout(now);
                }
                OP_CLOSE => {
                    assert_eq!(w.close_code(), Some(1001));
                    assert_eq!(w.payload[2..], *b"idle timeout");
                }
                op => panic!("unexpected opcode {op}"),
            }
        }
    }
    assert_eq!(now, t0 + secs(30));
    assert_eq!(pings, 3, "pings at 10, 20 and 30 s, then the idle close");
    assert_eq!(c.timed_out(), Some(Timer::Idle));
}

#[test]
fn idle_expiry_queues_close_1001_then_the_close_timer_runs() {
    for role in [Role::Server, Role::Client] {
        let t0 = Instant::now();
        let mut c = conn(role, idle_config());
        c.handle_timeout(t0);
        assert_quiet(&mut c, t0 + secs(30) - NS);
        c.handle_timeout(t0 + secs(30));
        assert_close(&take_wire(&mut c), 1001, "idle timeout");
        assert_eq!(c.close_sent(), Some(&Some(CloseFrame::new(1001, "idle timeout"))));
        assert_eq!(c.timed_out(), Some(Timer::Idle));
        assert_eq!(c.state(), State::Closing);
        assert_eq!(c.poll_event(), Err(ReadError::TimedOut(Timer::Idle)));
        assert_eq!(c.send(Message::text("x")), Err(SendError::Closed));
        // The close handshake timer starts with the close frame.
        assert_eq!(c.poll_timeout(), Some(t0 + secs(40)));
        assert_quiet(&mut c, t0 + secs(30));
        assert_quiet(&mut c, t0 + secs(40) - NS);
        c.handle_timeout(t0 + secs(40));
        assert_eq!(c.timed_out(), Some(Timer::CloseHandshake));
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.take_output(), b"");
        assert!(c.should_close_transport());
        sticky(&mut c, &ReadError::TimedOut(Timer::CloseHandshake));
    }
}

#[test]
fn idle_expiry_without_close_timeout_arms_nothing_more() {
    let t0 = Instant::now();
    let mut c = server_with(idle_config().close_timeout(None));
    c.handle_timeout(t0);
    c.handle_timeout(t0 + secs(30));
    assert_close(&take_wire(&mut c), 1001, "idle timeout");
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + secs(10_000));
    assert_eq!(c.timed_out(), Some(Timer::Idle));
}

#[test]
fn idle_does_not_fire_once_closing() {
    let t0 = Instant::now();
    let mut c = server_with(idle_config().close_timeout(None));
    c.handle_timeout(t0);
    c.send_close(None).unwrap();
    c.take_output();
    c.handle_timeout(t0 + secs(1));
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + secs(100));
    assert_eq!((c.take_output(), c.timed_out()), (vec![], None));
}

#[test]
fn set_idle_timeout_counts_from_the_next_handle_timeout() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default());
    c.handle_timeout(t0);
    c.set_idle_timeout(Some(secs(5)));
    c.handle_timeout(t0 + secs(100));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(105)));
    c.set_idle_timeout(None);
    c.handle_timeout(t0 + secs(100));
    assert_eq!(c.poll_timeout(), None);
}

// ---- close handshake ----------------------------------------------------------------------------

#[test]
fn close_timeout_is_armed_by_handle_timeout_after_send_close() {
    for role in [Role::Server, Role::Client] {
        let t0 = Instant::now();
        let mut c = conn(role, Config::default());
        c.handle_timeout(t0);
        c.send_close(Some(CloseFrame::new(1000, "done"))).unwrap();
        assert_close(&take_wire(&mut c), 1000, "done");
        c.handle_timeout(t0 + secs(1));
        assert_eq!(c.poll_timeout(), Some(t0 + secs(11)));
        assert_eq!(c.state(), State::Closing);
        assert_quiet(&mut c, t0 + secs(11) - NS);
        assert_eq!(c.poll_event(), Ok(None));
        c.handle_timeout(t0 + secs(11));
        assert_eq!(c.timed_out(), Some(Timer::CloseHandshake));
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.take_output(), b"");
        assert!(c.should_close_transport());
        sticky(&mut c, &ReadError::TimedOut(Timer::CloseHandshake));
    }
}

#[test]
fn close_the_peers_reply_and_transport_end_in_time_stop_the_close_timer() {
    for role in [Role::Server, Role::Client] {
        let t0 = Instant::now();
        let mut c = conn(role, Config::default());
        c.handle_timeout(t0);
        c.send_close(Some(CloseFrame::new(1000, ""))).unwrap();
        c.take_output();
        c.handle_timeout(t0);
        assert_eq!(c.poll_timeout(), Some(t0 + secs(10)));
        let ev = feed(&mut c, OP_CLOSE, &close_payload(1000, b""));
        assert_eq!(ev, [Event::Close(Some(CloseFrame::new(1000, "")))]);
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.take_output(), b"", "our close was already sent");
        c.receive_eof();
        c.note_input(t0 + secs(2));
        c.handle_timeout(t0 + secs(2));
        assert_eq!(c.poll_timeout(), None);
        c.handle_timeout(t0 + secs(100));
        assert_eq!(c.timed_out(), None);
        sticky(&mut c, &ReadError::Closed);
    }
}

#[test]
fn close_after_the_handshake_the_timer_bounds_the_wait_for_the_transport_end() {
    // RFC 6455 §7.1.1: the client waits for the server to close the TCP connection; the close
    // timer bounds that wait. poll_event keeps reporting the clean close.
    let t0 = Instant::now();
    let mut c = client_with(Config::default());
    c.handle_timeout(t0);
    c.send_close(None).unwrap();
    c.take_output();
    c.handle_timeout(t0);
    assert_eq!(feed(&mut c, OP_CLOSE, b""), [Event::Close(None)]);
    assert_eq!(c.state(), State::Closed);
    sticky(&mut c, &ReadError::Closed);
    c.handle_timeout(t0 + secs(1));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(10)));
    c.handle_timeout(t0 + secs(10));
    assert_eq!(c.timed_out(), Some(Timer::CloseHandshake));
    assert_eq!(c.state(), State::Closed);
    sticky(&mut c, &ReadError::Closed);
}

#[test]
fn close_received_first_our_auto_reply_starts_the_close_timer() {
    let t0 = Instant::now();
    let mut c = client_with(Config::default());
    c.handle_timeout(t0);
    assert_eq!(
        feed(&mut c, OP_CLOSE, &close_payload(1001, b"")),
        [Event::Close(Some(CloseFrame::new(1001, "")))]
    );
    assert_close(&take_wire(&mut c), 1001, "");
    c.handle_timeout(t0 + secs(3));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(13)));
    c.receive_eof();
    c.handle_timeout(t0 + secs(4));
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn close_transport_end_stops_the_close_timer() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default());
    c.handle_timeout(t0);
    c.send_close(None).unwrap();
    c.take_output();
    c.handle_timeout(t0);
    assert_eq!(c.poll_timeout(), Some(t0 + secs(10)));
    c.receive_eof();
    c.handle_timeout(t0 + secs(1));
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + secs(20));
    assert_eq!(c.timed_out(), None);
    assert_eq!(c.poll_event(), Err(ReadError::AbnormalClosure));
}

#[test]
fn close_after_a_protocol_error_the_close_timer_runs_and_the_error_stays() {
    for role in [Role::Server, Role::Client] {
        let t0 = Instant::now();
        let mut c = conn(
            role,
            Config::default()
                .keepalive(Some(ka()))
                .idle_timeout(Some(secs(30))),
        );
        c.handle_timeout(t0);
        // Reserved opcode 0x3 (RFC 6455 §5.2).
        c.receive(&peer_frame(&c, 0x3, b""));
        let error = ReadError::Protocol(ProtocolError::ReservedOpcode(3));
        assert_eq!(poll_all(&mut c), (vec![], Some(error.clone())));
        assert_eq!(take_wire(&mut c)[0].close_code(), Some(1002));
        assert_eq!(c.state(), State::Closed);
        c.note_input(t0 + secs(2));
        c.handle_timeout(t0 + secs(2));
        // Only the close timer: no keepalive, no idle on a failed connection.
        assert_eq!(c.poll_timeout(), Some(t0 + secs(12)));
        assert_quiet(&mut c, t0 + secs(12) - NS);
        c.handle_timeout(t0 + secs(12));
        assert_eq!(c.timed_out(), Some(Timer::CloseHandshake));
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.take_output(), b"");
        sticky(&mut c, &error);
    }
}

#[test]
fn close_after_fail_the_close_timer_runs() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default());
    c.handle_timeout(t0);
    c.fail(CloseCode::POLICY_VIOLATION, "nope");
    assert_close(&take_wire(&mut c), 1008, "nope");
    c.handle_timeout(t0 + secs(1));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(11)));
    assert_eq!(c.poll_event(), Err(ReadError::Closed));
    c.handle_timeout(t0 + secs(11));
    assert_eq!(c.timed_out(), Some(Timer::CloseHandshake));
    sticky(&mut c, &ReadError::Closed);
}

#[test]
fn close_timeout_none_disables_the_close_timer() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default().close_timeout(None));
    c.handle_timeout(t0);
    c.send_close(None).unwrap();
    c.take_output();
    c.handle_timeout(t0);
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + secs(1_000_000));
    assert_eq!(c.timed_out(), None);
    assert_eq!(c.state(), State::Closing);
}

#[test]
fn set_close_timeout_moves_an_armed_deadline_from_the_same_start() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default());
    c.handle_timeout(t0);
    c.send_close(None).unwrap();
    c.take_output();
    c.handle_timeout(t0 + secs(1));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(11)));
    c.set_close_timeout(Some(secs(3)));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(4)));
    c.set_close_timeout(None);
    assert_eq!(c.poll_timeout(), None);
}

// ---- slow peer ----------------------------------------------------------------------------------

#[test]
fn slow_peer_fails_with_1008_after_the_default_60_s_without_progress() {
    for role in [Role::Server, Role::Client] {
        let t0 = Instant::now();
        let mut c = conn(role, Config::default());
        c.handle_timeout(t0);
        c.send(Message::text("stuck")).unwrap();
        let queued = pending(&c);
        c.note_output_blocked(t0 + secs(1));
        c.handle_timeout(t0 + secs(1));
        assert_eq!(c.poll_timeout(), Some(t0 + secs(61)));
        // Blocked again later: the stall still counts from the first moment.
        c.note_output_blocked(t0 + secs(30));
        c.handle_timeout(t0 + secs(30));
        assert_eq!(c.poll_timeout(), Some(t0 + secs(61)));
        assert_quiet(&mut c, t0 + secs(61) - NS);
        c.handle_timeout(t0 + secs(61));
        let out = pending(&c);
        assert_eq!(out[..queued.len()], queued[..], "queued bytes stay first");
        let wire = parse_wire(&out[queued.len()..]);
        assert_close(&wire, 1008, "peer too slow to read");
        assert_eq!(c.timed_out(), Some(Timer::SlowPeer));
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.poll_timeout(), None);
        sticky(&mut c, &ReadError::TimedOut(Timer::SlowPeer));
        assert_eq!(c.send(Message::text("x")), Err(SendError::Closed));
    }
}

#[test]
fn slow_peer_uses_the_policys_code() {
    let t0 = Instant::now();
    let policy = SlowPeerPolicy::Close {
        after: secs(5),
        code: CloseCode::TRY_AGAIN_LATER,
    };
    let mut c = server_with(Config::default().slow_peer(policy));
    c.handle_timeout(t0);
    c.send(Message::binary(vec![0; 10])).unwrap();
    c.note_output_blocked(t0);
    c.handle_timeout(t0);
    assert_eq!(c.poll_timeout(), Some(t0 + secs(5)));
    c.handle_timeout(t0 + secs(5));
    let wire = take_wire(&mut c);
    assert_eq!(wire.len(), 2);
    assert_close(&wire[1..], 1013, "peer too slow to read");
    assert_eq!(c.poll_event(), Err(ReadError::TimedOut(Timer::SlowPeer)));

    // The same through the runtime setter.
    let mut d = server_with(Config::default());
    d.set_slow_peer_policy(policy);
    d.handle_timeout(t0);
    d.send(Message::text("x")).unwrap();
    d.note_output_blocked(t0 + secs(1));
    d.handle_timeout(t0 + secs(1));
    assert_eq!(d.poll_timeout(), Some(t0 + secs(6)));
}

#[test]
fn slow_peer_progress_resets_and_a_new_stall_counts_from_its_own_start() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default());
    c.handle_timeout(t0);
    c.send(Message::text("0123456789")).unwrap();
    c.note_output_blocked(t0 + secs(1));
    c.handle_timeout(t0 + secs(1));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(61)));
    // advance_output(0) is no progress.
    c.advance_output(0);
    c.handle_timeout(t0 + secs(2));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(61)));
    // One byte is progress.
    c.advance_output(1);
    c.handle_timeout(t0 + secs(50));
    assert_eq!(c.poll_timeout(), None);
    assert_quiet(&mut c, t0 + secs(61));
    c.note_output_blocked(t0 + secs(70));
    c.handle_timeout(t0 + secs(70));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(130)));
    assert_quiet(&mut c, t0 + secs(130) - NS);
    c.handle_timeout(t0 + secs(130));
    assert_eq!(c.timed_out(), Some(Timer::SlowPeer));
}

#[test]
fn slow_peer_output_drained_by_take_output_is_progress() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default());
    c.handle_timeout(t0);
    c.send(Message::text("a")).unwrap();
    c.note_output_blocked(t0);
    c.handle_timeout(t0);
    assert_eq!(c.poll_timeout(), Some(t0 + secs(60)));
    c.take_output();
    // New output is queued before the next handle_timeout: the old stall must not count.
    c.send(Message::text("b")).unwrap();
    c.handle_timeout(t0 + secs(60));
    assert_eq!(c.timed_out(), None);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn slow_peer_nothing_queued_means_not_blocked() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default());
    c.handle_timeout(t0);
    c.note_output_blocked(t0);
    c.handle_timeout(t0);
    assert_eq!(c.poll_timeout(), None);
    // Output queued later does not inherit the earlier, empty "stall".
    c.send(Message::text("x")).unwrap();
    c.handle_timeout(t0 + secs(100));
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.timed_out(), None);
}

#[test]
fn slow_peer_wait_policy_never_fires() {
    let t0 = Instant::now();
    let mut c = server_with(Config::default().slow_peer(SlowPeerPolicy::Wait));
    c.handle_timeout(t0);
    c.send(Message::text("x")).unwrap();
    c.note_output_blocked(t0);
    c.handle_timeout(t0);
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + secs(365 * 24 * 3600));
    assert_eq!((c.state(), c.timed_out()), (State::Open, None));
    assert_eq!(parse_wire(&c.take_output()).len(), 1);
}

#[test]
fn slow_peer_while_closing_fails_without_a_second_close_frame() {
    let t0 = Instant::now();
    let policy = SlowPeerPolicy::Close {
        after: secs(5),
        code: CloseCode::POLICY_VIOLATION,
    };
    let mut c = server_with(Config::default().slow_peer(policy));
    c.handle_timeout(t0);
    c.send_close(None).unwrap();
    c.note_output_blocked(t0);
    c.handle_timeout(t0);
    // Both timers run; the earlier one is announced.
    assert_eq!(c.poll_timeout(), Some(t0 + secs(5)));
    c.handle_timeout(t0 + secs(5));
    assert_eq!(c.timed_out(), Some(Timer::SlowPeer));
    let wire = take_wire(&mut c);
    assert_eq!(wire.len(), 1, "one close frame only");
    assert_eq!(wire[0].close_code(), None);
    assert_eq!(c.poll_timeout(), None);
}

// ---- all together -------------------------------------------------------------------------------

#[test]
fn poll_timeout_is_the_earliest_armed_deadline() {
    let t0 = Instant::now();
    let slow = |s| SlowPeerPolicy::Close {
        after: secs(s),
        code: CloseCode::POLICY_VIOLATION,
    };
    let config = Config::default()
        .keepalive(Some(Keepalive::new(secs(20), secs(5))))
        .idle_timeout(Some(secs(30)))
        .slow_peer(slow(40));
    let mut c = server_with(config);
    c.handle_timeout(t0);
    assert_eq!(c.poll_timeout(), Some(t0 + secs(20)), "keepalive < idle");
    c.note_input(t0 + secs(15));
    c.handle_timeout(t0 + secs(15));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(30)), "idle < keepalive");
    c.set_slow_peer_policy(slow(4));
    c.send_ping(b"x").unwrap();
    c.note_output_blocked(t0 + secs(16));
    c.handle_timeout(t0 + secs(16));
    assert_eq!(
        c.poll_timeout(),
        Some(t0 + secs(20)),
        "slow peer < idle, keepalive"
    );
    c.advance_output(c.pending_output_len());
    c.send_close(None).unwrap();
    c.take_output();
    c.set_close_timeout(Some(secs(1)));
    c.handle_timeout(t0 + secs(17));
    assert_eq!(
        c.poll_timeout(),
        Some(t0 + secs(18)),
        "closing: the close timer alone"
    );
}

// ---- property: poll_timeout is exact ------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// The transport delivered something (no frame).
    Input,
    /// The peer sent a text message.
    PeerMessage,
    /// The peer sent a ping (auto-pong answers it).
    PeerPing,
    /// The peer answered with a pong.
    PeerPong,
    /// The peer closed.
    PeerClose,
    /// The transport's read side ended.
    Eof,
    /// We send a message.
    Send(usize),
    /// We start the close handshake.
    SendClose,
    /// The transport took `n` bytes (clamped to what is queued).
    Progress(usize),
    /// The transport took nothing.
    Blocked,
}

#[derive(Debug, Clone)]
enum Wait {
    /// Some time passes.
    By(Duration),
    /// Up to one nanosecond before the announced deadline.
    JustBefore,
    /// Exactly the announced deadline.
    Exactly,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Input),
        2 => Just(Op::PeerMessage),
        1 => Just(Op::PeerPing),
        2 => Just(Op::PeerPong),
        1 => Just(Op::PeerClose),
        1 => Just(Op::Eof),
        2 => (0usize..200).prop_map(Op::Send),
        1 => Just(Op::SendClose),
        3 => (0usize..40).prop_map(Op::Progress),
        3 => Just(Op::Blocked),
    ]
}

fn arb_wait() -> impl Strategy<Value = Wait> {
    prop_oneof![
        3 => (0u64..40_000_000_000).prop_map(|n| Wait::By(Duration::from_nanos(n))),
        1 => (0u64..3).prop_map(|n| Wait::By(Duration::from_nanos(n))),
        2 => Just(Wait::JustBefore),
        2 => Just(Wait::Exactly),
    ]
}

fn arb_config() -> impl Strategy<Value = Config> {
    let d = |max: u64| prop::option::of((1u64..max).prop_map(secs));
    (d(20), 1u64..10, d(60), d(20), prop::option::of(1u64..30)).prop_map(|(ka, kt, idle, close, slow)| {
        Config::default()
            .keepalive(ka.map(|i| Keepalive::new(i, secs(kt))))
            .idle_timeout(idle)
            .close_timeout(close)
            .slow_peer(match slow {
                Some(s) => SlowPeerPolicy::Close {
                    after: secs(s),
                    code: CloseCode::TRY_AGAIN_LATER,
                },
                None => SlowPeerPolicy::Wait,
            })
    })
}

/// Keepalive pings in `bytes` (a whole number of frames).
fn keepalive_pings(bytes: &[u8]) -> usize {
    parse_wire(bytes)
        .iter()
        .filter(|w| w.opcode == OP_PING && w.payload == b"keepalive")
        .count()
}

fn apply(c: &mut Connection, op: &Op, now: Instant) {
    let frame = |c: &mut Connection, opcode: u8, payload: &[u8]| {
        let wire = peer_frame(c, opcode, payload);
        c.receive(&wire);
        let _ = poll_all(c);
        c.note_input(now);
    };
    match *op {
        Op::Input => c.note_input(now),
        Op::PeerMessage => frame(c, OP_TEXT, b"msg"),
        Op::PeerPing => frame(c, OP_PING, b"hi"),
        Op::PeerPong => frame(c, OP_PONG, b"keepalive"),
        Op::PeerClose => frame(c, OP_CLOSE, &close_payload(1000, b"")),
        Op::Eof => {
            c.receive_eof();
            let _ = poll_all(c);
            c.note_input(now);
        }
        Op::Send(n) => {
            let _ = c.send(Message::binary(vec![7; n]));
        }
        Op::SendClose => {
            let _ = c.send_close(None);
        }
        Op::Progress(n) => {
            let n = n.min(c.pending_output_len());
            c.advance_output(n);
        }
        Op::Blocked => c.note_output_blocked(now),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random interleavings of input, sends, output progress and stalls at increasing instants:
    /// `handle_timeout` before `poll_timeout()` changes nothing observable; at or after it,
    /// something happens or the deadline moves later; at most one keepalive ping is
    /// outstanding at a time.
    #[test]
    fn prop_poll_timeout_is_exactly_when_something_is_due(
        config in arb_config(),
        client: bool,
        steps in prop::collection::vec((arb_op(), arb_wait()), 1..40),
    ) {
        let role = if client { Role::Client } else { Role::Server };
        let mut c = conn(role, config);
        let t0 = Instant::now();
        let mut now = t0;
        c.handle_timeout(now);
        // Keepalive pings queued since the last input.
        let mut outstanding = 0usize;
        for (op, wait) in &steps {
            apply(&mut c, op, now);
            if !matches!(op, Op::Send(_) | Op::SendClose | Op::Progress(_) | Op::Blocked) {
                outstanding = 0;
            }
            // The driver calls handle_timeout after every input or command; whatever it queues
            // is appended as whole frames.
            let mark = c.pending_output_len();
            c.handle_timeout(now);
            outstanding += keepalive_pings(&pending(&c)[mark..]);
            prop_assert!(outstanding <= 1, "two keepalive pings outstanding");
            let deadline = c.poll_timeout();
            let next = match (wait, deadline) {
                (Wait::By(d), _) => now + *d,
                (Wait::JustBefore, Some(d)) if d > now => d - NS,
                (Wait::Exactly, Some(d)) if d > now => d,
                _ => now,
            };
            let seen = observe(&c);
            c.handle_timeout(next);
            let after = observe(&c);
            match deadline {
                Some(d) if next >= d => {
                    let acted = after.output.len() > seen.output.len()
                        || after.timed_out != seen.timed_out
                        || after.deadline.is_none_or(|n| n > d);
                    prop_assert!(acted, "nothing happened at the deadline: {:?}", seen);
                }
                _ => prop_assert_eq!(&after, &seen, "handle_timeout acted before the deadline"),
            }
            prop_assert_eq!(&after.output[..seen.output.len()], &seen.output[..]);
            outstanding += keepalive_pings(&after.output[seen.output.len()..]);
            prop_assert!(outstanding <= 1, "two keepalive pings outstanding");
            now = next;
        }
    }
}
