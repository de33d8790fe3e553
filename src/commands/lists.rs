//! Lists: LPUSH, RPUSH, LPOP, LRANGE, ... and the blocking list commands.
//!
//! Replies, error texts, the order in which arguments and keys are checked,
//! and the points where a list changes encoding follow Valkey 8.0.1. The
//! blocking commands serve at once when they can; otherwise they park the
//! client through [`Ctx::block`] and are run again when a key they wait on
//! is written (or answer as on timeout where blocking is not allowed).

use ferrokey_formats::listpack::Item;
use ferrokey_formats::resp::parse_i64;

use super::args::c_str;
use crate::blocking::{parse_timeout, TimeoutReply};
use crate::command::{arity_error, errors, CmdError, CmdResult, Ctx, Handler, Lookup};
use crate::notify::{self, notify};
use crate::reply::Reply;
use crate::types::list::{End, List, Popped};
use crate::value::Value;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("lpush", lpush),
    ("rpush", rpush),
    ("lpushx", lpushx),
    ("rpushx", rpushx),
    ("lpop", lpop),
    ("rpop", rpop),
    ("llen", llen),
    ("lrange", lrange),
    ("lindex", lindex),
    ("lset", lset),
    ("linsert", linsert),
    ("lrem", lrem),
    ("ltrim", ltrim),
    ("lpos", lpos),
    ("lmove", lmove),
    ("rpoplpush", rpoplpush),
    ("lmpop", lmpop),
    ("blpop", blpop),
    ("brpop", brpop),
    ("blmove", blmove),
    ("brpoplpush", brpoplpush),
    ("blmpop", blmpop),
];

const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use \
                         negative to start from the end of the list";

// ---------------------------------------------------------------------------
// Arguments, lookups, replies
// ---------------------------------------------------------------------------

fn is_option(arg: &[u8], name: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(name.as_bytes())
}

fn parse_long(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64(arg).ok_or_else(|| errors::NOT_INTEGER.into())
}

/// An integer within `min..=max`. `msg`, when given, is the error for both
/// a non-integer and an out-of-range value, as in Valkey.
fn parse_ranged(arg: &[u8], min: i64, max: i64, msg: Option<&'static str>) -> Result<i64, CmdError> {
    let value = parse_i64(arg).ok_or_else(|| CmdError::from(msg.unwrap_or(errors::NOT_INTEGER)))?;
    if value < min || value > max {
        return Err(match msg {
            Some(msg) => msg.into(),
            None => format!("ERR value is out of range, value must between {min} and {max}").into(),
        });
    }
    Ok(value)
}

/// LEFT or RIGHT.
fn parse_end(arg: &[u8]) -> Result<End, CmdError> {
    if is_option(arg, "right") {
        Ok(End::Tail)
    } else if is_option(arg, "left") {
        Ok(End::Head)
    } else {
        Err(errors::SYNTAX.into())
    }
}

fn list_fill(ctx: &Ctx) -> i64 {
    ctx.srv.config.list_max_listpack_size
}

/// The list at `key` (None when absent) with the reply buffer; WRONGTYPE
/// when the key holds another type.
fn lookup_list<'c>(
    ctx: &'c mut Ctx,
    key: &[u8],
    how: Lookup,
) -> Result<(Option<&'c mut List>, &'c mut Reply), CmdError> {
    match ctx.lookup(key, how) {
        (None, out) => Ok((None, out)),
        (Some(entry), out) => match &mut entry.value {
            Value::List(list) => Ok((Some(list), out)),
            _ => Err(errors::WRONG_TYPE.into()),
        },
    }
}

/// Checks that `key` is absent or a list, without other effects than the lookup's.
fn check_list_or_absent(ctx: &mut Ctx, key: &[u8]) -> CmdResult {
    lookup_list(ctx, key, Lookup::Write).map(drop)
}

fn reply_item(out: &mut Reply, item: Item<'_>) {
    match item {
        Item::Int(n) => out.bulk_int(n),
        Item::Str(s) => out.bulk(s),
    }
}

fn reply_popped(out: &mut Reply, popped: &Popped) {
    match popped {
        Popped::Int(n) => out.bulk_int(*n),
        Popped::Bytes(b) => out.bulk(b),
    }
}

/// Valkey's range arithmetic for LRANGE and LTRIM: negative indexes count
/// from the tail, and the range is clamped to the list. Returns the first
/// position and the number of elements, or None for an empty range.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { len + end } else { end };
    if start > end || start >= len {
        return None;
    }
    let end = end.min(len - 1);
    Some((start as usize, (end - start + 1) as usize))
}

/// The keyspace event of a pop from `end`.
fn pop_event(end: End) -> &'static str {
    match end {
        End::Head => "lpop",
        End::Tail => "rpop",
    }
}

/// The keyspace event of a push onto `end`.
/// The non-blocking pop a pop from `end` is journalled as.
fn pop_command(end: End) -> &'static [u8] {
    match end {
        End::Head => b"LPOP",
        End::Tail => b"RPOP",
    }
}

fn push_event(end: End) -> &'static str {
    match end {
        End::Head => "lpush",
        End::Tail => "rpush",
    }
}

/// After elements were taken from the list at `key` (announced as
/// `event`): deletes the key if the list is empty, else lets it convert
/// back to a listpack.
fn settle_after_removal(ctx: &mut Ctx, key: &[u8], removed: usize, event: &str) {
    notify(ctx, notify::LIST, event, key);
    let fill = list_fill(ctx);
    let now = ctx.now_ms;
    let emptied = match ctx.db().get_mut(key, now).map(|e| &mut e.value) {
        Some(Value::List(list)) if list.is_empty() => true,
        Some(Value::List(list)) => {
            list.after_removal(fill);
            false
        }
        _ => false,
    };
    if emptied {
        ctx.db().remove(key);
        notify(ctx, notify::GENERIC, "del", key);
    }
    ctx.dirty(removed as u64);
}

/// Pops up to `count` elements from one end of the list at `key` (which
/// exists and is a list), answering them as an array in popping order.
/// Returns how many were popped.
fn pop_range_reply(ctx: &mut Ctx, key: &[u8], end: End, count: usize) -> Result<usize, CmdError> {
    let (Some(list), out) = lookup_list(ctx, key, Lookup::Write)? else { return Ok(0) };
    let taken = count.min(list.len());
    out.array(taken);
    let (first, reverse) = match end {
        End::Head => (0, false),
        End::Tail => (list.len() - 1, true),
    };
    for item in list.iter_from(first, reverse).take(taken) {
        reply_item(out, item);
    }
    let start = match end {
        End::Head => 0,
        End::Tail => list.len() - taken,
    };
    list.delete_range(start, taken);
    settle_after_removal(ctx, key, taken, pop_event(end));
    Ok(taken)
}

// ---------------------------------------------------------------------------
// Pushes
// ---------------------------------------------------------------------------

fn lpush(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    push_generic(ctx, args, End::Head, false)
}

fn rpush(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    push_generic(ctx, args, End::Tail, false)
}

fn lpushx(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    push_generic(ctx, args, End::Head, true)
}

fn rpushx(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    push_generic(ctx, args, End::Tail, true)
}

fn push_all(list: &mut List, elements: &[&[u8]], end: End, fill: i64) {
    let added_bytes = elements.iter().map(|e| e.len()).sum();
    list.prepare_growth(added_bytes, elements.len(), fill);
    for element in elements {
        list.push(element, end);
    }
}

/// LPUSH/RPUSH key element...; the X forms only push to an existing list.
fn push_generic(ctx: &mut Ctx, args: &[&[u8]], end: End, only_existing: bool) -> CmdResult {
    let (key, elements) = (args[1], &args[2..]);
    let fill = list_fill(ctx);
    let len = match lookup_list(ctx, key, Lookup::Write)?.0 {
        Some(list) => {
            push_all(list, elements, end, fill);
            list.len()
        }
        None if only_existing => {
            ctx.out.int(0);
            return Ok(());
        }
        None => {
            let mut list = List::new();
            push_all(&mut list, elements, end, fill);
            let len = list.len();
            let lru = ctx.lru_now();
            ctx.db().set(key, Value::List(list), lru);
            notify::new_key(ctx, key);
            len
        }
    };
    ctx.dirty(elements.len() as u64);
    notify(ctx, notify::LIST, push_event(end), key);
    ctx.out.int(len as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// Pops
// ---------------------------------------------------------------------------

fn lpop(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    pop_generic(ctx, args, End::Head, "lpop")
}

fn rpop(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    pop_generic(ctx, args, End::Tail, "rpop")
}

/// LPOP/RPOP key [count]: one element as a bulk string, or with a count an
/// array of up to that many.
fn pop_generic(ctx: &mut Ctx, args: &[&[u8]], end: End, name: &str) -> CmdResult {
    if args.len() > 3 {
        return Err(arity_error(name));
    }
    let key = args[1];
    let count = match args.get(2) {
        Some(arg) => Some(parse_ranged(arg, 0, i64::MAX, Some(errors::OUT_OF_RANGE_POSITIVE))? as usize),
        None => None,
    };
    let (list, out) = lookup_list(ctx, key, Lookup::Write)?;
    let Some(list) = list else {
        if count.is_some() {
            out.null_array();
        } else {
            out.null();
        }
        return Ok(());
    };
    match count {
        None => {
            if let Some(popped) = list.pop(end) {
                reply_popped(out, &popped);
            }
            settle_after_removal(ctx, key, 1, pop_event(end));
        }
        Some(0) => out.array(0),
        Some(count) => {
            pop_range_reply(ctx, key, end, count)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

fn llen(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (list, out) = lookup_list(ctx, args[1], Lookup::Read)?;
    out.int(list.map_or(0, |l| l.len() as i64));
    Ok(())
}

fn lrange(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let start = parse_long(args[2])?;
    let end = parse_long(args[3])?;
    let (list, out) = lookup_list(ctx, args[1], Lookup::Read)?;
    let Some((first, n)) = list.as_ref().and_then(|l| clamp_range(start, end, l.len())) else {
        out.array(0);
        return Ok(());
    };
    out.array(n);
    if let Some(list) = list {
        for item in list.iter_from(first, false).take(n) {
            reply_item(out, item);
        }
    }
    Ok(())
}

/// LINDEX key index: the key is looked up (and type-checked) before the
/// index is parsed, as in Valkey.
fn lindex(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (list, out) = lookup_list(ctx, args[1], Lookup::Read)?;
    let Some(list) = list else {
        out.null();
        return Ok(());
    };
    let index = parse_long(args[2])?;
    match list.get(index) {
        Some(item) => reply_item(out, item),
        None => out.null(),
    }
    Ok(())
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
fn lpos(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let element = args[2];
    let mut rank: i64 = 1;
    let mut count: Option<usize> = None;
    let mut maxlen: usize = 0;
    let mut i = 3;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if is_option(args[i], "rank") && has_value {
            rank = parse_ranged(args[i + 1], -i64::MAX, i64::MAX, None)?;
            if rank == 0 {
                return Err(RANK_ZERO.into());
            }
        } else if is_option(args[i], "count") && has_value {
            count = Some(parse_ranged(args[i + 1], 0, i64::MAX, Some("ERR COUNT can't be negative"))? as usize);
        } else if is_option(args[i], "maxlen") && has_value {
            maxlen = parse_ranged(args[i + 1], 0, i64::MAX, Some("ERR MAXLEN can't be negative"))? as usize;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 2;
    }
    let (list, out) = lookup_list(ctx, args[1], Lookup::Read)?;
    let Some(list) = list else {
        if count.is_some() {
            out.array(0);
        } else {
            out.null();
        }
        return Ok(());
    };
    let from_tail = rank < 0;
    let rank = rank.unsigned_abs() as usize;
    let len = list.len();
    let start = if from_tail { len - 1 } else { 0 };
    let scan = if maxlen == 0 { len } else { maxlen };
    let mut matches = 0;
    let mut found = Vec::new();
    for (walked, item) in list.iter_from(start, from_tail).take(scan).enumerate() {
        if !item.eq_bytes(element) {
            continue;
        }
        matches += 1;
        if matches < rank {
            continue;
        }
        found.push(if from_tail { len - 1 - walked } else { walked });
        match count {
            None => break,
            Some(wanted) if wanted != 0 && found.len() >= wanted => break,
            Some(_) => {}
        }
    }
    match count {
        Some(_) => {
            out.array(found.len());
            for position in found {
                out.int(position as i64);
            }
        }
        None => match found.first() {
            Some(&position) => out.int(position as i64),
            None => out.null(),
        },
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Changing elements in place
// ---------------------------------------------------------------------------

fn lset(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, element) = (args[1], args[3]);
    let fill = list_fill(ctx);
    let (Some(list), _) = lookup_list(ctx, key, Lookup::Write)? else {
        return Err(errors::NO_SUCH_KEY.into());
    };
    // Valkey hands the index to its replace function as a C int, so it
    // is taken modulo 2^32 (LSET key 4294967296 sets the head).
    let index = parse_long(args[2])? as i32 as i64;
    // Valkey checks for growth as if an element were added, even though
    // one is replaced, and before it knows the index is valid.
    list.prepare_growth(element.len(), 1, fill);
    if !list.set(index, element) {
        return Err(errors::OUT_OF_RANGE.into());
    }
    list.after_removal(fill);
    ctx.dirty(1);
    notify(ctx, notify::LIST, "lset", key);
    ctx.out.ok();
    Ok(())
}

/// LINSERT key BEFORE|AFTER pivot element: the new length, -1 when the
/// pivot is not there, 0 when the key is not.
fn linsert(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let after = if is_option(args[2], "after") {
        true
    } else if is_option(args[2], "before") {
        false
    } else {
        return Err(errors::SYNTAX.into());
    };
    let (pivot, element) = (args[3], args[4]);
    let fill = list_fill(ctx);
    let (list, out) = lookup_list(ctx, args[1], Lookup::Write)?;
    let Some(list) = list else {
        out.int(0);
        return Ok(());
    };
    // Checked before the pivot is searched for, so the encoding may change
    // even when nothing is inserted.
    list.prepare_growth(element.len(), 1, fill);
    if !list.insert(pivot, element, after) {
        out.int(-1);
        return Ok(());
    }
    out.int(list.len() as i64);
    ctx.dirty(1);
    notify(ctx, notify::LIST, "linsert", args[1]);
    Ok(())
}

/// LREM key count element: count > 0 removes from the head, < 0 from the
/// tail, 0 removes all.
fn lrem(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let count = parse_ranged(args[2], -i64::MAX, i64::MAX, None)?;
    let (list, out) = lookup_list(ctx, key, Lookup::Write)?;
    let Some(list) = list else {
        out.int(0);
        return Ok(());
    };
    let removed = list.remove(args[3], count.unsigned_abs() as usize, count < 0);
    out.int(removed as i64);
    if removed > 0 {
        settle_after_removal(ctx, key, removed, "lrem");
    }
    Ok(())
}

fn ltrim(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let start = parse_long(args[2])?;
    let end = parse_long(args[3])?;
    let (list, out) = lookup_list(ctx, key, Lookup::Write)?;
    out.ok();
    let Some(list) = list else { return Ok(()) };
    let len = list.len();
    let (keep_from, keep) = clamp_range(start, end, len).unwrap_or((len, 0));
    let cut_tail = len - keep_from - keep;
    list.delete_range(0, keep_from);
    list.delete_range(keep, cut_tail);
    settle_after_removal(ctx, key, keep_from + cut_tail, "ltrim");
    Ok(())
}

// ---------------------------------------------------------------------------
// Moving between lists
// ---------------------------------------------------------------------------

fn lmove(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let from = parse_end(args[3])?;
    let to = parse_end(args[4])?;
    move_element(ctx, args[1], args[2], from, to)
}

fn rpoplpush(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    move_element(ctx, args[1], args[2], End::Tail, End::Head)
}

/// Pops from one end of `source` and pushes onto one end of `destination`,
/// answering the element (nil when `source` does not exist). The
/// destination's type is checked only once the source is known to hold
/// something, and before anything changes.
fn move_element(ctx: &mut Ctx, source: &[u8], destination: &[u8], from: End, to: End) -> CmdResult {
    let fill = list_fill(ctx);
    let (list, out) = lookup_list(ctx, source, Lookup::Write)?;
    if list.is_none_or(|l| l.is_empty()) {
        out.null();
        return Ok(());
    }
    check_list_or_absent(ctx, destination)?;
    let Some(popped) = lookup_list(ctx, source, Lookup::Write)?.0.and_then(|l| l.pop(from)) else {
        ctx.out.null();
        return Ok(());
    };
    let element = popped.bytes();
    match lookup_list(ctx, destination, Lookup::Write)?.0 {
        Some(list) => {
            list.prepare_growth(popped.counted_len(), 1, fill);
            list.push(&element, to);
        }
        None => {
            let mut list = List::new();
            list.prepare_growth(popped.counted_len(), 1, fill);
            list.push(&element, to);
            let lru = ctx.lru_now();
            ctx.db().set(destination, Value::List(list), lru);
            notify::new_key(ctx, destination);
        }
    }
    // The push is announced before the pop, as Valkey orders them.
    notify(ctx, notify::LIST, push_event(to), destination);
    reply_popped(ctx.out, &popped);
    settle_after_removal(ctx, source, 1, pop_event(from));
    Ok(())
}

// ---------------------------------------------------------------------------
// Popping from the first of several lists
// ---------------------------------------------------------------------------

/// The parsed arguments of LMPOP/BLMPOP.
struct MultiPop<'a> {
    keys: &'a [&'a [u8]],
    end: End,
    count: usize,
}

/// Parses `numkeys key... LEFT|RIGHT [COUNT count]` starting at `numkeys_at`.
fn parse_multi_pop<'a>(args: &'a [&'a [u8]], numkeys_at: usize) -> Result<MultiPop<'a>, CmdError> {
    let numkeys = parse_ranged(args[numkeys_at], 1, i64::MAX, Some("ERR numkeys should be greater than 0"))? as usize;
    let end_at = numkeys_at.saturating_add(numkeys).saturating_add(1);
    if end_at >= args.len() {
        return Err(errors::SYNTAX.into());
    }
    let end = parse_end(args[end_at])?;
    let mut count = None;
    let mut i = end_at + 1;
    while i < args.len() {
        if count.is_none() && is_option(args[i], "count") && i + 1 < args.len() {
            count = Some(parse_ranged(args[i + 1], 1, i64::MAX, Some("ERR count should be greater than 0"))? as usize);
            i += 2;
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    Ok(MultiPop { keys: &args[numkeys_at + 1..end_at], end, count: count.unwrap_or(1) })
}

/// Pops from the first non-empty list among `keys`, answering
/// `[key, [elements]]`. Returns false (having answered nothing) when all
/// are absent; a key of another type answers WRONGTYPE.
fn multi_pop_from_first(ctx: &mut Ctx, request: &MultiPop) -> Result<bool, CmdError> {
    for &key in request.keys {
        if lookup_list(ctx, key, Lookup::Write)?.0.is_none_or(|l| l.is_empty()) {
            continue;
        }
        ctx.out.array(2);
        ctx.out.bulk(key);
        let taken = pop_range_reply(ctx, key, request.end, request.count)?;
        // Journalled as the pop it was, from the key it found.
        ctx.srv.effects.journal_instead(&[pop_command(request.end), key, taken.to_string().as_bytes()]);
        return Ok(true);
    }
    Ok(false)
}

fn lmpop(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let request = parse_multi_pop(args, 1)?;
    if !multi_pop_from_first(ctx, &request)? {
        ctx.out.null_array();
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Blocking forms
// ---------------------------------------------------------------------------

fn blpop(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    blocking_pop(ctx, args, End::Head)
}

fn brpop(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    blocking_pop(ctx, args, End::Tail)
}

/// BLPOP/BRPOP key... timeout: `[key, element]` from the first non-empty
/// list, else waits for one.
fn blocking_pop(ctx: &mut Ctx, args: &[&[u8]], end: End) -> CmdResult {
    let timeout = parse_timeout(args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    for &key in keys {
        let (list, out) = lookup_list(ctx, key, Lookup::Write)?;
        let Some(popped) = list.and_then(|l| l.pop(end)) else { continue };
        out.array(2);
        out.bulk(key);
        reply_popped(out, &popped);
        settle_after_removal(ctx, key, 1, pop_event(end));
        // Journalled as the non-blocking pop it was.
        ctx.srv.effects.journal_instead(&[pop_command(end), key]);
        return Ok(());
    }
    block_or_answer(ctx, keys, timeout, TimeoutReply::NullArray);
    Ok(())
}

fn blmpop(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let request = parse_multi_pop(args, 2)?;
    let timeout = parse_timeout(args[1])?;
    if !multi_pop_from_first(ctx, &request)? {
        block_or_answer(ctx, request.keys, timeout, TimeoutReply::NullArray);
    }
    Ok(())
}

fn blmove(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let from = parse_end(args[3])?;
    let to = parse_end(args[4])?;
    let timeout = parse_timeout(args[5])?;
    let dirty_before = ctx.srv.dirty;
    blocking_move(ctx, args[1], args[2], from, to, timeout)?;
    // Journalled as the non-blocking move it was.
    if ctx.srv.dirty != dirty_before {
        ctx.srv.effects.journal_instead(&[&b"LMOVE"[..], args[1], args[2], args[3], args[4]]);
    }
    Ok(())
}

fn brpoplpush(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let timeout = parse_timeout(args[3])?;
    let dirty_before = ctx.srv.dirty;
    blocking_move(ctx, args[1], args[2], End::Tail, End::Head, timeout)?;
    if ctx.srv.dirty != dirty_before {
        ctx.srv.effects.journal_instead(&[&b"RPOPLPUSH"[..], args[1], args[2]]);
    }
    Ok(())
}

fn blocking_move(
    ctx: &mut Ctx,
    source: &[u8],
    destination: &[u8],
    from: End,
    to: End,
    timeout: Option<std::time::Duration>,
) -> CmdResult {
    if lookup_list(ctx, source, Lookup::Write)?.0.is_some() {
        return move_element(ctx, source, destination, from, to);
    }
    // Valkey answers a null bulk string where it may not block, but like
    // every list command a null array once a wait times out.
    block_or_answer(ctx, &[source], timeout, TimeoutReply::NullBulk);
    Ok(())
}

/// Parks the client on `keys` (to answer a null array on timeout), or
/// where blocking is not allowed (MULTI, scripts) answers `unblockable` at once.
fn block_or_answer(ctx: &mut Ctx, keys: &[&[u8]], timeout: Option<std::time::Duration>, unblockable: TimeoutReply) {
    if ctx.may_block() {
        ctx.block(keys, timeout, TimeoutReply::NullArray);
    } else {
        unblockable.write(ctx.out);
    }
}
