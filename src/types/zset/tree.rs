//! The order of a big sorted set: an order-statistic B+ tree.
//!
//! Leaves hold the elements sorted by (score, member); every inner node
//! keeps, for each child, the size of its subtree and its smallest
//! element. The sizes give ranks in O(log n) (ZRANK, ZRANGE by index,
//! ZCOUNT), the smallest elements route searches. An element is stored as
//! its score and the id of its slot in the member arena: ties between equal
//! scores are broken by the member bytes, which the tree asks the arena for
//! through [`MemberLookup`].
//!
//! Nodes hold up to 64 entries: about 16 bytes per element at full leaves,
//! a fraction of a skiplist's per-element nodes. Appending past the end of
//! a full node starts a new one instead of halving it, so sets that grow at
//! one end (timestamps as scores) keep their leaves full; a node that falls
//! below a quarter merges with or borrows from a neighbour.

use std::cmp::Ordering;

const LEAF_CAPACITY: usize = 64;
const INNER_CAPACITY: usize = 64;
const LEAF_MINIMUM: usize = LEAF_CAPACITY / 4;
const INNER_MINIMUM: usize = INNER_CAPACITY / 4;

/// One element as the tree holds it: 12 bytes, the score's bits split in
/// two halves so that the entry needs only 4-byte alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    score_bits: [u32; 2],
    /// The element's slot in the member arena.
    pub id: u32,
}

impl Entry {
    pub fn new(score: f64, id: u32) -> Entry {
        let bits = score.to_bits();
        Entry { score_bits: [bits as u32, (bits >> 32) as u32], id }
    }

    pub fn score(self) -> f64 {
        f64::from_bits((self.score_bits[1] as u64) << 32 | self.score_bits[0] as u64)
    }
}

/// Where the tree finds the member bytes of an id.
pub trait MemberLookup {
    fn member(&self, id: u32) -> &[u8];
}

/// How `entry` orders against the element (`score`, `member`): by score,
/// then by member bytes (memcmp, then length). -0 and 0 are equal scores.
pub fn compare<M: MemberLookup + ?Sized>(members: &M, entry: Entry, score: f64, member: &[u8]) -> Ordering {
    match entry.score().partial_cmp(&score) {
        Some(Ordering::Equal) | None => members.member(entry.id).cmp(member),
        Some(order) => order,
    }
}

#[derive(Clone, Debug)]
enum Node {
    Leaf(Vec<Entry>),
    Inner(Vec<Child>),
}

#[derive(Clone, Debug)]
struct Child {
    /// The smallest element of the subtree.
    min: Entry,
    /// Elements in the subtree.
    count: usize,
    node: Node,
}

impl Node {
    /// The smallest element; the node must not be empty.
    fn min(&self) -> Entry {
        match self {
            Node::Leaf(entries) => entries[0],
            Node::Inner(children) => children[0].min,
        }
    }

    fn count(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.len(),
            Node::Inner(children) => children.iter().map(|c| c.count).sum(),
        }
    }

    /// Entries or children held directly.
    fn width(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.len(),
            Node::Inner(children) => children.len(),
        }
    }

    fn into_child(self) -> Child {
        Child { min: self.min(), count: self.count(), node: self }
    }

    fn heap_size(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.capacity() * std::mem::size_of::<Entry>(),
            Node::Inner(children) => {
                children.capacity() * std::mem::size_of::<Child>()
                    + children.iter().map(|c| c.node.heap_size()).sum::<usize>()
            }
        }
    }
}

/// The child of `children` whose subtree would hold (`score`, `member`):
/// the last one whose smallest element is not greater, or the first.
fn route<M: MemberLookup + ?Sized>(children: &[Child], members: &M, score: f64, member: &[u8]) -> usize {
    children.partition_point(|c| compare(members, c.min, score, member) != Ordering::Greater).saturating_sub(1)
}

#[derive(Clone, Debug)]
pub struct OrderTree {
    root: Node,
    len: usize,
}

impl Default for OrderTree {
    fn default() -> Self {
        OrderTree { root: Node::Leaf(Vec::new()), len: 0 }
    }
}

impl OrderTree {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// Bytes allocated for the nodes.
    pub fn heap_size(&self) -> usize {
        self.root.heap_size()
    }

    /// Adds an element; the member of `entry.id` must not be in the tree.
    pub fn insert<M: MemberLookup + ?Sized>(&mut self, members: &M, entry: Entry) {
        let member = members.member(entry.id);
        if let Some(right) = insert_into(&mut self.root, members, entry, member) {
            let left = std::mem::replace(&mut self.root, Node::Leaf(Vec::new()));
            self.root = Node::Inner(vec![left.into_child(), right.into_child()]);
        }
        self.len += 1;
    }

    /// Removes the element (`score`, `member`); false if it is not there.
    pub fn remove<M: MemberLookup + ?Sized>(&mut self, members: &M, score: f64, member: &[u8]) -> bool {
        if !remove_from(&mut self.root, members, score, member) {
            return false;
        }
        self.len -= 1;
        if self.len == 0 {
            self.root = Node::Leaf(Vec::new());
            return true;
        }
        // A root with a single child hands the root role down.
        while let Node::Inner(children) = &mut self.root {
            if children.len() != 1 {
                break;
            }
            let only = children.pop().map(|c| c.node).unwrap_or(Node::Leaf(Vec::new()));
            self.root = only;
        }
        true
    }

    /// The 0-based rank of (`score`, `member`), if present.
    pub fn rank<M: MemberLookup + ?Sized>(&self, members: &M, score: f64, member: &[u8]) -> Option<usize> {
        let mut node = &self.root;
        let mut before = 0;
        loop {
            match node {
                Node::Inner(children) => {
                    let j = route(children, members, score, member);
                    before += children[..j].iter().map(|c| c.count).sum::<usize>();
                    node = &children[j].node;
                }
                Node::Leaf(entries) => {
                    let pos = entries.partition_point(|e| compare(members, *e, score, member) == Ordering::Less);
                    let found = entries.get(pos).is_some_and(|e| compare(members, *e, score, member).is_eq());
                    return found.then_some(before + pos);
                }
            }
        }
    }

    /// The element at 0-based `rank`.
    pub fn get(&self, rank: usize) -> Option<Entry> {
        if rank >= self.len {
            return None;
        }
        let mut node = &self.root;
        let mut rank = rank;
        loop {
            match node {
                Node::Inner(children) => {
                    let mut next = None;
                    for child in children {
                        if rank < child.count {
                            next = Some(&child.node);
                            break;
                        }
                        rank -= child.count;
                    }
                    node = next?;
                }
                Node::Leaf(entries) => return entries.get(rank).copied(),
            }
        }
    }

    /// How many elements, from the smallest, satisfy `holds`, which must
    /// hold for a prefix of the order and not after it (a range bound).
    pub fn count_while(&self, holds: impl Fn(Entry) -> bool) -> usize {
        let mut node = &self.root;
        let mut before = 0;
        loop {
            match node {
                Node::Inner(children) => {
                    let past = children.partition_point(|c| holds(c.min));
                    if past == 0 {
                        return before;
                    }
                    before += children[..past - 1].iter().map(|c| c.count).sum::<usize>();
                    node = &children[past - 1].node;
                }
                Node::Leaf(entries) => return before + entries.partition_point(|e| holds(*e)),
            }
        }
    }

    /// Gives the element (`score`, `member`) the id `new_id` (its member
    /// moved to another arena slot). The arena must still answer the old id.
    pub fn relabel<M: MemberLookup + ?Sized>(
        &mut self,
        members: &M,
        score: f64,
        member: &[u8],
        old_id: u32,
        new_id: u32,
    ) {
        let mut node = &mut self.root;
        loop {
            match node {
                Node::Inner(children) => {
                    let j = route(children, members, score, member);
                    if children[j].min.id == old_id {
                        children[j].min.id = new_id;
                    }
                    node = &mut children[j].node;
                }
                Node::Leaf(entries) => {
                    if let Some(e) = entries.iter_mut().find(|e| e.id == old_id) {
                        e.id = new_id;
                    }
                    return;
                }
            }
        }
    }

    /// Iterates from 0-based rank `start` toward higher ranks, or toward
    /// lower ones when `reverse`.
    pub fn iter_from(&self, start: usize, reverse: bool) -> Iter<'_> {
        if start >= self.len {
            return Iter { path: Vec::new(), leaf: &[], pos: 0, reverse, done: true };
        }
        let mut path = Vec::new();
        let mut node = &self.root;
        let mut rank = start;
        loop {
            match node {
                Node::Inner(children) => {
                    let mut j = 0;
                    while rank >= children[j].count {
                        rank -= children[j].count;
                        j += 1;
                    }
                    path.push((children.as_slice(), j));
                    node = &children[j].node;
                }
                Node::Leaf(entries) => {
                    return Iter { path, leaf: entries, pos: rank, reverse, done: false };
                }
            }
        }
    }
}

fn insert_into<M: MemberLookup + ?Sized>(node: &mut Node, members: &M, entry: Entry, member: &[u8]) -> Option<Node> {
    match node {
        Node::Leaf(entries) => {
            let pos = entries.partition_point(|e| compare(members, *e, entry.score(), member) == Ordering::Less);
            if entries.len() < LEAF_CAPACITY {
                entries.insert(pos, entry);
                return None;
            }
            Some(Node::Leaf(split_full(entries, pos, entry)))
        }
        Node::Inner(children) => {
            let j = route(children, members, entry.score(), member);
            let split = insert_into(&mut children[j].node, members, entry, member);
            children[j].count += 1;
            children[j].min = children[j].node.min();
            let right = split?.into_child();
            children[j].count -= right.count;
            if children.len() < INNER_CAPACITY {
                children.insert(j + 1, right);
                return None;
            }
            Some(Node::Inner(split_full(children, j + 1, right)))
        }
    }
}

/// Splits a full node's items to make room for `item` at `pos`; returns
/// the right part. Inserting past the end starts the right part with the
/// new item alone, so growth at one end leaves full nodes behind.
fn split_full<T>(items: &mut Vec<T>, pos: usize, item: T) -> Vec<T> {
    if pos == items.len() {
        let mut right = Vec::with_capacity(4);
        right.push(item);
        return right;
    }
    let mid = items.len() / 2;
    let mut right = items.split_off(mid);
    if pos <= mid {
        items.insert(pos, item);
    } else {
        right.insert(pos - mid, item);
    }
    right
}

fn remove_from<M: MemberLookup + ?Sized>(node: &mut Node, members: &M, score: f64, member: &[u8]) -> bool {
    match node {
        Node::Leaf(entries) => {
            let pos = entries.partition_point(|e| compare(members, *e, score, member) == Ordering::Less);
            if entries.get(pos).is_some_and(|e| compare(members, *e, score, member).is_eq()) {
                entries.remove(pos);
                true
            } else {
                false
            }
        }
        Node::Inner(children) => {
            let j = route(children, members, score, member);
            if !remove_from(&mut children[j].node, members, score, member) {
                return false;
            }
            children[j].count -= 1;
            if children[j].count == 0 {
                children.remove(j);
                return true;
            }
            children[j].min = children[j].node.min();
            rebalance(children, j);
            true
        }
    }
}

/// Merges child `j` into a neighbour, or evens them out, when it has
/// fallen below a quarter of its capacity.
fn rebalance(children: &mut Vec<Child>, j: usize) {
    let minimum = match children[j].node {
        Node::Leaf(_) => LEAF_MINIMUM,
        Node::Inner(_) => INNER_MINIMUM,
    };
    if children[j].node.width() >= minimum || children.len() < 2 {
        return;
    }
    let left = if j + 1 < children.len() { j } else { j - 1 };
    let (head, tail) = children.split_at_mut(left + 1);
    let (a, b) = (&mut head[left], &mut tail[0]);
    let capacity = match a.node {
        Node::Leaf(_) => LEAF_CAPACITY,
        Node::Inner(_) => INNER_CAPACITY,
    };
    let total = a.node.width() + b.node.width();
    if total <= capacity {
        match (&mut a.node, &mut b.node) {
            (Node::Leaf(x), Node::Leaf(y)) => x.append(y),
            (Node::Inner(x), Node::Inner(y)) => x.append(y),
            _ => return,
        }
        a.count += b.count;
        children.remove(left + 1);
        return;
    }
    let keep_left = total / 2;
    match (&mut a.node, &mut b.node) {
        (Node::Leaf(x), Node::Leaf(y)) => even_out(x, y, keep_left),
        (Node::Inner(x), Node::Inner(y)) => even_out(x, y, keep_left),
        _ => return,
    }
    a.count = a.node.count();
    b.count = b.node.count();
    a.min = a.node.min();
    b.min = b.node.min();
}

/// Moves items across the boundary of two neighbours so that `left` ends
/// up with `keep_left` of them.
fn even_out<T>(left: &mut Vec<T>, right: &mut Vec<T>, keep_left: usize) {
    if left.len() > keep_left {
        let moved: Vec<T> = left.drain(keep_left..).collect();
        right.splice(0..0, moved);
    } else {
        let take = keep_left - left.len();
        left.extend(right.drain(..take));
    }
}

/// Walks the tree's elements in order (or in reverse) from a rank.
pub struct Iter<'a> {
    /// The inner nodes above the current leaf, each with the index of the
    /// child taken.
    path: Vec<(&'a [Child], usize)>,
    leaf: &'a [Entry],
    pos: usize,
    reverse: bool,
    done: bool,
}

impl<'a> Iter<'a> {
    /// Moves to the next leaf in the walking direction.
    fn step_leaf(&mut self) -> bool {
        loop {
            let Some((children, idx)) = self.path.pop() else { return false };
            let next = if self.reverse { idx.checked_sub(1) } else { Some(idx + 1).filter(|&i| i < children.len()) };
            let Some(next) = next else { continue };
            self.path.push((children, next));
            let mut node = &children[next].node;
            loop {
                match node {
                    Node::Inner(grand) => {
                        let pick = if self.reverse { grand.len() - 1 } else { 0 };
                        self.path.push((grand.as_slice(), pick));
                        node = &grand[pick].node;
                    }
                    Node::Leaf(entries) => {
                        self.leaf = entries;
                        self.pos = if self.reverse { entries.len().saturating_sub(1) } else { 0 };
                        return !entries.is_empty();
                    }
                }
            }
        }
    }
}

impl Iterator for Iter<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        if self.done {
            return None;
        }
        let Some(&entry) = self.leaf.get(self.pos) else {
            self.done = true;
            return None;
        };
        let more = if self.reverse {
            match self.pos.checked_sub(1) {
                Some(p) => {
                    self.pos = p;
                    true
                }
                None => self.step_leaf(),
            }
        } else if self.pos + 1 < self.leaf.len() {
            self.pos += 1;
            true
        } else {
            self.step_leaf()
        };
        self.done = !more;
        Some(entry)
    }
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

    fn check(tree: &OrderTree, names: &Names, model: &[(f64, u32)]) {
        assert_eq!(tree.len(), model.len());
        let walked: Vec<u32> = tree.iter_from(0, false).map(|e| e.id).collect();
        assert_eq!(walked, model.iter().map(|m| m.1).collect::<Vec<_>>());
        let back: Vec<u32> = tree.iter_from(model.len().saturating_sub(1), true).map(|e| e.id).collect();
        assert_eq!(back, model.iter().rev().map(|m| m.1).collect::<Vec<_>>());
        for (rank, &(score, id)) in model.iter().enumerate().step_by(7) {
            assert_eq!(tree.rank(names, score, names.member(id)), Some(rank));
            assert_eq!(tree.get(rank).map(|e| e.id), Some(id));
        }
        check_node(&tree.root);
    }

    fn check_node(node: &Node) {
        if let Node::Inner(children) = node {
            for c in children {
                assert_eq!(c.count, c.node.count());
                assert_eq!(c.min, c.node.min());
                check_node(&c.node);
            }
        }
    }

    #[test]
    fn follows_a_sorted_model_through_inserts_and_removals() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let n = 5000;
        let names = Names((0..n).map(|i| format!("m{i}").into_bytes()).collect());
        let scores: Vec<f64> = (0..n).map(|_| rng.gen_range(0..50) as f64).collect();
        let mut tree = OrderTree::default();
        let mut model: Vec<(f64, u32)> = Vec::new();
        let key = |m: &(f64, u32)| (m.0 as i64, names.member(m.1).to_vec());
        for id in 0..n as u32 {
            tree.insert(&names, Entry::new(scores[id as usize], id));
            model.push((scores[id as usize], id));
        }
        model.sort_by_key(key);
        check(&tree, &names, &model);
        // Remove most of them, from both ends and at random.
        while model.len() > 10 {
            let at = match rng.gen_range(0..3) {
                0 => 0,
                1 => model.len() - 1,
                _ => rng.gen_range(0..model.len()),
            };
            let (score, id) = model.remove(at);
            assert!(tree.remove(&names, score, names.member(id)));
            assert!(!tree.remove(&names, score, names.member(id)));
            if model.len().is_multiple_of(97) {
                check(&tree, &names, &model);
            }
        }
        check(&tree, &names, &model);
        assert_eq!(tree.count_while(|e| e.score() < 25.0), model.iter().filter(|m| m.0 < 25.0).count());
    }

    #[test]
    fn appending_keeps_leaves_full() {
        let n = 10_000u32;
        let names = Names((0..n).map(|i| format!("{i:08}").into_bytes()).collect());
        let mut tree = OrderTree::default();
        for id in 0..n {
            tree.insert(&names, Entry::new(id as f64, id));
        }
        let per_element = tree.heap_size() as f64 / n as f64;
        assert!(per_element < 14.0, "{per_element} bytes per element");
        assert_eq!(tree.iter_from(9_990, false).count(), 10);
    }
}
