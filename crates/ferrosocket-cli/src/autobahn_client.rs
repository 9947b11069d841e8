//! `ferrosocket autobahn-client`: the Autobahn|Testsuite client testee.
//!
//! Run `wstest -m fuzzingserver -s spec.json`, then this: it asks the fuzzing server for the
//! number of cases, runs each one by echoing every message back (text as text, binary as
//! binary) until the connection ends, and asks the server to write its reports.

use ferrosocket::{Dialer, Error, Message};
use std::time::{Duration, Instant};

/// Options of `ferrosocket autobahn-client`.
#[derive(clap::Args, Debug)]
pub(crate) struct AutobahnClientArgs {
    /// The fuzzing server's URL.
    #[arg(long, default_value = "ws://127.0.0.1:9001")]
    url: String,
    /// The agent name the reports are filed under.
    #[arg(long, value_name = "NAME", default_value = "ferrosocket")]
    agent: String,
    /// Seconds allowed for each case.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    case_timeout: u64,
    /// Do not offer permessage-deflate (offered by default, for Autobahn's 12.x and 13.x).
    #[arg(long)]
    no_compression: bool,
    /// Echo through the streamed-message API (`recv_chunk` + `feed_fragment`) instead of
    /// whole messages.
    #[arg(long)]
    stream: bool,
}

pub(crate) fn run(args: AutobahnClientArgs) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_all(args))
}

/// The same limits as the echo server: 64 MiB messages, 16 MiB frames.
fn dialer(compression: bool) -> Dialer {
    Dialer::new()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(16 << 20))
        .enable_compression(compression)
}

async fn run_all(args: AutobahnClientArgs) -> Result<(), Box<dyn std::error::Error>> {
    let base = args.url.trim_end_matches('/').to_owned();
    let agent = percent_encode(&args.agent);
    let dialer = dialer(!args.no_compression);
    let limit = Duration::from_secs(args.case_timeout);

    let count = case_count(&dialer, &format!("{base}/getCaseCount"), limit).await?;
    eprintln!("autobahn-client: running {count} cases as agent {:?}", args.agent);
    let started = Instant::now();
    let mut timed_out = Vec::new();
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match tokio::time::timeout(limit, echo_case(&dialer, &url, args.stream)).await {
            Ok(Err(Error::Handshake(e))) => eprintln!("case {case}: handshake failed: {e}"),
            Ok(_) => {}
            Err(_) => {
                eprintln!("case {case}: did not finish within {} s", limit.as_secs());
                timed_out.push(case);
            }
        }
        if case % 50 == 0 {
            eprintln!("autobahn-client: {case}/{count} cases done");
        }
    }
    let url = format!("{base}/updateReports?agent={agent}");
    let (mut conn, _) = dialer.connect(&url).await?;
    // The server writes the reports, then closes.
    let _ = tokio::time::timeout(limit, async { while conn.recv().await.is_ok() {} }).await;
    eprintln!(
        "autobahn-client: {count} cases in {:.1} s, {} timed out; reports updated",
        started.elapsed().as_secs_f64(),
        timed_out.len()
    );
    if timed_out.is_empty() {
        Ok(())
    } else {
        Err(format!("cases {timed_out:?} did not finish in time").into())
    }
}

async fn case_count(dialer: &Dialer, url: &str, limit: Duration) -> Result<u32, Box<dyn std::error::Error>> {
    let work = async {
        let (mut conn, _) = dialer.connect(url).await?;
        let msg = conn.recv().await?;
        // The server closes after the count; finish that handshake.
        while conn.recv().await.is_ok() {}
        Ok::<_, Error>(msg)
    };
    let msg = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| "the fuzzing server did not send the case count in time")??;
    match msg {
        Message::Text(t) => t
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("the fuzzing server sent {:?} instead of a case count", &*t).into()),
        Message::Binary(_) => Err("the fuzzing server sent a binary message instead of a case count".into()),
    }
}

/// Echoes every message until the connection ends (a close, a protocol error: the case is over
/// either way, and the fuzzing server judges how it ended).
async fn echo_case(dialer: &Dialer, url: &str, stream: bool) -> Result<(), Error> {
    let (mut conn, _) = dialer.connect(url).await?;
    if stream {
        loop {
            let chunk = conn.recv_chunk().await?;
            conn.feed_fragment(chunk.kind, chunk.data, chunk.last).await?;
        }
    }
    loop {
        let msg = conn.recv().await?;
        // Replies leave together when recv next has to wait.
        conn.feed(msg).await?;
    }
}

fn percent_encode(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
