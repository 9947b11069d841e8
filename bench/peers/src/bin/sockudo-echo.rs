//! sockudo-ws 3.1 echo server as its README's "Simple Echo Server" and its `simple_echo`
//! example write it: `next()`, then `send()` (which flushes) for each text or binary message,
//! so one message is handled at a time. Ping, Pong and Close replies are the library's own.
//! `Config::default()`; `--compress` negotiates permessage-deflate (context takeover, level 6:
//! `DeflateConfig::default()`) through `CompressedWebSocketStream`. One thread.

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use sockudo_ws::Message;

#[derive(Clone)]
struct OneAtATime;

impl ferrosocket_bench_peers::sockudo::EchoLoop for OneAtATime {
    async fn run<W>(self, mut ws: W) -> sockudo_ws::Result<()>
    where
        W: Stream<Item = sockudo_ws::Result<Message>>
            + Sink<Message, Error = sockudo_ws::Error>
            + Unpin
            + Send,
    {
        while let Some(msg) = ws.next().await {
            match msg? {
                Message::Text(text) => ws.send(Message::Text(text)).await?,
                Message::Binary(data) => ws.send(Message::Binary(data)).await?,
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
        Ok(())
    }
}

fn main() {
    ferrosocket_bench_peers::sockudo::main("sockudo-echo", OneAtATime);
}
