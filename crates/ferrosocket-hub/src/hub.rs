//! The hub: topics, their local subscribers, publication and the counters.

use crate::Topic;
use crate::backplane::{Backplane, BackplaneError, Inbound};
use crate::envelope::{Envelope, NodeId};
use crate::mailbox::{Mailbox, Pushed, SlowConsumer};
use crate::subscriber::Subscriber;
use bytes::Bytes;
use ferrosocket::{CloseFrame, Message, PreparedMessage};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Messages a subscriber may have waiting before [`SlowConsumer`] applies, by default.
pub const DEFAULT_QUEUE_CAPACITY: usize = 256;

/// Topics shared by the connections of a server, and, with a [`Backplane`], by every node of
/// a service.
///
/// A [`publish`](Self::publish) frames the message once as a [`PreparedMessage`] (and
/// compresses it once per distinct compression setting, when written) and queues the same
/// `Arc` for every local subscriber of the topic; each subscriber has a bounded queue and the
/// hub's [`SlowConsumer`] policy applies when it is full. Publishing never waits.
///
/// `Hub` is a handle: clones share the topics.
///
/// ```
/// use ferrosocket_hub::{Delivery, Hub, Topic};
/// let hub = Hub::new();
/// let room = Topic::new("lobby").unwrap();
/// let mut alice = hub.subscriber();
/// alice.subscribe(&room);
/// assert_eq!(hub.publish(&room, "hi"), 1);
/// match alice.try_next() {
///     Some(Delivery::Message(m)) => assert_eq!(&m.server_frame()[..], b"\x81\x02hi"),
///     other => panic!("{other:?}"),
/// }
/// drop(alice);
/// assert_eq!(hub.stats().topics, 0);
/// ```
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node", &self.inner.node)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Hub`].
#[must_use]
pub struct HubBuilder {
    capacity: usize,
    policy: SlowConsumer,
    history: usize,
    backplane: Option<Box<dyn Backplane>>,
    node: Option<NodeId>,
}

impl std::fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubBuilder")
            .field("capacity", &self.capacity)
            .field("policy", &self.policy)
            .field("history", &self.history)
            .field("backplane", &self.backplane.as_ref().map(|b| b.name()))
            .finish()
    }
}

impl HubBuilder {
    /// Messages a subscriber may have waiting (at least 1; default
    /// [`DEFAULT_QUEUE_CAPACITY`]). Each waiting message costs the subscriber a pointer: the
    /// frame itself is shared.
    pub fn queue_capacity(mut self, messages: usize) -> Self {
        self.capacity = messages.max(1);
        self
    }

    /// What to do when a subscriber's queue is full (default: disconnect with 1013).
    pub fn slow_consumer(mut self, policy: SlowConsumer) -> Self {
        self.policy = policy;
        self
    }

    /// Keep the last `messages` publications of each topic (default 0: none), in the
    /// backplane's broker when there is one, else in this process; read them with
    /// [`Hub::history`].
    pub fn history(mut self, messages: usize) -> Self {
        self.history = messages;
        self
    }

    /// Shares the topics with other nodes through `backplane`.
    pub fn backplane(mut self, backplane: impl Backplane) -> Self {
        self.backplane = Some(Box::new(backplane));
        self
    }

    /// This node's id (default: random). Two hubs with the same id skip each other's
    /// publications, so only tests set it.
    pub fn node_id(mut self, id: NodeId) -> Self {
        self.node = Some(id);
        self
    }

    /// The hub; a backplane is started here (it spawns its tasks on the current tokio
    /// runtime, so build a hub with a broker backplane inside one).
    pub fn build(self) -> Hub {
        let inner = Arc::new(Inner {
            node: self.node.unwrap_or_else(NodeId::random),
            capacity: self.capacity,
            policy: self.policy,
            keep: self.history,
            topics: RwLock::new(HashMap::new()),
            local_history: Mutex::new(HashMap::new()),
            backplane_state: AtomicU8::new(if self.backplane.is_none() { UP } else { UNKNOWN }),
            backplane: self.backplane,
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
        });
        if let Some(bp) = &inner.backplane {
            bp.start(Inbound {
                hub: Arc::downgrade(&inner),
            });
        }
        Hub { inner }
    }
}

/// A snapshot of a hub's counters (totals since it was built) and sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// Calls of [`Hub::publish`] on this node.
    pub published: u64,
    /// Publications of other nodes received through the backplane.
    pub received: u64,
    /// Messages queued for a local subscriber.
    pub queued: u64,
    /// Messages a subscriber took from its queue (to write to its connection).
    pub delivered: u64,
    /// Messages dropped by [`SlowConsumer::DropOldest`] or [`SlowConsumer::DropNewest`].
    pub dropped: u64,
    /// Subscribers disconnected by [`SlowConsumer::Disconnect`] or [`Hub::kick_all`].
    pub disconnected: u64,
    /// Publications the backplane's broker did not take (delivered locally only).
    pub publish_failed: u64,
    /// Bytes from the broker that were not an envelope.
    pub malformed: u64,
    /// Times the backplane lost its broker.
    pub outages: u64,
    /// Whether the backplane's broker is reachable (always true without a backplane).
    pub backplane_up: bool,
    /// Live subscribers.
    pub subscribers: u64,
    /// Topics with at least one local subscriber.
    pub topics: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    published: AtomicU64,
    received: AtomicU64,
    queued: AtomicU64,
    pub(crate) delivered: AtomicU64,
    dropped: AtomicU64,
    disconnected: AtomicU64,
    publish_failed: AtomicU64,
    malformed: AtomicU64,
    outages: AtomicU64,
    pub(crate) subscribers: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Local subscribers of one topic, by subscriber id.
type Members = HashMap<u64, Arc<Mailbox>>;

pub(crate) struct Inner {
    pub(crate) node: NodeId,
    capacity: usize,
    policy: SlowConsumer,
    keep: usize,
    topics: RwLock<HashMap<Topic, Members>>,
    /// The history when there is no backplane.
    local_history: Mutex<HashMap<Topic, VecDeque<Message>>>,
    backplane: Option<Box<dyn Backplane>>,
    /// [`UNKNOWN`] until the backplane first reports, then [`UP`] or [`DOWN`].
    backplane_state: AtomicU8,
    next_id: AtomicU64,
    pub(crate) counters: Counters,
}

/// Errors of [`Hub::history`].
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The backplane's broker failed or is unreachable.
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// A hub on its own (no backplane), with the default queue capacity and policy.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Options: queue capacity, slow-consumer policy, history, backplane.
    pub fn builder() -> HubBuilder {
        HubBuilder {
            capacity: DEFAULT_QUEUE_CAPACITY,
            policy: SlowConsumer::default(),
            history: 0,
            backplane: None,
            node: None,
        }
    }

    /// This node's id, carried by its publications.
    pub fn node_id(&self) -> NodeId {
        self.inner.node
    }

    /// A new subscriber with no topic: one per connection. Dropping it unsubscribes it
    /// from everything.
    pub fn subscriber(&self) -> Subscriber {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        bump(&self.inner.counters.subscribers, 1);
        Subscriber::new(self.clone(), id, Arc::new(Mailbox::default()))
    }

    /// Publishes `msg` on `topic`: to every local subscriber, to the backplane (other nodes)
    /// and to the history. Returns how many local subscribers it was queued for. Never waits.
    pub fn publish(&self, topic: &Topic, msg: impl Into<Message>) -> usize {
        let message = msg.into();
        let inner = &self.inner;
        bump(&inner.counters.published, 1);
        let envelope = (inner.backplane.is_some()).then(|| {
            Envelope {
                origin: inner.node,
                message: message.clone(),
            }
            .encode()
        });
        if inner.backplane.is_none() && inner.keep > 0 {
            let mut hist = inner.local_history.lock().unwrap_or_else(|e| e.into_inner());
            let h = hist.entry(topic.clone()).or_default();
            h.push_back(message.clone());
            while h.len() > inner.keep {
                h.pop_front();
            }
        }
        let n = inner.fan_out(topic, message);
        if let (Some(bp), Some(env)) = (&inner.backplane, envelope) {
            bp.publish(topic, env, inner.keep);
        }
        n
    }

    /// The last messages of `topic` (at most the builder's [`history`](HubBuilder::history)
    /// count), oldest first.
    ///
    /// # Errors
    /// [`HubError::Backplane`] when the broker holding the history cannot be read.
    pub async fn history(&self, topic: &Topic) -> Result<Vec<Message>, HubError> {
        let inner = &self.inner;
        if inner.keep == 0 {
            return Ok(Vec::new());
        }
        match &inner.backplane {
            None => {
                let hist = inner.local_history.lock().unwrap_or_else(|e| e.into_inner());
                Ok(hist
                    .get(topic)
                    .map(|h| h.iter().cloned().collect())
                    .unwrap_or_default())
            }
            Some(bp) => {
                let raw = bp.history(topic, inner.keep).await?;
                Ok(raw
                    .into_iter()
                    .filter_map(|b| Envelope::decode(b).ok().map(|e| e.message))
                    .collect())
            }
        }
    }

    /// Disconnects every local subscriber with `frame` (for example 1001 at shutdown, or
    /// 1012 before a restart). Returns how many were disconnected.
    pub fn kick_all(&self, frame: CloseFrame) -> usize {
        let topics = self.inner.topics.read().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::HashSet::new();
        let mut n = 0;
        for members in topics.values() {
            for (id, mb) in members {
                if seen.insert(*id) && mb.kick(frame.clone()) {
                    n += 1;
                }
            }
        }
        bump(&self.inner.counters.disconnected, n as u64);
        n
    }

    /// Local subscribers of `topic`.
    pub fn subscriber_count(&self, topic: &Topic) -> usize {
        let topics = self.inner.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.get(topic).map_or(0, HashMap::len)
    }

    /// The counters and sizes now.
    pub fn stats(&self) -> HubStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let topics = self.inner.topics.read().unwrap_or_else(|e| e.into_inner()).len() as u64;
        HubStats {
            published: get(&c.published),
            received: get(&c.received),
            queued: get(&c.queued),
            delivered: get(&c.delivered),
            dropped: get(&c.dropped),
            disconnected: get(&c.disconnected),
            publish_failed: get(&c.publish_failed),
            malformed: get(&c.malformed),
            outages: get(&c.outages),
            backplane_up: self.inner.backplane_state.load(Ordering::Relaxed) == UP,
            subscribers: get(&c.subscribers),
            topics,
        }
    }

    pub(crate) fn add_member(&self, topic: &Topic, id: u64, mailbox: &Arc<Mailbox>) -> bool {
        let mut topics = self.inner.topics.write().unwrap_or_else(|e| e.into_inner());
        let members = match topics.get_mut(topic) {
            Some(m) => m,
            None => {
                if let Some(bp) = &self.inner.backplane {
                    bp.subscribe(topic);
                }
                topics.entry(topic.clone()).or_default()
            }
        };
        members.insert(id, mailbox.clone()).is_none()
    }

    pub(crate) fn remove_member(&self, topic: &Topic, id: u64) -> bool {
        let mut topics = self.inner.topics.write().unwrap_or_else(|e| e.into_inner());
        let Some(members) = topics.get_mut(topic) else {
            return false;
        };
        let removed = members.remove(&id).is_some();
        if members.is_empty() {
            topics.remove(topic);
            if let Some(bp) = &self.inner.backplane {
                bp.unsubscribe(topic);
            }
        }
        removed
    }
}

impl Inner {
    /// Frames `message` once and queues it for every local subscriber of `topic`.
    fn fan_out(&self, topic: &Topic, message: Message) -> usize {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let Some(members) = topics.get(topic) else {
            return 0;
        };
        let prepared = Arc::new(PreparedMessage::new(message));
        let (mut queued, mut dropped, mut kicked) = (0u64, 0u64, 0u64);
        for mailbox in members.values() {
            match mailbox.push(&prepared, self.capacity, self.policy) {
                Pushed::Queued => queued += 1,
                Pushed::DroppedOne => {
                    // DropOldest queued the new one; DropNewest did not.
                    if self.policy == SlowConsumer::DropOldest {
                        queued += 1;
                    }
                    dropped += 1;
                }
                Pushed::Disconnected => kicked += 1,
                Pushed::Ignored => {}
            }
        }
        drop(topics);
        bump(&self.counters.queued, queued);
        if dropped > 0 {
            bump(&self.counters.dropped, dropped);
        }
        if kicked > 0 {
            bump(&self.counters.disconnected, kicked);
            tracing::debug!(%topic, kicked, "hub: disconnected slow subscribers");
        }
        queued as usize
    }

    pub(crate) fn deliver_remote(&self, topic: &str, envelope: Bytes) {
        let Ok(topic) = Topic::new(topic) else {
            bump(&self.counters.malformed, 1);
            return;
        };
        match Envelope::decode(envelope) {
            Ok(env) if env.origin == self.node => {}
            Ok(env) => {
                bump(&self.counters.received, 1);
                self.fan_out(&topic, env.message);
            }
            Err(e) => {
                bump(&self.counters.malformed, 1);
                tracing::debug!(%topic, error = %e, "hub: dropped bytes from the backplane");
            }
        }
    }

    pub(crate) fn set_backplane_up(&self, up: bool, detail: &str) {
        let now = if up { UP } else { DOWN };
        let was = self.backplane_state.swap(now, Ordering::Relaxed);
        let name = self.backplane.as_ref().map_or("none", |b| b.name());
        if was == now {
            return;
        }
        if up {
            tracing::info!(backplane = name, node = %self.node, "hub: backplane up: {detail}");
        } else {
            bump(&self.counters.outages, 1);
            tracing::warn!(
                backplane = name,
                node = %self.node,
                "hub: backplane down, serving local subscribers only: {detail}"
            );
        }
        #[cfg(feature = "metrics")]
        {
            metrics::gauge!("ferrosocket_hub_backplane_up", "backplane" => name).set(if up {
                1.0
            } else {
                0.0
            });
            if !up {
                metrics::counter!("ferrosocket_hub_backplane_outages_total", "backplane" => name)
                    .increment(1);
            }
        }
    }

    pub(crate) fn count_publish_failed(&self) {
        bump(&self.counters.publish_failed, 1);
    }
}
