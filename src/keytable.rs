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

/// A key as the table stores it, in 16 bytes: up to [`INLINE_KEY`] bytes
/// in place, longer ones in an allocation of exactly their length. Most
/// keys are short ("user:1234", "session:abc"), and for them this saves
/// the allocation a `Box<[u8]>` would make (16 bytes or more each, plus
/// the allocator's bookkeeping), for the same slot size.
#[repr(C)]
struct StoredKey {
    len: u32,
    /// With `tail`, the bytes of an inline key; unused otherwise.
    head: [u8; 4],
    tail: KeyTail,
}

#[repr(C)]
union KeyTail {
    inline: [u8; 8],
    heap: *mut u8,
}

/// The longest key kept inline: `head` and `tail` together.
const INLINE_KEY: usize = 12;

impl StoredKey {
    fn new(key: &[u8]) -> StoredKey {
        let len = u32::try_from(key.len()).expect("key longer than 4 GiB");
        if key.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key);
            let mut head = [0u8; 4];
            head.copy_from_slice(&bytes[..4]);
            let mut inline = [0u8; 8];
            inline.copy_from_slice(&bytes[4..]);
            return StoredKey { len, head, tail: KeyTail { inline } };
        }
        let heap = Box::into_raw(Box::<[u8]>::from(key)) as *mut u8;
        StoredKey { len, head: [0; 4], tail: KeyTail { heap } }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        let len = self.len as usize;
        if len <= INLINE_KEY {
            // SAFETY: repr(C) puts `head` at offset 4 and `tail` right after
            // it at offset 8, so the inline bytes are 12 contiguous bytes of
            // this struct, of which the first `len` are the key.
            unsafe { std::slice::from_raw_parts(self.head.as_ptr(), len) }
        } else {
            // SAFETY: a long key owns an allocation of exactly `len` bytes.
            unsafe { std::slice::from_raw_parts(self.tail.heap, len) }
        }
    }

    fn into_boxed(self) -> Box<[u8]> {
        let key = std::mem::ManuallyDrop::new(self);
        let len = key.len as usize;
        if len <= INLINE_KEY {
            return key.as_bytes().into();
        }
        // SAFETY: the allocation came from a Box<[u8]> of `len` bytes and
        // ownership passes to the new box (the ManuallyDrop skips ours).
        unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(key.tail.heap, len)) }
    }
}

impl Drop for StoredKey {
    fn drop(&mut self) {
        let len = self.len as usize;
        if len > INLINE_KEY {
            // SAFETY: as in into_boxed; this is the only owner.
            unsafe { drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.tail.heap, len))) };
        }
    }
}

// SAFETY: a StoredKey owns its bytes like a Box<[u8]> does.
unsafe impl Send for StoredKey {}
unsafe impl Sync for StoredKey {}

struct Slot {
    key: StoredKey,
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
        self.index.find(hash, |&p| self.slot(p as usize).key.as_bytes() == key).map(|&p| p as usize)
    }

    pub fn key_at(&self, pos: usize) -> &[u8] {
        self.slot(pos).key.as_bytes()
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
        self.chunks[pos >> CHUNK_BITS].push(Slot { key: StoredKey::new(key), entry });
        self.len += 1;
        let hash = self.hash(key);
        let KeyTable { index, chunks, hasher, .. } = self;
        index.insert_unique(hash, pos as u32, |&p| {
            let p = p as usize;
            hasher.hash_one(chunks[p >> CHUNK_BITS][p & (CHUNK - 1)].key.as_bytes())
        });
        pos
    }

    /// Removes the entry at `pos`; the last entry moves into its place.
    /// Returns the removed key and entry.
    pub fn swap_remove(&mut self, pos: usize) -> (Box<[u8]>, Entry) {
        let last = self.len - 1;
        let hash = self.hash(self.slot(pos).key.as_bytes());
        if let Ok(found) = self.index.find_entry(hash, |&p| p as usize == pos) {
            found.remove();
        }
        if pos != last {
            let last_hash = self.hash(self.slot(last).key.as_bytes());
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
            return (moved.key.into_boxed(), moved.entry);
        }
        let removed = std::mem::replace(self.slot_mut(pos), moved);
        (removed.key.into_boxed(), removed.entry)
    }

    /// Iterates (key, entry) by position.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.chunks.iter().flatten().map(|s| (s.key.as_bytes(), &s.entry))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.chunks.iter_mut().flatten().map(|s| &mut s.entry)
    }

    /// Bytes the table's own structures take (not the keys' and values' heap data).
    pub fn overhead_bytes(&self) -> usize {
        self.index.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.chunks.len() * CHUNK * std::mem::size_of::<Slot>()
    }

    /// Makes room in the index for `additional` more keys, so that adding
    /// them rehashes nothing (an RDB file announces its key count).
    pub fn reserve(&mut self, additional: usize) {
        let KeyTable { index, chunks, hasher, .. } = self;
        index.reserve(additional, |&p| {
            let p = p as usize;
            hasher.hash_one(chunks[p >> CHUNK_BITS][p & (CHUNK - 1)].key.as_bytes())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn keys_of_every_length_round_trip() {
        let mut t = KeyTable::default();
        let keys: Vec<Vec<u8>> = (0..40).map(|n| (0..n).map(|i| b'a' + (i % 26) as u8).collect()).collect();
        for (i, k) in keys.iter().enumerate() {
            t.push(k, Entry::new(Value::Int(i as i64), 0));
        }
        assert_eq!(std::mem::size_of::<StoredKey>(), 16);
        for (i, k) in keys.iter().enumerate() {
            let pos = t.position(k).unwrap();
            assert_eq!(t.key_at(pos), &k[..]);
            assert!(matches!(t.entry_at(pos).value, Value::Int(n) if n == i as i64));
        }
        let iterated: Vec<&[u8]> = t.iter().map(|(k, _)| k).collect();
        assert_eq!(iterated.len(), keys.len());
        while !t.is_empty() {
            let last = t.len() - 1;
            let expected = t.key_at(last).to_vec();
            let (key, _) = t.swap_remove(last);
            assert_eq!(&*key, &expected[..]);
        }
    }

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
