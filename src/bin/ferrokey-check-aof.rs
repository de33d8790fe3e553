//! `ferrokey-check-aof [--fix|--truncate-to-timestamp TS] FILE`: checks an
//! append-only file as valkey-check-aof 8.0.1 does, with the same output
//! and exit codes.
//!
//! FILE is a multi-part AOF manifest (then its base and incr files are
//! checked in loading order, and only the last one may be cut), or an old
//! single-file AOF, with or without an RDB preamble. The RDB part is
//! checked with the formats crate's reader; the commands are read the way
//! valkey-check-aof reads them (`ferrokey_formats::aof::check`), so
//! `ok_up_to`, `ok_up_to_line` and the error lines come out the same.
//! `--fix` asks before cutting the bad tail of the last file;
//! `--truncate-to-timestamp` cuts it before the first `#TS:` annotation
//! later than TS, without asking.
//!
//! Differences from valkey-check-aof: files are opened for writing only
//! when they may be cut; a preamble is judged by ferrokey's RDB reader, so
//! RDB 12 files of known types pass (ferrokey loads them) and the RDB
//! error messages are ferrokey's; manifest errors are printed without the
//! log-line prefix.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use ferrokey_formats::aof::check::{self, ScanEnd, ScanOptions, TimestampStop};
use ferrokey_formats::aof::{truncate_to, Manifest, ManifestError};
use ferrokey_formats::rdb::{escape_bytes, rdb_type_name, Checksum, RdbItem, RdbReader};

/// Prints one line made of `parts` (raw bytes: paths need not be UTF-8).
fn say(parts: &[&[u8]]) {
    let mut out = io::stdout().lock();
    for part in parts {
        // A closed stdout must not stop the check from deciding its exit code.
        let _ = out.write_all(part);
    }
    let _ = out.write_all(b"\n");
}

/// Prints the line and exits with status 1.
fn die(parts: &[&[u8]]) -> ! {
    say(parts);
    exit(1)
}

fn exit(code: i32) -> ! {
    let _ = io::stdout().flush();
    std::process::exit(code)
}

/// The text of an OS error as C's `strerror` gives it.
fn os_error_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn as_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// C's `dirname`: the directory part of a path, "." when there is none.
fn dirname(path: &[u8]) -> Vec<u8> {
    let trimmed_len = path.iter().rposition(|&c| c != b'/').map_or(0, |i| i + 1);
    if trimmed_len == 0 {
        return if path.is_empty() { b".".to_vec() } else { b"/".to_vec() };
    }
    match path[..trimmed_len].iter().rposition(|&c| c == b'/') {
        None => b".".to_vec(),
        Some(slash) => {
            let dir_len = path[..slash].iter().rposition(|&c| c != b'/').map_or(0, |i| i + 1);
            if dir_len == 0 {
                b"/".to_vec()
            } else {
                path[..dir_len].to_vec()
            }
        }
    }
}

/// What checking one file concluded (when it did not exit).
enum Verdict {
    Valid,
    Empty,
    Truncated,
    TruncatedToTimestamp,
}

struct Checker {
    fix: bool,
    /// 0: no timestamp truncation.
    to_timestamp: i64,
    /// valkey-check-aof's line counter, shared by all files of a run.
    line: u64,
}

impl Checker {
    /// Checks one file; `name` is how the summary lines call it, `path`
    /// where it is.
    fn check_file(&mut self, name: &[u8], path: &[u8], last_file: bool, preamble: bool) -> Verdict {
        let writable = self.fix || self.to_timestamp != 0;
        let file = match OpenOptions::new().read(true).write(writable).open(as_path(path)) {
            Ok(f) => f,
            Err(e) => die(&[b"Cannot open file ", path, b": ", os_error_text(&e).as_bytes(), b", aborting..."]),
        };
        let size = match file.metadata() {
            // valkey-check-aof opens files for writing, which a directory refuses.
            Ok(m) if m.is_dir() => {
                let e = io::Error::from_raw_os_error(libc::EISDIR);
                die(&[b"Cannot open file ", path, b": ", os_error_text(&e).as_bytes(), b", aborting..."])
            }
            Ok(m) => m.len(),
            Err(_) => die(&[b"Cannot stat file: ", name, b", aborting..."]),
        };
        if size == 0 {
            return Verdict::Empty;
        }
        let ts = self.to_timestamp.to_string();
        let ts = ts.as_bytes();
        let opts = ScanOptions { path, to_timestamp: self.to_timestamp, last_file };
        let scan = if preamble {
            let Some((end, tail)) = check_rdb_preamble(path, BufReader::with_capacity(64 * 1024, &file)) else {
                die(&[b"RDB preamble of AOF file is not sane, aborting."])
            };
            say(&[b"RDB preamble is OK, proceeding with AOF tail..."]);
            check::scan_tail(tail, end, &opts, &mut self.line)
        } else {
            check::scan_tail(&file, 0, &opts, &mut self.line)
        };
        let scan = scan.unwrap_or_else(|_| die(&[b"Failed to read from AOF ", name, b", aborting..."]));
        match scan.end {
            ScanEnd::Read => {}
            ScanEnd::Stop(TimestampStop::InvalidAnnotation) => die(&[b"Invalid timestamp annotation"]),
            ScanEnd::Stop(TimestampStop::NothingBefore) => {
                die(&[b"AOF ", path, b" has nothing before timestamp ", ts, b", aborting..."])
            }
            ScanEnd::Stop(TimestampStop::NotLastFile { offset }) => {
                let offset = offset.to_string();
                say(&[
                    b"Failed to truncate AOF ",
                    path,
                    b" to timestamp ",
                    ts,
                    b" to offset ",
                    offset.as_bytes(),
                    b" because it is not the last file.",
                ]);
                die(&[b"If you insist, please delete all files after this file according to the manifest file and \
                    delete the corresponding records in manifest file manually. Then re-run ferrokey-check-aof."])
            }
            ScanEnd::CutAtTimestamp { offset } => {
                if truncate_to(as_path(path), offset).is_err() {
                    die(&[b"Failed to truncate AOF ", path, b" to timestamp ", ts]);
                }
                return Verdict::TruncatedToTimestamp;
            }
        }
        if scan.format_error {
            say(&[b"AOF ", name, b" format error"]);
        }
        if let Some(error) = &scan.error {
            say(&[error]);
        }
        let ok_up_to = scan.ok_up_to;
        let diff = size as i64 - ok_up_to as i64;
        if diff == 0 && self.to_timestamp != 0 {
            say(&[b"Truncate nothing in AOF ", name, b" to timestamp ", ts]);
            return Verdict::Valid;
        }
        let numbers = format!(", size={size}, ok_up_to={ok_up_to}, ok_up_to_line={}, diff={diff}", self.line);
        say(&[b"AOF analyzed: filename=", name, numbers.as_bytes()]);
        if diff <= 0 {
            return Verdict::Valid;
        }
        if !self.fix {
            die(&[b"AOF ", name, b" is not valid. Use the --fix option to try fixing it."]);
        }
        if !last_file {
            die(&[b"Failed to truncate AOF ", name, b" because it is not the last file"]);
        }
        let sizes = format!(" from {size} bytes, with {diff} bytes, to {ok_up_to} bytes");
        say(&[b"This will shrink the AOF ", name, sizes.as_bytes()]);
        print!("Continue? [y/N]: ");
        let _ = io::stdout().flush();
        let mut answer = [0u8; 1];
        let confirmed = matches!(io::stdin().read(&mut answer), Ok(1)) && answer[0].eq_ignore_ascii_case(&b'y');
        if !confirmed {
            die(&[b"Aborting..."]);
        }
        if truncate_to(as_path(path), ok_up_to).is_err() {
            die(&[b"Failed to truncate AOF ", name]);
        }
        Verdict::Truncated
    }
}

/// Checks the RDB file at the start of `input` as valkey-check-rdb does
/// for a preamble, printing its lines. Returns where the RDB ends and the
/// input positioned there, or `None` (after printing why) when it is bad.
fn check_rdb_preamble<R: BufRead>(path: &[u8], input: R) -> Option<(u64, R)> {
    say(&[b"[offset 0] Checking RDB file ", path]);
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let (mut keys, mut expires, mut already_expired) = (0u64, 0u64, 0u64);
    let mut reader = RdbReader::new(input);
    let failure = loop {
        let item = match reader.next_item() {
            Ok(Some(item)) => item,
            Ok(None) => break Some((reader.offset(), "Unexpected EOF reading RDB file".to_string(), None, None)),
            Err(e) => break Some((e.offset, e.reason(), e.key.clone(), e.rdb_type)),
        };
        let at = reader.offset();
        match item {
            RdbItem::Aux { key, value } => {
                let text = format!("[offset {at}] AUX FIELD {} = '{}'", escape_bytes(&key), escape_bytes(&value));
                say(&[text.as_bytes()]);
            }
            RdbItem::SelectDb { db } => say(&[format!("[offset {at}] Selecting DB ID {db}").as_bytes()]),
            RdbItem::Key(k) => {
                keys += 1;
                if k.expire_ms.is_some() {
                    expires += 1;
                }
                if k.is_expired(now_ms) {
                    already_expired += 1;
                }
            }
            RdbItem::EmptyKey(k) => {
                let why = "empty collection: an RDB file never holds one (a server skips such keys)".to_string();
                break Some((k.offset, why, Some(k.key), Some(k.rdb_type)));
            }
            RdbItem::Eof { checksum } => {
                match checksum {
                    Checksum::Verified(_) | Checksum::NotChecked(_) => {
                        say(&[format!("[offset {at}] Checksum OK").as_bytes()])
                    }
                    Checksum::Disabled => {
                        say(&[format!("[offset {at}] RDB file was saved with checksum disabled: no check performed.")
                            .as_bytes()])
                    }
                    Checksum::Absent => {}
                }
                break None;
            }
            RdbItem::Header { .. } | RdbItem::ResizeDb { .. } | RdbItem::SlotInfo { .. } | RdbItem::Function { .. } => {
            }
        }
    };
    let counts = [
        format!("[info] {keys} keys read"),
        format!("[info] {expires} expires"),
        format!("[info] {already_expired} already expired"),
    ];
    match failure {
        None => {
            let end = reader.offset();
            say(&[format!("[offset {end}] \\o/ RDB looks OK! \\o/").as_bytes()]);
            counts.iter().for_each(|c| say(&[c.as_bytes()]));
            Some((end, reader.into_inner()))
        }
        Some((offset, reason, key, rdb_type)) => {
            say(&[b"--- RDB ERROR DETECTED ---"]);
            say(&[format!("[offset {offset}] {reason}").as_bytes()]);
            if let Some(key) = key {
                say(&[format!("[additional info] Reading key '{}'", escape_bytes(&key)).as_bytes()]);
            }
            if let Some(t) = rdb_type {
                let name = rdb_type_name(t).unwrap_or("unknown");
                say(&[format!("[additional info] Reading type {t} ({name})").as_bytes()]);
            }
            counts.iter().for_each(|c| say(&[c.as_bytes()]));
            None
        }
    }
}

/// Whether the file starts with the RDB magic (valkey-check-aof's test for
/// an RDB base or preamble).
fn file_is_rdb(path: &[u8]) -> bool {
    let mut file = match File::open(as_path(path)) {
        Ok(f) => f,
        Err(e) => die(&[b"Cannot open file ", path, b": ", os_error_text(&e).as_bytes()]),
    };
    let size = match file.metadata() {
        Ok(m) => m.len(),
        Err(_) => die(&[b"Cannot stat file: ", path]),
    };
    let mut head = Vec::with_capacity(6);
    // A file that cannot be read here is reported when it is checked.
    let _ = (&mut file).take(6).read_to_end(&mut head);
    check::has_rdb_magic(&head, size)
}

fn print_manifest_error(e: &ManifestError) {
    say(&[b"*** FATAL AOF MANIFEST FILE ERROR ***"]);
    if let Some((number, text)) = &e.line {
        say(&[format!("Reading the manifest file, at line {number}").as_bytes()]);
        say(&[b">>> '", text, b"'"]);
    }
    say(&[e.reason().as_bytes()]);
}

fn print_verdict(verdict: Verdict, name: &[u8], kind: &[u8], to_timestamp: i64) {
    match verdict {
        Verdict::Valid => say(&[kind, b" ", name, b" is valid"]),
        Verdict::Empty => say(&[kind, b" ", name, b" is empty"]),
        Verdict::TruncatedToTimestamp => {
            say(&[b"Successfully truncated AOF ", name, b" to timestamp ", to_timestamp.to_string().as_bytes()])
        }
        Verdict::Truncated => say(&[b"Successfully truncated AOF ", name]),
    }
}

fn check_multi_part(checker: &mut Checker, dir: &[u8], manifest_path: &[u8]) -> ! {
    say(&[b"Start checking Multi Part AOF"]);
    let manifest = match Manifest::load(as_path(manifest_path)) {
        Ok(m) => m,
        Err(e) => {
            print_manifest_error(&e);
            exit(1)
        }
    };
    let total = manifest.files_to_load().count();
    let path_of = |name: &[u8]| [dir, b"/", name].concat();
    let mut checked = 0;
    if let Some(base) = &manifest.base {
        let path = path_of(&base.file_name);
        checked += 1;
        let is_rdb = file_is_rdb(&path);
        let format: &[u8] = if is_rdb { b"RDB" } else { b"RESP" };
        say(&[b"Start to check BASE AOF (", format, b" format)."]);
        let verdict = checker.check_file(&base.file_name, &path, checked == total, is_rdb);
        print_verdict(verdict, &base.file_name, b"BASE AOF", checker.to_timestamp);
    }
    if !manifest.incr.is_empty() {
        say(&[b"Start to check INCR files."]);
        for incr in &manifest.incr {
            checked += 1;
            let verdict = checker.check_file(&incr.file_name, &path_of(&incr.file_name), checked == total, false);
            print_verdict(verdict, &incr.file_name, b"INCR AOF", checker.to_timestamp);
        }
    }
    say(&[b"All AOF files and manifest are valid"]);
    exit(0)
}

fn main() {
    let args: Vec<Vec<u8>> = std::env::args_os().map(|a| a.into_vec()).collect();
    let program = args.first().cloned().unwrap_or_else(|| b"ferrokey-check-aof".to_vec());
    let usage = || -> ! {
        die(&[b"Usage: ", &program, b" [--fix|--truncate-to-timestamp $timestamp] <file.manifest|file.aof>"])
    };
    let (fix, to_timestamp, target) = match args.as_slice() {
        [_, flag] if flag == b"-v" || flag == b"--version" => {
            say(&[b"ferrokey-check-aof v=", env!("CARGO_PKG_VERSION").as_bytes()]);
            exit(0)
        }
        [_, target] => (false, 0, target.as_slice()),
        [_, flag, target] if flag == b"--fix" => (true, 0, target.as_slice()),
        [_, flag, ts, target] if flag == b"--truncate-to-timestamp" => {
            let parsed = check::strtol(ts);
            if parsed.overflow || parsed.used != ts.len() {
                die(&[b"Invalid timestamp, aborting..."]);
            }
            (false, parsed.value, target.as_slice())
        }
        _ => usage(),
    };
    let dir = dirname(target);
    let mut checker = Checker { fix, to_timestamp, line: 1 };

    let file = match File::open(as_path(target)) {
        Ok(f) => f,
        Err(e) => die(&[b"Cannot open file ", target, b": ", os_error_text(&e).as_bytes()]),
    };
    let is_manifest = match file.metadata() {
        Ok(m) if m.len() == 0 => false,
        Ok(_) => check::looks_like_manifest(&file).unwrap_or_else(|_| die(&[b"Cannot read file: ", target])),
        Err(_) => die(&[b"Cannot stat file: ", target]),
    };
    drop(file);
    if is_manifest {
        check_multi_part(&mut checker, &dir, target);
    }
    let preamble = file_is_rdb(target);
    say(&[b"Start checking Old-Style AOF"]);
    let verdict = checker.check_file(target, target, true, preamble);
    print_verdict(verdict, target, b"AOF", to_timestamp);
    exit(0)
}

#[cfg(test)]
mod tests {
    use super::dirname;

    #[test]
    fn dirname_like_c() {
        for (path, dir) in [
            ("appendonly.aof.manifest", "."),
            ("a/b/appendonly.aof.manifest", "a/b"),
            ("a//b", "a"),
            ("/x", "/"),
            ("a/", "."),
            ("/", "/"),
            ("", "."),
        ] {
            assert_eq!(dirname(path.as_bytes()), dir.as_bytes(), "{path}");
        }
    }
}
