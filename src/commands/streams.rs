//! Streams: XADD, XRANGE, XREAD, consumer groups and their pending entries.
//!
//! Replies, error texts and the order in which arguments are checked follow
//! Valkey 8.0.1's t_stream.c. Stream ids are parsed the way Valkey reads
//! them, as C strings: up to a NUL byte, with `strtoull`'s leniency as a
//! fallback (leading blanks, a sign).

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use ferrokey_formats::listpack::Item;
use ferrokey_formats::resp::parse_i64;

use crate::blocking::{BlockRequest, TimeoutReply};
use crate::command::{arity_error, errors, CmdError, CmdResult, Ctx, Handler, Lookup};
use crate::notify::{self, notify};
use crate::reply::Reply;
use crate::types::stream::{
    next_id, prev_id, ConsumerGroup, Entries, EntryRef, NodeLimits, Stream, StreamId, Trim, MAX_ENTRY_BYTES, MAX_ID,
    MIN_ID, UNKNOWN_ENTRIES_READ,
};
use crate::value::Value;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("xadd", xadd),
    ("xlen", xlen),
    ("xrange", xrange),
    ("xrevrange", xrevrange),
    ("xdel", xdel),
    ("xtrim", xtrim),
    ("xsetid", xsetid),
    ("xread", xread),
    ("xreadgroup", xreadgroup),
    ("xack", xack),
    ("xpending", xpending),
    ("xclaim", xclaim),
    ("xautoclaim", xautoclaim),
    ("xgroup|create", xgroup),
    ("xgroup|setid", xgroup),
    ("xgroup|destroy", xgroup),
    ("xgroup|createconsumer", xgroup),
    ("xgroup|delconsumer", xgroup),
    ("xgroup|help", xgroup_help),
    ("xinfo|stream", xinfo),
    ("xinfo|groups", xinfo),
    ("xinfo|consumers", xinfo),
    ("xinfo|help", xinfo_help),
];

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const NO_SUCH_KEY_FOR_XGROUP: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";

// ---------------------------------------------------------------------------
// Argument parsing
// ---------------------------------------------------------------------------

/// An argument as Valkey's C code reads it: up to its first NUL byte.
fn c_str(arg: &[u8]) -> &[u8] {
    arg.iter().position(|&c| c == 0).map_or(arg, |nul| &arg[..nul])
}

/// Whether an option argument names `name` (case-insensitively, as C's
/// `strcasecmp` compares it).
fn is_opt(arg: &[u8], name: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(name.as_bytes())
}

fn parse_integer(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64(arg).ok_or_else(|| errors::NOT_INTEGER.into())
}

/// Valkey's `string2ull`: a strict decimal first; failing that, C's
/// `strtoull`, which skips leading blanks, takes a sign (a minus wraps
/// around) and must consume the whole text.
fn parse_u64(text: &[u8]) -> Option<u64> {
    if let Some(v) = parse_i64(text) {
        return u64::try_from(v).ok();
    }
    let mut rest = text;
    while let [b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r', tail @ ..] = rest {
        rest = tail;
    }
    let negative = rest.first() == Some(&b'-');
    if let [b'+' | b'-', tail @ ..] = rest {
        rest = tail;
    }
    if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: u64 = 0;
    for &digit in rest {
        value = value.checked_mul(10)?.checked_add((digit - b'0') as u64)?;
    }
    Some(if negative { value.wrapping_neg() } else { value })
}

/// How an id argument may be written.
#[derive(Clone, Copy)]
struct IdSyntax {
    /// The sequence number used when the argument gives only milliseconds.
    missing_seq: u64,
    /// Refuse `-` and `+`.
    strict: bool,
    /// Accept `<ms>-*` (XADD).
    seq_wildcard: bool,
}

const STRICT: IdSyntax = IdSyntax { missing_seq: 0, strict: true, seq_wildcard: false };

/// Parses a stream id; the bool is false for XADD's `<ms>-*` form.
fn parse_id_with(arg: &[u8], syntax: IdSyntax) -> Result<(StreamId, bool), CmdError> {
    // Valkey copies the argument into a 128-byte buffer first.
    if arg.len() > 127 {
        return Err(INVALID_ID.into());
    }
    let text = c_str(arg);
    match text {
        b"-" | b"+" if syntax.strict => Err(INVALID_ID.into()),
        b"-" => Ok((MIN_ID, true)),
        b"+" => Ok((MAX_ID, true)),
        _ => {
            let (ms_text, seq_text) = match text.iter().position(|&c| c == b'-') {
                Some(dash) => (&text[..dash], Some(&text[dash + 1..])),
                None => (text, None),
            };
            let ms = parse_u64(ms_text).ok_or(CmdError::from(INVALID_ID))?;
            let (seq, seq_given) = match seq_text {
                Some(b"*") if syntax.seq_wildcard => (0, false),
                Some(seq_text) => (parse_u64(seq_text).ok_or(CmdError::from(INVALID_ID))?, true),
                None => (syntax.missing_seq, true),
            };
            Ok((StreamId::new(ms, seq), seq_given))
        }
    }
}

fn parse_id(arg: &[u8], missing_seq: u64, strict: bool) -> Result<StreamId, CmdError> {
    parse_id_with(arg, IdSyntax { missing_seq, strict, seq_wildcard: false }).map(|(id, _)| id)
}

fn parse_strict_id(arg: &[u8]) -> Result<StreamId, CmdError> {
    parse_id_with(arg, STRICT).map(|(id, _)| id)
}

/// The start of a range: `(` makes it exclusive.
fn parse_range_start(arg: &[u8]) -> Result<StreamId, CmdError> {
    match arg.strip_prefix(b"(").filter(|rest| !rest.is_empty()) {
        Some(rest) => next_id(parse_id(rest, 0, true)?).ok_or_else(|| "ERR invalid start ID for the interval".into()),
        None => parse_id(arg, 0, false),
    }
}

/// The end of a range: `(` makes it exclusive.
fn parse_range_end(arg: &[u8]) -> Result<StreamId, CmdError> {
    match arg.strip_prefix(b"(").filter(|rest| !rest.is_empty()) {
        Some(rest) => {
            prev_id(parse_id(rest, u64::MAX, true)?).ok_or_else(|| "ERR invalid end ID for the interval".into())
        }
        None => parse_id(arg, u64::MAX, false),
    }
}

/// The current node size limits from the configuration.
fn node_limits(ctx: &Ctx) -> NodeLimits {
    let number = |name: &str| crate::commands::server::config_value(ctx.srv, name).parse::<i64>().unwrap_or(0);
    NodeLimits {
        max_bytes: number("stream-node-max-bytes").max(0) as u64,
        max_entries: number("stream-node-max-entries"),
    }
}

// ---------------------------------------------------------------------------
// Lookups and replies
// ---------------------------------------------------------------------------

/// Looks a key up as a stream: None when absent, WRONGTYPE for another type.
fn lookup_stream<'c>(
    ctx: &'c mut Ctx,
    key: &[u8],
    how: Lookup,
) -> Result<(Option<&'c mut Stream>, &'c mut Reply), CmdError> {
    match ctx.lookup(key, how) {
        (None, out) => Ok((None, out)),
        (Some(entry), out) => match &mut entry.value {
            Value::Stream(stream) => Ok((Some(&mut **stream), out)),
            _ => Err(errors::WRONG_TYPE.into()),
        },
    }
}

/// Stores a new stream under `key`.
fn store_stream(ctx: &mut Ctx, key: &[u8], stream: Stream) {
    let now_s = ctx.lru_now();
    ctx.db().set(key, Value::Stream(Box::new(stream)), now_s);
}

fn id_text(id: StreamId) -> Vec<u8> {
    let mut text = Vec::with_capacity(41);
    text.extend_from_slice(itoa::Buffer::new().format(id.ms).as_bytes());
    text.push(b'-');
    text.extend_from_slice(itoa::Buffer::new().format(id.seq).as_bytes());
    text
}

fn reply_id(out: &mut Reply, id: StreamId) {
    let mut text = [0u8; 41];
    let mut ms = itoa::Buffer::new();
    let ms = ms.format(id.ms).as_bytes();
    let mut seq = itoa::Buffer::new();
    let seq = seq.format(id.seq).as_bytes();
    text[..ms.len()].copy_from_slice(ms);
    text[ms.len()] = b'-';
    text[ms.len() + 1..ms.len() + 1 + seq.len()].copy_from_slice(seq);
    out.bulk(&text[..ms.len() + 1 + seq.len()]);
}

fn reply_item(out: &mut Reply, item: Item<'_>) {
    item.with_bytes(|bytes| out.bulk(bytes));
}

/// An entry as `[id, [field, value, ...]]`.
fn reply_entry(out: &mut Reply, entry: &EntryRef<'_>) {
    out.array(2);
    reply_id(out, entry.id);
    out.array(2 * entry.field_count());
    for (field, value) in entry.fields() {
        reply_item(out, field);
        reply_item(out, value);
    }
}

/// An aggregate whose length is known only after its elements are written.
struct Deferred {
    at: usize,
}

impl Deferred {
    fn start(out: &Reply) -> Deferred {
        Deferred { at: out.buf.len() }
    }

    fn finish(self, out: &mut Reply, kind: u8, len: usize) {
        let mut header = Vec::with_capacity(24);
        header.push(kind);
        header.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
        header.extend_from_slice(b"\r\n");
        out.buf.splice(self.at..self.at, header);
    }

    fn finish_array(self, out: &mut Reply, len: usize) {
        self.finish(out, b'*', len);
    }
}

/// Writes the live entries of a range; returns how many (count 0: all).
fn reply_range(out: &mut Reply, entries: &Entries, start: StreamId, end: StreamId, count: usize, rev: bool) -> usize {
    let deferred = Deferred::start(out);
    let mut written = 0;
    for entry in entries.range(start, end, rev) {
        reply_entry(out, &entry);
        written += 1;
        if written == count {
            break;
        }
    }
    deferred.finish_array(out, written);
    written
}

fn no_group_error(key: &[u8], group: &[u8], suffix: &str) -> CmdError {
    format!(
        "NOGROUP No such key '{}' or consumer group '{}'{suffix}",
        String::from_utf8_lossy(c_str(key)),
        String::from_utf8_lossy(c_str(group))
    )
    .into()
}

// ---------------------------------------------------------------------------
// How stream commands are journalled (as Valkey propagates them)
// ---------------------------------------------------------------------------

/// The XCLAIM that journals a pending entry's state (owner, delivery time
/// and count, and the group's last id), so that a replay rebuilds the PEL
/// exactly, whatever its clock says.
#[allow(clippy::too_many_arguments)]
fn claim_journal(
    key: &[u8],
    group: &[u8],
    consumer: &[u8],
    id: StreamId,
    delivery_time: i64,
    delivery_count: u64,
    last_id: StreamId,
) -> Vec<Vec<u8>> {
    vec![
        b"XCLAIM".to_vec(),
        key.to_vec(),
        group.to_vec(),
        consumer.to_vec(),
        b"0".to_vec(),
        id_text(id),
        b"TIME".to_vec(),
        delivery_time.to_string().into_bytes(),
        b"RETRYCOUNT".to_vec(),
        delivery_count.to_string().into_bytes(),
        b"FORCE".to_vec(),
        b"JUSTID".to_vec(),
        b"LASTID".to_vec(),
        id_text(last_id),
    ]
}

/// XGROUP SETID with the read counter: journals a group's new last id.
fn setid_journal(key: &[u8], group_name: &[u8], group: &ConsumerGroup) -> Vec<Vec<u8>> {
    vec![
        b"XGROUP".to_vec(),
        b"SETID".to_vec(),
        key.to_vec(),
        group_name.to_vec(),
        id_text(group.last_id),
        b"ENTRIESREAD".to_vec(),
        group.entries_read.to_string().into_bytes(),
    ]
}

/// The consumer XCLAIM and XAUTOCLAIM claim for: created when new (the
/// creation journalled, since a replay must create it too) and stamped as
/// seen now. Returns whether it was created.
fn claim_as_consumer(
    group: &mut ConsumerGroup,
    key: &[u8],
    group_name: &[u8],
    consumer_name: &[u8],
    now_ms: i64,
    journal: &mut Option<Vec<Vec<Vec<u8>>>>,
) -> bool {
    let created = group.create_consumer(consumer_name, now_ms);
    if created {
        if let Some(journal) = journal.as_mut() {
            journal.push(create_consumer_journal(key, group_name, consumer_name));
        }
    }
    if let Some(c) = group.consumers.get_mut(consumer_name) {
        c.seen_time = now_ms;
    }
    created
}

fn create_consumer_journal(key: &[u8], group: &[u8], consumer: &[u8]) -> Vec<Vec<u8>> {
    vec![b"XGROUP".to_vec(), b"CREATECONSUMER".to_vec(), key.to_vec(), group.to_vec(), consumer.to_vec()]
}

/// Journals `commands` for the running command (nothing when empty).
fn journal_commands(ctx: &mut Ctx, commands: Vec<Vec<Vec<u8>>>) {
    if commands.is_empty() {
        ctx.srv.effects.journal_nothing();
    }
    for command in commands {
        ctx.srv.effects.journal_instead(&command);
    }
}

/// XADD or XTRIM as journalled: the id XADD generated written out, and
/// approximate trimming (`~`, LIMIT) as the exact trimming it came to,
/// so that a replay gives the same stream.
fn add_trim_journal(args: &[&[u8]], parsed: &AddTrimArgs, id: Option<StreamId>, entries: &Entries) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        if i == parsed.id_pos {
            if let Some(id) = id {
                out.push(id_text(id));
                i += 1;
                continue;
            }
        }
        if parsed.approx && (2..parsed.id_pos).contains(&i) {
            if is_opt(args[i], "limit") {
                i += 2;
                continue;
            }
            if c_str(args[i]) == b"~" && i + 1 < parsed.id_pos {
                out.push(b"=".to_vec());
                out.push(match parsed.trim {
                    Some(Trim::MinId(_)) => id_text(entries.first_live_id().unwrap_or(MAX_ID)),
                    _ => entries.len().to_string().into_bytes(),
                });
                i += 2;
                continue;
            }
        }
        out.push(args[i].to_vec());
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// XADD, XTRIM and their trimming options
// ---------------------------------------------------------------------------

#[derive(Default)]
struct AddTrimArgs {
    /// XADD's id: None for `*`; the bool is false for `<ms>-*`.
    id: Option<(StreamId, bool)>,
    no_mkstream: bool,
    trim: Option<Trim>,
    approx: bool,
    /// Most entries trimming may remove; 0 for no limit.
    limit: u64,
    /// Position of the id argument (XADD's fields follow it).
    id_pos: usize,
}

fn parse_add_trim(args: &[&[u8]], xadd: bool, max_node_entries: i64) -> Result<AddTrimArgs, CmdError> {
    const BOTH: &str = "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
    let mut parsed = AddTrimArgs::default();
    let mut limit: i64 = 0;
    let mut limit_given = false;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = args[i];
        if xadd && c_str(opt) == b"*" {
            break;
        } else if (is_opt(opt, "maxlen") || is_opt(opt, "minid")) && more > 0 {
            if parsed.trim.is_some() {
                return Err(BOTH.into());
            }
            parsed.approx = false;
            let next = c_str(args[i + 1]);
            if more >= 2 && next == b"~" {
                parsed.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            parsed.trim = Some(if is_opt(opt, "maxlen") {
                let max = parse_integer(args[i + 1])?;
                if max < 0 {
                    return Err("ERR The MAXLEN argument must be >= 0.".into());
                }
                Trim::MaxLen(max as u64)
            } else {
                Trim::MinId(parse_strict_id(args[i + 1])?)
            });
            i += 1;
        } else if is_opt(opt, "limit") && more > 0 {
            limit = parse_integer(args[i + 1])?;
            if limit < 0 {
                return Err("ERR The LIMIT argument must be >= 0.".into());
            }
            limit_given = true;
            i += 1;
        } else if xadd && is_opt(opt, "nomkstream") {
            parsed.no_mkstream = true;
        } else if xadd {
            parsed.id = Some(parse_id_with(opt, IdSyntax { seq_wildcard: true, ..STRICT })?);
            break;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    parsed.id_pos = i;
    if limit != 0 && parsed.trim.is_none() {
        return Err("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy".into());
    }
    if !xadd && parsed.trim.is_none() {
        return Err("ERR syntax error, XTRIM must be called with a trimming strategy".into());
    }
    if limit_given {
        if !parsed.approx {
            return Err("ERR syntax error, LIMIT cannot be used without the special ~ option".into());
        }
        parsed.limit = limit as u64;
    } else if parsed.approx {
        // Approximate trimming does at most about 100 nodes' worth of work.
        let default = 100i64.wrapping_mul(max_node_entries);
        parsed.limit = if default <= 0 { 10_000 } else { default.min(1_000_000) as u64 };
    }
    Ok(parsed)
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] <*|id> field value [field value ...]
fn xadd(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let limits = node_limits(ctx);
    let parsed = parse_add_trim(args, true, limits.max_entries)?;
    let fields_at = parsed.id_pos + 1;
    let field_args = args.len().saturating_sub(fields_at);
    if args.len() < fields_at + 2 || field_args % 2 == 1 {
        return Err(arity_error("xadd"));
    }
    if parsed.id == Some((MIN_ID, true)) {
        return Err("ERR The ID specified in XADD must be greater than 0-0".into());
    }
    let now_ms = ctx.now_ms;
    let pairs = &args[fields_at..];
    let (stream, out) = lookup_stream(ctx, args[1], Lookup::Write)?;
    let (added, trimmed) = match stream {
        Some(stream) => add_entry(stream, &parsed, pairs, limits, now_ms),
        None if parsed.no_mkstream => {
            out.null();
            return Ok(());
        }
        None => {
            // The key exists from here on, even if the entry is refused.
            let mut stream = Stream::default();
            let added = add_entry(&mut stream, &parsed, pairs, limits, now_ms);
            store_stream(ctx, args[1], stream);
            notify::new_key(ctx, args[1]);
            added
        }
    }?;
    reply_id(ctx.out, added);
    notify(ctx, notify::STREAM, "xadd", args[1]);
    ctx.dirty(1);
    if ctx.srv.effects.enabled && (!matches!(parsed.id, Some((_, true))) || parsed.approx) {
        if let (Some(stream), _) = lookup_stream(ctx, args[1], Lookup::Write)? {
            let journalled = add_trim_journal(args, &parsed, Some(added), &stream.entries);
            ctx.srv.effects.journal_instead(&journalled);
        }
    }
    if trimmed > 0 {
        notify(ctx, notify::STREAM, "xtrim", args[1]);
    }
    Ok(())
}

/// Appends XADD's entry and trims as asked; returns the new id and how
/// many entries the trimming removed.
fn add_entry(
    stream: &mut Stream,
    parsed: &AddTrimArgs,
    pairs: &[&[u8]],
    limits: NodeLimits,
    now_ms: i64,
) -> Result<(StreamId, u64), CmdError> {
    const TOO_SMALL: &str = "ERR The ID specified in XADD is equal or smaller than the target stream top item";
    let entries = &mut stream.entries;
    let last = entries.last_id;
    if last == MAX_ID {
        return Err("ERR The stream has exhausted the last possible ID, unable to add more items".into());
    }
    let id = match parsed.id {
        Some((id, true)) => id,
        // `<ms>-*`: the next sequence number in that millisecond.
        Some((id, false)) if id.ms == last.ms => {
            if last.seq == u64::MAX {
                return Err(TOO_SMALL.into());
            }
            StreamId::new(last.ms, last.seq + 1)
        }
        Some((id, false)) => StreamId::new(id.ms, 0),
        None => {
            let now = now_ms.max(0) as u64;
            if now > last.ms {
                StreamId::new(now, 0)
            } else {
                next_id(last).unwrap_or(MIN_ID)
            }
        }
    };
    if id <= last {
        return Err(TOO_SMALL.into());
    }
    if pairs.iter().map(|p| p.len()).sum::<usize>() > MAX_ENTRY_BYTES {
        return Err("ERR Elements are too large to be stored".into());
    }
    entries.append(id, pairs, limits);
    let trimmed = match parsed.trim {
        Some(how) => entries.trim(how, parsed.approx, parsed.limit),
        None => 0,
    };
    Ok((id, trimmed))
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
fn xtrim(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let limits = node_limits(ctx);
    let parsed = parse_add_trim(args, false, limits.max_entries)?;
    let journal = ctx.srv.effects.enabled && parsed.approx;
    let (stream, out) = lookup_stream(ctx, args[1], Lookup::Write)?;
    let Some(stream) = stream else {
        out.int(0);
        return Ok(());
    };
    let Some(how) = parsed.trim else { return Err(errors::SYNTAX.into()) };
    let deleted = stream.entries.trim(how, parsed.approx, parsed.limit);
    // Approximate trimming is journalled as the exact trimming it came to.
    let journalled = (journal && deleted > 0).then(|| add_trim_journal(args, &parsed, None, &stream.entries));
    out.int(deleted as i64);
    ctx.dirty(deleted);
    if let Some(journalled) = journalled {
        ctx.srv.effects.journal_instead(&journalled);
    }
    if deleted > 0 {
        notify(ctx, notify::STREAM, "xtrim", args[1]);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// XLEN, XRANGE, XREVRANGE, XDEL, XSETID
// ---------------------------------------------------------------------------

fn xlen(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (stream, out) = lookup_stream(ctx, args[1], Lookup::Read)?;
    out.int(stream.map_or(0, |s| s.entries.len() as i64));
    Ok(())
}

fn xrange(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    range_command(ctx, args, false)
}

fn xrevrange(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    range_command(ctx, args, true)
}

/// XRANGE key start end [COUNT n] / XREVRANGE key end start [COUNT n]
fn range_command(ctx: &mut Ctx, args: &[&[u8]], rev: bool) -> CmdResult {
    let (start_arg, end_arg) = if rev { (args[3], args[2]) } else { (args[2], args[3]) };
    let start = parse_range_start(start_arg)?;
    let end = parse_range_end(end_arg)?;
    let mut count: Option<i64> = None;
    let mut j = 4;
    while j < args.len() {
        if is_opt(args[j], "count") && j + 1 < args.len() {
            count = Some(parse_integer(args[j + 1])?.max(0));
            j += 2;
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    let (stream, out) = lookup_stream(ctx, args[1], Lookup::Read)?;
    let Some(stream) = stream else {
        out.array(0);
        return Ok(());
    };
    match count {
        Some(0) => out.null_array(),
        _ => {
            reply_range(out, &stream.entries, start, end, count.unwrap_or(0) as usize, rev);
        }
    }
    Ok(())
}

/// XDEL key id [id ...]
fn xdel(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (stream, out) = lookup_stream(ctx, args[1], Lookup::Write)?;
    let Some(stream) = stream else {
        out.int(0);
        return Ok(());
    };
    let ids = args[2..].iter().map(|a| parse_strict_id(a)).collect::<Result<Vec<_>, _>>()?;
    let deleted = stream.entries.delete_ids(&ids);
    out.int(deleted as i64);
    ctx.dirty(deleted);
    if deleted > 0 {
        notify(ctx, notify::STREAM, "xdel", args[1]);
    }
    Ok(())
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
fn xsetid(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let id = parse_strict_id(args[2])?;
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = MIN_ID;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if is_opt(args[i], "entriesadded") && more > 0 {
            let n = parse_integer(args[i + 1])?;
            if n < 0 {
                return Err("ERR entries_added must be positive".into());
            }
            entries_added = Some(n as u64);
        } else if is_opt(args[i], "maxdeletedid") && more > 0 {
            max_deleted = parse_strict_id(args[i + 1])?;
            if id < max_deleted {
                return Err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id".into());
            }
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 2;
    }
    let (stream, out) = lookup_stream(ctx, args[1], Lookup::Write)?;
    let Some(stream) = stream else { return Err(errors::NO_SUCH_KEY.into()) };
    let entries = &mut stream.entries;
    if id < entries.max_deleted_id {
        return Err("ERR The ID specified in XSETID is smaller than current max_deleted_entry_id".into());
    }
    if !entries.is_empty() {
        if entries.last_live_id().is_some_and(|top| id < top) {
            return Err("ERR The ID specified in XSETID is smaller than the target stream top item".into());
        }
        if entries_added.is_some_and(|n| entries.len() > n) {
            return Err("ERR The entries_added specified in XSETID is smaller than the target stream length".into());
        }
    }
    entries.last_id = id;
    if let Some(n) = entries_added {
        entries.entries_added = n;
    }
    if max_deleted != MIN_ID {
        entries.max_deleted_id = max_deleted;
    }
    out.ok();
    ctx.dirty(1);
    notify(ctx, notify::STREAM, "xsetid", args[1]);
    Ok(())
}

// ---------------------------------------------------------------------------
// XREAD and XREADGROUP
// ---------------------------------------------------------------------------

/// The "id" XREADGROUP's `>` stands for: read what the group has not seen.
const NEW_ENTRIES: StreamId = MAX_ID;

struct ReadArgs<'a> {
    /// BLOCK in milliseconds (0: forever).
    block_ms: Option<i64>,
    /// 0: no limit.
    count: usize,
    streams_at: usize,
    stream_count: usize,
    group: Option<(&'a [u8], &'a [u8])>,
    noack: bool,
}

fn parse_read_args<'a>(args: &[&'a [u8]], group_form: bool, now_ms: i64) -> Result<ReadArgs<'a>, CmdError> {
    let mut parsed = ReadArgs { block_ms: None, count: 0, streams_at: 0, stream_count: 0, group: None, noack: false };
    let name = if group_form { "xreadgroup" } else { "xread" };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let opt = args[i];
        if is_opt(opt, "block") && more > 0 {
            i += 1;
            parsed.block_ms = Some(parse_block_ms(args[i], now_ms)?);
        } else if is_opt(opt, "count") && more > 0 {
            i += 1;
            parsed.count = parse_integer(args[i])?.max(0) as usize;
        } else if is_opt(opt, "streams") && more > 0 {
            parsed.streams_at = i + 1;
            let listed = args.len() - parsed.streams_at;
            if !listed.is_multiple_of(2) {
                let symbol = if group_form { '>' } else { '$' };
                return Err(format!(
                    "ERR Unbalanced '{name}' list of streams: for each stream key an ID or '{symbol}' must be specified."
                )
                .into());
            }
            parsed.stream_count = listed / 2;
            break;
        } else if is_opt(opt, "group") && more >= 2 {
            if !group_form {
                return Err("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.".into());
            }
            parsed.group = Some((args[i + 1], args[i + 2]));
            i += 2;
        } else if is_opt(opt, "noack") {
            if !group_form {
                return Err("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.".into());
            }
            parsed.noack = true;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    if parsed.streams_at == 0 {
        return Err(errors::SYNTAX.into());
    }
    if group_form && parsed.group.is_none() {
        return Err("ERR Missing GROUP option for XREADGROUP".into());
    }
    Ok(parsed)
}

/// BLOCK's argument: whole milliseconds.
fn parse_block_ms(arg: &[u8], now_ms: i64) -> Result<i64, CmdError> {
    let ms = parse_i64(arg).ok_or(CmdError::from("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err("ERR timeout is negative".into());
    }
    if ms > 0 && ms > i64::MAX - now_ms {
        return Err("ERR timeout is out of range".into());
    }
    Ok(ms)
}

/// What an id argument of XREAD/XREADGROUP asks for, given the stream.
fn resolve_read_id(arg: &[u8], stream: Option<&Stream>, group_form: bool) -> Result<StreamId, CmdError> {
    const MEANINGLESS: &str = "is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The";
    let last = stream.map(|s| s.entries.last_id);
    match c_str(arg) {
        b"$" if group_form => {
            Err(format!("ERR The $ ID {MEANINGLESS} $ ID would just return an empty result set.").into())
        }
        b"$" => Ok(last.unwrap_or(MIN_ID)),
        b"+" if group_form => {
            Err(format!("ERR The + ID {MEANINGLESS} + ID would just return an empty result set.").into())
        }
        b"+" => match last {
            Some(last) => prev_id(last).ok_or_else(|| "ERR the stream last element ID is 0-0".into()),
            None => Ok(MIN_ID),
        },
        b">" if !group_form => {
            Err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."
                .into())
        }
        b">" => Ok(NEW_ENTRIES),
        _ => parse_strict_id(arg),
    }
}

fn xread(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    read_streams(ctx, args, false)
}

fn xreadgroup(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    read_streams(ctx, args, true)
}

/// XREAD [COUNT n] [BLOCK ms] STREAMS key [key ...] id [id ...]
/// XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key [key ...] id [id ...]
fn read_streams(ctx: &mut Ctx, args: &[&[u8]], group_form: bool) -> CmdResult {
    let now_ms = ctx.now_ms;
    let read = parse_read_args(args, group_form, now_ms)?;
    let keys = &args[read.streams_at..read.streams_at + read.stream_count];
    let id_args = &args[read.streams_at + read.stream_count..];

    let mut ids = Vec::with_capacity(keys.len());
    for (key, id_arg) in keys.iter().zip(id_args) {
        let (stream, _) = lookup_stream(ctx, key, Lookup::Read)?;
        if let Some((group, _)) = read.group {
            if !stream.as_deref().is_some_and(|s| s.groups.contains_key(group)) {
                return Err(no_group_error(key, group, " in XREADGROUP with GROUP option"));
            }
        }
        ids.push(resolve_read_id(id_arg, stream.as_deref(), group_form)?);
    }

    let top = Deferred::start(ctx.out);
    let mut served = 0;
    let mut dirty = 0;
    // XREADGROUP is journalled as what it did: consumers created, XCLAIMs
    // of the entries delivered, the group's new last id.
    let mut journal = ctx.srv.effects.enabled.then(Vec::new);
    // Streams whose group got its consumer now, to announce in key order.
    let mut consumer_created_in = Vec::new();
    for (key, &requested) in keys.iter().zip(&ids) {
        let (stream, out) = lookup_stream(ctx, key, Lookup::Read)?;
        let Some(stream) = stream else { continue };
        match read.group {
            None => {
                let Some(top_id) = stream.entries.last_live_id() else { continue };
                if top_id <= requested {
                    continue;
                }
                served += 1;
                reply_stream_name(out, key);
                reply_range(out, &stream.entries, next_id(requested).unwrap_or(MIN_ID), MAX_ID, read.count, false);
            }
            Some((group_name, consumer_name)) => {
                let Stream { entries, groups } = stream;
                let Some(group) = groups.get_mut(group_name) else { continue };
                // Any id but `>` reads the consumer's own pending history.
                let history = requested != NEW_ENTRIES;
                let mut after = requested;
                let mut serve = history;
                if !history && !entries.is_empty() {
                    if let Some(top_id) = entries.last_live_id() {
                        if top_id > group.last_id {
                            serve = true;
                            after = group.last_id;
                        }
                    }
                }
                if group.create_consumer(consumer_name, now_ms) {
                    dirty += 1;
                    consumer_created_in.push(*key);
                    if let Some(journal) = journal.as_mut() {
                        journal.push(create_consumer_journal(key, group_name, consumer_name));
                    }
                }
                let Some(consumer) = group.consumer_name(consumer_name) else { continue };
                if let Some(c) = group.consumers.get_mut(&consumer) {
                    c.seen_time = now_ms;
                }
                if serve {
                    served += 1;
                    dirty += 1;
                    reply_stream_name(out, key);
                    let start = next_id(after).unwrap_or(MIN_ID);
                    let last_before = group.last_id;
                    let mut delivered = Vec::new();
                    if history {
                        reply_history(out, entries, group, &consumer, start, read.count, now_ms, &mut delivered);
                    } else {
                        let noack = read.noack;
                        reply_new_for_group(
                            out,
                            entries,
                            group,
                            &consumer,
                            start,
                            read.count,
                            noack,
                            now_ms,
                            &mut delivered,
                        );
                    }
                    if let Some(journal) = journal.as_mut() {
                        for id in delivered {
                            let Some(p) = group.pel.get(&id) else { continue };
                            // A new entry was the group's last id when delivered.
                            let last = if history { group.last_id } else { id };
                            journal.push(claim_journal(
                                key,
                                group_name,
                                &consumer,
                                id,
                                p.delivery_time,
                                p.delivery_count,
                                last,
                            ));
                        }
                        if group.last_id != last_before {
                            journal.push(setid_journal(key, group_name, group));
                        }
                    }
                }
            }
        }
    }
    ctx.dirty(dirty);
    if let (Some(journal), true) = (journal, dirty > 0) {
        journal_commands(ctx, journal);
    }
    for key in consumer_created_in {
        notify(ctx, notify::STREAM, "xgroup-createconsumer", key);
    }
    if served > 0 {
        let kind = if ctx.out.resp3 { b'%' } else { b'*' };
        top.finish(ctx.out, kind, served);
        return Ok(());
    }
    if read.block_ms.is_some() && ctx.may_block() {
        let rerun_args = rerun_args_for(args, read.streams_at + read.stream_count, &ids);
        return block_reader(ctx, &read, keys, rerun_args, group_form);
    }
    ctx.out.null_array();
    Ok(())
}

/// The name of a stream in XREAD's reply: a map key in RESP3, the first
/// of a pair in RESP2.
fn reply_stream_name(out: &mut Reply, key: &[u8]) {
    if !out.resp3 {
        out.array(2);
    }
    out.bulk(key);
}

/// Parks the reader until one of its streams is written (or, for
/// XREADGROUP, deleted: it must then answer NOGROUP).
fn block_reader(
    ctx: &mut Ctx,
    read: &ReadArgs,
    keys: &[&[u8]],
    rerun_args: Option<Vec<Vec<u8>>>,
    group_form: bool,
) -> CmdResult {
    let block_ms = read.block_ms.unwrap_or(0);
    ctx.block_with(BlockRequest {
        keys: keys.iter().map(|k| k.to_vec()).collect(),
        timeout: (block_ms > 0).then(|| Duration::from_millis(block_ms as u64)),
        on_timeout: TimeoutReply::NullArray,
        rerun_args,
        wake_on_delete: group_form,
    });
    Ok(())
}

/// The command to run again once woken: `$` replaced by the id it meant
/// when the reader blocked, so that only what arrives later is read.
fn rerun_args_for(args: &[&[u8]], id_at: usize, resolved: &[StreamId]) -> Option<Vec<Vec<u8>>> {
    if !args[id_at..].iter().any(|a| c_str(a) == b"$") {
        return None;
    }
    let rewritten = args
        .iter()
        .enumerate()
        .map(|(i, arg)| match i.checked_sub(id_at).and_then(|n| resolved.get(n)) {
            Some(&id) if c_str(arg) == b"$" => id_text(id),
            _ => arg.to_vec(),
        })
        .collect();
    Some(rewritten)
}

/// Writes the entries after `start` a group has not read yet, moving its
/// last delivered id and (unless NOACK) adding them to the PEL as
/// delivered to `consumer` (and to `delivered`).
#[allow(clippy::too_many_arguments)]
fn reply_new_for_group(
    out: &mut Reply,
    entries: &Entries,
    group: &mut ConsumerGroup,
    consumer: &Arc<[u8]>,
    start: StreamId,
    count: usize,
    noack: bool,
    now_ms: i64,
    delivered: &mut Vec<StreamId>,
) {
    let deferred = Deferred::start(out);
    let mut written = 0;
    for entry in entries.range(start, MAX_ID, false) {
        group.advance_to(entry.id, entries);
        reply_entry(out, &entry);
        if !noack {
            group.deliver(entry.id, consumer, now_ms);
            delivered.push(entry.id);
        }
        written += 1;
        if written == count {
            break;
        }
    }
    deferred.finish_array(out, written);
}

/// Writes a consumer's pending entries from `start` on, counting a new
/// delivery of each (listed in `delivered`); an entry deleted since shows
/// as `[id, nil]`.
#[allow(clippy::too_many_arguments)]
fn reply_history(
    out: &mut Reply,
    entries: &Entries,
    group: &mut ConsumerGroup,
    consumer: &Arc<[u8]>,
    start: StreamId,
    count: usize,
    now_ms: i64,
    delivered: &mut Vec<StreamId>,
) {
    let Some(owner) = group.consumers.get(consumer) else {
        out.array(0);
        return;
    };
    let limit = if count == 0 { usize::MAX } else { count };
    let ids: Vec<StreamId> = owner.pending.range(start..).take(limit).copied().collect();
    out.array(ids.len());
    for id in ids {
        match entries.get(id) {
            Some(entry) => {
                reply_entry(out, &entry);
                if let Some(pending) = group.pel.get_mut(&id) {
                    pending.delivery_time = now_ms;
                    pending.delivery_count += 1;
                    delivered.push(id);
                }
            }
            None => {
                out.array(2);
                reply_id(out, id);
                out.null_array();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// XACK, XPENDING, XCLAIM, XAUTOCLAIM
// ---------------------------------------------------------------------------

/// XACK key group id [id ...]
fn xack(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (stream, out) = lookup_stream(ctx, args[1], Lookup::Read)?;
    // Without the key or the group there is nothing to acknowledge, and
    // the ids are not even looked at.
    let Some(group) = stream.and_then(|s| s.groups.get_mut(args[2])) else {
        out.int(0);
        return Ok(());
    };
    let ids = args[3..].iter().map(|a| parse_strict_id(a)).collect::<Result<Vec<_>, _>>()?;
    let acknowledged = ids.into_iter().filter(|&id| group.remove_pending(id)).count() as u64;
    out.int(acknowledged as i64);
    ctx.dirty(acknowledged);
    Ok(())
}

/// XPENDING key group [[IDLE min-idle] start end count [consumer]]
fn xpending(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let summary = args.len() == 3;
    if !summary && (args.len() < 6 || args.len() > 9) {
        return Err(errors::SYNTAX.into());
    }
    let mut min_idle = 0;
    let mut start = MIN_ID;
    let mut end = MAX_ID;
    let mut count = 0;
    let mut consumer: Option<&[u8]> = None;
    if !summary {
        let mut at = 3;
        if is_opt(args[3], "idle") {
            min_idle = parse_integer(args[4])?;
            if args.len() < 8 {
                return Err(errors::SYNTAX.into());
            }
            at += 2;
        }
        count = parse_integer(args[at + 2])?.max(0);
        start = parse_range_start(args[at])?;
        end = parse_range_end(args[at + 1])?;
        consumer = args.get(at + 3).copied();
    }
    let now_ms = ctx.now_ms;
    let (stream, out) = lookup_stream(ctx, args[1], Lookup::Read)?;
    let Some(group) = stream.and_then(|s| s.groups.get(args[2])) else {
        return Err(no_group_error(args[1], args[2], ""));
    };
    if summary {
        out.array(4);
        out.int(group.pel.len() as i64);
        let (Some((first, _)), Some((last, _))) = (group.pel.first_key_value(), group.pel.last_key_value()) else {
            out.null();
            out.null();
            out.null_array();
            return Ok(());
        };
        reply_id(out, *first);
        reply_id(out, *last);
        let owners: Vec<_> = group.consumers.iter().filter(|(_, c)| !c.pending.is_empty()).collect();
        out.array(owners.len());
        for (name, c) in owners {
            out.array(2);
            out.bulk(name);
            out.bulk_int(c.pending.len() as i64);
        }
        return Ok(());
    }
    let ids: Box<dyn Iterator<Item = StreamId>> = match consumer {
        Some(name) => match group.consumers.get(name) {
            Some(c) => Box::new(c.pending.range(start..).copied()),
            None => {
                out.array(0);
                return Ok(());
            }
        },
        None => Box::new(group.pel.range(start..).map(|(id, _)| *id)),
    };
    let deferred = Deferred::start(out);
    let mut written = 0;
    for id in ids.take_while(|&id| id <= end) {
        if written as i64 == count {
            break;
        }
        let Some(pending) = group.pel.get(&id) else { continue };
        let idle = now_ms - pending.delivery_time;
        if min_idle != 0 && idle < min_idle {
            continue;
        }
        out.array(4);
        reply_id(out, id);
        out.bulk(&pending.consumer);
        out.int(idle.max(0));
        out.int(pending.delivery_count as i64);
        written += 1;
    }
    deferred.finish_array(out, written);
    Ok(())
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-ms]
///        [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID id]
fn xclaim(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let now_ms = ctx.now_ms;
    let (key, group_name, consumer_name) = (args[1], args[2], args[3]);
    {
        let (stream, _) = lookup_stream(ctx, key, Lookup::Read)?;
        if !stream.is_some_and(|s| s.groups.contains_key(group_name)) {
            return Err(no_group_error(key, group_name, ""));
        }
    }
    let min_idle = parse_i64(args[4]).ok_or(CmdError::from("ERR Invalid min-idle-time argument for XCLAIM"))?.max(0);
    // Ids come first; the first argument that is not one starts the options.
    let ids: Vec<StreamId> = args[5..].iter().map_while(|a| parse_strict_id(a).ok()).collect();
    let mut delivery_time: Option<i64> = None;
    let mut retry_count: i64 = -1;
    let mut force = false;
    let mut just_id = false;
    let mut last_id = MIN_ID;
    let mut j = 5 + ids.len();
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = args[j];
        if is_opt(opt, "force") {
            force = true;
        } else if is_opt(opt, "justid") {
            just_id = true;
        } else if is_opt(opt, "idle") && more > 0 {
            j += 1;
            let idle = parse_i64(args[j]).ok_or(CmdError::from("ERR Invalid IDLE option argument for XCLAIM"))?;
            delivery_time = Some(now_ms.wrapping_sub(idle));
        } else if is_opt(opt, "time") && more > 0 {
            j += 1;
            delivery_time =
                Some(parse_i64(args[j]).ok_or(CmdError::from("ERR Invalid TIME option argument for XCLAIM"))?);
        } else if is_opt(opt, "retrycount") && more > 0 {
            j += 1;
            retry_count =
                parse_i64(args[j]).ok_or(CmdError::from("ERR Invalid RETRYCOUNT option argument for XCLAIM"))?;
        } else if is_opt(opt, "lastid") && more > 0 {
            j += 1;
            last_id = parse_strict_id(args[j])?;
        } else {
            return Err(format!("ERR Unrecognized XCLAIM option '{}'", String::from_utf8_lossy(c_str(opt))).into());
        }
        j += 1;
    }
    // A time in the future or before the epoch means "now". An AOF replay
    // runs with the clock at 0 (see aof/load.rs): the times it gives are
    // from before the load, never in the future.
    let replaying = ctx.srv.persistence.loading.is_some();
    let delivery_time = match delivery_time {
        Some(t) if t >= 0 && (t <= now_ms || replaying) => t,
        _ => now_ms,
    };
    // Journalled as XCLAIMs of each entry's resulting state (and what it
    // created), never as sent: IDLE depends on the clock.
    let mut journal = ctx.srv.effects.enabled.then(Vec::new);
    let (stream, out) = lookup_stream(ctx, key, Lookup::Read)?;
    let Some(Stream { entries, groups }) = stream else { return Err(no_group_error(key, group_name, "")) };
    let Some(group) = groups.get_mut(group_name) else { return Err(no_group_error(key, group_name, "")) };
    let mut dirty = 0;
    let mut last_id_moved = false;
    if last_id > group.last_id {
        group.last_id = last_id;
        dirty += 1;
        last_id_moved = true;
    }
    let consumer_created = claim_as_consumer(group, key, group_name, consumer_name, now_ms, &mut journal);
    if consumer_created {
        dirty += 1;
    }
    let Some(consumer) = group.consumer_name(consumer_name) else { return Ok(()) };
    let deferred = Deferred::start(out);
    let mut claimed = 0;
    let mut claims = 0;
    for id in ids {
        let Some(entry) = entries.get(id) else {
            // The entry is gone from the stream: it leaves the PEL too.
            if let (Some(journal), Some(p)) = (journal.as_mut(), group.pel.get(&id)) {
                journal.push(claim_journal(
                    key,
                    group_name,
                    &p.consumer,
                    id,
                    p.delivery_time,
                    p.delivery_count,
                    group.last_id,
                ));
                claims += 1;
            }
            if group.remove_pending(id) {
                dirty += 1;
            }
            continue;
        };
        let existing = group.pel.get(&id);
        if existing.is_none() && !force {
            continue;
        }
        // An entry FORCE just created has no owner and no idle time to check.
        if let Some(pending) = existing {
            if min_idle != 0 && now_ms - pending.delivery_time < min_idle {
                continue;
            }
        }
        // An entry FORCE creates starts as delivered once.
        let previous_count = existing.map_or(1, |p| p.delivery_count);
        let delivery_count = if retry_count >= 0 {
            retry_count as u64
        } else if just_id {
            previous_count
        } else {
            previous_count + 1
        };
        claim_one(group, id, &consumer, (delivery_time, delivery_count), now_ms, (!just_id).then_some(&entry), out);
        if let Some(journal) = journal.as_mut() {
            journal.push(claim_journal(key, group_name, &consumer, id, delivery_time, delivery_count, group.last_id));
            claims += 1;
        }
        claimed += 1;
        dirty += 1;
    }
    deferred.finish_array(out, claimed);
    if let Some(journal) = journal.as_mut() {
        // The XCLAIMs carry the last id; without one it goes alone.
        if last_id_moved && claims == 0 {
            journal.push(setid_journal(key, group_name, group));
        }
    }
    ctx.dirty(dirty);
    if let (Some(journal), true) = (journal, dirty > 0) {
        journal_commands(ctx, journal);
    }
    if consumer_created {
        notify(ctx, notify::STREAM, "xgroup-createconsumer", key);
    }
    Ok(())
}

/// Gives a pending entry to `consumer` (XCLAIM, XAUTOCLAIM): records the
/// delivery (time, count), marks the consumer active, and answers the
/// whole entry, or only its id (JUSTID: `entry` is None).
fn claim_one(
    group: &mut ConsumerGroup,
    id: StreamId,
    consumer: &Arc<[u8]>,
    (delivery_time, delivery_count): (i64, u64),
    now_ms: i64,
    entry: Option<&EntryRef<'_>>,
    out: &mut Reply,
) {
    group.transfer(id, consumer, delivery_time, delivery_count);
    match entry {
        Some(entry) => reply_entry(out, entry),
        None => reply_id(out, id),
    }
    if let Some(c) = group.consumers.get_mut(consumer) {
        c.active_time = now_ms;
    }
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
fn xautoclaim(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    // Valkey examines at most ten PEL entries per entry it may claim.
    const ATTEMPTS_FACTOR: i64 = 10;
    const COUNT_ERROR: &str = "ERR COUNT must be > 0";
    let now_ms = ctx.now_ms;
    let (key, group_name, consumer_name) = (args[1], args[2], args[3]);
    let min_idle =
        parse_i64(args[4]).ok_or(CmdError::from("ERR Invalid min-idle-time argument for XAUTOCLAIM"))?.max(0);
    let start = parse_range_start(args[5])?;
    let mut count: i64 = 100;
    let mut just_id = false;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if is_opt(args[j], "count") && more > 0 {
            count = parse_i64(args[j + 1]).ok_or(CmdError::from(COUNT_ERROR))?;
            if !(1..=i64::MAX / 16).contains(&count) {
                return Err(COUNT_ERROR.into());
            }
            j += 1;
        } else if is_opt(args[j], "justid") {
            just_id = true;
        } else {
            return Err(errors::SYNTAX.into());
        }
        j += 1;
    }
    let mut journal = ctx.srv.effects.enabled.then(Vec::new);
    let (stream, out) = lookup_stream(ctx, key, Lookup::Read)?;
    let Some(Stream { entries, groups }) = stream else { return Err(no_group_error(key, group_name, "")) };
    let Some(group) = groups.get_mut(group_name) else { return Err(no_group_error(key, group_name, "")) };
    let mut dirty = 0;
    let consumer_created = claim_as_consumer(group, key, group_name, consumer_name, now_ms, &mut journal);
    if consumer_created {
        dirty += 1;
    }
    let Some(consumer) = group.consumer_name(consumer_name) else { return Ok(()) };
    out.array(3);
    let cursor_at = Deferred::start(out);
    let claimed_at = Deferred::start(out);
    let mut claimed = 0;
    let mut deleted = Vec::new();
    let mut attempts = count * ATTEMPTS_FACTOR;
    let mut after = Bound::Included(start);
    let mut exhausted = false;
    while attempts > 0 && count > 0 {
        attempts -= 1;
        let Some((&id, pending)) = group.pel.range((after, Bound::Unbounded)).next() else {
            exhausted = true;
            break;
        };
        after = Bound::Excluded(id);
        let Some(entry) = entries.get(id) else {
            if let Some(journal) = journal.as_mut() {
                let (owner, time, count) = (pending.consumer.clone(), pending.delivery_time, pending.delivery_count);
                journal.push(claim_journal(key, group_name, &owner, id, time, count, group.last_id));
            }
            group.remove_pending(id);
            deleted.push(id);
            count -= 1;
            dirty += 1;
            continue;
        };
        if min_idle != 0 && now_ms - pending.delivery_time < min_idle {
            continue;
        }
        let delivery_count = pending.delivery_count + u64::from(!just_id);
        claim_one(group, id, &consumer, (now_ms, delivery_count), now_ms, (!just_id).then_some(&entry), out);
        if let Some(journal) = journal.as_mut() {
            journal.push(claim_journal(key, group_name, &consumer, id, now_ms, delivery_count, group.last_id));
        }
        claimed += 1;
        count -= 1;
        dirty += 1;
    }
    claimed_at.finish_array(out, claimed);
    // The cursor: where the next call should start, 0-0 when done.
    let next = if exhausted { None } else { group.pel.range((after, Bound::Unbounded)).next().map(|(id, _)| *id) };
    let mut cursor = Reply { buf: Vec::new(), resp3: out.resp3, errors: 0 };
    reply_id(&mut cursor, next.unwrap_or(MIN_ID));
    out.buf.splice(cursor_at.at..cursor_at.at, cursor.buf);
    out.array(deleted.len());
    for id in deleted {
        reply_id(out, id);
    }
    ctx.dirty(dirty);
    if let (Some(journal), true) = (journal, dirty > 0) {
        journal_commands(ctx, journal);
    }
    if consumer_created {
        notify(ctx, notify::STREAM, "xgroup-createconsumer", key);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// XGROUP
// ---------------------------------------------------------------------------

/// XGROUP CREATE key group <id|$> [MKSTREAM] [ENTRIESREAD n]
/// XGROUP SETID key group <id|$> [ENTRIESREAD n]
/// XGROUP DESTROY key group
/// XGROUP CREATECONSUMER key group consumer
/// XGROUP DELCONSUMER key group consumer
fn xgroup(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let sub = c_str(args[1]).to_ascii_lowercase();
    let (create, setid) = (sub == b"create", sub == b"setid");
    let mut mkstream = false;
    let mut entries_read = UNKNOWN_ENTRIES_READ;
    let mut i = 5;
    while i < args.len() {
        if create && is_opt(args[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if (create || setid) && is_opt(args[i], "entriesread") && i + 1 < args.len() {
            entries_read = parse_integer(args[i + 1])?;
            if entries_read < 0 && entries_read != UNKNOWN_ENTRIES_READ {
                return Err("ERR value for ENTRIESREAD must be positive or -1".into());
            }
            i += 2;
        } else {
            return Err(crate::commands::server::subcommand_syntax_error(args));
        }
    }
    let now_ms = ctx.now_ms;
    let (key, group_name) = (args[2], args[3]);
    let (stream, out) = lookup_stream(ctx, key, Lookup::Write)?;
    if stream.is_none() && !mkstream {
        return Err(NO_SUCH_KEY_FOR_XGROUP.into());
    }
    let needs_group = matches!(sub.as_slice(), b"setid" | b"createconsumer" | b"delconsumer");
    if needs_group && !stream.as_deref().is_some_and(|s| s.groups.contains_key(group_name)) {
        return Err(format!(
            "NOGROUP No such consumer group '{}' for key name '{}'",
            String::from_utf8_lossy(c_str(group_name)),
            String::from_utf8_lossy(c_str(key))
        )
        .into());
    }
    match sub.as_slice() {
        b"create" if args.len() <= 8 => {
            let last_id = match c_str(args[4]) {
                b"$" => stream.as_deref().map_or(MIN_ID, |s| s.entries.last_id),
                _ => parse_strict_id(args[4])?,
            };
            let group = ConsumerGroup::new(last_id, entries_read);
            match stream {
                Some(stream) => {
                    if stream.groups.contains_key(group_name) {
                        return Err("BUSYGROUP Consumer Group name already exists".into());
                    }
                    stream.groups.insert(group_name.into(), group);
                    out.ok();
                }
                None => {
                    let mut stream = Stream::default();
                    stream.groups.insert(group_name.into(), group);
                    store_stream(ctx, key, stream);
                    notify::new_key(ctx, key);
                    ctx.out.ok();
                }
            }
            ctx.dirty(1);
            notify(ctx, notify::STREAM, "xgroup-create", key);
        }
        b"setid" if args.len() == 5 || args.len() == 7 => {
            let Some(stream) = stream else { return Err(NO_SUCH_KEY_FOR_XGROUP.into()) };
            let last_id = match c_str(args[4]) {
                b"$" => stream.entries.last_id,
                _ => parse_id(args[4], 0, false)?,
            };
            if let Some(group) = stream.groups.get_mut(group_name) {
                group.last_id = last_id;
                group.entries_read = entries_read;
            }
            out.ok();
            ctx.dirty(1);
            notify(ctx, notify::STREAM, "xgroup-setid", key);
        }
        b"destroy" => {
            let destroyed = stream.is_some_and(|s| s.groups.remove(group_name).is_some());
            out.int(destroyed as i64);
            if destroyed {
                ctx.dirty(1);
                notify(ctx, notify::STREAM, "xgroup-destroy", key);
            }
        }
        b"createconsumer" => {
            let created =
                stream.and_then(|s| s.groups.get_mut(group_name)).is_some_and(|g| g.create_consumer(args[4], now_ms));
            out.int(created as i64);
            if created {
                ctx.dirty(1);
                notify(ctx, notify::STREAM, "xgroup-createconsumer", key);
            }
        }
        b"delconsumer" => {
            let pending = stream.and_then(|s| s.groups.get_mut(group_name)).and_then(|g| g.delete_consumer(args[4]));
            out.int(pending.unwrap_or(0) as i64);
            if pending.is_some() {
                ctx.dirty(1);
                notify(ctx, notify::STREAM, "xgroup-delconsumer", key);
            }
        }
        _ => return Err(crate::commands::server::subcommand_syntax_error(args)),
    }
    Ok(())
}

fn xgroup_help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.help(
        args[0],
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
        ],
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// XINFO
// ---------------------------------------------------------------------------

/// XINFO STREAM key [FULL [COUNT n]] / XINFO GROUPS key / XINFO CONSUMERS key group
fn xinfo(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let now_ms = ctx.now_ms;
    let (stream, out) = lookup_stream(ctx, args[2], Lookup::Read)?;
    let Some(stream) = stream else { return Err(errors::NO_SUCH_KEY.into()) };
    let sub = c_str(args[1]);
    if sub.eq_ignore_ascii_case(b"consumers") {
        let Some(group) = stream.groups.get(args[3]) else {
            return Err(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                String::from_utf8_lossy(c_str(args[3])),
                String::from_utf8_lossy(c_str(args[2]))
            )
            .into());
        };
        out.array(group.consumers.len());
        for (name, consumer) in &group.consumers {
            let inactive = if consumer.active_time == -1 { -1 } else { now_ms - consumer.active_time };
            out.map(4);
            out.bulk(b"name");
            out.bulk(name);
            out.bulk(b"pending");
            out.int(consumer.pending.len() as i64);
            out.bulk(b"idle");
            out.int((now_ms - consumer.seen_time).max(0));
            out.bulk(b"inactive");
            out.int(inactive);
        }
    } else if sub.eq_ignore_ascii_case(b"groups") {
        out.array(stream.groups.len());
        for (name, group) in &stream.groups {
            out.map(6);
            out.bulk(b"name");
            out.bulk(name);
            out.bulk(b"consumers");
            out.int(group.consumers.len() as i64);
            out.bulk(b"pending");
            out.int(group.pel.len() as i64);
            out.bulk(b"last-delivered-id");
            reply_id(out, group.last_id);
            reply_group_counters(out, group, &stream.entries);
        }
    } else {
        xinfo_stream(out, stream, args)?;
    }
    Ok(())
}

/// A group's `entries-read` and `lag` fields.
fn reply_group_counters(out: &mut Reply, group: &ConsumerGroup, entries: &Entries) {
    out.bulk(b"entries-read");
    if group.entries_read == UNKNOWN_ENTRIES_READ {
        out.null();
    } else {
        out.int(group.entries_read);
    }
    out.bulk(b"lag");
    match group.lag(entries) {
        Some(lag) => out.int(lag),
        None => out.null(),
    }
}

/// The fields XINFO STREAM shows in both forms.
fn reply_stream_header(out: &mut Reply, entries: &Entries) {
    out.bulk(b"length");
    out.int(entries.len() as i64);
    out.bulk(b"radix-tree-keys");
    out.int(entries.node_count() as i64);
    out.bulk(b"radix-tree-nodes");
    out.int(entries.radix_tree_nodes() as i64);
    out.bulk(b"last-generated-id");
    reply_id(out, entries.last_id);
    out.bulk(b"max-deleted-entry-id");
    reply_id(out, entries.max_deleted_id);
    out.bulk(b"entries-added");
    out.int(entries.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    reply_id(out, entries.first_id);
}

/// XINFO STREAM key [FULL [COUNT n]]: a summary with the first and last
/// entries, or everything (up to `n` entries and PEL entries, 0 for all).
fn xinfo_stream(out: &mut Reply, stream: &Stream, args: &[&[u8]]) -> CmdResult {
    let entries = &stream.entries;
    let options = &args[3..];
    if options.is_empty() {
        out.map(10);
        reply_stream_header(out, entries);
        out.bulk(b"groups");
        out.int(stream.groups.len() as i64);
        for (name, rev) in [(&b"first-entry"[..], false), (b"last-entry", true)] {
            out.bulk(name);
            match entries.range(MIN_ID, MAX_ID, rev).next() {
                Some(entry) => reply_entry(out, &entry),
                None => out.null(),
            }
        }
        return Ok(());
    }
    let syntax_error = || crate::commands::server::subcommand_syntax_error(args);
    if (options.len() != 1 && options.len() != 3) || !is_opt(options[0], "full") {
        return Err(syntax_error());
    }
    let mut count = 10;
    if options.len() == 3 {
        if !is_opt(options[1], "count") {
            return Err(syntax_error());
        }
        count = parse_integer(options[2])?;
        if count < 0 {
            count = 10;
        }
    }
    let limit = if count == 0 { usize::MAX } else { count as usize };
    out.map(9);
    reply_stream_header(out, entries);
    out.bulk(b"entries");
    reply_range(out, entries, MIN_ID, MAX_ID, count as usize, false);
    out.bulk(b"groups");
    out.array(stream.groups.len());
    for (name, group) in &stream.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"last-delivered-id");
        reply_id(out, group.last_id);
        reply_group_counters(out, group, entries);
        out.bulk(b"pel-count");
        out.int(group.pel.len() as i64);
        out.bulk(b"pending");
        out.array(group.pel.len().min(limit));
        for (id, pending) in group.pel.iter().take(limit) {
            out.array(4);
            reply_id(out, *id);
            out.bulk(&pending.consumer);
            out.int(pending.delivery_time);
            out.int(pending.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(group.consumers.len());
        for (consumer_name, consumer) in &group.consumers {
            out.map(5);
            out.bulk(b"name");
            out.bulk(consumer_name);
            out.bulk(b"seen-time");
            out.int(consumer.seen_time);
            out.bulk(b"active-time");
            out.int(consumer.active_time);
            out.bulk(b"pel-count");
            out.int(consumer.pending.len() as i64);
            out.bulk(b"pending");
            out.array(consumer.pending.len().min(limit));
            for id in consumer.pending.iter().take(limit) {
                let pending = group.pel.get(id);
                out.array(3);
                reply_id(out, *id);
                out.int(pending.map_or(0, |p| p.delivery_time));
                out.int(pending.map_or(0, |p| p.delivery_count as i64));
            }
        }
    }
    Ok(())
}

fn xinfo_help(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.help(
        args[0],
        &[
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
        ],
    );
    Ok(())
}
