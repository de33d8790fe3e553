//! A sorted set, in one of Valkey's two encodings.
//!
//! Small sets are a listpack of member, score, member, score, ... sorted by
//! (score, member), laid out byte for byte as Valkey lays it out: a score
//! that is an integer within ±2^62 is stored as an integer, any other in
//! Valkey's text form (`double::format`), and read back with `strtod`. So
//! -0 comes back as 0 from a listpack, as it does in Valkey.
//!
//! Past zset-max-listpack-entries members, or with a member longer than
//! zset-max-listpack-value bytes, a set becomes "skiplist" (the name OBJECT
//! ENCODING reports): here an arena of members with a hash index and an
//! order-statistic B+ tree (see `big`), with Valkey's O(log n) costs.
//! Conversions happen exactly where Valkey's t_zset.c makes them; removals
//! never convert a set back.
//!
//! Range queries come in two flavours because Valkey's two encodings find
//! range starts differently: the listpack is scanned element by element,
//! the skiplist is searched. Both give the same answer on well-formed
//! ranges, but lexicographic ranges over members with different scores,
//! and LIMIT with a negative offset, expose the difference, and clients
//! see it; it is reproduced here.

mod big;
mod index;
mod tree;

use std::cmp::Ordering;

use crate::double;

use ferrokey_formats::listpack::{entry_size, Item, Listpack, ListpackRef};
use rand::Rng;

use crate::config::Config;
use crate::types::compact::{Compact, Form, FormMut};
use big::BigZSet;

/// Valkey never lets a listpack grow past 1 GiB (LISTPACK_MAX_SAFETY_SIZE).
const LISTPACK_SAFETY_LIMIT: usize = 1 << 30;

/// Valkey reads at most this many bytes of a stored score text.
const STORED_SCORE_MAX: usize = 127;

/// The thresholds of the listpack encoding.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_entries: usize,
    pub max_value: usize,
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        let clamp = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Limits {
            max_entries: clamp(config.zset_max_listpack_entries),
            max_value: clamp(config.zset_max_listpack_value),
        }
    }

    fn fit(&self, entries: usize, longest_member: usize) -> bool {
        entries <= self.max_entries && longest_member <= self.max_value
    }
}

/// A sorted set is one word: a pointer to its listpack's bytes or to its
/// boxed big form (see [`crate::types::compact`]).
#[derive(Clone, Debug)]
pub struct ZSet {
    repr: Compact<BigZSet>,
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::packed(&Listpack::new())
    }
}

/// ZADD's conditions.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddFlags {
    pub incr: bool,
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
}

/// What ZADD did to one member.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Added {
    /// A new member, with this score.
    New(f64),
    /// The member's score changed to this one.
    Updated(f64),
    /// The member already had this score.
    Unchanged(f64),
    /// A condition (NX, XX, GT, LT) left the member alone.
    Skipped,
}

/// An increment made the score NaN (inf + -inf).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotANumber;

/// A score interval, each end inclusive or exclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub min_exclusive: bool,
    pub max_exclusive: bool,
}

impl ScoreRange {
    pub fn above_min(&self, score: f64) -> bool {
        if self.min_exclusive {
            score > self.min
        } else {
            score >= self.min
        }
    }

    pub fn below_max(&self, score: f64) -> bool {
        if self.max_exclusive {
            score < self.max
        } else {
            score <= self.max
        }
    }

    fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.min_exclusive || self.max_exclusive))
    }
}

/// One end of a lexicographic range: "-", "+", or a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexBound {
    /// "-": below every member.
    Lowest,
    /// "+": above every member.
    Highest,
    Member(Vec<u8>),
}

/// Valkey's comparison of range ends, where "-" and "+" are sentinels.
fn compare_bounds(a: &LexBound, b: &LexBound) -> Ordering {
    match (a, b) {
        (LexBound::Lowest, LexBound::Lowest) | (LexBound::Highest, LexBound::Highest) => Ordering::Equal,
        (LexBound::Lowest, _) | (_, LexBound::Highest) => Ordering::Less,
        (LexBound::Highest, _) | (_, LexBound::Lowest) => Ordering::Greater,
        (LexBound::Member(x), LexBound::Member(y)) => x.cmp(y),
    }
}

fn compare_member(member: &[u8], bound: &LexBound) -> Ordering {
    match bound {
        LexBound::Lowest => Ordering::Greater,
        LexBound::Highest => Ordering::Less,
        LexBound::Member(m) => member.cmp(m),
    }
}

/// A member interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
    pub min_exclusive: bool,
    pub max_exclusive: bool,
}

impl LexRange {
    pub fn above_min(&self, member: &[u8]) -> bool {
        let order = compare_member(member, &self.min);
        if self.min_exclusive {
            order == Ordering::Greater
        } else {
            order != Ordering::Less
        }
    }

    pub fn below_max(&self, member: &[u8]) -> bool {
        let order = compare_member(member, &self.max);
        if self.max_exclusive {
            order == Ordering::Less
        } else {
            order != Ordering::Greater
        }
    }

    fn is_empty(&self) -> bool {
        match compare_bounds(&self.min, &self.max) {
            Ordering::Greater => true,
            Ordering::Equal => self.min_exclusive || self.max_exclusive,
            Ordering::Less => false,
        }
    }
}

/// A score range or a member range, for the code they share.
#[derive(Clone, Copy, Debug)]
pub enum Range<'a> {
    Score(&'a ScoreRange),
    Lex(&'a LexRange),
}

impl Range<'_> {
    pub fn above_min(&self, member: Item<'_>, score: f64) -> bool {
        match self {
            Range::Score(r) => r.above_min(score),
            Range::Lex(r) => member.with_bytes(|m| r.above_min(m)),
        }
    }

    pub fn below_max(&self, member: Item<'_>, score: f64) -> bool {
        match self {
            Range::Score(r) => r.below_max(score),
            Range::Lex(r) => member.with_bytes(|m| r.below_max(m)),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Range::Score(r) => r.is_empty(),
            Range::Lex(r) => r.is_empty(),
        }
    }
}

/// The score a listpack entry holds.
fn stored_score(item: Item<'_>) -> f64 {
    match item {
        Item::Int(n) => n as f64,
        Item::Str(text) => double::read_stored(&text[..text.len().min(STORED_SCORE_MAX)]),
    }
}

/// Calls `f` with the listpack text of a score: integers as integers (so
/// the listpack stores them as such), anything else in Valkey's form.
fn with_score_text<R>(score: f64, f: impl FnOnce(&[u8]) -> R) -> R {
    match double::exact_integer(score) {
        Some(n) => f(itoa::Buffer::new().format(n).as_bytes()),
        None => f(double::format(score).as_bytes()),
    }
}

/// Member/score pairs of a sorted set listpack, from a member's offset.
struct Pairs<'a> {
    lp: ListpackRef<'a>,
    next: Option<usize>,
    reverse: bool,
}

impl<'a> Pairs<'a> {
    fn from_rank(lp: ListpackRef<'a>, rank: usize, reverse: bool) -> Pairs<'a> {
        let next = i64::try_from(rank).ok().and_then(|r| r.checked_mul(2)).and_then(|i| lp.seek(i));
        Pairs { lp, next, reverse }
    }
}

impl<'a> Iterator for Pairs<'a> {
    /// (offset of the member, member, score)
    type Item = (usize, Item<'a>, f64);

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.next.take()?;
        let score_at = self.lp.next(at)?;
        let member = self.lp.get(at);
        let score = stored_score(self.lp.get(score_at));
        self.next = if self.reverse { self.lp.prev(at).and_then(|s| self.lp.prev(s)) } else { self.lp.next(score_at) };
        Some((at, member, score))
    }
}

/// Elements in order from some rank: (member, score).
pub struct Iter<'a>(Walk<'a>);

enum Walk<'a> {
    Packed(Pairs<'a>),
    Big(big::Elements<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (Item<'a>, f64);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Walk::Packed(pairs) => pairs.next().map(|(_, m, s)| (m, s)),
            Walk::Big(elements) => elements.next().map(|(m, s)| (Item::Str(m), s)),
        }
    }
}

impl ZSet {
    fn packed(lp: &Listpack) -> ZSet {
        ZSet { repr: Compact::listpack(lp.view()) }
    }

    fn big(set: BigZSet) -> ZSet {
        ZSet { repr: Compact::big(set) }
    }

    /// A new set for about `size_hint` members of about `value_len_hint`
    /// bytes (Valkey's zsetTypeCreate).
    pub fn with_hints(size_hint: usize, value_len_hint: usize, limits: Limits) -> ZSet {
        if limits.fit(size_hint, value_len_hint) {
            ZSet::default()
        } else {
            ZSet::big(BigZSet::with_capacity(size_hint))
        }
    }

    /// Converts to the big encoding ahead of adding `size_hint` members of
    /// about `value_len_hint` bytes that would not fit (zsetTypeMaybeConvert).
    pub fn prepare_for(&mut self, size_hint: usize, value_len_hint: usize, limits: Limits) {
        if !self.repr.is_big() && !limits.fit(size_hint, value_len_hint) {
            self.convert_to_big(size_hint);
        }
    }

    /// A set holding `elements`, which are sorted by (score, member) and
    /// distinct, in the encoding their count and sizes call for (what
    /// Valkey's stores of computed results end up in).
    pub fn from_sorted(elements: Vec<(Vec<u8>, f64)>, limits: Limits) -> ZSet {
        let longest = elements.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        let total: usize = elements.iter().map(|(m, _)| m.len()).sum();
        if limits.fit(elements.len(), longest) && total <= LISTPACK_SAFETY_LIMIT {
            let mut lp = Listpack::new();
            for (member, score) in &elements {
                push_pair(&mut lp, member, *score);
            }
            ZSet::packed(&lp)
        } else {
            let mut set = BigZSet::with_capacity(elements.len());
            for (member, score) in elements {
                set.insert(&member, score);
            }
            ZSet::big(set)
        }
    }

    /// A set from distinct pairs in any order (an RDB file's ZSET_2, which
    /// lists them from the highest down), in the encoding Valkey's loader
    /// leaves them in.
    pub fn from_pairs(mut pairs: Vec<(Vec<u8>, f64)>, limits: Limits) -> ZSet {
        pairs.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal).then_with(|| a.0.cmp(&b.0)));
        ZSet::from_sorted(pairs, limits)
    }

    /// A set around a listpack of member/score pairs that was read from an
    /// RDB file or a RESTORE payload and checked (well formed, sorted, no
    /// duplicate members); converted, as Valkey does on load, when it holds
    /// more than zset-max-listpack-entries members.
    pub fn from_listpack(lp: Listpack, limits: Limits) -> ZSet {
        let mut zset = ZSet::packed(&lp);
        if zset.len() > limits.max_entries {
            zset.convert_to_big(zset.len());
        }
        zset
    }

    fn convert_to_big(&mut self, capacity: usize) {
        let Form::Listpack(lp) = self.repr.form() else { return };
        let mut set = BigZSet::with_capacity(capacity.max(lp.len() / 2));
        for (_, member, score) in Pairs::from_rank(lp, 0, false) {
            member.with_bytes(|m| set.insert(m, score));
        }
        self.repr = Compact::big(set);
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        if self.repr.is_big() {
            "skiplist"
        } else {
            "listpack"
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match self.repr.form() {
            Form::Listpack(lp) => lp.len() / 2,
            Form::Big(set) => set.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An estimate of the heap memory held (MEMORY USAGE, INFO).
    pub fn heap_size(&self) -> usize {
        match self.repr.form() {
            Form::Listpack(lp) => lp.total_bytes(),
            Form::Big(set) => set.heap_size(),
        }
    }

    /// The listpack of a small set, as Valkey would serialize it.
    pub fn as_listpack(&self) -> Option<ListpackRef<'_>> {
        match self.repr.form() {
            Form::Listpack(lp) => Some(lp),
            Form::Big(_) => None,
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self.repr.form() {
            Form::Listpack(lp) => packed_find(lp, member).map(|(_, score)| score),
            Form::Big(set) => set.score(member),
        }
    }

    /// Adds a member or changes its score under ZADD's conditions
    /// (Valkey's zsetAdd), converting to the big encoding when a new member
    /// would not fit the listpack.
    pub fn add(&mut self, score: f64, member: &[u8], flags: AddFlags, limits: Limits) -> Result<Added, NotANumber> {
        if score.is_nan() {
            return Err(NotANumber);
        }
        let current = self.score(member);
        let Some(current) = current else {
            if flags.xx {
                return Ok(Added::Skipped);
            }
            if let Form::Listpack(lp) = self.repr.form() {
                let too_big = lp.total_bytes() + member.len() > LISTPACK_SAFETY_LIMIT;
                let grown = lp.len() / 2 + 1;
                if !limits.fit(grown, member.len()) || too_big {
                    self.convert_to_big(grown);
                }
            }
            match self.repr.form_mut() {
                FormMut::Listpack(mut lp) => lp.modify(|lp| packed_insert(lp, member, score)),
                FormMut::Big(set) => set.insert(member, score),
            }
            return Ok(Added::New(score));
        };
        if flags.nx {
            return Ok(Added::Skipped);
        }
        let score = if flags.incr { score + current } else { score };
        if score.is_nan() {
            return Err(NotANumber);
        }
        if (flags.lt && score >= current) || (flags.gt && score <= current) {
            return Ok(Added::Skipped);
        }
        if score == current {
            return Ok(Added::Unchanged(score));
        }
        match self.repr.form_mut() {
            FormMut::Listpack(mut lp) => lp.modify(|lp| {
                if let Some((at, _)) = packed_find(lp.view(), member) {
                    lp.delete_at(at, 2);
                }
                packed_insert(lp, member, score);
            }),
            FormMut::Big(set) => set.set_score(member, score),
        }
        Ok(Added::Updated(score))
    }

    /// Removes a member; false if it was not there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.repr.form_mut() {
            FormMut::Listpack(mut lp) => match packed_find(lp.view(), member) {
                Some((at, _)) => {
                    lp.modify(|lp| lp.delete_at(at, 2));
                    true
                }
                None => false,
            },
            FormMut::Big(set) => set.remove(member).is_some(),
        }
    }

    /// The 0-based ascending rank of a member, and its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        match self.repr.form() {
            Form::Listpack(lp) => Pairs::from_rank(lp, 0, false)
                .enumerate()
                .find(|(_, (_, m, _))| m.eq_bytes(member))
                .map(|(rank, (_, _, score))| (rank, score)),
            Form::Big(set) => set.rank(member),
        }
    }

    /// The elements from rank `start` on, toward higher ranks (lower ones
    /// when `reverse`).
    pub fn iter_from(&self, start: usize, reverse: bool) -> Iter<'_> {
        match self.repr.form() {
            Form::Listpack(lp) => Iter(Walk::Packed(Pairs::from_rank(lp, start, reverse))),
            Form::Big(set) => Iter(Walk::Big(set.iter_from(start, reverse))),
        }
    }

    /// Every element, lowest first.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0, false)
    }

    pub fn at_rank(&self, rank: usize) -> Option<(Item<'_>, f64)> {
        match self.repr.form() {
            Form::Listpack(_) => self.iter_from(rank, false).next(),
            Form::Big(set) => set.at_rank(rank).map(|(m, s)| (Item::Str(m), s)),
        }
    }

    /// Removes and returns the lowest (or highest) element.
    pub fn pop(&mut self, highest: bool) -> Option<(Vec<u8>, f64)> {
        let rank = if highest { self.len().checked_sub(1)? } else { 0 };
        let (member, score) = self.at_rank(rank).map(|(m, s)| (m.to_vec(), s))?;
        self.remove(&member);
        Some((member, score))
    }

    /// Removes the elements of ranks `start..end`; returns how many.
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        match self.repr.form_mut() {
            FormMut::Listpack(mut lp) => {
                if let Some(at) = i64::try_from(2 * start).ok().and_then(|i| lp.view().seek(i)) {
                    lp.modify(|lp| lp.delete_at(at, 2 * (end - start)));
                }
            }
            FormMut::Big(set) => {
                for _ in start..end {
                    let Some(member) = set.at_rank(start).map(|(m, _)| m.to_vec()) else { break };
                    set.remove(&member);
                }
            }
        }
        end - start
    }

    /// How many elements from the lowest satisfy `holds`: the listpack is
    /// scanned until the first that does not, the big encoding searched
    /// (which agrees when `holds` is true for a prefix of the order).
    fn leading(&self, holds: impl Fn(Item<'_>, f64) -> bool) -> usize {
        match self.repr.form() {
            Form::Listpack(lp) => Pairs::from_rank(lp, 0, false).take_while(|(_, m, s)| holds(*m, *s)).count(),
            Form::Big(set) => set.count_while(|m, s| holds(Item::Str(m), s)),
        }
    }

    /// How many elements from the highest satisfy `holds` (true for a
    /// suffix of the order), counted the same ways as [`ZSet::leading`].
    fn trailing(&self, holds: impl Fn(Item<'_>, f64) -> bool) -> usize {
        match self.repr.form() {
            Form::Listpack(lp) => {
                let last = (lp.len() / 2).saturating_sub(1);
                Pairs::from_rank(lp, last, true).take_while(|(_, m, s)| holds(*m, *s)).count()
            }
            Form::Big(set) => set.len() - set.count_while(|m, s| !holds(Item::Str(m), s)),
        }
    }

    fn check_at(&self, rank: usize, test: impl Fn(Item<'_>, f64) -> bool) -> bool {
        self.at_rank(rank).is_some_and(|(m, s)| test(m, s))
    }

    /// Whether the range can hold anything: its ends are in order, the
    /// highest element is not below it and the lowest not above it.
    fn overlaps(&self, range: Range<'_>) -> bool {
        let len = self.len();
        len > 0
            && !range.is_empty()
            && self.check_at(len - 1, |m, s| range.above_min(m, s))
            && self.check_at(0, |m, s| range.below_max(m, s))
    }

    /// The rank of the lowest element in the range.
    fn first_in(&self, range: Range<'_>) -> Option<usize> {
        if !self.overlaps(range) {
            return None;
        }
        let first = self.leading(|m, s| !range.above_min(m, s));
        self.check_at(first, |m, s| range.below_max(m, s)).then_some(first)
    }

    /// The rank of the highest element in the range.
    fn last_in(&self, range: Range<'_>) -> Option<usize> {
        if !self.overlaps(range) {
            return None;
        }
        let above = self.trailing(|m, s| !range.below_max(m, s));
        let last = self.len().checked_sub(above + 1)?;
        self.check_at(last, |m, s| range.above_min(m, s)).then_some(last)
    }

    /// The skiplist's "n-th element in range" (zslNthInRange): n counts
    /// from the lowest element in range, or from the highest when negative.
    fn nth_in(&self, range: Range<'_>, n: i64) -> Option<usize> {
        if !self.overlaps(range) {
            return None;
        }
        let len = self.len();
        if n >= 0 {
            let below = self.leading(|m, s| !range.above_min(m, s));
            let rank = below.checked_add(usize::try_from(n).ok()?).filter(|&r| r < len)?;
            self.check_at(rank, |m, s| range.below_max(m, s)).then_some(rank)
        } else {
            let through = self.leading(|m, s| range.below_max(m, s));
            let back = usize::try_from(n.checked_neg()?).ok()?;
            let rank = through.checked_sub(back)?;
            self.check_at(rank, |m, s| range.above_min(m, s)).then_some(rank)
        }
    }

    /// Where ZRANGEBYSCORE/ZRANGEBYLEX with LIMIT `offset` start, as each
    /// encoding finds it: the listpack skips `offset` elements from the
    /// first (last, when `reverse`) element in range and runs off the end
    /// for a negative offset; the skiplist counts a negative offset from
    /// the other end of the range.
    pub fn range_start(&self, range: Range<'_>, offset: i64, reverse: bool) -> Option<usize> {
        match self.repr.form() {
            Form::Listpack(_) => {
                let offset = usize::try_from(offset).ok()?;
                if reverse {
                    self.last_in(range)?.checked_sub(offset)
                } else {
                    self.first_in(range)?.checked_add(offset).filter(|&r| r < self.len())
                }
            }
            Form::Big(_) => {
                let n = if reverse { offset.wrapping_neg().wrapping_sub(1) } else { offset };
                self.nth_in(range, n)
            }
        }
    }

    /// The lowest rank in the range and how many elements follow it in
    /// the range (ZCOUNT, ZLEXCOUNT, ZREMRANGEBYSCORE/LEX).
    fn run_in(&self, range: Range<'_>) -> Option<(usize, usize)> {
        let first = self.first_in(range)?;
        let count = match self.repr.form() {
            Form::Listpack(_) => self.iter_from(first, false).take_while(|(m, s)| range.below_max(*m, *s)).count(),
            Form::Big(_) => self.leading(|m, s| range.below_max(m, s)).saturating_sub(first),
        };
        Some((first, count))
    }

    pub fn count_in(&self, range: Range<'_>) -> usize {
        self.run_in(range).map_or(0, |(_, count)| count)
    }

    /// Removes the elements in the range; returns how many.
    pub fn remove_in(&mut self, range: Range<'_>) -> usize {
        match self.run_in(range) {
            Some((first, count)) => self.remove_ranks(first, first + count),
            None => 0,
        }
    }

    /// The element at an arena position (big encoding) or rank (listpack):
    /// either way a uniform pick for `0..len`.
    pub fn at_position(&self, position: usize) -> Option<(Item<'_>, f64)> {
        match self.repr.form() {
            Form::Listpack(_) => self.at_rank(position),
            Form::Big(set) => set.at_position(position).map(|(m, s)| (Item::Str(m), s)),
        }
    }

    /// A uniformly chosen element of a non-empty set.
    pub fn random(&self, rng: &mut impl Rng) -> Option<(Item<'_>, f64)> {
        let len = self.len();
        (len > 0).then(|| rng.gen_range(0..len)).and_then(|p| self.at_position(p))
    }

    /// Whether the set is in the big encoding (scans and random sampling
    /// take different paths for it, as in Valkey).
    pub fn is_big(&self) -> bool {
        self.repr.is_big()
    }

    /// Converts back to a listpack when a set holds few and short enough
    /// members (what Valkey does to the results it stores).
    pub fn convert_to_listpack_if_fits(&mut self, limits: Limits) {
        let Form::Big(set) = self.repr.form() else { return };
        if set.len() > limits.max_entries {
            return;
        }
        let longest = set.iter_from(0, false).map(|(m, _)| m.len()).max().unwrap_or(0);
        let total: usize = set.iter_from(0, false).map(|(m, _)| m.len()).sum();
        if longest > limits.max_value || total > LISTPACK_SAFETY_LIMIT {
            return;
        }
        let mut lp = Listpack::new();
        for (member, score) in set.iter_from(0, false) {
            push_pair(&mut lp, member, score);
        }
        self.repr = Compact::listpack(lp.view());
    }

    /// Converts a listpack to the big encoding whatever its size: SORT
    /// does this to the sorted sets it reads, as Valkey's does.
    pub fn convert_to_skiplist(&mut self) {
        if !self.repr.is_big() {
            self.convert_to_big(self.len());
        }
    }
}

/// The offset and score of a member in a sorted set listpack.
fn packed_find(lp: ListpackRef<'_>, member: &[u8]) -> Option<(usize, f64)> {
    let at = lp.find(member, 2)?;
    let score = stored_score(lp.get(lp.next(at)?));
    Some((at, score))
}

/// Appends a pair (the caller keeps the order).
fn push_pair(lp: &mut Listpack, member: &[u8], score: f64) {
    with_score_text(score, |text| {
        lp.push_back(member);
        lp.push_back(text);
    });
}

/// Inserts a pair where (score, member) order puts it.
fn packed_insert(lp: &mut Listpack, member: &[u8], score: f64) {
    let before = Pairs::from_rank(lp.view(), 0, false)
        .find(|(_, m, s)| *s > score || (*s == score && m.with_bytes(|b| b > member)))
        .map(|(at, _, _)| at);
    let at = before.unwrap_or_else(|| lp.end_offset());
    with_score_text(score, |text| {
        lp.insert_at(at, member);
        lp.insert_at(at + entry_size(member), text);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_entries: 128, max_value: 64 };

    fn add(z: &mut ZSet, score: f64, member: &str) -> Added {
        z.add(score, member.as_bytes(), AddFlags::default(), LIMITS).unwrap()
    }

    fn members(z: &ZSet) -> Vec<String> {
        z.iter().map(|(m, _)| String::from_utf8(m.to_vec()).unwrap()).collect()
    }

    #[test]
    fn listpack_layout_matches_valkey() {
        // Valkey 8 DUMPs `ZADD z 1 a 2.5 b 300 c` with this listpack.
        let mut z = ZSet::default();
        add(&mut z, 2.5, "b");
        add(&mut z, 300.0, "c");
        add(&mut z, 1.0, "a");
        let lp = z.as_listpack().unwrap();
        let items: Vec<Vec<u8>> = lp.iter().map(|(_, i)| i.to_vec()).collect();
        assert_eq!(items, [&b"a"[..], b"1", b"b", b"2.5", b"c", b"300"].map(|s| s.to_vec()));
        assert_eq!(lp.get(lp.seek(1).unwrap()), Item::Int(1));
    }

    #[test]
    fn negative_zero_comes_back_positive_from_a_listpack_only() {
        let mut z = ZSet::default();
        add(&mut z, -0.0, "a");
        assert!(z.score(b"a").unwrap().is_sign_positive());
        let mut big = ZSet::with_hints(1000, 0, LIMITS);
        add(&mut big, -0.0, "a");
        assert!(big.score(b"a").unwrap().is_sign_negative());
    }

    #[test]
    fn converts_past_the_thresholds_and_never_back_on_removal() {
        let mut z = ZSet::default();
        for i in 0..128 {
            add(&mut z, i as f64, &format!("m{i}"));
        }
        assert_eq!(z.encoding_name(), "listpack");
        add(&mut z, 500.0, "one-more");
        assert_eq!(z.encoding_name(), "skiplist");
        assert!(z.remove(b"one-more"));
        assert_eq!(z.encoding_name(), "skiplist");
        let mut z = ZSet::default();
        add(&mut z, 1.0, &"x".repeat(65));
        assert_eq!(z.encoding_name(), "skiplist");
    }

    #[test]
    fn both_encodings_agree_on_order_and_ranks() {
        let mut small = ZSet::default();
        let mut big = ZSet::with_hints(1000, 0, LIMITS);
        for (i, score) in [3.0, 1.0, 2.0, 1.0, f64::INFINITY, -1.5, 2.0].iter().enumerate() {
            let member = format!("m{}", 7 - i);
            add(&mut small, *score, &member);
            add(&mut big, *score, &member);
        }
        assert_eq!(members(&small), members(&big));
        for m in members(&small) {
            assert_eq!(small.rank(m.as_bytes()), big.rank(m.as_bytes()));
        }
        let range = ScoreRange { min: 1.0, max: 2.0, min_exclusive: false, max_exclusive: true };
        assert_eq!(small.count_in(Range::Score(&range)), 2);
        assert_eq!(big.count_in(Range::Score(&range)), 2);
        assert_eq!(small.pop(true), big.pop(true));
        assert_eq!(small.remove_in(Range::Score(&range)), big.remove_in(Range::Score(&range)));
        assert_eq!(members(&small), members(&big));
    }

    #[test]
    fn big_encoding_follows_a_model_through_churn() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut z = ZSet::with_hints(1000, 0, LIMITS);
        let mut model: std::collections::HashMap<String, f64> = Default::default();
        for step in 0..30_000 {
            let member = format!("m{}", rng.gen_range(0..12_000));
            if rng.gen_bool(0.3) {
                assert_eq!(z.remove(member.as_bytes()), model.remove(&member).is_some());
            } else {
                let score = rng.gen_range(-50..50) as f64 / 4.0;
                add(&mut z, score, &member);
                model.insert(member, score);
            }
            if step % 5000 == 0 || step == 29_999 {
                let mut expected: Vec<(f64, String)> = model.iter().map(|(m, s)| (*s, m.clone())).collect();
                expected.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then_with(|| a.1.cmp(&b.1)));
                let got: Vec<(f64, String)> =
                    z.iter().map(|(m, s)| (s, String::from_utf8(m.to_vec()).unwrap())).collect();
                assert_eq!(got, expected);
                for (rank, (score, member)) in expected.iter().enumerate().step_by(97) {
                    assert_eq!(z.rank(member.as_bytes()), Some((rank, *score)));
                    assert_eq!(z.score(member.as_bytes()), Some(*score));
                }
                let positions: std::collections::HashSet<Vec<u8>> =
                    (0..z.len()).map(|p| z.at_position(p).unwrap().0.to_vec()).collect();
                assert_eq!(positions.len(), model.len());
            }
        }
    }

    #[test]
    fn a_small_sorted_set_is_one_pointer_to_its_listpack() {
        // One word, so a Value holds a sorted set without a box of its own.
        assert_eq!(std::mem::size_of::<ZSet>(), 8);
        let mut z = ZSet::default();
        add(&mut z, 2.0, "b");
        add(&mut z, 1.0, "a");
        let copy = z.clone();
        assert_eq!(add(&mut z, 3.0, "a"), Added::Updated(3.0));
        assert!(z.remove(b"b") && !z.remove(b"b"));
        assert_eq!(members(&copy), ["a", "b"]);
        assert_eq!(z.iter().map(|(m, s)| (m.to_vec(), s)).collect::<Vec<_>>(), [(b"a".to_vec(), 3.0)]);
        // The listpack's bytes are all it allocates.
        assert_eq!(z.heap_size(), Listpack::from_items([&b"a"[..], b"3"]).total_bytes());
    }
}
