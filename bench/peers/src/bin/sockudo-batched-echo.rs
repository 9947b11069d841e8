//! sockudo-ws 3.1 echo server with the batched loop its README recommends for a Tokio unified
//! echo: each text or binary message is queued with `feed()` (no flush), and the next `next()`
//! writes everything queued in one flush once the messages already read are used up, before it
//! reads the socket again. Otherwise the same server as `sockudo-echo` (`Config::default()`,
//! `--compress` for permessage-deflate with context takeover). One thread.

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use sockudo_ws::Message;

#[derive(Clone)]
struct Batched;

impl ferrosocket_bench_peers::sockudo::EchoLoop for Batched {
    async fn run<W>(self, mut ws: W) -> sockudo_ws::Result<()>
    where
        W: Stream<Item = sockudo_ws::Result<Message>>
            + Sink<Message, Error = sockudo_ws::Error>
            + Unpin
            + Send,
    {
        while let Some(msg) = ws.next().await {
            match msg? {
                msg @ (Message::Text(_) | Message::Binary(_)) => ws.feed(msg).await?,
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
        Ok(())
    }
}

fn main() {
    ferrosocket_bench_peers::sockudo::main("sockudo-batched-echo", Batched);
}
