//! The `intset` encoding of a set, kept in Valkey's own layout: the member
//! width (2, 4 or 8 bytes) and the member count as u32 LE, then the
//! members in ascending order, little-endian. The set's one allocation is
//! these bytes (see `crate::types::compact`), which are also what RDB files
//! and DUMP payloads store. The width is the narrowest that holds every
//! member; it widens as needed and, as in Valkey, never narrows again.
//!
//! [`Ints`] reads the bytes in place; a change builds the new bytes, which
//! replace the old ones whole (Valkey reallocates its intset on every
//! change too).

/// Bytes before the members: width and count.
const HEADER: usize = 8;

/// The narrowest width, in bytes, that holds `v`.
fn width_of(v: i64) -> usize {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

fn push_member(out: &mut Vec<u8>, v: i64, width: usize) {
    match width {
        2 => out.extend_from_slice(&(v as i16).to_le_bytes()),
        4 => out.extend_from_slice(&(v as i32).to_le_bytes()),
        _ => out.extend_from_slice(&v.to_le_bytes()),
    }
}

/// The bytes of an intset of `count` members of `width` bytes, with room
/// for the members that the caller appends.
fn with_header(width: usize, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + width * count);
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out
}

/// The bytes of an intset holding `values`, which are ascending and
/// distinct, at the narrowest width that holds them all.
pub fn encode(values: &[i64]) -> Vec<u8> {
    let width = values.iter().map(|&v| width_of(v)).max().unwrap_or(2);
    encode_at(values, width)
}

/// [`encode`] at a given width (one an RDB file recorded, say), which must
/// hold every value.
pub fn encode_at(values: &[i64], width: usize) -> Vec<u8> {
    let mut out = with_header(width, values.len());
    for &v in values {
        push_member(&mut out, v, width);
    }
    out
}

/// An intset, read in place.
#[derive(Clone, Copy, Debug)]
pub struct Ints<'a> {
    bytes: &'a [u8],
    width: usize,
    len: usize,
}

impl<'a> Ints<'a> {
    /// Reads bytes made by this module (the header matches their length).
    pub fn new(bytes: &'a [u8]) -> Ints<'a> {
        let width = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        Ints { bytes, width, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The `i`-th smallest member.
    pub fn get(&self, i: usize) -> i64 {
        let at = HEADER + i * self.width;
        let raw = &self.bytes[at..at + self.width];
        match self.width {
            2 => i16::from_le_bytes([raw[0], raw[1]]).into(),
            4 => i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]).into(),
            _ => i64::from_le_bytes(raw.try_into().expect("eight bytes")),
        }
    }

    /// Where `v` is (Ok) or would go (Err), by binary search.
    fn search(&self, v: i64) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.len);
        while low < high {
            let mid = low + (high - low) / 2;
            match self.get(mid).cmp(&v) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    pub fn contains(&self, v: i64) -> bool {
        width_of(v) <= self.width && self.search(v).is_ok()
    }

    /// The bytes with `v` added, widened if `v` needs it; None when `v`
    /// is a member already.
    pub fn with(&self, v: i64) -> Option<Vec<u8>> {
        // A value wider than the members is below or above all of them.
        let at = self.search(v).err()?;
        let width = self.width.max(width_of(v));
        let mut out = with_header(width, self.len + 1);
        if width == self.width {
            let split = HEADER + at * width;
            out.extend_from_slice(&self.bytes[HEADER..split]);
            push_member(&mut out, v, width);
            out.extend_from_slice(&self.bytes[split..]);
        } else {
            (0..at).for_each(|i| push_member(&mut out, self.get(i), width));
            push_member(&mut out, v, width);
            (at..self.len).for_each(|i| push_member(&mut out, self.get(i), width));
        }
        Some(out)
    }

    /// The bytes without `v`, at the same width; None when `v` is not a member.
    pub fn without(&self, v: i64) -> Option<Vec<u8>> {
        if width_of(v) > self.width {
            return None;
        }
        let at = self.search(v).ok()?;
        Some(self.without_index(at))
    }

    /// The bytes without the member at index `at`.
    pub fn without_index(&self, at: usize) -> Vec<u8> {
        let mut out = with_header(self.width, self.len - 1);
        let start = HEADER + at * self.width;
        out.extend_from_slice(&self.bytes[HEADER..start]);
        out.extend_from_slice(&self.bytes[start + self.width..]);
        out
    }

    /// The bytes keeping only the members whose index `keep` accepts.
    pub fn retained(&self, mut keep: impl FnMut(usize) -> bool) -> Vec<u8> {
        let mut out = with_header(self.width, self.len);
        let mut kept = 0u32;
        for i in (0..self.len).filter(|&i| keep(i)) {
            let at = HEADER + i * self.width;
            out.extend_from_slice(&self.bytes[at..at + self.width]);
            kept += 1;
        }
        out[4..HEADER].copy_from_slice(&kept.to_le_bytes());
        out
    }

    /// The members, ascending.
    pub fn iter(&self) -> impl Iterator<Item = i64> + 'a {
        let ints = *self;
        (0..ints.len).map(move |i| ints.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(bytes: &[u8]) -> Vec<i64> {
        Ints::new(bytes).iter().collect()
    }

    /// The member width the header records.
    fn width(bytes: &[u8]) -> u8 {
        bytes[0]
    }

    #[test]
    fn widens_stays_sorted_and_never_narrows() {
        let mut bytes = encode(&[]);
        for v in [5, -3, 40_000, i64::MIN, 7, -70_000, i64::MAX] {
            bytes = Ints::new(&bytes).with(v).expect("new member");
        }
        assert!(Ints::new(&bytes).with(7).is_none());
        assert_eq!(width(&bytes), 8);
        assert_eq!(members(&bytes), vec![i64::MIN, -70_000, -3, 5, 7, 40_000, i64::MAX]);
        for v in [i64::MIN, i64::MAX, -70_000] {
            bytes = Ints::new(&bytes).without(v).expect("a member");
        }
        assert_eq!(width(&bytes), 8);
        let ints = Ints::new(&bytes);
        assert!(ints.contains(40_000) && !ints.contains(41_000) && ints.without(41_000).is_none());
    }

    #[test]
    fn layout_is_valkeys() {
        // What Valkey's DUMP of SADD s 3 1 2 carries: width 2, count 3, members ascending.
        assert_eq!(encode(&[1, 2, 3]), vec![2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0]);
        let wide = Ints::new(&encode(&[1, 2, 3])).with(100_000).unwrap();
        assert_eq!(&wide[..8], &[4, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(members(&wide), vec![1, 2, 3, 100_000]);
        let kept = Ints::new(&wide).retained(|i| i % 2 == 1);
        assert_eq!(members(&kept), vec![2, 100_000]);
        assert_eq!(width(&kept), 4);
    }
}
