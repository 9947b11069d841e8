//! [`ConnOptions`]: the options of a connection, shared by every connection an `Upgrader` or a
//! `Dialer` makes, and the macro that gives both builders the same one-line setters for them.

use crate::pool::BufferPool;
use crate::shutdown::Shutdown;
use ferrosocket_proto::{Config, Connection, DeflateConfig, DeflateParams, Keepalive, Role, SlowPeerPolicy};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The options of a WebSocket connection, the same on the server and the client side: the
/// protocol core's [`Config`] (limits, read buffer), compression, buffering and timers.
///
/// Build one with by-value setters and give it to
/// [`Upgrader::options`](crate::Upgrader::options) or [`Dialer::options`](crate::Dialer::options);
/// every setter is also on both builders, which delegate here. A builder keeps its options
/// behind an `Arc`: its connections share them, none copies them.
///
/// | option | default | why |
/// |---|---|---|
/// | [`max_message_size`](Self::max_message_size) | 64 MiB | finite: a peer cannot make us allocate without bound |
/// | [`max_frame_size`](Self::max_frame_size) | 16 MiB | bounds one frame |
/// | [`read_buffer_size`](Self::read_buffer_size) | 64 KiB | a burst of frames per read; lent by the thread and given back whenever a read would block, so idle connections hold none |
/// | [`write_buffer_size`](Self::write_buffer_size) | 64 KiB | queued bytes that trigger a write during [`Conn::feed`](crate::Conn::feed) |
/// | [`max_write_buffer_size`](Self::max_write_buffer_size) | 4 MiB | unwritten output beyond which the connection stops reading |
/// | [`write_buffer_pool`](Self::write_buffer_pool) | none (each thread lends its connections one buffer) | a pool is for buffers of your own making; the thread's spare needs no lock |
/// | [`close_timeout`](Self::close_timeout) | 10 s | a peer that never answers our close must not hold the connection |
/// | [`keepalive`](Self::keepalive) | off | the application chooses its liveness policy (the CLI turns it on) |
/// | [`idle_timeout`](Self::idle_timeout) | off | idle connections are legitimate in many protocols |
/// | [`slow_peer_policy`](Self::slow_peer_policy) | close with 1008 after 60 s without write progress | memory stays bounded either way; this frees the connection |
/// | [`enable_compression`](Self::enable_compression) | off | compression costs CPU and memory per connection |
/// | [`shutdown`](Self::shutdown) | none | a server ties its connections to its own [`Shutdown`] |
///
/// ```
/// use ferrosocket::{ConnOptions, Dialer, Upgrader};
/// use std::time::Duration;
/// let options = ConnOptions::new()
///     .max_message_size(Some(1 << 20))
///     .keepalive(Duration::from_secs(30), Duration::from_secs(10));
/// let upgrader = Upgrader::new().options(options.clone());
/// let dialer = Dialer::new().options(options);
/// # let _ = (upgrader, dialer);
/// ```
#[derive(Clone)]
pub struct ConnOptions {
    pub(crate) config: Config,
    pub(crate) deflate: Option<DeflateConfig>,
    pub(crate) write_buffer_size: usize,
    pub(crate) max_write_buffer_size: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) pool: Option<Arc<dyn BufferPool>>,
    pub(crate) keepalive: Option<(Duration, Duration)>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) slow_peer: SlowPeerPolicy,
    /// The metric handles its connections share (nothing without feature `metrics`).
    pub(crate) metrics: crate::metrics::Handles,
    pub(crate) shutdown: Option<Shutdown>,
    /// The core configuration last handed to a connection, shared by the next ones.
    config_cache: ConfigCache,
}

/// The protocol core's configuration last handed out, so that every connection made with the
/// same settings points at one copy instead of holding its own (160 bytes each). Compared
/// before it is reused, so a builder changed since can never hand out a stale one; a clone of
/// the options starts with an empty cache.
#[derive(Default)]
struct ConfigCache(std::sync::Mutex<Option<Arc<Config>>>);

impl Clone for ConfigCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl ConfigCache {
    fn share(&self, config: Config) -> Arc<Config> {
        let Ok(mut cached) = self.0.lock() else {
            return Arc::new(config);
        };
        match &*cached {
            Some(shared) if **shared == config => shared.clone(),
            _ => {
                let shared = Arc::new(config);
                *cached = Some(shared.clone());
                shared
            }
        }
    }
}

impl Default for ConnOptions {
    fn default() -> Self {
        Self {
            config: Config::default(),
            deflate: None,
            write_buffer_size: 64 << 10,
            max_write_buffer_size: 4 << 20,
            close_timeout: Duration::from_secs(10),
            pool: None,
            keepalive: None,
            idle_timeout: None,
            slow_peer: SlowPeerPolicy::default(),
            metrics: crate::metrics::Handles::default(),
            shutdown: None,
            config_cache: ConfigCache::default(),
        }
    }
}

impl fmt::Debug for ConnOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnOptions")
            .field("config", &self.config)
            .field("deflate", &self.deflate.is_some())
            .field("write_buffer_size", &self.write_buffer_size)
            .field("max_write_buffer_size", &self.max_write_buffer_size)
            .field("close_timeout", &self.close_timeout)
            .field("pool", &self.pool.is_some())
            .field("keepalive", &self.keepalive)
            .field("idle_timeout", &self.idle_timeout)
            .field("slow_peer", &self.slow_peer)
            .field("shutdown", &self.shutdown.is_some())
            .finish()
    }
}

impl ConnOptions {
    /// The defaults in the table above.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes made room for before each read (see [`Config::read_buffer_size`]). Default
    /// 64 KiB: a burst of frames per read; the buffer is lent by the thread and given back
    /// whenever a read would block, so idle connections hold none.
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.config = self.config.read_buffer_size(bytes);
        self
    }

    /// Queued bytes that make [`Conn::feed`](crate::Conn::feed) write (at least 1 KiB).
    /// Default 64 KiB: replies queued while reading leave together in few writes.
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes.max(1024);
        self
    }

    /// Largest amount of unwritten output before a connection stops reading from a peer that
    /// does not read what it is sent. Default 4 MiB: memory per connection stays bounded
    /// while a slow peer catches up.
    pub fn max_write_buffer_size(mut self, bytes: usize) -> Self {
        self.max_write_buffer_size = bytes;
        self
    }

    /// Takes write buffers from `pool` instead of the thread's spare: a connection holds one
    /// only while writing either way. Default: none (each thread lends its connections one
    /// buffer, with no lock); a pool is for buffers of your own making or sizing.
    pub fn write_buffer_pool(mut self, pool: Arc<dyn BufferPool>) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Largest message accepted; bigger ones close the connection with 1009. `None`:
    /// unlimited. Default 64 MiB: finite, so a peer cannot make us allocate without bound.
    pub fn max_message_size(mut self, bytes: Option<usize>) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// Largest frame accepted; bigger ones close the connection with 1009. `None`:
    /// unlimited. Default 16 MiB: bounds one frame.
    pub fn max_frame_size(mut self, bytes: Option<usize>) -> Self {
        self.config.max_frame_size = bytes;
        self
    }

    /// How long [`Conn::close`](crate::Conn::close) waits for the peer's close frame.
    /// Default 10 s: a peer that never answers our close must not hold the connection.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Replaces the protocol core's whole configuration (this undoes earlier
    /// [`read_buffer_size`](Self::read_buffer_size), [`max_message_size`](Self::max_message_size)
    /// and [`max_frame_size`](Self::max_frame_size) calls). Default: [`Config::default`].
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Negotiate permessage-deflate (RFC 7692) with default settings. Default: off
    /// (compression costs CPU and memory per connection). Context takeover is supported in
    /// both directions.
    pub fn enable_compression(self, on: bool) -> Self {
        self.deflate(on.then(DeflateConfig::default))
    }

    /// Negotiate permessage-deflate with these settings (`None`: no compression). See
    /// [`DeflateConfig`] for the memory/ratio trade-offs. A server accepts the client's offer
    /// within these settings; a client offers them and checks the server's answer against
    /// its offer (RFC 7692 §7.1). Default: `None`.
    pub fn deflate(mut self, config: Option<DeflateConfig>) -> Self {
        self.deflate = config;
        self
    }

    /// Pings a silent peer every `interval` and drops it (1006) when nothing arrives within
    /// `timeout` of a ping. Default: off (the application chooses its liveness policy).
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive = Some((interval, timeout));
        self
    }

    /// Closes connections (1001) on which no message went either way for `after`.
    /// Default: off (idle connections are legitimate in many protocols).
    pub fn idle_timeout(mut self, after: Option<Duration>) -> Self {
        self.idle_timeout = after;
        self
    }

    /// What to do with a peer that stops reading. Default: close with 1008 after 60 s without
    /// write progress (memory stays bounded either way; this frees the connection).
    pub fn slow_peer_policy(mut self, policy: SlowPeerPolicy) -> Self {
        self.slow_peer = policy;
        self
    }

    /// Ties every connection made with these options to `shutdown`: each holds one of its
    /// [`ShutdownToken`](crate::ShutdownToken)s from the moment it is built (as if
    /// [`Conn::set_shutdown`](crate::Conn::set_shutdown) had been called), so
    /// [`Shutdown::trigger`] closes them all with 1001 and [`Shutdown::wait`] waits for them.
    /// Default: none.
    pub fn shutdown(mut self, shutdown: &Shutdown) -> Self {
        self.shutdown = Some(shutdown.clone());
        self
    }

    /// The protocol core of a new connection with these options: the core's [`Config`], and
    /// permessage-deflate when the handshake agreed on `deflate` (and compression is
    /// configured; the handshake only agrees when it is). Timers are applied by the engine.
    pub(crate) fn new_core(&self, role: Role, deflate: Option<&DeflateParams>) -> Connection {
        // The timers go into the shared configuration too, so that `apply_timers` finds them
        // set and copies nothing.
        let mut config = self.config.clone();
        config.keepalive = self.keepalive.map(|(i, t)| Keepalive::new(i, t));
        config.idle_timeout = self.idle_timeout;
        config.close_timeout = Some(self.close_timeout);
        config.slow_peer = self.slow_peer;
        let mut core = Connection::with_shared_config(role, self.config_cache.share(config));
        if let (Some(params), Some(cfg)) = (deflate, &self.deflate) {
            core.enable_deflate(params, cfg);
        }
        core
    }

    /// Hands the timer settings to a new connection's core, which runs the timers.
    pub(crate) fn apply_timers(&self, core: &mut Connection) {
        core.set_keepalive(self.keepalive.map(|(i, t)| Keepalive::new(i, t)));
        core.set_idle_timeout(self.idle_timeout);
        core.set_close_timeout(Some(self.close_timeout));
        core.set_slow_peer_policy(self.slow_peer);
    }
}

/// Gives a builder (`Upgrader`, `Dialer`) the [`ConnOptions`] setters as inherent methods,
/// each a one-line delegation, plus `options` and `conn_options`. The builder provides
/// `fn with_options(self, f: impl FnOnce(ConnOptions) -> ConnOptions) -> Self` and
/// `fn options_ref(&self) -> &ConnOptions`.
///
/// A macro rather than a trait: inherent methods need no import, so code written against the
/// builders compiles unchanged, and the rustdoc of each builder lists them.
macro_rules! conn_options_setters {
    () => {
        /// Replaces all the connection options at once (see [`ConnOptions`](crate::ConnOptions)).
        pub fn options(self, options: crate::ConnOptions) -> Self {
            self.with_options(|_| options)
        }

        /// The connection options every connection made from here gets.
        pub fn conn_options(&self) -> &crate::ConnOptions {
            self.options_ref()
        }

        /// See [`ConnOptions::read_buffer_size`](crate::ConnOptions::read_buffer_size).
        pub fn read_buffer_size(self, bytes: usize) -> Self {
            self.with_options(|o| o.read_buffer_size(bytes))
        }

        /// See [`ConnOptions::write_buffer_size`](crate::ConnOptions::write_buffer_size).
        pub fn write_buffer_size(self, bytes: usize) -> Self {
            self.with_options(|o| o.write_buffer_size(bytes))
        }

        /// See [`ConnOptions::max_write_buffer_size`](crate::ConnOptions::max_write_buffer_size).
        pub fn max_write_buffer_size(self, bytes: usize) -> Self {
            self.with_options(|o| o.max_write_buffer_size(bytes))
        }

        /// See [`ConnOptions::write_buffer_pool`](crate::ConnOptions::write_buffer_pool).
        pub fn write_buffer_pool(self, pool: std::sync::Arc<dyn crate::BufferPool>) -> Self {
            self.with_options(|o| o.write_buffer_pool(pool))
        }

        /// See [`ConnOptions::max_message_size`](crate::ConnOptions::max_message_size).
        pub fn max_message_size(self, bytes: Option<usize>) -> Self {
            self.with_options(|o| o.max_message_size(bytes))
        }

        /// See [`ConnOptions::max_frame_size`](crate::ConnOptions::max_frame_size).
        pub fn max_frame_size(self, bytes: Option<usize>) -> Self {
            self.with_options(|o| o.max_frame_size(bytes))
        }

        /// See [`ConnOptions::close_timeout`](crate::ConnOptions::close_timeout).
        pub fn close_timeout(self, timeout: std::time::Duration) -> Self {
            self.with_options(|o| o.close_timeout(timeout))
        }

        /// See [`ConnOptions::config`](crate::ConnOptions::config).
        pub fn config(self, config: ferrosocket_proto::Config) -> Self {
            self.with_options(|o| o.config(config))
        }

        /// See [`ConnOptions::enable_compression`](crate::ConnOptions::enable_compression).
        pub fn enable_compression(self, on: bool) -> Self {
            self.with_options(|o| o.enable_compression(on))
        }

        /// See [`ConnOptions::deflate`](crate::ConnOptions::deflate).
        pub fn deflate(self, config: Option<ferrosocket_proto::DeflateConfig>) -> Self {
            self.with_options(|o| o.deflate(config))
        }

        /// See [`ConnOptions::keepalive`](crate::ConnOptions::keepalive).
        pub fn keepalive(self, interval: std::time::Duration, timeout: std::time::Duration) -> Self {
            self.with_options(|o| o.keepalive(interval, timeout))
        }

        /// See [`ConnOptions::idle_timeout`](crate::ConnOptions::idle_timeout).
        pub fn idle_timeout(self, after: Option<std::time::Duration>) -> Self {
            self.with_options(|o| o.idle_timeout(after))
        }

        /// See [`ConnOptions::slow_peer_policy`](crate::ConnOptions::slow_peer_policy).
        pub fn slow_peer_policy(self, policy: crate::SlowPeerPolicy) -> Self {
            self.with_options(|o| o.slow_peer_policy(policy))
        }

        /// See [`ConnOptions::shutdown`](crate::ConnOptions::shutdown).
        pub fn shutdown(self, shutdown: &crate::Shutdown) -> Self {
            self.with_options(|o| o.shutdown(shutdown))
        }
    };
}

pub(crate) use conn_options_setters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_with_the_same_settings_share_one_config() {
        let options = ConnOptions::new().keepalive(Duration::from_secs(30), Duration::from_secs(10));
        let a = options.new_core(Role::Server, None);
        let b = options.new_core(Role::Server, None);
        assert!(std::ptr::eq(a.config(), b.config()), "one copy for both");
        assert_eq!(
            a.config().keepalive,
            Some(Keepalive::new(Duration::from_secs(30), Duration::from_secs(10)))
        );
        // Applying the same timers again copies nothing.
        let mut c = options.new_core(Role::Server, None);
        options.apply_timers(&mut c);
        assert!(std::ptr::eq(a.config(), c.config()));
        // A connection that changes a setting gets a copy of its own; the others keep theirs.
        c.set_max_message_size(Some(10));
        assert!(!std::ptr::eq(a.config(), c.config()));
        assert_ne!(a.config().max_message_size, Some(10));
        // Options changed after the first connection hand out the new settings.
        let changed = options.clone().max_message_size(Some(99));
        assert_eq!(
            changed.new_core(Role::Server, None).config().max_message_size,
            Some(99)
        );
        assert!(std::ptr::eq(
            a.config(),
            options.new_core(Role::Server, None).config()
        ));
    }
}
