//! Bitmaps: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO.
//!
//! A bitmap is a string read as a bit array whose bit 0 is the most
//! significant bit of the first byte; bits past the end of the string read
//! as zero. Commands that write bits first grow the string with zero bytes
//! to the farthest bit they touch and leave it `raw`, as Valkey does.
//! Replies, error texts and the order of checks follow Valkey 8.0.1's
//! bitops.c.

use std::borrow::Cow;

use ferrokey_formats::resp::parse_i64;

use super::args::c_str;
use crate::command::{errors, CmdError, CmdResult, Ctx, Handler, Lookup};
use crate::notify::{self, notify};
use crate::reply::Reply;
use crate::value::Value;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("setbit", setbit),
    ("getbit", getbit),
    ("bitcount", bitcount),
    ("bitpos", bitpos),
    ("bitop", bitop),
    ("bitfield", bitfield),
    ("bitfield_ro", bitfield_ro),
];

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const BAD_BIT: &str = "ERR bit is not an integer or out of range";
const BAD_BITPOS_BIT: &str = "ERR The bit argument must be 1 or 0.";
const BITOP_NOT_ARITY: &str = "ERR BITOP NOT must be called with a single source key.";
const BAD_FIELD_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
const BAD_OVERFLOW: &str = "ERR Invalid OVERFLOW type specified";
const READONLY_FIELD_OP: &str = "ERR BITFIELD_RO only supports the GET subcommand";

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------

fn parse_integer(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64(arg).ok_or_else(|| errors::NOT_INTEGER.into())
}

/// A bit offset argument. With `field_width`, the `#N` form is accepted and
/// means the N-th field of that width (BITFIELD). Offsets whose byte would
/// lie at or past proto-max-bulk-len are refused.
fn parse_bit_offset(arg: &[u8], field_width: Option<u32>, max_bulk_len: i64) -> Result<u64, CmdError> {
    let (digits, multiplier) = match (arg.first(), field_width) {
        (Some(b'#'), Some(width)) => (&arg[1..], width as i64),
        _ => (arg, 1),
    };
    let offset = parse_i64(digits).ok_or(BAD_OFFSET)?.wrapping_mul(multiplier);
    if offset < 0 || (offset >> 3) >= max_bulk_len {
        return Err(BAD_OFFSET.into());
    }
    Ok(offset as u64)
}

/// BIT or BYTE, the unit of a BITCOUNT / BITPOS range: true for bits.
fn parse_range_unit(arg: &[u8]) -> Result<bool, CmdError> {
    let unit = c_str(arg);
    if unit.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if unit.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(errors::SYNTAX.into())
    }
}

/// A BITCOUNT / BITPOS range as given: start, optional end, unit.
struct RangeArgs {
    start: i64,
    end: Option<i64>,
    in_bits: bool,
}

/// Reads `start [end [BIT|BYTE]]` from `rest`, in Valkey's order: start,
/// the unit, then end.
fn parse_range(rest: &[&[u8]]) -> Result<RangeArgs, CmdError> {
    let start = parse_integer(rest[0])?;
    let in_bits = match rest.get(2) {
        Some(unit) => parse_range_unit(unit)?,
        None => false,
    };
    let end = rest.get(1).map(|end| parse_integer(end)).transpose()?;
    Ok(RangeArgs { start, end, in_bits })
}

/// The inclusive bit range a BITCOUNT / BITPOS range selects in a string of
/// `len` bytes (negative indexes count from the end, ends are clamped), or
/// None when it is empty.
fn bit_range(len: usize, range: &RangeArgs) -> Option<(u64, u64)> {
    let unit_len = if range.in_bits { len as i64 * 8 } else { len as i64 };
    let from_end = |i: i64| if i < 0 { unit_len + i } else { i };
    let start = from_end(range.start).max(0);
    let end = from_end(range.end.unwrap_or(len as i64 - 1)).max(0).min(unit_len - 1);
    if start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(if range.in_bits { (start, end) } else { (start * 8, end * 8 + 7) })
}

// ---------------------------------------------------------------------------
// String access
// ---------------------------------------------------------------------------

fn wrong_type() -> CmdError {
    errors::WRONG_TYPE.into()
}

/// A looked-up bitmap (None when the key is missing) and the reply buffer.
type ReadBits<'c> = (Option<Cow<'c, [u8]>>, &'c mut Reply);

/// Looks a key up for reading: its string bytes (the decimal text of an
/// int-encoded value), None when missing, WRONGTYPE for other types.
fn read_bits<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<ReadBits<'c>, CmdError> {
    let (entry, out) = ctx.lookup(key, Lookup::Read);
    match entry {
        None => Ok((None, out)),
        Some(entry) => Ok((Some(entry.value.string_bytes().ok_or_else(wrong_type)?), out)),
    }
}

/// Looks a key up for writing bits up to `last_bit`: the string becomes
/// `raw` and is zero-padded so that bit exists; a missing key is created.
/// Also answers whether the value was created or grew, which counts as a
/// change whatever the bits written.
fn writable_bits<'c>(
    ctx: &'c mut Ctx,
    key: &[u8],
    last_bit: u64,
) -> Result<(&'c mut Vec<u8>, &'c mut Reply, bool), CmdError> {
    let needed = (last_bit >> 3) as usize + 1;
    let created = match ctx.lookup(key, Lookup::Write).0 {
        Some(entry) if !entry.value.is_string() => return Err(wrong_type()),
        Some(_) => false,
        None => {
            let lru = ctx.lru_now();
            ctx.db().set(key, Value::RawStr(Box::default()), lru);
            notify::new_key(ctx, key);
            true
        }
    };
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let bytes = db.get_mut(key, now).and_then(|entry| entry.value.make_raw()).ok_or_else(wrong_type)?;
    let grew = bytes.len() < needed;
    if grew {
        bytes.resize(needed, 0);
    }
    Ok((bytes, out, created || grew))
}

/// Bit `offset` of a bitmap, zero past its end.
fn bit_at(bytes: &[u8], offset: u64) -> bool {
    match bytes.get((offset >> 3) as usize) {
        Some(byte) => byte & (0x80 >> (offset & 7)) != 0,
        None => false,
    }
}

// ---------------------------------------------------------------------------
// SETBIT, GETBIT
// ---------------------------------------------------------------------------

/// SETBIT key offset 0|1: answers the bit's previous value.
fn setbit(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let offset = parse_bit_offset(args[2], None, ctx.srv.config.proto_max_bulk_len)?;
    let on = match parse_i64(args[3]) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(BAD_BIT.into()),
    };
    let (bytes, out, resized) = writable_bits(ctx, args[1], offset)?;
    let byte = &mut bytes[(offset >> 3) as usize];
    let mask = 0x80u8 >> (offset & 7);
    let was_on = *byte & mask != 0;
    if on {
        *byte |= mask;
    } else {
        *byte &= !mask;
    }
    out.int(was_on as i64);
    if resized || was_on != on {
        ctx.dirty(1);
        notify(ctx, notify::STRING, "setbit", args[1]);
    }
    Ok(())
}

fn getbit(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let offset = parse_bit_offset(args[2], None, ctx.srv.config.proto_max_bulk_len)?;
    let (bytes, out) = read_bits(ctx, args[1])?;
    out.int(bytes.is_some_and(|b| bit_at(&b, offset)) as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// BITCOUNT, BITPOS
// ---------------------------------------------------------------------------

fn popcount(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut total: u64 =
        words.by_ref().map(|w| u64::from_ne_bytes(w.try_into().unwrap_or_default()).count_ones() as u64).sum();
    total += words.remainder().iter().map(|b| b.count_ones() as u64).sum::<u64>();
    total
}

/// Set bits in the inclusive bit range `first..=last` of `bytes`.
fn count_bits(bytes: &[u8], first: u64, last: u64) -> u64 {
    let (first_byte, last_byte) = ((first >> 3) as usize, (last >> 3) as usize);
    let whole = popcount(&bytes[first_byte..=last_byte]);
    // Bits of the edge bytes outside the range: the high bits of the first
    // byte before `first`, the low bits of the last byte after `last`.
    let before = (bytes[first_byte] as u32) >> (8 - (first & 7));
    let after = (bytes[last_byte] as u32) & ((1 << (7 - (last & 7))) - 1);
    whole - before.count_ones() as u64 - after.count_ones() as u64
}

/// BITCOUNT key [start [end [BIT|BYTE]]].
fn bitcount(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let range = match args.len() {
        2 => None,
        3..=5 => Some(parse_range(&args[2..])?),
        _ => return Err(errors::SYNTAX.into()),
    };
    let (bytes, out) = read_bits(ctx, args[1])?;
    let Some(bytes) = bytes else {
        out.int(0);
        return Ok(());
    };
    let range = range.unwrap_or(RangeArgs { start: 0, end: None, in_bits: false });
    // Two negative indexes in the wrong order select nothing, whatever the
    // string's length.
    let end = range.end.unwrap_or(bytes.len() as i64 - 1);
    if range.start < 0 && end < 0 && range.start > end {
        out.int(0);
        return Ok(());
    }
    let count = match bit_range(bytes.len(), &range) {
        Some((first, last)) => count_bits(&bytes, first, last),
        None => 0,
    };
    out.int(count as i64);
    Ok(())
}

/// The first bit equal to `wanted` in the inclusive range `first..=last`.
fn find_bit(bytes: &[u8], first: u64, last: u64, wanted: bool) -> Option<u64> {
    let (first_byte, last_byte) = ((first >> 3) as usize, (last >> 3) as usize);
    let uninteresting = if wanted { 0x00 } else { 0xff };
    for (i, &byte) in bytes[first_byte..=last_byte].iter().enumerate() {
        let index = first_byte + i;
        // Bits outside the range are given the value we are not looking for.
        let mut outside = 0u8;
        if index == first_byte {
            outside |= !(0xffu8 >> (first & 7));
        }
        if index == last_byte {
            outside |= (0x7fu8) >> (last & 7);
        }
        let byte = if wanted { byte & !outside } else { byte | outside };
        if byte != uninteresting {
            let within = if wanted { byte.leading_zeros() } else { byte.leading_ones() };
            return Some(index as u64 * 8 + within as u64);
        }
    }
    None
}

/// BITPOS key 0|1 [start [end [BIT|BYTE]]]: the first bit with that value.
/// A missing key is all zeros. Looking for a clear bit with no end given
/// treats the string as zero-padded on the right, so the answer may be the
/// bit just past the range.
fn bitpos(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let wanted = match parse_integer(args[2])? {
        0 => false,
        1 => true,
        _ => return Err(BAD_BITPOS_BIT.into()),
    };
    let range = match args.len() {
        3 => None,
        4..=6 => Some(parse_range(&args[3..])?),
        _ => return Err(errors::SYNTAX.into()),
    };
    let (bytes, out) = read_bits(ctx, args[1])?;
    let Some(bytes) = bytes else {
        out.int(if wanted { -1 } else { 0 });
        return Ok(());
    };
    let range = range.unwrap_or(RangeArgs { start: 0, end: None, in_bits: false });
    let Some((first, last)) = bit_range(bytes.len(), &range) else {
        out.int(-1);
        return Ok(());
    };
    let position = match find_bit(&bytes, first, last, wanted) {
        Some(position) => position as i64,
        None if !wanted && range.end.is_none() => last as i64 + 1,
        None => -1,
    };
    out.int(position);
    Ok(())
}

// ---------------------------------------------------------------------------
// BITOP
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP AND|OR|XOR|NOT destkey key...: stores the result, as long as the
/// longest source (missing keys are empty strings; shorter sources are
/// zero-padded), and answers its length. An empty result deletes destkey.
fn bitop(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let name = c_str(args[1]);
    let op = if name.eq_ignore_ascii_case(b"and") {
        BitOp::And
    } else if name.eq_ignore_ascii_case(b"or") {
        BitOp::Or
    } else if name.eq_ignore_ascii_case(b"xor") {
        BitOp::Xor
    } else if name.eq_ignore_ascii_case(b"not") {
        BitOp::Not
    } else {
        return Err(errors::SYNTAX.into());
    };
    if op == BitOp::Not && args.len() != 4 {
        return Err(BITOP_NOT_ARITY.into());
    }
    let (dest, sources) = (args[2], &args[3..]);
    // Look every source up (expiring it, counting hits and misses) in
    // order, stopping at the first one of the wrong type.
    for key in sources {
        if let Some(entry) = ctx.lookup(key, Lookup::Read).0 {
            if !entry.value.is_string() {
                return Err(wrong_type());
            }
        }
    }
    let result = {
        let db = ctx.db();
        let strings: Vec<Cow<[u8]>> = sources
            .iter()
            .map(|key| db.peek(key).and_then(|entry| entry.value.string_bytes()).unwrap_or(Cow::Borrowed(&[])))
            .collect();
        combine(op, &strings)
    };
    let len = result.len();
    if len > 0 {
        let lru = ctx.lru_now();
        let existed = ctx.lookup(dest, Lookup::Write).0.is_some();
        ctx.db().set(dest, Value::RawStr(Box::new(result)), lru);
        ctx.dirty(1);
        if !existed {
            notify::new_key(ctx, dest);
        }
        notify(ctx, notify::STRING, "set", dest);
    } else if ctx.db().remove(dest).is_some() {
        ctx.dirty(1);
        notify(ctx, notify::GENERIC, "del", dest);
    }
    ctx.out.int(len as i64);
    Ok(())
}

/// The bytes of `op` applied to `sources`, as long as the longest one.
fn combine(op: BitOp, sources: &[Cow<[u8]>]) -> Vec<u8> {
    let max_len = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut result = vec![0u8; max_len];
    result[..sources[0].len()].copy_from_slice(&sources[0]);
    match op {
        BitOp::Not => result.iter_mut().for_each(|b| *b = !*b),
        BitOp::And => {
            for source in &sources[1..] {
                for (r, s) in result.iter_mut().zip(source.iter()) {
                    *r &= s;
                }
                // Past its end a source reads as zeros.
                if source.len() < max_len {
                    result[source.len()..].fill(0);
                }
            }
        }
        BitOp::Or | BitOp::Xor => {
            for source in &sources[1..] {
                for (r, s) in result.iter_mut().zip(source.iter()) {
                    if op == BitOp::Or {
                        *r |= s;
                    } else {
                        *r ^= s;
                    }
                }
            }
        }
    }
    result
}

// ---------------------------------------------------------------------------
// BITFIELD, BITFIELD_RO
// ---------------------------------------------------------------------------

/// What an INCRBY or SET that does not fit its field does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Overflow {
    /// Keep the low bits (two's complement for signed fields).
    Wrap,
    /// Clamp to the field's minimum or maximum.
    Sat,
    /// Write nothing and answer nil.
    Fail,
}

#[derive(Clone, Copy, Debug)]
enum FieldAction {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// One BITFIELD operation, with the OVERFLOW mode in force where it appeared.
#[derive(Clone, Copy, Debug)]
struct FieldOp {
    action: FieldAction,
    offset: u64,
    bits: u32,
    signed: bool,
    overflow: Overflow,
}

/// A field type: `i1`..`i64` or `u1`..`u63` (a u64 could not be answered
/// as a RESP integer). Read as a C string.
fn parse_field_type(arg: &[u8]) -> Result<(bool, u32), CmdError> {
    let arg = c_str(arg);
    let (signed, max_bits) = match arg.first() {
        Some(b'i') => (true, 64),
        Some(b'u') => (false, 63),
        _ => return Err(BAD_FIELD_TYPE.into()),
    };
    match parse_i64(&arg[1..]) {
        Some(bits) if (1..=max_bits).contains(&bits) => Ok((signed, bits as u32)),
        _ => Err(BAD_FIELD_TYPE.into()),
    }
}

/// Parses every operation before anything runs, so a bad argument anywhere
/// fails the whole command.
fn parse_field_ops(args: &[&[u8]], max_bulk_len: i64) -> Result<Vec<FieldOp>, CmdError> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let remaining = args.len() - j - 1;
        let sub = c_str(args[j]);
        let takes_value = if sub.eq_ignore_ascii_case(b"get") && remaining >= 2 {
            false
        } else if (sub.eq_ignore_ascii_case(b"set") || sub.eq_ignore_ascii_case(b"incrby")) && remaining >= 3 {
            true
        } else if sub.eq_ignore_ascii_case(b"overflow") && remaining >= 1 {
            let mode = c_str(args[j + 1]);
            overflow = if mode.eq_ignore_ascii_case(b"wrap") {
                Overflow::Wrap
            } else if mode.eq_ignore_ascii_case(b"sat") {
                Overflow::Sat
            } else if mode.eq_ignore_ascii_case(b"fail") {
                Overflow::Fail
            } else {
                return Err(BAD_OVERFLOW.into());
            };
            j += 2;
            continue;
        } else {
            return Err(errors::SYNTAX.into());
        };
        let (signed, bits) = parse_field_type(args[j + 1])?;
        let offset = parse_bit_offset(args[j + 2], Some(bits), max_bulk_len)?;
        let action = if takes_value {
            let value = parse_integer(args[j + 3])?;
            if sub.eq_ignore_ascii_case(b"set") {
                FieldAction::Set(value)
            } else {
                FieldAction::IncrBy(value)
            }
        } else {
            FieldAction::Get
        };
        ops.push(FieldOp { action, offset, bits, signed, overflow });
        j += if takes_value { 4 } else { 3 };
    }
    Ok(ops)
}

/// The unsigned integer in bits `offset..offset + bits` (most significant
/// first), reading zeros past the end of `bytes`.
fn get_unsigned(bytes: &[u8], offset: u64, bits: u32) -> u64 {
    (0..bits as u64).fold(0, |value, i| (value << 1) | bit_at(bytes, offset + i) as u64)
}

fn get_signed(bytes: &[u8], offset: u64, bits: u32) -> i64 {
    let raw = get_unsigned(bytes, offset, bits);
    // Sign-extend from the field's top bit.
    let unused = 64 - bits;
    ((raw << unused) as i64) >> unused
}

/// Writes the low `bits` bits of `value` at `offset`; the bytes must reach.
fn set_unsigned(bytes: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let bit = offset + i;
        let mask = 0x80u8 >> (bit & 7);
        let byte = &mut bytes[(bit >> 3) as usize];
        if value & (1 << (bits as u64 - 1 - i)) != 0 {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

/// Whether `value + incr` leaves an unsigned field of `bits` bits: 1 above,
/// -1 below, 0 when it fits; with the value WRAP or SAT stores instead. A
/// SET is checked as `value + 0`, with a negative value read as a huge one.
fn unsigned_overflow(value: u64, incr: i64, bits: u32, mode: Overflow) -> (i32, Option<u64>) {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = value.wrapping_neg() as i64;
    let wrapped = || value.wrapping_add(incr as u64) & max;
    if value > max || (incr > 0 && incr > max_incr) {
        (1, limit_of(mode, wrapped, max))
    } else if incr < 0 && incr < min_incr {
        (-1, limit_of(mode, wrapped, 0))
    } else {
        (0, None)
    }
}

/// The signed counterpart of [`unsigned_overflow`]. The comparisons are
/// Valkey's, including how they behave for values far outside the field
/// (their differences wrap around 64 bits).
fn signed_overflow(value: i64, incr: i64, bits: u32, mode: Overflow) -> (i32, Option<i64>) {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrapped = || {
        let sum = value.wrapping_add(incr);
        let unused = 64 - bits;
        (sum << unused) >> unused
    };
    if value > max || (bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr) {
        (1, limit_of(mode, wrapped, max))
    } else if value < min || (bits != 64 && incr < min_incr) || (value < 0 && incr < 0 && incr < min_incr) {
        (-1, limit_of(mode, wrapped, min))
    } else {
        (0, None)
    }
}

fn limit_of<T>(mode: Overflow, wrapped: impl FnOnce() -> T, saturated: T) -> Option<T> {
    match mode {
        Overflow::Wrap => Some(wrapped()),
        Overflow::Sat => Some(saturated),
        Overflow::Fail => None,
    }
}

/// Runs a SET or INCRBY: answers the old value (SET) or the new one
/// (INCRBY), or nil when FAIL refuses it. Returns whether the bits changed,
/// or None when nothing was written.
fn run_field_write(bytes: &mut [u8], op: &FieldOp, out: &mut Reply) -> Option<bool> {
    let (FieldAction::Set(arg) | FieldAction::IncrBy(arg)) = op.action else { return None };
    let is_incr = matches!(op.action, FieldAction::IncrBy(_));
    let (old, new, reply) = if op.signed {
        let old = get_signed(bytes, op.offset, op.bits);
        let (value, incr) = if is_incr { (old, arg) } else { (arg, 0) };
        let (overflowed, limit) = signed_overflow(value, incr, op.bits, op.overflow);
        let new = if overflowed != 0 { limit } else { Some(value.wrapping_add(incr)) };
        let Some(new) = new else {
            out.null();
            return None;
        };
        (old as u64, new as u64, if is_incr { new } else { old })
    } else {
        let old = get_unsigned(bytes, op.offset, op.bits);
        let (value, incr) = if is_incr { (old, arg) } else { (arg as u64, 0) };
        let (overflowed, limit) = unsigned_overflow(value, incr, op.bits, op.overflow);
        let new = if overflowed != 0 { limit } else { Some(value.wrapping_add(incr as u64)) };
        let Some(new) = new else {
            out.null();
            return None;
        };
        (old, new, if is_incr { new as i64 } else { old as i64 })
    };
    out.int(reply);
    set_unsigned(bytes, op.offset, op.bits, new);
    Some(old != new)
}

fn run_field_get(bytes: &[u8], op: &FieldOp, out: &mut Reply) {
    if op.signed {
        out.int(get_signed(bytes, op.offset, op.bits));
    } else {
        out.int(get_unsigned(bytes, op.offset, op.bits) as i64);
    }
}

/// BITFIELD key [GET type offset] [SET type offset value]
/// [INCRBY type offset increment] [OVERFLOW WRAP|SAT|FAIL]...
fn bitfield(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    bitfield_generic(ctx, args, false)
}

/// BITFIELD_RO key [GET type offset]...
fn bitfield_ro(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    bitfield_generic(ctx, args, true)
}

fn bitfield_generic(ctx: &mut Ctx, args: &[&[u8]], read_only: bool) -> CmdResult {
    let ops = parse_field_ops(args, ctx.srv.config.proto_max_bulk_len)?;
    let last_written_bit =
        ops.iter().filter(|op| !matches!(op.action, FieldAction::Get)).map(|op| op.offset + op.bits as u64 - 1).max();
    let Some(last_bit) = last_written_bit else {
        let (bytes, out) = read_bits(ctx, args[1])?;
        let bytes = bytes.unwrap_or_default();
        out.array(ops.len());
        for op in &ops {
            run_field_get(&bytes, op, out);
        }
        return Ok(());
    };
    if read_only {
        return Err(READONLY_FIELD_OP.into());
    }
    let (bytes, out, resized) = writable_bits(ctx, args[1], last_bit)?;
    out.array(ops.len());
    let mut changes = 0;
    for op in &ops {
        match op.action {
            FieldAction::Get => run_field_get(bytes, op, out),
            FieldAction::Set(_) | FieldAction::IncrBy(_) => {
                // A write counts as a change when the string was created
                // or grew, even if it stores the bits that were there.
                if let Some(changed) = run_field_write(bytes, op, out) {
                    if changed || resized {
                        changes += 1;
                    }
                }
            }
        }
    }
    ctx.dirty(changes);
    if changes > 0 {
        notify(ctx, notify::STRING, "setbit", args[1]);
    }
    Ok(())
}
