//! Topic names: what a connection subscribes to and a publisher publishes on.

use std::fmt;
use std::sync::Arc;

/// The longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 128;

/// A topic (a room, a channel): 1 to [`MAX_TOPIC_LEN`] bytes of ASCII letters, digits and
/// `-`, `_`, `:`, `/`.
///
/// The alphabet is the intersection of what every backplane carries verbatim: a Redis channel
/// takes any bytes, but a NATS subject splits on `.` and gives `*`, `>` and whitespace a
/// meaning, so none of those is allowed. Cloning is a reference count.
///
/// ```
/// use ferrosocket_hub::Topic;
/// let room = Topic::new("room:lobby").unwrap();
/// assert_eq!(room.as_str(), "room:lobby");
/// assert!(Topic::new("a.b").is_err());
/// assert!(Topic::new("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

/// Why a string is not a [`Topic`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The name is empty.
    #[error("a topic name cannot be empty")]
    Empty,
    /// The name is longer than [`MAX_TOPIC_LEN`].
    #[error("a topic name is at most {MAX_TOPIC_LEN} bytes (this one has {0})")]
    TooLong(usize),
    /// The name holds a character outside the alphabet.
    #[error("a topic name takes ASCII letters, digits and - _ : / only, not {0:?}")]
    BadChar(char),
}

impl Topic {
    /// Checks `name` and makes it a topic.
    ///
    /// # Errors
    /// [`TopicError`] when the name is empty, too long or holds a character outside the
    /// alphabet.
    pub fn new(name: &str) -> Result<Self, TopicError> {
        if name.is_empty() {
            return Err(TopicError::Empty);
        }
        if name.len() > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong(name.len()));
        }
        if let Some(c) = name.chars().find(|c| !is_topic_char(*c)) {
            return Err(TopicError::BadChar(c));
        }
        Ok(Self(name.into()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '/')
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for Topic {
    type Error = TopicError;
    fn try_from(name: &str) -> Result<Self, TopicError> {
        Self::new(name)
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alphabet_and_the_length_are_enforced() {
        assert!(Topic::new("room-1_a:b/c").is_ok());
        assert_eq!(Topic::new(""), Err(TopicError::Empty));
        assert_eq!(Topic::new(&"a".repeat(129)), Err(TopicError::TooLong(129)));
        assert!(Topic::new(&"a".repeat(128)).is_ok());
        for bad in ["a.b", "a*", "a>", "a b", "é", "a\n"] {
            assert!(matches!(Topic::new(bad), Err(TopicError::BadChar(_))), "{bad:?}");
        }
    }
}
