//! The ordered map of a stream's nodes, by master id.
//!
//! Node keys only ever grow (a new node starts after the last entry), and
//! nodes leave mostly from the front (trimming), so a sorted deque does the
//! job with binary search for lookups. It is also what keeps the index as
//! small as Valkey's radix tree: a B-tree filled by appends alone leaves
//! its nodes about half empty, which costs about a byte per stream entry
//! more than Valkey; here each node costs its 48-byte slot plus at most an
//! eighth of slack.

use std::collections::vec_deque;
use std::collections::VecDeque;

use ferrokey_formats::listpack::Listpack;
use ferrokey_formats::rdb::StreamId;

#[derive(Clone, Debug, Default)]
pub struct NodeMap {
    nodes: VecDeque<(StreamId, Listpack)>,
}

impl NodeMap {
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn iter(&self) -> vec_deque::Iter<'_, (StreamId, Listpack)> {
        self.nodes.iter()
    }

    /// Nodes from index `from` on.
    pub fn iter_from(&self, from: usize) -> vec_deque::Iter<'_, (StreamId, Listpack)> {
        self.nodes.range(from.min(self.nodes.len())..)
    }

    /// Nodes up to index `to` included.
    pub fn iter_to(&self, to: usize) -> vec_deque::Iter<'_, (StreamId, Listpack)> {
        self.nodes.range(..(to + 1).min(self.nodes.len()))
    }

    /// Index of the last node keyed at or below `id`: the only one that
    /// can hold it.
    pub fn floor(&self, id: StreamId) -> Option<usize> {
        self.nodes.partition_point(|(key, _)| *key <= id).checked_sub(1)
    }

    pub fn get_mut(&mut self, index: usize) -> Option<(StreamId, &mut Listpack)> {
        self.nodes.get_mut(index).map(|(key, lp)| (*key, lp))
    }

    pub fn first_mut(&mut self) -> Option<(StreamId, &mut Listpack)> {
        self.get_mut(0)
    }

    pub fn last_mut(&mut self) -> Option<(StreamId, &mut Listpack)> {
        self.nodes.back_mut().map(|(key, lp)| (*key, lp))
    }

    /// Adds a node keyed above every other.
    pub fn push_last(&mut self, key: StreamId, lp: Listpack) {
        debug_assert!(self.nodes.back().is_none_or(|(last, _)| *last < key));
        if self.nodes.len() == self.nodes.capacity() {
            // Grow by an eighth, not by doubling: the slack is memory the
            // stream holds for good.
            self.nodes.reserve_exact((self.nodes.len() / 8).max(4));
        }
        self.nodes.push_back((key, lp));
    }

    pub fn remove(&mut self, index: usize) {
        self.nodes.remove(index);
        self.release_slack();
    }

    pub fn remove_first(&mut self) {
        self.nodes.pop_front();
        self.release_slack();
    }

    fn release_slack(&mut self) {
        let len = self.nodes.len();
        if self.nodes.capacity() > len + len / 4 + 16 {
            self.nodes.shrink_to(len + len / 8);
        }
    }

    /// Bytes held: the slots, and each node's listpack allocation.
    pub fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<(StreamId, Listpack)>()
            + self.nodes.iter().map(|(_, lp)| lp.capacity()).sum::<usize>()
    }
}
