//! Sorted sets: ZADD, ZRANGE and its variants, ZRANK, the set operations
//! (ZUNION, ZINTER, ZDIFF and their STORE forms), pops (also blocking),
//! ZRANDMEMBER and ZSCAN.
//!
//! Replies, error texts, the order in which arguments, keys and types are
//! checked, and the moments a sorted set changes encoding follow Valkey
//! 8.0.1. Scores are printed Valkey's way (`double::format`): as bulk
//! strings in RESP2 and as doubles in RESP3, where member/score pairs also
//! come as nested arrays. The representation lives in `types::zset`.

use std::collections::HashMap;
use std::time::Duration;

use ferrokey_formats::listpack::Item;
use ferrokey_formats::resp::parse_i64;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::args::{c_str, parse_scan_cursor, parse_scan_options, ScanTarget};
use crate::blocking::{parse_timeout, TimeoutReply};
use crate::command::{arity_error, errors, CmdError, CmdResult, Ctx, Handler, Lookup};
use crate::db::Entry;
use crate::double;
use crate::glob::glob_match;
use crate::notify::{self, notify};
use crate::reply::Reply;
use crate::types::zset::{AddFlags, Added, LexBound, LexRange, Limits, Range, ScoreRange, ZSet};
use crate::value::Value;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("zadd", zadd),
    ("zincrby", zincrby),
    ("zrem", zrem),
    ("zcard", zcard),
    ("zscore", zscore),
    ("zmscore", zmscore),
    ("zrank", zrank),
    ("zrevrank", zrevrank),
    ("zcount", zcount),
    ("zlexcount", zlexcount),
    ("zrange", zrange),
    ("zrangestore", zrangestore),
    ("zrevrange", zrevrange),
    ("zrangebyscore", zrangebyscore),
    ("zrevrangebyscore", zrevrangebyscore),
    ("zrangebylex", zrangebylex),
    ("zrevrangebylex", zrevrangebylex),
    ("zremrangebyrank", zremrangebyrank),
    ("zremrangebyscore", zremrangebyscore),
    ("zremrangebylex", zremrangebylex),
    ("zpopmin", zpopmin),
    ("zpopmax", zpopmax),
    ("bzpopmin", bzpopmin),
    ("bzpopmax", bzpopmax),
    ("zmpop", zmpop),
    ("bzmpop", bzmpop),
    ("zrandmember", zrandmember),
    ("zscan", zscan),
    ("zunion", zunion),
    ("zinter", zinter),
    ("zdiff", zdiff),
    ("zunionstore", zunionstore),
    ("zinterstore", zinterstore),
    ("zdiffstore", zdiffstore),
    ("zintercard", zintercard),
];

const NOT_A_NUMBER: &str = "ERR resulting score is not a number (NaN)";
const SCORE_RANGE: &str = "ERR min or max is not a float";
const LEX_RANGE: &str = "ERR min or max not valid string range item";
const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";

// ---------------------------------------------------------------------------
// Arguments, lookups, replies
// ---------------------------------------------------------------------------

/// Case-insensitive option match, as strcasecmp on the argument.
fn is(arg: &[u8], word: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(word.as_bytes())
}

fn parse_long(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64(arg).ok_or_else(|| errors::NOT_INTEGER.into())
}

/// An integer in `min..=max`, with `message` for both bad forms and values
/// out of range (Valkey's getRangeLongFromObjectOrReply with a message).
fn parse_long_in(arg: &[u8], min: i64, max: i64, message: &'static str) -> Result<i64, CmdError> {
    parse_i64(arg).filter(|n| (min..=max).contains(n)).ok_or_else(|| message.into())
}

fn limits(ctx: &Ctx) -> Limits {
    Limits::from_config(&ctx.srv.config)
}

fn wrong_type() -> CmdError {
    errors::WRONG_TYPE.into()
}

/// The sorted set a looked-up key holds: None when absent, WRONGTYPE for
/// another type.
fn zset_of(entry: Option<&mut Entry>) -> Result<Option<&mut ZSet>, CmdError> {
    match entry {
        None => Ok(None),
        Some(Entry { value: Value::ZSet(z), .. }) => Ok(Some(z)),
        Some(_) => Err(wrong_type()),
    }
}

fn reply_member(out: &mut Reply, member: Item<'_>) {
    match member {
        Item::Int(n) => out.bulk_int(n),
        Item::Str(s) => out.bulk(s),
    }
}

fn reply_score(out: &mut Reply, score: f64) {
    out.double_text(double::format(score).as_bytes());
}

/// The array header of `n` elements, with or without their scores: RESP2
/// flattens pairs, RESP3 nests them (each pair then opens its own array).
fn elements_header(out: &mut Reply, n: usize, with_scores: bool) {
    out.array(if with_scores && !out.resp3 { n * 2 } else { n });
}

fn reply_element(out: &mut Reply, member: Item<'_>, score: f64, with_scores: bool) {
    if with_scores && out.resp3 {
        out.array(2);
    }
    reply_member(out, member);
    if with_scores {
        reply_score(out, score);
    }
}

/// Removes a key whose sorted set has become empty (Valkey never keeps
/// one); returns whether it did.
fn delete_if_empty(ctx: &mut Ctx, key: &[u8]) -> bool {
    let now = ctx.now_ms;
    let empty = matches!(ctx.db().get(key, now), Some(Entry { value: Value::ZSet(z), .. }) if z.is_empty());
    if empty {
        ctx.db().remove(key);
    }
    empty
}

/// Announces that elements left the sorted set at `key` (as `event`), and
/// the key's deletion when that emptied it.
fn notify_removal(ctx: &mut Ctx, key: &[u8], event: &str, key_deleted: bool) {
    notify(ctx, notify::ZSET, event, key);
    if key_deleted {
        notify(ctx, notify::GENERIC, "del", key);
    }
}

/// A score range bound: "(" makes it exclusive; the number is read
/// leniently (blanks before it, overflow to inf and "" pass; NaN does not).
fn parse_score_bound(arg: &[u8]) -> Option<(f64, bool)> {
    match arg.split_first() {
        Some((b'(', rest)) => double::parse_lenient(rest).map(|v| (v, true)),
        _ => double::parse_lenient(arg).map(|v| (v, false)),
    }
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, CmdError> {
    let (Some((min, min_exclusive)), Some((max, max_exclusive))) = (parse_score_bound(min), parse_score_bound(max))
    else {
        return Err(SCORE_RANGE.into());
    };
    Ok(ScoreRange { min, max, min_exclusive, max_exclusive })
}

/// A member range bound: "-", "+", "(member" or "[member".
fn parse_lex_bound(arg: &[u8]) -> Option<(LexBound, bool)> {
    // "+" and "-" are read as C strings: anything after a NUL is ignored.
    let alone = arg.get(1).is_none_or(|&c| c == 0);
    match arg.first()? {
        b'+' if alone => Some((LexBound::Highest, true)),
        b'-' if alone => Some((LexBound::Lowest, true)),
        b'(' => Some((LexBound::Member(arg[1..].to_vec()), true)),
        b'[' => Some((LexBound::Member(arg[1..].to_vec()), false)),
        _ => None,
    }
}

fn parse_lex_range(min: &[u8], max: &[u8]) -> Result<LexRange, CmdError> {
    let (Some((min, min_exclusive)), Some((max, max_exclusive))) = (parse_lex_bound(min), parse_lex_bound(max)) else {
        return Err(LEX_RANGE.into());
    };
    Ok(LexRange { min, max, min_exclusive, max_exclusive })
}

// ---------------------------------------------------------------------------
// ZADD, ZINCRBY, ZREM
// ---------------------------------------------------------------------------

pub(crate) fn zadd(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    add_generic(ctx, args, false)
}

/// ZINCRBY shares ZADD's parsing, options included (so "ZINCRBY k nx m"
/// is a syntax error, not a bad increment).
fn zincrby(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    add_generic(ctx, args, true)
}

fn add_generic(ctx: &mut Ctx, args: &[&[u8]], incr: bool) -> CmdResult {
    let mut flags = AddFlags { incr, ..AddFlags::default() };
    let mut ch = false;
    let mut first = 2;
    while first < args.len() {
        let opt = args[first];
        if is(opt, "nx") {
            flags.nx = true;
        } else if is(opt, "xx") {
            flags.xx = true;
        } else if is(opt, "ch") {
            ch = true;
        } else if is(opt, "incr") {
            flags.incr = true;
        } else if is(opt, "gt") {
            flags.gt = true;
        } else if is(opt, "lt") {
            flags.lt = true;
        } else {
            break;
        }
        first += 1;
    }
    let pairs = &args[first..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(errors::SYNTAX.into());
    }
    if flags.nx && flags.xx {
        return Err("ERR XX and NX options at the same time are not compatible".into());
    }
    if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
        return Err("ERR GT, LT, and/or NX options at the same time are not compatible".into());
    }
    if flags.incr && pairs.len() > 2 {
        return Err("ERR INCR option supports a single increment-element pair".into());
    }
    // Every score is checked before anything changes.
    let scores = pairs
        .chunks(2)
        .map(|pair| double::parse(pair[0]).ok_or(CmdError::from(errors::NOT_FLOAT)))
        .collect::<Result<Vec<f64>, CmdError>>()?;
    let longest = pairs.chunks(2).map(|pair| pair[1].len()).max().unwrap_or(0);
    let limits = limits(ctx);
    let lru = ctx.lru_now();
    let key = args[1];
    let mut created = None;
    let (entry, out) = ctx.lookup(key, Lookup::Write);
    let zset = match zset_of(entry)? {
        Some(z) => {
            z.prepare_for(scores.len(), longest, limits);
            z
        }
        None if flags.xx => {
            // Nothing can be added to a key that does not exist.
            if flags.incr {
                out.null();
            } else {
                out.int(0);
            }
            return Ok(());
        }
        None => created.insert(ZSet::with_hints(scores.len(), longest, limits)),
    };
    let (mut added, mut updated) = (0, 0);
    // The score of the last member ZADD got to (not the NX/XX/GT/LT skipped).
    let mut last = None;
    for (pair, &score) in pairs.chunks(2).zip(&scores) {
        // NaN only comes from incrementing a member that exists (INCR takes
        // a single pair), so stopping here leaves nothing half done.
        match zset.add(score, pair[1], flags, limits).map_err(|_| CmdError::from(NOT_A_NUMBER))? {
            Added::New(s) => {
                added += 1;
                last = Some(s);
            }
            Added::Updated(s) => {
                updated += 1;
                last = Some(s);
            }
            Added::Unchanged(s) => last = Some(s),
            Added::Skipped => {}
        }
    }
    match last {
        _ if !flags.incr => out.int(if ch { added + updated } else { added }),
        Some(score) => reply_score(out, score),
        None => out.null(),
    }
    if let Some(z) = created.filter(|z| !z.is_empty()) {
        ctx.db().set(key, Value::ZSet(z), lru);
        notify::new_key(ctx, key);
    }
    ctx.dirty((added + updated) as u64);
    if added + updated > 0 {
        notify(ctx, notify::ZSET, if flags.incr { "zincr" } else { "zadd" }, key);
    }
    Ok(())
}

fn zrem(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (entry, out) = ctx.lookup(key, Lookup::Write);
    let Some(zset) = zset_of(entry)? else {
        out.int(0);
        return Ok(());
    };
    let mut deleted = 0;
    for member in &args[2..] {
        if zset.remove(member) {
            deleted += 1;
        }
        if zset.is_empty() {
            break;
        }
    }
    out.int(deleted);
    let key_deleted = delete_if_empty(ctx, key);
    ctx.dirty(deleted as u64);
    if deleted > 0 {
        notify_removal(ctx, key, "zrem", key_deleted);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Reading members: ZCARD, ZSCORE, ZMSCORE, ZRANK, ZCOUNT, ZLEXCOUNT
// ---------------------------------------------------------------------------

fn zcard(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let len = zset_of(entry)?.map_or(0, |z| z.len());
    out.int(len as i64);
    Ok(())
}

fn zscore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    match zset_of(entry)?.and_then(|z| z.score(args[2])) {
        Some(score) => reply_score(out, score),
        None => out.null(),
    }
    Ok(())
}

fn zmscore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let zset = zset_of(entry)?;
    out.array(args.len() - 2);
    for member in &args[2..] {
        match zset.as_ref().and_then(|z| z.score(member)) {
            Some(score) => reply_score(out, score),
            None => out.null(),
        }
    }
    Ok(())
}

fn zrank(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    rank_generic(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    rank_generic(ctx, args, true)
}

fn rank_generic(ctx: &mut Ctx, args: &[&[u8]], reverse: bool) -> CmdResult {
    if args.len() > 4 {
        return Err(arity_error(if reverse { "zrevrank" } else { "zrank" }));
    }
    let with_score = match args.get(3) {
        None => false,
        Some(opt) if is(opt, "withscore") => true,
        Some(_) => return Err(errors::SYNTAX.into()),
    };
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let found = match zset_of(entry)? {
        Some(z) => z.rank(args[2]).map(|(rank, score)| (if reverse { z.len() - 1 - rank } else { rank }, score)),
        None => None,
    };
    match found {
        Some((rank, score)) => {
            if with_score {
                out.array(2);
            }
            out.int(rank as i64);
            if with_score {
                reply_score(out, score);
            }
        }
        None if with_score => out.null_array(),
        None => out.null(),
    }
    Ok(())
}

fn zcount(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let range = parse_score_range(args[2], args[3])?;
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let count = zset_of(entry)?.map_or(0, |z| z.count_in(Range::Score(&range)));
    out.int(count as i64);
    Ok(())
}

fn zlexcount(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let range = parse_lex_range(args[2], args[3])?;
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let count = zset_of(entry)?.map_or(0, |z| z.count_in(Range::Lex(&range)));
    out.int(count as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// ZRANGE and its variants
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RangeKind {
    /// ZRANGE decides from its options.
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Direction {
    Auto,
    Forward,
    Reverse,
}

/// A parsed range request.
enum Selection {
    Ranks(i64, i64),
    Scores(ScoreRange),
    Members(LexRange),
}

fn zrange(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, args, 1, None, RangeKind::Auto, Direction::Auto)
}

fn zrangestore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, args, 2, Some(args[1]), RangeKind::Auto, Direction::Auto)
}

fn zrevrange(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, args, 1, None, RangeKind::Rank, Direction::Reverse)
}

fn zrangebyscore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, args, 1, None, RangeKind::Score, Direction::Forward)
}

fn zrevrangebyscore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, args, 1, None, RangeKind::Score, Direction::Reverse)
}

fn zrangebylex(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, args, 1, None, RangeKind::Lex, Direction::Forward)
}

fn zrevrangebylex(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, args, 1, None, RangeKind::Lex, Direction::Reverse)
}

/// ZRANGE, ZRANGESTORE and the older Z[REV]RANGE[BYSCORE|BYLEX]: `source`
/// is the index of the source key, followed by the two range ends and the
/// options; `destination` is ZRANGESTORE's key.
fn range_generic(
    ctx: &mut Ctx,
    args: &[&[u8]],
    source: usize,
    destination: Option<&[u8]>,
    mut kind: RangeKind,
    mut direction: Direction,
) -> CmdResult {
    let store = destination.is_some();
    let mut with_scores = false;
    let mut offset = 0i64;
    let mut limit = -1i64;
    let mut j = source + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let opt = args[j];
        if !store && is(opt, "withscores") {
            with_scores = true;
        } else if is(opt, "limit") && left >= 2 {
            offset = parse_long(args[j + 1])?;
            limit = parse_long(args[j + 2])?;
            j += 2;
        } else if direction == Direction::Auto && is(opt, "rev") {
            direction = Direction::Reverse;
        } else if kind == RangeKind::Auto && is(opt, "bylex") {
            kind = RangeKind::Lex;
        } else if kind == RangeKind::Auto && is(opt, "byscore") {
            kind = RangeKind::Score;
        } else {
            return Err(errors::SYNTAX.into());
        }
        j += 1;
    }
    let reverse = direction == Direction::Reverse;
    if kind == RangeKind::Auto {
        kind = RangeKind::Rank;
    }
    if limit != -1 && kind == RangeKind::Rank {
        return Err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX".into());
    }
    if with_scores && kind == RangeKind::Lex {
        return Err("ERR syntax error, WITHSCORES not supported in combination with BYLEX".into());
    }
    let (mut low, mut high) = (args[source + 1], args[source + 2]);
    if reverse && kind != RangeKind::Rank {
        // Score and member ranges are written max first when reversed.
        std::mem::swap(&mut low, &mut high);
    }
    let selection = match kind {
        RangeKind::Score => Selection::Scores(parse_score_range(low, high)?),
        RangeKind::Lex => Selection::Members(parse_lex_range(low, high)?),
        _ => Selection::Ranks(parse_long(low)?, parse_long(high)?),
    };
    let (entry, out) = ctx.lookup(args[source], Lookup::Read);
    let zset = zset_of(entry)?;
    let Some(destination) = destination else {
        let Some(zset) = zset else {
            out.array(0);
            return Ok(());
        };
        let elements = select(zset, &selection, reverse, offset, limit);
        elements_header(out, elements.len(), with_scores);
        for (member, score) in elements {
            reply_element(out, member, score, with_scores);
        }
        return Ok(());
    };
    let mut elements: Vec<(Vec<u8>, f64)> = match zset {
        Some(z) => select(z, &selection, reverse, offset, limit).into_iter().map(|(m, s)| (m.to_vec(), s)).collect(),
        None => Vec::new(),
    };
    if reverse {
        elements.reverse();
    }
    store_result(ctx, destination, elements, "zrangestore");
    Ok(())
}

/// The elements a range request selects, in reply order.
fn select<'z>(zset: &'z ZSet, selection: &Selection, reverse: bool, offset: i64, limit: i64) -> Vec<(Item<'z>, f64)> {
    let len = zset.len() as i64;
    let (range, start) = match selection {
        Selection::Ranks(start, end) => {
            let mut start = if *start < 0 { start + len } else { *start };
            let end = if *end < 0 { end + len } else { *end };
            start = start.max(0);
            if start > end || start >= len {
                return Vec::new();
            }
            let count = (end.min(len - 1) - start + 1) as usize;
            let first = (if reverse { len - 1 - start } else { start }) as usize;
            return zset.iter_from(first, reverse).take(count).collect();
        }
        Selection::Scores(r) => (Range::Score(r), zset.range_start(Range::Score(r), offset, reverse)),
        Selection::Members(r) => (Range::Lex(r), zset.range_start(Range::Lex(r), offset, reverse)),
    };
    let Some(start) = start else { return Vec::new() };
    // A negative count means no limit.
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    zset.iter_from(start, reverse)
        .take(take)
        .take_while(|(m, s)| if reverse { range.above_min(*m, *s) } else { range.below_max(*m, *s) })
        .collect()
}

/// Stores a computed result (sorted by score and member) at `destination`
/// (announced as `event`) and answers its size; an empty result deletes
/// the destination.
fn store_result(ctx: &mut Ctx, destination: &[u8], elements: Vec<(Vec<u8>, f64)>, event: &str) {
    let count = elements.len();
    if count == 0 {
        ctx.out.int(0);
        if ctx.db().remove(destination).is_some() {
            ctx.dirty(1);
            notify(ctx, notify::GENERIC, "del", destination);
        }
        return;
    }
    let zset = ZSet::from_sorted(elements, limits(ctx));
    let lru = ctx.lru_now();
    let existed = ctx.lookup(destination, Lookup::Write).0.is_some();
    ctx.db().set(destination, Value::ZSet(zset), lru);
    ctx.out.int(count as i64);
    ctx.dirty(1);
    if !existed {
        notify::new_key(ctx, destination);
    }
    notify(ctx, notify::ZSET, event, destination);
}

// ---------------------------------------------------------------------------
// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX
// ---------------------------------------------------------------------------

fn zremrangebyrank(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let selection = Selection::Ranks(parse_long(args[2])?, parse_long(args[3])?);
    remove_range(ctx, args[1], selection, "zremrangebyrank")
}

fn zremrangebyscore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let selection = Selection::Scores(parse_score_range(args[2], args[3])?);
    remove_range(ctx, args[1], selection, "zremrangebyscore")
}

fn zremrangebylex(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let selection = Selection::Members(parse_lex_range(args[2], args[3])?);
    remove_range(ctx, args[1], selection, "zremrangebylex")
}

fn remove_range(ctx: &mut Ctx, key: &[u8], selection: Selection, event: &str) -> CmdResult {
    let (entry, out) = ctx.lookup(key, Lookup::Write);
    let Some(zset) = zset_of(entry)? else {
        out.int(0);
        return Ok(());
    };
    let deleted = match &selection {
        Selection::Ranks(start, end) => {
            let len = zset.len() as i64;
            let mut start = if *start < 0 { start + len } else { *start };
            let end = if *end < 0 { end + len } else { *end };
            start = start.max(0);
            if start > end || start >= len {
                out.int(0);
                return Ok(());
            }
            zset.remove_ranks(start as usize, end.min(len - 1) as usize + 1)
        }
        Selection::Scores(r) => zset.remove_in(Range::Score(r)),
        Selection::Members(r) => zset.remove_in(Range::Lex(r)),
    };
    out.int(deleted as i64);
    let key_deleted = delete_if_empty(ctx, key);
    ctx.dirty(deleted as u64);
    if deleted > 0 {
        notify_removal(ctx, key, event, key_deleted);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Pops: ZPOPMIN, ZPOPMAX, ZMPOP and their blocking forms
// ---------------------------------------------------------------------------

/// How a pop lays out its reply.
#[derive(Clone, Copy)]
enum PopReply {
    /// ZPOPMIN/ZPOPMAX: a flat member, score, ... array; pairs nested in
    /// RESP3 when a count was given.
    Plain { nested: bool },
    /// BZPOPMIN/BZPOPMAX: key, member, score.
    WithKey,
    /// ZMPOP/BZMPOP: key, then an array of [member, score] pairs.
    KeyAndPairs,
}

/// Pops up to `count` elements from the first key that exists, lowest
/// scores first (highest with `highest`). Answers an empty array (null for
/// ZMPOP) when no key exists; WRONGTYPE if the first existing key is not a
/// sorted set.
fn pop_first(ctx: &mut Ctx, keys: &[&[u8]], highest: bool, count: Option<u64>, shape: PopReply) -> CmdResult {
    let mut found = None;
    for key in keys {
        if let Some(entry) = ctx.lookup(key, Lookup::Write).0 {
            if !matches!(entry.value, Value::ZSet(_)) {
                return Err(wrong_type());
            }
            found = Some(*key);
            break;
        }
    }
    let Some(key) = found else {
        match shape {
            PopReply::KeyAndPairs => ctx.out.null_array(),
            _ => ctx.out.array(0),
        }
        return Ok(());
    };
    pop_from(ctx, key, highest, count, shape);
    Ok(())
}

/// Pops from a key known to hold a non-empty sorted set.
fn pop_from(ctx: &mut Ctx, key: &[u8], highest: bool, count: Option<u64>, shape: PopReply) {
    let (entry, out) = ctx.lookup(key, Lookup::Write);
    let Ok(Some(zset)) = zset_of(entry) else { return };
    if count == Some(0) {
        out.array(0);
        return;
    }
    let wanted = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    let n = wanted.min(zset.len());
    match shape {
        PopReply::Plain { nested: false } => out.array(n * 2),
        PopReply::Plain { nested: true } => out.array(n),
        PopReply::WithKey => {
            out.array(n * 2 + 1);
            out.bulk(key);
        }
        PopReply::KeyAndPairs => {
            out.array(2);
            out.bulk(key);
            out.array(n);
        }
    }
    let nested = matches!(shape, PopReply::Plain { nested: true } | PopReply::KeyAndPairs);
    for _ in 0..n {
        let Some((member, score)) = zset.pop(highest) else { break };
        if nested {
            out.array(2);
        }
        out.bulk(&member);
        reply_score(out, score);
    }
    let key_deleted = delete_if_empty(ctx, key);
    ctx.dirty(n as u64);
    // The blocking and multi-key forms are journalled as the ZPOPMIN or
    // ZPOPMAX they amount to.
    let journalled: &[u8] = if highest { b"ZPOPMAX" } else { b"ZPOPMIN" };
    match shape {
        PopReply::WithKey => ctx.srv.effects.journal_instead(&[journalled, key]),
        PopReply::KeyAndPairs => ctx.srv.effects.journal_instead(&[journalled, key, n.to_string().as_bytes()]),
        PopReply::Plain { .. } => {}
    }
    if n > 0 {
        notify_removal(ctx, key, if highest { "zpopmax" } else { "zpopmin" }, key_deleted);
    }
}

fn zpopmin(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    pop_command(ctx, args, false)
}

fn zpopmax(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    pop_command(ctx, args, true)
}

fn pop_command(ctx: &mut Ctx, args: &[&[u8]], highest: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(errors::SYNTAX.into());
    }
    let count = match args.get(2) {
        Some(arg) => Some(parse_long_in(arg, 0, i64::MAX, MUST_BE_POSITIVE)? as u64),
        None => None,
    };
    let nested = ctx.out.resp3 && count.is_some();
    pop_first(ctx, &args[1..2], highest, count, PopReply::Plain { nested })
}

fn bzpopmin(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    blocking_pop(ctx, &args[1..args.len() - 1], args[args.len() - 1], false, None, PopReply::WithKey)
}

fn bzpopmax(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    blocking_pop(ctx, &args[1..args.len() - 1], args[args.len() - 1], true, None, PopReply::WithKey)
}

/// Pops from the first key holding a non-empty sorted set, or parks the
/// client on all the keys until one is written (or answers the timeout
/// reply at once where blocking is not allowed: MULTI, scripts).
fn blocking_pop(
    ctx: &mut Ctx,
    keys: &[&[u8]],
    timeout: &[u8],
    highest: bool,
    count: Option<u64>,
    shape: PopReply,
) -> CmdResult {
    let timeout: Option<Duration> = parse_timeout(timeout)?;
    for key in keys {
        let Some(zset) = zset_of(ctx.lookup(key, Lookup::Write).0)? else { continue };
        if zset.is_empty() {
            continue;
        }
        pop_from(ctx, key, highest, count, shape);
        return Ok(());
    }
    if !ctx.may_block() {
        ctx.out.null_array();
        return Ok(());
    }
    ctx.block(keys, timeout, TimeoutReply::NullArray);
    Ok(())
}

fn zmpop(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (keys, highest, count) = parse_mpop(args, 1)?;
    pop_first(ctx, keys, highest, Some(count), PopReply::KeyAndPairs)
}

fn bzmpop(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (keys, highest, count) = parse_mpop(args, 2)?;
    blocking_pop(ctx, keys, args[1], highest, Some(count), PopReply::KeyAndPairs)
}

/// `numkeys key [key ...] MIN|MAX [COUNT count]` from `numkeys_at` on:
/// the keys, whether MAX was asked, and the count (1 by default).
fn parse_mpop<'a>(args: &'a [&'a [u8]], numkeys_at: usize) -> Result<(&'a [&'a [u8]], bool, u64), CmdError> {
    let numkeys = parse_long_in(args[numkeys_at], 1, i64::MAX, "ERR numkeys should be greater than 0")?;
    let where_at = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(numkeys_at + 1))
        .filter(|&w| w < args.len())
        .ok_or(CmdError::from(errors::SYNTAX))?;
    let highest = if is(args[where_at], "min") {
        false
    } else if is(args[where_at], "max") {
        true
    } else {
        return Err(errors::SYNTAX.into());
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if count.is_none() && is(args[j], "count") && more > 0 {
            j += 1;
            count = Some(parse_long_in(args[j], 1, i64::MAX, "ERR count should be greater than 0")? as u64);
        } else {
            return Err(errors::SYNTAX.into());
        }
        j += 1;
    }
    Ok((&args[numkeys_at + 1..where_at], highest, count.unwrap_or(1)))
}

// ---------------------------------------------------------------------------
// ZRANDMEMBER
// ---------------------------------------------------------------------------

fn zrandmember(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut rng = SmallRng::seed_from_u64(ctx.srv.rng.gen());
    if args.len() < 3 {
        let (entry, out) = ctx.lookup(args[1], Lookup::Read);
        match zset_of(entry)?.and_then(|z| z.random(&mut rng)) {
            Some((member, _)) => reply_member(out, member),
            None => out.null(),
        }
        return Ok(());
    }
    let count = parse_long(args[2])?;
    if count == i64::MIN {
        return Err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807".into());
    }
    let with_scores = match args.len() {
        3 => false,
        4 if is(args[3], "withscores") => true,
        _ => return Err(errors::SYNTAX.into()),
    };
    if with_scores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err("ERR value is out of range".into());
    }
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let Some(zset) = zset_of(entry)? else {
        out.array(0);
        return Ok(());
    };
    random_members(out, zset, count, with_scores, &mut rng);
    Ok(())
}

/// ZRANDMEMBER with a count: repeats allowed for a negative count, else up
/// to `count` distinct members, picked the ways Valkey picks them (which
/// decide the order they come in).
fn random_members(out: &mut Reply, zset: &ZSet, count: i64, with_scores: bool, rng: &mut SmallRng) {
    let size = zset.len();
    let wanted = count.unsigned_abs();
    if wanted == 0 {
        out.array(0);
        return;
    }
    if count < 0 || wanted == 1 {
        let wanted = usize::try_from(wanted).unwrap_or(usize::MAX);
        elements_header(out, wanted, with_scores);
        for _ in 0..wanted {
            if let Some((member, score)) = zset.random(rng) {
                reply_element(out, member, score, with_scores);
            }
        }
        return;
    }
    if wanted >= size as u64 {
        // The whole set, walked from the highest element down.
        elements_header(out, size, with_scores);
        for (member, score) in zset.iter_from(size - 1, true) {
            reply_element(out, member, score, with_scores);
        }
        return;
    }
    let wanted = wanted as usize;
    elements_header(out, wanted, with_scores);
    let positions: Vec<usize> = if !zset.is_big() {
        // A listpack: distinct positions, in listpack order.
        let mut picked = rand::seq::index::sample(rng, size, wanted).into_vec();
        picked.sort_unstable();
        picked
    } else if wanted * 3 > size {
        // Many of them: drop random ones from the whole set.
        let mut all: Vec<usize> = (0..size).collect();
        while all.len() > wanted {
            let drop = rng.gen_range(0..all.len());
            all.swap_remove(drop);
        }
        all
    } else {
        // Few of them: pick at random until enough are distinct.
        let mut seen = std::collections::HashSet::with_capacity(wanted);
        let mut picked = Vec::with_capacity(wanted);
        while picked.len() < wanted {
            let p = rng.gen_range(0..size);
            if seen.insert(p) {
                picked.push(p);
            }
        }
        picked
    };
    for p in positions {
        if let Some((member, score)) = zset.at_position(p) {
            reply_element(out, member, score, with_scores);
        }
    }
}

// ---------------------------------------------------------------------------
// ZSCAN
// ---------------------------------------------------------------------------

fn zscan(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let cursor = parse_scan_cursor(args[2]).ok_or(CmdError::from("ERR invalid cursor"))?;
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let Some(zset) = zset_of(entry)? else {
        out.array(2);
        out.bulk(b"0");
        out.array(0);
        return Ok(());
    };
    let options = parse_scan_options(args, 3, ScanTarget::SortedSet)?;
    let (count, pattern, no_scores) = (options.count, options.pattern, options.no_scores);
    let matches = |member: &[u8]| pattern.is_none_or(|p| glob_match(p, member, false));
    let mut found: Vec<Vec<u8>> = Vec::new();
    let next_cursor = if let Some(lp) = zset.as_listpack() {
        // A listpack is returned whole, scores as they are stored.
        let mut items = lp.iter().map(|(_, item)| item);
        while let (Some(member), Some(score)) = (items.next(), items.next()) {
            let member = member.to_vec();
            if matches(&member) {
                found.push(member);
                if !no_scores {
                    found.push(score.to_vec());
                }
            }
        }
        0
    } else {
        // Arena positions from the top down: a removal only moves the last
        // element into a lower slot, so whatever stays is seen.
        let len = zset.len() as u64;
        let mut position = if cursor == 0 || cursor > len { len } else { cursor };
        let mut budget = count;
        while position > 0 && budget > 0 {
            position -= 1;
            budget -= 1;
            if let Some((member, score)) = zset.at_position(position as usize) {
                let member = member.to_vec();
                if matches(&member) {
                    found.push(member);
                    if !no_scores {
                        found.push(double::format_g17(score).as_bytes().to_vec());
                    }
                }
            }
        }
        position
    };
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next_cursor).as_bytes());
    out.bulk_array(found.iter().map(|f| f.as_slice()));
    Ok(())
}

// ---------------------------------------------------------------------------
// ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn apply(self, target: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *target += value;
                // inf + -inf is taken as 0, not NaN.
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            Aggregate::Min => {
                if value < *target {
                    *target = value;
                }
            }
            Aggregate::Max => {
                if value > *target {
                    *target = value;
                }
            }
        }
    }
}

fn zunion(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_op_generic(ctx, args, None, 1, SetOp::Union, false)
}

fn zinter(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_op_generic(ctx, args, None, 1, SetOp::Inter, false)
}

fn zdiff(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_op_generic(ctx, args, None, 1, SetOp::Diff, false)
}

fn zunionstore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_op_generic(ctx, args, Some(args[1]), 2, SetOp::Union, false)
}

fn zinterstore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_op_generic(ctx, args, Some(args[1]), 2, SetOp::Inter, false)
}

fn zdiffstore(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_op_generic(ctx, args, Some(args[1]), 2, SetOp::Diff, false)
}

fn zintercard(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_op_generic(ctx, args, None, 1, SetOp::Inter, true)
}

/// An input of a set operation: a sorted set, a set (every member scoring
/// 1), or nothing (a missing key, an empty input).
#[derive(Clone, Copy)]
enum Input<'a> {
    Missing,
    Sorted(&'a ZSet),
    Plain(&'a crate::types::set::Set),
}

impl<'a> Input<'a> {
    fn len(&self) -> usize {
        match self {
            Input::Missing => 0,
            Input::Sorted(z) => z.len(),
            Input::Plain(s) => s.len(),
        }
    }

    /// Every member with its score; sorted sets from the highest element
    /// down, as Valkey walks them (the order sums are made in).
    fn elements(&self) -> Vec<(Item<'a>, f64)> {
        match *self {
            Input::Missing => Vec::new(),
            Input::Sorted(z) => match z.len() {
                0 => Vec::new(),
                n => z.iter_from(n - 1, true).collect(),
            },
            Input::Plain(s) => s.iter().map(|m| (m, 1.0)).collect(),
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            Input::Missing => None,
            Input::Sorted(z) => z.score(member),
            Input::Plain(s) => s.contains(member).then_some(1.0),
        }
    }
}

fn set_op_generic(
    ctx: &mut Ctx,
    args: &[&[u8]],
    destination: Option<&[u8]>,
    numkeys_at: usize,
    op: SetOp,
    cardinality_only: bool,
) -> CmdResult {
    let numkeys = parse_long(args[numkeys_at])?;
    if numkeys < 1 {
        let name = String::from_utf8_lossy(args[0]).to_ascii_lowercase();
        return Err(format!("ERR at least 1 input key is needed for '{name}' command").into());
    }
    let first_key = numkeys_at + 1;
    let numkeys = usize::try_from(numkeys).ok().filter(|&n| n <= args.len() - first_key);
    let Some(numkeys) = numkeys else { return Err(errors::SYNTAX.into()) };
    let keys = &args[first_key..first_key + numkeys];
    // Keys are looked up (and their types checked) before the options are read.
    for key in keys {
        if let Some(entry) = ctx.lookup(key, Lookup::Read).0 {
            if !matches!(entry.value, Value::ZSet(_) | Value::Set(_)) {
                return Err(wrong_type());
            }
        }
    }
    let mut weights = vec![1.0f64; numkeys];
    let mut aggregate = Aggregate::Sum;
    let mut with_scores = false;
    let mut limit = 0u64;
    let mut j = first_key + numkeys;
    while j < args.len() {
        let remaining = args.len() - j;
        let opt = args[j];
        if op != SetOp::Diff && !cardinality_only && remaining > numkeys && is(opt, "weights") {
            for (i, weight) in weights.iter_mut().enumerate() {
                *weight = double::parse(args[j + 1 + i]).ok_or(CmdError::from("ERR weight value is not a float"))?;
            }
            j += 1 + numkeys;
        } else if op != SetOp::Diff && !cardinality_only && remaining >= 2 && is(opt, "aggregate") {
            let how = args[j + 1];
            aggregate = if is(how, "sum") {
                Aggregate::Sum
            } else if is(how, "min") {
                Aggregate::Min
            } else if is(how, "max") {
                Aggregate::Max
            } else {
                return Err(errors::SYNTAX.into());
            };
            j += 2;
        } else if destination.is_none() && !cardinality_only && is(opt, "withscores") {
            with_scores = true;
            j += 1;
        } else if cardinality_only && remaining >= 2 && is(opt, "limit") {
            limit = parse_long_in(args[j + 1], 0, i64::MAX, "ERR LIMIT can't be negative")? as u64;
            j += 2;
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let db = &*db;
    let mut inputs: Vec<(Input, f64)> = keys
        .iter()
        .zip(weights)
        .map(|(key, weight)| {
            let input = match db.peek(key).filter(|e| !e.is_expired(now)).map(|e| &e.value) {
                Some(Value::ZSet(z)) => Input::Sorted(z),
                Some(Value::Set(s)) => Input::Plain(s),
                _ => Input::Missing,
            };
            (input, weight)
        })
        .collect();
    if op != SetOp::Diff {
        // Smallest inputs first (a stable sort, as Valkey's qsort is for so few).
        inputs.sort_by_key(|(input, _)| input.len());
    }
    let result: Vec<(Vec<u8>, f64)> = match op {
        SetOp::Inter if cardinality_only => {
            out.int(intersection_size(&inputs, limit) as i64);
            return Ok(());
        }
        SetOp::Inter => intersection(&inputs, aggregate),
        SetOp::Union => union(&inputs, aggregate),
        SetOp::Diff => difference(&inputs),
    };
    let mut result = result;
    result.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.0.cmp(&b.0)));
    match destination {
        Some(destination) => {
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                SetOp::Diff => "zdiffstore",
            };
            store_result(ctx, destination, result, event);
        }
        None => {
            let out = &mut *ctx.out;
            elements_header(out, result.len(), with_scores);
            for (member, score) in &result {
                reply_element(out, Item::Str(member), *score, with_scores);
            }
        }
    }
    Ok(())
}

/// A weighted score, where 0 × inf counts as 0.
fn weighted(score: f64, weight: f64) -> f64 {
    let product = score * weight;
    if product.is_nan() {
        0.0
    } else {
        product
    }
}

fn intersection(inputs: &[(Input, f64)], aggregate: Aggregate) -> Vec<(Vec<u8>, f64)> {
    let Some(((smallest, weight), others)) = inputs.split_first() else { return Vec::new() };
    let mut result = Vec::new();
    for (member, score) in smallest.elements() {
        let bytes = member.to_vec();
        let mut total = weighted(score, *weight);
        let in_all = others.iter().all(|(input, w)| match input.score(&bytes) {
            Some(s) => {
                aggregate.apply(&mut total, s * w);
                true
            }
            None => false,
        });
        if in_all {
            result.push((bytes, total));
        }
    }
    result
}

fn intersection_size(inputs: &[(Input, f64)], limit: u64) -> u64 {
    let Some(((smallest, _), others)) = inputs.split_first() else { return 0 };
    let mut count = 0;
    for (member, _) in smallest.elements() {
        let in_all = member.with_bytes(|m| others.iter().all(|(input, _)| input.score(m).is_some()));
        if in_all {
            count += 1;
            if limit > 0 && count >= limit {
                break;
            }
        }
    }
    count
}

fn union(inputs: &[(Input, f64)], aggregate: Aggregate) -> Vec<(Vec<u8>, f64)> {
    let mut positions: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut result: Vec<(Vec<u8>, f64)> = Vec::new();
    for (input, weight) in inputs {
        for (member, score) in input.elements() {
            let score = weighted(score, *weight);
            let bytes = member.to_vec();
            match positions.get(&bytes) {
                Some(&at) => aggregate.apply(&mut result[at].1, score),
                None => {
                    positions.insert(bytes.clone(), result.len());
                    result.push((bytes, score));
                }
            }
        }
    }
    result
}

fn difference(inputs: &[(Input, f64)]) -> Vec<(Vec<u8>, f64)> {
    let Some(((first, _), others)) = inputs.split_first() else { return Vec::new() };
    first
        .elements()
        .into_iter()
        .map(|(member, score)| (member.to_vec(), score))
        .filter(|(member, _)| others.iter().all(|(input, _)| input.score(member).is_none()))
        .collect()
}
