//! What a forked child (BGSAVE, BGREWRITEAOF) tells the server, as
//! Valkey's child-info pipe does: its copy-on-write memory while it works
//! and at the end, the keys written so far, and why it failed.
//!
//! Copy-on-write memory is the child's Private_Dirty pages: right after
//! fork every page is shared; each page either process writes afterwards
//! is copied, and the child's copy (or the original the parent left) is
//! then private to the child. That is the memory a save costs beyond the
//! dataset, which operators size machines by.
//!
//! The server opens a pipe before it forks. The child writes one text line
//! per report (`progress <cow> <keys>`, `done <cow>`, `failed <cause>`),
//! each far below PIPE_BUF, so each write is atomic. The server reads
//! without blocking from the cron (INFO's `current_cow_*` fields) and once
//! more when it reaps the child.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::log_notice;
use crate::server::ServerState;

/// Keys written between two looks at the clock.
const KEYS_PER_CLOCK_CHECK: u64 = 1024;
/// How often a child reports its progress.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Reading smaps can be slow for a big process: a new reading waits for
/// this many times as long as the last one took (Valkey's
/// CHILD_COW_DUTY_CYCLE).
const COW_SAMPLE_DUTY_CYCLE: u32 = 100;

/// Which child reports, named as Valkey names it in its log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildKind {
    Rdb,
    AofRewrite,
}

impl ChildKind {
    fn name(self) -> &'static str {
        match self {
            ChildKind::Rdb => "RDB",
            ChildKind::AofRewrite => "AOF rewrite",
        }
    }
}

/// What the server knows of the running child (INFO `current_*`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ChildStats {
    pub cow_bytes: u64,
    pub cow_peak: u64,
    /// When the child last measured `cow_bytes`.
    pub cow_updated: Option<Instant>,
    pub keys_processed: u64,
    /// Keys in the dataset when the child was forked.
    pub keys_total: u64,
}

/// The pipe, opened before fork; each side keeps its end.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub fn open() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two-element array it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned here only.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The server must never wait for its child; the child may wait
        // (the server drains the pipe every cron tick).
        // SAFETY: fcntl flag changes on a descriptor owned here.
        unsafe {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&read);
            libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK);
        }
        Ok(Pipe { read, write })
    }

    /// The child's side.
    pub fn into_reporter(self, kind: ChildKind) -> Reporter {
        let now = Instant::now();
        Reporter {
            out: File::from(self.write),
            kind,
            keys: 0,
            last_report: now,
            next_sample: now,
            cow: 0,
            peak: 0,
            sum: 0,
            samples: 0,
        }
    }

    /// The server's side.
    pub fn into_receiver(self) -> Receiver {
        Receiver { pipe: File::from(self.read), partial: Vec::new(), failure: None, done: false }
    }
}

/// The child's reports.
pub struct Reporter {
    out: File,
    kind: ChildKind,
    keys: u64,
    last_report: Instant,
    /// The next CoW reading is not taken before this.
    next_sample: Instant,
    cow: u64,
    peak: u64,
    sum: u64,
    samples: u64,
}

impl Reporter {
    /// Counts a key written; about once a second, reports the progress.
    pub fn key_written(&mut self) {
        self.keys += 1;
        if !self.keys.is_multiple_of(KEYS_PER_CLOCK_CHECK) || self.last_report.elapsed() < REPORT_INTERVAL {
            return;
        }
        self.last_report = Instant::now();
        if self.last_report >= self.next_sample {
            self.sample();
            if self.cow > 0 {
                crate::log_verbose!("{}", self.cow_line());
            }
        }
        self.send(&format!("progress {} {}\n", self.cow, self.keys));
    }

    /// The work is done and durable: the final CoW figure, logged as
    /// Valkey logs it, and sent.
    pub fn succeeded(&mut self) {
        self.sample();
        log_notice!("{}", self.cow_line());
        self.send(&format!("done {}\n", self.cow));
    }

    /// The work failed: the cause, already logged by the child, goes to
    /// the server, which names it when it refuses writes because of it.
    pub fn failed(&mut self, cause: &str) {
        let cause: String = cause.chars().map(|c| if c.is_control() { ' ' } else { c }).take(1000).collect();
        self.send(&format!("failed {cause}\n"));
    }

    fn sample(&mut self) {
        let started = Instant::now();
        self.cow = private_dirty_bytes();
        let cost = started.elapsed();
        self.next_sample = Instant::now() + cost * COW_SAMPLE_DUTY_CYCLE;
        self.peak = self.peak.max(self.cow);
        self.sum += self.cow;
        self.samples += 1;
    }

    fn cow_line(&self) -> String {
        format!(
            "Fork CoW for {}: current {} MB, peak {} MB, average {} MB",
            self.kind.name(),
            self.cow >> 20,
            self.peak >> 20,
            (self.sum / self.samples.max(1)) >> 20
        )
    }

    fn send(&mut self, line: &str) {
        // A server gone away cannot be told anything: the exit status still
        // says how the work ended.
        let _ = self.out.write_all(line.as_bytes());
    }
}

/// Private_Dirty of this process in bytes (the sum over its mappings).
fn private_dirty_bytes() -> u64 {
    let mut text = String::new();
    let read = File::open("/proc/self/smaps_rollup")
        .or_else(|_| File::open("/proc/self/smaps"))
        .and_then(|mut f| f.read_to_string(&mut text));
    if read.is_err() {
        return 0;
    }
    text.lines()
        .filter_map(|line| line.strip_prefix("Private_Dirty:"))
        .filter_map(|rest| rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .sum::<u64>()
        * 1024
}

/// The server's end of the pipe.
#[derive(Debug)]
pub struct Receiver {
    pipe: File,
    /// A line not complete yet.
    partial: Vec<u8>,
    failure: Option<String>,
    done: bool,
}

impl Receiver {
    /// Reads every report the child sent so far into `stats`.
    fn drain(&mut self, stats: &mut ChildStats) {
        let mut buf = [0u8; 4096];
        loop {
            match self.pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.apply(&String::from_utf8_lossy(&line[..end]), stats);
        }
    }

    fn apply(&mut self, line: &str, stats: &mut ChildStats) {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut numbers = rest.split(' ').map(|n| n.parse::<u64>().unwrap_or(0));
        match kind {
            "progress" | "done" => {
                stats.cow_bytes = numbers.next().unwrap_or(0);
                stats.cow_peak = stats.cow_peak.max(stats.cow_bytes);
                stats.cow_updated = Some(Instant::now());
                if kind == "progress" {
                    stats.keys_processed = numbers.next().unwrap_or(stats.keys_processed);
                } else {
                    self.done = true;
                }
            }
            "failed" => self.failure = Some(rest.to_string()),
            _ => {}
        }
    }
}

/// Before a fork: the pipe, or None when it cannot be opened (the child
/// then runs without reporting, as in Valkey).
pub fn open_pipe() -> Option<Pipe> {
    match Pipe::open() {
        Ok(pipe) => Some(pipe),
        Err(e) => {
            crate::log_warning!("Can't open the pipe for child info: {e}");
            None
        }
    }
}

/// After a successful fork, in the server: starts listening to the child.
pub fn child_started(st: &mut ServerState, pipe: Option<Pipe>) {
    let keys_total = st.dbs.iter().map(|db| db.len() as u64).sum();
    let p = &mut st.persistence;
    p.child_stats = ChildStats { keys_total, ..ChildStats::default() };
    p.child_info = pipe.map(Pipe::into_receiver);
}

/// From the cron: what the child reported since the last call.
pub fn receive(st: &mut ServerState) {
    let p = &mut st.persistence;
    if let Some(receiver) = p.child_info.as_mut() {
        receiver.drain(&mut p.child_stats);
    }
}

/// How the child's work ended, as it reported.
pub struct ChildReport {
    /// Why it failed, when it said so.
    pub failure: Option<String>,
    /// The most copy-on-write memory it reported, in bytes.
    pub cow_peak: u64,
}

/// When the child was reaped: its last reports, the copy-on-write peak
/// recorded for INFO (`rdb_last_cow_size`, `aof_last_cow_size`) when it
/// succeeded, and the running-child figures cleared.
pub fn child_ended(st: &mut ServerState, kind: ChildKind) -> ChildReport {
    receive(st);
    let p = &mut st.persistence;
    let receiver = p.child_info.take();
    let cow_peak = p.child_stats.cow_peak;
    p.child_stats = ChildStats::default();
    let Some(receiver) = receiver else { return ChildReport { failure: None, cow_peak } };
    if receiver.done {
        match kind {
            ChildKind::Rdb => p.rdb_last_cow_size = cow_peak,
            ChildKind::AofRewrite => p.aof_last_cow_size = cow_peak,
        }
    }
    ChildReport { failure: receiver.failure, cow_peak }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_cross_the_pipe_whole() {
        let pipe = Pipe::open().unwrap();
        let copy = Pipe { read: pipe.read.try_clone().unwrap(), write: pipe.write.try_clone().unwrap() };
        let mut reporter = pipe.into_reporter(ChildKind::Rdb);
        let mut receiver = copy.into_receiver();
        let mut stats = ChildStats::default();
        reporter.send("progress 4096 1024\n");
        receiver.drain(&mut stats);
        assert_eq!((stats.cow_bytes, stats.keys_processed, receiver.done), (4096, 1024, false));
        reporter.succeeded();
        reporter.failed("Failed opening\nthe file");
        receiver.drain(&mut stats);
        assert!(receiver.done);
        assert!(stats.cow_bytes > 0, "a process has some private dirty memory");
        assert_eq!(stats.cow_peak, stats.cow_bytes.max(4096));
        assert_eq!(receiver.failure.as_deref(), Some("Failed opening the file"));
    }
}
