//! A warm connection allocates nothing per echoed message: the read and write buffers are
//! lent by the thread and handed back whenever a read would block (see `conn/spare.rs`).
//! Counted with a global allocator over real sockets on 127.0.0.1, both ends in this process
//! (so the client's allocations count too). Only the test's own thread counts: the runtime is
//! current-thread, so both ends run there, and the harness's other threads (another test,
//! its output) cannot land in the count on a busy machine.

// A counting global allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used)]
use ferrosocket::{Conn, Message, Role};
use ferrosocket_proto::Config;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations count (const-initialized, no destructor: safe to
    /// read from the allocator).
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

async fn pair() -> (Conn<TcpStream>, Conn<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (server, client) = (server.unwrap().0, client.unwrap());
    server.set_nodelay(true).unwrap();
    client.set_nodelay(true).unwrap();
    (
        Conn::from_raw(server, Role::Server, Config::default(), &[]),
        Conn::from_raw(client, Role::Client, Config::default(), &[]),
    )
}

/// Echoes `rounds` bursts of `burst` messages of `size` bytes; returns the allocations made
/// during the last `rounds - warmup` rounds.
async fn allocations_per_round(size: usize, burst: usize, rounds: usize) -> usize {
    let (mut server, mut client) = pair().await;
    let echo = tokio::spawn(async move {
        while let Ok(msg) = server.recv().await {
            if server.feed(msg).await.is_err() {
                break;
            }
        }
    });
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let warmup = 50;
    let mut before = 0;
    for round in 0..rounds {
        if round == warmup {
            before = ALLOCATIONS.load(Ordering::Relaxed);
        }
        for _ in 0..burst {
            client.feed(Message::Binary(payload.clone())).await.unwrap();
        }
        client.flush().await.unwrap();
        for _ in 0..burst {
            let echoed = client.recv().await.unwrap();
            assert_eq!(echoed.len(), size);
        }
    }
    let made = ALLOCATIONS.load(Ordering::Relaxed) - before;
    client.close(None).await.ok();
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), echo)
        .await
        .unwrap()
        .unwrap();
    made
}

#[tokio::test(flavor = "current_thread")]
async fn a_warm_connection_allocates_nothing_per_message() {
    COUNTED.with(|c| c.set(true));
    for (size, burst) in [(16, 1), (16, 16), (1024, 1), (1024, 16)] {
        let made = allocations_per_round(size, burst, 550).await;
        assert_eq!(
            made, 0,
            "{size} B x {burst}: {made} allocations in 500 warm rounds"
        );
    }
}

/// Every idle connection carries its `Conn` (in its task's future): keep it small. 872 bytes
/// before issue 13; the configuration is now shared, the handlers and the ending error boxed.
#[test]
#[cfg(all(target_pointer_width = "64", not(feature = "metrics")))]
fn a_conn_stays_small() {
    let size = std::mem::size_of::<Conn<TcpStream>>();
    assert!(size <= 656, "Conn<TcpStream> is {size} bytes");
}
