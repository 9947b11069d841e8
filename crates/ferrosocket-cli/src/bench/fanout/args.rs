//! The command line of `ferrosocket fanout` and its checks.

/// The smallest payload: an 8-byte sequence number and an 8-byte send timestamp.
pub(super) const MIN_SIZE: usize = 16;

/// Options of `ferrosocket fanout`.
#[derive(clap::Args, Debug)]
pub(crate) struct FanoutArgs {
    /// A node's ws:// URL in raw mode, e.g. ws://127.0.0.1:8081/ws?room=bench&raw=1; repeat
    /// it for several nodes (subscribers are spread over them round-robin; the publisher uses
    /// the first). Loopback addresses only.
    #[arg(long = "url", value_name = "URL", required = true)]
    pub(super) urls: Vec<String>,
    /// Subscriber connections to open.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub(super) subscribers: usize,
    /// Messages the publisher sends.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub(super) messages: u64,
    /// Messages published per second.
    #[arg(long, value_name = "N", default_value_t = 1_000.0)]
    pub(super) rate: f64,
    /// Payload size in bytes (at least 16: sequence number and send time).
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub(super) size: usize,
    /// The most seconds to publish for (fewer messages are sent if this ends first).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub(super) duration: f64,
    /// Seconds to wait for outstanding deliveries after the last publication.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub(super) drain: f64,
    /// Seconds allowed for connecting every subscriber, and for all of them to see the
    /// readiness probe.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub(super) timeout: f64,
    /// Runtime threads (1: a current_thread runtime).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(super) threads: usize,
    /// Print one JSON object on stdout instead of the text report.
    #[arg(long)]
    pub(super) json: bool,
}

/// Refuses values that would make the run meaningless or unbounded.
pub(super) fn check_args(args: &FanoutArgs) -> Result<(), String> {
    if !(1..=200_000).contains(&args.subscribers) {
        return Err("--subscribers must be 1 to 200000".into());
    }
    if !(1..=100_000_000).contains(&args.messages) {
        return Err("--messages must be 1 to 100000000".into());
    }
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 10_000_000.0) {
        return Err("--rate must be more than 0 and at most 10000000 per second".into());
    }
    if !(MIN_SIZE..=1 << 20).contains(&args.size) {
        return Err(format!("--size must be {MIN_SIZE} to 1048576 bytes"));
    }
    for (name, v) in [
        ("--duration", args.duration),
        ("--drain", args.drain),
        ("--timeout", args.timeout),
    ] {
        if !(v.is_finite() && v > 0.0 && v <= 3600.0) {
            return Err(format!("{name} must be more than 0 and at most 3600 seconds"));
        }
    }
    if !(1..=64).contains(&args.threads) {
        return Err("--threads must be 1 to 64".into());
    }
    Ok(())
}
