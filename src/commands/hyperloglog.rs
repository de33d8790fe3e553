//! HyperLogLog: PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST, in Valkey's
//! own sparse/dense representation.
//!
//! A HyperLogLog is a plain string value, so clients can GET it, SET it
//! back, DUMP and RESTORE it into a real Valkey: every byte must be the one
//! Valkey would have written. The layout is Valkey's:
//!
//! - a 16-byte header: `HYLL`, the encoding (0 dense, 1 sparse), three zero
//!   bytes, then the cached cardinality as 8 little-endian bytes whose top
//!   bit, when set, marks the cache stale;
//! - dense: 16384 registers of 6 bits packed from the least significant bit
//!   of each byte upwards (12288 bytes);
//! - sparse: run-length opcodes: `00xxxxxx` ZERO (1..64 zero registers),
//!   `01xxxxxx yyyyyyyy` XZERO (1..16384 zero registers), `1vvvvvxx` VAL
//!   (1..4 registers of value 1..32).
//!
//! Elements are hashed with MurmurHash64A (seed 0xadc83b19): the low 14
//! bits pick the register, the run of zeros above them (plus one) is the
//! value. The cardinality comes from the register histogram through Otmar
//! Ertl's improved estimator. Sparse HLLs are edited in place with the same
//! splitting and merging of opcodes as Valkey, and promoted to dense when a
//! value above 32 is needed or the string would pass hll-sparse-max-bytes.

use rand::Rng;

use super::args::{c_str, c_string_lossy};
use crate::command::{errors, CmdError, CmdResult, Ctx, Handler, Lookup};
use crate::commands::server::config_value;
use crate::notify::{self, notify};
use crate::reply::Reply;
use crate::value::Value;

pub const COMMANDS: &[(&str, Handler)] =
    &[("pfadd", pfadd), ("pfcount", pfcount), ("pfmerge", pfmerge), ("pfdebug", pfdebug), ("pfselftest", pfselftest)];

const NOT_AN_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPTED: &str = "INVALIDOBJ Corrupted HLL object detected";

const HEADER_LEN: usize = 16;
/// Bits of the hash that pick a register.
const INDEX_BITS: u32 = 14;
const REGISTERS: usize = 1 << INDEX_BITS;
/// Bits of the hash left to count zeros in.
const COUNT_BITS: usize = 64 - INDEX_BITS as usize;
const REGISTER_BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << REGISTER_BITS) - 1;
const DENSE_LEN: usize = HEADER_LEN + (REGISTERS * REGISTER_BITS).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const ENCODING_BYTE: usize = 4;
/// The byte holding the cached cardinality's top bit, the stale mark.
const CACHE_FLAG_BYTE: usize = 15;
const HASH_SEED: u64 = 0xadc8_3b19;

const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;

/// 0.5 / ln 2, the estimator's alpha as the register count grows.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// The sparse or dense data failed to describe exactly 16384 registers.
#[derive(Debug)]
struct Corrupted;

impl From<Corrupted> for CmdError {
    fn from(_: Corrupted) -> CmdError {
        CORRUPTED.into()
    }
}

// ---------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------

/// MurmurHash2, 64-bit version, reading 8-byte blocks little-endian.
fn murmur_hash64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for block in blocks.by_ref() {
        let mut k = u64::from_le_bytes(block.try_into().unwrap_or_default());
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element falls in and the value it offers that register:
/// the length of the run of zeros after the index bits, counting the
/// closing one (1..=51).
fn register_for(element: &[u8]) -> (usize, u8) {
    let hash = murmur_hash64a(element, HASH_SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    // A guard bit caps the run at COUNT_BITS zeros.
    let rest = (hash >> INDEX_BITS) | (1 << COUNT_BITS);
    (index, rest.trailing_zeros() as u8 + 1)
}

// ---------------------------------------------------------------------------
// Dense registers
// ---------------------------------------------------------------------------

fn dense_get(registers: &[u8], index: usize) -> u8 {
    let byte = index * REGISTER_BITS / 8;
    let shift = index * REGISTER_BITS % 8;
    let low = registers[byte] as u16;
    let high = registers.get(byte + 1).copied().unwrap_or(0) as u16;
    (((low | (high << 8)) >> shift) as u8) & REGISTER_MAX
}

fn dense_put(registers: &mut [u8], index: usize, value: u8) {
    let byte = index * REGISTER_BITS / 8;
    let shift = index * REGISTER_BITS % 8;
    let bits = (value as u16) << shift;
    let mask = (REGISTER_MAX as u16) << shift;
    registers[byte] = (registers[byte] & !(mask as u8)) | bits as u8;
    if mask >> 8 != 0 {
        let next = &mut registers[byte + 1];
        *next = (*next & !((mask >> 8) as u8)) | (bits >> 8) as u8;
    }
}

/// Raises a dense register to `value`; returns whether it changed.
fn dense_raise(registers: &mut [u8], index: usize, value: u8) -> bool {
    if value > dense_get(registers, index) {
        dense_put(registers, index, value);
        true
    } else {
        false
    }
}

// ---------------------------------------------------------------------------
// Sparse opcodes
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Opcode {
    Zero(usize),
    XZero(usize),
    Val(u8, usize),
}

impl Opcode {
    /// The opcode at `at`. Past the end a byte reads as zero, as the string
    /// terminator does in Valkey's buffers (a cut-off XZERO).
    fn read(data: &[u8], at: usize) -> Opcode {
        let op = data[at];
        if op & 0x80 != 0 {
            Opcode::Val(((op >> 2) & 0x1f) + 1, (op & 0x3) as usize + 1)
        } else if op & 0x40 != 0 {
            let low = data.get(at + 1).copied().unwrap_or(0) as usize;
            Opcode::XZero((((op & 0x3f) as usize) << 8 | low) + 1)
        } else {
            Opcode::Zero((op & 0x3f) as usize + 1)
        }
    }

    /// Registers covered.
    fn span(self) -> usize {
        match self {
            Opcode::Zero(n) | Opcode::XZero(n) | Opcode::Val(_, n) => n,
        }
    }

    /// Bytes taken.
    fn width(self) -> usize {
        if matches!(self, Opcode::XZero(_)) {
            2
        } else {
            1
        }
    }

    /// The opcode's bytes; only the first [`Opcode::width`] are used.
    fn encode(self) -> [u8; 2] {
        match self {
            Opcode::Zero(n) => [(n - 1) as u8, 0],
            Opcode::XZero(n) => [0x40 | ((n - 1) >> 8) as u8, ((n - 1) & 0xff) as u8],
            Opcode::Val(v, n) => [0x80 | ((v - 1) << 2) | (n - 1) as u8, 0],
        }
    }

    fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.encode()[..self.width()]);
    }

    /// Overwrites a one-byte opcode in place.
    fn write_at(self, hll: &mut [u8], at: usize) {
        hll[at] = self.encode()[0];
    }

    /// A run of zero registers, in the shortest opcode that holds it.
    fn zeros(n: usize) -> Opcode {
        if n > ZERO_MAX_LEN {
            Opcode::XZero(n)
        } else {
            Opcode::Zero(n)
        }
    }
}

/// The opcodes of a sparse HLL's data, with their positions.
fn opcodes(data: &[u8]) -> impl Iterator<Item = (usize, Opcode)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= data.len() {
            return None;
        }
        let op = Opcode::read(data, at);
        let here = at;
        at += op.width();
        Some((here, op))
    })
}

/// Calls `visit(index, value)` for every non-zero register of sparse data.
/// Fails when the opcodes do not cover exactly 16384 registers; a VAL run
/// reaching past the last register stops the walk.
fn for_each_sparse_value(data: &[u8], mut visit: impl FnMut(usize, u8)) -> Result<(), Corrupted> {
    let mut index = 0;
    for (_, op) in opcodes(data) {
        if let Opcode::Val(value, len) = op {
            if index + len > REGISTERS {
                break;
            }
            (index..index + len).for_each(|i| visit(i, value));
        }
        index += op.span();
    }
    if index == REGISTERS {
        Ok(())
    } else {
        Err(Corrupted)
    }
}

/// A new, empty HLL: sparse, all registers zero, cached cardinality 0.
fn new_hll() -> Vec<u8> {
    let mut hll = Vec::with_capacity(HEADER_LEN + 2);
    hll.extend_from_slice(b"HYLL");
    hll.push(SPARSE);
    hll.resize(HEADER_LEN, 0);
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(XZERO_MAX_LEN);
        Opcode::XZero(run).write(&mut hll);
        left -= run;
    }
    hll
}

fn invalidate_cache(hll: &mut [u8]) {
    hll[CACHE_FLAG_BYTE] |= 0x80;
}

/// The dense form of a sparse HLL, keeping its header (and so its cache).
fn sparse_to_dense(hll: &[u8]) -> Result<Vec<u8>, Corrupted> {
    let mut dense = vec![0u8; DENSE_LEN];
    dense[..HEADER_LEN].copy_from_slice(&hll[..HEADER_LEN]);
    dense[ENCODING_BYTE] = DENSE;
    let registers = &mut dense[HEADER_LEN..];
    for_each_sparse_value(&hll[HEADER_LEN..], |i, v| dense_put(registers, i, v))?;
    Ok(dense)
}

/// Turns a sparse HLL dense in place.
fn promote(hll: &mut Vec<u8>) -> Result<(), Corrupted> {
    *hll = sparse_to_dense(hll)?;
    Ok(())
}

/// Raises register `index` of a sparse HLL to `value`, splitting the opcode
/// that covers it and merging equal neighbours afterwards; promotes to
/// dense when the value does not fit a VAL opcode or the string would grow
/// past `max_bytes`. Returns whether the register changed.
fn sparse_raise(hll: &mut Vec<u8>, index: usize, value: u8, max_bytes: usize) -> Result<bool, Corrupted> {
    if value > VAL_MAX_VALUE {
        return promote_and_raise(hll, index, value);
    }
    // Find the opcode covering the register, and the one before it.
    let mut first = 0;
    let mut previous = None;
    let mut found = None;
    for (at, op) in opcodes(&hll[HEADER_LEN..]) {
        if index < first + op.span() {
            found = Some((HEADER_LEN + at, op));
            break;
        }
        previous = Some(HEADER_LEN + at);
        first += op.span();
    }
    let Some((at, op)) = found else { return Err(Corrupted) };
    match op {
        Opcode::Val(current, _) if current >= value => return Ok(false),
        Opcode::Val(_, 1) | Opcode::Zero(1) => Opcode::Val(value, 1).write_at(hll, at),
        _ => {
            let last = first + op.span() - 1;
            let mut sequence = Vec::with_capacity(5);
            let (before, after) = (index - first, last - index);
            let side = |n: usize| match op {
                Opcode::Val(current, _) => Opcode::Val(current, n),
                _ => Opcode::zeros(n),
            };
            if before > 0 {
                side(before).write(&mut sequence);
            }
            Opcode::Val(value, 1).write(&mut sequence);
            if after > 0 {
                side(after).write(&mut sequence);
            }
            let old_len = hll.len();
            let new_len = old_len + sequence.len() - op.width();
            if sequence.len() > op.width() && new_len > max_bytes {
                return promote_and_raise(hll, index, value);
            }
            let replaced_end = (at + op.width()).min(old_len);
            hll.splice(at..replaced_end, sequence);
            // A cut-off XZERO at the very end counted two bytes it did not
            // have: Valkey's length arithmetic drops the last byte written.
            hll.truncate(new_len);
        }
    }
    merge_adjacent_values(hll, previous.unwrap_or(HEADER_LEN));
    invalidate_cache(hll);
    Ok(true)
}

/// After an edit, joins neighbouring VAL opcodes of the same value while
/// their lengths fit one opcode, looking at up to five opcodes from `from`.
fn merge_adjacent_values(hll: &mut Vec<u8>, from: usize) {
    let mut at = from;
    let mut budget = 5;
    while at < hll.len() && budget > 0 {
        budget -= 1;
        let op = Opcode::read(hll, at);
        let Opcode::Val(value, len) = op else {
            at += op.width();
            continue;
        };
        if at + 1 < hll.len() {
            if let Opcode::Val(next_value, next_len) = Opcode::read(hll, at + 1) {
                if next_value == value && len + next_len <= VAL_MAX_LEN {
                    Opcode::Val(value, len + next_len).write_at(hll, at + 1);
                    hll.remove(at);
                    // Try again from the same place: the merged run may
                    // join the next one too.
                    continue;
                }
            }
        }
        at += 1;
    }
}

fn promote_and_raise(hll: &mut Vec<u8>, index: usize, value: u8) -> Result<bool, Corrupted> {
    promote(hll)?;
    Ok(dense_raise(&mut hll[HEADER_LEN..], index, value))
}

/// Adds an element; returns whether a register changed.
fn hll_add(hll: &mut Vec<u8>, element: &[u8], max_bytes: usize) -> Result<bool, Corrupted> {
    let (index, value) = register_for(element);
    if hll[ENCODING_BYTE] == DENSE {
        Ok(dense_raise(&mut hll[HEADER_LEN..], index, value))
    } else {
        sparse_raise(hll, index, value, max_bytes)
    }
}

// ---------------------------------------------------------------------------
// Counting and merging
// ---------------------------------------------------------------------------

/// How many registers hold each value.
type Histogram = [u64; 64];

fn dense_histogram(registers: &[u8]) -> Histogram {
    let mut histogram = [0; 64];
    for index in 0..REGISTERS {
        histogram[dense_get(registers, index) as usize] += 1;
    }
    histogram
}

fn sparse_histogram(data: &[u8]) -> Result<Histogram, Corrupted> {
    let mut histogram = [0; 64];
    let mut covered = 0;
    for (_, op) in opcodes(data) {
        let value = match op {
            Opcode::Val(value, _) => value as usize,
            _ => 0,
        };
        histogram[value] += op.span() as u64;
        covered += op.span();
    }
    if covered == REGISTERS {
        Ok(histogram)
    } else {
        Err(Corrupted)
    }
}

/// One register per byte (the union PFCOUNT builds over several keys).
fn raw_histogram(registers: &[u8]) -> Histogram {
    let mut histogram = [0; 64];
    for &r in registers {
        histogram[r as usize] += 1;
    }
    histogram
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if previous == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        let gap = 1.0 - x;
        z -= gap * gap * y;
        if previous == z {
            return z / 3.0;
        }
    }
}

/// Ertl's improved estimator ("New cardinality estimation algorithms for
/// HyperLogLog sketches", 2017), with Valkey's operation order so that the
/// floating-point result, and so the count, is the same.
fn estimate(histogram: &Histogram) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histogram[COUNT_BITS + 1] as f64) / m);
    for j in (1..=COUNT_BITS).rev() {
        z += histogram[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histogram[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// The cardinality of a valid HLL string.
fn hll_count(hll: &[u8]) -> Result<u64, Corrupted> {
    let histogram = if hll[ENCODING_BYTE] == DENSE {
        dense_histogram(&hll[HEADER_LEN..])
    } else {
        sparse_histogram(&hll[HEADER_LEN..])?
    };
    Ok(estimate(&histogram))
}

/// Raises each of `max` (one register per byte) to the HLL's register.
fn merge_into(max: &mut [u8], hll: &[u8]) -> Result<(), Corrupted> {
    if hll[ENCODING_BYTE] == DENSE {
        let registers = &hll[HEADER_LEN..];
        for (index, slot) in max.iter_mut().enumerate() {
            *slot = (*slot).max(dense_get(registers, index));
        }
        Ok(())
    } else {
        for_each_sparse_value(&hll[HEADER_LEN..], |index, value| max[index] = max[index].max(value))
    }
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// Checks that a value is a HyperLogLog string: WRONGTYPE for other types,
/// the HyperLogLog WRONGTYPE for strings that are not one (int-encoded,
/// shorter than the header, no magic, unknown encoding, dense of the wrong
/// size). The registers themselves are checked as they are read.
fn check_hll(value: &Value) -> CmdResult {
    let bytes = match value {
        Value::EmbStr(b) => &b[..],
        Value::RawStr(v) => v.as_slice(),
        Value::Int(_) => return Err(NOT_AN_HLL.into()),
        _ => return Err(errors::WRONG_TYPE.into()),
    };
    let valid = bytes.len() >= HEADER_LEN
        && bytes.starts_with(b"HYLL")
        && bytes[ENCODING_BYTE] <= SPARSE
        && (bytes[ENCODING_BYTE] != DENSE || bytes.len() == DENSE_LEN);
    if valid {
        Ok(())
    } else {
        Err(NOT_AN_HLL.into())
    }
}

/// The bytes of a value already checked by [`check_hll`], made `raw` to be
/// edited in place (Valkey unshares the value even when it only updates
/// the cache).
fn hll_bytes_mut(value: &mut Value) -> Result<&mut Vec<u8>, CmdError> {
    check_hll(value)?;
    value.make_raw().ok_or_else(|| NOT_AN_HLL.into())
}

/// The bytes of a value already checked by [`check_hll`].
fn hll_bytes(value: &Value) -> &[u8] {
    match value {
        Value::EmbStr(b) => b,
        Value::RawStr(v) => v,
        _ => &[],
    }
}

/// Looks a key up for changing its HLL, creating an empty one when the key
/// is missing (and saying so); the value is checked and made `raw`.
fn writable_hll<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<(&'c mut Vec<u8>, &'c mut Reply, bool), CmdError> {
    let created = ctx.lookup(key, Lookup::Write).0.is_none();
    if created {
        let lru = ctx.lru_now();
        ctx.db().set(key, Value::RawStr(Box::new(new_hll())), lru);
        notify::new_key(ctx, key);
    }
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    // Found or inserted just above.
    let entry = db.get_mut(key, now).ok_or(errors::NO_SUCH_KEY)?;
    Ok((hll_bytes_mut(&mut entry.value)?, out, created))
}

/// hll-sparse-max-bytes: how long a sparse HLL may grow.
fn sparse_max_bytes(ctx: &Ctx) -> usize {
    config_value(ctx.srv, "hll-sparse-max-bytes").parse().unwrap_or(3000)
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// PFADD key [element...]: 1 when the key was created or a register
/// changed, else 0.
fn pfadd(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let max_bytes = sparse_max_bytes(ctx);
    let (key, elements) = (args[1], &args[2..]);
    let (hll, out, created) = writable_hll(ctx, key)?;
    let mut updated = created as u64;
    for element in elements {
        if hll_add(hll, element, max_bytes)? {
            updated += 1;
        }
    }
    if updated > 0 {
        invalidate_cache(hll);
    }
    out.int((updated > 0) as i64);
    ctx.dirty(updated);
    if updated > 0 {
        notify(ctx, notify::STRING, "pfadd", key);
    }
    Ok(())
}

/// PFCOUNT key [key...]: the estimated cardinality of one HLL, cached in
/// its header (which changes the stored bytes), or of the union of several.
fn pfcount(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 2 {
        let mut max = vec![0u8; REGISTERS];
        for key in &args[1..] {
            if let Some(entry) = ctx.lookup(key, Lookup::Read).0 {
                check_hll(&entry.value)?;
                merge_into(&mut max, hll_bytes(&entry.value))?;
            }
        }
        ctx.out.int(estimate(&raw_histogram(&max)) as i64);
        return Ok(());
    }
    let (entry, out) = ctx.lookup(args[1], Lookup::Read);
    let Some(entry) = entry else {
        out.int(0);
        return Ok(());
    };
    let hll = hll_bytes_mut(&mut entry.value)?;
    let cache: [u8; 8] = hll[8..HEADER_LEN].try_into().unwrap_or_default();
    if cache[7] & 0x80 == 0 {
        out.int(u64::from_le_bytes(cache) as i64);
        return Ok(());
    }
    let count = hll_count(hll)?;
    hll[8..HEADER_LEN].copy_from_slice(&count.to_le_bytes());
    out.int(count as i64);
    ctx.dirty(1);
    Ok(())
}

/// PFMERGE destkey [sourcekey...]: destkey becomes the union of itself and
/// the sources; dense when any input is.
fn pfmerge(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let max_bytes = sparse_max_bytes(ctx);
    let mut max = vec![0u8; REGISTERS];
    let mut any_dense = false;
    // The destination is an input too.
    for key in &args[1..] {
        if let Some(entry) = ctx.lookup(key, Lookup::Read).0 {
            check_hll(&entry.value)?;
            let hll = hll_bytes(&entry.value);
            any_dense |= hll[ENCODING_BYTE] == DENSE;
            merge_into(&mut max, hll)?;
        }
    }
    let (hll, out, _) = writable_hll(ctx, args[1])?;
    if any_dense && hll[ENCODING_BYTE] == SPARSE {
        promote(hll)?;
    }
    for (index, &value) in max.iter().enumerate().filter(|(_, &v)| v > 0) {
        if hll[ENCODING_BYTE] == DENSE {
            dense_raise(&mut hll[HEADER_LEN..], index, value);
        } else {
            // The sources were all valid, and so is the destination: a
            // failure here cannot happen, and Valkey ignores it too.
            let _ = sparse_raise(hll, index, value, max_bytes);
        }
    }
    invalidate_cache(hll);
    out.ok();
    ctx.dirty(1);
    notify(ctx, notify::STRING, "pfadd", args[1]);
    Ok(())
}

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key.
fn pfdebug(ctx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (sub, key) = (c_str(args[1]), args[2]);
    let (entry, out) = ctx.lookup(key, Lookup::Write);
    let Some(entry) = entry else { return Err("ERR The specified key does not exist".into()) };
    let hll = hll_bytes_mut(&mut entry.value)?;
    let was_sparse = hll[ENCODING_BYTE] == SPARSE;
    if sub.eq_ignore_ascii_case(b"getreg") {
        if was_sparse {
            promote(hll)?;
        }
        out.array(REGISTERS);
        for index in 0..REGISTERS {
            out.int(dense_get(&hll[HEADER_LEN..], index) as i64);
        }
    } else if sub.eq_ignore_ascii_case(b"decode") {
        if !was_sparse {
            return Err("ERR HLL encoding is not sparse".into());
        }
        let decoded: Vec<String> = opcodes(&hll[HEADER_LEN..])
            .map(|(_, op)| match op {
                Opcode::Zero(n) => format!("z:{n}"),
                Opcode::XZero(n) => format!("Z:{n}"),
                Opcode::Val(v, n) => format!("v:{v},{n}"),
            })
            .collect();
        out.bulk(decoded.join(" ").as_bytes());
    } else if sub.eq_ignore_ascii_case(b"encoding") {
        out.simple(if was_sparse { "sparse" } else { "dense" });
    } else if sub.eq_ignore_ascii_case(b"todense") {
        if was_sparse {
            promote(hll)?;
        }
        out.int(was_sparse as i64);
    } else {
        return Err(format!("ERR Unknown PFDEBUG subcommand '{}'", c_string_lossy(args[1])).into());
    }
    // Changing the encoding changes the value.
    if was_sparse && (sub.eq_ignore_ascii_case(b"getreg") || sub.eq_ignore_ascii_case(b"todense")) {
        ctx.dirty(1);
    }
    Ok(())
}

/// PFSELFTEST: checks the register packing with random values, then adds
/// ten million distinct elements to a dense and a sparse HLL side by side,
/// checking at every power of ten that sparse is still in use while small,
/// that both count the same, and that the error stays within six standard
/// errors.
fn pfselftest(ctx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let max_bytes = sparse_max_bytes(ctx);
    let rng = &mut ctx.srv.rng;
    let mut dense = vec![0u8; DENSE_LEN];
    let mut expected = vec![0u8; REGISTERS];
    for _ in 0..1000 {
        for (index, slot) in expected.iter_mut().enumerate() {
            *slot = rng.gen::<u8>() & REGISTER_MAX;
            dense_put(&mut dense[HEADER_LEN..], index, *slot);
        }
        for (index, &want) in expected.iter().enumerate() {
            let got = dense_get(&dense[HEADER_LEN..], index);
            if got != want {
                return Err(format!("ERR TESTFAILED Register {index} should be {want} but is {got}").into());
            }
        }
    }

    dense[HEADER_LEN..].fill(0);
    let mut sparse = new_hll();
    let relative_error = 1.04 / (REGISTERS as f64).sqrt();
    let seed: u64 = rng.gen();
    let mut checkpoint: u64 = 1;
    for j in 1..=10_000_000u64 {
        let element = (j ^ seed).to_le_bytes();
        hll_add(&mut dense, &element, max_bytes)?;
        hll_add(&mut sparse, &element, max_bytes)?;
        if j != checkpoint {
            continue;
        }
        if j < (max_bytes / 2) as u64 && sparse[ENCODING_BYTE] != SPARSE {
            return Err("ERR TESTFAILED sparse encoding not used".into());
        }
        let count = hll_count(&dense)?;
        if count != hll_count(&sparse)? {
            return Err("ERR TESTFAILED dense/sparse disagree".into());
        }
        // Collisions make large errors likely enough at ten elements.
        let max_error = if j == 10 { 1 } else { (relative_error * 6.0 * checkpoint as f64).ceil() as u64 };
        let error = checkpoint.abs_diff(count);
        if error > max_error {
            return Err(format!("ERR TESTFAILED Too big error. card:{checkpoint} abserr:{error}").into());
        }
        checkpoint *= 10;
    }
    ctx.out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_registers_round_trip() {
        let mut registers = vec![0u8; DENSE_LEN - HEADER_LEN];
        for index in 0..REGISTERS {
            dense_put(&mut registers, index, (index % 64) as u8);
        }
        for index in 0..REGISTERS {
            assert_eq!(dense_get(&registers, index), (index % 64) as u8);
        }
    }

    #[test]
    fn new_hll_is_one_xzero_run() {
        let hll = new_hll();
        assert_eq!(&hll[..5], b"HYLL\x01");
        assert_eq!(&hll[HEADER_LEN..], &[0x7f, 0xff]);
        assert_eq!(hll_count(&hll).unwrap(), 0);
    }

    #[test]
    fn sparse_and_dense_agree() {
        let mut sparse = new_hll();
        for i in 0..500u32 {
            hll_add(&mut sparse, &i.to_le_bytes(), 3000).unwrap();
        }
        assert_eq!(sparse[ENCODING_BYTE], SPARSE);
        let dense = sparse_to_dense(&sparse).unwrap();
        assert_eq!(hll_count(&sparse).unwrap(), hll_count(&dense).unwrap());
    }
}
