//! Pub/sub against the real server: subscribers and publishers on separate
//! connections (the `redis` crate's clients), RESP3 pushes on the command
//! connection itself, patterns, shard channels, the subscribed mode, and
//! what subscriptions show in CLIENT LIST and INFO. Expected bytes were
//! taken from valkey-server 8.0.1.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, RawConn, Server};

fn publish(con: &mut redis::Connection, channel: &str, message: &[u8]) -> i64 {
    redis::cmd("PUBLISH").arg(channel).arg(message).query(con).unwrap()
}

fn info_field(c: &mut RawConn, section: &str, field: &str) -> String {
    let reply = c.cmd(&[b"INFO", section.as_bytes()]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
}

#[test]
fn a_subscriber_receives_what_another_client_publishes() {
    let server = Server::start();
    let mut subscriber = server.client();
    let mut publisher = server.client();
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe("news").unwrap();
    pubsub.subscribe("sports").unwrap();

    assert_eq!(publish(&mut publisher, "news", b"hello"), 1);
    assert_eq!(publish(&mut publisher, "weather", b"nobody listens"), 0);
    assert_eq!(publish(&mut publisher, "sports", b"\x00binary\xff"), 1);
    let first = pubsub.get_message().unwrap();
    assert_eq!((first.get_channel_name(), first.get_payload_bytes()), ("news", &b"hello"[..]));
    assert!(first.get_pattern::<Option<String>>().unwrap().is_none());
    let second = pubsub.get_message().unwrap();
    assert_eq!((second.get_channel_name(), second.get_payload_bytes()), ("sports", &b"\x00binary\xff"[..]));

    let numsub: Vec<redis::Value> =
        redis::cmd("PUBSUB").arg("NUMSUB").arg("news").arg("sports").arg("weather").query(&mut publisher).unwrap();
    let numsub: Vec<(String, i64)> = redis::from_redis_value(&redis::Value::Array(numsub)).unwrap();
    assert_eq!(numsub, vec![("news".into(), 1), ("sports".into(), 1), ("weather".into(), 0)]);

    pubsub.unsubscribe("news").unwrap();
    assert_eq!(publish(&mut publisher, "news", b"gone"), 0);
    assert_eq!(publish(&mut publisher, "sports", b"still here"), 1);
    assert_eq!(pubsub.get_message().unwrap().get_payload_bytes(), b"still here");
}

#[test]
fn patterns_match_like_valkey_globs() {
    let server = Server::start();
    let mut subscriber = server.client();
    let mut publisher = server.client();
    let mut pubsub = subscriber.as_pubsub();
    for pattern in ["news.*", "h?llo", "[a-c]x", "[^a]y", "a\\*b"] {
        pubsub.psubscribe(pattern).unwrap();
    }
    let cases: &[(&str, i64)] = &[
        ("news.tech", 1),
        ("news", 0),
        ("hello", 1),
        ("hllo", 0),
        ("bx", 1),
        ("dx", 0),
        ("by", 1),
        ("ay", 0),
        ("a*b", 1),
        ("axb", 0),
    ];
    for (channel, receivers) in cases {
        assert_eq!(publish(&mut publisher, channel, channel.as_bytes()), *receivers, "PUBLISH {channel}");
    }
    let expected = [("news.*", "news.tech"), ("h?llo", "hello"), ("[a-c]x", "bx"), ("[^a]y", "by"), ("a\\*b", "a*b")];
    for (pattern, channel) in expected {
        let msg = pubsub.get_message().unwrap();
        assert_eq!(msg.get_pattern::<String>().unwrap(), pattern);
        assert_eq!(msg.get_channel_name(), channel);
        assert_eq!(msg.get_payload_bytes(), channel.as_bytes());
    }
    let numpat: i64 = redis::cmd("PUBSUB").arg("NUMPAT").query(&mut publisher).unwrap();
    assert_eq!(numpat, 5);
}

#[test]
fn a_channel_and_a_matching_pattern_both_deliver() {
    let server = Server::start();
    let mut sub = server.raw();
    let mut publisher = server.raw();
    assert_eq!(sub.cmd(&[b"SUBSCRIBE", b"chat"]), b"*3\r\n$9\r\nsubscribe\r\n$4\r\nchat\r\n:1\r\n");
    assert_eq!(sub.cmd(&[b"PSUBSCRIBE", b"ch*"]), b"*3\r\n$10\r\npsubscribe\r\n$3\r\nch*\r\n:2\r\n");
    // One delivery per subscription: the channel's first, then the pattern's.
    assert_eq!(publisher.cmd(&[b"PUBLISH", b"chat", b"hi"]), b":2\r\n");
    assert_eq!(sub.read_reply(), b"*3\r\n$7\r\nmessage\r\n$4\r\nchat\r\n$2\r\nhi\r\n");
    assert_eq!(sub.read_reply(), b"*4\r\n$8\r\npmessage\r\n$3\r\nch*\r\n$4\r\nchat\r\n$2\r\nhi\r\n");
}

#[test]
fn resp3_pushes_arrive_on_the_command_connection() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&[b"HELLO", b"3"]);
    assert_eq!(c.cmd(&[b"SUBSCRIBE", b"me"]), b">3\r\n$9\r\nsubscribe\r\n$2\r\nme\r\n:1\r\n");
    // Commands still run, and a message to itself follows the reply.
    assert_eq!(c.cmd(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"PUBLISH", b"me", b"hello"]), b":1\r\n");
    assert_eq!(c.read_reply(), b">3\r\n$7\r\nmessage\r\n$2\r\nme\r\n$5\r\nhello\r\n");
    // A message from another client arrives while the connection is idle.
    let mut other = server.raw();
    assert_eq!(other.cmd(&[b"PUBLISH", b"me", b"from afar"]), b":1\r\n");
    assert_eq!(c.read_reply(), b">3\r\n$7\r\nmessage\r\n$2\r\nme\r\n$9\r\nfrom afar\r\n");
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(c.cmd(&[b"UNSUBSCRIBE"]), b">3\r\n$11\r\nunsubscribe\r\n$2\r\nme\r\n:0\r\n");
}

#[test]
fn subscribers_get_messages_in_their_own_protocol() {
    let server = Server::start();
    let mut resp2 = server.raw();
    let mut resp3 = server.raw();
    resp3.cmd(&[b"HELLO", b"3"]);
    resp2.cmd(&[b"SSUBSCRIBE", b"s"]);
    resp3.cmd(&[b"SSUBSCRIBE", b"s"]);
    let mut publisher = server.client();
    let receivers: i64 = redis::cmd("SPUBLISH").arg("s").arg("m").query(&mut publisher).unwrap();
    assert_eq!(receivers, 2);
    assert_eq!(resp2.read_reply(), b"*3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$1\r\nm\r\n");
    assert_eq!(resp3.read_reply(), b">3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$1\r\nm\r\n");
}

#[test]
fn a_resp3_client_of_the_redis_crate_receives_pushes() {
    let server = Server::start();
    let client = redis::Client::open(format!("{}?protocol=resp3", server.url())).unwrap();
    let mut subscriber = client.get_connection().unwrap();
    subscriber.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut publisher = server.client();
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe("r3").unwrap();
    // A RESP3 subscription is not acknowledged to the caller: wait for it.
    eventually(
        || {
            let n: Vec<(String, i64)> = redis::cmd("PUBSUB").arg("NUMSUB").arg("r3").query(&mut publisher).unwrap();
            n[0].1 == 1
        },
        "the RESP3 subscription",
    );
    assert_eq!(publish(&mut publisher, "r3", b"pushed"), 1);
    let msg = pubsub.get_message().unwrap();
    assert_eq!((msg.get_channel_name(), msg.get_payload_bytes()), ("r3", &b"pushed"[..]));
}

#[test]
fn the_resp2_subscribed_mode() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"UNSUBSCRIBE"]), b"-NOSUB 'unsubscribe' command executed not in subscribed mode\r\n".to_vec());
    c.cmd(&[b"PSUBSCRIBE", b"p*"]);
    assert_eq!(c.cmd(&[b"PING"]), b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(c.cmd(&[b"PING", b"x"]), b"*2\r\n$4\r\npong\r\n$1\r\nx\r\n");
    assert_eq!(
        c.cmd(&[b"GET", b"k"]),
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n".to_vec()
    );
    // Leaving channels it is not subscribed to: a null name when none at all.
    assert_eq!(c.cmd(&[b"UNSUBSCRIBE"]), b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:1\r\n");
    assert_eq!(c.cmd(&[b"SUNSUBSCRIBE"]), b"*3\r\n$12\r\nsunsubscribe\r\n$-1\r\n:0\r\n");
    assert_eq!(c.cmd(&[b"PUNSUBSCRIBE"]), b"*3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:0\r\n");
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(c.cmd(&[b"GET", b"k"]), b"$-1\r\n");
}

#[test]
fn client_list_and_info_count_subscriptions() {
    let server = Server::start();
    let mut sub = server.raw();
    let mut control = server.raw();
    sub.cmd(&[b"SUBSCRIBE", b"a"]);
    sub.cmd(&[b"SUBSCRIBE", b"b"]);
    sub.cmd(&[b"PSUBSCRIBE", b"p*"]);
    sub.cmd(&[b"SSUBSCRIBE", b"s"]);
    let list = String::from_utf8(control.cmd(&[b"CLIENT", b"LIST", b"TYPE", b"pubsub"])).unwrap();
    assert!(list.contains(" sub=2 psub=1 ssub=1 "), "{list}");
    assert_eq!(info_field(&mut control, "stats", "pubsub_channels"), "2");
    assert_eq!(info_field(&mut control, "stats", "pubsub_patterns"), "1");
    assert_eq!(info_field(&mut control, "stats", "pubsubshard_channels"), "1");
    assert_eq!(info_field(&mut control, "clients", "pubsub_clients"), "1");
    // A second subscriber of the same channel adds no channel.
    let mut second = server.raw();
    second.cmd(&[b"SUBSCRIBE", b"a"]);
    assert_eq!(info_field(&mut control, "stats", "pubsub_channels"), "2");
    assert_eq!(info_field(&mut control, "clients", "pubsub_clients"), "2");
}

#[test]
fn a_closed_connection_leaves_every_subscription() {
    let server = Server::start();
    let mut control = server.raw();
    let mut sub = server.raw();
    sub.cmd(&[b"SUBSCRIBE", b"a"]);
    sub.cmd(&[b"PSUBSCRIBE", b"p*"]);
    sub.cmd(&[b"SSUBSCRIBE", b"s"]);
    sub.close();
    eventually(|| info_field(&mut control, "clients", "pubsub_clients") == "0", "the subscriber leave");
    assert_eq!(control.cmd(&[b"PUBSUB", b"NUMSUB", b"a"]), b"*2\r\n$1\r\na\r\n:0\r\n");
    assert_eq!(control.cmd(&[b"PUBSUB", b"NUMPAT"]), b":0\r\n");
    assert_eq!(control.cmd(&[b"PUBSUB", b"SHARDCHANNELS"]), b"*0\r\n");
    assert_eq!(control.cmd(&[b"PUBLISH", b"a", b"x"]), b":0\r\n");
    assert_eq!(control.cmd(&[b"PUBLISH", b"pattern", b"x"]), b":0\r\n");
}

#[test]
fn reset_leaves_silently() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&[b"SUBSCRIBE", b"a"]);
    c.cmd(&[b"PSUBSCRIBE", b"p*"]);
    assert_eq!(c.cmd(&[b"RESET"]), b"+RESET\r\n");
    assert_eq!(c.cmd(&[b"PUBSUB", b"NUMSUB", b"a"]), b"*2\r\n$1\r\na\r\n:0\r\n");
    assert_eq!(c.cmd(&[b"PUBSUB", b"NUMPAT"]), b":0\r\n");
    assert_eq!(c.cmd(&[b"GET", b"k"]), b"$-1\r\n");
}

#[test]
fn shard_channels_are_their_own_space() {
    let server = Server::start();
    let mut sub = server.raw();
    let mut publisher = server.raw();
    sub.cmd(&[b"SSUBSCRIBE", b"orders"]);
    sub.cmd(&[b"PSUBSCRIBE", b"*"]);
    // PUBLISH reaches the pattern only; SPUBLISH the shard channel only.
    assert_eq!(publisher.cmd(&[b"PUBLISH", b"orders", b"plain"]), b":1\r\n");
    assert_eq!(sub.read_reply(), b"*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$6\r\norders\r\n$5\r\nplain\r\n");
    assert_eq!(publisher.cmd(&[b"SPUBLISH", b"orders", b"shard"]), b":1\r\n");
    assert_eq!(sub.read_reply(), b"*3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$5\r\nshard\r\n");
    assert_eq!(publisher.cmd(&[b"PUBSUB", b"CHANNELS"]), b"*0\r\n");
    assert_eq!(publisher.cmd(&[b"PUBSUB", b"SHARDCHANNELS"]), b"*1\r\n$6\r\norders\r\n");
    assert_eq!(publisher.cmd(&[b"PUBSUB", b"SHARDNUMSUB", b"orders"]), b"*2\r\n$6\r\norders\r\n:1\r\n");
}

#[test]
fn many_subscribers_each_get_one_copy() {
    let server = Server::start();
    let mut subscribers: Vec<RawConn> = (0..20).map(|_| server.raw()).collect();
    for s in &mut subscribers {
        s.cmd(&[b"SUBSCRIBE", b"fanout"]);
    }
    let mut publisher = server.raw();
    assert_eq!(publisher.cmd(&[b"PUBLISH", b"fanout", b"all"]), b":20\r\n");
    for s in &mut subscribers {
        assert_eq!(s.read_reply(), b"*3\r\n$7\r\nmessage\r\n$6\r\nfanout\r\n$3\r\nall\r\n");
    }
}

#[test]
fn tens_of_thousands_of_channels_are_left_one_by_one_and_on_disconnect() {
    // Celery's result listener subscribes to one channel per task it awaits
    // and leaves each when its result comes, in about the order it joined.
    // Leaving one channel must not cost in proportion to how many the
    // client has: 100,000 in a row would otherwise stall the server for
    // minutes (they take well under a second).
    const CHANNELS: usize = 100_000;
    let server = Server::start();
    let mut control = server.raw();
    let mut sub = server.raw();
    sub.set_timeout(Duration::from_secs(60));
    let names: Vec<Vec<u8>> = (0..CHANNELS).map(|i| format!("celery-task-meta-{i:06}").into_bytes()).collect();
    let mut subscribe: Vec<&[u8]> = vec![b"SUBSCRIBE"];
    subscribe.extend(names.iter().map(|n| n.as_slice()));
    sub.send(&subscribe);
    for _ in 0..CHANNELS {
        sub.read_reply();
    }
    assert_eq!(info_field(&mut control, "stats", "pubsub_channels"), CHANNELS.to_string());

    let mut unsubscribes = Vec::new();
    for name in &names[..CHANNELS / 2] {
        unsubscribes.extend_from_slice(format!("*2\r\n$11\r\nUNSUBSCRIBE\r\n${}\r\n", name.len()).as_bytes());
        unsubscribes.extend_from_slice(name);
        unsubscribes.extend_from_slice(b"\r\n");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    sub.send_raw(&unsubscribes);
    let mut last = Vec::new();
    for _ in 0..CHANNELS / 2 {
        last = sub.read_reply();
    }
    assert!(Instant::now() < deadline, "leaving 50,000 channels one by one took over 60 s");
    let left = (CHANNELS / 2).to_string();
    let name = &names[CHANNELS / 2 - 1];
    let expected =
        format!("*3\r\n$11\r\nunsubscribe\r\n${}\r\n{}\r\n:{left}\r\n", name.len(), String::from_utf8_lossy(name));
    assert_eq!(String::from_utf8_lossy(&last), expected);

    // The other half goes when the connection closes.
    sub.close();
    control.set_timeout(Duration::from_secs(60));
    eventually(|| info_field(&mut control, "stats", "pubsub_channels") == "0", "every channel left");
    assert_eq!(info_field(&mut control, "clients", "pubsub_clients"), "0");
}
