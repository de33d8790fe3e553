//! Set commands against a running ferrokey, where a differential script
//! cannot judge: random picks (SPOP draining a set exactly once,
//! SRANDMEMBER's distinct and repeating counts), SSCAN while the set
//! changes underneath, set algebra on big random sets checked against a
//! Rust computation, and the memory a million-member set takes next to
//! Valkey's.

mod common;

use std::collections::{HashMap, HashSet};

use common::{Server, Valkey};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redis::{Commands, Connection};

type Members = HashSet<Vec<u8>>;

fn encoding(con: &mut Connection, key: &str) -> String {
    redis::cmd("OBJECT").arg("ENCODING").arg(key).query(con).expect("OBJECT ENCODING")
}

fn smembers(con: &mut Connection, key: &str) -> Members {
    let list: Vec<Vec<u8>> = con.smembers(key).expect("SMEMBERS");
    let set: Members = list.iter().cloned().collect();
    assert_eq!(set.len(), list.len(), "SMEMBERS repeated a member");
    set
}

/// Adds members in batches (one SADD per 1000), pipelined.
fn sadd_all(con: &mut Connection, key: &str, members: &[Vec<u8>]) {
    let mut pipe = redis::pipe();
    for batch in members.chunks(1000) {
        pipe.cmd("SADD").arg(key).arg(batch).ignore();
    }
    pipe.query::<()>(con).expect("SADD batches");
}

/// Members that make each encoding: integers (intset), short words
/// (listpack) and enough words for a hash table.
fn fixture(kind: &str) -> Vec<Vec<u8>> {
    match kind {
        "intset" => (0..300).map(|i| (i * 7 - 1000).to_string().into_bytes()).collect(),
        "listpack" => (0..100).map(|i| format!("w{i}").into_bytes()).collect(),
        _ => (0..3000).map(|i| format!("member:{i}").into_bytes()).collect(),
    }
}

const KINDS: [&str; 3] = ["intset", "listpack", "hashtable"];

#[test]
fn spop_with_count_drains_every_member_exactly_once() {
    let server = Server::start();
    let mut con = server.client();
    let mut rng = SmallRng::seed_from_u64(1);
    for kind in KINDS {
        let members = fixture(kind);
        sadd_all(&mut con, "drain", &members);
        assert_eq!(encoding(&mut con, "drain"), kind);
        // Counts of every size, so each of SPOP's strategies runs: one by
        // one, keeping a few in a new set, and popping everything.
        let mut popped: Vec<Vec<u8>> = Vec::new();
        loop {
            let left: usize = con.scard("drain").unwrap();
            if left == 0 {
                break;
            }
            let count = match rng.gen_range(0..4) {
                0 => 1,
                1 => rng.gen_range(1..=left),
                2 => left.saturating_sub(rng.gen_range(1..4)).max(1),
                _ => left + 5,
            };
            let got: Vec<Vec<u8>> = redis::cmd("SPOP").arg("drain").arg(count).query(&mut con).unwrap();
            assert_eq!(got.len(), count.min(left), "{kind}: SPOP {count} of {left}");
            let after: usize = con.scard("drain").unwrap();
            assert_eq!(after, left - got.len());
            popped.extend(got);
        }
        let distinct: Members = popped.iter().cloned().collect();
        assert_eq!(popped.len(), members.len(), "{kind}: a member came out twice");
        assert_eq!(distinct, members.iter().cloned().collect::<Members>(), "{kind}: wrong members");
        let exists: bool = con.exists("drain").unwrap();
        assert!(!exists, "an emptied set is deleted");
    }
}

#[test]
fn spop_without_count_pops_each_member_once() {
    let server = Server::start();
    let mut con = server.client();
    for kind in KINDS {
        let members = fixture(kind);
        sadd_all(&mut con, "one", &members);
        let mut seen = Members::new();
        for _ in 0..members.len() {
            let member: Vec<u8> = redis::cmd("SPOP").arg("one").query(&mut con).unwrap();
            assert!(seen.insert(member), "{kind}: popped twice");
        }
        let none: Option<Vec<u8>> = redis::cmd("SPOP").arg("one").query(&mut con).unwrap();
        assert_eq!(none, None);
        assert_eq!(seen.len(), members.len());
    }
}

#[test]
fn srandmember_count_semantics() {
    let server = Server::start();
    let mut con = server.client();
    for kind in KINDS {
        let members = fixture(kind);
        let all: Members = members.iter().cloned().collect();
        sadd_all(&mut con, "rand", &members);
        let size = members.len();
        for count in [1, 2, size / 10, size / 3, size / 2, size - 1, size, size + 1, 10 * size] {
            let got: Vec<Vec<u8>> = redis::cmd("SRANDMEMBER").arg("rand").arg(count).query(&mut con).unwrap();
            let distinct: Members = got.iter().cloned().collect();
            assert_eq!(got.len(), count.min(size), "{kind}: SRANDMEMBER {count}");
            assert_eq!(distinct.len(), got.len(), "{kind}: SRANDMEMBER {count} repeated a member");
            assert!(distinct.is_subset(&all), "{kind}: SRANDMEMBER {count} made up a member");
        }
        // A negative count returns exactly that many, repeats allowed, and
        // over many draws every member comes up.
        let draws = (size * 20) as i64;
        let got: Vec<Vec<u8>> = redis::cmd("SRANDMEMBER").arg("rand").arg(-draws).query(&mut con).unwrap();
        assert_eq!(got.len() as i64, draws);
        let mut histogram: HashMap<Vec<u8>, usize> = HashMap::new();
        for m in got {
            assert!(all.contains(&m), "{kind}: SRANDMEMBER made up a member");
            *histogram.entry(m).or_default() += 1;
        }
        assert_eq!(histogram.len(), size, "{kind}: some member never came up in {draws} draws");
        let empty: Vec<Vec<u8>> = redis::cmd("SRANDMEMBER").arg("rand").arg(0).query(&mut con).unwrap();
        assert!(empty.is_empty());
        // Reading changed nothing.
        assert_eq!(smembers(&mut con, "rand"), all);
        assert_eq!(encoding(&mut con, "rand"), kind);
        let _: () = con.del("rand").unwrap();
    }
}

#[test]
fn sscan_returns_every_stable_member_while_the_set_changes() {
    let server = Server::start();
    let mut con = server.client();
    let mut writer = server.client();
    let stable: Vec<Vec<u8>> = (0..5000).map(|i| format!("stable:{i}").into_bytes()).collect();
    sadd_all(&mut con, "scanned", &stable);
    assert_eq!(encoding(&mut con, "scanned"), "hashtable");
    let mut rng = SmallRng::seed_from_u64(2);
    let mut seen = Members::new();
    let mut churn = 0u64;
    let mut cursor: u64 = 0;
    let mut rounds = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) =
            redis::cmd("SSCAN").arg("scanned").arg(cursor).arg("COUNT").arg(25).query(&mut con).unwrap();
        seen.extend(batch);
        // Another client adds and removes other members between steps.
        for _ in 0..10 {
            churn += 1;
            let _: () = writer.sadd("scanned", format!("churn:{churn}")).unwrap();
            let victim = format!("churn:{}", rng.gen_range(1..=churn));
            let _: () = writer.srem("scanned", victim).unwrap();
        }
        rounds += 1;
        assert!(rounds < 10_000, "SSCAN did not finish");
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    for member in &stable {
        assert!(seen.contains(member), "SSCAN missed {}", String::from_utf8_lossy(member));
    }
    for member in &seen {
        assert!(member.starts_with(b"stable:") || member.starts_with(b"churn:"));
    }
}

#[test]
fn sscan_match_and_small_encodings() {
    let server = Server::start();
    let mut con = server.client();
    let members: Vec<Vec<u8>> = (0..2000).map(|i| format!("k{i}").into_bytes()).collect();
    sadd_all(&mut con, "big", &members);
    let mut seen = Members::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SSCAN")
            .arg("big")
            .arg(cursor)
            .arg("MATCH")
            .arg("k1?")
            .arg("COUNT")
            .arg(100)
            .query(&mut con)
            .unwrap();
        seen.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let expected: Members = (10..20).map(|i| format!("k{i}").into_bytes()).collect();
    assert_eq!(seen, expected);
    // Compact encodings come back whole, with cursor 0, whatever the cursor.
    let _: () = con.sadd("small", &[3, 1, 2]).unwrap();
    let (next, batch): (u64, Vec<String>) =
        redis::cmd("SSCAN").arg("small").arg(99).arg("COUNT").arg(1).query(&mut con).unwrap();
    assert_eq!((next, batch), (0, vec!["1".to_string(), "2".to_string(), "3".to_string()]));
}

/// Random sets mixing integers and strings, some sharing members.
fn random_sets(rng: &mut SmallRng, n: usize) -> Vec<Members> {
    (0..n)
        .map(|_| {
            let size = rng.gen_range(0..4000);
            let strings = rng.gen_bool(0.7);
            (0..size)
                .map(|_| {
                    let v = rng.gen_range(0..6000);
                    if strings && rng.gen_bool(0.5) {
                        format!("s{v}").into_bytes()
                    } else {
                        v.to_string().into_bytes()
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn set_algebra_on_large_sets_matches_a_reference() {
    let server = Server::start();
    let mut con = server.client();
    let mut rng = SmallRng::seed_from_u64(3);
    for round in 0..6 {
        let sets = random_sets(&mut rng, 4);
        let keys: Vec<String> = (0..sets.len()).map(|i| format!("in{i}")).collect();
        for (key, set) in keys.iter().zip(&sets) {
            let _: () = con.del(key).unwrap();
            if !set.is_empty() {
                sadd_all(&mut con, key, &set.iter().cloned().collect::<Vec<_>>());
            }
        }
        // Reference results, with "missing" as an absent key (empty set).
        let mut picked: Vec<usize> = (0..sets.len()).filter(|_| rng.gen_bool(0.75)).collect();
        if picked.is_empty() {
            picked.push(0);
        }
        let mut args: Vec<&str> = picked.iter().map(|&i| keys[i].as_str()).collect();
        let mut inputs: Vec<&Members> = picked.iter().map(|&i| &sets[i]).collect();
        let empty = Members::new();
        if round % 3 == 2 {
            args.push("missing");
            inputs.push(&empty);
        }
        let union: Members = inputs.iter().flat_map(|s| s.iter().cloned()).collect();
        let inter: Members = inputs[0].iter().filter(|m| inputs[1..].iter().all(|s| s.contains(*m))).cloned().collect();
        let diff: Members = inputs[0].iter().filter(|m| !inputs[1..].iter().any(|s| s.contains(*m))).cloned().collect();

        let got: Vec<Vec<u8>> = redis::cmd("SUNION").arg(&args).query(&mut con).unwrap();
        assert_eq!(got.iter().cloned().collect::<Members>(), union, "SUNION {args:?}");
        assert_eq!(got.len(), union.len());
        let got: Vec<Vec<u8>> = redis::cmd("SINTER").arg(&args).query(&mut con).unwrap();
        assert_eq!(got.iter().cloned().collect::<Members>(), inter, "SINTER {args:?}");
        assert_eq!(got.len(), inter.len());
        let got: Vec<Vec<u8>> = redis::cmd("SDIFF").arg(&args).query(&mut con).unwrap();
        assert_eq!(got.iter().cloned().collect::<Members>(), diff, "SDIFF {args:?}");
        assert_eq!(got.len(), diff.len());
        let card: usize = redis::cmd("SINTERCARD").arg(args.len()).arg(&args).query(&mut con).unwrap();
        assert_eq!(card, inter.len());
        let limited: usize =
            redis::cmd("SINTERCARD").arg(args.len()).arg(&args).arg("LIMIT").arg(3).query(&mut con).unwrap();
        assert_eq!(limited, inter.len().min(3));

        for (command, expected) in [("SUNIONSTORE", &union), ("SINTERSTORE", &inter), ("SDIFFSTORE", &diff)] {
            let stored: usize = redis::cmd(command).arg("out").arg(&args).query(&mut con).unwrap();
            assert_eq!(stored, expected.len(), "{command} {args:?}");
            if expected.is_empty() {
                let exists: bool = con.exists("out").unwrap();
                assert!(!exists, "{command} of an empty result deletes the destination");
            } else {
                assert_eq!(&smembers(&mut con, "out"), expected, "{command} {args:?}");
                let card: usize = con.scard("out").unwrap();
                assert_eq!(card, expected.len());
                for member in expected.iter().take(50) {
                    let present: bool = con.sismember("out", member).unwrap();
                    assert!(present);
                }
            }
        }
    }
}

#[test]
fn smove_keeps_both_sets_consistent() {
    let server = Server::start();
    let mut con = server.client();
    let members: Vec<Vec<u8>> = (0..400).map(|i| format!("x{i}").into_bytes()).collect();
    sadd_all(&mut con, "from", &members);
    for (i, member) in members.iter().enumerate() {
        let moved: bool = con.smove("from", "to", member).unwrap();
        assert!(moved);
        let again: bool = con.smove("from", "to", member).unwrap();
        assert!(!again);
        let to: usize = con.scard("to").unwrap();
        assert_eq!(to, i + 1);
    }
    let exists: bool = con.exists("from").unwrap();
    assert!(!exists);
    assert_eq!(smembers(&mut con, "to"), members.iter().cloned().collect::<Members>());
    assert_eq!(encoding(&mut con, "to"), "hashtable");
}

fn used_memory(con: &mut Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO")
}

/// How much used_memory grows when one set gets a million members.
fn million_member_set_cost(con: &mut Connection) -> i64 {
    let before = used_memory(con);
    let members: Vec<Vec<u8>> = (0..1_000_000).map(|i| format!("member:{i}").into_bytes()).collect();
    sadd_all(con, "million", &members);
    let card: usize = con.scard("million").unwrap();
    assert_eq!(card, 1_000_000);
    used_memory(con) - before
}

#[test]
fn a_million_member_set_takes_no_more_memory_than_valkey() {
    let ferrokey = Server::start();
    let valkey = Valkey::start();
    let ours = million_member_set_cost(&mut ferrokey.client());
    let theirs = million_member_set_cost(&mut valkey.client());
    eprintln!("1,000,000-member set: ferrokey {ours} bytes, valkey {theirs} bytes");
    assert!(ours <= theirs, "ferrokey uses {ours} bytes for the set, valkey {theirs}");
}

/// Loads the same small sets (5 members each) into ferrokey and
/// valkey-server, first listpack-encoded ones (short words) then
/// intset-encoded ones (integers), and prints what each server reports
/// for each kind. The figures are for reading, not asserted: they depend on
/// the allocator and the machine. Set SET_MEMORY_KEYS for a bigger run
/// (the default keeps the test quick).
#[test]
fn memory_of_many_small_sets_next_to_valkey() {
    let keys = common::memory_keys("SET_MEMORY_KEYS");
    let ferrokey = Server::start();
    let valkey = Valkey::start();
    let mut report = Vec::new();
    for (name, server) in [("ferrokey", &ferrokey), ("valkey", &*valkey)] {
        let mut con = server.client();
        for (kind, prefix) in [("listpack", "words"), ("intset", "ints")] {
            let growth = common::memory_growth(&mut con, keys, &|i| {
                let members: Vec<String> = (0..5)
                    .map(|j| if kind == "intset" { (i * 5 + j).to_string() } else { format!("member{j}:{i}") })
                    .collect();
                let mut sadd = redis::cmd("SADD");
                sadd.arg(format!("{prefix}:{i}")).arg(members);
                sadd
            });
            assert_eq!(encoding(&mut con, &format!("{prefix}:0")), kind);
            report.push(format!("{name} {kind}: {growth}"));
        }
    }
    println!("{keys} sets x 5 members:\n  {}", report.join("\n  "));
}
