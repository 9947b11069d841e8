//! One connection's membership in the hub, and the loop that writes its deliveries.

use crate::mailbox::{Mailbox, Taken};
use crate::{Hub, Topic};
use ferrosocket::{CloseFrame, Conn, Error, Message, PreparedMessage};
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};

/// [`Subscriber::pump`] moves deliveries into the connection's write queue while it holds
/// less than this; above it, deliveries wait in the subscriber's bounded queue, where the
/// slow-consumer policy sees them.
pub const PUMP_HIGH_WATER: usize = 64 << 10;

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A publication, framed once for every subscriber
    /// ([`Conn::feed_prepared`] writes it).
    Message(Arc<PreparedMessage>),
    /// The hub disconnected this subscriber (slow consumer, or [`Hub::kick_all`]): close the
    /// connection with this frame. Every later call returns it again.
    Kicked(CloseFrame),
}

/// One connection's membership: its topics and its bounded queue of deliveries. Made by
/// [`Hub::subscriber`]; dropping it leaves every topic.
pub struct Subscriber {
    hub: Hub,
    id: u64,
    mailbox: Arc<Mailbox>,
    topics: Vec<Topic>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("id", &self.id)
            .field("topics", &self.topics)
            .field("queued", &self.queued())
            .finish()
    }
}

impl Subscriber {
    pub(crate) fn new(hub: Hub, id: u64, mailbox: Arc<Mailbox>) -> Self {
        Self {
            hub,
            id,
            mailbox,
            topics: Vec::new(),
        }
    }

    /// Joins `topic`; false if already subscribed, or if the hub has disconnected this
    /// subscriber.
    pub fn subscribe(&mut self, topic: &Topic) -> bool {
        if self.topics.contains(topic) || self.mailbox.kicked().is_some() {
            return false;
        }
        self.topics.push(topic.clone());
        self.hub.add_member(topic, self.id, &self.mailbox)
    }

    /// Leaves `topic`; false if not subscribed. Messages of it already queued stay queued.
    pub fn unsubscribe(&mut self, topic: &Topic) -> bool {
        let Some(i) = self.topics.iter().position(|t| t == topic) else {
            return false;
        };
        self.topics.swap_remove(i);
        self.hub.remove_member(topic, self.id)
    }

    /// The topics joined.
    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Messages waiting in this subscriber's queue.
    pub fn queued(&self) -> usize {
        self.mailbox.len()
    }

    /// The close frame, once the hub has disconnected this subscriber.
    pub fn kicked(&self) -> Option<CloseFrame> {
        self.mailbox.kicked()
    }

    /// The next delivery if one is waiting.
    pub fn try_next(&mut self) -> Option<Delivery> {
        self.take(None)
    }

    /// Waits for the next delivery.
    ///
    /// # Cancel safety
    /// Cancel safe: a delivery is taken from the queue only when this returns it.
    pub async fn next(&mut self) -> Delivery {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The poll form of [`next`](Self::next).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Delivery> {
        match self.take(Some(cx)) {
            Some(d) => Poll::Ready(d),
            None => Poll::Pending,
        }
    }

    fn take(&mut self, cx: Option<&mut Context<'_>>) -> Option<Delivery> {
        match self.mailbox.take(cx.map(|c| c.waker())) {
            Taken::Message(m) => {
                self.hub.inner.counters.delivered.fetch_add(1, Ordering::Relaxed);
                Some(Delivery::Message(m))
            }
            Taken::Kicked(frame) => {
                // Out of every topic at once: the hub stops counting a subscriber it gave up on
                // while its connection says goodbye.
                self.leave_all();
                Some(Delivery::Kicked(frame))
            }
            Taken::Empty => None,
        }
    }

    /// Serves `conn` for this subscriber until the peer sends a message, which it returns:
    /// meanwhile it writes every delivery to `conn` (batched: each wake-up queues what is
    /// waiting, up to [`PUMP_HIGH_WATER`] bytes, then writes once), answers pings and runs
    /// the connection's timers. When the hub disconnects the subscriber it closes `conn`
    /// with the hub's frame and returns the close.
    ///
    /// ```no_run
    /// # async fn serve(hub: ferrosocket_hub::Hub, mut conn: ferrosocket::Conn<tokio::net::TcpStream>) {
    /// let room = ferrosocket_hub::Topic::new("lobby").unwrap();
    /// let mut me = hub.subscriber();
    /// me.subscribe(&room);
    /// while let Ok(msg) = me.pump(&mut conn).await {
    ///     hub.publish(&room, msg);
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// What [`Conn::recv`] and [`Conn::flush`] return: [`Error::Closed`] when the session
    /// ended (after a kick, with the peer's answer to the hub's close frame).
    ///
    /// # Cancel safety
    /// Cancel safe: deliveries move into the connection's queue synchronously, and
    /// [`Conn::recv`] is cancel safe.
    pub async fn pump<S>(&mut self, conn: &mut Conn<S>) -> Result<Message, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match poll_fn(|cx| self.poll_pump(conn, cx)).await {
            Pumped::Message(m) => Ok(m),
            Pumped::Failed(e) => Err(e),
            Pumped::Kicked(frame) => match conn.close(Some(frame)).await {
                Ok(peer) => Err(Error::Closed(peer)),
                Err(e) => Err(e),
            },
        }
    }

    fn poll_pump<S>(&mut self, conn: &mut Conn<S>, cx: &mut Context<'_>) -> Poll<Pumped>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Rounds of feed-and-write per poll before the peer's side gets its turn; a busy
        // topic cannot keep this task from reading (and answering pings) for long.
        const ROUNDS: usize = 16;
        let mut rounds = 0;
        loop {
            // Until the mailbox is empty (its waker is then registered) or the connection
            // holds enough to write.
            while conn.queued_bytes() < PUMP_HIGH_WATER {
                match self.take(Some(cx)) {
                    Some(Delivery::Message(m)) => {
                        if let Err(e) = conn.feed_prepared(&m) {
                            return Poll::Ready(Pumped::Failed(e));
                        }
                    }
                    Some(Delivery::Kicked(frame)) => return Poll::Ready(Pumped::Kicked(frame)),
                    None => break,
                }
            }
            if conn.queued_bytes() >= PUMP_HIGH_WATER
                && let Some(frame) = self.mailbox.watch_kick(cx.waker())
            {
                // Not taking messages, so the mailbox's waker may be spent: a kick must
                // still end a connection whose peer has stopped reading.
                self.leave_all();
                return Poll::Ready(Pumped::Kicked(frame));
            }
            if conn.queued_bytes() > 0 {
                match conn.poll_flush(cx) {
                    // Written out: the mailbox may hold more (it was not read past the high
                    // water mark, so its waker may not be registered): go round again.
                    Poll::Ready(Ok(())) => {
                        rounds += 1;
                        if rounds < ROUNDS {
                            continue;
                        }
                        cx.waker().wake_by_ref();
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Pumped::Failed(e)),
                    // The socket is full: its readiness wakes us.
                    Poll::Pending => {}
                }
            }
            return match conn.poll_recv(cx) {
                Poll::Ready(Ok(m)) => Poll::Ready(Pumped::Message(m)),
                Poll::Ready(Err(e)) => Poll::Ready(Pumped::Failed(e)),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

enum Pumped {
    Message(Message),
    Kicked(CloseFrame),
    Failed(Error),
}

impl Subscriber {
    fn leave_all(&mut self) {
        for topic in std::mem::take(&mut self.topics) {
            self.hub.remove_member(&topic, self.id);
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.leave_all();
        self.hub
            .inner
            .counters
            .subscribers
            .fetch_sub(1, Ordering::Relaxed);
    }
}
