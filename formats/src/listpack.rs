//! Listpack: Valkey's compact serialization of a sequence of strings and
//! integers, used in memory for small lists, hashes, sets and sorted sets,
//! and stored as-is in RDB files.
//!
//! Layout: a 6-byte header (total bytes as u32 LE, element count as u16 LE,
//! 65535 meaning "count them"), the entries, and a 0xFF terminator. Each
//! entry is an encoding byte (with its payload) followed by a "backlen": the
//! entry's own length written in 1 to 5 bytes of 7 bits each, readable from
//! its last byte backwards, so the list can be walked in both directions.
//! Strings that are canonical 64-bit integers are stored as integers of the
//! narrowest width, exactly as Valkey does, so byte sizes (which decide
//! encoding conversions) and RDB payloads match Valkey's.

use crate::resp::parse_i64;

const HEADER: usize = 6;
const EOF: u8 = 0xFF;
/// The element count field saturates here; above it the count is unknown.
const COUNT_UNKNOWN: u16 = u16::MAX;

/// One listpack element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Item<'_> {
    /// The element as bytes (integers formatted in decimal).
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Item::Int(n) => itoa_bytes(*n),
            Item::Str(s) => s.to_vec(),
        }
    }

    /// Calls `f` with the element's bytes without allocating.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Item::Int(n) => {
                let mut buf = [0u8; 20];
                let len = write_i64(*n, &mut buf);
                f(&buf[..len])
            }
            Item::Str(s) => f(s),
        }
    }

    /// Whether the element equals `bytes` (an integer element matches its decimal form).
    pub fn eq_bytes(&self, bytes: &[u8]) -> bool {
        match self {
            Item::Str(s) => *s == bytes,
            Item::Int(n) => bytes.len() <= 20 && parse_i64(bytes) == Some(*n),
        }
    }
}

fn write_i64(n: i64, buf: &mut [u8; 20]) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let neg = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut len = 0;
    if neg {
        buf[0] = b'-';
        len = 1;
    }
    let digits = &tmp[i..];
    buf[len..len + digits.len()].copy_from_slice(digits);
    len + digits.len()
}

fn itoa_bytes(n: i64) -> Vec<u8> {
    let mut buf = [0u8; 20];
    let len = write_i64(n, &mut buf);
    buf[..len].to_vec()
}

/// Why a byte string is not a valid listpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid listpack: {}", self.0)
    }
}

impl std::error::Error for Invalid {}

#[derive(Clone, PartialEq, Eq)]
pub struct Listpack {
    buf: Vec<u8>,
    count: usize,
}

impl std::fmt::Debug for Listpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

impl Default for Listpack {
    fn default() -> Self {
        Listpack::new()
    }
}

/// Encoded size of an element's encoding byte(s) plus payload, and whether it is an integer.
fn encoded_len(ele: &[u8]) -> (usize, Option<i64>) {
    if let Some(v) = int_candidate(ele) {
        return (int_encoded_len(v), Some(v));
    }
    let n = ele.len();
    let len = if n < 64 {
        1 + n
    } else if n < 4096 {
        2 + n
    } else {
        5 + n
    };
    (len, None)
}

fn int_candidate(ele: &[u8]) -> Option<i64> {
    if ele.is_empty() || ele.len() > 20 {
        return None;
    }
    parse_i64(ele)
}

fn int_encoded_len(v: i64) -> usize {
    match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8_388_608..=8_388_607 => 4,
        -2_147_483_648..=2_147_483_647 => 5,
        _ => 9,
    }
}

fn backlen_len(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2_097_151 {
        3
    } else if l < 268_435_455 {
        4
    } else {
        5
    }
}

/// Bytes one element takes in a listpack (encoding, payload and backlen).
pub fn entry_size(ele: &[u8]) -> usize {
    let (l, _) = encoded_len(ele);
    l + backlen_len(l)
}

/// Same, for an integer element.
pub fn int_entry_size(v: i64) -> usize {
    let l = int_encoded_len(v);
    l + backlen_len(l)
}

fn encode_entry(ele: &[u8], out: &mut Vec<u8>) {
    let (len, int) = encoded_len(ele);
    let start = out.len();
    match int {
        Some(v) => encode_int(v, out),
        None => {
            let n = ele.len();
            if n < 64 {
                out.push(0x80 | n as u8);
            } else if n < 4096 {
                out.push(0xE0 | (n >> 8) as u8);
                out.push((n & 0xFF) as u8);
            } else {
                out.push(0xF0);
                out.extend_from_slice(&(n as u32).to_le_bytes());
            }
            out.extend_from_slice(ele);
        }
    }
    debug_assert_eq!(out.len() - start, len);
    encode_backlen(len, out);
}

fn encode_int(v: i64, out: &mut Vec<u8>) {
    match int_encoded_len(v) {
        1 => out.push(v as u8),
        2 => {
            let u = if v < 0 { (1i64 << 13) + v } else { v } as u16;
            out.push(0xC0 | (u >> 8) as u8);
            out.push((u & 0xFF) as u8);
        }
        3 => {
            out.push(0xF1);
            out.extend_from_slice(&(v as i16).to_le_bytes());
        }
        4 => {
            out.push(0xF2);
            out.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        }
        5 => {
            out.push(0xF3);
            out.extend_from_slice(&(v as i32).to_le_bytes());
        }
        _ => {
            out.push(0xF4);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn encode_backlen(l: usize, out: &mut Vec<u8>) {
    let n = backlen_len(l);
    // Most significant group first; every byte but the first has its top bit set.
    for i in (0..n).rev() {
        let group = ((l >> (7 * i)) & 127) as u8;
        out.push(if i == n - 1 { group } else { group | 128 });
    }
}

/// Decodes the entry starting at `p`: (item, length of encoding + payload).
/// The buffer must have been validated.
fn decode_at(buf: &[u8], p: usize) -> (Item<'_>, usize) {
    let b = buf[p];
    if b & 0x80 == 0 {
        (Item::Int(b as i64), 1)
    } else if b & 0xC0 == 0x80 {
        let n = (b & 0x3F) as usize;
        (Item::Str(&buf[p + 1..p + 1 + n]), 1 + n)
    } else if b & 0xE0 == 0xC0 {
        let u = (((b & 0x1F) as i64) << 8) | buf[p + 1] as i64;
        let v = if u >= 1 << 12 { u - (1 << 13) } else { u };
        (Item::Int(v), 2)
    } else if b & 0xF0 == 0xE0 {
        let n = (((b & 0x0F) as usize) << 8) | buf[p + 1] as usize;
        (Item::Str(&buf[p + 2..p + 2 + n]), 2 + n)
    } else {
        match b {
            0xF0 => {
                let n = u32::from_le_bytes([buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4]]) as usize;
                (Item::Str(&buf[p + 5..p + 5 + n]), 5 + n)
            }
            0xF1 => (Item::Int(i16::from_le_bytes([buf[p + 1], buf[p + 2]]) as i64), 3),
            0xF2 => {
                let u = (buf[p + 1] as i32) | ((buf[p + 2] as i32) << 8) | ((buf[p + 3] as i32) << 16);
                let v = (u << 8) >> 8;
                (Item::Int(v as i64), 4)
            }
            0xF3 => (Item::Int(i32::from_le_bytes([buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4]]) as i64), 5),
            _ => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&buf[p + 1..p + 9]);
                (Item::Int(i64::from_le_bytes(raw)), 9)
            }
        }
    }
}

/// Length of encoding + payload of the entry at `p`, checking bounds.
fn checked_entry_len(buf: &[u8], p: usize, end: usize) -> Result<usize, Invalid> {
    let b = *buf.get(p).ok_or(Invalid("entry past the end"))?;
    let need = |n: usize| if p + n <= end { Ok(()) } else { Err(Invalid("entry crosses the end")) };
    let len = if b & 0x80 == 0 {
        1
    } else if b & 0xC0 == 0x80 {
        1 + (b & 0x3F) as usize
    } else if b & 0xE0 == 0xC0 {
        2
    } else if b & 0xF0 == 0xE0 {
        need(2)?;
        2 + ((((b & 0x0F) as usize) << 8) | buf[p + 1] as usize)
    } else {
        match b {
            0xF0 => {
                need(5)?;
                5 + u32::from_le_bytes([buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4]]) as usize
            }
            0xF1 => 3,
            0xF2 => 4,
            0xF3 => 5,
            0xF4 => 9,
            EOF => return Err(Invalid("unexpected terminator")),
            _ => return Err(Invalid("unknown entry encoding")),
        }
    };
    need(len)?;
    Ok(len)
}

impl Listpack {
    pub fn new() -> Listpack {
        let mut buf = Vec::with_capacity(HEADER + 1);
        buf.extend_from_slice(&((HEADER + 1) as u32).to_le_bytes());
        buf.extend_from_slice(&0u16.to_le_bytes());
        buf.push(EOF);
        Listpack { buf, count: 0 }
    }

    /// Takes a listpack from untrusted bytes (an RDB file, a RESTORE
    /// payload), checking every entry, the backlens, the header and the
    /// terminator, so later access cannot go out of bounds.
    pub fn from_bytes(buf: Vec<u8>) -> Result<Listpack, Invalid> {
        if buf.len() < HEADER + 1 {
            return Err(Invalid("shorter than its header"));
        }
        let total = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if total != buf.len() {
            return Err(Invalid("header length does not match"));
        }
        let declared = u16::from_le_bytes([buf[4], buf[5]]);
        if buf[total - 1] != EOF {
            return Err(Invalid("no terminator"));
        }
        let end = total - 1;
        let mut p = HEADER;
        let mut count = 0usize;
        while p < end {
            let len = checked_entry_len(&buf, p, end)?;
            let bl = backlen_len(len);
            if p + len + bl > end {
                return Err(Invalid("backlen crosses the end"));
            }
            if read_backlen(&buf, p + len + bl - 1) != Some((len, bl)) {
                return Err(Invalid("backlen does not match the entry"));
            }
            p += len + bl;
            count += 1;
        }
        if p != end {
            return Err(Invalid("entries overrun the terminator"));
        }
        if declared != COUNT_UNKNOWN && declared as usize != count {
            return Err(Invalid("header count does not match"));
        }
        Ok(Listpack { buf, count })
    }

    /// Takes back bytes that came from [`Listpack::into_bytes`] (so are
    /// well formed) without checking them again.
    pub fn from_trusted_bytes(buf: Vec<u8>) -> Listpack {
        let count = ListpackRef::from_trusted(&buf).len();
        Listpack { buf, count }
    }

    /// Builds a listpack from elements.
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Listpack {
        let mut lp = Listpack::new();
        lp.buf.pop();
        for it in items {
            encode_entry(it, &mut lp.buf);
            lp.count += 1;
        }
        lp.buf.push(EOF);
        lp.sync_header();
        lp
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Total size in bytes, header and terminator included (Valkey's lpBytes).
    pub fn total_bytes(&self) -> usize {
        self.buf.len()
    }

    fn sync_header(&mut self) {
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = if self.count < COUNT_UNKNOWN as usize { self.count as u16 } else { COUNT_UNKNOWN };
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
    }

    fn end(&self) -> usize {
        self.buf.len() - 1
    }

    /// The read side of this listpack, as a borrowed view.
    pub fn view(&self) -> ListpackRef<'_> {
        ListpackRef { buf: &self.buf, count: self.count }
    }

    /// Offset of the first entry, if any.
    pub fn first(&self) -> Option<usize> {
        self.view().first()
    }

    /// Offset of the last entry, if any.
    pub fn last(&self) -> Option<usize> {
        self.view().last()
    }

    /// Offset of the entry after the one at `p`.
    pub fn next(&self, p: usize) -> Option<usize> {
        self.view().next(p)
    }

    /// Offset of the entry before the one at `p` (`p` may be the terminator's offset).
    pub fn prev(&self, p: usize) -> Option<usize> {
        self.view().prev(p)
    }

    /// The element at offset `p`.
    pub fn get(&self, p: usize) -> Item<'_> {
        self.view().get(p)
    }

    /// Offset of the element at `index` (negative counts from the tail).
    pub fn seek(&self, index: i64) -> Option<usize> {
        self.view().seek(index)
    }

    /// Iterates (offset, element) from head to tail.
    pub fn iter(&self) -> Iter<'_> {
        self.view().iter()
    }

    /// Iterates (offset, element) from tail to head.
    pub fn iter_rev(&self) -> RevIter<'_> {
        self.view().iter_rev()
    }

    /// Inserts `ele` before the entry at offset `p` (the terminator's offset
    /// appends). Returns the new entry's offset.
    pub fn insert_at(&mut self, p: usize, ele: &[u8]) -> usize {
        let mut encoded = Vec::with_capacity(entry_size(ele));
        encode_entry(ele, &mut encoded);
        self.buf.splice(p..p, encoded);
        self.count += 1;
        self.sync_header();
        p
    }

    pub fn push_back(&mut self, ele: &[u8]) -> usize {
        let end = self.end();
        self.insert_at(end, ele)
    }

    pub fn push_front(&mut self, ele: &[u8]) -> usize {
        self.insert_at(HEADER, ele)
    }

    /// Offset where appending goes (the terminator), for [`Listpack::insert_at`].
    pub fn end_offset(&self) -> usize {
        self.end()
    }

    /// Deletes `n` entries starting at offset `p`. Returns the offset that
    /// now holds what followed them (None if they were the last).
    pub fn delete_at(&mut self, p: usize, n: usize) -> Option<usize> {
        let mut q = p;
        let mut removed = 0;
        while removed < n && q < self.end() {
            let (_, len) = decode_at(&self.buf, q);
            q += len + backlen_len(len);
            removed += 1;
        }
        self.buf.drain(p..q);
        self.count -= removed;
        self.sync_header();
        (p < self.end()).then_some(p)
    }

    /// Replaces the element at offset `p`.
    pub fn replace_at(&mut self, p: usize, ele: &[u8]) {
        let (_, len) = decode_at(&self.buf, p);
        let old = len + backlen_len(len);
        let mut encoded = Vec::with_capacity(entry_size(ele));
        encode_entry(ele, &mut encoded);
        self.buf.splice(p..p + old, encoded);
        self.sync_header();
    }

    /// Finds the first element equal to `ele`, checking every `step`-th
    /// entry starting at the first (step 2 searches the keys of a hash).
    pub fn find(&self, ele: &[u8], step: usize) -> Option<usize> {
        self.view().find(ele, step)
    }

    /// Bytes the listpack would take after appending `ele` (Valkey's size
    /// checks for encoding conversion are made against this).
    pub fn bytes_after_push(&self, ele: &[u8]) -> usize {
        self.buf.len() + entry_size(ele)
    }

    /// Bytes allocated for the listpack (at least [`Listpack::total_bytes`]).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Makes room for `additional` more bytes without over-allocating:
    /// like Valkey's reallocation on every insert, so a listpack holds what
    /// it uses and not up to twice that.
    pub fn reserve_exact(&mut self, additional: usize) {
        self.buf.reserve_exact(additional);
    }

    /// Gives back allocated bytes that deletions left unused.
    pub fn shrink_to_fit(&mut self) {
        self.buf.shrink_to_fit();
    }

    /// Appends every entry of `other` (Valkey's lpMerge of two neighbours).
    pub fn append_listpack(&mut self, other: &Listpack) {
        let entries = &other.buf[HEADER..other.buf.len() - 1];
        self.buf.reserve_exact(entries.len());
        let end = self.end();
        self.buf.splice(end..end, entries.iter().copied());
        self.count += other.count;
        self.sync_header();
    }

    /// Splits the listpack at entry `index`: the entries from `index` on
    /// move to the returned listpack, the ones before it stay.
    pub fn split_off(&mut self, index: usize) -> Listpack {
        let Some(p) = i64::try_from(index).ok().and_then(|i| self.seek(i)) else {
            return Listpack::new();
        };
        let mut tail = Vec::with_capacity(HEADER + self.buf.len() - p);
        tail.extend_from_slice(&self.buf[..HEADER]);
        tail.extend_from_slice(&self.buf[p..]);
        let moved = self.count - index;
        let mut rest = Listpack { buf: tail, count: moved };
        rest.sync_header();
        self.buf.truncate(p);
        self.buf.push(EOF);
        self.buf.shrink_to_fit();
        self.count = index;
        self.sync_header();
        rest
    }
}

/// A listpack borrowed from wherever its bytes live: every read of
/// [`Listpack`], for callers that keep the bytes in their own allocation
/// (a small hash keeps only a thin pointer to them).
#[derive(Clone, Copy)]
pub struct ListpackRef<'a> {
    buf: &'a [u8],
    count: usize,
}

impl std::fmt::Debug for ListpackRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|(_, it)| it.to_vec())).finish()
    }
}

impl<'a> ListpackRef<'a> {
    /// Views bytes that came from a [`Listpack`] (so are well formed); the
    /// element count comes from the header, or a walk when it saturated.
    pub fn from_trusted(buf: &'a [u8]) -> ListpackRef<'a> {
        let declared = u16::from_le_bytes([buf[4], buf[5]]);
        let mut view = ListpackRef { buf, count: declared as usize };
        if declared == COUNT_UNKNOWN {
            view.count = usize::MAX;
            let mut n = 0;
            let mut p = (buf.len() > HEADER + 1).then_some(HEADER);
            while let Some(at) = p {
                n += 1;
                p = view.next(at);
            }
            view.count = n;
        }
        view
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Total size in bytes, header and terminator included (Valkey's lpBytes).
    pub fn total_bytes(&self) -> usize {
        self.buf.len()
    }

    fn end(&self) -> usize {
        self.buf.len() - 1
    }

    /// Offset of the first entry, if any.
    pub fn first(&self) -> Option<usize> {
        (self.count > 0).then_some(HEADER)
    }

    /// Offset of the last entry, if any.
    pub fn last(&self) -> Option<usize> {
        if self.count == 0 {
            return None;
        }
        self.prev_of(self.end())
    }

    /// Offset of the entry after the one at `p`.
    pub fn next(&self, p: usize) -> Option<usize> {
        let (_, len) = decode_at(self.buf, p);
        let q = p + len + backlen_len(len);
        (q < self.end()).then_some(q)
    }

    /// Offset of the entry before the one at `p` (`p` may be the terminator's offset).
    pub fn prev(&self, p: usize) -> Option<usize> {
        self.prev_of(p)
    }

    fn prev_of(&self, p: usize) -> Option<usize> {
        if p <= HEADER {
            return None;
        }
        let (len, bl) = read_backlen(self.buf, p - 1)?;
        Some(p - bl - len)
    }

    /// The element at offset `p`.
    pub fn get(&self, p: usize) -> Item<'a> {
        decode_at(self.buf, p).0
    }

    /// Offset of the element at `index` (negative counts from the tail).
    pub fn seek(&self, index: i64) -> Option<usize> {
        let n = self.count as i64;
        let idx = if index < 0 { n + index } else { index };
        if idx < 0 || idx >= n {
            return None;
        }
        if idx < n / 2 {
            let mut p = self.first()?;
            for _ in 0..idx {
                p = self.next(p)?;
            }
            Some(p)
        } else {
            let mut p = self.last()?;
            for _ in 0..(n - 1 - idx) {
                p = self.prev(p)?;
            }
            Some(p)
        }
    }

    /// Iterates (offset, element) from head to tail.
    pub fn iter(&self) -> Iter<'a> {
        Iter { lp: *self, next: self.first() }
    }

    /// Iterates (offset, element) from tail to head.
    pub fn iter_rev(&self) -> RevIter<'a> {
        RevIter { lp: *self, next: self.last() }
    }

    /// Finds the first element equal to `ele`, checking every `step`-th
    /// entry starting at the first (step 2 searches the keys of a hash).
    pub fn find(&self, ele: &[u8], step: usize) -> Option<usize> {
        let as_int = int_candidate(ele);
        let mut p = self.first()?;
        let mut skip = 0;
        loop {
            if skip == 0 {
                let matched = match (decode_at(self.buf, p).0, as_int) {
                    (Item::Int(v), Some(w)) => v == w,
                    (Item::Str(s), None) => s == ele,
                    _ => false,
                };
                if matched {
                    return Some(p);
                }
                skip = step.max(1) - 1;
            } else {
                skip -= 1;
            }
            p = self.next(p)?;
        }
    }
}

/// Reads the backlen ending at `last` (inclusive): (entry length, backlen bytes).
fn read_backlen(buf: &[u8], last: usize) -> Option<(usize, usize)> {
    let mut value = 0usize;
    let mut shift = 0;
    for i in 0..5 {
        let idx = last.checked_sub(i)?;
        let b = *buf.get(idx)?;
        value |= ((b & 127) as usize) << shift;
        shift += 7;
        if b & 128 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

pub struct Iter<'a> {
    lp: ListpackRef<'a>,
    next: Option<usize>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (usize, Item<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let p = self.next?;
        let (item, len) = decode_at(self.lp.buf, p);
        let q = p + len + backlen_len(len);
        self.next = (q < self.lp.end()).then_some(q);
        Some((p, item))
    }
}

pub struct RevIter<'a> {
    lp: ListpackRef<'a>,
    next: Option<usize>,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = (usize, Item<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let p = self.next?;
        self.next = self.lp.prev(p);
        Some((p, self.lp.get(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(lp: &Listpack) -> Vec<Vec<u8>> {
        lp.iter().map(|(_, it)| it.to_vec()).collect()
    }

    #[test]
    fn round_trips_every_width() {
        let mut samples: Vec<Vec<u8>> = vec![
            b"0".to_vec(),
            b"127".to_vec(),
            b"128".to_vec(),
            b"-1".to_vec(),
            b"-4096".to_vec(),
            b"4095".to_vec(),
            b"-32768".to_vec(),
            b"32767".to_vec(),
            b"8388607".to_vec(),
            b"-8388608".to_vec(),
            b"2147483647".to_vec(),
            b"-2147483648".to_vec(),
            b"9223372036854775807".to_vec(),
            b"-9223372036854775808".to_vec(),
            b"007".to_vec(),
            b"-0".to_vec(),
            b"".to_vec(),
            b"hello".to_vec(),
        ];
        samples.push(vec![b'x'; 63]);
        samples.push(vec![b'y'; 64]);
        samples.push(vec![b'z'; 4095]);
        samples.push(vec![b'w'; 4096]);
        samples.push(vec![b'v'; 20000]);
        let lp = Listpack::from_items(samples.iter().map(|s| s.as_slice()));
        assert_eq!(items(&lp), samples);
        let rev: Vec<Vec<u8>> = lp.iter_rev().map(|(_, it)| it.to_vec()).collect();
        assert_eq!(rev, samples.iter().rev().cloned().collect::<Vec<_>>());
        let again = Listpack::from_bytes(lp.as_bytes().to_vec()).unwrap();
        assert_eq!(items(&again), samples);
        let expected_size: usize = 7 + samples.iter().map(|s| entry_size(s)).sum::<usize>();
        assert_eq!(lp.total_bytes(), expected_size);
    }

    #[test]
    fn valkey_byte_layout() {
        // "a", 1, -1, 300 exactly as Valkey 8 lays them out (from its DUMP of RPUSH l a 1 -1 300).
        let lp = Listpack::from_items([&b"a"[..], b"1", b"-1", b"300"]);
        assert_eq!(
            lp.as_bytes(),
            &[0x12, 0, 0, 0, 4, 0, 0x81, b'a', 2, 0x01, 1, 0xDF, 0xFF, 2, 0xC1, 0x2C, 2, 0xFF][..]
        );
    }

    #[test]
    fn edits() {
        let mut lp = Listpack::new();
        lp.push_back(b"b");
        lp.push_front(b"a");
        lp.push_back(b"c");
        let p = lp.find(b"b", 1).unwrap();
        lp.replace_at(p, b"12345678901");
        assert_eq!(items(&lp), vec![b"a".to_vec(), b"12345678901".to_vec(), b"c".to_vec()]);
        let p = lp.seek(-1).unwrap();
        assert_eq!(lp.get(p), Item::Str(b"c"));
        let first = lp.first().unwrap();
        lp.delete_at(first, 2);
        assert_eq!(items(&lp), vec![b"c".to_vec()]);
        assert_eq!(lp.len(), 1);
        Listpack::from_bytes(lp.as_bytes().to_vec()).unwrap();
        assert!(lp.find(b"zz", 1).is_none());
    }

    #[test]
    fn hash_style_find_steps_over_values() {
        let lp = Listpack::from_items([&b"f1"[..], b"f2", b"f2", b"v2"]);
        let p = lp.find(b"f2", 2).unwrap();
        assert_eq!(lp.get(lp.next(p).unwrap()), Item::Str(b"v2"));
    }

    #[test]
    fn rejects_corruption() {
        let lp = Listpack::from_items([&b"hello"[..], b"12"]);
        let good = lp.as_bytes().to_vec();
        for i in 0..good.len() {
            for flip in [1u8, 0x80, 0xFF] {
                let mut bad = good.clone();
                bad[i] ^= flip;
                // Never panics; most flips are refused.
                let _ = Listpack::from_bytes(bad);
            }
        }
        for cut in 0..good.len() {
            assert!(Listpack::from_bytes(good[..cut].to_vec()).is_err());
        }
    }
}
