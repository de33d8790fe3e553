//! One numbered database: keys, their values, their expiry times.
//!
//! Keys live in a [`KeyTable`] by position, so that a random key or a scan
//! position is an index, not a walk. Keys with a TTL are also listed by
//! position in `volatile`, which the active expiry cycle samples; because a
//! removal moves the last entry into the freed slot, every removal goes
//! through [`Db::remove_index`], which keeps `volatile` in step.

use indexmap::IndexSet;
use rand::Rng;

pub use crate::keytable::{Hasher, KeyTable};
use crate::value::Value;

/// No expiry.
pub const NO_EXPIRE: i64 = -1;

#[derive(Clone, Debug)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry in Unix milliseconds, or [`NO_EXPIRE`].
    pub expire_at: i64,
    /// Last access, in seconds of the server's LRU clock (OBJECT IDLETIME).
    pub last_access: u32,
    /// Under an LFU policy, the logarithmic access counter (OBJECT FREQ)
    /// and the minute (16 bits, wrapping) it was last updated, from which
    /// its decay is computed (see `evict.rs`). They fill what would be
    /// padding: an entry stays 32 bytes.
    pub lfu_counter: u8,
    pub lfu_minutes: u16,
}

impl Entry {
    pub fn new(value: Value, now_s: u32) -> Entry {
        Entry {
            value,
            expire_at: NO_EXPIRE,
            last_access: now_s,
            lfu_counter: crate::evict::LFU_INIT_VAL,
            lfu_minutes: crate::evict::lfu_minutes(now_s),
        }
    }
    /// Valkey judges a key expired only once the clock has passed its
    /// expiry time, not when it equals it.
    #[inline]
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expire_at != NO_EXPIRE && self.expire_at < now_ms
    }
}

#[derive(Default)]
pub struct Db {
    map: KeyTable,
    /// Positions in `map` of the entries that have an expiry.
    volatile: IndexSet<u32, Hasher>,
    /// Keys removed because they had expired, waiting to be counted and
    /// journalled by the caller (lazy and active expiry both push here).
    pub expired_log: Vec<Box<[u8]>>,
}

/// What one step of a SCAN produced.
pub struct ScanStep {
    pub next_cursor: u64,
}

impl Db {
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// Looks a key up, deleting it first if it has expired.
    #[inline]
    pub fn get(&mut self, key: &[u8], now_ms: i64) -> Option<&Entry> {
        self.get_mut(key, now_ms).map(|e| &*e)
    }

    #[inline]
    pub fn get_mut(&mut self, key: &[u8], now_ms: i64) -> Option<&mut Entry> {
        let idx = self.map.position(key)?;
        if self.map.entry_at(idx).is_expired(now_ms) {
            self.expire_at_index(idx);
            return None;
        }
        Some(self.map.entry_at_mut(idx))
    }

    /// Looks a key up without expiring it or touching anything (for
    /// commands that must see keys as they are, such as DEBUG OBJECT).
    pub fn peek(&self, key: &[u8]) -> Option<&Entry> {
        self.map.position(key).map(|idx| self.map.entry_at(idx))
    }

    pub fn contains(&mut self, key: &[u8], now_ms: i64) -> bool {
        self.get(key, now_ms).is_some()
    }

    /// Inserts or replaces a key's value, dropping any expiry it had. A
    /// replaced key keeps its LFU counter, as the server keeps an
    /// overwritten object's access hints.
    pub fn set(&mut self, key: &[u8], value: Value, now_s: u32) {
        self.set_with_expiry(key, value, NO_EXPIRE, now_s);
    }

    /// Replaces a key's value keeping its expiry (SET KEEPTTL, INCR, ...).
    /// The key must not be expired (callers looked it up first).
    pub fn set_keep_ttl(&mut self, key: &[u8], value: Value, now_s: u32) {
        match self.map.position(key) {
            Some(idx) => {
                let e = self.map.entry_at_mut(idx);
                let old = std::mem::replace(&mut e.value, value);
                e.last_access = now_s;
                crate::lazyfree::free_overwritten(old);
            }
            None => self.set(key, value, now_s),
        }
    }

    /// Inserts a whole entry, with its expiry.
    pub fn insert_entry(&mut self, key: &[u8], entry: Entry) {
        let has_ttl = entry.expire_at != NO_EXPIRE;
        let idx = match self.map.position(key) {
            Some(idx) => {
                let old = std::mem::replace(self.map.entry_at_mut(idx), entry);
                crate::lazyfree::free_overwritten(old.value);
                idx
            }
            None => self.map.push(key, entry),
        };
        if has_ttl {
            self.volatile.insert(idx as u32);
        } else {
            self.volatile.swap_remove(&(idx as u32));
        }
    }

    /// Removes a key; returns its entry if it existed (expired or not).
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let idx = self.map.position(key)?;
        Some(self.remove_index(idx).1)
    }

    fn remove_index(&mut self, idx: usize) -> (Box<[u8]>, Entry) {
        let last = self.map.len() - 1;
        self.volatile.swap_remove(&(idx as u32));
        let removed = self.map.swap_remove(idx);
        if idx != last && self.volatile.swap_remove(&(last as u32)) {
            // The last entry now sits where the removed one was.
            self.volatile.insert(idx as u32);
        }
        removed
    }

    fn expire_at_index(&mut self, idx: usize) {
        let (key, entry) = self.remove_index(idx);
        crate::lazyfree::free_expired(entry.value);
        self.expired_log.push(key);
    }

    /// Sets or clears an existing key's expiry. Returns false if the key is absent.
    pub fn set_expire(&mut self, key: &[u8], expire_at: i64) -> bool {
        let Some(idx) = self.map.position(key) else { return false };
        self.map.entry_at_mut(idx).expire_at = expire_at;
        if expire_at == NO_EXPIRE {
            self.volatile.swap_remove(&(idx as u32));
        } else {
            self.volatile.insert(idx as u32);
        }
        true
    }

    /// Empties the database, handing back the old table so the caller can
    /// free it where it likes (FLUSHALL ASYNC frees it on another thread).
    pub fn clear(&mut self) -> KeyTable {
        self.volatile = IndexSet::default();
        std::mem::take(&mut self.map)
    }

    /// Iterates every entry, expired or not.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.map.iter()
    }

    /// A random key that has not expired, deleting the expired ones it meets.
    pub fn random_key(&mut self, now_ms: i64, rng: &mut impl Rng) -> Option<Box<[u8]>> {
        // When every key has expired, give up after a bounded number of
        // tries and return one of them, as Valkey does, instead of looping.
        for _ in 0..100 {
            if self.map.is_empty() {
                return None;
            }
            let idx = rng.gen_range(0..self.map.len());
            if self.map.entry_at(idx).is_expired(now_ms) {
                self.expire_at_index(idx);
                continue;
            }
            return Some(self.map.key_at(idx).into());
        }
        if self.map.is_empty() {
            return None;
        }
        let idx = rng.gen_range(0..self.map.len());
        Some(self.map.key_at(idx).into())
    }

    /// One step of SCAN. Positions are visited from the highest down: a
    /// removal only moves the last entry into a lower slot, so an entry that
    /// stays in the map for the whole iteration is always seen (perhaps
    /// twice), and entries added meanwhile land above the cursor.
    /// Cursor 0 starts; a returned cursor of 0 ends the iteration.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&[u8], &Entry)) -> ScanStep {
        let len = self.map.len() as u64;
        let mut pos = if cursor == 0 || cursor > len { len } else { cursor };
        let mut budget = count.max(1);
        while pos > 0 && budget > 0 {
            pos -= 1;
            visit(self.map.key_at(pos as usize), self.map.entry_at(pos as usize));
            budget -= 1;
        }
        ScanStep { next_cursor: pos }
    }

    /// One round of active expiry: samples keys with a TTL and removes the
    /// expired ones. Returns (sampled, expired).
    pub fn expire_sample(&mut self, now_ms: i64, samples: usize, rng: &mut impl Rng) -> (usize, usize) {
        let mut sampled = 0;
        let mut expired = 0;
        for _ in 0..samples {
            if self.volatile.is_empty() {
                break;
            }
            let pick = rng.gen_range(0..self.volatile.len());
            let idx = *self.volatile.get_index(pick).expect("in range") as usize;
            sampled += 1;
            if self.map.entry_at(idx).is_expired(now_ms) {
                self.expire_at_index(idx);
                expired += 1;
            }
        }
        (sampled, expired)
    }

    /// Average remaining TTL of a sample of volatile keys (INFO keyspace avg_ttl).
    pub fn avg_ttl(&self, now_ms: i64) -> i64 {
        let n = self.volatile.len().min(64);
        if n == 0 {
            return 0;
        }
        let mut total = 0i64;
        for &idx in self.volatile.iter().take(n) {
            total += (self.map.entry_at(idx as usize).expire_at - now_ms).max(0);
        }
        total / n as i64
    }

    /// Bytes the table structures take (MEMORY STATS overhead figures).
    pub fn overhead_bytes(&self) -> usize {
        self.map.overhead_bytes() + self.volatile.capacity() * 16
    }

    /// Makes room for `keys` more keys, `volatile` of them with a TTL,
    /// so that adding them rehashes nothing (RDB RESIZEDB hints).
    pub fn reserve(&mut self, keys: usize, volatile: usize) {
        self.map.reserve(keys);
        self.volatile.reserve(volatile);
    }

    /// Adds a key the database does not hold (one lookup fewer than
    /// [`Db::insert_entry`], for loading). When it does hold it, nothing
    /// changes and the entry is handed back.
    pub fn insert_new(&mut self, key: &[u8], entry: Entry) -> Result<(), Entry> {
        if self.map.position(key).is_some() {
            return Err(entry);
        }
        let has_ttl = entry.expire_at != NO_EXPIRE;
        let idx = self.map.push(key, entry);
        if has_ttl {
            self.volatile.insert(idx as u32);
        }
        Ok(())
    }

    /// Inserts or replaces a key's value with the given expiry
    /// ([`NO_EXPIRE`] for none). A replaced key keeps its LFU counter.
    pub fn set_with_expiry(&mut self, key: &[u8], value: Value, expire_at: i64, now_s: u32) {
        let Some(idx) = self.map.position(key) else {
            let mut entry = Entry::new(value, now_s);
            entry.expire_at = expire_at;
            let idx = self.map.push(key, entry);
            if expire_at != NO_EXPIRE {
                self.volatile.insert(idx as u32);
            }
            return;
        };
        let e = self.map.entry_at_mut(idx);
        let old = std::mem::replace(&mut e.value, value);
        e.expire_at = expire_at;
        e.last_access = now_s;
        crate::lazyfree::free_overwritten(old);
        if expire_at != NO_EXPIRE {
            self.volatile.insert(idx as u32);
        } else if !self.volatile.is_empty() {
            self.volatile.swap_remove(&(idx as u32));
        }
    }

    /// Calls `visit` with up to `n` keys picked at random (repeats
    /// possible) among all keys, or among those with a TTL (eviction
    /// sampling).
    pub fn sample(&self, volatile_only: bool, n: usize, rng: &mut impl Rng, mut visit: impl FnMut(&[u8], &Entry)) {
        for _ in 0..n {
            let Some(idx) = self.random_index(volatile_only, rng) else { return };
            visit(self.map.key_at(idx), self.map.entry_at(idx));
        }
    }

    /// A random key among all keys or those with a TTL, expired or not.
    pub fn random_key_of(&self, volatile_only: bool, rng: &mut impl Rng) -> Option<&[u8]> {
        self.random_index(volatile_only, rng).map(|idx| self.map.key_at(idx))
    }

    fn random_index(&self, volatile_only: bool, rng: &mut impl Rng) -> Option<usize> {
        if volatile_only {
            if self.volatile.is_empty() {
                return None;
            }
            let pick = rng.gen_range(0..self.volatile.len());
            self.volatile.get_index(pick).map(|&idx| idx as usize)
        } else if self.map.is_empty() {
            None
        } else {
            Some(rng.gen_range(0..self.map.len()))
        }
    }

    /// Gives every key whose access time is 0 (the start of the LRU clock)
    /// the time `now_s`: the keys an AOF replay created or touched, which
    /// runs with the clock at 0 so that nothing expires during the load.
    pub fn stamp_unset_access_times(&mut self, now_s: u32) {
        for entry in self.map.values_mut() {
            if entry.last_access == 0 {
                entry.last_access = now_s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_stays_32_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
    }

    #[test]
    fn overwriting_keeps_the_lfu_counter() {
        let mut db = Db::default();
        db.set(b"k", Value::Int(1), 0);
        db.get_mut(b"k", 0).unwrap().lfu_counter = 40;
        db.set(b"k", Value::Int(2), 0);
        assert_eq!(db.peek(b"k").unwrap().lfu_counter, 40);
        db.set_with_expiry(b"k", Value::Int(3), 5_000, 0);
        assert_eq!(db.peek(b"k").unwrap().lfu_counter, 40);
        assert_eq!(db.volatile_len(), 1);
        db.set(b"k", Value::Int(4), 0);
        assert_eq!(db.volatile_len(), 0);
    }

    #[test]
    fn volatile_positions_follow_swap_removal() {
        let mut db = Db::default();
        for i in 0..100u32 {
            let key = format!("k{i}");
            db.set(key.as_bytes(), Value::Int(i as i64), 0);
            if i % 3 == 0 {
                db.set_expire(key.as_bytes(), 1_000 + i as i64);
            }
        }
        for i in (0..100u32).step_by(7) {
            db.remove(format!("k{i}").as_bytes());
        }
        for &idx in db.volatile.iter() {
            assert_ne!(db.map.entry_at(idx as usize).expire_at, NO_EXPIRE);
        }
        let with_ttl = db.map.iter().filter(|(_, e)| e.expire_at != NO_EXPIRE).count();
        assert_eq!(with_ttl, db.volatile.len());
        let mut rng = rand::thread_rng();
        let (_, expired) = db.expire_sample(10_000, 1000, &mut rng);
        assert!(expired > 0);
        let with_ttl = db.map.iter().filter(|(_, e)| e.expire_at != NO_EXPIRE).count();
        assert_eq!(with_ttl, db.volatile.len());
    }

    #[test]
    fn scan_sees_every_stable_key_despite_removals() {
        let mut db = Db::default();
        for i in 0..1000u32 {
            db.set(format!("k{i}").as_bytes(), Value::Int(0), 0);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            let mut batch = Vec::new();
            let step = db.scan(cursor, 10, |k, _| batch.push(k.to_vec()));
            seen.extend(batch);
            // Remove keys that were never meant to stay (the "churn" keys).
            db.remove(format!("k{}", 999 - round).as_bytes());
            round += 1;
            cursor = step.next_cursor;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..(1000 - round) {
            assert!(seen.contains(format!("k{i}").as_bytes()), "k{i} missed");
        }
    }
}
