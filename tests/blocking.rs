//! The blocking machinery itself: what wakes a parked client, what does
//! not, and that a parked client can be unblocked or leave without a trace.

mod common;

use std::time::{Duration, Instant};

use common::{RawConn, Server};

fn info_field(c: &mut RawConn, field: &str) -> String {
    let reply = c.cmd(&[b"INFO", b"clients"]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
}

fn wait_blocked(c: &mut RawConn, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(c, "blocked_clients") != n.to_string() {
        assert!(Instant::now() < deadline, "never saw {n} blocked clients");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_value_of_another_type_leaves_the_waiter_waiting() {
    let server = Server::start();
    let mut control = server.raw();
    let mut waiter = server.raw();
    waiter.send(&[b"BLPOP", b"q", b"0"]);
    wait_blocked(&mut control, 1);
    // A string under the awaited key wakes nobody (Valkey serves only a list).
    assert_eq!(control.cmd(&[b"SET", b"q", b"text"]), b"+OK\r\n");
    assert_eq!(control.cmd(&[b"DEL", b"q"]), b":1\r\n");
    wait_blocked(&mut control, 1);
    assert_eq!(control.cmd(&[b"RPUSH", b"q", b"job"]), b":1\r\n");
    assert_eq!(waiter.read_reply(), b"*2\r\n$1\r\nq\r\n$3\r\njob\r\n");
    wait_blocked(&mut control, 0);
}

#[test]
fn client_unblock_answers_timeout_or_error() {
    let server = Server::start();
    let mut control = server.raw();
    let mut waiter = server.raw();
    let id = String::from_utf8(waiter.cmd(&[b"CLIENT", b"ID"])).unwrap();
    let id = id.trim_start_matches(':').trim().to_string();
    waiter.send(&[b"BLPOP", b"q", b"0"]);
    wait_blocked(&mut control, 1);
    assert_eq!(control.cmd(&[b"CLIENT", b"UNBLOCK", id.as_bytes()]), b":1\r\n");
    assert_eq!(waiter.read_reply(), b"*-1\r\n");
    waiter.send(&[b"BRPOPLPUSH", b"q", b"d", b"0"]);
    wait_blocked(&mut control, 1);
    assert_eq!(control.cmd(&[b"CLIENT", b"UNBLOCK", id.as_bytes(), b"ERROR"]), b":1\r\n");
    assert_eq!(waiter.read_reply(), b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n");
    assert_eq!(control.cmd(&[b"CLIENT", b"UNBLOCK", id.as_bytes()]), b":0\r\n");
    // The unblocked client goes on with its pipeline.
    assert_eq!(waiter.cmd(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn pipelined_commands_after_a_blocking_one_wait_their_turn() {
    let server = Server::start();
    let mut control = server.raw();
    let mut waiter = server.raw();
    let mut batch = common::encode_command(&[b"BLPOP", b"q", b"0"]);
    batch.extend(common::encode_command(&[b"LLEN", b"q"]));
    waiter.send_raw(&batch);
    wait_blocked(&mut control, 1);
    assert_eq!(control.cmd(&[b"RPUSH", b"q", b"a", b"b"]), b":2\r\n");
    assert_eq!(waiter.read_reply(), b"*2\r\n$1\r\nq\r\n$1\r\na\r\n");
    // LLEN ran only after BLPOP was served: one element left.
    assert_eq!(waiter.read_reply(), b":1\r\n");
}

#[test]
fn a_disconnected_waiter_leaves_no_trace() {
    let server = Server::start();
    let mut control = server.raw();
    {
        let mut waiter = server.raw();
        waiter.send(&[b"BLPOP", b"q", b"0"]);
        wait_blocked(&mut control, 1);
    }
    wait_blocked(&mut control, 0);
    assert_eq!(info_field(&mut control, "total_blocking_keys"), "0");
    // The push stays in the list: nobody took it.
    assert_eq!(control.cmd(&[b"RPUSH", b"q", b"kept"]), b":1\r\n");
    assert_eq!(control.cmd(&[b"LLEN", b"q"]), b":1\r\n");
}

#[test]
fn timeouts_answer_null_and_bad_timeouts_are_refused() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"BLPOP", b"q", b"0.05"]), b"*-1\r\n");
    assert_eq!(c.cmd(&[b"BLPOP", b"q", b"-1"]), b"-ERR timeout is negative\r\n");
    assert_eq!(c.cmd(&[b"BLPOP", b"q", b"abc"]), b"-ERR timeout is not a float or out of range\r\n");
    assert_eq!(c.cmd(&[b"BLPOP", b"q", b"inf"]), b"-ERR timeout is out of range\r\n");
    assert_eq!(c.cmd(&[b"BLPOP", b"q", b"1e400"]), b"-ERR timeout is out of range\r\n");
    assert_eq!(c.cmd(&[b"BLPOP", b"q", b"1e5000"]), b"-ERR timeout is not a float or out of range\r\n");
}
