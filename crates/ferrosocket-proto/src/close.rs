//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use std::fmt;

/// A close status code (RFC 6455 §7.4), with the registered codes as associated constants.
///
/// ```
/// use ferrosocket_proto::CloseCode;
/// assert_eq!(CloseCode::NORMAL_CLOSURE.as_u16(), 1000);
/// assert!(CloseCode::from(4000).is_sendable());
/// assert!(!CloseCode::ABNORMAL_CLOSURE.is_sendable()); // 1006 never goes on the wire
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL_CLOSURE: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigated away).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer violated the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: the endpoint received a type of data it cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: reserved; reported when a close frame carried no status code. Never sent.
    pub const NO_STATUS_RECEIVED: Self = Self(1005);
    /// 1006: reserved; reported when the connection ended without a close frame. Never sent.
    pub const ABNORMAL_CLOSURE: Self = Self(1006);
    /// 1007: a message's data was not consistent with its type (e.g. invalid UTF-8 in text).
    pub const INVALID_FRAME_PAYLOAD_DATA: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message or frame was too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected the server to negotiate an extension that it did not.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later, e.g. the server is overloaded (IANA registry).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway received an invalid response (IANA registry).
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: reserved; reported when the TLS handshake failed. Never sent.
    pub const TLS_HANDSHAKE: Self = Self(1015);

    /// The numeric code.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether a close frame may carry this code: 1000-1003, 1007-1014 and the ranges 3000-4999
    /// (libraries, frameworks and applications). 1005, 1006 and 1015 are reserved for reporting,
    /// and everything else below 3000 is unassigned.
    pub const fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// The RFC name of a registered code, e.g. `"normal closure"`.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status received",
            1006 => "abnormal closure",
            1007 => "invalid frame payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "tls handshake",
            _ => return None,
        })
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// The longest close reason: a control payload is at most 125 bytes, two of which are the code.
pub const MAX_REASON_LEN: usize = 123;

/// A close frame's status code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// A human-readable reason, at most [`MAX_REASON_LEN`] bytes of UTF-8.
    pub reason: String,
}

impl CloseFrame {
    /// A close frame with `code` and `reason`.
    pub fn new(code: impl Into<CloseCode>, reason: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            reason: reason.into(),
        }
    }
}

/// The close frame that answers one received from the peer (RFC 6455 §5.5.1: an endpoint
/// replies with a close frame, "typically echoing the status code it received"): the same code
/// without the reason, and no code when the peer sent none (`None`: its close frame was empty).
///
/// The connection's automatic reply ([`Config::auto_close_reply`](crate::Config::auto_close_reply))
/// is this frame; a shell that lets the application answer uses it for the default answer.
///
/// ```
/// use ferrosocket_proto::{close_reply, CloseCode, CloseFrame};
/// let received = CloseFrame::new(CloseCode::GOING_AWAY, "restarting");
/// assert_eq!(close_reply(Some(&received)), Some(CloseFrame::new(CloseCode::GOING_AWAY, "")));
/// assert_eq!(close_reply(None), None);
/// ```
pub fn close_reply(received: Option<&CloseFrame>) -> Option<CloseFrame> {
    received.map(|f| CloseFrame::new(f.code, ""))
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.reason)
        }
    }
}

/// Why a close payload received from the peer is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClosePayloadError {
    /// One byte: too short for a code (1002).
    Truncated,
    /// A code that must not appear on the wire (1002).
    InvalidCode(u16),
    /// The reason is not UTF-8 (1007).
    InvalidUtf8,
}

/// Parses a received close payload: empty means "no status" (`None`).
pub(crate) fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ClosePayloadError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ClosePayloadError::Truncated),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_sendable() {
                return Err(ClosePayloadError::InvalidCode(code.0));
            }
            let reason = simdutf8::basic::from_utf8(reason).map_err(|_| ClosePayloadError::InvalidUtf8)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}

/// Trims `reason` to at most [`MAX_REASON_LEN`] bytes on a character boundary.
pub(crate) fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_7_4_1_codes_allowed_on_the_wire() {
        // Autobahn 7.7.x: valid; 7.9.x: invalid.
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(ok).is_sendable(), "{ok}");
        }
        for bad in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(bad).is_sendable(), "{bad}");
        }
    }

    #[test]
    fn rfc6455_5_5_1_close_payload() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
        assert_eq!(parse_close_payload(&[0x03]), Err(ClosePayloadError::Truncated));
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, b'o', b'k']),
            Ok(Some(CloseFrame::new(1000, "ok")))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xed]),
            Err(ClosePayloadError::InvalidCode(1005))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, 0xff]),
            Err(ClosePayloadError::InvalidUtf8)
        );
    }

    #[test]
    fn reason_truncation_keeps_char_boundaries() {
        let long = "é".repeat(100); // 200 bytes
        let t = truncate_reason(&long);
        assert!(t.len() <= MAX_REASON_LEN);
        assert_eq!(t.len(), 122);
    }
}
