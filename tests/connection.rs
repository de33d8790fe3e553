//! Connection commands against the real server: authentication, protocol
//! switching, CLIENT KILL / LIST / REPLY, SELECT and the idle timeout.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{RawConn, Server};

const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";

fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

/// The id a connection reports for itself.
fn client_id(conn: &mut RawConn) -> i64 {
    let reply = conn.cmd(&[b"CLIENT", b"ID"]);
    text(&reply).trim_start_matches(':').trim_end().parse().expect("CLIENT ID is an integer")
}

/// The lines of a CLIENT LIST (or INFO) reply, RESP2 bulk or RESP3 verbatim.
fn listing(reply: &[u8]) -> Vec<String> {
    let body = text(reply);
    let (_, rest) = body.split_once("\r\n").expect("a header line");
    let rest = rest.strip_prefix("txt:").unwrap_or(rest);
    rest.trim_end_matches("\r\n").lines().map(str::to_string).collect()
}

/// The value of `field=` in one CLIENT LIST line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no field {name} in {line}"))
}

#[test]
fn requirepass_gates_commands_until_auth() {
    let server = Server::start_with(&["--requirepass", "s3cret"]);
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"PING"]), NOAUTH);
    assert_eq!(c.cmd(&[b"GET", b"k"]), NOAUTH);
    assert_eq!(c.cmd(&[b"AUTH", b"wrong"]), WRONGPASS);
    assert_eq!(c.cmd(&[b"AUTH", b"someone", b"s3cret"]), WRONGPASS);
    assert_eq!(c.cmd(&[b"PING"]), NOAUTH);
    assert_eq!(c.cmd(&[b"AUTH", b"s3cret"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
    // A failed AUTH does not undo an earlier success.
    assert_eq!(c.cmd(&[b"AUTH", b"default", b"nope"]), WRONGPASS);
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
    // RESET drops the authentication.
    assert_eq!(c.cmd(&[b"RESET"]), b"+RESET\r\n");
    assert_eq!(c.cmd(&[b"PING"]), NOAUTH);
    assert_eq!(c.cmd(&[b"AUTH", b"default", b"s3cret"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn hello_authenticates_and_refuses_without_credentials() {
    let server = Server::start_with(&["--requirepass", "s3cret"]);
    let mut c = server.raw();
    let refused = c.cmd(&[b"HELLO", b"3"]);
    assert!(
        text(&refused).starts_with("-NOAUTH HELLO must be called with the client already authenticated"),
        "{}",
        text(&refused)
    );
    assert_eq!(c.cmd(&[b"HELLO", b"3", b"AUTH", b"default", b"bad"]), WRONGPASS);
    assert_eq!(c.cmd(&[b"PING"]), NOAUTH);
    let hello = c.cmd(&[b"HELLO", b"3", b"AUTH", b"default", b"s3cret", b"SETNAME", b"authed"]);
    assert!(hello.starts_with(b"%7\r\n$6\r\nserver\r\n$6\r\nvalkey\r\n"), "{}", text(&hello));
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(c.cmd(&[b"CLIENT", b"GETNAME"]), b"$6\r\nauthed\r\n");
    // RESET: back to RESP2, unnamed and unauthenticated.
    assert_eq!(c.cmd(&[b"RESET"]), b"+RESET\r\n");
    assert_eq!(c.cmd(&[b"PING"]), NOAUTH);
    assert_eq!(c.cmd(&[b"AUTH", b"s3cret"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"CLIENT", b"GETNAME"]), b"$-1\r\n");
}

#[test]
fn hello_switches_the_protocol() {
    let server = Server::start();
    let mut c = server.raw();
    let id = client_id(&mut c);
    let expected_tail = format!(
        "$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
    );
    let hello = c.cmd(&[b"HELLO", b"3"]);
    assert_eq!(
        text(&hello),
        format!("%7\r\n$6\r\nserver\r\n$6\r\nvalkey\r\n$7\r\nversion\r\n$5\r\n8.0.1\r\n{expected_tail}")
    );
    // Replies are RESP3 from now on: nulls and verbatim strings change.
    assert_eq!(c.cmd(&[b"CLIENT", b"GETNAME"]), b"_\r\n");
    let info = c.cmd(&[b"CLIENT", b"INFO"]);
    assert!(info.starts_with(b"="), "{}", text(&info));
    assert_eq!(field(&listing(&info)[0], "resp"), "3");
    // HELLO 2 goes back; a flat array of 14.
    let hello2 = c.cmd(&[b"HELLO", b"2"]);
    assert!(hello2.starts_with(b"*14\r\n"), "{}", text(&hello2));
    assert_eq!(c.cmd(&[b"CLIENT", b"GETNAME"]), b"$-1\r\n");
    assert_eq!(c.cmd(&[b"HELLO", b"4"]), b"-NOPROTO unsupported protocol version\r\n");
}

#[test]
fn quit_answers_then_closes() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"QUIT"]), b"+OK\r\n");
    assert!(c.is_closed(Duration::from_secs(5)));
}

#[test]
fn client_kill_closes_the_other_connection() {
    let server = Server::start();
    let mut victim = server.raw();
    let mut killer = server.raw();
    let victim_id = client_id(&mut victim);
    let id_arg = victim_id.to_string();
    assert_eq!(killer.cmd(&[b"CLIENT", b"KILL", b"ID", id_arg.as_bytes()]), b":1\r\n");
    assert!(victim.is_closed(Duration::from_secs(5)), "the killed connection is still open");
    // It is gone at once: a second kill finds nobody, the list omits it.
    assert_eq!(killer.cmd(&[b"CLIENT", b"KILL", b"ID", id_arg.as_bytes()]), b":0\r\n");
    let list = listing(&killer.cmd(&[b"CLIENT", b"LIST"]));
    assert!(list.iter().all(|l| field(l, "id") != id_arg), "{list:?}");

    // The old form takes the peer address and answers +OK.
    let mut other = server.raw();
    // A round trip first, so the server has surely accepted it.
    assert_eq!(other.cmd(&[b"PING"]), b"+PONG\r\n");
    let addr = other.stream().local_addr().unwrap().to_string();
    assert_eq!(killer.cmd(&[b"CLIENT", b"KILL", addr.as_bytes()]), b"+OK\r\n");
    assert!(other.is_closed(Duration::from_secs(5)));
    assert_eq!(killer.cmd(&[b"CLIENT", b"KILL", addr.as_bytes()]), b"-ERR No such client\r\n");

    // SKIPME (the default) spares the caller; SKIPME no kills it after the reply.
    let own = client_id(&mut killer).to_string();
    assert_eq!(killer.cmd(&[b"CLIENT", b"KILL", b"ID", own.as_bytes()]), b":0\r\n");
    assert_eq!(killer.cmd(&[b"CLIENT", b"KILL", b"ID", own.as_bytes(), b"SKIPME", b"no"]), b":1\r\n");
    assert!(killer.is_closed(Duration::from_secs(5)));
}

#[test]
fn client_list_shows_every_client_with_its_name() {
    let server = Server::start();
    let mut conns: Vec<RawConn> = (0..3).map(|_| server.raw()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let name = format!("conn-{i}");
        assert_eq!(c.cmd(&[b"CLIENT", b"SETNAME", name.as_bytes()]), b"+OK\r\n");
    }
    let lines = listing(&conns[0].cmd(&[b"CLIENT", b"LIST"]));
    assert_eq!(lines.len(), 3, "{lines:?}");
    let mut names: Vec<&str> = lines.iter().map(|l| field(l, "name")).collect();
    names.sort();
    assert_eq!(names, ["conn-0", "conn-1", "conn-2"]);
    for line in &lines {
        assert_eq!(field(line, "user"), "default");
        assert_eq!(field(line, "flags"), "N");
    }
    let caller = lines.iter().find(|l| field(l, "name") == "conn-0").unwrap();
    assert_eq!(field(caller, "cmd"), "client|list");
    assert_eq!(field(caller, "argv-mem"), "10");

    assert_eq!(listing(&conns[1].cmd(&[b"CLIENT", b"LIST", b"TYPE", b"normal"])).len(), 3);
    assert!(listing(&conns[1].cmd(&[b"CLIENT", b"LIST", b"TYPE", b"pubsub"])).is_empty());
    let second = client_id(&mut conns[1]).to_string();
    let by_id = listing(&conns[0].cmd(&[b"CLIENT", b"LIST", b"ID", second.as_bytes(), b"999999"]));
    assert_eq!(by_id.len(), 1);
    assert_eq!(field(&by_id[0], "name"), "conn-1");

    // A client that disconnects leaves the list.
    conns.pop().unwrap().close();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = listing(&conns[0].cmd(&[b"CLIENT", b"LIST"])).len();
        if n == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "still {n} clients listed");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn client_reply_off_and_skip_silence_replies() {
    let server = Server::start();
    let mut c = server.raw();
    // Pipelined: only the replies that are not silenced come back, in order.
    let mut pipeline = Vec::new();
    for cmd in [
        &[&b"CLIENT"[..], b"REPLY", b"OFF"][..],
        &[b"SET", b"k", b"1"],
        &[b"GET", b"k"],
        &[b"NOSUCHCOMMAND"],
        &[b"CLIENT", b"REPLY", b"ON"],
        &[b"GET", b"k"],
        &[b"CLIENT", b"REPLY", b"SKIP"],
        &[b"SET", b"k", b"2"],
        &[b"GET", b"k"],
    ] {
        pipeline.extend(common::encode_command(cmd));
    }
    c.send_raw(&pipeline);
    assert_eq!(c.read_reply(), b"+OK\r\n");
    assert_eq!(c.read_reply(), b"$1\r\n1\r\n");
    assert_eq!(c.read_reply(), b"$1\r\n2\r\n");
    c.set_timeout(Duration::from_millis(300));
    assert!(c.try_read_reply().is_err(), "an extra reply: {}", text(c.pending()));
}

#[test]
fn select_keeps_databases_apart() {
    let server = Server::start();
    let mut con = server.client();
    let _: () = redis::cmd("SET").arg("k").arg("zero").query(&mut con).unwrap();
    let _: () = redis::cmd("SELECT").arg(1).query(&mut con).unwrap();
    let missing: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(missing, None);
    let _: () = redis::cmd("SET").arg("k").arg("one").query(&mut con).unwrap();
    // Another connection starts in db 0.
    let mut other = server.client();
    let v: String = redis::cmd("GET").arg("k").query(&mut other).unwrap();
    assert_eq!(v, "zero");
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, "zero");
    let _: () = redis::cmd("SELECT").arg(1).query(&mut con).unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, "one");
    let err = redis::cmd("SELECT").arg(16).query::<()>(&mut con).unwrap_err();
    assert!(err.to_string().contains("DB index is out of range"), "{err}");

    let mut raw = server.raw();
    assert_eq!(raw.cmd(&[b"SELECT", b"5"]), b"+OK\r\n");
    let info = listing(&raw.cmd(&[b"CLIENT", b"INFO"]));
    assert_eq!(field(&info[0], "db"), "5");
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let server = Server::start_with(&["--timeout", "1"]);
    let mut idle = server.raw();
    let mut busy = server.raw();
    assert_eq!(idle.cmd(&[b"PING"]), b"+PONG\r\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut closed = false;
    while Instant::now() < deadline {
        // The busy client keeps talking, so it must stay connected.
        assert_eq!(busy.cmd(&[b"PING"]), b"+PONG\r\n");
        if idle.is_closed(Duration::from_millis(300)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the idle client was not closed within 15 s");
    assert_eq!(busy.cmd(&[b"PING"]), b"+PONG\r\n");
}

/// A pipeline of `count` ECHO requests of 64 KiB each (64 MiB both ways for
/// 1,024: more than the loopback socket buffers hold), each payload starting
/// with its index.
fn echo_pipeline(count: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    const PAYLOAD: usize = 64 * 1024;
    let mut requests = Vec::with_capacity(count * (PAYLOAD + 32));
    let mut payloads = Vec::with_capacity(count);
    for i in 0..count {
        let mut payload = format!("{i:08}").into_bytes();
        payload.resize(PAYLOAD, b'x');
        requests.extend_from_slice(format!("*2\r\n$4\r\nECHO\r\n${PAYLOAD}\r\n").as_bytes());
        requests.extend_from_slice(&payload);
        requests.extend_from_slice(b"\r\n");
        payloads.push(payload);
    }
    (requests, payloads)
}

#[test]
fn a_pipeline_sent_whole_before_any_reply_is_read_is_answered() {
    // redis-py and others send a whole pipeline before reading a reply. The
    // server must keep reading while its replies wait for the peer, or both
    // sides end up blocked writing (the send below would time out).
    let server = Server::start();
    let mut c = server.raw();
    let (requests, payloads) = echo_pipeline(1024);
    c.send_raw(&requests);
    for (i, payload) in payloads.iter().enumerate() {
        let mut expected = format!("${}\r\n", payload.len()).into_bytes();
        expected.extend_from_slice(payload);
        expected.extend_from_slice(b"\r\n");
        assert!(c.read_reply() == expected, "reply {i} is not its payload");
    }
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn a_subscriber_stuck_behind_its_own_replies_is_closed_at_its_output_limit() {
    // A subscriber sends a long pipeline and reads nothing (Celery's result
    // listener does this with SUBSCRIBE). Its replies fill the socket; the
    // messages published to it then pass the pub/sub output limit, and it
    // must be closed even though its connection is waiting to write.
    let server = Server::start();
    let mut admin = server.raw();
    assert_eq!(admin.cmd(&[b"CONFIG", b"SET", b"client-output-buffer-limit", b"pubsub 1mb 0 0"]), b"+OK\r\n");
    let mut subscriber = server.raw();
    subscriber.cmd(&[b"SUBSCRIBE", b"news"]);
    let mut pings = Vec::new();
    let payload = vec![b'p'; 64 * 1024];
    for _ in 0..1024 {
        pings.extend_from_slice(format!("*2\r\n$4\r\nPING\r\n${}\r\n", payload.len()).as_bytes());
        pings.extend_from_slice(&payload);
        pings.extend_from_slice(b"\r\n");
    }
    // The server may close it before it has sent everything (Valkey runs
    // the whole pipeline at once, and the PING replies alone pass 1mb).
    let _ = subscriber.try_send_raw(&pings);

    let message = vec![b'm'; 100 * 1024];
    for _ in 0..20 {
        // :1 until the subscriber is closed, :0 after.
        let receivers = admin.cmd(&[b"PUBLISH", b"news", &message]);
        assert!(receivers == b":1\r\n" || receivers == b":0\r\n", "{}", text(&receivers));
    }
    // Its connection ends without the subscriber reading a byte (reading
    // would let a connection stuck writing go on).
    let deadline = Instant::now() + Duration::from_secs(15);
    let disconnected = |admin: &mut RawConn| {
        text(&admin.cmd(&[b"INFO", b"stats"])).contains("client_output_buffer_limit_disconnections:1\r\n")
    };
    while !disconnected(&mut admin) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(disconnected(&mut admin), "the subscriber over its output limit is still connected");
    let mut closed = false;
    while !closed && Instant::now() < deadline {
        closed = subscriber.is_closed(Duration::from_millis(200));
    }
    assert!(closed, "the subscriber's socket is still open");
}
