//! End-to-end echo through the tokio layer, in process: a client `Conn` and a server `Conn`
//! over `tokio::io::duplex`, both made with `Conn::from_raw` (no handshake), on one
//! current_thread runtime. Measures a round trip of K messages sent as one batch.
//!
//! Run with `cargo bench -p ferrosocket --bench echo`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrosocket::proto::Config;
use ferrosocket::{Conn, Message, Role};
use std::time::{Duration, Instant};
use tokio::io::DuplexStream;

fn pair(rt: &tokio::runtime::Runtime) -> Conn<DuplexStream> {
    let (a, b) = tokio::io::duplex(256 << 10);
    let config = Config::default().max_frame_size(None);
    let client = Conn::from_raw(a, Role::Client, config.clone(), &[]);
    let mut server = Conn::from_raw(b, Role::Server, config, &[]);
    rt.spawn(async move {
        // The echo loop of examples and `ferrosocket echo`: recv, then feed (batched).
        while let Ok(msg) = server.recv().await {
            if server.feed(msg).await.is_err() {
                break;
            }
        }
    });
    client
}

fn echo(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("conn_echo_duplex");
    g.measurement_time(Duration::from_secs(3));
    for (size, k) in [(16usize, 1usize), (16, 16), (16 << 10, 1), (16 << 10, 16)] {
        let payload = Message::binary(vec![0x5au8; size]);
        g.throughput(Throughput::Elements(k as u64));
        let id = BenchmarkId::from_parameter(format!("{size}B_x{k}"));
        g.bench_with_input(id, &k, |b, &k| {
            let mut client = pair(&rt);
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for _ in 0..k {
                            client.feed(payload.clone()).await.unwrap();
                        }
                        client.flush().await.unwrap();
                        for _ in 0..k {
                            let m = client.recv().await.unwrap();
                            debug_assert_eq!(m.len(), size);
                            std::hint::black_box(m);
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
    g.finish();
}

criterion_group!(benches, echo);
criterion_main!(benches);
