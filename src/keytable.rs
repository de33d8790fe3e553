//! The keyspace's table: keys and entries stored by position, with a hash
//! index of positions.
//!
//! Why not `IndexMap`: it keeps its entry vector as large as its hash index
//! (up to 1.8 times the number of keys) and stores each key's hash beside
//! it. Measured with 1,000,000 small hashes this cost about 60 bytes a key
//! over Valkey. Here entries live in fixed-size chunks (never copied when
//! the table grows, at most one chunk unused) and the index holds only
//! 32-bit positions; hashes are recomputed from the keys when the index
//! grows. Positions keep what the keyspace needs from an ordered map: O(1)
//! random keys and a scan cursor (see `Db::scan`), with removal by moving
//! the last entry into the hole.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::db::Entry;

const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

pub type Hasher = foldhash::fast::RandomState;

struct Slot {
    key: Box<[u8]>,
    entry: Entry,
}

pub struct KeyTable {
    index: HashTable<u32>,
    chunks: Vec<Vec<Slot>>,
    len: usize,
    hasher: Hasher,
}

impl Default for KeyTable {
    fn default() -> Self {
        KeyTable { index: HashTable::new(), chunks: Vec::new(), len: 0, hasher: Hasher::default() }
    }
}

impl KeyTable {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn slot(&self, pos: usize) -> &Slot {
        &self.chunks[pos >> CHUNK_BITS][pos & (CHUNK - 1)]
    }

    #[inline]
    fn slot_mut(&mut self, pos: usize) -> &mut Slot {
        &mut self.chunks[pos >> CHUNK_BITS][pos & (CHUNK - 1)]
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The position of `key`, if present.
    #[inline]
    pub fn position(&self, key: &[u8]) -> Option<usize> {
        let hash = self.hash(key);
        self.index.find(hash, |&p| &*self.slot(p as usize).key == key).map(|&p| p as usize)
    }

    pub fn key_at(&self, pos: usize) -> &[u8] {
        &self.slot(pos).key
    }

    pub fn entry_at(&self, pos: usize) -> &Entry {
        &self.slot(pos).entry
    }

    pub fn entry_at_mut(&mut self, pos: usize) -> &mut Entry {
        &mut self.slot_mut(pos).entry
    }

    /// Appends a key that is not present; returns its position.
    pub fn push(&mut self, key: &[u8], entry: Entry) -> usize {
        let pos = self.len;
        assert!(pos < u32::MAX as usize, "keyspace position overflow");
        if pos >> CHUNK_BITS == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks[pos >> CHUNK_BITS].push(Slot { key: key.into(), entry });
        self.len += 1;
        let hash = self.hash(key);
        let KeyTable { index, chunks, hasher, .. } = self;
        index.insert_unique(hash, pos as u32, |&p| {
            let p = p as usize;
            hasher.hash_one(&*chunks[p >> CHUNK_BITS][p & (CHUNK - 1)].key)
        });
        pos
    }

    /// Removes the entry at `pos`; the last entry moves into its place.
    /// Returns the removed key and entry.
    pub fn swap_remove(&mut self, pos: usize) -> (Box<[u8]>, Entry) {
        let last = self.len - 1;
        let hash = self.hash(&self.slot(pos).key);
        if let Ok(found) = self.index.find_entry(hash, |&p| p as usize == pos) {
            found.remove();
        }
        if pos != last {
            let last_hash = self.hash(&self.slot(last).key);
            if let Some(p) = self.index.find_mut(last_hash, |&p| p as usize == last) {
                *p = pos as u32;
            }
        }
        let tail = self.chunks.last_mut().expect("non-empty table");
        let moved = tail.pop().expect("non-empty chunk");
        if tail.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
        if pos == last {
            return (moved.key, moved.entry);
        }
        let removed = std::mem::replace(self.slot_mut(pos), moved);
        (removed.key, removed.entry)
    }

    /// Iterates (key, entry) by position.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.chunks.iter().flatten().map(|s| (&*s.key, &s.entry))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.chunks.iter_mut().flatten().map(|s| &mut s.entry)
    }

    /// Bytes the table's own structures take (not the keys' and values' heap data).
    pub fn overhead_bytes(&self) -> usize {
        self.index.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.chunks.len() * CHUNK * std::mem::size_of::<Slot>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn positions_follow_removals() {
        let mut t = KeyTable::default();
        for i in 0..5000u32 {
            t.push(format!("k{i}").as_bytes(), Entry::new(Value::Int(i as i64), 0));
        }
        for i in (0..5000u32).step_by(3) {
            let pos = t.position(format!("k{i}").as_bytes()).unwrap();
            let (key, _) = t.swap_remove(pos);
            assert_eq!(&*key, format!("k{i}").as_bytes());
        }
        assert_eq!(t.len(), 5000 - 1667);
        for i in 0..5000u32 {
            let found = t.position(format!("k{i}").as_bytes());
            if i % 3 == 0 {
                assert!(found.is_none());
            } else {
                let pos = found.unwrap();
                assert!(matches!(t.entry_at(pos).value, Value::Int(n) if n == i as i64));
            }
        }
        while !t.is_empty() {
            t.swap_remove(0);
        }
        assert!(t.chunks.is_empty());
    }
}
