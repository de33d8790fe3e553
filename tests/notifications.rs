//! Keyspace notifications against the real server: a `redis` crate
//! subscriber listens on every keyspace and keyevent channel while another
//! client runs commands; the events, their order and their channels are
//! those valkey-server 8.0.1 publishes for the same commands.

mod common;

use std::time::Duration;

use common::Server;

/// The channel a test publishes on to mark the end of the events it waits for.
const END: &str = "test-end-of-events";

/// One event as the subscriber saw it: (channel, message).
type Event = (String, String);

/// Runs `commands` (one per line, inline-quoted) on a fresh client with
/// `notify-keyspace-events` set to `classes`, and returns every keyspace
/// and keyevent message a subscriber received meanwhile, in order.
fn events_of(server: &Server, classes: &str, commands: &[&str]) -> Vec<Event> {
    let mut subscriber = server.client();
    let mut pubsub = subscriber.as_pubsub();
    pubsub.psubscribe("__key*__:*").unwrap();
    pubsub.subscribe(END).unwrap();
    let mut con = server.client();
    redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg(classes).exec(&mut con).unwrap();
    for line in commands {
        let args = ferrokey_formats::resp::split_args(line.as_bytes()).expect("balanced quotes");
        let mut cmd = redis::Cmd::new();
        for arg in &args {
            cmd.arg(&arg[..]);
        }
        // Errors are replies too: the events are what is compared.
        let _: redis::RedisResult<redis::Value> = cmd.query(&mut con);
    }
    redis::cmd("PUBLISH").arg(END).arg("end").exec(&mut con).unwrap();
    let mut events = Vec::new();
    loop {
        let msg = pubsub.get_message().unwrap();
        if msg.get_channel_name() == END {
            break;
        }
        events
            .push((msg.get_channel_name().to_string(), String::from_utf8_lossy(msg.get_payload_bytes()).into_owned()));
    }
    redis::cmd("FLUSHALL").exec(&mut con).unwrap();
    events
}

/// The keyspace and keyevent messages of one event, in publishing order.
fn both(db: usize, key: &str, event: &str) -> [Event; 2] {
    [(format!("__keyspace@{db}__:{key}"), event.to_string()), (format!("__keyevent@{db}__:{event}"), key.to_string())]
}

/// The messages of a list of (key, event) in database 0, K and E both on.
fn expected(events: &[(&str, &str)]) -> Vec<Event> {
    events.iter().flat_map(|(key, event)| both(0, key, event)).collect()
}

#[test]
fn config_answers_the_canonical_classes() {
    let server = Server::start();
    let mut con = server.client();
    let cases = [
        ("", ""),
        ("KEA", "AKE"),
        ("A", "A"),
        ("An", "A"),
        ("AKEnm", "AKEm"),
        ("Elgn", "glnE"),
        ("Kg$lshzxetd", "AK"),
        ("mE", "Em"),
        ("xK", "xK"),
    ];
    for (set, get) in cases {
        redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg(set).exec(&mut con).unwrap();
        let (_, value): (String, String) =
            redis::cmd("CONFIG").arg("GET").arg("notify-keyspace-events").query(&mut con).unwrap();
        assert_eq!(value, get, "after CONFIG SET notify-keyspace-events {set:?}");
    }
    let mut raw = server.raw();
    assert_eq!(
        raw.cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"KEq"]),
        b"-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.\r\n".to_vec()
    );
}

#[test]
fn the_directive_is_read_at_startup() {
    let server = Server::start_with(&["--notify-keyspace-events", "Kl"]);
    let events = events_of(&server, "Kl", &["SET s v", "LPUSH l a"]);
    assert_eq!(events, vec![("__keyspace@0__:l".to_string(), "lpush".to_string())]);
}

#[test]
fn string_events() {
    let server = Server::start();
    let events = events_of(
        &server,
        "KEA",
        &[
            "SET a 1",
            "SET a 2 EX 100",
            "SET a 3 KEEPTTL",
            "SET a 4 NX",
            "SET a gone PXAT 1",
            "SETEX b 100 v",
            "MSET c 1 d 2",
            "GETSET c 5",
            "GETDEL d",
            "GETEX c EX 10",
            "GETEX c PERSIST",
            "APPEND e x",
            "SETRANGE e 3 y",
            "INCR i",
            "DECRBY i 3",
            "INCRBYFLOAT f 1.5",
            "INCR e",
        ],
    );
    assert_eq!(
        events,
        expected(&[
            ("a", "set"),
            ("a", "set"),
            ("a", "expire"),
            ("a", "set"),
            ("a", "del"),
            ("b", "set"),
            ("b", "expire"),
            ("c", "set"),
            ("d", "set"),
            ("c", "set"),
            ("d", "del"),
            ("c", "expire"),
            ("c", "persist"),
            ("e", "append"),
            ("e", "setrange"),
            ("i", "incrby"),
            ("i", "incrby"),
            ("f", "incrbyfloat"),
        ])
    );
}

#[test]
fn generic_events() {
    let server = Server::start();
    let events = events_of(
        &server,
        "KEA",
        &[
            "MSET a 1 b 2",
            "DEL a nothere b",
            "SET r v",
            "RENAME r r2",
            "COPY r2 r3",
            "MOVE r3 5",
            "EXPIRE r2 100",
            "PERSIST r2",
            "EXPIRE r2 -1",
        ],
    );
    let mut wanted = expected(&[("a", "set"), ("b", "set"), ("a", "del"), ("b", "del"), ("r", "set")]);
    wanted.extend(expected(&[("r", "rename_from"), ("r2", "rename_to"), ("r3", "copy_to")]));
    wanted.extend(both(0, "r3", "move_from"));
    wanted.extend(both(5, "r3", "move_to"));
    wanted.extend(expected(&[("r2", "expire"), ("r2", "persist"), ("r2", "del")]));
    assert_eq!(events, wanted);
}

#[test]
fn list_events_and_an_emptied_key() {
    let server = Server::start();
    let events = events_of(
        &server,
        "KEA",
        &[
            "RPUSH l a b c",
            "LPOP l",
            "LMOVE l m RIGHT LEFT",
            "LSET m 0 z",
            "LINSERT m BEFORE z y",
            "LTRIM m 5 6",
            "RPOP l",
        ],
    );
    assert_eq!(
        events,
        expected(&[
            ("l", "rpush"),
            ("l", "lpop"),
            ("m", "lpush"),
            ("l", "rpop"),
            ("m", "lset"),
            ("m", "linsert"),
            ("m", "ltrim"),
            ("m", "del"),
            ("l", "rpop"),
            ("l", "del"),
        ])
    );
}

#[test]
fn hash_set_and_sorted_set_events() {
    let server = Server::start();
    let events = events_of(
        &server,
        "KEA",
        &[
            "HSET h f v",
            "HINCRBY h n 1",
            "HDEL h f n",
            "SADD s a b",
            "SADD s a",
            "SREM s a",
            "SMOVE s t b",
            "SINTERSTORE u t t",
            "ZADD z 1 a 2 b",
            "ZINCRBY z 5 a",
            "ZREM z b",
            "ZPOPMIN z",
        ],
    );
    assert_eq!(
        events,
        expected(&[
            ("h", "hset"),
            ("h", "hincrby"),
            ("h", "hdel"),
            ("h", "del"),
            ("s", "sadd"),
            ("s", "srem"),
            ("s", "srem"),
            ("s", "del"),
            ("t", "sadd"),
            ("u", "sinterstore"),
            ("z", "zadd"),
            ("z", "zincr"),
            ("z", "zrem"),
            ("z", "zpopmin"),
            ("z", "del"),
        ])
    );
}

#[test]
fn stream_events() {
    let server = Server::start();
    let events = events_of(
        &server,
        "KEA",
        &[
            "XADD x 1-1 f v",
            "XADD x MAXLEN 1 2-1 f v",
            "XGROUP CREATE x g 0",
            "XREADGROUP GROUP g c STREAMS x >",
            "XCLAIM x g d 0 2-1",
            "XDEL x 2-1",
            "XSETID x 5-1",
            "XGROUP DELCONSUMER x g c",
            "XGROUP DESTROY x g",
        ],
    );
    assert_eq!(
        events,
        expected(&[
            ("x", "xadd"),
            ("x", "xadd"),
            ("x", "xtrim"),
            ("x", "xgroup-create"),
            ("x", "xgroup-createconsumer"),
            ("x", "xgroup-createconsumer"),
            ("x", "xdel"),
            ("x", "xsetid"),
            ("x", "xgroup-delconsumer"),
            ("x", "xgroup-destroy"),
        ])
    );
}

#[test]
fn bitmap_hyperloglog_geo_and_sort_events() {
    let server = Server::start();
    let events = events_of(
        &server,
        "KEA",
        &[
            "SETBIT b 1 1",
            "SETBIT b 1 1",
            "BITFIELD f SET u8 0 1",
            "BITOP NOT n b",
            "PFADD h a",
            "PFMERGE h2 h",
            "GEOADD g 13.361389 38.115556 Palermo",
            "GEOSEARCHSTORE gs g FROMMEMBER Palermo BYRADIUS 10 km",
            "RPUSH l 2 1",
            "SORT l STORE sorted",
        ],
    );
    assert_eq!(
        events,
        expected(&[
            ("b", "setbit"),
            ("f", "setbit"),
            ("n", "set"),
            ("h", "pfadd"),
            ("h2", "pfadd"),
            ("g", "zadd"),
            ("gs", "geosearchstore"),
            ("l", "rpush"),
            ("sorted", "sortstore"),
        ])
    );
}

#[test]
fn new_keys_are_announced_first_when_asked_for() {
    let server = Server::start();
    let events = events_of(&server, "KEn$l", &["SET a 1", "SET a 2", "RPUSH l x", "RPUSH l y"]);
    assert_eq!(
        events,
        expected(&[("a", "new"), ("a", "set"), ("a", "set"), ("l", "new"), ("l", "rpush"), ("l", "rpush")])
    );
    // 'A' does not include 'n'.
    let events = events_of(&server, "KEA", &["SET fresh 1"]);
    assert_eq!(events, expected(&[("fresh", "set")]));
}

#[test]
fn classes_and_channels_are_chosen_separately() {
    let server = Server::start();
    let keyevent_strings = events_of(&server, "E$", &["SET a 1", "DEL a", "LPUSH l x"]);
    assert_eq!(keyevent_strings, vec![("__keyevent@0__:set".to_string(), "a".to_string())]);
    let keyspace_generic = events_of(&server, "Kg", &["SET a 1 EX 100", "DEL a"]);
    assert_eq!(
        keyspace_generic,
        vec![
            ("__keyspace@0__:a".to_string(), "expire".to_string()),
            ("__keyspace@0__:a".to_string(), "del".to_string()),
        ]
    );
    // Classes without K or E publish nothing, and K or E without classes too.
    assert!(events_of(&server, "g$", &["SET a 1", "DEL a"]).is_empty());
    assert!(events_of(&server, "KE", &["SET a 1", "DEL a"]).is_empty());
}

#[test]
fn events_name_the_database() {
    let server = Server::start();
    let events = events_of(&server, "KEA", &["SELECT 7", "SET k v"]);
    assert_eq!(events, both(7, "k", "set").to_vec());
}

#[test]
fn expired_keys_are_announced_before_the_command_that_found_them() {
    let server = Server::start_with(&["--enable-debug-command", "yes"]);
    let events = events_of(
        &server,
        "KEA",
        &["DEBUG SET-ACTIVE-EXPIRE 0", "SET e v PX 1", "DEBUG SLEEP 0.02", "SET e again", "DEBUG SET-ACTIVE-EXPIRE 1"],
    );
    assert_eq!(events, expected(&[("e", "set"), ("e", "expire"), ("e", "expired"), ("e", "set")]));
}

#[test]
fn active_expiry_announces_expired_keys() {
    let server = Server::start();
    let mut subscriber = server.client();
    let mut con = server.client();
    redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("Ex").exec(&mut con).unwrap();
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe("__keyevent@0__:expired").unwrap();
    pubsub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    redis::cmd("SET").arg("short").arg("v").arg("PX").arg(50).exec(&mut con).unwrap();
    let msg = pubsub.get_message().expect("an expired event within 10 s");
    assert_eq!((msg.get_channel_name(), msg.get_payload_bytes()), ("__keyevent@0__:expired", &b"short"[..]));
}

#[test]
fn a_transaction_announces_its_commands_after_exec() {
    let server = Server::start();
    let events = events_of(&server, "KEA", &["MULTI", "SET t v", "LPUSH l a", "DEL t", "EXEC"]);
    assert_eq!(events, expected(&[("t", "set"), ("l", "lpush"), ("t", "del")]));
}

#[test]
fn a_resp3_client_hears_its_own_events_after_the_reply() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&[b"HELLO", b"3"]);
    c.cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"E$"]);
    c.cmd(&[b"SUBSCRIBE", b"__keyevent@0__:set"]);
    assert_eq!(c.cmd(&[b"SET", b"mine", b"v"]), b"+OK\r\n");
    assert_eq!(c.read_reply(), b">3\r\n$7\r\nmessage\r\n$18\r\n__keyevent@0__:set\r\n$4\r\nmine\r\n".to_vec());
    assert_eq!(c.cmd(&[b"GET", b"mine"]), b"$1\r\nv\r\n");
}
