//! `ferrosocket bench URL`: a load generator for any RFC 6455 echo server.
//!
//! It is built not to be the bottleneck:
//!
//! - the handshake uses ferrosocket's sans-I/O client handshake, then each connection is a
//!   raw `TcpStream` ([`connect`]);
//! - the K frames a connection keeps in flight are built and masked once per run and shared
//!   by every connection ([`plan`]); K frames leave with one write, and the r frames due after
//!   a read leave with one (vectored) write ([`worker`]);
//! - replies are read into one reusable buffer per connection, their headers decoded by the
//!   core's `FrameHeader::decode` (server frames are unmasked); payloads are only compared
//!   (`--verify`) or skipped, never copied, and nothing is allocated per message ([`reply`]);
//! - one `Instant::now()` per read; latency (send to echo, per message) goes to an HDR
//!   histogram, locked once per read ([`report`]);
//! - everything runs on a tokio current_thread runtime by default (`--threads N` for more),
//!   so `taskset -c 1 ferrosocket bench ...` keeps the load on one core.
//!
//! Every loop is bounded: connecting and the handshake by `--timeout`, the load by
//! `--duration` (and `--messages`), and a server that stops answering is left at the deadline.
//! With `--compress` (permessage-deflate) the client promises `client_no_context_takeover`,
//! so the compressed frames are still built once; replies go through a client-role
//! [`Connection`](ferrosocket_proto::Connection) to be inflated (that path allocates per
//! message).

mod args;
mod connect;
mod conns;
pub(crate) mod fanout;
mod plan;
mod reply;
mod report;
mod worker;

pub(crate) use args::BenchArgs;

use connect::Target;
use ferrosocket_proto::url_target;
use hdrhistogram::Histogram;
use plan::{Plan, build_frames};
use report::{Report, read_cpu_us};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use worker::{Load, Outcome, Shared};

/// Runs `ferrosocket bench` and prints its report.
pub(crate) fn run(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    args::check_args(&args)?;
    let mut builder = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    };
    let runtime = builder.enable_all().build()?;
    let report = runtime.block_on(bench(&args))?;
    if args.json {
        println!("{}", report.json(&args)?);
    } else {
        report.print(&args);
    }
    if report.errors > 0 && args.verify {
        return Err(format!("{} connection(s) failed", report.errors).into());
    }
    Ok(())
}

/// The connections under load: their tasks, the counters they share, how many there are,
/// and the connections that could not be opened.
struct Started {
    load: JoinSet<Result<Outcome, String>>,
    shared: Arc<Shared>,
    connections: usize,
    errors: u64,
    first_error: Option<String>,
}

/// The counters and histogram of a run whose load starts now (after any warm-up).
fn shared_state(
    args: &BenchArgs,
    plan: Plan,
    frames: plan::Frames,
) -> Result<Arc<Shared>, Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let measure_start = t0 + Duration::from_secs_f64(args.warmup);
    let end = measure_start + Duration::from_secs_f64(args.duration);
    let histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3)?;
    Ok(Arc::new(Shared {
        plan,
        frames,
        measure_start,
        end,
        budget: AtomicU64::new(args.messages.unwrap_or(u64::MAX)),
        sent: AtomicU64::new(0),
        done: AtomicU64::new(0),
        last_done_us: AtomicU64::new(0),
        histogram: Mutex::new(histogram),
    }))
}

/// The raw loop: sans-I/O handshakes, then frames built once and written from one buffer.
async fn start_raw(args: &BenchArgs) -> Result<Started, Box<dyn std::error::Error>> {
    let target = url_target(&args.url)?;
    if target.tls {
        return Err("bench speaks plain ws:// only without --conn, --http2 or --http3".into());
    }
    let plan = Plan::new(args);

    // Phase 1: connect and upgrade every connection.
    let connected = connect::connect_all(
        Target {
            url: args.url.clone(),
            host: target.host.clone(),
            port: target.port,
            raw_echo: args.raw_echo,
            compress: args.compress,
            timeout: Duration::from_secs_f64(args.timeout),
        },
        plan.connections,
    )
    .await;
    let mut upgraded = connected.upgraded;
    let mut errors = connected.errors;
    let mut first_error = connected.first_error;
    if upgraded.is_empty() {
        // No load ran: a report would only be zeros. The error alone says what happened.
        return Err(no_connection(&args.url, errors, first_error.as_deref()).into());
    }

    // With compression every connection must have agreed on the same window.
    let deflate = upgraded.first().and_then(|u| u.deflate);
    if let Some(d) = deflate {
        let before = upgraded.len();
        upgraded.retain(|u| u.deflate.map(|x| x.client_max_window_bits) == Some(d.client_max_window_bits));
        if upgraded.len() < before {
            errors += (before - upgraded.len()) as u64;
            first_error.get_or_insert("connections agreed on different deflate windows".into());
        }
    }
    let connections = upgraded.len();
    let frames = build_frames(&plan, deflate.as_ref())?;

    // Phase 2: the load.
    let shared = shared_state(args, plan, frames)?;
    let mut load = JoinSet::new();
    for up in upgraded {
        load.spawn(Load::new(up, shared.clone()).run());
    }
    Ok(Started {
        load,
        shared,
        connections,
        errors,
        first_error,
    })
}

/// The load through Dialer and Conn, over HTTP/1.1, HTTP/2 or HTTP/3 ([`conns`]).
async fn start_conns(args: &BenchArgs) -> Result<Started, Box<dyn std::error::Error>> {
    let plan = Plan::new(args);
    let carrier = if args.http3 {
        conns::Carrier::Http3
    } else if args.http2 {
        conns::Carrier::Http2
    } else {
        conns::Carrier::Http1
    };
    let mut dialer = ferrosocket::Dialer::new()
        .enable_compression(args.compress)
        .max_message_size(Some(plan.size.max(1 << 20)));
    if let Some(ca) = &args.tls_ca {
        let mut roots = ferrosocket::tls::webpki_roots();
        use ferrosocket::tls::rustls::pki_types::{CertificateDer, pem::PemObject};
        for cert in
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?
        {
            let cert = cert.map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
        }
        dialer = dialer.tls_config(ferrosocket::tls::client_config_with_roots(roots)?);
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let opened = conns::open_all(dialer, &args.url, carrier, plan.connections, timeout).await;
    if opened.conns.is_empty() {
        return Err(no_connection(&args.url, opened.errors, opened.first_error.as_deref()).into());
    }
    let msg = conns::message(&plan)?;
    let frames = build_frames(&plan, None)?;
    let connections = opened.conns.len();
    let shared = shared_state(args, plan, frames)?;
    let mut load = JoinSet::new();
    for conn in opened.conns {
        load.spawn(conns::run(conn, shared.clone(), msg.clone()));
    }
    Ok(Started {
        load,
        shared,
        connections,
        errors: opened.errors,
        first_error: opened.first_error,
    })
}

async fn bench(args: &BenchArgs) -> Result<Report, Box<dyn std::error::Error>> {
    let started = if args.via_conn() {
        start_conns(args).await?
    } else {
        start_raw(args).await?
    };
    let Started {
        mut load,
        shared,
        connections,
        mut errors,
        mut first_error,
    } = started;
    let (measure_start, end) = (shared.measure_start, shared.end);
    let progress = progress_bar(args, &shared);
    let mut cpu0 = if args.warmup == 0.0 {
        read_cpu_us(args.server_pid)
    } else {
        None
    };
    if args.warmup > 0.0 {
        tokio::time::sleep_until(measure_start).await;
        cpu0 = read_cpu_us(args.server_pid);
    }
    let mut cpu1 = None;
    let end_timer = tokio::time::sleep_until(end);
    tokio::pin!(end_timer);
    loop {
        tokio::select! {
            r = load.join_next() => match r {
                None => break,
                Some(Ok(Ok(Outcome::Finished))) => {}
                Some(Ok(Err(e))) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
                Some(Err(e)) => {
                    errors += 1;
                    first_error.get_or_insert(e.to_string());
                }
            },
            () = &mut end_timer, if cpu1.is_none() => {
                cpu1 = Some(read_cpu_us(args.server_pid));
            }
        }
    }
    let finished = Instant::now();
    let cpu1 = cpu1.unwrap_or_else(|| read_cpu_us(args.server_pid));
    if let Some((task, bar)) = progress {
        task.abort();
        bar.finish_and_clear();
    }

    let messages = shared.done.load(Ordering::Relaxed);
    let seconds = if finished < end {
        (shared.last_done_us.load(Ordering::Relaxed) as f64 / 1e6).max(1e-6)
    } else {
        args.duration
    };
    let histogram = shared
        .histogram
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    Ok(Report {
        connections,
        errors,
        first_error,
        messages,
        sent: shared.sent.load(Ordering::Relaxed),
        seconds,
        histogram,
        server_cpu_us: cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
    })
}

/// The error of a run that could open no connection: how many attempts failed, and why the
/// first one did.
fn no_connection(url: &str, attempts: u64, first_error: Option<&str>) -> String {
    let why = first_error.unwrap_or("no attempt was made");
    format!(
        "no connection to {url} could be established ({attempts} attempt(s) failed; first error: {why}); is the server running, and is the URL right?"
    )
}

/// A progress bar on stderr (a tty only, and not with `--json`), updated 5 times a second.
fn progress_bar(
    args: &BenchArgs,
    shared: &Arc<Shared>,
) -> Option<(tokio::task::JoinHandle<()>, indicatif::ProgressBar)> {
    if args.json || !std::io::stderr().is_terminal() {
        return None;
    }
    let shared = shared.clone();
    let total_ms = ((args.warmup + args.duration) * 1000.0) as u64;
    let bar = indicatif::ProgressBar::new(total_ms);
    let style = indicatif::ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    let start = Instant::now();
    let handle = bar.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last = (Instant::now(), 0u64);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let done = shared.done.load(Ordering::Relaxed);
            let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, done);
            bar.set_position((now.duration_since(start).as_millis() as u64).min(total_ms));
            let phase = if now < shared.measure_start {
                "warming up, "
            } else {
                ""
            };
            bar.set_message(format!("{phase}{done} msgs, {rate:.0} msgs/s"));
            if now >= shared.end {
                return;
            }
        }
    });
    Some((task, handle))
}

#[cfg(test)]
mod tests;
