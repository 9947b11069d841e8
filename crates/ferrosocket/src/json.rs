//! JSON messages (feature `json`): `send_json` / `recv_json`.
//!
//! [`Conn::send_json`] serializes a value with serde_json and sends it as one text message;
//! [`Conn::recv_json`] receives the next message, text or binary, and deserializes it. The
//! split halves have the same pair ([`WriteHalf::send_json`], [`ReadHalf::recv_json`]).
//!
//! Everything here goes through the public `send` and `recv`, so framing, limits, handlers,
//! deadlines and cancel safety are theirs. A message that is not the expected JSON is an
//! [`Error::Json`] that leaves the connection open; a value that cannot be serialized is an
//! [`Error::JsonEncode`] and nothing is sent.

use crate::{Conn, Error, Message, ReadHalf, WriteHalf};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};

/// The text message carrying `value` as JSON (no copy of the serialized text).
fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Message, Error> {
    serde_json::to_string(value)
        .map(Message::text)
        .map_err(Error::JsonEncode)
}

/// The value in a received message; the kind does not matter (JSON is UTF-8 either way, and
/// serde_json checks it).
fn decode<T: DeserializeOwned>(msg: &Message) -> Result<T, Error> {
    serde_json::from_slice(msg.as_bytes()).map_err(Error::Json)
}

#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Serializes `value` as JSON and sends it as one text message.
    ///
    /// # Errors
    /// [`Error::JsonEncode`] when serde_json cannot serialize `value` (nothing is sent; the
    /// connection stays usable), otherwise those of [`Conn::send`].
    pub async fn send_json<T>(&mut self, value: &T) -> Result<(), Error>
    where
        T: Serialize + ?Sized,
    {
        let msg = encode(value)?;
        self.send(msg).await
    }

    /// Receives the next message, text or binary, and deserializes it from JSON.
    ///
    /// # Errors
    /// [`Error::Json`] when the message is not valid JSON for `T`: the message was consumed
    /// and the connection remains open, so the next call reads the next message. Otherwise
    /// those of [`Conn::recv`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Conn::recv`]: the message is decoded only once it is complete.
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ferrosocket::Error> {
    /// use ferrosocket::proto::{Config, Role};
    /// use ferrosocket::{Conn, Error};
    ///
    /// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    /// struct Move {
    ///     x: i32,
    ///     y: i32,
    /// }
    ///
    /// // The two ends of an in-memory pipe stand in for a server and its client.
    /// let (a, b) = tokio::io::duplex(4096);
    /// let mut server = Conn::from_raw(a, Role::Server, Config::default(), &[]);
    /// let mut client = Conn::from_raw(b, Role::Client, Config::default(), &[]);
    ///
    /// client.send("not a move").await?;
    /// client.send_json(&Move { x: 1, y: 2 }).await?;
    ///
    /// // A message that is not a `Move` is consumed; the connection stays open.
    /// assert!(matches!(server.recv_json::<Move>().await, Err(Error::Json(_))));
    /// assert_eq!(server.recv_json::<Move>().await?, Move { x: 1, y: 2 });
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_json<T>(&mut self) -> Result<T, Error>
    where
        T: DeserializeOwned,
    {
        let msg = self.recv().await?;
        decode(&msg)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
impl<S> ReadHalf<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Receives the next message and deserializes it from JSON; see [`Conn::recv_json`].
    ///
    /// # Errors
    /// [`Error::Json`] when the message is not valid JSON for `T` (the message was consumed;
    /// the connection remains open), otherwise those of [`ReadHalf::recv`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`ReadHalf::recv`].
    pub async fn recv_json<T>(&mut self) -> Result<T, Error>
    where
        T: DeserializeOwned,
    {
        let msg = self.recv().await?;
        decode(&msg)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
impl<S> WriteHalf<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Serializes `value` as JSON and sends it as one text message; see [`Conn::send_json`].
    ///
    /// # Errors
    /// [`Error::JsonEncode`] when serde_json cannot serialize `value` (nothing is sent),
    /// otherwise those of [`WriteHalf::send`].
    pub async fn send_json<T>(&self, value: &T) -> Result<(), Error>
    where
        T: Serialize + ?Sized,
    {
        let msg = encode(value)?;
        self.send(msg).await
    }
}
