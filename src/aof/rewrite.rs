//! BGREWRITEAOF: a forked child writes a new base file from the snapshot
//! it inherited, while the parent journals to a new incr file opened at
//! the start (and already in the manifest, so a crash or a failed child
//! loses nothing). When the child succeeds, the parent renames its file
//! into the AOF directory as the next base, marks the older base and incr
//! files as history, writes the manifest atomically and deletes the
//! history files. A failed or killed child leaves the previous manifest in
//! force.
//!
//! Only one child runs at a time, BGSAVE's included: a rewrite asked for
//! while a BGSAVE runs is scheduled and starts from the cron once it ends.

use std::path::PathBuf;
use std::time::Instant;

use ferrokey_formats::aof::{temp_incr_file_name, Manifest};

use super::{Aof, State};
use crate::persistence::childinfo::{self, ChildKind};
use crate::server::{unix_ms, ServerState};
use crate::{log_notice, log_verbose, log_warning};

/// Consecutive failures after which automatic rewrites slow down
/// (Valkey's AOF_REWRITE_LIMITE_THRESHOLD).
const LIMIT_THRESHOLD: u64 = 3;
/// The longest pause between automatic attempts, in minutes.
const LIMIT_MAX_MINUTES: i64 = 60;

/// A running rewrite child.
#[derive(Clone, Copy, Debug)]
pub struct RewriteChild {
    pub pid: libc::pid_t,
    pub started_unix: i64,
    pub started: Instant,
    /// The base it writes is an RDB file (else commands).
    pub rdb_preamble: bool,
    /// The journal offset its snapshot covers: once its base (which it
    /// fsyncs) is in the manifest, everything up to there is on disk.
    pub journal_offset: u64,
}

/// Why a rewrite did not start.
#[derive(Debug, PartialEq, Eq)]
pub enum StartError {
    /// Another child (a BGSAVE) runs.
    ChildActive,
    /// The AOF directory, the new incr file, the manifest or fork failed
    /// (logged).
    Failed,
}

/// The temporary file the child with `pid` writes, in `dir`.
fn temp_base_name(pid: libc::pid_t) -> PathBuf {
    PathBuf::from(format!("temp-rewriteaof-bg-{pid}.aof"))
}

/// Whether any child (rewrite or BGSAVE) runs.
pub fn child_active(st: &ServerState) -> bool {
    st.persistence.child.is_some() || st.aof.as_ref().is_some_and(|a| a.child.is_some())
}

/// Starts a rewrite in a forked child (Valkey's
/// rewriteAppendOnlyFileBackground).
pub fn start(st: &mut ServerState) -> Result<libc::pid_t, StartError> {
    if child_active(st) {
        return Err(StartError::ChildActive);
    }
    let dir = st.config.appenddirname.clone();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        log_warning!("Can't open or create append-only dir {dir}: {}", super::journal::strerror(&e));
        if let Some(aof) = st.aof.as_mut() {
            aof.last_rewrite_ok = false;
        }
        return Err(StartError::Failed);
    }
    if !super::open_new_incr(st) {
        if let Some(aof) = st.aof.as_mut() {
            aof.last_rewrite_ok = false;
        }
        return Err(StartError::Failed);
    }
    let rdb_preamble = st.config.aof_use_rdb_preamble;
    let Some(aof) = st.aof.as_mut() else { return Err(StartError::Failed) };
    aof.rewrites += 1;
    let mut pipe = childinfo::open_pipe();
    let forked_at = Instant::now();
    let forked = {
        let st: &ServerState = st;
        let pipe = &mut pipe;
        crate::persistence::fork_child(|| {
            let mut reporter = pipe.take().map(|p| p.into_reporter(ChildKind::AofRewrite));
            let temp = temp_base_name(std::process::id() as libc::pid_t);
            let mut on_key = || {
                if let Some(r) = reporter.as_mut() {
                    r.key_written();
                }
            };
            match super::base::write_base_file(st, &temp, rdb_preamble, &mut on_key) {
                Ok(()) => {
                    log_notice!("Successfully created the temporary AOF base file {}", temp.display());
                    if let Some(r) = reporter.as_mut() {
                        r.succeeded();
                    }
                    0
                }
                Err(e) => {
                    log_warning!("Write error writing append only file on disk: {}", super::journal::strerror(&e));
                    let _ = std::fs::remove_file(&temp);
                    1
                }
            }
        })
    };
    let Some(aof) = st.aof.as_mut() else { return Err(StartError::Failed) };
    match forked {
        Err(e) => {
            aof.last_rewrite_ok = false;
            log_warning!("Can't rewrite append only file in background: fork: {}", super::journal::strerror(&e));
            Err(StartError::Failed)
        }
        Ok(pid) => {
            st.persistence.latest_fork_usec = forked_at.elapsed().as_micros() as u64;
            st.persistence.total_forks += 1;
            let journal_offset = aof.journal.as_mut().map_or(0, |j| j.get_mut().appended);
            aof.child = Some(RewriteChild {
                pid,
                started_unix: unix_ms() / 1000,
                started: Instant::now(),
                rdb_preamble,
                journal_offset,
            });
            aof.rewrite_scheduled = false;
            if aof.state == State::WaitRewrite {
                // A client that wrote nothing now counts as fsynced (Valkey's
                // fsynced_reploff becomes 0 here).
                aof.recheck_fsync_waiters();
            }
            childinfo::child_started(st, pipe);
            log_notice!("Background append only file rewriting started by pid {pid}");
            Ok(pid)
        }
    }
}

/// Called from the cron: reaps a finished child and completes (or
/// abandons) its rewrite.
pub fn reap(st: &mut ServerState) {
    let Some(child) = st.aof.as_ref().and_then(|a| a.child) else { return };
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid on our own child, with a valid status pointer.
    let r = unsafe { libc::waitpid(child.pid, &mut status, libc::WNOHANG) };
    if r == 0 {
        return;
    }
    let started = Instant::now();
    let report = childinfo::child_ended(st, ChildKind::AofRewrite);
    if r == -1 {
        let e = std::io::Error::last_os_error();
        log_warning!("waitpid() returned an error: {e}. child_type: AOF, child_pid = {}", child.pid);
        failed(st, true);
    } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        log_notice!("Background AOF rewrite terminated with success");
        if finish_successful(st, child).is_err() {
            failed(st, true);
        }
    } else if libc::WIFEXITED(status) {
        log_warning!("Background AOF rewrite terminated with error");
        failed(st, true);
    } else {
        let signal = libc::WTERMSIG(status);
        log_warning!("Background AOF rewrite terminated by signal {signal}");
        // SIGUSR1 is how a rewrite is cancelled on purpose: not an error.
        failed(st, signal != libc::SIGUSR1);
    }
    cleanup(st, child);
    log_notice!(
        "Background AOF rewrite by pid {} ended after {:.3} seconds (copy-on-write peak {} MB)",
        child.pid,
        child.started.elapsed().as_secs_f64(),
        report.cow_peak >> 20
    );
    log_verbose!("Background AOF rewrite signal handler took {}us", started.elapsed().as_micros());
}

fn failed(st: &mut ServerState, counts: bool) {
    if let Some(aof) = st.aof.as_mut() {
        if counts {
            aof.last_rewrite_ok = false;
            aof.consecutive_failures += 1;
        }
    }
}

/// After the child, whatever its fate: its temporary file goes; while the
/// AOF waits for its first base, what was journalled meanwhile is dropped
/// (the next rewrite covers it) and a rewrite is scheduled again.
fn cleanup(st: &mut ServerState, child: RewriteChild) {
    let _ = std::fs::remove_file(temp_base_name(child.pid));
    let dir = PathBuf::from(&st.config.appenddirname);
    let temp_incr = dir.join(super::path_of(&temp_incr_file_name(&st.config.appendfilename)));
    let Some(aof) = st.aof.as_mut() else { return };
    if aof.state == State::WaitRewrite {
        if let Some(journal) = aof.journal.as_mut() {
            let journal = journal.get_mut();
            journal.buf.clear();
            let end = journal.appended;
            journal.shared.publish(end);
        }
        log_notice!("Removing the temp incr aof file {} in the background", temp_incr.display());
        let _ = std::fs::remove_file(&temp_incr);
        aof.rewrite_scheduled = true;
    }
    aof.last_rewrite_secs = unix_ms() / 1000 - child.started_unix;
    aof.child = None;
}

/// The child's base replaces the old one (Valkey's
/// backgroundRewriteDoneHandler, success branch).
fn finish_successful(st: &mut ServerState, child: RewriteChild) -> Result<(), ()> {
    let dir = PathBuf::from(&st.config.appenddirname);
    let name = st.config.appendfilename.clone();
    let temp = temp_base_name(child.pid);
    let Some(aof) = st.aof.as_mut() else { return Err(()) };
    let mut manifest: Manifest = aof.manifest.clone();
    let base = manifest.new_base(&name, child.rdb_preamble).clone();
    let base_path = base.path_in(&dir);
    if let Err(e) = std::fs::rename(&temp, &base_path) {
        log_warning!(
            "Error trying to rename the temporary AOF base file {} into {}: {}",
            temp.display(),
            base_path.display(),
            super::journal::strerror(&e)
        );
        return Err(());
    }
    log_notice!("Successfully renamed the temporary AOF base file {} into {}", temp.display(), base.name_lossy());
    let mut new_incr_path = None;
    if aof.state == State::WaitRewrite {
        let temp_incr_name = temp_incr_file_name(&name);
        let temp_incr = dir.join(super::path_of(&temp_incr_name));
        let incr = manifest.new_incr(&name).clone();
        let incr_path = incr.path_in(&dir);
        if let Err(e) = std::fs::rename(&temp_incr, &incr_path) {
            log_warning!(
                "Error trying to rename the temporary AOF incr file {} into {}: {}",
                temp_incr.display(),
                incr_path.display(),
                super::journal::strerror(&e)
            );
            let _ = std::fs::remove_file(&base_path);
            return Err(());
        }
        log_notice!(
            "Successfully renamed the temporary AOF incr file {} into {}",
            String::from_utf8_lossy(&temp_incr_name),
            incr.name_lossy()
        );
        new_incr_path = Some(incr_path);
    }
    manifest.mark_rewritten_incr_as_history(aof.journal.is_some());
    if let Err(e) = manifest.write_to_dir(&dir, &name) {
        log_warning!("Can't persist the AOF manifest: {}", super::journal::strerror(&e));
        let _ = std::fs::remove_file(&base_path);
        if let Some(p) = new_incr_path {
            let _ = std::fs::remove_file(p);
        }
        return Err(());
    }
    aof.manifest = manifest;
    if aof.state != State::Off {
        let base_size = std::fs::metadata(&base_path).map(|m| m.len()).unwrap_or(0);
        let incr_size = aof.journal.as_mut().map_or(0, |j| j.get_mut().incr_size);
        aof.current_size = base_size + incr_size;
        aof.base_size = aof.current_size;
    }
    super::delete_history_files(st);
    let Some(aof) = st.aof.as_mut() else { return Err(()) };
    aof.last_rewrite_ok = true;
    aof.consecutive_failures = 0;
    log_notice!("Background AOF rewrite finished successfully");
    if aof.state != State::Off {
        if let Some(syncer) = aof.syncer.as_ref() {
            syncer.advance(child.journal_offset);
        }
    }
    if aof.state == State::WaitRewrite {
        aof.state = State::On;
        // The fsyncs of the journal written meanwhile count from now on.
        aof.recheck_fsync_waiters();
    }
    Ok(())
}

/// Stops a running rewrite child on purpose (SIGUSR1) and waits for it
/// (Valkey's killAppendOnlyChild).
pub fn kill_child(aof: &mut Aof) {
    let Some(child) = aof.child.take() else { return };
    log_notice!("Killing running AOF rewrite child: {}", child.pid);
    // SAFETY: signals and reaps our own child.
    unsafe {
        if libc::kill(child.pid, libc::SIGUSR1) != -1 {
            let mut status = 0;
            libc::waitpid(child.pid, &mut status, 0);
        }
    }
    let _ = std::fs::remove_file(temp_base_name(child.pid));
}

/// Whether automatic rewrites must wait after repeated failures (Valkey's
/// aofRewriteLimited: 1, 2, 4 ... up to 60 minutes between attempts).
pub fn limited(aof: &mut Aof) -> bool {
    if aof.consecutive_failures < LIMIT_THRESHOLD {
        aof.limit_delay_minutes = 0;
        aof.limit_until_unix = 0;
        return false;
    }
    let now = unix_ms() / 1000;
    if aof.limit_until_unix != 0 {
        if now < aof.limit_until_unix {
            return true;
        }
        aof.limit_until_unix = 0;
        return false;
    }
    aof.limit_delay_minutes = if aof.limit_delay_minutes == 0 { 1 } else { aof.limit_delay_minutes * 2 };
    aof.limit_delay_minutes = aof.limit_delay_minutes.min(LIMIT_MAX_MINUTES);
    aof.limit_until_unix = now + aof.limit_delay_minutes * 60;
    log_warning!(
        "Background AOF rewrite has repeatedly failed and triggered the limit, will retry in {} minutes",
        aof.limit_delay_minutes
    );
    true
}
