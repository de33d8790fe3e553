//! RDB persistence, as Valkey 8 does it: the dataset is loaded from
//! `dir`/`dbfilename` at start, written by SAVE (in the engine thread) or
//! BGSAVE (in a forked child that writes the copy-on-write snapshot it
//! inherited, so the parent keeps serving), by the `save` points from the
//! server cron, and at shutdown.
//!
//! Function libraries are part of the dataset: each is saved as a FUNCTION2
//! record holding its code, and loading a file loads every library it holds
//! (one that fails to load fails the whole load, as in Valkey).
//!
//! `--load-rdb FILE` (a ferrokey flag, see [`split_load_rdb_arg`]) imports
//! FILE at start instead of what `dir` holds, then saves it to `dir` at once.

pub mod childinfo;
pub mod digest;
pub mod load;
pub mod rdb;
pub mod save;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::command::flags;
use crate::server::{unix_ms, ServerState, ShutdownMode};
use crate::{log_notice, log_warning};
use load::{Duplicates, Loader};

/// The reply to commands that need the dataset while it is being loaded.
pub const LOADING_ERROR: &str = "LOADING Valkey is loading the dataset in memory";
/// The reply to writes after a failed background save, when
/// `stop-writes-on-bgsave-error` is on.
pub const MISCONF_ERROR: &str = "MISCONF Valkey is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Valkey logs for details about the RDB error.";

/// After a failed background save, save points wait this long before
/// trying again (Valkey's CONFIG_BGSAVE_RETRY_DELAY).
const BGSAVE_RETRY_DELAY_S: i64 = 5;
/// Keys loaded between two returns to the event loop during the start-up load.
const KEYS_PER_LOAD_STEP: usize = 2000;
/// How often a long load logs its progress (Valkey does not; ours).
const LOADING_PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// A running BGSAVE child.
#[derive(Debug, Clone, Copy)]
pub struct SaveChild {
    pub pid: libc::pid_t,
    pub started_unix: i64,
    pub started: Instant,
}

/// Progress of the load in progress (INFO persistence `loading_*`).
#[derive(Debug, Clone, Copy)]
pub struct LoadingInfo {
    pub start_unix: i64,
    pub total_bytes: u64,
    pub loaded_bytes: u64,
    pub rdb_used_mem: u64,
    pub started: Instant,
    /// When progress was last logged (or the load started).
    pub last_progress_log: Instant,
}

impl LoadingInfo {
    pub fn new(total_bytes: u64) -> LoadingInfo {
        let now = Instant::now();
        LoadingInfo {
            start_unix: unix_s(),
            total_bytes,
            loaded_bytes: 0,
            rdb_used_mem: 0,
            started: now,
            last_progress_log: now,
        }
    }
}

/// Persistence state the server keeps (the last save time is
/// `ServerState::last_save_unix`, the change counter `ServerState::dirty`).
#[derive(Debug)]
pub struct Persistence {
    pub child: Option<SaveChild>,
    /// BGSAVE SCHEDULE asked for a save while an AOF rewrite ran: it
    /// starts once that ends.
    pub bgsave_scheduled: bool,
    /// Whether the last background save succeeded (`rdb_last_bgsave_status`).
    pub last_bgsave_ok: bool,
    /// When the last background save was attempted (Unix seconds).
    pub last_bgsave_try_unix: i64,
    /// Duration of the last background save in seconds, -1 before any.
    pub last_bgsave_seconds: i64,
    /// `dirty` when the running background save started: what it covers.
    pub dirty_before_bgsave: u64,
    /// SAVE and BGSAVE runs (`rdb_saves`).
    pub saves: u64,
    pub latest_fork_usec: u64,
    pub total_forks: u64,
    /// The running child's reports (BGSAVE or AOF rewrite: one at a time).
    pub child_info: Option<childinfo::Receiver>,
    pub child_stats: childinfo::ChildStats,
    /// Copy-on-write peak of the last successful BGSAVE and AOF rewrite.
    pub rdb_last_cow_size: u64,
    pub aof_last_cow_size: u64,
    /// Set while a file is being loaded.
    pub loading: Option<LoadingInfo>,
    pub last_load_keys_loaded: u64,
    pub last_load_keys_expired: u64,
    /// The function libraries (FUNCTION LOAD, FCALL).
    pub functions: crate::scripting::functions::Registry,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            child: None,
            bgsave_scheduled: false,
            last_bgsave_ok: true,
            last_bgsave_try_unix: 0,
            last_bgsave_seconds: -1,
            dirty_before_bgsave: 0,
            saves: 0,
            latest_fork_usec: 0,
            total_forks: 0,
            child_info: None,
            child_stats: Default::default(),
            rdb_last_cow_size: 0,
            aof_last_cow_size: 0,
            loading: None,
            last_load_keys_loaded: 0,
            last_load_keys_expired: 0,
            functions: Default::default(),
        }
    }
}

/// The CONFIG GET text of a directive.
pub(crate) fn config_text(st: &ServerState, name: &str) -> String {
    st.config.get(&[name.as_bytes()]).into_iter().next().map(|(_, v)| v).unwrap_or_default()
}

/// A yes/no directive.
pub(crate) fn config_flag(st: &ServerState, name: &str) -> bool {
    config_text(st, name) == "yes"
}

/// An integer directive.
pub(crate) fn config_int(st: &ServerState, name: &str) -> i64 {
    config_text(st, name).parse().unwrap_or(0)
}

/// The pause of Valkey's `key-load-delay` and `rdb-key-save-delay` (hidden
/// directives its own tests use to make loads and saves last): `usec`
/// microseconds, or when negative a 1 µs pause once in `-usec` calls.
pub(crate) fn debug_delay(usec: i64) {
    let usec = match usec {
        0 => return,
        n if n < 0 => rand::random::<u64>().is_multiple_of(n.unsigned_abs()) as u64,
        n => n as u64,
    };
    if usec > 0 {
        std::thread::sleep(Duration::from_micros(usec));
    }
}

/// The RDB file, relative to the working directory (which is `dir`).
pub fn rdb_path(st: &ServerState) -> PathBuf {
    PathBuf::from(&st.config.dbfilename)
}

fn unix_s() -> i64 {
    unix_ms() / 1000
}

// ---------------------------------------------------------------------------
// Refusals while loading or after a failed save
// ---------------------------------------------------------------------------

/// The error a command gets before it runs, if any: MISCONF for writes (and
/// PING) after a failed background save with `stop-writes-on-bgsave-error`
/// and save points, or while the AOF cannot be written; LOADING for
/// commands not allowed during a load.
pub fn refusal(st: &ServerState, name: &str, command_flags: u32) -> Option<&'static str> {
    let write_like = command_flags & flags::WRITE != 0 || name == "ping";
    if write_like && bgsave_error_refuses_writes(st) {
        return Some(MISCONF_ERROR);
    }
    if write_like {
        if let Some(refused) = crate::aof::write_refusal(st) {
            return Some(refused);
        }
    }
    if st.persistence.loading.is_some() && command_flags & flags::LOADING == 0 {
        return Some(LOADING_ERROR);
    }
    None
}

/// Whether writes are refused because the last background save failed.
fn bgsave_error_refuses_writes(st: &ServerState) -> bool {
    !st.persistence.last_bgsave_ok && !st.config.save.is_empty() && config_flag(st, "stop-writes-on-bgsave-error")
}

/// Records how the last save went (`rdb_last_bgsave_status`). When that
/// makes writes refused (MISCONF) or accepted again, says so in the log,
/// with the cause: Valkey logs the failure, ferrokey also the refusal.
fn set_bgsave_status(st: &mut ServerState, outcome: Result<(), &str>) {
    let refused_before = bgsave_error_refuses_writes(st);
    st.persistence.last_bgsave_ok = outcome.is_ok();
    match outcome {
        Err(cause) if !refused_before && bgsave_error_refuses_writes(st) => {
            log_warning!("Writes are refused (MISCONF) because the last background save failed: {cause}");
        }
        Ok(()) if refused_before => log_notice!("RDB save error looks solved. The server can write again."),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Saving
// ---------------------------------------------------------------------------

/// A synchronous save to `dbfilename` (SAVE, DEBUG RELOAD, imports): on
/// success the change counter restarts and the save time is now.
pub fn save_now(st: &mut ServerState) -> Result<(), String> {
    let target = rdb_path(st);
    save::write_file_atomically(st, &save::temp_file_name(std::process::id()), &target, &mut || {})?;
    st.dirty = 0;
    st.last_save_unix = unix_s();
    set_bgsave_status(st, Ok(()));
    Ok(())
}

/// After FLUSHALL, as Valkey does: a running BGSAVE (of the old data) is
/// killed, and with save points the now empty dataset is saved at once, so
/// a restart cannot bring the flushed keys back from an older dump.
pub fn after_flushall(st: &mut ServerState) {
    if st.persistence.child.is_some() {
        kill_child(st);
        st.persistence.child = None;
        childinfo::child_ended(st, childinfo::ChildKind::Rdb);
    }
    if !st.config.save.is_empty() {
        if let Err(e) = save_now(st) {
            log_warning!("Error saving the DB after FLUSHALL: {e}");
        }
    }
}

/// Why a background save did not start.
#[derive(Debug, PartialEq, Eq)]
pub enum BgsaveError {
    AlreadyRunning,
    /// An AOF rewrite child runs (one child at a time).
    AnotherChild,
    ForkFailed,
}

/// Starts a background save in a forked child.
pub fn start_bgsave(st: &mut ServerState) -> Result<libc::pid_t, BgsaveError> {
    if st.persistence.child.is_some() {
        return Err(BgsaveError::AlreadyRunning);
    }
    if crate::aof::rewrite_in_progress(st) {
        return Err(BgsaveError::AnotherChild);
    }
    st.persistence.bgsave_scheduled = false;
    st.persistence.saves += 1;
    st.persistence.dirty_before_bgsave = st.dirty;
    st.persistence.last_bgsave_try_unix = unix_s();
    let target = rdb_path(st);
    let mut pipe = childinfo::open_pipe();
    let forked_at = Instant::now();
    let forked = {
        let st: &ServerState = st;
        let pipe = &mut pipe;
        fork_child(|| {
            let mut reporter = pipe.take().map(|p| p.into_reporter(childinfo::ChildKind::Rdb));
            let temp = save::temp_file_name(std::process::id());
            let mut on_key = || {
                if let Some(r) = reporter.as_mut() {
                    r.key_written();
                }
            };
            let saved = save::write_file_atomically(st, &temp, &target, &mut on_key);
            match (&saved, reporter.as_mut()) {
                (Ok(()), Some(r)) => {
                    r.succeeded();
                    0
                }
                (Err(cause), Some(r)) => {
                    r.failed(cause);
                    1
                }
                (result, None) => result.is_err() as i32,
            }
        })
    };
    match forked {
        Err(e) => {
            let e = crate::aof::strerror(&e);
            log_warning!("Can't save in background: fork: {e}");
            set_bgsave_status(st, Err(&format!("fork: {e}")));
            Err(BgsaveError::ForkFailed)
        }
        Ok(pid) => {
            st.persistence.latest_fork_usec = forked_at.elapsed().as_micros() as u64;
            st.persistence.total_forks += 1;
            st.persistence.child = Some(SaveChild { pid, started_unix: unix_s(), started: Instant::now() });
            childinfo::child_started(st, pipe);
            log_notice!("Background saving started by pid {pid}");
            Ok(pid)
        }
    }
}

/// Forks a child (BGSAVE, AOF rewrite, snapshot transfer) that closes the
/// sockets it inherited, runs `work` and exits with the status it returns
/// (1 if it panics); returns the child's pid to the parent.
pub(crate) fn fork_child(work: impl FnOnce() -> i32) -> std::io::Result<libc::pid_t> {
    // SAFETY: fork duplicates only this (the engine) thread. The child
    // reads the state it inherited, writes with blocking std I/O
    // (allocating through jemalloc, whose fork handlers leave it usable),
    // and leaves with _exit: it never returns into the event loop or
    // touches the runtime, and no lock another thread could hold is taken
    // on its path (the log writes without locks in a child).
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            close_inherited_sockets();
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or(1);
            // SAFETY: ends the child at once, without running the parent's
            // destructors or exit handlers.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid),
    }
}

/// In a BGSAVE (or AOF rewrite) child: closes the listening and client
/// sockets it inherited, so that a port is free again as soon as the
/// parent lets it go, even while the child is still writing.
fn close_inherited_sockets() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<libc::c_int> =
        entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|&fd| fd > 2).collect();
    for fd in fds {
        // SAFETY: fstat into a zeroed stat buffer, and close of a socket
        // descriptor this process owns and will not use again.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK {
                libc::close(fd);
            }
        }
    }
}

/// Called from the server cron: reaps a finished BGSAVE child, and
/// otherwise starts a background save when a save point is reached.
pub fn cron(st: &mut ServerState) {
    if st.persistence.child.is_some() {
        childinfo::receive(st);
        reap_child(st);
        return;
    }
    if st.persistence.loading.is_some() || crate::aof::rewrite_in_progress(st) {
        return;
    }
    let now = unix_s();
    let retry_allowed =
        st.persistence.last_bgsave_ok || now - st.persistence.last_bgsave_try_unix > BGSAVE_RETRY_DELAY_S;
    if st.persistence.bgsave_scheduled && retry_allowed {
        let _ = start_bgsave(st);
        return;
    }
    let due = st
        .config
        .save
        .iter()
        .find(|&&(seconds, changes)| st.dirty >= changes && now - st.last_save_unix > seconds as i64)
        .copied();
    if let Some((seconds, changes)) = due.filter(|_| retry_allowed) {
        log_notice!("{changes} changes in {seconds} seconds. Saving...");
        let _ = start_bgsave(st);
    }
}

fn reap_child(st: &mut ServerState) {
    let Some(child) = st.persistence.child else { return };
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid on our own child, with a valid status pointer.
    let r = unsafe { libc::waitpid(child.pid, &mut status, libc::WNOHANG) };
    if r == 0 {
        return;
    }
    let end = unix_s();
    let report = childinfo::child_ended(st, childinfo::ChildKind::Rdb);
    if r == -1 {
        let e = std::io::Error::last_os_error();
        log_warning!("waitpid() returned an error: {e}. child_type: RDB, child_pid = {}", child.pid);
        set_bgsave_status(st, Err(&format!("waitpid: {e}")));
    } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        log_notice!("Background saving terminated with success");
        st.dirty = st.dirty.saturating_sub(st.persistence.dirty_before_bgsave);
        st.last_save_unix = end;
        set_bgsave_status(st, Ok(()));
    } else if libc::WIFEXITED(status) {
        log_warning!("Background saving error");
        let code = libc::WEXITSTATUS(status);
        let cause = report.failure.unwrap_or_else(|| format!("the child exited with status {code}"));
        set_bgsave_status(st, Err(&cause));
    } else {
        let signal = libc::WTERMSIG(status);
        log_warning!("Background saving terminated by signal {signal}");
        let _ = std::fs::remove_file(save::temp_file_name(child.pid as u32));
        // SIGUSR1 is how a save is cancelled on purpose: not an error.
        if signal != libc::SIGUSR1 {
            set_bgsave_status(st, Err(&format!("the child was terminated by signal {signal}")));
        }
    }
    log_notice!(
        "Background saving by pid {} ended after {:.3} seconds (copy-on-write peak {} MB)",
        child.pid,
        child.started.elapsed().as_secs_f64(),
        report.cow_peak >> 20
    );
    st.persistence.last_bgsave_seconds = end - child.started_unix;
    st.persistence.child = None;
}

/// Stops a running BGSAVE child (SIGUSR1, as a deliberate cancel), waits
/// for it and removes its temporary file.
fn kill_child(st: &ServerState) {
    if let Some(child) = st.persistence.child {
        // SAFETY: signals and reaps our own child.
        unsafe {
            libc::kill(child.pid, libc::SIGUSR1);
            let mut status = 0;
            libc::waitpid(child.pid, &mut status, 0);
        }
        let _ = std::fs::remove_file(save::temp_file_name(child.pid as u32));
    }
}

/// What shutdown does for persistence: a running BGSAVE child is killed,
/// and the dataset is saved when save points exist (or SHUTDOWN SAVE asked,
/// and not SHUTDOWN NOSAVE). Returns false when that save failed.
pub fn before_exit(st: &ServerState) -> bool {
    if st.persistence.child.is_some() {
        log_warning!("There is a child saving an .rdb. Killing it!");
        kill_child(st);
    }
    let save = match st.shutdown {
        Some(ShutdownMode::NoSave) => false,
        Some(ShutdownMode::Save) => true,
        _ => !st.config.save.is_empty(),
    };
    if !save || st.persistence.loading.is_some() {
        return true;
    }
    log_notice!("Saving the final RDB snapshot before exiting.");
    let target = rdb_path(st);
    match save::write_file_atomically(st, &save::temp_file_name(std::process::id()), &target, &mut || {}) {
        Ok(()) => true,
        Err(_) => {
            log_warning!("Error trying to save the DB before exiting: changes since the last save are lost.");
            false
        }
    }
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

static IMPORT_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Takes `--load-rdb FILE` out of the command line (it is ferrokey's, not a
/// Valkey directive) and returns the other arguments and FILE, made
/// absolute against the current directory (the server changes into `dir`
/// before it loads).
pub fn split_load_rdb_arg(args: Vec<String>) -> Result<(Vec<String>, Option<PathBuf>), String> {
    let mut rest = Vec::with_capacity(args.len());
    let mut file = None;
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        if arg == "--load-rdb" {
            let path = iter.next().filter(|p| !p.is_empty()).ok_or("--load-rdb needs a file name")?;
            let path = PathBuf::from(path);
            let absolute = if path.is_absolute() {
                path
            } else {
                std::env::current_dir().map_err(|e| format!("--load-rdb: {e}"))?.join(path)
            };
            file = Some(absolute);
        } else {
            rest.push(arg);
        }
    }
    Ok((rest, file))
}

/// Records the file `--load-rdb` named, for the start-up load.
pub fn set_import_file(path: PathBuf) {
    let _ = IMPORT_FILE.set(path);
}

/// What loading a file does with the function libraries in memory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LibrariesOnLoad {
    /// They go: the file's replace them (a full load).
    Replace,
    /// They stay; a library of the file with the same name is an error.
    Keep,
    /// They stay, except those the file has a library of the same name for.
    Merge,
}

/// Ends a load: the counts, and the file's function libraries, each
/// compiled and run. Fails with the reason when one of them cannot load.
pub(crate) fn finish_load(st: &mut ServerState, loader: Loader, libraries: LibrariesOnLoad) -> Result<(), String> {
    st.persistence.last_load_keys_loaded = loader.keys_loaded;
    st.persistence.last_load_keys_expired = loader.keys_expired;
    let failed = |e: Vec<u8>| format!("Failed loading library, {}", String::from_utf8_lossy(&e));
    let loaded = crate::scripting::functions::Registry::from_codes(loader.functions).map_err(failed)?;
    if libraries == LibrariesOnLoad::Replace {
        st.persistence.functions = loaded;
        return Ok(());
    }
    st.persistence.functions.join(loaded, libraries == LibrariesOnLoad::Merge).map_err(failed)
}

/// The start-up load: `--load-rdb FILE` if given, else `dir`/`dbfilename`
/// unless the append only file is in use. Clients are answered (-LOADING)
/// between steps. Returns false when the server must not start: the file
/// could not be read or is corrupt, or the import could not be saved.
/// Nothing is written unless the whole load succeeded.
pub async fn load_at_start(state: &Rc<RefCell<ServerState>>) -> bool {
    let import = IMPORT_FILE.get().cloned();
    if import.is_none() && state.borrow().config.appendonly {
        return true;
    }
    let path = import.clone().unwrap_or_else(|| rdb_path(&state.borrow()));
    let started = Instant::now();
    let opened = Loader::open(&path, &state.borrow(), Duplicates::Refuse);
    let mut loader = match opened {
        Ok(Some(loader)) => loader,
        Ok(None) if import.is_some() => {
            log_warning!(
                "Fatal error: can't open the RDB file {} for reading: No such file or directory",
                path.display()
            );
            return false;
        }
        Ok(None) => return true,
        Err(e) => {
            log_warning!("Fatal error loading the DB ({e}). Exiting.");
            return false;
        }
    };
    log_notice!("Loading the RDB file {} ({} bytes)...", path.display(), loader.total_bytes);
    state.borrow_mut().persistence.loading = Some(LoadingInfo::new(loader.total_bytes));
    loop {
        let stepped = {
            let mut st = state.borrow_mut();
            let result = loader.step(&mut st, KEYS_PER_LOAD_STEP);
            if let Some(info) = st.persistence.loading.as_mut() {
                info.loaded_bytes = loader.offset();
                info.rdb_used_mem = loader.rdb_used_mem;
            }
            if matches!(result, Ok(false)) {
                log_loading_progress(&mut st);
            }
            result
        };
        match stepped {
            Ok(true) => break,
            Ok(false) => tokio::task::yield_now().await,
            Err(e) => {
                log_warning!("Fatal error loading the DB ({e}). Exiting.");
                return false;
            }
        }
    }
    let mut st = state.borrow_mut();
    st.persistence.loading = None;
    if let Err(e) = finish_load(&mut st, loader, LibrariesOnLoad::Replace) {
        log_warning!("Fatal error loading the DB ({e}). Exiting.");
        return false;
    }
    log_notice!("DB loaded from disk: {:.3} seconds", started.elapsed().as_secs_f64());
    if let Some(file) = import {
        if save_now(&mut st).is_err() {
            log_warning!("Fatal error: the data imported from {} could not be saved. Exiting.", file.display());
            return false;
        }
        log_notice!("Imported {} into {}", file.display(), rdb_path(&st).display());
    }
    true
}

/// Every [`LOADING_PROGRESS_INTERVAL`] of a load, a line with how far it
/// got (ferrokey's: Valkey logs only the start and the end). The share
/// read is of bytes, the time left extrapolates the pace so far.
pub(crate) fn log_loading_progress(st: &mut ServerState) {
    let Some(info) = st.persistence.loading.as_mut() else { return };
    if info.last_progress_log.elapsed() < LOADING_PROGRESS_INTERVAL {
        return;
    }
    info.last_progress_log = Instant::now();
    let info = *info;
    let keys: u64 = st.dbs.iter().map(|db| db.len() as u64).sum();
    let elapsed = info.started.elapsed().as_secs_f64();
    let read = info.loaded_bytes.min(info.total_bytes) as f64;
    let total = info.total_bytes as f64;
    let percent = if total > 0.0 { read * 100.0 / total } else { 0.0 };
    let left = if read > 0.0 { elapsed * (total - read) / read } else { 0.0 };
    const MB: f64 = 1024.0 * 1024.0;
    log_notice!(
        "Loading: {percent:.1}% ({:.1} MB of {:.1} MB), {keys} keys in memory, {elapsed:.0} seconds so far, about \
         {left:.0} seconds left",
        read / MB,
        total / MB
    );
}

/// DEBUG RELOAD: save (unless `save` is false), empty the dataset (unless
/// `flush` is false), and load the file again in one go; with `merge`,
/// keys of the file replace those in memory instead of being an error.
pub fn reload(st: &mut ServerState, save: bool, flush: bool, merge: bool) -> Result<(), &'static str> {
    if st.persistence.loading.is_some() {
        return Err(LOADING_ERROR);
    }
    if save && save_now(st).is_err() {
        return Err("ERR");
    }
    if flush {
        for db in st.dbs.iter_mut() {
            drop(db.clear());
        }
    }
    let duplicates = if merge { Duplicates::Replace } else { Duplicates::Refuse };
    let path = rdb_path(st);
    const FAILED: &str = "ERR Error trying to load the RDB dump, check server logs.";
    let mut loader = match Loader::open(&path, st, duplicates) {
        Ok(Some(loader)) => loader,
        Ok(None) => return Err(FAILED),
        Err(e) => {
            log_warning!("Failed loading the DB: {e}");
            return Err(FAILED);
        }
    };
    if let Err(e) = loader.run_to_end(st) {
        log_warning!("Failed loading the DB: {e}");
        return Err(FAILED);
    }
    let libraries = match (flush, merge) {
        (true, _) => LibrariesOnLoad::Replace,
        (false, true) => LibrariesOnLoad::Merge,
        (false, false) => LibrariesOnLoad::Keep,
    };
    if let Err(e) = finish_load(st, loader, libraries) {
        log_warning!("Failed loading the DB: {e}");
        return Err(FAILED);
    }
    log_notice!("DB reloaded by DEBUG RELOAD");
    Ok(())
}
