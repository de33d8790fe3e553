//! The streaming AOF reader: commands, annotations and the RDB preamble of
//! one AOF file (a base or incr file of a multi-part AOF, or an old
//! single-file `appendonly.aof`).
//!
//! The grammar is the one Valkey's loader reads: only multibulk commands
//! (`*<count>\r\n` then `<count>` times `$<len>\r\n<len bytes>\r\n`, at
//! least one argument), lines starting with `#` as annotations to skip
//! (`#TS:<unix seconds>`), and an RDB file in place of the commands when
//! the file starts with the RDB magic. Where Valkey's loader is lax about
//! bytes its own writer never produces, this reader is as strict as
//! valkey-check-aof: numbers are decimal and followed by `\r\n`, and every
//! argument is followed by `\r\n`. A damaged file is therefore refused
//! instead of being replayed as something else.
//!
//! Two ways a file can be bad are told apart, because a server treats them
//! differently (`aof-load-truncated`):
//! - truncation: the input ends inside a command (or inside an annotation
//!   line), and every byte of that last piece is a possible start of a
//!   valid one. [`AofError::valid_up_to`] is where the last complete
//!   command ends: what a server keeps when it truncates.
//! - corruption: a byte that cannot be there, with its offset and why.
//!
//! Lengths read from the file never size an allocation: an argument's
//! buffer grows as its bytes actually arrive.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;

use super::input::AofInput;
use crate::rdb::{RdbError, RdbItem, RdbReader, ReaderOptions};

/// Longest annotation line, `\n` included: Valkey reads them into a
/// 1024-byte buffer.
pub const ANNOTATION_LINE_MAX: usize = 1023;

/// Longest `*<count>` or `$<len>` line accepted (`\r\n` included).
const NUMBER_LINE_MAX: usize = 32;

/// Largest part of an argument reserved before its bytes are read.
const PREALLOC_CAP: usize = 64 * 1024;

/// One command of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofCommand {
    /// The arguments, the command name first (never empty).
    pub args: Vec<Vec<u8>>,
    /// Offset of its `*`.
    pub offset: u64,
    /// Offset right after its last byte.
    pub end: u64,
}

/// A line starting with `#`. Valkey writes `#TS:<unix seconds>` when
/// `aof-timestamp-enabled` is on, and skips every annotation when loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Offset of its `#`.
    pub offset: u64,
    /// The text after `#`, without the line end.
    pub text: Vec<u8>,
}

impl Annotation {
    /// The time of a `#TS:<unix seconds>` annotation; `None` for any other.
    pub fn timestamp(&self) -> Option<i64> {
        let digits = self.text.strip_prefix(b"TS:")?;
        crate::resp::parse_i64(digits)
    }
}

/// One item of an AOF file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AofItem {
    /// The file starts with an RDB file (a preamble or an RDB base file):
    /// read it with [`AofReader::into_rdb`], then continue with
    /// [`AofReader::resume`]. Only ever the first item.
    RdbPreamble,
    Command(AofCommand),
    Annotation(Annotation),
}

/// Why a file was refused.
#[derive(Debug)]
pub enum AofErrorKind {
    /// The input ends inside a command or an annotation line.
    Truncated,
    /// A byte that cannot be where it is; the reason says what was expected.
    Corrupt(String),
    /// Reading the source failed.
    Io(io::Error),
    /// The RDB preamble is bad (offsets in it are file offsets too, since
    /// the preamble starts the file).
    Preamble(RdbError),
}

/// An AOF reading error.
#[derive(Debug)]
pub struct AofError {
    /// Where the problem was found: the end of the input for a truncation,
    /// the offending byte (or the start of its line) for corruption.
    pub offset: u64,
    /// Offset right after the last complete command before the problem
    /// (after the RDB preamble when there is no command yet; 0 when
    /// neither): a file cut there holds only complete commands.
    pub valid_up_to: u64,
    pub kind: AofErrorKind,
}

impl AofError {
    /// True when the file simply ends too early.
    pub fn is_truncation(&self) -> bool {
        matches!(self.kind, AofErrorKind::Truncated)
    }

    /// The reason alone, without the offset.
    pub fn reason(&self) -> String {
        match &self.kind {
            AofErrorKind::Truncated => format!(
                "the file ends in the middle of a command (the last complete command ends at offset {})",
                self.valid_up_to
            ),
            AofErrorKind::Corrupt(why) => why.clone(),
            AofErrorKind::Io(e) => format!("I/O error: {e}"),
            AofErrorKind::Preamble(e) => format!("bad RDB preamble: {}", e.reason()),
        }
    }
}

impl fmt::Display for AofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            AofErrorKind::Preamble(e) => write!(f, "bad RDB preamble: {e}"),
            _ => write!(f, "[offset {}] {}", self.offset, self.reason()),
        }
    }
}

impl std::error::Error for AofError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            AofErrorKind::Io(e) => Some(e),
            AofErrorKind::Preamble(e) => Some(e),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing read yet: the RDB magic may come.
    Start,
    /// The RDB preamble item was returned; [`AofReader::into_rdb`] is next.
    AtPreamble,
    Commands,
    Done,
    Failed,
}

/// Reads an AOF file item by item. See the module documentation.
///
/// ```no_run
/// use ferrokey_formats::aof::{AofItem, AofReader};
/// let mut reader = AofReader::open("appendonlydir/appendonly.aof.1.incr.aof").unwrap();
/// while let Some(item) = reader.next_item().unwrap() {
///     match item {
///         AofItem::RdbPreamble => {
///             let mut rdb = reader.into_rdb();
///             while let Some(_item) = rdb.next_item().unwrap() { /* load it */ }
///             reader = ferrokey_formats::aof::AofReader::resume(rdb).unwrap();
///         }
///         AofItem::Command(cmd) => println!("{} arguments", cmd.args.len()),
///         AofItem::Annotation(_) => {}
///     }
/// }
/// ```
pub struct AofReader<R> {
    input: AofInput<R>,
    state: State,
    valid_up_to: u64,
    /// Where the open MULTI's transaction starts (the end of the command
    /// before it).
    multi_start: Option<u64>,
}

impl AofReader<File> {
    /// Opens a file for reading.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(AofReader::new(File::open(path)?))
    }
}

impl<R: Read> AofReader<R> {
    /// Reads from `inner` through the reader's own buffer (no need for a
    /// `BufReader`).
    pub fn new(inner: R) -> Self {
        AofReader { input: AofInput::new(inner), state: State::Start, valid_up_to: 0, multi_start: None }
    }

    /// Offset of the next byte to read.
    pub fn offset(&self) -> u64 {
        self.input.offset()
    }

    /// Offset right after the last complete command (or the RDB preamble).
    pub fn valid_up_to(&self) -> u64 {
        self.valid_up_to
    }

    /// When the commands read so far end inside a transaction (a MULTI
    /// without its EXEC), where that transaction starts. At the
    /// end of the file, Valkey's loader drops such a transaction and
    /// truncates the file there, as for a truncated command.
    pub fn pending_multi(&self) -> Option<u64> {
        self.multi_start
    }

    /// Hands the input to an RDB reader, after [`AofItem::RdbPreamble`].
    pub fn into_rdb(self) -> RdbReader<AofInput<R>> {
        self.into_rdb_with(ReaderOptions::default())
    }

    /// [`AofReader::into_rdb`] with reader options.
    pub fn into_rdb_with(self, opts: ReaderOptions) -> RdbReader<AofInput<R>> {
        RdbReader::with_options(self.input, opts)
    }

    /// Continues with the commands after an RDB preamble. The RDB reader
    /// must have returned its end-of-file item.
    pub fn resume(rdb: RdbReader<AofInput<R>>) -> Result<Self, AofError> {
        let done = rdb.is_done();
        let input = rdb.into_inner();
        let at = input.offset();
        if !done {
            return Err(AofError {
                offset: at,
                valid_up_to: 0,
                kind: AofErrorKind::Corrupt("the RDB preamble was not read to its end".into()),
            });
        }
        Ok(AofReader { input, state: State::Commands, valid_up_to: at, multi_start: None })
    }

    /// The next item, `Ok(None)` at the end of the file. After an error,
    /// every further call returns `Ok(None)`.
    pub fn next_item(&mut self) -> Result<Option<AofItem>, AofError> {
        match self.state {
            State::Done | State::Failed => return Ok(None),
            State::AtPreamble => {
                let e = self.corrupt(0, "the file starts with an RDB preamble: read it with into_rdb()".into());
                return Err(self.fail(e));
            }
            State::Start | State::Commands => {}
        }
        let at = self.offset();
        let first = match self.input.ensure(if self.state == State::Start { 6 } else { 1 }) {
            Ok(bytes) => bytes,
            Err(e) => return Err(self.fail_io(e)),
        };
        if first.is_empty() {
            self.state = State::Done;
            return Ok(None);
        }
        if self.state == State::Start {
            if first.starts_with(b"REDIS") || first.starts_with(b"VALKEY") {
                self.state = State::AtPreamble;
                return Ok(Some(AofItem::RdbPreamble));
            }
            self.state = State::Commands;
        }
        let item = match first[0] {
            b'*' => self.read_command(at).map(AofItem::Command),
            b'#' => self.read_annotation(at).map(AofItem::Annotation),
            other => Err(self
                .corrupt(at, format!("expected '*' (a command) or '#' (an annotation), got {}", describe_byte(other)))),
        };
        match item {
            Ok(item) => Ok(Some(item)),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn read_annotation(&mut self, at: u64) -> Result<Annotation, AofError> {
        match self.input.find_line(ANNOTATION_LINE_MAX).map_err(|e| self.io_error(e))? {
            Some(len) => {
                let line = &self.input.available()[..len];
                let body = &line[1..len - 1];
                let text = body.strip_suffix(b"\r").unwrap_or(body).to_vec();
                self.input.consume(len);
                Ok(Annotation { offset: at, text })
            }
            None if self.input.available().len() >= ANNOTATION_LINE_MAX => Err(self.corrupt(
                at,
                format!("annotation line longer than {ANNOTATION_LINE_MAX} bytes (Valkey reads at most that much)"),
            )),
            // An annotation is written together with the command after it, so
            // a partial one is a cut write; treating it as truncation also
            // keeps the next append from being glued to it.
            None => Err(self.truncated()),
        }
    }

    fn read_command(&mut self, at: u64) -> Result<AofCommand, AofError> {
        let count = self.read_number(b'*')?;
        if count < 1 {
            return Err(self.corrupt(at, format!("invalid command: {count} arguments (a command has at least one)")));
        }
        if count > i32::MAX as i64 {
            return Err(self.corrupt(at, format!("invalid command: {count} arguments is more than the loader takes")));
        }
        let mut args = Vec::with_capacity((count as usize).min(1024));
        for i in 0..count {
            let arg_at = self.offset();
            let first = match self.input.ensure(1) {
                Ok(bytes) => bytes.first().copied(),
                Err(e) => return Err(self.io_error(e)),
            };
            match first {
                None => return Err(self.truncated()),
                Some(b'$') => {}
                Some(other) => {
                    return Err(self.corrupt(
                        arg_at,
                        format!("expected '$' for argument {} of {count}, got {}", i + 1, describe_byte(other)),
                    ))
                }
            }
            let len = self.read_number(b'$')?;
            if len < 0 {
                return Err(self.corrupt(arg_at, format!("invalid argument length {len}")));
            }
            let arg = self.read_bulk(len as u64)?;
            self.read_crlf(len)?;
            args.push(arg);
        }
        // Transactions: Valkey's loader queues everything between MULTI and
        // EXEC (DISCARD included), and cannot replay a nested MULTI or an
        // EXEC without MULTI (the error reply it would get is fatal there).
        let name = &args[0];
        if name.eq_ignore_ascii_case(b"multi") {
            if self.multi_start.is_some() {
                return Err(self.corrupt(at, "MULTI inside a transaction".into()));
            }
            self.multi_start = Some(self.valid_up_to);
        } else if name.eq_ignore_ascii_case(b"exec") {
            if self.multi_start.is_none() {
                return Err(self.corrupt(at, "EXEC without MULTI".into()));
            }
            self.multi_start = None;
        }
        let end = self.offset();
        self.valid_up_to = end;
        Ok(AofCommand { args, offset: at, end })
    }

    /// Reads a `*<n>\r\n` or `$<n>\r\n` line (`prefix` already checked).
    fn read_number(&mut self, prefix: u8) -> Result<i64, AofError> {
        let at = self.offset();
        let what = if prefix == b'*' { "argument count" } else { "argument length" };
        let found = self.input.find_line(NUMBER_LINE_MAX).map_err(|e| self.io_error(e))?;
        let avail = self.input.available();
        let Some(len) = found else {
            if avail.len() < NUMBER_LINE_MAX && is_number_line_prefix(&avail[1..]) {
                return Err(self.truncated());
            }
            let shown = crate::rdb::escape_bytes(&avail[..avail.len().min(NUMBER_LINE_MAX)]);
            return Err(self.corrupt(at, format!("invalid {what} line '{shown}'")));
        };
        let line = &avail[..len];
        let number = line[1..].strip_suffix(b"\r\n").and_then(parse_number);
        match number {
            Some(n) => {
                self.input.consume(len);
                Ok(n)
            }
            None => {
                let shown = crate::rdb::escape_bytes(line);
                Err(self.corrupt(at, format!("invalid {what} line '{shown}'")))
            }
        }
    }

    /// Reads an argument of `len` bytes, growing its buffer as bytes come.
    fn read_bulk(&mut self, len: u64) -> Result<Vec<u8>, AofError> {
        let mut out = Vec::with_capacity(len.min(PREALLOC_CAP as u64) as usize);
        let mut left = len;
        while left > 0 {
            let avail = match self.input.fill_buf() {
                Ok(avail) => avail,
                Err(e) => return Err(self.io_error(e)),
            };
            if avail.is_empty() {
                return Err(self.truncated());
            }
            let take = avail.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            out.extend_from_slice(&avail[..take]);
            self.input.consume(take);
            left -= take as u64;
        }
        Ok(out)
    }

    fn read_crlf(&mut self, len: i64) -> Result<(), AofError> {
        let at = self.offset();
        let bytes = match self.input.ensure(2) {
            Ok(bytes) => bytes,
            Err(e) => return Err(self.io_error(e)),
        };
        match bytes {
            [b'\r', b'\n', ..] => {
                self.input.consume(2);
                Ok(())
            }
            [] | [b'\r'] => Err(self.truncated()),
            _ => {
                let got = crate::rdb::escape_bytes(&bytes[..bytes.len().min(2)]);
                Err(self.corrupt(at, format!("expected \\r\\n after an argument of {len} bytes, got '{got}'")))
            }
        }
    }

    fn corrupt(&self, offset: u64, why: String) -> AofError {
        AofError { offset, valid_up_to: self.valid_up_to, kind: AofErrorKind::Corrupt(why) }
    }

    fn truncated(&self) -> AofError {
        let end = self.input.offset() + self.input.available().len() as u64;
        AofError { offset: end, valid_up_to: self.valid_up_to, kind: AofErrorKind::Truncated }
    }

    fn io_error(&self, e: io::Error) -> AofError {
        AofError { offset: self.offset(), valid_up_to: self.valid_up_to, kind: AofErrorKind::Io(e) }
    }

    fn fail_io(&mut self, e: io::Error) -> AofError {
        let e = self.io_error(e);
        self.fail(e)
    }

    fn fail(&mut self, e: AofError) -> AofError {
        self.state = State::Failed;
        e
    }
}

/// A decimal number as Valkey's writer prints it: an optional sign, then
/// digits (leading zeros tolerated, as the C parsers do), within i64.
fn parse_number(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        let d = (d - b'0') as i64;
        value = value.checked_mul(10)?;
        value = if negative { value.checked_sub(d)? } else { value.checked_add(d)? };
    }
    Some(value)
}

/// True when `s` (a number line without its prefix, cut by the end of the
/// input) could still become a valid line.
fn is_number_line_prefix(s: &[u8]) -> bool {
    let (body, has_cr) = match s.strip_suffix(b"\r") {
        Some(body) => (body, true),
        None => (s, false),
    };
    let digits = body.strip_prefix(b"-").or_else(|| body.strip_prefix(b"+")).unwrap_or(body);
    // The `\r` may only come after at least one digit.
    digits.iter().all(u8::is_ascii_digit) && (!has_cr || !digits.is_empty())
}

fn describe_byte(b: u8) -> String {
    format!("'{}' (0x{b:02x})", crate::rdb::escape_bytes(&[b]))
}

/// Everything an AOF file holds, read with [`read_all`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AofContents {
    /// The items of the RDB preamble, when the file starts with one.
    pub preamble: Option<Vec<RdbItem>>,
    pub commands: Vec<AofCommand>,
    pub annotations: Vec<Annotation>,
    /// Where the open transaction at the end of the file starts, if any
    /// (see [`AofReader::pending_multi`]).
    pub pending_multi: Option<u64>,
}

/// Reads a whole AOF file into memory: for tests and tools.
pub fn read_all<R: Read>(inner: R) -> Result<AofContents, AofError> {
    let mut reader = AofReader::new(inner);
    let mut out = AofContents::default();
    while let Some(item) = reader.next_item()? {
        match item {
            AofItem::RdbPreamble => {
                let mut rdb = reader.into_rdb();
                let mut items = Vec::new();
                loop {
                    match rdb.next_item() {
                        Ok(Some(item)) => items.push(item),
                        Ok(None) => break,
                        Err(e) => {
                            return Err(AofError { offset: e.offset, valid_up_to: 0, kind: AofErrorKind::Preamble(e) })
                        }
                    }
                }
                out.preamble = Some(items);
                reader = AofReader::resume(rdb)?;
            }
            AofItem::Command(cmd) => out.commands.push(cmd),
            AofItem::Annotation(a) => out.annotations.push(a),
        }
    }
    out.pending_multi = reader.pending_multi();
    Ok(out)
}

/// [`read_all`] of the file at `path`.
pub fn read_file(path: impl AsRef<Path>) -> Result<AofContents, AofError> {
    let file = File::open(path).map_err(|e| AofError { offset: 0, valid_up_to: 0, kind: AofErrorKind::Io(e) })?;
    read_all(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_lines() {
        assert_eq!(parse_number(b"12"), Some(12));
        assert_eq!(parse_number(b"-3"), Some(-3));
        assert_eq!(parse_number(b"+3"), Some(3));
        assert_eq!(parse_number(b"007"), Some(7));
        assert_eq!(parse_number(b""), None);
        assert_eq!(parse_number(b"-"), None);
        assert_eq!(parse_number(b"1 "), None);
        assert_eq!(parse_number(b"9223372036854775808"), None);
        assert_eq!(parse_number(b"-9223372036854775808"), Some(i64::MIN));
        for ok in [&b""[..], b"1", b"12", b"12\r", b"-", b"-1\r", b"+"] {
            assert!(is_number_line_prefix(ok), "{ok:?}");
        }
        for bad in [&b"x"[..], b"1x", b"\r", b"-\r", b"1\r\r", b"--1"] {
            assert!(!is_number_line_prefix(bad), "{bad:?}");
        }
    }
}
