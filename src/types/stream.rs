//! A stream: entries by id, and consumer groups with their pending entries.
//!
//! Entries live in listpack nodes laid out byte for byte as Valkey's (see
//! `node.rs`), each keyed by its master id in an ordered map, so memory per
//! entry matches Valkey's and an RDB writer can emit the nodes as they are.
//! A node takes new entries until it reaches `stream-node-max-bytes` or
//! `stream-node-max-entries`; then it is shrunk to fit and a new one starts.
//! Deleting an entry only flags it; a node goes when none of its entries
//! is live. The stream keeps Valkey's metadata alongside: the last id
//! generated, the first live id, the largest deleted id and the count of
//! entries ever added, from which consumer groups derive their lag.

mod group;
mod node;
mod node_map;
mod radix;

use ferrokey_formats::listpack::Listpack;
pub use ferrokey_formats::rdb::StreamId;
use std::collections::{vec_deque, BTreeMap};

pub use group::{Consumer, ConsumerGroup, PendingEntry, UNKNOWN_ENTRIES_READ};
use node::{Master, NodeCursor, RawEntry};
use node_map::NodeMap;

/// The smallest and largest ids.
pub const MIN_ID: StreamId = StreamId { ms: 0, seq: 0 };
pub const MAX_ID: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

/// Valkey refuses entries whose fields and values add up to more than this
/// (a listpack's size must fit its 32-bit header).
pub const MAX_ENTRY_BYTES: usize = 1 << 30;

/// The id after `id`, or None past the largest.
pub fn next_id(id: StreamId) -> Option<StreamId> {
    if id.seq < u64::MAX {
        Some(StreamId { ms: id.ms, seq: id.seq + 1 })
    } else if id.ms < u64::MAX {
        Some(StreamId { ms: id.ms + 1, seq: 0 })
    } else {
        None
    }
}

/// The id before `id`, or None below the smallest.
pub fn prev_id(id: StreamId) -> Option<StreamId> {
    if id.seq > 0 {
        Some(StreamId { ms: id.ms, seq: id.seq - 1 })
    } else if id.ms > 0 {
        Some(StreamId { ms: id.ms - 1, seq: u64::MAX })
    } else {
        None
    }
}

/// When a node is full (`stream-node-max-bytes`, `stream-node-max-entries`).
#[derive(Clone, Copy, Debug)]
pub struct NodeLimits {
    /// 0 for no limit (Valkey then caps nodes at 1 GiB).
    pub max_bytes: u64,
    /// 0 for no limit.
    pub max_entries: i64,
}

/// How XADD and XTRIM trim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Drop the entries below this id.
    MinId(StreamId),
}

/// The entries of a stream and their metadata.
#[derive(Clone, Debug, Default)]
pub struct Entries {
    nodes: NodeMap,
    length: u64,
    /// The id of the last entry ever added (or set by XSETID).
    pub last_id: StreamId,
    /// The first live entry's id, 0-0 when empty.
    pub first_id: StreamId,
    /// The largest id ever deleted.
    pub max_deleted_id: StreamId,
    /// How many entries were ever added.
    pub entries_added: u64,
}

/// A stream: its entries and its consumer groups.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    pub entries: Entries,
    /// Groups by name, in byte order (as XINFO GROUPS lists them).
    pub groups: BTreeMap<Box<[u8]>, ConsumerGroup>,
}

impl Stream {
    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        "stream"
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.length as usize
    }

    pub fn is_empty(&self) -> bool {
        self.entries.length == 0
    }

    /// An estimate of the heap memory held (MEMORY USAGE, INFO).
    pub fn heap_size(&self) -> usize {
        let groups: usize = self.groups.iter().map(|(name, g)| name.len() + 64 + g.heap_size()).sum();
        self.entries.heap_size() + groups
    }
}

/// One live entry found by [`Entries::range`].
#[derive(Clone, Copy)]
pub struct EntryRef<'a> {
    pub id: StreamId,
    lp: &'a Listpack,
    master: Master,
    raw: RawEntry,
}

impl<'a> EntryRef<'a> {
    pub fn field_count(&self) -> usize {
        self.raw.field_count
    }

    /// The entry's field/value pairs, in order.
    pub fn fields(&self) -> node::Fields<'a> {
        node::Fields::new(self.lp, &self.master, &self.raw)
    }
}

impl Entries {
    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The nodes with their master ids, in order (XINFO, RDB).
    pub fn nodes(&self) -> impl DoubleEndedIterator<Item = (&StreamId, &Listpack)> {
        self.nodes.iter().map(|(key, lp)| (key, lp))
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node count of Valkey's radix tree for these nodes (XINFO).
    pub fn radix_tree_nodes(&self) -> usize {
        radix::node_count(self.nodes.iter().map(|(key, _)| *key))
    }

    fn heap_size(&self) -> usize {
        self.nodes.heap_size()
    }

    /// Appends an entry with the given id (greater than `last_id`, checked
    /// by the caller) and its flattened field/value pairs.
    pub fn append(&mut self, id: StreamId, pairs: &[&[u8]], limits: NodeLimits) {
        let added_bytes: usize = pairs.iter().map(|p| p.len()).sum();
        let max_bytes = match limits.max_bytes {
            0 => MAX_ENTRY_BYTES as u64,
            n => n.min(MAX_ENTRY_BYTES as u64),
        };
        let has_room = |lp: &Listpack| {
            let bytes_ok = ((lp.total_bytes() + added_bytes) as u64) < max_bytes;
            let entries_ok = limits.max_entries == 0
                || Master::read(lp).is_some_and(|m| m.live.saturating_add(m.deleted) < limits.max_entries);
            bytes_ok && entries_ok
        };
        let appended = match self.nodes.last_mut() {
            Some((master_id, lp)) if has_room(lp) => {
                node::append(lp, master_id, id, pairs);
                true
            }
            Some((_, full)) => {
                // The full node will not grow again: give back its slack.
                full.shrink_to_fit();
                false
            }
            None => false,
        };
        if !appended {
            self.nodes.push_last(id, node::new_node(id, pairs));
        }
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
    }

    /// Live entries from `start` to `end` inclusive, forward or backward.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool) -> Range<'_> {
        let nodes = if rev {
            match self.nodes.floor(end) {
                Some(last) => self.nodes.iter_to(last),
                None => self.nodes.iter_from(self.nodes.len()),
            }
        } else {
            // Begin at the node that may hold `start`: the last one keyed
            // at or below it.
            self.nodes.iter_from(self.nodes.floor(start).unwrap_or(0))
        };
        Range { nodes, cursor: None, start, end, rev, done: start > end }
    }

    /// The first live entry's id.
    pub fn first_live_id(&self) -> Option<StreamId> {
        self.range(MIN_ID, MAX_ID, false).next().map(|e| e.id)
    }

    /// The last live entry's id.
    pub fn last_live_id(&self) -> Option<StreamId> {
        self.range(MIN_ID, MAX_ID, true).next().map(|e| e.id)
    }

    /// The live entry with this id.
    pub fn get(&self, id: StreamId) -> Option<EntryRef<'_>> {
        self.range(id, id, false).next()
    }

    /// Deletes a live entry; returns whether there was one. Keeps the
    /// largest deleted id but not the first id (see [`Entries::delete_ids`]).
    fn delete_one(&mut self, id: StreamId) -> bool {
        let Some(index) = self.nodes.floor(id) else { return false };
        let Some((master_id, lp)) = self.nodes.get_mut(index) else { return false };
        let found = NodeCursor::new(lp, master_id, false)
            .and_then(|mut cursor| cursor.find(|e| e.id >= id))
            .filter(|e| e.id == id && !e.is_deleted());
        let Some(entry) = found else { return false };
        if !node::mark_deleted(lp, &entry) {
            self.nodes.remove(index);
        }
        self.length -= 1;
        true
    }

    /// XDEL: deletes the live entries among `ids`; returns how many.
    pub fn delete_ids(&mut self, ids: &[StreamId]) -> u64 {
        let mut deleted = 0;
        let mut first_deleted = false;
        for &id in ids {
            if self.delete_one(id) {
                if id == self.first_id {
                    first_deleted = true;
                }
                if id > self.max_deleted_id {
                    self.max_deleted_id = id;
                }
                deleted += 1;
            }
        }
        if deleted > 0 {
            if self.length == 0 {
                self.first_id = MIN_ID;
            } else if first_deleted {
                self.first_id = self.first_live_id().unwrap_or(MAX_ID);
            }
        }
        deleted
    }

    /// Trims from the oldest entries as XADD and XTRIM do. With `approx`
    /// only whole nodes go; `limit` (0: none) caps the entries removed.
    /// Returns the number of entries removed.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        while let Some((master_id, first)) = self.nodes.first_mut() {
            if let Trim::MaxLen(max) = how {
                if self.length <= max {
                    break;
                }
            }
            let Some(master) = Master::read(first) else { break };
            let live = master.live.max(0) as u64;
            if limit != 0 && deleted + live > limit {
                break;
            }
            let whole_node = match how {
                Trim::MaxLen(max) => self.length - live >= max,
                Trim::MinId(min) => node::last_id(first, master_id).is_some_and(|last| last < min),
            };
            if whole_node {
                self.nodes.remove_first();
                self.length -= live;
                deleted += live;
                continue;
            }
            if approx {
                break;
            }
            // What remains to trim is all in this node: flag its entries
            // from the start. Flags keep their width, so the offsets found
            // on the way stay valid while they are rewritten.
            let mut to_flag = Vec::new();
            let mut length = self.length;
            for entry in NodeCursor::new(first, master_id, false).into_iter().flatten() {
                let stop = match how {
                    Trim::MaxLen(max) => length <= max,
                    Trim::MinId(min) => entry.id >= min,
                };
                if stop {
                    break;
                }
                if !entry.is_deleted() {
                    to_flag.push(entry);
                    length -= 1;
                }
            }
            let flagged = to_flag.len() as u64;
            for entry in &to_flag {
                node::set_flags(first, entry.at, entry.flags | node::DELETED);
            }
            self.length = length;
            node::set_counts(first, master.live - flagged as i64, master.deleted + flagged as i64);
            deleted += flagged;
            break;
        }
        if self.length == 0 {
            self.first_id = MIN_ID;
        } else if deleted > 0 {
            self.first_id = self.first_live_id().unwrap_or(MAX_ID);
        }
        deleted
    }

    /// Whether a deleted entry may lie between `start` and `end` (None:
    /// the stream's ends), judged from the largest deleted id as Valkey
    /// does.
    pub fn range_has_tombstones(&self, start: Option<StreamId>, end: Option<StreamId>) -> bool {
        if self.length == 0 || self.max_deleted_id == MIN_ID {
            return false;
        }
        if self.first_id > self.max_deleted_id {
            return false;
        }
        let start = start.unwrap_or(MIN_ID);
        let end = end.unwrap_or(MAX_ID);
        start <= self.max_deleted_id && self.max_deleted_id <= end
    }

    /// How many entries were added up to and including `id`, counted from
    /// the first entry ever, when that can be known; otherwise
    /// [`UNKNOWN_ENTRIES_READ`].
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        let added = self.entries_added as i64;
        if self.entries_added == 0 {
            return 0;
        }
        if self.length == 0 && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        }
        if id > self.last_id {
            return UNKNOWN_ENTRIES_READ;
        }
        if self.max_deleted_id == MIN_ID || self.max_deleted_id < self.first_id {
            if id < self.first_id {
                return added - self.length as i64;
            }
            if id == self.first_id {
                return added - self.length as i64 + 1;
            }
        }
        UNKNOWN_ENTRIES_READ
    }
}

/// The iterator of [`Entries::range`].
pub struct Range<'a> {
    nodes: vec_deque::Iter<'a, (StreamId, Listpack)>,
    cursor: Option<NodeCursor<'a>>,
    start: StreamId,
    end: StreamId,
    rev: bool,
    done: bool,
}

impl<'a> Iterator for Range<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        while !self.done {
            let Some(cursor) = self.cursor.as_mut() else {
                let next = if self.rev { self.nodes.next_back() } else { self.nodes.next() };
                match next {
                    Some((master_id, lp)) => self.cursor = NodeCursor::new(lp, *master_id, self.rev),
                    None => self.done = true,
                }
                continue;
            };
            let Some(raw) = cursor.next() else {
                self.cursor = None;
                continue;
            };
            if raw.is_deleted() {
                continue;
            }
            let (before, past) = if self.rev {
                (raw.id > self.end, raw.id < self.start)
            } else {
                (raw.id < self.start, raw.id > self.end)
            };
            if past {
                self.done = true;
                break;
            }
            if before {
                continue;
            }
            return Some(EntryRef { id: raw.id, lp: cursor.lp, master: cursor.master, raw });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: NodeLimits = NodeLimits { max_bytes: 4096, max_entries: 100 };

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    fn ids(range: Range<'_>) -> Vec<StreamId> {
        range.map(|e| e.id).collect()
    }

    fn fields(entry: &EntryRef<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
        entry.fields().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn node_bytes_match_valkey() {
        // The node listpack of valkey-server 8.0.1's DUMP after
        // XADD s 1-1 a 1 b 2; XADD s 1-2 a 3 b 4; XADD s 2-0 c 5;
        // XADD s 3-0 a hello b -7; XDEL s 1-2.
        let valkey = hex("500000001f00030101010201816102816202000102010001000101010201050103010001010103010401050100\
             010101dfff0201018163020501060102010201dfff028568656c6c6f06dff9020501ff");
        let mut entries = Entries::default();
        entries.append(id(1, 1), &[b"a", b"1", b"b", b"2"], LIMITS);
        entries.append(id(1, 2), &[b"a", b"3", b"b", b"4"], LIMITS);
        entries.append(id(2, 0), &[b"c", b"5"], LIMITS);
        entries.append(id(3, 0), &[b"a", b"hello", b"b", b"-7"], LIMITS);
        assert_eq!(entries.delete_ids(&[id(1, 2)]), 1);
        let nodes: Vec<_> = entries.nodes().collect();
        assert_eq!(nodes.len(), 1);
        assert_eq!(*nodes[0].0, id(1, 1));
        assert_eq!(nodes[0].1.as_bytes(), &valkey[..]);
        assert_eq!((entries.len(), entries.first_id, entries.max_deleted_id), (3, id(1, 1), id(1, 2)));
    }

    #[test]
    fn ranges_skip_deleted_entries_in_both_directions() {
        let limits = NodeLimits { max_bytes: 4096, max_entries: 3 };
        let mut entries = Entries::default();
        for ms in 1..=10 {
            let value = ms.to_string();
            let pairs: [&[u8]; 2] = if ms % 2 == 0 { [b"even", value.as_bytes()] } else { [b"odd", value.as_bytes()] };
            entries.append(id(ms, 0), &pairs, limits);
        }
        assert_eq!(entries.node_count(), 4);
        entries.delete_ids(&[id(2, 0), id(5, 0), id(6, 0), id(4, 0)]);
        // The node of 4-6 lost every entry and went.
        assert_eq!(entries.node_count(), 3);
        let all = [1, 3, 7, 8, 9, 10].map(|ms| id(ms, 0)).to_vec();
        assert_eq!(ids(entries.range(MIN_ID, MAX_ID, false)), all);
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(ids(entries.range(MIN_ID, MAX_ID, true)), reversed);
        assert_eq!(ids(entries.range(id(2, 0), id(8, 0), false)), [3, 7, 8].map(|ms| id(ms, 0)));
        assert_eq!(ids(entries.range(id(2, 0), id(8, 0), true)), [8, 7, 3].map(|ms| id(ms, 0)));
        assert!(ids(entries.range(id(4, 0), id(6, 9), false)).is_empty());
        let eight = entries.get(id(8, 0)).unwrap();
        assert_eq!(fields(&eight), vec![(b"even".to_vec(), b"8".to_vec())]);
        assert_eq!((entries.first_live_id(), entries.last_live_id()), (Some(id(1, 0)), Some(id(10, 0))));
    }

    #[test]
    fn exact_trimming_flags_entries_inside_the_first_node() {
        let limits = NodeLimits { max_bytes: 4096, max_entries: 4 };
        let mut entries = Entries::default();
        for ms in 1..=10 {
            entries.append(id(ms, 0), &[b"f", b"v"], limits);
        }
        // Approximate trimming only removes whole nodes.
        assert_eq!(entries.trim(Trim::MaxLen(7), true, 0), 0);
        assert_eq!(entries.trim(Trim::MaxLen(6), true, 0), 4);
        assert_eq!(entries.len(), 6);
        assert_eq!(entries.trim(Trim::MaxLen(4), false, 0), 2);
        assert_eq!(ids(entries.range(MIN_ID, MAX_ID, false)), [7, 8, 9, 10].map(|ms| id(ms, 0)));
        assert_eq!(entries.first_id, id(7, 0));
        assert_eq!(entries.trim(Trim::MinId(id(9, 0)), false, 0), 2);
        assert_eq!(entries.first_id, id(9, 0));
        assert_eq!(entries.trim(Trim::MaxLen(0), false, 0), 2);
        assert!(entries.is_empty());
        assert_eq!((entries.node_count(), entries.first_id, entries.last_id), (0, MIN_ID, id(10, 0)));
    }

    #[test]
    fn entries_with_other_fields_keep_their_names() {
        let mut entries = Entries::default();
        entries.append(id(1, 0), &[b"a", b"1"], LIMITS);
        entries.append(id(2, 0), &[b"b", b"2", b"c", b"3"], LIMITS);
        entries.append(id(3, 0), &[b"a", b"4"], LIMITS);
        let got: Vec<_> = entries.range(MIN_ID, MAX_ID, true).map(|e| fields(&e)).collect();
        assert_eq!(
            got,
            vec![
                vec![(b"a".to_vec(), b"4".to_vec())],
                vec![(b"b".to_vec(), b"2".to_vec()), (b"c".to_vec(), b"3".to_vec())],
                vec![(b"a".to_vec(), b"1".to_vec())],
            ]
        );
    }

    #[test]
    fn read_counter_estimates_follow_valkey() {
        let mut entries = Entries::default();
        assert_eq!(entries.estimate_distance(id(5, 0)), 0);
        for ms in 1..=5 {
            entries.append(id(ms, 0), &[b"f", b"v"], LIMITS);
        }
        assert_eq!(entries.estimate_distance(id(5, 0)), 5);
        assert_eq!(entries.estimate_distance(id(1, 0)), 1);
        assert_eq!(entries.estimate_distance(id(0, 5)), 0);
        assert_eq!(entries.estimate_distance(id(3, 0)), UNKNOWN_ENTRIES_READ);
        assert_eq!(entries.estimate_distance(id(6, 0)), UNKNOWN_ENTRIES_READ);
        let mut group = ConsumerGroup::new(MIN_ID, 0);
        assert_eq!(group.lag(&entries), Some(5));
        group.advance_to(id(1, 0), &entries);
        assert_eq!((group.entries_read, group.lag(&entries)), (1, Some(4)));
        entries.delete_ids(&[id(3, 0)]);
        assert!(entries.range_has_tombstones(Some(id(2, 0)), None));
        assert!(!entries.range_has_tombstones(Some(id(4, 0)), None));
        // With a deletion ahead the counter can't be trusted.
        assert_eq!(group.lag(&entries), None);
        group.advance_to(id(2, 0), &entries);
        assert_eq!(group.entries_read, UNKNOWN_ENTRIES_READ);
        group.advance_to(id(4, 0), &entries);
        assert_eq!(group.entries_read, UNKNOWN_ENTRIES_READ);
        // The last entry's count is always known.
        group.advance_to(id(5, 0), &entries);
        assert_eq!((group.entries_read, group.lag(&entries)), (5, Some(0)));
    }
}
