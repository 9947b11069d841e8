//! Microbenchmarks of the sans-I/O core: masking, frame headers, UTF-8 validation, message
//! assembly, permessage-deflate, and the receive + echo path of a server `Connection`.
//!
//! Run with `cargo bench -p ferrosocket-proto --bench core` (add `-- mask` to filter).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrosocket_proto::apply_mask;
use ferrosocket_proto::fuzzing::{FixedMaskSource, Utf8Validator};
use ferrosocket_proto::{Config, Connection, Event, Message, MessageKind, Role};
use ferrosocket_proto::{DeflateConfig, DeflateParams};
use ferrosocket_proto::{FrameHeader, MAX_HEADER_LEN, OpCode};
use std::hint::black_box;
use std::io::IoSlice;

/// Text-like bytes (English-ish words, some multi-byte characters): what deflate and the
/// UTF-8 validator see in practice.
fn text(len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "the ",
        "websocket ",
        "frame ",
        "carries ",
        "a ",
        "message ",
        "to ",
        "every ",
        "client ",
        "naïve ",
        "café ",
        "κόσμε ",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize].as_bytes());
    }
    // Cut on a character boundary.
    let mut end = len;
    while std::str::from_utf8(&out[..end]).is_err() {
        end -= 1;
    }
    out.truncate(end);
    out.resize(len, b' ');
    out
}

fn client() -> Connection {
    let mut c = Connection::new(Role::Client, Config::default().max_frame_size(None));
    c.set_mask_source(Box::new(FixedMaskSource([0x37, 0xfa, 0x21, 0x3d])));
    c
}

fn server() -> Connection {
    Connection::new(Role::Server, Config::default().max_frame_size(None))
}

fn masking(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    for size in [16usize, 1 << 10, 64 << 10, 1 << 20] {
        let mut buf = vec![0xa5u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box([1, 2, 3, 4]), 0));
        });
    }
    g.finish();
}

fn headers(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_header");
    let masked_small = [0x82u8, 0x90, 1, 2, 3, 4];
    let masked_large = [0x82u8, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
    g.bench_function("decode_masked_16B", |b| {
        b.iter(|| FrameHeader::decode(black_box(&masked_small)))
    });
    g.bench_function("decode_masked_64KiB", |b| {
        b.iter(|| FrameHeader::decode(black_box(&masked_large)))
    });
    let small = FrameHeader::new(OpCode::Binary, true, 16);
    let large = FrameHeader {
        mask: Some([1, 2, 3, 4]),
        ..FrameHeader::new(OpCode::Binary, true, 1 << 20)
    };
    let mut out = [0u8; MAX_HEADER_LEN];
    g.bench_function("encode_unmasked_16B", |b| {
        b.iter(|| black_box(&small).encode(black_box(&mut out)))
    });
    g.bench_function("encode_masked_1MiB", |b| {
        b.iter(|| black_box(&large).encode(black_box(&mut out)))
    });
    g.finish();
}

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    for size in [1usize << 10, 64 << 10] {
        let data = text(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                v.feed(black_box(data)).unwrap();
                v.finish().unwrap();
            });
        });
    }
    g.finish();
}

/// A server `Connection` is fed one 64 KiB binary message as 64 masked fragments of 1 KiB.
fn assembly(c: &mut Criterion) {
    let mut cl = client();
    let chunk = vec![7u8; 1 << 10];
    for i in 0..64 {
        cl.send_fragment(MessageKind::Binary, chunk.clone().into(), i == 63)
            .unwrap();
    }
    let wire = cl.take_output();
    let mut g = c.benchmark_group("assemble");
    g.throughput(Throughput::Bytes(64 << 10));
    g.bench_function("64KiB_in_64_fragments", |b| {
        let mut srv = server();
        b.iter(|| {
            srv.receive(black_box(&wire));
            match srv.poll_event() {
                Ok(Some(Event::Message(m))) => black_box(m),
                other => panic!("unexpected {other:?}"),
            }
        });
    });
    g.finish();
}

fn deflate(c: &mut Criterion) {
    let params = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let cfg = DeflateConfig::default();
    let payload = Message::text(String::from_utf8(text(16 << 10)).unwrap());
    let pair = || {
        let mut cl = client();
        cl.enable_deflate(&params, &cfg);
        let mut srv = server();
        srv.enable_deflate(&params, &cfg);
        (cl, srv)
    };
    let mut g = c.benchmark_group("deflate_16KiB_text");
    g.throughput(Throughput::Bytes(16 << 10));
    g.bench_function("compress", |b| {
        let (mut cl, _) = pair();
        b.iter(|| {
            cl.send(black_box(payload.clone())).unwrap();
            black_box(cl.take_output())
        });
    });
    g.bench_function("inflate", |b| {
        // The first message of a stream refers to nothing before it, so the same frame
        // can be fed again and again to a receiver that keeps its context.
        let (mut cl, mut srv) = pair();
        cl.send(payload.clone()).unwrap();
        let wire = cl.take_output();
        b.iter(|| {
            srv.receive(black_box(&wire));
            match srv.poll_event() {
                Ok(Some(Event::Message(m))) => black_box(m),
                other => panic!("unexpected {other:?}"),
            }
        });
    });
    g.bench_function("roundtrip", |b| {
        let (mut cl, mut srv) = pair();
        b.iter(|| {
            cl.send(black_box(payload.clone())).unwrap();
            srv.receive(&cl.take_output());
            match srv.poll_event() {
                Ok(Some(Event::Message(m))) => black_box(m),
                other => panic!("unexpected {other:?}"),
            }
        });
    });
    g.finish();
}

/// What an echo server does per read: 16 masked 16-byte messages arrive together; each is
/// polled and sent back, then all replies are handed to the transport in one vectored write.
fn echo(c: &mut Criterion) {
    let mut cl = client();
    for i in 0..16u8 {
        cl.send(Message::binary(vec![i; 16])).unwrap();
    }
    let wire = cl.take_output();
    let mut g = c.benchmark_group("server_echo");
    g.throughput(Throughput::Elements(16));
    g.bench_function("16x16B", |b| {
        let mut srv = server();
        b.iter(|| {
            srv.receive(black_box(&wire));
            while let Some(ev) = srv.poll_event().unwrap() {
                if let Event::Message(m) = ev {
                    srv.send(m).unwrap();
                }
            }
            let mut slices = [IoSlice::new(&[]); 16];
            let n = srv.pending_output(&mut slices);
            let len: usize = slices[..n].iter().map(|s| s.len()).sum();
            black_box(&slices[..n]);
            srv.advance_output(len);
        });
    });
    g.finish();
}

criterion_group!(benches, masking, headers, utf8, assembly, deflate, echo);
criterion_main!(benches);
