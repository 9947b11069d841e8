//! Limits and options of a [`Connection`](crate::Connection), each default with its reason.

use crate::timers::{Keepalive, SlowPeerPolicy};
use std::time::Duration;

/// Options for a [`Connection`](crate::Connection).
///
/// Build one from [`Config::default()`] and the by-value setters:
///
/// ```
/// use ferrosocket_proto::Config;
/// let config = Config::default().max_message_size(Some(1 << 20)).auto_pong(false);
/// assert_eq!(config.max_message_size, Some(1 << 20));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest message, in bytes, after reassembly (and after inflation, when compressed).
    /// A peer that declares or sends more is closed with 1009 before we allocate for it.
    ///
    /// Default: 64 MiB. Finite, because an unlimited size lets any peer exhaust memory
    /// (tungstenite and axum use the same figure). `None` means unlimited. Messages received
    /// in [`ReadMode::Streamed`](crate::ReadMode::Streamed) are not held whole: they are
    /// bounded by [`max_streamed_message_size`](Self::max_streamed_message_size) instead.
    pub max_message_size: Option<usize>,
    /// The largest single frame payload, in bytes; bigger frames are closed with 1009.
    ///
    /// Default: 16 MiB, which bounds how much one frame can make us buffer. `None` means
    /// unlimited (still bounded by `max_message_size`). It applies to streamed messages too,
    /// where a frame is handed out as it arrives and the limit is a protocol limit rather than
    /// a memory bound.
    pub max_frame_size: Option<usize>,
    /// How many bytes to make room for before each socket read when no large frame is pending.
    ///
    /// Default: 64 KiB, so that one read takes in a whole burst of frames (16 messages of
    /// 1 KiB, or four of 16 KiB) rather than one frame per syscall. It costs nothing while the
    /// connection is idle: the buffer is handed back whenever a read would block (see
    /// [`Connection::release_idle_buffers`](crate::Connection::release_idle_buffers)).
    pub read_buffer_size: usize,
    /// Answer each ping with a pong automatically.
    ///
    /// Default: `true`, as RFC 6455 §5.5.2 requires. Turn it off only to answer pings yourself
    /// with [`Connection::send_pong`](crate::Connection::send_pong).
    pub auto_pong: bool,
    /// Answer the peer's close frame with a close frame carrying the same code automatically.
    ///
    /// Default: `true` (RFC 6455 §5.5.1). With `false`, call
    /// [`Connection::send_close`](crate::Connection::send_close) after the
    /// [`Event::Close`](crate::Event::Close) event.
    pub auto_close_reply: bool,
    /// The largest streamed message, in bytes, counted as delivered (after inflation, when
    /// compressed): applies instead of [`max_message_size`](Self::max_message_size) to
    /// messages received in [`ReadMode::Streamed`](crate::ReadMode::Streamed). A peer that
    /// declares or sends more is closed with 1009 before the excess is delivered.
    ///
    /// Default: 16 GiB. Streamed bytes are handed to the application chunk by chunk and never
    /// held whole, so the ceiling can sit far above `max_message_size`; it stays finite so that
    /// a peer cannot keep one message going forever. `None` means unlimited.
    pub max_streamed_message_size: Option<u64>,
    /// The largest payload one [`Event::Chunk`](crate::Event::Chunk) carries, in bytes.
    ///
    /// Default: 64 KiB, the size of the read buffer: a chunk is at most what one read brings,
    /// and for a compressed message it bounds what is inflated per event (a small input that
    /// inflates hugely comes out in many chunks, never in one large allocation).
    pub stream_chunk_size: usize,
    /// Accept unmasked frames from clients, against RFC 6455 §5.1.
    ///
    /// Default: `false`. Only for peers known to be broken; masking protects intermediaries.
    pub dangerous_accept_unmasked_frames: bool,
    /// Ping a silent peer and end the connection (1006) when nothing comes back: see
    /// [`Keepalive`].
    ///
    /// Default: off. The application chooses its liveness policy (the CLI turns it on).
    pub keepalive: Option<Keepalive>,
    /// Close with 1001 ("idle timeout") when no message went either way for this long.
    ///
    /// Default: off; idle connections are legitimate in many protocols.
    pub idle_timeout: Option<Duration>,
    /// How long to wait, after queueing our close frame, for the peer's close frame and the end
    /// of the transport; then give up ([`Timer::CloseHandshake`](crate::Timer::CloseHandshake)).
    ///
    /// Default: 10 s. A peer that never answers close must not hold the connection.
    pub close_timeout: Option<Duration>,
    /// What to do when queued output makes no progress: see [`SlowPeerPolicy`].
    ///
    /// Default: fail with 1008 after 60 s without progress.
    pub slow_peer: SlowPeerPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_size: Some(64 << 20),
            max_frame_size: Some(16 << 20),
            read_buffer_size: 64 << 10,
            max_streamed_message_size: Some(16 << 30),
            stream_chunk_size: 64 << 10,
            auto_pong: true,
            auto_close_reply: true,
            dangerous_accept_unmasked_frames: false,
            keepalive: None,
            idle_timeout: None,
            close_timeout: Some(Duration::from_secs(10)),
            slow_peer: SlowPeerPolicy::default(),
        }
    }
}

impl Config {
    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, bytes: Option<usize>) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`max_frame_size`](Self::max_frame_size).
    pub fn max_frame_size(mut self, bytes: Option<usize>) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`read_buffer_size`](Self::read_buffer_size) (at least 64 bytes).
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes.max(64);
        self
    }

    /// Sets [`max_streamed_message_size`](Self::max_streamed_message_size).
    pub fn max_streamed_message_size(mut self, bytes: Option<u64>) -> Self {
        self.max_streamed_message_size = bytes;
        self
    }

    /// Sets [`stream_chunk_size`](Self::stream_chunk_size) (at least 1 byte).
    pub fn stream_chunk_size(mut self, bytes: usize) -> Self {
        self.stream_chunk_size = bytes.max(1);
        self
    }

    /// Sets [`auto_pong`](Self::auto_pong).
    pub fn auto_pong(mut self, on: bool) -> Self {
        self.auto_pong = on;
        self
    }

    /// Sets [`auto_close_reply`](Self::auto_close_reply).
    pub fn auto_close_reply(mut self, on: bool) -> Self {
        self.auto_close_reply = on;
        self
    }

    /// Sets [`dangerous_accept_unmasked_frames`](Self::dangerous_accept_unmasked_frames).
    pub fn dangerous_accept_unmasked_frames(mut self, on: bool) -> Self {
        self.dangerous_accept_unmasked_frames = on;
        self
    }

    /// Sets [`keepalive`](Self::keepalive).
    pub fn keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    pub fn idle_timeout(mut self, after: Option<Duration>) -> Self {
        self.idle_timeout = after;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    pub fn close_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`slow_peer`](Self::slow_peer).
    pub fn slow_peer(mut self, policy: SlowPeerPolicy) -> Self {
        self.slow_peer = policy;
        self
    }
}
