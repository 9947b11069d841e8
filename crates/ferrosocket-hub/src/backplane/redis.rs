//! Redis backplane: skeleton with the public signatures only; the implementation lands
//! with the broker tests (issue 11).

use super::{Backplane, BackplaneError, HistoryFuture, Inbound};
use crate::Topic;
use bytes::Bytes;

/// Options of [`RedisBackplane`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Prefix of every channel (subject) name, so several services can share one broker.
    pub prefix: String,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "ferrosocket".into(),
        }
    }
}

/// A backplane over Redis.
#[derive(Debug)]
pub struct RedisBackplane {
    url: String,
    options: RedisOptions,
}

impl RedisBackplane {
    /// A backplane for the broker at `url`; nothing connects before the hub starts it.
    ///
    /// # Errors
    /// [`BackplaneError`] when `url` is not a Redis URL.
    pub fn new(url: &str) -> Result<Self, BackplaneError> {
        Self::with_options(url, RedisOptions::default())
    }

    /// [`new`](Self::new) with options.
    ///
    /// # Errors
    /// [`BackplaneError`] when `url` is not a Redis URL.
    pub fn with_options(url: &str, options: RedisOptions) -> Result<Self, BackplaneError> {
        Ok(Self {
            url: url.into(),
            options,
        })
    }
}

impl Backplane for RedisBackplane {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn start(&self, inbound: Inbound) {
        inbound.set_up(
            false,
            &format!("{} ({}): not implemented yet", self.url, self.options.prefix),
        );
    }
    fn publish(&self, _topic: &Topic, _envelope: Bytes, _keep: usize) {}
    fn subscribe(&self, _topic: &Topic) {}
    fn unsubscribe(&self, _topic: &Topic) {}
    fn history(&self, _topic: &Topic, _last: usize) -> HistoryFuture {
        Box::pin(std::future::ready(Err(BackplaneError {
            backplane: "redis",
            message: "not implemented yet".into(),
        })))
    }
}
