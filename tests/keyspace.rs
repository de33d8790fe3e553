//! Keyspace commands against a running ferrokey: SCAN's guarantee under
//! concurrent changes, lazy and active expiry, FLUSHALL ASYNC, SWAPDB,
//! COPY/MOVE across databases, RENAME keeping the TTL, and the
//! bookkeeping (access times, keyspace hits and misses) lookups do.

mod common;

use std::collections::HashSet;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::Server;
use redis::{Commands, Connection};

/// Stores `count` keys named `{prefix}{i}` in one pipeline, each with the
/// extra SET arguments given (such as a TTL).
fn fill(con: &mut Connection, prefix: &str, count: usize, set_args: &[&str]) {
    let mut pipe = redis::pipe();
    for i in 0..count {
        pipe.cmd("SET").arg(format!("{prefix}{i}")).arg(i).arg(set_args).ignore();
    }
    pipe.query::<()>(con).expect("fill pipeline");
}

fn dbsize(con: &mut Connection) -> usize {
    redis::cmd("DBSIZE").query(con).expect("DBSIZE")
}

/// One `field:value` of an INFO section, as an integer.
fn info_field(con: &mut Connection, section: &str, field: &str) -> i64 {
    let text: String = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("INFO {section} has no {field}:\n{text}"))
        .trim()
        .parse()
        .expect("integer INFO field")
}

/// A small deterministic generator, so a failing run can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn full_scan_returns_every_key_present_throughout_despite_churn() {
    const STABLE: usize = 10_000;
    const CHURN: usize = 4_000;
    let server = Server::start();
    let mut scanner = server.client();
    let mut writer = server.client();
    fill(&mut writer, "stable:", STABLE, &[]);
    fill(&mut writer, "churn:", CHURN, &[]);

    let mut rng = Lcg(0x5eed);
    let mut churn_alive: Vec<String> = (0..CHURN).map(|i| format!("churn:{i}")).collect();
    let mut added = 0usize;
    let mut seen: HashSet<String> = HashSet::new();
    let mut cursor: u64 = 0;
    let mut calls = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(97).query(&mut scanner).expect("SCAN");
        seen.extend(keys);
        calls += 1;
        // Between two SCAN calls other clients delete keys anywhere in
        // the keyspace and add new ones.
        let mut pipe = redis::pipe();
        for _ in 0..25 {
            if !churn_alive.is_empty() {
                let victim = churn_alive.swap_remove(rng.below(churn_alive.len()));
                pipe.cmd("DEL").arg(victim).ignore();
            }
            let fresh = format!("added:{added}");
            added += 1;
            pipe.cmd("SET").arg(&fresh).arg("x").ignore();
            churn_alive.push(fresh);
        }
        pipe.query::<()>(&mut writer).expect("churn pipeline");
        cursor = next;
        if cursor == 0 {
            break;
        }
        assert!(calls < 10_000, "SCAN did not finish");
    }
    let missed: Vec<String> = (0..STABLE).map(|i| format!("stable:{i}")).filter(|k| !seen.contains(k)).collect();
    assert!(
        missed.is_empty(),
        "a full SCAN missed {} stable keys, e.g. {:?}",
        missed.len(),
        &missed[..missed.len().min(5)]
    );
    // Nothing that never existed is reported.
    assert!(seen.iter().all(|k| k.starts_with("stable:") || k.starts_with("churn:") || k.starts_with("added:")));
}

#[test]
fn scan_filters_by_match_and_type() {
    let server = Server::start();
    let mut con = server.client();
    fill(&mut con, "a:", 300, &[]);
    fill(&mut con, "b:", 200, &[]);
    let mut seen = HashSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg("b:*").arg("TYPE").arg("string").query(&mut con).unwrap();
        assert!(keys.iter().all(|k| k.starts_with("b:")), "{keys:?}");
        seen.extend(keys);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 200);
    let (_, lists): (u64, Vec<String>) =
        redis::cmd("SCAN").arg(0).arg("TYPE").arg("list").arg("COUNT").arg(10_000).query(&mut con).unwrap();
    assert!(lists.is_empty());
}

#[test]
fn lazy_expiry_hides_and_reclaims_a_key_on_access() {
    let server = Server::start();
    let mut con = server.client();
    let _: () = con.set("short", "lived").unwrap();
    let set: bool = con.pexpire("short", 50).unwrap();
    assert!(set);
    let ttl: i64 = con.pttl("short").unwrap();
    assert!((1..=50).contains(&ttl), "PTTL {ttl}");
    sleep(Duration::from_millis(120));
    let value: Option<String> = con.get("short").unwrap();
    assert_eq!(value, None);
    let exists: i64 = con.exists("short").unwrap();
    assert_eq!(exists, 0);
    let ttl: i64 = con.ttl("short").unwrap();
    assert_eq!(ttl, -2);
}

#[test]
fn active_expiry_reclaims_keys_nobody_reads() {
    const KEYS: usize = 20_000;
    let server = Server::start();
    let mut con = server.client();
    let before = info_field(&mut con, "stats", "expired_keys");
    fill(&mut con, "ttl:", KEYS, &["PX", "100"]);
    fill(&mut con, "keep:", 10, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut size = dbsize(&mut con);
    while size > 10 && Instant::now() < deadline {
        sleep(Duration::from_millis(100));
        size = dbsize(&mut con);
    }
    assert_eq!(size, 10, "active expiry left {} expired keys after 10 s", size - 10);
    let expired = info_field(&mut con, "stats", "expired_keys") - before;
    assert_eq!(expired, KEYS as i64);
}

#[test]
fn expire_in_the_past_deletes_without_counting_an_expiry() {
    let server = Server::start();
    let mut con = server.client();
    let _: () = con.set("k", "v").unwrap();
    let before = info_field(&mut con, "stats", "expired_keys");
    let deleted: i64 = redis::cmd("EXPIRE").arg("k").arg(-1).query(&mut con).unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(dbsize(&mut con), 0);
    assert_eq!(info_field(&mut con, "stats", "expired_keys"), before);
}

#[test]
fn flushall_async_empties_every_database_and_keeps_serving() {
    let server = Server::start();
    let mut con = server.client();
    fill(&mut con, "zero:", 50_000, &[]);
    let _: () = redis::cmd("SELECT").arg(1).query(&mut con).unwrap();
    fill(&mut con, "one:", 20_000, &[]);
    let reply: String = redis::cmd("FLUSHALL").arg("ASYNC").query(&mut con).unwrap();
    assert_eq!(reply, "OK");
    assert_eq!(dbsize(&mut con), 0);
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
    assert_eq!(dbsize(&mut con), 0);
    let _: () = con.set("after", "flush").unwrap();
    let value: String = con.get("after").unwrap();
    assert_eq!(value, "flush");

    // FLUSHDB ASYNC empties only the selected database.
    fill(&mut con, "zero:", 5_000, &[]);
    let _: () = redis::cmd("SELECT").arg(2).query(&mut con).unwrap();
    fill(&mut con, "two:", 5_000, &[]);
    let _: () = redis::cmd("FLUSHDB").arg("ASYNC").query(&mut con).unwrap();
    assert_eq!(dbsize(&mut con), 0);
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
    assert_eq!(dbsize(&mut con), 5_001);
}

#[test]
fn swapdb_is_seen_by_clients_already_connected() {
    let server = Server::start();
    let mut in_zero = server.client();
    let mut in_one = server.client();
    let _: () = redis::cmd("SELECT").arg(1).query(&mut in_one).unwrap();
    let _: () = in_zero.set("where", "zero").unwrap();
    let _: () = in_one.set("where", "one").unwrap();
    let _: () = in_one.set_ex("volatile", "x", 100).unwrap();
    let _: () = redis::cmd("SWAPDB").arg(0).arg(1).query(&mut in_zero).unwrap();
    let zero: String = in_zero.get("where").unwrap();
    let one: String = in_one.get("where").unwrap();
    assert_eq!((zero.as_str(), one.as_str()), ("one", "zero"));
    // The TTLs travel with their database.
    let ttl: i64 = in_zero.ttl("volatile").unwrap();
    assert!((99..=100).contains(&ttl), "TTL {ttl}");
    assert_eq!(dbsize(&mut in_one), 1);
}

#[test]
fn copy_and_move_across_databases_keep_value_and_ttl() {
    let server = Server::start();
    let mut con = server.client();
    let _: () = con.set_ex("src", "payload", 500).unwrap();
    let copied: i64 = redis::cmd("COPY").arg("src").arg("dst").arg("DB").arg(3).query(&mut con).unwrap();
    assert_eq!(copied, 1);
    let again: i64 = redis::cmd("COPY").arg("src").arg("dst").arg("DB").arg(3).query(&mut con).unwrap();
    assert_eq!(again, 0);
    let moved: i64 = redis::cmd("MOVE").arg("src").arg(5).query(&mut con).unwrap();
    assert_eq!(moved, 1);
    let gone: i64 = con.exists("src").unwrap();
    assert_eq!(gone, 0);

    for db in [3, 5] {
        let _: () = redis::cmd("SELECT").arg(db).query(&mut con).unwrap();
        let key = if db == 3 { "dst" } else { "src" };
        let value: String = con.get(key).unwrap();
        assert_eq!(value, "payload");
        let ttl: i64 = con.ttl(key).unwrap();
        assert!((495..=500).contains(&ttl), "TTL {ttl} in db {db}");
    }

    // Changing the copy leaves the original alone.
    let _: () = redis::cmd("SELECT").arg(3).query(&mut con).unwrap();
    let _: () = con.set("dst", "changed").unwrap();
    let _: () = redis::cmd("SELECT").arg(5).query(&mut con).unwrap();
    let original: String = con.get("src").unwrap();
    assert_eq!(original, "payload");

    // MOVE refuses when the destination already has the key.
    let _: () = con.set("clash", "five").unwrap();
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
    let _: () = con.set("clash", "zero").unwrap();
    let refused: i64 = redis::cmd("MOVE").arg("clash").arg(5).query(&mut con).unwrap();
    assert_eq!(refused, 0);
    let kept: String = con.get("clash").unwrap();
    assert_eq!(kept, "zero");
}

#[test]
fn rename_keeps_the_ttl_and_replaces_the_destination() {
    let server = Server::start();
    let mut con = server.client();
    let _: () = con.pset_ex("from", "value", 300_000).unwrap();
    let _: () = con.set("to", "old").unwrap();
    let _: () = con.rename("from", "to").unwrap();
    let value: String = con.get("to").unwrap();
    assert_eq!(value, "value");
    let pttl: i64 = con.pttl("to").unwrap();
    assert!((295_000..=300_000).contains(&pttl), "PTTL {pttl}");
    let gone: i64 = con.exists("from").unwrap();
    assert_eq!(gone, 0);

    // A key without TTL renamed over one with a TTL: the result has none.
    let _: () = con.set("plain", "p").unwrap();
    let _: () = con.rename("plain", "to").unwrap();
    let ttl: i64 = con.ttl("to").unwrap();
    assert_eq!(ttl, -1);

    // The TTL keeps counting after a rename: the key still expires.
    let _: () = con.pset_ex("soon", "v", 80).unwrap();
    let _: () = con.rename("soon", "later").unwrap();
    sleep(Duration::from_millis(150));
    let expired: Option<String> = con.get("later").unwrap();
    assert_eq!(expired, None);
}

#[test]
fn touch_resets_idle_time_and_reads_count_hits_and_misses() {
    let server = Server::start();
    let mut con = server.client();
    let _: () = con.set("idle", "text value").unwrap();
    sleep(Duration::from_millis(2_100));
    let idle: i64 = redis::cmd("OBJECT").arg("IDLETIME").arg("idle").query(&mut con).unwrap();
    assert!(idle >= 2, "IDLETIME {idle} after 2.1 s");
    // OBJECT and EXISTS inspect without touching.
    let _: i64 = con.exists("idle").unwrap();
    let still: i64 = redis::cmd("OBJECT").arg("IDLETIME").arg("idle").query(&mut con).unwrap();
    assert!(still >= 2, "IDLETIME {still} after EXISTS");
    let touched: i64 = redis::cmd("TOUCH").arg("idle").arg("missing").query(&mut con).unwrap();
    assert_eq!(touched, 1);
    let fresh: i64 = redis::cmd("OBJECT").arg("IDLETIME").arg("idle").query(&mut con).unwrap();
    assert_eq!(fresh, 0);

    let hits = info_field(&mut con, "stats", "keyspace_hits");
    let misses = info_field(&mut con, "stats", "keyspace_misses");
    let _: i64 = redis::cmd("EXISTS").arg("idle").arg("missing").arg("idle").query(&mut con).unwrap();
    let _: String = redis::cmd("TYPE").arg("missing").query(&mut con).unwrap();
    // Write lookups count nothing.
    let _: i64 = redis::cmd("EXPIRE").arg("idle").arg(100).query(&mut con).unwrap();
    let _: i64 = redis::cmd("DEL").arg("missing").query(&mut con).unwrap();
    assert_eq!(info_field(&mut con, "stats", "keyspace_hits") - hits, 2);
    assert_eq!(info_field(&mut con, "stats", "keyspace_misses") - misses, 2);
}
