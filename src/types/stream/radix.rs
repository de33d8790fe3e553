//! How many nodes Valkey's radix tree would use for a stream's node keys
//! (XINFO STREAM `radix-tree-nodes`).
//!
//! Valkey keeps stream nodes in a radix tree keyed by the 16-byte
//! big-endian master id. Its shape depends only on the set of keys: a node
//! for the empty prefix, one for every prefix where keys diverge, one for
//! each child of such a divergence, and one leaf per key (single-child runs
//! in between are compressed into their parent). Counting those prefixes
//! gives the same number without building the tree.

use std::collections::HashSet;

use ferrokey_formats::rdb::StreamId;

const KEY_BYTES: u32 = 16;

fn as_u128(id: StreamId) -> u128 {
    ((id.ms as u128) << 64) | id.seq as u128
}

/// The first `len` bytes of a key, tagged with their length.
fn prefix(key: u128, len: u32) -> (u32, u128) {
    if len == 0 {
        (0, 0)
    } else {
        (len, key >> (8 * (KEY_BYTES - len)))
    }
}

/// The node count for keys given in ascending order.
pub fn node_count(sorted_keys: impl Iterator<Item = StreamId>) -> usize {
    let mut nodes: HashSet<(u32, u128)> = HashSet::new();
    nodes.insert(prefix(0, 0));
    let mut previous: Option<u128> = None;
    for id in sorted_keys {
        let key = as_u128(id);
        nodes.insert(prefix(key, KEY_BYTES));
        if let Some(prev) = previous.filter(|&p| p != key) {
            let common = (prev ^ key).leading_zeros() / 8;
            nodes.insert(prefix(prev, common));
            nodes.insert(prefix(prev, common + 1));
            nodes.insert(prefix(key, common + 1));
        }
        previous = Some(key);
    }
    nodes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(ids: &[(u64, u64)]) -> usize {
        node_count(ids.iter().map(|&(ms, seq)| StreamId::new(ms, seq)))
    }

    #[test]
    fn matches_valkey_for_small_trees() {
        // Figures read from valkey-server 8.0.1's XINFO STREAM with
        // stream-node-max-entries 1 (one node per entry).
        assert_eq!(count(&[]), 1);
        assert_eq!(count(&[(1, 0)]), 2);
        // Divergence at byte 7: root, divergence, two children, two leaves.
        assert_eq!(count(&[(1, 0), (2, 0)]), 6);
        // Divergence at the first byte: the root itself branches.
        assert_eq!(count(&[(1, 0), (1 << 63, 0)]), 5);
        assert_eq!(count(&[(1, 0), (2, 0), (3, 0)]), 8);
        // Divergence at the last byte: the children are the leaves.
        assert_eq!(count(&[(0, 1), (0, 2)]), 4);
    }
}
