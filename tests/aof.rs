//! The append-only file end to end: the fixtures load to their expected
//! contents, what ferrokey journals replays to the same dataset (here and
//! in valkey-server, and valkey-check-aof accepts it), commands are
//! journalled in the forms Valkey writes, bad files stop the start without
//! being touched, BGREWRITEAOF keeps everything (even when its child is
//! killed), CONFIG SET appendonly works at runtime, and INFO reports it.
//!
//! Durability has its own file, tests/aof_durability.rs: the crash test,
//! the fsync proof and the full disk.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{digest, fixtures_dir, query, run_to_exit, wait_for_log, Server, Valkey};
use redis::{Connection, RedisResult, Value};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn run(con: &mut Connection, args: &[&str]) {
    let _: Value = query(con, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
}

fn info(con: &mut Connection) -> HashMap<String, String> {
    let text: String = query(con, &["INFO", "persistence"]).unwrap();
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_string(), v.trim().to_string())).collect()
}

/// Waits until no rewrite runs nor is scheduled; panics after 60 s.
fn wait_for_rewrite(con: &mut Connection) -> HashMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let f = info(con);
        if f["aof_rewrite_in_progress"] == "0" && f["aof_rewrite_scheduled"] == "0" {
            return f;
        }
        assert!(Instant::now() < deadline, "the AOF rewrite did not finish: {f:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A ferrokey server journalling in its temp dir.
fn aof_server(extra: &[&str]) -> Server {
    let mut args = vec!["--appendonly", "yes", "--enable-debug-command", "yes"];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            // Fixtures are read-only; a server may cut or move its copy.
            let mut perms = std::fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&target, perms).unwrap();
        }
    }
}

/// Every file under `dir`, with its bytes.
fn dir_contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(dir_contents(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

/// `dump-expected.py --compare` against a running server.
fn compare(port: u16, expected: &Path) -> Result<(), String> {
    let tool = fixtures_dir("aof").join("tools/dump-expected.py");
    let out = Command::new("python3")
        .arg(tool)
        .args(["--port", &port.to_string(), "--compare"])
        .arg(expected)
        .output()
        .expect("python3");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// Starts a server on a copy of what `fill` puts in its directory.
fn server_on(fill: impl FnOnce(&Path), extra: &[&str]) -> Server {
    let mut server = Server::start_with(&["--enable-debug-command", "yes"]);
    server.stop();
    fill(server.path());
    let mut args = vec!["--appendonly", "yes", "--enable-debug-command", "yes"];
    args.extend_from_slice(extra);
    server.restart_with(&args);
    server
}

fn incr_file(dir: &Path) -> PathBuf {
    let manifest = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    let name = manifest
        .lines()
        .rfind(|l| l.ends_with("type i"))
        .and_then(|l| l.split(' ').nth(1))
        .expect("an incr file in the manifest")
        .to_string();
    dir.join("appendonlydir").join(name)
}

/// The commands of an AOF file of commands, as text lines (`SET k v`).
fn journal_lines(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let contents = ferrokey_formats::aof::read_all(&bytes[..]).unwrap();
    contents
        .commands
        .iter()
        .map(|c| c.args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" "))
        .collect()
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// The AOF directory fixtures: (name, folder holding appendonlydir, expected).
fn fixture_dirs() -> Vec<(String, PathBuf, PathBuf)> {
    let root = fixtures_dir("aof").join("aof");
    let mut out = Vec::new();
    for source in ["valkey-8.0.1", "redis-7.0.15", "redis-7.4.1"] {
        let Ok(entries) = std::fs::read_dir(root.join(source)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.join("appendonlydir").is_dir() {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let expected = root.join(source).join(format!("{name}.expected.json"));
                out.push((format!("{source}/{name}"), path, expected));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_fixture_directory_loads_to_its_expected_contents() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, folder, expected) in fixture_dirs() {
        if name.contains("aof-hfe") {
            continue;
        }
        checked += 1;
        let server = server_on(|dir| copy_dir(&folder.join("appendonlydir"), &dir.join("appendonlydir")), &[]);
        if let Err(diff) = compare(server.port, &expected) {
            failures.push(format!("{name}:\n{diff}"));
        }
    }
    assert!(checked >= 8, "only {checked} fixtures found under {}", fixtures_dir("aof").display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hash_field_expiry_fixtures_are_refused_clearly() {
    for (name, folder, _) in fixture_dirs().into_iter().filter(|(n, _, _)| n.contains("aof-hfe")) {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&folder.join("appendonlydir"), &dir.path().join("appendonlydir"));
        let before = dir_contents(dir.path());
        let (code, log) = run_to_exit(dir.path(), &["--appendonly", "yes"]);
        assert_eq!(code, Some(1), "{name}: {log}");
        assert!(
            log.contains("hash-field expiry (Redis 7.4)") || log.contains("HASH_LISTPACK_EX"),
            "{name}: no clear reason:\n{log}"
        );
        assert_eq!(dir_contents(dir.path()), before, "{name}: files changed");
    }
}

#[test]
fn a_truncated_tail_is_cut_only_when_allowed() {
    let folder = fixtures_dir("aof").join("aof/valkey-8.0.1/aof-truncated");
    let incr = "appendonlydir/appendonly.aof.2.incr.aof";
    // aof-load-truncated no: refused, nothing touched.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&folder.join("appendonlydir"), &dir.path().join("appendonlydir"));
    let before = dir_contents(dir.path());
    let (code, log) = run_to_exit(dir.path(), &["--appendonly", "yes", "--aof-load-truncated", "no"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("Unexpected end of file reading the append only file appendonly.aof.2.incr.aof"), "{log}");
    assert_eq!(dir_contents(dir.path()), before);
    // yes (the default): cut after the last whole command, loaded, logged.
    let server = server_on(|d| copy_dir(&folder.join("appendonlydir"), &d.join("appendonlydir")), &[]);
    compare(server.port, &fixtures_dir("aof").join("aof/valkey-8.0.1/aof-truncated.expected.json")).unwrap();
    assert!(server.output().contains("!!! Truncating the AOF appendonly.aof.2.incr.aof at offset 2965 !!!"));
    assert_eq!(std::fs::metadata(server.path().join(incr)).unwrap().len(), 2965);
}

#[test]
fn an_old_single_file_aof_is_loaded_and_upgraded() {
    let file = fixtures_dir("aof").join("aof/historic/rdb-preamble.aof");
    let mut server = server_on(
        |d| {
            std::fs::copy(&file, d.join("appendonly.aof")).unwrap();
        },
        &[],
    );
    compare(server.port, &fixtures_dir("aof").join("aof/historic/rdb-preamble.expected.json")).unwrap();
    let dir = server.path().to_path_buf();
    assert!(!dir.join("appendonly.aof").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap(),
        "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    assert!(server.output().contains("Successfully migrated an old-style AOF file (appendonly.aof)"));
    let mut c = server.client();
    run(&mut c, &["SET", "after", "upgrade"]);
    let before = digest(&mut c);
    server.restart();
    assert_eq!(digest(&mut server.client()), before);
}

#[test]
fn damage_stops_the_start_with_file_offset_and_reason_and_touches_nothing() {
    let mut server = aof_server(&[]);
    let mut c = server.client();
    for i in 0..20 {
        run(&mut c, &["SET", &format!("k{i}"), "value"]);
    }
    server.stop();
    let incr = incr_file(server.path());
    let mut bytes = std::fs::read(&incr).unwrap();
    let at = bytes.len() / 2;
    let pos = at + bytes[at..].iter().position(|&b| b == b'*').unwrap();
    bytes[pos] = b'!';
    std::fs::write(&incr, &bytes).unwrap();
    let before = dir_contents(server.path());
    let (code, log) = run_to_exit(server.path(), &["--appendonly", "yes"]);
    assert_eq!(code, Some(1), "{log}");
    let name = incr.file_name().unwrap().to_string_lossy().into_owned();
    assert!(log.contains(&format!("AOF {name}: offset {pos}:")), "no file and offset in:\n{log}");
    assert!(log.contains("Bad file format reading the append only file"), "{log}");
    assert_eq!(dir_contents(server.path()), before);
}

#[test]
fn an_unfinished_transaction_at_the_end_is_dropped() {
    let mut server = aof_server(&[]);
    run(&mut server.client(), &["SET", "kept", "1"]);
    server.stop();
    let incr = incr_file(server.path());
    let whole = std::fs::metadata(&incr).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&incr).unwrap();
    std::io::Write::write_all(&mut f, b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$4\r\nlost\r\n$1\r\n1\r\n").unwrap();
    drop(f);
    server.restart();
    let mut c = server.client();
    assert_eq!(query::<Option<String>>(&mut c, &["GET", "kept"]).unwrap().as_deref(), Some("1"));
    assert_eq!(query::<Option<String>>(&mut c, &["GET", "lost"]).unwrap(), None);
    assert!(server.output().contains("Revert incomplete MULTI/EXEC transaction in AOF file"));
    assert_eq!(std::fs::metadata(&incr).unwrap().len(), whole);
}

// ---------------------------------------------------------------------------
// What is journalled
// ---------------------------------------------------------------------------

/// Writes of every kind, including every command journalled in another
/// form than it was sent in.
fn write_everything(c: &mut Connection) {
    for args in [
        &["SET", "s:plain", "v"][..],
        &["SET", "s:ex", "v", "EX", "1000"],
        &["SET", "s:get", "v2", "GET"],
        &["SET", "s:keepttl", "v"],
        &["PEXPIRE", "s:keepttl", "500000"],
        &["SETEX", "s:setex", "1000", "v"],
        &["PSETEX", "s:psetex", "1000000", "v"],
        &["SET", "s:gone", "v"],
        &["SET", "s:gone", "v", "PXAT", "1"],
        &["SET", "s:getex", "v"],
        &["GETEX", "s:getex", "EX", "700"],
        &["SET", "s:getdel", "v"],
        &["GETDEL", "s:getdel"],
        &["GETSET", "s:getset", "new"],
        &["SET", "s:float", "10.5"],
        &["EXPIRE", "s:float", "900"],
        &["INCRBYFLOAT", "s:float", "0.1"],
        &["INCR", "s:counter"],
        &["APPEND", "s:plain", "more"],
        &["EXPIRE", "s:plain", "300", "NX"],
        &["SET", "s:expired", "v"],
        &["EXPIREAT", "s:expired", "1"],
        &["HSET", "h", "a", "1", "f", "1.5"],
        &["HINCRBYFLOAT", "h", "f", "2.25"],
        &["SADD", "set", "a", "b", "c", "d", "e", "f", "g"],
        &["SPOP", "set"],
        &["SPOP", "set", "2"],
        &["SADD", "set2", "x", "y"],
        &["SPOP", "set2", "5"],
        &["RPUSH", "list", "a", "b", "c", "d", "e"],
        &["BLPOP", "list", "0"],
        &["BRPOP", "nolist", "list", "0"],
        &["BLMOVE", "list", "list2", "LEFT", "RIGHT", "0"],
        &["BRPOPLPUSH", "list", "list2", "0"],
        &["LMPOP", "1", "list2", "LEFT", "COUNT", "5"],
        &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
        &["BZPOPMIN", "z", "0"],
        &["BZPOPMAX", "z", "0"],
        &["ZMPOP", "1", "z", "MIN", "COUNT", "10"],
        &["XADD", "st", "*", "f", "1"],
        &["XADD", "st", "*", "f", "2"],
        &["XADD", "st", "MAXLEN", "~", "1", "*", "f", "3"],
        &["XGROUP", "CREATE", "st", "g", "0"],
        &["XREADGROUP", "GROUP", "g", "alice", "COUNT", "2", "STREAMS", "st", ">"],
        &["XREADGROUP", "GROUP", "g", "bob", "NOACK", "STREAMS", "st", ">"],
        &["XREADGROUP", "GROUP", "g", "carol", "STREAMS", "st", ">"],
        &["XCLAIM", "st", "g", "dave", "0", "0-1", "IDLE", "5000"],
        &["XAUTOCLAIM", "st", "g", "erin", "0", "0", "COUNT", "1"],
        &["XTRIM", "st", "MAXLEN", "~", "0"],
        &["SELECT", "3"],
        &["SET", "db3", "x"],
        &["MULTI"],
        &["INCR", "t1"],
        &["INCR", "t2"],
        &["EXEC"],
        &["EVAL", "redis.call('SET', KEYS[1], 'a'); redis.call('SET', KEYS[2], 'b')", "2", "e1", "e2"],
        &["SELECT", "0"],
        &["SET", "r:src", "payload"],
    ] {
        run(c, args);
    }
    let dump: Vec<u8> = query(c, &["DUMP", "r:src"]).unwrap();
    redis::cmd("RESTORE").arg("r:ttl").arg(100000).arg(&dump).query::<()>(c).unwrap();
    redis::cmd("RESTORE").arg("r:abs").arg(4102444800000i64).arg(&dump).arg("ABSTTL").query::<()>(c).unwrap();
}

#[test]
fn commands_are_journalled_as_valkey_propagates_them() {
    let mut server = aof_server(&[]);
    let mut c = server.client();
    write_everything(&mut c);
    let lines = journal_lines(&incr_file(server.path()));
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    let text = lines.join("\n");
    // Relative expiries become absolute times, and no line keeps a form
    // whose replay would differ.
    assert!(has("SET s:ex v PXAT "), "{text}");
    assert!(has("SET s:get v2") && !has("SET s:get v2 GET"), "{text}");
    assert!(has("PEXPIREAT s:keepttl "), "{text}");
    assert!(has("SET s:setex v PXAT ") && has("SET s:psetex v PXAT "), "{text}");
    assert!(has("UNLINK s:gone"), "{text}");
    assert!(has("PEXPIREAT s:getex ") && has("DEL s:getdel") && has("SET s:getset new"), "{text}");
    assert!(has("SET s:float 10.6 KEEPTTL"), "{text}");
    assert!(
        has("PEXPIREAT s:plain ") && lines.iter().any(|l| l.starts_with("PEXPIREAT s:plain ") && l.ends_with(" NX"))
    );
    assert!(has("UNLINK s:expired"), "{text}");
    assert!(has("HSET h f 3.75"), "{text}");
    assert!(has("SREM set ") && has("UNLINK set2"), "{text}");
    assert!(has("LPOP list") && has("RPOP list") && has("LMOVE list list2 LEFT RIGHT"), "{text}");
    assert!(has("RPOPLPUSH list list2") && has("LPOP list2 "), "{text}");
    assert!(has("ZPOPMIN z") && has("ZPOPMAX z") && has("ZPOPMIN z 2"), "{text}");
    assert!(has("XADD st MAXLEN = 3 "), "{text}");
    assert!(has("XCLAIM st g alice 0 ") && has("XGROUP SETID st g ") && has("XGROUP CREATECONSUMER st g bob"));
    assert!(has("XCLAIM st g erin 0 ") && has("XTRIM st MAXLEN = 0"), "{text}");
    assert!(has("RESTORE r:ttl ") && lines.iter().any(|l| l.starts_with("RESTORE r:ttl ") && l.ends_with(" ABSTTL")));
    for forbidden in ["SPOP", "BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "LMPOP", "BZPOPMIN", "BZPOPMAX", "ZMPOP"] {
        assert!(!has(&format!("{forbidden} ")), "{forbidden} journalled:\n{text}");
    }
    assert!(!lines.iter().any(|l| l.starts_with("XADD") && l.contains(" * ")), "{text}");
    assert!(!has("XREADGROUP") && !has("XAUTOCLAIM") && !has("INCRBYFLOAT") && !has("GETEX") && !has("EVAL"));
    // Transactions and scripts replay atomically; SELECT only when the
    // database changes.
    let multi = lines.iter().position(|l| l == "INCR t1").expect("INCR t1") - 1;
    assert_eq!(&lines[multi..multi + 4], ["MULTI", "INCR t1", "INCR t2", "EXEC"]);
    let script = lines.iter().rposition(|l| l == "MULTI").unwrap();
    assert_eq!(&lines[script..script + 4], ["MULTI", "SET e1 a", "SET e2 b", "EXEC"]);
    assert_eq!(lines.iter().filter(|l| l.starts_with("SELECT")).count(), 3, "{text}");
    // And the restart gives exactly what was there.
    let before = digest(&mut c);
    server.restart();
    assert_eq!(digest(&mut server.client()), before);
}

/// The deletion of a key a command finds expired is journalled before the
/// command's own effect (as Valkey propagates it), not after it.
#[test]
fn a_write_over_a_key_whose_time_passed_survives_the_restart() {
    let mut server = aof_server(&[]);
    let mut c = server.client();
    // Only the write itself may find the key expired.
    run(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    run(&mut c, &["SET", "k", "old", "PX", "50"]);
    run(&mut c, &["SET", "counter", "5", "PX", "50"]);
    thread::sleep(Duration::from_millis(120));
    run(&mut c, &["SET", "k", "new"]);
    run(&mut c, &["INCR", "counter"]);
    server.restart();
    let mut c = server.client();
    assert_eq!(query::<Option<String>>(&mut c, &["GET", "k"]).unwrap().as_deref(), Some("new"));
    assert_eq!(query::<Option<String>>(&mut c, &["GET", "counter"]).unwrap().as_deref(), Some("1"));
}

#[test]
fn keys_whose_time_passes_before_a_restart_stay_expired() {
    let mut server = aof_server(&[]);
    let mut c = server.client();
    run(&mut c, &["SET", "k", "v", "PX", "300"]);
    run(&mut c, &["SET", "keep", "v", "PX", "300"]);
    // KEEPTTL and INCRBYFLOAT keep the expiry of what they change.
    run(&mut c, &["SET", "keep", "w", "KEEPTTL"]);
    run(&mut c, &["SET", "f", "1", "PX", "300"]);
    run(&mut c, &["INCRBYFLOAT", "f", "1"]);
    server.stop();
    thread::sleep(Duration::from_millis(400));
    server.restart();
    let mut c = server.client();
    for key in ["k", "keep", "f"] {
        assert_eq!(query::<Option<String>>(&mut c, &["GET", key]).unwrap(), None, "{key}");
    }
}

#[test]
fn timestamps_are_annotated_and_skipped_on_load() {
    let mut server = aof_server(&["--aof-timestamp-enabled", "yes"]);
    let mut c = server.client();
    run(&mut c, &["SET", "a", "1"]);
    thread::sleep(Duration::from_millis(1100));
    run(&mut c, &["SET", "b", "2"]);
    let bytes = std::fs::read(incr_file(server.path())).unwrap();
    let contents = ferrokey_formats::aof::read_all(&bytes[..]).unwrap();
    assert!(contents.annotations.len() >= 2, "{:?}", contents.annotations);
    assert!(contents.annotations.iter().all(|a| a.timestamp().is_some()));
    let before = digest(&mut c);
    server.restart();
    assert_eq!(digest(&mut server.client()), before);
}

// ---------------------------------------------------------------------------
// Our files in Valkey, and Valkey's checker
// ---------------------------------------------------------------------------

fn valkey_check_aof(manifest: &Path) -> Result<(), String> {
    let out = Command::new("valkey-check-aof").arg(manifest).output().expect("valkey-check-aof (install-valkey.sh)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() && text.contains("All AOF files and manifest are valid") {
        Ok(())
    } else {
        Err(text)
    }
}

/// A dataset written partly before and partly after a rewrite (so base and
/// incr files both hold some of it), reloaded here and in valkey-server.
fn ours_load_in_valkey(preamble: &str) {
    let mut server = aof_server(&["--aof-use-rdb-preamble", preamble]);
    let mut c = server.client();
    write_everything(&mut c);
    run(&mut c, &["BGREWRITEAOF"]);
    wait_for_rewrite(&mut c);
    for i in 0..200 {
        run(&mut c, &["SET", &format!("after:{i}"), &"x".repeat(i)]);
        run(&mut c, &["RPUSH", "after:list", &i.to_string()]);
    }
    run(&mut c, &["FUNCTION", "LOAD", "#!lua name=aoflib\nserver.register_function('f', function() return 1 end)"]);
    let ours = digest(&mut c);
    server.stop();
    let manifest = server.path().join("appendonlydir/appendonly.aof.manifest");
    let base = std::fs::read_to_string(&manifest).unwrap();
    let format = if preamble == "yes" { ".base.rdb" } else { ".base.aof" };
    assert!(base.contains(format), "{base}");
    valkey_check_aof(&manifest).unwrap();
    let mut valkey = Valkey::start_with(&["--appendonly", "yes"]);
    valkey.stop();
    let _ = std::fs::remove_dir_all(valkey.path().join("appendonlydir"));
    copy_dir(&server.path().join("appendonlydir"), &valkey.path().join("appendonlydir"));
    valkey.restart();
    let mut v = valkey.client();
    assert_eq!(digest(&mut v), ours, "valkey-server loads our AOF differently");
    let functions: Value = query(&mut v, &["FUNCTION", "LIST"]).unwrap();
    assert!(format!("{functions:?}").contains("aoflib"));
    server.restart();
    assert_eq!(digest(&mut server.client()), ours);
}

#[test]
fn our_files_with_an_rdb_base_load_in_valkey_and_pass_its_checker() {
    ours_load_in_valkey("yes");
}

#[test]
fn our_files_with_a_command_base_load_in_valkey_and_pass_its_checker() {
    ours_load_in_valkey("no");
}

// ---------------------------------------------------------------------------
// BGREWRITEAOF
// ---------------------------------------------------------------------------

#[test]
fn bgrewriteaof_switches_the_manifest_and_removes_history() {
    let mut server = aof_server(&[]);
    let mut c = server.client();
    run(&mut c, &["SET", "a", "1"]);
    assert_eq!(query::<String>(&mut c, &["BGREWRITEAOF"]).unwrap(), "Background append only file rewriting started");
    let f = wait_for_rewrite(&mut c);
    assert_eq!((f["aof_last_bgrewrite_status"].as_str(), f["aof_rewrites"].as_str()), ("ok", "1"));
    run(&mut c, &["SET", "b", "2"]);
    let dir = server.path().join("appendonlydir");
    assert_eq!(
        std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap(),
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof", "appendonly.aof.manifest"]);
    let before = digest(&mut c);
    server.restart();
    assert_eq!(digest(&mut server.client()), before);
}

/// The pid of the last child the log announced.
fn last_child_pid(server: &Server, announcement: &str) -> i32 {
    let log = server.output();
    let line = log.lines().rfind(|l| l.contains(announcement)).expect("the child's pid in the log");
    line.rsplit(' ').next().unwrap().trim().parse().unwrap()
}

/// Enough keys for a child to take a while writing them.
fn fill(c: &mut Connection) {
    for batch in 0..100 {
        let mut mset = redis::cmd("MSET");
        for i in 0..1000 {
            mset.arg(format!("fill:{batch}:{i}")).arg("v".repeat(100));
        }
        mset.query::<()>(c).unwrap();
    }
}

/// Whether process `pid` is stopped (SIGSTOP took effect).
fn is_stopped(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_millis(200);
    while Instant::now() < deadline {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
        // The state follows the command name in parentheses.
        match stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) {
            Some("T") | Some("t") => return true,
            Some("Z") | Some("X") | None => return false,
            _ => thread::sleep(Duration::from_millis(5)),
        }
    }
    false
}

/// Runs `command` (BGREWRITEAOF or BGSAVE) until the child it forks is
/// caught running and paused with SIGSTOP; returns its pid. A child may
/// finish before it is caught: the command is then run again.
fn paused_child(server: &Server, c: &mut Connection, command: &str, announcement: &str) -> i32 {
    for _ in 0..20 {
        let before = server.output().matches(announcement).count();
        run(c, &[command]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.output().matches(announcement).count() == before {
            assert!(Instant::now() < deadline, "{command} started no child");
            thread::sleep(Duration::from_millis(2));
        }
        let pid = last_child_pid(server, announcement);
        // SAFETY: signals a child process of the server under test.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        if is_stopped(pid) {
            return pid;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let f = info(c);
            if f["aof_rewrite_in_progress"] == "0" && f["rdb_bgsave_in_progress"] == "0" {
                break;
            }
            assert!(Instant::now() < deadline, "the child never ended");
            thread::sleep(Duration::from_millis(10));
        }
    }
    panic!("could not catch a child of {command} running");
}

#[test]
fn bgsave_and_bgrewriteaof_take_turns() {
    let server = aof_server(&[]);
    let mut c = server.client();
    fill(&mut c);
    let pid = paused_child(&server, &mut c, "BGREWRITEAOF", "Background append only file rewriting started by pid");
    let err = |r: RedisResult<String>| r.unwrap_err().to_string();
    let again = err(query(&mut c, &["BGREWRITEAOF"]));
    assert!(again.contains("Background append only file rewriting already in progress"), "{again}");
    let bgsave = err(query(&mut c, &["BGSAVE"]));
    assert!(bgsave.contains("Another child process is active (AOF?): can't BGSAVE right now."), "{bgsave}");
    assert_eq!(query::<String>(&mut c, &["BGSAVE", "SCHEDULE"]).unwrap(), "Background saving scheduled");
    // SAFETY: signals a child process of the server under test.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    wait_for_rewrite(&mut c);
    wait_for_log(&server, "Background saving started by pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    while info(&mut c)["rdb_bgsave_in_progress"] != "0" {
        assert!(Instant::now() < deadline, "the scheduled BGSAVE never ended");
        thread::sleep(Duration::from_millis(10));
    }
    let rewrites: u64 = info(&mut c)["aof_rewrites"].parse().unwrap();
    let save_pid = paused_child(&server, &mut c, "BGSAVE", "Background saving started by pid");
    assert_eq!(query::<String>(&mut c, &["BGREWRITEAOF"]).unwrap(), "Background append only file rewriting scheduled");
    assert_eq!(info(&mut c)["aof_rewrite_scheduled"], "1");
    unsafe { libc::kill(save_pid, libc::SIGCONT) };
    let f = wait_for_rewrite(&mut c);
    assert_eq!(f["aof_rewrites"].parse::<u64>().unwrap(), rewrites + 1);
}

#[test]
fn a_killed_rewrite_child_leaves_the_previous_manifest_in_force() {
    let mut server = aof_server(&[]);
    let mut c = server.client();
    fill(&mut c);
    run(&mut c, &["SET", "a", "1"]);
    let pid = paused_child(&server, &mut c, "BGREWRITEAOF", "Background append only file rewriting started by pid");
    // The rewrite already journals into its new incr file, listed in the
    // manifest with the old base.
    let manifest_path = server.path().join("appendonlydir/appendonly.aof.manifest");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    let failures: u64 = info(&mut c)["aof_rewrites_consecutive_failures"].parse().unwrap();
    // SAFETY: kills a child process of the server under test.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let f = wait_for_rewrite(&mut c);
    assert_eq!(f["aof_last_bgrewrite_status"], "err");
    assert_eq!(f["aof_rewrites_consecutive_failures"].parse::<u64>().unwrap(), failures + 1);
    wait_for_log(&server, "Background AOF rewrite terminated by signal 9");
    run(&mut c, &["SET", "b", "2"]);
    assert_eq!(std::fs::read_to_string(&manifest_path).unwrap(), manifest);
    let before = digest(&mut c);
    server.kill9();
    server.restart();
    assert_eq!(digest(&mut server.client()), before);
}

/// A rewrite asked for inside a transaction waits for it to end: its
/// child would otherwise snapshot half of a transaction journalled whole.
#[test]
fn bgrewriteaof_inside_a_transaction_is_scheduled() {
    let mut server = aof_server(&[]);
    let mut c = server.client();
    let replies: Vec<Value> =
        redis::pipe().atomic().cmd("INCR").arg("x").cmd("BGREWRITEAOF").cmd("INCR").arg("x").query(&mut c).unwrap();
    assert_eq!(replies[1], Value::SimpleString("Background append only file rewriting scheduled".into()));
    wait_for_rewrite(&mut c);
    server.kill9();
    server.restart();
    assert_eq!(query::<i64>(&mut server.client(), &["GET", "x"]).unwrap(), 2);
}

/// BGREWRITEAOF again and again while 8 clients write, some children
/// killed: what the clients saw acknowledged is what a restart (after a
/// crash) loads.
#[test]
fn rewrites_under_load_lose_nothing_even_when_children_are_killed() {
    let mut server = aof_server(&["--appendfsync", "always"]);
    let port = server.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let stop = stop.clone();
            thread::spawn(move || {
                let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
                let mut c = client.get_connection().unwrap();
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _: () = redis::pipe()
                        .cmd("SET")
                        .arg(format!("w{w}:k{n}"))
                        .arg(n)
                        .ignore()
                        .cmd("INCR")
                        .arg(format!("w{w}:count"))
                        .ignore()
                        .cmd("RPUSH")
                        .arg(format!("w{w}:list"))
                        .arg(n)
                        .ignore()
                        .query(&mut c)
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut c = server.client();
    let mut killed = 0;
    for round in 0..20 {
        thread::sleep(Duration::from_millis(30));
        if round % 3 == 1 {
            let announcement = "Background append only file rewriting started by pid";
            let pid = paused_child(&server, &mut c, "BGREWRITEAOF", announcement);
            // SAFETY: kills a child process of the server under test.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed += 1;
        } else {
            run(&mut c, &["BGREWRITEAOF"]);
        }
        wait_for_rewrite(&mut c);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let counts: Vec<u64> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    let before = digest(&mut c);
    let rewrites: u64 = info(&mut c)["aof_rewrites"].parse().unwrap();
    assert!(rewrites >= 20, "only {rewrites} rewrites ran");
    assert_eq!(server.output().matches("Background AOF rewrite terminated by signal 9").count(), killed);
    server.kill9();
    server.restart();
    let mut c = server.client();
    assert_eq!(digest(&mut c), before);
    for (w, &n) in counts.iter().enumerate() {
        let count: u64 = query(&mut c, &["GET", &format!("w{w}:count")]).unwrap();
        assert_eq!(count, n, "writer {w}");
    }
}

// ---------------------------------------------------------------------------
// Turning the AOF on and off at runtime
// ---------------------------------------------------------------------------

#[test]
fn config_set_appendonly_starts_with_a_rewrite_and_stops() {
    let mut server = Server::start_with(&["--enable-debug-command", "yes"]);
    let mut c = server.client();
    run(&mut c, &["SET", "before", "1"]);
    assert_eq!(info(&mut c)["aof_enabled"], "0");
    run(&mut c, &["CONFIG", "SET", "appendonly", "yes"]);
    run(&mut c, &["SET", "during", "2"]);
    let f = wait_for_rewrite(&mut c);
    assert_eq!((f["aof_enabled"].as_str(), f["aof_rewrites"].as_str()), ("1", "1"));
    run(&mut c, &["SET", "after", "3"]);
    let before = digest(&mut c);
    server.restart_with(&["--appendonly", "yes", "--enable-debug-command", "yes"]);
    let mut c = server.client();
    assert_eq!(digest(&mut c), before);
    run(&mut c, &["CONFIG", "SET", "appendonly", "no"]);
    assert_eq!(info(&mut c)["aof_enabled"], "0");
    let incr = incr_file(server.path());
    let size = std::fs::metadata(&incr).unwrap().len();
    run(&mut c, &["SET", "not-journalled", "x"]);
    assert_eq!(std::fs::metadata(&incr).unwrap().len(), size);
}

#[test]
fn info_reports_the_aof() {
    let server = aof_server(&[]);
    let mut c = server.client();
    run(&mut c, &["SET", "a", "1"]);
    let f = info(&mut c);
    for (field, value) in [
        ("aof_enabled", "1"),
        ("aof_rewrite_in_progress", "0"),
        ("aof_rewrite_scheduled", "0"),
        ("aof_last_rewrite_time_sec", "-1"),
        ("aof_current_rewrite_time_sec", "-1"),
        ("aof_last_bgrewrite_status", "ok"),
        ("aof_rewrites", "0"),
        ("aof_rewrites_consecutive_failures", "0"),
        ("aof_last_write_status", "ok"),
        ("aof_last_cow_size", "0"),
        ("aof_pending_rewrite", "0"),
        ("aof_buffer_length", "0"),
        ("aof_delayed_fsync", "0"),
    ] {
        assert_eq!(f.get(field).map(String::as_str), Some(value), "{field}");
    }
    let current: u64 = f["aof_current_size"].parse().unwrap();
    let base: u64 = f["aof_base_size"].parse().unwrap();
    assert!(current > base && base > 0, "{f:?}");
    assert!(f.contains_key("aof_pending_bio_fsync"));
    // The same fields, in the same order, as Valkey's.
    let text: String = query(&mut c, &["INFO", "persistence"]).unwrap();
    let ours: Vec<&str> = text.lines().filter_map(|l| l.split_once(':')).map(|(k, _)| k).collect();
    let valkey = Valkey::start_with(&["--appendonly", "yes"]);
    let theirs_text: String = query(&mut valkey.client(), &["INFO", "persistence"]).unwrap();
    let theirs: Vec<&str> = theirs_text.lines().filter_map(|l| l.split_once(':')).map(|(k, _)| k).collect();
    assert_eq!(ours, theirs);
}
