//! The streaming RDB reader.

use std::collections::HashSet;
use std::fs::File;
use std::hash::Hash;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::consts::{opcode, rdb_type, rdb_type_name, QUICKLIST_NODE_PACKED, QUICKLIST_NODE_PLAIN, RDB_VERSION_MAX};
use super::error::{RdbError, RdbErrorKind};
use super::packed::{
    intset_members, intset_values, listpack_entries, parse_score, parse_stored_score, ziplist_entries, zipmap_pairs,
    Packed,
};
use super::source::Source;
use super::stream::read_stream;
use super::{
    Checksum, CompactListNode, CompactValue, EmptyKey, Encoding, LoadItem, LoadValue, Magic, RdbItem, RdbKey, RdbValue,
};
use crate::listpack::{Item, Listpack};
use crate::resp::parse_i64;

/// Reader settings.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Compare the CRC-64 footer with the contents (a zero footer is never
    /// compared). Default: true.
    pub verify_checksum: bool,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions { verify_checksum: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Body,
    Done,
    Failed,
}

/// Reads an RDB file item by item. See the module documentation.
///
/// ```no_run
/// use ferrokey_formats::rdb::{RdbReader, RdbItem};
/// let file = std::fs::File::open("dump.rdb").unwrap();
/// let mut reader = RdbReader::new(std::io::BufReader::new(file));
/// while let Some(item) = reader.next_item().unwrap() {
///     if let RdbItem::Key(k) = item {
///         println!("db {} key {:?}", k.db, k.key);
///     }
/// }
/// ```
pub struct RdbReader<R> {
    src: Source<R>,
    opts: ReaderOptions,
    state: State,
    magic: Magic,
    version: u32,
    db: u64,
    expire_ms: Option<i64>,
    lru_idle: Option<u64>,
    lfu_freq: Option<u8>,
}

impl<R: Read> RdbReader<BufReader<R>> {
    /// Wrap an unbuffered source in a 64 KiB buffer.
    pub fn from_read(inner: R) -> Self {
        RdbReader::new(BufReader::with_capacity(64 * 1024, inner))
    }
}

impl<R: BufRead> RdbReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_options(inner, ReaderOptions::default())
    }

    pub fn with_options(inner: R, opts: ReaderOptions) -> Self {
        RdbReader {
            src: Source::new(inner),
            opts,
            state: State::Start,
            magic: Magic::Redis,
            version: 0,
            db: 0,
            expire_ms: None,
            lru_idle: None,
            lfu_freq: None,
        }
    }

    /// The file's RDB version (0 before the header was read).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.src.pos()
    }

    /// The current database (last SELECTDB).
    pub fn current_db(&self) -> u64 {
        self.db
    }

    /// True once the EOF item has been returned.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The underlying reader. After the EOF item it is positioned right
    /// after the checksum footer (an AOF preamble's RESP tail starts there):
    /// the reader never consumes past what it parsed.
    pub fn into_inner(self) -> R {
        self.src.into_inner()
    }

    /// The next item, `Ok(None)` after EOF. After an error every further call
    /// returns `Ok(None)`.
    pub fn next_item(&mut self) -> Result<Option<RdbItem>, RdbError> {
        let item = match self.advance()? {
            None => return Ok(None),
            Some(Next::Item(item)) => item,
            Some(Next::Key { rdb_type, at }) => match self.read_key(rdb_type, at, decoded_object)? {
                KeyRead::Key(k) => RdbItem::Key(k),
                KeyRead::Empty(k) => RdbItem::EmptyKey(k),
            },
        };
        Ok(Some(item))
    }

    /// Like [`RdbReader::next_item`], but keys come with a [`LoadValue`]:
    /// collections in the compact encodings of current files are kept as
    /// the file stores them (checked as [`CompactValue`] says), for a
    /// server to adopt as its in-memory form.
    pub fn next_load_item(&mut self) -> Result<Option<LoadItem>, RdbError> {
        let item = match self.advance()? {
            None => return Ok(None),
            Some(Next::Item(item)) => LoadItem::Item(item),
            Some(Next::Key { rdb_type, at }) => match self.read_key(rdb_type, at, load_object)? {
                KeyRead::Key(k) => LoadItem::Key(k),
                KeyRead::Empty(k) => LoadItem::Item(RdbItem::EmptyKey(k)),
            },
        };
        Ok(Some(item))
    }

    /// Reads up to the next item, leaving a key's name and value to the
    /// caller, and keeps the reader's state: done after EOF, failed (and
    /// silent) after an error.
    fn advance(&mut self) -> Result<Option<Next>, RdbError> {
        let next = match self.state {
            State::Done | State::Failed => return Ok(None),
            State::Start => self.read_header().map(Next::Item),
            State::Body => self.read_body_item(),
        };
        match &next {
            Ok(Next::Item(RdbItem::Eof { .. })) => self.state = State::Done,
            Ok(_) => self.state = State::Body,
            Err(_) => self.state = State::Failed,
        }
        next.map(Some)
    }

    fn read_header(&mut self) -> Result<RdbItem, RdbError> {
        let head = self.src.read_array::<9>().map_err(|e| {
            if e.is_truncation() {
                RdbError::new(e.offset, RdbErrorKind::BadMagic)
            } else {
                e
            }
        })?;
        let digits = |d: &[u8]| -> Option<u32> {
            if d.iter().all(u8::is_ascii_digit) {
                std::str::from_utf8(d).ok()?.parse().ok()
            } else {
                None
            }
        };
        let (magic, version) = if &head[..5] == b"REDIS" {
            let v = digits(&head[5..]).ok_or_else(|| RdbError::new(5, RdbErrorKind::BadMagic))?;
            if !(1..=RDB_VERSION_MAX).contains(&v) {
                return Err(RdbError::new(9, RdbErrorKind::UnsupportedVersion(v)));
            }
            (Magic::Redis, v)
        } else if &head[..6] == b"VALKEY" {
            let v = digits(&head[6..]).ok_or_else(|| RdbError::new(6, RdbErrorKind::BadMagic))?;
            if v < 1 {
                return Err(RdbError::new(9, RdbErrorKind::UnsupportedVersion(v)));
            }
            (Magic::Valkey, v)
        } else {
            return Err(RdbError::new(0, RdbErrorKind::BadMagic));
        };
        self.magic = magic;
        self.version = version;
        Ok(RdbItem::Header { magic, version })
    }

    fn has_footer(&self) -> bool {
        self.magic == Magic::Valkey || self.version >= 5
    }

    fn read_body_item(&mut self) -> Result<Next, RdbError> {
        loop {
            let at = self.src.pos();
            let t = self.src.read_u8()?;
            match t {
                opcode::EXPIRETIME => {
                    let secs = self.src.read_i32_le()? as i64;
                    self.expire_ms = Some(secs * 1000);
                }
                opcode::EXPIRETIME_MS => {
                    self.expire_ms = Some(self.src.read_i64_le()?);
                }
                opcode::FREQ => {
                    self.lfu_freq = Some(self.src.read_u8()?);
                }
                opcode::IDLE => {
                    self.lru_idle = Some(self.src.read_len()?);
                }
                opcode::EOF => {
                    self.src.stop_hashing()?;
                    let computed = self.src.crc();
                    if !self.has_footer() {
                        return Ok(Next::Item(RdbItem::Eof { checksum: Checksum::Absent }));
                    }
                    let footer_at = self.src.pos();
                    let stored = u64::from_le_bytes(self.src.read_array::<8>()?);
                    let checksum = if stored == 0 {
                        Checksum::Disabled
                    } else if !self.opts.verify_checksum {
                        Checksum::NotChecked(stored)
                    } else if stored != computed {
                        return Err(RdbError::new(footer_at, RdbErrorKind::ChecksumMismatch { stored, computed }));
                    } else {
                        Checksum::Verified(stored)
                    };
                    return Ok(Next::Item(RdbItem::Eof { checksum }));
                }
                opcode::SELECTDB => {
                    let db = self.src.read_len()?;
                    self.db = db;
                    return Ok(Next::Item(RdbItem::SelectDb { db }));
                }
                opcode::RESIZEDB => {
                    let db_size = self.src.read_len()?;
                    let expires_size = self.src.read_len()?;
                    return Ok(Next::Item(RdbItem::ResizeDb { db_size, expires_size }));
                }
                opcode::SLOT_INFO => {
                    let slot_id = self.src.read_len()?;
                    let slot_size = self.src.read_len()?;
                    let expires_slot_size = self.src.read_len()?;
                    return Ok(Next::Item(RdbItem::SlotInfo { slot_id, slot_size, expires_slot_size }));
                }
                opcode::AUX => {
                    let key = self.src.read_string()?;
                    let value = self.src.read_string()?;
                    return Ok(Next::Item(RdbItem::Aux { key, value }));
                }
                opcode::FUNCTION2 => {
                    let code = self.src.read_string()?;
                    return Ok(Next::Item(RdbItem::Function { code }));
                }
                opcode::FUNCTION_PRE_GA => {
                    return Err(RdbError::new(
                        at,
                        RdbErrorKind::Unsupported("pre-release function format (opcode 246) not supported".into()),
                    ));
                }
                opcode::MODULE_AUX => {
                    let id = self.src.read_len()?;
                    return Err(RdbError::new(
                        at,
                        RdbErrorKind::Unsupported(format!(
                            "the file holds module aux data (module '{}'), which this server can't load",
                            module_name(id)
                        )),
                    ));
                }
                t if t <= rdb_type::HASH_LISTPACK_EX && t != 8 => {
                    return Ok(Next::Key { rdb_type: t, at });
                }
                _ => return Err(RdbError::new(at, RdbErrorKind::UnknownType(t))),
            }
        }
    }

    /// Reads a key's name and its value of type `t` (decoded by `decode`),
    /// with the metadata opcodes that preceded it.
    fn read_key<V>(&mut self, t: u8, at: u64, decode: ObjectReader<R, V>) -> Result<KeyRead<V>, RdbError> {
        let (key, decoded) = match read_name_and_value(&mut self.src, t, at, decode) {
            Ok(read) => read,
            Err(e) => {
                self.state = State::Failed;
                return Err(e);
            }
        };
        let expire_ms = self.expire_ms.take();
        let lru_idle = self.lru_idle.take();
        let lfu_freq = self.lfu_freq.take();
        Ok(match decoded {
            Some((value, encoding)) => KeyRead::Key(RdbKey {
                db: self.db,
                key,
                value,
                encoding,
                expire_ms,
                lru_idle,
                lfu_freq,
                rdb_type: t,
                offset: at,
            }),
            None => KeyRead::Empty(EmptyKey { db: self.db, key, rdb_type: t, expire_ms, offset: at }),
        })
    }
}

/// A key's name, then its value of type `t` decoded by `decode`; errors
/// name the type and, once it is known, the key.
fn read_name_and_value<R: BufRead, V>(
    src: &mut Source<R>,
    t: u8,
    at: u64,
    decode: ObjectReader<R, V>,
) -> Result<(Vec<u8>, Object<V>), RdbError> {
    let key = src.read_string().map_err(|mut e| {
        e.rdb_type = Some(t);
        e
    })?;
    let decoded = decode(src, t, at).map_err(|e| e.with_key(&key, t))?;
    Ok((key, decoded))
}

/// An object's value and the encoding it had; `None` for an empty
/// collection.
type Object<V> = Option<(V, Encoding)>;

/// Reads an object of the given type, whose type byte is at the given offset.
type ObjectReader<R, V> = fn(&mut Source<R>, u8, u64) -> Result<Object<V>, RdbError>;

/// What the reader met next.
enum Next {
    Item(RdbItem),
    /// A key of this type, whose type byte is at `at`; its name and value follow.
    Key {
        rdb_type: u8,
        at: u64,
    },
}

/// A key read, or a key whose collection was empty.
enum KeyRead<V> {
    Key(RdbKey<V>),
    Empty(EmptyKey),
}

impl<R: BufRead> Iterator for RdbReader<R> {
    type Item = Result<RdbItem, RdbError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

/// The 9-character module type name packed in a module id.
fn module_name(id: u64) -> String {
    const CSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut v = id >> 10;
    let mut name = [0u8; 9];
    for slot in name.iter_mut().rev() {
        *slot = CSET[(v & 63) as usize];
        v >>= 6;
    }
    String::from_utf8_lossy(&name).into_owned()
}

/// A decoded object value, or the report that its collection was empty.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodedObject {
    Value {
        value: RdbValue,
        encoding: Encoding,
    },
    /// An empty collection (Valkey skips such keys on load).
    Empty,
}

/// Decode one object value of type `rdb_type` from `bytes` (the layout of
/// a DUMP payload body, without its version and CRC trailer). Returns the
/// object and the number of bytes it used.
pub fn decode_object(rdb_type: u8, bytes: &[u8]) -> Result<(DecodedObject, usize), RdbError> {
    let mut src = Source::new(bytes);
    let obj = read_object(&mut src, rdb_type, 0)?;
    Ok((obj, src.pos() as usize))
}

/// A decoded DUMP / RESTORE payload.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpPayload {
    pub rdb_type: u8,
    /// The RDB version in the payload's footer.
    pub rdb_version: u16,
    pub object: DecodedObject,
}

/// Decode a DUMP payload: `<type byte> <object> <RDB version: 2 bytes LE>
/// <CRC-64 of everything before: 8 bytes LE>`. Like Valkey 8, refuses
/// versions above 11; the checksum is compared when `verify_checksum`.
pub fn decode_dump_payload(payload: &[u8], verify_checksum: bool) -> Result<DumpPayload, RdbError> {
    if payload.len() < 10 {
        return Err(RdbError::corrupt(0, "DUMP payload shorter than its footer"));
    }
    let footer = payload.len() - 10;
    let rdb_version = u16::from_le_bytes([payload[footer], payload[footer + 1]]);
    if rdb_version as u32 > super::consts::RDB_VERSION_VALKEY8 {
        return Err(RdbError::new(footer as u64, RdbErrorKind::UnsupportedVersion(rdb_version as u32)));
    }
    if verify_checksum {
        let mut w = [0u8; 8];
        w.copy_from_slice(&payload[footer + 2..]);
        let stored = u64::from_le_bytes(w);
        let computed = crate::crc64::crc64(&payload[..footer + 2]);
        if stored != computed {
            return Err(RdbError::new((footer + 2) as u64, RdbErrorKind::ChecksumMismatch { stored, computed }));
        }
    }
    let body = &payload[..footer];
    let Some(&rdb_type) = body.first() else {
        return Err(RdbError::new(0, RdbErrorKind::Truncated));
    };
    let mut src = Source::new(&body[1..]);
    let object = read_object(&mut src, rdb_type, 0).map_err(|mut e| {
        e.offset += 1;
        e.rdb_type.get_or_insert(rdb_type);
        e
    })?;
    Ok(DumpPayload { rdb_type, rdb_version, object })
}

fn value(value: RdbValue, encoding: Encoding) -> Result<DecodedObject, RdbError> {
    Ok(DecodedObject::Value { value, encoding })
}

/// Find a duplicate among `items` (by the projection `f`).
fn has_duplicate<'a, T, K: Eq + Hash + 'a>(items: &'a [T], f: impl Fn(&'a T) -> K) -> bool {
    let mut seen = HashSet::with_capacity(items.len());
    items.iter().any(|it| !seen.insert(f(it)))
}

fn blob_err(at: u64, what: &str, reason: String) -> RdbError {
    RdbError::corrupt(at, format!("{what} integrity check failed: {reason}"))
}

/// Pairs from a flat element list (ziplist / listpack hashes and zsets).
fn pairs<'a>(items: &[Packed<'a>], at: u64, what: &str) -> Result<Vec<(Packed<'a>, Packed<'a>)>, RdbError> {
    if !items.len().is_multiple_of(2) {
        return Err(blob_err(at, what, format!("odd number of elements ({})", items.len())));
    }
    Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

fn packed_score(p: Packed<'_>) -> Option<f64> {
    match p {
        Packed::Int(v) => Some(v as f64),
        Packed::Str(s) => parse_stored_score(s),
    }
}

/// Decodes the entries of a ziplist or listpack blob holding pairs (a
/// small zset or hash), naming it for errors ("hash ziplist", ...).
fn pair_blob_entries<'b>(
    blob: &'b [u8],
    ziplist: bool,
    kind: &str,
    at: u64,
) -> Result<(String, Vec<Packed<'b>>, Encoding), RdbError> {
    let (form, enc) = if ziplist { ("ziplist", Encoding::Ziplist) } else { ("listpack", Encoding::Listpack) };
    let what = format!("{kind} {form}");
    let decoded = if ziplist { ziplist_entries(blob) } else { listpack_entries(blob) };
    let elems = decoded.map_err(|e| blob_err(at, &what, e))?;
    Ok((what, elems, enc))
}

fn zset_from_pairs(items: &[Packed<'_>], at: u64, what: &str) -> Result<Vec<(Vec<u8>, f64)>, RdbError> {
    let mut out = Vec::with_capacity(items.len() / 2);
    for (m, s) in pairs(items, at, what)? {
        let score = packed_score(s).ok_or_else(|| blob_err(at, what, format!("score '{s}' is not a number")))?;
        if score.is_nan() {
            return Err(blob_err(at, what, "NaN score".into()));
        }
        out.push((m.to_bytes(), score));
    }
    if has_duplicate(&out, |(m, _)| m.as_slice()) {
        return Err(blob_err(at, what, "duplicate members".into()));
    }
    Ok(out)
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn hash_from_pairs(items: &[Packed<'_>], at: u64, what: &str) -> Result<Pairs, RdbError> {
    let out: Pairs = pairs(items, at, what)?.into_iter().map(|(f, v)| (f.to_bytes(), v.to_bytes())).collect();
    if has_duplicate(&out, |(f, _)| f.as_slice()) {
        return Err(blob_err(at, what, "duplicate fields".into()));
    }
    Ok(out)
}

/// Read an object of type `t` (the key has been read). `type_at` is the
/// offset of the type byte, used for refusals.
fn read_object<R: BufRead>(src: &mut Source<R>, t: u8, type_at: u64) -> Result<DecodedObject, RdbError> {
    use rdb_type::*;
    match t {
        STRING => {
            let (s, enc) = src.read_string_enc()?;
            value(RdbValue::String(s), Encoding::String(enc))
        }
        LIST => {
            let n = src.read_len()?;
            if n == 0 {
                return Ok(DecodedObject::Empty);
            }
            let mut items = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                items.push(src.read_string()?);
            }
            value(RdbValue::List(items), Encoding::LinkedList)
        }
        SET => {
            let at = src.pos();
            let n = src.read_len()?;
            if n == 0 {
                return Ok(DecodedObject::Empty);
            }
            let mut items = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                items.push(src.read_string()?);
            }
            if has_duplicate(&items, |m| m.as_slice()) {
                return Err(RdbError::corrupt(at, "duplicate set members detected"));
            }
            value(RdbValue::Set(items), Encoding::Hashtable)
        }
        ZSET | ZSET_2 => {
            let at = src.pos();
            let n = src.read_len()?;
            if n == 0 {
                return Ok(DecodedObject::Empty);
            }
            let mut items = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                let member = src.read_string()?;
                let score_at = src.pos();
                let score = if t == ZSET_2 { src.read_f64_le()? } else { read_string_score(src)? };
                if score.is_nan() {
                    return Err(RdbError::corrupt(score_at, "zset with NaN score detected"));
                }
                items.push((member, score));
            }
            if has_duplicate(&items, |(m, _)| m.as_slice()) {
                return Err(RdbError::corrupt(at, "duplicate zset members detected"));
            }
            value(RdbValue::SortedSet(items), Encoding::Skiplist)
        }
        HASH => {
            let at = src.pos();
            let n = src.read_len()?;
            if n == 0 {
                return Ok(DecodedObject::Empty);
            }
            let mut items = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                let f = src.read_string()?;
                let v = src.read_string()?;
                items.push((f, v));
            }
            if has_duplicate(&items, |(f, _)| f.as_slice()) {
                return Err(RdbError::corrupt(at, "duplicate hash fields detected"));
            }
            value(RdbValue::Hash(items), Encoding::Hashtable)
        }
        LIST_QUICKLIST | LIST_QUICKLIST_2 => {
            let n = src.read_len()?;
            if n == 0 {
                return Ok(DecodedObject::Empty);
            }
            let mut items = Vec::new();
            let mut plain_nodes = 0u64;
            for _ in 0..n {
                let container = if t == LIST_QUICKLIST_2 { read_node_container(src)? } else { QUICKLIST_NODE_PACKED };
                let at = src.pos();
                let data = read_node_data(src)?;
                if container == QUICKLIST_NODE_PLAIN {
                    plain_nodes += 1;
                    items.push(data);
                    continue;
                }
                let elems = if t == LIST_QUICKLIST_2 {
                    listpack_entries(&data).map_err(|e| blob_err(at, "quicklist listpack", e))?
                } else {
                    ziplist_entries(&data).map_err(|e| blob_err(at, "quicklist ziplist", e))?
                };
                // Empty nodes are skipped (Valkey does the same).
                items.extend(elems.into_iter().map(Packed::to_bytes));
            }
            if items.is_empty() {
                return Ok(DecodedObject::Empty);
            }
            value(RdbValue::List(items), Encoding::Quicklist { nodes: n, plain_nodes })
        }
        HASH_ZIPMAP => {
            let at = src.pos();
            let blob = src.read_string()?;
            let pairs = zipmap_pairs(&blob).map_err(|e| blob_err(at, "zipmap", e))?;
            if has_duplicate(&pairs, |(f, _)| *f) {
                return Err(blob_err(at, "zipmap", "duplicate fields".into()));
            }
            let items = pairs.into_iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            value(RdbValue::Hash(items), Encoding::Zipmap)
        }
        LIST_ZIPLIST => {
            let at = src.pos();
            let blob = src.read_string()?;
            let elems = ziplist_entries(&blob).map_err(|e| blob_err(at, "list ziplist", e))?;
            if elems.is_empty() {
                return Ok(DecodedObject::Empty);
            }
            value(RdbValue::List(elems.into_iter().map(Packed::to_bytes).collect()), Encoding::Ziplist)
        }
        SET_INTSET => {
            let at = src.pos();
            let blob = src.read_string()?;
            let (width, vals) = intset_values(&blob).map_err(|e| blob_err(at, "intset", e))?;
            let items = vals.into_iter().map(|v| v.to_string().into_bytes()).collect();
            value(RdbValue::Set(items), Encoding::Intset { width })
        }
        SET_LISTPACK => {
            let at = src.pos();
            let blob = src.read_string()?;
            let elems = listpack_entries(&blob).map_err(|e| blob_err(at, "set listpack", e))?;
            if elems.is_empty() {
                return Ok(DecodedObject::Empty);
            }
            let items: Vec<Vec<u8>> = elems.into_iter().map(Packed::to_bytes).collect();
            if has_duplicate(&items, |m| m.as_slice()) {
                return Err(blob_err(at, "set listpack", "duplicate members".into()));
            }
            value(RdbValue::Set(items), Encoding::Listpack)
        }
        ZSET_ZIPLIST | ZSET_LISTPACK => {
            let at = src.pos();
            let blob = src.read_string()?;
            let (what, elems, enc) = pair_blob_entries(&blob, t == ZSET_ZIPLIST, "zset", at)?;
            if elems.is_empty() {
                // An odd-sized one is corrupt; an empty one is an empty key.
                return Ok(DecodedObject::Empty);
            }
            value(RdbValue::SortedSet(zset_from_pairs(&elems, at, &what)?), enc)
        }
        HASH_ZIPLIST | HASH_LISTPACK => {
            let at = src.pos();
            let blob = src.read_string()?;
            let (what, elems, enc) = pair_blob_entries(&blob, t == HASH_ZIPLIST, "hash", at)?;
            if elems.is_empty() {
                return Ok(DecodedObject::Empty);
            }
            value(RdbValue::Hash(hash_from_pairs(&elems, at, &what)?), enc)
        }
        STREAM_LISTPACKS | STREAM_LISTPACKS_2 | STREAM_LISTPACKS_3 => {
            let s = read_stream(src, t)?;
            value(RdbValue::Stream(Box::new(s)), Encoding::Stream)
        }
        MODULE_PRE_GA
        | MODULE_2
        | HASH_METADATA_PRE_GA
        | HASH_LISTPACK_EX_PRE_GA
        | HASH_METADATA
        | HASH_LISTPACK_EX => Err(RdbError {
            offset: type_at,
            key: None,
            rdb_type: Some(t),
            kind: RdbErrorKind::UnsupportedType { rdb_type: t, name: rdb_type_name(t).unwrap_or("UNKNOWN") },
        }),
        _ => Err(RdbError::new(type_at, RdbErrorKind::UnknownType(t))),
    }
}

/// The container of a LIST_QUICKLIST_2 node: plain or packed.
fn read_node_container<R: BufRead>(src: &mut Source<R>) -> Result<u64, RdbError> {
    let at = src.pos();
    let c = src.read_len()?;
    if c != QUICKLIST_NODE_PLAIN && c != QUICKLIST_NODE_PACKED {
        return Err(RdbError::corrupt(at, format!("quicklist integrity check failed: unknown node container {c}")));
    }
    Ok(c)
}

/// The bytes of a quicklist node (never empty).
fn read_node_data<R: BufRead>(src: &mut Source<R>) -> Result<Vec<u8>, RdbError> {
    let at = src.pos();
    let data = src.read_string()?;
    if data.is_empty() {
        return Err(RdbError::corrupt(at, "quicklist node of zero bytes"));
    }
    Ok(data)
}

/// [`read_object`] as [`RdbReader::next_item`] wants it (`None`: empty).
fn decoded_object<R: BufRead>(src: &mut Source<R>, t: u8, type_at: u64) -> Result<Object<RdbValue>, RdbError> {
    Ok(match read_object(src, t, type_at)? {
        DecodedObject::Value { value, encoding } => Some((value, encoding)),
        DecodedObject::Empty => None,
    })
}

/// An object as [`RdbReader::next_load_item`] wants it: the compact
/// encodings of current files kept as they are, anything else decoded.
fn load_object<R: BufRead>(src: &mut Source<R>, t: u8, type_at: u64) -> Result<Object<LoadValue>, RdbError> {
    use rdb_type::*;
    let compact = match t {
        LIST_QUICKLIST_2 => compact_quicklist(src)?,
        SET_INTSET => {
            let at = src.pos();
            let blob = src.read_string()?;
            let members = intset_members(&blob).map_err(|e| blob_err(at, "intset", e))?;
            let width = members.width();
            Some((CompactValue::SetIntset(members), Encoding::Intset { width }))
        }
        SET_LISTPACK | ZSET_LISTPACK | HASH_LISTPACK => compact_listpack(src, t)?,
        _ => return Ok(decoded_object(src, t, type_at)?.map(|(value, enc)| (LoadValue::Decoded(value), enc))),
    };
    Ok(compact.map(|(value, enc)| (LoadValue::Compact(value), enc)))
}

fn checked_listpack(blob: Vec<u8>, at: u64, what: &str) -> Result<Listpack, RdbError> {
    Listpack::from_bytes(blob).map_err(|e| blob_err(at, what, e.0.to_string()))
}

/// A LIST_QUICKLIST_2 value with its nodes kept (`None`: no elements).
fn compact_quicklist<R: BufRead>(src: &mut Source<R>) -> Result<Object<CompactValue>, RdbError> {
    let n = src.read_len()?;
    let mut nodes = Vec::with_capacity(n.min(1024) as usize);
    let mut plain_nodes = 0u64;
    for _ in 0..n {
        let container = read_node_container(src)?;
        let at = src.pos();
        let data = read_node_data(src)?;
        if container == QUICKLIST_NODE_PLAIN {
            plain_nodes += 1;
            nodes.push(CompactListNode::Plain(data));
            continue;
        }
        let lp = checked_listpack(data, at, "quicklist listpack")?;
        // Empty nodes are skipped (Valkey does the same).
        if !lp.is_empty() {
            nodes.push(CompactListNode::Packed(lp));
        }
    }
    if nodes.is_empty() {
        return Ok(None);
    }
    Ok(Some((CompactValue::List(nodes), Encoding::Quicklist { nodes: n, plain_nodes })))
}

/// A SET_LISTPACK, ZSET_LISTPACK or HASH_LISTPACK value, checked and kept
/// (`None`: empty).
fn compact_listpack<R: BufRead>(src: &mut Source<R>, t: u8) -> Result<Object<CompactValue>, RdbError> {
    let at = src.pos();
    let blob = src.read_string()?;
    let what = match t {
        rdb_type::SET_LISTPACK => "set listpack",
        rdb_type::ZSET_LISTPACK => "zset listpack",
        _ => "hash listpack",
    };
    let lp = checked_listpack(blob, at, what)?;
    if lp.is_empty() {
        return Ok(None);
    }
    if t == rdb_type::SET_LISTPACK {
        let lp = distinct_members(lp, 1, at, what, "duplicate members")?;
        return Ok(Some((CompactValue::SetListpack(lp), Encoding::Listpack)));
    }
    if !lp.len().is_multiple_of(2) {
        return Err(blob_err(at, what, format!("odd number of elements ({})", lp.len())));
    }
    if t == rdb_type::ZSET_LISTPACK {
        for (_, score) in lp.iter().skip(1).step_by(2) {
            let value = match score {
                Item::Int(v) => v as f64,
                Item::Str(s) => parse_stored_score(s).ok_or_else(|| {
                    blob_err(at, what, format!("score '{}' is not a number", String::from_utf8_lossy(s)))
                })?,
            };
            if value.is_nan() {
                return Err(blob_err(at, what, "NaN score".into()));
            }
        }
        let lp = distinct_members(lp, 2, at, what, "duplicate members")?;
        return Ok(Some((CompactValue::ZSetListpack(lp), Encoding::Listpack)));
    }
    let lp = distinct_members(lp, 2, at, what, "duplicate fields")?;
    Ok(Some((CompactValue::HashListpack(lp), Encoding::Listpack)))
}

/// A listpack whose members are every `step`th entry from the first (the
/// members of a set: 1; the fields of a hash or members of a sorted set:
/// 2): refused with the reason `duplicate` when two are the same;
/// re-encoded when a member that is a decimal integer is stored as a
/// string, since the server's lookups look for such members as integer
/// entries (Valkey's writer always stores them so; only a hand-made file
/// does not).
fn distinct_members(lp: Listpack, step: usize, at: u64, what: &str, duplicate: &str) -> Result<Listpack, RdbError> {
    match Members::of(lp.iter().step_by(step).map(|(_, entry)| entry)) {
        Members::Duplicate => Err(blob_err(at, what, duplicate.into())),
        Members::Distinct { integers_as_strings: false } => Ok(lp),
        Members::Distinct { integers_as_strings: true } => {
            let entries: Vec<Vec<u8>> = lp.iter().map(|(_, entry)| entry.to_vec()).collect();
            Ok(Listpack::from_items(entries.iter().map(Vec::as_slice)))
        }
    }
}

/// What the members of a collection are like.
enum Members {
    /// Two are the same member.
    Duplicate,
    Distinct {
        /// Some member is a decimal integer stored as a string entry.
        integers_as_strings: bool,
    },
}

impl Members {
    fn of<'a>(mut entries: impl Iterator<Item = Item<'a>>) -> Members {
        let mut few = [(0u64, Item::Int(0)); PAIRWISE_MAX];
        let mut n = 0;
        let mut integers_as_strings = false;
        let mut print = |entry: Item<'_>| {
            let (print, integer_string) = fingerprint(entry);
            integers_as_strings |= integer_string;
            print
        };
        while let Some(entry) = entries.next() {
            if n == PAIRWISE_MAX {
                let mut all = few.to_vec();
                all.push((print(entry), entry));
                all.extend(entries.map(|e| (print(e), e)));
                // Equal members have equal fingerprints: sorted, they are
                // in the same run.
                all.sort_unstable_by_key(|&(print, _)| print);
                if all.chunk_by(|a, b| a.0 == b.0).any(|run| has_duplicate_among(run)) {
                    return Members::Duplicate;
                }
                return Members::Distinct { integers_as_strings };
            }
            few[n] = (print(entry), entry);
            n += 1;
        }
        if has_duplicate_among(&few[..n]) {
            return Members::Duplicate;
        }
        Members::Distinct { integers_as_strings }
    }
}

/// Whether two listpack entries are the same member: an integer entry is
/// the same as a string entry holding its decimal form.
fn same_entry(a: Item<'_>, b: Item<'_>) -> bool {
    match (a, b) {
        (Item::Int(x), Item::Int(y)) => x == y,
        (Item::Str(x), Item::Str(y)) => x == y,
        (Item::Int(v), Item::Str(s)) | (Item::Str(s), Item::Int(v)) => parse_i64(s) == Some(v),
    }
}

/// A summary of a member that equal members share (an integer entry and
/// the string of its decimal form included), so that most pairs of
/// members are told apart by one comparison of two numbers; and whether
/// the entry is a string holding a decimal integer.
fn fingerprint(entry: Item<'_>) -> (u64, bool) {
    const MIX: u64 = 0x9e37_79b9_7f4a_7c15;
    let int_print = |v: i64| (v as u64).wrapping_mul(MIX);
    match entry {
        Item::Int(v) => (int_print(v), false),
        Item::Str(s) => {
            let may_be_int = s.first().is_some_and(|&b| b.is_ascii_digit() || b == b'-');
            if let Some(v) = may_be_int.then(|| parse_i64(s)).flatten() {
                return (int_print(v), true);
            }
            // The length and the first and last eight bytes.
            let word = |bytes: &[u8]| bytes.iter().fold(0u64, |w, &b| (w << 8) | b as u64);
            let n = s.len();
            let (head, tail) = (word(&s[..n.min(8)]), word(&s[n.saturating_sub(8)..]));
            ((head ^ tail.rotate_left(29) ^ (n as u64).wrapping_mul(MIX)).wrapping_mul(MIX), false)
        }
    }
}

/// Up to this many members are compared pairwise (without allocating):
/// faster than sorting for the small collections that listpacks hold.
const PAIRWISE_MAX: usize = 16;

/// Pairwise comparison of fingerprinted entries.
fn has_duplicate_among(entries: &[(u64, Item<'_>)]) -> bool {
    entries
        .iter()
        .enumerate()
        .any(|(i, &(print, a))| entries[i + 1..].iter().any(|&(other, b)| other == print && same_entry(a, b)))
}

/// A score of type ZSET (3): a length byte, then that many ASCII bytes;
/// 253, 254 and 255 mean NaN, +inf and -inf.
fn read_string_score<R: BufRead>(src: &mut Source<R>) -> Result<f64, RdbError> {
    let at = src.pos();
    let len = src.read_u8()?;
    match len {
        255 => Ok(f64::NEG_INFINITY),
        254 => Ok(f64::INFINITY),
        253 => Ok(f64::NAN),
        n => {
            let mut buf = [0u8; 252];
            let buf = &mut buf[..n as usize];
            src.read_exact(buf)?;
            parse_score(buf).ok_or_else(|| {
                RdbError::corrupt(at, format!("zset score '{}' is not a number", String::from_utf8_lossy(buf)))
            })
        }
    }
}

/// A whole file, read with [`load_all`].
#[derive(Debug, Clone, PartialEq)]
pub struct RdbFile {
    pub magic: Magic,
    pub version: u32,
    /// Aux fields in file order.
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// Function library sources in file order.
    pub functions: Vec<Vec<u8>>,
    /// Every key in file order, expired ones included.
    pub keys: Vec<RdbKey>,
    /// Keys whose collections were empty.
    pub empty_keys: Vec<EmptyKey>,
    /// RESIZEDB hints: (db, db_size, expires_size).
    pub resize_hints: Vec<(u64, u64, u64)>,
    pub checksum: Checksum,
    /// File offset right after the footer.
    pub end_offset: u64,
}

/// Read the whole file at `path` (which must end right after the RDB
/// footer).
pub fn load_all(path: impl AsRef<Path>) -> Result<RdbFile, RdbError> {
    let file = File::open(path.as_ref()).map_err(|e| RdbError::new(0, RdbErrorKind::Io(e)))?;
    load_all_from(RdbReader::from_read(file))
}

/// Read every item of `reader` into an [`RdbFile`]. Unlike the item reader
/// (which stops right after the footer, as an AOF preamble needs), this
/// requires the input to end there.
pub fn load_all_from<R: BufRead>(mut reader: RdbReader<R>) -> Result<RdbFile, RdbError> {
    let mut out = RdbFile {
        magic: Magic::Redis,
        version: 0,
        aux: Vec::new(),
        functions: Vec::new(),
        keys: Vec::new(),
        empty_keys: Vec::new(),
        resize_hints: Vec::new(),
        checksum: Checksum::Absent,
        end_offset: 0,
    };
    while let Some(item) = reader.next_item()? {
        match item {
            RdbItem::Header { magic, version } => {
                out.magic = magic;
                out.version = version;
            }
            RdbItem::Aux { key, value } => out.aux.push((key, value)),
            RdbItem::SelectDb { .. } | RdbItem::SlotInfo { .. } => {}
            RdbItem::ResizeDb { db_size, expires_size } => {
                out.resize_hints.push((reader.current_db(), db_size, expires_size))
            }
            RdbItem::Function { code } => out.functions.push(code),
            RdbItem::Key(k) => out.keys.push(k),
            RdbItem::EmptyKey(k) => out.empty_keys.push(k),
            RdbItem::Eof { checksum } => out.checksum = checksum,
        }
    }
    out.end_offset = reader.offset();
    let mut rest = reader.into_inner();
    let trailing = loop {
        match rest.fill_buf() {
            Ok(b) => break b.len(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(RdbError::new(out.end_offset, RdbErrorKind::Io(e))),
        }
    };
    if trailing > 0 {
        return Err(RdbError::corrupt(out.end_offset, "unexpected bytes after the end of the RDB data"));
    }
    Ok(out)
}
