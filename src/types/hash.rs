//! A hash: a listpack of field/value pairs while small, a hash table past
//! hash-max-listpack-entries / hash-max-listpack-value.
//!
//! The conversion happens exactly where Valkey's does (OBJECT ENCODING
//! shows it): before a write whose arguments are too many or too long
//! ([`Hash::prepare_for_write`]), when a single set brings a field or value
//! over the byte limit, and after a set leaves more fields than the entry
//! limit. A hash never goes back to a listpack.
//!
//! The listpack keeps fields in insertion order (new fields are appended,
//! updates replace in place), as Valkey's does, so small hashes reply in the
//! same order on both servers. The table is an insertion-ordered map: a
//! position is an index, which makes a random field O(1) and gives HSCAN a
//! cursor that cannot miss a field present for the whole scan (see
//! [`Hash::scan`]).

use ferrokey_formats::listpack::{Item, Listpack, ListpackRef};
use indexmap::IndexMap;

use crate::types::compact::{Compact, Form, FormMut};

type FieldTable = IndexMap<Box<[u8]>, Box<[u8]>, foldhash::fast::RandomState>;

/// Valkey refuses to let a listpack grow past this many bytes, whatever the
/// configured limits (its lpSafeToAdd).
const LISTPACK_SAFETY_LIMIT: usize = 1 << 30;

/// The configured thresholds for the compact encoding.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// hash-max-listpack-entries: most fields a listpack may hold.
    pub max_entries: u64,
    /// hash-max-listpack-value: longest field or value, in bytes.
    pub max_value: u64,
}

impl Limits {
    fn too_long(&self, bytes: &[u8]) -> bool {
        bytes.len() as u64 > self.max_value
    }
}

/// A hash is one word: a pointer to the bytes of its listpack or to its
/// boxed table (see [`crate::types::compact`]). Small hashes are the most
/// numerous values there are; no allocation besides the listpack is what
/// lets a million of them take no more memory than in Valkey.
#[derive(Clone)]
pub struct Hash {
    repr: Compact<FieldTable>,
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (k.to_vec(), v.to_vec()))).finish()
    }
}

impl Default for Hash {
    fn default() -> Self {
        Hash::from_listpack(Listpack::new())
    }
}

impl Hash {
    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        if self.repr.is_big() {
            "hashtable"
        } else {
            "listpack"
        }
    }

    /// Whether the pairs are in the listpack (which keeps them in
    /// insertion order) rather than the table.
    pub fn is_listpack(&self) -> bool {
        !self.repr.is_big()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match self.repr.form() {
            Form::Listpack(lp) => lp.len() / 2,
            Form::Big(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An estimate of the heap memory held (MEMORY USAGE, INFO).
    pub fn heap_size(&self) -> usize {
        match self.repr.form() {
            Form::Listpack(lp) => lp.total_bytes(),
            Form::Big(t) => {
                let slot = std::mem::size_of::<(u64, Box<[u8]>, Box<[u8]>)>();
                // The index part: a word and a control byte per bucket, at
                // most 7/8 full.
                let index = t.capacity() * 8 / 7 * (std::mem::size_of::<usize>() + 1);
                let payload: usize = t.iter().map(|(f, v)| f.len() + v.len()).sum();
                std::mem::size_of::<FieldTable>() + t.capacity() * slot + index + payload
            }
        }
    }

    /// The value of `field`, if present.
    pub fn get(&self, field: &[u8]) -> Option<Item<'_>> {
        match self.repr.form() {
            Form::Listpack(lp) => {
                let at = lp.find(field, 2)?;
                Some(lp.get(lp.next(at)?))
            }
            Form::Big(t) => t.get(field).map(|v| Item::Str(v)),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Converts to a table before a write of `args` (field, value, field,
    /// value...) when the listpack could not take them: more new fields
    /// than the entry limit (counting every pair as new), any argument
    /// longer than the byte limit, or a listpack that would pass its
    /// safety size.
    pub fn prepare_for_write(&mut self, args: &[&[u8]], limits: &Limits) {
        let Form::Listpack(lp) = self.repr.form() else { return };
        let total_bytes = lp.total_bytes();
        let new_fields = args.len() / 2;
        if new_fields as u64 > limits.max_entries {
            self.convert_to_table(new_fields);
            return;
        }
        if args.iter().any(|a| limits.too_long(a)) {
            self.convert_to_table(0);
            return;
        }
        let added: usize = args.iter().map(|a| a.len()).sum();
        if total_bytes.saturating_add(added) > LISTPACK_SAFETY_LIMIT {
            self.convert_to_table(0);
        }
    }

    /// Sets `field` to `value`. Returns true when the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: &Limits) -> bool {
        if self.is_listpack() && (limits.too_long(field) || limits.too_long(value)) {
            self.convert_to_table(0);
        }
        match self.repr.form_mut() {
            FormMut::Listpack(mut lp) => {
                let (created, pairs) = lp.modify(|lp| {
                    let created = match lp.find(field, 2).and_then(|at| lp.next(at)) {
                        Some(value_at) => {
                            lp.replace_at(value_at, value);
                            false
                        }
                        None => {
                            lp.push_back(field);
                            lp.push_back(value);
                            true
                        }
                    };
                    (created, lp.len() / 2)
                });
                if pairs as u64 > limits.max_entries {
                    self.convert_to_table(0);
                }
                created
            }
            FormMut::Big(t) => match t.get_mut(field) {
                Some(old) => {
                    *old = value.into();
                    false
                }
                None => {
                    t.insert(field.into(), value.into());
                    true
                }
            },
        }
    }

    /// Removes `field`. Returns whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.repr.form_mut() {
            FormMut::Listpack(mut lp) => match lp.view().find(field, 2) {
                Some(at) => {
                    lp.modify(|lp| lp.delete_at(at, 2));
                    true
                }
                None => false,
            },
            // Moving the last field into the hole keeps removal O(1) and is
            // what the scan cursor relies on.
            FormMut::Big(t) => t.swap_remove(field).is_some(),
        }
    }

    /// Every (field, value) pair, in the order HGETALL answers them.
    pub fn iter(&self) -> Pairs<'_> {
        match self.repr.form() {
            Form::Listpack(lp) => Pairs::Listpack(lp.iter()),
            Form::Big(t) => Pairs::Table(t.iter()),
        }
    }

    /// Random access to the pairs by position (0..len), for HRANDFIELD.
    /// A listpack is walked once to find where each pair starts.
    pub fn positions(&self) -> Positions<'_> {
        match self.repr.form() {
            Form::Listpack(lp) => Positions::Listpack(lp, lp.iter().step_by(2).map(|(at, _)| at).collect()),
            Form::Big(t) => Positions::Table(t),
        }
    }

    /// One HSCAN step from `cursor`, visiting at most `count` pairs and
    /// returning the next cursor (0 when the scan is over). A listpack is
    /// small by definition and is returned whole in one step, as Valkey
    /// does. A table is walked by position from the top down: removing a
    /// field only moves the last one into a lower slot, so a field present
    /// for the whole scan is always visited (perhaps twice), and fields
    /// added meanwhile land above the cursor.
    pub fn scan<'a>(&'a self, cursor: u64, count: usize, mut visit: impl FnMut(Item<'a>, Item<'a>)) -> u64 {
        match self.repr.form() {
            Form::Listpack(_) => {
                self.iter().for_each(|(f, v)| visit(f, v));
                0
            }
            Form::Big(t) => {
                let len = t.len() as u64;
                let mut pos = if cursor == 0 || cursor > len { len } else { cursor };
                let mut budget = count.max(1);
                while pos > 0 && budget > 0 {
                    pos -= 1;
                    let (f, v) = t.get_index(pos as usize).expect("position below the length");
                    visit(Item::Str(f), Item::Str(v));
                    budget -= 1;
                }
                pos
            }
        }
    }

    /// Moves the pairs into a table with room for at least `room` fields
    /// (a write that brings many new fields sizes the table once).
    fn convert_to_table(&mut self, room: usize) {
        let Form::Listpack(lp) = self.repr.form() else { return };
        let capacity = (lp.len() / 2).max(room);
        let mut table = FieldTable::with_capacity_and_hasher(capacity, Default::default());
        for (field, value) in self.iter() {
            table.insert(field.to_vec().into(), value.to_vec().into());
        }
        self.repr = Compact::big(table);
    }

    /// A hash around a listpack of field/value pairs that was read from an
    /// RDB file or a RESTORE payload and checked (well formed, distinct
    /// fields). Valkey's loader keeps such a listpack as it is whatever the
    /// value lengths; the caller converts it when it holds too many fields.
    pub fn from_listpack(lp: Listpack) -> Hash {
        Hash { repr: Compact::listpack(lp.view()) }
    }

    /// A table-encoded hash of `pairs` (distinct fields), as a loaded hash
    /// over the listpack limits is.
    pub fn from_table_pairs(pairs: impl ExactSizeIterator<Item = (Vec<u8>, Vec<u8>)>) -> Hash {
        let mut table = FieldTable::with_capacity_and_hasher(pairs.len(), Default::default());
        for (field, value) in pairs {
            table.insert(field.into(), value.into());
        }
        Hash { repr: Compact::big(table) }
    }

    /// The listpack of a listpack-encoded hash, as RDB files and DUMP
    /// payloads store it.
    pub fn as_listpack(&self) -> Option<ListpackRef<'_>> {
        match self.repr.form() {
            Form::Listpack(lp) => Some(lp),
            Form::Big(_) => None,
        }
    }
}

/// Iterator over a hash's (field, value) pairs.
pub enum Pairs<'a> {
    Listpack(ferrokey_formats::listpack::Iter<'a>),
    Table(indexmap::map::Iter<'a, Box<[u8]>, Box<[u8]>>),
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (Item<'a>, Item<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Pairs::Listpack(it) => {
                let (_, field) = it.next()?;
                let (_, value) = it.next()?;
                Some((field, value))
            }
            Pairs::Table(it) => it.next().map(|(f, v)| (Item::Str(f), Item::Str(v))),
        }
    }
}

/// A hash's pairs addressable by position.
pub enum Positions<'a> {
    /// The listpack and the offset of each pair's field.
    Listpack(ListpackRef<'a>, Vec<usize>),
    Table(&'a FieldTable),
}

impl<'a> Positions<'a> {
    pub fn len(&self) -> usize {
        match self {
            Positions::Listpack(_, offsets) => offsets.len(),
            Positions::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pair at position `index` (below [`Positions::len`]).
    pub fn pair(&self, index: usize) -> (Item<'a>, Item<'a>) {
        match self {
            Positions::Listpack(lp, offsets) => {
                let at = offsets[index];
                let value_at = lp.next(at).expect("every field has a value");
                (lp.get(at), lp.get(value_at))
            }
            Positions::Table(t) => {
                let (f, v) = t.get_index(index).expect("position below the length");
                (Item::Str(f), Item::Str(v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits { max_entries: 4, max_value: 8 };

    fn pairs(h: &Hash) -> Vec<(Vec<u8>, Vec<u8>)> {
        h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn listpack_keeps_insertion_order_and_updates_in_place() {
        let mut h = Hash::default();
        assert!(h.set(b"a", b"1", &SMALL));
        assert!(h.set(b"b", b"x", &SMALL));
        assert!(!h.set(b"a", b"22", &SMALL));
        assert_eq!(pairs(&h), vec![(b"a".to_vec(), b"22".to_vec()), (b"b".to_vec(), b"x".to_vec())]);
        assert_eq!(h.get(b"a"), Some(Item::Int(22)));
        assert_eq!(h.encoding_name(), "listpack");
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn converts_past_either_limit_and_never_back() {
        let mut h = Hash::default();
        for i in 0..4 {
            h.set(format!("f{i}").as_bytes(), b"v", &SMALL);
        }
        assert_eq!(h.encoding_name(), "listpack");
        h.set(b"f4", b"v", &SMALL);
        assert_eq!(h.encoding_name(), "hashtable");
        for i in 0..5 {
            h.remove(format!("f{i}").as_bytes());
        }
        h.set(b"f", b"v", &SMALL);
        assert_eq!(h.encoding_name(), "hashtable");

        let mut long = Hash::default();
        long.set(b"f", b"123456789", &SMALL);
        assert_eq!(long.encoding_name(), "hashtable");
        assert_eq!(long.get(b"f"), Some(Item::Str(b"123456789")));
    }

    #[test]
    fn prepare_counts_every_pair_as_new() {
        let mut h = Hash::default();
        let args: Vec<&[u8]> = vec![b"a", b"1", b"a", b"2", b"a", b"3", b"a", b"4", b"a", b"5"];
        h.prepare_for_write(&args, &SMALL);
        assert_eq!(h.encoding_name(), "hashtable");
    }

    #[test]
    fn table_scan_sees_stable_fields_despite_churn() {
        let limits = Limits { max_entries: 0, max_value: 64 };
        let mut h = Hash::default();
        for i in 0..500 {
            h.set(format!("keep{i}").as_bytes(), b"v", &limits);
            h.set(format!("churn{i}").as_bytes(), b"v", &limits);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            cursor = h.scan(cursor, 7, |f, _| {
                seen.insert(f.to_vec());
            });
            h.remove(format!("churn{round}").as_bytes());
            h.set(format!("new{round}").as_bytes(), b"v", &limits);
            round += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500 {
            assert!(seen.contains(format!("keep{i}").as_bytes()), "keep{i} missed");
        }
    }

    #[test]
    fn a_small_hash_is_one_pointer_to_its_listpack() {
        // One word, so a Value holds a hash without a box of its own.
        assert_eq!(std::mem::size_of::<Hash>(), 8);
        let mut h = Hash::default();
        h.set(b"field", b"value", &SMALL);
        let copy = h.clone();
        h.remove(b"field");
        assert_eq!(pairs(&copy), vec![(b"field".to_vec(), b"value".to_vec())]);
        assert!(h.is_empty());
    }

    #[test]
    fn positions_address_every_pair() {
        let mut h = Hash::default();
        h.set(b"a", b"1", &SMALL);
        h.set(b"b", b"2", &SMALL);
        let p = h.positions();
        assert_eq!(p.len(), 2);
        assert_eq!(p.pair(1), (Item::Str(b"b"), Item::Int(2)));
    }
}
