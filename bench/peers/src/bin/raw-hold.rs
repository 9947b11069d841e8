//! The memory floor for `cargo xtask bench-memory`: what a tokio server must spend per upgraded
//! connection when it spends nothing of its own. One thread. Each accepted socket gets a task
//! that reads the HTTP upgrade request (into a buffer shared by every connection, or, when it
//! comes in pieces, one dropped once the 101 is written), answers it with a real
//! `Sec-WebSocket-Accept`, then only waits for the socket to become readable: an idle
//! connection owns its `TcpStream` and its task, and no buffer.
//!
//! When bytes do arrive it echoes them as they are (like `raw-tcp-echo`, so a client's masked
//! frame comes back masked, which `ws-hold` accepts): it reads into one 64 KiB buffer shared by
//! every connection on the thread and writes back at once whatever the socket takes; only a
//! tail the socket would not take is copied to a per-connection buffer, freed once written.
//! No WebSocket parsing, no timers, no close handshake: EOF or an error ends the task.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::ErrorKind;

use tokio::net::{TcpListener, TcpStream};

thread_local! {
    /// The read buffer of every connection on this thread (the runtime has only one).
    static SHARED: RefCell<Box<[u8]>> = RefCell::new(vec![0; 64 << 10].into_boxed_slice());
}

/// What one readiness turn of [`hold`] ended with.
enum Turn {
    /// Nothing more to read now (or a tail is left to write).
    Wait,
    /// EOF or an error: drop the connection.
    Done,
}

/// Reads what is there into the shared buffer and writes it straight back; a tail the socket
/// does not take goes to `pending`, and reading stops until it is written.
fn read_and_echo(stream: &TcpStream, pending: &mut Vec<u8>) -> Turn {
    SHARED.with_borrow_mut(|buf| {
        loop {
            let n = match stream.try_read(buf) {
                Ok(0) => return Turn::Done,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Turn::Wait,
                Err(_) => return Turn::Done,
            };
            let written = match stream.try_write(&buf[..n]) {
                Ok(w) => w,
                Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                Err(_) => return Turn::Done,
            };
            if written < n {
                pending.extend_from_slice(&buf[written..n]);
                return Turn::Wait;
            }
        }
    })
}

/// Holds an upgraded connection until EOF, echoing anything it receives.
async fn hold(stream: TcpStream, mut pending: Vec<u8>) {
    loop {
        while !pending.is_empty() {
            if poll_fn(|cx| stream.poll_write_ready(cx)).await.is_err() {
                return;
            }
            match stream.try_write(&pending) {
                Ok(n) => drop(pending.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        // Give the memory back: an idle connection keeps no buffer.
        pending = Vec::new();
        // `poll_read_ready` keeps the waker in the socket's registration; `readable()` would
        // put a waiter node in this future, and so in every idle connection.
        if poll_fn(|cx| stream.poll_read_ready(cx)).await.is_err() {
            return;
        }
        if let Turn::Done = read_and_echo(&stream, &mut pending) {
            return;
        }
    }
}

/// The first read of a connection, made into the shared buffer.
enum First {
    /// The whole request head came: the answer to it, and any bytes after it.
    Head(Result<String, &'static str>, Vec<u8>),
    /// Part of it (or nothing yet): those bytes, to go on with in a buffer of the connection's.
    Part(Vec<u8>),
}

/// Reads the upgrade request and answers it; returns the bytes read past the request.
///
/// A client's request almost always arrives in one segment: it is then read into the shared
/// buffer and nothing of the connection's own is allocated but the short-lived 101. Otherwise
/// (or with an early WouldBlock) the rest is read into a buffer that lives only for the
/// handshake. Boxed by the caller so that none of this state is part of the future every idle
/// connection keeps.
async fn handshake(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    use ferrosocket_bench_peers::upgrade;
    poll_fn(|cx| stream.poll_read_ready(cx)).await?;
    let first = SHARED.with_borrow_mut(|buf| match stream.try_read(buf) {
        Ok(0) => Err(std::io::Error::from(ErrorKind::UnexpectedEof)),
        Ok(n) => Ok(match upgrade::head_end(&buf[..n]) {
            Some(end) => First::Head(upgrade::response_to(&buf[..end]), buf[end..n].to_vec()),
            None => First::Part(buf[..n].to_vec()),
        }),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(First::Part(Vec::new())),
        Err(e) => Err(e),
    })?;
    match first {
        First::Head(response, rest) => upgrade::answer(stream, response).await.map(|()| rest),
        First::Part(part) => upgrade::accept(stream, part).await,
    }
}

async fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // Bytes after the request head (a client that did not wait for the 101) are echoed first.
    if let Ok(rest) = Box::pin(handshake(&mut stream)).await {
        hold(stream, rest).await;
    }
}

fn main() {
    let addr = match ferrosocket_bench_peers::listen_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("raw-hold: {e}");
            std::process::exit(2);
        }
    };
    let result: std::io::Result<()> = ferrosocket_bench_peers::runtime().and_then(|rt| {
        rt.block_on(async move {
            let listener = TcpListener::bind(addr).await?;
            println!("raw-hold: listening on {}", listener.local_addr()?);
            let mut first = true;
            loop {
                let (stream, _) = listener.accept().await?;
                let task = serve(stream);
                if first {
                    // Part of the floor's account of its bytes: tokio allocates each task's
                    // future inside the task (with a header and the scheduler's fields).
                    println!("raw-hold: a connection's future is {} bytes", size_of_val(&task));
                    first = false;
                }
                tokio::spawn(task);
            }
        })
    });
    if let Err(e) = result {
        eprintln!("raw-hold: {e}");
        std::process::exit(1);
    }
}
