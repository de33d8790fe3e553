//! Bitmap commands against a running ferrokey, side by side with the
//! reference valkey-server: random strings and random ranges for BITCOUNT
//! and BITPOS, random BITFIELD programs, BITOP over random sources, and the
//! proto-max-bulk-len limit on bit offsets.

mod common;

use common::{RawConn, Server, Valkey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One connection to each server; every command goes to both and the raw
/// replies must be the same bytes.
struct Pair {
    ours: RawConn,
    theirs: RawConn,
}

impl Pair {
    fn new(ours: &Server, theirs: &Valkey) -> Pair {
        Pair { ours: ours.raw(), theirs: theirs.raw() }
    }

    fn same(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let ours = self.ours.cmd(args);
        let theirs = self.theirs.cmd(args);
        assert_eq!(
            common::escape(&ours),
            common::escape(&theirs),
            "replies differ for {:?}",
            args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>()
        );
        ours
    }

    fn same_str(&mut self, args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.same(&args)
    }
}

fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    // Runs of 0x00 and 0xff as well as noise, so BITPOS has something to skip.
    (0..len)
        .map(|_| match rng.gen_range(0..4) {
            0 => 0x00,
            1 => 0xff,
            _ => rng.gen(),
        })
        .collect()
}

#[test]
fn bitcount_and_bitpos_match_valkey_on_random_ranges() {
    let ours = Server::start();
    let theirs = Valkey::start();
    let mut pair = Pair::new(&ours, &theirs);
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..20 {
        let len = [0, 1, 7, 8, 9, 31, 64, 300][round % 8] + rng.gen_range(0..3);
        let value = random_bytes(&mut rng, len);
        pair.same(&[b"SET", b"k", &value]);
        pair.same_str(&["BITCOUNT", "k"]);
        pair.same_str(&["BITPOS", "k", "0"]);
        pair.same_str(&["BITPOS", "k", "1"]);
        let span = (len as i64 * 8).max(4);
        for _ in 0..40 {
            let unit = ["BIT", "BYTE", "bit"][rng.gen_range(0..3)];
            let limit = if unit == "BYTE" { span / 8 + 2 } else { span + 9 };
            let start = rng.gen_range(-limit..=limit).to_string();
            let end = rng.gen_range(-limit..=limit).to_string();
            let bit = rng.gen_range(0..2).to_string();
            pair.same_str(&["BITCOUNT", "k", &start, &end, unit]);
            pair.same_str(&["BITCOUNT", "k", &start, &end]);
            pair.same_str(&["BITCOUNT", "k", &start]);
            pair.same_str(&["BITPOS", "k", &bit, &start, &end, unit]);
            pair.same_str(&["BITPOS", "k", &bit, &start, &end]);
            pair.same_str(&["BITPOS", "k", &bit, &start]);
        }
    }
}

#[test]
fn bitfield_programs_match_valkey() {
    let ours = Server::start();
    let theirs = Valkey::start();
    let mut pair = Pair::new(&ours, &theirs);
    let mut rng = StdRng::seed_from_u64(11);
    for round in 0..300 {
        if round % 50 == 0 {
            let len = rng.gen_range(0..24);
            let value = random_bytes(&mut rng, len);
            pair.same(&[b"SET", b"f", &value]);
        }
        let mut args: Vec<String> = vec!["BITFIELD".into(), "f".into()];
        for _ in 0..rng.gen_range(1..6) {
            let signed = rng.gen_bool(0.5);
            let bits = if signed { rng.gen_range(1..=64) } else { rng.gen_range(1..=63) };
            let kind = format!("{}{bits}", if signed { 'i' } else { 'u' });
            let offset =
                if rng.gen_bool(0.2) { format!("#{}", rng.gen_range(0..6)) } else { rng.gen_range(0..200).to_string() };
            let value: i64 = match rng.gen_range(0..5) {
                0 => rng.gen(),
                1 => rng.gen_range(-300..300),
                2 => [i64::MIN, i64::MAX, -1, 0, 1][rng.gen_range(0..5)],
                3 => 1i64.checked_shl(rng.gen_range(0..63)).unwrap_or(1) - rng.gen_range(0..2),
                _ => -(1i64 << rng.gen_range(0..63)),
            };
            match rng.gen_range(0..5) {
                0 => args.extend(["GET".into(), kind, offset]),
                1 => args.extend(["SET".into(), kind, offset, value.to_string()]),
                2 | 3 => args.extend(["INCRBY".into(), kind, offset, value.to_string()]),
                _ => args.extend(["OVERFLOW".into(), ["WRAP", "SAT", "FAIL"][rng.gen_range(0..3)].into()]),
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pair.same_str(&args);
        pair.same_str(&["GET", "f"]);
    }
}

#[test]
fn bitop_matches_valkey_on_random_sources() {
    let ours = Server::start();
    let theirs = Valkey::start();
    let mut pair = Pair::new(&ours, &theirs);
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..60 {
        let sources = rng.gen_range(1..5);
        for i in 0..sources {
            // Lengths around the word-sized fast path Valkey takes.
            let len = [0, 3, 31, 32, 33, 64, 100][rng.gen_range(0..7)];
            let value = random_bytes(&mut rng, len);
            let key = format!("s{i}");
            if rng.gen_bool(0.1) {
                pair.same_str(&["DEL", &key]);
            } else {
                pair.same(&[b"SET", key.as_bytes(), &value]);
            }
        }
        let op = if sources == 1 {
            ["AND", "OR", "XOR", "NOT"][rng.gen_range(0..4)]
        } else {
            ["AND", "OR", "XOR"][rng.gen_range(0..3)]
        };
        let mut args = vec!["BITOP".to_string(), op.to_string(), "dest".to_string()];
        args.extend((0..sources).map(|i| format!("s{i}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pair.same_str(&args);
        pair.same_str(&["GET", "dest"]);
        pair.same_str(&["OBJECT", "ENCODING", "dest"]);
    }
}

#[test]
fn bit_offsets_stop_at_proto_max_bulk_len() {
    let ours = Server::start();
    let theirs = Valkey::start();
    let mut pair = Pair::new(&ours, &theirs);
    pair.same_str(&["CONFIG", "SET", "proto-max-bulk-len", "1mb"]);
    // The last bit of the first megabyte is addressable; the next is not.
    pair.same_str(&["SETBIT", "big", "8388607", "1"]);
    pair.same_str(&["STRLEN", "big"]);
    pair.same_str(&["SETBIT", "big", "8388608", "1"]);
    pair.same_str(&["GETBIT", "big", "8388608"]);
    pair.same_str(&["BITCOUNT", "big"]);
    pair.same_str(&["BITPOS", "big", "1"]);
    pair.same_str(&["BITPOS", "big", "1", "-1"]);
    pair.same_str(&["BITPOS", "big", "0", "-1"]);
    pair.same_str(&["BITCOUNT", "big", "8388600", "8388607", "BIT"]);
    // A field may start on the last addressable byte and reach past it.
    pair.same_str(&["BITFIELD", "big", "SET", "i64", "8388607", "-1"]);
    pair.same_str(&["STRLEN", "big"]);
    pair.same_str(&["BITFIELD", "big", "GET", "u8", "#1048575", "GET", "u8", "#1048576"]);
    pair.same_str(&["BITFIELD", "big", "SET", "u8", "#1048576", "1"]);
    pair.same_str(&["BITFIELD", "big", "INCRBY", "i64", "#131071", "1"]);
    pair.same_str(&["BITFIELD", "big", "INCRBY", "i64", "#131072", "1"]);
    pair.same_str(&["BITOP", "NOT", "big2", "big"]);
    pair.same_str(&["BITCOUNT", "big2"]);
    pair.same_str(&["CONFIG", "SET", "proto-max-bulk-len", "512mb"]);
}

/// The INFO fields a command's bookkeeping shows: changes since the last
/// save, keyspace hits and misses.
fn bookkeeping(conn: &mut RawConn) -> Vec<String> {
    let info = String::from_utf8_lossy(&conn.cmd(&[b"INFO", b"all"])).into_owned();
    ["rdb_changes_since_last_save:", "keyspace_hits:", "keyspace_misses:"]
        .iter()
        .map(|field| info.lines().find(|l| l.starts_with(field)).unwrap_or(field).to_string())
        .collect()
}

#[test]
fn changes_and_keyspace_hits_are_counted_like_valkey() {
    let ours = Server::start();
    let theirs = Valkey::start();
    let mut pair = Pair::new(&ours, &theirs);
    let script: &[&[&str]] = &[
        &["SETBIT", "k", "10", "1"],
        &["SETBIT", "k", "10", "1"],
        &["SETBIT", "k", "3", "0"],
        &["SETBIT", "k", "100", "0"],
        &["GETBIT", "k", "3"],
        &["GETBIT", "missing", "3"],
        &["BITCOUNT", "k"],
        &["BITCOUNT", "missing", "0", "1"],
        &["BITPOS", "k", "1"],
        &["BITPOS", "missing", "0"],
        &["BITFIELD", "k", "SET", "u8", "0", "0"],
        &["BITFIELD", "k", "SET", "u8", "0", "7", "SET", "u8", "0", "7", "INCRBY", "u8", "0", "0"],
        &["BITFIELD", "k", "GET", "u8", "0"],
        &["BITFIELD_RO", "missing", "GET", "u8", "0"],
        &["BITFIELD", "new", "OVERFLOW", "FAIL", "SET", "u8", "0", "256"],
        &["BITFIELD", "new", "SET", "u8", "800", "0", "SET", "u8", "0", "0"],
        &["BITOP", "AND", "dest", "missing"],
        &["SET", "dest", "x"],
        &["BITOP", "AND", "dest", "missing"],
        &["BITOP", "OR", "dest", "k", "missing", "new"],
    ];
    for command in script {
        pair.same_str(command);
        assert_eq!(bookkeeping(&mut pair.ours), bookkeeping(&mut pair.theirs), "after {command:?}");
    }
}
