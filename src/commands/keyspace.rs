//! Keyspace commands: DEL, EXISTS, TYPE, KEYS, SCAN, RENAME, COPY, MOVE,
//! expiry, OBJECT, and database-wide commands.
//!
//! Lookups follow the server's rules for side effects: a read counts a
//! keyspace hit or miss and refreshes the key's access time (OBJECT
//! IDLETIME); a write lookup only refreshes the access time; some reads
//! (EXISTS, TYPE, TTL, OBJECT) leave the access time alone. Every lookup
//! deletes the key first if it has expired.

use ferrokey_formats::resp::parse_i64;

use super::args::{c_string_lossy, parse_scan_cursor, parse_scan_options, ScanTarget};
use crate::command::{errors, CmdError, CmdResult, Ctx, Handler, Lookup};
use crate::db::{Entry, NO_EXPIRE};
use crate::glob::glob_match;
use crate::notify::{self, notify};
use crate::value::Value;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("del", del),
    ("unlink", unlink),
    ("exists", exists),
    ("type", type_of),
    ("keys", keys),
    ("scan", scan),
    ("randomkey", randomkey),
    ("rename", rename),
    ("renamenx", renamenx),
    ("copy", copy),
    ("move", move_key),
    ("swapdb", swapdb),
    ("dbsize", dbsize),
    ("flushdb", flushdb),
    ("flushall", flushall),
    ("touch", touch),
    ("object|help", object_help),
    ("object|encoding", object_encoding),
    ("object|freq", object_freq),
    ("object|idletime", object_idletime),
    ("object|refcount", object_refcount),
    ("expire", expire),
    ("pexpire", pexpire),
    ("expireat", expireat),
    ("pexpireat", pexpireat),
    ("ttl", ttl),
    ("pttl", pttl),
    ("expiretime", expiretime),
    ("pexpiretime", pexpiretime),
    ("persist", persist),
];

const SAME_OBJECT: &str = "ERR source and destination objects are the same";

// ---------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------

/// Parses an argument the server reads as a C `int` (database indexes).
/// With `custom`, every failure answers that error instead of the
/// generic ones.
fn parse_int_arg(arg: &[u8], custom: Option<&'static str>) -> Result<i64, CmdError> {
    let Some(n) = parse_i64(arg) else {
        return Err(custom.unwrap_or(errors::NOT_INTEGER).into());
    };
    if n < i32::MIN as i64 || n > i32::MAX as i64 {
        return Err(match custom {
            Some(msg) => msg.into(),
            None => format!("ERR value is out of range, value must between {} and {}", i32::MIN, i32::MAX).into(),
        });
    }
    Ok(n)
}

/// A database index from a parsed integer, if such a database exists.
fn db_index(ctx: &Ctx, n: i64) -> Result<usize, CmdError> {
    usize::try_from(n).ok().filter(|&i| i < ctx.srv.dbs.len()).ok_or_else(|| errors::DB_INDEX.into())
}

// ---------------------------------------------------------------------------
// DEL, UNLINK, EXISTS, TYPE, TOUCH, DBSIZE
// ---------------------------------------------------------------------------

/// DEL frees big values on the lazyfree thread when
/// `lazyfree-lazy-user-del` says so (Valkey's default).
fn del(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let lazy = ctx.srv.config.lazyfree_lazy_user_del;
    delete_keys(ctx, &args[1..], lazy)
}

/// UNLINK differs from DEL only in always freeing big values (those whose
/// freeing takes many steps) off the engine thread.
fn unlink(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    delete_keys(ctx, &args[1..], true)
}

fn delete_keys(ctx: &mut Ctx, keys: &[&[u8]], lazy: bool) -> CmdResult {
    let now = ctx.now_ms;
    let mut deleted = 0;
    for key in keys {
        // A key found expired is reclaimed by the check itself, and counts
        // as expired rather than deleted.
        let db = ctx.db();
        if db.contains(key, now) {
            if let Some(entry) = db.remove(key) {
                crate::lazyfree::free(entry.value, lazy);
            }
            deleted += 1;
            notify(ctx, notify::GENERIC, "del", key);
        }
    }
    ctx.dirty(deleted);
    ctx.out.int(deleted as i64);
    Ok(())
}

/// Counts every argument that names an existing key, repeats included.
fn exists(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let db = ctx.client.db;
    let found = args[1..].iter().filter(|key| ctx.lookup_in(db, key, Lookup::ReadNoTouch).is_some()).count();
    ctx.out.int(found as i64);
    Ok(())
}

fn type_of(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let db = ctx.client.db;
    let name = ctx.lookup_in(db, args[1], Lookup::ReadNoTouch).map_or("none", |e| e.value.type_name());
    ctx.out.simple(name);
    Ok(())
}

fn touch(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let db = ctx.client.db;
    let touched = args[1..].iter().filter(|key| ctx.lookup_in(db, key, Lookup::Touch).is_some()).count();
    ctx.out.int(touched as i64);
    Ok(())
}

/// Keys in the database, counting expired keys not yet reclaimed, as the
/// server does.
fn dbsize(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let n = ctx.db().len();
    ctx.out.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// KEYS, SCAN, RANDOMKEY
// ---------------------------------------------------------------------------

fn keys(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let pattern = args[1];
    let match_all = pattern == b"*";
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    // Expired keys are skipped but left in place: KEYS only reads.
    let found: Vec<&[u8]> = db
        .iter()
        .filter(|(key, entry)| (match_all || glob_match(pattern, key, false)) && !entry.is_expired(now))
        .map(|(key, _)| key)
        .collect();
    out.bulk_array(found);
    Ok(())
}

/// The type names SCAN TYPE accepts: every type a key can have.
const TYPE_NAMES: &[&str] = &["string", "list", "set", "zset", "hash", "stream"];

fn scan(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let cursor = parse_scan_cursor(args[1]).ok_or(CmdError::from("ERR invalid cursor"))?;
    let options = parse_scan_options(args, 2, ScanTarget::Keyspace { types: TYPE_NAMES })?;
    let (count, pattern, wanted_type) = (options.count, options.pattern, options.type_name);
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let mut found: Vec<Box<[u8]>> = Vec::new();
    let step = db.scan(cursor, count, |key, entry| {
        let type_ok = wanted_type.is_none_or(|t| entry.value.type_name() == t);
        if type_ok && pattern.is_none_or(|p| glob_match(p, key, false)) {
            found.push(key.into());
        }
    });
    // Keys that matched but have expired are reclaimed now and left out.
    found.retain(|key| db.get(key, now).is_some());
    out.array(2);
    out.bulk(itoa::Buffer::new().format(step.next_cursor).as_bytes());
    out.bulk_array(found.iter().map(|k| &k[..]));
    Ok(())
}

fn randomkey(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let idx = ctx.client.db;
    let srv = &mut *ctx.srv;
    match srv.dbs[idx].random_key(now, &mut srv.rng) {
        Some(key) => ctx.out.bulk(&key),
        None => ctx.out.null(),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// RENAME, RENAMENX, COPY, MOVE, SWAPDB
// ---------------------------------------------------------------------------

fn rename(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    rename_key(ctx, args[1], args[2], false)
}

fn renamenx(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    rename_key(ctx, args[1], args[2], true)
}

/// RENAME and RENAMENX: the value moves with its TTL. Renaming a key to
/// itself changes nothing but still requires the key to exist.
fn rename_key(ctx: &mut Ctx, from: &[u8], to: &[u8], only_if_new: bool) -> CmdResult {
    let db = ctx.client.db;
    if ctx.lookup_in(db, from, Lookup::Write).is_none() {
        return Err(errors::NO_SUCH_KEY.into());
    }
    if from == to {
        if only_if_new {
            ctx.out.int(0);
        } else {
            ctx.out.ok();
        }
        return Ok(());
    }
    let destination_exists = ctx.lookup_in(db, to, Lookup::Write).is_some();
    if destination_exists && only_if_new {
        ctx.out.int(0);
        return Ok(());
    }
    let Some(entry) = ctx.db().remove(from) else { return Err(errors::NO_SUCH_KEY.into()) };
    ctx.db().insert_entry(to, entry);
    ctx.dirty(1);
    // The destination is added afresh (an old one was deleted first).
    notify::new_key(ctx, to);
    notify(ctx, notify::GENERIC, "rename_from", from);
    notify(ctx, notify::GENERIC, "rename_to", to);
    if only_if_new {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

/// COPY source destination [DB index] [REPLACE]
fn copy(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let src_db = ctx.client.db;
    let mut dst_db = src_db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"replace") {
            replace = true;
            i += 1;
        } else if args[i].eq_ignore_ascii_case(b"db") && i + 1 < args.len() {
            let n = parse_int_arg(args[i + 1], None)?;
            dst_db = db_index(ctx, n)?;
            i += 2;
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    let (from, to) = (args[1], args[2]);
    if src_db == dst_db && from == to {
        return Err(SAME_OBJECT.into());
    }
    let now_s = ctx.lru_now();
    let Some(source) = ctx.lookup_in(src_db, from, Lookup::Read) else {
        ctx.out.int(0);
        return Ok(());
    };
    // The copy is a new object: same value, encoding and TTL, fresh access time.
    let mut duplicate = Entry::new(source.value.clone(), now_s);
    duplicate.expire_at = source.expire_at;
    if ctx.lookup_in(dst_db, to, Lookup::Write).is_some() && !replace {
        ctx.out.int(0);
        return Ok(());
    }
    ctx.srv.dbs[dst_db].insert_entry(to, duplicate);
    ctx.dirty(1);
    notify::keyspace_event(ctx.srv, notify::NEW, "new", to, dst_db);
    notify::keyspace_event(ctx.srv, notify::GENERIC, "copy_to", to, dst_db);
    ctx.out.int(1);
    Ok(())
}

/// MOVE key db: moves a key, with its TTL, to another database unless the
/// destination already has it.
fn move_key(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let n = parse_int_arg(args[2], None)?;
    let dst_db = db_index(ctx, n)?;
    let src_db = ctx.client.db;
    if src_db == dst_db {
        return Err(SAME_OBJECT.into());
    }
    let key = args[1];
    if ctx.lookup_in(src_db, key, Lookup::Write).is_none() || ctx.lookup_in(dst_db, key, Lookup::Write).is_some() {
        ctx.out.int(0);
        return Ok(());
    }
    let Some(entry) = ctx.srv.dbs[src_db].remove(key) else {
        ctx.out.int(0);
        return Ok(());
    };
    ctx.srv.dbs[dst_db].insert_entry(key, entry);
    ctx.dirty(1);
    notify::keyspace_event(ctx.srv, notify::NEW, "new", key, dst_db);
    notify::keyspace_event(ctx.srv, notify::GENERIC, "move_from", key, src_db);
    notify::keyspace_event(ctx.srv, notify::GENERIC, "move_to", key, dst_db);
    ctx.out.int(1);
    Ok(())
}

/// SWAPDB a b: every client sees the other database's contents; clients
/// stay on the database number they selected.
fn swapdb(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let first = parse_int_arg(args[1], Some("ERR invalid first DB index"))?;
    let second = parse_int_arg(args[2], Some("ERR invalid second DB index"))?;
    let first = db_index(ctx, first)?;
    let second = db_index(ctx, second)?;
    crate::watch::touch_all_in_db(ctx.srv, first, Some(second), ctx.now_ms);
    crate::watch::touch_all_in_db(ctx.srv, second, Some(first), ctx.now_ms);
    ctx.srv.dbs.swap(first, second);
    // Every key of both databases may now hold what a parked client wants.
    ctx.srv.blocking.signal_all();
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

// ---------------------------------------------------------------------------
// FLUSHDB, FLUSHALL
// ---------------------------------------------------------------------------

/// Reads FLUSHDB/FLUSHALL's optional SYNC or ASYNC; without either,
/// `lazyfree-lazy-user-flush` decides.
fn flush_is_async(ctx: &Ctx, args: &[&[u8]]) -> Result<bool, CmdError> {
    match args {
        [_] => Ok(ctx.srv.config.lazyfree_lazy_user_flush),
        [_, mode] if mode.eq_ignore_ascii_case(b"sync") => Ok(false),
        [_, mode] if mode.eq_ignore_ascii_case(b"async") => Ok(true),
        _ => Err(errors::SYNTAX.into()),
    }
}

fn flushdb(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let asynchronous = flush_is_async(ctx, args)?;
    let idx = ctx.client.db;
    let removed = ctx.srv.dbs[idx].len();
    crate::watch::touch_all_in_db(ctx.srv, idx, None, ctx.now_ms);
    // Cached keys are not per database: every tracking client drops all.
    crate::tracking::invalidate_all(ctx.srv);
    let old = ctx.srv.dbs[idx].clear();
    crate::lazyfree::free_databases(vec![old], asynchronous);
    // Readers waiting on a deleted stream must hear of it.
    ctx.srv.blocking.signal_all();
    ctx.dirty(removed as u64);
    ctx.out.ok();
    Ok(())
}

fn flushall(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let asynchronous = flush_is_async(ctx, args)?;
    let mut removed = 0;
    let mut old = Vec::new();
    for idx in 0..ctx.srv.dbs.len() {
        crate::watch::touch_all_in_db(ctx.srv, idx, None, ctx.now_ms);
    }
    crate::tracking::invalidate_all(ctx.srv);
    for db in ctx.srv.dbs.iter_mut() {
        removed += db.len();
        if !db.is_empty() {
            old.push(db.clear());
        }
    }
    crate::lazyfree::free_databases(old, asynchronous);
    ctx.srv.blocking.signal_all();
    // The function libraries stay: as in Valkey, only FUNCTION FLUSH
    // removes them.
    ctx.dirty(removed as u64);
    crate::persistence::after_flushall(ctx.srv);
    // As in Valkey, the flush itself still counts as one change after the save.
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

// ---------------------------------------------------------------------------
// OBJECT
// ---------------------------------------------------------------------------

const OBJECT_HELP: &[&str] = &[
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Print this help.",
];

fn object_help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let name = String::from_utf8_lossy(args[0]).to_ascii_uppercase();
    ctx.out.array(OBJECT_HELP.len() + 1);
    ctx.out.simple_bytes(format!("{name} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:").as_bytes());
    for line in OBJECT_HELP {
        ctx.out.simple(line);
    }
    Ok(())
}

/// The key an OBJECT subcommand inspects: a counted read that leaves the
/// access time alone, so that inspecting does not disturb what it reports.
fn object_lookup<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Option<&'c mut Entry> {
    let db = ctx.client.db;
    ctx.lookup_in(db, key, Lookup::Inspect)
}

fn object_encoding(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    match object_lookup(ctx, args[2]).map(|e| e.value.encoding_name()) {
        Some(encoding) => ctx.out.bulk_str(encoding),
        None => ctx.out.null(),
    }
    Ok(())
}

/// OBJECT FREQ: the key's LFU counter after its decay, which only an LFU
/// eviction policy keeps up to date.
fn object_freq(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let now_s = ctx.lru_now();
    let decay = ctx.srv.config.lfu_decay_time;
    let lfu = ctx.srv.config.maxmemory_policy.uses_lfu();
    let Some(entry) = object_lookup(ctx, args[2]) else {
        ctx.out.null();
        return Ok(());
    };
    if !lfu {
        return Err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.".into());
    }
    let freq = crate::evict::lfu_counter(entry, now_s, decay);
    ctx.out.int(freq as i64);
    Ok(())
}

/// OBJECT IDLETIME: seconds since the key was last touched; not tracked
/// under an LFU policy.
fn object_idletime(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let now_s = ctx.lru_now();
    let lfu = ctx.srv.config.maxmemory_policy.uses_lfu();
    let Some(last_access) = object_lookup(ctx, args[2]).map(|e| e.last_access) else {
        ctx.out.null();
        return Ok(());
    };
    if lfu {
        return Err("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.".into());
    }
    ctx.out.int(now_s.saturating_sub(last_access) as i64);
    Ok(())
}

/// The server keeps one shared object per small non-negative integer and
/// stores it for every key holding that number, unless LRU or LFU
/// eviction needs per-key access hints. Shared objects report this
/// refcount; every other value is referenced once.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;
const SHARED_INTEGERS: i64 = 10_000;

fn object_refcount(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let shared = crate::evict::shares_integers(&ctx.srv.config);
    let refcount = match object_lookup(ctx, args[2]).map(|e| &e.value) {
        None => {
            ctx.out.null();
            return Ok(());
        }
        Some(Value::Int(n)) if (0..SHARED_INTEGERS).contains(n) && shared => SHARED_REFCOUNT,
        Some(_) => 1,
    };
    ctx.out.int(refcount);
    Ok(())
}

// ---------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------

/// What the second argument of an EXPIRE-family command means.
#[derive(Clone, Copy)]
enum ExpireArg {
    /// Seconds (`true`: milliseconds) from now.
    Relative { millis: bool },
    /// A Unix time in seconds (`true`: milliseconds).
    Absolute { millis: bool },
}

fn expire(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_expiry(ctx, args, "expire", ExpireArg::Relative { millis: false })
}

fn pexpire(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_expiry(ctx, args, "pexpire", ExpireArg::Relative { millis: true })
}

fn expireat(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_expiry(ctx, args, "expireat", ExpireArg::Absolute { millis: false })
}

fn pexpireat(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_expiry(ctx, args, "pexpireat", ExpireArg::Absolute { millis: true })
}

/// The NX / XX / GT / LT conditions of the EXPIRE family.
#[derive(Default)]
struct ExpireConditions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl ExpireConditions {
    fn parse(options: &[&[u8]]) -> Result<ExpireConditions, CmdError> {
        let mut c = ExpireConditions::default();
        for option in options {
            let flag = match option.to_ascii_lowercase().as_slice() {
                b"nx" => &mut c.nx,
                b"xx" => &mut c.xx,
                b"gt" => &mut c.gt,
                b"lt" => &mut c.lt,
                _ => return Err(format!("ERR Unsupported option {}", c_string_lossy(option)).into()),
            };
            *flag = true;
        }
        if c.nx && (c.xx || c.gt || c.lt) {
            return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
        }
        if c.gt && c.lt {
            return Err("ERR GT and LT options at the same time are not compatible".into());
        }
        Ok(c)
    }

    /// Whether a key whose expiry is `current` (or [`NO_EXPIRE`]) may get
    /// the expiry `new`. No expiry counts as an infinite TTL.
    fn allow(&self, current: i64, new: i64) -> bool {
        let persistent = current == NO_EXPIRE;
        !(self.nx && !persistent
            || self.xx && persistent
            || self.gt && (persistent || new <= current)
            || self.lt && !persistent && new >= current)
    }
}

fn set_expiry(ctx: &mut Ctx, args: &[&[u8]], name: &str, arg: ExpireArg) -> CmdResult {
    let conditions = ExpireConditions::parse(&args[3..])?;
    let mut when = parse_i64(args[2]).ok_or(CmdError::from(errors::NOT_INTEGER))?;
    let invalid = || CmdError::from(format!("ERR invalid expire time in '{name}' command"));
    let (millis, base) = match arg {
        ExpireArg::Relative { millis } => (millis, ctx.now_ms),
        ExpireArg::Absolute { millis } => (millis, 0),
    };
    if !millis {
        when = when.checked_mul(1000).ok_or_else(invalid)?;
    }
    when = when.checked_add(base).ok_or_else(invalid)?;

    let db = ctx.client.db;
    let Some(entry) = ctx.lookup_in(db, args[1], Lookup::Write) else {
        ctx.out.int(0);
        return Ok(());
    };
    if !conditions.allow(entry.expire_at, when) {
        ctx.out.int(0);
        return Ok(());
    }
    ctx.dirty(1);
    if when <= ctx.now_ms {
        // A time already past deletes the key (a deletion, not an expiry).
        ctx.db().remove(args[1]);
        let deletion = crate::effects::expired_overwrite_deletion(ctx.srv);
        ctx.srv.effects.journal_instead(&[deletion.as_bytes(), args[1]]);
        notify(ctx, notify::GENERIC, "del", args[1]);
    } else {
        ctx.db().set_expire(args[1], when);
        // Journalled with the absolute time in milliseconds, conditions kept.
        if ctx.srv.effects.enabled {
            let when = when.to_string();
            let mut journalled: Vec<&[u8]> = vec![b"PEXPIREAT", args[1], when.as_bytes()];
            journalled.extend_from_slice(&args[3..]);
            ctx.srv.effects.journal_instead(&journalled);
        }
        notify(ctx, notify::GENERIC, "expire", args[1]);
    }
    ctx.out.int(1);
    Ok(())
}

/// What TTL-family commands report.
#[derive(Clone, Copy)]
enum TtlReport {
    /// Time left, in seconds (rounded) or milliseconds.
    Remaining { millis: bool },
    /// The Unix time of expiry, in seconds (rounded) or milliseconds.
    At { millis: bool },
}

fn ttl(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    report_ttl(ctx, args[1], TtlReport::Remaining { millis: false })
}

fn pttl(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    report_ttl(ctx, args[1], TtlReport::Remaining { millis: true })
}

fn expiretime(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    report_ttl(ctx, args[1], TtlReport::At { millis: false })
}

fn pexpiretime(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    report_ttl(ctx, args[1], TtlReport::At { millis: true })
}

/// -2 for a missing key, -1 for a key without expiry, else the time.
fn report_ttl(ctx: &mut Ctx, key: &[u8], report: TtlReport) -> CmdResult {
    let now = ctx.now_ms;
    let db = ctx.client.db;
    let reply = match ctx.lookup_in(db, key, Lookup::ReadNoTouch).map(|e| e.expire_at) {
        None => -2,
        Some(NO_EXPIRE) => -1,
        Some(at) => {
            let (value, millis) = match report {
                TtlReport::Remaining { millis } => ((at - now).max(0), millis),
                TtlReport::At { millis } => (at.max(0), millis),
            };
            if millis {
                value
            } else {
                // Rounded to the nearest second, without overflowing near i64::MAX.
                ((value as i128 + 500) / 1000) as i64
            }
        }
    };
    ctx.out.int(reply);
    Ok(())
}

fn persist(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let db = ctx.client.db;
    let had_ttl = ctx.lookup_in(db, args[1], Lookup::Write).is_some_and(|e| e.expire_at != NO_EXPIRE);
    if had_ttl {
        ctx.db().set_expire(args[1], NO_EXPIRE);
        ctx.dirty(1);
        notify(ctx, notify::GENERIC, "persist", args[1]);
    }
    ctx.out.int(had_ttl as i64);
    Ok(())
}
