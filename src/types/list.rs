//! A list: one listpack while small, a quicklist past list-max-listpack-size.
//!
//! A quicklist is a chain of nodes, each a listpack bounded by the
//! configured fill (bytes per node for negative values, entries per node
//! for positive ones), or a "plain" node holding a single element too big
//! for any listpack. Nodes are created, split and merged by the rules
//! Valkey's quicklist follows, and the list switches between the two
//! encodings on the same commands and thresholds as Valkey's, so OBJECT
//! ENCODING answers alike for the same command sequence. Listpacks are
//! Valkey's byte for byte and are grown to fit (not doubled), so a list
//! takes about the memory Valkey's does.
//!
//! Callers pass the current list-max-listpack-size (`fill`) to the
//! conversion checks; a quicklist keeps the fill it was created with for
//! its node decisions, as Valkey's does when the setting changes later.

use std::borrow::Cow;
use std::collections::VecDeque;

use ferrokey_formats::listpack::{entry_size, Item, Listpack, ListpackRef};

use crate::types::compact::{Compact, Form, FormMut};

/// Bytes per node for the negative fill values -1 to -5.
const NODE_BYTES_BY_CLASS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// Under an entry-count fill, nodes still stay within this many bytes, and
/// elements longer than it get plain nodes.
const SIZE_SAFETY_LIMIT: usize = 8192;
/// Valkey's deliberate overestimate of the bytes one more entry adds to a node.
const INSERT_OVERHEAD_ESTIMATE: usize = 8;
/// A listpack's header and terminator, counted once when two are merged.
const LISTPACK_FRAME_BYTES: usize = 7;
/// The range a quicklist clamps its fill to.
const MIN_FILL: i64 = -5;
const MAX_FILL: i64 = (1 << 15) - 1;
/// Deletions give memory back once a listpack uses less than half its allocation.
const SLACK_FACTOR: usize = 2;

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

/// An element taken out of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Popped {
    /// An integer entry of a quicklist node: Valkey hands these out as
    /// integer objects, which its size checks before a push do not count.
    Int(i64),
    Bytes(Vec<u8>),
}

impl Popped {
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Popped::Int(n) => Cow::Owned(itoa::Buffer::new().format(*n).as_bytes().to_vec()),
            Popped::Bytes(b) => Cow::Borrowed(b),
        }
    }

    /// The bytes this element adds in the size check before it is pushed.
    pub fn counted_len(&self) -> usize {
        match self {
            Popped::Int(_) => 0,
            Popped::Bytes(b) => b.len(),
        }
    }
}

/// One quicklist node.
#[derive(Clone, Debug)]
pub enum Node {
    Packed(Listpack),
    /// A single element larger than a node may hold.
    Plain(Box<[u8]>),
}

impl Node {
    fn count(&self) -> usize {
        match self {
            Node::Packed(lp) => lp.len(),
            Node::Plain(_) => 1,
        }
    }

    fn heap_size(&self) -> usize {
        match self {
            Node::Packed(lp) => lp.capacity(),
            Node::Plain(element) => element.len(),
        }
    }
}

/// The limit a fill value sets on one node (or on a listpack-encoded list).
#[derive(Clone, Copy)]
enum NodeLimit {
    Bytes(usize),
    Entries(usize),
}

fn node_limit(fill: i64) -> NodeLimit {
    if fill >= 0 {
        NodeLimit::Entries(fill.max(1) as usize)
    } else {
        let class = (fill.unsigned_abs() - 1).min(NODE_BYTES_BY_CLASS.len() as u64 - 1);
        NodeLimit::Bytes(NODE_BYTES_BY_CLASS[class as usize])
    }
}

fn exceeds_limit(fill: i64, bytes: usize, entries: usize) -> bool {
    match node_limit(fill) {
        NodeLimit::Bytes(max) => bytes > max,
        NodeLimit::Entries(max) => bytes > SIZE_SAFETY_LIMIT || entries > max,
    }
}

/// Whether an element is too big for any listpack node and gets a plain node.
fn is_large_element(fill: i64, len: usize) -> bool {
    match node_limit(fill) {
        NodeLimit::Bytes(max) => len > max,
        NodeLimit::Entries(_) => len > SIZE_SAFETY_LIMIT,
    }
}

/// Whether a single listpack of this size may encode the whole list. After
/// a removal only half the limit passes, so that a list hovering around the
/// limit does not convert back and forth on every command.
fn fits_one_listpack(fill: i64, bytes: usize, entries: usize, shrinking: bool) -> bool {
    let (mut max_bytes, mut max_entries) = match node_limit(fill) {
        NodeLimit::Bytes(max) => (max, u32::MAX as usize),
        NodeLimit::Entries(max) => (usize::MAX, max),
    };
    if shrinking {
        max_bytes /= 2;
        max_entries /= 2;
    }
    bytes <= max_bytes && entries <= max_entries
}

/// Pushes onto a listpack, growing its allocation to fit exactly.
fn push_into(lp: &mut Listpack, ele: &[u8], end: End) {
    lp.reserve_exact(entry_size(ele));
    match end {
        End::Head => lp.push_front(ele),
        End::Tail => lp.push_back(ele),
    };
}

fn listpack_of(ele: &[u8]) -> Listpack {
    let mut lp = Listpack::new();
    push_into(&mut lp, ele, End::Tail);
    lp
}

/// Inserts next to the entry at position `index` of a listpack.
fn insert_beside(lp: &mut Listpack, index: usize, ele: &[u8], after: bool) {
    let Some(p) = lp.seek(index as i64) else { return };
    let at = if after { lp.next(p).unwrap_or_else(|| lp.end_offset()) } else { p };
    lp.reserve_exact(entry_size(ele));
    lp.insert_at(at, ele);
}

fn replace_in(lp: &mut Listpack, index: usize, ele: &[u8]) {
    let Some(p) = lp.seek(index as i64) else { return };
    lp.reserve_exact(entry_size(ele));
    lp.replace_at(p, ele);
}

fn delete_in(lp: &mut Listpack, index: usize, n: usize) {
    if let Some(p) = lp.seek(index as i64) {
        lp.delete_at(p, n);
    }
}

/// Shrinks a quicklist node after a removal or replacement made it much
/// smaller than its allocation. (A listpack-encoded list is stored at its
/// exact size anyway.)
fn release_slack(lp: &mut Listpack) {
    if lp.capacity() > SLACK_FACTOR * lp.total_bytes() {
        lp.shrink_to_fit();
    }
}

/// Removes up to `budget` entries equal to `ele`, walking from the head or
/// from the tail. Returns how many went.
fn remove_matches(lp: &mut Listpack, ele: &[u8], budget: usize, from_tail: bool) -> usize {
    let mut removed = 0;
    if from_tail {
        let mut at = lp.last();
        while let Some(p) = at {
            if removed == budget {
                break;
            }
            // The entry before stays where it is when this one goes.
            at = lp.prev(p);
            if lp.get(p).eq_bytes(ele) {
                lp.delete_at(p, 1);
                removed += 1;
            }
        }
    } else {
        let mut at = lp.first();
        while let Some(p) = at {
            if removed == budget {
                break;
            }
            if lp.get(p).eq_bytes(ele) {
                at = lp.delete_at(p, 1);
                removed += 1;
            } else {
                at = lp.next(p);
            }
        }
    }
    removed
}

#[derive(Clone, Debug)]
struct Quicklist {
    nodes: VecDeque<Node>,
    /// Elements in all nodes.
    count: usize,
    fill: i64,
}

impl Quicklist {
    fn new(fill: i64) -> Quicklist {
        Quicklist { nodes: VecDeque::new(), count: 0, fill: fill.clamp(MIN_FILL, MAX_FILL) }
    }

    /// Whether `node` may take one more element of `len` bytes.
    fn allows_insert(&self, node: Option<&Node>, len: usize) -> bool {
        match node {
            Some(Node::Packed(lp)) if !is_large_element(self.fill, len) => {
                !exceeds_limit(self.fill, lp.total_bytes() + len + INSERT_OVERHEAD_ESTIMATE, lp.len() + 1)
            }
            _ => false,
        }
    }

    fn allows_merge(&self, a: usize, b: usize) -> bool {
        match (self.nodes.get(a), self.nodes.get(b)) {
            (Some(Node::Packed(x)), Some(Node::Packed(y))) => {
                !exceeds_limit(self.fill, x.total_bytes() + y.total_bytes() - LISTPACK_FRAME_BYTES, x.len() + y.len())
            }
            _ => false,
        }
    }

    fn edge_mut(&mut self, end: End) -> Option<&mut Node> {
        match end {
            End::Head => self.nodes.front_mut(),
            End::Tail => self.nodes.back_mut(),
        }
    }

    fn add_edge_node(&mut self, node: Node, end: End) {
        match end {
            End::Head => self.nodes.push_front(node),
            End::Tail => self.nodes.push_back(node),
        }
    }

    fn push(&mut self, ele: &[u8], end: End) {
        self.count += 1;
        if is_large_element(self.fill, ele.len()) {
            self.add_edge_node(Node::Plain(ele.into()), end);
            return;
        }
        let edge = match end {
            End::Head => self.nodes.front(),
            End::Tail => self.nodes.back(),
        };
        if self.allows_insert(edge, ele.len()) {
            if let Some(Node::Packed(lp)) = self.edge_mut(end) {
                push_into(lp, ele, end);
            }
        } else {
            self.add_edge_node(Node::Packed(listpack_of(ele)), end);
        }
    }

    fn pop(&mut self, end: End) -> Option<Popped> {
        let (popped, emptied) = match self.edge_mut(end)? {
            Node::Plain(element) => (Popped::Bytes(std::mem::take(element).into_vec()), true),
            Node::Packed(lp) => {
                let p = match end {
                    End::Head => lp.first(),
                    End::Tail => lp.last(),
                }?;
                let popped = match lp.get(p) {
                    Item::Int(n) => Popped::Int(n),
                    Item::Str(s) => Popped::Bytes(s.to_vec()),
                };
                lp.delete_at(p, 1);
                release_slack(lp);
                (popped, lp.is_empty())
            }
        };
        if emptied {
            match end {
                End::Head => self.nodes.pop_front(),
                End::Tail => self.nodes.pop_back(),
            };
        }
        self.count -= 1;
        Some(popped)
    }

    /// The node holding element `index` and the element's position in it,
    /// walking from whichever end is nearer.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.count {
            return None;
        }
        if index <= (self.count - 1) / 2 {
            let mut before = 0;
            for (ni, node) in self.nodes.iter().enumerate() {
                let n = node.count();
                if index < before + n {
                    return Some((ni, index - before));
                }
                before += n;
            }
        } else {
            let mut after = 0;
            for (ni, node) in self.nodes.iter().enumerate().rev() {
                let first = self.count - after - node.count();
                if index >= first {
                    return Some((ni, index - first));
                }
                after += node.count();
            }
        }
        None
    }

    /// Splits packed node `ni` around its entry `offset`. With `after`, the
    /// node keeps the entries up to and including `offset` and the rest are
    /// returned; without, the entries before `offset` are returned and the
    /// node keeps the rest.
    fn split(&mut self, ni: usize, offset: usize, after: bool) -> Listpack {
        let Some(Node::Packed(lp)) = self.nodes.get_mut(ni) else { return Listpack::new() };
        if after {
            lp.split_off(offset + 1)
        } else {
            let rest = lp.split_off(offset);
            std::mem::replace(lp, rest)
        }
    }

    /// Joins node `left + 1` onto node `left` (both packed).
    fn merge_pair(&mut self, left: usize) {
        let Some(right) = self.nodes.remove(left + 1) else { return };
        match (&mut self.nodes[left], right) {
            (Node::Packed(lp), Node::Packed(right)) => lp.append_listpack(&right),
            (_, right) => self.nodes.insert(left + 1, right),
        }
    }

    /// Valkey's merge pass around a node that just changed: it tries the two
    /// nodes before it, then the two after it, then the node with its
    /// predecessor, then the result with its successor. Returns where the
    /// changed node's elements ended up.
    fn merge_around(&mut self, center: usize) -> usize {
        let mut center = center;
        if center >= 2 && self.allows_merge(center - 2, center - 1) {
            self.merge_pair(center - 2);
            center -= 1;
        }
        if self.allows_merge(center + 1, center + 2) {
            self.merge_pair(center + 1);
        }
        let target = if center >= 1 && self.allows_merge(center - 1, center) {
            self.merge_pair(center - 1);
            center - 1
        } else {
            center
        };
        if self.allows_merge(target, target + 1) {
            self.merge_pair(target);
        }
        target
    }

    /// Inserts `ele` before or after element `offset` of node `ni`, using a
    /// neighbour, a new node or a split when the node is full.
    fn insert(&mut self, ni: usize, offset: usize, ele: &[u8], after: bool) {
        let len = ele.len();
        let node_count = self.nodes[ni].count();
        let full = !self.allows_insert(self.nodes.get(ni), len);
        let at_tail = after && offset + 1 == node_count;
        let at_head = !after && offset == 0;
        let room_next = at_tail && self.allows_insert(self.nodes.get(ni + 1), len);
        let room_prev = at_head && self.allows_insert(ni.checked_sub(1).and_then(|p| self.nodes.get(p)), len);
        let beside = if after { ni + 1 } else { ni };
        self.count += 1;

        if is_large_element(self.fill, len) {
            if matches!(self.nodes[ni], Node::Plain(_)) || at_tail || at_head {
                self.nodes.insert(beside, Node::Plain(ele.into()));
            } else {
                let split = self.split(ni, offset, after);
                if after {
                    self.nodes.insert(ni + 1, Node::Plain(ele.into()));
                    self.nodes.insert(ni + 2, Node::Packed(split));
                } else {
                    self.nodes.insert(ni, Node::Plain(ele.into()));
                    self.nodes.insert(ni, Node::Packed(split));
                }
            }
            return;
        }

        if !full {
            if let Node::Packed(lp) = &mut self.nodes[ni] {
                insert_beside(lp, offset, ele, after);
            }
        } else if room_next {
            if let Some(Node::Packed(lp)) = self.nodes.get_mut(ni + 1) {
                push_into(lp, ele, End::Head);
            }
        } else if room_prev {
            if let Some(Node::Packed(lp)) = self.nodes.get_mut(ni - 1) {
                push_into(lp, ele, End::Tail);
            }
        } else if at_tail || at_head {
            self.nodes.insert(beside, Node::Packed(listpack_of(ele)));
        } else {
            let mut split = self.split(ni, offset, after);
            push_into(&mut split, ele, if after { End::Head } else { End::Tail });
            self.nodes.insert(beside, Node::Packed(split));
            self.merge_around(if after { ni } else { ni + 1 });
        }
    }

    /// Replaces element `offset` of node `ni`.
    fn replace(&mut self, ni: usize, offset: usize, ele: &[u8]) {
        let large = is_large_element(self.fill, ele.len());
        match &mut self.nodes[ni] {
            // The size limit is not checked here: Valkey lets a replacement overfill a node.
            Node::Packed(lp) if !large => {
                replace_in(lp, offset, ele);
                release_slack(lp);
                return;
            }
            Node::Plain(element) if large => {
                *element = ele.into();
                return;
            }
            Node::Plain(_) => {
                // A small element takes a plain node's place by being
                // inserted after it, the plain node then going.
                self.insert(ni, 0, ele, true);
                self.nodes.remove(ni);
                self.count -= 1;
                return;
            }
            Node::Packed(_) => {}
        }
        // A large element replacing a packed entry gets a plain node of its
        // own right after that entry, the node being split there first.
        let node_count = self.nodes[ni].count();
        let split = (offset + 1 != node_count).then(|| self.split(ni, offset, true));
        self.nodes.insert(ni + 1, Node::Plain(ele.into()));
        if let Some(split) = split {
            self.nodes.insert(ni + 2, Node::Packed(split));
        }
        // Node `ni` now ends with the replaced entry.
        if self.nodes[ni].count() == 1 {
            self.nodes.remove(ni);
        } else {
            if let Node::Packed(lp) = &mut self.nodes[ni] {
                delete_in(lp, offset, 1);
                release_slack(lp);
            }
            self.merge_around(ni + 1);
        }
    }

    /// Deletes `n` elements from `start` (both within bounds), dropping the
    /// nodes that empty; nodes are not merged afterwards, as in Valkey.
    fn delete_range(&mut self, start: usize, n: usize) {
        let Some((mut ni, mut offset)) = self.locate(start) else { return };
        let mut left = n.min(self.count - start);
        self.count -= left;
        while left > 0 && ni < self.nodes.len() {
            let node_count = self.nodes[ni].count();
            let del = (node_count - offset).min(left);
            match &mut self.nodes[ni] {
                Node::Packed(lp) if del < node_count => {
                    delete_in(lp, offset, del);
                    release_slack(lp);
                    ni += 1;
                }
                _ => {
                    self.nodes.remove(ni);
                }
            }
            left -= del;
            offset = 0;
        }
    }

    fn remove_matches(&mut self, ele: &[u8], budget: usize, from_tail: bool) -> usize {
        let mut removed = 0;
        let mut next = if from_tail { self.nodes.len().checked_sub(1) } else { Some(0) };
        while let Some(ni) = next {
            if removed == budget || ni >= self.nodes.len() {
                break;
            }
            let (gone, emptied) = match &mut self.nodes[ni] {
                Node::Packed(lp) => {
                    let gone = remove_matches(lp, ele, budget - removed, from_tail);
                    if gone > 0 {
                        release_slack(lp);
                    }
                    (gone, lp.is_empty())
                }
                Node::Plain(element) => {
                    let hit = **element == *ele;
                    (hit as usize, hit)
                }
            };
            removed += gone;
            if emptied {
                self.nodes.remove(ni);
            }
            next = match (from_tail, emptied) {
                (true, _) => ni.checked_sub(1),
                (false, true) => Some(ni),
                (false, false) => Some(ni + 1),
            };
        }
        self.count -= removed;
        removed
    }
}

/// A list is one word: a pointer to the bytes of its listpack, or to its
/// boxed quicklist (see [`crate::types::compact`]).
#[derive(Clone, Debug)]
pub struct List {
    repr: Compact<Quicklist>,
}

impl Default for List {
    fn default() -> Self {
        List::new()
    }
}

/// A node as RDB and DUMP write it.
#[derive(Clone, Copy, Debug)]
pub enum NodeView<'a> {
    Packed(ListpackRef<'a>),
    Plain(&'a [u8]),
}

impl List {
    /// An empty list, listpack-encoded (pushes convert it as needed).
    pub fn new() -> List {
        List::packed(&Listpack::new())
    }

    fn packed(lp: &Listpack) -> List {
        List { repr: Compact::listpack(lp.view()) }
    }

    /// A list holding `lp`, converted to a quicklist if `fill` calls for it.
    pub fn from_listpack(lp: Listpack, fill: i64) -> List {
        let mut list = List::packed(&lp);
        list.settle_encoding(fill);
        list
    }

    /// A list made of quicklist nodes (as an RDB file stores them); empty
    /// listpacks are skipped, and a single small node becomes a listpack.
    pub fn from_nodes(nodes: impl IntoIterator<Item = Node>, fill: i64) -> List {
        let mut ql = Quicklist::new(fill);
        for node in nodes {
            if node.count() > 0 {
                ql.count += node.count();
                ql.nodes.push_back(node);
            }
        }
        let mut list = List { repr: Compact::big(ql) };
        list.settle_encoding(fill);
        list
    }

    /// A quicklist of `nodes` whatever their size: Valkey's loader leaves a
    /// list read from a ziplist (an RDB file older than quicklists) in
    /// that encoding. Empty listpacks are skipped.
    pub fn quicklist_from_nodes(nodes: impl IntoIterator<Item = Node>, fill: i64) -> List {
        let mut ql = Quicklist::new(fill);
        for node in nodes {
            if node.count() > 0 {
                ql.count += node.count();
                ql.nodes.push_back(node);
            }
        }
        List { repr: Compact::big(ql) }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        if self.repr.is_big() {
            "quicklist"
        } else {
            "listpack"
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self.repr.form() {
            Form::Listpack(lp) => lp.len(),
            Form::Big(ql) => ql.count,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An estimate of the heap memory held (MEMORY USAGE, INFO).
    pub fn heap_size(&self) -> usize {
        match self.repr.form() {
            Form::Listpack(lp) => lp.total_bytes(),
            Form::Big(ql) => {
                ql.nodes.capacity() * std::mem::size_of::<Node>() + ql.nodes.iter().map(Node::heap_size).sum::<usize>()
            }
        }
    }

    /// The listpack of a listpack-encoded list.
    pub fn as_listpack(&self) -> Option<ListpackRef<'_>> {
        match self.repr.form() {
            Form::Listpack(lp) => Some(lp),
            Form::Big(_) => None,
        }
    }

    /// The nodes of a quicklist-encoded list, head first (none for a listpack).
    pub fn quicklist_nodes(&self) -> impl Iterator<Item = NodeView<'_>> {
        let nodes = match self.repr.form() {
            Form::Big(ql) => Some(ql.nodes.iter()),
            Form::Listpack(_) => None,
        };
        nodes.into_iter().flatten().map(|node| match node {
            Node::Packed(lp) => NodeView::Packed(lp.view()),
            Node::Plain(element) => NodeView::Plain(element),
        })
    }

    /// Valkey's check before elements are added: a listpack that would
    /// pass the limit with `added_entries` more elements of `added_bytes`
    /// bytes in all becomes a quicklist (with the listpack as its first node).
    pub fn prepare_growth(&mut self, added_bytes: usize, added_entries: usize, fill: i64) {
        let Form::Listpack(lp) = self.repr.form() else { return };
        if !exceeds_limit(fill, lp.total_bytes() + added_bytes, lp.len() + added_entries) {
            return;
        }
        let mut ql = Quicklist::new(fill);
        if !lp.is_empty() {
            ql.count = lp.len();
            ql.nodes.push_back(Node::Packed(Listpack::from_trusted_bytes(lp.as_bytes().to_vec())));
        }
        self.repr = Compact::big(ql);
    }

    /// Valkey's check after elements were removed: a quicklist down to one
    /// listpack node within half the limits becomes a listpack again.
    pub fn after_removal(&mut self, fill: i64) {
        self.try_into_listpack(fill, true);
    }

    /// Picks the encoding for a list built wholesale (loading, restoring).
    pub fn settle_encoding(&mut self, fill: i64) {
        if self.repr.is_big() {
            self.try_into_listpack(fill, false);
        } else {
            self.prepare_growth(0, 0, fill);
        }
    }

    fn try_into_listpack(&mut self, fill: i64, shrinking: bool) {
        let Form::Big(ql) = self.repr.form() else { return };
        if ql.nodes.len() != 1 {
            return;
        }
        let Some(Node::Packed(lp)) = ql.nodes.front() else { return };
        if !fits_one_listpack(fill, lp.total_bytes(), ql.count, shrinking) {
            return;
        }
        self.repr = Compact::listpack(lp.view());
    }

    pub fn push(&mut self, ele: &[u8], end: End) {
        match self.repr.form_mut() {
            FormMut::Listpack(mut lp) => lp.modify(|lp| push_into(lp, ele, end)),
            FormMut::Big(ql) => ql.push(ele, end),
        }
    }

    pub fn pop(&mut self, end: End) -> Option<Popped> {
        match self.repr.form_mut() {
            FormMut::Listpack(mut lp) => {
                let view = lp.view();
                let p = match end {
                    End::Head => view.first(),
                    End::Tail => view.last(),
                }?;
                let element = view.get(p).to_vec();
                lp.modify(|lp| lp.delete_at(p, 1));
                Some(Popped::Bytes(element))
            }
            FormMut::Big(ql) => ql.pop(end),
        }
    }

    /// A position counted from the head, negative ones from the tail; None
    /// when out of range.
    fn position(&self, index: i64) -> Option<usize> {
        let len = self.len() as i64;
        let index = if index < 0 { len.checked_add(index)? } else { index };
        (0..len).contains(&index).then_some(index as usize)
    }

    /// The element at `index` (negative counts from the tail).
    pub fn get(&self, index: i64) -> Option<Item<'_>> {
        self.iter_from(self.position(index)?, false).next()
    }

    /// Iterates from element `index` towards the tail, or towards the head
    /// when `reverse`.
    pub fn iter_from(&self, index: usize, reverse: bool) -> Iter<'_> {
        let len = self.len();
        if index >= len {
            return Iter { list: self, node: 0, at: None, remaining: 0, reverse };
        }
        let (node, offset) = match self.repr.form() {
            Form::Listpack(_) => (0, index),
            Form::Big(ql) => ql.locate(index).unwrap_or((0, 0)),
        };
        let at = match self.node_view(node) {
            Some(NodeView::Packed(lp)) => lp.seek(offset as i64),
            Some(NodeView::Plain(_)) => Some(0),
            None => None,
        };
        let remaining = if reverse { index + 1 } else { len - index };
        Iter { list: self, node, at, remaining, reverse }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0, false)
    }

    fn node_view(&self, node: usize) -> Option<NodeView<'_>> {
        match self.repr.form() {
            Form::Listpack(lp) => (node == 0).then_some(NodeView::Packed(lp)),
            Form::Big(ql) => ql.nodes.get(node).map(|n| match n {
                Node::Packed(lp) => NodeView::Packed(lp.view()),
                Node::Plain(element) => NodeView::Plain(element),
            }),
        }
    }

    /// Replaces the element at `index` (negative counts from the tail).
    /// Returns false when the index is out of range.
    pub fn set(&mut self, index: i64, ele: &[u8]) -> bool {
        let Some(index) = self.position(index) else { return false };
        match self.repr.form_mut() {
            FormMut::Listpack(mut lp) => lp.modify(|lp| replace_in(lp, index, ele)),
            FormMut::Big(ql) => {
                let Some((ni, offset)) = ql.locate(index) else { return false };
                ql.replace(ni, offset, ele);
            }
        }
        true
    }

    /// Inserts `ele` before or after the first element equal to `pivot`.
    /// Returns false when there is no such element.
    pub fn insert(&mut self, pivot: &[u8], ele: &[u8], after: bool) -> bool {
        let Some(index) = self.iter().position(|item| item.eq_bytes(pivot)) else { return false };
        match self.repr.form_mut() {
            FormMut::Listpack(mut lp) => lp.modify(|lp| insert_beside(lp, index, ele, after)),
            FormMut::Big(ql) => {
                let Some((ni, offset)) = ql.locate(index) else { return false };
                ql.insert(ni, offset, ele, after);
            }
        }
        true
    }

    /// Removes up to `limit` elements equal to `ele` (0: all of them),
    /// starting from the head or the tail. Returns how many went.
    pub fn remove(&mut self, ele: &[u8], limit: usize, from_tail: bool) -> usize {
        let budget = if limit == 0 { usize::MAX } else { limit };
        match self.repr.form_mut() {
            // Copying the listpack for a change is only worth it when there is one.
            FormMut::Listpack(lp) if !lp.view().iter().any(|(_, item)| item.eq_bytes(ele)) => 0,
            FormMut::Listpack(mut lp) => lp.modify(|lp| remove_matches(lp, ele, budget, from_tail)),
            FormMut::Big(ql) => ql.remove_matches(ele, budget, from_tail),
        }
    }

    /// Deletes up to `n` elements starting at `start`.
    pub fn delete_range(&mut self, start: usize, n: usize) {
        if n == 0 || start >= self.len() {
            return;
        }
        match self.repr.form_mut() {
            FormMut::Listpack(mut lp) => lp.modify(|lp| delete_in(lp, start, n)),
            FormMut::Big(ql) => ql.delete_range(start, n),
        }
    }

    /// [`List::from_nodes`] for a list that is a single listpack node (as
    /// most lists in an RDB file are), without building a quicklist around
    /// it when it stays a listpack.
    pub fn from_single_node(lp: Listpack, fill: i64) -> List {
        if !lp.is_empty() && fits_one_listpack(fill, lp.total_bytes(), lp.len(), false) {
            List::packed(&lp)
        } else {
            List::from_nodes([Node::Packed(lp)], fill)
        }
    }
}

/// Walks a list's elements in one direction (see [`List::iter_from`]).
pub struct Iter<'a> {
    list: &'a List,
    node: usize,
    /// Offset of the next entry in the current node's listpack (0 for a
    /// plain node not yet visited); None once the node is done.
    at: Option<usize>,
    remaining: usize,
    reverse: bool,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        while self.remaining > 0 {
            let view = self.list.node_view(self.node)?;
            if let Some(p) = self.at {
                self.remaining -= 1;
                return Some(match view {
                    NodeView::Packed(lp) => {
                        self.at = if self.reverse { lp.prev(p) } else { lp.next(p) };
                        lp.get(p)
                    }
                    NodeView::Plain(element) => {
                        self.at = None;
                        Item::Str(element)
                    }
                });
            }
            self.node = if self.reverse { self.node.checked_sub(1)? } else { self.node + 1 };
            self.at = match self.list.node_view(self.node)? {
                NodeView::Packed(lp) if self.reverse => lp.last(),
                NodeView::Packed(lp) => lp.first(),
                NodeView::Plain(_) => Some(0),
            };
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encoding, quicklist nodes and their total bytes (Valkey's DEBUG
    /// OBJECT ql_nodes and ql_uncompressed_size), and length.
    fn shape(list: &List) -> (&'static str, usize, usize, usize) {
        let bytes = list
            .quicklist_nodes()
            .map(|node| match node {
                NodeView::Packed(lp) => lp.total_bytes(),
                NodeView::Plain(element) => element.len(),
            })
            .sum();
        (list.encoding_name(), list.quicklist_nodes().count(), bytes, list.len())
    }

    fn push_all(list: &mut List, elements: &[&[u8]], end: End, fill: i64) {
        list.prepare_growth(elements.iter().map(|e| e.len()).sum(), elements.len(), fill);
        for e in elements {
            list.push(e, end);
        }
    }

    fn contents(list: &List) -> Vec<Vec<u8>> {
        list.iter().map(|item| item.to_vec()).collect()
    }

    fn numbers(range: std::ops::RangeInclusive<i32>) -> Vec<Vec<u8>> {
        range.map(|i| i.to_string().into_bytes()).collect()
    }

    fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
        v.iter().map(|e| e.as_slice()).collect()
    }

    // The expected shapes below are what Valkey 8.0.1 reports for the same
    // command sequences.

    #[test]
    fn inserts_split_and_merge_nodes_like_valkey() {
        let fill = 4;
        let mut list = List::new();
        push_all(&mut list, &refs(&numbers(1..=12)), End::Tail, fill);
        assert_eq!(shape(&list), ("quicklist", 3, 45, 12));
        assert!(list.insert(b"2", b"x", true));
        assert_eq!(shape(&list), ("quicklist", 4, 55, 13));
        assert!(list.insert(b"7", b"y", false));
        assert_eq!(shape(&list), ("quicklist", 5, 65, 14));
        assert!(list.insert(b"12", b"z", true));
        assert_eq!(shape(&list), ("quicklist", 6, 75, 15));
        assert!(list.insert(b"1", b"w", false));
        assert_eq!(shape(&list), ("quicklist", 6, 78, 16));
        assert_eq!(list.remove(b"x", 0, false), 1);
        assert_eq!(list.remove(b"y", 0, true), 1);
        assert_eq!(shape(&list), ("quicklist", 6, 72, 14));
        list.delete_range(0, 2);
        list.delete_range(10, 2);
        assert_eq!(shape(&list), ("quicklist", 5, 55, 10));
        assert_eq!(contents(&list), numbers(2..=11));
        assert!(!list.insert(b"nothere", b"v", true));
    }

    #[test]
    fn a_large_element_gets_a_plain_node_and_leaves_it() {
        let fill = -2;
        let mut list = List::new();
        let small: Vec<Vec<u8>> = (0..2000).map(|i| format!("e{i:03}").into_bytes()).collect();
        push_all(&mut list, &refs(&small), End::Tail, fill);
        assert_eq!(shape(&list), ("quicklist", 2, 13014, 2000));
        let big = vec![b'B'; 9000];
        list.prepare_growth(big.len(), 1, fill);
        assert!(list.set(1000, &big));
        list.after_removal(fill);
        assert_eq!(shape(&list), ("quicklist", 3, 22007, 2000));
        assert_eq!(list.get(1000), Some(Item::Str(&big)));
        list.prepare_growth(5, 1, fill);
        assert!(list.set(1000, b"small"));
        list.after_removal(fill);
        assert_eq!(shape(&list), ("quicklist", 2, 13014, 2000));
        list.delete_range(0, 1500);
        list.after_removal(fill);
        assert_eq!(shape(&list), ("listpack", 0, 0, 500));
    }

    #[test]
    fn converts_at_the_byte_limit_and_back_below_half_of_it() {
        let fill = -2;
        let mut list = List::new();
        let kib = vec![b'k'; 1000];
        for _ in 0..8 {
            push_all(&mut list, &[&kib], End::Tail, fill);
        }
        assert_eq!(list.encoding_name(), "listpack");
        push_all(&mut list, &[&kib], End::Head, fill);
        assert_eq!(list.encoding_name(), "quicklist");
        // Five elements (about 5 KiB) are more than half the limit.
        while list.len() > 5 {
            list.pop(End::Head);
            list.after_removal(fill);
        }
        assert_eq!(list.encoding_name(), "quicklist");
        list.pop(End::Tail);
        list.after_removal(fill);
        assert_eq!(shape(&list), ("listpack", 0, 0, 4));
    }

    #[test]
    fn iterates_both_ways_from_any_position_across_nodes() {
        let fill = 3;
        let mut list = List::new();
        let values = numbers(1..=10);
        push_all(&mut list, &refs(&values), End::Tail, fill);
        push_all(&mut list, &[&vec![b'P'; 9000]], End::Tail, fill);
        push_all(&mut list, &[b"last"], End::Tail, fill);
        let mut all = values.clone();
        all.push(vec![b'P'; 9000]);
        all.push(b"last".to_vec());
        for start in 0..all.len() {
            let forward: Vec<Vec<u8>> = list.iter_from(start, false).map(|i| i.to_vec()).collect();
            assert_eq!(forward, all[start..]);
            let backward: Vec<Vec<u8>> = list.iter_from(start, true).map(|i| i.to_vec()).collect();
            let expected: Vec<Vec<u8>> = all[..=start].iter().rev().cloned().collect();
            assert_eq!(backward, expected);
            assert_eq!(list.get(start as i64).map(|i| i.to_vec()).as_ref(), Some(&all[start]));
        }
        assert_eq!(list.get(-1), Some(Item::Str(b"last")));
        assert_eq!(list.get(12), None);
        assert_eq!(list.get(-13), None);
        assert_eq!(list.get(i64::MIN), None);
        assert_eq!(list.iter_from(12, false).count(), 0);
    }

    #[test]
    fn pops_from_a_quicklist_hand_integers_back_as_integers() {
        let fill = 1;
        let mut list = List::new();
        push_all(&mut list, &[b"12", b"text"], End::Tail, fill);
        assert_eq!(list.encoding_name(), "quicklist");
        assert_eq!(list.pop(End::Head), Some(Popped::Int(12)));
        assert_eq!(list.pop(End::Head), Some(Popped::Bytes(b"text".to_vec())));
        assert_eq!(list.pop(End::Head), None);
        let mut small = List::new();
        push_all(&mut small, &[b"12"], End::Tail, -2);
        assert_eq!(small.pop(End::Tail), Some(Popped::Bytes(b"12".to_vec())));
        assert_eq!(Popped::Int(12).counted_len(), 0);
    }

    #[test]
    fn removes_matches_from_either_end_across_nodes() {
        let fill = 2;
        let mut list = List::new();
        let values: Vec<&[u8]> = vec![b"a", b"b", b"a", b"a", b"c", b"a", b"7", b"a"];
        push_all(&mut list, &values, End::Tail, fill);
        assert_eq!(list.remove(b"a", 2, true), 2);
        assert_eq!(contents(&list), [&b"a"[..], b"b", b"a", b"a", b"c", b"7"].map(<[u8]>::to_vec));
        assert_eq!(list.remove(b"a", 1, false), 1);
        assert_eq!(list.remove(b"07", 0, false), 0);
        assert_eq!(list.remove(b"7", 0, false), 1);
        assert_eq!(list.remove(b"a", 0, false), 2);
        assert_eq!(contents(&list), [b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn memory_stays_close_to_the_bytes_used() {
        let mut list = List::new();
        for i in 0..100_000 {
            list.prepare_growth(13, 1, -2);
            list.push(format!("value:{i:07}").as_bytes(), End::Tail);
        }
        let used: usize = list
            .quicklist_nodes()
            .map(|node| match node {
                NodeView::Packed(lp) => lp.total_bytes(),
                NodeView::Plain(element) => element.len(),
            })
            .sum();
        assert!(list.heap_size() < used + used / 10, "{} allocated for {used} used", list.heap_size());
    }

    #[test]
    fn a_small_list_is_one_pointer_to_its_listpack() {
        // One word, so a Value holds a list without a box of its own.
        assert_eq!(std::mem::size_of::<List>(), 8);
        let mut list = List::new();
        push_all(&mut list, &[b"a", b"b", b"c"], End::Tail, -2);
        let copy = list.clone();
        assert_eq!(list.pop(End::Head), Some(Popped::Bytes(b"a".to_vec())));
        assert_eq!(list.remove(b"zz", 0, false), 0);
        assert!(list.set(-1, b"z"));
        assert_eq!(contents(&copy), [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(contents(&list), [b"b".to_vec(), b"z".to_vec()]);
        // The listpack's bytes are all it allocates.
        assert_eq!(list.heap_size(), Listpack::from_items([&b"b"[..], b"z"]).total_bytes());
    }
}
