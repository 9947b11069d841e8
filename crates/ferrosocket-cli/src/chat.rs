//! `ferrosocket chat`: a chat node on ferrosocket-hub, with a page to use it from a browser.
//!
//! Each `--listen` is one node with its own [`Hub`]. With `--redis` or `--nats` every node's
//! hub has its own backplane to the broker (so nodes in other processes share the rooms, and
//! the history lives in the broker); without one, the nodes of this process are joined by one
//! [`LocalBus`].
//!
//! Routes: `GET /` the page, `GET /stats` the node's [`HubStats`] as JSON,
//! `GET /ws?room=ROOM&name=NAME` a chat session (JSON lines, history first),
//! `GET /ws?room=ROOM&raw=1` a raw session (messages published and delivered verbatim: the
//! fan-out benchmark's mode).

use crate::echo::{listen, shown};
use ferrosocket::proto::DeflateConfig;
use ferrosocket::{
    CloseCode, CloseFrame, Conn, Error, IncomingRequest, Message, Shutdown, ShutdownToken, UpgradeRequest,
    Upgrader,
};
use ferrosocket_hub::backplane::{LocalBus, NatsBackplane, RedisBackplane};
use ferrosocket_hub::{Delivery, Hub, HubStats, SlowConsumer, Subscriber, Topic};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PAGE: &str = include_str!("chat.html");

/// The longest chat line a client may send, in bytes; a longer one closes with 1009.
pub(crate) const MAX_LINE: usize = 4 << 10;
/// The longest name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 64;
/// The longest message of a raw session (the benchmark's), in bytes.
const MAX_RAW_MESSAGE: usize = 1 << 20;
/// The name of a client that gives none.
const ANONYMOUS: &str = "anonymous";
/// The topic of room `ROOM` is `room:ROOM`.
const ROOM_PREFIX: &str = "room:";
/// Bound on reading a room's history from the broker when a client joins; past it the client
/// joins with no history rather than waiting for a broker that is down.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(2);

/// Options of `ferrosocket chat`.
#[derive(clap::Args, Debug)]
pub(crate) struct ChatArgs {
    /// Address of a chat node: IP:PORT or HOST:PORT (port 0 picks a free port, printed).
    /// Repeat for several nodes in this process, each with its own hub.
    #[arg(long = "listen", value_name = "HOST:PORT", default_value = "127.0.0.1:8081")]
    listen: Vec<String>,
    /// Share rooms and history through this Redis server (e.g. redis://127.0.0.1:6379).
    #[arg(long, value_name = "URL", conflicts_with = "nats")]
    redis: Option<String>,
    /// Share rooms and history through this NATS server (e.g. nats://127.0.0.1:4222;
    /// history needs JetStream, `nats-server -js`).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// Messages of each room kept and sent to a client when it joins.
    #[arg(long, value_name = "N", default_value_t = 50)]
    history: usize,
    /// Messages a client may have waiting before --slow-consumer applies.
    #[arg(long, value_name = "N", default_value_t = ferrosocket_hub::DEFAULT_QUEUE_CAPACITY)]
    queue: usize,
    /// What to do with a client whose queue is full: disconnect it (close 1013, try again
    /// later), or drop its oldest or the newest message.
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = SlowPolicy::Disconnect)]
    slow_consumer: SlowPolicy,
    /// The benchmark's baseline: write each delivery with `send` (framed, compressed and
    /// flushed per client and message) instead of the hub's prepared, batched writes.
    #[arg(long)]
    naive: bool,
    /// Print only the start, the shutdown and errors: not each join and leave.
    #[arg(long, short)]
    quiet: bool,
    /// Worker threads (0: one per CPU core; 1 runs everything on one thread).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Accept connections from pages of any origin (default: same origin only).
    #[arg(long)]
    allow_any_origin: bool,
    /// Do not negotiate permessage-deflate compression (on by default).
    #[arg(long)]
    no_compression: bool,
    /// Ping a silent client after this many seconds (0 turns keepalive off).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    keepalive: u64,
    /// On Ctrl-C or SIGTERM, how long to wait for clients to answer the 1001 close.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    shutdown_timeout: u64,
}

/// `--slow-consumer`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlowPolicy {
    /// Close the client's connection with 1013 (try again later).
    Disconnect,
    /// Drop the oldest waiting message to make room.
    DropOldest,
    /// Drop the new message.
    DropNewest,
}

impl From<SlowPolicy> for SlowConsumer {
    fn from(p: SlowPolicy) -> Self {
        match p {
            SlowPolicy::Disconnect => SlowConsumer::Disconnect(CloseCode::TRY_AGAIN_LATER),
            SlowPolicy::DropOldest => SlowConsumer::DropOldest,
            SlowPolicy::DropNewest => SlowConsumer::DropNewest,
        }
    }
}

/// Why the chat node could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChatError {
    /// The broker URL was refused by its backplane.
    #[error("--{flag} {url:?}: {source}; give a URL such as {example}")]
    Broker {
        /// `redis` or `nats`.
        flag: &'static str,
        /// What was given.
        url: String,
        /// The backplane's error.
        #[source]
        source: ferrosocket_hub::backplane::BackplaneError,
        /// A URL of the right shape.
        example: &'static str,
    },
}

pub(crate) fn run(args: ChatArgs) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = crate::runtime(args.threads)?;
    runtime.block_on(serve(args))
}

/// Where the nodes' hubs meet.
enum Sharing {
    Redis(String),
    Nats(String),
    Bus(LocalBus),
    Alone,
}

impl Sharing {
    fn describe(&self) -> &'static str {
        match self {
            Sharing::Redis(_) => "redis",
            Sharing::Nats(_) => "nats",
            Sharing::Bus(_) => "in-process bus",
            Sharing::Alone => "none",
        }
    }

    /// A hub for one more node (inside the runtime: a broker backplane spawns its tasks).
    fn hub(&self, args: &ChatArgs) -> Result<Hub, ChatError> {
        let builder = Hub::builder()
            .queue_capacity(args.queue)
            .slow_consumer(args.slow_consumer.into())
            .history(args.history);
        Ok(match self {
            Sharing::Redis(url) => builder
                .backplane(RedisBackplane::new(url).map_err(|source| ChatError::Broker {
                    flag: "redis",
                    url: url.clone(),
                    source,
                    example: "redis://127.0.0.1:6379",
                })?)
                .build(),
            Sharing::Nats(url) => builder
                .backplane(NatsBackplane::new(url).map_err(|source| ChatError::Broker {
                    flag: "nats",
                    url: url.clone(),
                    source,
                    example: "nats://127.0.0.1:4222",
                })?)
                .build(),
            Sharing::Bus(bus) => builder.backplane(bus.backplane()).build(),
            Sharing::Alone => builder.build(),
        })
    }
}

async fn serve(args: ChatArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut listeners = Vec::with_capacity(args.listen.len());
    for given in &args.listen {
        listeners.push(listen::bind(given).await?);
    }
    let sharing = match (&args.redis, &args.nats) {
        (Some(url), _) => Sharing::Redis(url.clone()),
        (None, Some(url)) => Sharing::Nats(url.clone()),
        (None, None) if listeners.len() > 1 => Sharing::Bus(LocalBus::new()),
        (None, None) => Sharing::Alone,
    };
    let upgrader = upgrader(&args);
    let mut nodes = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let node = Arc::new(Node {
            hub: sharing.hub(&args)?,
            upgrader: upgrader.clone(),
            naive: args.naive,
            quiet: args.quiet,
        });
        let local = listener.local_addr()?;
        println!("chat node listening on http://{local}/ (ws://{local}/ws)");
        nodes.push((listener, node));
    }
    println!(
        "chat: {} node(s), shared through: {}, history {} per room{}",
        nodes.len(),
        sharing.describe(),
        args.history,
        if args.naive { ", naive writes" } else { "" }
    );
    let shutdown = Shutdown::new();
    let accepting: Vec<_> = nodes
        .into_iter()
        .map(|(listener, node)| tokio::spawn(accept(listener, node, shutdown.clone())))
        .collect();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    // Stop accepting (the listeners go with their tasks), send 1001 to every client, wait
    // for their close frames.
    for task in &accepting {
        task.abort();
    }
    println!("chat: shutting down ({} connections)", shutdown.live());
    shutdown.trigger();
    if !shutdown.wait(Duration::from_secs(args.shutdown_timeout)).await {
        println!("chat: {} connections did not close in time", shutdown.live());
    }
    println!("chat: stopped");
    Ok(())
}

fn upgrader(args: &ChatArgs) -> Upgrader {
    let mut upgrader = Upgrader::new().max_message_size(Some(MAX_RAW_MESSAGE));
    if !args.no_compression {
        upgrader = upgrader.deflate(Some(DeflateConfig::default()));
    }
    if args.keepalive > 0 {
        upgrader = upgrader.keepalive(Duration::from_secs(args.keepalive), Duration::from_secs(20));
    }
    if args.allow_any_origin {
        upgrader = upgrader.check_origin(|_| true);
    }
    upgrader
}

/// One chat node: its hub and how it serves connections.
struct Node {
    hub: Hub,
    upgrader: Upgrader,
    naive: bool,
    quiet: bool,
}

async fn accept(listener: TcpListener, node: Arc<Node>, shutdown: Shutdown) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // e.g. out of file descriptors: back off instead of spinning
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        let stop = shutdown.token();
        tokio::spawn(async move { handle(node, stream, addr, stop).await });
    }
}

async fn handle(node: Arc<Node>, mut stream: TcpStream, addr: SocketAddr, stop: ShutdownToken) {
    let Ok(incoming) = node.upgrader.read_request(&mut stream).await else {
        return;
    };
    let get = incoming.request.method() == http::Method::GET;
    match incoming.request.uri().path() {
        "/ws" => join(node, stream, incoming, addr, stop).await,
        "/" | "/index.html" if get => respond(&mut stream, "200 OK", "text/html; charset=utf-8", PAGE).await,
        "/stats" if get => {
            let body = stats_json(&node.hub.stats());
            respond(&mut stream, "200 OK", "application/json", &body).await;
        }
        "/" | "/index.html" | "/stats" => {
            respond(&mut stream, "405 Method Not Allowed", TEXT, "use GET\n").await;
        }
        _ => {
            let body = "not found: the page is at /, the node's counters at /stats and the websocket \
                        endpoint at /ws?room=ROOM&name=NAME\n";
            respond(&mut stream, "404 Not Found", TEXT, body).await;
        }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

/// Writes a whole HTTP response and closes the connection.
async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// `/stats`: the hub's counters, with the field names of [`HubStats`].
fn stats_json(s: &HubStats) -> String {
    serde_json::json!({
        "published": s.published,
        "received": s.received,
        "queued": s.queued,
        "delivered": s.delivered,
        "dropped": s.dropped,
        "disconnected": s.disconnected,
        "publish_failed": s.publish_failed,
        "malformed": s.malformed,
        "outages": s.outages,
        "backplane_up": s.backplane_up,
        "subscribers": s.subscribers,
        "topics": s.topics,
    })
    .to_string()
        + "\n"
}

/// What `/ws?...` asks for.
#[derive(Debug)]
struct Session {
    room: String,
    topic: Topic,
    name: String,
    raw: bool,
}

/// Why `/ws?...` is refused with 400.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum SessionError {
    #[error("no room: connect to /ws?room=ROOM&name=NAME")]
    NoRoom,
    #[error(
        "room {0:?} is not a valid room name: use 1 to {max} ASCII letters, digits and - _ : /",
        max = ferrosocket_hub::MAX_TOPIC_LEN - ROOM_PREFIX.len()
    )]
    BadRoom(String),
    #[error("the name is longer than {MAX_NAME_CHARS} characters: choose a shorter one")]
    LongName,
}

impl Session {
    fn from_request(req: &UpgradeRequest<'_>) -> Result<Self, SessionError> {
        let room = req.query_param("room").ok_or(SessionError::NoRoom)?.into_owned();
        let bad = || SessionError::BadRoom(room.chars().take(64).collect());
        Topic::new(&room).map_err(|_| bad())?;
        let topic = Topic::new(&format!("{ROOM_PREFIX}{room}")).map_err(|_| bad())?;
        let raw = matches!(req.query_param("raw").as_deref(), Some("1" | "true"));
        let name = req.query_param("name").unwrap_or_default();
        let name = name.trim();
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(SessionError::LongName);
        }
        let name = if name.is_empty() { ANONYMOUS } else { name }.to_owned();
        Ok(Self {
            room,
            topic,
            name,
            raw,
        })
    }
}

/// One chat line as it travels (published, delivered, kept in the history).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    room: String,
    name: String,
    text: String,
    /// Milliseconds since the Unix epoch, on the node the line was sent to.
    ts: u64,
}

/// What a client receives right after joining.
#[derive(Serialize)]
struct History<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    messages: &'a [Line],
}

impl Line {
    fn new(session: &Session, text: &str) -> Self {
        Self {
            kind: "message".into(),
            room: session.room.clone(),
            name: session.name.clone(),
            text: text.into(),
            ts: now_millis(),
        }
    }

    /// A chat line from what a room holds; `None` for anything else (a raw session may
    /// publish any bytes to the room).
    fn parse(msg: &Message) -> Option<Self> {
        let line: Self = serde_json::from_str(msg.as_text()?).ok()?;
        (line.kind == "message").then_some(line)
    }
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn join(
    node: Arc<Node>,
    mut stream: TcpStream,
    incoming: IncomingRequest,
    addr: SocketAddr,
    stop: ShutdownToken,
) {
    let IncomingRequest { request, leftover } = incoming;
    let (parts, ()) = request.into_parts();
    let session = match Session::from_request(&UpgradeRequest::new(&parts)) {
        Ok(s) => s,
        Err(e) => {
            if !node.quiet {
                eprintln!("{addr} refused: {}", shown::text_for_log(&e.to_string()));
            }
            respond(&mut stream, "400 Bad Request", TEXT, &format!("{e}\n")).await;
            return;
        }
    };
    let request = http::Request::from_parts(parts, ());
    let upgraded = node.upgrader.upgrade(stream, &request, &leftover).await;
    drop((request, leftover));
    let mut conn = match upgraded {
        Ok(conn) => conn,
        Err(e) => {
            if !node.quiet {
                eprintln!("{addr} handshake failed: {}", shown::text_for_log(&e.to_string()));
            }
            return;
        }
    };
    // On shutdown, the connection sends 1001 and finishes the close handshake while it waits
    // for input (inside pump).
    conn.set_shutdown(stop);
    if !node.quiet {
        let how = if session.raw {
            "raw".to_owned()
        } else {
            format!("as {}", shown::text_for_log(&session.name))
        };
        println!("{addr} joined {} {how}", session.room);
    }
    let mut me = node.hub.subscriber();
    me.subscribe(&session.topic);
    let ended = if session.raw {
        raw_session(&node, &session, &mut me, &mut conn).await
    } else {
        conn.set_read_limit(Some(MAX_LINE));
        chat_session(&node, &session, &mut me, &mut conn).await
    };
    drop(me);
    if !node.quiet {
        let line = format!(
            "{addr} left {}: {}",
            session.room,
            shown::text_for_log(&ended.to_string())
        );
        if ended.is_normal_close() {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// Serves a raw session until it ends: what the client sends is published verbatim.
async fn raw_session<S>(node: &Node, session: &Session, me: &mut Subscriber, conn: &mut Conn<S>) -> Error
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match next(node, me, conn).await {
            Ok(msg) => {
                node.hub.publish(&session.topic, msg);
            }
            Err(e) => return e,
        }
    }
}

/// Serves a chat session until it ends: the room's history first, then each text line the
/// client sends is published as a [`Line`].
async fn chat_session<S>(node: &Node, session: &Session, me: &mut Subscriber, conn: &mut Conn<S>) -> Error
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(e) = send_history(node, session, me, conn).await {
        return e;
    }
    loop {
        match next(node, me, conn).await {
            Ok(Message::Text(text)) => {
                if text.is_empty() {
                    continue;
                }
                let line = Line::new(session, text.as_str());
                match serde_json::to_string(&line) {
                    Ok(json) => {
                        node.hub.publish(&session.topic, Message::text(json));
                    }
                    Err(e) => eprintln!("chat: cannot encode a line: {e}"),
                }
            }
            Ok(Message::Binary(_)) => {
                let frame = CloseFrame::new(CloseCode::UNSUPPORTED_DATA, "chat lines are text messages");
                return match conn.close(Some(frame)).await {
                    Ok(peer) => Error::Closed(peer),
                    Err(e) => e,
                };
            }
            Err(e) => return e,
        }
    }
}

/// Sends `{"type":"history",...}`: the room's last lines, then whatever was delivered to the
/// subscriber while the history was read, minus what the history already holds (so a line
/// published meanwhile arrives once, not twice or never).
async fn send_history<S>(
    node: &Node,
    session: &Session,
    me: &mut Subscriber,
    conn: &mut Conn<S>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let kept = match tokio::time::timeout(HISTORY_TIMEOUT, node.hub.history(&session.topic)).await {
        Ok(Ok(kept)) => kept,
        Ok(Err(e)) => {
            eprintln!("chat: no history for {}: {e}", session.room);
            Vec::new()
        }
        Err(_) => {
            eprintln!(
                "chat: no history for {}: the broker did not answer within {}s",
                session.room,
                HISTORY_TIMEOUT.as_secs()
            );
            Vec::new()
        }
    };
    let mut meanwhile = Vec::new();
    while let Some(Delivery::Message(m)) = me.try_next() {
        meanwhile.push(m);
    }
    let lines: Vec<Line> = kept.iter().filter_map(Line::parse).collect();
    let frame = serde_json::to_string(&History {
        kind: "history",
        messages: &lines,
    })
    .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    conn.queue(Message::text(frame))?;
    for m in meanwhile {
        let bytes = m.message();
        if !kept.iter().any(|k| k.as_bytes() == bytes.as_bytes()) {
            conn.feed_prepared(&m)?;
        }
    }
    conn.flush().await
}

/// The next message from the client, while deliveries are written to it: with the hub's
/// batched prepared writes, or with `--naive`, one `send` per delivery.
async fn next<S>(node: &Node, me: &mut Subscriber, conn: &mut Conn<S>) -> Result<Message, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !node.naive {
        return me.pump(conn).await;
    }
    loop {
        tokio::select! {
            delivery = me.next() => match delivery {
                // Framed (and compressed) for this client alone, and flushed at once.
                Delivery::Message(m) => conn.send(m.message()).await?,
                Delivery::Kicked(frame) => {
                    return match conn.close(Some(frame)).await {
                        Ok(peer) => Err(Error::Closed(peer)),
                        Err(e) => Err(e),
                    };
                }
            },
            received = conn.recv() => return received,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(query: &str) -> Result<Session, SessionError> {
        let req = http::Request::get(format!("/ws?{query}")).body(()).unwrap();
        let (parts, ()) = req.into_parts();
        Session::from_request(&UpgradeRequest::new(&parts))
    }

    #[test]
    fn rooms_names_and_raw_are_read_from_the_query() {
        let s = session("room=lobby&name=al%20ice").unwrap();
        assert_eq!(
            (s.room.as_str(), s.name.as_str(), s.raw),
            ("lobby", "al ice", false)
        );
        assert_eq!(s.topic.as_str(), "room:lobby");
        let s = session("room=a-b_c:d/e&raw=1").unwrap();
        assert!(s.raw);
        assert_eq!(s.name, ANONYMOUS);
        assert_eq!(session("name=x").unwrap_err(), SessionError::NoRoom);
        for bad in ["room=", "room=a.b", "room=a%20b", "room=%C3%A9"] {
            assert!(matches!(session(bad), Err(SessionError::BadRoom(_))), "{bad}");
        }
        assert!(session(&format!("room={}", "r".repeat(123))).is_ok());
        assert!(matches!(
            session(&format!("room={}", "r".repeat(124))),
            Err(SessionError::BadRoom(_))
        ));
        let long = "n".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            session(&format!("room=a&name={long}")).unwrap_err(),
            SessionError::LongName
        );
    }

    #[test]
    fn a_line_is_the_documented_json() {
        let line = Line {
            kind: "message".into(),
            room: "lobby".into(),
            name: "al\"ice".into(),
            text: "<b>hi</b>".into(),
            ts: 7,
        };
        let json = serde_json::to_string(&line).unwrap();
        assert_eq!(
            json,
            r#"{"type":"message","room":"lobby","name":"al\"ice","text":"<b>hi</b>","ts":7}"#
        );
        assert_eq!(Line::parse(&Message::text(json)), Some(line));
        assert_eq!(Line::parse(&Message::text("not json")), None);
        assert_eq!(Line::parse(&Message::binary(&b"{}"[..])), None);
        assert_eq!(
            Line::parse(&Message::text(
                r#"{"type":"history","room":"","name":"","text":"","ts":1}"#
            )),
            None
        );
    }

    #[test]
    fn stats_use_the_field_names_of_hub_stats() {
        let v: serde_json::Value = serde_json::from_str(&stats_json(&HubStats::default())).unwrap();
        for field in [
            "published",
            "received",
            "queued",
            "delivered",
            "dropped",
            "disconnected",
            "publish_failed",
            "malformed",
            "outages",
            "backplane_up",
            "subscribers",
            "topics",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
    }
}
