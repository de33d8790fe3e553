//! A set, in Valkey's three encodings, converted exactly when Valkey
//! converts (t_set.c), since OBJECT ENCODING shows the encoding and the
//! member order of SMEMBERS follows from it:
//!
//! - `intset`: every member a canonical 64-bit integer and at most
//!   set-max-intset-entries of them; kept sorted in the narrowest of 16, 32
//!   or 64-bit integers that holds them all (widened, never narrowed), in
//!   the very bytes of Valkey's intset, which RDB files store as they are
//!   (see `intset`);
//! - `listpack`: at most set-max-listpack-entries members of at most
//!   set-max-listpack-value bytes, in insertion order;
//! - `hashtable`: anything bigger ([`table::Table`]).
//!
//! Sets only grow out of the compact encodings: removals never convert
//! back. New sets built by SPOP, SINTERSTORE and friends start from
//! whichever encoding Valkey would create them with.

mod intset;
mod table;

use ferrokey_formats::listpack::{Item, Listpack, ListpackRef};
use ferrokey_formats::resp::parse_i64;
use rand::Rng;

use crate::config::Config;
use crate::types::compact::{Compact, Form, FormMut, Intsets};

use intset::Ints;
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

/// A set is one word: a pointer to its intset or listpack bytes, or to
/// its boxed hash table (see [`crate::types::compact`]).
#[derive(Clone, Debug)]
pub struct Set {
    repr: Compact<Table, Intsets>,
}

/// Members of an intset being built: what an RDB file or a RESTORE payload
/// holds, sorted and distinct, in the width it was stored in.
#[derive(Clone, Debug)]
pub enum IntSet {
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl Set {
    pub fn new_intset() -> Set {
        Set::with_intset(&intset::encode(&[]))
    }

    pub fn new_listpack() -> Set {
        Set { repr: Compact::listpack(Listpack::new().view()) }
    }

    pub fn new_hashtable(capacity: usize) -> Set {
        Set { repr: Compact::big(Table::with_capacity(capacity)) }
    }

    fn with_intset(bytes: &[u8]) -> Set {
        Set { repr: Compact::intset(bytes) }
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
        let too_many = match self.encoding() {
            Encoding::Intset => size_hint > limits.intset_entries,
            Encoding::Listpack => size_hint > limits.listpack_entries,
            Encoding::Hashtable => false,
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
        match self.repr.form() {
            Form::Intset(..) => Encoding::Intset,
            Form::Listpack(_) => Encoding::Listpack,
            Form::Big(_) => Encoding::Hashtable,
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match self.repr.form() {
            Form::Intset(bytes, _) => Ints::new(bytes).len(),
            Form::Listpack(lp) => lp.len(),
            Form::Big(table) => table.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An estimate of the heap memory held (MEMORY USAGE, INFO).
    pub fn heap_size(&self) -> usize {
        match self.repr.form() {
            Form::Intset(bytes, _) => bytes.len(),
            Form::Listpack(lp) => lp.total_bytes(),
            Form::Big(table) => table.heap_size(),
        }
    }

    /// The listpack of a listpack-encoded set (for DUMP and RDB).
    pub fn listpack(&self) -> Option<ListpackRef<'_>> {
        match self.repr.form() {
            Form::Listpack(lp) => Some(lp),
            _ => None,
        }
    }

    /// The bytes of an intset-encoded set, laid out as Valkey keeps them
    /// and stores them in RDB files: encoding width and length as u32 LE,
    /// then the members in ascending order, little-endian.
    pub fn intset_blob(&self) -> Option<&[u8]> {
        match self.repr.form() {
            Form::Intset(bytes, _) => Some(bytes),
            _ => None,
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match self.repr.form() {
            Form::Intset(bytes, _) => parse_i64(member).is_some_and(|v| Ints::new(bytes).contains(v)),
            Form::Listpack(lp) => lp.find(member, 1).is_some(),
            Form::Big(table) => table.contains(member),
        }
    }

    /// Membership of a member taken from another set.
    pub fn contains_item(&self, item: Item<'_>) -> bool {
        match (self.repr.form(), item) {
            (Form::Intset(bytes, _), Item::Int(v)) => Ints::new(bytes).contains(v),
            _ => item.with_bytes(|bytes| self.contains(bytes)),
        }
    }

    /// Adds a member, converting as Valkey's setTypeAdd does. Returns
    /// whether it was new.
    pub fn add(&mut self, member: &[u8], limits: SetLimits) -> bool {
        match self.repr.form_mut() {
            FormMut::Big(table) => table.insert(member),
            FormMut::Listpack(mut lp) => {
                let view = lp.view();
                if view.find(member, 1).is_some() {
                    return false;
                }
                let fits = view.len() < limits.listpack_entries
                    && member.len() <= limits.listpack_value
                    && view.total_bytes() + member.len() <= LISTPACK_SAFETY_SIZE;
                if fits {
                    lp.modify(|lp| lp.push_back(member));
                } else {
                    let capacity = view.len() + 1;
                    self.convert_to_table(capacity);
                    self.add(member, limits);
                }
                true
            }
            FormMut::Intset(bytes, _) => {
                let ints = Ints::new(bytes);
                match parse_i64(member) {
                    Some(v) => {
                        let Some(grown) = ints.with(v) else { return false };
                        *self = Set::with_intset(&grown);
                        if self.len() > limits.intset_entries {
                            let len = self.len();
                            self.convert_to_table(len);
                        }
                        true
                    }
                    None => {
                        if listpack_could_take(ints, member, limits) {
                            let mut lp = intset_to_listpack(ints);
                            lp.push_back(member);
                            self.repr = Compact::listpack(lp.view());
                        } else {
                            let capacity = ints.len() + 1;
                            self.convert_to_table(capacity);
                            self.add(member, limits);
                        }
                        true
                    }
                }
            }
        }
    }

    /// Removes a member; returns whether it was there. Never converts.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.repr.form_mut() {
            FormMut::Intset(bytes, _) => {
                let Some(shrunk) = parse_i64(member).and_then(|v| Ints::new(bytes).without(v)) else { return false };
                *self = Set::with_intset(&shrunk);
                true
            }
            FormMut::Listpack(mut lp) => match lp.view().find(member, 1) {
                Some(offset) => {
                    lp.modify(|lp| lp.delete_at(offset, 1));
                    true
                }
                None => false,
            },
            FormMut::Big(table) => table.remove(member),
        }
    }

    /// The member at `index` in iteration order (O(1) except for listpacks).
    pub fn get(&self, index: usize) -> Item<'_> {
        match self.repr.form() {
            Form::Intset(bytes, _) => Item::Int(Ints::new(bytes).get(index)),
            Form::Listpack(lp) => lp.get(lp.seek(index as i64).expect("index within the set")),
            Form::Big(table) => Item::Str(table.get(index)),
        }
    }

    /// A uniformly random member of a non-empty set.
    pub fn random(&self, rng: &mut impl Rng) -> Item<'_> {
        self.get(rng.gen_range(0..self.len()))
    }

    /// Removes a uniformly random member of a non-empty set and returns it.
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Vec<u8> {
        let index = rng.gen_range(0..self.len());
        match self.repr.form_mut() {
            FormMut::Intset(bytes, _) => {
                let ints = Ints::new(bytes);
                let member = itoa::Buffer::new().format(ints.get(index)).as_bytes().to_vec();
                *self = Set::with_intset(&ints.without_index(index));
                member
            }
            FormMut::Listpack(mut lp) => {
                let view = lp.view();
                let offset = view.seek(index as i64).expect("index within the set");
                let member = view.get(offset).to_vec();
                lp.modify(|lp| lp.delete_at(offset, 1));
                member
            }
            FormMut::Big(table) => table.take(index),
        }
    }

    /// Keeps only the members whose index `keep` accepts (in iteration
    /// order), leaving the encoding as it is.
    pub fn retain_indexes(&mut self, mut keep: impl FnMut(usize) -> bool) {
        match self.repr.form_mut() {
            FormMut::Intset(bytes, _) => {
                let kept = Ints::new(bytes).retained(keep);
                *self = Set::with_intset(&kept);
            }
            FormMut::Listpack(lp) => {
                let kept: Vec<Vec<u8>> = lp
                    .view()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| keep(*i))
                    .map(|(_, (_, item))| item.to_vec())
                    .collect();
                self.repr = Compact::listpack(Listpack::from_items(kept.iter().map(Vec::as_slice)).view());
            }
            FormMut::Big(table) => {
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
        match self.repr.form() {
            Form::Intset(bytes, _) => Members::Ints(Ints::new(bytes), 0),
            Form::Listpack(lp) => Members::Packed(lp.iter()),
            Form::Big(table) => Members::Table(table.iter()),
        }
    }

    /// One SSCAN step over a hash table; None for the compact encodings,
    /// which SSCAN returns whole.
    pub fn table_scan(&self, cursor: u64, count: usize, visit: impl FnMut(&[u8])) -> Option<u64> {
        match self.repr.form() {
            Form::Big(table) => Some(table.scan(cursor, count, visit)),
            _ => None,
        }
    }

    /// Turns a set whose members are all integers into an intset when it
    /// has few enough members (done to stored intersections); a set with
    /// another member stays as it is.
    pub fn compact_integers(&mut self, limits: SetLimits) {
        if self.encoding() == Encoding::Intset || self.len() > limits.intset_entries {
            return;
        }
        let mut values = Vec::with_capacity(self.len());
        for item in self.iter() {
            let value = match item {
                Item::Int(v) => Some(v),
                Item::Str(s) => parse_i64(s),
            };
            let Some(value) = value else { return };
            values.push(value);
        }
        values.sort_unstable();
        *self = Set::with_intset(&intset::encode(&values));
    }

    /// An intset-encoded set holding `ints` (as read from an RDB file or a
    /// RESTORE payload, with the width it was stored in).
    pub fn from_intset(ints: IntSet) -> Set {
        let (values, width): (Vec<i64>, usize) = match ints {
            IntSet::I16(v) => (v.into_iter().map(i64::from).collect(), 2),
            IntSet::I32(v) => (v.into_iter().map(i64::from).collect(), 4),
            IntSet::I64(v) => (v, 8),
        };
        Set::with_intset(&intset::encode_at(&values, width))
    }

    /// A listpack-encoded set around a checked listpack of distinct members.
    pub fn from_listpack(lp: Listpack) -> Set {
        Set { repr: Compact::listpack(lp.view()) }
    }

    fn convert_to_table(&mut self, capacity: usize) {
        let mut table = Table::with_capacity(capacity.max(self.len()));
        for item in self.iter() {
            item.with_bytes(|bytes| table.insert(bytes));
        }
        self.repr = Compact::big(table);
    }
}

/// Whether converting an intset to a listpack and adding the non-integer
/// `member` stays within the listpack limits, judged as Valkey does: every
/// member assumed as long as the longest of the extremes.
fn listpack_could_take(ints: Ints<'_>, member: &[u8], limits: SetLimits) -> bool {
    let n = ints.len();
    let (longest, estimated_bytes) = if n == 0 {
        (0, 0)
    } else {
        let (min, max) = (ints.get(0), ints.get(n - 1));
        let longest = decimal_len(min).max(decimal_len(max));
        let repeated = |v: i64| 7 + ferrokey_formats::listpack::int_entry_size(v) * n;
        (longest, repeated(min).max(repeated(max)))
    };
    n < limits.listpack_entries
        && member.len() <= limits.listpack_value
        && longest <= limits.listpack_value
        && estimated_bytes + member.len() <= LISTPACK_SAFETY_SIZE
}

/// Length of `v` in decimal, sign included.
fn decimal_len(v: i64) -> usize {
    itoa::Buffer::new().format(v).len()
}

fn intset_to_listpack(ints: Ints<'_>) -> Listpack {
    let mut lp = Listpack::new();
    let mut decimal = itoa::Buffer::new();
    for v in ints.iter() {
        lp.push_back(decimal.format(v).as_bytes());
    }
    lp
}

pub enum Members<'a> {
    Ints(Ints<'a>, usize),
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

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    const DEFAULTS: SetLimits = SetLimits { intset_entries: 512, listpack_entries: 128, listpack_value: 64 };

    fn members(set: &Set) -> Vec<Vec<u8>> {
        set.iter().map(|item| item.to_vec()).collect()
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

    #[test]
    fn a_small_set_is_one_pointer_to_its_bytes() {
        // One word, so a Value holds a set without a box of its own.
        assert_eq!(std::mem::size_of::<Set>(), 8);
        let mut ints = Set::new_intset();
        for m in ["7", "-2", "300"] {
            ints.add(m.as_bytes(), DEFAULTS);
        }
        let copy = ints.clone();
        assert!(ints.remove(b"7") && !ints.remove(b"7") && !ints.remove(b"x"));
        assert_eq!(members(&copy), vec![b"-2".to_vec(), b"7".to_vec(), b"300".to_vec()]);
        assert_eq!(members(&ints), vec![b"-2".to_vec(), b"300".to_vec()]);
        // The intset's bytes are all it allocates: header and 2-byte members.
        assert_eq!(ints.heap_size(), 8 + 2 * 2);
        let mut words = Set::new_listpack();
        words.add(b"a", DEFAULTS);
        words.add(b"b", DEFAULTS);
        assert_eq!(words.heap_size(), Listpack::from_items([&b"a"[..], b"b"]).total_bytes());
        assert!(words.contains_item(Item::Str(b"b")) && ints.contains_item(Item::Int(300)));
    }
}
