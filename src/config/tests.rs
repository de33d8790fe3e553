//! The expected texts and values below were taken from a real
//! valkey-server 8.0.1. testdata/*.tsv are its sorted `CONFIG GET *`
//! replies, started as `valkey-server --port 7402 --dir /tmp` (defaults)
//! and `valkey-server fixtures/valkey-8.0.1.conf --port 7403 --pidfile
//! /tmp/vk/stock.pid --dir /tmp` (its stock config file).

use std::path::Path;

use super::cnum::{memtoull, repr, string2d, strtoll};
use super::load;
use super::table::TABLE;
use super::*;
use crate::server::VALKEY_VERSION;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn load_with(list: &[&str], stdin: &str) -> Result<Config, String> {
    let stdin = stdin.as_bytes().to_vec();
    load::from_args(&args(list), move || stdin)
}

fn load(list: &[&str]) -> Result<Config, String> {
    load_with(list, "")
}

fn conf_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn get1(cfg: &Config, name: &str) -> String {
    let got = cfg.get(&[name.as_bytes()]);
    assert_eq!(got.len(), 1, "{name}: {got:?}");
    got[0].1.clone()
}

fn banner_at(line: usize, text: &str, why: &str) -> String {
    format!(
        "\n*** FATAL CONFIG FILE ERROR (Version {VALKEY_VERSION}) ***\nReading the configuration file, at line {line}\n>>> '{text}'\n{why}"
    )
}

fn set(cfg: &mut Config, pairs: &[(&str, &str)]) -> Result<Vec<&'static str>, String> {
    let pairs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
    cfg.set(&pairs)
}

/// `CONFIG GET *` recorded from valkey-server, as sorted (name, value).
fn recorded(tsv: &str) -> Vec<(String, String)> {
    tsv.lines()
        .map(|l| {
            let (n, v) = l.split_once('\t').unwrap();
            (n.to_string(), v.to_string())
        })
        .collect()
}

fn all_sorted(cfg: &Config) -> Vec<(String, String)> {
    let mut all = cfg.get(&[b"*"]);
    all.sort();
    all
}

#[test]
fn table_is_complete_and_consistent() {
    assert!(TSV_HEADER_VERSION_MATCHES());
    // 187 directives plus 27 aliases visible to CONFIG GET *, 8 hidden ones.
    let visible = TABLE.entries().filter(|e| !TABLE.directives[e.index].has(table::HIDDEN)).count();
    assert_eq!(visible, 214);
    for name in IMPLEMENTED {
        TABLE.index(name);
    }
    assert_eq!(DEFAULTS.len(), TABLE.directives.len());
    for name in ["include", "rename-command", "user", "loadmodule", "sentinel", "lua-replicate-commands"] {
        assert!(TABLE.file_directive(name).is_some(), "{name}");
    }
    assert!(table::COMMANDS.lines().any(|l| l == "flushall"));
    assert!(Config::is_sensitive(b"MASTERAUTH") && Config::is_sensitive(b"requirepass"));
    assert!(!Config::is_sensitive(b"port") && !Config::is_sensitive(b"nope"));
}

#[allow(non_snake_case)]
fn TSV_HEADER_VERSION_MATCHES() -> bool {
    include_str!("valkey-directives.tsv").starts_with(&format!("# Valkey {VALKEY_VERSION} "))
}

#[test]
fn defaults_match_valkey() {
    let cfg = Config::defaults();
    let mut expected = recorded(include_str!("testdata/config-get-defaults.tsv"));
    let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
    for (name, value) in expected.iter_mut() {
        match name.as_str() {
            "port" => *value = "6379".into(),
            "dir" => *value = cwd.to_str().unwrap().into(),
            _ => {}
        }
    }
    assert_eq!(all_sorted(&cfg), expected);
    assert_eq!(cfg.port, 6379);
    assert_eq!(cfg.bind, ["*", "-::*"]);
    assert!(cfg.protected_mode);
    assert_eq!(cfg.databases, 16);
    assert_eq!(cfg.hz, 10);
    assert_eq!(cfg.save, [(3600, 1), (300, 100), (60, 10000)]);
    assert_eq!(cfg.dir, cwd);
    assert_eq!(cfg.requirepass, None);
    assert_eq!(cfg.maxclients, 10000);
    assert_eq!(cfg.loglevel, LogLevel::Notice);
    assert_eq!(cfg.appendfsync, AppendFsync::EverySec);
    assert_eq!(cfg.proto_max_bulk_len, 512 << 20);
    assert_eq!(cfg.client_query_buffer_limit, 1 << 30);
    assert_eq!(cfg.list_max_listpack_size, -2);
    assert_eq!(cfg.enable_debug_command, "no");
    assert_eq!((cfg.dbfilename.as_str(), cfg.appenddirname.as_str()), ("dump.rdb", "appendonlydir"));
    assert!(cfg.unimplemented_directives_set().is_empty());
    assert_eq!(load(&[]).unwrap().get(&[b"*"]), cfg.get(&[b"*"]));
}

#[test]
fn stock_valkey_conf_loads_like_valkey() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/valkey-8.0.1.conf");
    let cfg = load(&[fixture, "--port", "7403", "--pidfile", "/tmp/vk/stock.pid", "--dir", "/tmp"]).unwrap();
    let mut expected = recorded(include_str!("testdata/config-get-valkey-conf.tsv"));
    let tmp = std::fs::canonicalize("/tmp").unwrap();
    for (name, value) in expected.iter_mut() {
        if name == "dir" {
            *value = tmp.to_str().unwrap().into();
        }
    }
    assert_eq!(all_sorted(&cfg), expected);
    assert_eq!(cfg.config_file.as_deref(), Some(Path::new(fixture)));
    assert_eq!(cfg.bind, ["127.0.0.1", "-::1"]);
    assert_eq!(cfg.port, 7403);
    assert_eq!(cfg.pidfile, "/tmp/vk/stock.pid");
    // Every value it sets is Valkey's default, bind and pidfile aside.
    assert!(cfg.unimplemented_directives_set().is_empty());
}

#[test]
fn fatal_error_texts() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, usize, &str, &str)] = &[
        ("port 6379\nfoo bar\n", 2, "foo bar", "Bad directive or wrong number of arguments"),
        ("port 70000\n", 1, "port 70000", "argument must be between 0 and 65535 inclusive"),
        (
            "appendfsync sometimes\n",
            1,
            "appendfsync sometimes",
            "argument(s) must be one of the following: everysec, always, no",
        ),
        ("maxmemory 10x\n", 1, "maxmemory 10x", "argument must be a memory value"),
        ("daemonize maybe\n", 1, "daemonize maybe", "argument must be 'yes' or 'no'"),
        ("port\n", 1, "port", "wrong number of arguments"),
        ("port 1 2\n", 1, "port 1 2", "wrong number of arguments"),
        ("save \"1 2 3\"\n", 1, "save \"1 2 3\"", "Invalid save parameters"),
        ("include\n", 1, "include", "Bad directive or wrong number of arguments"),
        ("rename-command foo bar\n", 1, "rename-command foo bar", "No such command in rename-command"),
        ("rename-command get set\n", 1, "rename-command get set", "Target command name already exists"),
        ("sentinel monitor x\n", 1, "sentinel monitor x", "sentinel directive while not in sentinel mode"),
        ("a.b\n", 1, "a.b", "Module config specified without value"),
        ("port \"abc\n", 1, "port \"abc", "Unbalanced quotes in configuration line"),
        ("  \t# comment\n\n\tport   x  \r\n", 3, "port   x", "argument couldn't be parsed into an integer"),
        ("unixsocketperm 999\n", 1, "unixsocketperm 999", "argument couldn't be parsed as an octal number"),
        ("unixsocketperm 1777\n", 1, "unixsocketperm 1777", "argument must be between 0 and 777 inclusive"),
        ("maxclients -1\n", 1, "maxclients -1", "argument must be between 1 and 4294967295 inclusive"),
        ("maxmemory-clients 101%\n", 1, "maxmemory-clients 101%", "percentage argument must be less or equal to 100"),
        ("maxmemory-clients x\n", 1, "maxmemory-clients x", "argument must be a memory or percent value"),
        ("dbfilename a/b\n", 1, "dbfilename a/b", "dbfilename can't be a path, just a filename"),
        ("dir \"\"\n", 1, "dir \"\"", "dir can't be empty"),
        ("dir /nonexistent-ferrokey\n", 1, "dir /nonexistent-ferrokey", "No such file or directory"),
        ("dir /etc/passwd\n", 1, "dir /etc/passwd", "Not a directory"),
        (
            "bind 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n",
            1,
            "bind 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17",
            "Too many bind addresses specified.",
        ),
        ("replicaof h 70000\n", 1, "replicaof h 70000", "Invalid primary port"),
        (
            "shutdown-on-sigint save nosave\n",
            1,
            "shutdown-on-sigint save nosave",
            "shutdown options SAVE and NOSAVE can't be used simultaneously",
        ),
        (
            "notify-keyspace-events Kq\n",
            1,
            "notify-keyspace-events Kq",
            "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.",
        ),
        (
            "cluster-announce-hostname a_b\n",
            1,
            "cluster-announce-hostname a_b",
            "Hostnames may only contain alphanumeric characters, hyphens or dots",
        ),
        ("cluster-announce-client-ipv4 1.2.3\n", 1, "cluster-announce-client-ipv4 1.2.3", "Invalid IPv4 address"),
        (
            "proc-title-template {nope}\n",
            1,
            "proc-title-template {nope}",
            "template format is invalid or contains unknown variables",
        ),
        (
            "proc-title-template {title}\n",
            1,
            "proc-title-template {title}",
            "template format is invalid or contains unknown variables",
        ),
        (
            "list-max-ziplist-entries 1 2\n",
            1,
            "list-max-ziplist-entries 1 2",
            "Bad directive or wrong number of arguments",
        ),
    ];
    for (text, line, shown, why) in cases {
        let file = conf_file(dir.path(), "t.conf", text);
        assert_eq!(load(&[&file]).unwrap_err(), banner_at(*line, shown, why), "{text}");
    }
}

#[test]
fn command_line_errors_and_other_failures() {
    // Options follow the (empty) file content after a newline.
    assert_eq!(
        load(&["--port", "abc"]).unwrap_err(),
        banner_at(2, "port \"abc\"", "argument couldn't be parsed into an integer")
    );
    assert_eq!(
        load(&["--dir", "/nonexistent-ferrokey"]).unwrap_err(),
        banner_at(2, "dir \"/nonexistent-ferrokey\"", "No such file or directory")
    );
    assert_eq!(
        load(&["/nonexistent/x.conf"]).unwrap_err(),
        "Fatal error, can't open config file '/nonexistent/x.conf': No such file or directory"
    );
    let dir = tempfile::tempdir().unwrap();
    let inc = conf_file(dir.path(), "t.conf", "include /nonexistent/y.conf\n");
    assert_eq!(
        load(&[&inc]).unwrap_err(),
        "Fatal error, can't open config file '/nonexistent/y.conf': No such file or directory"
    );
    let log = conf_file(dir.path(), "t.conf", "logfile /nonexistent/log\n");
    assert_eq!(
        load(&[&log]).unwrap_err(),
        format!("\n*** FATAL CONFIG FILE ERROR (Version {VALKEY_VERSION}) ***\nCan't open the log file: No such file or directory")
    );
    let cluster = conf_file(dir.path(), "t.conf", "cluster-enabled yes\nreplicaof h 1\n");
    assert!(load(&[&cluster]).unwrap_err().ends_with("\nreplicaof directive not allowed in cluster mode"));
    // Errors in an included file report its own line numbers.
    conf_file(dir.path(), "inc.conf", "\n\nport x\n");
    let outer = conf_file(dir.path(), "t.conf", &format!("include {}/inc.conf\n", dir.path().display()));
    assert_eq!(load(&[&outer]).unwrap_err(), banner_at(3, "port x", "argument couldn't be parsed into an integer"));
    // Stdin comes after the file, so its lines are numbered after it.
    let file = conf_file(dir.path(), "t.conf", "port 1\n");
    assert_eq!(
        load_with(&[&file, "-"], "port abc\n").unwrap_err(),
        banner_at(2, "port abc", "argument couldn't be parsed into an integer")
    );
}

#[test]
fn command_line_options_become_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = conf_file(dir.path(), "t.conf", "save 900 1\nsave 300 10\nport 1\n");
    let cfg =
        load(&[&file, "--bind", "127.0.0.1", "::1", "--save", "3600 1", "--save", "60", "5", "--port 6380"]).unwrap();
    assert_eq!(get1(&cfg, "save"), "900 1 300 10 3600 1 60 5");
    assert_eq!(cfg.bind, ["127.0.0.1", "::1"]);
    assert_eq!(cfg.port, 6380);
    assert_eq!(cfg.config_file.as_deref(), Some(Path::new(&file)));

    // A bare `--save` before another option, or at the end, means `save ""`.
    assert_eq!(load(&["--save", "--port", "7"]).unwrap().save, []);
    assert_eq!(load(&["--port", "7", "--save"]).unwrap().save, []);
    // A bare option takes the next argument even if it starts with "--".
    assert_eq!(load(&["--requirepass", "--x"]).unwrap().requirepass.as_deref(), Some(&b"--x"[..]));
    // `-` reads stdin, before the options.
    let cfg = load_with(&["-", "--port", "9"], "port 8\nmaxmemory 1mb\n").unwrap();
    assert_eq!((cfg.port, cfg.maxmemory, cfg.config_file), (9, 1 << 20, None));
    // Spaces and quotes survive quoting of option values.
    let cfg = load(&["--requirepass", "a \"b\"\n"]).unwrap();
    assert_eq!(cfg.requirepass.as_deref(), Some(&b"a \"b\"\n"[..]));
}

#[test]
fn save_lines_accumulate_like_valkey() {
    let dir = tempfile::tempdir().unwrap();
    let empty = conf_file(dir.path(), "empty.conf", "");
    let cases = [
        ("save 100 1\nsave 200 2\n".to_string(), "100 1 200 2"),
        ("save 100 1\nsave \"\"\nsave 300 3\n".to_string(), "300 3"),
        ("save \"100 1 200 2\"\n".to_string(), "100 1 200 2"),
        ("port 1\n".to_string(), "3600 1 300 100 60 10000"),
        ("save 60 \"\"\n".to_string(), "60 0"),
        // Valkey stops adding up after reading an included file.
        (format!("save 100 1\ninclude {empty}\nsave 200 2\nsave 300 3\n"), "300 3"),
    ];
    for (text, expected) in cases {
        let file = conf_file(dir.path(), "t.conf", &text);
        assert_eq!(get1(&load(&[&file]).unwrap(), "save"), expected, "{text}");
    }
}

#[test]
fn include_follows_dir_and_globs() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    conf_file(&sub, "a.conf", "port 11\n");
    conf_file(&sub, "b.conf", "maxmemory 2kb\n");
    conf_file(&sub, "c.txt", "port 99\n");
    // Relative includes and dirs resolve against the dir in effect.
    let file = conf_file(
        dir.path(),
        "t.conf",
        &format!("dir {}\ninclude sub/*.conf\ninclude none/*.conf\ndir sub\n", dir.path().display()),
    );
    let cfg = load(&[&file]).unwrap();
    assert_eq!((cfg.port, cfg.maxmemory), (11, 2048));
    assert_eq!(cfg.dir, sub.canonicalize().unwrap());
    let cycle = conf_file(dir.path(), "cycle.conf", "");
    std::fs::write(&cycle, format!("include {cycle}\n")).unwrap();
    assert!(load(&[&cycle]).unwrap_err().ends_with("Too many nested include directives"));
}

#[test]
fn memory_percent_and_number_syntax() {
    assert_eq!(memtoull(b"1k"), Some(1000));
    assert_eq!(memtoull(b"1KB"), Some(1024));
    assert_eq!(memtoull(b"2m"), Some(2_000_000));
    assert_eq!(memtoull(b"2Mb"), Some(2 << 20));
    assert_eq!(memtoull(b"3g"), Some(3_000_000_000));
    assert_eq!(memtoull(b"3gB"), Some(3 << 30));
    assert_eq!(memtoull(b"7b"), Some(7));
    assert_eq!(memtoull(b""), Some(0));
    assert_eq!(memtoull(b"-1"), None);
    assert_eq!(memtoull(b"1t"), None);
    assert_eq!(memtoull(b" 1"), None);
    assert_eq!(strtoll(b" +12", 10), Some((12, false)));
    assert_eq!(strtoll(b"", 10), Some((0, false)));
    assert_eq!(strtoll(b" ", 10), None);
    assert_eq!(strtoll(b"12x", 10), None);
    assert_eq!(strtoll(b"99999999999999999999", 10), Some((i64::MAX, true)));
    assert_eq!(strtoll(b"0777", 8), Some((0o777, false)));
    assert_eq!(string2d(b"0x10"), Some(16.0));
    assert_eq!(string2d(b" 1"), None);
    assert_eq!(string2d(b"1e999"), None);
    assert_eq!(string2d(b"1e-999"), None);
    assert_eq!(string2d(b"nan"), None);
    assert_eq!(repr(b"a\"b\\\n\x01"), "\"a\\\"b\\\\\\n\\x01\"");

    let mut cfg = Config::defaults();
    let cases = [
        ("maxmemory", "1gb", "1073741824"),
        ("maxmemory", "1G", "1000000000"),
        ("maxmemory", "", "0"),
        ("maxmemory", "18446744073709551615", "18446744073709551615"),
        ("maxmemory-clients", "5%", "5%"),
        ("maxmemory-clients", "1mb", "1048576"),
        ("unixsocketperm", "", "0"),
        ("hz", "1000", "500"),
        ("hz", "0", "1"),
        ("list-max-listpack-size", "-5", "-5"),
        ("proto-max-bulk-len", "2mb", "2097152"),
    ];
    for (name, value, shown) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = conf_file(dir.path(), "t.conf", &format!("{name} \"{value}\"\n"));
        assert_eq!(get1(&load(&[&file]).unwrap(), name), shown, "{name} {value}");
        if name != "unixsocketperm" {
            set(&mut cfg, &[(name, value)]).unwrap();
            assert_eq!(get1(&cfg, name), shown, "CONFIG SET {name} {value}");
        }
    }
    assert_eq!(cfg.hz, 1);
    assert_eq!(cfg.maxmemory, u64::MAX);
}

#[test]
fn special_values_print_like_valkey() {
    let mut cfg = Config::defaults();
    let cases = [
        ("notify-keyspace-events", "KEA", "AKE"),
        ("notify-keyspace-events", "An", "A"),
        ("notify-keyspace-events", "Elgn", "glnE"),
        ("oom-score-adj", "relative", "yes"),
        ("shutdown-on-sigint", "force now save", "save now force"),
        (
            "client-output-buffer-limit",
            "normal 1mb 2 3 replica 1gb 1k 0",
            "normal 1048576 2 3 slave 1073741824 1000 0 pubsub 33554432 8388608 60",
        ),
        ("client-output-buffer-limit", "", "normal 1048576 2 3 slave 1073741824 1000 0 pubsub 33554432 8388608 60"),
        ("latency-tracking-info-percentiles", "0x10 1e1 +5 99.999", "16 10 5 99.999"),
        ("latency-tracking-info-percentiles", "", ""),
        ("save", "", ""),
        ("bind", "", ""),
        ("bind", "127.0.0.1 -::1", "127.0.0.1 -::1"),
        ("oom-score-adj-values", "-5 0 2000", "-5 0 2000"),
    ];
    for (name, value, shown) in cases {
        set(&mut cfg, &[(name, value)]).unwrap();
        assert_eq!(get1(&cfg, name), shown, "{name} {value}");
    }
    assert!(cfg.bind.len() == 2 && cfg.save.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let file = conf_file(dir.path(), "t.conf", "replicaof example.com 6380\nslaveof no one\nslaveof h 1\n");
    let cfg = load(&[&file]).unwrap();
    assert_eq!(
        cfg.get(&[b"replicaof", b"slaveof"]),
        [("replicaof".into(), "h 1".into()), ("slaveof".into(), "h 1".into())]
    );
}

#[test]
fn config_get_patterns() {
    let cfg = Config::defaults();
    assert_eq!(cfg.get(&[b"PORT"]), [("PORT".to_string(), "6379".to_string())]);
    assert_eq!(cfg.get(&[b"port", b"PORT", b"po*"]), [("port".to_string(), "6379".to_string())]);
    assert_eq!(cfg.get(&[b"slave-priority"]), [("slave-priority".to_string(), "100".to_string())]);
    let names = |patterns: &[&[u8]]| {
        let mut names: Vec<String> = cfg.get(patterns).into_iter().map(|(n, _)| n).collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&[b"slave-*"]),
        [
            "slave-announce-ip",
            "slave-announce-port",
            "slave-ignore-maxmemory",
            "slave-lazy-flush",
            "slave-priority",
            "slave-read-only",
            "slave-serve-stale-data"
        ]
    );
    assert_eq!(
        names(&[b"p*", b"port"]),
        [
            "pidfile",
            "port",
            "prefetch-batch-max-size",
            "primaryauth",
            "primaryuser",
            "proc-title-template",
            "propagation-error-behavior",
            "protected-mode",
            "proto-max-bulk-len"
        ]
    );
    assert_eq!(names(&[b"*-ziplist-*"]).len(), 5);
    assert_eq!(names(&[b"MAXMEMORY-[pc]*"]), ["maxmemory-clients", "maxmemory-policy"]);
    // Hidden directives answer only to their exact name.
    assert!(cfg.get(&[b"use-exit*"]).is_empty());
    assert_eq!(cfg.get(&[b"use-exit-on-panic"]), [("use-exit-on-panic".to_string(), "no".to_string())]);
    assert!(cfg.get(&[b"nonexistent", b"include", b"nope*"]).is_empty());
}

#[test]
fn config_set_errors() {
    let mut cfg = Config::defaults();
    let failed =
        |name: &str, why: &str| format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}");
    let cases: &[(&[(&str, &str)], String)] = &[
        (&[("foo", "bar")], "ERR Unknown option or number of arguments for CONFIG SET - 'foo'".into()),
        (&[("include", "x")], "ERR Unknown option or number of arguments for CONFIG SET - 'include'".into()),
        (&[("port", "abc")], failed("port", "argument couldn't be parsed into an integer")),
        (&[("daemonize", "yes")], failed("daemonize", "can't set immutable config")),
        (&[("DAEMONIZE", "yes")], failed("DAEMONIZE", "can't set immutable config")),
        (&[("port", "7400"), ("port", "7401")], failed("port", "duplicate parameter")),
        (&[("Port", "7400"), ("PORT", "1")], failed("PORT", "duplicate parameter")),
        (&[("SLAVE-PRIORITY", "abc")], failed("slave-priority", "argument couldn't be parsed into an integer")),
        (&[("dir", "/tmp")], failed("dir", "can't set protected config")),
        (&[("dbfilename", "x")], failed("dbfilename", "can't set protected config")),
        (&[("maxmemory", "10x")], failed("maxmemory", "argument must be a memory value")),
        (
            &[("appendfsync", "sometimes")],
            failed("appendfsync", "argument(s) must be one of the following: everysec, always, no"),
        ),
        (&[("protected-mode", "maybe")], failed("protected-mode", "argument must be 'yes' or 'no'")),
        (
            &[("maxmemory-clients", "200%")],
            failed("maxmemory-clients", "percentage argument must be less or equal to 100"),
        ),
        (&[("maxmemory-clients", "-5")], failed("maxmemory-clients", "argument must be a memory or percent value")),
        (&[("maxclients", "-1")], failed("maxclients", "argument must be between 1 and 4294967295 inclusive")),
        (
            &[("timeout", "1"), ("foo", "2"), ("daemonize", "yes")],
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'".into(),
        ),
        (&[("daemonize", "yes"), ("foo", "2")], failed("daemonize", "can't set immutable config")),
        (&[("save", "100 1  200 2")], failed("save", "Invalid save parameters")),
        (&[("save", "100 1 ")], failed("save", "Invalid save parameters")),
        (
            &[("shutdown-on-sigint", "save nosave")],
            failed("shutdown-on-sigint", "shutdown options SAVE and NOSAVE can't be used simultaneously"),
        ),
        (
            &[("client-output-buffer-limit", "master 1 1 1")],
            failed("client-output-buffer-limit", "Invalid client class specified in buffer limit configuration."),
        ),
        (
            &[("client-output-buffer-limit", "normal 1 1")],
            failed("client-output-buffer-limit", "Wrong number of arguments in buffer limit configuration."),
        ),
        (
            &[("client-output-buffer-limit", "normal x 1 1")],
            failed(
                "client-output-buffer-limit",
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
            ),
        ),
        (
            &[("client-output-buffer-limit", "normal 1 1 4294967295")],
            failed(
                "client-output-buffer-limit",
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
            ),
        ),
        (&[("oom-score-adj-values", "1 2")], failed("oom-score-adj-values", "wrong number of arguments")),
        (
            &[("oom-score-adj-values", "1 2 9999")],
            failed("oom-score-adj-values", "Invalid oom-score-adj-values, elements must be between -2000 and 2000."),
        ),
        (
            &[("latency-tracking-info-percentiles", "50 101")],
            failed(
                "latency-tracking-info-percentiles",
                "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]",
            ),
        ),
        (
            &[("latency-tracking-info-percentiles", "x")],
            failed("latency-tracking-info-percentiles", "Invalid latency-tracking-info-percentiles parameters"),
        ),
        (&[("locale-collate", "xx_YY")], failed("locale-collate", "Invalid locale name")),
        (
            &[("activedefrag", "yes")],
            failed(
                "activedefrag",
                "Active defragmentation cannot be enabled: it requires a server compiled with a modified Jemalloc \
                 like the one shipped by default with the source distribution",
            ),
        ),
    ];
    let before = cfg.get(&[b"*"]);
    for (pairs, expected) in cases {
        assert_eq!(&set(&mut cfg, pairs).unwrap_err(), expected, "{pairs:?}");
    }
    assert_eq!(cfg.get(&[b"*"]), before);
}

#[test]
fn config_set_is_atomic_and_reports_changes() {
    let mut cfg = Config::defaults();
    let err = set(&mut cfg, &[("maxmemory", "1mb"), ("timeout", "5"), ("port", "x")]).unwrap_err();
    assert!(err.contains("'port'"));
    assert_eq!((cfg.maxmemory, cfg.timeout), (0, 0));
    assert_eq!(get1(&cfg, "maxmemory"), "0");

    assert_eq!(
        set(&mut cfg, &[("maxmemory", "1mb"), ("timeout", "0"), ("loglevel", "WARNING")]).unwrap(),
        ["maxmemory", "loglevel"]
    );
    assert_eq!((cfg.maxmemory, cfg.timeout, cfg.loglevel), (1 << 20, 0, LogLevel::Warning));
    // A name and its alias are not duplicates: both apply, in order.
    assert_eq!(
        set(&mut cfg, &[("hash-max-listpack-entries", "100"), ("hash-max-ziplist-entries", "200")]).unwrap(),
        ["hash-max-listpack-entries"]
    );
    assert_eq!(cfg.hash_max_listpack_entries, 200);
    // Applying a small backlog raises it, as Valkey does at runtime.
    set(&mut cfg, &[("repl-backlog-size", "1k"), ("locale-collate", "C")]).unwrap();
    assert_eq!(get1(&cfg, "repl-backlog-size"), "16384");
    // Special directives are always reapplied.
    assert_eq!(set(&mut cfg, &[("bind", "* -::*")]).unwrap(), ["bind"]);
    assert_eq!(set(&mut cfg, &[("oom-score-adj-values", "0 200 800")]).unwrap(), Vec::<&str>::new());
    assert_eq!(set(&mut cfg, &[("requirepass", "s3cret")]).unwrap(), ["requirepass"]);
    assert_eq!(cfg.requirepass.as_deref(), Some(&b"s3cret"[..]));
    set(&mut cfg, &[("requirepass", "")]).unwrap();
    assert_eq!(cfg.requirepass, None);
    assert_eq!(
        set(&mut cfg, &[("appendonly", "yes"), ("appendfsync", "always")]).unwrap(),
        ["appendonly", "appendfsync"]
    );
    assert!(cfg.appendonly && cfg.appendfsync == AppendFsync::Always);

    let loading = SetContext { loading: true, local_client: false };
    assert_eq!(
        cfg.set_with(&[(b"appendonly", b"no")], loading).unwrap_err(),
        "LOADING Valkey is loading the dataset in memory"
    );
    assert_eq!(cfg.set_with(&[(b"maxmemory", b"0")], loading).unwrap(), ["maxmemory"]);
}

#[test]
fn protected_configs_follow_enable_protected_configs() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().canonicalize().unwrap();
    let local = SetContext { loading: false, local_client: true };
    let pairs: &[(&[u8], &[u8])] = &[(b"dir", target.as_os_str().as_encoded_bytes())];
    let mut cfg = load(&["--enable-protected-configs", "local"]).unwrap();
    assert!(cfg.set(pairs).unwrap_err().ends_with("can't set protected config"));
    assert_eq!(cfg.set_with(pairs, local).unwrap(), ["dir"]);
    assert_eq!(cfg.dir, target);
    let mut cfg = load(&["--enable-protected-configs", "yes"]).unwrap();
    assert_eq!(
        cfg.set(&[(b"dir", b"/nonexistent-ferrokey")]).unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'dir') - No such file or directory"
    );
    assert_eq!(cfg.set(&[(b"dbfilename", b"x.rdb")]).unwrap(), ["dbfilename"]);
    assert_eq!(cfg.dbfilename, "x.rdb");
}

#[test]
fn unimplemented_directives_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let text = "port 7000\nactiverehashing no\nrdbcompression yes\nrename-command flushall \"\"\nuser u on\nmod.opt 1\nlua-replicate-commands yes\nslave-read-only no\n";
    let file = conf_file(dir.path(), "t.conf", text);
    let cfg = load(&[&file]).unwrap();
    assert_eq!(
        cfg.unimplemented_directives_set(),
        ["activerehashing", "replica-read-only", "rename-command", "user", "mod.opt"]
    );
}

#[test]
fn rewrite_keeps_the_file_and_updates_values() {
    let dir = tempfile::tempdir().unwrap();
    let empty = conf_file(dir.path(), "empty.conf", "");
    let original = format!(
        "# top comment\nport 7401\nsave 900 1\n\nsave 300 10\n   # indented comment\n\n\nmaxmemory 1gb\nslave-priority 50\n\
         list-max-ziplist-entries 512\nrename-command FLUSHALL \"\"\ninclude {empty}\nbind 127.0.0.1\n\
         hash-max-ziplist-entries 100\nhash-max-listpack-entries 200\nsentinel\n"
    );
    let file = conf_file(dir.path(), "rw.conf", &original);
    let mut cfg = load(&[&file, "--dir", dir.path().to_str().unwrap()]).unwrap();
    set(&mut cfg, &[("maxmemory", "2mb"), ("timeout", "30"), ("slave-priority", "60"), ("loglevel", "verbose")])
        .unwrap();
    set(&mut cfg, &[("notify-keyspace-events", "KEA"), ("client-output-buffer-limit", "pubsub 1mb 2kb 3")]).unwrap();
    set(&mut cfg, &[("requirepass", "p\"w d")]).unwrap();
    cfg.rewrite().unwrap();
    let dir_text = dir.path().canonicalize().unwrap();
    // Valkey's result, except that it appends in its hash table's order and
    // adds a `user default ...` line for its ACL state.
    let expected = format!(
        "# top comment\nport 7401\nsave 900 1 300 10\n\n# indented comment\n\nmaxmemory 2mb\nreplica-priority 60\n\
         # ??? list-max-ziplist-entries 512\nrename-command FLUSHALL \"\"\ninclude {empty}\nbind 127.0.0.1\n\
         hash-max-listpack-entries 200\n\nsentinel\n\n# Generated by CONFIG REWRITE\nrequirepass \"p\\\"w d\"\n\
         loglevel verbose\ntimeout 30\ndir \"{}\"\nclient-output-buffer-limit pubsub 1mb 2kb 3\n\
         notify-keyspace-events \"AKE\"\nlatency-tracking-info-percentiles 50 99 99.9\n",
        dir_text.display()
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);

    // The rewritten file loads back to the same values. Rewriting it again
    // moves the pubsub limit: lines of a directive are reused in order, so
    // the normal class (first) takes its line, as in Valkey.
    let again = load(&[&file]).unwrap();
    assert_eq!(again.get(&[b"*"]), cfg.get(&[b"*"]));
    again.rewrite().unwrap();
    let moved =
        expected.replace("pubsub 1mb 2kb 3", "normal 0 0 0") + "\nclient-output-buffer-limit pubsub 1mb 2kb 3\n";
    assert_eq!(std::fs::read_to_string(&file).unwrap(), moved);
    assert_eq!(load(&[&file]).unwrap().get(&[b"*"]), cfg.get(&[b"*"]));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}

#[test]
fn rewrite_drops_unset_values_and_creates_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = conf_file(dir.path(), "t.conf", "bind 1.2.3.4\nbind 5.6.7.8\nunixsocket /tmp/x.sock\nsave 60 1\n");
    let mut cfg = load(&[&file]).unwrap();
    set(&mut cfg, &[("bind", "* -::*"), ("save", ""), ("maxmemory-clients", "10%")]).unwrap();
    cfg.rewrite().unwrap();
    let dir_text = std::fs::canonicalize(std::env::current_dir().unwrap()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!(
            "\nunixsocket \"/tmp/x.sock\"\nsave \"\"\n\n# Generated by CONFIG REWRITE\nmaxmemory-clients 10%\n\
             dir \"{}\"\nlatency-tracking-info-percentiles 50 99 99.9\n",
            dir_text.display()
        )
    );
    std::fs::remove_file(&file).unwrap();
    cfg.rewrite().unwrap();
    assert!(std::fs::read_to_string(&file).unwrap().starts_with("# Generated by CONFIG REWRITE\n"));
    assert_eq!(Config::defaults().rewrite().unwrap_err(), "ERR The server is running without a config file");
}

#[test]
fn absolute_config_path_and_apply_dir() {
    let cfg = load(&["some/dir/../x.conf"]).unwrap_err();
    let cwd = std::env::current_dir().unwrap();
    assert!(cfg.contains(&format!("'{}/some/dir/../x.conf'", cwd.display())), "{cfg}");
    let parent = cwd.parent().unwrap();
    let cfg = load(&["../nonexistent-ferrokey.conf"]).unwrap_err();
    assert!(cfg.contains(&format!("'{}/nonexistent-ferrokey.conf'", parent.display())), "{cfg}");
    Config::defaults().apply_dir().unwrap();
    assert_eq!(std::env::current_dir().unwrap(), cwd);
}
