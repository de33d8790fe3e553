//! One node of a stream: a listpack laid out exactly as Valkey lays out
//! its stream nodes, so that RDB files and DUMP payloads can carry the
//! bytes as they are.
//!
//! The listpack opens with the master entry, whose field names let later
//! entries with the same fields store only their values:
//!
//! ```text
//! live-count | deleted-count | field-count | field-1 ... field-N | 0
//! ```
//!
//! Each entry follows as
//!
//! ```text
//! flags | ms-delta | seq-delta | [field-count | field-1 value-1 ...] | lp-count
//! flags | ms-delta | seq-delta | value-1 ... value-N               | lp-count   (SAME_FIELDS)
//! ```
//!
//! where the id is stored as its difference from the node's master id (the
//! node's key), and `lp-count` is the number of listpack elements the entry
//! used before it, so the node can be walked backwards from its end. The
//! master entry's closing 0 reads as such a count and marks where a
//! backward walk stops. Deleted entries stay in place with the DELETED
//! flag until their whole node goes.

use ferrokey_formats::listpack::{Item, Listpack};
use ferrokey_formats::rdb::StreamId;

/// The entry has been deleted (XDEL, XTRIM): iteration skips it.
pub const DELETED: i64 = 1;
/// The entry has the master entry's fields and stores only its values.
pub const SAME_FIELDS: i64 = 2;

/// A listpack element as an integer (counts, flags and deltas are always
/// stored as integers; a string is read as a number for robustness).
pub fn int_of(item: Item<'_>) -> i64 {
    match item {
        Item::Int(v) => v,
        Item::Str(s) => ferrokey_formats::resp::parse_i64(s).unwrap_or(0),
    }
}

fn push_int(lp: &mut Listpack, v: i64) {
    lp.push_back(itoa::Buffer::new().format(v).as_bytes());
}

fn replace_int(lp: &mut Listpack, at: usize, v: i64) {
    lp.replace_at(at, itoa::Buffer::new().format(v).as_bytes());
}

/// Moves `n` elements forward from `p`.
fn skip(lp: &Listpack, mut p: usize, n: usize) -> Option<usize> {
    for _ in 0..n {
        p = lp.next(p)?;
    }
    Some(p)
}

/// Moves `n` elements backward from `p`.
fn skip_back(lp: &Listpack, mut p: usize, n: usize) -> Option<usize> {
    for _ in 0..n {
        p = lp.prev(p)?;
    }
    Some(p)
}

/// Where the parts of a node's master entry are.
#[derive(Clone, Copy, Debug)]
pub struct Master {
    pub live: i64,
    pub deleted: i64,
    pub field_count: usize,
    /// Offset of the first master field name (of the terminator when none).
    pub fields_at: usize,
    /// Offset of the master entry's closing 0.
    pub terminator_at: usize,
}

impl Master {
    pub fn read(lp: &Listpack) -> Option<Master> {
        let live_at = lp.first()?;
        let deleted_at = lp.next(live_at)?;
        let count_at = lp.next(deleted_at)?;
        let field_count = int_of(lp.get(count_at)).max(0) as usize;
        let fields_at = lp.next(count_at)?;
        let terminator_at = skip(lp, fields_at, field_count)?;
        Some(Master {
            live: int_of(lp.get(live_at)),
            deleted: int_of(lp.get(deleted_at)),
            field_count,
            fields_at,
            terminator_at,
        })
    }
}

/// One entry of a node, as found in its listpack.
#[derive(Clone, Copy, Debug)]
pub struct RawEntry {
    pub id: StreamId,
    pub flags: i64,
    /// Offset of the flags element.
    pub at: usize,
    pub field_count: usize,
    /// Offset of the first field (or value, with SAME_FIELDS).
    pub fields_at: usize,
    /// Offset of the closing lp-count element.
    pub count_at: usize,
}

impl RawEntry {
    pub fn is_deleted(&self) -> bool {
        self.flags & DELETED != 0
    }

    pub fn same_fields(&self) -> bool {
        self.flags & SAME_FIELDS != 0
    }

    /// Reads the entry whose flags element is at `at`.
    pub fn read(lp: &Listpack, master_id: StreamId, master: &Master, at: usize) -> Option<RawEntry> {
        let flags = int_of(lp.get(at));
        let ms_at = lp.next(at)?;
        let seq_at = lp.next(ms_at)?;
        let id = StreamId {
            ms: master_id.ms.wrapping_add(int_of(lp.get(ms_at)) as u64),
            seq: master_id.seq.wrapping_add(int_of(lp.get(seq_at)) as u64),
        };
        let after_id = lp.next(seq_at)?;
        let (field_count, fields_at, elements) = if flags & SAME_FIELDS != 0 {
            (master.field_count, after_id, master.field_count)
        } else {
            let n = int_of(lp.get(after_id)).max(0) as usize;
            (n, lp.next(after_id)?, 2 * n)
        };
        let count_at = skip(lp, fields_at, elements)?;
        Some(RawEntry { id, flags, at, field_count, fields_at, count_at })
    }

    /// The entry whose lp-count element is at `count_at`, walking back;
    /// None at the master entry's terminator.
    pub fn read_back(lp: &Listpack, master_id: StreamId, master: &Master, count_at: usize) -> Option<RawEntry> {
        let used = int_of(lp.get(count_at));
        if used <= 0 {
            return None;
        }
        let at = skip_back(lp, count_at, used as usize)?;
        RawEntry::read(lp, master_id, master, at)
    }
}

/// Builds a node whose master entry takes the field names of `pairs`
/// (field, value, field, value...), holding that first entry.
pub fn new_node(id: StreamId, pairs: &[&[u8]]) -> Listpack {
    let mut lp = Listpack::new();
    let field_count = pairs.len() / 2;
    push_int(&mut lp, 1);
    push_int(&mut lp, 0);
    push_int(&mut lp, field_count as i64);
    for field in pairs.iter().step_by(2) {
        lp.push_back(field);
    }
    push_int(&mut lp, 0);
    push_entry(&mut lp, id, id, SAME_FIELDS, pairs);
    lp
}

/// Appends an entry to a node whose master id is `master_id`, counting it
/// live in the master entry.
pub fn append(lp: &mut Listpack, master_id: StreamId, id: StreamId, pairs: &[&[u8]]) {
    let Some(master) = Master::read(lp) else { return };
    let live_at = lp.first().unwrap_or(0);
    replace_int(lp, live_at, master.live + 1);
    // The count may have grown by a byte: read the master entry again.
    let Some(master) = Master::read(lp) else { return };
    let same = master.field_count == pairs.len() / 2 && {
        let mut p = Some(master.fields_at);
        pairs.iter().step_by(2).all(|field| match p {
            Some(at) => {
                // Compared as bytes, as Valkey does: "01" is not "1".
                let matches = lp.get(at).with_bytes(|name| name == *field);
                p = lp.next(at);
                matches
            }
            None => false,
        })
    };
    push_entry(lp, master_id, id, if same { SAME_FIELDS } else { 0 }, pairs);
}

fn push_entry(lp: &mut Listpack, master_id: StreamId, id: StreamId, flags: i64, pairs: &[&[u8]]) {
    let field_count = pairs.len() / 2;
    push_int(lp, flags);
    // Deltas are stored as signed 64-bit integers; they wrap back on reading.
    push_int(lp, id.ms.wrapping_sub(master_id.ms) as i64);
    push_int(lp, id.seq.wrapping_sub(master_id.seq) as i64);
    if flags & SAME_FIELDS != 0 {
        for value in pairs.iter().skip(1).step_by(2) {
            lp.push_back(value);
        }
        push_int(lp, field_count as i64 + 3);
    } else {
        push_int(lp, field_count as i64);
        for item in pairs {
            lp.push_back(item);
        }
        push_int(lp, 2 * field_count as i64 + 4);
    }
}

/// Flags the entry at `at` as deleted and updates the master counts.
/// Returns false when it was the node's last live entry: the caller then
/// drops the whole node instead.
pub fn mark_deleted(lp: &mut Listpack, entry: &RawEntry) -> bool {
    replace_int(lp, entry.at, entry.flags | DELETED);
    let Some(master) = Master::read(lp) else { return false };
    if master.live <= 1 {
        return false;
    }
    set_counts(lp, master.live - 1, master.deleted + 1);
    true
}

/// Rewrites the master entry's live and deleted counts.
pub fn set_counts(lp: &mut Listpack, live: i64, deleted: i64) {
    let Some(live_at) = lp.first() else { return };
    replace_int(lp, live_at, live);
    if let Some(deleted_at) = lp.next(live_at) {
        replace_int(lp, deleted_at, deleted);
    }
}

/// Sets the flags element of an entry (same width: flags are 0 to 3).
pub fn set_flags(lp: &mut Listpack, at: usize, flags: i64) {
    replace_int(lp, at, flags);
}

/// The id of the node's last entry, deleted or not (Valkey's trimming
/// decides on whole nodes by it).
pub fn last_id(lp: &Listpack, master_id: StreamId) -> Option<StreamId> {
    let master = Master::read(lp)?;
    RawEntry::read_back(lp, master_id, &master, lp.last()?).map(|e| e.id)
}

/// Walks a node's entries in either direction, deleted ones included.
pub struct NodeCursor<'a> {
    pub lp: &'a Listpack,
    pub master_id: StreamId,
    pub master: Master,
    /// Forward: the next entry's flags; backward: the next entry's lp-count.
    pos: Option<usize>,
    rev: bool,
}

impl<'a> NodeCursor<'a> {
    pub fn new(lp: &'a Listpack, master_id: StreamId, rev: bool) -> Option<NodeCursor<'a>> {
        let master = Master::read(lp)?;
        let pos = if rev { lp.last() } else { lp.next(master.terminator_at) };
        Some(NodeCursor { lp, master_id, master, pos, rev })
    }
}

impl Iterator for NodeCursor<'_> {
    type Item = RawEntry;

    fn next(&mut self) -> Option<RawEntry> {
        let pos = self.pos?;
        let entry = if self.rev {
            RawEntry::read_back(self.lp, self.master_id, &self.master, pos)
        } else {
            RawEntry::read(self.lp, self.master_id, &self.master, pos)
        };
        self.pos = entry.and_then(|e| if self.rev { self.lp.prev(e.at) } else { self.lp.next(e.count_at) });
        entry
    }
}

/// The field/value pairs of one entry.
pub struct Fields<'a> {
    lp: &'a Listpack,
    /// Next field name: in the master entry (SAME_FIELDS) or in the entry.
    field_at: Option<usize>,
    /// Next value, when names come from the master entry.
    value_at: Option<usize>,
    remaining: usize,
}

impl<'a> Fields<'a> {
    pub fn new(lp: &'a Listpack, master: &Master, entry: &RawEntry) -> Fields<'a> {
        if entry.same_fields() {
            Fields {
                lp,
                field_at: Some(master.fields_at),
                value_at: Some(entry.fields_at),
                remaining: entry.field_count,
            }
        } else {
            Fields { lp, field_at: Some(entry.fields_at), value_at: None, remaining: entry.field_count }
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (Item<'a>, Item<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let field_at = self.field_at?;
        let field = self.lp.get(field_at);
        let value = match self.value_at {
            Some(value_at) => {
                self.field_at = self.lp.next(field_at);
                self.value_at = self.lp.next(value_at);
                self.lp.get(value_at)
            }
            None => {
                let value_at = self.lp.next(field_at)?;
                self.field_at = self.lp.next(value_at);
                self.lp.get(value_at)
            }
        };
        Some((field, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Fields<'_> {}
