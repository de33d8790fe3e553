//! Loading an RDB file into the keyspace, a bounded number of keys at a
//! time so that the start-up load can let the event loop answer clients
//! (with -LOADING) between steps.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ferrokey_formats::rdb::{
    escape_bytes, Checksum, CompactListNode, CompactValue, IntsetMembers, LoadItem, LoadValue, RdbError, RdbItem,
    RdbKey, RdbReader, RdbValue, ReaderOptions,
};

use super::rdb::{value_from_rdb, Limits};
use crate::db::Entry;
use crate::server::{unix_ms, ServerState};
use crate::types::hash::Hash;
use crate::types::list::{List, Node};
use crate::types::set::{IntSet, Set};
use crate::types::zset::ZSet;
use crate::value::Value;
use crate::{log_notice, log_warning};

/// Why a load failed: the file, the byte offset and the reason.
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub offset: u64,
    pub reason: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}: {}", self.path.display(), self.offset, self.reason)
    }
}

/// What to do with a key the dataset already holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// A file holding a key twice is corrupt.
    Refuse,
    /// The file's value replaces the one in memory (DEBUG RELOAD MERGE).
    Replace,
}

/// An RDB file being loaded.
pub struct Loader {
    path: PathBuf,
    reader: RdbReader<BufReader<File>>,
    limits: Limits,
    duplicates: Duplicates,
    /// Keys whose expire time is before this (the start of the load) are
    /// dropped, as a primary does.
    now_ms: i64,
    /// Keys not loaded because they had expired, empty ones skipped.
    pub keys_loaded: u64,
    pub keys_expired: u64,
    pub empty_skipped: u64,
    /// Function libraries (FUNCTION2), kept as their source code.
    pub functions: Vec<Vec<u8>>,
    /// The file's size, for the loading progress.
    pub total_bytes: u64,
    /// The `used-mem` aux field.
    pub rdb_used_mem: u64,
    /// `key-load-delay`: a pause after each key (see `debug_delay`).
    key_delay: i64,
}

/// The fewest bytes a key takes in an RDB file: its type, an empty name
/// and an empty string value.
const SMALLEST_KEY_BYTES: u64 = 3;

/// Keys whose being skipped is logged one by one, as Valkey logs the first ten.
const EMPTY_KEYS_LOGGED: u64 = 10;

impl Loader {
    /// Opens `path`; `Ok(None)` when there is no such file.
    pub fn open(path: &Path, st: &ServerState, duplicates: Duplicates) -> Result<Option<Loader>, LoadError> {
        let fail = |reason: String| LoadError { path: path.to_path_buf(), offset: 0, reason };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(format!("can't open the RDB file for reading: {e}"))),
        };
        let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let verify_checksum = super::config_flag(st, "rdbchecksum");
        let reader =
            RdbReader::with_options(BufReader::with_capacity(64 * 1024, file), ReaderOptions { verify_checksum });
        Ok(Some(Loader {
            path: path.to_path_buf(),
            reader,
            limits: Limits::from_config(&st.config),
            duplicates,
            now_ms: unix_ms(),
            keys_loaded: 0,
            keys_expired: 0,
            empty_skipped: 0,
            functions: Vec::new(),
            total_bytes,
            rdb_used_mem: 0,
            key_delay: super::config_int(st, "key-load-delay"),
        }))
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    fn error_at(&self, offset: u64, reason: String) -> LoadError {
        LoadError { path: self.path.clone(), offset, reason }
    }

    fn reader_error(&self, e: RdbError) -> LoadError {
        let mut reason = e.reason();
        if let Some(key) = &e.key {
            reason.push_str(&format!(" (key '{}')", escape_bytes(key)));
        }
        self.error_at(e.offset, reason)
    }

    /// Loads up to `budget` more keys into `st`. Returns true once the end
    /// of the file was reached (and logged).
    pub fn step(&mut self, st: &mut ServerState, budget: usize) -> Result<bool, LoadError> {
        // A step takes milliseconds: one reading of the clock serves its keys.
        let now_s = (unix_ms() / 1000) as u32;
        let mut keys = 0;
        while keys < budget {
            let item = match self.reader.next_load_item() {
                Ok(Some(item)) => item,
                Ok(None) => return Err(self.error_at(self.offset(), "unexpected end of the RDB data".into())),
                Err(e) => return Err(self.reader_error(e)),
            };
            let item = match item {
                LoadItem::Key(k) => {
                    keys += 1;
                    self.add_key(st, k, now_s)?;
                    super::debug_delay(self.key_delay);
                    continue;
                }
                LoadItem::Item(item) => item,
            };
            match item {
                RdbItem::Header { .. } | RdbItem::SlotInfo { .. } => {}
                RdbItem::ResizeDb { db_size, expires_size } => self.size_hint(st, db_size, expires_size),
                RdbItem::Aux { key, value } => self.aux_field(&key, &value),
                RdbItem::SelectDb { db } => {
                    if db >= st.dbs.len() as u64 {
                        let reason = format!(
                            "the file uses DB {db}, but this server is configured with {} databases",
                            st.dbs.len()
                        );
                        return Err(self.error_at(self.offset(), reason));
                    }
                }
                RdbItem::Function { code } => self.functions.push(code),
                RdbItem::EmptyKey(k) => {
                    self.empty_skipped += 1;
                    if self.empty_skipped <= EMPTY_KEYS_LOGGED {
                        log_notice!("rdbLoadObject skipping empty key: {}", String::from_utf8_lossy(&k.key));
                    }
                }
                // The load reader gives keys as LoadItem::Key; a decoded one is loaded alike.
                RdbItem::Key(k) => {
                    keys += 1;
                    self.add_key(st, k.map_value(LoadValue::Decoded), now_s)?;
                    super::debug_delay(self.key_delay);
                }
                RdbItem::Eof { checksum } => {
                    if checksum == Checksum::Disabled {
                        log_notice!("RDB file was saved with checksum disabled: no check performed.");
                    }
                    self.log_done();
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// RESIZEDB: the database gets room for the keys announced, as Valkey
    /// expands its tables, so that loading them rehashes nothing. The hint
    /// is only trusted as far as the file could hold that many keys.
    fn size_hint(&self, st: &mut ServerState, keys: u64, volatile: u64) {
        let most = self.total_bytes / SMALLEST_KEY_BYTES;
        let clamp = |n: u64| usize::try_from(n.min(most)).unwrap_or(0);
        if let Some(db) = st.dbs.get_mut(self.reader.current_db() as usize) {
            db.reserve(clamp(keys), clamp(volatile));
        }
    }

    /// The aux fields Valkey reports while loading.
    fn aux_field(&mut self, key: &[u8], value: &[u8]) {
        let text = String::from_utf8_lossy(value);
        let number = || text.trim().parse::<i64>().unwrap_or(0);
        match key.to_ascii_lowercase().as_slice() {
            b"redis-ver" => log_notice!("Loading RDB produced by Redis version {text}"),
            b"valkey-ver" => log_notice!("Loading RDB produced by Valkey version {text}"),
            b"ctime" => log_notice!("RDB age {} seconds", (unix_ms() / 1000 - number()).max(0)),
            b"used-mem" => {
                self.rdb_used_mem = number().max(0) as u64;
                log_notice!("RDB memory usage when created {:.2} Mb", number() as f64 / (1024.0 * 1024.0));
            }
            b"aof-base" if number() != 0 => log_notice!("RDB is base AOF"),
            b"aof-preamble" if number() != 0 => log_notice!("RDB has an AOF tail"),
            _ => {}
        }
    }

    fn add_key(&mut self, st: &mut ServerState, k: RdbKey<LoadValue>, now_s: u32) -> Result<(), LoadError> {
        let db_index = k.db as usize;
        if k.is_expired(self.now_ms) {
            self.keys_expired += 1;
            return Ok(());
        }
        let offset = k.offset;
        let value = match k.value {
            LoadValue::Compact(compact) => Ok(value_from_compact(compact, &self.limits)),
            LoadValue::Decoded(RdbValue::String(bytes)) => Ok(Value::string_from_vec(bytes)),
            LoadValue::Decoded(decoded) => value_from_rdb(decoded, k.encoding, &self.limits),
        }
        .map_err(|reason| self.error_at(offset, format!("{reason} (key '{}')", escape_bytes(&k.key))))?;
        let mut entry = Entry::new(value, now_s);
        if let Some(at) = k.expire_ms {
            entry.expire_at = at;
        }
        // IDLE (how long ago the key was last touched) or FREQ (its LFU
        // counter), whichever the eviction policy keeps.
        crate::evict::set_hints(&mut entry, &st.config, k.lfu_freq, k.lru_idle, now_s);
        let Some(db) = st.dbs.get_mut(db_index) else {
            return Err(self.error_at(offset, format!("DB {db_index} is out of range")));
        };
        match self.duplicates {
            Duplicates::Replace => db.insert_entry(&k.key, entry),
            Duplicates::Refuse => {
                if db.insert_new(&k.key, entry).is_err() {
                    log_warning!("RDB has duplicated key '{}' in DB {db_index}", String::from_utf8_lossy(&k.key));
                    let reason = format!("duplicated key '{}' in DB {db_index}", escape_bytes(&k.key));
                    return Err(self.error_at(offset, reason));
                }
            }
        }
        self.keys_loaded += 1;
        Ok(())
    }

    fn log_done(&self) {
        if self.empty_skipped > 0 {
            log_notice!(
                "Done loading RDB, keys loaded: {}, keys expired: {}, empty keys skipped: {}.",
                self.keys_loaded,
                self.keys_expired,
                self.empty_skipped
            );
        } else {
            log_notice!("Done loading RDB, keys loaded: {}, keys expired: {}.", self.keys_loaded, self.keys_expired);
        }
    }

    /// Loads the whole file without yielding (DEBUG RELOAD, imports).
    pub fn run_to_end(&mut self, st: &mut ServerState) -> Result<(), LoadError> {
        while !self.step(st, usize::MAX)? {}
        Ok(())
    }

    /// Keeps the keys whose expiry time has passed, as Valkey loads the
    /// base of an AOF: the journal after it may still act on them (a
    /// KEEPTTL write, an INCR keep their expiry), and expiry removes them
    /// once the load is over.
    pub fn keep_expired_keys(&mut self) {
        self.now_ms = i64::MIN;
    }
}

/// The value of a collection the file stored in a compact encoding, which
/// becomes the in-memory encoding as it is (the reader checked it), as
/// Valkey's loader keeps it; converted only when it holds more elements
/// than the configured limit of that encoding, as Valkey's loader converts.
fn value_from_compact(value: CompactValue, limits: &Limits) -> Value {
    match value {
        CompactValue::List(mut nodes) => {
            let list = match nodes.pop() {
                Some(CompactListNode::Packed(lp)) if nodes.is_empty() => List::from_single_node(lp, limits.list_fill),
                last => {
                    let nodes = nodes.into_iter().chain(last).map(|node| match node {
                        CompactListNode::Packed(lp) => Node::Packed(lp),
                        CompactListNode::Plain(element) => Node::Plain(element.into_boxed_slice()),
                    });
                    List::from_nodes(nodes, limits.list_fill)
                }
            };
            Value::List(list)
        }
        CompactValue::SetIntset(members) => {
            let set = if members.len() > limits.set.intset_entries {
                let mut set = Set::new_hashtable(members.len());
                let mut digits = itoa::Buffer::new();
                for v in members.to_i64() {
                    set.add(digits.format(v).as_bytes(), limits.set);
                }
                set
            } else {
                Set::from_intset(match members {
                    IntsetMembers::I16(v) => IntSet::I16(v),
                    IntsetMembers::I32(v) => IntSet::I32(v),
                    IntsetMembers::I64(v) => IntSet::I64(v),
                })
            };
            Value::Set(set)
        }
        CompactValue::SetListpack(lp) => {
            let set = if lp.len() > limits.set.listpack_entries {
                let mut set = Set::new_hashtable(lp.len());
                for (_, member) in lp.iter() {
                    member.with_bytes(|m| set.add(m, limits.set));
                }
                set
            } else {
                Set::from_listpack(lp)
            };
            Value::Set(set)
        }
        CompactValue::ZSetListpack(lp) => Value::ZSet(ZSet::from_listpack(lp, limits.zset)),
        CompactValue::HashListpack(lp) => {
            let hash = if lp.len() / 2 > limits.hash_entries {
                let mut entries = lp.iter().map(|(_, e)| e.to_vec());
                let mut pairs = Vec::with_capacity(lp.len() / 2);
                while let (Some(field), Some(value)) = (entries.next(), entries.next()) {
                    pairs.push((field, value));
                }
                Hash::from_table_pairs(pairs.into_iter())
            } else {
                Hash::from_listpack(lp)
            };
            Value::Hash(hash)
        }
    }
}
