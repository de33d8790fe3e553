//! maxmemory against a running ferrokey: what each eviction policy evicts,
//! the OOM refusal under noeviction (and writes resuming once memory is
//! back), the limit held under a write load, OBJECT FREQ / IDLETIME,
//! evicted keys announced, WATCHes touched by eviction, access hints kept
//! across SAVE and restart, and lazy freeing.
//!
//! Each test sets the limit a few megabytes above the memory the server
//! uses once its data is loaded, then writes more: what must be evicted is
//! decided by the keys' access hints, which the tests set without waiting
//! (RESTORE ... IDLETIME, reads, TTLs), and checked as sets of survivors.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use ferrokey_formats::resp::Value;
use redis::{Commands, Connection};

const OOM: &str = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";

fn info_field(con: &mut Connection, section: &str, field: &str) -> i64 {
    let text: String = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("INFO {section} has no {field}:\n{text}"))
        .trim()
        .parse()
        .expect("integer INFO field")
}

fn used_memory(con: &mut Connection) -> i64 {
    info_field(con, "memory", "used_memory")
}

fn config_set(con: &mut Connection, name: &str, value: &str) {
    redis::cmd("CONFIG").arg("SET").arg(name).arg(value).query::<()>(con).expect("CONFIG SET");
}

/// Sets maxmemory `headroom` bytes above what the server uses now.
fn limit_above_current(con: &mut Connection, headroom: i64) -> i64 {
    let limit = used_memory(con) + headroom;
    config_set(con, "maxmemory", &limit.to_string());
    limit
}

/// Writes `{prefix}{i}` for i in `range`, values of `len` bytes, with the
/// extra SET arguments given, in pipelines of 100.
fn fill(con: &mut Connection, prefix: &str, range: std::ops::Range<usize>, len: usize, set_args: &[&str]) {
    let value = "v".repeat(len);
    let keys: Vec<usize> = range.collect();
    for chunk in keys.chunks(100) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET").arg(format!("{prefix}{i}")).arg(&value).arg(set_args).ignore();
        }
        pipe.query::<()>(con).expect("fill pipeline");
    }
}

/// How many of `{prefix}{i}` exist (EXISTS leaves access hints alone).
fn surviving(con: &mut Connection, prefix: &str, range: std::ops::Range<usize>) -> usize {
    let mut pipe = redis::pipe();
    for i in range {
        pipe.cmd("EXISTS").arg(format!("{prefix}{i}"));
    }
    let found: Vec<i64> = pipe.query(con).expect("EXISTS pipeline");
    found.iter().filter(|&&n| n == 1).count()
}

/// Creates `{prefix}{i}` as copies of a 1 KB string last touched `idle`
/// seconds ago (RESTORE ... IDLETIME).
fn restore_idle(con: &mut Connection, prefix: &str, range: std::ops::Range<usize>, idle: u64) {
    let _: () = con.set("template", "x".repeat(1000)).unwrap();
    let dump: Vec<u8> = redis::cmd("DUMP").arg("template").query(con).unwrap();
    let _: () = con.del("template").unwrap();
    let keys: Vec<usize> = range.collect();
    for chunk in keys.chunks(100) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("RESTORE").arg(format!("{prefix}{i}")).arg(0).arg(&dump).arg("IDLETIME").arg(idle).ignore();
        }
        pipe.query::<()>(con).expect("RESTORE pipeline");
    }
}

fn start_with_policy(policy: &str) -> Server {
    Server::start_with(&["--maxmemory-policy", policy])
}

#[test]
fn allkeys_lru_keeps_the_recently_read_keys() {
    let server = start_with_policy("allkeys-lru");
    let mut con = server.client();
    restore_idle(&mut con, "cold:", 0..3000, 1000);
    restore_idle(&mut con, "hot:", 0..300, 1000);
    // Reading the hot keys makes them the most recently used.
    let mut pipe = redis::pipe();
    for i in 0..300 {
        pipe.cmd("GET").arg(format!("hot:{i}")).ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    limit_above_current(&mut con, 256 * 1024);
    fill(&mut con, "new:", 0..1500, 1000, &[]);

    let evicted = info_field(&mut con, "stats", "evicted_keys");
    assert!(evicted >= 1000, "evicted only {evicted}");
    let hot = surviving(&mut con, "hot:", 0..300);
    let cold = surviving(&mut con, "cold:", 0..3000);
    assert_eq!(hot, 300, "hot keys evicted while colder ones remained ({cold} cold left)");
    assert!(cold <= 3000 - 1000, "{cold} cold keys left");
}

#[test]
fn allkeys_lfu_keeps_the_frequently_read_keys() {
    let server = start_with_policy("allkeys-lfu");
    let mut con = server.client();
    fill(&mut con, "rare:", 0..3000, 1000, &[]);
    fill(&mut con, "often:", 0..200, 1000, &[]);
    let mut pipe = redis::pipe();
    for _ in 0..100 {
        for i in 0..200 {
            pipe.cmd("GET").arg(format!("often:{i}")).ignore();
        }
    }
    pipe.query::<()>(&mut con).unwrap();
    limit_above_current(&mut con, 256 * 1024);
    fill(&mut con, "new:", 0..1500, 1000, &[]);

    assert!(info_field(&mut con, "stats", "evicted_keys") >= 1000);
    let often = surviving(&mut con, "often:", 0..200);
    assert!(often >= 195, "only {often} of the 200 frequently read keys left");
}

#[test]
fn allkeys_random_holds_the_limit() {
    let server = start_with_policy("allkeys-random");
    let mut con = server.client();
    fill(&mut con, "a:", 0..2000, 1000, &[]);
    let limit = limit_above_current(&mut con, 512 * 1024);
    fill(&mut con, "b:", 0..2000, 1000, &[]);
    assert!(info_field(&mut con, "stats", "evicted_keys") >= 1500);
    assert!(used_memory(&mut con) <= limit + 256 * 1024);
    // Both old and new keys were candidates.
    assert!(surviving(&mut con, "a:", 0..2000) < 2000);
}

#[test]
fn volatile_ttl_evicts_the_soonest_expiring_first() {
    let server = start_with_policy("volatile-ttl");
    let mut con = server.client();
    fill(&mut con, "soon:", 0..1500, 1000, &["EX", "10000"]);
    fill(&mut con, "late:", 0..1500, 1000, &["EX", "1000000"]);
    fill(&mut con, "forever:", 0..500, 1000, &[]);
    limit_above_current(&mut con, 256 * 1024);
    fill(&mut con, "new:", 0..1000, 1000, &[]);

    let soon = surviving(&mut con, "soon:", 0..1500);
    let late = surviving(&mut con, "late:", 0..1500);
    assert!(soon <= 1500 - 800, "{soon} soon-expiring keys left");
    assert!(late >= 1400, "only {late} late-expiring keys left while {soon} sooner ones remained");
    assert_eq!(surviving(&mut con, "forever:", 0..500), 500);
    assert_eq!(surviving(&mut con, "new:", 0..1000), 1000);
}

#[test]
fn volatile_policies_never_evict_keys_without_a_ttl() {
    for policy in ["volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"] {
        let server = start_with_policy(policy);
        let mut con = server.client();
        fill(&mut con, "keep:", 0..1000, 1000, &[]);
        fill(&mut con, "ttl:", 0..300, 1000, &["EX", "100000"]);
        limit_above_current(&mut con, 128 * 1024);
        // Writes succeed while keys with a TTL remain to evict, then fail.
        let mut raw = server.raw();
        let value = vec![b'v'; 1000];
        let mut refused = None;
        for i in 0..2000 {
            let reply = raw.cmd(&[b"SET", format!("new:{i}").as_bytes(), &value]);
            if reply != b"+OK\r\n" {
                refused = Some(reply);
                break;
            }
        }
        let refused = refused.unwrap_or_else(|| panic!("{policy}: no write was refused"));
        assert_eq!(String::from_utf8_lossy(&refused), OOM, "{policy}");
        assert_eq!(surviving(&mut con, "ttl:", 0..300), 0, "{policy}");
        assert_eq!(surviving(&mut con, "keep:", 0..1000), 1000, "{policy}");
    }
}

#[test]
fn noeviction_refuses_writes_keeps_serving_reads_and_recovers() {
    let server = start_with_policy("noeviction");
    let mut con = server.client();
    let _: () = con.set("kept", "value").unwrap();
    limit_above_current(&mut con, 256 * 1024);
    let mut raw = server.raw();
    let value = vec![b'v'; 1000];
    let mut refused = None;
    for i in 0..5000 {
        let reply = raw.cmd(&[b"SET", format!("k:{i}").as_bytes(), &value]);
        if reply != b"+OK\r\n" {
            refused = Some(reply);
            break;
        }
    }
    assert_eq!(String::from_utf8_lossy(&refused.expect("a write was refused")), OOM);
    // Reads and deletions go on.
    assert_eq!(raw.cmd(&[b"GET", b"kept"]), b"$5\r\nvalue\r\n");
    assert_eq!(raw.cmd(&[b"EXISTS", b"k:0"]), b":1\r\n");
    // A transaction queuing a denyoom command is aborted.
    assert_eq!(raw.cmd(&[b"MULTI"]), b"+OK\r\n");
    assert_eq!(String::from_utf8_lossy(&raw.cmd(&[b"SET", b"x", b"1"])), OOM);
    assert_eq!(raw.cmd(&[b"EXEC"]), b"-EXECABORT Transaction discarded because of previous errors.\r\n");
    assert_eq!(info_field(&mut con, "stats", "evicted_keys"), 0);

    // A raised limit lets writes through again.
    config_set(&mut con, "maxmemory", "0");
    assert_eq!(raw.cmd(&[b"SET", b"after-raise", b"1"]), b"+OK\r\n");
    // So does emptying the dataset.
    limit_above_current(&mut con, 128 * 1024);
    let big = vec![b'f'; 100_000];
    let refused = (0..100).find_map(|i| {
        let reply = raw.cmd(&[b"SET", format!("big:{i}").as_bytes(), &big]);
        (reply != b"+OK\r\n").then_some(reply)
    });
    assert_eq!(String::from_utf8_lossy(&refused.expect("a write was refused")), OOM);
    assert_eq!(raw.cmd(&[b"FLUSHALL", b"SYNC"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&[b"SET", b"after-flush", b"1"]), b"+OK\r\n");
}

#[test]
fn exec_is_refused_when_memory_filled_after_queuing() {
    let server = start_with_policy("noeviction");
    let mut con = server.client();
    let mut raw = server.raw();
    assert_eq!(raw.cmd(&[b"MULTI"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&[b"SET", b"x", b"1"]), b"+QUEUED\r\n");
    config_set(&mut con, "maxmemory", "1");
    assert_eq!(
        String::from_utf8_lossy(&raw.cmd(&[b"EXEC"])),
        "-EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
    // A read-only transaction still runs.
    assert_eq!(raw.cmd(&[b"MULTI"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&[b"GET", b"x"]), b"+QUEUED\r\n");
    assert_eq!(raw.cmd(&[b"EXEC"]), b"*1\r\n$-1\r\n");
    config_set(&mut con, "maxmemory", "0");
}

#[test]
fn the_limit_holds_under_a_write_load() {
    let server = start_with_policy("allkeys-lru");
    let mut con = server.client();
    let limit = limit_above_current(&mut con, 4 << 20);
    let mut worst = 0;
    for batch in 0..40 {
        fill(&mut con, &format!("b{batch}:"), 0..200, 4000, &[]);
        worst = worst.max(used_memory(&mut con) - limit);
    }
    // 40 batches of 800 KB: far more than the limit, which held to within
    // what one request's buffers take.
    assert!(worst <= 256 * 1024, "used memory went {worst} bytes over the limit");
    assert!(info_field(&mut con, "stats", "evicted_keys") > 4000);
    assert_eq!(info_field(&mut con, "memory", "maxmemory"), limit);
}

#[test]
fn config_set_maxmemory_evicts_down_to_the_new_limit() {
    let server = start_with_policy("allkeys-random");
    let mut con = server.client();
    let base = used_memory(&mut con);
    fill(&mut con, "k:", 0..8000, 1000, &[]);
    let limit = base + (2 << 20);
    config_set(&mut con, "maxmemory", &limit.to_string());
    // Down to the limit, give or take what INFO itself allocates to answer.
    let slack = 64 * 1024;
    let deadline = Instant::now() + Duration::from_secs(20);
    while used_memory(&mut con) > limit + slack && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(used_memory(&mut con) <= limit + slack);
    // Memory hovers at the limit: lift it so that counting evicts no more.
    config_set(&mut con, "maxmemory", "0");
    let left: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert!(left < 8000 && left > 0, "{left} keys left");
    assert_eq!(info_field(&mut con, "stats", "evicted_keys"), 8000 - left);
}

#[test]
fn object_freq_grows_with_accesses_and_idletime_is_refused_under_lfu() {
    let server = start_with_policy("allkeys-lfu");
    let mut con = server.client();
    let _: () = con.set("k", "v").unwrap();
    let initial: i64 = redis::cmd("OBJECT").arg("FREQ").arg("k").query(&mut con).unwrap();
    assert_eq!(initial, 5);
    for _ in 0..200 {
        let _: String = con.get("k").unwrap();
    }
    let after: i64 = redis::cmd("OBJECT").arg("FREQ").arg("k").query(&mut con).unwrap();
    assert!(after > initial + 3, "{initial} -> {after}");
    let mut raw = server.raw();
    assert_eq!(
        String::from_utf8_lossy(&raw.cmd(&[b"OBJECT", b"IDLETIME", b"k"])),
        "-ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.\r\n"
    );
    config_set(&mut con, "maxmemory-policy", "allkeys-lru");
    assert_eq!(
        String::from_utf8_lossy(&raw.cmd(&[b"OBJECT", b"FREQ", b"k"])),
        "-ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.\r\n"
    );
    assert_eq!(raw.cmd(&[b"OBJECT", b"IDLETIME", b"k"]), b":0\r\n");
}

#[test]
fn evicted_keys_are_announced_counted_and_touch_watches() {
    let server = start_with_policy("volatile-ttl");
    let mut con = server.client();
    config_set(&mut con, "notify-keyspace-events", "Ee");
    fill(&mut con, "keep:", 0..500, 1000, &[]);
    let _: () = redis::cmd("SET").arg("watched").arg("x".repeat(1000)).arg("EX").arg(100).query(&mut con).unwrap();
    fill(&mut con, "ttl:", 0..199, 1000, &["EX", "100000"]);

    let mut subscriber = server.raw();
    subscriber.cmd(&[b"SUBSCRIBE", b"__keyevent@0__:evicted"]);
    let mut watcher = server.raw();
    assert_eq!(watcher.cmd(&[b"WATCH", b"watched"]), b"+OK\r\n");

    // Far below what the data takes: every key with a TTL must go (and no
    // other), in the background and before the next commands.
    limit_above_current(&mut con, -(400 * 1000));
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "stats", "evicted_keys") < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(info_field(&mut con, "stats", "evicted_keys"), 200);
    let mut announced = std::collections::HashSet::new();
    for _ in 0..200 {
        match subscriber.read_value() {
            Value::Array(parts) if parts.len() == 3 && parts[1] == Value::Bulk(b"__keyevent@0__:evicted".to_vec()) => {
                let Value::Bulk(key) = &parts[2] else { panic!("{parts:?}") };
                announced.insert(key.clone());
            }
            other => panic!("not an evicted event: {other:?}"),
        }
    }
    assert_eq!(announced.len(), 200);
    assert!(announced.iter().any(|k| k == b"watched"));
    assert_eq!(watcher.cmd(&[b"MULTI"]), b"+OK\r\n");
    assert_eq!(watcher.cmd(&[b"PING"]), b"+QUEUED\r\n");
    assert_eq!(watcher.cmd(&[b"EXEC"]), b"*-1\r\n", "an evicted key's WATCH fails the transaction");
    assert_eq!(surviving(&mut con, "keep:", 0..500), 500);
}

#[test]
fn lfu_frequency_survives_save_and_restart() {
    let args = ["--maxmemory-policy", "allkeys-lfu", "--lfu-decay-time", "0"];
    let mut server = Server::start_with(&args);
    let mut con = server.client();
    let _: () = con.set("k", "v").unwrap();
    for _ in 0..100 {
        let _: String = con.get("k").unwrap();
    }
    let freq: i64 = redis::cmd("OBJECT").arg("FREQ").arg("k").query(&mut con).unwrap();
    assert!(freq > 5);
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    drop(con);
    server.restart();
    let mut con = server.client();
    let loaded: i64 = redis::cmd("OBJECT").arg("FREQ").arg("k").query(&mut con).unwrap();
    assert_eq!(loaded, freq);
}

#[test]
fn lru_idle_time_survives_save_and_restart() {
    let mut server = start_with_policy("allkeys-lru");
    let mut con = server.client();
    restore_idle(&mut con, "k", 0..1, 5000);
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    drop(con);
    server.restart();
    let mut con = server.client();
    let idle: i64 = redis::cmd("OBJECT").arg("IDLETIME").arg("k0").query(&mut con).unwrap();
    assert!((5000..5060).contains(&idle), "idle {idle}");
}

#[test]
fn unlink_and_flushall_async_free_on_the_lazyfree_thread() {
    let server = Server::start();
    let mut con = server.client();
    let members: Vec<String> = (0..1000).map(|i| format!("member{i}")).collect();
    let _: () = con.sadd("big", &members).unwrap();
    let _: () = con.set("small", "x").unwrap();
    let _: i64 = redis::cmd("UNLINK").arg("big").arg("small").query(&mut con).unwrap();
    fill(&mut con, "k:", 0..2000, 10, &[]);
    let _: () = redis::cmd("FLUSHALL").arg("ASYNC").query(&mut con).unwrap();
    // One big value (the small one is freed at once) and 2000 keys.
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "memory", "lazyfreed_objects") < 2001 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(info_field(&mut con, "memory", "lazyfreed_objects"), 2001);
    assert_eq!(info_field(&mut con, "memory", "lazyfree_pending_objects"), 0);
}

#[test]
fn nothing_is_evicted_while_clients_are_paused() {
    // As in Valkey, a pause (WRITE or ALL) holds eviction too, so the
    // dataset stays as it is until UNPAUSE, even over the limit.
    let server = start_with_policy("allkeys-random");
    let mut con = server.client();
    fill(&mut con, "a:", 0..2000, 1000, &[]);
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(60_000).arg("WRITE").query(&mut con).unwrap();
    let half = used_memory(&mut con) / 2;
    config_set(&mut con, "maxmemory", &half.to_string());
    for _ in 0..20 {
        let _: Option<String> = con.get("a:1").unwrap();
    }
    assert_eq!(info_field(&mut con, "stats", "evicted_keys"), 0);
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 2000);
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query(&mut con).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut con, "stats", "evicted_keys") == 0 {
        assert!(Instant::now() < deadline, "no eviction after UNPAUSE");
        let _: Option<String> = con.get("a:1").unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}
