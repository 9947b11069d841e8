//! `ferrosocket fanout`: one publisher, many subscribers, publish-to-receive latency.
//!
//! The load generator of the fan-out benchmark (issue 11). It opens `--subscribers`
//! connections spread round-robin over the `--url`s (chat nodes in raw mode:
//! `ws://ADDR/ws?room=bench&raw=1`, where every message a client sends is published to the
//! room verbatim), then one publisher connection to the first URL:
//!
//! 1. **Ready barrier.** The publisher sends a probe (sequence number `u64::MAX`) every 50 ms
//!    until every subscriber has received one, so no subscriber still being registered by
//!    its node misses the first messages.
//! 2. **Load.** `--messages` binary messages of `--size` bytes at `--rate` per second (at most
//!    `--duration` seconds), each carrying its sequence number and its send time (ns since
//!    the Unix epoch: CLOCK_REALTIME, which every process of the machine shares).
//! 3. **Drain.** Up to `--drain` seconds for the deliveries still on their way.
//!
//! A node delivers one publisher's messages in order, so each subscriber needs only the next
//! sequence number it expects: a lower one is a duplicate, a gap is missing messages. The
//! report gives deliveries per second (first publication to last delivery), latency
//! percentiles (HDR histogram, µs), missing and duplicate deliveries and the connect time.
//!
//! Loopback only (127.0.0.0/8, ::1): it is a benchmark, not a load tool for other machines.

mod args;
mod sub;

pub(crate) use args::FanoutArgs;

use super::connect::{self, Target};
use ferrosocket::{Dialer, Message};
use ferrosocket_proto::url_target;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The sequence number of the readiness probe.
pub(super) const PROBE: u64 = u64::MAX;

/// What the subscribers and the publisher share.
pub(super) struct Shared {
    /// Messages published (every subscriber should get all of them); `u64::MAX` until the
    /// publisher is done.
    pub(super) total: AtomicU64,
    /// Subscribers that received the probe.
    pub(super) ready: AtomicU64,
    /// Subscribers that received every message.
    pub(super) finished: AtomicU64,
    /// Distinct messages received, summed over subscribers.
    pub(super) delivered: AtomicU64,
    pub(super) duplicates: AtomicU64,
    pub(super) last_delivery_ns: AtomicU64,
    /// Publish-to-receive latency, µs.
    pub(super) histogram: Mutex<Histogram<u64>>,
}

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME).
pub(super) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The outcome of a run; `--json` prints it as one line (field names are an interface:
/// `cargo xtask bench-fanout` reads them).
#[derive(Serialize, Debug)]
struct FanoutReport {
    urls: Vec<String>,
    subscribers: usize,
    connected: usize,
    connect_errors: u64,
    connect_seconds: f64,
    size: usize,
    published: u64,
    expected: u64,
    delivered: u64,
    missing: u64,
    duplicates: u64,
    seconds: f64,
    deliveries_per_sec: f64,
    latency_us: Latency,
    /// Subscribers that ended with an error before the drain deadline.
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

#[derive(Serialize, Debug)]
struct Latency {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

/// Runs `ferrosocket fanout` and prints its report.
pub(crate) fn run(args: FanoutArgs) -> Result<(), Box<dyn std::error::Error>> {
    args::check_args(&args)?;
    let mut builder = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    };
    let runtime = builder.enable_all().build()?;
    let report = runtime.block_on(fanout(&args))?;
    // Abort-heavy endings leave tasks behind: do not wait for them.
    runtime.shutdown_background();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// Where each URL points, checked to be loopback.
async fn targets(args: &FanoutArgs) -> Result<Vec<Target>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for url in &args.urls {
        let t = url_target(url)?;
        if t.tls {
            return Err(format!("{url}: fanout speaks plain ws:// only").into());
        }
        let addrs: Vec<_> = tokio::net::lookup_host((t.host.as_str(), t.port))
            .await?
            .collect();
        if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(
                format!("{url}: fanout only connects to loopback addresses (127.0.0.0/8, ::1)").into(),
            );
        }
        out.push(Target {
            url: url.clone(),
            host: t.host.clone(),
            port: t.port,
            raw_echo: false,
            compress: false,
            timeout: Duration::from_secs_f64(args.timeout),
        });
    }
    Ok(out)
}

async fn fanout(args: &FanoutArgs) -> Result<FanoutReport, Box<dyn std::error::Error>> {
    let targets = targets(args).await?;
    let n = targets.len();

    // Phase 1: every subscriber, round-robin over the URLs (URL k takes subscribers k, k+n, ...).
    let t0 = Instant::now();
    let mut upgraded = Vec::with_capacity(args.subscribers);
    let (mut connect_errors, mut first_error) = (0u64, None::<String>);
    for (k, target) in targets.into_iter().enumerate() {
        let count = args.subscribers / n + usize::from(k < args.subscribers % n);
        if count == 0 {
            continue;
        }
        let c = connect::connect_all(target, count).await;
        upgraded.extend(c.upgraded);
        connect_errors += c.errors;
        if let Some(e) = c.first_error {
            first_error.get_or_insert(e);
        }
    }
    let connect_seconds = t0.elapsed().as_secs_f64();
    let connected = upgraded.len();
    if connected == 0 {
        return Err(format!(
            "no subscriber could connect ({connect_errors} attempt(s) failed; first error: {}); are the nodes running, and are the URLs right?",
            first_error.as_deref().unwrap_or("none")
        )
        .into());
    }

    let shared = Arc::new(Shared {
        total: AtomicU64::new(u64::MAX),
        ready: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        last_delivery_ns: AtomicU64::new(0),
        histogram: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3)?),
    });
    let mut subs = JoinSet::new();
    for u in upgraded {
        subs.spawn(sub::Sub::new(u.stream, u.leftover).run(shared.clone()));
    }

    // Phase 2: the publisher (its own connection to the first node).
    let (published, first_publish_ns) = publish(args, &shared, connected).await?;
    shared.total.store(published, Ordering::Relaxed);

    // Phase 3: wait for every subscriber to see every message, or the drain deadline.
    // A subscriber that had everything before the total was known waits for input that
    // never comes: the count of deliveries ends the wait as well.
    let drain_end = Instant::now() + Duration::from_secs_f64(args.drain);
    let expected = published * connected as u64;
    let mut errors = 0u64;
    let mut sub_error = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = tick.tick() => if shared.delivered.load(Ordering::Relaxed) >= expected {
                break;
            },
            r = subs.join_next() => match r {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => { errors += 1; sub_error.get_or_insert(e); }
                Some(Err(e)) => { errors += 1; sub_error.get_or_insert(e.to_string()); }
            },
            () = tokio::time::sleep_until(drain_end) => break,
        }
    }
    subs.abort_all();

    let delivered = shared.delivered.load(Ordering::Relaxed);
    let last = shared.last_delivery_ns.load(Ordering::Relaxed);
    let seconds = (last.saturating_sub(first_publish_ns) as f64 / 1e9).max(1e-6);
    let h = shared
        .histogram
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    let q = |p: f64| if h.is_empty() { 0 } else { h.value_at_quantile(p) };
    Ok(FanoutReport {
        urls: args.urls.clone(),
        subscribers: args.subscribers,
        connected,
        connect_errors,
        connect_seconds: round(connect_seconds, 3),
        size: args.size,
        published,
        expected,
        delivered,
        missing: expected.saturating_sub(delivered),
        duplicates: shared.duplicates.load(Ordering::Relaxed),
        seconds: round(seconds, 6),
        deliveries_per_sec: round(delivered as f64 / seconds, 1),
        latency_us: Latency {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: h.max(),
        },
        errors,
        first_error: sub_error.or(first_error),
    })
}

/// A payload: sequence number, send time, zeros up to `size`.
fn payload(size: usize, seq: u64) -> Message {
    let mut p = vec![0u8; size];
    p[..8].copy_from_slice(&seq.to_le_bytes());
    p[8..16].copy_from_slice(&now_ns().to_le_bytes());
    Message::binary(p)
}

/// Sends the probes until every subscriber is ready, then the messages at the rate. Reads
/// (and drops) what the node delivers to the publisher itself, so it is never a slow
/// consumer. Returns how many messages were published and when the first left.
async fn publish(
    args: &FanoutArgs,
    shared: &Shared,
    subscribers: usize,
) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let url = &args.urls[0];
    let (mut conn, _) = tokio::time::timeout(
        Duration::from_secs_f64(args.timeout),
        Dialer::new().connect(url.as_str()),
    )
    .await
    .map_err(|_| format!("the publisher could not connect to {url} in time"))??;

    // The ready barrier.
    let ready_end = Instant::now() + Duration::from_secs_f64(args.timeout);
    while shared.ready.load(Ordering::Relaxed) < subscribers as u64 {
        if Instant::now() >= ready_end {
            return Err(format!(
                "only {} of {subscribers} subscribers received the probe within --timeout; is every URL the same room in raw mode?",
                shared.ready.load(Ordering::Relaxed)
            )
            .into());
        }
        conn.send(payload(args.size, PROBE)).await?;
        let tick = tokio::time::sleep(Duration::from_millis(50));
        tokio::pin!(tick);
        loop {
            tokio::select! {
                r = conn.recv() => { r?; }
                () = &mut tick => break,
            }
        }
    }

    // The load: every message due is queued, then one flush.
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    let first_ns = now_ns();
    let interval = 1.0 / args.rate;
    let mut sent = 0u64;
    while sent < args.messages {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let due = ((now - start).as_secs_f64() / interval) as u64 + 1;
        let due = due.min(args.messages);
        while sent < due {
            conn.feed(payload(args.size, sent)).await?;
            sent += 1;
        }
        conn.flush().await?;
        if sent >= args.messages {
            break;
        }
        let next = start + Duration::from_secs_f64(sent as f64 * interval);
        let wait = tokio::time::sleep_until(next.min(end));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                r = conn.recv() => { r?; }
                () = &mut wait => break,
            }
        }
    }
    // Keep reading our own deliveries in the background until the run ends.
    tokio::spawn(async move { while conn.recv().await.is_ok() {} });
    Ok((sent, first_ns))
}

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

fn print_report(r: &FanoutReport) {
    println!("fan-out over {} node URL(s): {}", r.urls.len(), r.urls.join(" "));
    println!(
        "  subscribers  {} connected of {} in {:.3} s ({} failed)",
        r.connected, r.subscribers, r.connect_seconds, r.connect_errors
    );
    println!("  published    {} messages of {} bytes", r.published, r.size);
    println!(
        "  delivered    {} of {} expected in {:.3} s: {:.0} deliveries/s",
        r.delivered, r.expected, r.seconds, r.deliveries_per_sec
    );
    println!("  missing      {}, duplicates {}", r.missing, r.duplicates);
    let l = &r.latency_us;
    println!(
        "  latency      p50 {} us, p90 {} us, p99 {} us, p99.9 {} us, max {} us",
        l.p50, l.p90, l.p99, l.p999, l.max
    );
    if r.errors > 0 {
        println!(
            "  errors       {} subscriber(s); first: {}",
            r.errors,
            r.first_error.as_deref().unwrap_or("?")
        );
    }
}
