//! Shared bits of the peer servers: command-line parsing, the single-threaded runtime, and the
//! HTTP upgrade that `sockudo-echo`, `sockudo-batched-echo` and `raw-hold` answer themselves.

use std::net::SocketAddr;

pub mod sockudo;
pub mod upgrade;

/// A server's command line: `--listen ADDR` and, where the server supports it, `--compress`.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Where to listen (default 127.0.0.1:9001).
    pub listen: SocketAddr,
    /// Negotiate permessage-deflate when the client offers it.
    pub compress: bool,
}

/// Reads `--listen ADDR` (default 127.0.0.1:9001) from the command line; `--compress` is
/// refused.
pub fn listen_addr() -> Result<SocketAddr, String> {
    parse(std::env::args(), false).map(|o| o.listen)
}

/// Reads `--listen ADDR` and `--compress` from the command line.
pub fn options() -> Result<Options, String> {
    parse(std::env::args(), true)
}

fn parse(argv: impl Iterator<Item = String>, compress_ok: bool) -> Result<Options, String> {
    let mut args = argv.skip(1);
    let mut listen = "127.0.0.1:9001".to_string();
    let mut compress = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "--compress" if compress_ok => compress = true,
            "-h" | "--help" => {
                let extra = if compress_ok { " [--compress]" } else { "" };
                println!(
                    "usage: {} [--listen ADDR]{extra}",
                    std::env::args().next().unwrap_or_default()
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let listen = listen
        .parse()
        .map_err(|e| format!("bad --listen {listen:?}: {e}"))?;
    Ok(Options { listen, compress })
}

/// A tokio runtime on the current thread only: every server here is single-threaded.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> impl Iterator<Item = String> {
        std::iter::once("x").chain(args.iter().copied()).map(String::from)
    }

    #[test]
    fn compress_only_where_supported() {
        let o = parse(argv(&["--listen", "127.0.0.1:5", "--compress"]), true).unwrap();
        assert_eq!(o.listen.port(), 5);
        assert!(o.compress);
        assert!(!parse(argv(&[]), true).unwrap().compress);
        assert!(parse(argv(&["--compress"]), false).is_err());
        assert!(parse(argv(&["--listen"]), true).is_err());
    }
}
