//! RDB files: a streaming reader and a writer ([`RdbWriter`], DUMP payloads in
//! [`dump`]).
//!
//! [`RdbReader`] reads any `BufRead` one item at a time ([`RdbItem`]): the
//! header, aux fields, database selection and size hints, function
//! libraries, keys with their values and metadata, and the end of file with
//! its CRC-64 footer. Nothing but the current key's value is held in memory.
//! [`load_all`] reads a whole file into an [`RdbFile`].
//!
//! Values are decoded to a format-level model ([`RdbValue`]) with the
//! encoding they had in the file ([`Encoding`]), so a server can pick its
//! in-memory representation. A server loading a file reads it with
//! [`RdbReader::next_load_item`] instead, which keeps the compact encodings
//! of current files (listpacks, intsets, quicklists of listpacks) as the
//! file stores them ([`CompactValue`]), for the server to adopt as they
//! are instead of rebuilding them element by element.
//!
//! Every embedded structure (ziplist, listpack, zipmap, intset, stream
//! listpacks and PELs) is validated completely: a corrupt or truncated file
//! yields an [`RdbError`] naming the byte offset, the key being read (when
//! known) and the reason, never a panic.
//!
//! What the reader refuses: module values and module aux data, the pre-GA
//! function opcode, and Redis 7.4's hash-field-expiry hashes (types 22-25),
//! each with an error naming the type, key and offset.

use crate::listpack::Listpack;

mod consts;
pub mod dump;
mod error;
pub mod packed;
mod reader;
mod source;
mod stream;
pub mod writer;

pub use consts::{
    is_supported_type, opcode, rdb_type, rdb_type_name, ENC_INT16, ENC_INT32, ENC_INT8, ENC_LZF, QUICKLIST_NODE_PACKED,
    QUICKLIST_NODE_PLAIN, RDB_VERSION_MAX, RDB_VERSION_VALKEY8,
};
pub use dump::{dump_payload, dump_payload_with, dump_value, write_dump_payload, DUMP_RDB_VERSION};
pub use error::{RdbError, RdbErrorKind};
pub use packed::IntsetMembers;
pub use reader::{
    decode_dump_payload, decode_object, load_all, load_all_from, DecodedObject, DumpPayload, RdbFile, RdbReader,
    ReaderOptions,
};
pub use stream::{Consumer, ConsumerGroup, PendingEntry, Stream, StreamEntry, StreamId};
pub use writer::{
    hash_listpack, intset_encode, list_nodes, payload_from_value, score_to_listpack_string, stream_nodes,
    stream_payload, write_file, zset_listpack, AuxInfo, EncodingLimits, KeyMeta, Payload, PayloadRef, QuicklistNode,
    RdbWriter, ReplAux, StreamConsumerPayload, StreamGroupPayload, StreamNack, StreamPayload, WriterOptions,
    VALKEY_VERSION,
};

/// How a string was stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringEncoding {
    /// As its bytes.
    Raw,
    /// As an 8/16/32-bit integer (RDB_ENC_INT8/16/32).
    Int,
    /// LZF-compressed (RDB_ENC_LZF).
    Lzf,
}

/// The encoding a value had in the file. Determined by the object type, and
/// for strings by how the value string was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A string value (type STRING).
    String(StringEncoding),
    /// LIST (1): one string per element.
    LinkedList,
    /// SET (2) or HASH (4): one string per member / field and value.
    Hashtable,
    /// ZSET (3) or ZSET_2 (5): member and score per element.
    Skiplist,
    /// HASH_ZIPMAP (9).
    Zipmap,
    /// LIST_ZIPLIST (10), ZSET_ZIPLIST (12), HASH_ZIPLIST (13).
    Ziplist,
    /// SET_INTSET (11); `width` is the element size in bytes (2, 4 or 8).
    Intset { width: u8 },
    /// HASH_LISTPACK (16), ZSET_LISTPACK (17), SET_LISTPACK (20).
    Listpack,
    /// LIST_QUICKLIST (14, ziplist nodes) or LIST_QUICKLIST_2 (18, listpack
    /// and plain nodes).
    Quicklist { nodes: u64, plain_nodes: u64 },
    /// STREAM_LISTPACKS (15, 19, 21).
    Stream,
}

/// A value, as the file holds it (element order as stored).
#[derive(Debug, Clone, PartialEq)]
pub enum RdbValue {
    String(Vec<u8>),
    /// Head to tail.
    List(Vec<Vec<u8>>),
    /// Members in file order (intset members as decimal strings).
    Set(Vec<Vec<u8>>),
    /// (member, score) in file order. Scores are never NaN (refused).
    SortedSet(Vec<(Vec<u8>, f64)>),
    /// (field, value) in file order.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    Stream(Box<Stream>),
}

impl RdbValue {
    /// The type name as the `TYPE` command shows it.
    pub fn type_name(&self) -> &'static str {
        match self {
            RdbValue::String(_) => "string",
            RdbValue::List(_) => "list",
            RdbValue::Set(_) => "set",
            RdbValue::SortedSet(_) => "zset",
            RdbValue::Hash(_) => "hash",
            RdbValue::Stream(_) => "stream",
        }
    }

    /// Number of elements (bytes for strings, entries for streams).
    pub fn len(&self) -> usize {
        match self {
            RdbValue::String(s) => s.len(),
            RdbValue::List(v) | RdbValue::Set(v) => v.len(),
            RdbValue::SortedSet(v) => v.len(),
            RdbValue::Hash(v) => v.len(),
            RdbValue::Stream(s) => s.entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A key read from the file, with its value and the metadata opcodes that
/// preceded it. The value is an [`RdbValue`], or with
/// [`RdbReader::next_load_item`] a [`LoadValue`].
#[derive(Debug, Clone, PartialEq)]
pub struct RdbKey<V = RdbValue> {
    /// Database number (from the last SELECTDB; 0 before any).
    pub db: u64,
    pub key: Vec<u8>,
    pub value: V,
    /// How the value was stored.
    pub encoding: Encoding,
    /// Absolute expire time, Unix ms (EXPIRETIME_MS, or EXPIRETIME seconds
    /// times 1000).
    pub expire_ms: Option<i64>,
    /// IDLE opcode: LRU idle time in seconds.
    pub lru_idle: Option<u64>,
    /// FREQ opcode: LFU counter.
    pub lfu_freq: Option<u8>,
    /// The object type byte.
    pub rdb_type: u8,
    /// Offset of the object type byte in the file.
    pub offset: u64,
}

impl<V> RdbKey<V> {
    /// The same key with its value transformed by `f`.
    pub fn map_value<W>(self, f: impl FnOnce(V) -> W) -> RdbKey<W> {
        RdbKey {
            db: self.db,
            key: self.key,
            value: f(self.value),
            encoding: self.encoding,
            expire_ms: self.expire_ms,
            lru_idle: self.lru_idle,
            lfu_freq: self.lfu_freq,
            rdb_type: self.rdb_type,
            offset: self.offset,
        }
    }

    /// True when the key has an expire time before `now_ms`: a primary
    /// loading the file drops such keys (Valkey: `expiretime < now`).
    pub fn is_expired(&self, now_ms: i64) -> bool {
        matches!(self.expire_ms, Some(t) if t < now_ms)
    }
}

/// A key's value as a server loading the file wants it
/// ([`RdbReader::next_load_item`]).
#[derive(Debug, Clone, PartialEq)]
pub enum LoadValue {
    /// Decoded element by element, as [`RdbReader::next_item`] gives it:
    /// strings, streams, the big encodings and the compact encodings of
    /// older files (zipmap, ziplist, quicklist of ziplists).
    Decoded(RdbValue),
    /// A compact encoding of the current format, kept as the file stores it.
    Compact(CompactValue),
}

/// A collection in the compact form the file stores it in (which is also
/// the in-memory form): a loader adopts these bytes instead of rebuilding
/// the collection element by element, as Valkey's loader does. Each was
/// checked enough that a server can use it as it is: the listpack or
/// intset structure completely (bounds, back-lengths, header, terminator,
/// count), no duplicate set members, hash fields or sorted set members, an
/// even number of entries for pairs, and sorted set scores that are numbers
/// (not NaN). None is empty.
#[derive(Debug, Clone, PartialEq)]
pub enum CompactValue {
    /// LIST_QUICKLIST_2: the nodes, head first (empty listpacks dropped).
    List(Vec<CompactListNode>),
    /// SET_INTSET: the members, ascending, in the width the file used.
    SetIntset(IntsetMembers),
    /// SET_LISTPACK: one entry per member.
    SetListpack(Listpack),
    /// ZSET_LISTPACK: member, score, member, score, ...
    ZSetListpack(Listpack),
    /// HASH_LISTPACK: field, value, field, value, ...
    HashListpack(Listpack),
}

/// A node of a LIST_QUICKLIST_2 value.
#[derive(Debug, Clone, PartialEq)]
pub enum CompactListNode {
    /// A listpack node (never empty).
    Packed(Listpack),
    /// A plain node: one element.
    Plain(Vec<u8>),
}

/// One item of [`RdbReader::next_load_item`]: a key, with its value in the
/// form a loader wants, or any other item (empty keys included) as
/// [`RdbReader::next_item`] gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadItem {
    /// Never [`RdbItem::Key`].
    Item(RdbItem),
    Key(RdbKey<LoadValue>),
}

/// A key whose collection is empty. Valkey skips these while loading (it
/// logs "empty keys skipped"); a checker may reject them.
#[derive(Debug, Clone, PartialEq)]
pub struct EmptyKey {
    pub db: u64,
    pub key: Vec<u8>,
    pub rdb_type: u8,
    pub expire_ms: Option<i64>,
    pub offset: u64,
}

/// What the file said about its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// RDB versions before 5 have no footer.
    Absent,
    /// The footer is zero: written with `rdbchecksum no`, nothing to check.
    Disabled,
    /// The footer matched the contents.
    Verified(u64),
    /// The footer was not compared ([`ReaderOptions::verify_checksum`] off).
    NotChecked(u64),
}

/// The magic a file starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Magic {
    /// `REDIS` + 4-digit version (Redis, Valkey 7/8).
    Redis,
    /// `VALKEY` + 3-digit version (Valkey 9 and later).
    Valkey,
}

/// One item of an RDB file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum RdbItem {
    /// Always first.
    Header {
        magic: Magic,
        version: u32,
    },
    /// AUX field (e.g. `redis-ver`, `ctime`, `lua` script backups).
    Aux {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    SelectDb {
        db: u64,
    },
    /// RESIZEDB: size hints for the current database.
    ResizeDb {
        db_size: u64,
        expires_size: u64,
    },
    /// Redis 7.4 SLOT_INFO (cluster mode): hints for one slot.
    SlotInfo {
        slot_id: u64,
        slot_size: u64,
        expires_slot_size: u64,
    },
    /// FUNCTION2: a function library's source code (starts with a
    /// `#!<engine> name=<library>` line; see [`parse_library_metadata`]).
    Function {
        code: Vec<u8>,
    },
    /// A key (including keys whose expire time has passed: see
    /// [`RdbKey::is_expired`]).
    Key(RdbKey),
    /// A key whose collection was empty (to be skipped).
    EmptyKey(EmptyKey),
    /// The end: the reader stops after the footer.
    Eof {
        checksum: Checksum,
    },
}

/// Engine and library name from the first line of a function library's code
/// (`#!lua name=mylib`). The engine is returned as written (Valkey matches it
/// case-insensitively and reports it upper-case, e.g. `LUA`).
pub fn parse_library_metadata(code: &[u8]) -> Result<(String, String), String> {
    if !code.starts_with(b"#!") {
        return Err("missing library metadata".into());
    }
    let nl = code.iter().position(|&b| b == b'\n').ok_or("invalid library metadata")?;
    let line = String::from_utf8_lossy(&code[2..nl]);
    let mut parts = line.split_ascii_whitespace();
    let engine = parts.next().ok_or("invalid library metadata")?.to_string();
    let mut name = None;
    for p in parts {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case("name=") {
            if name.is_some() {
                return Err("name argument given multiple times".into());
            }
            name = Some(p[5..].to_string());
        } else {
            return Err(format!("invalid metadata value given: {p}"));
        }
    }
    let name = name.ok_or("library name was not given")?;
    Ok((engine, name))
}

/// The escaping rule of the fixtures' expected files (and of error
/// messages): printable ASCII except backslash as is, backslash doubled,
/// every other byte as `\xHH` (lowercase).
pub fn escape_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                s.push_str("\\x");
                s.push(char::from_digit((c >> 4) as u32, 16).unwrap_or('0'));
                s.push(char::from_digit((c & 15) as u32, 16).unwrap_or('0'));
            }
        }
    }
    s
}
