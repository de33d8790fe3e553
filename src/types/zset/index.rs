//! The member → arena slot index of a big sorted set.
//!
//! An open-addressing table with linear probing whose slots are 8 bytes:
//! the low 32 bits of the member's hash (its "tag") and the slot id. The
//! tag picks the home bucket, so the table grows and shrinks without
//! touching a single member, and a probe compares tags before it looks at
//! member bytes. Removal shifts the following run back instead of leaving
//! tombstones, so lookups stay short however the set churns.

use std::hash::BuildHasher;

use super::tree::MemberLookup;

const EMPTY: u64 = u64::MAX;
const MIN_BUCKETS: usize = 8;

#[derive(Clone, Debug, Default)]
pub struct MemberIndex {
    buckets: Vec<u64>,
    len: usize,
    hasher: foldhash::fast::RandomState,
}

fn pack(tag: u32, id: u32) -> u64 {
    (tag as u64) << 32 | id as u64
}

fn tag_of(slot: u64) -> u32 {
    (slot >> 32) as u32
}

fn id_of(slot: u64) -> u32 {
    slot as u32
}

impl MemberIndex {
    /// An index with room for `capacity` members before it grows.
    pub fn with_capacity(capacity: usize) -> MemberIndex {
        let mut index = MemberIndex::default();
        index.resize(buckets_for(capacity));
        index
    }

    /// The tag of a member: the part of its hash the index keeps.
    pub fn tag(&self, member: &[u8]) -> u32 {
        self.hasher.hash_one(member) as u32
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// The id of `member`, whose tag is `tag`.
    pub fn find<M: MemberLookup + ?Sized>(&self, members: &M, member: &[u8], tag: u32) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut i = tag as usize & mask;
        loop {
            let slot = self.buckets[i];
            if slot == EMPTY {
                return None;
            }
            if tag_of(slot) == tag && members.member(id_of(slot)) == member {
                return Some(id_of(slot));
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds an id for a member that is not in the index.
    pub fn insert(&mut self, tag: u32, id: u32) {
        if (self.len + 1) * 4 > self.buckets.len() * 3 {
            self.resize((self.buckets.len() * 2).max(MIN_BUCKETS));
        }
        self.place(pack(tag, id));
        self.len += 1;
    }

    fn place(&mut self, slot: u64) {
        let mask = self.mask();
        let mut i = tag_of(slot) as usize & mask;
        while self.buckets[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.buckets[i] = slot;
    }

    /// Where the entry (`tag`, `id`) sits.
    fn position(&self, tag: u32, id: u32) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let wanted = pack(tag, id);
        let mask = self.mask();
        let mut i = tag as usize & mask;
        loop {
            match self.buckets[i] {
                EMPTY => return None,
                slot if slot == wanted => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Removes the entry (`tag`, `id`).
    pub fn remove(&mut self, tag: u32, id: u32) {
        let Some(mut hole) = self.position(tag, id) else { return };
        let mask = self.mask();
        // Shift back every entry of the run that may move into the hole.
        let mut i = (hole + 1) & mask;
        while self.buckets[i] != EMPTY {
            let home = tag_of(self.buckets[i]) as usize & mask;
            // The entry at i may fill the hole if its home is not within (hole, i].
            let distance_home = i.wrapping_sub(home) & mask;
            let distance_hole = i.wrapping_sub(hole) & mask;
            if distance_home >= distance_hole {
                self.buckets[hole] = self.buckets[i];
                hole = i;
            }
            i = (i + 1) & mask;
        }
        self.buckets[hole] = EMPTY;
        self.len -= 1;
        if self.buckets.len() > MIN_BUCKETS && self.len * 8 < self.buckets.len() {
            self.resize(buckets_for(self.len));
        }
    }

    /// Points the entry (`tag`, `old_id`) at `new_id`.
    pub fn relabel(&mut self, tag: u32, old_id: u32, new_id: u32) {
        if let Some(i) = self.position(tag, old_id) {
            self.buckets[i] = pack(tag, new_id);
        }
    }

    fn resize(&mut self, buckets: usize) {
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; buckets]);
        for slot in old.into_iter().filter(|&s| s != EMPTY) {
            self.place(slot);
        }
    }

    pub fn heap_size(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<u64>()
    }
}

/// The bucket count that holds `members` below the 3/4 load limit.
fn buckets_for(members: usize) -> usize {
    (members * 4 / 3 + 1).next_power_of_two().max(MIN_BUCKETS)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Names(Vec<Vec<u8>>);

    impl MemberLookup for Names {
        fn member(&self, id: u32) -> &[u8] {
            &self.0[id as usize]
        }
    }

    #[test]
    fn finds_what_it_holds_through_growth_and_removal() {
        let names = Names((0..3000).map(|i| format!("member-{i}").into_bytes()).collect());
        let mut index = MemberIndex::default();
        for id in 0..3000u32 {
            index.insert(index.tag(names.member(id)), id);
        }
        for id in 0..3000u32 {
            assert_eq!(index.find(&names, names.member(id), index.tag(names.member(id))), Some(id));
        }
        for id in (0..3000u32).filter(|i| i % 3 != 0) {
            index.remove(index.tag(names.member(id)), id);
        }
        for id in 0..3000u32 {
            let found = index.find(&names, names.member(id), index.tag(names.member(id)));
            assert_eq!(found, (id % 3 == 0).then_some(id), "member {id}");
        }
        assert!(index.find(&names, b"absent", index.tag(b"absent")).is_none());
    }
}
