//! Messages: what the application sends and receives.

use bytes::Bytes;
use std::fmt;

/// Immutable UTF-8 text backed by [`Bytes`], so a received text message is a slice of the read
/// buffer rather than a copy.
///
/// It dereferences to [`str`] (so every `str` method works on it, and `&text` coerces to
/// `&str`), prints as the text itself, and compares with `str`, `&str` and `String` both ways:
///
/// ```
/// use ferrosocket_proto::Utf8Bytes;
/// let text = Utf8Bytes::from("héllo");
/// assert_eq!(text, "héllo");
/// assert_eq!("héllo", text);
/// assert!(text.starts_with("hé")); // through Deref<Target = str>
/// assert_eq!(text.to_string(), "héllo"); // Display
/// let s: &str = &text;
/// assert_eq!(s.len(), 6);
/// ```
#[derive(Clone, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Utf8Bytes(Bytes);

/// Hashes as the `str` does, so a `HashSet<Utf8Bytes>` can be searched with a `&str`
/// (the contract of `Borrow<str>`).
impl std::hash::Hash for Utf8Bytes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Utf8Bytes {
    /// An empty text.
    pub const fn new() -> Self {
        Self(Bytes::new())
    }

    /// Text from a static string, without copying.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// Checks `bytes` and wraps them without copying.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, crate::utf8::Utf8Error> {
        simdutf8::basic::from_utf8(&bytes).map_err(|_| crate::utf8::Utf8Error)?;
        Ok(Self(bytes))
    }

    /// Wraps bytes the caller has already validated, without checking them again.
    ///
    /// # Safety
    ///
    /// `bytes` must be valid UTF-8: [`as_str`](Self::as_str) hands them out as a `str`
    /// without a check, and a `str` holding invalid UTF-8 is undefined behaviour.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn from_bytes_unchecked(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Self(bytes)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor either validates the bytes or takes them from a `str`.
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(&self.0)
        }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Gives up the text type.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `Utf8Bytes` is a `str`: the same text as [`Utf8Bytes::as_str`].
impl std::ops::Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

/// Copies the text (use [`Utf8Bytes::from_static`] for a `&'static str` without copying).
impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

/// Copies the text.
impl From<&String> for Utf8Bytes {
    fn from(s: &String) -> Self {
        Self::from(s.as_str())
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Utf8Bytes {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// The bytes of the text (no copy).
impl From<Utf8Bytes> for Bytes {
    fn from(t: Utf8Bytes) -> Self {
        t.0
    }
}

/// Checks the bytes (no copy); fails on invalid UTF-8.
impl TryFrom<Bytes> for Utf8Bytes {
    type Error = crate::utf8::Utf8Error;
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        Self::try_from_bytes(bytes)
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Utf8Bytes {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Utf8Bytes> for str {
    fn eq(&self, other: &Utf8Bytes) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Utf8Bytes> for &str {
    fn eq(&self, other: &Utf8Bytes) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Utf8Bytes> for String {
    fn eq(&self, other: &Utf8Bytes) -> bool {
        self.as_str() == other.as_str()
    }
}

/// The kind of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text (opcode 0x1).
    Text,
    /// Arbitrary bytes (opcode 0x2).
    Binary,
}

/// A complete data message. Control frames (ping, pong, close) are not messages: the
/// connection answers them itself and reports them through events or handlers.
///
/// Anything text-like converts into a text message, anything byte-like into a binary one, so
/// a `send(impl Into<Message>)` takes them as they are:
///
/// | from | kind | copies? |
/// |---|---|---|
/// | `&str`, `&String` | text | yes |
/// | `String` | text | no |
/// | [`Utf8Bytes`] | text | no |
/// | `&[u8]`, `&[u8; N]` (e.g. `b"ab"`) | binary | yes |
/// | `Vec<u8>`, [`Bytes`] | binary | no |
///
/// ```
/// use ferrosocket_proto::{Message, MessageKind};
/// assert_eq!(Message::from("hi"), Message::text("hi"));
/// assert_eq!(Message::from(String::from("hi")).kind(), MessageKind::Text);
/// assert_eq!(Message::from(b"ab"), Message::binary(&b"ab"[..]));
/// assert!(Message::from(vec![1u8, 2]).is_binary());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, validated as UTF-8.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// A text message.
    pub fn text(s: impl Into<Utf8Bytes>) -> Self {
        Self::Text(s.into())
    }

    /// A binary message.
    pub fn binary(b: impl Into<Bytes>) -> Self {
        Self::Binary(b.into())
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Text(_) => MessageKind::Text,
            Self::Binary(_) => MessageKind::Binary,
        }
    }

    /// The payload bytes.
    pub fn as_bytes(&self) -> &Bytes {
        match self {
            Self::Text(t) => t.as_bytes(),
            Self::Binary(b) => b,
        }
    }

    /// The payload, giving up the kind (no copy). [`Message::into_data`] is the same.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Self::Text(t) => t.into_bytes(),
            Self::Binary(b) => b,
        }
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// The payload, giving up the kind (no copy). The same as
    /// [`Message::into_bytes`].
    ///
    /// ```
    /// use ferrosocket_proto::Message;
    /// assert_eq!(Message::from("hi").into_data(), &b"hi"[..]);
    /// assert_eq!(Message::from(vec![1u8, 2]).into_data(), &[1u8, 2][..]);
    /// ```
    pub fn into_data(self) -> Bytes {
        self.into_bytes()
    }

    /// Whether this is a text message.
    ///
    /// ```
    /// use ferrosocket_proto::Message;
    /// assert!(Message::from("hi").is_text());
    /// assert!(!Message::from(vec![0u8]).is_text());
    /// ```
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// Whether this is a binary message.
    ///
    /// ```
    /// use ferrosocket_proto::Message;
    /// assert!(Message::from(&b"\x00\x01"[..]).is_binary());
    /// assert!(!Message::from("hi").is_binary());
    /// ```
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }

    /// The text, if this is a text message (`None` for binary, even when it is valid UTF-8;
    /// see [`Message::to_text`]).
    ///
    /// ```
    /// use ferrosocket_proto::Message;
    /// assert_eq!(Message::from("hi").as_text(), Some("hi"));
    /// assert_eq!(Message::from(&b"hi"[..]).as_text(), None);
    /// ```
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t.as_str()),
            Self::Binary(_) => None,
        }
    }

    /// The payload as text: a text message as it is, a binary message if its bytes are valid
    /// UTF-8 (checked on each call), otherwise [`Utf8Error`](crate::utf8::Utf8Error).
    ///
    /// ```
    /// use ferrosocket_proto::Message;
    /// assert_eq!(Message::from("hi").to_text(), Ok("hi"));
    /// assert_eq!(Message::from(&b"hi"[..]).to_text(), Ok("hi"));
    /// assert!(Message::from(&b"\xff"[..]).to_text().is_err());
    /// ```
    pub fn to_text(&self) -> Result<&str, crate::utf8::Utf8Error> {
        match self {
            Self::Text(t) => Ok(t.as_str()),
            Self::Binary(b) => simdutf8::basic::from_utf8(b).map_err(|_| crate::utf8::Utf8Error),
        }
    }
}

/// A text message prints as its text; a binary message as `<binary N bytes>` (its length, not
/// its contents, which may be anything). Use [`Message::to_text`] or `{:?}` to see the bytes.
///
/// ```
/// use ferrosocket_proto::Message;
/// assert_eq!(Message::from("hi").to_string(), "hi");
/// assert_eq!(Message::from(vec![1u8, 2, 3]).to_string(), "<binary 3 bytes>");
/// ```
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(t) => fmt::Display::fmt(t.as_str(), f),
            Self::Binary(b) => write!(f, "<binary {} bytes>", b.len()),
        }
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Self::Text(s.into())
    }
}

/// A text message (copies the text).
impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Self::Text(s.into())
    }
}

/// A text message (copies the text).
impl From<&String> for Message {
    fn from(s: &String) -> Self {
        Self::Text(s.into())
    }
}

/// A text message (no copy).
impl From<Utf8Bytes> for Message {
    fn from(t: Utf8Bytes) -> Self {
        Self::Text(t)
    }
}

/// A binary message (no copy).
impl From<Vec<u8>> for Message {
    fn from(v: Vec<u8>) -> Self {
        Self::Binary(v.into())
    }
}

/// A binary message (no copy).
impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Self::Binary(b)
    }
}

/// A binary message (copies the bytes).
impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Self {
        Self::Binary(Bytes::copy_from_slice(b))
    }
}

/// A binary message (copies the bytes), so a byte string literal like `b"ab"` is a message.
impl<const N: usize> From<&[u8; N]> for Message {
    fn from(b: &[u8; N]) -> Self {
        Self::Binary(Bytes::copy_from_slice(b))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn text_conversions() {
        let owned = String::from("owned");
        for (msg, want) in [
            (Message::from("lit"), "lit"),
            (Message::from(owned.clone()), "owned"),
            (Message::from(&owned), "owned"),
            (Message::from(Utf8Bytes::from_static("static")), "static"),
        ] {
            assert!(msg.is_text() && !msg.is_binary());
            assert_eq!(msg.kind(), MessageKind::Text);
            assert_eq!(msg.as_text(), Some(want));
            assert_eq!(msg.to_text(), Ok(want));
            assert_eq!(msg.to_string(), want);
            assert_eq!(msg.into_data(), want.as_bytes());
        }
    }

    #[test]
    fn binary_conversions() {
        let data = [1u8, 2, 3];
        for msg in [
            Message::from(&data[..]),
            Message::from(&data),
            Message::from(data.to_vec()),
            Message::from(Bytes::copy_from_slice(&data)),
        ] {
            assert!(msg.is_binary() && !msg.is_text());
            assert_eq!(msg.kind(), MessageKind::Binary);
            assert_eq!(msg.as_text(), None);
            assert_eq!(msg.to_string(), "<binary 3 bytes>");
            assert_eq!(msg.len(), 3);
            assert_eq!(msg.into_data(), &data[..]);
        }
        assert_eq!(Message::from(b"").to_string(), "<binary 0 bytes>");
    }

    #[test]
    fn into_data_does_not_copy() {
        let b = Bytes::from(vec![7u8; 64]);
        let ptr = b.as_ptr();
        assert_eq!(Message::from(b).into_data().as_ptr(), ptr);
        let t = Utf8Bytes::from(String::from("some text"));
        let ptr = t.as_bytes().as_ptr();
        assert_eq!(Message::from(t).into_data().as_ptr(), ptr);
    }

    #[test]
    fn to_text_checks_binary() {
        assert_eq!(Message::from(&b"ok"[..]).to_text(), Ok("ok"));
        assert_eq!(
            Message::from(&b"\xc3\x28"[..]).to_text(),
            Err(crate::utf8::Utf8Error)
        );
    }

    #[test]
    fn display_keeps_formatter_options() {
        assert_eq!(format!("{:>5}", Message::from("ab")), "   ab");
        assert_eq!(format!("{:>5}", Utf8Bytes::from("ab")), "   ab");
    }

    #[test]
    fn utf8_bytes_conversions_and_comparisons() {
        let s = String::from("héllo");
        let a = Utf8Bytes::from(&s);
        let b = Utf8Bytes::from(s.clone());
        let c = Utf8Bytes::from("héllo");
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a, "héllo");
        assert_eq!(a, *"héllo");
        assert_eq!(a, s);
        assert_eq!("héllo", a);
        assert_eq!(*"héllo", a);
        assert_eq!(s, a);
        assert_ne!(a, "hello");
        assert_eq!(a.to_string(), "héllo");
        assert_eq!(&*a, "héllo");
        assert_eq!(a.to_uppercase(), "HÉLLO");
        let as_str: &str = a.as_ref();
        assert_eq!(as_str, "héllo");
        let as_bytes: &[u8] = a.as_ref();
        assert_eq!(as_bytes, s.as_bytes());
        let set: std::collections::HashSet<Utf8Bytes> = [a.clone()].into_iter().collect();
        assert!(set.contains("héllo"));
        assert_eq!(Bytes::from(a), s.as_bytes());
        assert!(Utf8Bytes::try_from(Bytes::from_static(b"\xff")).is_err());
        assert_eq!(Utf8Bytes::try_from(Bytes::from_static(b"ok")).unwrap(), "ok");
    }
}
