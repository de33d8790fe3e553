//! Decoders for the compact blobs RDB files embed as strings: listpack,
//! ziplist, zipmap and intset. Each one checks the structure completely
//! (header sizes and counts, terminators, every entry's bounds, back-lengths
//! / previous-entry lengths) before anything is used, and reports the first
//! problem as a reason string; the RDB reader adds the file offset and key.

use std::fmt;

/// One element of a listpack or ziplist: a byte string or an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packed<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl<'a> Packed<'a> {
    /// The element as bytes (integers in decimal, as the server shows them).
    pub fn to_bytes(self) -> Vec<u8> {
        match self {
            Packed::Str(s) => s.to_vec(),
            Packed::Int(v) => v.to_string().into_bytes(),
        }
    }

    /// The element as an integer: integer entries as they are, string entries
    /// only when they are the canonical decimal form of an i64.
    pub fn as_int(self) -> Option<i64> {
        match self {
            Packed::Int(v) => Some(v),
            Packed::Str(s) => parse_i64_strict(s),
        }
    }
}

impl fmt::Display for Packed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Packed::Str(s) => write!(f, "{}", String::from_utf8_lossy(s)),
            Packed::Int(v) => write!(f, "{v}"),
        }
    }
}

/// Parse a canonical decimal i64: optional '-', no '+', no leading zeros
/// (except "0" itself), no spaces, no "-0".
pub fn parse_i64_strict(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (neg, digits) = if s[0] == b'-' { (true, &s[1..]) } else { (false, s) };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || neg) {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    text.parse::<i64>().ok()
}

/// Parse a score the way C's strtod reads a stored score (as Valkey does):
/// leading white space is skipped, and the longest prefix that is a number
/// counts. "inf", "-inf", "infinity", "nan" and hexadecimal numbers are
/// accepted. `None` when no prefix is a number.
pub fn parse_score(s: &[u8]) -> Option<f64> {
    let parsed = crate::double::strtod(s);
    (parsed.consumed > 0).then_some(parsed.value)
}

/// Valkey reads at most this many bytes of a score stored as a string in a
/// ziplist or listpack.
pub const STORED_SCORE_MAX: usize = 127;

/// A score stored in a ziplist or listpack, as Valkey reads it.
pub fn parse_stored_score(s: &[u8]) -> Option<f64> {
    parse_score(&s[..s.len().min(STORED_SCORE_MAX)])
}

// ---------------------------------------------------------------------------
// listpack
// ---------------------------------------------------------------------------

const LP_HEADER: usize = 6;
const LP_END: u8 = 0xff;
const LP_COUNT_UNKNOWN: u16 = u16::MAX;

/// Bytes needed to store a back-length of value `l`.
fn lp_backlen_size(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2097151 {
        3
    } else if l < 268435455 {
        4
    } else {
        5
    }
}

/// Read the back-length that ends at `last` (inclusive), walking backwards.
fn lp_read_backlen(lp: &[u8], last: usize, floor: usize) -> Option<usize> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    let mut i = last;
    loop {
        if i < floor {
            return None;
        }
        let b = lp[i];
        value |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
        if i == 0 {
            return None;
        }
        i -= 1;
    }
    usize::try_from(value).ok()
}

fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// Decode and fully validate a listpack. Returns its elements in order.
pub fn listpack_entries(lp: &[u8]) -> Result<Vec<Packed<'_>>, String> {
    if lp.len() < LP_HEADER + 1 {
        return Err(format!("listpack of {} bytes is shorter than its header", lp.len()));
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    if total != lp.len() {
        return Err(format!("listpack header says {total} bytes, blob has {}", lp.len()));
    }
    if lp[lp.len() - 1] != LP_END {
        return Err("listpack does not end with its terminator".into());
    }
    let declared = u16::from_le_bytes([lp[4], lp[5]]);
    let end = lp.len() - 1; // index of the terminator
    let mut out = Vec::new();
    let mut p = LP_HEADER;
    while p < end {
        let b = lp[p];
        let need = |n: usize| -> Result<(), String> {
            if p + n > end {
                Err(format!("listpack entry at byte {p} runs past the end"))
            } else {
                Ok(())
            }
        };
        // (size of encoding+data, element)
        let (size, elem) = if b & 0x80 == 0 {
            (1, Packed::Int((b & 0x7f) as i64))
        } else if b & 0xc0 == 0x80 {
            let len = (b & 0x3f) as usize;
            need(1 + len)?;
            (1 + len, Packed::Str(&lp[p + 1..p + 1 + len]))
        } else if b & 0xe0 == 0xc0 {
            need(2)?;
            let v = (((b & 0x1f) as u64) << 8) | lp[p + 1] as u64;
            (2, Packed::Int(sign_extend(v, 13)))
        } else if b & 0xf0 == 0xe0 {
            need(2)?;
            let len = (((b & 0x0f) as usize) << 8) | lp[p + 1] as usize;
            need(2 + len)?;
            (2 + len, Packed::Str(&lp[p + 2..p + 2 + len]))
        } else {
            match b {
                0xf0 => {
                    need(5)?;
                    let len = u32::from_le_bytes([lp[p + 1], lp[p + 2], lp[p + 3], lp[p + 4]]) as usize;
                    need(5usize.saturating_add(len))?;
                    (5 + len, Packed::Str(&lp[p + 5..p + 5 + len]))
                }
                0xf1 => {
                    need(3)?;
                    let v = u16::from_le_bytes([lp[p + 1], lp[p + 2]]) as i16 as i64;
                    (3, Packed::Int(v))
                }
                0xf2 => {
                    need(4)?;
                    let v = lp[p + 1] as u64 | (lp[p + 2] as u64) << 8 | (lp[p + 3] as u64) << 16;
                    (4, Packed::Int(sign_extend(v, 24)))
                }
                0xf3 => {
                    need(5)?;
                    let v = i32::from_le_bytes([lp[p + 1], lp[p + 2], lp[p + 3], lp[p + 4]]) as i64;
                    (5, Packed::Int(v))
                }
                0xf4 => {
                    need(9)?;
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&lp[p + 1..p + 9]);
                    (9, Packed::Int(i64::from_le_bytes(w)))
                }
                _ => return Err(format!("listpack entry at byte {p} has invalid encoding byte 0x{b:02x}")),
            }
        };
        let back = lp_backlen_size(size);
        if p + size + back > end {
            return Err(format!("listpack entry at byte {p} runs past the end"));
        }
        let stored = lp_read_backlen(lp, p + size + back - 1, p + size)
            .ok_or_else(|| format!("listpack entry at byte {p} has an invalid back-length"))?;
        if stored != size {
            return Err(format!("listpack entry at byte {p}: back-length {stored} does not match entry size {size}"));
        }
        out.push(elem);
        p += size + back;
    }
    if p != end {
        return Err("listpack entries do not end at its terminator".into());
    }
    if declared != LP_COUNT_UNKNOWN && declared as usize != out.len() {
        return Err(format!("listpack header says {declared} elements, it holds {}", out.len()));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// ziplist
// ---------------------------------------------------------------------------

const ZL_HEADER: usize = 10;
const ZL_END: u8 = 0xff;
const ZL_BIG_PREVLEN: u8 = 0xfe;

/// Decode and fully validate a ziplist. Returns its elements in order.
pub fn ziplist_entries(zl: &[u8]) -> Result<Vec<Packed<'_>>, String> {
    if zl.len() < ZL_HEADER + 1 {
        return Err(format!("ziplist of {} bytes is shorter than its header", zl.len()));
    }
    let total = u32::from_le_bytes([zl[0], zl[1], zl[2], zl[3]]) as usize;
    if total != zl.len() {
        return Err(format!("ziplist header says {total} bytes, blob has {}", zl.len()));
    }
    if zl[zl.len() - 1] != ZL_END {
        return Err("ziplist does not end with its terminator".into());
    }
    let tail = u32::from_le_bytes([zl[4], zl[5], zl[6], zl[7]]) as usize;
    if tail > zl.len() - 1 {
        return Err(format!("ziplist tail offset {tail} is outside the blob"));
    }
    let declared = u16::from_le_bytes([zl[8], zl[9]]);
    let end = zl.len() - 1;
    let mut out = Vec::new();
    let mut p = ZL_HEADER;
    let mut prev_size = 0usize;
    let mut last_entry: Option<usize> = None;
    while p < end && zl[p] != ZL_END {
        let start = p;
        let need = |at: usize, n: usize| -> Result<(), String> {
            if at + n > end {
                Err(format!("ziplist entry at byte {start} runs past the end"))
            } else {
                Ok(())
            }
        };
        // previous entry length
        let (prevlen, prevlen_size) = if zl[p] < ZL_BIG_PREVLEN {
            (zl[p] as usize, 1)
        } else {
            need(p, 5)?;
            (u32::from_le_bytes([zl[p + 1], zl[p + 2], zl[p + 3], zl[p + 4]]) as usize, 5)
        };
        if prevlen != prev_size {
            return Err(format!(
                "ziplist entry at byte {start}: previous-entry length {prevlen} should be {prev_size}"
            ));
        }
        let q = p + prevlen_size;
        need(q, 1)?;
        let enc = zl[q];
        let (header, elem) = match enc >> 6 {
            0 => {
                let len = (enc & 0x3f) as usize;
                need(q + 1, len)?;
                (1 + len, Packed::Str(&zl[q + 1..q + 1 + len]))
            }
            1 => {
                need(q, 2)?;
                let len = (((enc & 0x3f) as usize) << 8) | zl[q + 1] as usize;
                need(q + 2, len)?;
                (2 + len, Packed::Str(&zl[q + 2..q + 2 + len]))
            }
            2 => {
                if enc != 0x80 {
                    return Err(format!("ziplist entry at byte {start} has invalid encoding 0x{enc:02x}"));
                }
                need(q, 5)?;
                let len = u32::from_be_bytes([zl[q + 1], zl[q + 2], zl[q + 3], zl[q + 4]]) as usize;
                need(q + 5, len)?;
                (5 + len, Packed::Str(&zl[q + 5..q + 5 + len]))
            }
            _ => {
                let (n, v) = match enc {
                    0xc0 => {
                        need(q + 1, 2)?;
                        (2, i16::from_le_bytes([zl[q + 1], zl[q + 2]]) as i64)
                    }
                    0xd0 => {
                        need(q + 1, 4)?;
                        (4, i32::from_le_bytes([zl[q + 1], zl[q + 2], zl[q + 3], zl[q + 4]]) as i64)
                    }
                    0xe0 => {
                        need(q + 1, 8)?;
                        let mut w = [0u8; 8];
                        w.copy_from_slice(&zl[q + 1..q + 9]);
                        (8, i64::from_le_bytes(w))
                    }
                    0xf0 => {
                        need(q + 1, 3)?;
                        let u = zl[q + 1] as u64 | (zl[q + 2] as u64) << 8 | (zl[q + 3] as u64) << 16;
                        (3, sign_extend(u, 24))
                    }
                    0xfe => {
                        need(q + 1, 1)?;
                        (1, zl[q + 1] as i8 as i64)
                    }
                    0xf1..=0xfd => (0, ((enc & 0x0f) as i64) - 1),
                    _ => return Err(format!("ziplist entry at byte {start} has invalid encoding 0x{enc:02x}")),
                };
                (1 + n, Packed::Int(v))
            }
        };
        let size = prevlen_size + header;
        if start + size > end {
            return Err(format!("ziplist entry at byte {start} runs past the end"));
        }
        out.push(elem);
        prev_size = size;
        last_entry = Some(start);
        p = start + size;
    }
    if p != end {
        return Err("ziplist entries do not end at its terminator".into());
    }
    match last_entry {
        Some(last) if last != tail => {
            return Err(format!("ziplist tail offset {tail} does not point at its last entry ({last})"))
        }
        _ => {}
    }
    if declared != u16::MAX && declared as usize != out.len() {
        return Err(format!("ziplist header says {declared} elements, it holds {}", out.len()));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// zipmap
// ---------------------------------------------------------------------------

const ZM_BIGLEN: u8 = 254;

/// Field/value pairs borrowed from a zipmap.
pub type ZipmapPairs<'a> = Vec<(&'a [u8], &'a [u8])>;
const ZM_END: u8 = 255;

/// Decode and validate a zipmap (RDB type HASH_ZIPMAP, Redis 2.x). Returns
/// its field/value pairs.
pub fn zipmap_pairs(zm: &[u8]) -> Result<ZipmapPairs<'_>, String> {
    if zm.len() < 2 {
        return Err("zipmap shorter than its header".into());
    }
    if zm[zm.len() - 1] != ZM_END {
        return Err("zipmap does not end with its terminator".into());
    }
    let end = zm.len() - 1;
    let read_len = |p: usize| -> Result<(usize, usize), String> {
        if p >= end {
            return Err(format!("zipmap entry at byte {p} runs past the end"));
        }
        let b = zm[p];
        if b < ZM_BIGLEN {
            Ok((b as usize, 1))
        } else if b == ZM_BIGLEN {
            if p + 5 > end {
                return Err(format!("zipmap length at byte {p} runs past the end"));
            }
            Ok((u32::from_le_bytes([zm[p + 1], zm[p + 2], zm[p + 3], zm[p + 4]]) as usize, 5))
        } else {
            Err(format!("zipmap length at byte {p} is the terminator"))
        }
    };
    let mut out = Vec::new();
    let mut p = 1;
    while p < end && zm[p] != ZM_END {
        let (klen, ks) = read_len(p)?;
        let kstart = p + ks;
        if kstart.saturating_add(klen) > end {
            return Err(format!("zipmap field at byte {p} runs past the end"));
        }
        let key = &zm[kstart..kstart + klen];
        p = kstart + klen;
        let (vlen, vs) = read_len(p)?;
        let free_at = p + vs;
        if free_at >= end {
            return Err(format!("zipmap value at byte {p} runs past the end"));
        }
        let free = zm[free_at] as usize;
        let vstart = free_at + 1;
        if vstart.saturating_add(vlen).saturating_add(free) > end {
            return Err(format!("zipmap value at byte {p} runs past the end"));
        }
        out.push((key, &zm[vstart..vstart + vlen]));
        p = vstart + vlen + free;
    }
    if p != end {
        return Err("zipmap entries do not end at its terminator".into());
    }
    if out.is_empty() {
        return Err("zipmap is empty".into());
    }
    if zm[0] != ZM_BIGLEN && zm[0] as usize != out.len() {
        return Err(format!("zipmap header says {} pairs, it holds {}", zm[0], out.len()));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// intset
// ---------------------------------------------------------------------------

/// An intset's members in the width it stores them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntsetMembers {
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl IntsetMembers {
    /// Element width in bytes.
    pub fn width(&self) -> u8 {
        match self {
            IntsetMembers::I16(_) => 2,
            IntsetMembers::I32(_) => 4,
            IntsetMembers::I64(_) => 8,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            IntsetMembers::I16(v) => v.len(),
            IntsetMembers::I32(v) => v.len(),
            IntsetMembers::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members widened to i64.
    pub fn to_i64(&self) -> Vec<i64> {
        match self {
            IntsetMembers::I16(v) => v.iter().map(|&x| x as i64).collect(),
            IntsetMembers::I32(v) => v.iter().map(|&x| x as i64).collect(),
            IntsetMembers::I64(v) => v.clone(),
        }
    }
}

/// Decodes elements of one width, checking they strictly ascend.
fn ascending<T: Copy + Ord + fmt::Display, const W: usize>(
    body: &[u8],
    decode: fn([u8; W]) -> T,
) -> Result<Vec<T>, String> {
    let mut out: Vec<T> = Vec::with_capacity(body.len() / W);
    for chunk in body.chunks_exact(W) {
        let mut raw = [0u8; W];
        raw.copy_from_slice(chunk);
        let v = decode(raw);
        if let Some(&prev) = out.last() {
            if v <= prev {
                return Err(format!("intset is not strictly ascending ({prev} then {v})"));
            }
        }
        out.push(v);
    }
    Ok(out)
}

/// Decode and validate an intset: element width 2, 4 or 8 bytes, a count
/// that matches the blob size, at least one element, strictly ascending.
pub fn intset_members(is: &[u8]) -> Result<IntsetMembers, String> {
    if is.len() < 8 {
        return Err("intset shorter than its header".into());
    }
    let width = u32::from_le_bytes([is[0], is[1], is[2], is[3]]);
    if !matches!(width, 2 | 4 | 8) {
        return Err(format!("intset has invalid element width {width}"));
    }
    let count = u32::from_le_bytes([is[4], is[5], is[6], is[7]]) as usize;
    let body = &is[8..];
    if count.checked_mul(width as usize) != Some(body.len()) {
        return Err(format!("intset of {count} elements of {width} bytes does not fit its {} bytes", body.len()));
    }
    if count == 0 {
        return Err("intset is empty".into());
    }
    Ok(match width {
        2 => IntsetMembers::I16(ascending(body, i16::from_le_bytes)?),
        4 => IntsetMembers::I32(ascending(body, i32::from_le_bytes)?),
        _ => IntsetMembers::I64(ascending(body, i64::from_le_bytes)?),
    })
}

/// [`intset_members`] as (width in bytes, values).
pub fn intset_values(is: &[u8]) -> Result<(u8, Vec<i64>), String> {
    let members = intset_members(is)?;
    Ok((members.width(), members.to_i64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lp_build(entries: &[&[u8]]) -> Vec<u8> {
        // strings only, 6-bit and 12-bit encodings
        let mut body = Vec::new();
        for e in entries {
            let mut enc = Vec::new();
            if e.len() < 64 {
                enc.push(0x80 | e.len() as u8);
            } else {
                enc.push(0xe0 | (e.len() >> 8) as u8);
                enc.push(e.len() as u8);
            }
            enc.extend_from_slice(e);
            let l = enc.len();
            body.extend_from_slice(&enc);
            // back-length, most significant group first
            if l <= 127 {
                body.push(l as u8);
            } else {
                body.push((l >> 7) as u8);
                body.push((l & 127) as u8 | 128);
            }
        }
        let total = 6 + body.len() + 1;
        let mut lp = (total as u32).to_le_bytes().to_vec();
        lp.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        lp.extend_from_slice(&body);
        lp.push(0xff);
        lp
    }

    #[test]
    fn listpack_roundtrip_and_corruption() {
        let big = vec![b'z'; 300];
        let lp = lp_build(&[b"a", b"", &big]);
        let got = listpack_entries(&lp).unwrap();
        assert_eq!(got, vec![Packed::Str(b"a"), Packed::Str(b""), Packed::Str(&big)]);
        for i in 0..lp.len() {
            let mut bad = lp.clone();
            bad[i] ^= 0x41;
            // must not panic; most flips are detected
            let _ = listpack_entries(&bad);
        }
        for n in 0..lp.len() {
            assert!(listpack_entries(&lp[..n]).is_err());
        }
    }

    #[test]
    fn listpack_ints() {
        // 7-bit 5, 13-bit -1, 16-bit -2, 24-bit 100000, 32-bit -100000000, 64-bit i64::MIN
        let mut body = Vec::new();
        let mut push = |enc: &[u8]| {
            body.extend_from_slice(enc);
            body.push(enc.len() as u8);
        };
        push(&[5]);
        push(&[0xc0 | 0x1f, 0xff]);
        push(&[0xf1, 0xfe, 0xff]);
        let v = 100000u32.to_le_bytes();
        push(&[0xf2, v[0], v[1], v[2]]);
        let v = (-100000000i32).to_le_bytes();
        push(&[0xf3, v[0], v[1], v[2], v[3]]);
        let v = i64::MIN.to_le_bytes();
        let mut e = vec![0xf4];
        e.extend_from_slice(&v);
        push(&e);
        let mut lp = ((6 + body.len() + 1) as u32).to_le_bytes().to_vec();
        lp.extend_from_slice(&6u16.to_le_bytes());
        lp.extend_from_slice(&body);
        lp.push(0xff);
        let got: Vec<i64> = listpack_entries(&lp).unwrap().into_iter().map(|p| p.as_int().unwrap()).collect();
        assert_eq!(got, vec![5, -1, -2, 100000, -100000000, i64::MIN]);
    }

    #[test]
    fn strict_ints() {
        assert_eq!(parse_i64_strict(b"0"), Some(0));
        assert_eq!(parse_i64_strict(b"-12"), Some(-12));
        assert_eq!(parse_i64_strict(b"-0"), None);
        assert_eq!(parse_i64_strict(b"007"), None);
        assert_eq!(parse_i64_strict(b"+1"), None);
        assert_eq!(parse_i64_strict(b" 1"), None);
        assert_eq!(parse_i64_strict(b"9223372036854775808"), None);
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
    }

    #[test]
    fn scores() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"inf"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert!(parse_score(b"nan").unwrap().is_nan());
        assert_eq!(parse_score(b" 2x"), Some(2.0));
        assert_eq!(parse_score(b"x"), None);
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        let long = [b"1".repeat(127), b"9".repeat(10)].concat();
        assert_eq!(parse_stored_score(&long), parse_score(&long[..127]));
    }

    #[test]
    fn intsets() {
        let mut is = 2u32.to_le_bytes().to_vec();
        is.extend_from_slice(&3u32.to_le_bytes());
        for v in [-5i16, 0, 7] {
            is.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(intset_values(&is).unwrap(), (2, vec![-5, 0, 7]));
        let mut bad = is.clone();
        bad[8] = 0xff;
        bad[9] = 0x7f; // first = 32767 > 0
        assert!(intset_values(&bad).is_err());
        assert!(intset_values(&is[..is.len() - 1]).is_err());
    }
}
