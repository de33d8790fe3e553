//! RDB writing: a streaming writer that produces version 11 files byte for
//! byte as Valkey 8 does, the value model it writes ([`Payload`]), and the
//! conversion of the reader's decoded values ([`RdbValue`]) back into
//! payloads.
//!
//! # Layout written
//!
//! `REDIS0011`, the aux fields, the function libraries, then per non-empty
//! database `SELECTDB n`, `RESIZEDB keys expires` and its keys (each as
//! optional `EXPIRETIME_MS`, `IDLE`, `FREQ`, then the object type byte, the
//! key string and the value), and last `EOF` with the CRC-64 of every byte
//! before the footer (zero when checksums are off), little-endian.
//!
//! # Strings
//!
//! Every string (keys, values, aux fields, listpack blobs, stream node keys,
//! group and consumer names) follows Valkey's one rule:
//! * at most 11 bytes and the canonical decimal form of an integer that fits
//!   32 bits: stored as INT8, INT16 or INT32;
//! * else, with compression on and more than 20 bytes: LZF, when the
//!   compressor finds an encoding at least 5 bytes shorter (its output limit
//!   is the length minus 4);
//! * else the length and the bytes.
//!
//! The LZF compressor ([`crate::lzf::compress`]) reproduces liblzf 3.6 as Valkey
//! builds it (`HLOG` 16, `VERY_FAST`, no `ULTRA_FAST`), so compressed strings
//! come out identical to Valkey's. (Valkey leaves liblzf's hash table
//! uninitialised; in rare cases a stale slot left by an earlier call lets it
//! find a match a clean table does not. Both encodings are valid.)

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::consts::{
    opcode, rdb_type, ENC_INT16, ENC_INT32, ENC_INT8, ENC_LZF, QUICKLIST_NODE_PACKED, QUICKLIST_NODE_PLAIN,
    RDB_VERSION_VALKEY8,
};
use super::packed::parse_i64_strict;
use super::stream::{Stream, StreamEntry, StreamId};
use super::{Encoding, RdbFile, RdbKey, RdbValue};
use crate::crc64::Crc64;
use crate::listpack::Listpack;

/// The version Valkey 8.0.1 writes in its `valkey-ver` aux field.
pub const VALKEY_VERSION: &str = "8.0.1";

// ---------------------------------------------------------------------------
// LZF, as liblzf compresses
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Options and per-key metadata
// ---------------------------------------------------------------------------

/// Writer settings: Valkey's `rdbcompression` and `rdbchecksum` (both on by
/// default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// LZF-compress strings longer than 20 bytes when that saves 5 bytes.
    pub compression: bool,
    /// Write the CRC-64 footer (otherwise eight zero bytes).
    pub checksum: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { compression: true, checksum: true }
    }
}

/// What precedes a key's type byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyMeta {
    /// Absolute expire time, Unix ms (EXPIRETIME_MS).
    pub expire_ms: Option<i64>,
    /// LRU idle time in seconds (IDLE; Valkey writes it under an LRU
    /// `maxmemory-policy`).
    pub lru_idle_s: Option<u64>,
    /// LFU counter (FREQ; Valkey writes it under an LFU policy).
    pub lfu_freq: Option<u8>,
}

impl KeyMeta {
    pub fn expiring(expire_ms: Option<i64>) -> Self {
        KeyMeta { expire_ms, ..KeyMeta::default() }
    }
}

impl From<&RdbKey> for KeyMeta {
    fn from(k: &RdbKey) -> Self {
        KeyMeta { expire_ms: k.expire_ms, lru_idle_s: k.lru_idle, lfu_freq: k.lfu_freq }
    }
}

/// The replication aux fields Valkey adds when it saves for a replica or
/// with replication info (`repl-stream-db`, `repl-id`, `repl-offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplAux<'a> {
    pub stream_db: i64,
    pub repl_id: &'a [u8],
    pub offset: i64,
}

/// Values of Valkey's standard aux fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuxInfo<'a> {
    /// `ctime`: Unix seconds when the file was made.
    pub ctime: i64,
    /// `used-mem`: bytes of memory in use.
    pub used_mem: i64,
    /// `aof-base`: the file is the base of an AOF (RDB preamble).
    pub aof_base: bool,
    pub repl: Option<ReplAux<'a>>,
}

impl AuxInfo<'_> {
    /// `ctime` now, the other values zero / absent.
    pub fn now() -> AuxInfo<'static> {
        let ctime =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        AuxInfo { ctime, used_mem: 0, aof_base: false, repl: None }
    }
}

// ---------------------------------------------------------------------------
// The value model
// ---------------------------------------------------------------------------

/// One quicklist node of a list (RDB type LIST_QUICKLIST_2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuicklistNode<B = Vec<u8>> {
    /// Container PACKED: a listpack. Written by the string rule (so LZF when
    /// compression is on and it gains).
    Packed(B),
    /// Container PLAIN: one element, stored by the string rule.
    Plain(B),
    /// A node compressed in memory (`list-compress-depth`): `lzf` is the
    /// LZF form of `raw_len` bytes (a listpack, or a plain element when
    /// `plain`). Valkey writes these as LZF blobs whatever `rdbcompression`
    /// says.
    Compressed { plain: bool, lzf: B, raw_len: usize },
}

impl<B> QuicklistNode<B> {
    fn container(&self) -> u64 {
        match self {
            QuicklistNode::Packed(_) | QuicklistNode::Compressed { plain: false, .. } => QUICKLIST_NODE_PACKED,
            QuicklistNode::Plain(_) | QuicklistNode::Compressed { plain: true, .. } => QUICKLIST_NODE_PLAIN,
        }
    }
}

/// A pending entry of a group's PEL as stored: id, last delivery time and
/// delivery count (the owning consumer is given by the consumers' lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamNack {
    pub id: StreamId,
    pub delivery_time_ms: i64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConsumerPayload<B = Vec<u8>> {
    pub name: B,
    pub seen_time_ms: i64,
    /// -1 when the consumer never read.
    pub active_time_ms: i64,
    /// Ids of its pending entries (each must be in the group's PEL),
    /// ascending as Valkey writes them.
    pub pending: Vec<StreamId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamGroupPayload<B = Vec<u8>> {
    pub name: B,
    pub last_id: StreamId,
    /// `None`: unknown (written as -1).
    pub entries_read: Option<u64>,
    /// The group's PEL, ascending by id as Valkey writes it.
    pub pel: Vec<StreamNack>,
    /// Consumers, by name bytes as Valkey writes them.
    pub consumers: Vec<StreamConsumerPayload<B>>,
}

/// A stream as RDB type STREAM_LISTPACKS_3 stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPayload<B = Vec<u8>> {
    /// Listpack nodes, ascending by master id: (master entry id, listpack).
    pub nodes: Vec<(StreamId, B)>,
    /// Number of live entries.
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    /// Groups, by name bytes as Valkey writes them.
    pub groups: Vec<StreamGroupPayload<B>>,
}

/// A value as the writer stores it, in one of Valkey 8's encodings.
///
/// `B` is any byte container: `Vec<u8>` for owned payloads (what
/// [`payload_from_value`] builds), `&[u8]` to borrow from a server's data.
/// Element order is the order written, except for [`Payload::ZSet`].
#[derive(Debug, Clone, PartialEq)]
pub enum Payload<B = Vec<u8>> {
    /// STRING, by the string rule (integers and LZF as Valkey decides).
    String(B),
    /// STRING of an integer-encoded object (OBJ_ENCODING_INT): INT8/16/32
    /// when it fits, else its decimal digits.
    Int(i64),
    /// LIST_QUICKLIST_2. A listpack-encoded list is one `Packed` node.
    List(Vec<QuicklistNode<B>>),
    /// SET_INTSET: the intset blob (see [`intset_encode`]).
    SetIntset(B),
    /// SET_LISTPACK: the listpack blob.
    SetListpack(B),
    /// SET (hashtable): the members.
    Set(Vec<B>),
    /// HASH_LISTPACK: the listpack blob (field, value, field, value, ...).
    HashListpack(B),
    /// HASH (hashtable): (field, value) pairs.
    Hash(Vec<(B, B)>),
    /// ZSET_LISTPACK: the listpack blob (member, score, ... ascending).
    ZSetListpack(B),
    /// ZSET_2 (skiplist): (member, score) in the skiplist's ascending order
    /// (score, then member bytes). Written from the last to the first, as
    /// Valkey writes from the highest score to the lowest.
    ZSet(Vec<(B, f64)>),
    /// STREAM_LISTPACKS_3.
    Stream(Box<StreamPayload<B>>),
}

impl<B> Payload<B> {
    /// The object type byte written before the key.
    pub fn rdb_type(&self) -> u8 {
        match self {
            Payload::String(_) | Payload::Int(_) => rdb_type::STRING,
            Payload::List(_) => rdb_type::LIST_QUICKLIST_2,
            Payload::SetIntset(_) => rdb_type::SET_INTSET,
            Payload::SetListpack(_) => rdb_type::SET_LISTPACK,
            Payload::Set(_) => rdb_type::SET,
            Payload::HashListpack(_) => rdb_type::HASH_LISTPACK,
            Payload::Hash(_) => rdb_type::HASH,
            Payload::ZSetListpack(_) => rdb_type::ZSET_LISTPACK,
            Payload::ZSet(_) => rdb_type::ZSET_2,
            Payload::Stream(_) => rdb_type::STREAM_LISTPACKS_3,
        }
    }
}

/// A payload borrowing its bytes.
pub type PayloadRef<'a> = Payload<&'a [u8]>;

// ---------------------------------------------------------------------------
// The writer
// ---------------------------------------------------------------------------

/// The 1 to 5 bytes of an integer-encoded string, when `v` fits 32 bits.
fn int_string_encoding(v: i64, buf: &mut [u8; 5]) -> Option<usize> {
    if let Ok(b) = i8::try_from(v) {
        buf[0] = 0xC0 | ENC_INT8;
        buf[1] = b as u8;
        Some(2)
    } else if let Ok(h) = i16::try_from(v) {
        buf[0] = 0xC0 | ENC_INT16;
        buf[1..3].copy_from_slice(&h.to_le_bytes());
        Some(3)
    } else if let Ok(w) = i32::try_from(v) {
        buf[0] = 0xC0 | ENC_INT32;
        buf[1..5].copy_from_slice(&w.to_le_bytes());
        Some(5)
    } else {
        None
    }
}

/// Streams an RDB file to `W`, keeping a running CRC-64. Every method
/// writes its item at once; [`RdbWriter::finish`] writes the footer.
///
/// ```
/// use ferrokey_formats::rdb::{RdbWriter, WriterOptions, AuxInfo, KeyMeta, Payload};
/// let mut w = RdbWriter::new(Vec::new(), WriterOptions::default());
/// w.header().unwrap();
/// w.standard_aux(&AuxInfo::now()).unwrap();
/// w.select_db(0).unwrap();
/// w.resize_db(1, 0).unwrap();
/// w.key(&KeyMeta::default(), b"greeting", &Payload::String(&b"hello"[..])).unwrap();
/// let bytes = w.finish().unwrap();
/// assert!(bytes.starts_with(b"REDIS0011"));
/// ```
pub struct RdbWriter<W: Write> {
    inner: W,
    opts: WriterOptions,
    crc: Crc64,
    written: u64,
}

impl<W: Write> RdbWriter<W> {
    pub fn new(inner: W, opts: WriterOptions) -> Self {
        RdbWriter { inner, opts, crc: Crc64::new(), written: 0 }
    }

    pub fn options(&self) -> WriterOptions {
        self.opts
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// The CRC-64 of everything written so far.
    pub fn crc(&self) -> u64 {
        self.crc.value()
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer, without writing the footer (for DUMP payloads and
    /// callers that frame the data themselves).
    pub fn into_inner(self) -> W {
        self.inner
    }

    // -- primitives -------------------------------------------------------

    /// Bytes as they are.
    pub fn write_raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.inner.write_all(b)?;
        if self.opts.checksum {
            self.crc.update(b);
        }
        self.written += b.len() as u64;
        Ok(())
    }

    /// An opcode or object type byte.
    pub fn write_type(&mut self, t: u8) -> io::Result<()> {
        self.write_raw(&[t])
    }

    /// An RDB length: 6, 14, 32 or 64 bits.
    pub fn write_len(&mut self, n: u64) -> io::Result<()> {
        if n < 1 << 6 {
            self.write_raw(&[n as u8])
        } else if n < 1 << 14 {
            self.write_raw(&[0x40 | (n >> 8) as u8, n as u8])
        } else if n <= u32::MAX as u64 {
            let mut b = [0x80u8, 0, 0, 0, 0];
            b[1..].copy_from_slice(&(n as u32).to_be_bytes());
            self.write_raw(&b)
        } else {
            let mut b = [0x81u8, 0, 0, 0, 0, 0, 0, 0, 0];
            b[1..].copy_from_slice(&n.to_be_bytes());
            self.write_raw(&b)
        }
    }

    /// A string by Valkey's rule (see the module documentation).
    pub fn write_string(&mut self, s: &[u8]) -> io::Result<()> {
        if s.len() <= 11 {
            if let Some(v) = parse_i64_strict(s) {
                let mut buf = [0u8; 5];
                if let Some(n) = int_string_encoding(v, &mut buf) {
                    return self.write_raw(&buf[..n]);
                }
            }
        }
        if self.opts.compression && s.len() > 20 {
            if let Some(c) = crate::lzf::compress(s, s.len() - 4) {
                return self.write_lzf_blob(&c, s.len());
            }
        }
        self.write_plain_string(s)
    }

    /// A string as its length and bytes, never encoded.
    pub fn write_plain_string(&mut self, s: &[u8]) -> io::Result<()> {
        self.write_len(s.len() as u64)?;
        self.write_raw(s)
    }

    /// An integer as Valkey saves an integer-encoded string object.
    pub fn write_int_string(&mut self, v: i64) -> io::Result<()> {
        let mut buf = [0u8; 5];
        match int_string_encoding(v, &mut buf) {
            Some(n) => self.write_raw(&buf[..n]),
            None => self.write_plain_string(v.to_string().as_bytes()),
        }
    }

    /// An already compressed LZF string of `raw_len` bytes.
    pub fn write_lzf_blob(&mut self, compressed: &[u8], raw_len: usize) -> io::Result<()> {
        self.write_type(0xC0 | ENC_LZF)?;
        self.write_len(compressed.len() as u64)?;
        self.write_len(raw_len as u64)?;
        self.write_raw(compressed)
    }

    /// 8 bytes little-endian (expire times, stream times).
    pub fn write_millis(&mut self, ms: i64) -> io::Result<()> {
        self.write_raw(&ms.to_le_bytes())
    }

    /// A ZSET_2 score: IEEE-754 binary64, little-endian.
    pub fn write_binary_double(&mut self, v: f64) -> io::Result<()> {
        self.write_raw(&v.to_le_bytes())
    }

    // -- file items --------------------------------------------------------

    /// The magic and version: `REDIS0011`.
    pub fn header(&mut self) -> io::Result<()> {
        self.write_raw(format!("REDIS{RDB_VERSION_VALKEY8:04}").as_bytes())
    }

    /// An aux field (both strings by the string rule).
    pub fn aux(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.write_type(opcode::AUX)?;
        self.write_string(key)?;
        self.write_string(value)
    }

    /// An aux field with an integer value, written as its decimal string
    /// (so INT8/16/32 when it fits, like Valkey).
    pub fn aux_int(&mut self, key: &[u8], value: i64) -> io::Result<()> {
        self.aux(key, value.to_string().as_bytes())
    }

    /// Valkey's standard aux fields in its order: `valkey-ver`,
    /// `redis-bits`, `ctime`, `used-mem`, the replication fields when given,
    /// `aof-base`.
    pub fn standard_aux(&mut self, info: &AuxInfo<'_>) -> io::Result<()> {
        self.aux(b"valkey-ver", VALKEY_VERSION.as_bytes())?;
        self.aux_int(b"redis-bits", 64)?;
        self.aux_int(b"ctime", info.ctime)?;
        self.aux_int(b"used-mem", info.used_mem)?;
        if let Some(r) = info.repl {
            self.aux_int(b"repl-stream-db", r.stream_db)?;
            self.aux(b"repl-id", r.repl_id)?;
            self.aux_int(b"repl-offset", r.offset)?;
        }
        self.aux_int(b"aof-base", info.aof_base as i64)
    }

    /// A function library (FUNCTION2): its source code.
    pub fn function(&mut self, code: &[u8]) -> io::Result<()> {
        self.write_type(opcode::FUNCTION2)?;
        self.write_string(code)
    }

    pub fn select_db(&mut self, db: u64) -> io::Result<()> {
        self.write_type(opcode::SELECTDB)?;
        self.write_len(db)
    }

    /// RESIZEDB: number of keys in the database and of keys with an expire.
    pub fn resize_db(&mut self, keys: u64, expires: u64) -> io::Result<()> {
        self.write_type(opcode::RESIZEDB)?;
        self.write_len(keys)?;
        self.write_len(expires)
    }

    /// The metadata opcodes, the type byte and the key: what precedes a
    /// value. Use with [`RdbWriter::value`], or write a large value's body
    /// yourself with the primitives.
    pub fn key_header(&mut self, meta: &KeyMeta, rdb_type: u8, key: &[u8]) -> io::Result<()> {
        if let Some(t) = meta.expire_ms {
            self.write_type(opcode::EXPIRETIME_MS)?;
            self.write_millis(t)?;
        }
        if let Some(idle) = meta.lru_idle_s {
            self.write_type(opcode::IDLE)?;
            self.write_len(idle)?;
        }
        if let Some(freq) = meta.lfu_freq {
            self.write_type(opcode::FREQ)?;
            self.write_raw(&[freq])?;
        }
        self.write_type(rdb_type)?;
        self.write_string(key)
    }

    /// A whole key: metadata, type, key, value.
    pub fn key<B: AsRef<[u8]>>(&mut self, meta: &KeyMeta, key: &[u8], value: &Payload<B>) -> io::Result<()> {
        self.key_header(meta, value.rdb_type(), key)?;
        self.value(value)
    }

    /// A value's body (what follows the key; a DUMP payload's body after
    /// its type byte).
    pub fn value<B: AsRef<[u8]>>(&mut self, value: &Payload<B>) -> io::Result<()> {
        match value {
            Payload::String(s) => self.write_string(s.as_ref()),
            Payload::Int(v) => self.write_int_string(*v),
            Payload::List(nodes) => {
                self.write_len(nodes.len() as u64)?;
                for node in nodes {
                    self.write_len(node.container())?;
                    match node {
                        QuicklistNode::Packed(b) | QuicklistNode::Plain(b) => self.write_string(b.as_ref())?,
                        QuicklistNode::Compressed { lzf, raw_len, .. } => {
                            self.write_lzf_blob(lzf.as_ref(), *raw_len)?
                        }
                    }
                }
                Ok(())
            }
            Payload::SetIntset(b) | Payload::SetListpack(b) | Payload::HashListpack(b) | Payload::ZSetListpack(b) => {
                self.write_string(b.as_ref())
            }
            Payload::Set(members) => {
                self.write_len(members.len() as u64)?;
                for m in members {
                    self.write_string(m.as_ref())?;
                }
                Ok(())
            }
            Payload::Hash(pairs) => {
                self.write_len(pairs.len() as u64)?;
                for (f, v) in pairs {
                    self.write_string(f.as_ref())?;
                    self.write_string(v.as_ref())?;
                }
                Ok(())
            }
            Payload::ZSet(items) => {
                self.write_len(items.len() as u64)?;
                for (m, score) in items.iter().rev() {
                    self.write_string(m.as_ref())?;
                    self.write_binary_double(*score)?;
                }
                Ok(())
            }
            Payload::Stream(s) => self.write_stream(s),
        }
    }

    fn write_stream<B: AsRef<[u8]>>(&mut self, s: &StreamPayload<B>) -> io::Result<()> {
        self.write_len(s.nodes.len() as u64)?;
        for (master, lp) in &s.nodes {
            self.write_string(&master.to_be_bytes())?;
            self.write_string(lp.as_ref())?;
        }
        self.write_len(s.length)?;
        for id in [s.last_id, s.first_id, s.max_deleted_id] {
            self.write_len(id.ms)?;
            self.write_len(id.seq)?;
        }
        self.write_len(s.entries_added)?;
        self.write_len(s.groups.len() as u64)?;
        for g in &s.groups {
            self.write_string(g.name.as_ref())?;
            self.write_len(g.last_id.ms)?;
            self.write_len(g.last_id.seq)?;
            // Unknown is -1, which as a length is all ones.
            self.write_len(g.entries_read.unwrap_or(u64::MAX))?;
            self.write_len(g.pel.len() as u64)?;
            for nack in &g.pel {
                self.write_raw(&nack.id.to_be_bytes())?;
                self.write_millis(nack.delivery_time_ms)?;
                self.write_len(nack.delivery_count)?;
            }
            self.write_len(g.consumers.len() as u64)?;
            for c in &g.consumers {
                self.write_string(c.name.as_ref())?;
                self.write_millis(c.seen_time_ms)?;
                self.write_millis(c.active_time_ms)?;
                self.write_len(c.pending.len() as u64)?;
                for id in &c.pending {
                    self.write_raw(&id.to_be_bytes())?;
                }
            }
        }
        Ok(())
    }

    /// EOF and the footer (the CRC-64 of everything before it, or zero when
    /// checksums are off); flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_type(opcode::EOF)?;
        let crc = if self.opts.checksum { self.crc.value() } else { 0 };
        self.inner.write_all(&crc.to_le_bytes())?;
        self.written += 8;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

// ---------------------------------------------------------------------------
// Building encodings
// ---------------------------------------------------------------------------

/// Encoding thresholds (Valkey's configuration names). The default is
/// Valkey 8.0.1's: note its `hash-max-listpack-entries` is 512.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodingLimits {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub set_max_listpack_entries: usize,
    pub set_max_listpack_value: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    /// `list-max-listpack-size`: negative = node byte limit (-1 4 KiB, -2
    /// 8 KiB, ... -5 64 KiB), positive = entries per node.
    pub list_max_listpack_size: i64,
    pub stream_node_max_bytes: usize,
    /// 0 = no limit.
    pub stream_node_max_entries: u64,
}

impl EncodingLimits {
    /// Valkey 8.0.1's defaults.
    pub const VALKEY_8: EncodingLimits = EncodingLimits {
        hash_max_listpack_entries: 512,
        hash_max_listpack_value: 64,
        set_max_intset_entries: 512,
        set_max_listpack_entries: 128,
        set_max_listpack_value: 64,
        zset_max_listpack_entries: 128,
        zset_max_listpack_value: 64,
        list_max_listpack_size: -2,
        stream_node_max_bytes: 4096,
        stream_node_max_entries: 100,
    };
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits::VALKEY_8
    }
}

/// An intset blob as Valkey lays it out: element width in bytes (u32 LE:
/// 2, 4 or 8), count (u32 LE), then the values ascending, little-endian.
/// The width is the smallest that holds every value, but at least
/// `min_width` (an intset never shrinks: a set that once held a large value
/// keeps its width). Duplicates are dropped.
pub fn intset_encode(values: &[i64], min_width: u8) -> Vec<u8> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let needed = |v: i64| -> u32 {
        if i16::try_from(v).is_ok() {
            2
        } else if i32::try_from(v).is_ok() {
            4
        } else {
            8
        }
    };
    let width = sorted.iter().map(|&v| needed(v)).max().unwrap_or(2).max(min_width as u32).min(8);
    let width: u32 = match width {
        0..=2 => 2,
        3..=4 => 4,
        _ => 8,
    };
    let mut out = Vec::with_capacity(8 + sorted.len() * width as usize);
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for v in sorted {
        match width {
            2 => out.extend_from_slice(&(v as i16).to_le_bytes()),
            4 => out.extend_from_slice(&(v as i32).to_le_bytes()),
            _ => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
    out
}

/// Node limits of a quicklist for `list-max-listpack-size` = `fill`:
/// (byte limit, entry limit).
fn quicklist_limits(fill: i64) -> (Option<usize>, Option<usize>) {
    const LEVELS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
    if fill >= 0 {
        (None, Some(if fill == 0 { 1 } else { fill as usize }))
    } else {
        let level = ((-fill) as u64 - 1).min(LEVELS.len() as u64 - 1) as usize;
        (Some(LEVELS[level]), None)
    }
}

/// Valkey's quicklistNodeExceedsLimit.
fn node_exceeds_limit(fill: i64, new_size: usize, new_count: usize) -> bool {
    const SAFETY_LIMIT: usize = 8192;
    match quicklist_limits(fill) {
        (Some(bytes), _) => new_size > bytes,
        (None, Some(count)) => new_size > SAFETY_LIMIT || new_count > count,
        (None, None) => false,
    }
}

/// Elements above this size get a PLAIN node of their own.
fn is_large_element(size: usize, fill: i64) -> bool {
    match quicklist_limits(fill) {
        (Some(bytes), _) => size > bytes,
        _ => size > 8192,
    }
}

/// The quicklist nodes Valkey 8 ends up with when a list is created by one
/// RPUSH of all of `items`: a single listpack when the listpack header plus
/// the elements' bytes stay within the `fill` limit, else quicklist nodes
/// filled up to the limit (node bytes + element + 8 must not exceed it) with
/// elements larger than the limit in PLAIN nodes of their own. (Lists built
/// by other command sequences can have other node boundaries; the content
/// is the same.)
pub fn list_nodes<T: AsRef<[u8]>>(items: &[T], fill: i64) -> Vec<QuicklistNode<Vec<u8>>> {
    if items.is_empty() {
        return Vec::new();
    }
    const EMPTY_LISTPACK: usize = 7;
    let raw_bytes: usize = items.iter().map(|i| i.as_ref().len()).sum();
    if !node_exceeds_limit(fill, EMPTY_LISTPACK + raw_bytes, items.len()) {
        return vec![QuicklistNode::Packed(Listpack::from_items(items.iter().map(|i| i.as_ref())).into_bytes())];
    }
    const OVERHEAD: usize = 8;
    let mut nodes: Vec<QuicklistNode<Vec<u8>>> = Vec::new();
    let mut tail: Option<Listpack> = None;
    for it in items {
        let b = it.as_ref();
        if is_large_element(b.len(), fill) {
            if let Some(t) = tail.take() {
                nodes.push(QuicklistNode::Packed(t.into_bytes()));
            }
            nodes.push(QuicklistNode::Plain(b.to_vec()));
            continue;
        }
        let fits = match &tail {
            Some(t) => !node_exceeds_limit(fill, t.total_bytes() + b.len() + OVERHEAD, t.len() + 1),
            None => false,
        };
        if !fits {
            if let Some(t) = tail.take() {
                nodes.push(QuicklistNode::Packed(t.into_bytes()));
            }
            tail = Some(Listpack::new());
        }
        if let Some(t) = tail.as_mut() {
            t.push_back(b);
        }
    }
    if let Some(t) = tail.take() {
        nodes.push(QuicklistNode::Packed(t.into_bytes()));
    }
    nodes
}

/// The text Valkey stores in a listpack for a score: the text it replies
/// with (integers within ±2^62 as integers, otherwise Grisu2 digits laid
/// out as fpconv_dtoa does), except that a negative zero is stored as 0.
pub fn score_to_listpack_string(v: f64) -> Vec<u8> {
    if v == 0.0 {
        return b"0".to_vec();
    }
    crate::double::format(v).as_bytes().to_vec()
}

fn zset_order<B: AsRef<[u8]>>(a: &(B, f64), b: &(B, f64)) -> std::cmp::Ordering {
    a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.0.as_ref().cmp(b.0.as_ref()))
}

/// A zset listpack of `items` (sorted here: ascending score, then member).
pub fn zset_listpack<B: AsRef<[u8]>>(items: &[(B, f64)]) -> Vec<u8> {
    let mut sorted: Vec<(&[u8], f64)> = items.iter().map(|(m, s)| (m.as_ref(), *s)).collect();
    sorted.sort_by(zset_order);
    let scores: Vec<Vec<u8>> = sorted.iter().map(|(_, s)| score_to_listpack_string(*s)).collect();
    let mut flat: Vec<&[u8]> = Vec::with_capacity(sorted.len() * 2);
    for ((m, _), s) in sorted.iter().zip(&scores) {
        flat.push(m);
        flat.push(s);
    }
    Listpack::from_items(flat).into_bytes()
}

/// A hash listpack of the pairs in their order.
pub fn hash_listpack<B: AsRef<[u8]>>(pairs: &[(B, B)]) -> Vec<u8> {
    let mut flat: Vec<&[u8]> = Vec::with_capacity(pairs.len() * 2);
    for (f, v) in pairs {
        flat.push(f.as_ref());
        flat.push(v.as_ref());
    }
    Listpack::from_items(flat).into_bytes()
}

/// The listpack nodes Valkey 8 holds after XADDing `entries` in order to
/// an empty stream: a new node when the tail node's bytes plus the new
/// entry's field and value bytes reach `max_bytes`, or it holds
/// `max_entries` entries; the node's master fields are its first entry's,
/// and entries with exactly those field names are stored "same fields".
/// (Deleted entries are not part of the model, so a stream that had
/// deletions gets fresh nodes.)
pub fn stream_nodes(entries: &[StreamEntry], max_bytes: usize, max_entries: u64) -> Vec<(StreamId, Vec<u8>)> {
    const MAX_LISTPACK: usize = 1 << 30;
    let node_max_bytes = if max_bytes == 0 || max_bytes > MAX_LISTPACK { MAX_LISTPACK } else { max_bytes };
    struct Node {
        master: StreamId,
        fields: Vec<Vec<u8>>,
        count: u64,
        lp: Listpack,
    }
    let mut done: Vec<(StreamId, Vec<u8>)> = Vec::new();
    let mut tail: Option<Node> = None;
    let num = |v: i64| v.to_string().into_bytes();
    for e in entries {
        let value_bytes: usize = e.fields.iter().map(|(f, v)| f.len() + v.len()).sum();
        if let Some(t) = &tail {
            let full =
                t.lp.total_bytes() + value_bytes >= node_max_bytes || (max_entries != 0 && t.count >= max_entries);
            if full {
                if let Some(t) = tail.take() {
                    done.push((t.master, t.lp.into_bytes()));
                }
            }
        }
        let same_fields = match tail.as_mut() {
            None => {
                let mut lp = Listpack::new();
                lp.push_back(b"1");
                lp.push_back(b"0");
                lp.push_back(&num(e.fields.len() as i64));
                for (f, _) in &e.fields {
                    lp.push_back(f);
                }
                lp.push_back(b"0");
                tail = Some(Node {
                    master: e.id,
                    fields: e.fields.iter().map(|(f, _)| f.clone()).collect(),
                    count: 1,
                    lp,
                });
                true
            }
            Some(t) => {
                t.count += 1;
                if let Some(first) = t.lp.first() {
                    t.lp.replace_at(first, &num(t.count as i64));
                }
                t.fields.len() == e.fields.len() && t.fields.iter().zip(&e.fields).all(|(a, (b, _))| a == b)
            }
        };
        let Some(t) = tail.as_mut() else { continue };
        let flags: i64 = if same_fields { 2 } else { 0 };
        t.lp.push_back(&num(flags));
        t.lp.push_back(&num(e.id.ms.wrapping_sub(t.master.ms) as i64));
        t.lp.push_back(&num(e.id.seq.wrapping_sub(t.master.seq) as i64));
        if !same_fields {
            t.lp.push_back(&num(e.fields.len() as i64));
        }
        for (f, v) in &e.fields {
            if !same_fields {
                t.lp.push_back(f);
            }
            t.lp.push_back(v);
        }
        let n = e.fields.len() as i64;
        let lp_count = if same_fields { n + 3 } else { 2 * n + 4 };
        t.lp.push_back(&num(lp_count));
    }
    if let Some(t) = tail {
        done.push((t.master, t.lp.into_bytes()));
    }
    done
}

/// A stream as Valkey 8 would write it after holding `s`: nodes rebuilt by
/// [`stream_nodes`], groups and consumers ordered by name, PELs by id.
pub fn stream_payload(s: &Stream, limits: &EncodingLimits) -> StreamPayload<Vec<u8>> {
    let mut groups: Vec<StreamGroupPayload<Vec<u8>>> = s
        .groups
        .iter()
        .map(|g| {
            let mut pel: Vec<StreamNack> = g
                .pending
                .iter()
                .map(|p| StreamNack {
                    id: p.id,
                    delivery_time_ms: p.delivery_time_ms,
                    delivery_count: p.delivery_count,
                })
                .collect();
            pel.sort_by_key(|n| n.id);
            let mut consumers: Vec<StreamConsumerPayload<Vec<u8>>> = g
                .consumers
                .iter()
                .map(|c| {
                    let mut pending = c.pending.clone();
                    pending.sort_unstable();
                    StreamConsumerPayload {
                        name: c.name.clone(),
                        seen_time_ms: c.seen_time_ms,
                        active_time_ms: c.active_time_ms,
                        pending,
                    }
                })
                .collect();
            consumers.sort_by(|a, b| a.name.cmp(&b.name));
            StreamGroupPayload {
                name: g.name.clone(),
                last_id: g.last_delivered_id,
                entries_read: g.entries_read,
                pel,
                consumers,
            }
        })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    StreamPayload {
        nodes: stream_nodes(&s.entries, limits.stream_node_max_bytes, limits.stream_node_max_entries),
        length: s.length,
        last_id: s.last_id,
        first_id: s.first_id,
        max_deleted_id: s.max_deleted_id,
        entries_added: s.entries_added,
        groups,
    }
}

/// The payload Valkey 8 would write for a value read from a file, with
/// the encoding it picks under `limits` (as when it loads the value):
///
/// * strings as they are;
/// * lists: [`list_nodes`] (as one RPUSH of all the elements builds it);
/// * sets: an intset when every member is a canonical 64-bit integer and
///   there are at most `set-max-intset-entries` (sorted; at least the width
///   `encoding` names when it is an intset), else a listpack in the given
///   order when within the set listpack limits, else a hashtable;
/// * hashes and sorted sets: a listpack within their limits (sorted sets
///   ordered by score then member), else a hashtable / skiplist;
/// * streams: [`stream_payload`].
pub fn payload_from_value(value: &RdbValue, encoding: Option<Encoding>, limits: &EncodingLimits) -> Payload<Vec<u8>> {
    match value {
        RdbValue::String(s) => Payload::String(s.clone()),
        RdbValue::List(items) => Payload::List(list_nodes(items, limits.list_max_listpack_size)),
        RdbValue::Set(members) => {
            let ints: Option<Vec<i64>> = members.iter().map(|m| parse_i64_strict(m)).collect();
            match ints {
                Some(ints) if members.len() <= limits.set_max_intset_entries => {
                    let min_width = match encoding {
                        Some(Encoding::Intset { width }) => width,
                        _ => 2,
                    };
                    Payload::SetIntset(intset_encode(&ints, min_width))
                }
                _ if members.len() <= limits.set_max_listpack_entries
                    && members.iter().all(|m| m.len() <= limits.set_max_listpack_value) =>
                {
                    Payload::SetListpack(Listpack::from_items(members.iter().map(|m| m.as_slice())).into_bytes())
                }
                _ => Payload::Set(members.clone()),
            }
        }
        RdbValue::Hash(pairs) => {
            let small = pairs.len() <= limits.hash_max_listpack_entries
                && pairs.iter().all(|(f, v)| {
                    f.len() <= limits.hash_max_listpack_value && v.len() <= limits.hash_max_listpack_value
                });
            if small {
                Payload::HashListpack(hash_listpack(pairs))
            } else {
                Payload::Hash(pairs.clone())
            }
        }
        RdbValue::SortedSet(items) => {
            let small = items.len() <= limits.zset_max_listpack_entries
                && items.iter().all(|(m, _)| m.len() <= limits.zset_max_listpack_value);
            if small {
                Payload::ZSetListpack(zset_listpack(items))
            } else {
                let mut sorted = items.clone();
                sorted.sort_by(zset_order);
                Payload::ZSet(sorted)
            }
        }
        RdbValue::Stream(s) => Payload::Stream(Box::new(stream_payload(s, limits))),
    }
}

/// Write a whole dataset read with the reader as a Valkey 8 file: header,
/// the standard aux fields of `aux`, the function libraries, then the keys
/// by database (ascending), each database with its SELECTDB and RESIZEDB.
/// Values are re-encoded by [`payload_from_value`]; keys whose collections
/// were empty are left out; keys already expired are written (a loading
/// primary drops them). Other aux fields of the source are not copied.
pub fn write_file<W: Write>(
    inner: W,
    file: &RdbFile,
    opts: WriterOptions,
    limits: &EncodingLimits,
    aux: &AuxInfo<'_>,
) -> io::Result<W> {
    let mut w = RdbWriter::new(inner, opts);
    w.header()?;
    w.standard_aux(aux)?;
    for code in &file.functions {
        w.function(code)?;
    }
    let mut dbs: BTreeMap<u64, Vec<&RdbKey>> = BTreeMap::new();
    for k in &file.keys {
        dbs.entry(k.db).or_default().push(k);
    }
    for (db, keys) in dbs {
        w.select_db(db)?;
        let expires = keys.iter().filter(|k| k.expire_ms.is_some()).count();
        w.resize_db(keys.len() as u64, expires as u64)?;
        for k in keys {
            let payload = payload_from_value(&k.value, Some(k.encoding), limits);
            w.key(&KeyMeta::from(k), &k.key, &payload)?;
        }
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Runs of repeats between noise, so both branches are taken.
                if (i / 97) % 3 == 0 {
                    b'a' + (i % 5) as u8
                } else {
                    x as u8
                }
            })
            .collect()
    }

    #[test]
    fn lzf_output_decompresses_and_respects_the_limit() {
        let mut inputs: Vec<Vec<u8>> = (1..80).map(|n| noise(n, n as u32)).collect();
        inputs.push(vec![0u8; 100_000]);
        inputs.push(noise(70_000, 9));
        inputs.push(b"abcabcabcabcabcabcabcabcabc".repeat(400));
        for input in &inputs {
            for limit in [1, 3, 4, input.len().saturating_sub(4), input.len(), input.len() * 2 + 16] {
                if let Some(c) = crate::lzf::compress(input, limit) {
                    assert!(c.len() <= limit);
                    assert_eq!(crate::lzf::decompress(&c, input.len()).unwrap(), *input);
                }
            }
        }
        // 21 identical bytes: liblzf never refers back to position 0, so two
        // literals, then 19 bytes from distance 1.
        assert_eq!(crate::lzf::compress(&[b'a'; 21], 17).unwrap(), vec![0x01, b'a', b'a', 0xe0, 0x0a, 0x00]);
        assert_eq!(crate::lzf::compress(b"", 10), None);
    }

    #[test]
    fn lengths_and_strings() {
        let enc = |f: &dyn Fn(&mut RdbWriter<Vec<u8>>)| {
            let mut w = RdbWriter::new(Vec::new(), WriterOptions::default());
            f(&mut w);
            w.into_inner()
        };
        assert_eq!(enc(&|w| w.write_len(63).unwrap()), [63]);
        assert_eq!(enc(&|w| w.write_len(64).unwrap()), [0x40, 64]);
        assert_eq!(enc(&|w| w.write_len(16384).unwrap()), [0x80, 0, 0, 0x40, 0]);
        assert_eq!(enc(&|w| w.write_len(u64::MAX).unwrap()), [0x81, 255, 255, 255, 255, 255, 255, 255, 255]);
        assert_eq!(enc(&|w| w.write_string(b"-128").unwrap()), [0xC0, 0x80]);
        assert_eq!(enc(&|w| w.write_string(b"300").unwrap()), [0xC1, 0x2C, 0x01]);
        assert_eq!(enc(&|w| w.write_string(b"-2147483648").unwrap()), [0xC2, 0, 0, 0, 0x80]);
        // Not canonical or too wide: as they are.
        for s in [&b"007"[..], b"-0", b"+1", b" 1", b"2147483648"] {
            let mut want = vec![s.len() as u8];
            want.extend_from_slice(s);
            assert_eq!(enc(&|w| w.write_string(s).unwrap()), want);
        }
        assert_eq!(enc(&|w| w.write_int_string(1 << 40).unwrap()), b"\x0d1099511627776");
        // 20 bytes are never compressed, 21 are.
        assert_eq!(enc(&|w| w.write_string(&[b'a'; 20]).unwrap())[0], 20);
        assert_eq!(enc(&|w| w.write_string(&[b'a'; 21]).unwrap())[..3], [0xC3, 6, 21]);
    }

    #[test]
    fn intsets() {
        assert_eq!(intset_encode(&[3, 1, 2, 2], 2), [2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0]);
        assert_eq!(&intset_encode(&[70000], 2)[..8], [4, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&intset_encode(&[1], 8)[..4], [8, 0, 0, 0]);
        assert_eq!(intset_encode(&[-1], 2)[8..], [0xff, 0xff]);
    }

    #[test]
    fn list_node_splitting() {
        let small: Vec<Vec<u8>> = (0..10).map(|i| format!("e{i}").into_bytes()).collect();
        assert_eq!(list_nodes(&small, -2).len(), 1);
        let many: Vec<Vec<u8>> = (0..2000).map(|i| format!("element{i:06}").into_bytes()).collect();
        let nodes = list_nodes(&many, -2);
        assert!(nodes.len() > 1);
        for n in &nodes {
            let QuicklistNode::Packed(b) = n else { panic!() };
            assert!(b.len() <= 8192);
        }
        let with_big = vec![b"a".to_vec(), vec![b'x'; 9000], b"b".to_vec()];
        let nodes = list_nodes(&with_big, -2);
        assert!(matches!(
            nodes.as_slice(),
            [QuicklistNode::Packed(_), QuicklistNode::Plain(_), QuicklistNode::Packed(_)]
        ));
        // Count-limited fill.
        assert_eq!(list_nodes(&small, 3).len(), 4);
    }
}
