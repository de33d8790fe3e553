//! The `hashtable` encoding of a set: a compact hash set of byte strings.
//!
//! Valkey holds a big set in a dict of sds strings: an 8-byte bucket per
//! slot, a 16-byte chain entry for most colliding members, and a separate
//! allocation per member. ferrokey must not use more memory than that, so a
//! member here costs one 8-byte word in a dense vector, its bytes packed
//! back to back in shared chunks (no per-member allocation, no rounding to
//! allocator size classes), and about five bytes of index:
//!
//! - `members` holds one [`Word`] per member: either the member itself
//!   (up to 7 bytes: small integers, short words) or where its bytes are
//!   in `chunks`.
//! - `slots` is an open-addressing index (linear probing) of 4-byte slots
//!   holding a position in `members`; the bits a position does not need
//!   hold a tag from the member's hash, so most probes that do not match
//!   are rejected without reading the member.
//!
//! A member's position is also what a random pick draws (SPOP and
//! SRANDMEMBER are O(1)) and what SSCAN's cursor counts: positions are
//! walked downward, and since a removal only moves the last member into the
//! freed position, every member present for a whole scan is returned.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

/// One member: inline, or a reference into the chunks.
///
/// Inline: byte 0 is `len << 1 | 1` and bytes 1..=len the member. Stored
/// (read as a little-endian u64, bit 0 clear): bits 1-16 the length (0 for
/// a member that has a chunk of its own), bits 17-32 the offset in its
/// chunk, bits 33-63 the chunk index.
type Word = [u8; 8];

/// Members up to this long live inside their word.
const INLINE_MAX: usize = 7;
/// Members up to this long share chunks; longer ones get a chunk each.
const SHARED_MAX: usize = 4096;
/// Shared chunks never grow beyond this, so offsets fit in 16 bits.
const CHUNK_CAP: usize = 1 << 16;
/// The first shared chunk starts this small and doubles, so that a set just
/// past the listpack limits does not pay for a whole chunk.
const FIRST_CHUNK: usize = 256;

enum Place {
    Inline(usize),
    Shared { chunk: usize, offset: usize, len: usize },
    Own { chunk: usize },
}

fn place_of(word: &Word) -> Place {
    if word[0] & 1 == 1 {
        return Place::Inline((word[0] >> 1) as usize);
    }
    let v = u64::from_le_bytes(*word);
    let len = ((v >> 1) & 0xFFFF) as usize;
    let offset = ((v >> 17) & 0xFFFF) as usize;
    let chunk = (v >> 33) as usize;
    if len == 0 {
        Place::Own { chunk }
    } else {
        Place::Shared { chunk, offset, len }
    }
}

fn stored_word(chunk: usize, offset: usize, len: usize) -> Word {
    (((chunk as u64) << 33) | ((offset as u64) << 17) | ((len as u64) << 1)).to_le_bytes()
}

/// The bytes of the members that do not fit in their word.
#[derive(Clone, Default)]
struct Chunks {
    /// Chunks of members packed back to back; the last one takes new members.
    shared: Vec<Vec<u8>>,
    /// One chunk per long member; removed members leave an empty one.
    own: Vec<Vec<u8>>,
    /// Indexes of emptied chunks in `own`, for reuse.
    vacant: Vec<usize>,
    /// Bytes of members in shared chunks.
    live: usize,
    /// Bytes of removed members still occupying shared chunks.
    dead: usize,
}

impl Chunks {
    fn bytes<'a>(&'a self, word: &'a Word) -> &'a [u8] {
        match place_of(word) {
            Place::Inline(len) => &word[1..1 + len],
            Place::Shared { chunk, offset, len } => &self.shared[chunk][offset..offset + len],
            Place::Own { chunk } => &self.own[chunk],
        }
    }

    fn store(&mut self, bytes: &[u8]) -> Word {
        let len = bytes.len();
        if len <= INLINE_MAX {
            let mut word = [0u8; 8];
            word[0] = ((len as u8) << 1) | 1;
            word[1..1 + len].copy_from_slice(bytes);
            return word;
        }
        if len > SHARED_MAX {
            let chunk = match self.vacant.pop() {
                Some(idx) => {
                    self.own[idx] = bytes.to_vec();
                    idx
                }
                None => {
                    self.own.push(bytes.to_vec());
                    self.own.len() - 1
                }
            };
            return stored_word(chunk, 0, 0);
        }
        if self.shared.last().is_none_or(|open| open.len() + len > CHUNK_CAP) {
            // Once a chunk has filled up the set is evidently big: later
            // chunks are allocated whole instead of growing by doubling.
            let start = if self.shared.is_empty() { FIRST_CHUNK.max(len) } else { CHUNK_CAP };
            self.shared.push(Vec::with_capacity(start));
        }
        let index = self.shared.len() - 1;
        let open = &mut self.shared[index];
        let needed = open.len() + len;
        if needed > open.capacity() {
            let target = (open.capacity() * 2).clamp(needed, CHUNK_CAP);
            open.reserve_exact(target - open.len());
        }
        let offset = open.len();
        open.extend_from_slice(bytes);
        self.live += len;
        stored_word(index, offset, len)
    }

    /// Forgets a removed member's bytes: its own chunk is freed at once,
    /// bytes in a shared chunk are only counted until the next compaction
    /// (or freed with the chunks once no shared member is left).
    fn release(&mut self, word: &Word) {
        match place_of(word) {
            Place::Inline(_) => {}
            Place::Shared { len, .. } => {
                self.live -= len;
                self.dead += len;
                if self.live == 0 {
                    self.shared = Vec::new();
                    self.dead = 0;
                }
            }
            Place::Own { chunk } => {
                self.own[chunk] = Vec::new();
                self.vacant.push(chunk);
                if self.vacant.len() == self.own.len() {
                    self.own = Vec::new();
                    self.vacant = Vec::new();
                }
            }
        }
    }

    /// Whether dead bytes outweigh live ones enough to pay for rewriting
    /// every member (the threshold grows with the member count, so the cost
    /// of the rewrite stays proportional to the removals that caused it).
    fn wants_compaction(&self, members: usize) -> bool {
        self.dead > self.live && self.dead >= (CHUNK_CAP / 4).max(members)
    }

    /// Copies the live shared bytes into fresh chunks, rewriting the words
    /// of the members that use them.
    fn compact(&mut self, members: &mut [Word]) {
        let old = std::mem::take(&mut self.shared);
        self.live = 0;
        self.dead = 0;
        for word in members.iter_mut() {
            if let Place::Shared { chunk, offset, len } = place_of(word) {
                *word = self.store(&old[chunk][offset..offset + len]);
            }
        }
    }

    fn heap_size(&self) -> usize {
        let chunk_header = std::mem::size_of::<Vec<u8>>();
        self.shared.iter().chain(&self.own).map(Vec::capacity).sum::<usize>()
            + (self.shared.capacity() + self.own.capacity()) * chunk_header
            + self.vacant.capacity() * std::mem::size_of::<usize>()
    }
}

/// An index slot with no entry: probing stops here.
const EMPTY: u32 = 0;
/// A slot whose entry was removed: probing goes on past it.
const TOMBSTONE: u32 = 1;
/// Entries store `position + 2`, so they never look like the markers above.
const POSITION_BIAS: u64 = 2;
const MIN_SLOTS: usize = 8;

#[derive(Clone)]
pub struct Table {
    members: Vec<Word>,
    chunks: Chunks,
    slots: Box<[u32]>,
    /// Slots holding an entry or a tombstone (both lengthen probes).
    used: usize,
    /// Low bits of a slot that hold the position; the rest hold the tag.
    position_mask: u64,
    hasher: RandomState,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter().map(String::from_utf8_lossy)).finish()
    }
}

/// Slots to allocate for `n` members: about two thirds full, so that the
/// index can take another quarter of `n` before it is rebuilt.
fn slots_for(n: usize) -> usize {
    (n + n / 2 + 1).max(MIN_SLOTS)
}

/// Whether `used` slots of `capacity` is past the maximum load (85%).
fn overloaded(used: usize, capacity: usize) -> bool {
    used * 20 > capacity * 17
}

impl Table {
    /// An empty table sized for `capacity` members (Valkey presizes its
    /// dict the same way on conversions).
    pub fn with_capacity(capacity: usize) -> Table {
        let mut table = Table {
            members: Vec::with_capacity(capacity),
            chunks: Chunks::default(),
            slots: Box::new([]),
            used: 0,
            position_mask: 0,
            hasher: RandomState::default(),
        };
        table.rebuild_index(slots_for(capacity));
        table
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The member at `position` (0..len).
    pub fn get(&self, position: usize) -> &[u8] {
        self.chunks.bytes(&self.members[position])
    }

    /// The members in position order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { words: self.members.iter(), chunks: &self.chunks }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.find(member, self.hash(member)).is_some()
    }

    /// Adds a member; false if it was already there.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        if overloaded(self.used + 1, self.slots.len()) {
            self.rebuild_index(slots_for(self.members.len() + 1));
        }
        let hash = self.hash(member);
        let tag = self.tag(hash);
        let mut i = self.home(hash);
        let mut reusable = None;
        loop {
            let slot = self.slots[i];
            if slot == EMPTY {
                break;
            }
            if slot == TOMBSTONE {
                reusable.get_or_insert(i);
            } else if slot & !(self.position_mask as u32) == tag && self.get(self.position_in(slot)) == member {
                return false;
            }
            i = self.next_slot(i);
        }
        let position = self.members.len();
        let word = self.chunks.store(member);
        self.members.push(word);
        let target = reusable.unwrap_or_else(|| {
            self.used += 1;
            i
        });
        self.slots[target] = tag | (position as u64 + POSITION_BIAS) as u32;
        true
    }

    /// Removes a member; false if it was not there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.find(member, self.hash(member)) {
            Some((slot, position)) => {
                self.remove_entry(slot, position);
                true
            }
            None => false,
        }
    }

    /// Removes and returns the member at `position`.
    pub fn take(&mut self, position: usize) -> Vec<u8> {
        let member = self.get(position).to_vec();
        let slot = self.slot_of_position(self.hash(&member), position);
        self.remove_entry(slot, position);
        member
    }

    /// One step of SSCAN: visits up to `count` positions below `cursor`
    /// (0 starts at the top) and returns the cursor to continue from, 0
    /// when done.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&[u8])) -> u64 {
        let len = self.members.len() as u64;
        let mut position = if cursor == 0 || cursor > len { len } else { cursor };
        let mut budget = count.max(1);
        while position > 0 && budget > 0 {
            position -= 1;
            visit(self.get(position as usize));
            budget -= 1;
        }
        position
    }

    pub fn heap_size(&self) -> usize {
        self.members.capacity() * std::mem::size_of::<Word>()
            + self.slots.len() * std::mem::size_of::<u32>()
            + self.chunks.heap_size()
    }

    fn hash(&self, member: &[u8]) -> u64 {
        self.hasher.hash_one(member)
    }

    /// The first slot probed for `hash`: the high bits of the hash scaled to
    /// the table (the table size need not be a power of two).
    fn home(&self, hash: u64) -> usize {
        ((hash as u128 * self.slots.len() as u128) >> 64) as usize
    }

    /// The tag bits for `hash`, in the slot bits positions do not use.
    fn tag(&self, hash: u64) -> u32 {
        ((hash << self.position_mask.count_ones()) & !self.position_mask & u32::MAX as u64) as u32
    }

    fn position_in(&self, slot: u32) -> usize {
        ((slot as u64 & self.position_mask) - POSITION_BIAS) as usize
    }

    fn next_slot(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// (slot, position) of a member.
    fn find(&self, member: &[u8], hash: u64) -> Option<(usize, usize)> {
        let tag = self.tag(hash);
        let mut i = self.home(hash);
        loop {
            let slot = self.slots[i];
            if slot == EMPTY {
                return None;
            }
            if slot != TOMBSTONE && slot & !(self.position_mask as u32) == tag {
                let position = self.position_in(slot);
                if self.get(position) == member {
                    return Some((i, position));
                }
            }
            i = self.next_slot(i);
        }
    }

    /// The slot that holds `position` (whose member hashes to `hash`).
    fn slot_of_position(&self, hash: u64, position: usize) -> usize {
        let entry = self.tag(hash) | (position as u64 + POSITION_BIAS) as u32;
        let mut i = self.home(hash);
        while self.slots[i] != entry {
            i = self.next_slot(i);
        }
        i
    }

    fn remove_entry(&mut self, slot: usize, position: usize) {
        self.clear_slot(slot);
        let word = self.members.swap_remove(position);
        self.chunks.release(&word);
        if position < self.members.len() {
            // The last member moved into the freed position: repoint its slot.
            let moved = self.members.len();
            let hash = self.hash(self.get(position));
            let moved_slot = self.slot_of_position(hash, moved);
            self.slots[moved_slot] = self.tag(hash) | (position as u64 + POSITION_BIAS) as u32;
        }
        if self.chunks.wants_compaction(self.members.len()) {
            self.chunks.compact(&mut self.members);
        }
        self.shrink_if_sparse();
    }

    /// Leaves a tombstone, unless the next slot is empty: then no probe can
    /// need this slot (or the tombstones just before it) to go on, and they
    /// all become empty again.
    fn clear_slot(&mut self, slot: usize) {
        if self.slots[self.next_slot(slot)] != EMPTY {
            self.slots[slot] = TOMBSTONE;
            return;
        }
        let mut i = slot;
        loop {
            self.slots[i] = EMPTY;
            self.used -= 1;
            i = if i == 0 { self.slots.len() - 1 } else { i - 1 };
            if self.slots[i] != TOMBSTONE {
                break;
            }
        }
    }

    /// Gives memory back once most members are gone (SPOP, SREM, SMOVE).
    fn shrink_if_sparse(&mut self) {
        let len = self.members.len();
        if self.slots.len() > MIN_SLOTS && len * 5 < self.slots.len() {
            self.rebuild_index(slots_for(len));
        }
        if self.members.capacity() > 4 * len.max(MIN_SLOTS) {
            self.members.shrink_to(2 * len);
        }
    }

    /// Re-creates the index with `capacity` slots, dropping tombstones.
    fn rebuild_index(&mut self, capacity: usize) {
        // Positions are stored as position + 2 in a u32 slot, with the
        // unused high bits as tag: find how many bits positions need.
        let position_bits = 64 - (capacity as u64 + POSITION_BIAS).leading_zeros();
        self.position_mask = (1u64 << position_bits) - 1;
        self.slots = vec![EMPTY; capacity].into_boxed_slice();
        self.used = self.members.len();
        for position in 0..self.members.len() {
            let hash = self.hash(self.get(position));
            let mut i = self.home(hash);
            while self.slots[i] != EMPTY {
                i = self.next_slot(i);
            }
            self.slots[i] = self.tag(hash) | (position as u64 + POSITION_BIAS) as u32;
        }
    }
}

pub struct Iter<'a> {
    words: std::slice::Iter<'a, Word>,
    chunks: &'a Chunks,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.words.next().map(|w| self.chunks.bytes(w))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.words.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn member(i: u64) -> Vec<u8> {
        // Lengths from inline to own-chunk, so every placement is exercised.
        match i % 5 {
            0 => format!("{}", i % 1000).into_bytes(),
            1 => format!("member:{i}").into_bytes(),
            2 => format!("a-rather-longer-member-name-{i}").into_bytes(),
            3 => vec![b'x'; 5000 + (i % 7) as usize],
            _ => format!("{i:030}").into_bytes(),
        }
    }

    #[test]
    fn behaves_like_a_hash_set_under_random_churn() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut table = Table::with_capacity(0);
        let mut model: HashSet<Vec<u8>> = HashSet::new();
        for round in 0..60_000u64 {
            let m = member(rng.gen_range(0..3000));
            match rng.gen_range(0..10) {
                0..=5 => assert_eq!(table.insert(&m), model.insert(m.clone()), "insert at {round}"),
                6..=8 => assert_eq!(table.remove(&m), model.remove(&m), "remove at {round}"),
                _ => {
                    if table.len() > 0 {
                        let taken = table.take(rng.gen_range(0..table.len()));
                        assert!(model.remove(&taken));
                    }
                }
            }
            assert_eq!(table.len(), model.len());
        }
        for m in &model {
            assert!(table.contains(m));
        }
        let listed: HashSet<Vec<u8>> = table.iter().map(<[u8]>::to_vec).collect();
        assert_eq!(listed, model);
        // Empty the table: every chunk and the index shrink back.
        for m in &model {
            assert!(table.remove(m));
        }
        assert_eq!(table.len(), 0);
        assert!(table.heap_size() < 4096);
    }

    #[test]
    fn compaction_keeps_members_intact() {
        let mut table = Table::with_capacity(0);
        for i in 0..20_000u64 {
            table.insert(format!("member-number-{i}").as_bytes());
        }
        for i in 0..19_000u64 {
            assert!(table.remove(format!("member-number-{i}").as_bytes()));
        }
        // Dead bytes were reclaimed along the way, not kept until the end.
        assert!(table.chunks.heap_size() < 100_000, "chunks hold {} bytes", table.chunks.heap_size());
        for i in 19_000..20_000u64 {
            assert!(table.contains(format!("member-number-{i}").as_bytes()));
        }
    }

    #[test]
    fn scan_returns_every_stable_member_under_churn() {
        let mut table = Table::with_capacity(0);
        for i in 0..2000u64 {
            table.insert(format!("stable{i}").as_bytes());
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut step = 0u64;
        loop {
            cursor = table.scan(cursor, 7, |m| {
                seen.insert(m.to_vec());
            });
            table.insert(format!("new{step}").as_bytes());
            if step > 3 {
                table.remove(format!("new{}", step - 3).as_bytes());
            }
            step += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..2000u64 {
            assert!(seen.contains(format!("stable{i}").as_bytes()));
        }
    }

    #[test]
    fn clones_are_independent() {
        let mut a = Table::with_capacity(4);
        a.insert(b"shared-member");
        let mut b = a.clone();
        b.insert(b"only-in-b-member");
        assert!(a.insert(b"only-in-a-member"));
        assert!(!a.contains(b"only-in-b-member"));
        assert!(b.contains(b"shared-member") && !b.contains(b"only-in-a-member"));
    }
}
