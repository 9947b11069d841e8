//! Shared bits of the peer servers: command-line parsing and the single-threaded runtime.

use std::net::SocketAddr;

/// Reads `--listen ADDR` (default 127.0.0.1:9001) from the command line.
pub fn listen_addr() -> Result<SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:9001".to_string();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "-h" | "--help" => {
                println!(
                    "usage: {} [--listen ADDR]",
                    std::env::args().next().unwrap_or_default()
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    listen
        .parse()
        .map_err(|e| format!("bad --listen {listen:?}: {e}"))
}

/// A tokio runtime on the current thread only: every server here is single-threaded.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}
