//! Consumer groups: the last id delivered, the pending entries list (PEL)
//! of entries delivered but not acknowledged, and the consumers, each with
//! its own share of the PEL.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferrokey_formats::rdb::StreamId;

use super::Entries;

/// Valkey's marker for an `entries_read` counter that is not known.
pub const UNKNOWN_ENTRIES_READ: i64 = -1;

/// An entry delivered to a consumer and not acknowledged yet.
#[derive(Clone, Debug)]
pub struct PendingEntry {
    /// The consumer it was last delivered to.
    pub consumer: Arc<[u8]>,
    /// Unix milliseconds of the last delivery.
    pub delivery_time: i64,
    pub delivery_count: u64,
}

#[derive(Clone, Debug)]
pub struct Consumer {
    /// Unix ms of its last attempt to read or claim.
    pub seen_time: i64,
    /// Unix ms of its last successful read or claim; -1 for never.
    pub active_time: i64,
    /// The ids of the group's PEL entries it owns.
    pub pending: BTreeSet<StreamId>,
}

#[derive(Clone, Debug)]
pub struct ConsumerGroup {
    pub last_id: StreamId,
    /// How many entries the group has read, counted from the stream's
    /// first ever entry; [`UNKNOWN_ENTRIES_READ`] when it can't be known.
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, PendingEntry>,
    /// Consumers by name, in byte order (as XINFO lists them).
    pub consumers: BTreeMap<Arc<[u8]>, Consumer>,
}

impl ConsumerGroup {
    pub fn new(last_id: StreamId, entries_read: i64) -> ConsumerGroup {
        ConsumerGroup { last_id, entries_read, pel: BTreeMap::new(), consumers: BTreeMap::new() }
    }

    /// Creates a consumer that does not exist yet; returns whether it did.
    pub fn create_consumer(&mut self, name: &[u8], now_ms: i64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        let consumer = Consumer { seen_time: now_ms, active_time: -1, pending: BTreeSet::new() };
        self.consumers.insert(Arc::from(name), consumer);
        true
    }

    /// The consumer's shared name, as PEL entries hold it.
    pub fn consumer_name(&self, name: &[u8]) -> Option<Arc<[u8]>> {
        self.consumers.get_key_value(name).map(|(k, _)| k.clone())
    }

    /// Deletes a consumer with its pending entries; returns how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pending {
            self.pel.remove(id);
        }
        Some(consumer.pending.len())
    }

    /// Moves the last delivered id forward to `id` as a read of it does,
    /// keeping the read counter when it stays exact and estimating it
    /// otherwise.
    pub fn advance_to(&mut self, id: StreamId, entries: &Entries) {
        if id <= self.last_id {
            return;
        }
        if self.entries_read != UNKNOWN_ENTRIES_READ && !entries.range_has_tombstones(Some(id), None) {
            self.entries_read += 1;
        } else if entries.entries_added != 0 {
            self.entries_read = entries.estimate_distance(id);
        }
        self.last_id = id;
    }

    /// Records a delivery of `id` to `consumer` (which must exist): a new
    /// PEL entry, or one taken over from whoever had it, with its count
    /// started again.
    pub fn deliver(&mut self, id: StreamId, consumer: &Arc<[u8]>, now_ms: i64) {
        if let Some(previous) = self.pel.get(&id).map(|p| p.consumer.clone()) {
            if let Some(owner) = self.consumers.get_mut(&previous) {
                owner.pending.remove(&id);
            }
        }
        self.pel.insert(id, PendingEntry { consumer: consumer.clone(), delivery_time: now_ms, delivery_count: 1 });
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pending.insert(id);
            c.active_time = now_ms;
        }
    }

    /// Removes an entry from the PEL and from its owner's list.
    pub fn remove_pending(&mut self, id: StreamId) -> bool {
        let Some(entry) = self.pel.remove(&id) else { return false };
        if let Some(owner) = self.consumers.get_mut(&entry.consumer) {
            owner.pending.remove(&id);
        }
        true
    }

    /// Hands a PEL entry (existing or just created) to `consumer`.
    pub fn transfer(&mut self, id: StreamId, consumer: &Arc<[u8]>, delivery_time: i64, delivery_count: u64) {
        let previous = self.pel.get(&id).map(|p| p.consumer.clone());
        if let Some(previous) = previous.filter(|p| p != consumer) {
            if let Some(owner) = self.consumers.get_mut(&previous) {
                owner.pending.remove(&id);
            }
        }
        self.pel.insert(id, PendingEntry { consumer: consumer.clone(), delivery_time, delivery_count });
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pending.insert(id);
        }
    }

    /// The number of entries the group has yet to read, when it can be
    /// known (XINFO `lag`).
    pub fn lag(&self, entries: &Entries) -> Option<i64> {
        let added = entries.entries_added as i64;
        if entries.entries_added == 0 {
            return Some(0);
        }
        if self.entries_read != UNKNOWN_ENTRIES_READ && !entries.range_has_tombstones(Some(self.last_id), None) {
            return Some(added.wrapping_sub(self.entries_read));
        }
        match entries.estimate_distance(self.last_id) {
            UNKNOWN_ENTRIES_READ => None,
            read => Some(added.wrapping_sub(read)),
        }
    }

    /// An estimate of the memory the group holds.
    pub fn heap_size(&self) -> usize {
        const PEL_NODE: usize = 16 + 32;
        let consumers: usize = self.consumers.iter().map(|(name, c)| name.len() + 16 + 48 + c.pending.len() * 16).sum();
        self.pel.len() * PEL_NODE + consumers
    }
}
