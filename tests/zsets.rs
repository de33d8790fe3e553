//! Sorted sets against a running ferrokey: a delayed-job queue worked by
//! concurrent clients, ranks and ranges of a large set checked against a
//! model, blocking pops woken by writes, and score texts (printed and
//! parsed) compared with the reference valkey-server over thousands of
//! random doubles.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, Valkey};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redis::Connection;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Schedules `count` jobs due over the next half second (a few already
/// due), in ZADD batches.
fn schedule_jobs(con: &mut Connection, key: &str, count: usize) {
    let start = now_ms() - 50;
    for batch in (0..count).collect::<Vec<_>>().chunks(100) {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(key);
        for &job in batch {
            cmd.arg(start + (job as i64 * 7) % 500).arg(format!("job:{job}"));
        }
        let added: usize = cmd.query(con).unwrap();
        assert_eq!(added, batch.len());
    }
}

/// Runs `workers` threads, each with its own connection, until the queue
/// is empty; returns every job each worker ran.
fn run_workers(server: &Server, workers: usize, work: fn(&mut Connection) -> Option<Option<String>>) -> Vec<String> {
    let done = Arc::new(Mutex::new(Vec::new()));
    let start = Arc::new(Barrier::new(workers));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let mut con = server.client();
            let done = Arc::clone(&done);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let deadline = Instant::now() + Duration::from_secs(30);
                // `work` answers None when the queue is empty, Some(None)
                // when nothing is due yet, Some(Some(job)) for a job run.
                while let Some(claimed) = work(&mut con) {
                    assert!(Instant::now() < deadline, "the queue never drained");
                    match claimed {
                        Some(job) => done.lock().unwrap().push(job),
                        None => thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    Arc::try_unwrap(done).unwrap().into_inner().unwrap()
}

fn assert_each_job_once(ran: Vec<String>, count: usize) {
    let distinct: HashSet<&String> = ran.iter().collect();
    assert_eq!(distinct.len(), ran.len(), "a job ran twice");
    assert_eq!(ran.len(), count, "jobs were lost");
}

/// ZPOPMIN claims the earliest job; one that is not due yet goes back.
fn pop_due_job(con: &mut Connection) -> Option<Option<String>> {
    let popped: Vec<String> = redis::cmd("ZPOPMIN").arg("jobs").query(con).unwrap();
    let [job, due] = <[String; 2]>::try_from(popped).ok()?;
    let due: i64 = due.parse().unwrap();
    if due > now_ms() {
        let _: i64 = redis::cmd("ZADD").arg("jobs").arg("NX").arg(due).arg(&job).query(con).unwrap();
        return Some(None);
    }
    Some(Some(job))
}

/// ZRANGEBYSCORE finds a due job; the worker whose ZREM removes it runs it.
fn claim_due_job(con: &mut Connection) -> Option<Option<String>> {
    let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg("jobs")
        .arg("-inf")
        .arg(now_ms())
        .arg("LIMIT")
        .arg(0)
        .arg(1)
        .query(con)
        .unwrap();
    let Some(job) = due.into_iter().next() else {
        let left: usize = redis::cmd("ZCARD").arg("jobs").query(con).unwrap();
        return (left > 0).then_some(None);
    };
    let removed: i64 = redis::cmd("ZREM").arg("jobs").arg(&job).query(con).unwrap();
    Some((removed == 1).then_some(job))
}

#[test]
fn delayed_jobs_popped_by_four_workers_run_exactly_once() {
    let server = Server::start();
    let mut con = server.client();
    schedule_jobs(&mut con, "jobs", 2000);
    let ran = run_workers(&server, 4, pop_due_job);
    assert_each_job_once(ran, 2000);
    let exists: i64 = redis::cmd("EXISTS").arg("jobs").query(&mut con).unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn delayed_jobs_claimed_with_zrem_run_exactly_once() {
    let server = Server::start();
    let mut con = server.client();
    schedule_jobs(&mut con, "jobs", 2000);
    let ran = run_workers(&server, 4, claim_due_job);
    assert_each_job_once(ran, 2000);
}

/// A score with a total order, for the model.
#[derive(Clone, Copy, PartialEq)]
struct Score(f64);
impl Eq for Score {}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.partial_cmp(&other.0).unwrap()
    }
}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

struct Model {
    order: BTreeSet<(Score, String)>,
    scores: HashMap<String, f64>,
}

impl Model {
    fn set(&mut self, member: &str, score: f64) {
        if let Some(old) = self.scores.insert(member.to_string(), score) {
            self.order.remove(&(Score(old), member.to_string()));
        }
        self.order.insert((Score(score), member.to_string()));
    }

    fn remove(&mut self, member: &str) -> bool {
        match self.scores.remove(member) {
            Some(old) => self.order.remove(&(Score(old), member.to_string())),
            None => false,
        }
    }

    fn sorted(&self) -> Vec<(String, f64)> {
        self.order.iter().map(|(s, m)| (m.clone(), s.0)).collect()
    }
}

fn check_against_model(con: &mut Connection, model: &Model, rng: &mut SmallRng) {
    let sorted = model.sorted();
    let len: usize = redis::cmd("ZCARD").arg("big").query(con).unwrap();
    assert_eq!(len, sorted.len());
    for _ in 0..200 {
        let rank = rng.gen_range(0..sorted.len());
        let (member, _) = &sorted[rank];
        let got: Option<usize> = redis::cmd("ZRANK").arg("big").arg(member).query(con).unwrap();
        assert_eq!(got, Some(rank), "ZRANK {member}");
        let got: Option<usize> = redis::cmd("ZREVRANK").arg("big").arg(member).query(con).unwrap();
        assert_eq!(got, Some(sorted.len() - 1 - rank));
    }
    for _ in 0..50 {
        let start = rng.gen_range(0..sorted.len());
        let stop = (start + rng.gen_range(0..40)).min(sorted.len() - 1);
        let got: Vec<String> = redis::cmd("ZRANGE").arg("big").arg(start).arg(stop).query(con).unwrap();
        let want: Vec<String> = sorted[start..=stop].iter().map(|(m, _)| m.clone()).collect();
        assert_eq!(got, want, "ZRANGE {start} {stop}");
        let got: Vec<String> = redis::cmd("ZRANGE").arg("big").arg(start).arg(stop).arg("REV").query(con).unwrap();
        let want: Vec<String> =
            sorted.iter().rev().skip(start).take(stop - start + 1).map(|(m, _)| m.clone()).collect();
        assert_eq!(got, want, "ZRANGE {start} {stop} REV");
        let low = rng.gen_range(-1000..1000) as f64;
        let high = low + rng.gen_range(0..20) as f64;
        let in_range: Vec<String> =
            sorted.iter().filter(|(_, s)| (low..=high).contains(s)).map(|(m, _)| m.clone()).collect();
        let got: Vec<String> =
            redis::cmd("ZRANGEBYSCORE").arg("big").arg(low).arg(high).arg("LIMIT").arg(0).arg(30).query(con).unwrap();
        assert_eq!(got, in_range.iter().take(30).cloned().collect::<Vec<_>>(), "ZRANGEBYSCORE {low} {high}");
        let count: usize = redis::cmd("ZCOUNT").arg("big").arg(low).arg(format!("({high}")).query(con).unwrap();
        assert_eq!(count, sorted.iter().filter(|(_, s)| *s >= low && *s < high).count());
    }
}

#[test]
fn ranks_and_ranges_of_100k_members_match_a_model() {
    let server = Server::start();
    let mut con = server.client();
    let mut rng = SmallRng::seed_from_u64(42);
    let mut model = Model { order: BTreeSet::new(), scores: HashMap::new() };
    let members: Vec<String> = (0..100_000).map(|i| format!("member:{i}")).collect();
    for batch in members.chunks(1000) {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg("big");
        for member in batch {
            // Few distinct scores, so that ties (ordered by member) abound.
            let score = rng.gen_range(-1000..1000) as f64 + if rng.gen_bool(0.5) { 0.5 } else { 0.0 };
            cmd.arg(score).arg(member);
            model.set(member, score);
        }
        let _: usize = cmd.query(&mut con).unwrap();
    }
    let encoding: String = redis::cmd("OBJECT").arg("ENCODING").arg("big").query(&mut con).unwrap();
    assert_eq!(encoding, "skiplist");
    check_against_model(&mut con, &model, &mut rng);

    // Churn: removals, increments, re-adds, range removals.
    for _ in 0..20_000 {
        let member = &members[rng.gen_range(0..members.len())];
        match rng.gen_range(0..3) {
            0 => {
                let removed: i64 = redis::cmd("ZREM").arg("big").arg(member).query(&mut con).unwrap();
                assert_eq!(removed == 1, model.remove(member));
            }
            1 => {
                let by = rng.gen_range(-5..5) as f64;
                let score: f64 = redis::cmd("ZINCRBY").arg("big").arg(by).arg(member).query(&mut con).unwrap();
                let expected = model.scores.get(member).copied().unwrap_or(0.0) + by;
                assert_eq!(score, expected);
                model.set(member, expected);
            }
            _ => {
                let score = rng.gen_range(-1000..1000) as f64;
                let _: i64 = redis::cmd("ZADD").arg("big").arg(score).arg(member).query(&mut con).unwrap();
                model.set(member, score);
            }
        }
    }
    let removed: usize = redis::cmd("ZREMRANGEBYRANK").arg("big").arg(100).arg(199).query(&mut con).unwrap();
    assert_eq!(removed, 100);
    for (member, _) in model.sorted()[100..200].to_vec() {
        model.remove(&member);
    }
    let removed: usize = redis::cmd("ZREMRANGEBYSCORE").arg("big").arg("(10").arg(20).query(&mut con).unwrap();
    let doomed: Vec<String> =
        model.sorted().into_iter().filter(|(_, s)| *s > 10.0 && *s <= 20.0).map(|(m, _)| m).collect();
    assert_eq!(removed, doomed.len());
    for member in doomed {
        model.remove(&member);
    }
    check_against_model(&mut con, &model, &mut rng);

    // ZSCAN visits every member at least once, with its score.
    let mut cursor = 0u64;
    let mut seen = HashSet::new();
    loop {
        let (next, items): (u64, Vec<String>) =
            redis::cmd("ZSCAN").arg("big").arg(cursor).arg("COUNT").arg(500).query(&mut con).unwrap();
        for pair in items.chunks(2) {
            assert_eq!(pair[1].parse::<f64>().unwrap(), model.scores[&pair[0]]);
            seen.insert(pair[0].clone());
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), model.scores.len());
}

#[test]
fn bzpopmin_wakes_when_a_member_is_added() {
    let server = Server::start();
    let mut waiter = server.raw();
    waiter.send(&[b"BZPOPMIN", b"q:empty", b"q:jobs", b"5"]);
    // Nothing to pop yet: the client is parked.
    assert!(!waiter.is_closed(Duration::from_millis(200)));
    assert!(waiter.pending().is_empty());
    let mut writer = server.client();
    let _: i64 = redis::cmd("ZADD").arg("q:jobs").arg(3).arg("c").arg(1).arg("a").query(&mut writer).unwrap();
    // The element, not the timeout's nil: the push woke the waiter.
    assert_eq!(waiter.read_reply(), b"*3\r\n$6\r\nq:jobs\r\n$1\r\na\r\n$1\r\n1\r\n");
    let left: Vec<String> = redis::cmd("ZRANGE").arg("q:jobs").arg(0).arg(-1).query(&mut writer).unwrap();
    assert_eq!(left, ["c"]);

    // First come, first served; BZMPOP takes a count; RESP3 scores are doubles.
    let mut first = server.raw();
    let mut second = server.raw();
    second.cmd(&[b"HELLO", b"3"]);
    first.send(&[b"BZPOPMAX", b"q:next", b"0"]);
    thread::sleep(Duration::from_millis(100));
    second.send(&[b"BZMPOP", b"0", b"1", b"q:next", b"MIN", b"COUNT", b"5"]);
    thread::sleep(Duration::from_millis(100));
    let _: i64 =
        redis::cmd("ZADD").arg("q:next").arg(1).arg("x").arg(2).arg("y").arg(3).arg("z").query(&mut writer).unwrap();
    assert_eq!(first.read_reply(), b"*3\r\n$6\r\nq:next\r\n$1\r\nz\r\n$1\r\n3\r\n");
    assert_eq!(second.read_reply(), b"*2\r\n$6\r\nq:next\r\n*2\r\n*2\r\n$1\r\nx\r\n,1\r\n*2\r\n$1\r\ny\r\n,2\r\n");

    // A key that becomes another type does not wake the waiter (nor make
    // it answer WRONGTYPE); the sorted set that replaces it does.
    let mut patient = server.raw();
    patient.send(&[b"BZPOPMIN", b"q:retyped", b"5"]);
    thread::sleep(Duration::from_millis(100));
    let _: () = redis::cmd("SET").arg("q:retyped").arg("text").query(&mut writer).unwrap();
    assert!(!patient.is_closed(Duration::from_millis(200)));
    assert!(patient.pending().is_empty());
    let _: i64 = redis::cmd("DEL").arg("q:retyped").query(&mut writer).unwrap();
    let _: i64 = redis::cmd("ZADD").arg("q:retyped").arg(7).arg("m").query(&mut writer).unwrap();
    assert_eq!(patient.read_reply(), b"*3\r\n$9\r\nq:retyped\r\n$1\r\nm\r\n$1\r\n7\r\n");

    // A timeout answers a null array.
    let mut late = server.raw();
    let started = Instant::now();
    assert_eq!(late.cmd(&[b"BZPOPMIN", b"q:never", b"0.2"]), b"*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

/// Sends each command to both servers and collects the raw replies.
fn both(ours: &mut common::RawConn, theirs: &mut common::RawConn, args: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    (ours.cmd(args), theirs.cmd(args))
}

#[test]
fn score_texts_match_valkey_for_random_doubles() {
    let server = Server::start();
    let valkey = Valkey::start();
    let mut ours = server.raw();
    let mut theirs = valkey.raw();
    let mut rng = SmallRng::seed_from_u64(2024);
    let mut values: Vec<f64> = Vec::new();
    for i in 0..6000 {
        let value = match i % 4 {
            // Any bit pattern: every exponent, subnormals included.
            0 | 1 => f64::from_bits(rng.gen()),
            // Short decimals, the usual scores.
            2 => rng.gen_range(-1_000_000i64..1_000_000) as f64 / 10f64.powi(rng.gen_range(0..8)),
            // Large and small magnitudes around the layout switches.
            _ => rng.gen::<f64>() * 10f64.powi(rng.gen_range(-25..25)),
        };
        if !value.is_nan() {
            values.push(value);
        }
    }
    let mut mismatches = Vec::new();
    for chunk in values.chunks(200) {
        for conn in [&mut ours, &mut theirs] {
            conn.cmd(&[b"DEL", b"d:small", b"d:big"]);
            conn.cmd(&[b"CONFIG", b"SET", b"zset-max-listpack-entries", b"0"]);
            conn.cmd(&[b"ZADD", b"d:big", b"0", b"seed"]);
            conn.cmd(&[b"CONFIG", b"SET", b"zset-max-listpack-entries", b"128"]);
        }
        for (i, value) in chunk.iter().enumerate() {
            // Rust's shortest form reads back exactly.
            let text = format!("{value:e}");
            let member = format!("m{i}");
            let small: &[u8] = if i < 100 { b"d:small" } else { b"d:big" };
            let (a, b) = both(&mut ours, &mut theirs, &[b"ZADD", small, text.as_bytes(), member.as_bytes()]);
            assert_eq!(a, b, "ZADD {text}");
            let (a, b) = both(&mut ours, &mut theirs, &[b"ZSCORE", small, member.as_bytes()]);
            if a != b {
                mismatches.push(format!("{text}: ours {:?} valkey {:?}", common::escape(&a), common::escape(&b)));
            }
        }
        // Big sets print scores with %.17g in ZSCAN; one call returns all.
        let scan = |conn: &mut common::RawConn| -> HashMap<Vec<u8>, Vec<u8>> {
            let reply = conn.cmd_value(&[b"ZSCAN", b"d:big", b"0", b"COUNT", b"100000"]);
            let ferrokey_formats::resp::Value::Array(parts) = reply else { panic!("ZSCAN reply") };
            let ferrokey_formats::resp::Value::Array(items) = &parts[1] else { panic!("ZSCAN items") };
            let bytes = |v: &ferrokey_formats::resp::Value| match v {
                ferrokey_formats::resp::Value::Bulk(b) => b.clone(),
                other => panic!("{other:?}"),
            };
            items.chunks(2).map(|p| (bytes(&p[0]), bytes(&p[1]))).collect()
        };
        assert_eq!(scan(&mut ours), scan(&mut theirs), "ZSCAN of a skiplist");
        let (a, b) = both(&mut ours, &mut theirs, &[b"ZRANGE", b"d:small", b"0", b"-1", b"WITHSCORES"]);
        assert_eq!(a, b);
    }
    assert!(mismatches.is_empty(), "{} of {} differ:\n{}", mismatches.len(), values.len(), mismatches.join("\n"));
}

#[test]
fn score_arguments_parse_like_valkey() {
    let server = Server::start();
    let valkey = Valkey::start();
    let mut ours = server.raw();
    let mut theirs = valkey.raw();
    let mut rng = SmallRng::seed_from_u64(7);
    let pieces = [
        "", "+", "-", "0", "00", "1", "9", ".", "5", "e", "E", "e+", "e-", "x", "0x", "p", "p-", "f", "a", " ", "inf",
        "nan", "1e308", "e400", "e-330",
    ];
    let mut texts: Vec<String> =
        (0..3000).map(|_| (0..rng.gen_range(1..6)).map(|_| pieces[rng.gen_range(0..pieces.len())]).collect()).collect();
    texts.extend(
        [
            "0x1p-1074",
            "0x1.fffffffffffffp1023",
            "0X1P+4",
            "0x.8",
            "0x8.",
            "-0x0",
            "infinity",
            "INF",
            "-Infinity",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "1e-323",
            "4.9e-324",
        ]
        .map(String::from),
    );
    for (i, text) in texts.iter().enumerate() {
        let member = format!("m{}", i % 50);
        let exclusive = format!("({text}");
        let commands: [Vec<&[u8]>; 4] = [
            vec![b"ZADD", b"p:z", text.as_bytes(), member.as_bytes()],
            vec![b"ZSCORE", b"p:z", member.as_bytes()],
            vec![b"ZCOUNT", b"p:z", text.as_bytes(), b"+inf"],
            vec![b"ZCOUNT", b"p:z", b"-inf", exclusive.as_bytes()],
        ];
        for args in commands {
            let (a, b) = both(&mut ours, &mut theirs, &args);
            assert_eq!(a, b, "{:?}", args.iter().map(|a| common::escape(a)).collect::<Vec<_>>());
        }
    }
}

/// Loads the same small sorted sets (5 members each, listpack-encoded)
/// into ferrokey and valkey-server and prints what each reports. The
/// figures are for reading, not asserted: they depend on the allocator and
/// the machine. Set ZSET_MEMORY_KEYS for a bigger run (the default keeps
/// the test quick).
#[test]
fn memory_of_many_small_sorted_sets_next_to_valkey() {
    let keys = common::memory_keys("ZSET_MEMORY_KEYS");
    let ferrokey = Server::start();
    let valkey = Valkey::start();
    let mut report = Vec::new();
    for (name, server) in [("ferrokey", &ferrokey), ("valkey", &*valkey)] {
        let mut con = server.client();
        let growth = common::memory_growth(&mut con, keys, &|i| {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(format!("board:{i}"));
            for j in 0..5u64 {
                zadd.arg((i + j * 7) % 1000).arg(format!("player{j}:{i}"));
            }
            zadd
        });
        let encoding: String = redis::cmd("OBJECT").arg("ENCODING").arg("board:0").query(&mut con).unwrap();
        assert_eq!(encoding, "listpack");
        report.push(format!("{name}: {growth}"));
    }
    println!("{keys} sorted sets x 5 members:\n  {}", report.join("\n  "));
}
