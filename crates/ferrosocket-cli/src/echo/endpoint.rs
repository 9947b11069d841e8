//! The echo server's endpoint: the `--path` it upgrades on (checked and normalised), the page
//! that connects to it (the path goes into its script as an escaped string literal), and the
//! `--subprotocol` names it accepts.

use std::fmt::Write as _;

/// The page's marker, quotes included, that [`page_with_path`] replaces with the path.
const PATH_MARKER: &str = "\"{{WS_PATH}}\"";

/// `--path`: a URI path, given with or without its leading slash (`ws` becomes `/ws`, since a
/// request target always starts with one and `ws` would never match).
///
/// Refused: a query or fragment, characters a URI path cannot hold (RFC 3986 `pchar`; spaces,
/// quotes, `<`, `>`, non-ASCII... must be percent-encoded), a bad `%` escape, and `/` itself,
/// where the page is served.
pub(crate) fn parse_path(given: &str) -> Result<String, String> {
    let path = if given.starts_with('/') {
        given.to_owned()
    } else {
        format!("/{given}")
    };
    let bytes = path.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'?' | b'#' => {
                return Err(format!(
                    "{given:?} has a query or fragment ({:?}); give the path only, e.g. /ws",
                    char::from(b)
                ));
            }
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
                if hex.len() != 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(format!(
                        "{given:?} has a '%' not followed by two hex digits; write a literal % as %25"
                    ));
                }
                i += 3;
                continue;
            }
            b if is_path_byte(b) => {}
            _ => {
                let c = path.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
                return Err(format!(
                    "{given:?} holds {c:?}, which a URI path cannot (RFC 3986); percent-encode it"
                ));
            }
        }
        i += 1;
    }
    if path == "/" || path == "/index.html" {
        return Err(format!(
            "{given:?} is where the page is served; choose another path, e.g. /ws"
        ));
    }
    Ok(path)
}

/// The bytes of RFC 3986 `pchar` (without `%`, checked apart) and `/`.
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

/// `s` as a JavaScript string literal (double quotes included) that is also safe inside an
/// HTML `<script>` element: quotes, backslashes, control characters, `<`, `>`, `&`, `'` and
/// the line separators U+2028/U+2029 are written as escapes, so the value can neither end the
/// string nor the script.
pub(crate) fn js_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '<' | '>' | '&' | '\'' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if c.is_control() => {
                // Every control character is below U+0100: four hex digits suffice.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The page with its WebSocket path filled in (the marker, quotes and all, becomes
/// [`js_string`] of `path`).
pub(crate) fn page_with_path(page: &str, path: &str) -> String {
    page.replace(PATH_MARKER, &js_string(path))
}

/// `--subprotocol`: a subprotocol name is an HTTP token (RFC 6455 §4.1, RFC 9110 §5.6.2).
pub(crate) fn parse_subprotocol(name: &str) -> Result<String, String> {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() {
        return Err("a subprotocol name cannot be empty".to_owned());
    }
    match name.bytes().find(|&b| !is_tchar(b)) {
        None => Ok(name.to_owned()),
        Some(b) => Err(format!(
            "{name:?} is not a valid subprotocol name: {:?} is not allowed (letters, digits and !#$%&'*+-.^_`|~ are); give one name per --subprotocol",
            char::from(b)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_without_its_slash_gets_one() {
        assert_eq!(parse_path("ws").unwrap(), "/ws");
        assert_eq!(parse_path("/ws").unwrap(), "/ws");
        assert_eq!(parse_path("api/v1/socket").unwrap(), "/api/v1/socket");
        assert_eq!(parse_path("/a%20b/c:d@e").unwrap(), "/a%20b/c:d@e");
        assert_eq!(parse_path("/it's").unwrap(), "/it's");
    }

    #[test]
    fn paths_a_uri_cannot_hold_are_refused() {
        for bad in [
            "/a b",
            "/\"",
            "/</script>",
            "/é",
            "/a\nb",
            "/a\\b",
            "/{x}",
            "/a%2",
            "/a%zz",
            "/%",
        ] {
            let err = parse_path(bad).unwrap_err();
            assert!(
                err.contains("percent-encode") || err.contains("%25"),
                "{bad:?}: {err}"
            );
        }
        assert!(parse_path("/ws?x=1").unwrap_err().contains("query"));
        assert!(parse_path("/ws#top").unwrap_err().contains("query or fragment"));
        assert!(parse_path("/").unwrap_err().contains("page"));
        assert!(parse_path("").unwrap_err().contains("page"));
        assert!(parse_path("index.html").unwrap_err().contains("page"));
    }

    #[test]
    fn a_js_string_cannot_end_the_string_or_the_script() {
        assert_eq!(js_string("/ws"), "\"/ws\"");
        assert_eq!(js_string("/it's"), "\"/it\\u0027s\"");
        let nasty = "\"</script><script>alert(1)</script>\\\n\u{2028}\u{1b}&";
        let lit = js_string(nasty);
        assert_eq!(
            lit,
            "\"\\\"\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e\\\\\\n\\u2028\\u001b\\u0026\""
        );
        let inner = &lit[1..lit.len() - 1];
        assert!(!inner.contains(['<', '>', '\n', '\'', '&']));
        // Every quote inside is escaped.
        assert!(inner.match_indices('"').all(|(i, _)| inner[..i].ends_with('\\')));
    }

    #[test]
    fn the_page_gets_the_path_as_a_literal() {
        let page = include_str!("../echo.html");
        assert_eq!(page.matches(PATH_MARKER).count(), 1, "the page's marker");
        let filled = page_with_path(page, "/chat'x");
        assert!(filled.contains("const path = \"/chat\\u0027x\";"), "{filled}");
        assert!(!filled.contains("{{WS_PATH}}\""));
    }

    #[test]
    fn subprotocol_names_are_tokens() {
        assert_eq!(parse_subprotocol("chat").unwrap(), "chat");
        assert_eq!(parse_subprotocol("v2.json+rpc").unwrap(), "v2.json+rpc");
        for bad in ["", "a b", "a,b", "chat\"", "é", "a/b"] {
            assert!(parse_subprotocol(bad).is_err(), "{bad:?}");
        }
    }
}
