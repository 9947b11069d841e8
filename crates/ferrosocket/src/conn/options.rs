//! Connection options the async layer keeps beside the core's [`Config`](ferrosocket_proto::Config).

use crate::pool::BufferPool;
use ferrosocket_proto::{Connection, Keepalive, SlowPeerPolicy};
use std::sync::Arc;
use std::time::Duration;

/// Options shared by every connection of an `Upgrader`/`Dialer` (behind an `Arc`, copied on
/// write). The timer settings are handed to each connection's core, which runs the timers.
#[derive(Clone)]
pub(crate) struct IoOptions {
    pub(crate) write_buffer_size: usize,
    pub(crate) max_write_buffer_size: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) pool: Option<Arc<dyn BufferPool>>,
    pub(crate) keepalive: Option<(Duration, Duration)>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) slow_peer: SlowPeerPolicy,
}

impl Default for IoOptions {
    fn default() -> Self {
        Self {
            write_buffer_size: 64 << 10,
            max_write_buffer_size: 4 << 20,
            close_timeout: Duration::from_secs(10),
            pool: None,
            keepalive: None,
            idle_timeout: None,
            slow_peer: SlowPeerPolicy::default(),
        }
    }
}

impl IoOptions {
    /// Hands the timer settings to a new connection's core.
    pub(crate) fn apply_timers(&self, core: &mut Connection) {
        core.set_keepalive(self.keepalive.map(|(i, t)| Keepalive::new(i, t)));
        core.set_idle_timeout(self.idle_timeout);
        core.set_close_timeout(Some(self.close_timeout));
        core.set_slow_peer_policy(self.slow_peer);
    }
}
