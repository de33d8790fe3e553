//! Bad input on the wire: every malformed request gets Valkey's error and
//! a closed connection, other clients keep being served, and the server's
//! memory returns to where it was.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{RawConn, Server};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Sends `bytes`, then reads everything until the server closes.
fn send_and_read_to_close(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may close before everything is written; that is the point.
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

#[test]
fn malformed_frames_get_valkeys_error_and_close() {
    let server = Server::start();
    let cases: &[(&[u8], &[u8])] = &[
        (b"*1\r\n$2147483648\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*3000000000\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n:5\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
        (b"set a \"b\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n"),
    ];
    for (input, expected) in cases {
        let got = send_and_read_to_close(server.port, input);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
    // A negative multibulk count is skipped, like an empty line.
    let mut c = RawConn::connect(server.port);
    c.send_raw(b"*-5\r\n\r\n");
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn truncated_frames_wait_for_the_rest() {
    let server = Server::start();
    let mut c = RawConn::connect(server.port);
    let frame = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
    for chunk in frame.chunks(3) {
        c.send_raw(chunk);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(c.read_reply(), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"GET", b"k"]), b"$5\r\nhello\r\n");
}

#[test]
fn huge_inline_line_is_refused_and_memory_returns() {
    let server = Server::start();
    let pid = server.pid().expect("pid");
    let mut bystander = RawConn::connect(server.port);
    assert_eq!(bystander.cmd(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    let before = rss_kib(pid);

    // 100 MB of inline text without a newline.
    let port = server.port;
    let flood = std::thread::spawn(move || {
        let line = vec![b'a'; 100 * 1024 * 1024];
        send_and_read_to_close(port, &line)
    });
    // A big multibulk whose bulk never arrives, and a bulk count line that never ends.
    let count_flood = std::thread::spawn(move || {
        let mut bytes = b"*1\r\n$".to_vec();
        bytes.extend(std::iter::repeat_n(b'9', 1024 * 1024));
        send_and_read_to_close(port, &bytes)
    });
    assert_eq!(bystander.cmd(&[b"GET", b"k"]), b"$1\r\nv\r\n");

    let got = flood.join().unwrap();
    assert!(got.starts_with(b"-ERR Protocol error: too big inline request\r\n"), "{:?}", String::from_utf8_lossy(&got));
    let got = count_flood.join().unwrap();
    assert!(
        got.starts_with(b"-ERR Protocol error: too big bulk count string\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(bystander.cmd(&[b"GET", b"k"]), b"$1\r\nv\r\n");
    let after = rss_kib(pid);
    assert!(after < before + 16 * 1024, "RSS grew from {before} KiB to {after} KiB");
}

#[test]
fn random_garbage_never_takes_the_server_down() {
    let server = Server::start();
    let mut bystander = RawConn::connect(server.port);
    // A fixed seed keeps failures reproducible.
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..200 {
        let len = (next() % 4096) as usize + 1;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Half the rounds look like RESP, to reach the deeper parser states.
        if round % 2 == 0 {
            bytes[0] = b'*';
        }
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let _ = s.write_all(&bytes);
        let mut sink = [0u8; 65536];
        let _ = s.read(&mut sink);
        drop(s);
        if round % 20 == 0 {
            assert_eq!(bystander.cmd(&[b"PING"]), b"+PONG\r\n", "after round {round}");
        }
    }
    assert_eq!(bystander.cmd(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start();
    let mut c = RawConn::connect(server.port);
    let mut batch = Vec::new();
    for i in 0..1000 {
        let v = i.to_string();
        batch.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{}\r\n", v.len(), v).as_bytes());
        batch.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
    c.send_raw(&batch);
    for i in 0..1000 {
        assert_eq!(c.read_reply(), b"+OK\r\n");
        let v = i.to_string();
        assert_eq!(c.read_reply(), format!("${}\r\n{}\r\n", v.len(), v).as_bytes());
    }
}

#[test]
fn many_idle_connections_cost_little_memory() {
    let server = Server::start_with(&["--maxclients", "10000"]);
    let pid = server.pid().expect("pid");
    let mut first = RawConn::connect(server.port);
    assert_eq!(first.cmd(&[b"PING"]), b"+PONG\r\n");
    let before = rss_kib(pid);
    let mut conns = Vec::new();
    for _ in 0..2000 {
        let mut c = RawConn::connect(server.port);
        assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
        conns.push(c);
    }
    let after = rss_kib(pid);
    let per_conn = (after.saturating_sub(before)) * 1024 / 2000;
    // Valkey spends about 20 KiB on an idle client; idle buffers here go
    // back to a pool, so the bound is what the socket and task cost.
    assert!(per_conn < 8 * 1024, "{per_conn} bytes per idle connection");
}
