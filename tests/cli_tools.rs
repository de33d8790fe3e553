//! The stock command-line tools work against ferrokey unchanged:
//! valkey-cli and redis-cli in RESP2 and RESP3, and valkey-benchmark.

mod common;

use std::process::Command;

use common::Server;

fn run(tool: &str, port: u16, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} is not installed ({e}): run scripts/install-valkey.sh"));
    assert!(out.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cli_clients_in_both_protocols() {
    let server = Server::start();
    for tool in ["valkey-cli", "redis-cli"] {
        assert_eq!(run(tool, server.port, &["SET", "greeting", "hello world"]), "OK\n");
        assert_eq!(run(tool, server.port, &["GET", "greeting"]), "hello world\n");
        assert_eq!(run(tool, server.port, &["-3", "GET", "greeting"]), "hello world\n");
        // Piped (not a terminal), both tools print nil as an empty line.
        assert_eq!(run(tool, server.port, &["-3", "GET", "nosuchkey"]), "\n");
        assert_eq!(run(tool, server.port, &["INCR", "counter"]), "1\n");
        // Errors print as errors, unknown commands included.
        let out = run(tool, server.port, &["NOSUCHCOMMAND"]);
        assert!(out.starts_with("ERR unknown command 'NOSUCHCOMMAND'"), "{out}");
        run(tool, server.port, &["DEL", "greeting", "counter"]);
    }
}

#[test]
fn benchmark_tool_runs_cleanly() {
    let server = Server::start();
    let out = run(
        "valkey-benchmark",
        server.port,
        &["-n", "2000", "-c", "10", "-r", "1000", "-d", "64", "-t", "set,get,incr", "-P", "8", "-q"],
    );
    for test in ["SET", "GET", "INCR"] {
        assert!(out.contains(&format!("{test}: ")), "{out}");
    }
    assert!(!out.contains("ERR"), "{out}");
    assert!(!out.contains("WARNING"), "valkey-benchmark warned: {out}");
}

/// Runs `tool` with `args` against `port` and standard input from `stdin`
/// (a file), returning (success, stdout, stderr).
fn run_with_input(tool: &str, port: u16, args: &[&str], stdin: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(tool)
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(std::fs::File::open(stdin).expect("open input"))
        .output()
        .unwrap_or_else(|e| panic!("{tool} is not installed ({e}): run scripts/install-valkey.sh"));
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    (out.status.success(), stdout, stderr)
}

fn resp_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// redis-cli --pipe: the mass-insertion mode, 1,000,000 keys in one
/// stream of raw protocol (strings, plus one hash field per 100 keys).
#[test]
fn pipe_mass_insertion_of_a_million_keys() {
    const KEYS: usize = 1_000_000;
    let server = Server::start();
    let input_path = server.path().join("mass-insert.resp");
    let mut input = Vec::with_capacity(KEYS * 48);
    for i in 0..KEYS {
        resp_command(&mut input, &[b"SET", format!("key:{i}").as_bytes(), format!("value:{i}").as_bytes()]);
        if i % 100 == 0 {
            resp_command(&mut input, &[b"HSET", b"index", format!("key:{i}").as_bytes(), i.to_string().as_bytes()]);
        }
    }
    std::fs::write(&input_path, &input).unwrap();
    let (ok, stdout, stderr) = run_with_input("redis-cli", server.port, &["--pipe"], &input_path);
    assert!(ok, "{stdout}{stderr}");
    let commands = KEYS + KEYS / 100;
    assert!(stdout.contains(&format!("errors: 0, replies: {commands}")), "{stdout}");

    let mut c = server.client();
    let dbsize: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(dbsize, KEYS + 1);
    let fields: usize = redis::cmd("HLEN").arg("index").query(&mut c).unwrap();
    assert_eq!(fields, KEYS / 100);
    for i in [0, 1, 12_345, 500_000, KEYS - 1] {
        let v: String = redis::cmd("GET").arg(format!("key:{i}")).query(&mut c).unwrap();
        assert_eq!(v, format!("value:{i}"));
    }
    let v: String = redis::cmd("HGET").arg("index").arg("key:999900").query(&mut c).unwrap();
    assert_eq!(v, "999900");

    // A stream with bad commands counts them as errors (and the tool exits
    // with status 1), as with Valkey.
    let mut bad = Vec::new();
    resp_command(&mut bad, &[b"INCR", b"key:1"]);
    resp_command(&mut bad, &[b"SET", b"after-error", b"1"]);
    std::fs::write(&input_path, &bad).unwrap();
    let (ok, stdout, _) = run_with_input("valkey-cli", server.port, &["--pipe"], &input_path);
    assert!(!ok && stdout.contains("errors: 1, replies: 2"), "{stdout}");
    let v: String = redis::cmd("GET").arg("after-error").query(&mut c).unwrap();
    assert_eq!(v, "1");
}

/// --scan (with --pattern and --count) lists every matching key exactly once.
#[test]
fn scan_lists_every_matching_key_once() {
    let server = Server::start();
    let mut c = server.client();
    for i in 0..5000 {
        let _: () = redis::cmd("SET").arg(format!("user:{i}")).arg(i).query(&mut c).unwrap();
        let _: () = redis::cmd("SET").arg(format!("session:{i}")).arg(i).query(&mut c).unwrap();
    }
    for tool in ["valkey-cli", "redis-cli"] {
        let all = run(tool, server.port, &["--scan"]);
        let mut keys: Vec<&str> = all.lines().collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 10_000, "{tool} --scan");

        // --count arrived in valkey-cli; redis-cli 7.0 has only --pattern.
        let args: &[&str] = if tool == "valkey-cli" {
            &["--scan", "--pattern", "user:1*", "--count", "50"]
        } else {
            &["--scan", "--pattern", "user:1*"]
        };
        let users = run(tool, server.port, args);
        let mut got: Vec<String> = users.lines().map(str::to_string).collect();
        got.sort_unstable();
        let mut want: Vec<String> =
            (0..5000).map(|i| format!("user:{i}")).filter(|k| k.starts_with("user:1")).collect();
        want.sort_unstable();
        assert_eq!(got, want, "{tool} --scan --pattern");
    }
}

/// --bigkeys and --memkeys: the same dataset in ferrokey and in
/// valkey-server gives the same biggest key of each type and the same
/// per-type totals (--memkeys' byte counts are each server's own).
#[test]
fn bigkeys_report_matches_valkeys() {
    let ferrokey = Server::start();
    let valkey = common::Valkey::start();
    for server in [&ferrokey, &*valkey] {
        let mut c = server.client();
        for i in 0..200 {
            let _: () = redis::cmd("SET").arg(format!("s:{i}")).arg("x".repeat(i % 37)).query(&mut c).unwrap();
        }
        let _: () = redis::cmd("SET").arg("big-string").arg("y".repeat(1000)).query(&mut c).unwrap();
        for (key, n) in [("list:a", 10), ("list:big", 300), ("list:c", 20)] {
            let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            let _: () = redis::cmd("RPUSH").arg(key).arg(&items).query(&mut c).unwrap();
        }
        for (key, n) in [("hash:a", 5), ("hash:big", 150)] {
            for i in 0..n {
                let _: () = redis::cmd("HSET").arg(key).arg(format!("f{i}")).arg(i).query(&mut c).unwrap();
            }
        }
        for (key, n) in [("set:big", 90), ("set:b", 3)] {
            let members: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
            let _: () = redis::cmd("SADD").arg(key).arg(&members).query(&mut c).unwrap();
        }
        for i in 0..40 {
            let _: () = redis::cmd("ZADD").arg("zset:big").arg(i).arg(format!("m{i}")).query(&mut c).unwrap();
        }
        for i in 0..7 {
            let _: String = redis::cmd("XADD").arg("stream:big").arg("*").arg("f").arg(i).query(&mut c).unwrap();
        }
    }
    let summary = |out: &str| -> Vec<String> {
        let mut lines: Vec<String> = out
            .lines()
            .filter(|l| !l.starts_with('['))
            .filter(|l| l.starts_with("Biggest") || l.contains(" with ") || l.starts_with("Sampled"))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let ours = summary(&run("valkey-cli", ferrokey.port, &["--bigkeys"]));
    let theirs = summary(&run("valkey-cli", valkey.port, &["--bigkeys"]));
    assert!(ours.iter().any(|l| l.contains(r#"'"list:big"' has 300 items"#)), "{ours:#?}");
    assert!(ours.iter().any(|l| l.contains(r#"'"big-string"' has 1000 bytes"#)), "{ours:#?}");
    assert_eq!(ours, theirs);
    let memkeys = run("redis-cli", ferrokey.port, &["--memkeys"]);
    assert!(memkeys.contains("Sampled 210 keys in the keyspace!"), "{memkeys}");
    assert!(memkeys.contains(r#"Biggest   list found '"list:big"'"#), "{memkeys}");
}

/// --latency and --latency-history print min, max, average and samples.
#[test]
fn latency_modes_measure_round_trips() {
    let server = Server::start();
    for tool in ["valkey-cli", "redis-cli"] {
        // Not on a terminal, --latency prints one line after the interval
        // and exits.
        let out = run(tool, server.port, &["--latency", "-i", "1"]);
        let fields: Vec<f64> =
            out.split_whitespace().map(|f| f.parse().unwrap_or_else(|_| panic!("{tool}: {out}"))).collect();
        assert_eq!(fields.len(), 4, "{tool}: {out}");
        let (min, max, avg, samples) = (fields[0], fields[1], fields[2], fields[3]);
        assert!(min <= avg && avg <= max && samples >= 1.0, "{tool}: {out}");
    }
}

/// --rdb and --functions-rdb: a point-in-time snapshot over the replication
/// protocol (REPLCONF rdb-only 1, SYNC), which valkey-check-rdb accepts and
/// valkey-server loads to the same dataset.
#[test]
fn rdb_transfer_gives_a_dump_valkey_loads() {
    let server = Server::start();
    let mut c = server.client();
    for i in 0..20_000 {
        let _: () = redis::cmd("SET").arg(format!("k:{i}")).arg(i).query(&mut c).unwrap();
    }
    let _: () = redis::cmd("RPUSH").arg("list").arg(&["a", "b", "c"]).query(&mut c).unwrap();
    let _: () = redis::cmd("SET").arg("ttl-key").arg("v").arg("EX").arg(1000).query(&mut c).unwrap();
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=transferlib\nserver.register_function('answer', function() return 42 end)")
        .query(&mut c)
        .unwrap();
    let digest: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap_or_default();

    for tool in ["valkey-cli", "redis-cli"] {
        let file = server.path().join(format!("{tool}-transfer.rdb"));
        let out = Command::new(tool)
            .args(["-p", &server.port.to_string(), "--rdb"])
            .arg(&file)
            .output()
            .expect("run the cli");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{tool} --rdb: {stderr}");
        assert!(stderr.contains("Transfer finished with success"), "{stderr}");
        let check = Command::new("valkey-check-rdb").arg(&file).output().expect("valkey-check-rdb");
        let report = String::from_utf8_lossy(&check.stdout);
        assert!(check.status.success() && report.contains("RDB looks OK"), "{report}");
        assert!(report.contains("20002 keys read"), "{report}");

        // valkey-server loads it to the same dataset, function included.
        let mut valkey = common::Valkey::start();
        valkey.stop();
        std::fs::copy(&file, valkey.path().join("dump.rdb")).unwrap();
        valkey.restart();
        let mut v = valkey.client();
        let size: usize = redis::cmd("DBSIZE").query(&mut v).unwrap();
        assert_eq!(size, 20_002);
        let answer: i64 = redis::cmd("FCALL").arg("answer").arg(0).query(&mut v).unwrap();
        assert_eq!(answer, 42);
        let ttl: i64 = redis::cmd("TTL").arg("ttl-key").query(&mut v).unwrap();
        assert!((990..=1000).contains(&ttl), "ttl {ttl}");
        let theirs: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut v).unwrap();
        if !digest.is_empty() {
            assert_eq!(theirs, digest);
        }
    }

    // Only the libraries.
    let file = server.path().join("functions.rdb");
    let out = Command::new("valkey-cli")
        .args(["-p", &server.port.to_string(), "--functions-rdb"])
        .arg(&file)
        .output()
        .expect("run valkey-cli");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let check = Command::new("valkey-check-rdb").arg(&file).output().expect("valkey-check-rdb");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains("0 keys read") && report.contains("RDB looks OK"), "{report}");

    // The server served on during and after the transfers, and a would-be
    // replica is told plainly that replication is not supported.
    let n: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 20_002);
    let mut raw = server.raw();
    let reply = raw.cmd(&[b"SYNC"]);
    assert!(String::from_utf8_lossy(&reply).starts_with("-ERR ferrokey does not support replication"));
}
