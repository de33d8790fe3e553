//! Logging in Valkey's line format, `pid:M 26 Nov 2026 14:10:35.123 * text`,
//! so operators' log tooling keeps working. The level marks are Valkey's:
//! `.` debug, `-` verbose, `*` notice, `#` warning; the role is `M`, or `C`
//! in a forked BGSAVE / AOF rewrite child, as Valkey marks its children.
//!
//! A forked child has only the thread that forked: a lock another thread
//! held at that moment (the sink's, stdout's, or libc's time zone lock
//! behind localtime_r) stays held forever there. So the child formats the
//! time itself, with the UTC offset the parent last saw, and writes each
//! line with one write(2), taking no lock.

use std::io::Write;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU8, Ordering};
use std::sync::Mutex;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Debug = 0,
    Verbose = 1,
    Notice = 2,
    Warning = 3,
    Nothing = 4,
}

impl From<crate::config::LogLevel> for Level {
    fn from(l: crate::config::LogLevel) -> Level {
        use crate::config::LogLevel;
        match l {
            LogLevel::Debug => Level::Debug,
            LogLevel::Verbose => Level::Verbose,
            LogLevel::Notice => Level::Notice,
            LogLevel::Warning => Level::Warning,
            LogLevel::Nothing => Level::Nothing,
        }
    }
}

static MIN_LEVEL: AtomicU8 = AtomicU8::new(Level::Notice as u8);
static SINK: Mutex<Option<std::fs::File>> = Mutex::new(None);
/// The descriptor lines go to (stdout, or the log file), for children.
static SINK_FD: AtomicI32 = AtomicI32::new(libc::STDOUT_FILENO);
/// The server's pid (0 before [`configure`]): another pid is a child.
static SERVER_PID: AtomicU32 = AtomicU32::new(0);
/// The local time's offset from UTC in seconds, as last seen by the server.
static UTC_OFFSET_S: AtomicI64 = AtomicI64::new(0);

/// Sets the lowest level written and where lines go (`""` = stdout).
pub fn configure(level: Level, logfile: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    MIN_LEVEL.store(level as u8, Ordering::Relaxed);
    SERVER_PID.store(std::process::id(), Ordering::Relaxed);
    let file = if logfile.is_empty() {
        None
    } else {
        Some(std::fs::OpenOptions::new().create(true).append(true).open(logfile)?)
    };
    let mut sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
    SINK_FD.store(file.as_ref().map_or(libc::STDOUT_FILENO, |f| f.as_raw_fd()), Ordering::Relaxed);
    *sink = file;
    Ok(())
}

pub fn set_level(level: Level) {
    MIN_LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= MIN_LEVEL.load(Ordering::Relaxed) && level != Level::Nothing
}

/// Whether this process is a forked child of the server.
fn in_child() -> bool {
    let server = SERVER_PID.load(Ordering::Relaxed);
    server != 0 && server != std::process::id()
}

pub fn write(level: Level, msg: &str) {
    if !enabled(level) {
        return;
    }
    let mark = match level {
        Level::Debug => '.',
        Level::Verbose => '-',
        Level::Notice => '*',
        _ => '#',
    };
    let child = in_child();
    let role = if child { 'C' } else { 'M' };
    let line = format!("{}:{role} {} {mark} {msg}\n", std::process::id(), timestamp(child));
    if child {
        write_unlocked(line.as_bytes());
        return;
    }
    let mut sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
    match sink.as_mut() {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        None => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }
}

/// A line written straight to the sink's descriptor (see the module notes).
fn write_unlocked(mut bytes: &[u8]) {
    let fd = SINK_FD.load(Ordering::Relaxed);
    while !bytes.is_empty() {
        // SAFETY: write(2) from a live buffer of the length given.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
        } else if n == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// `26 Nov 2026 14:10:35.123` in local time. The server asks libc for the
/// offset from UTC and remembers it; a child uses the remembered one.
fn timestamp(child: bool) -> String {
    let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
    // SAFETY: gettimeofday into a stack timeval, no time zone asked for.
    unsafe { libc::gettimeofday(&mut tv, std::ptr::null_mut()) };
    let offset = if child {
        UTC_OFFSET_S.load(Ordering::Relaxed)
    } else {
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: localtime_r fills the stack tm it is given.
        unsafe { libc::localtime_r(&tv.tv_sec, &mut tm) };
        UTC_OFFSET_S.store(tm.tm_gmtoff, Ordering::Relaxed);
        tm.tm_gmtoff
    };
    format_local_time(tv.tv_sec + offset, tv.tv_usec / 1000)
}

/// Formats a count of seconds since the epoch in local time (the offset
/// already added) as `%d %b %Y %H:%M:%S.mmm`, by arithmetic alone.
fn format_local_time(local_s: i64, millis: i64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = local_s.div_euclid(86_400);
    let secs = local_s.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{day:02} {} {year} {:02}:{:02}:{:02}.{millis:03}",
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The proleptic Gregorian (year, month 1-12, day 1-31) of a day count
/// since 1970-01-01, by counting 400-year eras that start on March 1st
/// (so the leap day ends a year).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + (month <= 2) as i64;
    (year, month, day)
}

#[macro_export]
macro_rules! log_notice { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Notice, &format!($($t)*)) } }
#[macro_export]
macro_rules! log_warning { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warning, &format!($($t)*)) } }
#[macro_export]
macro_rules! log_verbose { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Verbose) { $crate::log::write($crate::log::Level::Verbose, &format!($($t)*)) } } }
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Debug) { $crate::log::write($crate::log::Level::Debug, &format!($($t)*)) } } }

#[cfg(test)]
mod tests {
    use super::*;

    /// The arithmetic formatting agrees with libc's gmtime_r and strftime
    /// across leap years, century rules, month ends and negative times.
    #[test]
    fn formats_times_as_strftime_does() {
        let mut samples = vec![0i64, -1, 951_782_400, 951_868_799, 4_107_542_400, 1_709_164_800, -2_208_988_800];
        let mut t = -5_000_000_000i64;
        while t < 8_000_000_000 {
            samples.push(t);
            t += 7_777_777;
        }
        for s in samples {
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            let mut buf = [0u8; 64];
            // SAFETY: libc calls on stack buffers of the sizes passed.
            let n = unsafe {
                libc::gmtime_r(&s, &mut tm);
                libc::strftime(buf.as_mut_ptr().cast(), buf.len(), c"%d %b %Y %H:%M:%S".as_ptr(), &tm)
            };
            let expected = format!("{}.042", String::from_utf8_lossy(&buf[..n]));
            assert_eq!(format_local_time(s, 42), expected, "at {s}");
        }
    }
}
