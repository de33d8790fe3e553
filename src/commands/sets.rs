//! Sets: SADD, SREM, SCARD, SISMEMBER, SMISMEMBER, SMEMBERS, SPOP,
//! SRANDMEMBER, SMOVE, the intersection, union and difference commands
//! with their STORE forms, SINTERCARD and SSCAN.
//!
//! Replies, error texts and the order of checks follow Valkey's t_set.c.
//! Where Valkey's result depends on its algorithm (the encoding of a stored
//! result, which SPOP strategy runs and so what encoding the popped set
//! keeps), the same algorithm runs here, so OBJECT ENCODING and the member
//! order of intset and listpack sets match. Results that are sets are sent
//! as RESP3 sets; SRANDMEMBER and SMISMEMBER answer arrays, as Valkey does.

use std::collections::HashSet;

use ferrokey_formats::listpack::Item;
use ferrokey_formats::resp::parse_i64;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::args::{parse_scan_cursor, parse_scan_options, ScanTarget};
use crate::command::{errors, CmdError, CmdResult, Ctx, Handler, Lookup};
use crate::db::Entry;
use crate::glob::glob_match;
use crate::notify::{self, notify};
use crate::reply::Reply;
use crate::types::set::{Encoding, Set, SetLimits};
use crate::value::Value;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("sadd", sadd),
    ("srem", srem),
    ("scard", scard),
    ("sismember", sismember),
    ("smismember", smismember),
    ("smembers", smembers),
    ("spop", spop),
    ("srandmember", srandmember),
    ("smove", smove),
    ("sinter", sinter),
    ("sintercard", sintercard),
    ("sinterstore", sinterstore),
    ("sunion", sunion),
    ("sunionstore", sunionstore),
    ("sdiff", sdiff),
    ("sdiffstore", sdiffstore),
    ("sscan", sscan),
];

const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";
/// SRANDMEMBER accepts any count whose negation is representable.
const RANDOM_COUNT_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
const TOO_MANY_NUMKEYS: &str = "ERR Number of keys can't be greater than number of args";
const NEGATIVE_LIMIT: &str = "ERR LIMIT can't be negative";

/// SPOP with a count removes random members one by one while the members
/// left are more than this fraction of those popped; otherwise it picks the
/// members to keep and moves them into a new set.
const SPOP_MOVE_STRATEGY_MUL: usize = 5;
/// SRANDMEMBER with a count copies the whole set and removes from it when
/// the count is more than a third of the set.
const SRANDMEMBER_SUB_STRATEGY_MUL: usize = 3;

fn limits(ctx: &Ctx) -> SetLimits {
    SetLimits::from_config(&ctx.srv.config)
}

/// A generator for one command's random picks, split off the server's so
/// that it can be used while a key's entry is borrowed.
fn command_rng(ctx: &mut Ctx) -> SmallRng {
    SmallRng::seed_from_u64(ctx.srv.rng.gen())
}

fn set_ref(entry: &Entry) -> Result<&Set, CmdError> {
    match &entry.value {
        Value::Set(set) => Ok(set),
        _ => Err(errors::WRONG_TYPE.into()),
    }
}

fn set_mut(entry: &mut Entry) -> Result<&mut Set, CmdError> {
    match &mut entry.value {
        Value::Set(set) => Ok(set),
        _ => Err(errors::WRONG_TYPE.into()),
    }
}

fn reply_member(out: &mut Reply, item: Item<'_>) {
    match item {
        Item::Int(n) => out.bulk_int(n),
        Item::Str(s) => out.bulk(s),
    }
}

/// Looks every key up for reading (counting hits and misses, expiring
/// them) and checks that those present are sets, stopping at the first
/// that is not, as Valkey does.
fn lookup_sets(ctx: &mut Ctx, keys: &[&[u8]]) -> Result<(), CmdError> {
    for key in keys {
        if let (Some(entry), _) = ctx.lookup(key, Lookup::Read) {
            set_ref(entry)?;
        }
    }
    Ok(())
}

/// Stores a computed set at `dst` (announced as `event`), or deletes
/// `dst` when the set is empty, answering the stored size. Returns the
/// change count for `dirty`.
fn store_result(ctx: &mut Ctx, dst: &[u8], result: Set, event: &str) -> u64 {
    let now_s = ctx.lru_now();
    if result.is_empty() {
        ctx.out.int(0);
        return delete_destination(ctx, dst);
    }
    ctx.out.int(result.len() as i64);
    let existed = ctx.lookup(dst, Lookup::Write).0.is_some();
    ctx.db().set(dst, Value::Set(result), now_s);
    if !existed {
        notify::new_key(ctx, dst);
    }
    notify(ctx, notify::SET, event, dst);
    1
}

/// Deletes the destination of a STORE command whose result is empty;
/// returns the change count for `dirty`.
fn delete_destination(ctx: &mut Ctx, dst: &[u8]) -> u64 {
    let deleted = ctx.db().remove(dst).is_some();
    if deleted {
        notify(ctx, notify::GENERIC, "del", dst);
    }
    deleted as u64
}

// ---------------------------------------------------------------------------
// Adding, removing, membership
// ---------------------------------------------------------------------------

fn sadd(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let limits = limits(ctx);
    let now_s = ctx.lru_now();
    let (key, members) = (args[1], &args[2..]);
    let added = match ctx.lookup(key, Lookup::Write).0 {
        Some(entry) => {
            let set = set_mut(entry)?;
            set.prepare_for(members.len(), limits);
            members.iter().filter(|m| set.add(m, limits)).count()
        }
        None => {
            let mut set = Set::for_new_key(members[0], members.len(), limits);
            let added = members.iter().filter(|m| set.add(m, limits)).count();
            ctx.db().set(key, Value::Set(set), now_s);
            notify::new_key(ctx, key);
            added
        }
    };
    ctx.dirty(added as u64);
    if added > 0 {
        notify(ctx, notify::SET, "sadd", key);
    }
    ctx.out.int(added as i64);
    Ok(())
}

fn srem(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (entry, out) = ctx.lookup(key, Lookup::Write);
    let Some(entry) = entry else {
        out.int(0);
        return Ok(());
    };
    let set = set_mut(entry)?;
    let mut removed = 0;
    for member in &args[2..] {
        if set.remove(member) {
            removed += 1;
            if set.is_empty() {
                break;
            }
        }
    }
    let emptied = set.is_empty();
    out.int(removed);
    if emptied {
        ctx.db().remove(key);
    }
    ctx.dirty(removed as u64);
    if removed > 0 {
        notify(ctx, notify::SET, "srem", key);
        if emptied {
            notify(ctx, notify::GENERIC, "del", key);
        }
    }
    Ok(())
}

fn smove(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (src, dst, member) = (args[1], args[2], args[3]);
    let limits = limits(ctx);
    let now_s = ctx.lru_now();
    let now_ms = ctx.now_ms;
    // Both keys are looked up (and expired if due) before anything else.
    ctx.lookup(src, Lookup::Write);
    ctx.lookup(dst, Lookup::Write);
    let (db, out) = ctx.db_out();
    let Some(source) = db.peek(src) else {
        out.int(0);
        return Ok(());
    };
    let source = set_ref(source)?;
    if let Some(entry) = db.peek(dst) {
        set_ref(entry)?;
    }
    if src == dst {
        out.int(source.contains(member) as i64);
        return Ok(());
    }
    // Some(emptied) once the member left the source.
    let moved_out = match db.get_mut(src, now_ms).map(|e| &mut e.value) {
        Some(Value::Set(source)) => source.remove(member).then(|| source.is_empty()),
        _ => None,
    };
    let Some(source_emptied) = moved_out else {
        out.int(0);
        return Ok(());
    };
    if source_emptied {
        db.remove(src);
    }
    let (added, created) = match db.get_mut(dst, now_ms).map(|e| &mut e.value) {
        Some(Value::Set(target)) => (target.add(member, limits), false),
        _ => {
            let mut set = Set::for_new_key(member, 1, limits);
            set.add(member, limits);
            db.set(dst, Value::Set(set), now_s);
            (true, true)
        }
    };
    out.int(1);
    ctx.dirty(1 + added as u64);
    notify(ctx, notify::SET, "srem", src);
    if source_emptied {
        notify(ctx, notify::GENERIC, "del", src);
    }
    if created {
        notify::new_key(ctx, dst);
    }
    if added {
        notify(ctx, notify::SET, "sadd", dst);
    }
    Ok(())
}

fn scard(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let len = match entry {
        Some(entry) => set_ref(entry)?.len(),
        None => 0,
    };
    out.int(len as i64);
    Ok(())
}

fn sismember(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let present = match entry {
        Some(entry) => set_ref(entry)?.contains(args[2]),
        None => false,
    };
    out.int(present as i64);
    Ok(())
}

fn smismember(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    // A missing key is an empty set: every answer is 0.
    let set = entry.map(|e| set_ref(e)).transpose()?;
    out.array(args.len() - 2);
    for member in &args[2..] {
        out.int(set.is_some_and(|s| s.contains(member)) as i64);
    }
    Ok(())
}

fn smembers(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    intersect(ctx, &args[1..2], Intersection::Reply)
}

// ---------------------------------------------------------------------------
// Random members
// ---------------------------------------------------------------------------

/// Picks `k` of `n` positions at random, in ascending order (selection
/// sampling: each position is taken with probability still-needed /
/// still-left). Valkey walks listpacks this way.
fn choose_in_order(n: usize, k: usize, rng: &mut impl Rng) -> Vec<bool> {
    let mut chosen = vec![false; n];
    let mut needed = k;
    for (i, pick) in chosen.iter_mut().enumerate() {
        if needed == 0 {
            break;
        }
        if rng.gen_range(0..n - i) < needed {
            *pick = true;
            needed -= 1;
        }
    }
    chosen
}

fn spop(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    match args.len() {
        2 => {}
        3 => return spop_with_count(ctx, args),
        _ => return Err(errors::SYNTAX.into()),
    }
    let key = args[1];
    let mut rng = command_rng(ctx);
    let (entry, out) = ctx.lookup(key, Lookup::Write);
    let Some(entry) = entry else {
        out.null();
        return Ok(());
    };
    let set = set_mut(entry)?;
    let member = set.pop_random(&mut rng);
    out.bulk(&member);
    let emptied = set.is_empty();
    // Journalled as the removal of the member drawn, not as a new draw.
    ctx.srv.effects.journal_instead(&[&b"SREM"[..], key, &member]);
    notify(ctx, notify::SET, "spop", key);
    if emptied {
        ctx.db().remove(key);
        notify(ctx, notify::GENERIC, "del", key);
    }
    ctx.dirty(1);
    Ok(())
}

fn spop_with_count(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    // Valkey gives this one message for a count that is not an integer too.
    let count = parse_i64(args[2]).and_then(|n| usize::try_from(n).ok()).ok_or(CmdError::from(MUST_BE_POSITIVE))?;
    let limits = limits(ctx);
    let mut rng = command_rng(ctx);
    let journal = ctx.srv.effects.enabled;
    let whole_set_deletion = if ctx.srv.config.lazyfree_lazy_server_del { &b"UNLINK"[..] } else { b"DEL" };
    // The members popped, in reply order: journalled as SREMs.
    let mut popped: Vec<Vec<u8>> = Vec::new();
    let mut remember = |item: Item<'_>| {
        if journal {
            popped.push(item.to_vec());
        }
    };
    let (entry, out) = ctx.lookup(key, Lookup::Write);
    let Some(entry) = entry else {
        out.set(0);
        return Ok(());
    };
    let set = set_mut(entry)?;
    if count == 0 {
        out.set(0);
        return Ok(());
    }
    let size = set.len();
    if count >= size {
        // Everything goes: answer the whole set and delete the key.
        out.set(size);
        set.iter().for_each(|item| reply_member(out, item));
        // Valkey reads the key again to answer it.
        ctx.srv.stats.keyspace_hits += 1;
        ctx.db().remove(key);
        ctx.dirty(size as u64);
        ctx.srv.effects.journal_instead(&[whole_set_deletion, key]);
        notify(ctx, notify::SET, "spop", key);
        notify(ctx, notify::GENERIC, "del", key);
        return Ok(());
    }
    out.set(count);
    let remaining = size - count;
    if remaining * SPOP_MOVE_STRATEGY_MUL > count {
        if set.encoding() == Encoding::Listpack {
            let chosen = choose_in_order(size, count, &mut rng);
            set.iter().zip(&chosen).filter(|(_, &p)| p).for_each(|(item, _)| {
                remember(item);
                reply_member(out, item)
            });
            set.retain_indexes(|i| !chosen[i]);
        } else {
            for _ in 0..count {
                let member = set.pop_random(&mut rng);
                remember(Item::Str(&member));
                out.bulk(&member);
            }
        }
    } else {
        // Few members stay: move them into a new set, answer the rest.
        let kept = if set.encoding() == Encoding::Listpack {
            let keep = choose_in_order(size, remaining, &mut rng);
            let mut kept = Set::new_listpack();
            for (item, _) in set.iter().zip(&keep).filter(|(_, &k)| k) {
                item.with_bytes(|m| kept.add(m, limits));
            }
            set.retain_indexes(|i| !keep[i]);
            kept
        } else {
            let mut kept = if set.encoding() == Encoding::Intset { Set::new_intset() } else { Set::new_listpack() };
            for _ in 0..remaining {
                let member = set.pop_random(&mut rng);
                kept.add(&member, limits);
            }
            kept
        };
        set.iter().for_each(|item| {
            remember(item);
            reply_member(out, item)
        });
        *set = kept;
    }
    ctx.dirty(count as u64);
    // SREMs of at most 1024 members each, as Valkey journals them.
    for batch in popped.chunks(1024) {
        let mut srem: Vec<&[u8]> = vec![b"SREM", key];
        srem.extend(batch.iter().map(Vec::as_slice));
        ctx.srv.effects.journal_instead(&srem);
    }
    notify(ctx, notify::SET, "spop", key);
    Ok(())
}

fn srandmember(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    match args.len() {
        2 => {}
        3 => return srandmember_with_count(ctx, args),
        _ => return Err(errors::SYNTAX.into()),
    }
    let mut rng = command_rng(ctx);
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    match entry {
        Some(entry) => reply_member(out, set_ref(entry)?.random(&mut rng)),
        None => out.null(),
    }
    Ok(())
}

fn srandmember_with_count(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let count = parse_i64(args[2]).ok_or(CmdError::from(errors::NOT_INTEGER))?;
    if count == i64::MIN {
        return Err(RANDOM_COUNT_RANGE.into());
    }
    // A negative count may repeat members; a positive one never does.
    let distinct = count >= 0;
    let count = count.unsigned_abs() as usize;
    let mut rng = command_rng(ctx);
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let Some(entry) = entry else {
        out.array(0);
        return Ok(());
    };
    let set = set_ref(entry)?;
    if count == 0 {
        out.array(0);
        return Ok(());
    }
    let size = set.len();
    if !distinct || count == 1 {
        out.array(count);
        for _ in 0..count {
            reply_member(out, set.random(&mut rng));
        }
    } else if count >= size {
        out.array(size);
        set.iter().for_each(|item| reply_member(out, item));
    } else if set.encoding() == Encoding::Listpack {
        // One walk over the listpack instead of a seek per pick.
        let chosen = choose_in_order(size, count, &mut rng);
        out.array(count);
        set.iter().zip(&chosen).filter(|(_, &c)| c).for_each(|(item, _)| reply_member(out, item));
    } else if count * SRANDMEMBER_SUB_STRATEGY_MUL > size {
        // A large share of the set: shuffle the first `count` positions.
        let mut positions: Vec<usize> = (0..size).collect();
        for i in 0..count {
            let j = rng.gen_range(i..size);
            positions.swap(i, j);
        }
        out.array(count);
        positions[..count].iter().for_each(|&p| reply_member(out, set.get(p)));
    } else {
        // A small share: draw until enough distinct positions came up.
        let mut picked = HashSet::with_capacity(count);
        while picked.len() < count {
            picked.insert(rng.gen_range(0..size));
        }
        out.array(count);
        picked.into_iter().for_each(|p| reply_member(out, set.get(p)));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Intersection
// ---------------------------------------------------------------------------

enum Intersection<'a> {
    /// SINTER, SMEMBERS: answer the members.
    Reply,
    /// SINTERSTORE.
    Store(&'a [u8]),
    /// SINTERCARD: answer the size, stopping at `limit` (0: no limit).
    Cardinality { limit: usize },
}

fn intersect(ctx: &mut Ctx, keys: &[&[u8]], mode: Intersection) -> CmdResult {
    lookup_sets(ctx, keys)?;
    let limits = limits(ctx);
    let (db, out) = ctx.db_out();
    let found: Option<Vec<&Set>> = keys.iter().map(|k| db.peek(k).and_then(|e| set_ref(e).ok())).collect();
    // A missing key is an empty set, and so is the intersection.
    let Some(mut sets) = found else {
        match mode {
            Intersection::Reply => out.set(0),
            Intersection::Cardinality { .. } => out.int(0),
            Intersection::Store(dst) => {
                out.int(0);
                let changes = delete_destination(ctx, dst);
                ctx.dirty(changes);
            }
        }
        return Ok(());
    };
    // Walk the smallest set, probing the others.
    sets.sort_by_key(|s| s.len());
    let (smallest, rest) = sets.split_first().expect("at least one key");
    let others: Vec<&Set> = rest.iter().copied().filter(|s| !std::ptr::eq(*s, *smallest)).collect();
    let common = smallest.iter().filter(|&item| others.iter().all(|s| s.contains_item(item)));
    match mode {
        Intersection::Cardinality { limit } => {
            let counted = if limit == 0 { common.count() } else { common.take(limit).count() };
            out.int(counted as i64);
        }
        Intersection::Reply => {
            let members: Vec<Item> = common.collect();
            out.set(members.len());
            members.into_iter().for_each(|item| reply_member(out, item));
        }
        Intersection::Store(dst) => {
            // The result starts as an intset only when the smallest set is
            // one; Valkey turns it into an intset at the end if every
            // member turned out to be an integer.
            let mut result = match smallest.encoding() {
                Encoding::Intset => Set::new_intset(),
                _ => Set::new_listpack(),
            };
            for item in common {
                item.with_bytes(|m| result.add(m, limits));
            }
            result.compact_integers(limits);
            let changes = store_result(ctx, dst, result, "sinterstore");
            ctx.dirty(changes);
        }
    }
    Ok(())
}

fn sinter(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    intersect(ctx, &args[1..], Intersection::Reply)
}

fn sinterstore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    intersect(ctx, &args[2..], Intersection::Store(args[1]))
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let numkeys = parse_i64(args[1]).filter(|&n| n >= 1).ok_or(CmdError::from(NUMKEYS_NOT_POSITIVE))?;
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys > args.len() - 2 {
        return Err(TOO_MANY_NUMKEYS.into());
    }
    let mut limit = 0;
    let mut i = 2 + numkeys;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"limit") && i + 1 < args.len() {
            let n = parse_i64(args[i + 1]).filter(|&n| n >= 0).ok_or(CmdError::from(NEGATIVE_LIMIT))?;
            limit = usize::try_from(n).unwrap_or(usize::MAX);
            i += 2;
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    intersect(ctx, &args[2..2 + numkeys], Intersection::Cardinality { limit })
}

// ---------------------------------------------------------------------------
// Union and difference
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Algebra {
    Union,
    Difference,
}

fn union_or_difference(ctx: &mut Ctx, keys: &[&[u8]], dst: Option<&[u8]>, op: Algebra) -> CmdResult {
    lookup_sets(ctx, keys)?;
    let limits = limits(ctx);
    let (db, out) = ctx.db_out();
    let sets: Vec<Option<&Set>> = keys.iter().map(|k| db.peek(k).and_then(|e| set_ref(e).ok())).collect();
    // An answered (not stored) result is collected in a hash table as soon
    // as one input is not an intset; otherwise it starts as an intset and
    // converts as members come, like any set.
    let answer_from_table = dst.is_none() && sets.iter().flatten().any(|s| s.encoding() != Encoding::Intset);
    let mut result = if answer_from_table { Set::new_hashtable(0) } else { Set::new_intset() };
    match (op, sets[0]) {
        (Algebra::Union, _) => {
            for set in sets.iter().flatten() {
                for item in set.iter() {
                    item.with_bytes(|m| result.add(m, limits));
                }
            }
        }
        (Algebra::Difference, None) => {}
        (Algebra::Difference, Some(first)) => {
            let others = &sets[1..];
            let same_as_first = others.iter().flatten().any(|s| std::ptr::eq(*s, first));
            // Valkey's choice of algorithm: probing the others for each
            // member of the first set, or adding the first set and
            // removing all the others. It decides how the result converts.
            let present = sets.iter().flatten().count();
            let probe_work = present * first.len() / 2;
            let subtract_work: usize = sets.iter().flatten().map(|s| s.len()).sum();
            if same_as_first {
                // A set minus itself: empty.
            } else if probe_work <= subtract_work {
                for item in first.iter() {
                    if !others.iter().flatten().any(|s| s.contains_item(item)) {
                        item.with_bytes(|m| result.add(m, limits));
                    }
                }
            } else {
                for (j, set) in sets.iter().enumerate() {
                    let Some(set) = set else { continue };
                    for item in set.iter() {
                        if j == 0 {
                            item.with_bytes(|m| result.add(m, limits));
                        } else {
                            item.with_bytes(|m| result.remove(m));
                        }
                    }
                    if result.is_empty() {
                        break;
                    }
                }
            }
        }
    }
    match dst {
        None => {
            out.set(result.len());
            result.iter().for_each(|item| reply_member(out, item));
        }
        Some(dst) => {
            let event = match op {
                Algebra::Union => "sunionstore",
                Algebra::Difference => "sdiffstore",
            };
            let changes = store_result(ctx, dst, result, event);
            ctx.dirty(changes);
        }
    }
    Ok(())
}

fn sunion(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    union_or_difference(ctx, &args[1..], None, Algebra::Union)
}

fn sunionstore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    union_or_difference(ctx, &args[2..], Some(args[1]), Algebra::Union)
}

fn sdiff(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    union_or_difference(ctx, &args[1..], None, Algebra::Difference)
}

fn sdiffstore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    union_or_difference(ctx, &args[2..], Some(args[1]), Algebra::Difference)
}

// ---------------------------------------------------------------------------
// SSCAN
// ---------------------------------------------------------------------------

/// SSCAN key cursor [MATCH pattern] [COUNT count]
///
/// The cursor is checked first, then the key (a missing key answers an
/// empty scan whatever the options), then the options. Intsets and
/// listpacks are returned whole with cursor 0.
fn sscan(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let cursor = parse_scan_cursor(args[2]).ok_or(CmdError::from("ERR invalid cursor"))?;
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let Some(entry) = entry else {
        out.array(2);
        out.bulk(b"0");
        out.array(0);
        return Ok(());
    };
    let set = set_ref(entry)?;
    let options = parse_scan_options(args, 3, ScanTarget::Set)?;
    let (count, pattern) = (options.count, options.pattern);
    let matches = |member: &[u8]| pattern.is_none_or(|p| glob_match(p, member, false));
    let mut found: Vec<Vec<u8>> = Vec::new();
    let next_cursor = set
        .table_scan(cursor, count, |member| {
            if matches(member) {
                found.push(member.to_vec());
            }
        })
        .unwrap_or_else(|| {
            for item in set.iter() {
                item.with_bytes(|member| {
                    if matches(member) {
                        found.push(member.to_vec());
                    }
                });
            }
            0
        });
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next_cursor).as_bytes());
    out.bulk_array(found.iter().map(Vec::as_slice));
    Ok(())
}
