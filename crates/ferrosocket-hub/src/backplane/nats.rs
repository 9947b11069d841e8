//! Nats backplane: skeleton with the public signatures only; the implementation lands
//! with the broker tests (issue 11).

use super::{Backplane, BackplaneError, HistoryFuture, Inbound};
use crate::Topic;
use bytes::Bytes;

/// Options of [`NatsBackplane`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NatsOptions {
    /// Prefix of every channel (subject) name, so several services can share one broker.
    pub prefix: String,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            prefix: "ferrosocket".into(),
        }
    }
}

/// A backplane over Nats.
#[derive(Debug)]
pub struct NatsBackplane {
    url: String,
    options: NatsOptions,
}

impl NatsBackplane {
    /// A backplane for the broker at `url`; nothing connects before the hub starts it.
    ///
    /// # Errors
    /// [`BackplaneError`] when `url` is not a Nats URL.
    pub fn new(url: &str) -> Result<Self, BackplaneError> {
        Self::with_options(url, NatsOptions::default())
    }

    /// [`new`](Self::new) with options.
    ///
    /// # Errors
    /// [`BackplaneError`] when `url` is not a Nats URL.
    pub fn with_options(url: &str, options: NatsOptions) -> Result<Self, BackplaneError> {
        Ok(Self {
            url: url.into(),
            options,
        })
    }
}

impl Backplane for NatsBackplane {
    fn name(&self) -> &'static str {
        "nats"
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
            backplane: "nats",
            message: "not implemented yet".into(),
        })))
    }
}
