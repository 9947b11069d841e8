//! Backplanes: how hubs on different nodes share their topics through a messaging engine.
//!
//! A hub works alone by default. Given a [`Backplane`], it also hands every publication to
//! it, asks it for the topics its local subscribers want, and receives the other nodes'
//! publications through an [`Inbound`]. Implementations:
//! - [`LocalBus`]: hubs in one process (tests, and a single process with several hubs);
//! - `RedisBackplane` (feature `redis`): Redis pub/sub, history in Redis lists;
//! - `NatsBackplane` (feature `nats`): NATS core subjects, history in a JetStream stream.
//!
//! Every method but [`history`](Backplane::history) is called from inside the hub's
//! bookkeeping and must not block: implementations queue the work for a task of their own.
//! A backplane that loses its broker keeps accepting calls, reports the outage through
//! [`Inbound::set_up`], and resubscribes when the broker is back; local delivery never waits
//! for it.

mod local;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "redis", feature = "nats"))]
mod worker;

pub use local::LocalBus;
#[cfg(feature = "nats")]
pub use nats::{NatsBackplane, NatsOptions};
#[cfg(feature = "redis")]
pub use redis::{RedisBackplane, RedisOptions};

use crate::{Topic, hub::Inner};
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;

/// The boxed future of [`Backplane::history`].
pub type HistoryFuture = Pin<Box<dyn Future<Output = Result<Vec<Bytes>, BackplaneError>> + Send>>;

/// A failure of the broker behind a backplane.
#[derive(Debug, thiserror::Error)]
#[error("{backplane} backplane: {message}")]
pub struct BackplaneError {
    /// Which backplane (`"redis"`, `"nats"`, ...).
    pub backplane: &'static str,
    /// What went wrong, from the broker's client.
    pub message: String,
}

/// Connects a [`Hub`](crate::Hub) to the other nodes. See the [module](self) documentation.
pub trait Backplane: Send + Sync + 'static {
    /// A short name for logs and errors (`"redis"`).
    fn name(&self) -> &'static str;

    /// Called once, when the hub is built: the other nodes' publications go to `inbound`.
    fn start(&self, inbound: Inbound);

    /// Sends an encoded [`Envelope`](crate::Envelope) to the other nodes on `topic`; with
    /// `keep > 0`, also appends it to the topic's history, trimmed to the last `keep`.
    fn publish(&self, topic: &Topic, envelope: Bytes, keep: usize);

    /// The first local subscriber of `topic` arrived: receive the topic from now on.
    fn subscribe(&self, topic: &Topic);

    /// The last local subscriber of `topic` left.
    fn unsubscribe(&self, topic: &Topic);

    /// The last `last` encoded envelopes of `topic`'s history, oldest first.
    fn history(&self, topic: &Topic, last: usize) -> HistoryFuture;
}

/// Where a backplane delivers what it receives, and reports its health. Cheap to clone; it
/// does not keep the hub alive (calls after the hub is dropped do nothing).
#[derive(Clone, Debug)]
pub struct Inbound {
    pub(crate) hub: Weak<Inner>,
}

impl Inbound {
    /// Delivers an encoded envelope received on `topic` to the local subscribers. Envelopes
    /// this node published are skipped; bytes that are not an envelope are counted
    /// (`malformed`) and dropped.
    pub fn deliver(&self, topic: &str, envelope: Bytes) {
        if let Some(hub) = self.hub.upgrade() {
            hub.deliver_remote(topic, envelope);
        }
    }

    /// Reports whether the broker is reachable. Each change is logged once; a change to down
    /// counts an outage.
    pub fn set_up(&self, up: bool, detail: &str) {
        if let Some(hub) = self.hub.upgrade() {
            hub.set_backplane_up(up, detail);
        }
    }

    /// Counts a publication the broker did not take (it was delivered locally only).
    pub fn publish_failed(&self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.count_publish_failed();
        }
    }

    /// Whether the hub still exists; a backplane's task ends when it does not.
    pub fn is_alive(&self) -> bool {
        self.hub.strong_count() > 0
    }
}
