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
