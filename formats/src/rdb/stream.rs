//! Streams: the value model and the decoding of RDB types
//! STREAM_LISTPACKS (15), _2 (19) and _3 (21).
//!
//! On disk a stream is a list of (node key, listpack) pairs. The node key is
//! the 16-byte big-endian "master" id; the listpack starts with a master
//! entry (live count, deleted count, field count, field names, a 0) and then
//! holds entries whose ids are deltas from the master id, each ending with
//! the number of listpack elements it used. Then come the stream metadata
//! and the consumer groups with their pending entries lists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::BufRead;

use super::consts::rdb_type;
use super::error::RdbError;
use super::packed::{listpack_entries, Packed};
use super::source::Source;

/// A stream entry id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    pub fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The 16-byte big-endian form used as node keys and in PELs.
    pub fn from_be_bytes(b: &[u8; 16]) -> Self {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&b[..8]);
        seq.copy_from_slice(&b[8..]);
        StreamId { ms: u64::from_be_bytes(ms), seq: u64::from_be_bytes(seq) }
    }

    pub fn to_be_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    pub fn is_zero(self) -> bool {
        self.ms == 0 && self.seq == 0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One live entry: its id and its field/value pairs in order.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: StreamId,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A pending entry of a consumer group (an entry delivered, not yet acked).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEntry {
    pub id: StreamId,
    /// The consumer that owns it.
    pub consumer: Vec<u8>,
    /// Last delivery time, Unix ms.
    pub delivery_time_ms: i64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    pub name: Vec<u8>,
    /// Unix ms of the consumer's last interaction.
    pub seen_time_ms: i64,
    /// Unix ms of its last successful read (-1: never). For type
    /// STREAM_LISTPACKS(_2) files, which do not store it, equal to
    /// `seen_time_ms` (as Valkey does).
    pub active_time_ms: i64,
    /// Ids of its pending entries, ascending.
    pub pending: Vec<StreamId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerGroup {
    pub name: Vec<u8>,
    pub last_delivered_id: StreamId,
    /// Logical read counter; `None` when unknown (stored as -1).
    pub entries_read: Option<u64>,
    /// The group's PEL, ascending by id.
    pub pending: Vec<PendingEntry>,
    /// Consumers in file order.
    pub consumers: Vec<Consumer>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    /// Live entries, ascending by id.
    pub entries: Vec<StreamEntry>,
    /// Number of live entries as stored (equals `entries.len()`).
    pub length: u64,
    pub last_id: StreamId,
    /// Recorded first entry id (0-0 for an empty stream).
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    /// Groups in file order.
    pub groups: Vec<ConsumerGroup>,
    /// Number of listpack nodes in the file (information).
    pub listpack_nodes: usize,
}

/// Decode the entries of one stream listpack node.
fn decode_node(master: StreamId, lp: &[u8], out: &mut Vec<StreamEntry>) -> Result<(), String> {
    let items = listpack_entries(lp)?;
    let mut i = 0usize;
    let int_at = |i: usize, what: &str| -> Result<i64, String> {
        items
            .get(i)
            .ok_or_else(|| format!("stream listpack ends before its {what}"))?
            .as_int()
            .ok_or_else(|| format!("stream listpack {what} is not an integer"))
    };
    let bytes_at = |i: usize, what: &str| -> Result<Packed<'_>, String> {
        items.get(i).copied().ok_or_else(|| format!("stream listpack ends before its {what}"))
    };
    if items.is_empty() {
        return Err("empty listpack inside stream".into());
    }
    let live = int_at(i, "entry count")?;
    let deleted = int_at(i + 1, "deleted count")?;
    let master_fields = int_at(i + 2, "master field count")?;
    i += 3;
    if live < 0 || deleted < 0 || master_fields < 0 {
        return Err("stream listpack master entry has a negative count".into());
    }
    let master_fields = master_fields as usize;
    if master_fields > items.len() {
        return Err("stream listpack master field count exceeds its size".into());
    }
    let mut names = Vec::with_capacity(master_fields);
    for _ in 0..master_fields {
        names.push(bytes_at(i, "master field name")?);
        i += 1;
    }
    if int_at(i, "master terminator")? != 0 {
        return Err("stream listpack master entry does not end with 0".into());
    }
    i += 1;
    let total = (live as u64).saturating_add(deleted as u64);
    let mut seen_live = 0u64;
    let mut seen = 0u64;
    while seen < total {
        let start = i;
        let flags = int_at(i, "entry flags")?;
        let ms_delta = int_at(i + 1, "entry id")?;
        let seq_delta = int_at(i + 2, "entry id")?;
        i += 3;
        let same_fields = flags & 2 != 0;
        let deleted_flag = flags & 1 != 0;
        let id =
            StreamId { ms: master.ms.wrapping_add(ms_delta as u64), seq: master.seq.wrapping_add(seq_delta as u64) };
        let mut fields = Vec::new();
        if same_fields {
            for name in &names {
                let v = bytes_at(i, "entry value")?;
                i += 1;
                if !deleted_flag {
                    fields.push((name.to_bytes(), v.to_bytes()));
                }
            }
        } else {
            let n = int_at(i, "entry field count")?;
            i += 1;
            if n < 0 || n as u64 > items.len() as u64 {
                return Err("stream entry field count out of range".into());
            }
            for _ in 0..n {
                let f = bytes_at(i, "entry field")?;
                let v = bytes_at(i + 1, "entry value")?;
                i += 2;
                if !deleted_flag {
                    fields.push((f.to_bytes(), v.to_bytes()));
                }
            }
        }
        let lp_count = int_at(i, "entry element count")?;
        let used = (i - start) as i64;
        if lp_count != used {
            return Err(format!("stream entry element count {lp_count} should be {used}"));
        }
        i += 1;
        if !deleted_flag {
            out.push(StreamEntry { id, fields });
            seen_live += 1;
        }
        seen += 1;
    }
    if i != items.len() {
        return Err("stream listpack holds more elements than its entries use".into());
    }
    if seen_live != live as u64 {
        return Err(format!("stream listpack master entry says {live} live entries, it holds {seen_live}"));
    }
    Ok(())
}

/// Valkey's estimate of a group's read counter for files that do not store
/// it (type STREAM_LISTPACKS): `None` when it can't be known.
fn estimate_entries_read(s: &Stream, id: StreamId) -> Option<u64> {
    if s.entries_added == 0 {
        return Some(0);
    }
    if s.length == 0 && id <= s.last_id {
        return Some(s.entries_added);
    }
    if id == s.last_id {
        return Some(s.entries_added);
    }
    if id > s.last_id {
        return None;
    }
    if s.max_deleted_id.is_zero() || s.max_deleted_id < s.first_id {
        if id < s.first_id {
            return s.entries_added.checked_sub(s.length);
        }
        if id == s.first_id {
            return s.entries_added.checked_sub(s.length).and_then(|v| v.checked_add(1));
        }
    }
    None
}

/// Read a stream value (after its key) of type `t`.
pub(crate) fn read_stream<R: BufRead>(src: &mut Source<R>, t: u8) -> Result<Stream, RdbError> {
    let mut s = Stream::default();
    let nodes = src.read_len()?;
    let mut by_master: BTreeMap<StreamId, Vec<StreamEntry>> = BTreeMap::new();
    for _ in 0..nodes {
        let key_at = src.pos();
        let node_key = src.read_string()?;
        let node_key: [u8; 16] = node_key.as_slice().try_into().map_err(|_| {
            RdbError::corrupt(key_at, format!("stream node key of {} bytes is not a stream id", node_key.len()))
        })?;
        let master = StreamId::from_be_bytes(&node_key);
        let lp_at = src.pos();
        let lp = src.read_string()?;
        let mut entries = Vec::new();
        decode_node(master, &lp, &mut entries)
            .map_err(|e| RdbError::corrupt(lp_at, format!("stream listpack integrity check failed: {e}")))?;
        if by_master.insert(master, entries).is_some() {
            return Err(RdbError::corrupt(key_at, format!("stream node {master} appears twice")));
        }
        s.listpack_nodes += 1;
    }
    for (_, mut entries) in by_master {
        s.entries.append(&mut entries);
    }
    let meta_at = src.pos();
    s.length = src.read_len()?;
    s.last_id = StreamId::new(src.read_len()?, src.read_len()?);
    if t >= rdb_type::STREAM_LISTPACKS_2 {
        s.first_id = StreamId::new(src.read_len()?, src.read_len()?);
        s.max_deleted_id = StreamId::new(src.read_len()?, src.read_len()?);
        s.entries_added = src.read_len()?;
    } else {
        s.max_deleted_id = StreamId::ZERO;
        s.entries_added = s.length;
        // Valkey derives it from the first live entry; with none it uses the
        // largest possible id.
        s.first_id = s.entries.first().map(|e| e.id).unwrap_or(StreamId::new(u64::MAX, u64::MAX));
    }
    if s.length != s.entries.len() as u64 {
        return Err(RdbError::corrupt(
            meta_at,
            format!("stream length {} does not match its {} entries", s.length, s.entries.len()),
        ));
    }
    if s.entries.windows(2).any(|w| w[0].id >= w[1].id) {
        return Err(RdbError::corrupt(meta_at, "stream entries are not in ascending id order"));
    }
    let groups = src.read_len()?;
    let mut group_names: HashSet<Vec<u8>> = HashSet::new();
    for _ in 0..groups {
        let name_at = src.pos();
        let name = src.read_string()?;
        let last_delivered_id = StreamId::new(src.read_len()?, src.read_len()?);
        let entries_read = if t >= rdb_type::STREAM_LISTPACKS_2 {
            let v = src.read_len()?;
            if v == u64::MAX || v > i64::MAX as u64 {
                None
            } else {
                Some(v)
            }
        } else {
            estimate_entries_read(&s, last_delivered_id)
        };
        if !group_names.insert(name.clone()) {
            return Err(RdbError::corrupt(name_at, "duplicated consumer group name"));
        }
        // Global PEL: id -> (delivery time, count, owner index)
        let pel_len = src.read_len()?;
        let mut pel: BTreeMap<StreamId, (i64, u64, Option<usize>)> = BTreeMap::new();
        for _ in 0..pel_len {
            let at = src.pos();
            let id = StreamId::from_be_bytes(&src.read_array::<16>()?);
            let delivery_time = src.read_i64_le()?;
            let delivery_count = src.read_len()?;
            if pel.insert(id, (delivery_time, delivery_count, None)).is_some() {
                return Err(RdbError::corrupt(at, "duplicated global PEL entry in stream consumer group"));
            }
        }
        let n_consumers = src.read_len()?;
        let mut consumers: Vec<Consumer> = Vec::new();
        let mut consumer_names: HashMap<Vec<u8>, usize> = HashMap::new();
        for _ in 0..n_consumers {
            let cat = src.pos();
            let cname = src.read_string()?;
            if consumer_names.contains_key(&cname) {
                return Err(RdbError::corrupt(cat, "duplicate stream consumer"));
            }
            let seen_time_ms = src.read_i64_le()?;
            let active_time_ms = if t >= rdb_type::STREAM_LISTPACKS_3 { src.read_i64_le()? } else { seen_time_ms };
            let own = src.read_len()?;
            let idx = consumers.len();
            let mut pending = Vec::new();
            for _ in 0..own {
                let at = src.pos();
                let id = StreamId::from_be_bytes(&src.read_array::<16>()?);
                match pel.get_mut(&id) {
                    None => {
                        return Err(RdbError::corrupt(
                            at,
                            format!("consumer PEL entry {id} not found in the group PEL"),
                        ))
                    }
                    Some((_, _, owner)) => {
                        if *owner == Some(idx) {
                            return Err(RdbError::corrupt(at, format!("duplicated consumer PEL entry {id}")));
                        }
                        if owner.is_some() {
                            return Err(RdbError::corrupt(at, format!("PEL entry {id} claimed by two consumers")));
                        }
                        *owner = Some(idx);
                    }
                }
                pending.push(id);
            }
            pending.sort_unstable();
            consumer_names.insert(cname.clone(), idx);
            consumers.push(Consumer { name: cname, seen_time_ms, active_time_ms, pending });
        }
        let mut pending = Vec::with_capacity(pel.len());
        for (id, (delivery_time_ms, delivery_count, owner)) in pel {
            let Some(owner) = owner else {
                return Err(RdbError::corrupt(name_at, format!("stream group PEL entry {id} has no consumer")));
            };
            pending.push(PendingEntry {
                id,
                consumer: consumers[owner].name.clone(),
                delivery_time_ms,
                delivery_count,
            });
        }
        s.groups.push(ConsumerGroup { name, last_delivered_id, entries_read, pending, consumers });
    }
    Ok(s)
}
