//! `futures` `Stream` and `Sink` for [`Conn`] (feature `stream`).

use crate::conn::Conn;
use crate::error::Error;
use ferrosocket_proto::{CloseCode, CloseFrame, Message};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};

/// Yields messages until the session ends. A normal end (the peer sent 1000, 1001 or no
/// code) ends the stream; any other end is yielded once as an error, then the stream ends.
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
impl<S> futures_core::Stream for Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        stream_item(self.get_mut().poll_recv(cx))
    }
}

/// A receive result as a stream item: a normal end (1000, 1001 or no code) ends the stream,
/// any other end is yielded once as an error.
fn stream_item(polled: Poll<Result<Message, Error>>) -> Poll<Option<Result<Message, Error>>> {
    match polled {
        Poll::Ready(Ok(m)) => Poll::Ready(Some(Ok(m))),
        Poll::Ready(Err(Error::AlreadyClosed)) => Poll::Ready(None),
        Poll::Ready(Err(e)) if e.is_normal_close() => Poll::Ready(None),
        Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
        Poll::Pending => Poll::Pending,
    }
}

/// Sends messages; `poll_close` sends a 1000 close frame and writes everything out.
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
impl<S> futures_sink::Sink<Message> for Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.queued_bytes() >= this.write_buffer_size() {
            this.poll_flush(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.get_mut().queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.core().close_sent().is_none() && this.core().state() != ferrosocket_proto::State::Closed {
            this.queue_close(CloseFrame::new(CloseCode::NORMAL_CLOSURE, ""))?;
        }
        this.poll_flush(cx)
    }
}

/// Yields messages until the session ends, like the [`Stream`](futures_core::Stream) of
/// [`Conn`].
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
impl<S> futures_core::Stream for crate::ReadHalf<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        stream_item(self.get_mut().poll_recv(cx))
    }
}

/// Sends messages; `poll_close` sends a 1000 close frame and writes everything out (the
/// reader then receives the peer's close).
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
impl<S> futures_sink::Sink<Message> for crate::WriteHalf<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.queued_bytes() >= this.write_buffer_size() {
            this.poll_flush(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.get_mut().queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        crate::WriteHalf::poll_flush(self.get_mut(), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.queue_close_if_open();
        crate::WriteHalf::poll_flush(this, cx)
    }
}
