//! The real brokers the hub's end-to-end checks run over (Debian's `redis-server` and
//! `nats-server`), started on a loopback port with nothing kept on disk but NATS's JetStream
//! store: shared by `chat-browser` and `bench-fanout`.

use std::path::Path;
use std::process::Command;

/// Debian's redis-server.
pub(crate) const REDIS: &str = "/usr/bin/redis-server";
/// Debian's nats-server.
pub(crate) const NATS: &str = "/usr/sbin/nats-server";

/// redis-server on 127.0.0.1:`port`, without snapshots or an append-only file.
pub(crate) fn redis_command(port: u16) -> Command {
    let mut c = Command::new(REDIS);
    c.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"]);
    c
}

/// nats-server on 127.0.0.1:`port` with JetStream, its store in `store`.
pub(crate) fn nats_command(port: u16, store: &Path) -> Command {
    let mut c = Command::new(NATS);
    c.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store);
    c
}
