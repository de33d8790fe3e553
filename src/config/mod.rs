//! Configuration as Valkey 8 reads and serves it: valkey.conf files and
//! `--directive value` options (same syntax, same fatal error texts), and
//! CONFIG GET / SET / REWRITE with Valkey's replies.
//!
//! Every directive Valkey knows is accepted: the table in
//! `valkey-directives.tsv` is generated from Valkey's own config.c. Each
//! value is kept as Valkey keeps it (so CONFIG GET prints it the same way);
//! the directives the server acts on are also mirrored in typed fields.

mod cnum;
mod load;
mod rewrite;
mod table;
#[cfg(test)]
mod tests;
mod value;

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use crate::glob::glob_match;
use table::{
    Directive, Entry, Kind, Special, DENY_LOADING, HIDDEN, IMMUTABLE, MULTI_ARG, PROTECTED, SENSITIVE, TABLE, VOLATILE,
};
use value::{ObufLimit, Value};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LogLevel {
    Debug,
    Verbose,
    Notice,
    Warning,
    Nothing,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AppendFsync {
    Always,
    EverySec,
    No,
}

/// What the server does when a command needs memory beyond `maxmemory`
/// (maxmemory-policy): refuse, or evict keys chosen among all keys or
/// among those with a TTL, by approximated LRU, LFU, at random, or (TTL)
/// soonest expiry first.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MaxmemoryPolicy {
    NoEviction,
    AllKeysLru,
    AllKeysLfu,
    AllKeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

impl MaxmemoryPolicy {
    /// Keys carry an access-frequency counter (OBJECT FREQ) only under these.
    pub fn uses_lfu(self) -> bool {
        matches!(self, MaxmemoryPolicy::AllKeysLfu | MaxmemoryPolicy::VolatileLfu)
    }
    pub fn uses_lru(self) -> bool {
        matches!(self, MaxmemoryPolicy::AllKeysLru | MaxmemoryPolicy::VolatileLru)
    }
    /// Whether every key may be evicted, not only keys with a TTL.
    pub fn all_keys(self) -> bool {
        matches!(self, MaxmemoryPolicy::AllKeysLru | MaxmemoryPolicy::AllKeysLfu | MaxmemoryPolicy::AllKeysRandom)
    }
}

/// One client class's `client-output-buffer-limit`: a client whose pending
/// output reaches `hard_bytes`, or stays at `soft_bytes` or more for longer
/// than `soft_seconds`, is disconnected (0 bytes: no such limit).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct OutputBufferLimit {
    pub hard_bytes: u64,
    pub soft_bytes: u64,
    pub soft_seconds: i64,
}

/// Who is asking for a CONFIG SET, which decides what it may change.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SetContext {
    /// The dataset is being loaded: directives flagged DENY_LOADING refuse.
    pub loading: bool,
    /// The client is connected locally, which `enable-protected-configs
    /// local` requires to change protected directives.
    pub local_client: bool,
}

/// The directives the server acts on (most have typed fields below). Any
/// other directive given a non-default value is logged at start as
/// accepted but ignored, so an operator knows it has no effect yet.
const IMPLEMENTED: &[&str] = &[
    "port",
    "bind",
    "protected-mode",
    "dir",
    "dbfilename",
    "databases",
    "requirepass",
    "maxclients",
    "timeout",
    "tcp-keepalive",
    "tcp-backlog",
    "loglevel",
    "logfile",
    "daemonize",
    "pidfile",
    "save",
    "rdbcompression",
    "rdbchecksum",
    "stop-writes-on-bgsave-error",
    "hz",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "list-max-listpack-size",
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "set-max-intset-entries",
    "set-max-listpack-entries",
    "set-max-listpack-value",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "hll-sparse-max-bytes",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "latency-monitor-threshold",
    "latency-tracking",
    "latency-tracking-info-percentiles",
    "enable-debug-command",
    "notify-keyspace-events",
    "busy-reply-threshold",
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "maxmemory-eviction-tenacity",
    "lfu-log-factor",
    "lfu-decay-time",
    "lazyfree-lazy-eviction",
    "lazyfree-lazy-expire",
    "lazyfree-lazy-server-del",
    "lazyfree-lazy-user-del",
    "lazyfree-lazy-user-flush",
    "jemalloc-bg-thread",
    "appendonly",
    "appendfsync",
    "appendfilename",
    "appenddirname",
    "no-appendfsync-on-rewrite",
    "auto-aof-rewrite-percentage",
    "auto-aof-rewrite-min-size",
    "aof-use-rdb-preamble",
    "aof-timestamp-enabled",
    "aof-load-truncated",
    "aof-rewrite-incremental-fsync",
    "client-output-buffer-limit",
    "tracking-table-max-keys",
    "aof-disable-auto-gc",
    "enable-protected-configs",
    "key-load-delay",
    "rdb-key-save-delay",
];

/// The directives the server acts on (ferrokey.conf sets each of them).
pub fn implemented_directives() -> &'static [&'static str] {
    IMPLEMENTED
}

/// Valkey accepts any `hz` but runs within these bounds.
const HZ_RANGE: std::ops::RangeInclusive<i64> = 1..=500;

/// The smallest replication backlog CONFIG SET leaves in place.
const REPL_BACKLOG_MIN_SIZE: i64 = 16 * 1024;

/// Every directive's value at startup, in table order (`dir` left empty:
/// it defaults to the working directory).
static DEFAULTS: LazyLock<Vec<Value>> = LazyLock::new(|| TABLE.directives.iter().map(default_value).collect());

fn default_value(d: &Directive) -> Value {
    // The value a parse starts from; only the limits parser reads it here,
    // as the default text sets every class.
    let seed = match d.kind {
        Kind::Special(Special::Dir) => return Value::Dir(PathBuf::new()),
        // No primary: its CONFIG GET text is empty, which has no argument form.
        Kind::Special(Special::ReplicaOf) => return Value::ReplicaOf(None),
        Kind::Special(Special::ClientOutputBufferLimit) => {
            Value::ObufLimits([ObufLimit { hard: 0, soft: 0, soft_seconds: 0 }; 3])
        }
        _ => Value::Bool(false),
    };
    let args = if d.has(MULTI_ARG) { split_spaces(d.default.as_bytes()) } else { vec![d.default.as_bytes().to_vec()] };
    value::parse(d, &args, &seed).unwrap_or_else(|e| panic!("default of {} does not parse: {e}", d.name))
}

/// Splits a CONFIG SET value of a multi-argument directive the way Valkey
/// does: at every single space, so doubled spaces give empty arguments.
fn split_spaces(v: &[u8]) -> Vec<Vec<u8>> {
    if v.is_empty() {
        return Vec::new();
    }
    v.split(|&c| c == b' ').map(<[u8]>::to_vec).collect()
}

#[derive(Clone, Debug)]
pub struct Config {
    // Typed copies of the values of the directives the server implements;
    // read them freely, change them only through `set`.
    pub port: u16,
    pub bind: Vec<String>,
    pub protected_mode: bool,
    pub dir: PathBuf,
    pub dbfilename: String,
    pub databases: usize,
    pub requirepass: Option<Vec<u8>>,
    pub maxclients: usize,
    /// Seconds, 0 = never.
    pub timeout: u64,
    pub tcp_keepalive: u64,
    pub tcp_backlog: u32,
    pub loglevel: LogLevel,
    pub logfile: String,
    pub daemonize: bool,
    pub pidfile: String,
    /// (seconds, changes) save points.
    pub save: Vec<(u64, u64)>,
    pub appendonly: bool,
    pub appendfsync: AppendFsync,
    pub appenddirname: String,
    pub appendfilename: String,
    pub no_appendfsync_on_rewrite: bool,
    /// Growth in percent of the AOF over its size after the last rewrite
    /// that starts an automatic rewrite (0 = never).
    pub auto_aof_rewrite_percentage: u64,
    /// Bytes the AOF must reach before growth starts a rewrite.
    pub auto_aof_rewrite_min_size: u64,
    pub aof_use_rdb_preamble: bool,
    pub aof_timestamp_enabled: bool,
    pub aof_load_truncated: bool,
    pub aof_rewrite_incremental_fsync: bool,
    pub hz: u32,
    pub proto_max_bulk_len: i64,
    pub client_query_buffer_limit: u64,
    pub maxmemory: u64,
    pub maxmemory_policy: MaxmemoryPolicy,
    /// Keys sampled per database each time the eviction pool is refilled.
    pub maxmemory_samples: usize,
    /// 0..=100: how long one eviction pass may run (see `evict.rs`).
    pub maxmemory_eviction_tenacity: u32,
    pub lfu_log_factor: u32,
    /// Minutes per decrement of an unused key's LFU counter (0: never).
    pub lfu_decay_time: u32,
    /// Whether evicted, expired, overwritten (server-del), DEL'd (user-del)
    /// values and flushed databases (user-flush: FLUSHALL without an
    /// argument) are freed on the lazyfree thread.
    pub lazyfree_lazy_eviction: bool,
    pub lazyfree_lazy_expire: bool,
    pub lazyfree_lazy_server_del: bool,
    pub lazyfree_lazy_user_del: bool,
    pub lazyfree_lazy_user_flush: bool,
    pub list_max_listpack_size: i64,
    pub hash_max_listpack_entries: u64,
    pub hash_max_listpack_value: u64,
    pub set_max_intset_entries: u64,
    pub set_max_listpack_entries: u64,
    pub set_max_listpack_value: u64,
    pub zset_max_listpack_entries: u64,
    pub zset_max_listpack_value: u64,
    /// "no", "yes" or "local".
    pub enable_debug_command: String,
    /// The notify-keyspace-events classes, as bits (see `crate::notify`).
    pub notify_keyspace_events: u32,
    /// Milliseconds a script runs before other clients get BUSY replies
    /// (busy-reply-threshold, alias lua-time-limit).
    pub busy_reply_threshold: u64,
    /// client-output-buffer-limit by client class.
    pub output_limit_normal: OutputBufferLimit,
    pub output_limit_replica: OutputBufferLimit,
    pub output_limit_pubsub: OutputBufferLimit,
    /// Most keys the client-side caching table remembers (0: no limit).
    pub tracking_table_max_keys: usize,
    /// Absolute path of the config file, for CONFIG REWRITE.
    pub config_file: Option<PathBuf>,

    /// Every directive's value, in table order.
    values: Vec<Value>,
    /// Directives set by the config file or command line, in order.
    given: Vec<usize>,
    /// Config-file-only directives given that ferrokey does not act on.
    ignored: Vec<String>,
}

impl Config {
    pub fn defaults() -> Config {
        let mut values = DEFAULTS.clone();
        let cwd = std::env::current_dir().and_then(std::fs::canonicalize).unwrap_or_default();
        values[TABLE.index("dir")] = Value::Dir(cwd);
        let mut cfg = Config {
            port: 0,
            bind: Vec::new(),
            protected_mode: false,
            dir: PathBuf::new(),
            dbfilename: String::new(),
            databases: 0,
            requirepass: None,
            maxclients: 0,
            timeout: 0,
            tcp_keepalive: 0,
            tcp_backlog: 0,
            loglevel: LogLevel::Notice,
            logfile: String::new(),
            daemonize: false,
            pidfile: String::new(),
            save: Vec::new(),
            appendonly: false,
            appendfsync: AppendFsync::EverySec,
            appenddirname: String::new(),
            appendfilename: String::new(),
            no_appendfsync_on_rewrite: false,
            auto_aof_rewrite_percentage: 0,
            auto_aof_rewrite_min_size: 0,
            aof_use_rdb_preamble: false,
            aof_timestamp_enabled: false,
            aof_load_truncated: false,
            aof_rewrite_incremental_fsync: false,
            hz: 0,
            proto_max_bulk_len: 0,
            client_query_buffer_limit: 0,
            maxmemory: 0,
            maxmemory_policy: MaxmemoryPolicy::NoEviction,
            maxmemory_samples: 0,
            maxmemory_eviction_tenacity: 0,
            lfu_log_factor: 0,
            lfu_decay_time: 0,
            lazyfree_lazy_eviction: false,
            lazyfree_lazy_expire: false,
            lazyfree_lazy_server_del: false,
            lazyfree_lazy_user_del: false,
            lazyfree_lazy_user_flush: false,
            list_max_listpack_size: 0,
            hash_max_listpack_entries: 0,
            hash_max_listpack_value: 0,
            set_max_intset_entries: 0,
            set_max_listpack_entries: 0,
            set_max_listpack_value: 0,
            zset_max_listpack_entries: 0,
            zset_max_listpack_value: 0,
            enable_debug_command: String::new(),
            notify_keyspace_events: 0,
            busy_reply_threshold: 0,
            output_limit_normal: OutputBufferLimit::default(),
            output_limit_replica: OutputBufferLimit::default(),
            output_limit_pubsub: OutputBufferLimit::default(),
            tracking_table_max_keys: 0,
            config_file: None,
            values,
            given: Vec::new(),
            ignored: Vec::new(),
        };
        cfg.refresh();
        cfg
    }

    /// Reads the configuration from the command line (without the program
    /// name) as valkey-server does: an optional config file first (`-` for
    /// stdin, first or last), then `--directive value...` options applied
    /// after it. Err is the exact text Valkey prints before exiting with 1,
    /// without the final newline.
    pub fn from_args(args: &[String]) -> Result<Config, String> {
        load::from_args(args, || {
            // Like Valkey's fgets loop: a read error ends the input.
            let mut buf = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut buf);
            buf
        })
    }

    /// Directives given at startup that the server does not act on yet
    /// (canonical names), to log once as ignored. Directives given their
    /// default value are left out: ignoring them changes nothing.
    pub fn unimplemented_directives_set(&self) -> Vec<String> {
        let table_ones = self.given.iter().filter(|&&i| {
            let d = &TABLE.directives[i];
            !IMPLEMENTED.contains(&d.name) && self.values[i] != DEFAULTS[i]
        });
        table_ones.map(|&i| TABLE.directives[i].name.to_string()).chain(self.ignored.iter().cloned()).collect()
    }

    /// CONFIG GET: every (name, value) whose name or alias matches one of the
    /// glob patterns (case-insensitively). A pattern without glob characters
    /// is looked up directly, finds hidden directives too, and is answered
    /// under the name as given. A directive whose name and alias both match
    /// appears under each. Valkey's order is its hash table's (it varies
    /// between runs); this is table order.
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        for &pattern in patterns {
            if !pattern.iter().any(|c| b"[*?".contains(c)) {
                if let Some(e) = TABLE.lookup(pattern) {
                    if seen.insert(pattern.to_ascii_lowercase()) {
                        out.push((String::from_utf8_lossy(pattern).into_owned(), self.format(e.index)));
                    }
                }
                continue;
            }
            for e in TABLE.entries() {
                let name = TABLE.entry_name(e);
                if TABLE.directives[e.index].has(HIDDEN) || seen.contains(name.as_bytes()) {
                    continue;
                }
                if glob_match(pattern, name.as_bytes(), true) {
                    seen.insert(name.as_bytes().to_vec());
                    out.push((name.to_string(), self.format(e.index)));
                }
            }
        }
        out
    }

    /// CONFIG SET from a client that is not local, outside loading.
    pub fn set(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<Vec<&'static str>, String> {
        self.set_with(pairs, SetContext::default())
    }

    /// CONFIG SET of one or more directives, all or nothing. Ok lists the
    /// canonical names whose value changed (the server applies their side
    /// effects). Err is the error line without its leading '-'.
    pub fn set_with(&mut self, pairs: &[(&[u8], &[u8])], ctx: SetContext) -> Result<Vec<&'static str>, String> {
        let failed =
            |name: &str, why: &str| format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}");
        let mut entries: Vec<Entry> = Vec::with_capacity(pairs.len());
        for &(name, _) in pairs {
            let shown = String::from_utf8_lossy(name);
            let Some(e) = TABLE.lookup(name) else {
                return Err(format!("ERR Unknown option or number of arguments for CONFIG SET - '{shown}'"));
            };
            let d = &TABLE.directives[e.index];
            if d.has(IMMUTABLE) {
                return Err(failed(&shown, "can't set immutable config"));
            }
            if d.has(PROTECTED) && !self.protected_allowed(ctx) {
                return Err(failed(&shown, "can't set protected config"));
            }
            if ctx.loading && d.has(DENY_LOADING) {
                let product = if self.bool_value("extended-redis-compatibility") { "Redis" } else { "Valkey" };
                return Err(format!("LOADING {product} is loading the dataset in memory"));
            }
            // A name and its alias are distinct entries, as in Valkey.
            if entries.contains(&e) {
                return Err(failed(&shown, "duplicate parameter"));
            }
            entries.push(e);
        }
        let mut next = self.clone();
        let mut changed = Vec::new();
        for (&e, &(_, value)) in entries.iter().zip(pairs) {
            let d = &TABLE.directives[e.index];
            let args = if d.has(MULTI_ARG) { split_spaces(value) } else { vec![value.to_vec()] };
            match next.assign(e.index, &args) {
                Ok(true) if !changed.contains(&d.name) => changed.push(d.name),
                Ok(_) => {}
                Err(why) => return Err(failed(TABLE.entry_name(e), &why)),
            }
            next.apply_at_runtime(e.index).map_err(|why| failed(TABLE.entry_name(e), why))?;
        }
        next.refresh();
        *self = next;
        Ok(changed)
    }

    /// Whether a directive (or alias) holds a secret: Valkey redacts its
    /// CONFIG SET value from SLOWLOG and MONITOR.
    pub fn is_sensitive(name: &[u8]) -> bool {
        TABLE.lookup(name).is_some_and(|e| TABLE.directives[e.index].has(SENSITIVE))
    }

    /// CONFIG REWRITE: updates the config file in place, keeping its comments
    /// and order, and writes it atomically.
    pub fn rewrite(&self) -> Result<(), String> {
        let Some(path) = &self.config_file else {
            return Err("ERR The server is running without a config file".into());
        };
        rewrite::rewrite(self, path).map_err(|e| format!("ERR Rewriting config file: {}", cnum::os_error_text(&e)))
    }

    /// Makes `dir` the working directory, as Valkey does when it reads it.
    pub fn apply_dir(&self) -> Result<(), String> {
        std::env::set_current_dir(&self.dir).map_err(|e| cnum::os_error_text(&e))
    }

    fn protected_allowed(&self, ctx: SetContext) -> bool {
        match self.enum_text("enable-protected-configs").as_str() {
            "yes" => true,
            "local" => ctx.local_client,
            _ => false,
        }
    }

    /// Parses, validates and stores one directive's arguments. Returns
    /// whether the server must apply it: the value changed, or the directive
    /// is one Valkey always applies.
    fn assign(&mut self, index: usize, args: &[Vec<u8>]) -> Result<bool, String> {
        let d = &TABLE.directives[index];
        let mut new = value::parse(d, args, &self.values[index])?;
        value::check(d, args, &new, self)?;
        if let (Value::Num(hz), "hz") = (&mut new, d.name) {
            *hz = (*hz).clamp(*HZ_RANGE.start(), *HZ_RANGE.end());
        }
        let changed = match d.kind {
            Kind::Special(Special::OomScoreAdjValues) => new != self.values[index],
            Kind::Special(_) => true,
            _ => d.has(VOLATILE) || new != self.values[index],
        };
        self.values[index] = new;
        Ok(changed)
    }

    /// The parts of Valkey's CONFIG SET apply step that concern the value
    /// itself (the server applies the rest).
    fn apply_at_runtime(&mut self, index: usize) -> Result<(), &'static str> {
        match (TABLE.directives[index].name, &mut self.values[index]) {
            ("repl-backlog-size", Value::Num(size)) => *size = (*size).max(REPL_BACKLOG_MIN_SIZE),
            ("locale-collate", Value::Str(name)) if !cnum::is_valid_collate_locale(name) => {
                return Err("Invalid locale name");
            }
            _ => {}
        }
        Ok(())
    }

    fn format(&self, index: usize) -> String {
        value::format(&TABLE.directives[index], &self.values[index])
    }

    fn value(&self, name: &str) -> &Value {
        &self.values[TABLE.index(name)]
    }

    fn num_value(&self, name: &str) -> i64 {
        match self.value(name) {
            Value::Num(v) => *v,
            other => unreachable!("{name} is numeric, holds {other:?}"),
        }
    }

    fn bool_value(&self, name: &str) -> bool {
        match self.value(name) {
            Value::Bool(v) => *v,
            other => unreachable!("{name} is a bool, holds {other:?}"),
        }
    }

    fn string_value(&self, name: &str) -> Vec<u8> {
        match self.value(name) {
            Value::Str(v) => v.clone(),
            other => unreachable!("{name} is a string, holds {other:?}"),
        }
    }

    fn text_value(&self, name: &str) -> String {
        String::from_utf8_lossy(&self.string_value(name)).into_owned()
    }

    fn enum_text(&self, name: &str) -> String {
        self.format(TABLE.index(name))
    }

    fn dir_value(&self) -> &Path {
        match self.value("dir") {
            Value::Dir(p) => p,
            other => unreachable!("dir holds {other:?}"),
        }
    }

    /// Copies the values of the implemented directives into the typed fields.
    fn refresh(&mut self) {
        self.port = self.num_value("port") as u16;
        self.bind = match self.value("bind") {
            Value::Bind(addrs) => addrs.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect(),
            other => unreachable!("bind holds {other:?}"),
        };
        self.protected_mode = self.bool_value("protected-mode");
        self.dir = self.dir_value().to_path_buf();
        self.dbfilename = self.text_value("dbfilename");
        self.databases = self.num_value("databases") as usize;
        self.requirepass = Some(self.string_value("requirepass")).filter(|p| !p.is_empty());
        self.maxclients = self.num_value("maxclients") as usize;
        self.timeout = self.num_value("timeout") as u64;
        self.tcp_keepalive = self.num_value("tcp-keepalive") as u64;
        self.tcp_backlog = self.num_value("tcp-backlog") as u32;
        self.loglevel = match self.enum_text("loglevel").as_str() {
            "debug" => LogLevel::Debug,
            "verbose" => LogLevel::Verbose,
            "warning" => LogLevel::Warning,
            "nothing" => LogLevel::Nothing,
            _ => LogLevel::Notice,
        };
        self.logfile = self.text_value("logfile");
        self.daemonize = self.bool_value("daemonize");
        self.pidfile = self.text_value("pidfile");
        self.save = match self.value("save") {
            // A negative change count (possible through C int overflow)
            // behaves as 0: the save point only waits for the time.
            Value::Save(points) => points.iter().map(|&(s, c)| (s as u64, c.max(0) as u64)).collect(),
            other => unreachable!("save holds {other:?}"),
        };
        self.appendonly = self.bool_value("appendonly");
        self.appendfsync = match self.enum_text("appendfsync").as_str() {
            "always" => AppendFsync::Always,
            "no" => AppendFsync::No,
            _ => AppendFsync::EverySec,
        };
        self.appenddirname = self.text_value("appenddirname");
        self.appendfilename = self.text_value("appendfilename");
        self.no_appendfsync_on_rewrite = self.bool_value("no-appendfsync-on-rewrite");
        self.auto_aof_rewrite_percentage = self.num_value("auto-aof-rewrite-percentage").max(0) as u64;
        self.auto_aof_rewrite_min_size = self.num_value("auto-aof-rewrite-min-size").max(0) as u64;
        self.aof_use_rdb_preamble = self.bool_value("aof-use-rdb-preamble");
        self.aof_timestamp_enabled = self.bool_value("aof-timestamp-enabled");
        self.aof_load_truncated = self.bool_value("aof-load-truncated");
        self.aof_rewrite_incremental_fsync = self.bool_value("aof-rewrite-incremental-fsync");
        self.hz = self.num_value("hz") as u32;
        self.proto_max_bulk_len = self.num_value("proto-max-bulk-len");
        self.client_query_buffer_limit = self.num_value("client-query-buffer-limit") as u64;
        self.maxmemory = self.num_value("maxmemory") as u64;
        self.maxmemory_policy = match self.enum_text("maxmemory-policy").as_str() {
            "allkeys-lru" => MaxmemoryPolicy::AllKeysLru,
            "allkeys-lfu" => MaxmemoryPolicy::AllKeysLfu,
            "allkeys-random" => MaxmemoryPolicy::AllKeysRandom,
            "volatile-lru" => MaxmemoryPolicy::VolatileLru,
            "volatile-lfu" => MaxmemoryPolicy::VolatileLfu,
            "volatile-random" => MaxmemoryPolicy::VolatileRandom,
            "volatile-ttl" => MaxmemoryPolicy::VolatileTtl,
            _ => MaxmemoryPolicy::NoEviction,
        };
        self.maxmemory_samples = self.num_value("maxmemory-samples").max(1) as usize;
        self.maxmemory_eviction_tenacity = self.num_value("maxmemory-eviction-tenacity").clamp(0, 100) as u32;
        self.lfu_log_factor = self.num_value("lfu-log-factor").max(0) as u32;
        self.lfu_decay_time = self.num_value("lfu-decay-time").max(0) as u32;
        self.lazyfree_lazy_eviction = self.bool_value("lazyfree-lazy-eviction");
        self.lazyfree_lazy_expire = self.bool_value("lazyfree-lazy-expire");
        self.lazyfree_lazy_server_del = self.bool_value("lazyfree-lazy-server-del");
        self.lazyfree_lazy_user_del = self.bool_value("lazyfree-lazy-user-del");
        self.lazyfree_lazy_user_flush = self.bool_value("lazyfree-lazy-user-flush");
        self.list_max_listpack_size = self.num_value("list-max-listpack-size");
        self.hash_max_listpack_entries = self.num_value("hash-max-listpack-entries") as u64;
        self.hash_max_listpack_value = self.num_value("hash-max-listpack-value") as u64;
        self.set_max_intset_entries = self.num_value("set-max-intset-entries") as u64;
        self.set_max_listpack_entries = self.num_value("set-max-listpack-entries") as u64;
        self.set_max_listpack_value = self.num_value("set-max-listpack-value") as u64;
        self.zset_max_listpack_entries = self.num_value("zset-max-listpack-entries") as u64;
        self.zset_max_listpack_value = self.num_value("zset-max-listpack-value") as u64;
        self.enable_debug_command = self.enum_text("enable-debug-command");
        self.notify_keyspace_events = match self.value("notify-keyspace-events") {
            Value::KeyspaceEvents(flags) => *flags,
            other => unreachable!("notify-keyspace-events holds {other:?}"),
        };
        self.busy_reply_threshold = self.num_value("busy-reply-threshold").max(0) as u64;
        // Classes in Valkey's order: normal, replica, pubsub.
        let limits = match self.value("client-output-buffer-limit") {
            Value::ObufLimits(limits) => limits.map(|l| OutputBufferLimit {
                hard_bytes: l.hard,
                soft_bytes: l.soft,
                soft_seconds: l.soft_seconds as i64,
            }),
            other => unreachable!("client-output-buffer-limit holds {other:?}"),
        };
        [self.output_limit_normal, self.output_limit_replica, self.output_limit_pubsub] = limits;
        self.tracking_table_max_keys = self.num_value("tracking-table-max-keys").max(0) as usize;
    }
}
