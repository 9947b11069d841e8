//! [`ConnSlot`]: a connection's place under an upgrader's connection limit, shared by the
//! upgrader that takes it and the connection engine that holds it until the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One of an upgrader's connection places; given back when the connection is dropped.
pub(crate) struct ConnSlot(Arc<AtomicUsize>);

impl ConnSlot {
    /// Takes a place if fewer than `limit` of `live` are taken (`None`: no limit).
    pub(crate) fn take(live: &Arc<AtomicUsize>, limit: Option<usize>) -> Option<Self> {
        let limit = limit.unwrap_or(usize::MAX);
        live.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < limit).then_some(n + 1)
        })
        .ok()
        .map(|_| Self(live.clone()))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
