//! What an operator reads: the log lines of loading, background saves and
//! AOF rewrites (with the child's copy-on-write memory), fsync delays and
//! the causes of MISCONF refusals, in Valkey's line format and wording
//! where Valkey has the line; and the sample `ferrokey.conf`, which must
//! set every directive ferrokey acts on to what CONFIG GET then reports.
//!
//! Slow disks and failing writes are made with strace's fault injection
//! (`-e inject=`): a delayed fdatasync, or writes to the AOF failing with
//! ENOSPC for a while. strace is a test dependency of the project
//! (scripts/install-valkey.sh installs it).

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{free_port, query, wait_for_log, Server};
use redis::{Connection, RedisResult};

const BIN: &str = env!("CARGO_BIN_EXE_ferrokey-server");
/// How long a condition the server reaches by itself may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// One INFO persistence reply.
struct Info(String);

impl Info {
    fn read(con: &mut Connection) -> Info {
        Info(query(con, &["INFO", "persistence"]).unwrap())
    }

    fn field(&self, name: &str) -> String {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("INFO persistence has no {name}:\n{}", self.0))
            .trim()
            .to_string()
    }

    fn number(&self, name: &str) -> u64 {
        self.field(name).parse().unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

fn info_field(con: &mut Connection, name: &str) -> String {
    Info::read(con).field(name)
}

fn info_number(con: &mut Connection, name: &str) -> u64 {
    Info::read(con).number(name)
}

/// A log line in Valkey's format: `pid:role dd Mon yyyy hh:mm:ss.mmm level message`.
#[derive(Debug)]
struct LogLine {
    pid: u32,
    role: char,
    level: char,
    message: String,
}

fn parse_line(line: &str) -> Option<LogLine> {
    let (pid, rest) = line.split_once(':')?;
    let mut chars = rest.chars();
    let role = chars.next()?;
    let rest = chars.as_str().strip_prefix(' ')?;
    // "26 Nov 2026 14:10:35.123 * message"
    let mut parts = rest.splitn(6, ' ');
    let (day, month, year, time) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let level = parts.next()?.chars().next()?;
    let message = parts.next()?.to_string();
    let well_formed = day.len() == 2
        && day.bytes().all(|b| b.is_ascii_digit())
        && month.len() == 3
        && year.len() == 4
        && time.len() == 12
        && time.as_bytes()[8] == b'.'
        && "MC".contains(role)
        && ".-*#".contains(level);
    let pid = pid.parse().ok()?;
    well_formed.then_some(LogLine { pid, role, level, message })
}

/// Every log line whose message starts with `prefix`.
fn lines_starting(output: &str, prefix: &str) -> Vec<LogLine> {
    output.lines().filter_map(parse_line).filter(|l| l.message.starts_with(prefix)).collect()
}

/// The one log line whose message starts with `prefix`.
fn line_starting(output: &str, prefix: &str) -> LogLine {
    let mut found = lines_starting(output, prefix);
    assert_eq!(found.len(), 1, "expected one line starting {prefix:?}:\n{output}");
    found.remove(0)
}

/// The numbers in a text, in order (decimals included).
fn numbers(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter_map(|w| w.trim_matches('.').parse().ok()).collect()
}

/// Waits until `check` holds, polling.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "never saw {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Checks the copy-on-write line a child logs when its work is done.
fn assert_cow_line(output: &str, child_pid: u32, name: &str) -> [f64; 3] {
    let line = line_starting(output, &format!("Fork CoW for {name}: current "));
    assert_eq!((line.pid, line.role, line.level), (child_pid, 'C', '*'), "{line:?}");
    let figures = numbers(&line.message);
    assert_eq!(figures.len(), 3, "{line:?}");
    let [current, peak, average] = [figures[0], figures[1], figures[2]];
    assert!(peak >= current && peak >= average, "{line:?}");
    [current, peak, average]
}

// ---------------------------------------------------------------------------
// BGSAVE and BGREWRITEAOF
// ---------------------------------------------------------------------------

/// BGSAVE logs its child's pid at the start; the child logs the save and
/// its copy-on-write memory (its pid, role C); the server logs the end
/// and how long it took. Values overwritten while the child writes cost
/// copy-on-write memory, which the child measures and INFO reports.
#[test]
fn bgsave_logs_the_child_its_copy_on_write_memory_and_the_end() {
    let server = Server::start_with(&["--rdb-key-save-delay", "1500"]);
    let mut c = server.client();
    const KEYS: usize = 2000;
    let first = "a".repeat(4096);
    let mut pipe = redis::pipe();
    for i in 0..KEYS {
        pipe.cmd("SET").arg(format!("k{i}")).arg(&first).ignore();
    }
    pipe.query::<()>(&mut c).unwrap();
    assert_eq!(query::<String>(&mut c, &["BGSAVE"]).unwrap(), "Background saving started");
    // Every value is rewritten while the child writes (1.5 ms a key): 8 MB
    // of pages the child and the server no longer share.
    let second = "b".repeat(4096);
    let mut pipe = redis::pipe();
    for i in 0..KEYS {
        pipe.cmd("SET").arg(format!("k{i}")).arg(&second).ignore();
    }
    pipe.query::<()>(&mut c).unwrap();
    assert_eq!(info_number(&mut c, "rdb_bgsave_in_progress"), 1, "the save ended before the values were rewritten");
    // The child's progress report (after 1024 keys, a second or more in),
    // while it runs: the figures go back to 0 once it is reaped.
    let mut during = Info::read(&mut c);
    wait_until("the child's progress report in INFO", || {
        during = Info::read(&mut c);
        assert_eq!(during.number("rdb_bgsave_in_progress"), 1, "the save ended before its progress was seen");
        during.number("current_save_keys_processed") > 0
    });
    assert_eq!(during.number("current_save_keys_processed"), 1024);
    assert_eq!(during.number("current_save_keys_total"), KEYS as u64);
    assert!(during.number("current_cow_size") > 0);
    assert!(during.field("current_fork_perc").starts_with("51.2"), "1024 of 2000 keys");
    wait_for_log(&server, "Background saving by pid");
    let output = server.output();
    let started = line_starting(&output, "Background saving started by pid ");
    let child = numbers(&started.message)[0] as u32;
    assert_eq!((started.pid, started.role), (server.pid().unwrap(), 'M'));
    assert_ne!(child, started.pid);
    let saved = line_starting(&output, "DB saved on disk");
    assert_eq!((saved.pid, saved.role), (child, 'C'));
    let [current, peak, _] = assert_cow_line(&output, child, "RDB");
    assert!(current >= 4.0 && peak >= 4.0, "8 MB of values were rewritten during the save:\n{output}");
    let success = line_starting(&output, "Background saving terminated with success");
    assert_eq!((success.pid, success.role, success.level), (started.pid, 'M', '*'));
    let ended = line_starting(&output, &format!("Background saving by pid {child} ended after "));
    let figures = numbers(&ended.message);
    assert!(figures[1] >= 2.0 && figures[1] < 600.0, "2000 keys at 1.5 ms each: {ended:?}");
    assert_eq!(figures[2], peak, "{ended:?}");
    // INFO: the peak in bytes, nothing running any more.
    let cow = info_number(&mut c, "rdb_last_cow_size");
    assert!(cow >= 4 << 20 && cow >> 20 == peak as u64, "rdb_last_cow_size {cow}, peak {peak} MB");
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    assert_eq!(info_number(&mut c, "current_cow_size"), 0);
    // The file holds the dataset as it was at the fork.
    let mut server = server;
    server.restart();
    let mut c = server.client();
    assert_eq!(query::<usize>(&mut c, &["DBSIZE"]).unwrap(), KEYS);
    assert_eq!(query::<String>(&mut c, &["GET", "k7"]).unwrap(), first);
}

#[test]
fn bgrewriteaof_logs_the_child_its_copy_on_write_memory_and_the_end() {
    let server = Server::start_with(&["--appendonly", "yes"]);
    let mut c = server.client();
    for i in 0..100 {
        let _: () = query(&mut c, &["SET", &format!("k{i}"), "v"]).unwrap();
    }
    let reply: String = query(&mut c, &["BGREWRITEAOF"]).unwrap();
    assert_eq!(reply, "Background append only file rewriting started");
    wait_for_log(&server, "Background AOF rewrite by pid");
    let output = server.output();
    let started = line_starting(&output, "Background append only file rewriting started by pid ");
    let child = numbers(&started.message)[0] as u32;
    assert_eq!((started.pid, started.role), (server.pid().unwrap(), 'M'));
    let created = line_starting(&output, "Successfully created the temporary AOF base file ");
    assert_eq!((created.pid, created.role), (child, 'C'));
    assert_eq!(
        created.message,
        format!("Successfully created the temporary AOF base file temp-rewriteaof-bg-{child}.aof")
    );
    let [_, peak, _] = assert_cow_line(&output, child, "AOF rewrite");
    line_starting(&output, "Background AOF rewrite terminated with success");
    line_starting(&output, "Background AOF rewrite finished successfully");
    let ended = line_starting(&output, &format!("Background AOF rewrite by pid {child} ended after "));
    let figures = numbers(&ended.message);
    assert!(figures[1] >= 0.0 && figures[1] < 600.0, "{ended:?}");
    assert_eq!(figures[2], peak, "{ended:?}");
    // A child always dirties some pages of its own (its stack at least).
    let cow = info_number(&mut c, "aof_last_cow_size");
    assert!(cow > 0 && cow >> 20 == peak as u64, "aof_last_cow_size {cow}, peak {peak} MB");
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// A load that lasts (slowed by Valkey's `key-load-delay`) logs its start,
/// its progress every 5 seconds, and its end with the keys loaded, the
/// expired keys skipped and the time it took.
#[test]
fn rdb_loading_logs_start_progress_and_end() {
    let mut server = Server::start_with(&["--enable-debug-command", "yes"]);
    let mut c = server.client();
    const KEYS: usize = 4500;
    const EXPIRING: usize = 100;
    let _: () = query(&mut c, &["DEBUG", "POPULATE", &KEYS.to_string()]).unwrap();
    // Keys that are saved but have expired by the time the file loads.
    let _: () = query(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).unwrap();
    for i in 0..EXPIRING {
        let _: () = query(&mut c, &["SET", &format!("soon:{i}"), "v", "PX", "1000"]).unwrap();
    }
    let _: () = query(&mut c, &["SAVE"]).unwrap();
    thread::sleep(Duration::from_millis(1200));
    let size = std::fs::metadata(server.path().join("dump.rdb")).unwrap().len();
    // 4600 keys at 1.5 ms each: about 7 seconds.
    server.restart_with(&["--key-load-delay", "1500"]);
    let output = server.output();
    let start = line_starting(&output, "Loading the RDB file ");
    assert_eq!(start.message, format!("Loading the RDB file dump.rdb ({size} bytes)..."));
    let progress = lines_starting(&output, "Loading: ");
    assert!(!progress.is_empty(), "no progress line:\n{output}");
    for line in &progress {
        // "Loading: 88.6% (0.1 MB of 0.1 MB), 4000 keys in memory, 6 seconds so far, about 1 seconds left"
        let n = numbers(&line.message);
        assert_eq!(n.len(), 6, "{line:?}");
        assert!(n[0] > 0.0 && n[0] < 100.0, "{line:?}");
        assert!(n[3] > 0.0 && n[3] < KEYS as f64, "{line:?}");
        assert!(n[4] >= 5.0, "{line:?}");
        assert_eq!(line.level, '*');
    }
    let done = line_starting(&output, "Done loading RDB, ");
    assert_eq!(done.message, format!("Done loading RDB, keys loaded: {KEYS}, keys expired: {EXPIRING}."));
    let loaded = line_starting(&output, "DB loaded from disk: ");
    assert!(numbers(&loaded.message)[0] >= 5.0, "{loaded:?}");
    let mut c = server.client();
    assert_eq!(query::<usize>(&mut c, &["DBSIZE"]).unwrap(), KEYS);
    assert_eq!(info_number(&mut c, "rdb_last_load_keys_loaded"), KEYS as u64);
    assert_eq!(info_number(&mut c, "rdb_last_load_keys_expired"), EXPIRING as u64);
}

#[test]
fn aof_loading_logs_start_and_end() {
    let mut server = Server::start_with(&["--appendonly", "yes"]);
    let mut c = server.client();
    for i in 0..300 {
        let _: () = query(&mut c, &["SET", &format!("k{i}"), "v"]).unwrap();
    }
    server.restart();
    let output = server.output();
    let start = line_starting(&output, "Loading the append only file from ");
    assert!(start.message.starts_with("Loading the append only file from appendonlydir (2 files, "), "{start:?}");
    assert!(numbers(&start.message)[1] > 0.0, "{start:?}");
    line_starting(&output, "DB loaded from base file appendonly.aof.1.base.rdb: ");
    line_starting(&output, "DB loaded from incr file appendonly.aof.1.incr.aof: ");
    assert_eq!(line_starting(&output, "Done loading AOF").message, "Done loading AOF, keys in memory: 300.");
    line_starting(&output, "DB loaded from append only file: ");
    let mut c = server.client();
    assert_eq!(query::<usize>(&mut c, &["DBSIZE"]).unwrap(), 300);
}

// ---------------------------------------------------------------------------
// MISCONF causes
// ---------------------------------------------------------------------------

/// A failed BGSAVE (here: `dump.rdb` is a directory, so the rename fails,
/// whatever the user's privileges) refuses writes; the log names the cause
/// once when the refusal begins, and says when it ends.
#[test]
fn a_failed_bgsave_logs_why_writes_are_refused_and_when_they_resume() {
    let server = Server::start_with(&["--save", "3600 1"]);
    let mut c = server.client();
    let _: () = query(&mut c, &["SET", "before", "1"]).unwrap();
    let in_the_way = server.path().join("dump.rdb");
    std::fs::create_dir(&in_the_way).unwrap();
    for attempt in 1..=2 {
        let _: String = query(&mut c, &["BGSAVE"]).unwrap();
        wait_until("the failed save", || lines_starting(&server.output(), "Background saving error").len() == attempt);
        wait_until("the save child reaped", || info_number(&mut c, "rdb_bgsave_in_progress") == 0);
    }
    let refused = query::<()>(&mut c, &["SET", "refused", "1"]).unwrap_err().to_string();
    assert!(refused.contains("MISCONF"), "{refused}");
    let output = server.output();
    let dir = server.path().canonicalize().unwrap();
    let cause = lines_starting(&output, "Error moving temp DB file temp-");
    assert_eq!(cause.len(), 2, "{output}");
    for line in &cause {
        assert_eq!(line.role, 'C');
        assert_eq!(
            line.message,
            format!(
                "Error moving temp DB file temp-{}.rdb on the final destination dump.rdb (in server root dir {}): \
                 Is a directory",
                line.pid,
                dir.display()
            )
        );
    }
    // Once, when the refusal begins, with the cause the child reported.
    let refusal = line_starting(&output, "Writes are refused (MISCONF) because the last background save failed: ");
    assert_eq!((refusal.role, refusal.level), ('M', '#'));
    assert!(refusal.message.ends_with(&cause[0].message), "{refusal:?}");
    std::fs::remove_dir(&in_the_way).unwrap();
    let _: String = query(&mut c, &["BGSAVE"]).unwrap();
    wait_for_log(&server, "RDB save error looks solved. The server can write again.");
    let _: () = query(&mut c, &["SET", "after", "1"]).unwrap();
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    assert!(!query::<bool>(&mut c, &["EXISTS", "refused"]).unwrap());
}

/// The AOF cannot be written for a while (strace makes writes to the incr
/// file fail with ENOSPC): Valkey's error line, ours naming the file and
/// the refusal, then Valkey's all-clear; what was acknowledged is in the
/// file, what was refused is not.
#[test]
fn an_aof_write_error_logs_the_file_the_refusal_and_the_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let incr = dir.path().join("appendonlydir/appendonly.aof.1.incr.aof");
    // Writes 2 to 11 to the incr file fail: a second of retries (10 a second).
    let inject = ["-P", incr.to_str().unwrap(), "-e", "trace=write", "-e", "inject=write:error=ENOSPC:when=2..11"];
    let server = TracedServer::start(dir.path(), &inject, &["--appendonly", "yes", "--appendfsync", "everysec"]);
    let mut c = server.client();
    let _: () = query(&mut c, &["SET", "before-error", "1"]).unwrap();
    // Its write fails; it stays buffered and is written once writes work.
    let _: () = query(&mut c, &["SET", "during-error", "1"]).unwrap();
    let refused = query::<()>(&mut c, &["SET", "refused", "1"]).unwrap_err().to_string();
    // (The client shows the error code and the text apart.)
    assert!(
        refused.starts_with("MISCONF") && refused.ends_with("Errors writing to the AOF file: No space left on device"),
        "{refused}"
    );
    assert_eq!(info_field(&mut c, "aof_last_write_status"), "err");
    wait_until("writes accepted again", || query::<()>(&mut c, &["SET", "after-recovery", "1"]).is_ok());
    assert_eq!(info_field(&mut c, "aof_last_write_status"), "ok");
    let output = server.output();
    let error = line_starting(&output, "Error writing to the AOF file: ");
    assert_eq!((error.message.as_str(), error.level), ("Error writing to the AOF file: No space left on device", '#'));
    let refusal = line_starting(&output, "Writes are refused (MISCONF) until the AOF file ");
    assert_eq!(
        refusal.message,
        "Writes are refused (MISCONF) until the AOF file appendonlydir/appendonly.aof.1.incr.aof can be written \
         again: No space left on device"
    );
    line_starting(&output, "AOF write error looks solved. The server can write again.");
    let journal = std::fs::read(&incr).unwrap();
    let holds = |key: &str| journal.windows(key.len()).any(|w| w == key.as_bytes());
    assert!(holds("before-error") && holds("during-error") && holds("after-recovery"));
    assert!(!holds("refused"));
}

// ---------------------------------------------------------------------------
// fsync delays
// ---------------------------------------------------------------------------

/// Under `appendfsync always` every reply waits for its fsync: one over a
/// second is logged with its duration (ferrokey's warning).
#[test]
fn a_slow_fsync_under_always_is_logged_with_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    let inject = ["-e", "trace=fdatasync", "-e", "inject=fdatasync:delay_enter=1300000"];
    let server = TracedServer::start(dir.path(), &inject, &["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = server.client();
    let _: () = query(&mut c, &["SET", "k", "v"]).unwrap();
    let output = server.output();
    let line = line_starting(&output, "Slow AOF fsync: fdatasync took ");
    assert_eq!(line.level, '#');
    assert!(numbers(&line.message)[0] >= 1300.0, "{line:?}");
    assert!(line.message.ends_with("ms (disk is busy?), and replies to writes waited for it (appendfsync always)."));
    assert_eq!(query::<String>(&mut c, &["GET", "k"]).unwrap(), "v");
}

/// Under `everysec` a background fsync slower than 2 s makes writes stop
/// waiting for it: Valkey's line, INFO's aof_delayed_fsync, and our line
/// with the fsync's duration.
#[test]
fn an_everysec_fsync_taking_too_long_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let inject = ["-e", "trace=fdatasync", "-e", "inject=fdatasync:delay_enter=3000000"];
    let server = TracedServer::start(dir.path(), &inject, &["--appendonly", "yes", "--appendfsync", "everysec"]);
    let mut c = server.client();
    let mut written = 0;
    wait_until("a postponed write", || {
        let _: () = query(&mut c, &["SET", &format!("k{written}"), "v"]).unwrap();
        written += 1;
        thread::sleep(Duration::from_millis(200));
        server.output().contains("Asynchronous AOF fsync is taking too long")
    });
    let output = server.output();
    // Every fsync is slow here: later writes may be postponed again.
    let line = lines_starting(&output, "Asynchronous AOF fsync is taking too long").remove(0);
    assert_eq!(
        line.message,
        "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for \
         fsync to complete, this may slow down the server."
    );
    assert!(info_number(&mut c, "aof_delayed_fsync") >= 1);
    wait_for_log_text(&server, "Slow AOF fsync: the background fdatasync took ");
    let slow = lines_starting(&server.output(), "Slow AOF fsync: the background fdatasync took ").remove(0);
    assert!(numbers(&slow.message)[0] >= 3000.0, "{slow:?}");
    assert_eq!(query::<usize>(&mut c, &["DBSIZE"]).unwrap(), written);
}

/// ferrokey-server run under strace with some syscalls delayed or failed.
struct TracedServer {
    strace: Child,
    port: u16,
    server_pid: i32,
    log: Arc<Mutex<Vec<u8>>>,
}

impl TracedServer {
    fn start(dir: &Path, strace_args: &[&str], server_args: &[&str]) -> TracedServer {
        let available = Command::new("strace").arg("-V").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
        assert!(available, "strace is needed to make a disk slow or full: run scripts/install-valkey.sh");
        let port = free_port();
        let mut strace = Command::new("strace")
            .args(["-f", "-qq", "--seccomp-bpf", "-o", "/dev/null"])
            .args(strace_args)
            .arg(BIN)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--dir"])
            .arg(dir)
            .args(server_args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run strace");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in
            [Box::new(strace.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(strace.stderr.take().unwrap())]
        {
            let log = log.clone();
            thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        let mut traced = TracedServer { strace, port, server_pid: 0, log };
        let deadline = Instant::now() + DEADLINE;
        let mut c = loop {
            if let Ok(Some(status)) = traced.strace.try_wait() {
                panic!("the traced server exited: {status}\n{}", traced.output());
            }
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
            if let Ok(mut c) = client.get_connection() {
                if query::<String>(&mut c, &["PING"]).is_ok() {
                    break c;
                }
            }
            assert!(Instant::now() < deadline, "the traced server did not start:\n{}", traced.output());
            thread::sleep(Duration::from_millis(50));
        };
        let info: String = query(&mut c, &["INFO", "server"]).unwrap();
        traced.server_pid =
            info.lines().find_map(|l| l.strip_prefix("process_id:")).and_then(|p| p.trim().parse().ok()).unwrap();
        let dir_reply: Vec<String> = query(&mut c, &["CONFIG", "GET", "dir"]).unwrap();
        assert_eq!(Path::new(&dir_reply[1]).canonicalize().unwrap(), dir.canonicalize().unwrap(), "another server");
        traced
    }

    fn client(&self) -> Connection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).unwrap();
        let c = client.get_connection_with_timeout(Duration::from_secs(10)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }
}

impl Drop for TracedServer {
    fn drop(&mut self) {
        // The server, not strace: a tracer that dies lets its tracee run on.
        let pid = if self.server_pid > 0 { self.server_pid } else { traced_process(self.strace.id()) };
        if pid > 0 {
            // SAFETY: kill(2) on the server strace runs for this test.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = self.strace.kill();
        let _ = self.strace.wait();
    }
}

/// The process strace started (its child), or 0 when there is none.
fn traced_process(strace_pid: u32) -> i32 {
    std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children"))
        .ok()
        .and_then(|children| children.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn wait_for_log_text(server: &TracedServer, text: &str) {
    wait_until(text, || server.output().contains(text));
}

// ---------------------------------------------------------------------------
// The sample configuration file
// ---------------------------------------------------------------------------

/// The directives of ferrokey.conf and their values, in file order.
fn sample_config() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ferrokey.conf")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let args = ferrokey_formats::resp::split_args(l.as_bytes()).unwrap_or_else(|| panic!("bad line {l:?}"));
            let mut args = args.into_iter().map(|a| String::from_utf8(a).unwrap());
            (args.next().unwrap(), args.collect())
        })
        .collect()
}

/// Valkey's memory units, as CONFIG GET prints them (in bytes).
fn in_bytes(token: &str) -> String {
    let lower = token.to_ascii_lowercase();
    let units =
        [("kb", 1024u64), ("mb", 1 << 20), ("gb", 1 << 30), ("k", 1000), ("m", 1_000_000), ("g", 1_000_000_000)];
    for (unit, factor) in units {
        if let Some(n) = lower.strip_suffix(unit).and_then(|n| n.parse::<u64>().ok()) {
            return (n * factor).to_string();
        }
    }
    token.to_string()
}

/// The file sets every directive the server acts on; started with it (and
/// --port / --dir overriding the file), the server reports each with the
/// file's value and logs no ignored directive.
#[test]
fn the_sample_config_sets_every_implemented_directive_as_config_get_reports() {
    let directives = sample_config();
    for name in ferrokey::config::implemented_directives() {
        assert!(directives.iter().any(|(d, _)| d == name), "ferrokey.conf does not set {name}");
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("ferrokey.conf");
    let mut child = Command::new(BIN)
        .arg(&conf)
        .args(["--port", &port.to_string(), "--dir"])
        .arg(dir.path())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut c = loop {
        if let Ok(mut c) = client.get_connection() {
            if query::<String>(&mut c, &["PING"]).is_ok() {
                break c;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        assert!(Instant::now() < deadline, "the server did not start");
        thread::sleep(Duration::from_millis(50));
    };
    let get = |c: &mut Connection, name: &str| {
        let reply: Vec<String> = query(c, &["CONFIG", "GET", name]).unwrap();
        assert_eq!(reply.len(), 2, "CONFIG GET {name}: {reply:?}");
        reply[1].clone()
    };
    assert_eq!(Path::new(&get(&mut c, "dir")).canonicalize().unwrap(), dir.path().canonicalize().unwrap());
    for (name, args) in &directives {
        if name == "port" || name == "dir" {
            continue;
        }
        let reported = get(&mut c, name);
        let given: Vec<String> = args.iter().map(|a| in_bytes(a)).collect();
        if name == "client-output-buffer-limit" {
            // One line per class; CONFIG GET gives all three, the replica
            // class under its old name.
            let class = if given[0] == "replica" { "slave" } else { given[0].as_str() };
            let expected = format!("{class} {}", given[1..].join(" "));
            assert!(reported.contains(&expected), "{name}: {reported:?} lacks {expected:?}");
        } else {
            assert_eq!(reported, given.join(" "), "{name}");
            let count = directives.iter().filter(|(d, _)| d == name).count();
            assert_eq!(count, 1, "{name} is set {count} times");
        }
    }
    let _: RedisResult<()> = query(&mut c, &["SHUTDOWN", "NOSAVE"]);
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains(&format!("Configuration loaded from {}", conf.display())), "{log}");
    assert!(!log.contains("not implemented yet"), "{log}");
}
