//! The command line of `ferrosocket bench` and its checks.

/// The largest message `--size` accepts.
pub(super) const MAX_SIZE: usize = 64 << 20;
/// The most messages in flight per connection.
pub(super) const MAX_IN_FLIGHT: usize = 4096;

/// Options of `ferrosocket bench`.
#[derive(clap::Args, Debug)]
pub(crate) struct BenchArgs {
    /// The echo server's ws:// URL (e.g. ws://127.0.0.1:8080/ws or ws://localhost:8080/ws).
    pub(super) url: String,
    /// Connections to open.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(super) connections: usize,
    /// Payload size of each message, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16)]
    pub(super) size: usize,
    /// Messages outstanding per connection (sent and not yet echoed).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(super) in_flight: usize,
    /// Seconds to measure for (after the warm-up).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub(super) duration: f64,
    /// Stop after this many messages in total, if that comes before --duration.
    #[arg(long, value_name = "N")]
    pub(super) messages: Option<u64>,
    /// Send text messages.
    #[arg(long, conflicts_with = "binary")]
    pub(super) text: bool,
    /// Send binary messages (the default).
    #[arg(long)]
    pub(super) binary: bool,
    /// Offer permessage-deflate (with client_no_context_takeover) and fail without it.
    #[arg(long)]
    pub(super) compress: bool,
    /// Seconds of load before measuring starts.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub(super) warmup: f64,
    /// Print one JSON object on stdout instead of the text report.
    #[arg(long)]
    pub(super) json: bool,
    /// Check every echoed payload byte for byte (a mismatch fails its connection).
    #[arg(long)]
    pub(super) verify: bool,
    /// Runtime threads (1: a current_thread runtime, which `taskset` keeps on one core).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(super) threads: usize,
    /// Seconds allowed for each connect and handshake.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub(super) timeout: f64,
    /// Also report this (server) process's CPU time (utime+stime from /proc/PID/stat) over
    /// the measured interval, in total and per message.
    #[arg(long, value_name = "PID")]
    pub(super) server_pid: Option<u32>,
    /// The server is a plain TCP echo (the ceiling): skip the handshake and accept our own
    /// masked frames coming back.
    #[arg(long)]
    pub(super) raw_echo: bool,
    /// Drive the load through ferrosocket's own Dialer and Conn (one TCP connection per
    /// WebSocket, HTTP/1.1) instead of the raw frame loop: the baseline for --http2 and
    /// --http3, which imply it.
    #[arg(long, conflicts_with = "raw_echo")]
    pub(super) conn: bool,
    /// Open every WebSocket as a stream of ONE HTTP/2 connection (RFC 8441): prior knowledge
    /// for ws://, ALPN h2 for wss://.
    #[arg(long, conflicts_with_all = ["raw_echo", "http3"])]
    pub(super) http2: bool,
    /// Open every WebSocket as a stream of ONE QUIC connection (RFC 9220; wss:// only).
    #[arg(long, conflicts_with = "raw_echo")]
    pub(super) http3: bool,
    /// Trust this PEM certificate (a test server's self-signed one) for wss://, besides the
    /// usual roots.
    #[arg(long, value_name = "FILE")]
    pub(super) tls_ca: Option<std::path::PathBuf>,
}

impl BenchArgs {
    /// Whether the load goes through Dialer and Conn.
    pub(super) fn via_conn(&self) -> bool {
        self.conn || self.http2 || self.http3
    }
}

/// Refuses values that would make the run meaningless or unbounded.
pub(super) fn check_args(args: &BenchArgs) -> Result<(), String> {
    if !(1..=100_000).contains(&args.connections) {
        return Err("--connections must be 1 to 100000".into());
    }
    if args.size > MAX_SIZE {
        return Err(format!("--size must be at most {MAX_SIZE}"));
    }
    if !(1..=MAX_IN_FLIGHT).contains(&args.in_flight) {
        return Err(format!("--in-flight must be 1 to {MAX_IN_FLIGHT}"));
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 86_400.0) {
        return Err("--duration must be more than 0 and at most 86400 seconds".into());
    }
    if !(args.warmup.is_finite() && (0.0..=3600.0).contains(&args.warmup)) {
        return Err("--warmup must be 0 to 3600 seconds".into());
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 600.0) {
        return Err("--timeout must be more than 0 and at most 600 seconds".into());
    }
    if !(1..=256).contains(&args.threads) {
        return Err("--threads must be 1 to 256".into());
    }
    if args.messages == Some(0) {
        return Err("--messages must be at least 1".into());
    }
    if args.compress && args.raw_echo {
        return Err("--compress needs a WebSocket server, not --raw-echo".into());
    }
    Ok(())
}
