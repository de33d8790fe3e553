//! Client-side caching, CLIENT PAUSE and output buffer limits against the
//! real server: invalidations for keys read and then changed by another
//! client, expired or flushed; RESP2 redirection to a `__redis__:invalidate`
//! subscriber; BCAST, OPTIN/OPTOUT and NOLOOP; the tracking table limit;
//! redis-py's own client-side cache; paused clients; and a slow subscriber
//! disconnected at its output buffer limit while others keep their pace.
//! Expected bytes were taken from valkey-server 8.0.1.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{escape, eventually, RawConn, Server};

/// The RESP3 push invalidating `keys`.
fn invalidation(keys: &[&str]) -> Vec<u8> {
    let mut out = format!(">2\r\n$10\r\ninvalidate\r\n*{}\r\n", keys.len()).into_bytes();
    for key in keys {
        out.extend_from_slice(format!("${}\r\n{key}\r\n", key.len()).as_bytes());
    }
    out
}

/// The RESP3 push invalidating everything (after a flush).
const INVALIDATE_ALL: &[u8] = b">2\r\n$10\r\ninvalidate\r\n_\r\n";

fn resp3(server: &Server) -> RawConn {
    let mut c = server.raw();
    c.cmd(&[b"HELLO", b"3"]);
    c
}

fn client_id(c: &mut RawConn) -> String {
    let reply = c.cmd(&[b"CLIENT", b"ID"]);
    String::from_utf8_lossy(&reply[1..reply.len() - 2]).into_owned()
}

fn ok(c: &mut RawConn, line: &str) {
    let reply = c.cmd_line(line);
    assert_eq!(reply, b"+OK\r\n", "{line} answered {}", escape(&reply));
}

/// Asserts that nothing arrives on `c` for a moment.
fn expect_silence(c: &mut RawConn) {
    assert!(!c.is_closed(Duration::from_millis(150)), "connection closed");
    assert!(c.pending().is_empty(), "unexpected: {}", escape(c.pending()));
}

fn expect_push(c: &mut RawConn, expected: &[u8]) {
    let got = c.read_reply();
    assert_eq!(escape(&got), escape(expected));
}

fn info_field(c: &mut RawConn, field: &str) -> String {
    let reply = c.cmd(&[b"INFO", b"everything"]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {field} in INFO"))
}

/// The CLIENT LIST line of client `id`, if it is connected.
fn client_line(c: &mut RawConn, id: &str) -> Option<String> {
    let reply = c.cmd(&[b"CLIENT", b"LIST"]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines().find(|l| l.contains(&format!("id={id} "))).map(str::to_string)
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ').find_map(|f| f.strip_prefix(&format!("{name}="))).unwrap_or_else(|| panic!("no {name} in {line}"))
}

// ---------------------------------------------------------------------------
// Client-side caching
// ---------------------------------------------------------------------------

#[test]
fn every_key_read_is_invalidated_when_changed_expired_or_flushed() {
    let server = Server::start();
    let mut tracker = resp3(&server);
    let mut writer = server.raw();
    ok(&mut tracker, "CLIENT TRACKING on");

    // Read, then changed by another client: one push per key, once.
    let keys: Vec<String> = (0..50).map(|i| format!("key:{i}")).collect();
    for key in &keys {
        tracker.cmd_line(&format!("GET {key}"));
    }
    assert_eq!(info_field(&mut writer, "tracking_total_keys"), "50");
    assert_eq!(info_field(&mut writer, "tracking_total_items"), "50");
    assert_eq!(info_field(&mut writer, "tracking_clients"), "1");
    for key in &keys {
        ok(&mut writer, &format!("SET {key} v"));
        expect_push(&mut tracker, &invalidation(&[key]));
    }
    ok(&mut writer, "SET key:0 again");
    expect_silence(&mut tracker);
    assert_eq!(info_field(&mut writer, "tracking_total_keys"), "0");

    // Read through MGET, a hash, a set: each key invalidated.
    writer.cmd_line("HSET h f v");
    tracker.cmd_line("MGET m1 m2");
    tracker.cmd_line("HGET h f");
    ok(&mut writer, "MSET m1 1 m2 2");
    expect_push(&mut tracker, &invalidation(&["m1"]));
    expect_push(&mut tracker, &invalidation(&["m2"]));
    writer.cmd_line("HDEL h f");
    expect_push(&mut tracker, &invalidation(&["h"]));

    // Expired by the active expiry: the tracker learns it without asking.
    ok(&mut writer, "SET temp v PX 50");
    assert_eq!(tracker.cmd_line("GET temp"), b"$1\r\nv\r\n");
    tracker.set_timeout(Duration::from_secs(5));
    expect_push(&mut tracker, &invalidation(&["temp"]));
    assert_eq!(writer.cmd_line("EXISTS temp"), b":0\r\n");

    // A flush invalidates everything at once.
    tracker.cmd_line("GET f");
    ok(&mut writer, "FLUSHALL");
    expect_push(&mut tracker, INVALIDATE_ALL);
    ok(&mut writer, "SET f x");
    expect_silence(&mut tracker);

    // The client's own write: the push follows its reply.
    tracker.cmd_line("GET own");
    tracker.send_line("SET own 1");
    assert_eq!(tracker.read_reply(), b"+OK\r\n");
    expect_push(&mut tracker, &invalidation(&["own"]));

    let list = tracker.cmd(&[b"CLIENT", b"INFO"]);
    let text = String::from_utf8_lossy(&list);
    assert_eq!(field(&text, "flags"), "t");
    assert_eq!(field(&text, "redir"), "0");
}

#[test]
fn resp2_clients_get_invalidations_through_a_redirect_subscriber() {
    let server = Server::start();
    let mut subscriber = server.raw();
    let mut tracker = server.raw();
    let mut writer = server.raw();
    let subscriber_id = client_id(&mut subscriber);
    subscriber.cmd_line("SUBSCRIBE __redis__:invalidate");
    ok(&mut tracker, &format!("CLIENT TRACKING on REDIRECT {subscriber_id}"));
    assert_eq!(tracker.cmd_line("CLIENT GETREDIR"), format!(":{subscriber_id}\r\n").into_bytes());

    tracker.cmd_line("GET a");
    ok(&mut writer, "SET a 1");
    expect_push(&mut subscriber, b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\na\r\n");
    // The tracker itself, in RESP2, receives nothing.
    expect_silence(&mut tracker);

    ok(&mut writer, "FLUSHDB");
    expect_push(&mut subscriber, b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n");

    let line = client_line(&mut writer, &client_id(&mut tracker)).unwrap();
    assert_eq!(field(&line, "flags"), "t");
    assert_eq!(field(&line, "redir"), subscriber_id);

    // The target goes away: a RESP3 tracker is told, and its mode shows it.
    let mut tracker3 = resp3(&server);
    let mut target = server.raw();
    let target_id = client_id(&mut target);
    ok(&mut tracker3, &format!("CLIENT TRACKING on REDIRECT {target_id}"));
    tracker3.cmd_line("GET b");
    target.close();
    eventually(|| client_line(&mut writer, &target_id).is_none(), "the target disconnect");
    ok(&mut writer, "SET b 1");
    expect_push(&mut tracker3, format!(">2\r\n$21\r\ntracking-redir-broken\r\n:{target_id}\r\n").as_bytes());
    let line = client_line(&mut writer, &client_id(&mut tracker3)).unwrap();
    assert_eq!(field(&line, "flags"), "tR");
    let info = tracker3.cmd_line("CLIENT TRACKINGINFO");
    assert!(String::from_utf8_lossy(&info).contains("broken_redirect"), "{}", escape(&info));
}

#[test]
fn bcast_announces_every_change_under_the_prefixes() {
    let server = Server::start();
    let mut tracker = resp3(&server);
    let mut writer = server.raw();
    ok(&mut tracker, "CLIENT TRACKING on BCAST PREFIX user: PREFIX obj:");
    assert_eq!(info_field(&mut writer, "tracking_total_prefixes"), "2");

    ok(&mut writer, "SET user:1 a");
    expect_push(&mut tracker, &invalidation(&["user:1"]));
    // One message per prefix, keys in byte order, whatever else changed.
    ok(&mut writer, "MSET user:9 a user:2 b other 1 obj:7 c");
    expect_push(&mut tracker, &invalidation(&["obj:7"]));
    expect_push(&mut tracker, &invalidation(&["user:2", "user:9"]));
    ok(&mut writer, "SET unrelated 1");
    expect_silence(&mut tracker);
    // A transaction's changes go out together.
    writer.send_line("MULTI");
    writer.send_line("SET user:5 a");
    writer.send_line("SET user:4 b");
    writer.send_line("EXEC");
    for _ in 0..4 {
        writer.read_reply();
    }
    expect_push(&mut tracker, &invalidation(&["user:4", "user:5"]));

    let line = client_line(&mut writer, &client_id(&mut tracker)).unwrap();
    assert_eq!(field(&line, "flags"), "tB");

    // NOLOOP: the client's own changes are left out.
    ok(&mut tracker, "CLIENT TRACKING off");
    ok(&mut tracker, "CLIENT TRACKING on BCAST NOLOOP");
    ok(&mut tracker, "SET mine 1");
    expect_silence(&mut tracker);
    ok(&mut writer, "SET theirs 1");
    expect_push(&mut tracker, &invalidation(&["theirs"]));
    ok(&mut tracker, "CLIENT TRACKING off");
    assert_eq!(info_field(&mut writer, "tracking_total_prefixes"), "0");
    assert_eq!(info_field(&mut writer, "tracking_clients"), "0");
}

#[test]
fn optin_optout_and_noloop_decide_what_is_tracked() {
    let server = Server::start();
    let mut tracker = resp3(&server);
    let mut writer = server.raw();

    ok(&mut tracker, "CLIENT TRACKING on OPTIN");
    tracker.cmd_line("GET not-cached");
    ok(&mut tracker, "CLIENT CACHING yes");
    tracker.cmd_line("GET cached");
    tracker.cmd_line("GET after");
    ok(&mut writer, "MSET not-cached 1 cached 2 after 3");
    expect_push(&mut tracker, &invalidation(&["cached"]));
    expect_silence(&mut tracker);
    ok(&mut tracker, "CLIENT TRACKING off");

    ok(&mut tracker, "CLIENT TRACKING on OPTOUT");
    ok(&mut tracker, "CLIENT CACHING no");
    tracker.cmd_line("GET skipped");
    tracker.cmd_line("GET kept");
    ok(&mut writer, "MSET skipped 1 kept 2");
    expect_push(&mut tracker, &invalidation(&["kept"]));
    expect_silence(&mut tracker);
    ok(&mut tracker, "CLIENT TRACKING off");

    ok(&mut tracker, "CLIENT TRACKING on NOLOOP");
    tracker.cmd_line("GET n");
    ok(&mut tracker, "SET n mine");
    expect_silence(&mut tracker);
    tracker.cmd_line("GET n");
    ok(&mut writer, "SET n theirs");
    expect_push(&mut tracker, &invalidation(&["n"]));
}

#[test]
fn a_served_blocking_command_gets_its_invalidation_after_its_reply() {
    let server = Server::start();
    let mut tracker = resp3(&server);
    let mut writer = server.raw();
    writer.cmd_line("RPUSH list2 a");
    ok(&mut tracker, "CLIENT TRACKING on");
    tracker.cmd_line("LRANGE list2 0 -1");
    tracker.send_line("BLMOVE list1 list2 LEFT LEFT 0");
    eventually(|| info_field(&mut writer, "blocked_clients") == "1", "the BLMOVE to block");
    writer.cmd_line("RPUSH list1 foo");
    assert_eq!(tracker.read_reply(), b"$3\r\nfoo\r\n");
    expect_push(&mut tracker, &invalidation(&["list2"]));
}

#[test]
fn the_tracking_table_stays_within_its_limit() {
    let server = Server::start_with(&["--tracking-table-max-keys", "10"]);
    let mut tracker = resp3(&server);
    let mut writer = server.raw();
    ok(&mut tracker, "CLIENT TRACKING on");
    for i in 0..30 {
        tracker.send_line(&format!("GET k{i}"));
    }
    // Keys dropped from the table are invalidated as if they had changed.
    let mut pushes = 0;
    let mut replies = 0;
    while replies < 30 {
        let r = tracker.read_reply();
        if r.starts_with(b">") {
            pushes += 1;
        } else {
            replies += 1;
        }
    }
    assert_eq!(info_field(&mut writer, "tracking_total_keys"), "10");
    while !tracker.is_closed(Duration::from_millis(100)) && !tracker.pending().is_empty() {
        tracker.read_reply();
        pushes += 1;
    }
    assert_eq!(pushes, 20, "one invalidation per key dropped");
    assert_eq!(writer.cmd_line("CONFIG SET tracking-table-max-keys 0"), b"+OK\r\n");
}

#[test]
fn redis_py_client_side_cache_works() {
    let setup = Command::new("bash").arg("scripts/py-venv.sh").output().expect("run scripts/py-venv.sh");
    if setup.status.code() == Some(3) {
        eprintln!(
            "SKIPPED redis_py_client_side_cache_works: the package registry is unreachable, so redis-py cannot be installed\n{}",
            String::from_utf8_lossy(&setup.stderr)
        );
        return;
    }
    assert!(setup.status.success(), "scripts/py-venv.sh failed:\n{}", String::from_utf8_lossy(&setup.stderr));
    let stdout = String::from_utf8_lossy(&setup.stdout);
    let python = stdout.lines().last().expect("py-venv.sh prints the python path").trim().to_string();

    let server = Server::start();
    let run = Command::new(&python)
        .arg("tests/python/client_side_cache.py")
        .arg(server.port.to_string())
        .output()
        .expect("run the redis-py script");
    assert!(
        run.status.success(),
        "redis-py's client-side cache failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

// ---------------------------------------------------------------------------
// CLIENT PAUSE
// ---------------------------------------------------------------------------

#[test]
fn paused_writes_wait_while_reads_go_on() {
    let server = Server::start();
    let mut admin = server.raw();
    let mut writer = server.raw();
    let mut reader = server.raw();
    let writer_id = client_id(&mut writer);
    ok(&mut admin, "SET k before");
    ok(&mut admin, "CLIENT PAUSE 100000 WRITE");

    // A write and what was pipelined after it wait; reads elsewhere go on.
    writer.send_line("SET k during");
    writer.send_line("GET k");
    assert_eq!(reader.cmd_line("GET k"), b"$6\r\nbefore\r\n");
    eventually(|| info_field(&mut reader, "blocked_clients") == "1", "the writer to be held");
    let line = client_line(&mut reader, &writer_id).unwrap();
    assert_eq!(field(&line, "flags"), "b");
    assert_eq!(field(&line, "cmd"), "set");
    expect_silence(&mut writer);
    // PUBLISH may propagate: held too. Errors are answered at once.
    let mut publisher = server.raw();
    publisher.send_line("PUBLISH ch msg");
    assert_eq!(reader.cmd_line("SET onlykey"), b"-ERR wrong number of arguments for 'set' command\r\n".to_vec());
    expect_silence(&mut publisher);

    ok(&mut admin, "CLIENT UNPAUSE");
    assert_eq!(writer.read_reply(), b"+OK\r\n");
    assert_eq!(writer.read_reply(), b"$6\r\nduring\r\n");
    assert_eq!(publisher.read_reply(), b":0\r\n");
    assert_eq!(info_field(&mut reader, "blocked_clients"), "0");
}

#[test]
fn pause_all_holds_every_command_until_it_ends() {
    let server = Server::start();
    let mut admin = server.raw();
    let mut other = server.raw();
    let started = Instant::now();
    ok(&mut admin, "CLIENT PAUSE 400 ALL");
    // A shorter, weaker pause does not shorten nor weaken it.
    ok(&mut admin, "CLIENT PAUSE 10 WRITE");
    assert_eq!(other.cmd_line("PING"), b"+PONG\r\n");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(350), "PING answered after {waited:?}");
    assert!(waited < Duration::from_secs(5), "PING answered after {waited:?}");

    // A transaction whose queue writes is held at EXEC.
    ok(&mut other, "MULTI");
    assert_eq!(other.cmd_line("SET t 1"), b"+QUEUED\r\n");
    ok(&mut admin, "CLIENT PAUSE 100000 WRITE");
    other.send_line("EXEC");
    expect_silence(&mut other);
    ok(&mut admin, "CLIENT UNPAUSE");
    assert_eq!(other.read_reply(), b"*1\r\n+OK\r\n");
}

// ---------------------------------------------------------------------------
// Output buffer limits
// ---------------------------------------------------------------------------

#[test]
fn a_slow_subscriber_is_disconnected_at_its_hard_limit() {
    let server = Server::start_with(&["--client-output-buffer-limit", "pubsub 1mb 0 0"]);
    let mut slow = server.raw();
    let slow_id = client_id(&mut slow);
    slow.cmd_line("SUBSCRIBE news");
    // The subscriber never reads again.
    let mut publisher = server.raw();
    let mut bystander = server.raw();
    let message = vec![b'x'; 4096];
    let started = Instant::now();
    let mut slowest_ping = Duration::ZERO;
    let mut receivers_seen = Vec::new();
    for round in 0..40 {
        // 100 messages of 4 KiB a round: 16 MB in all, far beyond the
        // socket buffers and the limit.
        for _ in 0..100 {
            publisher.send(&[b"PUBLISH", b"news", &message]);
        }
        for _ in 0..100 {
            let r = publisher.read_reply();
            receivers_seen.push(r);
        }
        let ping = Instant::now();
        assert_eq!(bystander.cmd_line("PING"), b"+PONG\r\n");
        slowest_ping = slowest_ping.max(ping.elapsed());
        if round % 10 == 9 {
            ok(&mut bystander, &format!("SET round {round}"));
        }
    }
    let publishing = started.elapsed();
    assert!(publishing < Duration::from_secs(30), "publishing took {publishing:?}");
    assert!(slowest_ping < Duration::from_secs(2), "a bystander waited {slowest_ping:?}");
    // Delivered at first, then nobody listens any more.
    assert_eq!(receivers_seen.first().unwrap(), b":1\r\n");
    assert_eq!(receivers_seen.last().unwrap(), b":0\r\n");
    assert!(client_line(&mut bystander, &slow_id).is_none());
    eventually(
        || info_field(&mut bystander, "client_output_buffer_limit_disconnections") == "1",
        "the disconnection counted",
    );
    assert!(
        server.output().contains("scheduled to be closed ASAP for overcoming of output buffer limits."),
        "no log line:\n{}",
        server.output()
    );
    // What it had received before the limit is there, then the end.
    let mut drained = 0usize;
    while slow.try_read_reply().is_ok() {
        drained += 1;
    }
    assert!(drained > 1, "the subscriber got nothing");
}

#[test]
fn client_list_shows_waiting_output_and_the_soft_limit_applies_in_time() {
    let server = Server::start_with(&["--client-output-buffer-limit", "pubsub 0 200000 1"]);
    let mut slow = server.raw();
    slow.cmd_line("CLIENT SETNAME slow");
    slow.cmd_line("SUBSCRIBE news");
    let mut publisher = server.raw();
    let message = vec![b'y'; 1000];
    // Fill until the output waiting for it passes the soft limit.
    let over = Instant::now();
    let mut omem_seen = 0;
    let reached = loop {
        assert!(over.elapsed() < Duration::from_secs(20), "omem never passed the soft limit");
        publisher.cmd(&[b"PUBLISH", b"news", &message]);
        let reply = publisher.cmd(&[b"CLIENT", b"LIST"]);
        let text = String::from_utf8_lossy(&reply).into_owned();
        let Some(line) = text.lines().find(|l| l.contains("name=slow ")) else { break None };
        let omem: usize = field(line, "omem").parse().unwrap();
        if omem > 0 {
            assert!(field(line, "oll").parse::<usize>().unwrap() > 0);
            assert_eq!(field(line, "obl"), "16384");
            assert_eq!(field(line, "events"), "rw");
        }
        omem_seen = omem_seen.max(omem);
        if omem >= 200000 {
            break Some(Instant::now());
        }
    };
    let reached = reached.expect("closed before reaching the soft limit");
    assert!(omem_seen >= 200000);
    // No more traffic: the soft limit still closes it after its second.
    eventually(
        || {
            let reply = publisher.cmd(&[b"CLIENT", b"LIST"]);
            !String::from_utf8_lossy(&reply).contains("name=slow ")
        },
        "the slow subscriber closed by its soft limit",
    );
    let after = reached.elapsed();
    assert!(after >= Duration::from_millis(900), "closed after only {after:?}");
    assert!(server.output().contains("closed for overcoming of output buffer limits."), "{}", server.output());
}
