//! [`NoProxy`]: the hosts the environment's proxy is not used for, with CIDR blocks.

use std::net::IpAddr;

/// A `NO_PROXY` list: the hosts to reach without the environment's proxy.
///
/// Entries are separated by commas, compared case-insensitively, with Go's rules:
/// - `*` matches every host;
/// - `example.com` matches `example.com` and its subdomains; `.example.com` and
///   `*.example.com` only its subdomains;
/// - an IP address matches that address; a CIDR block (`10.0.0.0/8`) the addresses in it;
///   no name is resolved to match;
/// - `host:port` or `[v6]:port` matches only that port.
///
/// ```
/// use ferrosocket::NoProxy;
/// let list = NoProxy::parse("internal.example, .corp, 10.0.0.0/8, api.test:8443");
/// assert!(list.matches("internal.example", 443));
/// assert!(list.matches("db.internal.example", 80));
/// assert!(list.matches("host.corp", 80));
/// assert!(!list.matches("corp", 80));
/// assert!(list.matches("10.1.2.3", 80));
/// assert!(list.matches("api.test", 8443));
/// assert!(!list.matches("api.test", 443));
/// assert!(!list.matches("example.org", 443));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    entries: Vec<NoProxyEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxyEntry {
    Ip {
        ip: IpAddr,
        port: Option<u16>,
    },
    Cidr {
        net: IpAddr,
        prefix: u8,
    },
    Domain {
        suffix: String,
        exact_too: bool,
        port: Option<u16>,
    },
}

impl NoProxy {
    /// Parses a comma-separated list; malformed entries are skipped.
    pub fn parse(list: &str) -> Self {
        let mut out = NoProxy::default();
        for entry in list.split(',') {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                out.all = true;
                continue;
            }
            if let Some((addr, bits)) = entry.split_once('/') {
                if let (Ok(net), Ok(prefix)) = (addr.parse::<IpAddr>(), bits.parse::<u8>()) {
                    let max = if net.is_ipv4() { 32 } else { 128 };
                    if prefix <= max {
                        out.entries.push(NoProxyEntry::Cidr { net, prefix });
                    }
                }
                continue;
            }
            let Some((host, port)) = split_host_port(&entry) else {
                continue;
            };
            let port = match port {
                None => None,
                Some(p) => match p.parse::<u16>() {
                    Ok(p) => Some(p),
                    Err(_) => continue,
                },
            };
            if let Ok(ip) = host.parse::<IpAddr>() {
                out.entries.push(NoProxyEntry::Ip {
                    ip: ip.to_canonical(),
                    port,
                });
                continue;
            }
            let host = host
                .strip_prefix('*')
                .filter(|h| h.starts_with('.'))
                .unwrap_or(host);
            if host.is_empty() || host == "." {
                continue;
            }
            let (suffix, exact_too) = match host.strip_prefix('.') {
                Some(_) => (host.to_owned(), false),
                None => (format!(".{host}"), true),
            };
            out.entries.push(NoProxyEntry::Domain {
                suffix,
                exact_too,
                port,
            });
        }
        out
    }

    /// The list in `NO_PROXY`, or `no_proxy` when that is unset or empty.
    pub fn from_env() -> Self {
        let value = ["NO_PROXY", "no_proxy"]
            .into_iter()
            .filter_map(|n| std::env::var(n).ok())
            .find(|v| !v.trim().is_empty())
            .unwrap_or_default();
        Self::parse(&value)
    }

    /// Whether `host` (a name or an IP address; IPv6 with or without brackets) on `port` is
    /// to be reached directly.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        if let Ok(ip) = host.parse::<IpAddr>() {
            let ip = ip.to_canonical();
            return self.entries.iter().any(|e| match e {
                NoProxyEntry::Ip { ip: want, port: p } => *want == ip && port_ok(p),
                NoProxyEntry::Cidr { net, prefix } => in_cidr(ip, *net, *prefix),
                NoProxyEntry::Domain { .. } => false,
            });
        }
        self.entries.iter().any(|e| match e {
            NoProxyEntry::Domain {
                suffix,
                exact_too,
                port: p,
            } => {
                let hit =
                    host.ends_with(suffix.as_str()) || (*exact_too && suffix.get(1..) == Some(host.as_str()));
                hit && port_ok(p)
            }
            _ => false,
        })
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Splits `host[:port]`, `[v6][:port]` or a bare IPv6 address; `None` when malformed.
pub(super) fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(inner) = s.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match s.matches(':').count() {
        0 => Some((s, None)),
        1 => s.split_once(':').map(|(h, p)| (h, Some(p))),
        _ => s.parse::<IpAddr>().is_ok().then_some((s, None)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_cidr(ip("10.1.2.3"), ip("10.0.0.0"), 8));
        assert!(!in_cidr(ip("11.1.2.3"), ip("10.0.0.0"), 8));
        assert!(in_cidr(ip("1.2.3.4"), ip("0.0.0.0"), 0));
        assert!(in_cidr(ip("1.2.3.4"), ip("1.2.3.4"), 32));
        assert!(in_cidr(ip("fd00::1"), ip("fd00::"), 8));
        assert!(!in_cidr(ip("fd00::1"), ip("10.0.0.0"), 8));
    }
}
