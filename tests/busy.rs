//! A script that runs too long: other clients (connected before or during
//! the run) get BUSY, SCRIPT KILL stops a read-only script, a script that
//! wrote cannot be killed, and SHUTDOWN NOSAVE ends the server anyway.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{RawConn, Server};

const BUSY_EVAL: &[u8] =
    b"-BUSY Valkey is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";
const BUSY_FUNCTION: &[u8] =
    b"-BUSY Valkey is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n";

fn start() -> Server {
    Server::start_with(&["--busy-reply-threshold", "100"])
}

/// Sends PING until the answer is BUSY (the script has passed the
/// threshold), returning that answer.
fn wait_for_busy(conn: &mut RawConn) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = conn.cmd(&[b"PING"]);
        if reply.starts_with(b"-BUSY") || Instant::now() > deadline {
            return reply;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_read_only_script_is_answered_busy_and_killed() {
    let server = start();
    let mut runner = server.raw();
    let mut other = server.raw();
    runner.set_timeout(Duration::from_secs(60));
    runner.send(&[b"EVAL", b"while true do end", b"0"]);
    assert_eq!(wait_for_busy(&mut other), BUSY_EVAL);
    // A pipeline gets an answer per command: argument errors as usual
    // (checked first, as in Valkey), BUSY for the rest.
    other.send_raw(b"*1\r\n$3\r\nGET\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$3\r\nFOO\r\n");
    assert_eq!(other.read_reply(), b"-ERR wrong number of arguments for 'get' command\r\n");
    assert_eq!(other.read_reply(), BUSY_EVAL);
    assert_eq!(other.read_reply(), b"-ERR unknown command 'FOO', with args beginning with: \r\n");
    // A client that connects during the run is answered too.
    let mut late = server.raw();
    assert_eq!(late.cmd(&[b"PING"]), BUSY_EVAL);
    // FUNCTION KILL is for functions only.
    assert_eq!(other.cmd(&[b"FUNCTION", b"KILL"]), BUSY_EVAL);
    assert_eq!(other.cmd(&[b"SCRIPT", b"KILL"]), b"+OK\r\n");
    let killed = runner.read_reply();
    let text = String::from_utf8_lossy(&killed);
    assert!(text.starts_with("-ERR Script killed by user with SCRIPT KILL... script: "), "{text}");
    assert!(text.ends_with(", on @user_script:1.\r\n"), "{text}");
    // Everybody is served normally again, the late client included.
    assert_eq!(other.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(late.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(runner.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(other.cmd(&[b"SCRIPT", b"KILL"]), b"-NOTBUSY No scripts in execution right now.\r\n");
}

#[test]
fn a_request_split_across_the_run_is_read_whole() {
    let server = start();
    let mut runner = server.raw();
    let mut other = server.raw();
    runner.set_timeout(Duration::from_secs(60));
    // Half a SET before the script starts, the rest while it runs.
    other.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk");
    thread::sleep(Duration::from_millis(100));
    runner.send(&[b"EVAL", b"while true do end", b"0"]);
    let mut probe = server.raw();
    assert_eq!(wait_for_busy(&mut probe), BUSY_EVAL);
    other.send_raw(b"\r\n$1\r\nv\r\n");
    assert_eq!(other.read_reply(), BUSY_EVAL);
    assert_eq!(probe.cmd(&[b"SCRIPT", b"KILL"]), b"+OK\r\n");
    assert!(runner.read_reply().starts_with(b"-ERR Script killed"));
    // The refused SET did not happen; the connection is in step.
    assert_eq!(other.cmd(&[b"GET", b"k"]), b"$-1\r\n");
}

#[test]
fn a_script_that_wrote_cannot_be_killed_but_shutdown_nosave_ends_the_server() {
    let mut server = start();
    let mut runner = server.raw();
    let mut other = server.raw();
    runner.send(&[b"EVAL", b"redis.call('set','x','y') while true do end", b"0"]);
    assert_eq!(wait_for_busy(&mut other), BUSY_EVAL);
    assert_eq!(
        other.cmd(&[b"SCRIPT", b"KILL"]),
        b"-UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.\r\n"
    );
    // A plain SHUTDOWN is refused while the script runs.
    assert_eq!(other.cmd(&[b"SHUTDOWN"]), BUSY_EVAL);
    other.send(&[b"SHUTDOWN", b"NOSAVE"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.is_running() {
        assert!(Instant::now() < deadline, "the server is still running");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_busy_function_is_stopped_by_function_kill() {
    let server = start();
    let mut setup = server.raw();
    let library = b"#!lua name=spin\nserver.register_function{function_name='spin', callback=function() while true do end end, flags={'no-writes'}}";
    let loaded = setup.cmd(&[b"FUNCTION", b"LOAD", library]);
    assert_eq!(loaded, b"$4\r\nspin\r\n");
    let mut runner = server.raw();
    runner.set_timeout(Duration::from_secs(60));
    runner.send(&[b"FCALL", b"spin", b"0"]);
    assert_eq!(wait_for_busy(&mut setup), BUSY_FUNCTION);
    assert_eq!(setup.cmd(&[b"SCRIPT", b"KILL"]), BUSY_FUNCTION);
    assert_eq!(setup.cmd(&[b"FUNCTION", b"KILL"]), b"+OK\r\n");
    // Valkey words it as for SCRIPT KILL, naming the function.
    let killed = runner.read_reply();
    assert_eq!(
        String::from_utf8_lossy(&killed),
        "-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2.\r\n"
    );
    assert_eq!(runner.cmd(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn function_stats_shows_the_running_function() {
    let server = start();
    let mut setup = server.client();
    let library = "#!lua name=spin2\nserver.register_function{function_name='spin2', callback=function() while true do end end, flags={'no-writes'}}";
    let _: String = redis::cmd("FUNCTION").arg("LOAD").arg(library).query(&mut setup).unwrap();
    let mut runner = server.raw();
    runner.set_timeout(Duration::from_secs(60));
    runner.send(&[b"FCALL", b"spin2", b"0", b"extra"]);
    let mut probe = server.raw();
    assert_eq!(wait_for_busy(&mut probe), BUSY_FUNCTION);
    let stats = String::from_utf8_lossy(&probe.cmd(&[b"FUNCTION", b"STATS"])).into_owned();
    assert!(stats.starts_with("*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$5\r\nspin2\r\n$7\r\ncommand\r\n*4\r\n$5\r\nFCALL\r\n$5\r\nspin2\r\n$1\r\n0\r\n$5\r\nextra\r\n$11\r\nduration_ms\r\n:"), "{stats}");
    assert!(stats.contains("$7\r\nengines\r\n"), "{stats}");
    assert_eq!(probe.cmd(&[b"FUNCTION", b"KILL"]), b"+OK\r\n");
    assert!(runner.read_reply().starts_with(b"-ERR Script killed"));
}
