//! The Redis backplane: pub/sub for the topics, lists for the history.
//!
//! One task per hub owns two connections: a pub/sub connection subscribed to the channel
//! `{prefix}:{topic}` of every topic with local subscribers, and a multiplexed connection
//! for `PUBLISH` (with `RPUSH` + `LTRIM` of `{prefix}:history:{topic}` in the same pipeline
//! when the hub keeps a history). When either fails, the task reports the outage, waits with
//! a doubling backoff, reconnects both and subscribes again to what the hub wants then.

use super::worker::{Backoff, Front, Publication, Wanted, wait_out};
use super::{Backplane, BackplaneError, HistoryFuture, Inbound};
use crate::Topic;
use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::{AsyncConnectionConfig, Client};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

const NAME: &str = "redis";
/// Publications written in one pipeline at most, when several are waiting.
const BATCH: usize = 64;

/// Options of [`RedisBackplane`].
///
/// ```
/// use ferrosocket_hub::backplane::RedisOptions;
/// use std::time::Duration;
/// let mut o = RedisOptions::default();
/// o.prefix = "chat".into();
/// o.max_backoff = Duration::from_secs(2);
/// assert_eq!(o.queue, 4096);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Prefix of every channel and key name, so several services can share one server
    /// (default `"ferrosocket"`): channel `{prefix}:{topic}`, history list
    /// `{prefix}:history:{topic}`.
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
    /// Limit on connecting and on each command (default 5 s); a server that does not answer
    /// in time counts as lost.
    pub timeout: Duration,
}

impl Default for RedisOptions {
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

/// A backplane over Redis pub/sub (feature `redis`): every node subscribes to the channels of
/// the topics it has local subscribers for, and publishes on them. With
/// [`HubBuilder::history`](crate::HubBuilder::history), the last messages of each topic are
/// kept in a Redis list that every node reads.
///
/// ```no_run
/// use ferrosocket_hub::{Hub, backplane::RedisBackplane};
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::builder()
///     .history(50)
///     .backplane(RedisBackplane::new("redis://127.0.0.1:6379")?)
///     .build();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisBackplane {
    shared: Arc<Shared>,
    front: Front,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    url: String,
    options: RedisOptions,
    /// The task's current command connection, for [`Backplane::history`].
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl RedisBackplane {
    /// A backplane for the server at `url` (`redis://host:port/db`); nothing connects before
    /// the hub starts it.
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
        let client = Client::open(url).map_err(|e| BackplaneError {
            backplane: NAME,
            message: format!("{url:?} is not a Redis URL (redis://host:port/db): {e}"),
        })?;
        Ok(Self {
            front: Front::new(options.queue),
            shared: Arc::new(Shared {
                client,
                url: url.into(),
                options,
                conn: Mutex::new(None),
            }),
        })
    }
}

impl Backplane for RedisBackplane {
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
        let key = shared.history_key(topic);
        Box::pin(async move {
            if last == 0 {
                return Ok(Vec::new());
            }
            let conn = shared.conn.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let Some(mut conn) = conn else {
                return Err(failure(format!(
                    "{} is unreachable; the history cannot be read until it is back",
                    shared.url
                )));
            };
            let start = -(i64::try_from(last).unwrap_or(i64::MAX));
            let mut cmd = redis::cmd("LRANGE");
            cmd.arg(&key).arg(start).arg(-1);
            let read = cmd.query_async::<Vec<Vec<u8>>>(&mut conn);
            match tokio::time::timeout(shared.options.timeout, read).await {
                Ok(Ok(items)) => Ok(items.into_iter().map(Bytes::from).collect()),
                Ok(Err(e)) => Err(failure(format!("LRANGE {key} on {}: {e}", shared.url))),
                Err(_) => Err(failure(format!(
                    "LRANGE {key} on {}: no answer within {:?}",
                    shared.url, shared.options.timeout
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

impl Shared {
    fn channel(&self, topic: &Topic) -> String {
        format!("{}:{topic}", self.options.prefix)
    }

    fn history_key(&self, topic: &Topic) -> String {
        format!("{}:history:{topic}", self.options.prefix)
    }

    fn set_conn(&self, conn: Option<MultiplexedConnection>) {
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = conn;
    }

    async fn connect(&self) -> Result<(MultiplexedConnection, PubSubSink, PubSubStream), String> {
        let t = self.options.timeout;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(t))
            .set_response_timeout(Some(t));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.url))?;
        let pubsub = tokio::time::timeout(t, self.client.get_async_pubsub())
            .await
            .map_err(|_| format!("connecting to {}: no answer within {t:?}", self.url))?
            .map_err(|e| format!("connecting to {} (pub/sub): {e}", self.url))?;
        let (sink, stream) = pubsub.split();
        Ok((conn, sink, stream))
    }
}

/// The backplane's task: connect, serve until the server is lost, wait, again; ends when the
/// hub is dropped.
async fn run(
    shared: Arc<Shared>,
    wanted: Arc<Wanted>,
    mut rx: mpsc::Receiver<Publication>,
    inbound: Inbound,
) {
    let mut backoff = Backoff::new(shared.options.min_backoff, shared.options.max_backoff);
    while inbound.is_alive() {
        let lost = match shared.connect().await {
            Ok((conn, sink, stream)) => {
                let mut session = Session {
                    shared: &shared,
                    wanted: &wanted,
                    inbound: &inbound,
                    conn,
                    sink,
                    subscribed: HashSet::new(),
                };
                match session.serve(stream, &mut rx, &mut backoff).await {
                    Ended::HubGone => break,
                    Ended::Lost(why) => why,
                }
            }
            Err(why) => why,
        };
        shared.set_conn(None);
        inbound.set_up(false, &lost);
        tracing::debug!(backplane = NAME, "hub: {lost}");
        if !wait_out(backoff.next_delay(), &mut rx, &inbound).await {
            break;
        }
    }
    shared.set_conn(None);
    tracing::debug!(backplane = NAME, "hub: the hub is gone; the backplane task ends");
}

enum Ended {
    HubGone,
    Lost(String),
}

struct Session<'a> {
    shared: &'a Shared,
    wanted: &'a Wanted,
    inbound: &'a Inbound,
    conn: MultiplexedConnection,
    sink: PubSubSink,
    /// The topics the pub/sub connection is subscribed to.
    subscribed: HashSet<Topic>,
}

impl Session<'_> {
    async fn serve(
        &mut self,
        mut stream: PubSubStream,
        rx: &mut mpsc::Receiver<Publication>,
        backoff: &mut Backoff,
    ) -> Ended {
        if let Err(why) = self.reconcile().await {
            return Ended::Lost(why);
        }
        self.shared.set_conn(Some(self.conn.clone()));
        self.inbound
            .set_up(true, &format!("connected to {}", self.shared.url));
        backoff.reset();
        let prefix_len = self.shared.options.prefix.len() + 1;
        let wanted = self.wanted;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        return Ended::Lost(format!("lost the connection to {}", self.shared.url));
                    };
                    if let Some(topic) = msg.get_channel_name().get(prefix_len..) {
                        self.inbound
                            .deliver(topic, Bytes::copy_from_slice(msg.get_payload_bytes()));
                    }
                }
                p = rx.recv() => {
                    let Some(first) = p else { return Ended::HubGone };
                    if let Err(why) = self.publish(first, rx).await {
                        return Ended::Lost(why);
                    }
                }
                () = wanted.changed() => {
                    if let Err(why) = self.reconcile().await {
                        return Ended::Lost(why);
                    }
                }
            }
            if !self.inbound.is_alive() {
                return Ended::HubGone;
            }
        }
    }

    /// Subscribes to the wanted topics not subscribed yet, and unsubscribes from the others.
    async fn reconcile(&mut self) -> Result<(), String> {
        let wanted = self.wanted.snapshot();
        let add: Vec<Topic> = wanted.difference(&self.subscribed).cloned().collect();
        let remove: Vec<Topic> = self.subscribed.difference(&wanted).cloned().collect();
        let t = self.shared.options.timeout;
        if !add.is_empty() {
            let channels: Vec<String> = add.iter().map(|x| self.shared.channel(x)).collect();
            match tokio::time::timeout(t, self.sink.subscribe(&channels)).await {
                Ok(Ok(())) => self.subscribed.extend(add),
                Ok(Err(e)) => return Err(format!("SUBSCRIBE on {}: {e}", self.shared.url)),
                Err(_) => return Err(format!("SUBSCRIBE on {}: no answer", self.shared.url)),
            }
        }
        if !remove.is_empty() {
            let channels: Vec<String> = remove.iter().map(|x| self.shared.channel(x)).collect();
            match tokio::time::timeout(t, self.sink.unsubscribe(&channels)).await {
                Ok(Ok(())) => {
                    for x in &remove {
                        self.subscribed.remove(x);
                    }
                }
                Ok(Err(e)) => return Err(format!("UNSUBSCRIBE on {}: {e}", self.shared.url)),
                Err(_) => return Err(format!("UNSUBSCRIBE on {}: no answer", self.shared.url)),
            }
        }
        Ok(())
    }

    /// Writes `first` and what else is waiting (up to [`BATCH`]) in one pipeline. On failure
    /// they all count as failed.
    async fn publish(
        &mut self,
        first: Publication,
        rx: &mut mpsc::Receiver<Publication>,
    ) -> Result<(), String> {
        let mut pipe = redis::pipe();
        let mut n = 0;
        let mut next = Some(first);
        while let Some(p) = next {
            let channel = self.shared.channel(&p.topic);
            pipe.cmd("PUBLISH").arg(&channel).arg(&p.envelope[..]).ignore();
            if p.keep > 0 {
                let key = self.shared.history_key(&p.topic);
                let from = -(i64::try_from(p.keep).unwrap_or(i64::MAX));
                pipe.cmd("RPUSH").arg(&key).arg(&p.envelope[..]).ignore();
                pipe.cmd("LTRIM").arg(&key).arg(from).arg(-1).ignore();
            }
            n += 1;
            next = if n < BATCH { rx.try_recv().ok() } else { None };
        }
        let t = self.shared.options.timeout;
        let result = tokio::time::timeout(t, pipe.exec_async(&mut self.conn)).await;
        let why = match result {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => format!("PUBLISH on {}: {e}", self.shared.url),
            Err(_) => format!("PUBLISH on {}: no answer within {t:?}", self.shared.url),
        };
        for _ in 0..n {
            self.inbound.publish_failed();
        }
        Err(why)
    }
}
