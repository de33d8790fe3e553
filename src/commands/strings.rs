//! String commands: GET, SET and friends, counters, ranges, LCS.
//!
//! Replies, error texts, the order in which arguments are checked and the
//! encodings values end up in (OBJECT ENCODING) follow Valkey 8.0.1.

use std::borrow::Cow;

use ferrokey_formats::resp::parse_i64;

use super::args::c_str;
use crate::command::{arity_error, errors, CmdError, CmdResult, Ctx, Handler, Lookup};
use crate::db::NO_EXPIRE;
use crate::longdouble;
use crate::notify::{self, notify};
use crate::reply::Reply;
use crate::value::Value;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("get", get),
    ("set", set),
    ("setnx", setnx),
    ("setex", setex),
    ("psetex", psetex),
    ("mget", mget),
    ("mset", mset),
    ("msetnx", msetnx),
    ("getset", getset),
    ("getdel", getdel),
    ("getex", getex),
    ("append", append),
    ("strlen", strlen),
    ("getrange", getrange),
    ("substr", getrange),
    ("setrange", setrange),
    ("incr", incr),
    ("decr", decr),
    ("incrby", incrby),
    ("decrby", decrby),
    ("incrbyfloat", incrbyfloat),
    ("lcs", lcs),
];

const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

// ---------------------------------------------------------------------------
// Key lookups and string values
// ---------------------------------------------------------------------------

/// The bytes of a string value; WRONGTYPE for any other type.
fn string_of(value: &Value) -> Result<Cow<'_, [u8]>, CmdError> {
    value.string_bytes().ok_or_else(wrong_type)
}

fn wrong_type() -> CmdError {
    errors::WRONG_TYPE.into()
}

/// Answers a string value as a bulk string; WRONGTYPE for any other type.
fn reply_string(out: &mut Reply, value: &Value) -> CmdResult {
    if let Value::Int(n) = value {
        out.bulk_int(*n);
    } else {
        out.bulk(&string_of(value)?);
    }
    Ok(())
}

/// The integer a string value holds, for the INCR family.
fn integer_of(value: &Value) -> Result<i64, CmdError> {
    match value {
        Value::Int(n) => Ok(*n),
        other => parse_i64(&string_of(other)?).ok_or_else(|| errors::NOT_INTEGER.into()),
    }
}

fn parse_integer(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64(arg).ok_or_else(|| errors::NOT_INTEGER.into())
}

/// Refuses a string that would grow past proto-max-bulk-len (or overflow).
fn check_string_length(current: usize, added: usize, max: i64) -> CmdResult {
    match (current as u64).checked_add(added as u64) {
        Some(total) if total <= i64::MAX as u64 && total as i64 <= max => Ok(()),
        _ => Err(STRING_TOO_LONG.into()),
    }
}

/// GET's answer for a key: its value, nil when absent, WRONGTYPE for a
/// non-string. Returns whether the key exists. (SET GET, GETSET, GETDEL.)
fn reply_current(ctx: &mut Ctx, key: &[u8]) -> Result<bool, CmdError> {
    match ctx.lookup(key, Lookup::Read) {
        (None, out) => {
            out.null();
            Ok(false)
        }
        (Some(entry), out) => reply_string(out, &entry.value).map(|()| true),
    }
}

// ---------------------------------------------------------------------------
// GET, SET and their variants
// ---------------------------------------------------------------------------

fn get(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    reply_current(ctx, args[1]).map(drop)
}

/// How an expire option counts time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ExpireKind {
    /// EX: seconds from now.
    Ex,
    /// PX: milliseconds from now.
    Px,
    /// EXAT: a Unix time in seconds.
    ExAt,
    /// PXAT: a Unix time in milliseconds.
    PxAt,
}

impl ExpireKind {
    fn from_option(opt: &[u8]) -> Option<ExpireKind> {
        [
            (&b"ex"[..], ExpireKind::Ex),
            (b"px", ExpireKind::Px),
            (b"exat", ExpireKind::ExAt),
            (b"pxat", ExpireKind::PxAt),
        ]
        .into_iter()
        .find(|(name, _)| opt.eq_ignore_ascii_case(name))
        .map(|(_, kind)| kind)
    }
    fn in_seconds(self) -> bool {
        matches!(self, ExpireKind::Ex | ExpireKind::ExAt)
    }
    fn is_relative(self) -> bool {
        matches!(self, ExpireKind::Ex | ExpireKind::Px)
    }
}

/// The options SET and GETEX share a parser for.
#[derive(Default)]
struct ExtendedOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    expire: Option<(ExpireKind, &'a [u8])>,
}

/// Which command's options are being parsed: SET takes NX/XX/GET/KEEPTTL,
/// GETEX takes PERSIST; both take one kind of EX/PX/EXAT/PXAT.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OptionsOf {
    Set,
    GetEx,
}

/// Parses SET's options (from args[3]) or GETEX's (from args[2]). Any
/// unknown word, conflicting pair (NX with XX, KEEPTTL or PERSIST with an
/// expiry, two kinds of expiry) or missing expiry value is a syntax error;
/// repeating the same option is allowed, the last value winning.
fn parse_extended<'a>(args: &[&'a [u8]], of: OptionsOf) -> Result<ExtendedOptions<'a>, CmdError> {
    let mut o = ExtendedOptions::default();
    let mut j = if of == OptionsOf::Set { 3 } else { 2 };
    while j < args.len() {
        let opt = c_str(args[j]);
        let next = args.get(j + 1).copied();
        let is_set = of == OptionsOf::Set;
        if opt.eq_ignore_ascii_case(b"nx") && !o.xx && is_set {
            o.nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") && !o.nx && is_set {
            o.xx = true;
        } else if opt.eq_ignore_ascii_case(b"get") && is_set {
            o.get = true;
        } else if opt.eq_ignore_ascii_case(b"keepttl") && !o.persist && o.expire.is_none() && is_set {
            o.keep_ttl = true;
        } else if opt.eq_ignore_ascii_case(b"persist") && !is_set && o.expire.is_none() && !o.keep_ttl {
            o.persist = true;
        } else {
            match (ExpireKind::from_option(opt), next) {
                (Some(kind), Some(value)) if !o.keep_ttl && !o.persist && o.expire.is_none_or(|(k, _)| k == kind) => {
                    o.expire = Some((kind, value));
                    j += 1;
                }
                _ => return Err(errors::SYNTAX.into()),
            }
        }
        j += 1;
    }
    Ok(o)
}

/// Turns an expire option's value into an absolute Unix time in
/// milliseconds. Zero, negative and overflowing values are refused with
/// the command's name in the message.
fn expire_at_ms(arg: &[u8], kind: ExpireKind, now_ms: i64, command: &str) -> Result<i64, CmdError> {
    let invalid = || CmdError::from(format!("ERR invalid expire time in '{command}' command"));
    let n = parse_integer(arg)?;
    if n <= 0 || (kind.in_seconds() && n > i64::MAX / 1000) {
        return Err(invalid());
    }
    let mut at = if kind.in_seconds() { n * 1000 } else { n };
    if kind.is_relative() {
        // A far-future relative time can overflow; Valkey's sum wraps to a
        // negative number, which the check below refuses.
        at = at.wrapping_add(now_ms);
    }
    if at <= 0 {
        return Err(invalid());
    }
    Ok(at)
}

/// What a SET-like command answers when it sets the key, and when NX/XX
/// stops it.
#[derive(Clone, Copy)]
enum SetAnswer {
    /// +OK, or nil (SET, SETEX, PSETEX).
    OkOrNil,
    /// 1, or 0 (SETNX).
    OneOrZero,
}

struct SetRequest<'a> {
    key: &'a [u8],
    value: &'a [u8],
    options: ExtendedOptions<'a>,
    /// The command's name for error messages.
    command: &'static str,
    answer: SetAnswer,
}

fn set_generic(ctx: &mut Ctx, req: SetRequest) -> CmdResult {
    let o = &req.options;
    let expire_at = match o.expire {
        Some((kind, arg)) => Some(expire_at_ms(arg, kind, ctx.now_ms, req.command)?),
        None => None,
    };
    if o.get {
        reply_current(ctx, req.key)?;
    }
    let found = ctx.lookup(req.key, Lookup::Write).0.is_some();
    if (o.nx && found) || (o.xx && !found) {
        if !o.get {
            match req.answer {
                SetAnswer::OkOrNil => ctx.out.null(),
                SetAnswer::OneOrZero => ctx.out.int(0),
            }
        }
        return Ok(());
    }
    if expire_at.is_some_and(|at| at <= ctx.now_ms) {
        // Already expired: storing it would be pointless; an old value goes.
        if found {
            ctx.db().remove(req.key);
            ctx.dirty(1);
            let deletion = crate::effects::expired_overwrite_deletion(ctx.srv);
            ctx.srv.effects.journal_instead(&[deletion.as_bytes(), req.key]);
            notify(ctx, notify::GENERIC, "del", req.key);
        }
        if !o.get {
            ctx.out.ok();
        }
        return Ok(());
    }
    let value = Value::string(req.value);
    let lru = ctx.lru_now();
    let db = ctx.db();
    match expire_at {
        Some(expire_at) => db.set_with_expiry(req.key, value, expire_at, lru),
        None if o.keep_ttl => db.set_keep_ttl(req.key, value, lru),
        None => db.set(req.key, value, lru),
    }
    ctx.dirty(1);
    if !found {
        notify::new_key(ctx, req.key);
    }
    notify(ctx, notify::STRING, "set", req.key);
    if let (Some(at), Some((kind, _))) = (expire_at, o.expire) {
        // Journalled with the absolute time, so a replay expires it when
        // this one does.
        if kind != ExpireKind::PxAt && ctx.srv.effects.enabled {
            let at = at.to_string();
            ctx.srv.effects.journal_instead(&[&b"SET"[..], req.key, req.value, b"PXAT", at.as_bytes()]);
        }
        notify(ctx, notify::GENERIC, "expire", req.key);
    }
    if !o.get {
        match req.answer {
            SetAnswer::OkOrNil => ctx.out.ok(),
            SetAnswer::OneOrZero => ctx.out.int(1),
        }
    }
    Ok(())
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL]
fn set(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let options = parse_extended(args, OptionsOf::Set)?;
    let journal_without_get = options.get && options.expire.is_none() && ctx.srv.effects.enabled;
    let dirty_before = ctx.srv.dirty;
    set_generic(ctx, SetRequest { key: args[1], value: args[2], options, command: "set", answer: SetAnswer::OkOrNil })?;
    // GET changes nothing: Valkey journals the SET without it.
    if journal_without_get && ctx.srv.dirty != dirty_before {
        let kept: Vec<&[u8]> = args
            .iter()
            .enumerate()
            .filter(|&(j, a)| j < 3 || !a.eq_ignore_ascii_case(b"get"))
            .map(|(_, a)| *a)
            .collect();
        ctx.srv.effects.journal_instead(&kept);
    }
    Ok(())
}

fn setnx(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let options = ExtendedOptions { nx: true, ..Default::default() };
    set_generic(
        ctx,
        SetRequest { key: args[1], value: args[2], options, command: "setnx", answer: SetAnswer::OneOrZero },
    )
}

/// SETEX key seconds value
fn setex(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let options = ExtendedOptions { expire: Some((ExpireKind::Ex, args[2])), ..Default::default() };
    set_generic(ctx, SetRequest { key: args[1], value: args[3], options, command: "setex", answer: SetAnswer::OkOrNil })
}

/// PSETEX key milliseconds value
fn psetex(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let options = ExtendedOptions { expire: Some((ExpireKind::Px, args[2])), ..Default::default() };
    set_generic(
        ctx,
        SetRequest { key: args[1], value: args[3], options, command: "psetex", answer: SetAnswer::OkOrNil },
    )
}

/// GETEX key [EX s|PX ms|EXAT ts|PXAT ms-ts|PERSIST]
fn getex(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let o = parse_extended(args, OptionsOf::GetEx)?;
    let key = args[1];
    let now_ms = ctx.now_ms;
    let (entry, out) = ctx.lookup(key, Lookup::Read);
    let Some(entry) = entry else {
        out.null();
        return Ok(());
    };
    if !entry.value.is_string() {
        return Err(errors::WRONG_TYPE.into());
    }
    // The expiry is validated only once the key is known to be a string.
    let expire_at = match o.expire {
        Some((kind, arg)) => Some((kind, expire_at_ms(arg, kind, now_ms, "getex")?)),
        None => None,
    };
    reply_string(out, &entry.value)?;
    let had_ttl = entry.expire_at != NO_EXPIRE;
    // Never journalled as it was sent: as the deletion, PEXPIREAT or
    // PERSIST it amounts to.
    match expire_at {
        Some((kind, at)) if !kind.is_relative() && at <= now_ms => {
            ctx.db().remove(key);
            ctx.dirty(1);
            let deletion = crate::effects::expired_overwrite_deletion(ctx.srv);
            ctx.srv.effects.journal_instead(&[deletion.as_bytes(), key]);
            notify(ctx, notify::GENERIC, "del", key);
        }
        Some((_, at)) => {
            ctx.db().set_expire(key, at);
            ctx.dirty(1);
            ctx.srv.effects.journal_instead(&[&b"PEXPIREAT"[..], key, at.to_string().as_bytes()]);
            notify(ctx, notify::GENERIC, "expire", key);
        }
        None if o.persist && had_ttl => {
            ctx.db().set_expire(key, NO_EXPIRE);
            ctx.dirty(1);
            ctx.srv.effects.journal_instead(&[&b"PERSIST"[..], key]);
            notify(ctx, notify::GENERIC, "persist", key);
        }
        None => {}
    }
    Ok(())
}

fn getdel(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if reply_current(ctx, args[1])? {
        ctx.db().remove(args[1]);
        ctx.dirty(1);
        ctx.srv.effects.journal_instead(&[&b"DEL"[..], args[1]]);
        notify(ctx, notify::GENERIC, "del", args[1]);
    }
    Ok(())
}

/// GETSET key value: the old value, and the new one set without a TTL.
fn getset(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let existed = reply_current(ctx, args[1])?;
    let lru = ctx.lru_now();
    ctx.db().set(args[1], Value::string(args[2]), lru);
    ctx.dirty(1);
    ctx.srv.effects.journal_instead(&[&b"SET"[..], args[1], args[2]]);
    if !existed {
        notify::new_key(ctx, args[1]);
    }
    notify(ctx, notify::STRING, "set", args[1]);
    Ok(())
}

/// MGET key...: nil for missing keys and for keys of other types.
fn mget(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ctx.out.array(args.len() - 1);
    for key in &args[1..] {
        match ctx.lookup(key, Lookup::Read) {
            (Some(entry), out) if entry.value.is_string() => reply_string(out, &entry.value)?,
            (_, out) => out.null(),
        }
    }
    Ok(())
}

fn mset(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    mset_generic(ctx, args, "mset", false)
}

/// MSETNX key value...: sets all the pairs only if none of the keys exists.
fn msetnx(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    mset_generic(ctx, args, "msetnx", true)
}

fn mset_generic(ctx: &mut Ctx, args: &[&[u8]], command: &str, only_new: bool) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(arity_error(command));
    }
    if only_new && args[1..].chunks(2).any(|pair| ctx.lookup(pair[0], Lookup::Write).0.is_some()) {
        ctx.out.int(0);
        return Ok(());
    }
    let lru = ctx.lru_now();
    for pair in args[1..].chunks(2) {
        // Looked up like Valkey's setKey does: an expired key goes first,
        // and a key set twice is new only the first time.
        let existed = ctx.lookup(pair[0], Lookup::Write).0.is_some();
        ctx.db().set(pair[0], Value::string(pair[1]), lru);
        if !existed {
            notify::new_key(ctx, pair[0]);
        }
        notify(ctx, notify::STRING, "set", pair[0]);
    }
    ctx.dirty((args.len() as u64 - 1) / 2);
    if only_new {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// In-place edits: APPEND, SETRANGE; reads: STRLEN, GETRANGE
// ---------------------------------------------------------------------------

/// APPEND key value: the new length. An existing value becomes `raw`; a new
/// key gets the encoding SET would give it.
fn append(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, tail) = (args[1], args[2]);
    let max = ctx.srv.config.proto_max_bulk_len;
    let new_len = match ctx.lookup(key, Lookup::Write).0 {
        Some(entry) => {
            let current = entry.value.string_len().ok_or_else(wrong_type)?;
            check_string_length(current, tail.len(), max)?;
            let bytes = entry.value.make_raw().ok_or_else(wrong_type)?;
            bytes.extend_from_slice(tail);
            bytes.len()
        }
        None => {
            let lru = ctx.lru_now();
            ctx.db().set(key, Value::string(tail), lru);
            notify::new_key(ctx, key);
            tail.len()
        }
    };
    ctx.dirty(1);
    notify(ctx, notify::STRING, "append", key);
    ctx.out.int(new_len as i64);
    Ok(())
}

fn strlen(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let len = match entry {
        Some(entry) => entry.value.string_len().ok_or_else(wrong_type)?,
        None => 0,
    };
    out.int(len as i64);
    Ok(())
}

/// SETRANGE key offset value: overwrites from `offset`, padding with zero
/// bytes; answers the new length. An empty value changes nothing.
fn setrange(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, patch) = (args[1], args[3]);
    let offset = parse_integer(args[2])?;
    if offset < 0 {
        return Err("ERR offset is out of range".into());
    }
    let offset = offset as usize;
    let max = ctx.srv.config.proto_max_bulk_len;
    let (entry, out) = ctx.lookup(key, Lookup::Write);
    let new_len = match entry {
        Some(entry) => {
            let current = entry.value.string_len().ok_or_else(wrong_type)?;
            if patch.is_empty() {
                out.int(current as i64);
                return Ok(());
            }
            check_string_length(offset, patch.len(), max)?;
            let bytes = entry.value.make_raw().ok_or_else(wrong_type)?;
            let end = offset + patch.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[offset..end].copy_from_slice(patch);
            bytes.len()
        }
        None => {
            if patch.is_empty() {
                out.int(0);
                return Ok(());
            }
            check_string_length(offset, patch.len(), max)?;
            let mut bytes = vec![0u8; offset + patch.len()];
            bytes[offset..].copy_from_slice(patch);
            let new_len = bytes.len();
            let lru = ctx.lru_now();
            // A value built by SETRANGE is `raw` whatever its length.
            ctx.db().set(key, Value::RawStr(Box::new(bytes)), lru);
            notify::new_key(ctx, key);
            new_len
        }
    };
    ctx.dirty(1);
    notify(ctx, notify::STRING, "setrange", key);
    ctx.out.int(new_len as i64);
    Ok(())
}

/// GETRANGE key start end (and its old name SUBSTR): inclusive, negative
/// indexes count from the end, out-of-range ends are clamped.
fn getrange(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let start = parse_integer(args[2])?;
    let end = parse_integer(args[3])?;
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let Some(entry) = entry else {
        out.bulk(b"");
        return Ok(());
    };
    let bytes = string_of(&entry.value)?;
    match byte_range(bytes.len() as i64, start, end) {
        Some((from, to)) => out.bulk(&bytes[from..=to]),
        None => out.bulk(b""),
    }
    Ok(())
}

/// The inclusive byte range GETRANGE answers for a string of `len` bytes,
/// or None when it is empty.
fn byte_range(len: i64, start: i64, end: i64) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    // Negative indexes count from the end; the server's unsigned arithmetic
    // wraps, and whatever is still negative is then clamped to 0.
    let start = if start < 0 { len.wrapping_add(start) } else { start }.max(0);
    let end = if end < 0 { len.wrapping_add(end) } else { end }.max(0).min(len - 1);
    if len == 0 || start > end {
        return None;
    }
    Some((start as usize, end as usize))
}

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

fn incr(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    add_to_integer(ctx, args[1], 1)
}

fn decr(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    add_to_integer(ctx, args[1], -1)
}

fn incrby(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let delta = parse_integer(args[2])?;
    add_to_integer(ctx, args[1], delta)
}

fn decrby(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let delta = parse_integer(args[2])?;
    // Negating i64::MIN has no i64 answer.
    let negated = delta.checked_neg().ok_or_else(|| CmdError::from("ERR decrement would overflow"))?;
    add_to_integer(ctx, args[1], negated)
}

/// Adds `delta` to the integer at `key` (0 when absent), keeping its TTL.
/// The result is always `int`-encoded.
fn add_to_integer(ctx: &mut Ctx, key: &[u8], delta: i64) -> CmdResult {
    let (current, existed) = match ctx.lookup(key, Lookup::Write).0 {
        Some(entry) => (integer_of(&entry.value)?, true),
        None => (0, false),
    };
    let updated = current.checked_add(delta).ok_or_else(|| CmdError::from(errors::OVERFLOW))?;
    let lru = ctx.lru_now();
    ctx.db().set_keep_ttl(key, Value::Int(updated), lru);
    ctx.dirty(1);
    if !existed {
        notify::new_key(ctx, key);
    }
    notify(ctx, notify::STRING, "incrby", key);
    ctx.out.int(updated);
    Ok(())
}

/// INCRBYFLOAT key increment: computed in C `long double` and printed as
/// Valkey prints it; the result is a string (`embstr`/`raw`), never `int`,
/// and the key keeps its TTL.
fn incrbyfloat(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (sum, existed) = {
        let current = match ctx.lookup(key, Lookup::Write).0 {
            Some(entry) => Some(string_of(&entry.value)?),
            None => None,
        };
        let existed = current.is_some();
        (longdouble::add(current.as_deref().unwrap_or(b"0"), args[2]), existed)
    };
    let sum = sum.map_err(|e| match e {
        longdouble::AddError::FirstInvalid | longdouble::AddError::SecondInvalid => CmdError::from(errors::NOT_FLOAT),
        longdouble::AddError::NotFinite => CmdError::from("ERR increment would produce NaN or Infinity"),
    })?;
    let lru = ctx.lru_now();
    ctx.db().set_keep_ttl(key, Value::short_or_raw(&sum), lru);
    ctx.dirty(1);
    // The value computed here, not the increment: a replay must not depend
    // on float rounding.
    ctx.srv.effects.journal_instead(&[&b"SET"[..], key, &sum, b"KEEPTTL"]);
    if !existed {
        notify::new_key(ctx, key);
    }
    notify(ctx, notify::STRING, "incrbyfloat", key);
    ctx.out.bulk(&sum);
    Ok(())
}

// ---------------------------------------------------------------------------
// LCS
// ---------------------------------------------------------------------------

/// What LCS answers.
#[derive(Default)]
struct LcsOptions {
    len_only: bool,
    with_indexes: bool,
    with_match_len: bool,
    min_match_len: i64,
}

/// One run of matching bytes, as inclusive ranges in each string.
struct LcsMatch {
    a: (u32, u32),
    b: (u32, u32),
    len: u32,
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]
fn lcs(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    // Both keys are looked up (and counted) before either is checked.
    let a = ctx.lookup(args[1], Lookup::Read).0.map(|e| e.value.string_bytes().map(Cow::into_owned));
    let b = ctx.lookup(args[2], Lookup::Read).0.map(|e| e.value.string_bytes().map(Cow::into_owned));
    let (Some(a), Some(b)) = (a.unwrap_or(Some(Vec::new())), b.unwrap_or(Some(Vec::new()))) else {
        return Err("ERR The specified keys must contain string values".into());
    };
    let opts = parse_lcs_options(&args[3..])?;
    if opts.len_only && opts.with_indexes {
        return Err("ERR If you want both the length and indexes, please just use IDX.".into());
    }
    if a.len() >= u32::MAX as usize - 1 || b.len() >= u32::MAX as usize - 1 {
        return Err("ERR String too long for LCS".into());
    }
    let table = LcsTable::build(&a, &b, ctx.srv.config.proto_max_bulk_len)?;
    let out = &mut *ctx.out;
    let total = table.length();
    if opts.len_only {
        out.int(total as i64);
        return Ok(());
    }
    let (common, matches) = table.walk_back(&a, &b, opts.min_match_len);
    if !opts.with_indexes {
        out.bulk(&common);
        return Ok(());
    }
    out.map(2);
    out.bulk(b"matches");
    out.array(matches.len());
    for m in &matches {
        out.array(2 + opts.with_match_len as usize);
        out.array(2);
        out.int(m.a.0 as i64);
        out.int(m.a.1 as i64);
        out.array(2);
        out.int(m.b.0 as i64);
        out.int(m.b.1 as i64);
        if opts.with_match_len {
            out.int(m.len as i64);
        }
    }
    out.bulk(b"len");
    out.int(total as i64);
    Ok(())
}

fn parse_lcs_options(opts: &[&[u8]]) -> Result<LcsOptions, CmdError> {
    let mut o = LcsOptions::default();
    let mut j = 0;
    while j < opts.len() {
        let opt = c_str(opts[j]);
        if opt.eq_ignore_ascii_case(b"idx") {
            o.with_indexes = true;
        } else if opt.eq_ignore_ascii_case(b"len") {
            o.len_only = true;
        } else if opt.eq_ignore_ascii_case(b"withmatchlen") {
            o.with_match_len = true;
        } else if opt.eq_ignore_ascii_case(b"minmatchlen") && j + 1 < opts.len() {
            o.min_match_len = parse_integer(opts[j + 1])?.max(0);
            j += 1;
        } else {
            return Err(errors::SYNTAX.into());
        }
        j += 1;
    }
    Ok(o)
}

/// The dynamic-programming table: cell (i, j) holds the LCS length of the
/// first i bytes of `a` and the first j bytes of `b`.
struct LcsTable {
    cells: Vec<u32>,
    width: usize,
    a_len: usize,
    b_len: usize,
}

impl LcsTable {
    /// Builds the table, refusing (as the server does) one whose memory
    /// would exceed proto-max-bulk-len or cannot be allocated.
    fn build(a: &[u8], b: &[u8], max: i64) -> Result<LcsTable, CmdError> {
        let width = b.len() + 1;
        let count = (a.len() + 1) as u64 * width as u64;
        if count * 4 > max.max(0) as u64 {
            return Err("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len".into());
        }
        let mut cells = Vec::new();
        if cells.try_reserve_exact(count as usize).is_err() {
            return Err("ERR Insufficient memory, failed allocating transient memory for LCS".into());
        }
        cells.resize(count as usize, 0u32);
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                cells[i * width + j] = if a[i - 1] == b[j - 1] {
                    cells[(i - 1) * width + j - 1] + 1
                } else {
                    cells[(i - 1) * width + j].max(cells[i * width + j - 1])
                };
            }
        }
        Ok(LcsTable { cells, width, a_len: a.len(), b_len: b.len() })
    }

    fn at(&self, i: usize, j: usize) -> u32 {
        self.cells[i * self.width + j]
    }

    fn length(&self) -> u32 {
        self.at(self.a_len, self.b_len)
    }

    /// Walks from the table's end back to its start, collecting the common
    /// subsequence and its runs of contiguous matches (last runs first, as
    /// the server reports them), keeping runs of at least `min_len` bytes.
    fn walk_back(&self, a: &[u8], b: &[u8], min_len: i64) -> (Vec<u8>, Vec<LcsMatch>) {
        let mut common = vec![0u8; self.length() as usize];
        let mut fill = common.len();
        let mut matches = Vec::new();
        // The run being extended backwards: (a_start, a_end, b_start, b_end).
        let mut run: Option<(usize, usize, usize, usize)> = None;
        let (mut i, mut j) = (self.a_len, self.b_len);
        while i > 0 && j > 0 {
            let mut close_run = false;
            if a[i - 1] == b[j - 1] {
                fill -= 1;
                common[fill] = a[i - 1];
                // A match right after a match always continues the run:
                // every mismatch step closes the open run first.
                run = Some(match run {
                    Some((a_start, a_end, b_start, b_end)) => (a_start - 1, a_end, b_start - 1, b_end),
                    None => (i - 1, i - 1, j - 1, j - 1),
                });
                if let Some((a_start, _, b_start, _)) = run {
                    // A run touching either string's start is complete.
                    close_run = a_start == 0 || b_start == 0;
                }
                i -= 1;
                j -= 1;
            } else {
                if self.at(i - 1, j) > self.at(i, j - 1) {
                    i -= 1;
                } else {
                    j -= 1;
                }
                close_run = run.is_some();
            }
            if close_run {
                if let Some((a_start, a_end, b_start, b_end)) = run.take() {
                    let len = (a_end - a_start + 1) as u32;
                    if min_len == 0 || len as i64 >= min_len {
                        matches.push(LcsMatch {
                            a: (a_start as u32, a_end as u32),
                            b: (b_start as u32, b_end as u32),
                            len,
                        });
                    }
                }
            }
        }
        (common, matches)
    }
}
