//! Streams against a running ferrokey: a work queue with consumer groups
//! surviving a consumer's death, blocking reads woken by XADD in arrival
//! order, by XGROUP DESTROY and by deletion of the key, blocked clients
//! that disconnect, and the memory an entry costs next to Valkey's.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{RawConn, Server, Valkey};
use redis::{Connection, Value};

const JOBS: usize = 100_000;

fn run(con: &mut Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        other => panic!("not a string: {other:?}"),
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

/// An entry of a read reply: its id and its first value.
#[derive(Clone, Debug, PartialEq)]
struct Job {
    id: String,
    payload: String,
}

fn job_of(entry: &Value) -> Job {
    let parts = items(entry);
    let fields = items(&parts[1]);
    Job { id: text(&parts[0]), payload: text(&fields[1]) }
}

/// The entries of an XREAD/XREADGROUP reply for a single stream (none on
/// a timeout).
fn read_jobs(reply: &Value) -> Vec<Job> {
    match reply {
        Value::Nil => Vec::new(),
        reply => items(&items(reply)[0])[1..].iter().flat_map(|entries| items(entries).iter().map(job_of)).collect(),
    }
}

/// One `field:value` of INFO, as an integer.
fn info_field(con: &mut Connection, section: &str, field: &str) -> i64 {
    let info = text(&run(con, &["INFO", section]));
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
        .trim()
        .parse()
        .expect("integer field")
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn wait_for_blocked(con: &mut Connection, n: i64) {
    wait_for(&format!("{n} blocked clients"), || info_field(con, "clients", "blocked_clients") == n);
}

/// Records every job a consumer acknowledged, to check each was
/// acknowledged exactly once.
#[derive(Default)]
struct Ledger {
    acked: Mutex<Vec<u32>>,
}

impl Ledger {
    fn ack(&self, con: &mut Connection, jobs: &[Job]) {
        if jobs.is_empty() {
            return;
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg("jobs").arg("workers");
        for job in jobs {
            cmd.arg(&job.id);
        }
        let acked: i64 = cmd.query(con).expect("XACK");
        assert_eq!(acked as usize, jobs.len(), "every job read was pending for its reader");
        let mut log = self.acked.lock().unwrap();
        log.extend(jobs.iter().map(|j| j.payload.parse::<u32>().expect("job number")));
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}

fn read_group(con: &mut Connection, consumer: &str, count: usize, block_ms: u64) -> Vec<Job> {
    let reply = run(
        con,
        &[
            "XREADGROUP",
            "GROUP",
            "workers",
            consumer,
            "COUNT",
            &count.to_string(),
            "BLOCK",
            &block_ms.to_string(),
            "STREAMS",
            "jobs",
            ">",
        ],
    );
    read_jobs(&reply)
}

#[test]
fn work_queue_survives_a_dead_consumer_through_xautoclaim() {
    let server = Server::start();
    let mut admin = server.client();
    run(&mut admin, &["XGROUP", "CREATE", "jobs", "workers", "$", "MKSTREAM"]);
    let ledger = Arc::new(Ledger::default());
    let producing = Arc::new(AtomicBool::new(true));

    let producer = {
        let mut con = server.client();
        let producing = producing.clone();
        thread::spawn(move || {
            for batch in 0..JOBS / 1000 {
                let mut pipe = redis::pipe();
                for n in batch * 1000..(batch + 1) * 1000 {
                    pipe.cmd("XADD").arg("jobs").arg("*").arg("job").arg(n).ignore();
                }
                pipe.query::<()>(&mut con).expect("XADD batch");
            }
            producing.store(false, Ordering::SeqCst);
        })
    };

    // The doomed consumer works for a while, then dies holding a batch it
    // never acknowledges: its connection just goes away.
    let doomed = {
        let mut con = server.client();
        let ledger = ledger.clone();
        thread::spawn(move || {
            let mut batches = 0;
            loop {
                let jobs = read_group(&mut con, "doomed", 100, 1000);
                if jobs.is_empty() {
                    continue;
                }
                batches += 1;
                if batches == 20 {
                    return jobs;
                }
                ledger.ack(&mut con, &jobs);
            }
        })
    };

    // Two survivors consume until every job is acknowledged; the first
    // also reclaims entries idle for over a second, the dead one's.
    let reclaimed: Arc<Mutex<Vec<Job>>> = Arc::default();
    let survivors: Vec<_> = ["alice", "bob"]
        .into_iter()
        .map(|name| {
            let mut con = server.client();
            let ledger = ledger.clone();
            let reclaimed = reclaimed.clone();
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(240);
                while ledger.count() < JOBS {
                    assert!(Instant::now() < deadline, "{name}: the queue did not drain");
                    let jobs = read_group(&mut con, name, 100, 50);
                    ledger.ack(&mut con, &jobs);
                    if name == "alice" && jobs.is_empty() {
                        let claimed = reclaim(&mut con, name);
                        ledger.ack(&mut con, &claimed);
                        reclaimed.lock().unwrap().extend(claimed);
                    }
                }
            })
        })
        .collect();

    producer.join().expect("producer");
    let held = doomed.join().expect("doomed consumer");
    for survivor in survivors {
        survivor.join().expect("survivor");
    }
    assert!(!producing.load(Ordering::SeqCst));

    // Every job acknowledged exactly once.
    let mut acked = ledger.acked.lock().unwrap().clone();
    acked.sort_unstable();
    assert_eq!(acked, (0..JOBS as u32).collect::<Vec<_>>());

    // What was reclaimed is exactly what the dead consumer held.
    let mut reclaimed = reclaimed.lock().unwrap().clone();
    reclaimed.sort_by_key(|job| job.payload.parse::<u32>().unwrap());
    assert_eq!(reclaimed, held);

    // Nothing is pending any more, and nothing is left to read.
    let summary = run(&mut admin, &["XPENDING", "jobs", "workers"]);
    assert_eq!(summary, Value::Array(vec![Value::Int(0), Value::Nil, Value::Nil, Value::Nil]));
    assert_eq!(int(&run(&mut admin, &["XLEN", "jobs"])), JOBS as i64);
    let groups = run(&mut admin, &["XINFO", "GROUPS", "jobs"]);
    let group: HashMap<String, &Value> = items(&items(&groups)[0]).chunks(2).map(|kv| (text(&kv[0]), &kv[1])).collect();
    assert_eq!(int(group["pending"]), 0);
    assert_eq!(int(group["lag"]), 0);
    assert_eq!(int(group["entries-read"]), JOBS as i64);
}

/// Claims entries idle for over a second, checking that each is now on
/// its second delivery before handing them back.
fn reclaim(con: &mut Connection, consumer: &str) -> Vec<Job> {
    let reply = run(con, &["XAUTOCLAIM", "jobs", "workers", consumer, "1000", "0-0", "COUNT", "1000"]);
    let parts = items(&reply);
    assert_eq!(items(&parts[2]).len(), 0, "no entry was deleted");
    let claimed: Vec<Job> = items(&parts[1]).iter().map(job_of).collect();
    for job in &claimed {
        let pending = run(con, &["XPENDING", "jobs", "workers", &job.id, &job.id, "1"]);
        let entry = items(&items(&pending)[0]);
        assert_eq!(text(&entry[1]), consumer);
        assert_eq!(int(&entry[3]), 2, "a reclaimed entry is on its second delivery");
    }
    claimed
}

#[test]
fn blocked_xread_is_woken_by_xadd() {
    let server = Server::start();
    let mut admin = server.client();
    run(&mut admin, &["XADD", "s", "1-0", "old", "x"]);
    let mut readers: Vec<RawConn> = (0..3).map(|_| server.raw()).collect();
    for (i, reader) in readers.iter_mut().enumerate() {
        reader.send(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"]);
        wait_for_blocked(&mut admin, i as i64 + 1);
    }
    run(&mut admin, &["XADD", "s", "2-0", "new", "y"]);
    // `$` meant "after 1-0" when they blocked: each sees just the new entry.
    for reader in &mut readers {
        assert_eq!(
            reader.read_reply(),
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$3\r\nnew\r\n$1\r\ny\r\n"
        );
    }
    wait_for_blocked(&mut admin, 0);
}

#[test]
fn blocked_readers_are_served_in_arrival_order() {
    let server = Server::start();
    let mut admin = server.client();
    run(&mut admin, &["XGROUP", "CREATE", "jobs", "workers", "$", "MKSTREAM"]);
    let names = ["first", "second", "third"];
    let mut readers: Vec<RawConn> = names.iter().map(|_| server.raw()).collect();
    for (i, (reader, name)) in readers.iter_mut().zip(names).enumerate() {
        reader.send(&[b"XREADGROUP", b"GROUP", b"workers", name.as_bytes(), b"BLOCK", b"0", b"STREAMS", b"jobs", b">"]);
        wait_for_blocked(&mut admin, i as i64 + 1);
    }
    // One entry at a time: each goes to the longest waiting reader.
    for (n, reader) in readers.iter_mut().enumerate() {
        let id = format!("{}-0", n + 1);
        run(&mut admin, &["XADD", "jobs", &id, "job", &n.to_string()]);
        let reply = reader.read_reply();
        let expected = format!("$4\r\njobs\r\n*1\r\n*2\r\n${}\r\n{id}\r\n", id.len());
        assert!(
            reply.windows(expected.len()).any(|w| w == expected.as_bytes()),
            "reader {n} got {}",
            String::from_utf8_lossy(&reply)
        );
        wait_for_blocked(&mut admin, (names.len() - n - 1) as i64);
    }
    // The PEL shows who got what.
    for (n, name) in names.iter().enumerate() {
        let id = format!("{}-0", n + 1);
        let pending = run(&mut admin, &["XPENDING", "jobs", "workers", &id, &id, "1"]);
        assert_eq!(text(&items(&items(&pending)[0])[1]), *name);
    }
}

#[test]
fn blocked_xreadgroup_gets_nogroup_when_its_group_is_destroyed() {
    let server = Server::start();
    let mut admin = server.client();
    run(&mut admin, &["XGROUP", "CREATE", "jobs", "workers", "$", "MKSTREAM"]);
    let mut reader = server.raw();
    reader.send(&[b"XREADGROUP", b"GROUP", b"workers", b"alice", b"BLOCK", b"0", b"STREAMS", b"jobs", b">"]);
    wait_for_blocked(&mut admin, 1);
    assert_eq!(int(&run(&mut admin, &["XGROUP", "DESTROY", "jobs", "workers"])), 1);
    assert_eq!(
        reader.read_reply(),
        b"-NOGROUP No such key 'jobs' or consumer group 'workers' in XREADGROUP with GROUP option\r\n"
    );
    wait_for_blocked(&mut admin, 0);
}

#[test]
fn blocked_xreadgroup_gets_nogroup_when_its_key_is_deleted() {
    let server = Server::start();
    let mut admin = server.client();
    run(&mut admin, &["XADD", "jobs", "1-0", "job", "0"]);
    run(&mut admin, &["XGROUP", "CREATE", "jobs", "workers", "$"]);
    let mut reader = server.raw();
    reader.send(&[b"XREADGROUP", b"GROUP", b"workers", b"alice", b"BLOCK", b"0", b"STREAMS", b"jobs", b">"]);
    wait_for_blocked(&mut admin, 1);
    assert_eq!(int(&run(&mut admin, &["DEL", "jobs"])), 1);
    assert_eq!(
        reader.read_reply(),
        b"-NOGROUP No such key 'jobs' or consumer group 'workers' in XREADGROUP with GROUP option\r\n"
    );
    wait_for_blocked(&mut admin, 0);
}

#[test]
fn blocked_xread_ignores_a_key_turned_into_another_type() {
    let server = Server::start();
    let mut admin = server.client();
    run(&mut admin, &["XADD", "s", "1-0", "f", "v"]);
    let mut reader = server.raw();
    reader.send(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"]);
    wait_for_blocked(&mut admin, 1);
    run(&mut admin, &["SET", "s", "now a string"]);
    run(&mut admin, &["DEL", "s"]);
    assert_eq!(info_field(&mut admin, "clients", "blocked_clients"), 1);
    run(&mut admin, &["XADD", "s", "2-0", "f", "v"]);
    assert_eq!(reader.read_reply(), b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
}

#[test]
fn blocked_read_times_out_with_a_null_reply() {
    let server = Server::start();
    let mut admin = server.client();
    run(&mut admin, &["XGROUP", "CREATE", "jobs", "workers", "$", "MKSTREAM"]);
    let mut reader = server.raw();
    let started = Instant::now();
    reader.send(&[b"XREAD", b"BLOCK", b"150", b"STREAMS", b"jobs", b"$"]);
    assert_eq!(reader.read_reply(), b"*-1\r\n");
    reader.send(&[b"XREADGROUP", b"GROUP", b"workers", b"c", b"BLOCK", b"150", b"STREAMS", b"jobs", b">"]);
    assert_eq!(reader.read_reply(), b"*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(info_field(&mut admin, "clients", "blocked_clients"), 0);
}

#[test]
fn a_blocked_client_that_disconnects_leaves_no_trace() {
    let server = Server::start();
    let mut admin = server.client();
    run(&mut admin, &["XGROUP", "CREATE", "jobs", "workers", "$", "MKSTREAM"]);
    {
        let mut reader = server.raw();
        reader.send(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"jobs", b"other", b"$", b"$"]);
        let mut group_reader = server.raw();
        group_reader.send(&[b"XREADGROUP", b"GROUP", b"workers", b"c", b"BLOCK", b"0", b"STREAMS", b"jobs", b">"]);
        wait_for_blocked(&mut admin, 2);
        assert_eq!(info_field(&mut admin, "clients", "total_blocking_keys"), 2);
    }
    wait_for_blocked(&mut admin, 0);
    assert_eq!(info_field(&mut admin, "clients", "total_blocking_keys"), 0);
    // Writing the keys afterwards finds nobody to serve.
    run(&mut admin, &["XADD", "jobs", "1-0", "f", "v"]);
    run(&mut admin, &["XADD", "other", "1-0", "f", "v"]);
    assert_eq!(text(&run(&mut admin, &["PING"])), "PONG");
    assert_eq!(info_field(&mut admin, "clients", "connected_clients"), 1);
}

#[test]
fn xclaim_force_creates_pending_entries_as_valkey_counts_them() {
    let server = Server::start();
    let mut con = server.client();
    run(&mut con, &["XADD", "s", "1-0", "f", "v"]);
    run(&mut con, &["XADD", "s", "2-0", "f", "v"]);
    run(&mut con, &["XGROUP", "CREATE", "s", "g", "$"]);
    // FORCE makes a PEL entry as if delivered once; the claim itself counts
    // as another delivery unless JUSTID is given.
    run(&mut con, &["XCLAIM", "s", "g", "c", "0", "1-0", "FORCE"]);
    run(&mut con, &["XCLAIM", "s", "g", "c", "0", "2-0", "FORCE", "JUSTID"]);
    let pending = run(&mut con, &["XPENDING", "s", "g", "-", "+", "10"]);
    let counts: Vec<i64> = items(&pending).iter().map(|p| int(&items(p)[3])).collect();
    assert_eq!(counts, [2, 1]);
    // An id not in the stream is not claimed, FORCE or not.
    assert_eq!(run(&mut con, &["XCLAIM", "s", "g", "c", "0", "3-0", "FORCE"]), Value::Array(vec![]));
}

/// Bytes of used memory per entry after adding `n` entries of three small
/// fields (`XADD` with explicit increasing ids, pipelined).
fn bytes_per_entry(con: &mut Connection, n: usize) -> f64 {
    let before = info_field(con, "memory", "used_memory");
    for batch in 0..n / 10_000 {
        let mut pipe = redis::pipe();
        for i in batch * 10_000..(batch + 1) * 10_000 {
            pipe.cmd("XADD")
                .arg("mem")
                .arg(format!("{}-0", 1_700_000_000_000u64 + i as u64))
                .arg("name")
                .arg(format!("user{}", i % 1000))
                .arg("score")
                .arg(i % 100)
                .arg("ok")
                .arg("yes")
                .ignore();
        }
        pipe.query::<()>(con).expect("XADD batch");
    }
    let after = info_field(con, "memory", "used_memory");
    (after - before) as f64 / n as f64
}

#[test]
fn an_entry_costs_no_more_memory_than_in_valkey() {
    const ENTRIES: usize = 1_000_000;
    let ferrokey = Server::start();
    let valkey = Valkey::start();
    let ours = bytes_per_entry(&mut ferrokey.client(), ENTRIES);
    let theirs = bytes_per_entry(&mut valkey.client(), ENTRIES);
    eprintln!("bytes per entry for {ENTRIES} entries of 3 fields: ferrokey {ours:.2}, valkey {theirs:.2}");
    assert!(ours <= theirs, "ferrokey uses {ours:.2} bytes per entry, valkey {theirs:.2}");
}
