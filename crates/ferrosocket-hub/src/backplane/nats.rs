//! The NATS backplane: core subjects for the topics, a JetStream stream for the history.
//!
//! One task per hub owns an `async_nats::Client` and one subscription per topic with local
//! subscribers (subject `{prefix}.{topic}`). The client reconnects by itself, with this
//! backplane's backoff, and subscribes again to what it was subscribed to; its connection
//! events are what the hub hears as outages. With a history, a JetStream stream on
//! `{prefix}.>` keeps the last `keep` messages of each subject, so the core publish that
//! reaches the other nodes is also the one stored.

use super::worker::{Backoff, Front, Publication, Wanted};
use super::{Backplane, BackplaneError, HistoryFuture, Inbound};
use crate::Topic;
use async_nats::jetstream::{self, consumer, stream};
use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

const NAME: &str = "nats";

/// Options of [`NatsBackplane`].
///
/// ```
/// use ferrosocket_hub::backplane::NatsOptions;
/// let mut o = NatsOptions::default();
/// o.prefix = "chat".into();
/// assert_eq!(o.stream_name(), "chat-history");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NatsOptions {
    /// Prefix of every subject, so several services can share one server (default
    /// `"ferrosocket"`): subject `{prefix}.{topic}`.
    pub prefix: String,
    /// First delay before reconnecting after the server is lost (default 100 ms); each failed
    /// attempt doubles it, up to [`max_backoff`](Self::max_backoff).
    pub min_backoff: Duration,
    /// Longest delay between reconnection attempts (default 5 s).
    pub max_backoff: Duration,
    /// Publications waiting for the server at most (default 4096); beyond that, and while the
    /// server is unreachable, a publication reaches local subscribers only and counts in
    /// `HubStats::publish_failed`.
    pub queue: usize,
    /// Limit on connecting and on each JetStream request (default 5 s).
    pub timeout: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            prefix: "ferrosocket".into(),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            queue: 4096,
            timeout: Duration::from_secs(5),
        }
    }
}

impl NatsOptions {
    /// The JetStream stream that holds the history: `{prefix}-history`, with the characters
    /// a stream name cannot hold replaced by `_`.
    pub fn stream_name(&self) -> String {
        let clean: String = self
            .prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{clean}-history")
    }
}

/// A backplane over NATS (feature `nats`): every node subscribes to the subjects of the
/// topics it has local subscribers for, and publishes on them. With
/// [`HubBuilder::history`](crate::HubBuilder::history), a JetStream stream (created on the
/// first publication that needs it; the server must run with JetStream enabled) keeps the
/// last messages of each topic.
///
/// ```no_run
/// use ferrosocket_hub::{Hub, backplane::NatsBackplane};
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::builder()
///     .backplane(NatsBackplane::new("nats://127.0.0.1:4222")?)
///     .build();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NatsBackplane {
    shared: Arc<Shared>,
    front: Front,
}

#[derive(Debug)]
struct Shared {
    addr: ServerAddr,
    url: String,
    options: NatsOptions,
    /// The task's client, for [`Backplane::history`].
    client: Mutex<Option<Client>>,
    /// Whether the client is connected (from its events).
    up: AtomicBool,
    /// Connections made so far: the history stream is checked again after each.
    connects: AtomicU64,
}

impl NatsBackplane {
    /// A backplane for the server at `url` (`nats://host:port`); nothing connects before the
    /// hub starts it.
    ///
    /// # Errors
    /// [`BackplaneError`] when `url` is not a NATS URL.
    pub fn new(url: &str) -> Result<Self, BackplaneError> {
        Self::with_options(url, NatsOptions::default())
    }

    /// [`new`](Self::new) with options.
    ///
    /// # Errors
    /// [`BackplaneError`] when `url` is not a NATS URL.
    pub fn with_options(url: &str, options: NatsOptions) -> Result<Self, BackplaneError> {
        let addr: ServerAddr = url.parse().map_err(|e| BackplaneError {
            backplane: NAME,
            message: format!("{url:?} is not a NATS URL (nats://host:port): {e}"),
        })?;
        Ok(Self {
            front: Front::new(options.queue),
            shared: Arc::new(Shared {
                addr,
                url: url.into(),
                options,
                client: Mutex::new(None),
                up: AtomicBool::new(false),
                connects: AtomicU64::new(0),
            }),
        })
    }
}

impl Backplane for NatsBackplane {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, inbound: Inbound) {
        if let Some((rt, rx)) = self.front.start(NAME, inbound.clone()) {
            rt.spawn(run(self.shared.clone(), self.front.wanted.clone(), rx, inbound));
        }
    }

    fn publish(&self, topic: &Topic, envelope: Bytes, keep: usize) {
        self.front.publish(topic, envelope, keep);
    }

    fn subscribe(&self, topic: &Topic) {
        self.front.subscribe(topic);
    }

    fn unsubscribe(&self, topic: &Topic) {
        self.front.unsubscribe(topic);
    }

    fn history(&self, topic: &Topic, last: usize) -> HistoryFuture {
        let shared = self.shared.clone();
        let subject = shared.subject(topic);
        Box::pin(async move {
            if last == 0 {
                return Ok(Vec::new());
            }
            let client = shared.client.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let Some(client) = client.filter(|_| shared.up.load(Ordering::Relaxed)) else {
                return Err(failure(format!(
                    "{} is unreachable; the history cannot be read until it is back",
                    shared.url
                )));
            };
            let t = shared.options.timeout;
            match tokio::time::timeout(t, read_history(&shared, client, subject, last)).await {
                Ok(r) => r,
                Err(_) => Err(failure(format!(
                    "reading the history from {}: no answer within {t:?}",
                    shared.url
                ))),
            }
        })
    }
}

fn failure(message: String) -> BackplaneError {
    BackplaneError {
        backplane: NAME,
        message,
    }
}

/// Reads `subject`'s messages from the history stream through a short-lived consumer and
/// keeps the last `last`.
async fn read_history(
    shared: &Shared,
    client: Client,
    subject: String,
    last: usize,
) -> Result<Vec<Bytes>, BackplaneError> {
    let js = jetstream::new(client);
    let name = shared.options.stream_name();
    let stream = match js.get_stream(&name).await {
        Ok(s) => s,
        Err(e) => {
            if let jetstream::context::GetStreamErrorKind::JetStream(j) = e.kind()
                && j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            {
                // Nothing was published with a history yet.
                return Ok(Vec::new());
            }
            return Err(failure(format!(
                "stream {name} on {}: {e} (is JetStream enabled on the server?)",
                shared.url
            )));
        }
    };
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: subject.clone(),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: -1,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| failure(format!("reading {subject} from {name}: {e}")))?;
    let consumer_name = consumer.cached_info().name.clone();
    let mut pending = usize::try_from(consumer.cached_info().num_pending).unwrap_or(usize::MAX);
    let mut out: VecDeque<Bytes> = VecDeque::with_capacity(last.min(pending));
    let mut result = Ok(());
    while pending > 0 {
        let batch = match consumer.fetch().max_messages(pending.min(1024)).messages().await {
            Ok(b) => b,
            Err(e) => {
                result = Err(failure(format!("reading {subject} from {name}: {e}")));
                break;
            }
        };
        let got: Vec<_> = batch.collect().await;
        if got.is_empty() {
            break;
        }
        for m in got {
            match m {
                Ok(m) => {
                    pending = pending.saturating_sub(1);
                    if out.len() == last {
                        out.pop_front();
                    }
                    out.push_back(m.message.payload);
                }
                Err(e) => {
                    result = Err(failure(format!("reading {subject} from {name}: {e}")));
                    pending = 0;
                }
            }
        }
    }
    // Best effort: the server deletes it after `inactive_threshold` anyway.
    let _ = stream.delete_consumer(&consumer_name).await;
    result.map(|()| out.into())
}

impl Shared {
    fn subject(&self, topic: &Topic) -> String {
        format!("{}.{topic}", self.options.prefix)
    }

    fn connect_options(self: &Arc<Self>, inbound: &Inbound) -> ConnectOptions {
        let (min, max) = (self.options.min_backoff, self.options.max_backoff);
        let me = Arc::downgrade(self);
        let events = inbound.clone();
        ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(self.options.timeout)
            .reconnect_delay_callback(move |attempts| {
                let mut b = Backoff::new(min, max);
                let mut d = b.next_delay();
                for _ in 1..attempts.min(64) {
                    d = b.next_delay();
                }
                d
            })
            .event_callback(move |event| {
                let (me, inbound) = (me.clone(), events.clone());
                async move {
                    let Some(me) = me.upgrade() else { return };
                    match event {
                        Event::Connected => {
                            me.connects.fetch_add(1, Ordering::Relaxed);
                            me.up.store(true, Ordering::Relaxed);
                            inbound.set_up(true, &format!("connected to {}", me.url));
                        }
                        Event::Disconnected => {
                            me.up.store(false, Ordering::Relaxed);
                            inbound.set_up(false, &format!("lost the connection to {}", me.url));
                        }
                        Event::Closed => {
                            me.up.store(false, Ordering::Relaxed);
                        }
                        other => {
                            tracing::debug!(backplane = NAME, "hub: {}: {other}", me.url);
                        }
                    }
                }
            })
    }
}

/// Aborts a subscription's forwarding task (which drops the subscription: the client sends
/// `UNSUB`) when dropped.
struct Forwarder(AbortHandle);

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The backplane's task; ends when the hub is dropped.
async fn run(
    shared: Arc<Shared>,
    wanted: Arc<Wanted>,
    mut rx: mpsc::Receiver<Publication>,
    inbound: Inbound,
) {
    let options = shared.connect_options(&inbound);
    // With `retry_on_initial_connect` this returns at once and the client connects (and
    // reconnects) in the background; an error here is a configuration error.
    let client = match options.connect(shared.addr.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(backplane = NAME, "hub: cannot use {}: {e}", shared.url);
            inbound.set_up(false, &format!("cannot use {}: {e}", shared.url));
            while rx.recv().await.is_some() {
                inbound.publish_failed();
            }
            return;
        }
    };
    *shared.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
    // Like the Redis backplane, hold the first publications (in the bounded queue) until the
    // first connection is made or has failed for `timeout`, rather than failing them all
    // because the hub was built a moment before the client connected.
    let deadline = tokio::time::Instant::now() + shared.options.timeout;
    while !shared.up.load(Ordering::Relaxed) && inbound.is_alive() {
        if tokio::time::Instant::now() >= deadline {
            inbound.set_up(false, &format!("cannot connect to {}", shared.url));
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut task = Task {
        shared: &shared,
        inbound: &inbound,
        client,
        subs: HashMap::new(),
        stream_checked: None,
        stream_retry_at: None,
    };
    let mut retry = Backoff::new(shared.options.min_backoff, shared.options.max_backoff);
    let mut failed_reconcile = false;
    loop {
        tokio::select! {
            p = rx.recv() => {
                let Some(p) = p else { break };
                task.publish(p).await;
            }
            () = wanted.changed() => {
                failed_reconcile = !task.reconcile(&wanted).await;
            }
            () = tokio::time::sleep(retry.next_delay()), if failed_reconcile => {
                failed_reconcile = !task.reconcile(&wanted).await;
            }
        }
        if !failed_reconcile {
            retry.reset();
        }
        if !inbound.is_alive() {
            break;
        }
    }
    *shared.client.lock().unwrap_or_else(|e| e.into_inner()) = None;
    drop(task);
    tracing::debug!(backplane = NAME, "hub: the hub is gone; the backplane task ends");
}

struct Task<'a> {
    shared: &'a Arc<Shared>,
    inbound: &'a Inbound,
    client: Client,
    subs: HashMap<Topic, Forwarder>,
    /// The connection count when the history stream was last found or created.
    stream_checked: Option<u64>,
    /// After a failure to find or create the history stream: when to try again.
    stream_retry_at: Option<tokio::time::Instant>,
}

impl Task<'_> {
    async fn publish(&mut self, p: Publication) {
        if !self.shared.up.load(Ordering::Relaxed) {
            // The client would buffer it and send it after reconnecting, late; the contract
            // is local delivery only while the broker is away.
            self.inbound.publish_failed();
            return;
        }
        if p.keep > 0
            && self
                .stream_retry_at
                .is_none_or(|t| tokio::time::Instant::now() >= t)
        {
            match self.ensure_stream(p.keep).await {
                Ok(()) => self.stream_retry_at = None,
                Err(e) => {
                    // Once per `max_backoff`, not once per publication.
                    tracing::warn!(backplane = NAME, "hub: {e}; publishing without history");
                    self.stream_retry_at =
                        Some(tokio::time::Instant::now() + self.shared.options.max_backoff);
                }
            }
        }
        let subject = self.shared.subject(&p.topic);
        if let Err(e) = self.client.publish(subject, p.envelope).await {
            tracing::debug!(backplane = NAME, "hub: publish on {}: {e}", self.shared.url);
            self.inbound.publish_failed();
        }
    }

    /// Makes sure the history stream exists (once per connection).
    async fn ensure_stream(&mut self, keep: usize) -> Result<(), String> {
        let connects = self.shared.connects.load(Ordering::Relaxed);
        if self.stream_checked == Some(connects) {
            return Ok(());
        }
        let name = self.shared.options.stream_name();
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![format!("{}.>", self.shared.options.prefix)],
            max_messages_per_subject: i64::try_from(keep).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let js = jetstream::new(self.client.clone());
        let t = self.shared.options.timeout;
        match tokio::time::timeout(t, js.get_or_create_stream(config)).await {
            Ok(Ok(_)) => {
                self.stream_checked = Some(connects);
                Ok(())
            }
            Ok(Err(e)) => Err(format!(
                "history stream {name} on {}: {e} (is JetStream enabled on the server?)",
                self.shared.url
            )),
            Err(_) => Err(format!(
                "history stream {name} on {}: no answer within {t:?}",
                self.shared.url
            )),
        }
    }

    /// Subscribes to the wanted topics not subscribed yet and drops the other subscriptions.
    /// False when a subscription failed (the client is closed): try again later.
    async fn reconcile(&mut self, wanted: &Wanted) -> bool {
        let wanted = wanted.snapshot();
        self.subs.retain(|t, _| wanted.contains(t));
        for topic in wanted {
            if self.subs.contains_key(&topic) {
                continue;
            }
            let mut sub = match self.client.subscribe(self.shared.subject(&topic)).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(backplane = NAME, %topic, "hub: subscribe: {e}");
                    return false;
                }
            };
            let inbound = self.inbound.clone();
            let name = topic.clone();
            let handle = tokio::spawn(async move {
                while let Some(msg) = sub.next().await {
                    inbound.deliver(name.as_str(), msg.payload);
                }
            });
            self.subs.insert(topic, Forwarder(handle.abort_handle()));
        }
        true
    }
}
