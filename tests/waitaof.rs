//! WAITAOF numlocal numreplicas timeout on a primary without replicas: the
//! reply `[local, replicas]` says whether the AOF holds every write of the
//! connection fsynced, and no replica ever does. What is decided at once
//! is compared with Valkey in tests/diff/waitaof.txt; here, the waits:
//! for a background fsync (everysec), for a rewrite (no), for a timeout,
//! and what ends them early (CONFIG SET appendonly no, CLIENT UNBLOCK).
//! The last test proves under strace that a local acknowledgement follows
//! the fdatasync covering the write, even when that fdatasync is slow.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{free_port, query, Server};
use redis::{Connection, RedisResult};

/// Long enough for any fsync or rewrite of these small datasets, even on a
/// loaded machine under strace.
const PATIENCE: Duration = Duration::from_secs(60);

fn connect(port: u16) -> Connection {
    common::connect_with_read_timeout(port, PATIENCE)
}

fn waitaof(con: &mut Connection, numlocal: u32, numreplicas: u32, timeout_ms: u64) -> RedisResult<Vec<i64>> {
    query(con, &["WAITAOF", &numlocal.to_string(), &numreplicas.to_string(), &timeout_ms.to_string()])
}

fn info_field(con: &mut Connection, field: &str) -> String {
    let info: String = query(con, &["INFO", "everything"]).unwrap();
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field} in INFO"))
        .trim()
        .to_string()
}

/// Polls until `condition` holds, failing after [`PATIENCE`].
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_blocked_clients(con: &mut Connection, count: usize) {
    wait_until(&format!("{count} blocked client(s)"), || info_field(con, "blocked_clients") == count.to_string());
}

/// Runs WAITAOF on `con` in a thread, which gives the connection back with
/// the reply.
fn waitaof_in_background(
    mut con: Connection,
    numlocal: u32,
    numreplicas: u32,
) -> thread::JoinHandle<(Connection, RedisResult<Vec<i64>>)> {
    thread::spawn(move || {
        let reply = waitaof(&mut con, numlocal, numreplicas, 0);
        (con, reply)
    })
}

#[test]
fn under_always_a_write_is_fsynced_by_the_time_it_is_answered() {
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = connect(server.port);
    for i in 0..3 {
        let _: () = query(&mut c, &["SET", &format!("k{i}"), "v"]).unwrap();
        assert_eq!(waitaof(&mut c, 1, 0, 0).unwrap(), [1, 0]);
    }
    // Sent together with the write: it waits for the fsync of the batch.
    let (set, acks): (String, Vec<i64>) =
        redis::pipe().cmd("SET").arg("k3").arg("v").cmd("WAITAOF").arg(1).arg(0).arg(0).query(&mut c).unwrap();
    assert_eq!((set.as_str(), acks), ("OK", vec![1, 0]));
    assert_eq!(query::<usize>(&mut c, &["DBSIZE"]).unwrap(), 4);
}

#[test]
fn under_everysec_the_answer_waits_for_the_background_fsync() {
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let mut c = connect(server.port);
    for i in 0..3 {
        let _: () = query(&mut c, &["SET", &format!("k{i}"), "v"]).unwrap();
        assert_eq!(waitaof(&mut c, 1, 0, 0).unwrap(), [1, 0], "after write {i}");
    }
    // Another connection, which wrote nothing, has nothing to wait for.
    let mut other = connect(server.port);
    assert_eq!(waitaof(&mut other, 1, 0, 0).unwrap(), [1, 0]);
    assert_eq!(query::<String>(&mut c, &["GET", "k2"]).unwrap(), "v");
}

#[test]
fn asking_for_replicas_ends_with_the_timeout_and_the_local_count() {
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = connect(server.port);
    let _: () = query(&mut c, &["SET", "k", "v"]).unwrap();
    assert_eq!(waitaof(&mut c, 1, 1, 100).unwrap(), [1, 0]);
    assert_eq!(waitaof(&mut c, 0, 3, 100).unwrap(), [1, 0]);
    // Nothing stays parked after the timeouts.
    assert_eq!(info_field(&mut c, "blocked_clients"), "0");
}

#[test]
fn without_aof_nothing_counts_as_fsynced() {
    let server = Server::start();
    let mut c = connect(server.port);
    assert_eq!(waitaof(&mut c, 0, 0, 0).unwrap(), [0, 0]);
    let _: () = query(&mut c, &["SET", "k", "v"]).unwrap();
    assert_eq!(waitaof(&mut c, 0, 0, 0).unwrap(), [0, 0]);
    assert_eq!(waitaof(&mut c, 0, 1, 50).unwrap(), [0, 0]);
    let refused = waitaof(&mut c, 1, 0, 0).unwrap_err();
    assert_eq!(refused.code(), Some("ERR"));
    assert_eq!(refused.detail(), Some("WAITAOF cannot be used when numlocal is set but appendonly is disabled."));
}

#[test]
fn a_waiter_gets_an_error_when_appendonly_is_turned_off() {
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "no"]);
    let mut waiter = connect(server.port);
    let _: () = query(&mut waiter, &["SET", "k", "v"]).unwrap();
    let waiting = waitaof_in_background(waiter, 1, 0);
    let mut admin = connect(server.port);
    wait_for_blocked_clients(&mut admin, 1);
    let _: () = query(&mut admin, &["CONFIG", "SET", "appendonly", "no"]).unwrap();
    let (mut waiter, reply) = waiting.join().unwrap();
    let error = reply.unwrap_err();
    assert_eq!(error.detail(), Some("WAITAOF cannot be used when numlocal is set but appendonly is disabled."));
    // The connection goes on.
    assert_eq!(query::<String>(&mut waiter, &["GET", "k"]).unwrap(), "v");
}

/// Under `appendfsync no` nothing fsyncs the journal by itself; a rewrite
/// fsyncs the incr file it stops appending to, as Valkey does, and that
/// releases the waiter.
#[test]
fn under_no_a_rewrite_releases_the_waiter() {
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "no"]);
    let mut waiter = connect(server.port);
    let _: () = query(&mut waiter, &["SET", "k", "v"]).unwrap();
    assert_eq!(waitaof(&mut waiter, 1, 0, 50).unwrap(), [0, 0]);
    let waiting = waitaof_in_background(waiter, 1, 0);
    let mut admin = connect(server.port);
    wait_for_blocked_clients(&mut admin, 1);
    // A connection that wrote nothing is not held up by another's write.
    assert_eq!(waitaof(&mut admin, 1, 0, 0).unwrap(), [1, 0]);
    let _: String = query(&mut admin, &["BGREWRITEAOF"]).unwrap();
    let (mut waiter, reply) = waiting.join().unwrap();
    assert_eq!(reply.unwrap(), [1, 0]);
    assert_eq!(query::<String>(&mut waiter, &["GET", "k"]).unwrap(), "v");
}

/// CLIENT UNBLOCK answers the timeout reply as it stands then.
#[test]
fn client_unblock_answers_with_what_is_fsynced_then() {
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "no"]);
    let mut admin = connect(server.port);
    let mut waiter = connect(server.port);
    let id: i64 = query(&mut waiter, &["CLIENT", "ID"]).unwrap();
    let _: () = query(&mut waiter, &["SET", "k", "v1"]).unwrap();
    let waiting = waitaof_in_background(waiter, 1, 0);
    wait_for_blocked_clients(&mut admin, 1);
    assert_eq!(query::<i64>(&mut admin, &["CLIENT", "UNBLOCK", &id.to_string()]).unwrap(), 1);
    let (mut waiter, reply) = waiting.join().unwrap();
    assert_eq!(reply.unwrap(), [0, 0]);

    let _: () = query(&mut admin, &["CONFIG", "SET", "appendfsync", "always"]).unwrap();
    let _: () = query(&mut waiter, &["SET", "k", "v2"]).unwrap();
    let waiting = waitaof_in_background(waiter, 0, 1);
    wait_for_blocked_clients(&mut admin, 1);
    assert_eq!(query::<i64>(&mut admin, &["CLIENT", "UNBLOCK", &id.to_string(), "TIMEOUT"]).unwrap(), 1);
    let (_, reply) = waiting.join().unwrap();
    assert_eq!(reply.unwrap(), [1, 0]);
}

/// Offsets go on growing when the AOF is turned off and on: the new
/// journal starts where the old one ended. A client's earlier write is
/// covered once the first base holds it, and a new write is not covered
/// by what the old journal had fsynced.
#[test]
fn offsets_keep_growing_when_appendonly_is_turned_off_and_on() {
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = connect(server.port);
    let value = "x".repeat(100_000);
    let _: () = query(&mut c, &["SET", "big", &value]).unwrap();
    let _: () = query(&mut c, &["CONFIG", "SET", "appendonly", "no"]).unwrap();
    let _: () = query(&mut c, &["CONFIG", "SET", "appendonly", "yes"]).unwrap();
    assert_eq!(waitaof(&mut c, 1, 0, 30_000).unwrap(), [1, 0]);
    // Nothing fsyncs the journal under `no`: were offsets to start again
    // from 0, this write would lie below the 100 kB fsynced before.
    let _: () = query(&mut c, &["CONFIG", "SET", "appendfsync", "no"]).unwrap();
    let _: () = query(&mut c, &["SET", "small", "v"]).unwrap();
    assert_eq!(waitaof(&mut c, 1, 0, 50).unwrap(), [0, 0]);
    assert_eq!(query::<usize>(&mut c, &["STRLEN", "big"]).unwrap(), value.len());
}

// ---------------------------------------------------------------------------
// The fsync proof
// ---------------------------------------------------------------------------

/// One line of strace's output that matters here.
#[derive(Debug)]
enum Traced {
    /// A write(2) or sendto(2): an AOF append or a reply.
    Write { fd: i32, text: String },
    /// An fdatasync(2) entering (it may finish later).
    SyncStart { tid: u32, fd: i32 },
    /// An fdatasync(2) that returned 0.
    SyncDone { tid: u32 },
}

/// Whether a traced call's line ends with a result of 0 (strace adds
/// ` (DELAYED)` to calls it delayed).
fn returned_zero(line: &str) -> bool {
    line.trim_end_matches(" (DELAYED)").ends_with("= 0")
}

/// Parses strace's `-f` output: `<tid> <call>(<args>) = <result>`, or the
/// unfinished and resumed halves of a call another thread's interrupted.
fn parse_trace(path: &Path) -> Vec<Traced> {
    let mut out = Vec::new();
    for line in BufReader::new(std::fs::File::open(path).unwrap()).lines() {
        let line = line.unwrap();
        let Some((tid, call)) = line.split_once(' ') else { continue };
        let Ok(tid) = tid.trim().parse::<u32>() else { continue };
        let call = call.trim_start();
        let fd_of = |rest: &str| rest.split([',', ')', ' ']).next().and_then(|f| f.parse().ok()).unwrap_or(-1);
        if let Some(rest) = call.strip_prefix("fdatasync(") {
            out.push(Traced::SyncStart { tid, fd: fd_of(rest) });
            if !rest.contains("<unfinished") && returned_zero(rest) {
                out.push(Traced::SyncDone { tid });
            }
        } else if call.starts_with("<... fdatasync resumed>") && returned_zero(call) {
            out.push(Traced::SyncDone { tid });
        } else if let Some(rest) = call.strip_prefix("write(").or_else(|| call.strip_prefix("sendto(")) {
            // The bytes, between the first quote and the last.
            let text = match (rest.find('"'), rest.rfind('"')) {
                (Some(start), Some(end)) if start < end => rest[start + 1..end].to_string(),
                _ => String::new(),
            };
            out.push(Traced::Write { fd: fd_of(rest), text });
        }
    }
    out
}

/// Under `everysec` a write's reply goes out once the write(2) to the AOF
/// returned, before any fsync; WAITAOF 1 must wait for an fdatasync of the
/// AOF that began after that write(2) to return. Every fdatasync is made
/// slow here (strace delays its start by 1.5 s), so answering from the
/// written offset instead of the fsynced one fails this test.
#[test]
fn the_local_acknowledgement_follows_the_fdatasync_that_covers_the_write() {
    let strace_works = Command::new("strace").arg("-V").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    assert!(strace_works, "strace is needed for the fsync proof: run scripts/install-valkey.sh");
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let port = free_port();
    let mut strace: Child = Command::new("strace")
        .args(["-f", "-qq", "-s", "4096", "-e", "trace=write,sendto,fdatasync"])
        .args(["-e", "inject=fdatasync:delay_enter=1500000", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(["--appendonly", "yes", "--appendfsync", "everysec", "--dir"])
        .arg(dir.path())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run strace");
    let mut c = None;
    wait_until("the traced server to answer", || {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        c = client.get_connection().ok();
        c.as_mut().is_some_and(|c| query::<String>(c, &["PING"]).is_ok())
    });
    let mut c = c.unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let _: () = query(&mut c, &["SET", "proof-key", "v"]).unwrap();
    assert_eq!(waitaof(&mut c, 1, 0, 0).unwrap(), [1, 0]);
    let _ = query::<()>(&mut c, &["SHUTDOWN", "NOSAVE"]);
    let _ = strace.wait();

    let events = parse_trace(&trace);
    let (written_at, aof_fd) = events
        .iter()
        .enumerate()
        .find_map(|(i, e)| match e {
            Traced::Write { fd, text } if text.contains("proof-key") => Some((i, *fd)),
            _ => None,
        })
        .expect("no AOF write of the key in the trace");
    let answered_at = events
        .iter()
        .position(|e| matches!(e, Traced::Write { text, .. } if text == "*2\\r\\n:1\\r\\n:0\\r\\n"))
        .expect("no WAITAOF reply in the trace");
    // The fdatasyncs of the AOF that started after the write and returned
    // before the reply.
    let covering = events[written_at..answered_at].iter().enumerate().filter_map(|(i, e)| match e {
        Traced::SyncStart { tid, fd } if *fd == aof_fd => Some((i, *tid)),
        _ => None,
    });
    let covered = covering.into_iter().any(|(start, tid)| {
        events[written_at + start..answered_at].iter().any(|e| matches!(e, Traced::SyncDone { tid: t } if *t == tid))
    });
    assert!(
        covered,
        "WAITAOF answered [1, 0] (trace line {answered_at}) before any fdatasync of the AOF started after the \
         write of the key (trace line {written_at}) returned: {:#?}",
        &events[written_at..=answered_at]
    );
}
