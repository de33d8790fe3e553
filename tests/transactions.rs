//! MULTI/EXEC/WATCH across clients: what one connection cannot show.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{query, Server};
use redis::Value;

fn exec_raw(con: &mut redis::Connection) -> Value {
    redis::cmd("EXEC").query(con).unwrap()
}

#[test]
fn a_write_by_another_client_fails_the_watching_transaction() {
    let server = Server::start();
    let mut a = server.client();
    let mut b = server.client();
    let _: () = query(&mut a, &["SET", "k", "1"]).unwrap();
    let _: () = query(&mut a, &["WATCH", "k"]).unwrap();
    let _: () = query(&mut b, &["SET", "k", "2"]).unwrap();
    let _: () = query(&mut a, &["MULTI"]).unwrap();
    let queued: String = query(&mut a, &["INCR", "k"]).unwrap();
    assert_eq!(queued, "QUEUED");
    assert_eq!(exec_raw(&mut a), Value::Nil);
    let k: i64 = query(&mut a, &["GET", "k"]).unwrap();
    assert_eq!(k, 2);
    // The failed EXEC unwatched everything: the next transaction runs.
    let _: () = query(&mut b, &["SET", "k", "5"]).unwrap();
    let _: () = query(&mut a, &["MULTI"]).unwrap();
    let _: String = query(&mut a, &["INCR", "k"]).unwrap();
    assert_eq!(exec_raw(&mut a), Value::Array(vec![Value::Int(6)]));
}

#[test]
fn writes_that_change_nothing_and_other_databases_leave_watches_alone() {
    let server = Server::start();
    let mut a = server.client();
    let mut b = server.client();
    let _: () = query(&mut a, &["SET", "k", "1"]).unwrap();
    let _: () = query(&mut a, &["WATCH", "k"]).unwrap();
    let _: i64 = query(&mut b, &["SETNX", "k", "9"]).unwrap();
    let _: () = query(&mut b, &["SELECT", "3"]).unwrap();
    let _: () = query(&mut b, &["SET", "k", "9"]).unwrap();
    let _: () = query(&mut a, &["MULTI"]).unwrap();
    let _: String = query(&mut a, &["GET", "k"]).unwrap();
    assert_eq!(exec_raw(&mut a), Value::Array(vec![Value::BulkString(b"1".to_vec())]));
}

#[test]
fn a_watched_key_that_expires_fails_the_transaction() {
    let server = Server::start();
    let mut a = server.client();
    let _: () = query(&mut a, &["SET", "k", "v", "PX", "50"]).unwrap();
    let _: () = query(&mut a, &["WATCH", "k"]).unwrap();
    thread::sleep(Duration::from_millis(120));
    let _: () = query(&mut a, &["MULTI"]).unwrap();
    let _: String = query(&mut a, &["PING"]).unwrap();
    assert_eq!(exec_raw(&mut a), Value::Nil);
    // A key already expired when watched is no change when it goes.
    let _: () = query(&mut a, &["SET", "gone", "v", "PX", "1"]).unwrap();
    thread::sleep(Duration::from_millis(20));
    let _: () = query(&mut a, &["WATCH", "gone"]).unwrap();
    let _: () = query(&mut a, &["MULTI"]).unwrap();
    let _: String = query(&mut a, &["PING"]).unwrap();
    assert_eq!(exec_raw(&mut a), Value::Array(vec![Value::SimpleString("PONG".into())]));
}

#[test]
fn client_list_shows_the_transaction_and_the_watches() {
    let server = Server::start();
    let mut a = server.client();
    let mut b = server.client();
    let _: () = query(&mut a, &["CLIENT", "SETNAME", "txn"]).unwrap();
    let _: () = query(&mut a, &["WATCH", "x", "y"]).unwrap();
    let _: () = query(&mut a, &["MULTI"]).unwrap();
    let _: String = query(&mut a, &["SET", "x", "1"]).unwrap();
    let list: String = query(&mut b, &["CLIENT", "LIST"]).unwrap();
    let line = list.lines().find(|l| l.contains("name=txn")).unwrap();
    assert!(line.contains(" flags=x "), "{line}");
    assert!(line.contains(" multi=1 watch=2 "), "{line}");
    let _: () = query(&mut b, &["SET", "y", "1"]).unwrap();
    let list: String = query(&mut b, &["CLIENT", "LIST"]).unwrap();
    let line = list.lines().find(|l| l.contains("name=txn")).unwrap();
    // Dirtied: flagged d, and nothing is watched any more.
    assert!(line.contains(" flags=xd "), "{line}");
    assert!(line.contains(" watch=0 "), "{line}");
    assert_eq!(exec_raw(&mut a), Value::Nil);
}

#[test]
fn a_push_inside_multi_wakes_a_blocked_client_after_exec() {
    let server = Server::start();
    let mut waiter = server.client();
    let mut writer = server.client();
    let handle = thread::spawn(move || {
        let got: (String, String) = query(&mut waiter, &["BLPOP", "q", "0"]).unwrap();
        got
    });
    // Let the waiter park.
    let mut c = server.client();
    loop {
        let blocked: String = query(&mut c, &["INFO", "clients"]).unwrap();
        if blocked.contains("blocked_clients:1") {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let replies: (i64, i64, Vec<String>) = redis::pipe()
        .atomic()
        .cmd("RPUSH")
        .arg("q")
        .arg("a")
        .cmd("RPUSH")
        .arg("q")
        .arg("b")
        .cmd("LRANGE")
        .arg("q")
        .arg(0)
        .arg(-1)
        .query(&mut writer)
        .unwrap();
    // Inside the transaction nobody took anything.
    assert_eq!(replies, (1, 2, vec!["a".to_string(), "b".to_string()]));
    assert_eq!(handle.join().unwrap(), ("q".to_string(), "a".to_string()));
    let rest: Vec<String> = query(&mut writer, &["LRANGE", "q", "0", "-1"]).unwrap();
    assert_eq!(rest, vec!["b"]);
}

#[test]
fn watch_retry_increments_are_exact_under_load() {
    // Eight clients increment one counter with WATCH/GET/MULTI/SET/EXEC,
    // retrying when EXEC fails: no increment is lost or doubled.
    let server = Server::start();
    const CLIENTS: usize = 8;
    const PER_CLIENT: u64 = 2_500;
    let retries = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut c = server.client();
            let retries = retries.clone();
            thread::spawn(move || {
                for _ in 0..PER_CLIENT {
                    loop {
                        let _: () = query(&mut c, &["WATCH", "counter"]).unwrap();
                        let current: Option<u64> = query(&mut c, &["GET", "counter"]).unwrap();
                        let next = current.unwrap_or(0) + 1;
                        let result: Option<(String,)> =
                            redis::pipe().atomic().cmd("SET").arg("counter").arg(next).query(&mut c).unwrap();
                        if result.is_some() {
                            break;
                        }
                        retries.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut c = server.client();
    let total: u64 = query(&mut c, &["GET", "counter"]).unwrap();
    assert_eq!(total, CLIENTS as u64 * PER_CLIENT);
    eprintln!("retries: {}", retries.load(Ordering::Relaxed));
}

#[test]
fn a_disconnected_client_leaves_no_watch_behind() {
    let server = Server::start();
    let mut c = server.client();
    {
        let mut a = server.client();
        let _: () = query(&mut a, &["WATCH", "k1", "k2"]).unwrap();
        let info: String = query(&mut c, &["INFO", "clients"]).unwrap();
        assert!(info.contains("watching_clients:1"), "{info}");
        assert!(info.contains("total_watched_keys:2"), "{info}");
    }
    let mut seen = String::new();
    for _ in 0..200 {
        seen = query(&mut c, &["INFO", "clients"]).unwrap();
        if seen.contains("watching_clients:0") && seen.contains("total_watched_keys:0") {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("watches left behind: {seen}");
}

#[test]
fn scripts_and_watch_transactions_stay_exact_under_load() {
    // Eight clients interleave two kinds of atomic operation, 100,000 in
    // all: a Lua script that moves one item from one list to the other
    // (and back when the source is empty), and a WATCH/MULTI/EXEC
    // increment retried until it commits. At the end no item is lost or
    // doubled and the counter equals the increments that committed.
    let server = Server::start();
    const CLIENTS: usize = 8;
    const OPS_PER_CLIENT: usize = 12_500;
    const ITEMS: usize = 100;
    let mut c = server.client();
    let items: Vec<String> = (0..ITEMS).map(|i| format!("item{i}")).collect();
    let _: () = redis::cmd("RPUSH").arg("left").arg(&items).query(&mut c).unwrap();
    let mover = redis::Script::new(
        r"
        local item = redis.call('LPOP', KEYS[1])
        if item then
            redis.call('RPUSH', KEYS[2], item)
            return 1
        end
        item = redis.call('LPOP', KEYS[2])
        redis.call('RPUSH', KEYS[1], item)
        return 2
        ",
    );
    let workers: Vec<_> = (0..CLIENTS)
        .map(|w| {
            let mut c = server.client();
            let mover = mover.clone();
            thread::spawn(move || {
                let mut committed = 0u64;
                for op in 0..OPS_PER_CLIENT {
                    if (op + w) % 2 == 0 {
                        let moved: i64 = mover.key("left").key("right").invoke(&mut c).unwrap();
                        assert!(moved == 1 || moved == 2);
                    } else {
                        loop {
                            let _: () = query(&mut c, &["WATCH", "counter"]).unwrap();
                            let current: Option<u64> = query(&mut c, &["GET", "counter"]).unwrap();
                            let result: Option<(String,)> = redis::pipe()
                                .atomic()
                                .cmd("SET")
                                .arg("counter")
                                .arg(current.unwrap_or(0) + 1)
                                .query(&mut c)
                                .unwrap();
                            if result.is_some() {
                                committed += 1;
                                break;
                            }
                        }
                    }
                }
                committed
            })
        })
        .collect();
    let committed: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let counter: u64 = query(&mut c, &["GET", "counter"]).unwrap();
    assert_eq!(counter, committed);
    assert_eq!(committed, (CLIENTS * OPS_PER_CLIENT / 2) as u64);
    let left: Vec<String> = query(&mut c, &["LRANGE", "left", "0", "-1"]).unwrap();
    let right: Vec<String> = query(&mut c, &["LRANGE", "right", "0", "-1"]).unwrap();
    let mut all: Vec<String> = left.into_iter().chain(right).collect();
    all.sort();
    let mut expected = items.clone();
    expected.sort();
    assert_eq!(all, expected, "items lost or doubled");
}
