//! Hash commands: HSET, HGET, HGETALL, HINCRBY, HRANDFIELD, HSCAN, ...
//!
//! Replies, error texts, the order in which arguments and keys are checked,
//! and the moments a hash changes encoding follow Valkey 8.0.1. The
//! representation and its conversion rules live in `types::hash`.

use ferrokey_formats::listpack::Item;
use ferrokey_formats::resp::parse_i64;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::args::{c_str, parse_scan_cursor, parse_scan_options, ScanTarget};
use crate::command::{arity_error, errors, CmdError, CmdResult, Ctx, Handler, Lookup};
use crate::db::Entry;
use crate::glob::glob_match;
use crate::longdouble;
use crate::notify::{self, notify};
use crate::reply::Reply;
use crate::types::hash::{Hash, Limits};
use crate::value::Value;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("hset", hset),
    ("hmset", hmset),
    ("hsetnx", hsetnx),
    ("hget", hget),
    ("hmget", hmget),
    ("hdel", hdel),
    ("hlen", hlen),
    ("hstrlen", hstrlen),
    ("hexists", hexists),
    ("hkeys", hkeys),
    ("hvals", hvals),
    ("hgetall", hgetall),
    ("hincrby", hincrby),
    ("hincrbyfloat", hincrbyfloat),
    ("hrandfield", hrandfield),
    ("hscan", hscan),
];

// ---------------------------------------------------------------------------
// Looking hashes up
// ---------------------------------------------------------------------------

/// The hash a looked-up key holds: None when the key is absent, WRONGTYPE
/// when it holds another type.
fn hash_of(entry: Option<&mut Entry>) -> Result<Option<&Hash>, CmdError> {
    match entry {
        None => Ok(None),
        Some(Entry { value: Value::Hash(hash), .. }) => Ok(Some(hash)),
        Some(_) => Err(errors::WRONG_TYPE.into()),
    }
}

fn limits(ctx: &Ctx) -> Limits {
    Limits { max_entries: ctx.srv.config.hash_max_listpack_entries, max_value: ctx.srv.config.hash_max_listpack_value }
}

/// Runs `change` on the hash at `key`, or on a new empty hash when the key
/// is absent (stored only if `change` left it non-empty, so a failed
/// command never leaves an empty key behind). WRONGTYPE for other types.
fn change_hash<R>(
    ctx: &mut Ctx,
    key: &[u8],
    change: impl FnOnce(&mut Hash, &Limits) -> Result<R, CmdError>,
) -> Result<R, CmdError> {
    let limits = limits(ctx);
    let lru = ctx.lru_now();
    match ctx.lookup(key, Lookup::Write).0 {
        Some(Entry { value: Value::Hash(hash), .. }) => change(hash, &limits),
        Some(_) => Err(errors::WRONG_TYPE.into()),
        None => {
            let mut hash = Hash::default();
            let result = change(&mut hash, &limits)?;
            if !hash.is_empty() {
                ctx.db().set(key, Value::Hash(hash), lru);
                notify::new_key(ctx, key);
            }
            Ok(result)
        }
    }
}

/// Answers one field or value as a bulk string.
fn reply_item(out: &mut Reply, item: Item<'_>) {
    match item {
        Item::Int(n) => out.bulk_int(n),
        Item::Str(s) => out.bulk(s),
    }
}

// ---------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------

/// Sets every field/value pair of args[2..]; returns how many fields were new.
fn set_pairs(ctx: &mut Ctx, args: &[&[u8]], command: &str) -> Result<usize, CmdError> {
    if args.len() % 2 == 1 {
        return Err(arity_error(command));
    }
    let pairs = &args[2..];
    let created = change_hash(ctx, args[1], |hash, limits| {
        hash.prepare_for_write(pairs, limits);
        Ok(pairs.chunks_exact(2).filter(|pair| hash.set(pair[0], pair[1], limits)).count())
    })?;
    ctx.dirty(pairs.len() as u64 / 2);
    notify(ctx, notify::HASH, "hset", args[1]);
    Ok(created)
}

/// HSET key field value [field value ...]: answers how many fields were new.
fn hset(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let created = set_pairs(ctx, args, "hset")?;
    ctx.out.int(created as i64);
    Ok(())
}

/// HMSET: HSET answering OK.
fn hmset(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_pairs(ctx, args, "hmset")?;
    ctx.out.ok();
    Ok(())
}

fn hsetnx(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (field, value) = (args[2], args[3]);
    let set = change_hash(ctx, args[1], |hash, limits| {
        if hash.contains(field) {
            return Ok(false);
        }
        hash.prepare_for_write(&args[2..4], limits);
        hash.set(field, value, limits);
        Ok(true)
    })?;
    if set {
        ctx.dirty(1);
        notify(ctx, notify::HASH, "hset", args[1]);
    }
    ctx.out.int(set as i64);
    Ok(())
}

fn hdel(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (deleted, emptied) = match ctx.lookup(key, Lookup::Write).0 {
        None => (0, false),
        Some(Entry { value: Value::Hash(hash), .. }) => {
            let mut deleted = 0;
            for field in &args[2..] {
                if hash.remove(field) {
                    deleted += 1;
                    if hash.is_empty() {
                        break;
                    }
                }
            }
            (deleted, hash.is_empty())
        }
        Some(_) => return Err(errors::WRONG_TYPE.into()),
    };
    if emptied {
        ctx.db().remove(key);
    }
    ctx.dirty(deleted);
    if deleted > 0 {
        notify(ctx, notify::HASH, "hdel", key);
        if emptied {
            notify(ctx, notify::GENERIC, "del", key);
        }
    }
    ctx.out.int(deleted as i64);
    Ok(())
}

fn hincrby(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let field = args[2];
    let increment = parse_i64(args[3]).ok_or(CmdError::from(errors::NOT_INTEGER))?;
    let sum = change_hash(ctx, args[1], |hash, limits| {
        let current = match hash.get(field) {
            None => 0,
            Some(Item::Int(n)) => n,
            Some(Item::Str(s)) => parse_i64(s).ok_or(CmdError::from("ERR hash value is not an integer"))?,
        };
        let sum = current.checked_add(increment).ok_or(CmdError::from(errors::OVERFLOW))?;
        hash.set(field, itoa::Buffer::new().format(sum).as_bytes(), limits);
        Ok(sum)
    })?;
    ctx.dirty(1);
    notify(ctx, notify::HASH, "hincrby", args[1]);
    ctx.out.int(sum);
    Ok(())
}

/// HINCRBYFLOAT adds in C's long double, as Valkey does, and stores the
/// sum as Valkey prints it (17 decimals at most, trailing zeros dropped).
fn hincrbyfloat(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (field, increment) = (args[2], args[3]);
    match longdouble::classify(increment) {
        None => return Err(errors::NOT_FLOAT.into()),
        Some(longdouble::Class::Infinite) => return Err("ERR value is NaN or Infinity".into()),
        Some(longdouble::Class::Finite) => {}
    }
    let sum = change_hash(ctx, args[1], |hash, limits| {
        let sum = match hash.get(field) {
            None => longdouble::add(b"0", increment),
            Some(current) => current.with_bytes(|current| longdouble::add(current, increment)),
        };
        let sum = sum.map_err(|e| match e {
            longdouble::AddError::NotFinite => CmdError::from("ERR increment would produce NaN or Infinity"),
            longdouble::AddError::FirstInvalid | longdouble::AddError::SecondInvalid => {
                CmdError::from("ERR hash value is not a float")
            }
        })?;
        hash.set(field, &sum, limits);
        Ok(sum)
    })?;
    ctx.dirty(1);
    // The value computed here, not the increment: a replay must not depend
    // on float rounding.
    ctx.srv.effects.journal_instead(&[&b"HSET"[..], args[1], field, &sum]);
    notify(ctx, notify::HASH, "hincrbyfloat", args[1]);
    ctx.out.bulk(&sum);
    Ok(())
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

fn hget(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    match hash_of(entry)?.and_then(|hash| hash.get(args[2])) {
        Some(value) => reply_item(out, value),
        None => out.null(),
    }
    Ok(())
}

/// HMGET answers one nil per field of an absent key.
fn hmget(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let hash = hash_of(entry)?;
    let fields = &args[2..];
    out.array(fields.len());
    for field in fields {
        match hash.and_then(|hash| hash.get(field)) {
            Some(value) => reply_item(out, value),
            None => out.null(),
        }
    }
    Ok(())
}

fn hlen(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    out.int(hash_of(entry)?.map_or(0, Hash::len) as i64);
    Ok(())
}

fn hstrlen(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let len = match hash_of(entry)?.and_then(|hash| hash.get(args[2])) {
        None => 0,
        Some(Item::Int(n)) => itoa::Buffer::new().format(n).len(),
        Some(Item::Str(s)) => s.len(),
    };
    out.int(len as i64);
    Ok(())
}

fn hexists(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    out.int(hash_of(entry)?.is_some_and(|hash| hash.contains(args[2])) as i64);
    Ok(())
}

/// What HKEYS, HVALS and HGETALL answer of each pair.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PairPart {
    Fields,
    Values,
    Both,
}

fn reply_all(ctx: &mut Ctx, key: &[u8], part: PairPart) -> CmdResult {
    let (entry, out) = ctx.lookup(key, Lookup::Read);
    let hash = hash_of(entry)?;
    let len = hash.map_or(0, Hash::len);
    // Fields with values make a map (an empty one for an absent key too).
    if part == PairPart::Both {
        out.map(len);
    } else {
        out.array(len);
    }
    for (field, value) in hash.into_iter().flat_map(Hash::iter) {
        if part != PairPart::Values {
            reply_item(out, field);
        }
        if part != PairPart::Fields {
            reply_item(out, value);
        }
    }
    Ok(())
}

fn hkeys(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    reply_all(ctx, args[1], PairPart::Fields)
}

fn hvals(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    reply_all(ctx, args[1], PairPart::Values)
}

fn hgetall(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    reply_all(ctx, args[1], PairPart::Both)
}

// ---------------------------------------------------------------------------
// HRANDFIELD
// ---------------------------------------------------------------------------

/// HRANDFIELD key [count [WITHVALUES]]
fn hrandfield(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() >= 3 {
        let count = parse_i64(args[2]).ok_or(CmdError::from(errors::NOT_INTEGER))?;
        if count == i64::MIN {
            return Err(format!("ERR value is out of range, value must between {} and {}", -i64::MAX, i64::MAX).into());
        }
        let with_values = args.len() == 4;
        if args.len() > 4 || (with_values && !c_str(args[3]).eq_ignore_ascii_case(b"withvalues")) {
            return Err(errors::SYNTAX.into());
        }
        // Pairs double the reply's length: the count must leave room for that.
        if with_values && count.unsigned_abs() > (i64::MAX / 2) as u64 {
            return Err("ERR value is out of range".into());
        }
        return hrandfield_with_count(ctx, args[1], count, with_values);
    }
    let mut rng = SmallRng::seed_from_u64(ctx.srv.rng.gen());
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    match hash_of(entry)? {
        None => out.null(),
        Some(hash) => {
            let positions = hash.positions();
            let (field, _) = positions.pair(rng.gen_range(0..positions.len()));
            reply_item(out, field);
        }
    }
    Ok(())
}

/// The count forms: a positive count answers distinct fields (the whole
/// hash when it has no more), a negative one answers exactly |count| fields
/// drawn independently, so repeats are possible. With WITHVALUES each
/// field is followed by its value, as a flat list in RESP2 and as
/// [field, value] pairs in RESP3.
fn hrandfield_with_count(ctx: &mut Ctx, key: &[u8], count: i64, with_values: bool) -> CmdResult {
    let mut rng = SmallRng::seed_from_u64(ctx.srv.rng.gen());
    let (entry, out) = ctx.lookup(key, Lookup::Read);
    let Some(hash) = hash_of(entry)? else {
        out.array(0);
        return Ok(());
    };
    if count == 0 {
        out.array(0);
        return Ok(());
    }
    let resp3 = out.resp3;
    let reply_header = |out: &mut Reply, pairs: u64| {
        let len = if with_values && !resp3 { pairs * 2 } else { pairs };
        out.array(len as usize);
    };
    let reply_pair = |out: &mut Reply, (field, value): (Item<'_>, Item<'_>)| {
        if with_values && resp3 {
            out.array(2);
        }
        reply_item(out, field);
        if with_values {
            reply_item(out, value);
        }
    };
    let size = hash.len();
    let positions = hash.positions();
    if count < 0 || count == 1 {
        let wanted = count.unsigned_abs();
        reply_header(out, wanted);
        for _ in 0..wanted {
            reply_pair(out, positions.pair(rng.gen_range(0..size)));
        }
        return Ok(());
    }
    let wanted = count as u64;
    if wanted >= size as u64 {
        reply_header(out, size as u64);
        hash.iter().for_each(|pair| reply_pair(out, pair));
        return Ok(());
    }
    reply_header(out, wanted);
    let mut picked = rand::seq::index::sample(&mut rng, size, wanted as usize).into_vec();
    // A listpack answers its sample in its own order, as Valkey does.
    if hash.is_listpack() {
        picked.sort_unstable();
    }
    for index in picked {
        reply_pair(out, positions.pair(index));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// HSCAN
// ---------------------------------------------------------------------------

/// HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]
///
/// The cursor is checked before the key, the options only once the key is
/// known to hold a hash: an absent key answers an empty scan whatever the
/// options say.
fn hscan(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let cursor = parse_scan_cursor(args[2]).ok_or(CmdError::from("ERR invalid cursor"))?;
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let Some(hash) = hash_of(entry)? else {
        out.array(2);
        out.bulk(b"0");
        out.array(0);
        return Ok(());
    };
    let options = parse_scan_options(args, 3, ScanTarget::Hash)?;
    let (count, pattern, fields_only) = (options.count, options.pattern, options.no_values);
    let mut found: Vec<Item<'_>> = Vec::new();
    let next_cursor = hash.scan(cursor, count, |field, value| {
        let matches = pattern.is_none_or(|p| field.with_bytes(|f| glob_match(p, f, false)));
        if matches {
            found.push(field);
            if !fields_only {
                found.push(value);
            }
        }
    });
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next_cursor).as_bytes());
    out.array(found.len());
    for item in found {
        reply_item(out, item);
    }
    Ok(())
}
