//! The request parser against redis-protocol's decoder, and the whole
//! command path (parse, dispatch, execute, reply) for SET and GET.
//!
//! `cargo bench --bench resp_parser`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferrokey::client::{Client, ClientInfo};
use ferrokey::config::Config;
use ferrokey::reply::Reply;
use ferrokey::server::ServerState;
use ferrokey_formats::resp::{parse_request, Parsed, Request, RequestLimits};
use std::rc::Rc;

/// A pipeline of 16 SETs with 64-byte values, as valkey-benchmark -P 16 -d 64 sends.
fn pipeline() -> Vec<u8> {
    let mut buf = Vec::new();
    let value = vec![b'x'; 64];
    for i in 0..16 {
        let key = format!("key:{i:012}");
        buf.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n${}\r\n{}\r\n$64\r\n", key.len(), key).as_bytes());
        buf.extend_from_slice(&value);
        buf.extend_from_slice(b"\r\n");
    }
    buf
}

fn parsers(c: &mut Criterion) {
    let input = pipeline();
    let mut group = c.benchmark_group("parse 16 SET frames");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("ferrokey", |b| {
        let mut req = Request::default();
        b.iter(|| {
            let mut pos = 0;
            let mut n = 0;
            while let Ok(Parsed::Complete { consumed }) =
                parse_request(&input[pos..], RequestLimits::default(), &mut req)
            {
                n += req.args.len();
                pos += consumed;
            }
            black_box(n)
        })
    });
    group.bench_function("redis-protocol", |b| {
        b.iter(|| {
            let mut pos = 0;
            let mut n = 0;
            while let Ok(Some((frame, used))) = redis_protocol::resp2::decode::decode_range(&input[pos..]) {
                n += match frame {
                    redis_protocol::resp2::types::RangeFrame::Array(items) => items.len(),
                    _ => 1,
                };
                pos += used;
            }
            black_box(n)
        })
    });
    group.finish();
}

fn command_path(c: &mut Criterion) {
    let mut state = ServerState::new(Config::defaults());
    let addr = "127.0.0.1:1".parse().unwrap();
    let info = Rc::new(ClientInfo::new(1, addr, addr, -1, 0, true));
    let mut client = Client::new(info);
    let mut out = Reply::new(false);
    let mut req = Request::default();
    let sets = pipeline();
    let gets: Vec<u8> =
        (0..16).flat_map(|i| format!("*2\r\n$3\r\nGET\r\n$16\r\nkey:{i:012}\r\n").into_bytes()).collect();
    let mut group = c.benchmark_group("execute 16 commands");
    group.throughput(Throughput::Elements(16));
    group.bench_function("SET", |b| {
        b.iter(|| {
            out.buf.clear();
            ferrokey::connection::process_input(&mut state, &mut client, &mut out, &sets, &mut req)
        })
    });
    group.bench_function("GET", |b| {
        b.iter(|| {
            out.buf.clear();
            ferrokey::connection::process_input(&mut state, &mut client, &mut out, &gets, &mut req)
        })
    });
    group.finish();
}

criterion_group!(benches, parsers, command_path);
criterion_main!(benches);
