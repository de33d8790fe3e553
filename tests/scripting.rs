//! Lua scripting through the real server: EVAL and the script cache, the
//! conversions both ways, errors, the sandbox, and how scripts live with
//! other clients (atomicity, blocked clients, WATCH, pushes, busy scripts).

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{RawConn, Server};

fn eval(c: &mut RawConn, script: &str, args: &[&str]) -> Vec<u8> {
    let numkeys = "0";
    let mut cmd: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), numkeys.as_bytes()];
    cmd.extend(args.iter().map(|a| a.as_bytes()));
    c.cmd(&cmd)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn info_field(c: &mut RawConn, section: &str, field: &str) -> String {
    let reply = text(&c.cmd(&[b"INFO", section.as_bytes()]));
    reply
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {field} in {reply}"))
}

#[test]
fn lua_values_become_replies() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(eval(&mut c, "return 3.99", &[]), b":3\r\n");
    assert_eq!(eval(&mut c, "return 'x'", &[]), b"$1\r\nx\r\n");
    assert_eq!(eval(&mut c, "return {1, 'two', {3}, nil, 5}", &[]), b"*3\r\n:1\r\n$3\r\ntwo\r\n*1\r\n:3\r\n");
    assert_eq!(eval(&mut c, "return true", &[]), b":1\r\n");
    assert_eq!(eval(&mut c, "return false", &[]), b"$-1\r\n");
    assert_eq!(eval(&mut c, "return {ok='FINE'}", &[]), b"+FINE\r\n");
    assert_eq!(eval(&mut c, "return {err='CODE message'}", &[]), b"-CODE message\r\n");
    assert_eq!(eval(&mut c, "return {double=2.5}", &[]), b"$3\r\n2.5\r\n");
    assert_eq!(eval(&mut c, "return {map={k='v'}}", &[]), b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n");
    // The caller's protocol decides the shapes; the script's decides booleans.
    assert_eq!(c.cmd(&[b"HELLO", b"3"])[0], b'%');
    assert_eq!(eval(&mut c, "return false", &[]), b"_\r\n");
    assert_eq!(eval(&mut c, "redis.setresp(3) return false", &[]), b"#f\r\n");
    assert_eq!(eval(&mut c, "return {double=2.5}", &[]), b",2.5\r\n");
    assert_eq!(eval(&mut c, "return {map={k='v'}}", &[]), b"%1\r\n$1\r\nk\r\n$1\r\nv\r\n");
    assert_eq!(eval(&mut c, "return {set={m=true}}", &[]), b"~1\r\n$1\r\nm\r\n");
    assert_eq!(eval(&mut c, "return {big_number='12345678901234567890'}", &[]), b"(12345678901234567890\r\n");
    assert_eq!(eval(&mut c, "return {verbatim_string={format='txt', string='hi'}}", &[]), b"=6\r\ntxt:hi\r\n");
}

#[test]
fn replies_become_lua_values() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&[b"RPUSH", b"list", b"a", b"b"]);
    c.cmd(&[b"HSET", b"hash", b"f", b"v"]);
    let types = "return {type(redis.call('get', 'missing')), type(redis.call('llen', 'list')), \
                 type(redis.call('lrange', 'list', 0, -1)), type(redis.call('ping').ok)}";
    assert_eq!(eval(&mut c, types, &[]), b"*4\r\n$7\r\nboolean\r\n$6\r\nnumber\r\n$5\r\ntable\r\n$6\r\nstring\r\n");
    let resp3 = "redis.setresp(3) local h = redis.call('hgetall', 'hash') \
                 return {type(redis.call('get', 'missing')), h.map.f}";
    assert_eq!(eval(&mut c, resp3, &[]), b"*2\r\n$3\r\nnil\r\n$1\r\nv\r\n");
    let error = "local e = redis.pcall('incr', 'list') return {type(e), e.err}";
    assert_eq!(
        eval(&mut c, error, &[]),
        b"*2\r\n$5\r\ntable\r\n$65\r\nWRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    // Numbers are sent as Valkey prints them.
    eval(&mut c, "redis.call('set', 'n', 0.1) redis.call('set', 'm', 2^60)", &[]);
    assert_eq!(c.cmd(&[b"MGET", b"n", b"m"]), b"*2\r\n$3\r\n0.1\r\n$19\r\n1152921504606846976\r\n");
}

#[test]
fn errors_name_the_script_and_line() {
    let server = Server::start();
    let mut c = server.raw();
    let script = "local x = 1\nerror('boom')";
    let reply = text(&eval(&mut c, script, &[]));
    let sha = sha1(script.as_bytes());
    assert_eq!(reply, format!("-ERR user_script:2: boom script: {sha}, on @user_script:2.\r\n"));
    let reply = text(&eval(&mut c, "return redis.call('nosuch')", &[]));
    assert!(reply.starts_with("-ERR Unknown command called from script script: "), "{reply}");
    let reply = text(&eval(&mut c, "return (", &[]));
    assert!(reply.starts_with("-ERR Error compiling script (new function): user_script:1:"), "{reply}");
    // The error counts once, under its code.
    c.cmd(&[b"CONFIG", b"RESETSTAT"]);
    eval(&mut c, "return redis.call('incr', KEYS)", &[]);
    eval(&mut c, "return {err='MYCODE detail'}", &[]);
    let stats = text(&c.cmd(&[b"INFO", b"errorstats"]));
    assert!(stats.contains("errorstat_ERR:count=1"), "{stats}");
    assert!(stats.contains("errorstat_MYCODE:count=1"), "{stats}");
}

/// The SHA1 of a script, as a lower-case hex string.
fn sha1(body: &[u8]) -> String {
    String::from_utf8(ferrokey::scripting::engine::sha1_hex(body).to_vec()).unwrap()
}

#[test]
fn the_sandbox_holds() {
    let server = Server::start();
    let mut c = server.raw();
    for (script, expected) in [
        ("x = 1", "Attempt to modify a readonly table"),
        ("return undefined", "Script attempted to access nonexistent global variable 'undefined'"),
        ("redis.call = nil", "Attempt to modify a readonly table"),
        ("rawset(string, 'x', 1)", "Attempt to modify a readonly table"),
        ("setmetatable(_G, nil)", "Attempt to modify a readonly table"),
        ("getfenv(tostring).x = 1", "Attempt to modify a readonly table"),
        ("return os.execute('true')", "attempt to call field 'execute' (a nil value)"),
        ("return print('x')", "nonexistent global variable 'print'"),
        ("return loadstring(string.dump(function() end))()", "attempt to call a nil value"),
    ] {
        let reply = text(&eval(&mut c, script, &[]));
        assert!(reply.starts_with("-ERR ") && reply.contains(expected), "{script}: {reply}");
    }
    // The protection is still whole after all that.
    assert_eq!(eval(&mut c, "return redis.call('ping').ok", &[]), b"$4\r\nPONG\r\n");
    assert_eq!(eval(&mut c, "return string.upper('ok')", &[]), b"$2\r\nOK\r\n");
}

#[test]
fn script_cache_and_evalsha() {
    let server = Server::start();
    let mut c = server.raw();
    let sha = text(&c.cmd(&[b"SCRIPT", b"LOAD", b"return ARGV[1]"]));
    let sha = sha.lines().nth(1).unwrap().to_string();
    assert_eq!(c.cmd(&[b"EVALSHA", sha.as_bytes(), b"0", b"hi"]), b"$2\r\nhi\r\n");
    assert_eq!(c.cmd(&[b"EVALSHA", sha.to_uppercase().as_bytes(), b"0", b"x"]), b"$1\r\nx\r\n");
    assert_eq!(info_field(&mut c, "memory", "number_of_cached_scripts"), "1");
    assert_eq!(c.cmd(&[b"SCRIPT", b"FLUSH"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"EVALSHA", sha.as_bytes(), b"0"]), b"-NOSCRIPT No matching script.\r\n");
    assert_eq!(info_field(&mut c, "memory", "number_of_cached_scripts"), "0");

    // Through the redis crate: EVALSHA's NOSCRIPT, then EVAL.
    let mut client = server.client();
    let body = "return {tonumber(ARGV[1]) * 2, KEYS[1]}";
    let missing: redis::RedisResult<redis::Value> =
        redis::cmd("EVALSHA").arg(sha1(body.as_bytes())).arg(1).arg("key").arg(21).query(&mut client);
    assert_eq!(missing.unwrap_err().code(), Some("NOSCRIPT"));
    let (doubled, key): (i64, String) =
        redis::cmd("EVAL").arg(body).arg(1).arg("key").arg(21).query(&mut client).unwrap();
    assert_eq!((doubled, key.as_str()), (42, "key"));
}

#[test]
fn eval_scripts_are_evicted_beyond_500_but_loaded_ones_stay() {
    let server = Server::start();
    let mut c = server.raw();
    let loaded = text(&c.cmd(&[b"SCRIPT", b"LOAD", b"return 'loaded'"]));
    let loaded = loaded.lines().nth(1).unwrap().to_string();
    for i in 0..501 {
        let body = format!("return {i}");
        assert_eq!(eval(&mut c, &body, &[]), format!(":{i}\r\n").into_bytes());
    }
    assert_eq!(info_field(&mut c, "stats", "evicted_scripts"), "1");
    assert_eq!(info_field(&mut c, "memory", "number_of_cached_scripts"), "501");
    // The first EVAL script went, the loaded one stayed, the last is there.
    let first = sha1(b"return 0");
    let last = sha1(b"return 500");
    let exists = c.cmd(&[b"SCRIPT", b"EXISTS", first.as_bytes(), loaded.as_bytes(), last.as_bytes()]);
    assert_eq!(exists, b"*3\r\n:0\r\n:1\r\n:1\r\n");
}

#[test]
fn blocking_commands_in_scripts_answer_at_once() {
    let server = Server::start();
    let mut c = server.raw();
    let started = Instant::now();
    assert_eq!(eval(&mut c, "return redis.call('blpop', 'empty', 0)", &[]), b"$-1\r\n");
    assert_eq!(eval(&mut c, "return redis.call('bzpopmax', 'empty', 5)", &[]), b"$-1\r\n");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(info_field(&mut c, "clients", "blocked_clients"), "0");
}

#[test]
fn script_writes_wake_blocked_clients_and_touch_watched_keys() {
    let server = Server::start();
    let mut waiter = server.raw();
    let mut watcher = server.raw();
    let mut writer = server.raw();
    waiter.send(&[b"BLPOP", b"queue", b"0"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut writer, "clients", "blocked_clients") != "1" {
        assert!(Instant::now() < deadline, "the waiter never blocked");
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(watcher.cmd(&[b"WATCH", b"guarded"]), b"+OK\r\n");
    let script = "redis.call('rpush', 'queue', 'job') redis.call('set', 'guarded', 'changed') return 'ok'";
    assert_eq!(eval(&mut writer, script, &[]), b"$2\r\nok\r\n");
    assert_eq!(waiter.read_reply(), b"*2\r\n$5\r\nqueue\r\n$3\r\njob\r\n");
    watcher.cmd(&[b"MULTI"]);
    watcher.cmd(&[b"SET", b"guarded", b"mine"]);
    assert_eq!(watcher.cmd(&[b"EXEC"]), b"*-1\r\n");
}

#[test]
fn scripts_run_atomically() {
    let server = Server::start();
    let mut runner = server.raw();
    let mut observer = server.raw();
    let script = "for i = 1, 20000 do redis.call('incr', 'counter') end return 'done'";
    runner.send(&[b"EVAL", script.as_bytes(), b"0"]);
    // Whenever the observer gets in, it sees none or all of the script.
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(text(&observer.cmd(&[b"GET", b"counter"])));
    }
    assert_eq!(runner.read_reply(), b"$4\r\ndone\r\n");
    for value in seen {
        assert!(value == "$-1\r\n" || value == "$5\r\n20000\r\n", "saw {value:?}");
    }
}

#[test]
fn pushes_follow_the_script_reply() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&[b"HELLO", b"3"]);
    c.cmd(&[b"SUBSCRIBE", b"news"]);
    let script = "redis.call('publish', 'news', 'first') return 'sent'";
    assert_eq!(eval(&mut c, script, &[]), b"$4\r\nsent\r\n");
    assert_eq!(c.read_reply(), b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nfirst\r\n");
}

#[test]
fn select_inside_a_script_stays_inside() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(eval(&mut c, "redis.call('select', 3) redis.call('set', 'k', 'v') return 1", &[]), b":1\r\n");
    assert_eq!(c.cmd(&[b"GET", b"k"]), b"$-1\r\n");
    c.cmd(&[b"SELECT", b"3"]);
    assert_eq!(c.cmd(&[b"GET", b"k"]), b"$1\r\nv\r\n");
    // A script starts in its caller's database.
    assert_eq!(eval(&mut c, "return redis.call('get', 'k')", &[]), b"$1\r\nv\r\n");
}

#[test]
fn deep_big_and_runaway_values_never_crash() {
    let server = Server::start();
    let mut c = server.raw();
    // Nesting deeper than Lua's stack allows ends in Valkey's error, at
    // the same depth as Valkey (7995 arrays, then the error).
    // (Read as bytes: the test client's parser refuses such nesting.)
    let deep = "local t = {} local c = t for i = 1, 10000 do c[1] = {} c = c[1] end return t";
    c.send(&[b"EVAL", deep.as_bytes(), b"0"]);
    let reply = read_until(&c, b"-ERR reached lua stack limit\r\n");
    assert_eq!(reply.windows(4).filter(|w| w == b"*1\r\n").count(), 7995);
    c.send(&[b"EVAL", b"local t = {} t[1] = t return t", b"0"]);
    read_until(&c, b"-ERR reached lua stack limit\r\n");
    let recursion = text(&eval(&mut c, "local function f() return f() + 1 end return f()", &[]));
    assert!(recursion.contains("stack overflow"), "{recursion}");
    let big = eval(&mut c, "local t = {} for i = 1, 200000 do t[i] = i end return #t", &[]);
    assert_eq!(big, b":200000\r\n");
    let huge_reply = eval(&mut c, "local t = {} for i = 1, 100000 do t[i] = 'x' end return t", &[]);
    assert!(huge_reply.starts_with(b"*100000\r\n"));
    let gc = "local p = newproxy(true) getmetatable(p).__gc = function() error('in gc') end p = nil \
              collectgarbage() return 'survived'";
    let reply = text(&eval(&mut c, gc, &[]));
    assert!(reply.starts_with("$8\r\nsurvived") || reply.starts_with("-ERR"), "{reply}");
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
}

/// Reads raw bytes from the connection until they end with `end`.
fn read_until(c: &RawConn, end: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut stream = c.stream();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0u8; 65536];
    while !reply.ends_with(end) {
        let n = stream.read(&mut chunk).expect("the reply's rest");
        assert!(n > 0, "connection closed after {} bytes", reply.len());
        reply.extend_from_slice(&chunk[..n]);
    }
    reply
}

#[test]
fn a_busy_script_can_be_killed() {
    let server = Server::start();
    let mut runner = server.raw();
    let mut other = server.raw();
    assert_eq!(other.cmd(&[b"CONFIG", b"SET", b"lua-time-limit", b"100"]), b"+OK\r\n");
    let script = "local i = 0 while true do i = i + 1 end";
    runner.send(&[b"EVAL", script.as_bytes(), b"0"]);
    thread::sleep(Duration::from_millis(400));
    assert_eq!(
        other.cmd(&[b"PING"]),
        b"-BUSY Valkey is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
    );
    // A client that connects now is answered too, and adopted afterwards.
    let mut newcomer = server.raw();
    assert!(text(&newcomer.cmd(&[b"PING"])).starts_with("-BUSY"));
    assert_eq!(other.cmd(&[b"SCRIPT", b"KILL"]), b"+OK\r\n");
    let killed = text(&runner.read_reply());
    assert_eq!(
        killed,
        format!(
            "-ERR Script killed by user with SCRIPT KILL... script: {}, on @user_script:1.\r\n",
            sha1(script.as_bytes())
        )
    );
    assert_eq!(other.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(runner.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(newcomer.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(other.cmd(&[b"SCRIPT", b"KILL"]), b"-NOTBUSY No scripts in execution right now.\r\n");
    // A pcall in the script cannot swallow the kill.
    let stubborn = "while true do pcall(function() while true do end end) end";
    runner.send(&[b"EVAL", stubborn.as_bytes(), b"0"]);
    thread::sleep(Duration::from_millis(400));
    assert_eq!(other.cmd(&[b"SCRIPT", b"KILL"]), b"+OK\r\n");
    assert!(text(&runner.read_reply()).starts_with("-ERR Script killed by user with SCRIPT KILL..."));
}

#[test]
fn a_script_that_wrote_cannot_be_killed() {
    let mut server = Server::start();
    let mut runner = server.raw();
    let mut other = server.raw();
    other.cmd(&[b"CONFIG", b"SET", b"busy-reply-threshold", b"100"]);
    runner.send(&[b"EVAL", b"redis.call('set', 'k', 'v') while true do end", b"0"]);
    thread::sleep(Duration::from_millis(400));
    let refused = text(&other.cmd(&[b"SCRIPT", b"KILL"]));
    assert!(refused.starts_with("-UNKILLABLE Sorry the script already executed write commands"), "{refused}");
    other.send(&[b"SHUTDOWN", b"NOSAVE"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.is_running() {
        assert!(Instant::now() < deadline, "SHUTDOWN NOSAVE did not end the server");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn eval_inside_multi_does_not_block() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&[b"MULTI"]);
    c.cmd(&[b"EVAL", b"return redis.call('blpop', 'nothing', 0)", b"0"]);
    c.cmd(&[b"EVAL", b"return redis.call('incr', 'n')", b"0"]);
    assert_eq!(c.cmd(&[b"EXEC"]), b"*2\r\n$-1\r\n:1\r\n");
}

#[test]
fn info_reports_the_lua_state() {
    let server = Server::start();
    let mut c = server.raw();
    eval(&mut c, "local t = {} for i = 1, 10000 do t[i] = tostring(i) end _t = t", &[]);
    let vm: u64 = info_field(&mut c, "memory", "used_memory_vm_eval").parse().unwrap();
    assert!(vm > 0);
    assert_eq!(info_field(&mut c, "memory", "used_memory_lua"), vm.to_string());
    assert_eq!(info_field(&mut c, "memory", "number_of_cached_scripts"), "1");
}
