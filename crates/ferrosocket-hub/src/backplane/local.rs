//! Hubs of one process sharing topics without a broker.

use super::{Backplane, HistoryFuture, Inbound};
use crate::Topic;
use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// A bus that joins hubs in one process, as a broker joins nodes: each hub built with
/// [`LocalBus::backplane`] receives what the others publish on the topics it has subscribers
/// for. The history lives in the bus.
///
/// ```
/// use ferrosocket_hub::{Hub, Topic, backplane::LocalBus};
/// let bus = LocalBus::new();
/// let (a, b) = (Hub::builder().backplane(bus.backplane()).build(), Hub::builder().backplane(bus.backplane()).build());
/// let mut sub = b.subscriber();
/// let room = Topic::new("room").unwrap();
/// sub.subscribe(&room);
/// a.publish(&room, "hello");
/// assert!(sub.try_next().is_some());
/// ```
#[derive(Clone, Debug, Default)]
pub struct LocalBus {
    shared: Arc<Mutex<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Per member: its inbound (once started) and its topics.
    members: Vec<(Option<Inbound>, HashSet<Topic>)>,
    history: HashMap<Topic, VecDeque<Bytes>>,
}

impl LocalBus {
    /// A bus with no member.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backplane for one more hub on this bus.
    pub fn backplane(&self) -> LocalBackplane {
        let mut shared = lock(&self.shared);
        shared.members.push((None, HashSet::new()));
        LocalBackplane {
            bus: self.clone(),
            index: shared.members.len() - 1,
        }
    }
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One hub's place on a [`LocalBus`].
#[derive(Debug)]
pub struct LocalBackplane {
    bus: LocalBus,
    index: usize,
}

impl Backplane for LocalBackplane {
    fn name(&self) -> &'static str {
        "local"
    }

    fn start(&self, inbound: Inbound) {
        inbound.set_up(true, "in-process bus");
        lock(&self.bus.shared).members[self.index].0 = Some(inbound);
    }

    fn publish(&self, topic: &Topic, envelope: Bytes, keep: usize) {
        let targets: Vec<Inbound> = {
            let mut shared = lock(&self.bus.shared);
            if keep > 0 {
                let h = shared.history.entry(topic.clone()).or_default();
                h.push_back(envelope.clone());
                while h.len() > keep {
                    h.pop_front();
                }
            }
            // Like a broker, the bus echoes to every subscribed member, the publisher
            // included; the hub skips its own envelopes by their origin.
            shared
                .members
                .iter()
                .filter(|(_, topics)| topics.contains(topic))
                .filter_map(|(inbound, _)| inbound.clone())
                .collect()
        };
        for inbound in targets {
            inbound.deliver(topic.as_str(), envelope.clone());
        }
    }

    fn subscribe(&self, topic: &Topic) {
        lock(&self.bus.shared).members[self.index].1.insert(topic.clone());
    }

    fn unsubscribe(&self, topic: &Topic) {
        lock(&self.bus.shared).members[self.index].1.remove(topic);
    }

    fn history(&self, topic: &Topic, last: usize) -> HistoryFuture {
        let shared = lock(&self.bus.shared);
        let items: Vec<Bytes> = shared
            .history
            .get(topic)
            .map(|h| h.iter().skip(h.len().saturating_sub(last)).cloned().collect())
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(items)))
    }
}
