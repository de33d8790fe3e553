//! What the AOF promises about acknowledged writes:
//! - the crash test: with `appendfsync always`, 8 clients write (SET,
//!   INCR, LPUSH, XADD, HSET) while the server is killed with SIGKILL at
//!   a random moment; after the restart every acknowledged write is there
//!   (`AOF_CRASH_ROUNDS` rounds, 30 by default; scripts/aof-crash.sh runs
//!   300);
//! - the fsync proof: SIGKILL cannot tell a missing fsync (the kernel keeps
//!   what was written), so the server runs under strace, and every reply to
//!   a write must come after an fdatasync of the AOF that started after the
//!   write of that command returned;
//! - a full disk (everysec): writes are refused with MISCONF while reads
//!   go on, and once space is freed writes resume with nothing
//!   acknowledged missing (needs root, for a small tmpfs).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{free_port, query, Server};
use rand::Rng;
use redis::{Connection, Value};

fn connect(port: u16) -> Connection {
    common::connect_with_read_timeout(port, Duration::from_secs(10))
}

// ---------------------------------------------------------------------------
// The crash test
// ---------------------------------------------------------------------------

/// What one client saw acknowledged in a round.
#[derive(Default, Debug)]
struct Acked {
    sets: u64,
    incrs: u64,
    pushes: u64,
    stream_ids: Vec<String>,
    fields: u64,
}

/// Writes until the connection breaks; returns what was acknowledged.
fn crash_writer(port: u16, prefix: String) -> Acked {
    let mut acked = Acked::default();
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else { return acked };
    let Ok(mut c) = client.get_connection() else { return acked };
    for n in 0u64.. {
        let ok = match n % 5 {
            0 => query::<()>(&mut c, &["SET", &format!("{prefix}:s:{}", acked.sets), "v"]).map(|_| acked.sets += 1),
            1 => query::<i64>(&mut c, &["INCR", &format!("{prefix}:ctr")]).map(|_| acked.incrs += 1),
            2 => query::<i64>(&mut c, &["LPUSH", &format!("{prefix}:list"), &acked.pushes.to_string()])
                .map(|_| acked.pushes += 1),
            3 => query::<String>(&mut c, &["XADD", &format!("{prefix}:stream"), "*", "n", "1"])
                .map(|id| acked.stream_ids.push(id)),
            _ => query::<i64>(&mut c, &["HSET", &format!("{prefix}:hash"), &format!("f{}", acked.fields), "v"])
                .map(|_| acked.fields += 1),
        };
        if ok.is_err() {
            break;
        }
    }
    acked
}

/// Every acknowledged write of `acked` is in the dataset (and at most the
/// one write in flight besides).
fn check_acked(c: &mut Connection, prefix: &str, acked: &Acked) {
    for i in 0..acked.sets {
        let key = format!("{prefix}:s:{i}");
        assert_eq!(query::<Option<String>>(c, &["GET", &key]).unwrap().as_deref(), Some("v"), "{key}");
    }
    let ctr: u64 = query::<Option<u64>>(c, &["GET", &format!("{prefix}:ctr")]).unwrap().unwrap_or(0);
    assert!((acked.incrs..=acked.incrs + 1).contains(&ctr), "{prefix}: counter {ctr}, {} acknowledged", acked.incrs);
    let len: u64 = query(c, &["LLEN", &format!("{prefix}:list")]).unwrap();
    assert!((acked.pushes..=acked.pushes + 1).contains(&len), "{prefix}: {len} pushed, {} acknowledged", acked.pushes);
    let stream = format!("{prefix}:stream");
    for id in &acked.stream_ids {
        let found: Vec<Value> = query(c, &["XRANGE", &stream, id, id]).unwrap();
        assert_eq!(found.len(), 1, "{stream} lost {id}");
    }
    let fields: u64 = query(c, &["HLEN", &format!("{prefix}:hash")]).unwrap();
    assert!(fields >= acked.fields, "{prefix}: {fields} fields, {} acknowledged", acked.fields);
}

#[test]
fn acknowledged_writes_survive_sigkill_at_any_moment() {
    let rounds: usize = std::env::var("AOF_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(30);
    // Automatic rewrites keep the journal small across the rounds (and
    // some kills land while a rewrite runs).
    let mut server =
        Server::start_with(&["--appendonly", "yes", "--appendfsync", "always", "--auto-aof-rewrite-min-size", "1mb"]);
    let mut rng = rand::thread_rng();
    let mut history: Vec<(String, Acked)> = Vec::new();
    let mut total_acked = 0u64;
    for round in 0..rounds {
        let port = server.port;
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let prefix = format!("r{round}:w{w}");
                thread::spawn(move || (prefix.clone(), crash_writer(port, prefix)))
            })
            .collect();
        thread::sleep(Duration::from_millis(rng.gen_range(20..300)));
        server.kill9();
        for writer in writers {
            let (prefix, acked) = writer.join().unwrap();
            total_acked += acked.sets + acked.incrs + acked.pushes + acked.stream_ids.len() as u64 + acked.fields;
            history.push((prefix, acked));
        }
        server.restart();
        let mut c = server.client();
        // This round's writes, and (every tenth round) all earlier ones.
        let from = if round % 10 == 9 { 0 } else { history.len() - 8 };
        for (prefix, acked) in &history[from..] {
            check_acked(&mut c, prefix, acked);
        }
    }
    assert!(total_acked > rounds as u64 * 8, "too few writes were acknowledged ({total_acked}) to mean anything");
    eprintln!("{rounds} SIGKILL rounds, {total_acked} acknowledged writes, none lost");
}

// ---------------------------------------------------------------------------
// The fsync proof
// ---------------------------------------------------------------------------

/// One line of strace's output that matters here.
#[derive(Debug)]
enum Traced {
    /// A write(2) (the AOF's, when it holds journalled keys).
    Write { fd: i32, text: String },
    /// An fdatasync(2) entering (it may finish later).
    SyncStart { tid: u32, fd: i32 },
    /// An fdatasync(2) that returned 0.
    SyncDone { tid: u32 },
    /// A read(2) from a client socket.
    Read { fd: i32, text: String },
    /// A reply being sent.
    Send { fd: i32, text: String },
}

/// Parses strace's `-f` output (`<tid> <call>(<args>) = <result>`, or the
/// unfinished / resumed halves of a call interrupted by another thread's).
fn parse_trace(path: &Path) -> Vec<Traced> {
    let file = std::fs::File::open(path).unwrap();
    let mut out = Vec::new();
    // A read(2) interrupted by another thread's call shows its descriptor
    // when it starts and its bytes when it resumes.
    let mut unfinished_reads: HashMap<u32, i32> = HashMap::new();
    for line in BufReader::new(file).lines() {
        let line = line.unwrap();
        let Some((tid, call)) = line.split_once(' ') else { continue };
        let Ok(tid) = tid.trim().parse::<u32>() else { continue };
        let call = call.trim_start();
        let fd_of = |rest: &str| rest.split([',', ')', ' ']).next().and_then(|f| f.parse().ok());
        let text_of = |rest: &str| rest.split_once('"').map(|(_, t)| t.to_string()).unwrap_or_default();
        if let Some(rest) = call.strip_prefix("fdatasync(") {
            let fd = fd_of(rest).unwrap_or(-1);
            out.push(Traced::SyncStart { tid, fd });
            if !rest.contains("<unfinished") && rest.ends_with("= 0") {
                out.push(Traced::SyncDone { tid });
            }
        } else if call.starts_with("<... fdatasync resumed>") && call.ends_with("= 0") {
            out.push(Traced::SyncDone { tid });
        } else if let Some(rest) = call.strip_prefix("write(") {
            out.push(Traced::Write { fd: fd_of(rest).unwrap_or(-1), text: text_of(rest) });
        } else if let Some(rest) = call.strip_prefix("read(") {
            let fd = fd_of(rest).unwrap_or(-1);
            if rest.contains("<unfinished") {
                unfinished_reads.insert(tid, fd);
            } else {
                out.push(Traced::Read { fd, text: text_of(rest) });
            }
        } else if let Some(rest) = call.strip_prefix("<... read resumed>") {
            if let Some(fd) = unfinished_reads.remove(&tid) {
                out.push(Traced::Read { fd, text: text_of(rest) });
            }
        } else if let Some(rest) = call.strip_prefix("sendto(") {
            out.push(Traced::Send { fd: fd_of(rest).unwrap_or(-1), text: text_of(rest) });
        }
    }
    out
}

fn strace_available() -> bool {
    Command::new("strace").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

struct TracedServer {
    strace: Child,
    port: u16,
}

/// Runs the server under strace, tracing the calls the proof needs.
fn traced_server(dir: &Path, trace: &Path) -> TracedServer {
    let port = free_port();
    let strace = Command::new("strace")
        .args(["-f", "-qq", "-s", "65536", "-e", "trace=read,write,sendto,fdatasync,fsync", "-o"])
        .arg(trace)
        .arg(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
        .arg(dir)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run strace");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) {
            if let Ok(mut c) = client.get_connection() {
                if query::<String>(&mut c, &["PING"]).is_ok() {
                    break;
                }
            }
        }
        assert!(Instant::now() < deadline, "the traced server did not start");
        thread::sleep(Duration::from_millis(50));
    }
    TracedServer { strace, port }
}

/// With `appendfsync always`, every reply to a write goes out only after
/// an fdatasync of the AOF that began once the write(2) holding that
/// command had returned. Removing the fsync (or sending replies before it
/// completes) fails this test.
#[test]
fn every_reply_to_a_write_follows_the_fdatasync_that_covers_it() {
    if !strace_available() {
        panic!("strace is needed for the fsync proof: run scripts/install-valkey.sh");
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let mut traced = traced_server(dir.path(), &trace);
    let port = traced.port;
    // Several clients at once, so that replies are also checked when one
    // fsync covers many of them (group commit).
    const CLIENTS: usize = 4;
    const WRITES: usize = 40;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|t| {
            thread::spawn(move || {
                let mut c = connect(port);
                for i in 0..WRITES {
                    query::<()>(&mut c, &["SET", &format!("proof:c{t}:{i:04}"), "v"]).unwrap();
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let _ = query::<()>(&mut connect(port), &["SHUTDOWN", "NOSAVE"]);
    let _ = traced.strace.wait();

    let events = parse_trace(&trace);
    // The AOF's descriptor: the one the journalled keys are written to.
    let aof_fd = events
        .iter()
        .find_map(|e| match e {
            Traced::Write { fd, text } if text.contains("proof:c") => Some(*fd),
            _ => None,
        })
        .expect("no write of a journalled command in the trace");
    // For each key: where its AOF write is; for each socket: the key of the
    // request it is being answered for.
    let mut written_at: HashMap<String, usize> = HashMap::new();
    let mut pending_key: HashMap<i32, String> = HashMap::new();
    let mut sync_started: HashMap<u32, usize> = HashMap::new();
    // Where the latest write covered by a completed fdatasync is.
    let mut synced_up_to: Option<usize> = None;
    let mut checked = 0;
    let keys_in = |text: &str| -> Vec<String> {
        text.match_indices("proof:c").map(|(at, _)| text[at..].chars().take_while(|c| *c != '\\').collect()).collect()
    };
    for (index, event) in events.iter().enumerate() {
        match event {
            Traced::Write { fd, text } if *fd == aof_fd => {
                for key in keys_in(text) {
                    written_at.insert(key, index);
                }
            }
            Traced::SyncStart { tid, fd } if *fd == aof_fd => {
                sync_started.insert(*tid, index);
            }
            Traced::SyncDone { tid } => {
                if let Some(start) = sync_started.remove(tid) {
                    // Everything written before this fsync began is durable.
                    synced_up_to = Some(synced_up_to.map_or(start, |s: usize| s.max(start)));
                }
            }
            Traced::Read { fd, text } => {
                if let Some(key) = keys_in(text).pop() {
                    pending_key.insert(*fd, key);
                }
            }
            Traced::Send { fd, text } if text.starts_with("+OK") => {
                let Some(key) = pending_key.remove(fd) else { continue };
                let write = *written_at.get(&key).unwrap_or_else(|| panic!("{key} answered before it was written"));
                let covered = synced_up_to.is_some_and(|start| start > write);
                assert!(covered, "the reply to SET {key} was sent before an fdatasync covering its write");
                checked += 1;
            }
            _ => {}
        }
    }
    assert_eq!(checked, CLIENTS * WRITES, "not every reply was found in the trace");
}

// ---------------------------------------------------------------------------
// A full disk
// ---------------------------------------------------------------------------

/// A small tmpfs mounted over a directory, unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount_at(path: &Path, megabytes: u32) -> SmallDisk {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount");
        assert!(status.success(), "mounting a tmpfs failed");
        SmallDisk { path: path.to_path_buf() }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_refuses_writes_until_space_returns_and_loses_nothing() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the full-disk test mounts a 4 MB tmpfs, which needs root");
        return;
    }
    let mut server = Server::start();
    server.stop();
    // The server's own directory becomes the small disk.
    let disk = SmallDisk::mount_at(server.path(), 4);
    // Room that can be given back later.
    std::fs::write(disk.path.join("filler"), vec![0u8; 1 << 20]).unwrap();
    server.restart_with(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let mut c = server.client();
    let value = "x".repeat(64 * 1024);
    let mut acked = Vec::new();
    let mut refusal = None;
    for i in 0..200 {
        let key = format!("big:{i}");
        match query::<()>(&mut c, &["SET", &key, &value]) {
            Ok(()) => acked.push(key),
            Err(e) => {
                refusal = Some(e.to_string());
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk never filled up");
    assert!(refusal.contains("MISCONF") && refusal.contains("Errors writing to the AOF file: No space left on device"));
    // Reads go on, writes are refused, and INFO says why.
    assert_eq!(query::<Option<String>>(&mut c, &["GET", &acked[0]]).unwrap().as_deref(), Some(value.as_str()));
    let again = query::<()>(&mut c, &["SET", "refused", "1"]).unwrap_err().to_string();
    assert!(again.contains("MISCONF"), "{again}");
    let text: String = query(&mut c, &["INFO", "persistence"]).unwrap();
    assert!(text.contains("aof_last_write_status:err"), "{text}");
    // Space returns: writes resume by themselves.
    std::fs::remove_file(disk.path.join("filler")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match query::<()>(&mut c, &["SET", "after", "1"]) {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "writes never resumed: {e}"),
        }
        thread::sleep(Duration::from_millis(100));
    }
    let text: String = query(&mut c, &["INFO", "persistence"]).unwrap();
    assert!(text.contains("aof_last_write_status:ok"), "{text}");
    assert!(server.output().contains("AOF write error looks solved. The server can write again."));
    // Nothing acknowledged is missing, now or after a restart.
    server.restart();
    let mut c = server.client();
    for key in acked.iter().chain(std::iter::once(&"after".to_string())) {
        assert!(query::<bool>(&mut c, &["EXISTS", key]).unwrap(), "{key} lost");
    }
    server.kill9();
    drop(disk);
}

/// The AOF lets nothing acknowledged go even when the server is stopped
/// with SIGTERM while clients write (the shutdown writes and fsyncs what
/// is buffered).
#[test]
fn a_graceful_stop_under_load_keeps_every_acknowledged_write() {
    let mut server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "no"]);
    let port = server.port;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut c = connect(port);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if query::<i64>(&mut c, &["INCR", &format!("g{w}")]).is_err() {
                        break;
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    server.stop();
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    server.restart();
    let mut c = server.client();
    for (w, n) in counts.iter().enumerate() {
        let got: u64 = query::<Option<u64>>(&mut c, &["GET", &format!("g{w}")]).unwrap().unwrap_or(0);
        assert!(got >= *n, "writer {w}: {got} < {n} acknowledged");
    }
}
