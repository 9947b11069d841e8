//! Topics for [ferrosocket](https://docs.rs/ferrosocket) servers: publish a message once and
//! every subscribed connection receives it, on this node and, through a broker, on every
//! other node of the service.
//!
//! - A [`Hub`] holds topics and their local [`Subscriber`]s (one per connection).
//! - [`Hub::publish`] frames the message once ([`ferrosocket::PreparedMessage`]) and queues
//!   the same frame for every subscriber; each subscriber's queue is bounded, and a
//!   [`SlowConsumer`] policy says what happens when it is full (drop the oldest, drop the
//!   newest, or disconnect with a close code), counted in [`HubStats`].
//! - [`Subscriber::pump`] serves a connection: it writes deliveries as they come and returns
//!   what the peer sends.
//! - A [`Backplane`](backplane::Backplane) shares topics between nodes: [`backplane::LocalBus`]
//!   in one process, Redis (feature `redis`) and NATS (feature `nats`) across machines. A
//!   node that loses its broker keeps serving its own subscribers and resubscribes when the
//!   broker returns.
//!
//! ```no_run
//! use ferrosocket::Upgrader;
//! use ferrosocket_hub::{Hub, Topic};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::builder().history(50).build();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! let upgrader = Upgrader::new();
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let (hub, upgrader) = (hub.clone(), upgrader.clone());
//!     tokio::spawn(async move {
//!         let Ok(mut conn) = upgrader.accept(stream).await else { return };
//!         let room = Topic::new("lobby").expect("a valid name");
//!         let mut me = hub.subscriber();
//!         me.subscribe(&room);
//!         while let Ok(msg) = me.pump(&mut conn).await {
//!             hub.publish(&room, msg);
//!         }
//!     });
//! }
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backplane;
mod envelope;
mod hub;
mod mailbox;
mod subscriber;
mod topic;

pub use envelope::{Envelope, EnvelopeError, NodeId};
pub use hub::{DEFAULT_QUEUE_CAPACITY, Hub, HubBuilder, HubError, HubStats};
pub use mailbox::SlowConsumer;
pub use subscriber::{Delivery, PUMP_HIGH_WATER, Subscriber};
pub use topic::{MAX_TOPIC_LEN, Topic, TopicError};
