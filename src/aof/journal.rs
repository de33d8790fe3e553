//! The journal: the incr file being appended to, the buffer of what was
//! appended and not written yet, and how writes and fsyncs are done for
//! each `appendfsync` policy.
//!
//! Group commit: a connection that ran a batch of commands waits before
//! it sends the replies until the journal covers everything appended so
//! far ([`Shared::durable`]). One flusher task (`super::flusher`) writes
//! the whole buffer with one write(2) for every connection that was ready
//! in the same loop turn; under `always` it then has the fsync thread
//! ([`Syncer`]) run one fdatasync and publishes the new durable offset
//! only when that returned. The event loop keeps running meanwhile, so
//! the next group gathers while the disk works.
//!
//! Offsets count bytes appended since the server started, across incr
//! files (a rewrite switches files, the offsets go on) and across journals
//! (CONFIG SET appendonly no, then yes: the new journal starts where the
//! last one ended), so a client's offset never points into a journal
//! that came later. WAITAOF compares a client's last write's offset with
//! the fsync thread's [`Syncer::fsynced`].

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

use crate::effects::Unit;
use crate::{log_notice, log_warning};

/// What connections waiting for durability share with the flusher.
pub struct Shared {
    /// Bytes the replies may rely on: written (everysec, no) or written
    /// and fsynced (always).
    pub durable: Cell<u64>,
    /// Woken whenever `durable` moves.
    pub released: Notify,
}

impl Shared {
    fn new(start: u64) -> Rc<Shared> {
        Rc::new(Shared { durable: Cell::new(start), released: Notify::new() })
    }

    /// Declares everything up to `end` safe to acknowledge.
    pub fn publish(&self, end: u64) {
        if end > self.durable.get() {
            self.durable.set(end);
            self.released.notify_waiters();
        }
    }
}

/// The open incr file and what waits to be written to it.
pub struct Journal {
    pub file: Arc<File>,
    /// Appended and not written yet.
    pub buf: Vec<u8>,
    /// Offset after the last byte appended.
    pub appended: u64,
    /// Bytes in the current incr file (Valkey's aof_last_incr_size): a
    /// short write is cut back to this.
    pub incr_size: u64,
    /// `incr_size` at the last fsync requested.
    pub fsynced_size: u64,
    /// When the last fsync was requested (Unix ms).
    pub last_fsync_ms: i64,
    /// Since when writes wait for a slow background fsync (everysec), 0
    /// when they do not.
    pub postponed_since_ms: i64,
    /// The database the journal's last SELECT chose.
    pub selected_db: Option<usize>,
    /// The last `#TS:` annotation written (Unix seconds).
    pub timestamp_s: i64,
    pub shared: Rc<Shared>,
}

impl Journal {
    /// A journal appending to `file`, its offsets starting at `start`.
    pub fn new(file: File, start: u64) -> io::Result<Journal> {
        let size = file.metadata()?.len();
        Ok(Journal {
            file: Arc::new(file),
            buf: Vec::new(),
            appended: start,
            incr_size: size,
            fsynced_size: size,
            last_fsync_ms: crate::server::unix_ms(),
            postponed_since_ms: 0,
            selected_db: None,
            timestamp_s: 0,
            shared: Shared::new(start),
        })
    }

    /// Offset after the last byte written to the file: what an fsync
    /// started now makes durable.
    pub fn written(&self) -> u64 {
        self.appended - self.buf.len() as u64
    }

    /// Appends an execution unit's commands, with the SELECTs and `#TS:`
    /// annotations they need, in MULTI/EXEC when there are several.
    pub fn append_unit(&mut self, unit: &Unit, timestamp_s: Option<i64>) {
        let before = self.buf.len();
        if unit.is_transaction() {
            self.annotate(timestamp_s);
            self.buf.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
        }
        for (db, command) in unit.commands() {
            self.annotate(timestamp_s);
            if self.selected_db != Some(db) {
                let mut digits = itoa::Buffer::new();
                ferrokey_formats::aof::encode_command(&mut self.buf, &[&b"SELECT"[..], digits.format(db).as_bytes()]);
                self.selected_db = Some(db);
            }
            self.buf.extend_from_slice(command);
        }
        if unit.is_transaction() {
            self.annotate(timestamp_s);
            self.buf.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
        }
        self.appended += (self.buf.len() - before) as u64;
    }

    /// A `#TS:` annotation when the second changed since the last one
    /// (`aof-timestamp-enabled`).
    fn annotate(&mut self, timestamp_s: Option<i64>) {
        if let Some(now) = timestamp_s {
            if self.timestamp_s < now {
                self.timestamp_s = now;
                ferrokey_formats::aof::encode_timestamp(&mut self.buf, now);
            }
        }
    }

    /// Writes the whole buffer with write(2), retrying short writes as
    /// Valkey's aofWrite does. On failure, the part that could not be
    /// undone stays written and the rest stays buffered.
    pub fn write_buffer(&mut self) -> Result<usize, WriteError> {
        let len = self.buf.len();
        let mut done = 0;
        let error = loop {
            if done == len {
                break None;
            }
            match (&*self.file).write(&self.buf[done..]) {
                Ok(0) => break Some(io::Error::from_raw_os_error(libc::ENOSPC)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        let Some(error) = error else {
            self.buf.clear();
            self.incr_size += len as u64;
            return Ok(len);
        };
        if done == 0 {
            return Err(WriteError { error, short: None });
        }
        // A partial command would make the file unreadable: take it back.
        // The error reported is then the disk being full, as Valkey says.
        let truncated = self.file.set_len(self.incr_size);
        let kept = if truncated.is_ok() {
            0
        } else {
            self.incr_size += done as u64;
            self.buf.drain(..done);
            done
        };
        Err(WriteError {
            error: io::Error::from_raw_os_error(libc::ENOSPC),
            short: Some(ShortWrite { written: done, expected: len, kept, truncate_error: truncated.err() }),
        })
    }
}

/// A failed write of the buffer.
pub struct WriteError {
    pub error: io::Error,
    pub short: Option<ShortWrite>,
}

/// A write that wrote part of the buffer.
pub struct ShortWrite {
    pub written: usize,
    pub expected: usize,
    /// Bytes that stayed in the file (the cut-back failed).
    pub kept: usize,
    pub truncate_error: Option<io::Error>,
}

impl WriteError {
    /// Logs the failure as Valkey words it.
    pub fn log(&self) {
        match &self.short {
            None => log_warning!("Error writing to the AOF file: {}", strerror(&self.error)),
            Some(s) => {
                log_warning!(
                    "Short write while writing to the AOF file: (nwritten={}, expected={})",
                    s.written,
                    s.expected
                );
                if let Some(e) = &s.truncate_error {
                    log_warning!(
                        "Could not remove short write from the append-only file. The server may refuse to load \
                         the AOF the next time it starts.  ftruncate: {}",
                        strerror(e)
                    );
                }
            }
        }
    }

    pub fn errno(&self) -> i32 {
        self.error.raw_os_error().unwrap_or(libc::EIO)
    }
}

/// C's strerror text of an I/O error (what Valkey prints), without the
/// " (os error N)" Rust adds.
pub fn strerror(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => errno_text(code),
        None => e.to_string(),
    }
}

pub fn errno_text(code: i32) -> String {
    // SAFETY: strerror returns a pointer to a NUL-terminated message that
    // stays valid until the next strerror call on this thread; it is
    // copied at once.
    unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)).to_string_lossy().into_owned() }
}

/// A file to fsync, the journal offset it makes durable, and what follows
/// the result.
struct SyncJob {
    file: Arc<File>,
    covers: u64,
    then: AfterSync,
}

enum AfterSync {
    /// The one who asked waits for the result.
    Reply(oneshot::Sender<io::Result<()>>),
    /// A failure stops the server (everysec's fsyncs).
    ExitOnFailure,
    /// A failure is only logged: nothing but WAITAOF relies on this fsync,
    /// and it counts only fsyncs that succeeded (`appendfsync no`).
    LogFailure,
}

/// The fsync thread: fdatasync runs there so the event loop never waits
/// for the disk. Jobs run in the order given.
pub struct Syncer {
    jobs: mpsc::Sender<SyncJob>,
    pending: Arc<AtomicUsize>,
    /// Notified after every job (a postponed write may go on).
    pub done: Arc<Notify>,
    /// The journal offset up to which everything is known to be on disk
    /// (Valkey's fsynced_reploff): only ever grows.
    fsynced: Arc<AtomicU64>,
    /// Notified when `fsynced` grows, to release WAITAOF's waiters.
    progress: Arc<Notify>,
}

impl Syncer {
    pub fn start(progress: Arc<Notify>) -> io::Result<Syncer> {
        let (jobs, queue) = mpsc::channel::<SyncJob>();
        let pending = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Notify::new());
        let fsynced = Arc::new(AtomicU64::new(0));
        let (pending_t, done_t, fsynced_t, progress_t) =
            (pending.clone(), done.clone(), fsynced.clone(), progress.clone());
        std::thread::Builder::new().name("aof-fsync".into()).spawn(move || {
            for job in queue {
                let started = Instant::now();
                let result = sync_data(&job.file);
                let took = started.elapsed();
                if took >= SLOW_FSYNC {
                    log_slow_fsync(took, matches!(job.then, AfterSync::Reply(_)));
                }
                // Published before the reply: a reply to a write under
                // `always` implies WAITAOF sees that write fsynced.
                if result.is_ok() && fsynced_t.fetch_max(job.covers, Ordering::AcqRel) < job.covers {
                    progress_t.notify_one();
                }
                match (job.then, result) {
                    (AfterSync::Reply(reply), result) => {
                        let _ = reply.send(result);
                    }
                    (_, Ok(())) => {}
                    (AfterSync::ExitOnFailure, Err(e)) => {
                        // The kernel may have dropped the pages it could
                        // not write: nothing may be acknowledged on the
                        // belief that they are safe.
                        log_warning!(
                            "Fail to fsync the AOF file: {}. Exiting: data already acknowledged may not be on \
                             disk.",
                            strerror(&e)
                        );
                        std::process::exit(1);
                    }
                    (AfterSync::LogFailure, Err(e)) => {
                        log_warning!("Fail to fsync the AOF file: {}", strerror(&e));
                    }
                }
                pending_t.fetch_sub(1, Ordering::AcqRel);
                done_t.notify_one();
            }
        })?;
        Ok(Syncer { jobs, pending, done, fsynced, progress })
    }

    /// The journal offset up to which everything is on disk.
    pub fn fsynced(&self) -> u64 {
        self.fsynced.load(Ordering::Acquire)
    }

    /// Records that everything up to `offset` is on disk by other means
    /// than this thread (an fsync on the event loop, a rewrite's base).
    pub fn advance(&self, offset: u64) {
        if self.fsynced.fetch_max(offset, Ordering::AcqRel) < offset {
            self.progress.notify_one();
        }
    }

    /// Jobs queued or running (INFO aof_pending_bio_fsync).
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Fsyncs `file`, which holds the journal up to `covers`, in the
    /// background; a failure stops the server.
    pub fn background(&self, file: Arc<File>, covers: u64) {
        self.submit(SyncJob { file, covers, then: AfterSync::ExitOnFailure });
    }

    /// Fsyncs `file` in the background, a failure only logged.
    pub fn best_effort(&self, file: Arc<File>, covers: u64) {
        self.submit(SyncJob { file, covers, then: AfterSync::LogFailure });
    }

    /// Fsyncs `file` and reports the result.
    pub fn with_reply(&self, file: Arc<File>, covers: u64) -> oneshot::Receiver<io::Result<()>> {
        let (reply, result) = oneshot::channel();
        self.submit(SyncJob { file, covers, then: AfterSync::Reply(reply) });
        result
    }

    fn submit(&self, job: SyncJob) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.jobs.send(job).is_err() {
            // The thread is gone: only possible once it exited the process.
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// An fsync that takes this long is logged (ferrokey's warning: Valkey
/// only records it for LATENCY).
const SLOW_FSYNC: Duration = Duration::from_secs(1);

/// Warns of an fsync that took `took`. Under `always` (`writes_waited`),
/// every write reply waited for it; under `everysec`, writes wait for it
/// only once it passes 2 s (then Valkey's "Asynchronous AOF fsync is
/// taking too long" follows).
fn log_slow_fsync(took: Duration, writes_waited: bool) {
    let ms = took.as_millis();
    if writes_waited {
        log_warning!(
            "Slow AOF fsync: fdatasync took {ms} ms (disk is busy?), and replies to writes waited for it \
             (appendfsync always)."
        );
    } else {
        log_warning!("Slow AOF fsync: the background fdatasync took {ms} ms (disk is busy?).");
    }
}

/// fdatasync(2), as Valkey's valkey_fsync is on Linux.
pub fn sync_data(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: fdatasync on a descriptor the File keeps open.
        if unsafe { libc::fdatasync(file.as_raw_fd()) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Logs the end of a write error, once a write succeeded again.
pub fn log_write_recovered() {
    log_notice!("AOF write error looks solved. The server can write again.");
}
