//! A client: dial a server, send a few messages, print the replies, close with 1000 (normal
//! closure) and print how the server answered the close (gorilla's `examples/echo/client.go`).
//!
//! ```text
//! cargo run -p ferrosocket --example echo              # in one terminal
//! cargo run -p ferrosocket --example client            # in another
//! cargo run -p ferrosocket --example client -- --url ws://127.0.0.1:8080/ws --count 5
//! ```
//! It works against any echo server, e.g. the CLI's `ferrosocket echo`. Ctrl-C closes with
//! 1000 at once.

#[allow(dead_code)]
#[path = "common/mod.rs"]
mod common;

use ferrosocket::{CloseCode, CloseFrame, Dialer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = common::arg("url").unwrap_or_else(|| "ws://127.0.0.1:8080/ws".to_owned());
    let count: u32 = common::arg_or("count", 3)?;

    let (mut conn, response) = Dialer::new()
        .connect(url.as_str())
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    println!("connected to {url} ({})", response.status());

    let exchange = async {
        for i in 1..=count {
            let text = format!("hello {i}");
            conn.send_text(text.as_str()).await?;
            println!("sent: {text}");
            let reply = conn.recv().await?;
            println!("received: {}", common::printable(&reply));
        }
        Ok::<_, ferrosocket::Error>(())
    };
    tokio::select! {
        done = exchange => done?,
        _ = tokio::signal::ctrl_c() => println!("interrupted"),
    }

    // Send 1000 and wait (bounded by the close timeout) for the server's close frame.
    let goodbye = CloseFrame::new(CloseCode::NORMAL_CLOSURE, "bye");
    let closed = conn.close(Some(goodbye)).await?;
    println!("closed: {} {:?}", closed.code.as_u16(), closed.reason);
    Ok(())
}
