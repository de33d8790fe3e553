//! RDB persistence end to end: the fixtures load to their expected
//! contents, files ferrokey writes load back (here and in valkey-server)
//! to the same data, bad files stop the start, BGSAVE snapshots are
//! consistent while clients write, data survives SHUTDOWN and kill -9
//! after a BGSAVE, and DUMP payloads move between ferrokey and Valkey.
//!
//! Contents are compared with the fixtures' own tool,
//! `tools/dump-expected.py --compare` (python3, standard library only).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{digest, fixtures_dir, free_port, query, run_to_exit, wait_for_log, Server, Valkey};
use redis::{Connection, RedisResult, Value};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn dump_tool() -> Option<PathBuf> {
    let tool = fixtures_dir("rdb").join("tools/dump-expected.py");
    tool.is_file().then_some(tool)
}

struct Fixture {
    /// e.g. "valkey-8.0.1/mixed"
    name: String,
    rdb: PathBuf,
    expected: PathBuf,
    expect_error: bool,
    /// `load_config` as command line arguments.
    load_args: Vec<String>,
}

/// The fixtures of one source folder (`valkey-8.0.1`, `historic`, ...),
/// with what their expected files say (read with python3, which also
/// reads the gzipped ones).
fn fixtures(folder: &str) -> Vec<Fixture> {
    let dir = fixtures_dir("rdb").join("rdb").join(folder);
    if !dir.is_dir() {
        return Vec::new();
    }
    const LIST: &str = r#"
import glob, gzip, json, os, sys
for exp in sorted(glob.glob(os.path.join(sys.argv[1], "*.expected.json*"))):
    doc = json.load(gzip.open(exp) if exp.endswith(".gz") else open(exp))
    args = []
    for k, v in sorted((doc.get("load_config") or {}).items()):
        args += ["--" + k, str(v)]
    print("\t".join([exp, doc.get("expect", "ok")] + args))
"#;
    let out = Command::new("python3").arg("-c").arg(LIST).arg(&dir).output().expect("python3 is needed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let mut parts = line.split('\t');
            let expected = PathBuf::from(parts.next().unwrap());
            let expect_error = parts.next() == Some("error");
            let file = expected.file_name().unwrap().to_string_lossy().into_owned();
            let stem = file.split(".expected.json").next().unwrap().to_string();
            Fixture {
                name: format!("{folder}/{stem}"),
                rdb: dir.join(format!("{stem}.rdb")),
                expected,
                expect_error,
                load_args: parts.map(str::to_string).collect(),
            }
        })
        .collect()
}

fn run(con: &mut Connection, args: &[&str]) {
    let _: Value = query(con, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
}

fn error_text(result: RedisResult<Value>) -> String {
    let e = result.expect_err("expected an error reply");
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

fn info(con: &mut Connection, section: &str) -> HashMap<String, String> {
    let text: String = query(con, &["INFO", section]).unwrap();
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_string(), v.trim().to_string())).collect()
}

/// A client that waits up to two minutes for a reply: a debug build takes
/// seconds to digest the larger fixtures.
fn patient_client(server: &Server) -> Connection {
    let c = server.client();
    c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    c
}

/// Waits for the running BGSAVE (if any) to end; panics after 60 s.
fn wait_for_bgsave(con: &mut Connection) -> HashMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let f = info(con, "persistence");
        if f["rdb_bgsave_in_progress"] == "0" {
            return f;
        }
        assert!(Instant::now() < deadline, "BGSAVE did not finish");
        thread::sleep(Duration::from_millis(20));
    }
}

/// `dump-expected.py --compare` against a running server: Ok, or the
/// differences it printed.
fn compare(port: u16, expected: &Path, check_encoding: bool) -> Result<(), String> {
    let tool = dump_tool().expect("dump-expected.py");
    let out = Command::new("python3")
        .arg(tool)
        .args(["--port", &port.to_string(), "--compare"])
        .arg(expected)
        .args(check_encoding.then_some("--check-encoding"))
        .output()
        .expect("python3");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

fn valkey_check(file: &Path) -> Result<(), String> {
    let out =
        Command::new("valkey-check-rdb").arg(file).output().expect("valkey-check-rdb (scripts/install-valkey.sh)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && text.contains("RDB looks OK") {
        Ok(())
    } else {
        Err(text)
    }
}

fn args_of<'a>(fixed: &[&'a str], more: &'a [String]) -> Vec<&'a str> {
    fixed.iter().copied().chain(more.iter().map(String::as_str)).collect()
}

/// Fixtures only loaded and compared: `loadspeed-5mb` holds more of what
/// `mixed` holds, and a debug build takes most of a minute for its cycle.
const LOAD_ONLY: &[&str] = &["valkey-8.0.1/loadspeed-5mb"];

/// Every good fixture of `folder` through the whole cycle: loaded at start
/// (`--load-rdb`) to its expected contents; saved, restarted from `dir`
/// with the same DEBUG DIGEST; the saved file accepted by valkey-check-rdb
/// and loaded by valkey-server to the expected contents (functions
/// included) and the same digest. With `check_encoding`, OBJECT ENCODING
/// must also be what the fixture's server reported (not for Redis 7.0's
/// files: its encodings are not Valkey 8's).
fn fixture_cycle(folder: &str, check_encoding: bool) {
    if dump_tool().is_none() {
        eprintln!("skipped: {} has no tools/dump-expected.py", fixtures_dir("rdb").display());
        return;
    }
    let all = fixtures(folder);
    let mut failures = Vec::new();
    let mut checked = 0;
    for fx in all.iter().filter(|f| !f.expect_error && !f.name.contains("/hfe-")) {
        checked += 1;
        let rdb = fx.rdb.to_string_lossy().into_owned();
        let args = args_of(&["--enable-debug-command", "yes", "--load-rdb", &rdb], &fx.load_args);
        let mut server = Server::start_with(&args);
        let saved = server.path().join("dump.rdb");
        if let Err(d) = compare(server.port, &fx.expected, check_encoding) {
            failures.push(format!("{}: loaded contents differ:\n{d}", fx.name));
            continue;
        }
        if LOAD_ONLY.contains(&fx.name.as_str()) {
            continue;
        }
        let mut c = patient_client(&server);
        let before = digest(&mut c);
        run(&mut c, &["SAVE"]);
        server.restart_with(&args_of(&["--enable-debug-command", "yes"], &fx.load_args));
        let after = digest(&mut patient_client(&server));
        if before != after {
            failures.push(format!("{}: digest {before} before the restart, {after} after", fx.name));
        }
        if let Err(out) = valkey_check(&saved) {
            failures.push(format!("{}: valkey-check-rdb refuses the saved file:\n{out}", fx.name));
            continue;
        }
        let mut valkey = Valkey::start_with(&args_of(&[], &fx.load_args));
        valkey.stop();
        std::fs::copy(&saved, valkey.path().join("dump.rdb")).unwrap();
        valkey.restart();
        if let Err(d) = compare(valkey.port, &fx.expected, false) {
            failures.push(format!("{}: valkey-server loads the saved file differently:\n{d}", fx.name));
        }
        let theirs = digest(&mut patient_client(&valkey));
        if theirs != before {
            failures.push(format!("{}: valkey's digest {theirs}, ferrokey's {before}", fx.name));
        }
    }
    eprintln!("{folder}: {checked} fixtures checked");
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

#[test]
fn valkey_fixtures_load_save_and_reload() {
    fixture_cycle("valkey-8.0.1", true);
}

#[test]
fn redis_7_0_fixtures_load_save_and_reload() {
    fixture_cycle("redis-7.0.15", false);
}

#[test]
fn redis_7_4_fixtures_load_save_and_reload() {
    fixture_cycle("redis-7.4.1", true);
}

#[test]
fn historic_fixtures_load_save_and_reload() {
    fixture_cycle("historic", true);
}

fn dir_listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap_or_default())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn bad_files_stop_the_start_and_touch_nothing() {
    let mut bad: Vec<Fixture> = Vec::new();
    for folder in ["historic", "redis-7.4.1", "valkey-8.0.1", "redis-7.0.15"] {
        bad.extend(fixtures(folder).into_iter().filter(|f| f.expect_error || f.name.contains("/hfe-")));
    }
    if bad.is_empty() {
        eprintln!("skipped: no bad fixtures in {}", fixtures_dir("rdb").display());
        return;
    }
    let good = fixtures_dir("rdb").join("rdb/valkey-8.0.1/strings-int.rdb");
    for fx in &bad {
        // As the server's own file.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(&fx.rdb, tmp.path().join("dump.rdb")).unwrap();
        let before = dir_listing(tmp.path());
        let (code, out) = run_to_exit(tmp.path(), &[]);
        assert_eq!(code, Some(1), "{}: {out}", fx.name);
        assert!(out.contains("Fatal error loading the DB") && out.contains("at offset"), "{}: {out}", fx.name);
        if fx.name.contains("/hfe-") {
            assert!(out.contains("hash-field expiry (Redis 7.4) is not supported"), "{}: {out}", fx.name);
        }
        assert_eq!(dir_listing(tmp.path()), before, "{}: the directory changed", fx.name);
        // As an import over a good dataset, which must stay as it was.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(&good, tmp.path().join("dump.rdb")).unwrap();
        let before = dir_listing(tmp.path());
        let (code, out) = run_to_exit(tmp.path(), &["--load-rdb", &fx.rdb.to_string_lossy()]);
        assert_eq!(code, Some(1), "{} imported: {out}", fx.name);
        assert!(out.contains(&*fx.rdb.to_string_lossy()), "{}: the message names no file: {out}", fx.name);
        assert_eq!(dir_listing(tmp.path()), before, "{} imported: the directory changed", fx.name);
    }
    let tmp = tempfile::tempdir().unwrap();
    let (code, out) = run_to_exit(tmp.path(), &["--load-rdb", "/nonexistent/file.rdb"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(dir_listing(tmp.path()).is_empty());
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

#[test]
fn clients_get_loading_errors_while_the_dataset_loads() {
    let big = fixtures_dir("rdb").join("rdb/valkey-8.0.1/loadspeed-5mb.rdb");
    let tmp = tempfile::tempdir().unwrap();
    if big.is_file() {
        std::fs::copy(&big, tmp.path().join("dump.rdb")).unwrap();
    } else {
        // Without the shared fixtures next to the clone: a file as big,
        // written by ferrokey itself.
        let source = Server::start_with(&["--enable-debug-command", "yes"]);
        let mut c = source.client();
        run(&mut c, &["DEBUG", "POPULATE", "75000", "key", "60"]);
        run(&mut c, &["SAVE"]);
        std::fs::copy(source.path().join("dump.rdb"), tmp.path().join("dump.rdb")).unwrap();
    }
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .arg("--dir")
        .arg(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn = loop {
        if let Ok(c) = common::RawConn::try_connect(port) {
            break c;
        }
        assert!(Instant::now() < deadline, "no connection");
        thread::sleep(Duration::from_millis(2));
    };
    let mut loading_replies = 0;
    let mut progress_seen = false;
    loop {
        let reply = conn.cmd(&[b"GET", b"nosuchkey"]);
        if reply.starts_with(b"-LOADING") {
            assert_eq!(reply, b"-LOADING Valkey is loading the dataset in memory\r\n");
            loading_replies += 1;
            let info = String::from_utf8_lossy(&conn.cmd(&[b"INFO", b"persistence"])).into_owned();
            if info.contains("loading:1") && info.contains("loading_loaded_perc:") {
                progress_seen = true;
            }
        } else {
            assert_eq!(reply, b"$-1\r\n");
            break;
        }
        assert!(Instant::now() < deadline, "still loading");
        thread::sleep(Duration::from_millis(5));
    }
    let info = String::from_utf8_lossy(&conn.cmd(&[b"INFO", b"persistence"])).into_owned();
    let _ = child.kill();
    let _ = child.wait();
    assert!(loading_replies > 0, "never saw -LOADING");
    assert!(progress_seen, "INFO showed no loading progress");
    assert!(info.contains("loading:0") && info.contains("rdb_last_load_keys_loaded:75000"), "{info}");
}

#[test]
fn import_persists_at_once_and_survives_a_plain_restart() {
    let file = fixtures_dir("rdb").join("rdb/valkey-8.0.1/multidb.rdb");
    let mut server = Server::start_with(&["--enable-debug-command", "yes", "--load-rdb", &file.to_string_lossy()]);
    assert!(server.path().join("dump.rdb").is_file(), "the import was not saved");
    let before = digest(&mut server.client());
    server.kill9();
    server.restart_with(&["--enable-debug-command", "yes"]);
    let mut c = server.client();
    assert_eq!(digest(&mut c), before);
    let f = info(&mut c, "persistence");
    assert_eq!(f["rdb_last_load_keys_loaded"], "58");
}

#[test]
fn expired_keys_in_the_file_are_dropped_and_counted() {
    let file = fixtures_dir("rdb").join("rdb/valkey-8.0.1/expire.rdb");
    let server = Server::start_with(&["--load-rdb", &file.to_string_lossy()]);
    let f = info(&mut server.client(), "persistence");
    assert_eq!(f["rdb_last_load_keys_expired"], "2");
    assert_eq!(f["rdb_last_load_keys_loaded"], "12");
}

// ---------------------------------------------------------------------------
// Saving
// ---------------------------------------------------------------------------

/// A dataset of every type in its every encoding, made by commands.
fn populate_every_type(c: &mut Connection) {
    let cmds: &[&[&str]] = &[
        &["SET", "str:int", "12345"],
        &["SET", "str:big-int", "123456789012345"],
        &["SET", "str:embstr", "hello"],
        &["APPEND", "str:raw", "appended"],
        &["SET", "str:lzf", &"abcd".repeat(50)],
        &["SET", "str:ttl", "v", "PX", "864000000"],
        &["RPUSH", "list:small", "a", "1", "-7", "bb"],
        &["RPUSH", "list:plain", "a", &"p".repeat(10_000), "b"],
        &["HSET", "hash:small", "f", "v", "n", "42"],
        &["HSET", "hash:big", "f", &"x".repeat(100)],
        &["SADD", "set:ints", "1", "2", "70000", "-5"],
        &["SADD", "set:small", "a", "b", "3"],
        &["SADD", "set:big", &"y".repeat(80), "z"],
        &["ZADD", "zset:small", "1", "a", "2.5", "b", "-inf", "c", "1e300", "d"],
        &["ZADD", "zset:big", "1", &"m".repeat(70), "2", "n"],
        &["XADD", "stream", "1-1", "f", "v"],
        &["XADD", "stream", "1-2", "f", "w", "g", "x"],
        &["XADD", "stream", "2-0", "f", "z"],
        &["XDEL", "stream", "1-2"],
        &["XGROUP", "CREATE", "stream", "grp", "0"],
        &["XREADGROUP", "GROUP", "grp", "alice", "COUNT", "1", "STREAMS", "stream", ">"],
        &["XGROUP", "CREATECONSUMER", "stream", "grp", "bob"],
        &["XADD", "stream:empty", "MAXLEN", "0", "7-1", "f", "v"],
        &["XADD", "stream:plain", "1-1", "a", "1"],
        &["XADD", "stream:plain", "1-2", "a", "2", "b", "3"],
        &["XADD", "stream:plain", "5-0", "a", "4"],
        &["XDEL", "stream:plain", "1-2"],
    ];
    for args in cmds {
        run(c, args);
    }
    let items: Vec<String> = (0..3000).map(|i| format!("element-{i}")).collect();
    let _: () = redis::cmd("RPUSH").arg("list:big").arg(&items).query(c).unwrap();
    let fields: Vec<String> = (0..600).flat_map(|i| [format!("f{i}"), format!("{i}")]).collect();
    let _: () = redis::cmd("HSET").arg("hash:many").arg(&fields).query(c).unwrap();
    let members: Vec<String> = (0..200).flat_map(|i| [format!("{i}.5"), format!("m{i}")]).collect();
    let _: () = redis::cmd("ZADD").arg("zset:many").arg(&members).query(c).unwrap();
    let ints: Vec<String> = (0..600).map(|i| (i * 7).to_string()).collect();
    let _: () = redis::cmd("SADD").arg("set:many-ints").arg(&ints).query(c).unwrap();
    run(c, &["SELECT", "5"]);
    run(c, &["SET", "in-db-5", "x", "EX", "100000"]);
    run(c, &["SELECT", "0"]);
}

/// Per key: type, absolute expiry and content digest.
fn snapshot(c: &mut Connection) -> Vec<(u8, String, String, i64, String)> {
    let mut out = Vec::new();
    for db in [0u8, 5] {
        run(c, &["SELECT", &db.to_string()]);
        let mut keys: Vec<String> = query(c, &["KEYS", "*"]).unwrap();
        keys.sort();
        for k in keys {
            let t: String = query(c, &["TYPE", &k]).unwrap();
            let at: i64 = query(c, &["PEXPIRETIME", &k]).unwrap();
            let d: Vec<String> = query(c, &["DEBUG", "DIGEST-VALUE", &k]).unwrap();
            out.push((db, k, t, at, d.concat()));
        }
    }
    run(c, &["SELECT", "0"]);
    out
}

#[test]
fn shutdown_saves_and_a_restart_restores_every_type() {
    let args = ["--enable-debug-command", "yes", "--save", "3600 1"];
    let mut server = Server::start_with(&args);
    let mut c = server.client();
    populate_every_type(&mut c);
    run(&mut c, &["SET", "short-lived", "v", "PX", "1200"]);
    let before: Vec<_> = snapshot(&mut c).into_iter().filter(|k| k.1 != "short-lived").collect();
    let mut raw = server.raw();
    raw.send(&[b"SHUTDOWN"]);
    assert!(raw.is_closed(Duration::from_secs(10)), "SHUTDOWN did not close the connection");
    let status = server.stop();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", server.output());
    wait_for_log(&server, "Saving the final RDB snapshot before exiting.");
    // The short-lived key expires while the server is down.
    thread::sleep(Duration::from_millis(1300));
    server.restart_with(&args);
    let mut c = server.client();
    assert_eq!(snapshot(&mut c), before);
    let f = info(&mut c, "persistence");
    assert_eq!(f["rdb_last_load_keys_expired"], "1", "the short-lived key was loaded");
    // SHUTDOWN NOSAVE does not save even with save points.
    run(&mut c, &["SET", "after", "1"]);
    let mut raw = server.raw();
    raw.send(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(raw.is_closed(Duration::from_secs(10)));
    server.restart_with(&args);
    assert_eq!(query::<Option<String>>(&mut server.client(), &["GET", "after"]).unwrap(), None);
    // SHUTDOWN SAVE saves even without save points.
    let mut server = Server::start();
    run(&mut server.client(), &["SET", "k", "v"]);
    let mut raw = server.raw();
    raw.send(&[b"SHUTDOWN", b"SAVE"]);
    assert!(raw.is_closed(Duration::from_secs(10)));
    server.restart();
    assert_eq!(query::<String>(&mut server.client(), &["GET", "k"]).unwrap(), "v");
}

#[test]
fn kill_after_a_completed_bgsave_keeps_what_it_saved() {
    let args = ["--enable-debug-command", "yes"];
    let mut server = Server::start_with(&args);
    let mut c = server.client();
    populate_every_type(&mut c);
    let before = snapshot(&mut c);
    let reply: String = query(&mut c, &["BGSAVE"]).unwrap();
    assert_eq!(reply, "Background saving started");
    let f = wait_for_bgsave(&mut c);
    assert_eq!(f["rdb_last_bgsave_status"], "ok");
    assert_eq!(f["rdb_changes_since_last_save"], "0");
    assert_eq!(f["rdb_saves"], "1");
    let stats = info(&mut c, "stats");
    assert_eq!(stats["total_forks"], "1");
    wait_for_log(&server, "Background saving terminated with success");
    run(&mut c, &["SET", "written-after-the-save", "1"]);
    server.kill9();
    server.restart_with(&args);
    let mut c = server.client();
    assert_eq!(snapshot(&mut c), before);
    let f = info(&mut c, "persistence");
    assert_eq!(f["rdb_changes_since_last_save"], "0");
}

#[test]
fn bgsave_is_a_point_in_time_snapshot_while_clients_write() {
    // Eight clients each move one unit at a time between two keys inside
    // MULTI: from a:i to b:i (their own pair) and from the shared pool to
    // the shared sink. A file taken at one instant has a:i + b:i == 1000
    // for every client and pool + sink == 1,000,000; one that mixed
    // moments would not.
    let server = Server::start_with(&["--enable-debug-command", "yes"]);
    let mut c = server.client();
    // Enough keys for the child to take a while to write them.
    run(&mut c, &["DEBUG", "POPULATE", "300000"]);
    const CLIENTS: usize = 8;
    for i in 0..CLIENTS {
        run(&mut c, &["SET", &format!("a:{i}"), "1000"]);
        run(&mut c, &["SET", &format!("b:{i}"), "0"]);
    }
    run(&mut c, &["SET", "pool", "1000000"]);
    run(&mut c, &["SET", "sink", "0"]);
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (stop, ops) = (stop.clone(), ops.clone());
            let mut w = server.client();
            thread::spawn(move || {
                let (a, b) = (format!("a:{i}"), format!("b:{i}"));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // Back and forth, so a:i never runs out.
                    let (from, to) = if (n / 500).is_multiple_of(2) { (&a, &b) } else { (&b, &a) };
                    let replies: Vec<i64> = redis::pipe()
                        .atomic()
                        .cmd("DECR")
                        .arg(from)
                        .cmd("INCR")
                        .arg(to)
                        .cmd("DECR")
                        .arg("pool")
                        .cmd("INCR")
                        .arg("sink")
                        .query(&mut w)
                        .unwrap();
                    assert_eq!(replies.len(), 4);
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let reply: String = query(&mut c, &["BGSAVE"]).unwrap();
    assert_eq!(reply, "Background saving started");
    let at_start = ops.load(Ordering::Relaxed);
    // A second save cannot start while the first runs.
    assert_eq!(error_text(query(&mut c, &["BGSAVE"])), "ERR Background save already in progress");
    assert_eq!(error_text(query(&mut c, &["SAVE"])), "ERR Background save already in progress");
    let f = wait_for_bgsave(&mut c);
    let during = ops.load(Ordering::Relaxed) - at_start;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(f["rdb_last_bgsave_status"], "ok");
    assert!(during > 0, "no write happened while the child saved");
    let copy = tempfile::tempdir().unwrap();
    let file = copy.path().join("snapshot.rdb");
    std::fs::copy(server.path().join("dump.rdb"), &file).unwrap();
    let check = Server::start_with(&["--load-rdb", &file.to_string_lossy()]);
    let mut k = check.client();
    let size: i64 = query(&mut k, &["DBSIZE"]).unwrap();
    assert_eq!(size, 300_000 + CLIENTS as i64 * 2 + 2);
    for i in 0..CLIENTS {
        let a: i64 = query(&mut k, &["GET", &format!("a:{i}")]).unwrap();
        let b: i64 = query(&mut k, &["GET", &format!("b:{i}")]).unwrap();
        assert_eq!(a + b, 1000, "client {i}: the file mixes two moments");
    }
    let pool: i64 = query(&mut k, &["GET", "pool"]).unwrap();
    let sink: i64 = query(&mut k, &["GET", "sink"]).unwrap();
    assert_eq!(pool + sink, 1_000_000, "the shared pair mixes two moments");
    assert!(sink > 0, "the snapshot was taken before any transfer");
}

#[test]
fn save_points_start_background_saves() {
    let server = Server::start_with(&["--save", "1 2"]);
    let mut c = server.client();
    run(&mut c, &["SET", "a", "1"]);
    thread::sleep(Duration::from_millis(1300));
    // One change is not enough for "1 2".
    assert_eq!(info(&mut c, "persistence")["rdb_saves"], "0");
    run(&mut c, &["SET", "b", "2"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = info(&mut c, "persistence");
        if f["rdb_saves"] == "1" && f["rdb_bgsave_in_progress"] == "0" && f["rdb_changes_since_last_save"] == "0" {
            break;
        }
        assert!(Instant::now() < deadline, "no save point fired: {f:?}");
        thread::sleep(Duration::from_millis(50));
    }
    assert!(server.path().join("dump.rdb").is_file());
    wait_for_log(&server, "2 changes in 1 seconds. Saving...");
}

#[test]
fn failed_bgsave_refuses_writes_with_misconf_until_a_save_succeeds() {
    let server = Server::start_with(&["--save", "3600 100000"]);
    let mut c = server.client();
    run(&mut c, &["SET", "k", "v"]);
    // A directory in the way makes the rename of the finished file fail.
    let blocker = server.path().join("dump.rdb");
    std::fs::create_dir_all(blocker.join("inside")).unwrap();
    let _: String = query(&mut c, &["BGSAVE"]).unwrap();
    let f = wait_for_bgsave(&mut c);
    assert_eq!(f["rdb_last_bgsave_status"], "err");
    let misconf = "MISCONF Valkey is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Valkey logs for details about the RDB error.";
    assert_eq!(error_text(query(&mut c, &["SET", "k", "w"])), misconf);
    assert_eq!(error_text(query(&mut c, &["PING"])), misconf);
    assert_eq!(query::<String>(&mut c, &["GET", "k"]).unwrap(), "v");
    // Without the option, writes go through.
    run(&mut c, &["CONFIG", "SET", "stop-writes-on-bgsave-error", "no"]);
    run(&mut c, &["SET", "k", "w"]);
    run(&mut c, &["CONFIG", "SET", "stop-writes-on-bgsave-error", "yes"]);
    std::fs::remove_dir_all(&blocker).unwrap();
    let _: String = query(&mut c, &["BGSAVE"]).unwrap();
    assert_eq!(wait_for_bgsave(&mut c)["rdb_last_bgsave_status"], "ok");
    run(&mut c, &["SET", "k", "x"]);
}

#[test]
fn save_lastsave_and_debug_reload() {
    let server = Server::start_with(&["--enable-debug-command", "yes"]);
    let mut c = server.client();
    populate_every_type(&mut c);
    let before = digest(&mut c);
    let last: i64 = query(&mut c, &["LASTSAVE"]).unwrap();
    thread::sleep(Duration::from_millis(1100));
    let reply: String = query(&mut c, &["SAVE"]).unwrap();
    assert_eq!(reply, "OK");
    let now: i64 = query(&mut c, &["LASTSAVE"]).unwrap();
    assert!(now > last, "LASTSAVE did not move: {last} -> {now}");
    assert_eq!(info(&mut c, "persistence")["rdb_changes_since_last_save"], "0");
    assert_eq!(query::<String>(&mut c, &["DEBUG", "RELOAD"]).unwrap(), "OK");
    assert_eq!(digest(&mut c), before);
    // NOSAVE reloads what the file holds, dropping later changes.
    run(&mut c, &["SET", "str:embstr", "changed"]);
    assert_eq!(query::<String>(&mut c, &["DEBUG", "RELOAD", "NOSAVE"]).unwrap(), "OK");
    assert_eq!(digest(&mut c), before);
    assert_eq!(
        error_text(query(&mut c, &["DEBUG", "RELOAD", "BOGUS"])),
        "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options."
    );
    assert_eq!(error_text(query(&mut c, &["BGSAVE", "NOW"])), "ERR syntax error");
    assert_eq!(query::<String>(&mut c, &["BGSAVE", "SCHEDULE"]).unwrap(), "Background saving started");
    wait_for_bgsave(&mut c);
}

// ---------------------------------------------------------------------------
// DUMP and RESTORE
// ---------------------------------------------------------------------------

fn keys_of(c: &mut Connection) -> Vec<String> {
    let mut keys: Vec<String> = query(c, &["KEYS", "*"]).unwrap();
    keys.sort();
    keys
}

fn dump_of(c: &mut Connection, key: &str) -> Vec<u8> {
    query(c, &["DUMP", key]).unwrap()
}

/// RESTORE with the absolute expire time `at` (none when not positive).
fn restore(c: &mut Connection, key: &str, payload: &[u8], at: i64) {
    let _: () = redis::cmd("RESTORE")
        .arg(key)
        .arg(at.max(0))
        .arg(payload)
        .arg("ABSTTL")
        .query(c)
        .unwrap_or_else(|e| panic!("{key}: {e}"));
}

#[test]
fn dump_payloads_match_valkey_and_restore_both_ways() {
    let ours = Server::start_with(&["--enable-debug-command", "yes"]);
    let theirs = Valkey::start();
    let (mut f, mut v) = (ours.client(), theirs.client());
    populate_every_type(&mut f);
    populate_every_type(&mut v);
    let keys = keys_of(&mut v);
    assert_eq!(keys, keys_of(&mut f));
    for key in &keys {
        let (mine, valkeys) = (dump_of(&mut f, key), dump_of(&mut v, key));
        // Hash tables are written in their iteration order, which differs
        // between servers (and between Valkey processes), and consumer
        // groups carry the times of their reads: those contents are
        // compared through the digests below.
        let encoding: String = query(&mut v, &["OBJECT", "ENCODING", key]).unwrap();
        if encoding != "hashtable" && key != "stream" {
            assert_eq!(mine, valkeys, "DUMP {key} differs from Valkey's");
        }
        let digest_of = |c: &mut Connection, k: &str| -> String {
            query::<Vec<String>>(c, &["DEBUG", "DIGEST-VALUE", k]).unwrap().concat()
        };
        let want = digest_of(&mut v, key);
        let at: i64 = query(&mut v, &["PEXPIRETIME", key]).unwrap();
        restore(&mut f, &format!("from-valkey:{key}"), &valkeys, at);
        assert_eq!(digest_of(&mut f, &format!("from-valkey:{key}")), want, "RESTORE here of Valkey's {key}");
        restore(&mut v, &format!("from-ferrokey:{key}"), &mine, at);
        assert_eq!(digest_of(&mut v, &format!("from-ferrokey:{key}")), want, "RESTORE in Valkey of our {key}");
    }
    assert_eq!(query::<Option<Vec<u8>>>(&mut f, &["DUMP", "nosuchkey"]).unwrap(), None);
}

#[test]
fn restore_options_and_errors_answer_as_valkey_does() {
    let ours = Server::start();
    let theirs = Valkey::start();
    let mut sessions = [ours.raw(), theirs.raw()];
    for s in sessions.iter_mut() {
        s.cmd(&[b"SET", b"src", b"hello"]);
        s.cmd(&[b"RPUSH", b"list", b"a", b"b"]);
    }
    let payload = sessions[1].cmd_value(&[b"DUMP", b"src"]);
    let ferrokey_formats::resp::Value::Bulk(payload) = payload else { panic!("DUMP: {payload:?}") };
    let mut corrupt = payload.clone();
    corrupt[1] ^= 1;
    let mut future = payload.clone();
    let n = future.len();
    future[n - 10] = 12;
    let far = b"99999999999999".to_vec();
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"src", b"0", &payload],
        vec![b"RESTORE", b"new", b"0", &payload],
        vec![b"RESTORE", b"new", b"0", &payload, b"REPLACE"],
        vec![b"RESTORE", b"new", b"-1", &payload, b"REPLACE"],
        vec![b"RESTORE", b"new", b"abc", &payload, b"REPLACE"],
        vec![b"RESTORE", b"new", b"0", &corrupt, b"REPLACE"],
        vec![b"RESTORE", b"new", b"0", &future, b"REPLACE"],
        vec![b"RESTORE", b"new", b"0", b"short", b"REPLACE"],
        vec![b"RESTORE", b"new", b"0", &payload, b"REPLACE", b"BOGUS"],
        vec![b"RESTORE", b"new", b"0", &payload, b"REPLACE", b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"new", b"0", &payload, b"REPLACE", b"IDLETIME", b"x"],
        vec![b"RESTORE", b"new", b"0", &payload, b"REPLACE", b"FREQ", b"256"],
        vec![b"RESTORE", b"new", b"0", &payload, b"REPLACE", b"IDLETIME", b"5", b"FREQ", b"5"],
        vec![b"RESTORE", b"new", b"0", &payload, b"REPLACE", b"IDLETIME", b"100"],
        vec![b"OBJECT", b"IDLETIME", b"new"],
        vec![b"RESTORE", b"ttl", b"5000", &payload],
        vec![b"RESTORE", b"abs", &far, &payload, b"ABSTTL"],
        vec![b"PEXPIRETIME", b"abs"],
        vec![b"RESTORE", b"gone", b"1", &payload, b"ABSTTL"],
        vec![b"EXISTS", b"gone"],
        vec![b"RESTORE", b"list", b"1", &payload, b"ABSTTL", b"REPLACE"],
        vec![b"EXISTS", b"list"],
        vec![b"GET", b"new"],
    ];
    for case in &cases {
        let replies: Vec<Vec<u8>> = sessions.iter_mut().map(|s| s.cmd(case)).collect();
        let shown: Vec<String> =
            case.iter().map(|a| String::from_utf8_lossy(&a[..a.len().min(20)]).into_owned()).collect();
        assert_eq!(common::escape(&replies[0]), common::escape(&replies[1]), "ferrokey vs valkey for {shown:?}");
    }
    let ttl = sessions[0].cmd(&[b"PTTL", b"ttl"]);
    let ttl: i64 = String::from_utf8_lossy(&ttl[1..ttl.len() - 2]).parse().unwrap();
    assert!((4000..=5000).contains(&ttl), "{ttl}");
}
