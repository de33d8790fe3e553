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

use std::ptr::NonNull;

use ferrokey_formats::listpack::{entry_size, Item, Listpack, ListpackRef};
use indexmap::IndexMap;

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

/// A hash is one tagged pointer: to the bytes of its listpack, or (low
/// bit set) to its boxed table. Small hashes are the most numerous values
/// there are; a single word inside the key's [`crate::value::Value`] saves
/// the separate allocation a `Box<Hash>` needs (32 bytes a hash) and keeps
/// `Value` two words wide, which is what lets a million small hashes take
/// no more memory than in Valkey.
pub struct Hash {
    tagged: NonNull<u8>,
}

/// Marks a pointer to a table rather than to listpack bytes.
const TABLE_TAG: usize = 1;
/// Listpack allocations are aligned so that the tag bit is free.
const LISTPACK_ALIGN: usize = 8;

/// A hash's representation, borrowed.
enum Repr<'a> {
    Listpack(ListpackRef<'a>),
    Table(&'a FieldTable),
}

/// A hash's representation, borrowed for a change.
enum ReprMut<'a> {
    Listpack(&'a mut Hash),
    Table(&'a mut FieldTable),
}

fn listpack_layout(total: usize) -> std::alloc::Layout {
    std::alloc::Layout::from_size_align(total, LISTPACK_ALIGN).expect("listpack layout")
}

impl Hash {
    /// Stores a listpack's bytes in an allocation of exactly their size.
    fn with_listpack(lp: &Listpack) -> Hash {
        let bytes = lp.as_bytes();
        let layout = listpack_layout(bytes.len());
        // SAFETY: a listpack is never empty (header and terminator), and the
        // new allocation is filled before it is read.
        unsafe {
            let ptr = std::alloc::alloc(layout);
            let Some(ptr) = NonNull::new(ptr) else { std::alloc::handle_alloc_error(layout) };
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len());
            Hash { tagged: ptr }
        }
    }

    fn with_table(table: Box<FieldTable>) -> Hash {
        let ptr = Box::into_raw(table) as *mut u8;
        let tagged = ptr.map_addr(|a| a | TABLE_TAG);
        Hash { tagged: NonNull::new(tagged).expect("box pointers are not null") }
    }

    fn is_table(&self) -> bool {
        self.tagged.as_ptr().addr() & TABLE_TAG != 0
    }

    fn table_ptr(&self) -> *mut FieldTable {
        self.tagged.as_ptr().map_addr(|a| a & !TABLE_TAG) as *mut FieldTable
    }

    /// The listpack bytes (only when not a table).
    fn listpack_bytes(&self) -> &[u8] {
        let ptr = self.tagged.as_ptr();
        // SAFETY: an untagged pointer points to a whole listpack, whose
        // first four bytes are its total length: the allocation's length.
        unsafe {
            let total = u32::from_le_bytes(*(ptr as *const [u8; 4])) as usize;
            std::slice::from_raw_parts(ptr, total)
        }
    }

    fn repr(&self) -> Repr<'_> {
        if self.is_table() {
            // SAFETY: a tagged pointer came from Box<FieldTable>::into_raw.
            Repr::Table(unsafe { &*self.table_ptr() })
        } else {
            Repr::Listpack(ListpackRef::from_trusted(self.listpack_bytes()))
        }
    }

    fn repr_mut(&mut self) -> ReprMut<'_> {
        if self.is_table() {
            // SAFETY: as in repr, and `&mut self` makes the access exclusive.
            ReprMut::Table(unsafe { &mut *self.table_ptr() })
        } else {
            ReprMut::Listpack(self)
        }
    }

    /// Changes the listpack through the owned type; the result is stored
    /// back at its exact size, as Valkey reallocates on every change.
    fn modify_listpack<R>(&mut self, change: impl FnOnce(&mut Listpack) -> R) -> R {
        let mut lp = Listpack::from_trusted_bytes(self.listpack_bytes().to_vec());
        let result = change(&mut lp);
        self.replace(Hash::with_listpack(&lp));
        result
    }

    fn replace(&mut self, other: Hash) {
        // Dropping the old value frees its allocation.
        drop(std::mem::replace(self, other));
    }
}

impl Drop for Hash {
    fn drop(&mut self) {
        if self.is_table() {
            // SAFETY: the tagged pointer owns the box it came from.
            unsafe { drop(Box::from_raw(self.table_ptr())) };
        } else {
            let layout = listpack_layout(self.listpack_bytes().len());
            // SAFETY: allocated in with_listpack with this same layout.
            unsafe { std::alloc::dealloc(self.tagged.as_ptr(), layout) };
        }
    }
}

impl Clone for Hash {
    fn clone(&self) -> Hash {
        match self.repr() {
            Repr::Listpack(lp) => Hash::with_listpack(&Listpack::from_trusted_bytes(lp.as_bytes().to_vec())),
            Repr::Table(t) => Hash::with_table(Box::new(t.clone())),
        }
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (k.to_vec(), v.to_vec()))).finish()
    }
}

// SAFETY: a Hash owns what its pointer points to exclusively, like a Box.
unsafe impl Send for Hash {}
unsafe impl Sync for Hash {}

impl Default for Hash {
    fn default() -> Self {
        Hash::with_listpack(&Listpack::new())
    }
}

impl Hash {
    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        if self.is_table() {
            "hashtable"
        } else {
            "listpack"
        }
    }

    /// Whether the pairs are in the listpack (which keeps them in
    /// insertion order) rather than the table.
    pub fn is_listpack(&self) -> bool {
        !self.is_table()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match self.repr() {
            Repr::Listpack(lp) => lp.len() / 2,
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An estimate of the heap memory held (MEMORY USAGE, INFO).
    pub fn heap_size(&self) -> usize {
        match self.repr() {
            Repr::Listpack(lp) => lp.total_bytes(),
            Repr::Table(t) => {
                let slot = std::mem::size_of::<(u64, Box<[u8]>, Box<[u8]>)>();
                // The index part: a word and a control byte per bucket, at
                // most 7/8 full.
                let index = t.capacity() * 8 / 7 * (std::mem::size_of::<usize>() + 1);
                let payload: usize = t.iter().map(|(f, v)| f.len() + v.len()).sum();
                std::mem::size_of::<FieldTable>() + t.capacity() * slot + index + payload
            }
        }
    }

    fn repr_listpack_find(&self, field: &[u8]) -> Option<usize> {
        match self.repr() {
            Repr::Listpack(lp) => lp.find(field, 2),
            Repr::Table(_) => None,
        }
    }

    /// The value of `field`, if present.
    pub fn get(&self, field: &[u8]) -> Option<Item<'_>> {
        match self.repr() {
            Repr::Listpack(lp) => {
                let at = lp.find(field, 2)?;
                Some(lp.get(lp.next(at)?))
            }
            Repr::Table(t) => t.get(field).map(|v| Item::Str(v)),
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
        let Repr::Listpack(lp) = self.repr() else { return };
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
        match self.repr_mut() {
            ReprMut::Listpack(hash) => {
                // Growing by exactly what is added keeps the listpack at
                // its byte size, as Valkey's reallocation does.
                let (created, pairs) = hash.modify_listpack(|lp| {
                    let created = match lp.find(field, 2).and_then(|at| lp.next(at)) {
                        Some(value_at) => {
                            lp.reserve_exact(entry_size(value));
                            lp.replace_at(value_at, value);
                            false
                        }
                        None => {
                            lp.reserve_exact(entry_size(field) + entry_size(value));
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
            ReprMut::Table(t) => match t.get_mut(field) {
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
        match self.repr_mut() {
            ReprMut::Listpack(hash) => match hash.repr_listpack_find(field) {
                Some(at) => {
                    hash.modify_listpack(|lp| lp.delete_at(at, 2));
                    true
                }
                None => false,
            },
            // Moving the last field into the hole keeps removal O(1) and is
            // what the scan cursor relies on.
            ReprMut::Table(t) => t.swap_remove(field).is_some(),
        }
    }

    /// Every (field, value) pair, in the order HGETALL answers them.
    pub fn iter(&self) -> Pairs<'_> {
        match self.repr() {
            Repr::Listpack(lp) => Pairs::Listpack(lp.iter()),
            Repr::Table(t) => Pairs::Table(t.iter()),
        }
    }

    /// Random access to the pairs by position (0..len), for HRANDFIELD.
    /// A listpack is walked once to find where each pair starts.
    pub fn positions(&self) -> Positions<'_> {
        match self.repr() {
            Repr::Listpack(lp) => Positions::Listpack(lp, lp.iter().step_by(2).map(|(at, _)| at).collect()),
            Repr::Table(t) => Positions::Table(t),
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
        match self.repr() {
            Repr::Listpack(_) => {
                self.iter().for_each(|(f, v)| visit(f, v));
                0
            }
            Repr::Table(t) => {
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
        let Repr::Listpack(lp) = self.repr() else { return };
        let capacity = (lp.len() / 2).max(room);
        let mut table = FieldTable::with_capacity_and_hasher(capacity, Default::default());
        for (field, value) in self.iter() {
            table.insert(field.to_vec().into(), value.to_vec().into());
        }
        self.replace(Hash::with_table(Box::new(table)));
    }

    /// A hash around a listpack of field/value pairs that was read from an
    /// RDB file or a RESTORE payload and checked (well formed, distinct
    /// fields). Valkey's loader keeps such a listpack as it is whatever the
    /// value lengths; the caller converts it when it holds too many fields.
    pub fn from_listpack(lp: Listpack) -> Hash {
        Hash::with_listpack(&lp)
    }

    /// A table-encoded hash of `pairs` (distinct fields), as a loaded hash
    /// over the listpack limits is.
    pub fn from_table_pairs(pairs: impl ExactSizeIterator<Item = (Vec<u8>, Vec<u8>)>) -> Hash {
        let mut table = FieldTable::with_capacity_and_hasher(pairs.len(), Default::default());
        for (field, value) in pairs {
            table.insert(field.into(), value.into());
        }
        Hash::with_table(Box::new(table))
    }

    /// The listpack of a listpack-encoded hash, as RDB files and DUMP
    /// payloads store it.
    pub fn as_listpack(&self) -> Option<ListpackRef<'_>> {
        match self.repr() {
            Repr::Listpack(lp) => Some(lp),
            Repr::Table(_) => None,
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
