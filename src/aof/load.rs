//! The start-up: the manifest is read (whether `appendonly` is on or not,
//! as Valkey does), then with `appendonly yes` the base and incr files are
//! loaded in order and the journal opens on the last incr file (a base
//! and an incr file are created when there is nothing yet).
//!
//! An RDB base (or the RDB preamble of an old single-file AOF) goes
//! through the RDB loader; commands run one by one against the dataset,
//! as a client without a connection would run them. Commands run with the
//! clock at 0: a loading server expires nothing (Valkey's rule), so a key
//! whose time passed is still there for the commands after it, as it was
//! when they ran; expiry removes it once the load is over.
//!
//! A file that ends inside a command (or inside a transaction) is cut at
//! the end of the last whole command when it is the last file and
//! `aof-load-truncated` is on; any other damage stops the start with the
//! file, the offset and the reason, and no file is changed.

use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use ferrokey_formats::aof::{manifest_file_name, truncate_to, AofErrorKind, AofItem, AofReader, Manifest};

use super::{path_of, State};
use crate::client::{Client, ClientInfo};
use crate::command::{self, CommandSpec, Ctx};
use crate::persistence::load::{Duplicates, Loader};
use crate::persistence::LoadingInfo;
use crate::reply::Reply;
use crate::server::{unix_ms, ServerState};
use crate::{log_notice, log_verbose, log_warning};

/// Commands run between two returns to the event loop (clients get
/// -LOADING meanwhile), as Valkey serves events every 1024 commands.
const COMMANDS_PER_STEP: usize = 1024;
/// Keys of an RDB base loaded between two returns to the event loop.
const KEYS_PER_STEP: usize = 2000;
/// Redis 7.4's hash-field expiry commands, named when a file uses them.
const HASH_FIELD_EXPIRY: &[&str] = &["HEXPIRE", "HPEXPIRE", "HEXPIREAT", "HPEXPIREAT", "HPERSIST"];

/// Reads the manifest from `appenddirname`: an empty one when there is no
/// directory or no manifest, None (logged) when it is unreadable or bad.
pub fn read_manifest(st: &ServerState) -> Option<Manifest> {
    let dir = PathBuf::from(&st.config.appenddirname);
    if !dir.is_dir() {
        log_verbose!("The AOF directory {} doesn't exist", dir.display());
        return Some(Manifest::default());
    }
    let name = manifest_file_name(&st.config.appendfilename);
    let path = dir.join(path_of(&name));
    if !path.exists() {
        log_verbose!("The AOF manifest file {} doesn't exist", String::from_utf8_lossy(&name));
        return Some(Manifest::default());
    }
    match Manifest::load(&path) {
        Ok(m) => Some(m),
        Err(e) => {
            log_warning!("*** FATAL AOF MANIFEST FILE ERROR ***");
            if let Some((number, text)) = &e.line {
                log_warning!("Reading the manifest file, at line {number}");
                log_warning!(">>> '{}'", String::from_utf8_lossy(text));
            }
            log_warning!("{} ({})", e.reason(), path.display());
            None
        }
    }
}

/// One file to load.
struct Source {
    path: PathBuf,
    /// The name in messages (as in the manifest).
    name: String,
    /// "base" or "incr"; None for an old single-file AOF (whose RDB part
    /// is a "preamble").
    kind: Option<&'static str>,
}

/// Loads the AOF (upgrading an old single-file AOF) and opens the
/// journal. Returns false when the server must not start.
pub async fn load_and_open(state: &Rc<RefCell<ServerState>>) -> bool {
    let started = Instant::now();
    let (sources, upgrade, total) = {
        let st = state.borrow();
        let Some(aof) = st.aof.as_ref() else { return false };
        let dir = PathBuf::from(&st.config.appenddirname);
        let name = st.config.appendfilename.clone();
        let old_file = PathBuf::from(&name);
        let upgrade =
            old_file.is_file() && aof.manifest.old_style_upgrade_needed(&name, dir.is_dir(), dir.join(&name).exists());
        if upgrade {
            let size = std::fs::metadata(&old_file).map(|m| m.len()).unwrap_or(0);
            (vec![Source { path: old_file, name: name.clone(), kind: None }], true, size)
        } else {
            let total = match aof.manifest.check_files(&dir) {
                Ok(total) => total,
                Err(e) => {
                    log_warning!("Fatal error: {e}");
                    return false;
                }
            };
            let base = aof.manifest.base.iter().map(|info| (info, "base"));
            let sources = base
                .chain(aof.manifest.incr.iter().map(|info| (info, "incr")))
                .map(|(info, kind)| Source { path: info.path_in(&dir), name: info.name_lossy(), kind: Some(kind) })
                .collect();
            (sources, false, total)
        }
    };
    if !sources.is_empty() {
        let dir = state.borrow().config.appenddirname.clone();
        log_notice!("Loading the append only file from {dir} ({} files, {total} bytes)...", sources.len());
        state.borrow_mut().persistence.loading = Some(LoadingInfo::new(total));
        let loaded = load_files(state, &sources).await;
        let mut st = state.borrow_mut();
        st.persistence.loading = None;
        if !loaded {
            return false;
        }
        // Keys the replay created or touched carry the load's clock (0).
        let now_s = (unix_ms() / 1000) as u32;
        for db in st.dbs.iter_mut() {
            db.stamp_unset_access_times(now_s);
        }
        let keys: u64 = st.dbs.iter().map(|db| db.len() as u64).sum();
        log_notice!("Done loading AOF, keys in memory: {keys}.");
        log_notice!("DB loaded from append only file: {:.3} seconds", started.elapsed().as_secs_f64());
    }
    let mut st = state.borrow_mut();
    if upgrade && !upgrade_old_style(&mut st) {
        return false;
    }
    open_on_start(&mut st)
}

/// Loads every file in order.
async fn load_files(state: &Rc<RefCell<ServerState>>, sources: &[Source]) -> bool {
    let mut loaded_before = 0;
    for (i, source) in sources.iter().enumerate() {
        let last = i + 1 == sources.len();
        let started = Instant::now();
        let size = std::fs::metadata(&source.path).map(|m| m.len()).unwrap_or(0);
        if !load_file(state, source, last, loaded_before).await {
            return false;
        }
        if let Some(kind) = source.kind {
            log_notice!("DB loaded from {kind} file {}: {:.3} seconds", source.name, started.elapsed().as_secs_f64());
        }
        loaded_before += size;
    }
    true
}

/// Loads one file: an RDB part if it starts with one, then commands.
/// False when the start must stop (logged).
async fn load_file(state: &Rc<RefCell<ServerState>>, source: &Source, last: bool, loaded_before: u64) -> bool {
    let name = &source.name;
    let mut file = match File::open(&source.path) {
        Ok(f) => f,
        Err(e) => {
            log_warning!(
                "Fatal error: can't open the append log file {name} for reading: {}",
                super::journal::strerror(&e)
            );
            return false;
        }
    };
    if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return true;
    }
    let mut magic = [0u8; 5];
    let is_rdb = file.read_exact(&mut magic).is_ok() && &magic == b"REDIS";
    let mut tail_start = 0;
    if is_rdb {
        if source.kind.is_none() {
            log_notice!("Reading RDB preamble from AOF file...");
        } else {
            log_notice!("Reading RDB base file on AOF loading...");
        }
        let Some(end) = load_rdb_part(state, source, loaded_before).await else { return false };
        tail_start = end;
        if source.kind.is_none() {
            log_notice!("Reading the remaining AOF tail...");
        }
    }
    if let Err(e) = file.seek(SeekFrom::Start(tail_start)) {
        log_warning!("Unrecoverable error reading the append only file {name}: {}", super::journal::strerror(&e));
        return false;
    }
    replay(state, source, AofReader::new(file), tail_start, last, loaded_before).await
}

/// Loads the RDB part at the start of a file; returns where it ends.
async fn load_rdb_part(state: &Rc<RefCell<ServerState>>, source: &Source, loaded_before: u64) -> Option<u64> {
    let failed = |e: &dyn std::fmt::Display| {
        log_warning!("{e}");
        if source.kind.is_none() {
            log_warning!("Error reading the RDB preamble of the AOF file {}, AOF loading aborted", source.name);
        } else {
            log_warning!("Error reading the RDB base file {}, AOF loading aborted", source.name);
        }
    };
    let opened = Loader::open(&source.path, &state.borrow(), Duplicates::Refuse);
    let mut loader = match opened {
        Ok(Some(loader)) => loader,
        Ok(None) => {
            failed(&"the file disappeared");
            return None;
        }
        Err(e) => {
            failed(&e);
            return None;
        }
    };
    loader.keep_expired_keys();
    loop {
        let stepped = {
            let mut st = state.borrow_mut();
            let result = loader.step(&mut st, KEYS_PER_STEP);
            if let Some(info) = st.persistence.loading.as_mut() {
                info.loaded_bytes = loaded_before + loader.offset();
                info.rdb_used_mem = loader.rdb_used_mem;
            }
            if matches!(result, Ok(false)) {
                crate::persistence::log_loading_progress(&mut st);
            }
            result
        };
        match stepped {
            Ok(true) => break,
            Ok(false) => tokio::task::yield_now().await,
            Err(e) => {
                failed(&e);
                return None;
            }
        }
    }
    let end = loader.offset();
    let libraries = crate::persistence::LibrariesOnLoad::Replace;
    if let Err(e) = crate::persistence::finish_load(&mut state.borrow_mut(), loader, libraries) {
        failed(&e);
        return None;
    }
    Some(end)
}

/// A transaction read from the file, waiting for its EXEC.
struct Transaction {
    /// Where its MULTI starts (offset from `start` in [`replay`]).
    start: u64,
    queued: Vec<(&'static CommandSpec, Vec<Vec<u8>>)>,
}

fn log_bad_format(name: &str) {
    log_warning!(
        "Bad file format reading the append only file {name}: make a backup of your AOF file, then use \
         ./valkey-check-aof --fix <filename.manifest>"
    );
}

/// Runs the commands of a file from `start` (its first byte after any RDB
/// part), handling a damaged tail. Returns false when the start must stop.
async fn replay(
    state: &Rc<RefCell<ServerState>>,
    source: &Source,
    reader: AofReader<File>,
    start: u64,
    last: bool,
    loaded_before: u64,
) -> bool {
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut client = Client::new(Rc::new(ClientInfo::new(0, unspecified, unspecified, -1, 0, true)));
    client.no_blocking = true;
    let load_truncated = state.borrow().config.aof_load_truncated;
    let key_delay = crate::persistence::config_int(&state.borrow(), "key-load-delay");
    let mut replay = Replay {
        source,
        reader,
        start,
        last,
        load_truncated,
        key_delay,
        client,
        out: Reply::new(false),
        transaction: None,
    };
    loop {
        let finished = {
            let mut st = state.borrow_mut();
            let finished = replay.step(&mut st);
            if let Some(info) = st.persistence.loading.as_mut() {
                info.loaded_bytes = loaded_before + start + replay.reader.offset();
            }
            if finished.is_none() {
                crate::persistence::log_loading_progress(&mut st);
            }
            finished
        };
        match finished {
            Some(result) => return result,
            None => tokio::task::yield_now().await,
        }
    }
}

/// A file's commands being run.
struct Replay<'a> {
    source: &'a Source,
    reader: AofReader<File>,
    /// Offset of the reader's first byte in the file.
    start: u64,
    /// The last file of the AOF (only its tail may be cut).
    last: bool,
    load_truncated: bool,
    /// `key-load-delay`: a pause after each command, as Valkey makes.
    key_delay: i64,
    /// The client the commands run as: no connection, never blocking.
    client: Client,
    out: Reply,
    transaction: Option<Transaction>,
}

impl Replay<'_> {
    /// Runs up to [`COMMANDS_PER_STEP`] commands. None while there are
    /// more; at the end, whether the start may go on.
    fn step(&mut self, st: &mut ServerState) -> Option<bool> {
        let name = &self.source.name;
        let table = command::table();
        for _ in 0..COMMANDS_PER_STEP {
            let cmd = match self.reader.next_item() {
                Ok(Some(AofItem::Command(cmd))) => cmd,
                Ok(Some(AofItem::Annotation(_))) => continue,
                Ok(Some(AofItem::RdbPreamble)) => {
                    log_warning!("AOF {name}: offset {}: a second RDB file after the RDB part", self.start);
                    log_bad_format(name);
                    return Some(false);
                }
                Ok(None) => {
                    return Some(match &self.transaction {
                        None => true,
                        Some(t) => {
                            log_warning!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
                            self.cut_tail(self.start + t.start)
                        }
                    });
                }
                Err(e) => {
                    return Some(match e.kind {
                        AofErrorKind::Truncated => {
                            // A cut inside a transaction drops all of it.
                            let keep = self.reader.pending_multi().unwrap_or(e.valid_up_to);
                            self.cut_tail(self.start + keep)
                        }
                        AofErrorKind::Io(io) => {
                            log_warning!(
                                "Unrecoverable error reading the append only file {name}: {}",
                                super::journal::strerror(&io)
                            );
                            false
                        }
                        _ => {
                            log_warning!("AOF {name}: offset {}: {}", self.start + e.offset, e.reason());
                            log_bad_format(name);
                            false
                        }
                    });
                }
            };
            let args: Vec<&[u8]> = cmd.args.iter().map(Vec::as_slice).collect();
            let Ok(spec) = command::lookup(table, &args) else {
                let shown = String::from_utf8_lossy(&cmd.args[0]);
                log_warning!("Unknown command '{shown}' reading the append only file {name}");
                if HASH_FIELD_EXPIRY.iter().any(|c| shown.eq_ignore_ascii_case(c)) {
                    log_warning!("The file needs hash-field expiry (Redis 7.4), which Valkey 8 does not have");
                }
                return Some(false);
            };
            if command::check_arity(spec, args.len()).is_err() {
                let at = self.start + cmd.offset;
                log_warning!("AOF {name}: offset {at}: wrong number of arguments for '{}'", spec.name);
                log_bad_format(name);
                return Some(false);
            }
            match spec.name.as_str() {
                "multi" => self.transaction = Some(Transaction { start: cmd.offset, queued: Vec::new() }),
                "exec" => {
                    for (spec, queued) in self.transaction.take().map(|t| t.queued).unwrap_or_default() {
                        let args: Vec<&[u8]> = queued.iter().map(Vec::as_slice).collect();
                        run(st, &mut self.client, &mut self.out, spec, &args);
                    }
                }
                _ => match self.transaction.as_mut() {
                    Some(t) => t.queued.push((spec, cmd.args.clone())),
                    None => run(st, &mut self.client, &mut self.out, spec, &args),
                },
            }
            crate::persistence::debug_delay(self.key_delay);
        }
        None
    }

    /// The end of the file is damaged: cut at `keep` when allowed.
    fn cut_tail(&self, keep: u64) -> bool {
        let name = &self.source.name;
        if self.load_truncated {
            log_warning!("!!! Warning: short read while loading the AOF file {name}!!!");
            if !self.last {
                log_warning!("Fatal error: the truncated file is not the last file");
                return false;
            }
            log_warning!("!!! Truncating the AOF {name} at offset {keep} !!!");
            match truncate_to(&self.source.path, keep) {
                Ok(()) => {
                    log_warning!("AOF {name} loaded anyway because aof-load-truncated is enabled");
                    return true;
                }
                Err(e) => log_warning!("Error truncating the AOF file {name}: {}", super::journal::strerror(&e)),
            }
        }
        log_warning!(
            "Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF \
             file, then use ./valkey-check-aof --fix <filename.manifest>. 2) Alternatively you can set the \
             'aof-load-truncated' configuration option to yes and restart the server."
        );
        false
    }
}

/// Runs one command as the loading client: its reply is dropped, and so
/// is its error, as Valkey's loader ignores them.
fn run(st: &mut ServerState, client: &mut Client, out: &mut Reply, spec: &'static CommandSpec, args: &[&[u8]]) {
    if let Some(handler) = spec.handler {
        // The clock at 0: nothing is judged expired during the load.
        let mut ctx = Ctx { srv: st, client, out, now_ms: 0 };
        let _ = handler(&mut ctx, args);
    }
    out.buf.clear();
}

/// Moves an old single-file AOF into the AOF directory as the base of a
/// new manifest (Valkey's aofUpgradePrepare), once it loaded.
fn upgrade_old_style(st: &mut ServerState) -> bool {
    let dir = PathBuf::from(&st.config.appenddirname);
    let name = st.config.appendfilename.clone();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        log_warning!("Can't open or create append-only dir {}: {}", dir.display(), super::journal::strerror(&e));
        return false;
    }
    let manifest = Manifest::for_old_style_file(&name);
    if let Err(e) = manifest.write_to_dir(&dir, &name) {
        log_warning!("Can't persist the AOF manifest: {}", super::journal::strerror(&e));
        return false;
    }
    if let Err(e) = std::fs::rename(&name, dir.join(&name)) {
        log_warning!(
            "Error trying to move the old AOF file {name} into dir {}: {}",
            dir.display(),
            super::journal::strerror(&e)
        );
        return false;
    }
    log_notice!("Successfully migrated an old-style AOF file ({name}) into the AOF directory ({}).", dir.display());
    if let Some(aof) = st.aof.as_mut() {
        aof.manifest = manifest;
    }
    true
}

/// Opens the journal on the last incr file, creating a base when there is
/// none and an incr file when there is none, and persists the manifest
/// (Valkey's aofOpenIfNeededOnServerStart).
fn open_on_start(st: &mut ServerState) -> bool {
    let dir = PathBuf::from(&st.config.appenddirname);
    let name = st.config.appendfilename.clone();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        log_warning!("Can't open or create append-only dir {}: {}", dir.display(), super::journal::strerror(&e));
        return false;
    }
    let Some(aof) = st.aof.as_ref() else { return false };
    let mut manifest = aof.manifest.clone();
    if manifest.base.is_none() && manifest.incr.is_empty() {
        let base = manifest.new_base(&name, st.config.aof_use_rdb_preamble).clone();
        let temp = PathBuf::from(format!("temp-rewriteaof-{}.aof", std::process::id()));
        let written = super::base::write_base_file(st, &temp, st.config.aof_use_rdb_preamble, &mut || {})
            .and_then(|()| std::fs::rename(&temp, base.path_in(&dir)));
        if let Err(e) = written {
            log_warning!("Write error writing append only file on disk: {}", super::journal::strerror(&e));
            let _ = std::fs::remove_file(&temp);
            return false;
        }
        log_notice!("Creating AOF base file {} on server start", base.name_lossy());
    }
    let had_incr = !manifest.incr.is_empty();
    let incr = manifest.last_incr_or_new(&name).clone();
    let file = match super::open_for_append(&incr.path_in(&dir)) {
        Ok(f) => f,
        Err(e) => {
            log_warning!("Can't open the append-only file {}: {}", incr.name_lossy(), super::journal::strerror(&e));
            return false;
        }
    };
    if Some(&manifest) != st.aof.as_ref().map(|a| &a.manifest) {
        if let Err(e) = manifest.write_to_dir(&dir, &name) {
            log_warning!("Can't persist the AOF manifest: {}", super::journal::strerror(&e));
            return false;
        }
    }
    let size_of = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let base_size = manifest.base.as_ref().map_or(0, |b| size_of(&b.path_in(&dir)));
    let incr_sizes: u64 = manifest.incr.iter().map(|i| size_of(&i.path_in(&dir))).sum();
    let ServerState { aof, effects, .. } = st;
    let Some(aof) = aof.as_mut() else { return false };
    aof.manifest = manifest;
    if let Err(e) = aof.open_journal(file, effects) {
        log_warning!("Can't open the append-only file {}: {}", incr.name_lossy(), super::journal::strerror(&e));
        return false;
    }
    aof.state = State::On;
    aof.current_size = base_size + incr_sizes;
    aof.base_size = base_size;
    if had_incr {
        log_notice!("Opening AOF incr file {} on server start", incr.name_lossy());
    } else {
        log_notice!("Creating AOF incr file {} on server start", incr.name_lossy());
    }
    true
}
