//! Conversions between the server's values and the formats crate's RDB
//! model: a value read from a file or a RESTORE payload becomes a [`Value`]
//! in the encoding Valkey's loader would leave it in, and a [`Value`]
//! becomes the [`Payload`] Valkey would write for it (listpacks and
//! intsets as they are in memory, so files and DUMP payloads come out byte
//! for byte as Valkey's).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use ferrokey_formats::listpack::{Item, Listpack};
use ferrokey_formats::rdb::{
    self, hash_listpack, list_nodes, zset_listpack, Encoding, Payload, QuicklistNode, RdbValue, StreamConsumerPayload,
    StreamGroupPayload, StreamNack, StreamPayload,
};
use ferrokey_formats::resp::parse_i64;

use crate::config::Config;
use crate::types::hash::Hash;
use crate::types::list::{List, Node, NodeView};
use crate::types::set::{IntSet, Set, SetLimits};
use crate::types::stream::{Consumer, ConsumerGroup, NodeLimits, PendingEntry, Stream, UNKNOWN_ENTRIES_READ};
use crate::types::zset::{self, ZSet};
use crate::value::Value;

/// A payload borrowing what it can from the value it describes.
pub type ValuePayload<'a> = Payload<Cow<'a, [u8]>>;

/// The encoding thresholds in force when values are loaded.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub list_fill: i64,
    pub hash_entries: usize,
    pub hash_value: usize,
    pub set: SetLimits,
    pub zset: zset::Limits,
    pub stream_nodes: NodeLimits,
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        let number = |name: &str| -> i64 {
            config.get(&[name.as_bytes()]).into_iter().next().and_then(|(_, v)| v.parse().ok()).unwrap_or(0)
        };
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Limits {
            list_fill: config.list_max_listpack_size,
            hash_entries: size(config.hash_max_listpack_entries),
            hash_value: size(config.hash_max_listpack_value),
            set: SetLimits::from_config(config),
            zset: zset::Limits::from_config(config),
            stream_nodes: NodeLimits {
                max_bytes: number("stream-node-max-bytes").max(0) as u64,
                max_entries: number("stream-node-max-entries"),
            },
        }
    }
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// The value a loaded key holds, encoded as Valkey 8's loader encodes it:
/// compact encodings from the file are kept while within the limits that
/// loader checks, other values are built as it builds them.
pub fn value_from_rdb(value: RdbValue, encoding: Encoding, limits: &Limits) -> Result<Value, String> {
    Ok(match value {
        RdbValue::String(bytes) => Value::string(&bytes),
        RdbValue::List(items) => Value::List(list_from_rdb(&items, encoding, limits.list_fill)?),
        RdbValue::Set(members) => Value::Set(set_from_rdb(members, encoding, limits.set)?),
        RdbValue::Hash(pairs) => Value::Hash(hash_from_rdb(pairs, encoding, limits)?),
        RdbValue::SortedSet(items) => Value::ZSet(zset_from_rdb(items, encoding, limits.zset)?),
        RdbValue::Stream(stream) => Value::Stream(Box::new(stream_from_rdb(*stream, limits.stream_nodes)?)),
    })
}

fn checked_listpack(bytes: Vec<u8>) -> Result<Listpack, String> {
    Listpack::from_bytes(bytes).map_err(|e| format!("invalid listpack: {e:?}"))
}

/// A file's single listpack node is kept whole, as Valkey appends the
/// nodes it reads; other lists are pushed element by element, which gives
/// the node boundaries Valkey's pushes give. A quicklist that ends up as
/// one small node becomes a listpack, except for a list from a ziplist,
/// which Valkey leaves a quicklist.
fn list_from_rdb(items: &[Vec<u8>], encoding: Encoding, fill: i64) -> Result<List, String> {
    let nodes = match encoding {
        Encoding::Quicklist { nodes: 1, plain_nodes: 0 } => {
            vec![Node::Packed(Listpack::from_items(items.iter().map(Vec::as_slice)))]
        }
        _ => list_nodes(items, fill)
            .into_iter()
            .map(|node| match node {
                QuicklistNode::Packed(bytes) => checked_listpack(bytes).map(Node::Packed),
                QuicklistNode::Plain(bytes) => Ok(Node::Plain(bytes.into_boxed_slice())),
                QuicklistNode::Compressed { .. } => Err("unexpected compressed list node".to_string()),
            })
            .collect::<Result<Vec<Node>, String>>()?,
    };
    Ok(match encoding {
        Encoding::Ziplist => List::quicklist_from_nodes(nodes, fill),
        _ => List::from_nodes(nodes, fill),
    })
}

fn intset_of(values: &[i64], width: u8) -> IntSet {
    let needs = values
        .iter()
        .map(|&v| {
            if i16::try_from(v).is_ok() {
                2
            } else if i32::try_from(v).is_ok() {
                4
            } else {
                8
            }
        })
        .max()
        .unwrap_or(2)
        .max(width);
    match needs {
        0..=2 => IntSet::I16(values.iter().map(|&v| v as i16).collect()),
        3..=4 => IntSet::I32(values.iter().map(|&v| v as i32).collect()),
        _ => IntSet::I64(values.to_vec()),
    }
}

fn table_set(members: &[Vec<u8>], limits: SetLimits) -> Set {
    let mut set = Set::new_hashtable(members.len());
    for m in members {
        set.add(m, limits);
    }
    set
}

fn set_from_rdb(members: Vec<Vec<u8>>, encoding: Encoding, limits: SetLimits) -> Result<Set, String> {
    match encoding {
        Encoding::Intset { width } => {
            if members.len() > limits.intset_entries {
                return Ok(table_set(&members, limits));
            }
            let mut values: Vec<i64> = members
                .iter()
                .map(|m| parse_i64(m).ok_or("intset member is not an integer"))
                .collect::<Result<_, _>>()?;
            values.sort_unstable();
            values.dedup();
            Ok(Set::from_intset(intset_of(&values, width)))
        }
        Encoding::Listpack => {
            if members.len() > limits.listpack_entries {
                return Ok(table_set(&members, limits));
            }
            Ok(Set::from_listpack(Listpack::from_items(members.iter().map(Vec::as_slice))))
        }
        _ => Ok(set_from_members(&members, limits)),
    }
}

/// A set stored member by member (RDB type SET), encoded as Valkey's
/// loader does it: an intset while every member is an integer and the set
/// may be one; at the first other member a listpack (the integers so far,
/// sorted, then the rest in file order) while the listpack limits allow;
/// else a hash table.
fn set_from_members(members: &[Vec<u8>], limits: SetLimits) -> Set {
    if members.len() > limits.intset_entries {
        return table_set(members, limits);
    }
    let first_other = members.iter().position(|m| parse_i64(m).is_none());
    let Some(split) = first_other else {
        let mut values: Vec<i64> = members.iter().filter_map(|m| parse_i64(m)).collect();
        values.sort_unstable();
        values.dedup();
        return Set::from_intset(intset_of(&values, 2));
    };
    let longest_so_far = members[..=split].iter().map(Vec::len).max().unwrap_or(0);
    let becomes_listpack = split < limits.listpack_entries && longest_so_far <= limits.listpack_value;
    let stays_listpack =
        members.len() <= limits.listpack_entries && members[split..].iter().all(|m| m.len() <= limits.listpack_value);
    if !(becomes_listpack && stays_listpack) {
        return table_set(members, limits);
    }
    let mut ints: Vec<i64> = members[..split].iter().filter_map(|m| parse_i64(m)).collect();
    ints.sort_unstable();
    let mut order: Vec<Vec<u8>> = ints.iter().map(|v| v.to_string().into_bytes()).collect();
    order.extend(members[split..].iter().cloned());
    Set::from_listpack(Listpack::from_items(order.iter().map(Vec::as_slice)))
}

fn hash_from_rdb(pairs: Vec<(Vec<u8>, Vec<u8>)>, encoding: Encoding, limits: &Limits) -> Result<Hash, String> {
    let too_many = pairs.len() > limits.hash_entries;
    let too_long = || pairs.iter().any(|(f, v)| f.len() > limits.hash_value || v.len() > limits.hash_value);
    // Valkey keeps a listpack or ziplist from the file whatever its value
    // lengths; zipmaps and field-by-field hashes are checked for them too.
    let to_table = match encoding {
        Encoding::Listpack | Encoding::Ziplist => too_many,
        _ => too_many || too_long(),
    };
    if to_table {
        return Ok(Hash::from_table_pairs(pairs.into_iter()));
    }
    Ok(Hash::from_listpack(checked_listpack(hash_listpack(&pairs))?))
}

fn zset_from_rdb(items: Vec<(Vec<u8>, f64)>, encoding: Encoding, limits: zset::Limits) -> Result<ZSet, String> {
    match encoding {
        Encoding::Listpack | Encoding::Ziplist => {
            Ok(ZSet::from_listpack(checked_listpack(zset_listpack(&items))?, limits))
        }
        _ => Ok(ZSet::from_pairs(items, limits)),
    }
}

fn stream_from_rdb(s: rdb::Stream, node_limits: NodeLimits) -> Result<Stream, String> {
    let mut stream = Stream::default();
    for entry in &s.entries {
        let flat: Vec<&[u8]> = entry.fields.iter().flat_map(|(f, v)| [f.as_slice(), v.as_slice()]).collect();
        stream.entries.append(entry.id, &flat, node_limits);
    }
    stream.entries.last_id = s.last_id;
    stream.entries.first_id = s.first_id;
    stream.entries.max_deleted_id = s.max_deleted_id;
    stream.entries.entries_added = s.entries_added;
    for g in s.groups {
        let entries_read = g.entries_read.and_then(|n| i64::try_from(n).ok()).unwrap_or(UNKNOWN_ENTRIES_READ);
        let mut group = ConsumerGroup::new(g.last_delivered_id, entries_read);
        for c in g.consumers {
            let consumer = Consumer {
                seen_time: c.seen_time_ms,
                active_time: c.active_time_ms,
                pending: c.pending.iter().copied().collect::<BTreeSet<_>>(),
            };
            group.consumers.insert(Arc::from(c.name), consumer);
        }
        for p in g.pending {
            let owner =
                group.consumer_name(&p.consumer).ok_or_else(|| format!("stream PEL entry {} has no consumer", p.id))?;
            let entry =
                PendingEntry { consumer: owner, delivery_time: p.delivery_time_ms, delivery_count: p.delivery_count };
            group.pel.insert(p.id, entry);
        }
        stream.groups.insert(g.name.into_boxed_slice(), group);
    }
    Ok(stream)
}

// ---------------------------------------------------------------------------
// Saving
// ---------------------------------------------------------------------------

fn item_bytes(item: Item<'_>) -> Cow<'_, [u8]> {
    match item {
        Item::Str(s) => Cow::Borrowed(s),
        Item::Int(n) => Cow::Owned(itoa::Buffer::new().format(n).as_bytes().to_vec()),
    }
}

/// What Valkey writes for `value`: the in-memory compact encodings as they
/// are, the big ones element by element.
pub fn payload_of(value: &Value) -> ValuePayload<'_> {
    match value {
        Value::Int(n) => Payload::Int(*n),
        Value::EmbStr(b) => Payload::String(Cow::Borrowed(&b[..])),
        Value::RawStr(v) => Payload::String(Cow::Borrowed(v.as_slice())),
        Value::List(list) => match list.as_listpack() {
            Some(lp) => Payload::List(vec![QuicklistNode::Packed(Cow::Borrowed(lp.as_bytes()))]),
            None => Payload::List(
                list.quicklist_nodes()
                    .map(|node| match node {
                        NodeView::Packed(lp) => QuicklistNode::Packed(Cow::Borrowed(lp.as_bytes())),
                        NodeView::Plain(element) => QuicklistNode::Plain(Cow::Borrowed(element)),
                    })
                    .collect(),
            ),
        },
        Value::Set(set) => {
            if let Some(blob) = set.intset_blob() {
                Payload::SetIntset(Cow::Borrowed(blob))
            } else if let Some(lp) = set.listpack() {
                Payload::SetListpack(Cow::Borrowed(lp.as_bytes()))
            } else {
                Payload::Set(set.iter().map(item_bytes).collect())
            }
        }
        Value::Hash(hash) => match hash.as_listpack() {
            Some(lp) => Payload::HashListpack(Cow::Borrowed(lp.as_bytes())),
            None => Payload::Hash(hash.iter().map(|(f, v)| (item_bytes(f), item_bytes(v))).collect()),
        },
        Value::ZSet(zset) => match zset.as_listpack() {
            Some(lp) => Payload::ZSetListpack(Cow::Borrowed(lp.as_bytes())),
            None => Payload::ZSet(zset.iter().map(|(m, score)| (item_bytes(m), score)).collect()),
        },
        Value::Stream(stream) => Payload::Stream(Box::new(stream_payload(stream))),
    }
}

fn stream_payload(s: &Stream) -> StreamPayload<Cow<'_, [u8]>> {
    let groups = s
        .groups
        .iter()
        .map(|(name, g)| StreamGroupPayload {
            name: Cow::Borrowed(&name[..]),
            last_id: g.last_id,
            entries_read: u64::try_from(g.entries_read).ok(),
            pel: g
                .pel
                .iter()
                .map(|(id, p)| StreamNack {
                    id: *id,
                    delivery_time_ms: p.delivery_time,
                    delivery_count: p.delivery_count,
                })
                .collect(),
            consumers: g
                .consumers
                .iter()
                .map(|(cname, c)| StreamConsumerPayload {
                    name: Cow::Borrowed(&cname[..]),
                    seen_time_ms: c.seen_time,
                    active_time_ms: c.active_time,
                    pending: c.pending.iter().copied().collect(),
                })
                .collect(),
        })
        .collect();
    StreamPayload {
        nodes: s.entries.nodes().map(|(id, lp)| (*id, Cow::Borrowed(lp.as_bytes()))).collect(),
        length: s.entries.len(),
        last_id: s.entries.last_id,
        first_id: s.entries.first_id,
        max_deleted_id: s.entries.max_deleted_id,
        entries_added: s.entries.entries_added,
        groups,
    }
}
