//! The outcome of a run: the latency histogram, the human report and the JSON object that
//! scripts read (`scripts/bench-smoke.sh`, `scripts/bench-peers.sh`, `scripts/soak.sh`).

use super::args::BenchArgs;
use hdrhistogram::Histogram;
use serde::Serialize;

/// The outcome of a run.
pub(super) struct Report {
    pub(super) connections: usize,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
    pub(super) messages: u64,
    pub(super) sent: u64,
    pub(super) seconds: f64,
    pub(super) histogram: Histogram<u64>,
    pub(super) server_cpu_us: Option<u64>,
}

/// The `--json` object. Field names, their order and the value types are an interface:
/// scripts parse them. Floats are rounded to the decimals the text report has always had.
#[derive(Serialize)]
struct JsonReport<'a> {
    url: &'a str,
    connections: usize,
    size: usize,
    in_flight: usize,
    messages: u64,
    sent: u64,
    seconds: f64,
    msgs_per_sec: f64,
    mb_per_sec: f64,
    latency_us: JsonLatency,
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu_us_per_msg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<&'a str>,
}

/// Latency percentiles in microseconds.
#[derive(Serialize)]
struct JsonLatency {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
}

/// `x` rounded to `decimals` places.
fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// The CPU time (utime + stime) a process has used so far, in microseconds.
pub(super) fn read_cpu_us(pid: Option<u32>) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // /proc reports clock ticks of USER_HZ, 100 per second on Linux.
    Some((utime + stime) * 10_000)
}

impl Report {
    fn percentile(&self, q: f64) -> u64 {
        if self.histogram.is_empty() {
            0
        } else {
            self.histogram.value_at_quantile(q)
        }
    }

    fn rates(&self, size: usize) -> (f64, f64) {
        let per_sec = self.messages as f64 / self.seconds;
        (per_sec, per_sec * size as f64 / 1e6)
    }

    fn cpu_per_msg(us: u64, messages: u64) -> f64 {
        us as f64 / messages.max(1) as f64
    }

    /// The one-line JSON object of `--json`.
    pub(super) fn json(&self, args: &BenchArgs) -> Result<String, serde_json::Error> {
        let (msgs, mb) = self.rates(args.size);
        let mean = if self.histogram.is_empty() {
            0.0
        } else {
            self.histogram.mean()
        };
        serde_json::to_string(&JsonReport {
            url: &args.url,
            connections: self.connections,
            size: args.size,
            in_flight: args.in_flight,
            messages: self.messages,
            sent: self.sent,
            seconds: round(self.seconds, 6),
            msgs_per_sec: round(msgs, 1),
            mb_per_sec: round(mb, 3),
            latency_us: JsonLatency {
                p50: self.percentile(0.5),
                p90: self.percentile(0.9),
                p99: self.percentile(0.99),
                p999: self.percentile(0.999),
                max: self.histogram.max(),
                mean: round(mean, 1),
            },
            errors: self.errors,
            server_cpu_us: self.server_cpu_us,
            server_cpu_us_per_msg: self
                .server_cpu_us
                .map(|us| round(Self::cpu_per_msg(us, self.messages), 3)),
            first_error: self.first_error.as_deref(),
        })
    }

    /// The human report on stdout.
    pub(super) fn print(&self, args: &BenchArgs) {
        let (msgs, mb) = self.rates(args.size);
        let kind = if args.text { "text" } else { "binary" };
        println!(
            "{}: {} connections ({} failed), {} B {kind} messages, {} in flight each{}",
            args.url,
            self.connections,
            self.errors,
            args.size,
            args.in_flight,
            if args.compress { ", permessage-deflate" } else { "" }
        );
        println!(
            "  {} messages echoed ({} sent) in {:.2} s: {msgs:.0} msgs/s, {mb:.2} MB/s of payload each way",
            self.messages, self.sent, self.seconds
        );
        println!(
            "  latency (us): p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            self.percentile(0.5),
            self.percentile(0.9),
            self.percentile(0.99),
            self.percentile(0.999),
            self.histogram.max()
        );
        if let Some(us) = self.server_cpu_us {
            println!(
                "  server cpu: {:.3} s, {:.2} us per message",
                us as f64 / 1e6,
                Self::cpu_per_msg(us, self.messages)
            );
        }
        if let Some(e) = &self.first_error {
            println!("  errors: {} (first: {e})", self.errors);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn report(server_cpu_us: Option<u64>, first_error: Option<&str>) -> Report {
        let mut histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for us in [100, 200, 300, 400] {
            histogram.record(us).unwrap();
        }
        Report {
            connections: 2,
            errors: u64::from(first_error.is_some()),
            first_error: first_error.map(str::to_string),
            messages: 3000,
            sent: 3002,
            seconds: 2.0,
            histogram,
            server_cpu_us,
        }
    }

    #[test]
    fn cpu_time_parses_a_name_with_spaces() {
        assert_eq!(read_cpu_us(None), None);
        let me = std::process::id();
        assert!(read_cpu_us(Some(me)).is_some());
    }

    #[test]
    fn json_has_the_fields_scripts_read_in_order() {
        let args = Cli::parse_from([
            "bench",
            "ws://127.0.0.1:9/ws",
            "--size",
            "1000",
            "--in-flight",
            "4",
        ])
        .args;
        let json = report(None, None).json(&args).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"url":"ws://127.0.0.1:9/ws","connections":2,"size":1000,"in_flight":4,"#,
                r#""messages":3000,"sent":3002,"seconds":2.0,"msgs_per_sec":1500.0,"mb_per_sec":1.5,"#,
                r#""latency_us":{"p50":200,"p90":400,"p99":400,"p999":400,"max":400,"mean":250.0},"errors":0}"#
            )
        );
        let json = report(Some(4500), Some("a\"b\\c\n")).json(&args).unwrap();
        assert!(
            json.ends_with(
                r#""errors":1,"server_cpu_us":4500,"server_cpu_us_per_msg":1.5,"first_error":"a\"b\\c\n"}"#
            ),
            "{json}"
        );
    }
}
