//! The command table and dispatch.
//!
//! Every command's metadata (arity, flags, key positions, ACL categories,
//! docs) is Valkey's own, captured from a running valkey-server by
//! `scripts/gen-command-table.py` into `commands/valkey-commands.resp3`:
//! clients introspect it through COMMAND, and dispatch, MULTI queuing and
//! journalling decide by the same flags. A command is served only when a
//! family module provides its handler; the rest answer "unknown command".

use std::borrow::Cow;
use std::collections::HashMap;

/// Command names are looked up on every request: a fast hasher pays off.
type NameMap<V> = HashMap<Vec<u8>, V, foldhash::fast::RandomState>;
use std::sync::OnceLock;

use ferrokey_formats::resp::{parse_value, Value};

use crate::client::Client;
use crate::db::{Db, Entry};
use crate::reply::Reply;
use crate::server::ServerState;

/// The error reply of a command, with its code ("ERR ...", "WRONGTYPE ...").
#[derive(Debug, Clone, PartialEq)]
pub struct CmdError(pub Cow<'static, str>);

impl From<&'static str> for CmdError {
    fn from(s: &'static str) -> Self {
        CmdError(Cow::Borrowed(s))
    }
}
impl From<String> for CmdError {
    fn from(s: String) -> Self {
        CmdError(Cow::Owned(s))
    }
}

pub type CmdResult = Result<(), CmdError>;

/// Error texts shared by many commands, exactly as Valkey sends them.
pub mod errors {
    pub const SYNTAX: &str = "ERR syntax error";
    pub const WRONG_TYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    pub const OUT_OF_RANGE: &str = "ERR index out of range";
    pub const DB_INDEX: &str = "ERR DB index is out of range";
    pub const NOAUTH: &str = "NOAUTH Authentication required.";
    pub const OUT_OF_RANGE_POSITIVE: &str = "ERR value is out of range, must be positive";
}

/// A command handler. Arguments include the command name at index 0;
/// arity has been checked before the call.
pub type Handler = fn(&mut Ctx, &[&[u8]]) -> CmdResult;

/// Everything a handler may touch while it runs.
pub struct Ctx<'a> {
    pub srv: &'a mut ServerState,
    pub client: &'a mut Client,
    pub out: &'a mut Reply,
    /// The time the command started, in Unix milliseconds: every key a
    /// command looks at is judged expired or not against this one instant.
    pub now_ms: i64,
}

impl Ctx<'_> {
    /// The client's selected database and the reply buffer, borrowed together.
    #[inline]
    pub fn db_out(&mut self) -> (&mut Db, &mut Reply) {
        let idx = self.client.db;
        (&mut self.srv.dbs[idx], self.out)
    }

    #[inline]
    pub fn db(&mut self) -> &mut Db {
        let idx = self.client.db;
        &mut self.srv.dbs[idx]
    }

    /// Seconds of the LRU clock, stamped on keys as they are touched.
    #[inline]
    pub fn lru_now(&self) -> u32 {
        (self.now_ms / 1000) as u32
    }

    /// Looks a key up in the client's database (expiring it if due) with
    /// the side effects of `how`, returning the reply buffer alongside so a
    /// handler can answer while it holds the entry.
    pub fn lookup(&mut self, key: &[u8], how: Lookup) -> (Option<&mut Entry>, &mut Reply) {
        let no_touch = self.client.info.no_touch.get();
        let entry = lookup_entry(self.srv, self.client.db, key, how, self.now_ms, no_touch);
        (entry, &mut *self.out)
    }

    /// Looks a key up in database `db` with the side effects of `how`.
    pub fn lookup_in(&mut self, db: usize, key: &[u8], how: Lookup) -> Option<&mut Entry> {
        let no_touch = self.client.info.no_touch.get();
        lookup_entry(self.srv, db, key, how, self.now_ms, no_touch)
    }

    /// Records that the dataset changed (save points, INFO rdb_changes_since_last_save).
    #[inline]
    pub fn dirty(&mut self, n: u64) {
        self.srv.dirty += n;
    }
}

/// The kinds of key lookup, each with the side effects Valkey gives it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lookup {
    /// Reading commands: count a keyspace hit or miss and refresh the access
    /// time, unless the client asked for CLIENT NO-TOUCH.
    Read,
    /// Count a hit or miss; leave the access time alone (EXISTS, TYPE, TTL).
    ReadNoTouch,
    /// Count a hit or miss; neither touch the key nor announce a miss
    /// (OBJECT, which looks at a key without using it).
    Inspect,
    /// TOUCH: count and refresh even for a NO-TOUCH client, since touching
    /// is what it asked for.
    Touch,
    /// Before a change: refresh the access time, count nothing.
    Write,
}

fn lookup_entry<'s>(
    srv: &'s mut ServerState,
    db: usize,
    key: &[u8],
    how: Lookup,
    now_ms: i64,
    no_touch: bool,
) -> Option<&'s mut Entry> {
    let touch = match how {
        Lookup::Read | Lookup::Write => !no_touch,
        Lookup::ReadNoTouch | Lookup::Inspect => false,
        Lookup::Touch => true,
    };
    // A raw pointer so that the miss path may use `srv` again: the borrow
    // checker cannot see that the entry borrow ends on that path.
    let entry = srv.dbs[db].get_mut(key, now_ms).map(|e| e as *mut Entry);
    if how != Lookup::Write {
        if entry.is_some() {
            srv.stats.keyspace_hits += 1;
        } else {
            srv.stats.keyspace_misses += 1;
            if how != Lookup::Inspect {
                crate::notify::keyspace_event(srv, crate::notify::KEY_MISS, "keymiss", key, db);
            }
        }
    }
    // SAFETY: the pointer came from a live `&mut Entry` into `srv`, which
    // nothing has touched since on this (the hit) path, and the result
    // borrows `srv` for as long as the entry reference did.
    let entry = unsafe { &mut *entry? };
    if touch {
        // The LRU stamp, and under an LFU policy the access counter.
        crate::evict::touch(entry, now_ms, &srv.config, &mut srv.rng);
    }
    Some(entry)
}

/// Command flags from Valkey's COMMAND INFO.
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const FAST: u32 = 1 << 9;
    pub const NO_AUTH: u32 = 1 << 10;
    pub const MAY_REPLICATE: u32 = 1 << 11;
    pub const NO_MULTI: u32 = 1 << 12;
    pub const PROTECTED: u32 = 1 << 13;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 14;
    pub const ALLOW_BUSY: u32 = 1 << 15;
    /// EVAL and FCALL: shown to MONITOR before their script's commands,
    /// not after (see monitor.rs).
    pub const SKIP_MONITOR: u32 = 1 << 16;

    pub fn from_name(name: &[u8]) -> u32 {
        match name {
            b"write" => WRITE,
            b"readonly" => READONLY,
            b"denyoom" => DENYOOM,
            b"admin" => ADMIN,
            b"pubsub" => PUBSUB,
            b"noscript" => NOSCRIPT,
            b"blocking" => BLOCKING,
            b"loading" => LOADING,
            b"stale" => STALE,
            b"fast" => FAST,
            b"no_auth" => NO_AUTH,
            b"may_replicate" => MAY_REPLICATE,
            b"no_multi" => NO_MULTI,
            b"no_mandatory_keys" => NO_MANDATORY_KEYS,
            b"allow_busy" => ALLOW_BUSY,
            b"skip_monitor" => SKIP_MONITOR,
            _ => 0,
        }
    }
}

/// One command or subcommand as Valkey describes it.
pub struct CommandSpec {
    /// Lower-case full name: "get", "config|get".
    pub name: String,
    pub arity: i64,
    pub flags: u32,
    pub first_key: i64,
    pub last_key: i64,
    pub key_step: i64,
    /// The COMMAND INFO entry, as Valkey answers it.
    pub info: Value,
    /// The COMMAND DOCS entry (the map of doc fields).
    pub docs: Value,
    pub handler: Option<Handler>,
    pub subcommands: NameMap<CommandSpec>,
}

impl CommandSpec {
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
    /// Whether a container's subcommand table is in use.
    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }
    /// The upper-case top-level name, as HELP hints print it.
    pub fn upper_name(&self) -> String {
        self.name.split('|').next().unwrap_or("").to_ascii_uppercase()
    }
}

pub struct CommandTable {
    pub commands: NameMap<CommandSpec>,
    /// Names in Valkey's COMMAND order.
    pub order: Vec<Vec<u8>>,
}

static TABLE: OnceLock<CommandTable> = OnceLock::new();

/// The table of every implemented command, built once from Valkey's
/// metadata and the handlers the family modules register.
pub fn table() -> &'static CommandTable {
    TABLE.get_or_init(|| build_table(crate::commands::all_handlers()))
}

const VALKEY_COMMANDS: &[u8] = include_bytes!("commands/valkey-commands.resp3");

fn build_table(handlers: Vec<(&'static str, Handler)>) -> CommandTable {
    let handlers: HashMap<&str, Handler> = handlers.into_iter().collect();
    // The file holds a version line, then the COMMAND INFO and COMMAND DOCS replies.
    let mut pos = memchr_nl(VALKEY_COMMANDS) + 1;
    let (info, used) = parse_value(&VALKEY_COMMANDS[pos..]).expect("command table").expect("complete");
    pos += used;
    let (docs, _) = parse_value(&VALKEY_COMMANDS[pos..]).expect("command docs").expect("complete");
    let docs_by_name: HashMap<Vec<u8>, Value> = match docs {
        Value::Map(pairs) => pairs.into_iter().filter_map(|(k, v)| Some((bytes_of(&k)?.to_vec(), v))).collect(),
        _ => panic!("COMMAND DOCS is not a map"),
    };
    let Value::Array(entries) = info else { panic!("COMMAND INFO is not an array") };
    let mut commands = NameMap::default();
    let mut order = Vec::new();
    for entry in entries {
        let docs = docs_by_name.get(name_of(&entry)).cloned().unwrap_or(Value::Map(vec![]));
        if let Some(spec) = spec_from_info(entry, docs, &handlers) {
            order.push(spec.name.as_bytes().to_vec());
            commands.insert(spec.name.as_bytes().to_vec(), spec);
        }
    }
    CommandTable { commands, order }
}

fn memchr_nl(b: &[u8]) -> usize {
    b.iter().position(|&c| c == b'\n').expect("version line")
}

fn bytes_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bulk(b) | Value::Simple(b) => Some(b),
        _ => None,
    }
}

fn name_of(entry: &Value) -> &[u8] {
    match entry {
        Value::Array(f) => f.first().and_then(bytes_of).unwrap_or(b""),
        _ => b"",
    }
}

fn int_of(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Int(n)) => *n,
        _ => 0,
    }
}

/// Builds a spec from one COMMAND INFO entry; None when neither the command
/// nor any of its subcommands has a handler.
fn spec_from_info(entry: Value, docs: Value, handlers: &HashMap<&str, Handler>) -> Option<CommandSpec> {
    let Value::Array(mut fields) = entry else { return None };
    let name = String::from_utf8_lossy(fields.first().and_then(bytes_of)?).to_ascii_lowercase();
    let mut flags_bits = 0;
    if let Some(Value::Set(fl)) = fields.get(2) {
        for f in fl {
            flags_bits |= bytes_of(f).map(flags::from_name).unwrap_or(0);
        }
    }
    if name == "debug" {
        flags_bits |= flags::PROTECTED;
    }
    let mut subcommands = NameMap::default();
    let mut kept_subs = Vec::new();
    if let Some(Value::Array(subs)) = fields.get_mut(9) {
        let sub_docs = doc_subcommands(&docs);
        for sub in std::mem::take(subs) {
            let sub_name = name_of(&sub).to_vec();
            let d = sub_docs.get(&sub_name).cloned().unwrap_or(Value::Map(vec![]));
            if let Some(spec) = spec_from_info(sub.clone(), d, handlers) {
                kept_subs.push(sub);
                let short = sub_name.split(|&c| c == b'|').nth(1).unwrap_or(b"").to_ascii_lowercase();
                subcommands.insert(short, spec);
            }
        }
    }
    let handler = handlers.get(name.as_str()).copied();
    if handler.is_none() && subcommands.is_empty() {
        return None;
    }
    // Commands without subcommands carry an empty set there; keep its type.
    if let Some(slot @ Value::Array(_)) = fields.get_mut(9) {
        *slot = Value::Array(kept_subs);
    }
    let docs = prune_doc_subcommands(docs, &subcommands, &name);
    Some(CommandSpec {
        arity: int_of(fields.get(1)),
        first_key: int_of(fields.get(3)),
        last_key: int_of(fields.get(4)),
        key_step: int_of(fields.get(5)),
        flags: flags_bits,
        info: Value::Array(fields),
        docs,
        handler,
        subcommands,
        name,
    })
}

fn doc_subcommands(docs: &Value) -> HashMap<Vec<u8>, Value> {
    let mut out = HashMap::new();
    if let Value::Map(pairs) = docs {
        for (k, v) in pairs {
            if bytes_of(k) == Some(b"subcommands") {
                if let Value::Map(subs) = v {
                    for (sk, sv) in subs {
                        if let Some(n) = bytes_of(sk) {
                            out.insert(n.to_vec(), sv.clone());
                        }
                    }
                }
            }
        }
    }
    out
}

/// Keeps in a container's docs only the subcommands we serve, so COMMAND
/// DOCS never advertises what would answer "unknown subcommand".
fn prune_doc_subcommands(docs: Value, served: &NameMap<CommandSpec>, parent: &str) -> Value {
    let Value::Map(pairs) = docs else { return docs };
    let pairs = pairs
        .into_iter()
        .map(|(k, v)| {
            if bytes_of(&k) == Some(b"subcommands") {
                if let Value::Map(subs) = v {
                    let kept = subs
                        .into_iter()
                        .filter(|(sk, _)| {
                            bytes_of(sk)
                                .and_then(|n| n.strip_prefix(format!("{parent}|").as_bytes()))
                                .map(|short| served.contains_key(&short.to_ascii_lowercase()))
                                .unwrap_or(false)
                        })
                        .collect();
                    return (k, Value::Map(kept));
                }
            }
            (k, v)
        })
        .collect();
    Value::Map(pairs)
}

/// Finds the spec a request names: the command, or for a container with
/// arguments, its subcommand. Returns Err with Valkey's error text.
pub fn lookup<'t>(table: &'t CommandTable, args: &[&[u8]]) -> Result<&'t CommandSpec, CmdError> {
    let mut name_buf = [0u8; 64];
    let raw = args[0];
    let spec = if raw.len() <= name_buf.len() {
        let lower = &mut name_buf[..raw.len()];
        lower.copy_from_slice(raw);
        lower.make_ascii_lowercase();
        table.commands.get(&*lower)
    } else {
        None
    };
    let Some(spec) = spec else { return Err(unknown_command(args)) };
    if args.len() == 1 || !spec.is_container() {
        return Ok(spec);
    }
    let sub = args[1].to_ascii_lowercase();
    spec.subcommands.get(&sub).ok_or_else(|| {
        CmdError::from(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            truncate_chars(&String::from_utf8_lossy(args[1]), 128),
            String::from_utf8_lossy(args[0]).to_ascii_uppercase()
        ))
    })
}

fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn unknown_command(args: &[&[u8]]) -> CmdError {
    let mut listed = String::new();
    for a in &args[1..] {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        let text = String::from_utf8_lossy(a);
        let cut: String = text.chars().take(room).collect();
        listed.push('\'');
        listed.push_str(&cut);
        listed.push_str("' ");
    }
    let name = truncate_chars(&String::from_utf8_lossy(args[0]), 128);
    CmdError::from(format!("ERR unknown command '{name}', with args beginning with: {listed}"))
}

/// Checks the argument count against a spec's arity.
pub fn check_arity(spec: &CommandSpec, argc: usize) -> Result<(), CmdError> {
    let argc = argc as i64;
    if (spec.arity > 0 && spec.arity != argc) || argc < -spec.arity {
        return Err(CmdError::from(format!("ERR wrong number of arguments for '{}' command", spec.name)));
    }
    Ok(())
}

/// The standard arity error for a command name (used by handlers that
/// parse variable arguments further).
pub fn arity_error(name: &str) -> CmdError {
    CmdError::from(format!("ERR wrong number of arguments for '{name}' command"))
}
