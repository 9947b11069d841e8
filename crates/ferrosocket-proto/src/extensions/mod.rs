//! WebSocket extensions (RFC 6455 §9): parsing `Sec-WebSocket-Extensions`, and the one
//! extension ferrosocket implements, permessage-deflate (RFC 7692).
//!
//! The seam is small on purpose: negotiation produces parameters, and the
//! [`Connection`](crate::Connection) owns RSV1 and applies the codec to whole messages.

pub(crate) mod deflate;

/// One element of a `Sec-WebSocket-Extensions` list: a name and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension's name, as sent.
    pub name: String,
    /// `(name, value)` pairs in order; `None` for a parameter without a value. Quoted values
    /// are unquoted.
    pub params: Vec<(String, Option<String>)>,
}

/// Why an extension header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed sec-websocket-extensions header: {0}")]
pub struct ExtensionSyntaxError(pub String);

fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c)
}

fn token(s: &str) -> Result<&str, ExtensionSyntaxError> {
    if !s.is_empty() && s.chars().all(is_token_char) {
        Ok(s)
    } else {
        Err(ExtensionSyntaxError(format!("{s:?} is not a token")))
    }
}

/// Splits on `sep` outside double quotes.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Parses every `Sec-WebSocket-Extensions` value given (one per header line) into offers, in
/// order (RFC 6455 §9.1 grammar; quoted parameter values must unquote to a token).
///
/// ```
/// use ferrosocket_proto::parse_extensions;
/// let offers = parse_extensions(["permessage-deflate; client_max_window_bits, x-foo"]).unwrap();
/// assert_eq!(offers[0].name, "permessage-deflate");
/// assert_eq!(offers[0].params, vec![("client_max_window_bits".to_string(), None)]);
/// assert_eq!(offers[1].name, "x-foo");
/// ```
pub fn parse_extensions<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<ExtensionOffer>, ExtensionSyntaxError> {
    let mut offers = Vec::new();
    for value in values {
        for element in split_outside_quotes(value, ',') {
            let element = element.trim_matches([' ', '\t']);
            if element.is_empty() {
                continue;
            }
            let mut pieces = split_outside_quotes(element, ';').into_iter();
            let name = token(pieces.next().unwrap_or("").trim_matches([' ', '\t']))?.to_owned();
            let mut params = Vec::new();
            for piece in pieces {
                let piece = piece.trim_matches([' ', '\t']);
                let (key, value) = match piece.split_once('=') {
                    None => (token(piece)?, None),
                    Some((k, v)) => {
                        let k = token(k.trim_matches([' ', '\t']))?;
                        let v = v.trim_matches([' ', '\t']);
                        let v = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                            Some(inner) => inner.replace('\\', ""),
                            None => v.to_owned(),
                        };
                        (k, Some(token(&v)?.to_owned()))
                    }
                };
                params.push((key.to_owned(), value));
            }
            offers.push(ExtensionOffer { name, params });
        }
    }
    Ok(offers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_9_1_grammar() {
        let o = parse_extensions(["a; x=1; y=\"2\", b", "c;z"]).unwrap();
        assert_eq!(o.len(), 3);
        assert_eq!(
            o[0].params,
            vec![("x".into(), Some("1".into())), ("y".into(), Some("2".into()))]
        );
        assert_eq!(o[2].params, vec![("z".into(), None)]);
        assert!(parse_extensions(["a; x=\"1 2\""]).is_err());
        assert!(parse_extensions(["a b"]).is_err());
        assert!(parse_extensions(["; x"]).is_err());
        assert_eq!(parse_extensions(["", " , "]).unwrap(), vec![]);
    }
}
