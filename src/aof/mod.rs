//! The append-only file: Valkey 7+'s multi-part journal.
//!
//! `appenddirname` holds a base file (the dataset when the last rewrite
//! ran: an RDB file or commands), incr files (the commands since), and
//! the manifest naming them. While `appendonly` is on, every execution
//! unit's effects ([`crate::effects`]) are appended to the last incr file
//! ([`feed`]); replies wait until the journal covers them
//! ([`durability_wait`]: written, and with `appendfsync always` also
//! fsynced; see journal.rs for the group commit). WAITAOF waits for more:
//! the fsync of its client's last write whatever the policy
//! ([`fsynced_offset`], [`release_on_fsync`]). The parts:
//! - journal.rs: the open incr file, its buffer, writes and fsyncs;
//! - load.rs: the start-up load (manifest, base, incr files, truncated
//!   tails, the upgrade of an old single-file AOF) and opening the journal;
//! - rewrite.rs: BGREWRITEAOF in a forked child, automatic rewrites;
//! - base.rs: writing a base file (RDB preamble or commands).
//!
//! `ServerState::aof` is set by the start-up ([`load_at_start`]) and kept
//! whether journalling is on or off: the manifest, the rewrite child and
//! the counters INFO reports live there too; [`Aof::journal`] is the part
//! that exists only while journalling.

mod base;
mod journal;
mod load;
mod rewrite;

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use ferrokey_formats::aof::{temp_incr_file_name, Manifest};
use tokio::sync::{oneshot, Notify};

use crate::config::AppendFsync;
use crate::effects::Unit;
use crate::server::{unix_ms, ServerState};
use crate::{log_notice, log_warning};
pub(crate) use journal::strerror;
use journal::{Journal, Shared, Syncer};

/// How long writes may wait for a slow background fsync under
/// `appendfsync everysec` before they go ahead anyway (Valkey's rule).
const MAX_POSTPONE_MS: i64 = 2000;
/// Write errors are logged at most this often (seconds).
const WRITE_ERROR_LOG_INTERVAL_S: i64 = 30;

/// Where journalling stands (Valkey's aof_state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Off,
    /// Turned on at runtime: the first base is being written; commands go
    /// to a temporary incr file that becomes part of the AOF with it.
    WaitRewrite,
    On,
}

/// The AOF's state (see the module documentation).
pub struct Aof {
    state: State,
    /// The manifest in force, as on disk.
    manifest: Manifest,
    /// The incr file being appended to, while journalling. A RefCell so
    /// that shutdown, which only sees the server state shared, can still
    /// write out the buffer.
    journal: Option<RefCell<Journal>>,
    syncer: Option<Syncer>,
    /// Wakes the flusher task (see [`flusher`]).
    wake: Rc<Notify>,
    /// Wakes the task releasing WAITAOF's waiters (see
    /// [`release_on_fsync`]): the fsynced offset grew, or what counts as
    /// fsynced changed with the AOF's state.
    fsync_progress: std::sync::Arc<Notify>,
    /// Where the next journal's offsets start: the end of the last one.
    journal_end: u64,
    child: Option<rewrite::RewriteChild>,
    rewrite_scheduled: bool,
    last_rewrite_ok: bool,
    /// Duration of the last rewrite in seconds, -1 before any.
    last_rewrite_secs: i64,
    rewrites: u64,
    consecutive_failures: u64,
    limit_delay_minutes: i64,
    limit_until_unix: i64,
    /// Size of the base and incr files (aof_current_size), and that size
    /// when the last rewrite ended (aof_base_size): automatic rewrites
    /// compare the two.
    current_size: u64,
    base_size: u64,
    /// Writes that stopped waiting for a slow fsync (aof_delayed_fsync).
    delayed_fsync: u64,
    /// The errno of the failing write, while writes fail (everysec, no).
    write_error: Option<i32>,
    last_error_log_unix: i64,
}

impl Aof {
    fn new(manifest: Manifest) -> Aof {
        Aof {
            state: State::Off,
            manifest,
            journal: None,
            syncer: None,
            wake: Rc::new(Notify::new()),
            fsync_progress: std::sync::Arc::new(Notify::new()),
            journal_end: 0,
            child: None,
            rewrite_scheduled: false,
            last_rewrite_ok: true,
            last_rewrite_secs: -1,
            rewrites: 0,
            consecutive_failures: 0,
            limit_delay_minutes: 0,
            limit_until_unix: 0,
            current_size: 0,
            base_size: 0,
            delayed_fsync: 0,
            write_error: None,
            last_error_log_unix: 0,
        }
    }

    /// Starts journalling into `file`: effects are collected from now on.
    fn open_journal(&mut self, file: std::fs::File, effects: &mut crate::effects::Effects) -> std::io::Result<()> {
        if self.syncer.is_none() {
            self.syncer = Some(Syncer::start(self.fsync_progress.clone())?);
        }
        self.journal = Some(RefCell::new(Journal::new(file, self.journal_end)?));
        effects.enabled = true;
        Ok(())
    }

    /// Whether the rewrite child runs.
    pub fn rewrite_in_progress(&self) -> bool {
        self.child.is_some()
    }

    /// Has WAITAOF's waiters looked at again: what counts as fsynced
    /// changed.
    fn recheck_fsync_waiters(&self) {
        self.fsync_progress.notify_one();
    }
}

/// `name` (bytes from the configuration or a manifest) as a path.
fn path_of(name: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(name))
}

/// Opens an incr file for appending (created if missing).
fn open_for_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().append(true).create(true).open(path)
}

// ---------------------------------------------------------------------------
// Appending and durability
// ---------------------------------------------------------------------------

/// Appends the effects of one execution unit (see effects.rs); returns
/// the journal offset after them, which WAITAOF waits for when the unit
/// was a client's.
pub fn feed(st: &mut ServerState, unit: Unit) -> u64 {
    let timestamp = st.config.aof_timestamp_enabled.then(|| unix_ms() / 1000);
    let mut end = 0;
    if let Some(journal) = st.aof.as_mut().and_then(|a| a.journal.as_mut()) {
        let journal = journal.get_mut();
        journal.append_unit(&unit, timestamp);
        end = journal.appended;
    }
    st.effects.recycle(unit);
    end
}

/// The journal offset up to which writes count as fsynced to the AOF, for
/// WAITAOF (Valkey's fsynced_reploff): None while the AOF is off, and
/// while it waits for its first base only a client that wrote nothing is
/// covered (offset 0), once the rewrite producing that base runs.
pub fn fsynced_offset(st: &ServerState) -> Option<u64> {
    let aof = st.aof.as_ref()?;
    match aof.state {
        State::Off => None,
        State::WaitRewrite => aof.child.is_some().then_some(0),
        State::On => Some(aof.syncer.as_ref().map_or(0, Syncer::fsynced)),
    }
}

/// The task that hands WAITAOF's waiters their replies once the fsync
/// their writes waited for completed (or the AOF was turned off).
async fn release_on_fsync(state: Weak<RefCell<ServerState>>, progress: std::sync::Arc<Notify>) {
    loop {
        progress.notified().await;
        let Some(state) = state.upgrade() else { return };
        crate::commands::replication::release_aof_waiters(&mut state.borrow_mut());
    }
}

/// What a connection must wait for before it sends the replies of the
/// batch it just ran: the journal write (and, with `appendfsync always`,
/// the fsync) covering everything appended so far, its own effects and
/// any it may have observed. None when nothing needs waiting for.
pub fn durability_wait(state: &Rc<RefCell<ServerState>>) -> Option<Pin<Box<dyn Future<Output = bool>>>> {
    let st = state.borrow();
    let aof = st.aof.as_ref()?;
    let journal = aof.journal.as_ref()?.borrow();
    let target = journal.appended;
    if target <= journal.shared.durable.get() {
        return None;
    }
    aof.wake.notify_one();
    let shared = journal.shared.clone();
    Some(Box::pin(async move {
        loop {
            let released = shared.released.notified();
            if shared.durable.get() >= target {
                return true;
            }
            released.await;
        }
    }))
}

/// What one flush left to wait for.
enum Flush {
    Done,
    /// The fsync covering `end` runs in the fsync thread.
    Syncing {
        result: oneshot::Receiver<std::io::Result<()>>,
        shared: Rc<Shared>,
        end: u64,
    },
    /// Writing waits for the running background fsync (everysec), at most
    /// until `until`.
    Postponed {
        until: Instant,
        done: std::sync::Arc<Notify>,
    },
}

/// The flusher task: writes the buffer for every connection waiting,
/// once per loop turn (see journal.rs).
async fn flusher(state: Weak<RefCell<ServerState>>, wake: Rc<Notify>) {
    loop {
        wake.notified().await;
        // Let every connection that is ready in this turn append first.
        tokio::task::yield_now().await;
        let Some(state) = state.upgrade() else { return };
        loop {
            let step = flush(&mut state.borrow_mut(), false);
            match step {
                Flush::Done => break,
                Flush::Syncing { result, shared, end } => {
                    match result.await {
                        Ok(Ok(())) => shared.publish(end),
                        Ok(Err(e)) => {
                            log_warning!(
                                "Can't persist AOF for fsync error when the AOF fsync policy is 'always': {}. \
                                 Exiting...",
                                journal::strerror(&e)
                            );
                            std::process::exit(1);
                        }
                        Err(_) => {
                            log_warning!("The AOF fsync thread is gone. Exiting...");
                            std::process::exit(1);
                        }
                    }
                    break;
                }
                Flush::Postponed { until, done } => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until.into()) => {}
                        _ = done.notified() => {}
                    }
                }
            }
        }
    }
}

/// Writes the buffer and starts the fsync the policy asks for (Valkey's
/// flushAppendOnlyFile). `force` writes even while a background fsync
/// runs.
fn flush(st: &mut ServerState, force: bool) -> Flush {
    let policy = st.config.appendfsync;
    let skip_fsync = st.config.no_appendfsync_on_rewrite && rewrite::child_active(st);
    let now = unix_ms();
    let Some(aof) = st.aof.as_mut() else { return Flush::Done };
    let Some(journal_cell) = aof.journal.as_mut() else { return Flush::Done };
    let journal = journal_cell.get_mut();
    let Some(syncer) = aof.syncer.as_ref() else { return Flush::Done };
    let syncing = syncer.pending() > 0;
    if journal.buf.is_empty() {
        // Nothing new: still make sure what was written gets its fsync.
        if policy == AppendFsync::EverySec
            && journal.fsynced_size != journal.incr_size
            && now - journal.last_fsync_ms >= 1000
            && !syncing
        {
            syncer.background(journal.file.clone(), journal.written());
            journal.fsynced_size = journal.incr_size;
            journal.last_fsync_ms = now;
        } else if policy == AppendFsync::Always && journal.fsynced_size != journal.incr_size && !skip_fsync {
            journal.fsynced_size = journal.incr_size;
            journal.last_fsync_ms = now;
            let end = journal.appended;
            return Flush::Syncing {
                result: syncer.with_reply(journal.file.clone(), end),
                shared: journal.shared.clone(),
                end,
            };
        }
        let end = journal.appended;
        journal.shared.publish(end);
        return Flush::Done;
    }
    if policy == AppendFsync::EverySec && !force && syncing {
        if journal.postponed_since_ms == 0 {
            journal.postponed_since_ms = now;
        }
        let waited = now - journal.postponed_since_ms;
        if waited < MAX_POSTPONE_MS {
            let until = Instant::now() + Duration::from_millis((MAX_POSTPONE_MS - waited) as u64);
            return Flush::Postponed { until, done: syncer.done.clone() };
        }
        aof.delayed_fsync += 1;
        log_notice!(
            "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for \
             fsync to complete, this may slow down the server."
        );
    }
    journal.postponed_since_ms = 0;
    let end = journal.appended;
    match journal.write_buffer() {
        Ok(written) => {
            aof.current_size += written as u64;
            if aof.write_error.take().is_some() {
                journal::log_write_recovered();
            }
        }
        Err(failure) => {
            if now / 1000 - aof.last_error_log_unix > WRITE_ERROR_LOG_INTERVAL_S {
                aof.last_error_log_unix = now / 1000;
                failure.log();
            }
            if let Some(short) = &failure.short {
                aof.current_size += short.kept as u64;
            }
            if policy == AppendFsync::Always {
                // The changes are in memory and maybe already observed:
                // they cannot be taken back, and without the journal they
                // would be lost at the next restart.
                log_warning!("Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
                std::process::exit(1);
            }
            // Kept in the buffer and tried again; writes are refused
            // meanwhile (MISCONF). What was acknowledged is not lost as
            // long as the server runs.
            if aof.write_error.is_none() {
                let file = journal_file_name(&aof.manifest, aof.state, &st.config.appendfilename);
                log_warning!(
                    "Writes are refused (MISCONF) until the AOF file {}/{file} can be written again: {}",
                    st.config.appenddirname,
                    journal::errno_text(failure.errno())
                );
            }
            aof.write_error = Some(failure.errno());
            journal.shared.publish(end);
            return Flush::Done;
        }
    }
    if skip_fsync {
        journal.shared.publish(end);
        return Flush::Done;
    }
    match policy {
        AppendFsync::Always => {
            journal.fsynced_size = journal.incr_size;
            journal.last_fsync_ms = now;
            let result = syncer.with_reply(journal.file.clone(), end);
            Flush::Syncing { result, shared: journal.shared.clone(), end }
        }
        AppendFsync::EverySec => {
            if now - journal.last_fsync_ms >= 1000 {
                if !syncing {
                    syncer.background(journal.file.clone(), end);
                    journal.fsynced_size = journal.incr_size;
                }
                journal.last_fsync_ms = now;
            }
            journal.shared.publish(end);
            Flush::Done
        }
        AppendFsync::No => {
            journal.shared.publish(end);
            Flush::Done
        }
    }
}

/// Writes the buffer now and, unless the policy is `no`, fsyncs the file
/// before returning (stopping the journal, switching files). Returns false
/// when that failed (logged).
fn write_and_sync_now(journal: &mut Journal, syncer: Option<&Syncer>, policy: AppendFsync) -> bool {
    if let Err(failure) = journal.write_buffer() {
        failure.log();
        return false;
    }
    if policy != AppendFsync::No {
        if let Err(e) = journal::sync_data(&journal.file) {
            log_warning!("Fail to fsync the AOF file: {}.", journal::strerror(&e));
            return false;
        }
        journal.fsynced_size = journal.incr_size;
        if let Some(syncer) = syncer {
            syncer.advance(journal.appended);
        }
    }
    let end = journal.appended;
    journal.shared.publish(end);
    true
}

// ---------------------------------------------------------------------------
// Files and the manifest
// ---------------------------------------------------------------------------

/// The name of the file the journal appends to: the temporary incr file
/// while the first base is written, else the manifest's last incr file.
fn journal_file_name(manifest: &Manifest, state: State, appendfilename: &str) -> String {
    match (state, manifest.incr.last()) {
        (State::On, Some(incr)) => incr.name_lossy(),
        _ => String::from_utf8_lossy(&temp_incr_file_name(appendfilename)).into_owned(),
    }
}

/// Opens the next incr file and journals into it from now on (Valkey's
/// openNewIncrAofForAppend): a new incr file persisted in a copy of the
/// manifest, or, while waiting for the first base, the temporary incr
/// file. Nothing changes when it fails. Returns false then (logged).
fn open_new_incr(st: &mut ServerState) -> bool {
    let dir = PathBuf::from(&st.config.appenddirname);
    let name = st.config.appendfilename.clone();
    let policy = st.config.appendfsync;
    let Some(aof) = st.aof.as_mut() else { return false };
    if aof.state == State::Off {
        return true;
    }
    let mut manifest = None;
    let file_name = if aof.state == State::WaitRewrite {
        temp_incr_file_name(&name)
    } else {
        let mut copy = aof.manifest.clone();
        let file_name = copy.new_incr(&name).file_name.clone();
        manifest = Some(copy);
        file_name
    };
    let path = dir.join(path_of(&file_name));
    let shown = String::from_utf8_lossy(&file_name).into_owned();
    let file = match std::fs::OpenOptions::new().append(true).create(true).truncate(false).open(&path) {
        Ok(f) => f,
        Err(e) => {
            log_warning!("Can't open the append-only file {shown}: {}", journal::strerror(&e));
            return false;
        }
    };
    // The temporary incr file starts empty (an earlier attempt's is stale).
    if let Err(e) = file.set_len(0) {
        log_warning!("Can't open the append-only file {shown}: {}", journal::strerror(&e));
        return false;
    }
    if let Some(m) = &manifest {
        if let Err(e) = m.write_to_dir(&dir, &name) {
            log_warning!("Can't persist the AOF manifest: {}", journal::strerror(&e));
            let _ = std::fs::remove_file(&path);
            return false;
        }
    }
    log_notice!("Creating AOF incr file {shown} on background rewrite");
    if let Some(m) = manifest {
        aof.manifest = m;
    }
    let effects = &mut st.effects;
    let Some(aof) = st.aof.as_mut() else { return false };
    match aof.journal.as_mut() {
        Some(cell) => {
            let journal = cell.get_mut();
            // Everything appended so far goes to the old file, and is on
            // disk (as the policy wants) before anything goes to the new.
            if !write_and_sync_now(journal, aof.syncer.as_ref(), policy) && policy == AppendFsync::Always {
                log_warning!("Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
                std::process::exit(1);
            }
            if policy == AppendFsync::No {
                // Even under `no`, Valkey fsyncs the file it leaves, in the
                // background: that fsync is what WAITAOF then counts.
                if let Some(syncer) = aof.syncer.as_ref() {
                    syncer.best_effort(journal.file.clone(), journal.written());
                }
            }
            journal.file = std::sync::Arc::new(file);
            journal.incr_size = 0;
            journal.fsynced_size = 0;
            // The new file starts with a SELECT.
            journal.selected_db = None;
            true
        }
        None => match aof.open_journal(file, effects) {
            Ok(()) => true,
            Err(e) => {
                log_warning!("Can't open the append-only file {shown}: {}", journal::strerror(&e));
                false
            }
        },
    }
}

/// Deletes the history files the manifest lists and persists it without
/// them (Valkey's aofDelHistoryFiles).
fn delete_history_files(st: &mut ServerState) {
    if crate::persistence::config_flag(st, "aof-disable-auto-gc") {
        return;
    }
    let dir = PathBuf::from(&st.config.appenddirname);
    let name = st.config.appendfilename.clone();
    let Some(aof) = st.aof.as_mut() else { return };
    if aof.manifest.history.is_empty() {
        return;
    }
    for info in aof.manifest.take_history() {
        log_notice!("Removing the history file {} in the background", info.name_lossy());
        let _ = std::fs::remove_file(info.path_in(&dir));
    }
    if let Err(e) = aof.manifest.write_to_dir(&dir, &name) {
        log_warning!("Can't persist the AOF manifest: {}", journal::strerror(&e));
    }
}

// ---------------------------------------------------------------------------
// Start-up, cron, shutdown
// ---------------------------------------------------------------------------

/// The start-up load from the AOF when `appendonly` is on (the RDB file is
/// then not read), and opening the journal. Returns false when the server
/// must not start.
pub async fn load_at_start(state: &Rc<RefCell<ServerState>>) -> bool {
    let Some(manifest) = load::read_manifest(&state.borrow()) else { return false };
    let aof = Aof::new(manifest);
    tokio::task::spawn_local(flusher(Rc::downgrade(state), aof.wake.clone()));
    tokio::task::spawn_local(release_on_fsync(Rc::downgrade(state), aof.fsync_progress.clone()));
    state.borrow_mut().aof = Some(aof);
    if state.borrow().config.appendonly && !load::load_and_open(state).await {
        return false;
    }
    delete_history_files(&mut state.borrow_mut());
    true
}

/// Called from the server cron: reaps the rewrite child, starts scheduled
/// and automatic rewrites, retries failed writes and keeps the everysec
/// fsync going.
pub fn cron(st: &mut ServerState) {
    if st.aof.is_none() {
        return;
    }
    // Expiry in the cron journals DELs outside any command's unit.
    let unit = st.effects.finish_independent();
    if !unit.is_empty() {
        feed(st, unit);
    }
    rewrite::reap(st);
    if !rewrite::child_active(st) && st.persistence.loading.is_none() {
        start_due_rewrite(st);
    }
    let policy = st.config.appendfsync;
    let Some(aof) = st.aof.as_mut() else { return };
    let Some(journal) = aof.journal.as_mut() else { return };
    let journal = journal.get_mut();
    // Under `always` too: data written under `no` before the policy
    // changed gets its fsync (WAITAOF may wait for it).
    let fsync_due =
        matches!(policy, AppendFsync::EverySec | AppendFsync::Always) && journal.fsynced_size != journal.incr_size;
    if !journal.buf.is_empty() || fsync_due {
        // The flusher writes what the cron's expiry journalled, retries a
        // failed write, and starts a due fsync.
        aof.wake.notify_one();
    }
}

/// Starts a scheduled rewrite, or an automatic one when the AOF grew past
/// `auto-aof-rewrite-percentage` of its size after the last rewrite.
fn start_due_rewrite(st: &mut ServerState) {
    let (percentage, min_size) = (st.config.auto_aof_rewrite_percentage, st.config.auto_aof_rewrite_min_size);
    let Some(aof) = st.aof.as_mut() else { return };
    if aof.rewrite_scheduled {
        if !rewrite::limited(aof) {
            let _ = rewrite::start(st);
        }
        return;
    }
    if aof.state != State::On || percentage == 0 || aof.current_size <= min_size {
        return;
    }
    let growth = aof.current_size as i128 * 100 / aof.base_size.max(1) as i128 - 100;
    if growth >= percentage as i128 && !rewrite::limited(aof) {
        log_notice!("Starting automatic rewriting of AOF on {growth}% growth");
        let _ = rewrite::start(st);
    }
}

/// Shutdown: kills a rewrite child, writes and fsyncs what is buffered.
/// Returns false when the server must not exit (the first base is still
/// being written, or the journal could not be written).
pub fn before_exit(st: &ServerState) -> bool {
    let Some(aof) = st.aof.as_ref() else { return true };
    if let Some(child) = aof.child {
        if aof.state == State::WaitRewrite {
            log_warning!("Writing initial AOF, can't exit.");
            return false;
        }
        log_warning!("There is a child rewriting the AOF. Killing it!");
        // SAFETY: signals and reaps our own child.
        unsafe {
            if libc::kill(child.pid, libc::SIGUSR1) != -1 {
                let mut status = 0;
                libc::waitpid(child.pid, &mut status, 0);
            }
        }
        let _ = std::fs::remove_file(format!("temp-rewriteaof-bg-{}.aof", child.pid));
    }
    let Some(journal) = aof.journal.as_ref() else { return true };
    log_notice!("Calling fsync() on the AOF file.");
    let mut journal = journal.borrow_mut();
    if let Err(failure) = journal.write_buffer() {
        failure.log();
        return false;
    }
    if let Err(e) = journal::sync_data(&journal.file) {
        log_warning!("Fail to fsync the AOF file: {}.", journal::strerror(&e));
    }
    true
}

// ---------------------------------------------------------------------------
// Commands and configuration
// ---------------------------------------------------------------------------

/// BGREWRITEAOF's reply, or its error. Inside EXEC the rewrite is only
/// scheduled: a child forked there would snapshot half a transaction
/// whose whole is journalled after it.
pub fn bgrewriteaof(st: &mut ServerState, in_exec: bool) -> Result<&'static str, &'static str> {
    let Some(aof) = st.aof.as_mut() else { return Err("ERR AOF is not initialized") };
    if aof.child.is_some() {
        return Err("ERR Background append only file rewriting already in progress");
    }
    if in_exec || rewrite::child_active(st) {
        let Some(aof) = st.aof.as_mut() else { return Err("ERR AOF is not initialized") };
        aof.rewrite_scheduled = true;
        // Asked for by hand: no waiting for earlier failures.
        aof.consecutive_failures = 0;
        log_notice!("Background append only file rewriting scheduled.");
        return Ok("Background append only file rewriting scheduled");
    }
    match rewrite::start(st) {
        Ok(_) => Ok("Background append only file rewriting started"),
        Err(_) => {
            Err("ERR Can't execute an AOF background rewriting. Please check the server logs for more information.")
        }
    }
}

/// Whether a rewrite child runs (BGSAVE is refused then).
pub fn rewrite_in_progress(st: &ServerState) -> bool {
    st.aof.as_ref().is_some_and(Aof::rewrite_in_progress)
}

/// CONFIG SET appendonly: turning it on journals from a first rewrite
/// (Valkey's startAppendOnly), turning it off stops journalling
/// (stopAppendOnly).
pub fn appendonly_changed(st: &mut ServerState) -> Result<(), &'static str> {
    let Some(aof) = st.aof.as_ref() else { return Ok(()) };
    if !st.config.appendonly && aof.state != State::Off {
        stop(st);
    } else if st.config.appendonly && aof.state == State::Off {
        start(st)?;
    }
    Ok(())
}

fn start(st: &mut ServerState) -> Result<(), &'static str> {
    let Some(aof) = st.aof.as_mut() else { return Ok(()) };
    aof.state = State::WaitRewrite;
    if st.persistence.child.is_some() {
        aof.rewrite_scheduled = true;
        log_notice!(
            "AOF was enabled but there is already another background operation. An AOF background was scheduled \
             to start when possible."
        );
    } else {
        if aof.child.is_some() {
            log_notice!(
                "AOF was enabled but there is already an AOF rewriting in background. Stopping background AOF and \
                 starting a rewrite now."
            );
            rewrite::kill_child(aof);
            crate::persistence::childinfo::child_ended(st, crate::persistence::childinfo::ChildKind::AofRewrite);
        }
        if rewrite::start(st).is_err() {
            if let Some(aof) = st.aof.as_mut() {
                aof.state = State::Off;
            }
            log_warning!(
                "The server needs to enable the AOF but can't trigger a background AOF rewrite operation. Check the \
                 above logs for more info about the error."
            );
            return Err("Unable to turn on AOF. Check server logs.");
        }
    }
    if st.aof.as_mut().is_some_and(|aof| aof.write_error.take().is_some()) {
        log_warning!("AOF reopen, just ignore the last error.");
    }
    Ok(())
}

fn stop(st: &mut ServerState) {
    let policy = st.config.appendfsync;
    st.effects.enabled = false;
    let Some(aof) = st.aof.as_mut() else { return };
    if let Some(cell) = aof.journal.take() {
        let mut journal = cell.into_inner();
        let policy = if policy == AppendFsync::No { AppendFsync::EverySec } else { policy };
        write_and_sync_now(&mut journal, aof.syncer.as_ref(), policy);
        // Whatever could not be written is given up with the journal.
        let end = journal.appended;
        journal.shared.publish(end);
        aof.journal_end = end;
    }
    aof.state = State::Off;
    // WAITAOF's waiters for the local fsync now get an error.
    aof.recheck_fsync_waiters();
    if aof.rewrite_scheduled {
        aof.rewrite_scheduled = false;
        log_notice!("AOF was disabled but there is a scheduled AOF background, cancel it.");
    }
    aof.write_error = None;
    if aof.child.is_some() {
        rewrite::kill_child(aof);
        crate::persistence::childinfo::child_ended(st, crate::persistence::childinfo::ChildKind::AofRewrite);
    }
}

/// CONFIG SET aof-disable-auto-gc: history files left while it was on go
/// once it is off.
pub fn auto_gc_changed(st: &mut ServerState) {
    delete_history_files(st);
}

/// The reply refusing writes while the journal cannot be written, or None.
pub fn write_refusal(st: &ServerState) -> Option<&'static str> {
    let aof = st.aof.as_ref()?;
    if aof.state == State::Off {
        return None;
    }
    aof.write_error.map(misconf_text)
}

/// `MISCONF Errors writing to the AOF file: <strerror>`. Refusals are
/// static texts; each errno's is made once (there are few).
fn misconf_text(errno: i32) -> &'static str {
    thread_local! {
        static TEXTS: RefCell<HashMap<i32, &'static str>> = RefCell::new(HashMap::new());
    }
    TEXTS.with(|texts| {
        *texts.borrow_mut().entry(errno).or_insert_with(|| {
            let text = format!("MISCONF Errors writing to the AOF file: {}", journal::errno_text(errno));
            Box::leak(text.into_boxed_str())
        })
    })
}

/// The `aof_*` lines of INFO persistence, as Valkey prints them.
pub fn info_fields(st: &ServerState, s: &mut String) {
    use std::fmt::Write;
    let Some(aof) = st.aof.as_ref() else {
        // Before the start-up reached the AOF (an RDB file is loading).
        s.push_str(
            "aof_enabled:0\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\n\
             aof_last_rewrite_time_sec:-1\r\naof_current_rewrite_time_sec:-1\r\naof_last_bgrewrite_status:ok\r\n\
             aof_rewrites:0\r\naof_rewrites_consecutive_failures:0\r\naof_last_write_status:ok\r\n\
             aof_last_cow_size:0\r\n",
        );
        return;
    };
    let now = unix_ms() / 1000;
    let _ = write!(
        s,
        "aof_enabled:{}\r\n\
         aof_rewrite_in_progress:{}\r\n\
         aof_rewrite_scheduled:{}\r\n\
         aof_last_rewrite_time_sec:{}\r\n\
         aof_current_rewrite_time_sec:{}\r\n\
         aof_last_bgrewrite_status:{}\r\n\
         aof_rewrites:{}\r\n\
         aof_rewrites_consecutive_failures:{}\r\n\
         aof_last_write_status:{}\r\n\
         aof_last_cow_size:{}\r\n",
        (aof.state != State::Off) as u8,
        aof.child.is_some() as u8,
        aof.rewrite_scheduled as u8,
        aof.last_rewrite_secs,
        aof.child.map_or(-1, |c| now - c.started_unix),
        if aof.last_rewrite_ok { "ok" } else { "err" },
        aof.rewrites,
        aof.consecutive_failures,
        if aof.write_error.is_none() { "ok" } else { "err" },
        st.persistence.aof_last_cow_size,
    );
}

/// The block INFO persistence adds when `appendonly` is on.
pub fn info_enabled_fields(st: &ServerState, s: &mut String) {
    use std::fmt::Write;
    let Some(aof) = st.aof.as_ref() else { return };
    if !st.config.appendonly {
        return;
    }
    let buffered = aof.journal.as_ref().map_or(0, |j| j.borrow().buf.len());
    let _ = write!(
        s,
        "aof_current_size:{}\r\n\
         aof_base_size:{}\r\n\
         aof_pending_rewrite:{}\r\n\
         aof_buffer_length:{}\r\n\
         aof_pending_bio_fsync:{}\r\n\
         aof_delayed_fsync:{}\r\n",
        aof.current_size,
        aof.base_size,
        aof.rewrite_scheduled as u8,
        buffered,
        aof.syncer.as_ref().map_or(0, Syncer::pending),
        aof.delayed_fsync,
    );
}
