//! `--listen`: an IP address or a host name with a port, resolved and bound, with errors that
//! name the address and what to do.

use std::io;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Why the server could not start listening.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ListenError {
    /// Not `HOST:PORT`.
    #[error(
        "--listen {given:?}: write it as IP:PORT or HOST:PORT, e.g. 127.0.0.1:8080, localhost:8080 or [::1]:8080 (port 0 picks a free port)"
    )]
    Syntax {
        /// What was given.
        given: String,
    },
    /// The host name could not be resolved.
    #[error("--listen {given:?}: cannot resolve {host:?}: {source}; check the name or give an IP address")]
    Resolve {
        /// What was given.
        given: String,
        /// The host part.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The name resolved to no address.
    #[error("--listen {given:?}: {host:?} resolves to no address; give an IP address")]
    NoAddress {
        /// What was given.
        given: String,
        /// The host part.
        host: String,
    },
    /// Binding failed (for a name: on its first address that could not be used).
    #[error("cannot listen on {addr}: {source}; {}", bind_hint(.source))]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The system's error.
        #[source]
        source: io::Error,
    },
}

/// What to do about a failed bind.
fn bind_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            "another program (perhaps another ferrosocket) is listening there: stop it, or choose another address with --listen HOST:PORT"
        }
        io::ErrorKind::AddrNotAvailable => {
            "no interface of this machine has that address: choose another with --listen HOST:PORT"
        }
        io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges: choose a higher port with --listen HOST:PORT"
        }
        _ => "choose another address with --listen HOST:PORT",
    }
}

/// Splits `HOST:PORT` (`[v6]:PORT` too) into host and port; `None` if it is not that shape.
pub(crate) fn split_host_port(given: &str) -> Option<(&str, u16)> {
    let (host, port) = given.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?,
        // An unbracketed IPv6 address's colons make the port ambiguous.
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then_some((host, port))
}

/// Resolves `given` and binds the first of its addresses that can be bound. An address that
/// is in use or forbidden ends the search (falling back to another would hide that the port
/// is taken); one this machine lacks (say `::1` without IPv6) is skipped.
pub(crate) async fn bind(given: &str) -> Result<TcpListener, ListenError> {
    let addrs: Vec<SocketAddr> = match given.parse::<SocketAddr>() {
        Ok(addr) => vec![addr],
        Err(_) => {
            let (host, port) = split_host_port(given).ok_or_else(|| ListenError::Syntax {
                given: given.to_owned(),
            })?;
            let found =
                tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|source| ListenError::Resolve {
                        given: given.to_owned(),
                        host: host.to_owned(),
                        source,
                    })?;
            let addrs: Vec<SocketAddr> = found.collect();
            if addrs.is_empty() {
                return Err(ListenError::NoAddress {
                    given: given.to_owned(),
                    host: host.to_owned(),
                });
            }
            addrs
        }
    };
    let mut first_error = None;
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(source) => {
                let fatal = matches!(
                    source.kind(),
                    io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
                );
                let error = ListenError::Bind { addr, source };
                if fatal {
                    return Err(error);
                }
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| ListenError::Syntax {
        given: given.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_split() {
        assert_eq!(split_host_port("localhost:8080"), Some(("localhost", 8080)));
        assert_eq!(split_host_port("[::1]:0"), Some(("::1", 0)));
        assert_eq!(split_host_port("example.com:65535"), Some(("example.com", 65535)));
        for bad in [
            "localhost",
            "localhost:",
            ":8080",
            "host:99999",
            "::1:80",
            "[::1:80",
            "a:b",
        ] {
            assert_eq!(split_host_port(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_host_name_is_resolved_and_bound() {
        let listener = bind("localhost:0").await.unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
        let listener = bind("127.0.0.1:0").await.unwrap();
        assert_eq!(listener.local_addr().unwrap().ip().to_string(), "127.0.0.1");
    }

    #[tokio::test]
    async fn errors_name_the_address_and_the_flag() {
        let err = bind("localhost").await.unwrap_err();
        assert!(matches!(err, ListenError::Syntax { .. }), "{err}");
        assert!(err.to_string().contains("HOST:PORT"), "{err}");

        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind(&addr.to_string()).await.unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&format!("cannot listen on {addr}: ")), "{text}");
        assert!(text.contains("--listen"), "{text}");
        assert!(text.contains("another program"), "{text}");
    }
}
