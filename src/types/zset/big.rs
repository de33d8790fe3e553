//! The big form of a sorted set (Valkey's "skiplist" encoding): members and
//! scores in a dense arena of slots, an index from member to slot, and the
//! (score, member) order in an order-statistic B+ tree of slot ids.
//!
//! The arena stays dense: removing a member moves the last slot into the
//! freed one and relabels it in the index and the tree. A random member is
//! then a random slot, and a scan cursor is a slot position.

use super::index::MemberIndex;
use super::tree::{self, Entry, MemberLookup, OrderTree};

#[derive(Clone, Debug)]
struct Slot {
    member: Box<[u8]>,
    score: f64,
}

/// Slots per chunk of the arena, past the first.
const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

/// The arena, in chunks of [`CHUNK`] slots: it grows without copying what
/// it holds and never has more than one chunk's worth of unused room (the
/// first chunk grows gradually, so small sets stay small).
#[derive(Clone, Debug, Default)]
struct Slots {
    chunks: Vec<Vec<Slot>>,
    len: usize,
}

impl Slots {
    fn get(&self, id: usize) -> Option<&Slot> {
        self.chunks.get(id >> CHUNK_BITS)?.get(id & (CHUNK - 1))
    }

    fn get_mut(&mut self, id: usize) -> Option<&mut Slot> {
        self.chunks.get_mut(id >> CHUNK_BITS)?.get_mut(id & (CHUNK - 1))
    }

    fn push(&mut self, slot: Slot) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => {
                if chunk.len() == chunk.capacity() {
                    let room = (chunk.len() / 2).max(8).min(CHUNK - chunk.len());
                    chunk.reserve_exact(room);
                }
                chunk.push(slot);
            }
            _ => {
                let mut chunk = Vec::with_capacity(if self.chunks.is_empty() { 8 } else { CHUNK });
                chunk.push(slot);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    /// Removes slot `id`, moving the last slot into its place.
    fn swap_remove(&mut self, id: usize) -> Option<Slot> {
        let last = self.chunks.last_mut()?.pop()?;
        if self.chunks.last().is_some_and(|c| c.is_empty()) {
            self.chunks.pop();
        }
        self.len -= 1;
        if id == self.len {
            return Some(last);
        }
        self.get_mut(id).map(|slot| std::mem::replace(slot, last))
    }

    fn reserve(&mut self, capacity: usize) {
        if self.chunks.is_empty() {
            self.chunks.push(Vec::with_capacity(capacity.min(CHUNK)));
        }
    }

    fn heap_size(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Vec<Slot>>()
            + self.chunks.iter().map(|c| c.capacity() * std::mem::size_of::<Slot>()).sum::<usize>()
    }
}

impl MemberLookup for Slots {
    fn member(&self, id: u32) -> &[u8] {
        self.get(id as usize).map_or(&[], |s| &s.member)
    }
}

#[derive(Clone, Debug)]
pub struct BigZSet {
    slots: Slots,
    index: MemberIndex,
    order: OrderTree,
    /// Sum of member lengths (for memory reports).
    member_bytes: usize,
}

impl BigZSet {
    /// An empty set with room for `capacity` members.
    pub fn with_capacity(capacity: usize) -> BigZSet {
        let mut slots = Slots::default();
        slots.reserve(capacity);
        BigZSet {
            slots,
            index: MemberIndex::with_capacity(capacity.min(1 << 24)),
            order: OrderTree::default(),
            member_bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len
    }

    fn id_of(&self, member: &[u8]) -> Option<u32> {
        self.index.find(&self.slots, member, self.index.tag(member))
    }

    fn slot(&self, id: u32) -> Option<&Slot> {
        self.slots.get(id as usize)
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.id_of(member).and_then(|id| self.slot(id)).map(|s| s.score)
    }

    /// Adds a member that is not in the set.
    pub fn insert(&mut self, member: &[u8], score: f64) {
        let id = u32::try_from(self.slots.len).expect("sorted set size fits u32 ids");
        self.slots.push(Slot { member: member.into(), score });
        self.member_bytes += member.len();
        self.index.insert(self.index.tag(member), id);
        self.order.insert(&self.slots, Entry::new(score, id));
    }

    /// Changes the score of a member that is in the set.
    pub fn set_score(&mut self, member: &[u8], score: f64) {
        let Some(id) = self.id_of(member) else { return };
        let Some(old) = self.slot(id).map(|s| s.score) else { return };
        self.order.remove(&self.slots, old, member);
        if let Some(slot) = self.slots.get_mut(id as usize) {
            slot.score = score;
        }
        self.order.insert(&self.slots, Entry::new(score, id));
    }

    /// Removes a member; returns its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let tag = self.index.tag(member);
        let id = self.index.find(&self.slots, member, tag)?;
        let score = self.slot(id)?.score;
        self.order.remove(&self.slots, score, member);
        self.index.remove(tag, id);
        let last = (self.slots.len - 1) as u32;
        if id != last {
            // The last slot moves into the freed one.
            if let Some(moved) = self.slots.get(last as usize) {
                let moved_tag = self.index.tag(&moved.member);
                self.order.relabel(&self.slots, moved.score, &moved.member, last, id);
                self.index.relabel(moved_tag, last, id);
            }
        }
        let removed = self.slots.swap_remove(id as usize)?;
        self.member_bytes -= removed.member.len();
        Some(score)
    }

    /// The 0-based rank of a member and its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        let score = self.score(member)?;
        self.order.rank(&self.slots, score, member).map(|r| (r, score))
    }

    /// The element at 0-based `rank`.
    pub fn at_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        let entry = self.order.get(rank)?;
        Some((&self.slot(entry.id)?.member, entry.score()))
    }

    /// Elements from rank `start` on, ascending (or descending when `reverse`).
    pub fn iter_from(&self, start: usize, reverse: bool) -> Elements<'_> {
        Elements { order: self.order.iter_from(start, reverse), slots: &self.slots }
    }

    /// How many elements, from the lowest, satisfy `holds` (which must
    /// hold for a prefix of the order).
    pub fn count_while(&self, holds: impl Fn(&[u8], f64) -> bool) -> usize {
        self.order.count_while(|e| holds(self.slots.member(e.id), e.score()))
    }

    /// The element in arena slot `position` (for random picks and scans).
    pub fn at_position(&self, position: usize) -> Option<(&[u8], f64)> {
        self.slots.get(position).map(|s| (&s.member[..], s.score))
    }

    /// Bytes allocated for this set's structures and members.
    pub fn heap_size(&self) -> usize {
        self.slots.heap_size() + self.member_bytes + self.index.heap_size() + self.order.heap_size()
    }
}

/// Elements in (score, member) order from some rank, as (member, score).
pub struct Elements<'a> {
    order: tree::Iter<'a>,
    slots: &'a Slots,
}

impl<'a> Iterator for Elements<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.order.next()?;
        Some((self.slots.member(entry.id), entry.score()))
    }
}
