//! valkey-check-aof's verdict on a file, for `ferrokey-check-aof`.
//!
//! The checker reads commands by its own rules, which differ from the
//! loader's in places, and users compare its numbers (`ok_up_to`,
//! `ok_up_to_line`) and messages with Valkey's. So this is a model of its
//! reading, not a second use of [`super::AofReader`]:
//! - a count or length line is read into a 128-byte buffer and parsed like
//!   C's `strtol` (leading blanks, a sign, digits, saturating), and must be
//!   followed right away by `\r\n`; `*0`, `*-1` and a bare `*\r\n` are
//!   commands without arguments, which pass;
//! - an argument's bytes and its `\r\n` are read together and the last two
//!   must be `\r\n`;
//! - MULTI must not nest and EXEC must close a MULTI; a file ending inside
//!   a transaction is cut before its MULTI;
//! - `ok_up_to` is where the last complete command outside a transaction
//!   ends; `ok_up_to_line` counts every `\r\n` consumed (annotation lines
//!   not included), and keeps counting across the files of a manifest;
//! - with a timestamp to truncate to, `#TS:` annotations are read, and the
//!   file is cut before the first one later than it.
//!
//! Lengths never size an allocation: an argument's bytes are skipped as
//! they are read, keeping only what the checks look at.

use std::io::{self, BufRead, Read};

use super::input::AofInput;

/// Size of valkey-check-aof's line buffer for count and length lines.
const NUMBER_LINE_BUFFER: usize = 128;
/// Size of its buffer for annotation lines.
const ANNOTATION_BUFFER: usize = 1024;

/// What to check.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions<'a> {
    /// The file as valkey-check-aof names it in MULTI/EXEC and timestamp
    /// messages: the path it opened.
    pub path: &'a [u8],
    /// `--truncate-to-timestamp`: 0 = off.
    pub to_timestamp: i64,
    /// Only the last file of a set may be cut at a timestamp.
    pub last_file: bool,
}

/// A reason to stop the whole check (valkey-check-aof exits with 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampStop {
    /// A `#TS:` line that is not `#TS:<number>\r`.
    InvalidAnnotation,
    /// The first byte of the file is already a later timestamp.
    NothingBefore,
    /// A later timestamp in a file that is not the last of the set.
    NotLastFile { offset: u64 },
}

/// How the scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// The file was read to its end or to the first problem; `ok_up_to`
    /// says how far it is good.
    Read,
    /// A timestamp later than the one asked for starts at `offset`: the
    /// file is to be cut there.
    CutAtTimestamp {
        offset: u64,
    },
    Stop(TimestampStop),
}

/// valkey-check-aof's findings on one file's command stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailScan {
    /// `ok_up_to`.
    pub ok_up_to: u64,
    /// The error line it prints (`0x<offset, 16 wide>: <message>`), raw bytes.
    pub error: Option<Vec<u8>>,
    /// A byte that starts neither a command nor an annotation was found
    /// (it prints `AOF <name> format error`).
    pub format_error: bool,
    pub end: ScanEnd,
}

/// Reads the command stream of one file from `start` (0, or the end of
/// its RDB preamble) as valkey-check-aof does. `line` is the line counter
/// shared by all the files of one run (valkey-check-aof starts it at 1).
pub fn scan_tail<R: Read>(inner: R, start: u64, opts: &ScanOptions, line: &mut u64) -> io::Result<TailScan> {
    let mut scanner = Scanner {
        input: AofInput::new(inner),
        start,
        opts,
        line,
        error_at: 0,
        error: None,
        multi: 0,
        eof: false,
        count_line: [0; NUMBER_LINE_BUFFER],
    };
    scanner.run()
}

struct Scanner<'a, 'o, R> {
    input: AofInput<R>,
    /// File offset of the input's first byte.
    start: u64,
    opts: &'a ScanOptions<'o>,
    line: &'a mut u64,
    /// Offset of the last line or bytes read (where an error is reported).
    error_at: u64,
    error: Option<Vec<u8>>,
    /// MULTI depth, as valkey-check-aof counts it.
    multi: i64,
    /// A read reached the end of the input (C's end-of-file flag).
    eof: bool,
    /// The buffer count lines are read into. A line shorter than the one
    /// before leaves that one's bytes behind its terminator, and
    /// valkey-check-aof shows one of them when a count line ends early.
    /// (Its buffer for length lines does not keep them: calls in between
    /// write over it; zeros are what it shows.)
    count_line: [u8; NUMBER_LINE_BUFFER],
}

impl<R: Read> Scanner<'_, '_, R> {
    fn pos(&self) -> u64 {
        self.start + self.input.offset()
    }

    fn run(&mut self) -> io::Result<TailScan> {
        let mut ok_up_to = self.pos();
        let mut format_error = false;
        loop {
            if self.multi == 0 {
                ok_up_to = self.pos();
            }
            // Peeking a byte and seeking back clears the end-of-file flag.
            self.eof = false;
            let Some(&first) = self.input.ensure(1)?.first() else {
                self.eof = true;
                break;
            };
            match first {
                b'#' => {
                    if let Some(end) = self.annotation()? {
                        return Ok(TailScan { ok_up_to, error: self.error.take(), format_error, end });
                    }
                }
                b'*' => {
                    if !self.command()? {
                        break;
                    }
                }
                _ => {
                    format_error = true;
                    break;
                }
            }
        }
        if self.eof && self.multi != 0 && self.error.is_none() {
            self.set_error(b"Reached EOF before reading EXEC for MULTI".to_vec());
        }
        Ok(TailScan { ok_up_to, error: self.error.take(), format_error, end: ScanEnd::Read })
    }

    fn set_error(&mut self, message: Vec<u8>) {
        let mut line = format!("0x{:>16x}: ", self.error_at).into_bytes();
        // valkey-check-aof formats into fixed buffers, as C strings: a NUL
        // byte (shown by `%c`) ends the message.
        let message = &message[..memchr::memchr(0, &message).unwrap_or(message.len())];
        line.extend_from_slice(&message[..message.len().min(1023)]);
        line.truncate(1043);
        self.error = Some(line);
    }

    /// C's `fgets`: up to `buffer - 1` bytes, stopping after a `\n`.
    /// `None` when nothing is left.
    fn fgets(&mut self, buffer: usize) -> io::Result<Option<Vec<u8>>> {
        let max = buffer - 1;
        let len = match self.input.find_line(max)? {
            Some(len) => len,
            None => {
                let len = self.input.available().len().min(max);
                if len < max {
                    self.eof = true;
                }
                len
            }
        };
        if len == 0 {
            return Ok(None);
        }
        let bytes = self.input.available()[..len].to_vec();
        self.input.consume(len);
        Ok(Some(bytes))
    }

    /// Checks that `c0 c1` are `\r\n` (counting the line), else sets the
    /// error showing them.
    fn newline(&mut self, c0: u8, c1: u8) -> bool {
        if c0 == b'\r' && c1 == b'\n' {
            *self.line += 1;
            return true;
        }
        // Printed as C `char`s through `%02x`: sign-extended above 0x7f.
        let hex = |c: u8| format!("{:02x}", c as i8 as i32 as u32);
        self.set_error(format!("Expected \\r\\n, got: {}{}", hex(c0), hex(c1)).into_bytes());
        false
    }

    /// A `<prefix><number>\r\n` line; `None` when it stops the scan (with
    /// an error set, or silently at the end of the input).
    fn number(&mut self, prefix: u8) -> io::Result<Option<i64>> {
        self.error_at = self.pos();
        let Some(buf) = self.fgets(NUMBER_LINE_BUFFER)? else { return Ok(None) };
        if buf[0] != prefix {
            let mut message = format!("Expected prefix '{}', got: '", prefix as char).into_bytes();
            message.push(buf[0]);
            message.push(b'\'');
            self.set_error(message);
            return Ok(None);
        }
        let mut c_buffer = [0; NUMBER_LINE_BUFFER];
        let c_buffer = if prefix == b'*' { &mut self.count_line } else { &mut c_buffer };
        c_buffer[..buf.len()].copy_from_slice(&buf);
        c_buffer[buf.len()] = 0;
        let parsed = strtol(&buf[1..]);
        let end = 1 + parsed.used;
        let at = |i: usize| c_buffer.get(i).copied().unwrap_or(0);
        let (c0, c1) = (at(end), at(end + 1));
        if !self.newline(c0, c1) {
            return Ok(None);
        }
        Ok(Some(parsed.value))
    }

    /// One command; false when it stops the scan.
    fn command(&mut self) -> io::Result<bool> {
        let Some(count) = self.number(b'*')? else { return Ok(false) };
        let mut i = 0;
        while i < count {
            let Some(len) = self.number(b'$')? else { return Ok(false) };
            if !(0..=i64::MAX - 2).contains(&len) {
                self.set_error(
                    format!("Expected to read string of {len} bytes, which is not in the suitable range").into_bytes(),
                );
                return Ok(false);
            }
            let want = len as u64 + 2;
            self.error_at = self.pos();
            let (got, head, tail) = self.skip(want)?;
            if got != want {
                self.eof = true;
                self.set_error(format!("Expected to read {want} bytes, got {got} bytes").into_bytes());
                return Ok(false);
            }
            if !self.newline(tail[0], tail[1]) {
                return Ok(false);
            }
            if i == 0 {
                // The argument is a C string there: it ends at a NUL.
                let name = &head[..head.len().min(len as usize)];
                let name = &name[..memchr::memchr(0, name).unwrap_or(name.len())];
                if name.eq_ignore_ascii_case(b"multi") {
                    self.multi += 1;
                    if self.multi != 1 {
                        let mut message = b"Unexpected MULTI in AOF ".to_vec();
                        message.extend_from_slice(self.opts.path);
                        self.set_error(message);
                        return Ok(false);
                    }
                } else if name.eq_ignore_ascii_case(b"exec") {
                    self.multi -= 1;
                    if self.multi != 0 {
                        let mut message = b"Unexpected EXEC in AOF ".to_vec();
                        message.extend_from_slice(self.opts.path);
                        self.set_error(message);
                        return Ok(false);
                    }
                }
            }
            i += 1;
        }
        Ok(true)
    }

    /// Reads up to `n` bytes, keeping the first six (enough to recognize
    /// MULTI and EXEC) and the last two. Returns how many were read.
    fn skip(&mut self, n: u64) -> io::Result<(u64, Vec<u8>, [u8; 2])> {
        let mut head = Vec::with_capacity(6);
        let mut tail = [0u8; 2];
        let mut got = 0u64;
        while got < n {
            let avail = self.input.fill_buf()?;
            if avail.is_empty() {
                break;
            }
            let take = avail.len().min(usize::try_from(n - got).unwrap_or(usize::MAX));
            let chunk = &avail[..take];
            if head.len() < 6 {
                let more = (6 - head.len()).min(take);
                head.extend_from_slice(&chunk[..more]);
            }
            match take {
                1 => tail = [tail[1], chunk[0]],
                _ => tail = [chunk[take - 2], chunk[take - 1]],
            }
            self.input.consume(take);
            got += take as u64;
        }
        Ok((got, head, tail))
    }

    /// An annotation line; `Some` when it ends the scan.
    fn annotation(&mut self) -> io::Result<Option<ScanEnd>> {
        self.error_at = self.pos();
        let at = self.error_at;
        let Some(buf) = self.fgets(ANNOTATION_BUFFER)? else { return Ok(None) };
        if self.opts.to_timestamp == 0 || !buf.starts_with(b"#TS:") {
            return Ok(None);
        }
        let ts = strtol(&buf[4..]);
        if ts.overflow || buf.get(4 + ts.used) != Some(&b'\r') {
            return Ok(Some(ScanEnd::Stop(TimestampStop::InvalidAnnotation)));
        }
        if ts.value <= self.opts.to_timestamp {
            return Ok(None);
        }
        if at == 0 {
            return Ok(Some(ScanEnd::Stop(TimestampStop::NothingBefore)));
        }
        if !self.opts.last_file {
            return Ok(Some(ScanEnd::Stop(TimestampStop::NotLastFile { offset: at })));
        }
        Ok(Some(ScanEnd::CutAtTimestamp { offset: at }))
    }
}

/// What C's `strtol(s, &end, 10)` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strtol {
    /// The value, saturated at the i64 bounds.
    pub value: i64,
    /// Bytes of the input used (0 when there is no number).
    pub used: usize,
    /// Out of range (C sets `errno` to `ERANGE`).
    pub overflow: bool,
}

/// C's `strtol` in base 10: leading blanks, a sign, digits.
pub fn strtol(s: &[u8]) -> Strtol {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits_start = i;
    let mut value: i64 = 0;
    let mut overflow = false;
    while i < s.len() && s[i].is_ascii_digit() {
        let d = (s[i] - b'0') as i64;
        let next = value.checked_mul(10).and_then(|v| if negative { v.checked_sub(d) } else { v.checked_add(d) });
        match next {
            Some(v) => value = v,
            None => {
                overflow = true;
                value = if negative { i64::MIN } else { i64::MAX };
            }
        }
        i += 1;
    }
    if i == digits_start {
        return Strtol { value: 0, used: 0, overflow: false };
    }
    Strtol { value, used: i, overflow }
}

/// valkey-check-aof's test for a manifest: among the lines before the
/// first that is neither a comment nor a `file` line, at least one `file`
/// line.
pub fn looks_like_manifest<R: Read>(inner: R) -> io::Result<bool> {
    let mut input = AofInput::new(inner);
    let mut found = false;
    loop {
        let len = match input.find_line(super::manifest::MANIFEST_LINE_MAX)? {
            Some(len) => len,
            None => input.available().len(),
        };
        if len == 0 {
            return Ok(found);
        }
        let line = &input.available()[..len];
        if line[0] == b'#' {
        } else if line.starts_with(b"file") {
            found = true;
        } else {
            return Ok(found);
        }
        input.consume(len);
    }
}

/// valkey-check-aof's test for an RDB file (an RDB base or an old AOF
/// with a preamble): at least 8 bytes, starting with the RDB magic (also
/// the `VALKEY` magic of later versions, which ferrokey reads).
pub fn has_rdb_magic(head: &[u8], file_size: u64) -> bool {
    file_size >= 8 && (head.starts_with(b"REDIS") || head.starts_with(b"VALKEY"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_like_c() {
        let t = |s: &[u8]| {
            let r = strtol(s);
            (r.value, r.used, r.overflow)
        };
        assert_eq!(t(b"12\r\n"), (12, 2, false));
        assert_eq!(t(b" +3\r\n"), (3, 3, false));
        assert_eq!(t(b"\r\n"), (0, 0, false));
        assert_eq!(t(b"-"), (0, 0, false));
        assert_eq!(t(b"99999999999999999999x"), (i64::MAX, 20, true));
        assert_eq!(t(b"9223372036854775807"), (i64::MAX, 19, false));
        assert_eq!(t(b"-9223372036854775808"), (i64::MIN, 20, false));
    }

    fn scan(bytes: &[u8]) -> (TailScan, u64) {
        let mut line = 1;
        let opts = ScanOptions { path: b"f.aof", to_timestamp: 0, last_file: true };
        (scan_tail(bytes, 0, &opts, &mut line).unwrap(), line)
    }

    #[test]
    fn verdicts_like_valkey_check_aof() {
        // Each case was run through valkey-check-aof 8.0.1.
        let (s, line) = scan(b"*1\r\n$5\r\nMULTI\r\n");
        assert_eq!((s.ok_up_to, line), (0, 4));
        assert_eq!(s.error.unwrap(), b"0x               8: Reached EOF before reading EXEC for MULTI");
        let (s, line) = scan(b"*1\r\n");
        assert_eq!((s.ok_up_to, line, s.error), (0, 2, None));
        let (s, _) = scan(b"*1\r\n$5");
        assert_eq!(s.error.unwrap(), b"0x               4: Expected \\r\\n, got: 0000");
        let (s, line) = scan(b"*1\r\n$5\r\nMU");
        assert_eq!((s.ok_up_to, line), (0, 3));
        assert_eq!(s.error.unwrap(), b"0x               8: Expected to read 7 bytes, got 2 bytes");
        let (s, line) = scan(b"*\r\n");
        assert_eq!((s.ok_up_to, line, s.error), (3, 2, None));
        let (s, _) = scan(b"*1\r\n$3\r\nabcde");
        assert_eq!(s.error.unwrap(), b"0x               8: Expected \\r\\n, got: 6465");
        let (s, _) = scan(b"*2\r\n$4\r\nEXEC\r\n$1\r\nx\r\n");
        assert_eq!(s.error.unwrap(), b"0x               8: Unexpected EXEC in AOF f.aof");
        let (s, _) = scan(b"*1\r\n$-3\r\n");
        assert_eq!(
            s.error.unwrap(),
            b"0x               4: Expected to read string of -3 bytes, which is not in the suitable range"
        );
        let (s, _) = scan(b"*1\r\n:3\r\n");
        assert_eq!(s.error.unwrap(), b"0x               4: Expected prefix '$', got: ':'");
        let (s, _) = scan(b"x");
        assert!(s.format_error && s.error.is_none() && s.ok_up_to == 0);
        let (s, line) = scan(b"#hello");
        assert_eq!((s.ok_up_to, line, s.error), (6, 1, None));
    }
}
