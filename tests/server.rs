//! Server commands end to end: INFO, CONFIG, COMMAND, SLOWLOG, LATENCY,
//! MEMORY, DEBUG, TIME, LASTSAVE, SHUTDOWN and MONITOR, through a real
//! client.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{free_port, query, RawConn, Server, Valkey};
use redis::{Connection, RedisResult, Value};

fn ok(con: &mut Connection, args: &[&str]) {
    let reply: String = query(con, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert_eq!(reply, "OK", "{args:?}");
}

fn error_text(result: RedisResult<Value>) -> String {
    let e = result.expect_err("expected an error reply");
    // The redis crate splits "ERR text" into a kind and a detail; put the
    // line back together as the server sent it.
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

/// INFO's text as field -> value, with section headers as "# Name" -> "".
fn info_fields(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(':') {
            Some((k, v)) if !l.starts_with('#') => (k.to_string(), v.to_string()),
            _ => (l.to_string(), String::new()),
        })
        .collect()
}

fn info(con: &mut Connection, sections: &[&str]) -> HashMap<String, String> {
    let mut args = vec!["INFO"];
    args.extend_from_slice(sections);
    let text: String = query(con, &args).unwrap();
    info_fields(&text)
}

fn headers(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("# ")).collect()
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn info_default_and_all_list_valkeys_sections_in_order() {
    let s = Server::start();
    let mut con = s.client();
    let default: String = query(&mut con, &["INFO"]).unwrap();
    assert_eq!(
        headers(&default),
        [
            "# Server",
            "# Clients",
            "# Memory",
            "# Persistence",
            "# Stats",
            "# Replication",
            "# CPU",
            "# Modules",
            "# Errorstats",
            "# Cluster",
            "# Keyspace"
        ]
    );
    // Sections are separated by one blank line and every line ends in CRLF.
    assert!(default.contains("\r\n\r\n# Clients\r\n"));
    assert!(!default.replace("\r\n", "").contains('\n'));
    let named: String = query(&mut con, &["INFO", "default"]).unwrap();
    assert_eq!(headers(&named), headers(&default));
    let all: String = query(&mut con, &["INFO", "all"]).unwrap();
    assert!(headers(&all).contains(&"# Commandstats"));
    assert!(headers(&all).contains(&"# Latencystats"));
    let some: String = query(&mut con, &["INFO", "KEYSPACE", "server", "nosuch"]).unwrap();
    assert_eq!(headers(&some), ["# Server", "# Keyspace"]);
    let none: String = query(&mut con, &["INFO", "nosuch"]).unwrap();
    assert_eq!(none, "");
}

#[test]
fn info_server_clients_replication_fields() {
    let s = Server::start();
    let mut con = s.client();
    let f = info(&mut con, &["server", "clients", "replication", "persistence"]);
    assert_eq!(f["redis_version"], "7.2.4");
    assert_eq!(f["server_name"], "valkey");
    assert_eq!(f["valkey_version"], "8.0.1");
    assert_eq!(f["ferrokey_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(f["tcp_port"], s.port.to_string());
    assert_eq!(f["process_id"], s.pid().unwrap().to_string());
    assert_eq!(f["server_mode"], "standalone");
    assert_eq!(f["hz"], "10");
    assert_eq!(f["listener0"], format!("name=tcp,bind=127.0.0.1,port={}", s.port));
    assert_eq!(f["run_id"].len(), 40);
    assert_eq!(f["connected_clients"], "1");
    assert_eq!(f["maxclients"], "10000");
    assert_eq!(f["role"], "master");
    assert_eq!(f["connected_slaves"], "0");
    assert_eq!(f["loading"], "0");
    assert_eq!(f["aof_enabled"], "0");
    let _second = s.client();
    assert_eq!(info(&mut con, &["clients"])["connected_clients"], "2");
}

#[test]
fn info_counts_commands_changes_and_keys() {
    let s = Server::start();
    let mut con = s.client();
    let before: u64 = info(&mut con, &["stats"])["total_commands_processed"].parse().unwrap();
    ok(&mut con, &["SET", "a", "1"]);
    ok(&mut con, &["SET", "b", "hello"]);
    let _: Option<String> = query(&mut con, &["GET", "a"]).unwrap();
    let f = info(&mut con, &["stats", "persistence", "keyspace"]);
    let after: u64 = f["total_commands_processed"].parse().unwrap();
    // The three commands and the first INFO itself.
    assert_eq!(after, before + 4);
    assert_eq!(f["rdb_changes_since_last_save"], "2");
    assert_eq!(f["db0"], "keys=2,expires=0,avg_ttl=0");
    let last_save: i64 = f["rdb_last_save_time"].parse().unwrap();
    assert!((now_secs() - last_save).abs() < 60);

    ok(&mut con, &["CONFIG", "RESETSTAT"]);
    let f = info(&mut con, &["stats"]);
    assert_eq!(f["total_commands_processed"], "1", "only CONFIG RESETSTAT since the reset");
    assert_eq!(f["total_connections_received"], "0");
}

#[test]
fn info_memory_reports_measured_values() {
    let s = Server::start();
    let mut con = s.client();
    let f = info(&mut con, &["memory"]);
    let used: u64 = f["used_memory"].parse().unwrap();
    let rss: u64 = f["used_memory_rss"].parse().unwrap();
    let peak: u64 = f["used_memory_peak"].parse().unwrap();
    assert!(used > 0 && rss > 0 && peak >= used, "{f:?}");
    assert!(f["used_memory_human"].ends_with(['B', 'K', 'M', 'G']));
    assert_eq!(f["maxmemory"], "0");
    assert_eq!(f["maxmemory_policy"], "noeviction");
    assert_eq!(f["mem_allocator"], "jemalloc-5.3.0");
    // A megabyte of values shows up in used memory.
    let big = "x".repeat(1 << 20);
    ok(&mut con, &["SET", "big", &big]);
    let grown: u64 = info(&mut con, &["memory"])["used_memory"].parse().unwrap();
    // jemalloc's counters move with its thread cache, so allow some slack.
    assert!(grown >= used + 900 * 1024, "{used} -> {grown}");
}

#[test]
fn config_set_get_round_trips_and_errors() {
    let s = Server::start();
    let mut con = s.client();
    ok(&mut con, &["CONFIG", "SET", "hz", "20"]);
    let hz: HashMap<String, String> = query(&mut con, &["CONFIG", "GET", "hz"]).unwrap();
    assert_eq!(hz["hz"], "20");
    assert_eq!(info(&mut con, &["server"])["hz"], "20");
    ok(&mut con, &["CONFIG", "SET", "maxmemory", "10mb", "maxmemory-policy", "allkeys-lru"]);
    let got: HashMap<String, String> = query(&mut con, &["CONFIG", "GET", "maxmemory*"]).unwrap();
    assert_eq!(got["maxmemory"], "10485760");
    assert_eq!(got["maxmemory-policy"], "allkeys-lru");

    assert_eq!(
        error_text(query(&mut con, &["CONFIG", "SET", "nosuch", "1"])),
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
    );
    assert_eq!(
        error_text(query(&mut con, &["CONFIG", "SET", "hz", "abc"])),
        "ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer"
    );
    assert_eq!(error_text(query(&mut con, &["CONFIG", "SET", "hz", "5", "maxmemory"])), "ERR syntax error");
    // All or nothing: the bad second pair leaves hz as it was.
    assert!(query::<Value>(&mut con, &["CONFIG", "SET", "hz", "30", "maxmemory", "abc"]).is_err());
    let hz: HashMap<String, String> = query(&mut con, &["CONFIG", "GET", "hz"]).unwrap();
    assert_eq!(hz["hz"], "20");
    assert_eq!(error_text(query(&mut con, &["CONFIG", "REWRITE"])), "ERR The server is running without a config file");
    let help: Vec<String> = query(&mut con, &["CONFIG", "HELP"]).unwrap();
    assert_eq!(help[0], "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
    assert_eq!(help.last().unwrap(), "    Print this help.");
}

/// Starts ferrokey with a config file as its first argument.
fn start_with_config_file(conf: &std::path::Path, port: u16) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
        .arg(conf)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while RawConn::try_connect(port).is_err() {
        assert!(Instant::now() < deadline, "server with config file did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn config_rewrite_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ferrokey.conf");
    std::fs::write(
        &conf,
        format!("# test configuration\nbind 127.0.0.1\ndir {}\nsave \"\"\nhz 10\n", dir.path().display()),
    )
    .unwrap();
    let port = free_port();
    let mut child = start_with_config_file(&conf, port);
    let mut c = RawConn::connect(port);
    assert_eq!(c.cmd(&[b"CONFIG", b"SET", b"hz", b"33", b"maxmemory", b"5mb"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"CONFIG", b"REWRITE"]), b"+OK\r\n");
    let written = std::fs::read_to_string(&conf).unwrap();
    assert!(written.contains("# test configuration"), "comments are kept:\n{written}");
    assert!(written.lines().any(|l| l == "hz 33"), "{written}");
    c.send(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(wait_exit(&mut child).success());

    let mut child = start_with_config_file(&conf, port);
    let mut c = RawConn::connect(port);
    assert_eq!(c.cmd(&[b"CONFIG", b"GET", b"hz"]), b"*2\r\n$2\r\nhz\r\n$2\r\n33\r\n");
    assert_eq!(c.cmd(&[b"CONFIG", b"GET", b"maxmemory"]), b"*2\r\n$9\r\nmaxmemory\r\n$7\r\n5242880\r\n");
    let info = String::from_utf8(c.cmd(&[b"INFO", b"server"])).unwrap();
    assert!(info.contains(&format!("config_file:{}\r\n", conf.display())), "{info}");
    c.send(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(wait_exit(&mut child).success());
}

#[test]
fn command_getkeys_follows_key_specs() {
    let s = Server::start();
    let mut con = s.client();
    let keys = |con: &mut Connection, args: &[&str]| -> Vec<String> {
        let mut full = vec!["COMMAND", "GETKEYS"];
        full.extend_from_slice(args);
        query(con, &full).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    assert_eq!(keys(&mut con, &["SET", "a", "b"]), ["a"]);
    assert_eq!(keys(&mut con, &["get", "k"]), ["k"]);
    let err = |con: &mut Connection, args: &[&str]| {
        let mut full = vec!["COMMAND", "GETKEYS"];
        full.extend_from_slice(args);
        error_text(query(con, &full))
    };
    assert_eq!(err(&mut con, &["get"]), "ERR Invalid number of arguments specified for command");
    assert_eq!(err(&mut con, &["get", "a", "b"]), "ERR Invalid number of arguments specified for command");
    assert_eq!(err(&mut con, &["ping"]), "ERR The command has no key arguments");
    assert_eq!(err(&mut con, &["config", "get", "hz"]), "ERR The command has no key arguments");
    assert_eq!(err(&mut con, &["nosuchcommand", "a"]), "ERR Invalid command specified");
    assert_eq!(err(&mut con, &["config", "nosuch"]), "ERR Invalid command specified");

    // With flags: SET reads the old value only when GET is given.
    let with_flags: Value = query(&mut con, &["COMMAND", "GETKEYSANDFLAGS", "set", "a", "b"]).unwrap();
    assert_eq!(
        with_flags,
        Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::Array(vec![Value::SimpleString("OW".into()), Value::SimpleString("update".into())]),
        ])])
    );
    let with_get: Value = query(&mut con, &["COMMAND", "GETKEYSANDFLAGS", "set", "a", "b", "GET"]).unwrap();
    let Value::Array(entries) = with_get else { panic!("{with_get:?}") };
    assert_eq!(
        entries[0],
        Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::Array(vec![
                Value::SimpleString("RW".into()),
                Value::SimpleString("access".into()),
                Value::SimpleString("update".into())
            ]),
        ])
    );
}

#[test]
fn command_introspection() {
    let s = Server::start();
    let mut con = s.client();
    let count: i64 = query(&mut con, &["COMMAND", "COUNT"]).unwrap();
    let all: Vec<Value> = query(&mut con, &["COMMAND"]).unwrap();
    assert_eq!(all.len() as i64, count);
    let listed: Vec<String> = query(&mut con, &["COMMAND", "LIST"]).unwrap();
    assert_eq!(listed.iter().filter(|n| !n.contains('|')).count() as i64, count);
    assert!(listed.contains(&"config|get".to_string()));
    let filtered: Vec<String> = query(&mut con, &["COMMAND", "LIST", "FILTERBY", "PATTERN", "config|*"]).unwrap();
    assert!(!filtered.is_empty() && filtered.iter().all(|n| n.starts_with("config|")), "{filtered:?}");
    let by_category: Vec<String> = query(&mut con, &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "STRING"]).unwrap();
    assert!(by_category.contains(&"get".to_string()) && !by_category.contains(&"ping".to_string()));
    let none: Vec<String> = query(&mut con, &["COMMAND", "LIST", "FILTERBY", "MODULE", "x"]).unwrap();
    assert!(none.is_empty());
    assert_eq!(error_text(query(&mut con, &["COMMAND", "LIST", "FILTERBY", "nosuch", "x"])), "ERR syntax error");

    let info: Vec<Value> = query(&mut con, &["COMMAND", "INFO", "get", "nosuch", "CONFIG|GET"]).unwrap();
    assert_eq!(info.len(), 3);
    let Value::Array(get) = &info[0] else { panic!("{info:?}") };
    assert_eq!(get[0], Value::BulkString(b"get".to_vec()));
    assert_eq!(get[1], Value::Int(2));
    assert_eq!(info[1], Value::Nil);
    let Value::Array(config_get) = &info[2] else { panic!("{info:?}") };
    assert_eq!(config_get[0], Value::BulkString(b"config|get".to_vec()));

    let docs: HashMap<String, HashMap<String, Value>> = query(&mut con, &["COMMAND", "DOCS", "get", "nosuch"]).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs["get"]["summary"], Value::BulkString(b"Returns the string value of a key.".to_vec()));
}

#[test]
fn slowlog_records_commands_over_the_threshold() {
    let s = Server::start();
    let mut con = s.client();
    ok(&mut con, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    ok(&mut con, &["SLOWLOG", "RESET"]);
    ok(&mut con, &["SET", "slow", "value"]);
    let len: i64 = query(&mut con, &["SLOWLOG", "LEN"]).unwrap();
    // SLOWLOG RESET itself and the SET.
    assert_eq!(len, 2);
    // Newest first: SLOWLOG LEN, then the SET.
    let entries: Vec<Value> = query(&mut con, &["SLOWLOG", "GET", "2"]).unwrap();
    assert_eq!(entries.len(), 2);
    let Value::Array(entry) = &entries[1] else { panic!("{entries:?}") };
    assert_eq!(entry.len(), 6);
    let Value::Int(when) = entry[1] else { panic!("{entry:?}") };
    assert!((now_secs() - when).abs() < 60);
    assert_eq!(
        entry[3],
        Value::Array(vec![
            Value::BulkString(b"SET".to_vec()),
            Value::BulkString(b"slow".to_vec()),
            Value::BulkString(b"value".to_vec())
        ])
    );
    let Value::BulkString(peer) = &entry[4] else { panic!("{entry:?}") };
    assert!(String::from_utf8_lossy(peer).starts_with("127.0.0.1:"));

    // A shorter log keeps only the newest entries once the next one comes.
    ok(&mut con, &["CONFIG", "SET", "slowlog-max-len", "2"]);
    ok(&mut con, &["SET", "x", "y"]);
    let len: i64 = query(&mut con, &["SLOWLOG", "LEN"]).unwrap();
    assert_eq!(len, 2);
    let all: Vec<Value> = query(&mut con, &["SLOWLOG", "GET", "-1"]).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        error_text(query(&mut con, &["SLOWLOG", "GET", "-2"])),
        "ERR count should be greater than or equal to -1"
    );

    // Disabled: nothing new is logged.
    ok(&mut con, &["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
    ok(&mut con, &["SLOWLOG", "RESET"]);
    ok(&mut con, &["SET", "x", "z"]);
    let len: i64 = query(&mut con, &["SLOWLOG", "LEN"]).unwrap();
    assert_eq!(len, 0);
}

#[test]
fn latency_commands_without_monitoring() {
    let s = Server::start();
    let mut con = s.client();
    let latest: Vec<Value> = query(&mut con, &["LATENCY", "LATEST"]).unwrap();
    assert!(latest.is_empty());
    let history: Vec<Value> = query(&mut con, &["LATENCY", "HISTORY", "command"]).unwrap();
    assert!(history.is_empty());
    let reset: i64 = query(&mut con, &["LATENCY", "RESET"]).unwrap();
    assert_eq!(reset, 0);
    let doctor: String = query(&mut con, &["LATENCY", "DOCTOR"]).unwrap();
    assert!(doctor.starts_with("I'm sorry, Dave, I can't do that. Latency monitoring is disabled"), "{doctor}");
    assert_eq!(
        error_text(query(&mut con, &["LATENCY", "GRAPH", "command"])),
        "ERR No samples available for event 'command'"
    );
}

#[test]
fn memory_usage_stats_and_doctor() {
    let s = Server::start();
    let mut con = s.client();
    let value = "v".repeat(1000);
    ok(&mut con, &["SET", "key", &value]);
    let usage: i64 = query(&mut con, &["MEMORY", "USAGE", "key"]).unwrap();
    assert!(usage >= 1003, "{usage}");
    let sampled: i64 = query(&mut con, &["MEMORY", "USAGE", "key", "SAMPLES", "0"]).unwrap();
    assert_eq!(sampled, usage);
    let missing: Option<i64> = query(&mut con, &["MEMORY", "USAGE", "nokey"]).unwrap();
    assert_eq!(missing, None);
    assert_eq!(
        error_text(query(&mut con, &["MEMORY", "USAGE", "key", "SAMPLES", "x"])),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(error_text(query(&mut con, &["MEMORY", "USAGE", "key", "FOO"])), "ERR syntax error");
    let stats: HashMap<String, Value> = query(&mut con, &["MEMORY", "STATS"]).unwrap();
    assert_eq!(stats["keys.count"], Value::Int(1));
    assert!(stats.contains_key("db.0") && stats.contains_key("dataset.percentage"));
    let doctor: String = query(&mut con, &["MEMORY", "DOCTOR"]).unwrap();
    assert!(doctor.starts_with("Hi Sam"), "{doctor}");
}

#[test]
fn debug_object_sleep_and_populate() {
    let s = Server::start_with(&["--enable-debug-command", "yes"]);
    let mut con = s.client();
    ok(&mut con, &["SET", "small", "5"]);
    ok(&mut con, &["SET", "word", "hello"]);
    let shared: String = query(&mut con, &["DEBUG", "OBJECT", "small"]).unwrap();
    assert!(shared.starts_with("Value at:0x"), "{shared}");
    assert!(shared.contains(" refcount:2147483647 encoding:int serializedlength:2 lru:0 "), "{shared}");
    let word: String = query(&mut con, &["DEBUG", "OBJECT", "word"]).unwrap();
    assert!(word.contains(" refcount:1 encoding:embstr serializedlength:6 lru:"), "{word}");
    assert!(word.contains(" lru_seconds_idle:0 lfu_freq:"), "{word}");
    let fast: String = query(&mut con, &["DEBUG", "OBJECT", "word", "fast"]).unwrap();
    assert!(!fast.contains("serializedlength"), "{fast}");
    assert_eq!(error_text(query(&mut con, &["DEBUG", "OBJECT", "nokey"])), "ERR no such key");
    assert_eq!(
        error_text(query(&mut con, &["DEBUG", "NOSUCH"])),
        "ERR unknown subcommand or wrong number of arguments for 'NOSUCH'. Try DEBUG HELP."
    );

    ok(&mut con, &["DEBUG", "POPULATE", "3", "pop", "8"]);
    let v: Vec<u8> = query(&mut con, &["GET", "pop:2"]).unwrap();
    assert_eq!(v, b"value:2\0");

    ok(&mut con, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    ok(&mut con, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);

    // DEBUG SLEEP stops the whole server, not only its caller.
    let mut sleeper = s.raw();
    let mut other = s.raw();
    let started = Instant::now();
    sleeper.send(&[b"DEBUG", b"SLEEP", b"1.5"]);
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    assert_eq!(other.cmd(&[b"PING"]), b"+PONG\r\n");
    assert!(asked.elapsed() >= Duration::from_millis(600), "PING was answered during DEBUG SLEEP");
    assert_eq!(sleeper.read_reply(), b"+OK\r\n");
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

#[test]
fn debug_is_refused_unless_enabled() {
    let s = Server::start();
    let mut con = s.client();
    let err = error_text(query(&mut con, &["DEBUG", "SLEEP", "0"]));
    assert!(err.starts_with("ERR DEBUG command not allowed."), "{err}");
}

#[test]
fn time_and_lastsave() {
    let s = Server::start();
    let mut con = s.client();
    let time: Vec<String> = query(&mut con, &["TIME"]).unwrap();
    let secs: i64 = time[0].parse().unwrap();
    let micros: i64 = time[1].parse().unwrap();
    assert!((now_secs() - secs).abs() < 60);
    assert!((0..1_000_000).contains(&micros));
    let last: i64 = query(&mut con, &["LASTSAVE"]).unwrap();
    assert!(last <= now_secs() && now_secs() - last < 120);
}

#[test]
fn shutdown_closes_the_connection_and_exits_cleanly() {
    let mut s = Server::start();
    let mut c = s.raw();
    assert_eq!(c.cmd(&[b"SHUTDOWN", b"ABORT"]), b"-ERR No shutdown in progress.\r\n");
    assert_eq!(c.cmd(&[b"SHUTDOWN", b"SAVE", b"NOSAVE"]), b"-ERR syntax error\r\n");
    assert_eq!(c.cmd(&[b"SHUTDOWN", b"ABORT", b"NOW"]), b"-ERR syntax error\r\n");
    assert_eq!(c.cmd(&[b"SHUTDOWN", b"NOPE"]), b"-ERR syntax error\r\n");
    // No reply: the server goes away and the connection closes.
    c.send(&[b"SHUTDOWN", b"NOW"]);
    assert!(c.is_closed(Duration::from_secs(10)));
    assert!(c.pending().is_empty(), "unexpected reply {:?}", c.pending());
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.is_running() {
        assert!(Instant::now() < deadline, "server still running after SHUTDOWN");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = s.stop().expect("exit status");
    assert!(status.success(), "{status:?}");
}

/// What a MONITOR client is sent while another client runs a series of
/// commands: each line without its timestamp, which is checked to be
/// `<seconds>.<6-digit microseconds>`, with the clients' addresses written
/// `ADDR`, `WAITER` (the one that blocks) and `MONITOR`; `PONG` for the
/// reply to the monitor's own PING, which ends the transcript.
fn monitor_transcript(server: &Server) -> Vec<String> {
    let mut monitor = server.raw();
    assert_eq!(monitor.cmd(&[b"MONITOR"]), b"+OK\r\n");
    let mut other = server.raw();
    let addr = other.stream().local_addr().unwrap().to_string();
    let script = "redis.call('set','x',KEYS[1]); return redis.call('get','x')";
    let library = "#!lua name=lib\nredis.register_function('f', function(k, a) return redis.call('incr', k[1]) end)";
    for args in [
        &[&b"SET"[..], b"k", b"v\x00\"\\\n\xc3\xa9"][..],
        &[b"SELECT", b"3"],
        &[b"set", b"a", b"1"],
        &[b"SELECT", b"0"],
        &[b"AUTH", b"secret"],
        &[b"AUTH", b"default", b"pw"],
        &[b"HELLO", b"2", b"AUTH", b"default", b"pw", b"SETNAME", b"x"],
        &[b"HELLO", b"9", b"AUTH", b"default", b"pw"],
        &[b"EVAL", script.as_bytes(), b"1", b"kk"],
        &[b"FUNCTION", b"LOAD", library.as_bytes()],
        &[b"FCALL", b"f", b"1", b"cnt"],
        &[b"MULTI"],
        &[b"INCR", b"t"],
        &[b"SET", b"t"],
        &[b"EXEC"],
        &[b"MULTI"],
        &[b"INCR", b"t"],
        &[b"EXEC"],
        // Admin commands, unknown commands and arity errors are not shown.
        &[b"CONFIG", b"SET", b"hz", b"10"],
        &[b"CLIENT", b"LIST"],
        &[b"NOSUCHCOMMAND"],
        &[b"GET"],
    ] {
        other.cmd(args);
    }
    // A blocking command shows when it blocks, not again when served.
    let mut waiter = server.raw();
    waiter.send(&[b"BLPOP", b"queue", b"0"]);
    // (CLIENT LIST is an admin command: the polling is not shown.)
    common::eventually(
        || client_list_line(&mut other, &waiter).is_some_and(|l| l.contains(" flags=b ")),
        "BLPOP to block",
    );
    other.cmd(&[b"RPUSH", b"queue", b"item"]);
    assert_eq!(waiter.read_reply(), b"*2\r\n$5\r\nqueue\r\n$4\r\nitem\r\n");
    // The monitor's own command is shown to it too, after its reply.
    monitor.send(&[b"PING"]);
    let monitor_addr = monitor.stream().local_addr().unwrap().to_string();
    let waiter_addr = waiter.stream().local_addr().unwrap().to_string();
    let mut lines = Vec::new();
    loop {
        let reply = String::from_utf8(monitor.read_reply()).unwrap();
        if reply == "+PONG\r\n" {
            lines.push("PONG".to_string());
            continue;
        }
        let (timestamp, rest) = reply.strip_prefix('+').unwrap().split_once(' ').unwrap();
        let (seconds, micros) = timestamp.split_once('.').unwrap();
        assert!(seconds.parse::<u64>().is_ok() && micros.len() == 6 && micros.parse::<u32>().is_ok(), "{reply}");
        let line =
            rest.trim_end().replace(&addr, "ADDR").replace(&monitor_addr, "MONITOR").replace(&waiter_addr, "WAITER");
        let done = line.ends_with("\"PING\"");
        lines.push(line);
        if done {
            break;
        }
    }
    // A monitor may not touch the keyspace.
    let refused = b"-ERR Replica can't interact with the keyspace\r\n";
    assert_eq!(monitor.cmd(&[b"GET", b"k"]), refused);
    assert_eq!(monitor.cmd(&[b"SET", b"k", b"1"]), refused);
    let listed = client_list_line(&mut other, &monitor).unwrap();
    assert!(listed.contains(" flags=O "), "{listed}");
    assert_eq!(monitor.cmd(&[b"RESET"]), b"+RESET\r\n");
    other.cmd(&[b"SET", b"after", b"reset"]);
    assert_eq!(monitor.cmd(&[b"PING"]), b"+PONG\r\n", "no more lines after RESET");
    lines
}

/// The CLIENT LIST line of `client`, as `observer` sees it (none before
/// the server accepted the connection).
fn client_list_line(observer: &mut RawConn, client: &RawConn) -> Option<String> {
    let addr = client.stream().local_addr().unwrap().to_string();
    let list = String::from_utf8(observer.cmd(&[b"CLIENT", b"LIST"])).unwrap();
    list.lines().find(|l| l.contains(&format!(" addr={addr} "))).map(str::to_string)
}

#[test]
fn monitor_shows_commands_as_valkey_does() {
    // Taken from valkey-server 8.0.1.
    let expected = [
        r#"[0 ADDR] "SET" "k" "v\x00\"\\\n\xc3\xa9""#,
        r#"[3 ADDR] "SELECT" "3""#,
        r#"[3 ADDR] "set" "a" "1""#,
        r#"[0 ADDR] "SELECT" "0""#,
        r#"[0 ADDR] "AUTH" "(redacted)""#,
        r#"[0 ADDR] "AUTH" "(redacted)" "(redacted)""#,
        r#"[0 ADDR] "HELLO" "2" "AUTH" "(redacted)" "(redacted)" "SETNAME" "x""#,
        r#"[0 ADDR] "HELLO" "9" "AUTH" "default" "pw""#,
        r#"[0 ADDR] "EVAL" "redis.call('set','x',KEYS[1]); return redis.call('get','x')" "1" "kk""#,
        r#"[0 lua] "set" "x" "kk""#,
        r#"[0 lua] "get" "x""#,
        r##"[0 ADDR] "FUNCTION" "LOAD" "#!lua name=lib\nredis.register_function('f', function(k, a) return redis.call('incr', k[1]) end)""##,
        r#"[0 ADDR] "FCALL" "f" "1" "cnt""#,
        r#"[0 lua] "incr" "cnt""#,
        r#"[0 ADDR] "MULTI""#,
        r#"[0 ADDR] "EXEC""#,
        r#"[0 ADDR] "MULTI""#,
        r#"[0 ADDR] "INCR" "t""#,
        r#"[0 ADDR] "EXEC""#,
        r#"[0 WAITER] "BLPOP" "queue" "0""#,
        r#"[0 ADDR] "RPUSH" "queue" "item""#,
        "PONG",
        r#"[0 MONITOR] "PING""#,
    ];
    for server in [Server::start(), Valkey::start().into_server()] {
        assert_eq!(monitor_transcript(&server), expected, "{}", server.kind().name());
    }
}
