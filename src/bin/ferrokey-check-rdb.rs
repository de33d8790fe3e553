//! `ferrokey-check-rdb FILE`: checks an RDB file completely, as
//! valkey-check-rdb does, without loading it into a server.
//!
//! Every byte is read and every embedded structure validated (the formats
//! crate's reader), the checksum compared, and nothing may follow the
//! checksum. It prints the version, the aux fields, each database
//! selected, then counts of keys per database and per type. On the first
//! problem it prints the offset and the reason, with the key being read,
//! and exits with status 1. Like valkey-check-rdb it rejects keys holding
//! empty collections (a server skips them while loading).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::ExitCode;

use ferrokey_formats::rdb::{
    escape_bytes, rdb_type_name, Checksum, Magic, RdbError, RdbItem, RdbReader, ReaderOptions,
};

#[derive(Default)]
struct DbCounts {
    keys: u64,
    expires: u64,
    by_type: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
struct Report {
    keys: u64,
    expires: u64,
    already_expired: u64,
    functions: u64,
    dbs: BTreeMap<u64, DbCounts>,
}

impl Report {
    fn print(&self) {
        println!("[info] {} keys read", self.keys);
        println!("[info] {} expires", self.expires);
        println!("[info] {} already expired", self.already_expired);
        if self.functions > 0 {
            println!("[info] {} function libraries", self.functions);
        }
        for (db, counts) in &self.dbs {
            let types: Vec<String> = counts.by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
            let types = if types.is_empty() { String::new() } else { format!(" ({})", types.join(", ")) };
            println!("[info] db {db}: {} keys, {} expires{types}", counts.keys, counts.expires);
        }
        let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
        for counts in self.dbs.values() {
            for (t, n) in &counts.by_type {
                *totals.entry(t).or_default() += n;
            }
        }
        for (t, n) in totals {
            println!("[info] type {t}: {n} keys");
        }
    }
}

/// What went wrong, where, and while reading what.
struct Failure {
    offset: u64,
    reason: String,
    key: Option<Vec<u8>>,
    rdb_type: Option<u8>,
}

impl From<RdbError> for Failure {
    fn from(e: RdbError) -> Failure {
        Failure { offset: e.offset, reason: e.reason(), key: e.key.clone(), rdb_type: e.rdb_type }
    }
}

fn type_label(t: u8) -> &'static str {
    rdb_type_name(t).unwrap_or("UNKNOWN")
}

fn check<R: BufRead>(mut reader: RdbReader<R>, report: &mut Report) -> Result<(), Failure> {
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    loop {
        let Some(item) = reader.next_item()? else {
            return Err(Failure {
                offset: reader.offset(),
                reason: "unexpected end of the RDB data".into(),
                key: None,
                rdb_type: None,
            });
        };
        let at = reader.offset();
        match item {
            RdbItem::Header { magic, version } => {
                let magic = if magic == Magic::Valkey { "VALKEY" } else { "REDIS" };
                println!("[offset {at}] RDB version {version} ({magic} signature)");
            }
            RdbItem::Aux { key, value } => {
                println!("[offset {at}] AUX FIELD {} = '{}'", escape_bytes(&key), escape_bytes(&value));
            }
            RdbItem::SelectDb { db } => {
                println!("[offset {at}] Selecting DB ID {db}");
                report.dbs.entry(db).or_default();
            }
            RdbItem::ResizeDb { .. } | RdbItem::SlotInfo { .. } => {}
            RdbItem::Function { code } => {
                report.functions += 1;
                let name = ferrokey_formats::rdb::parse_library_metadata(&code)
                    .map(|(engine, name)| format!("{name} ({engine})"))
                    .map_err(|e| Failure {
                        offset: at,
                        reason: format!("function library with invalid metadata: {e}"),
                        key: None,
                        rdb_type: None,
                    })?;
                println!("[offset {at}] Function library {name}");
            }
            RdbItem::Key(k) => {
                report.keys += 1;
                let counts = report.dbs.entry(k.db).or_default();
                counts.keys += 1;
                *counts.by_type.entry(type_label(k.rdb_type)).or_default() += 1;
                if k.expire_ms.is_some() {
                    report.expires += 1;
                    counts.expires += 1;
                }
                if k.is_expired(now_ms) {
                    report.already_expired += 1;
                }
            }
            RdbItem::EmptyKey(k) => {
                return Err(Failure {
                    offset: k.offset,
                    reason: "empty collection: an RDB file never holds one (a server skips such keys)".into(),
                    key: Some(k.key),
                    rdb_type: Some(k.rdb_type),
                });
            }
            RdbItem::Eof { checksum } => {
                match checksum {
                    Checksum::Verified(_) | Checksum::NotChecked(_) => println!("[offset {at}] Checksum OK"),
                    Checksum::Disabled => println!("[offset {at}] Checksum disabled (zero footer): not checked"),
                    Checksum::Absent => println!("[offset {at}] No checksum (RDB version below 5)"),
                }
                break;
            }
        }
    }
    let end = reader.offset();
    let mut rest = reader.into_inner();
    let trailing = rest.fill_buf().map(|b| b.len()).unwrap_or(0);
    if trailing > 0 {
        return Err(Failure {
            offset: end,
            reason: "unexpected bytes after the end of the RDB data".into(),
            key: None,
            rdb_type: None,
        });
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, path] = args.as_slice() else {
        eprintln!("Usage: {} <rdb-file-name>", args.first().map(String::as_str).unwrap_or("ferrokey-check-rdb"));
        return ExitCode::from(1);
    };
    println!("[offset 0] Checking RDB file {path}");
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            println!("--- RDB ERROR DETECTED ---");
            println!("[offset 0] Cannot open the file: {e}");
            return ExitCode::from(1);
        }
    };
    let reader = RdbReader::with_options(BufReader::with_capacity(64 * 1024, file), ReaderOptions::default());
    let mut report = Report::default();
    match check(reader, &mut report) {
        Ok(()) => {
            let end = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            println!("[offset {end}] \\o/ RDB looks OK! \\o/");
            report.print();
            ExitCode::SUCCESS
        }
        Err(f) => {
            println!("--- RDB ERROR DETECTED ---");
            println!("[offset {}] {}", f.offset, f.reason);
            if let Some(key) = &f.key {
                println!("[additional info] Reading key '{}'", escape_bytes(key));
            }
            if let Some(t) = f.rdb_type {
                println!("[additional info] Reading type {t} ({})", type_label(t));
            }
            report.print();
            ExitCode::from(1)
        }
    }
}
