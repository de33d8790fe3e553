//! Starting and stopping the daemon the way valkey-server is started:
//! a config file and --flags mixed, Valkey's fatal config errors, the log
//! lines operators look for, and clean shutdown on signals.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, RawConn};

const BIN: &str = env!("CARGO_BIN_EXE_ferrokey-server");

fn wait_for_port(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
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
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("v=") && text.contains("Valkey 8.0.1"), "{text}");
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: ferrokey-server"));
}

#[test]
fn unknown_directive_is_fatal_like_valkey() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "port 7000\nfoo bar\n").unwrap();
    let out = Command::new(BIN).arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("*** FATAL CONFIG FILE ERROR (Version 8.0.1) ***"), "{err}");
    assert!(err.contains("Reading the configuration file, at line 2"), "{err}");
    assert!(err.contains(">>> 'foo bar'"), "{err}");
    assert!(err.contains("Bad directive or wrong number of arguments"), "{err}");
}

#[test]
fn bad_values_are_fatal_with_the_reason() {
    let cases: &[(&[&str], &str)] = &[
        (&["--port", "70000"], "argument must be between 0 and 65535 inclusive"),
        (&["--port", "abc"], "argument couldn't be parsed into an integer"),
        (&["--appendfsync", "sometimes"], "argument(s) must be one of the following: everysec, always, no"),
        (&["--maxmemory", "10x"], "argument must be a memory value"),
        (&["--appendonly", "maybe"], "argument must be 'yes' or 'no'"),
    ];
    for (args, reason) in cases {
        let out = Command::new(BIN).args(*args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(reason), "{args:?}: {err}");
    }
}

#[test]
fn stock_valkey_conf_starts_and_flags_win_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let stock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/valkey-8.0.1.conf"))
        .expect("fixtures/valkey-8.0.1.conf");
    let conf = dir.path().join("valkey.conf");
    // The stock file names port 6379 and a pidfile under /var/run: the
    // flags below override both, as they would for valkey-server.
    std::fs::write(&conf, stock).unwrap();
    let port = free_port();
    let log = dir.path().join("server.log");
    let mut child = Command::new(BIN)
        .arg(&conf)
        .args(["--port", &port.to_string(), "--dir", dir.path().to_str().unwrap()])
        .args(["--pidfile", dir.path().join("fk.pid").to_str().unwrap()])
        .args(["--logfile", log.to_str().unwrap(), "--save", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for_port(port), "server did not start");
    let mut c = RawConn::connect(port);
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(
        c.cmd(&[b"CONFIG", b"GET", b"port"]),
        format!("*2\r\n$4\r\nport\r\n${}\r\n{}\r\n", port.to_string().len(), port).as_bytes()
    );
    let pid = std::fs::read_to_string(dir.path().join("fk.pid")).unwrap();
    assert_eq!(pid.trim(), child.id().to_string());

    // SIGTERM: a clean exit, the pidfile removed, the farewell logged.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status:?}");
    assert!(!dir.path().join("fk.pid").exists());
    let text = std::fs::read_to_string(&log).unwrap();
    for line in ["ferrokey is starting", "Ready to accept connections", "Received SIGTERM", "bye bye"] {
        assert!(text.contains(line), "log lacks {line:?}:\n{text}");
    }
}

#[test]
fn config_from_stdin_and_shutdown_command() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child =
        Command::new(BIN).arg("-").stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let conf = format!("port {port}\nbind 127.0.0.1\ndir {}\nsave \"\"\n", dir.path().display());
    child.stdin.take().unwrap().write_all(conf.as_bytes()).unwrap();
    assert!(wait_for_port(port), "server did not start from stdin config");
    let mut c = RawConn::connect(port);
    c.send(&[b"SHUTDOWN", b"NOSAVE"]);
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigint_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["--port", &port.to_string(), "--dir", dir.path().to_str().unwrap(), "--save", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for_port(port));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(wait_exit(&mut child).success());
}

#[test]
fn a_failed_final_save_keeps_the_server_running() {
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["--port", &port.to_string(), "--dir", dir.to_str().unwrap(), "--save", "900 1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for_port(port));
    let mut c = RawConn::connect(port);
    assert_eq!(c.cmd(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    // With its directory gone the final save cannot be written: neither
    // SHUTDOWN nor SIGTERM may exit and lose the write.
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(c.cmd(&[b"SHUTDOWN"]), b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "exited although the save failed");
    assert_eq!(c.cmd(&[b"GET", b"k"]), b"$1\r\nv\r\n");
    // Only an explicit NOSAVE gives the write up.
    c.send(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(wait_exit(&mut child).success());
}

#[test]
fn flushall_with_save_points_saves_the_empty_dataset_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let args = ["--port", &port.to_string(), "--dir", dir.path().to_str().unwrap(), "--save", "3600 1"];
    let mut child = Command::new(BIN).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    assert!(wait_for_port(port));
    let mut c = RawConn::connect(port);
    assert_eq!(c.cmd(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"SAVE"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"FLUSHALL"]), b"+OK\r\n");
    // A crash now must not bring `k` back from the older dump.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = Command::new(BIN).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    assert!(wait_for_port(port));
    let mut c = RawConn::connect(port);
    assert_eq!(c.cmd(&[b"DBSIZE"]), b":0\r\n");
    c.send(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(wait_exit(&mut child).success());
}
