//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`, off by
//! default): install any recorder (e.g. `metrics-exporter-prometheus`) and every connection
//! reports into it. Without the feature nothing is recorded and no connection carries a field
//! for it.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `ferrosocket_connections_accepted_total` | counter | | server connections opened (the upgrade succeeded) |
//! | `ferrosocket_connections_dialed_total` | counter | | client connections opened (the Dialer's handshake succeeded) |
//! | `ferrosocket_connections_open` | gauge | `role` | connections alive now (opened and not yet dropped) |
//! | `ferrosocket_handshakes_accepted_total` | counter | `http` | upgrade requests the Upgrader accepted, by the HTTP version they came over (`"1.1"`, `"2"`, `"3"`) |
//! | `ferrosocket_connections_rejected_total` | counter | `status` | handshakes the Upgrader refused, by the HTTP status it answered (`"403"`, `"400"`, ...) |
//! | `ferrosocket_messages_received_total` | counter | `role` | text and binary messages received (a streamed message counts at its last chunk) |
//! | `ferrosocket_messages_sent_total` | counter | `role` | text and binary messages queued to send (a fragmented one counts at its final fragment) |
//! | `ferrosocket_payload_bytes_received_total` | counter | `role` | message payload bytes received, after inflating |
//! | `ferrosocket_payload_bytes_sent_total` | counter | `role` | message payload bytes queued to send, before deflating |
//! | `ferrosocket_wire_bytes_received_total` | counter | `role` | bytes read from the transport after the handshake (frame headers, control frames, compressed payloads) |
//! | `ferrosocket_wire_bytes_sent_total` | counter | `role` | bytes written to the transport after the handshake |
//! | `ferrosocket_close_frames_sent_total` | counter | `role`, `code` | close frames written, by status code |
//! | `ferrosocket_close_frames_received_total` | counter | `role`, `code` | close frames received, by status code |
//! | `ferrosocket_ping_rtt_seconds` | histogram | `role` | from a ping we sent (keepalive or `ping`) to the pong with the same payload |
//! | `ferrosocket_queued_bytes` | gauge | `role` | output queued and not yet written, summed over connections |
//!
//! `role` is `"server"` or `"client"`. Compression shows as the ratio of wire bytes to payload
//! bytes. Labels stay few whatever a peer sends: `code` is the number for the codes RFC 6455
//! and IANA register (1000-1015; `"1005"` for a close frame without a status), `"3xxx"` and
//! `"4xxx"` for the registered and private ranges (a peer could otherwise create two thousand
//! series), and `"other"` for anything else; `status` is the numeric status the server itself
//! chose.
//!
//! Cost: per message one or two counter increments, per read or write one more and a gauge
//! update when the queue changed; the handles are registered once per `Upgrader`/`Dialer`
//! (role), so a connection holds one pointer and a few words. They bind to the recorder in
//! force when that builder makes its first connection: install the recorder before.
//! [`describe`] registers the descriptions (help text and units) above with the recorder.

use ferrosocket_proto::{CloseFrame, Connection, Event, Role};

#[cfg(feature = "metrics")]
use live::{Live, RoleHandles};

/// The handles of the connections one builder makes, registered at its first connection of
/// each role (kept in its `ConnOptions`).
#[derive(Clone, Default)]
pub(crate) struct Handles {
    #[cfg(feature = "metrics")]
    server: std::sync::OnceLock<std::sync::Arc<RoleHandles>>,
    #[cfg(feature = "metrics")]
    client: std::sync::OnceLock<std::sync::Arc<RoleHandles>>,
}

/// One connection's metrics state (zero-sized without the feature).
pub(crate) struct ConnMetrics {
    #[cfg(feature = "metrics")]
    live: Live,
}

impl ConnMetrics {
    /// A connection opened: counts it, and the bytes that arrived with the handshake.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(handles: &Handles, core: &Connection) -> Self {
        Self {
            #[cfg(feature = "metrics")]
            live: Live::new(handles, core),
        }
    }

    /// Data received: `len` payload bytes; `end`: a message is complete.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn received(&self, len: usize, end: bool) {
        #[cfg(feature = "metrics")]
        self.live.received(len, end);
    }

    /// Data queued: `len` payload bytes; `end`: a message is complete. Updates the queue gauge.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn sent(&mut self, core: &Connection, len: usize, end: bool) {
        #[cfg(feature = "metrics")]
        self.live.sent(core, len, end);
    }

    /// Something else was queued (a close frame): updates the queue gauge.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn queued(&mut self, core: &Connection) {
        #[cfg(feature = "metrics")]
        self.live.sync_queued(core);
    }

    /// `n` bytes were read from the transport.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn wire_in(&self, n: usize) {
        #[cfg(feature = "metrics")]
        self.live.handles.wire_received.increment(n as u64);
    }

    /// `n` bytes were written to the transport.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn wire_out(&self, n: usize) {
        #[cfg(feature = "metrics")]
        self.live.handles.wire_sent.increment(n as u64);
    }

    /// A write attempt ended: updates the queue gauge, and counts our close frame once it is
    /// out.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn after_write(&mut self, core: &Connection) {
        #[cfg(feature = "metrics")]
        self.live.after_write(core);
    }

    /// We queued a ping with `payload` (the round trip runs from now).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn ping_sent(&mut self, core: &Connection, payload: &[u8]) {
        #[cfg(feature = "metrics")]
        {
            self.live.ping_sent(std::time::Instant::now_tokio(), payload);
            self.live.sync_queued(core);
        }
    }

    /// Input is about to be reported to the core, which then forgets its keepalive ping:
    /// note when that ping went out.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn before_input(&mut self, core: &Connection) {
        #[cfg(feature = "metrics")]
        if let Some(at) = core.keepalive_ping_sent() {
            self.live
                .ping_sent(at, ferrosocket_proto::Keepalive::PING_PAYLOAD);
        }
    }

    /// A control event arrived (a pong ends a ping's round trip; a close frame is counted).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn control(&mut self, event: &Event) {
        #[cfg(feature = "metrics")]
        self.live.control(event);
    }
}

/// The handshake was refused with this response (its status line is read for the label).
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn handshake_rejected(status: http::StatusCode) {
    #[cfg(feature = "metrics")]
    live::rejected(status);
}

/// An upgrade request the server accepted, counted by the HTTP version it came over.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn handshake_accepted(version: http::Version) {
    #[cfg(feature = "metrics")]
    live::accepted(version);
}

/// The `http` label: the HTTP version a WebSocket was opened over (bounded: four values).
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn http_label(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        http::Version::HTTP_11 => "1.1",
        _ => "other",
    }
}

/// Registers the description and unit of every metric in the table above with the recorder
/// in force (the global one, or a local one on this thread). Optional: it adds help text.
///
/// ```
/// // Once, after installing the recorder (here none: the calls are no-ops).
/// ferrosocket::metrics::describe();
/// ```
#[cfg(feature = "metrics")]
pub fn describe() {
    use metrics::Unit;
    for &(name, unit, help) in live::METRICS {
        let unit = match unit {
            "bytes" => Some(Unit::Bytes),
            "seconds" => Some(Unit::Seconds),
            "connections" | "messages" | "frames" | "handshakes" => Some(Unit::Count),
            _ => None,
        };
        metrics::with_recorder(|r| {
            let key = metrics::KeyName::from_const_str(name);
            match name {
                n if n.ends_with("_total") => r.describe_counter(key, unit, help.into()),
                n if n.ends_with("_seconds") => r.describe_histogram(key, unit, help.into()),
                _ => r.describe_gauge(key, unit, help.into()),
            }
        });
    }
}

/// The label of a close frame's status (bounded: see the module documentation).
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn code_label(frame: Option<&CloseFrame>) -> std::borrow::Cow<'static, str> {
    let Some(frame) = frame else {
        return "1005".into();
    };
    let n = frame.code.as_u16();
    if frame.code.name().is_some() {
        n.to_string().into()
    } else if (3000..4000).contains(&n) {
        "3xxx".into()
    } else if (4000..5000).contains(&n) {
        "4xxx".into()
    } else {
        "other".into()
    }
}

/// The `status` label: the numeric status we refused with.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn status_label(status: http::StatusCode) -> std::borrow::Cow<'static, str> {
    status.as_u16().to_string().into()
}

/// The `role` label.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn role_label(role: Role) -> &'static str {
    match role {
        Role::Server => "server",
        Role::Client => "client",
    }
}

/// The tokio clock (virtual under `tokio::time::pause`) as a `std` instant, like the engine's.
#[cfg(feature = "metrics")]
trait NowTokio {
    fn now_tokio() -> Self;
}

#[cfg(feature = "metrics")]
impl NowTokio for std::time::Instant {
    fn now_tokio() -> Self {
        tokio::time::Instant::now().into_std()
    }
}

#[cfg(feature = "metrics")]
mod live {
    use super::{Handles, code_label, role_label, status_label};
    use bytes::Bytes;
    use ferrosocket_proto::{Connection, Event, Role};
    use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata};
    use std::sync::Arc;
    use std::time::Instant;

    /// Name, unit and help of every metric: what [`describe`](super::describe) registers.
    pub(super) const METRICS: &[(&str, &str, &str)] = &[
        (
            ACCEPTED,
            "connections",
            "Server connections opened (the upgrade succeeded).",
        ),
        (
            DIALED,
            "connections",
            "Client connections opened (the Dialer's handshake succeeded).",
        ),
        (OPEN, "connections", "Connections alive now."),
        (
            HANDSHAKES_ACCEPTED,
            "handshakes",
            "Upgrade requests accepted, by the HTTP version they came over.",
        ),
        (
            REJECTED,
            "handshakes",
            "Handshakes refused, by the HTTP status answered.",
        ),
        (
            MESSAGES_RECEIVED,
            "messages",
            "Text and binary messages received.",
        ),
        (
            MESSAGES_SENT,
            "messages",
            "Text and binary messages queued to send.",
        ),
        (
            PAYLOAD_RECEIVED,
            "bytes",
            "Message payload bytes received, after inflating.",
        ),
        (
            PAYLOAD_SENT,
            "bytes",
            "Message payload bytes queued to send, before deflating.",
        ),
        (
            WIRE_RECEIVED,
            "bytes",
            "Bytes read from the transport after the handshake.",
        ),
        (
            WIRE_SENT,
            "bytes",
            "Bytes written to the transport after the handshake.",
        ),
        (CLOSE_SENT, "frames", "Close frames written, by status code."),
        (CLOSE_RECEIVED, "frames", "Close frames received, by status code."),
        (
            PING_RTT,
            "seconds",
            "Round trip from a ping we sent to the pong with its payload.",
        ),
        (
            QUEUED,
            "bytes",
            "Output queued and not yet written, summed over connections.",
        ),
    ];

    const ACCEPTED: &str = "ferrosocket_connections_accepted_total";
    const DIALED: &str = "ferrosocket_connections_dialed_total";
    const OPEN: &str = "ferrosocket_connections_open";
    const REJECTED: &str = "ferrosocket_connections_rejected_total";
    const HANDSHAKES_ACCEPTED: &str = "ferrosocket_handshakes_accepted_total";
    const MESSAGES_RECEIVED: &str = "ferrosocket_messages_received_total";
    const MESSAGES_SENT: &str = "ferrosocket_messages_sent_total";
    const PAYLOAD_RECEIVED: &str = "ferrosocket_payload_bytes_received_total";
    const PAYLOAD_SENT: &str = "ferrosocket_payload_bytes_sent_total";
    const WIRE_RECEIVED: &str = "ferrosocket_wire_bytes_received_total";
    const WIRE_SENT: &str = "ferrosocket_wire_bytes_sent_total";
    const CLOSE_SENT: &str = "ferrosocket_close_frames_sent_total";
    const CLOSE_RECEIVED: &str = "ferrosocket_close_frames_received_total";
    const PING_RTT: &str = "ferrosocket_ping_rtt_seconds";
    const QUEUED: &str = "ferrosocket_queued_bytes";

    static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
    static SERVER: [Label; 1] = [Label::from_static_parts("role", "server")];
    static CLIENT: [Label; 1] = [Label::from_static_parts("role", "client")];

    fn role_labels(role: Role) -> &'static [Label] {
        match role {
            Role::Server => &SERVER,
            Role::Client => &CLIENT,
        }
    }

    fn counter(key: &Key) -> Counter {
        metrics::with_recorder(|r| r.register_counter(key, &METADATA))
    }

    fn gauge(key: &Key) -> Gauge {
        metrics::with_recorder(|r| r.register_gauge(key, &METADATA))
    }

    fn histogram(key: &Key) -> Histogram {
        metrics::with_recorder(|r| r.register_histogram(key, &METADATA))
    }

    /// The handles every connection of one role and builder shares.
    pub(crate) struct RoleHandles {
        role: Role,
        opened: Counter,
        open: Gauge,
        messages_received: Counter,
        messages_sent: Counter,
        payload_received: Counter,
        payload_sent: Counter,
        pub(super) wire_received: Counter,
        pub(super) wire_sent: Counter,
        queued: Gauge,
        rtt: Histogram,
    }

    impl RoleHandles {
        fn register(role: Role) -> Self {
            let labels = role_labels(role);
            let key = |name: &'static str| Key::from_static_parts(name, labels);
            let opened = match role {
                Role::Server => ACCEPTED,
                Role::Client => DIALED,
            };
            Self {
                role,
                opened: counter(&Key::from_static_name(opened)),
                open: gauge(&key(OPEN)),
                messages_received: counter(&key(MESSAGES_RECEIVED)),
                messages_sent: counter(&key(MESSAGES_SENT)),
                payload_received: counter(&key(PAYLOAD_RECEIVED)),
                payload_sent: counter(&key(PAYLOAD_SENT)),
                wire_received: counter(&key(WIRE_RECEIVED)),
                wire_sent: counter(&key(WIRE_SENT)),
                queued: gauge(&key(QUEUED)),
                rtt: histogram(&key(PING_RTT)),
            }
        }

        fn close(&self, name: &'static str, frame: Option<&ferrosocket_proto::CloseFrame>) {
            let labels = vec![
                Label::from_static_parts("role", role_label(self.role)),
                Label::new("code", code_label(frame)),
            ];
            counter(&Key::from_parts(name, labels)).increment(1);
        }
    }

    /// A ping we sent whose pong has not come yet.
    struct PingOut {
        at: Instant,
        payload: Bytes,
    }

    pub(crate) struct Live {
        pub(super) handles: Arc<RoleHandles>,
        /// What this connection adds to the queued-bytes gauge now.
        queued: usize,
        ping: Option<Box<PingOut>>,
        close_sent_counted: bool,
    }

    impl Live {
        pub(super) fn new(handles: &Handles, core: &Connection) -> Self {
            let role = core.role();
            let cell = match role {
                Role::Server => &handles.server,
                Role::Client => &handles.client,
            };
            let handles = cell.get_or_init(|| Arc::new(RoleHandles::register(role))).clone();
            handles.opened.increment(1);
            handles.open.increment(1.0);
            // Frames that arrived with the handshake's last read.
            let early = core.buffered_input();
            if early > 0 {
                handles.wire_received.increment(early as u64);
            }
            Self {
                handles,
                queued: 0,
                ping: None,
                close_sent_counted: false,
            }
        }

        pub(super) fn received(&self, len: usize, end: bool) {
            self.handles.payload_received.increment(len as u64);
            if end {
                self.handles.messages_received.increment(1);
            }
        }

        pub(super) fn sent(&mut self, core: &Connection, len: usize, end: bool) {
            self.handles.payload_sent.increment(len as u64);
            if end {
                self.handles.messages_sent.increment(1);
            }
            self.sync_queued(core);
        }

        /// Moves this connection's share of the queued-bytes gauge to what the core holds.
        pub(super) fn sync_queued(&mut self, core: &Connection) {
            let now = core.pending_output_len();
            if now > self.queued {
                self.handles.queued.increment((now - self.queued) as f64);
            } else if now < self.queued {
                self.handles.queued.decrement((self.queued - now) as f64);
            }
            self.queued = now;
        }

        pub(super) fn after_write(&mut self, core: &Connection) {
            self.sync_queued(core);
            if !self.close_sent_counted
                && self.queued == 0
                && let Some(frame) = core.close_sent()
            {
                self.close_sent_counted = true;
                self.handles.close(CLOSE_SENT, frame.as_ref());
            }
        }

        pub(super) fn ping_sent(&mut self, at: Instant, payload: &[u8]) {
            // The same payload again (keepalive): the round trip runs from the first.
            if self.ping.as_ref().is_some_and(|p| p.payload == payload) {
                return;
            }
            self.ping = Some(Box::new(PingOut {
                at,
                payload: Bytes::copy_from_slice(payload),
            }));
        }

        pub(super) fn control(&mut self, event: &Event) {
            match event {
                Event::Pong(payload) => {
                    // Only the pong carrying our ping's payload answers it (a peer may send
                    // unsolicited pongs as heartbeats).
                    if let Some(ping) = self.ping.take_if(|p| p.payload == payload) {
                        let rtt = Instant::now_tokio().saturating_duration_since(ping.at);
                        self.handles.rtt.record(rtt.as_secs_f64());
                    }
                }
                Event::Close(frame) => self.handles.close(CLOSE_RECEIVED, frame.as_ref()),
                _ => {}
            }
        }
    }

    use super::NowTokio;

    impl Drop for Live {
        fn drop(&mut self) {
            self.handles.open.decrement(1.0);
            if self.queued > 0 {
                self.handles.queued.decrement(self.queued as f64);
            }
        }
    }

    pub(super) fn rejected(status: http::StatusCode) {
        let labels = vec![Label::new("status", status_label(status))];
        counter(&Key::from_parts(REJECTED, labels)).increment(1);
    }

    pub(super) fn accepted(version: http::Version) {
        let labels = vec![Label::from_static_parts("http", super::http_label(version))];
        counter(&Key::from_parts(HANDSHAKES_ACCEPTED, labels)).increment(1);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ferrosocket_proto::CloseCode;

    #[test]
    fn http_versions_are_labelled_within_a_bounded_set() {
        assert_eq!(http_label(http::Version::HTTP_11), "1.1");
        assert_eq!(http_label(http::Version::HTTP_2), "2");
        assert_eq!(http_label(http::Version::HTTP_3), "3");
        assert_eq!(http_label(http::Version::HTTP_10), "other");
    }

    #[test]
    fn close_codes_are_labelled_within_a_bounded_set() {
        let label = |code: u16| code_label(Some(&CloseFrame::new(CloseCode::from(code), ""))).into_owned();
        assert_eq!(label(1000), "1000");
        assert_eq!(label(1011), "1011");
        assert_eq!(label(1015), "1015");
        assert_eq!(label(3000), "3xxx");
        assert_eq!(label(3999), "3xxx");
        assert_eq!(label(4000), "4xxx");
        assert_eq!(label(4999), "4xxx");
        assert_eq!(label(1004), "other");
        assert_eq!(label(1016), "other");
        assert_eq!(label(2999), "other");
        assert_eq!(label(5000), "other");
        assert_eq!(code_label(None), "1005");
    }

    #[test]
    fn the_status_label_is_the_numeric_status_of_the_response() {
        assert_eq!(status_label(http::StatusCode::FORBIDDEN), "403");
        assert_eq!(status_label(http::StatusCode::BAD_REQUEST), "400");
        assert_eq!(status_label(http::StatusCode::SERVICE_UNAVAILABLE), "503");
    }

    #[test]
    fn role_labels_are_server_and_client() {
        assert_eq!(role_label(Role::Server), "server");
        assert_eq!(role_label(Role::Client), "client");
    }

    /// Without the feature a connection and a builder carry nothing for metrics.
    #[cfg(not(feature = "metrics"))]
    #[test]
    fn without_the_feature_the_state_is_zero_sized() {
        assert_eq!(std::mem::size_of::<ConnMetrics>(), 0);
        assert_eq!(std::mem::size_of::<Handles>(), 0);
    }

    /// Every metric of the table in the module documentation is registered, and the reverse.
    #[cfg(feature = "metrics")]
    #[test]
    fn the_documented_table_lists_exactly_the_metrics_recorded() {
        let src = include_str!("metrics.rs");
        let documented: Vec<&str> = src
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `ferrosocket_"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let recorded: Vec<String> = live::METRICS
            .iter()
            .map(|(name, _, _)| name.trim_start_matches("ferrosocket_").to_owned())
            .collect();
        assert_eq!(documented, recorded);
    }
}
