//! A set, in Valkey's three encodings, converted exactly when Valkey
//! converts (t_set.c), since OBJECT ENCODING shows the encoding and the
//! member order of SMEMBERS follows from it:
//!
//! - `intset`: every member a canonical 64-bit integer and at most
//!   set-max-intset-entries of them; kept sorted in the narrowest of 16, 32
//!   or 64-bit integers that holds them all (widened, never narrowed, like
//!   Valkey's intset, whose blob RDB files store as is);
//! - `listpack`: at most set-max-listpack-entries members of at most
//!   set-max-listpack-value bytes, in insertion order;
//! - `hashtable`: anything bigger ([`table::Table`]).
//!
//! Sets only grow out of the compact encodings: removals never convert
//! back. New sets built by SPOP, SINTERSTORE and friends start from
//! whichever encoding Valkey would create them with.

mod table;

use ferrokey_formats::listpack::{Item, Listpack};
use ferrokey_formats::resp::parse_i64;
use rand::Rng;

use crate::config::Config;

use table::Table;

/// The encoding thresholds in force when a command runs.
#[derive(Clone, Copy, Debug)]
pub struct SetLimits {
    pub intset_entries: usize,
    pub listpack_entries: usize,
    pub listpack_value: usize,
}

/// Valkey caps intsets at 2^30 members whatever set-max-intset-entries says.
const INTSET_HARD_LIMIT: u64 = 1 << 30;
/// Valkey never lets a listpack grow past 1 GiB.
const LISTPACK_SAFETY_SIZE: usize = 1 << 30;

impl SetLimits {
    pub fn from_config(config: &Config) -> SetLimits {
        SetLimits {
            intset_entries: config.set_max_intset_entries.min(INTSET_HARD_LIMIT) as usize,
            listpack_entries: usize::try_from(config.set_max_listpack_entries).unwrap_or(usize::MAX),
            listpack_value: usize::try_from(config.set_max_listpack_value).unwrap_or(usize::MAX),
        }
    }
}

/// The encodings, as OBJECT ENCODING names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Intset,
    Listpack,
    Hashtable,
}

#[derive(Clone, Debug)]
pub struct Set {
    repr: Repr,
}

#[derive(Clone, Debug)]
enum Repr {
    Ints(IntSet),
    Packed(Listpack),
    Table(Table),
}

impl Set {
    pub fn new_intset() -> Set {
        Set { repr: Repr::Ints(IntSet::default()) }
    }

    pub fn new_listpack() -> Set {
        Set { repr: Repr::Packed(Listpack::new()) }
    }

    pub fn new_hashtable(capacity: usize) -> Set {
        Set { repr: Repr::Table(Table::with_capacity(capacity)) }
    }

    /// The set a new key gets when `first` is about to be added along with
    /// about `size_hint` members in all (Valkey's setTypeCreate).
    pub fn for_new_key(first: &[u8], size_hint: usize, limits: SetLimits) -> Set {
        if parse_i64(first).is_some() && size_hint <= limits.intset_entries {
            Set::new_intset()
        } else if size_hint <= limits.listpack_entries {
            Set::new_listpack()
        } else {
            Set::new_hashtable(size_hint)
        }
    }

    /// Converts to a hash table up front when `size_hint` members are about
    /// to be added and would not fit the current encoding anyway
    /// (setTypeMaybeConvert; the hint is the number of members given).
    pub fn prepare_for(&mut self, size_hint: usize, limits: SetLimits) {
        let too_many = match &self.repr {
            Repr::Ints(_) => size_hint > limits.intset_entries,
            Repr::Packed(_) => size_hint > limits.listpack_entries,
            Repr::Table(_) => false,
        };
        if too_many {
            self.convert_to_table(size_hint);
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        match self.encoding() {
            Encoding::Intset => "intset",
            Encoding::Listpack => "listpack",
            Encoding::Hashtable => "hashtable",
        }
    }

    pub fn encoding(&self) -> Encoding {
        match &self.repr {
            Repr::Ints(_) => Encoding::Intset,
            Repr::Packed(_) => Encoding::Listpack,
            Repr::Table(_) => Encoding::Hashtable,
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(ints) => ints.len(),
            Repr::Packed(lp) => lp.len(),
            Repr::Table(table) => table.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An estimate of the heap memory held (MEMORY USAGE, INFO).
    pub fn heap_size(&self) -> usize {
        match &self.repr {
            Repr::Ints(ints) => ints.heap_size(),
            Repr::Packed(lp) => lp.total_bytes(),
            Repr::Table(table) => table.heap_size(),
        }
    }

    /// The listpack of a listpack-encoded set (for DUMP and RDB).
    pub fn listpack(&self) -> Option<&Listpack> {
        match &self.repr {
            Repr::Packed(lp) => Some(lp),
            _ => None,
        }
    }

    /// The intset blob of an intset-encoded set, laid out as Valkey stores
    /// it in RDB files: encoding width and length as u32 LE, then the
    /// members in ascending order, little-endian.
    pub fn intset_blob(&self) -> Option<Vec<u8>> {
        match &self.repr {
            Repr::Ints(ints) => Some(ints.blob()),
            _ => None,
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(ints) => parse_i64(member).is_some_and(|v| ints.contains(v)),
            Repr::Packed(lp) => lp.find(member, 1).is_some(),
            Repr::Table(table) => table.contains(member),
        }
    }

    /// Membership of a member taken from another set.
    pub fn contains_item(&self, item: Item<'_>) -> bool {
        match (&self.repr, item) {
            (Repr::Ints(ints), Item::Int(v)) => ints.contains(v),
            _ => item.with_bytes(|bytes| self.contains(bytes)),
        }
    }

    /// Adds a member, converting as Valkey's setTypeAdd does. Returns
    /// whether it was new.
    pub fn add(&mut self, member: &[u8], limits: SetLimits) -> bool {
        match &mut self.repr {
            Repr::Table(table) => table.insert(member),
            Repr::Packed(lp) => {
                if lp.find(member, 1).is_some() {
                    return false;
                }
                let fits = lp.len() < limits.listpack_entries
                    && member.len() <= limits.listpack_value
                    && lp.total_bytes() + member.len() <= LISTPACK_SAFETY_SIZE;
                if fits {
                    // Grow by exactly the new entry, as Valkey reallocates.
                    lp.reserve_exact(ferrokey_formats::listpack::entry_size(member));
                    lp.push_back(member);
                } else {
                    let capacity = lp.len() + 1;
                    self.convert_to_table(capacity);
                    self.add(member, limits);
                }
                true
            }
            Repr::Ints(ints) => match parse_i64(member) {
                Some(v) => {
                    let added = ints.insert(v);
                    if added && ints.len() > limits.intset_entries {
                        let len = ints.len();
                        self.convert_to_table(len);
                    }
                    added
                }
                None => {
                    if ints.listpack_could_take(member, limits) {
                        let mut lp = ints.to_listpack();
                        lp.push_back(member);
                        lp.shrink_to_fit();
                        self.repr = Repr::Packed(lp);
                    } else {
                        let capacity = ints.len() + 1;
                        self.convert_to_table(capacity);
                        self.add(member, limits);
                    }
                    true
                }
            },
        }
    }

    /// Removes a member; returns whether it was there. Never converts.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(ints) => parse_i64(member).is_some_and(|v| ints.remove(v)),
            Repr::Packed(lp) => match lp.find(member, 1) {
                Some(offset) => {
                    lp.delete_at(offset, 1);
                    lp.shrink_to_fit();
                    true
                }
                None => false,
            },
            Repr::Table(table) => table.remove(member),
        }
    }

    /// The member at `index` in iteration order (O(1) except for listpacks).
    pub fn get(&self, index: usize) -> Item<'_> {
        match &self.repr {
            Repr::Ints(ints) => Item::Int(ints.get(index)),
            Repr::Packed(lp) => lp.get(lp.seek(index as i64).expect("index within the set")),
            Repr::Table(table) => Item::Str(table.get(index)),
        }
    }

    /// A uniformly random member of a non-empty set.
    pub fn random(&self, rng: &mut impl Rng) -> Item<'_> {
        self.get(rng.gen_range(0..self.len()))
    }

    /// Removes a uniformly random member of a non-empty set and returns it.
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Vec<u8> {
        let index = rng.gen_range(0..self.len());
        match &mut self.repr {
            Repr::Ints(ints) => {
                let v = ints.get(index);
                ints.remove(v);
                itoa::Buffer::new().format(v).as_bytes().to_vec()
            }
            Repr::Packed(lp) => {
                let offset = lp.seek(index as i64).expect("index within the set");
                let member = lp.get(offset).to_vec();
                lp.delete_at(offset, 1);
                lp.shrink_to_fit();
                member
            }
            Repr::Table(table) => table.take(index),
        }
    }

    /// Keeps only the members whose index `keep` accepts (in iteration
    /// order), leaving the encoding as it is.
    pub fn retain_indexes(&mut self, mut keep: impl FnMut(usize) -> bool) {
        match &mut self.repr {
            Repr::Ints(ints) => ints.retain_indexes(keep),
            Repr::Packed(lp) => {
                let kept: Vec<Vec<u8>> =
                    lp.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, (_, item))| item.to_vec()).collect();
                let mut rebuilt = Listpack::from_items(kept.iter().map(Vec::as_slice));
                rebuilt.shrink_to_fit();
                *lp = rebuilt;
            }
            Repr::Table(table) => {
                // Remove from the top down: a removal moves the last member
                // into the freed position, which has been judged already.
                for index in (0..table.len()).rev() {
                    if !keep(index) {
                        table.take(index);
                    }
                }
            }
        }
    }

    /// The members in iteration order: ascending for an intset, insertion
    /// order for a listpack, position order for a hash table.
    pub fn iter(&self) -> Members<'_> {
        match &self.repr {
            Repr::Ints(ints) => Members::Ints(ints, 0),
            Repr::Packed(lp) => Members::Packed(lp.iter()),
            Repr::Table(table) => Members::Table(table.iter()),
        }
    }

    /// One SSCAN step over a hash table; None for the compact encodings,
    /// which SSCAN returns whole.
    pub fn table_scan(&self, cursor: u64, count: usize, visit: impl FnMut(&[u8])) -> Option<u64> {
        match &self.repr {
            Repr::Table(table) => Some(table.scan(cursor, count, visit)),
            _ => None,
        }
    }

    /// Turns a set whose members are all integers into an intset when it
    /// has few enough members (done to stored intersections); a set with
    /// another member stays as it is.
    pub fn compact_integers(&mut self, limits: SetLimits) {
        if matches!(self.repr, Repr::Ints(_)) || self.len() > limits.intset_entries {
            return;
        }
        let mut ints = IntSet::default();
        for item in self.iter() {
            let value = match item {
                Item::Int(v) => Some(v),
                Item::Str(s) => parse_i64(s),
            };
            let Some(value) = value else { return };
            ints.insert(value);
        }
        self.repr = Repr::Ints(ints);
    }

    /// An intset-encoded set holding `ints` (as read from an RDB file or a
    /// RESTORE payload, with the width it was stored in).
    pub fn from_intset(ints: IntSet) -> Set {
        Set { repr: Repr::Ints(ints) }
    }

    /// A listpack-encoded set around a checked listpack of distinct members.
    pub fn from_listpack(lp: Listpack) -> Set {
        Set { repr: Repr::Packed(lp) }
    }

    fn convert_to_table(&mut self, capacity: usize) {
        let mut table = Table::with_capacity(capacity.max(self.len()));
        for item in self.iter() {
            item.with_bytes(|bytes| table.insert(bytes));
        }
        self.repr = Repr::Table(table);
    }
}

pub enum Members<'a> {
    Ints(&'a IntSet, usize),
    Packed(ferrokey_formats::listpack::Iter<'a>),
    Table(table::Iter<'a>),
}

impl<'a> Iterator for Members<'a> {
    type Item = Item<'a>;
    fn next(&mut self) -> Option<Item<'a>> {
        match self {
            Members::Ints(ints, next) => {
                let i = *next;
                (i < ints.len()).then(|| {
                    *next += 1;
                    Item::Int(ints.get(i))
                })
            }
            Members::Packed(iter) => iter.next().map(|(_, item)| item),
            Members::Table(iter) => iter.next().map(Item::Str),
        }
    }
}

/// Sorted distinct integers in the narrowest width that holds them all.
#[derive(Clone, Debug)]
pub enum IntSet {
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl Default for IntSet {
    fn default() -> IntSet {
        IntSet::I16(Vec::new())
    }
}

/// Inserts into a sorted vector growing it by exactly one element, as
/// Valkey reallocates its intset on every insertion.
fn insert_sorted<T: Ord + Copy>(values: &mut Vec<T>, v: T) -> bool {
    match values.binary_search(&v) {
        Ok(_) => false,
        Err(at) => {
            values.reserve_exact(1);
            values.insert(at, v);
            true
        }
    }
}

fn remove_sorted<T: Ord + Copy>(values: &mut Vec<T>, v: T) -> bool {
    match values.binary_search(&v) {
        Ok(at) => {
            values.remove(at);
            values.shrink_to_fit();
            true
        }
        Err(_) => false,
    }
}

fn retain_by_index<T>(values: &mut Vec<T>, mut keep: impl FnMut(usize) -> bool) {
    let mut index = 0;
    values.retain(|_| {
        index += 1;
        keep(index - 1)
    });
    values.shrink_to_fit();
}

fn widen<T: Copy + Into<i64>, U: TryFrom<i64>>(values: &[T]) -> Vec<U> {
    let mut wide = Vec::with_capacity(values.len() + 1);
    wide.extend(values.iter().filter_map(|&v| U::try_from(v.into()).ok()));
    wide
}

/// Length of `v` in decimal, sign included.
fn decimal_len(v: i64) -> usize {
    itoa::Buffer::new().format(v).len()
}

impl IntSet {
    pub fn len(&self) -> usize {
        match self {
            IntSet::I16(v) => v.len(),
            IntSet::I32(v) => v.len(),
            IntSet::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th smallest member.
    pub fn get(&self, i: usize) -> i64 {
        match self {
            IntSet::I16(v) => v[i].into(),
            IntSet::I32(v) => v[i].into(),
            IntSet::I64(v) => v[i],
        }
    }

    /// Bytes per member: 2, 4 or 8.
    pub fn width(&self) -> usize {
        match self {
            IntSet::I16(_) => 2,
            IntSet::I32(_) => 4,
            IntSet::I64(_) => 8,
        }
    }

    pub fn contains(&self, v: i64) -> bool {
        match self {
            IntSet::I16(values) => i16::try_from(v).is_ok_and(|v| values.binary_search(&v).is_ok()),
            IntSet::I32(values) => i32::try_from(v).is_ok_and(|v| values.binary_search(&v).is_ok()),
            IntSet::I64(values) => values.binary_search(&v).is_ok(),
        }
    }

    pub fn insert(&mut self, v: i64) -> bool {
        match self {
            IntSet::I16(values) => match i16::try_from(v) {
                Ok(narrow) => return insert_sorted(values, narrow),
                Err(_) if i32::try_from(v).is_ok() => *self = IntSet::I32(widen(values)),
                Err(_) => *self = IntSet::I64(widen(values)),
            },
            IntSet::I32(values) => match i32::try_from(v) {
                Ok(narrow) => return insert_sorted(values, narrow),
                Err(_) => *self = IntSet::I64(widen(values)),
            },
            IntSet::I64(values) => return insert_sorted(values, v),
        }
        // Widened: the value lies outside every member's range, so it is new.
        self.insert(v)
    }

    pub fn remove(&mut self, v: i64) -> bool {
        match self {
            IntSet::I16(values) => i16::try_from(v).is_ok_and(|v| remove_sorted(values, v)),
            IntSet::I32(values) => i32::try_from(v).is_ok_and(|v| remove_sorted(values, v)),
            IntSet::I64(values) => remove_sorted(values, v),
        }
    }

    fn retain_indexes(&mut self, keep: impl FnMut(usize) -> bool) {
        match self {
            IntSet::I16(values) => retain_by_index(values, keep),
            IntSet::I32(values) => retain_by_index(values, keep),
            IntSet::I64(values) => retain_by_index(values, keep),
        }
    }

    /// Whether converting to a listpack and adding the non-integer
    /// `member` stays within the listpack limits, judged as Valkey does:
    /// every member assumed as long as the longest of the extremes.
    fn listpack_could_take(&self, member: &[u8], limits: SetLimits) -> bool {
        let n = self.len();
        let (longest, estimated_bytes) = if n == 0 {
            (0, 0)
        } else {
            let (min, max) = (self.get(0), self.get(n - 1));
            let longest = decimal_len(min).max(decimal_len(max));
            let repeated = |v: i64| 7 + ferrokey_formats::listpack::int_entry_size(v) * n;
            (longest, repeated(min).max(repeated(max)))
        };
        n < limits.listpack_entries
            && member.len() <= limits.listpack_value
            && longest <= limits.listpack_value
            && estimated_bytes + member.len() <= LISTPACK_SAFETY_SIZE
    }

    fn to_listpack(&self) -> Listpack {
        let mut lp = Listpack::new();
        let mut decimal = itoa::Buffer::new();
        for i in 0..self.len() {
            lp.push_back(decimal.format(self.get(i)).as_bytes());
        }
        lp.shrink_to_fit();
        lp
    }

    fn blob(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.len() * self.width());
        out.extend_from_slice(&(self.width() as u32).to_le_bytes());
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        match self {
            IntSet::I16(values) => values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            IntSet::I32(values) => values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            IntSet::I64(values) => values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        }
        out
    }

    fn heap_size(&self) -> usize {
        // Valkey's intset header (encoding and length) plus the members.
        8 + match self {
            IntSet::I16(v) => v.capacity() * 2,
            IntSet::I32(v) => v.capacity() * 4,
            IntSet::I64(v) => v.capacity() * 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    const DEFAULTS: SetLimits = SetLimits { intset_entries: 512, listpack_entries: 128, listpack_value: 64 };

    fn members(set: &Set) -> Vec<Vec<u8>> {
        set.iter().map(|item| item.to_vec()).collect()
    }

    #[test]
    fn intset_widens_and_stays_sorted() {
        let mut ints = IntSet::default();
        for v in [5, -3, 40_000, i64::MIN, 7, -70_000, i64::MAX] {
            assert!(ints.insert(v));
        }
        assert!(!ints.insert(7));
        assert_eq!(ints.width(), 8);
        let values: Vec<i64> = (0..ints.len()).map(|i| ints.get(i)).collect();
        assert_eq!(values, vec![i64::MIN, -70_000, -3, 5, 7, 40_000, i64::MAX]);
        // Removing the wide members never narrows it again (as in Valkey).
        assert!(ints.remove(i64::MIN) && ints.remove(i64::MAX) && ints.remove(-70_000));
        assert_eq!(ints.width(), 8);
        assert!(ints.contains(40_000) && !ints.contains(41_000));
    }

    #[test]
    fn intset_blob_is_valkeys_layout() {
        let mut set = Set::new_intset();
        for m in ["3", "1", "2"] {
            set.add(m.as_bytes(), DEFAULTS);
        }
        // What Valkey's DUMP of SADD s 3 1 2 carries: width 2, length 3, members ascending.
        assert_eq!(set.intset_blob().unwrap(), vec![2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0]);
        set.add(b"100000", DEFAULTS);
        assert_eq!(&set.intset_blob().unwrap()[..8], &[4, 0, 0, 0, 4, 0, 0, 0]);
    }

    #[test]
    fn conversions_follow_the_limits() {
        let limits = SetLimits { intset_entries: 3, listpack_entries: 4, listpack_value: 5 };
        let mut set = Set::for_new_key(b"1", 1, limits);
        assert_eq!(set.encoding(), Encoding::Intset);
        for m in ["1", "2", "3"] {
            set.add(m.as_bytes(), limits);
        }
        set.add(b"x", limits);
        assert_eq!(set.encoding(), Encoding::Listpack);
        assert_eq!(members(&set), vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec(), b"x".to_vec()]);
        set.add(b"y", limits);
        assert_eq!(set.encoding(), Encoding::Hashtable);
        assert!(set.contains(b"2") && set.contains(b"y") && !set.contains(b"z"));
        set.remove(b"y");
        set.remove(b"x");
        assert_eq!(set.encoding(), Encoding::Hashtable, "removals never convert back");
        set.compact_integers(limits);
        assert_eq!(set.encoding(), Encoding::Intset);
        assert_eq!(members(&set), vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);

        // An integer wider than the value limit sends an intset straight to a hash table.
        let mut set = Set::for_new_key(b"123456", 1, limits);
        set.add(b"123456", limits);
        set.add(b"a", limits);
        assert_eq!(set.encoding(), Encoding::Hashtable);
        // Too many integers for an intset.
        let mut set = Set::new_intset();
        for m in ["1", "2", "3", "4"] {
            set.add(m.as_bytes(), limits);
        }
        assert_eq!(set.encoding(), Encoding::Hashtable);
        // A long member sends a listpack to a hash table.
        let mut set = Set::for_new_key(b"a", 1, limits);
        set.add(b"a", limits);
        set.add(b"longer", limits);
        assert_eq!(set.encoding(), Encoding::Hashtable);
    }

    #[test]
    fn retain_and_pop_work_in_every_encoding() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        for (first, n) in [("0", 10), ("a", 10), ("a", 300)] {
            let mut set = Set::for_new_key(first.as_bytes(), n, DEFAULTS);
            for i in 0..n {
                let m = if first == "0" { i.to_string() } else { format!("a{i}") };
                set.add(m.as_bytes(), DEFAULTS);
            }
            let before = members(&set);
            set.retain_indexes(|i| i % 2 == 0);
            let kept: Vec<Vec<u8>> = before.iter().step_by(2).cloned().collect();
            let mut after = members(&set);
            after.sort();
            let mut expected = kept.clone();
            expected.sort();
            assert_eq!(after, expected, "{}", set.encoding_name());
            let popped = set.pop_random(&mut rng);
            assert!(kept.contains(&popped) && !set.contains(&popped));
        }
    }
}
