//! Logging in Valkey's line format, `pid:M 26 Nov 2026 14:10:35.123 * text`,
//! so operators' log tooling keeps working. The level marks are Valkey's:
//! `.` debug, `-` verbose, `*` notice, `#` warning.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
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

/// Sets the lowest level written and where lines go (`""` = stdout).
pub fn configure(level: Level, logfile: &str) -> std::io::Result<()> {
    MIN_LEVEL.store(level as u8, Ordering::Relaxed);
    let file = if logfile.is_empty() {
        None
    } else {
        Some(std::fs::OpenOptions::new().create(true).append(true).open(logfile)?)
    };
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = file;
    Ok(())
}

pub fn set_level(level: Level) {
    MIN_LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= MIN_LEVEL.load(Ordering::Relaxed) && level != Level::Nothing
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
    let line = format!("{}:M {} {} {}\n", std::process::id(), timestamp(), mark, msg);
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

fn timestamp() -> String {
    let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let mut buf = [0u8; 64];
    // SAFETY: plain libc calls on stack buffers of the sizes passed.
    let n = unsafe {
        libc::gettimeofday(&mut tv, std::ptr::null_mut());
        libc::localtime_r(&tv.tv_sec, &mut tm);
        libc::strftime(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), c"%d %b %Y %H:%M:%S".as_ptr(), &tm)
    };
    format!("{}.{:03}", String::from_utf8_lossy(&buf[..n]), tv.tv_usec / 1000)
}

#[macro_export]
macro_rules! log_notice { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Notice, &format!($($t)*)) } }
#[macro_export]
macro_rules! log_warning { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warning, &format!($($t)*)) } }
#[macro_export]
macro_rules! log_verbose { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Verbose) { $crate::log::write($crate::log::Level::Verbose, &format!($($t)*)) } } }
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Debug) { $crate::log::write($crate::log::Level::Debug, &format!($($t)*)) } } }
