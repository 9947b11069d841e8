//! Real brokers for the backplane tests: a `redis-server` or `nats-server` on a free port of
//! 127.0.0.1, killed when dropped, restartable on the same port.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use ferrosocket_hub::{Delivery, Hub, Subscriber, Topic};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A bound on every wait of these tests.
pub const PATIENCE: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Nats,
}

pub struct Server {
    kind: Kind,
    bin: PathBuf,
    pub port: u16,
    /// NATS only: the HTTP monitoring port.
    pub monitor: u16,
    /// NATS only: JetStream's store, kept across restarts.
    dir: PathBuf,
    child: Option<Child>,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from));
    for d in dirs {
        for n in names {
            let p = d.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl Server {
    /// Starts the broker, or returns `None` (after a loud line) when its binary is missing
    /// and `CI` is not set; with `CI` set a missing binary fails the test.
    pub async fn start(kind: Kind) -> Option<Server> {
        let (names, package): (&[&str], &str) = match kind {
            Kind::Redis => (&["redis-server"], "redis-server"),
            Kind::Nats => (&["nats-server"], "nats-server"),
        };
        let Some(bin) = find(names) else {
            if std::env::var_os("CI").is_some() {
                panic!("{} not found: install {package} (Debian package)", names[0]);
            }
            eprintln!(
                "\n*** SKIPPED: {} not found; install {package} (Debian package) to run the \
                 {kind:?} backplane tests ***\n",
                names[0]
            );
            return None;
        };
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("ferrosocket-hub-{kind:?}-{}-{port}", std::process::id()));
        let mut s = Server {
            kind,
            bin,
            port,
            monitor: if kind == Kind::Nats { free_port() } else { 0 },
            dir,
            child: None,
        };
        s.restart().await;
        Some(s)
    }

    pub fn url(&self) -> String {
        match self.kind {
            Kind::Redis => format!("redis://127.0.0.1:{}", self.port),
            Kind::Nats => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    /// Kills the broker and waits until its port refuses connections.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_ok()
        {
            assert!(tokio::time::Instant::now() < deadline, "the broker did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// (Re)starts the broker on the same port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.stop().await;
        let port = self.port.to_string();
        let mut cmd = Command::new(&self.bin);
        match self.kind {
            Kind::Redis => {
                cmd.args([
                    "--port",
                    &port,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]);
            }
            Kind::Nats => {
                std::fs::create_dir_all(&self.dir).expect("a JetStream store dir");
                let dir: &Path = &self.dir;
                cmd.args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-m",
                    &self.monitor.to_string(),
                    "-js",
                    "-sd",
                ])
                .arg(dir);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("the broker starts"));
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let ports = [self.port, self.monitor];
        for p in ports.into_iter().filter(|p| *p != 0) {
            while tokio::net::TcpStream::connect(("127.0.0.1", p)).await.is_err() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the broker did not start on {p}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// NATS: the number of client connections, from the monitoring endpoint.
    pub async fn nats_connections(&self) -> u64 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.monitor))
            .await
            .expect("the monitoring port");
        s.write_all(b"GET /varz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .expect("a request");
        let mut body = String::new();
        s.read_to_string(&mut body).await.expect("an answer");
        let at = body.find("\"connections\":").expect("varz has connections");
        body[at + 14..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("a count")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn topic(name: &str) -> Topic {
    Topic::new(name).expect("a valid topic")
}

/// The payloads waiting for `sub`, after letting the backplanes work for `settle`.
pub async fn drain_after(sub: &mut Subscriber, settle: Duration) -> Vec<String> {
    tokio::time::sleep(settle).await;
    drain(sub)
}

/// The payloads waiting for `sub` now.
pub fn drain(sub: &mut Subscriber) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(d) = sub.try_next() {
        match d {
            Delivery::Message(m) => {
                out.push(String::from_utf8_lossy(m.message().as_bytes()).into_owned());
            }
            Delivery::Kicked(f) => panic!("kicked: {f:?}"),
        }
    }
    out
}

/// Publishes probes from `from` on `topic` until `sub` (on another hub) receives one, so the
/// broker has `sub`'s subscription; then empties `sub`'s queue. Panics after [`PATIENCE`].
pub async fn wait_routed(from: &Hub, topic: &Topic, sub: &mut Subscriber) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        from.publish(topic, "probe");
        let got = drain_after(sub, Duration::from_millis(50)).await;
        if got.iter().any(|m| m == "probe") {
            // Late probes still on their way.
            let _ = drain_after(sub, Duration::from_millis(100)).await;
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{topic} never routed through the broker"
        );
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after [`PATIENCE`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Makes a hub on the test's broker, keeping `history` messages per topic.
pub type MakeHub<'a> = &'a dyn Fn(usize) -> Hub;

/// Two nodes: B receives A's publication exactly once, and A's own subscriber receives it
/// exactly once (the broker's echo of it to A is skipped).
pub async fn two_nodes_deliver_exactly_once(make: MakeHub<'_>) {
    let (a, b) = (make(0), make(0));
    let room = topic("room-1");
    let (mut sa, mut sb) = (a.subscriber(), b.subscriber());
    sa.subscribe(&room);
    sb.subscribe(&room);
    // Both nodes' subscriptions are in the broker: A's echo comes back to A.
    wait_routed(&a, &room, &mut sb).await;
    wait_routed(&b, &room, &mut sa).await;
    drain(&mut sa);
    drain(&mut sb);
    let (a0, b0) = (a.stats(), b.stats());

    assert_eq!(a.publish(&room, "hello"), 1, "queued for A's own subscriber");
    assert_eq!(drain_after(&mut sb, Duration::from_millis(500)).await, ["hello"]);
    assert_eq!(
        drain(&mut sa),
        ["hello"],
        "A's subscriber: once, not again via the echo"
    );

    let (a1, b1) = (a.stats(), b.stats());
    assert_eq!(b1.received - b0.received, 1);
    assert_eq!(b1.queued - b0.queued, 1);
    assert_eq!(a1.received - a0.received, 0, "A skips its own echo");
    assert_eq!(a1.queued - a0.queued, 1);
    assert_eq!(a1.malformed + b1.malformed, 0);
    assert!(a1.backplane_up && b1.backplane_up);
    assert_eq!(a1.outages + b1.outages, 0);
}

/// B reads the last N of what A published; older ones are gone.
pub async fn history_keeps_the_last_n(make: MakeHub<'_>) {
    let (a, b) = (make(3), make(3));
    let room = topic("history-room");
    for i in 1..=5 {
        a.publish(&room, format!("m{i}"));
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let want = ["m3", "m4", "m5"];
    loop {
        let got: Vec<String> = match b.history(&room).await {
            Ok(h) => h
                .iter()
                .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                .collect(),
            Err(e) => vec![format!("error: {e}")],
        };
        if got == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history is {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A reads the same, and a topic never published has none.
    let got = a.history(&room).await.expect("A reads the history");
    assert_eq!(got.len(), 3);
    assert_eq!(&got[0].as_bytes()[..], b"m3");
    assert!(
        b.history(&topic("empty"))
            .await
            .expect("an empty history")
            .is_empty()
    );
    assert_eq!(a.stats().publish_failed, 0);
}

/// The broker goes away and comes back on the same port.
pub async fn survives_a_broker_restart(server: &mut Server, make: MakeHub<'_>) {
    let (a, b) = (make(0), make(0));
    let room = topic("restart-room");
    let later = topic("joined-during-outage");
    let (mut sa, mut sb) = (a.subscriber(), b.subscriber());
    sa.subscribe(&room);
    sb.subscribe(&room);
    wait_routed(&a, &room, &mut sb).await;
    drain(&mut sa);
    eventually("both backplanes up", || {
        a.stats().backplane_up && b.stats().backplane_up
    })
    .await;

    server.stop().await;
    eventually("A sees the outage", || !a.stats().backplane_up).await;
    eventually("B sees the outage", || !b.stats().backplane_up).await;
    assert_eq!(a.stats().outages, 1);

    // Local delivery goes on; the broker's share counts as failed.
    let failed0 = a.stats().publish_failed;
    for i in 0..3 {
        assert_eq!(a.publish(&room, format!("local-{i}")), 1);
    }
    assert_eq!(drain(&mut sa), ["local-0", "local-1", "local-2"]);
    eventually("3 failed publications", || {
        a.stats().publish_failed - failed0 == 3
    })
    .await;
    // B joins a topic while the broker is away.
    let mut sb2 = b.subscriber();
    sb2.subscribe(&later);

    server.restart().await;
    eventually("A back up", || a.stats().backplane_up).await;
    eventually("B back up", || b.stats().backplane_up).await;
    wait_routed(&a, &room, &mut sb).await;
    wait_routed(&a, &later, &mut sb2).await;
    drain(&mut sa);
    a.publish(&room, "after");
    assert_eq!(drain_after(&mut sb, Duration::from_millis(300)).await, ["after"]);
    assert_eq!(drain(&mut sa), ["after"]);
    assert!(drain(&mut sb2).is_empty(), "nothing on the other topic");
    let (sa1, sb1) = (a.stats(), b.stats());
    assert_eq!((sa1.outages, sb1.outages), (1, 1), "one outage each");
    assert_eq!(sa1.malformed + sb1.malformed, 0);
}
