//! RESP: the request side (what clients send a server) and a small reply
//! value parser (what a server answers), both without allocation beyond
//! what the caller asks for.
//!
//! The request parser follows the server's rules rather than the spec's
//! letter, because clients depend on the server's exact behaviour: a frame
//! that starts with `*` is a multibulk, anything else is an inline command
//! split like a shell line; a count line longer than [`INLINE_MAX`] without
//! its terminator is an error; bulk payloads are taken by length and their
//! trailing two bytes are skipped without inspection.

use std::ops::Range;

/// Longest inline command or count line accepted before the terminator is seen.
pub const INLINE_MAX: usize = 64 * 1024;

/// What a request parser found wrong. The `Display` text is the reply a
/// Valkey server sends before it closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    TooBigInline,
    TooBigMultibulkCount,
    InvalidMultibulkLength,
    UnauthenticatedMultibulkLength,
    UnauthenticatedBulkLength,
    TooBigBulkCount,
    ExpectedDollar(u8),
    InvalidBulkLength,
    UnbalancedQuotes,
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::TooBigInline => f.write_str("Protocol error: too big inline request"),
            ProtocolError::TooBigMultibulkCount => f.write_str("Protocol error: too big mbulk count string"),
            ProtocolError::InvalidMultibulkLength => f.write_str("Protocol error: invalid multibulk length"),
            ProtocolError::UnauthenticatedMultibulkLength => {
                f.write_str("Protocol error: unauthenticated multibulk length")
            }
            ProtocolError::UnauthenticatedBulkLength => f.write_str("Protocol error: unauthenticated bulk length"),
            ProtocolError::TooBigBulkCount => f.write_str("Protocol error: too big bulk count string"),
            ProtocolError::ExpectedDollar(c) => write!(f, "Protocol error: expected '$', got '{}'", *c as char),
            ProtocolError::InvalidBulkLength => f.write_str("Protocol error: invalid bulk length"),
            ProtocolError::UnbalancedQuotes => f.write_str("Protocol error: unbalanced quotes in request"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Limits the request parser enforces.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// `proto-max-bulk-len`: the largest bulk argument accepted.
    pub max_bulk_len: i64,
    /// A client that has not authenticated yet may only send small frames.
    pub unauthenticated: bool,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { max_bulk_len: 512 * 1024 * 1024, unauthenticated: false }
    }
}

/// Where one parsed request's arguments lie.
#[derive(Debug, Default)]
pub struct Request {
    /// Byte ranges of each argument inside the buffer handed to [`parse_request`]
    /// (multibulk), or inside [`Request::inline_storage`] (inline).
    pub args: Vec<Range<usize>>,
    /// Inline commands are unquoted into this buffer; empty for multibulk.
    pub inline_storage: Vec<u8>,
    pub inline: bool,
}

impl Request {
    pub fn clear(&mut self) {
        self.args.clear();
        self.inline_storage.clear();
        self.inline = false;
    }

    /// Borrows argument `i`; `buf` is the buffer the request was parsed from.
    #[inline]
    pub fn arg<'a>(&'a self, buf: &'a [u8], i: usize) -> &'a [u8] {
        let r = self.args[i].clone();
        if self.inline {
            &self.inline_storage[r]
        } else {
            &buf[r]
        }
    }
}

/// Outcome of one call to [`parse_request`].
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed; nothing was consumed. `hint` is the number of
    /// bytes the pending frame is known to need in all (0 when unknown), so a
    /// reader can size its buffer once for a big argument.
    Incomplete { hint: usize },
    /// A frame of `consumed` bytes was parsed into the request (which may hold
    /// no arguments: an empty inline line or `*0`, which a server skips).
    Complete { consumed: usize },
}

/// Parses one request from the front of `buf` into `req` (which is cleared first).
pub fn parse_request(buf: &[u8], limits: RequestLimits, req: &mut Request) -> Result<Parsed, ProtocolError> {
    req.clear();
    if buf.is_empty() {
        return Ok(Parsed::Incomplete { hint: 0 });
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, limits, req)
    } else {
        parse_inline(buf, req)
    }
}

fn parse_multibulk(buf: &[u8], limits: RequestLimits, req: &mut Request) -> Result<Parsed, ProtocolError> {
    let Some(cr) = memchr::memchr(b'\r', buf) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError::TooBigMultibulkCount);
        }
        return Ok(Parsed::Incomplete { hint: 0 });
    };
    if cr + 1 >= buf.len() {
        return Ok(Parsed::Incomplete { hint: 0 });
    }
    let count = match parse_i64(&buf[1..cr]) {
        Some(n) if n <= i32::MAX as i64 => n,
        _ => return Err(ProtocolError::InvalidMultibulkLength),
    };
    if count > 10 && limits.unauthenticated {
        return Err(ProtocolError::UnauthenticatedMultibulkLength);
    }
    let mut pos = cr + 2;
    if count <= 0 {
        return Ok(Parsed::Complete { consumed: pos });
    }
    // Never reserve what a length field claims before the bytes are there.
    req.args.reserve((count as usize).min(1024));
    for _ in 0..count {
        let rest = &buf[pos..];
        let Some(cr) = memchr::memchr(b'\r', rest) else {
            if rest.len() > INLINE_MAX {
                return Err(ProtocolError::TooBigBulkCount);
            }
            return Ok(Parsed::Incomplete { hint: 0 });
        };
        if cr + 1 >= rest.len() {
            return Ok(Parsed::Incomplete { hint: 0 });
        }
        if rest[0] != b'$' {
            return Err(ProtocolError::ExpectedDollar(rest[0]));
        }
        let len = match parse_i64(&rest[1..cr]) {
            Some(n) if n >= 0 && n <= limits.max_bulk_len => n as usize,
            _ => return Err(ProtocolError::InvalidBulkLength),
        };
        if len > 16384 && limits.unauthenticated {
            return Err(ProtocolError::UnauthenticatedBulkLength);
        }
        let start = pos + cr + 2;
        let end = start + len;
        if buf.len() < end + 2 {
            return Ok(Parsed::Incomplete { hint: end + 2 });
        }
        req.args.push(start..end);
        pos = end + 2;
    }
    Ok(Parsed::Complete { consumed: pos })
}

fn parse_inline(buf: &[u8], req: &mut Request) -> Result<Parsed, ProtocolError> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(Parsed::Incomplete { hint: 0 });
    };
    let line_end = if nl > 0 && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
    req.inline = true;
    let mut storage = std::mem::take(&mut req.inline_storage);
    let ok = split_args_into(&buf[..line_end], &mut storage, &mut req.args);
    req.inline_storage = storage;
    if !ok {
        return Err(ProtocolError::UnbalancedQuotes);
    }
    Ok(Parsed::Complete { consumed: nl + 1 })
}

/// Parses a decimal integer the way the server's `string2ll` does: an
/// optional minus, no plus, no leading zeros, no spaces, within i64.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s.len() == 1 && s[0] == b'0' {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' { (true, &s[1..]) } else { (false, s) };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// Splits a line into arguments the way the server splits inline commands
/// and config file lines: blanks separate, "double quotes" take C escapes
/// (`\n`, `\xHH`, ...), 'single quotes' take only `\'`, and a closing quote
/// must be followed by a blank or the end. Returns `None` on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut storage = Vec::new();
    let mut ranges = Vec::new();
    if !split_args_into(line, &mut storage, &mut ranges) {
        return None;
    }
    Some(ranges.into_iter().map(|r| storage[r].to_vec()).collect())
}

fn split_args_into(line: &[u8], storage: &mut Vec<u8>, ranges: &mut Vec<Range<usize>>) -> bool {
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_blank(line[i]) {
            i += 1;
        }
        if i >= n {
            return true;
        }
        let start = storage.len();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            if in_double {
                if i >= n {
                    return false;
                }
                let c = line[i];
                if c == b'\\' && i + 3 < n && line[i + 1] == b'x' && is_hex(line[i + 2]) && is_hex(line[i + 3]) {
                    storage.push(hex_val(line[i + 2]) * 16 + hex_val(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    storage.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !is_blank(line[i + 1]) {
                        return false;
                    }
                    i += 1;
                    break;
                } else {
                    storage.push(c);
                }
                i += 1;
            } else if in_single {
                if i >= n {
                    return false;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    storage.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_blank(line[i + 1]) {
                        return false;
                    }
                    i += 1;
                    break;
                } else {
                    storage.push(c);
                }
                i += 1;
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    c => storage.push(c),
                }
                i += 1;
            }
        }
        ranges.push(start..storage.len());
    }
}

fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}
fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}
fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

/// A RESP2/RESP3 reply value, as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` and RESP3 `_`.
    Null,
    Array(Vec<Value>),
    Set(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Push(Vec<Value>),
    Double(Vec<u8>),
    Bool(bool),
    Verbatim(Vec<u8>),
    BigNumber(Vec<u8>),
    BulkError(Vec<u8>),
}

/// Parses one reply from the front of `buf`: `Ok(None)` when incomplete,
/// otherwise the value and the number of bytes it took.
pub fn parse_value(buf: &[u8]) -> Result<Option<(Value, usize)>, String> {
    parse_value_depth(buf, 0)
}

fn parse_value_depth(buf: &[u8], depth: usize) -> Result<Option<(Value, usize)>, String> {
    if depth > 128 {
        return Err("reply nested too deeply".into());
    }
    let Some(nl) = memchr::memmem::find(buf, b"\r\n") else { return Ok(None) };
    if buf.is_empty() {
        return Ok(None);
    }
    let line = &buf[1..nl];
    let after = nl + 2;
    let int = |l: &[u8]| parse_i64(l).ok_or_else(|| format!("bad length {:?}", String::from_utf8_lossy(l)));
    let blob = |l: &[u8]| -> Result<Option<(Vec<u8>, usize)>, String> {
        let n = int(l)?;
        if n < 0 {
            return Ok(None);
        }
        let end = after + n as usize;
        if buf.len() < end + 2 {
            return Err(String::new());
        }
        Ok(Some((buf[after..end].to_vec(), end + 2)))
    };
    let v = match buf[0] {
        b'+' => (Value::Simple(line.to_vec()), after),
        b'-' => (Value::Error(line.to_vec()), after),
        b':' => (Value::Int(int(line)?), after),
        b',' => (Value::Double(line.to_vec()), after),
        b'(' => (Value::BigNumber(line.to_vec()), after),
        b'#' => (Value::Bool(line == b"t"), after),
        b'_' => (Value::Null, after),
        b'$' | b'=' | b'!' => match blob(line) {
            Ok(None) => (Value::Null, after),
            Ok(Some((data, used))) => match buf[0] {
                b'$' => (Value::Bulk(data), used),
                b'=' => (Value::Verbatim(data), used),
                _ => (Value::BulkError(data), used),
            },
            Err(e) if e.is_empty() => return Ok(None),
            Err(e) => return Err(e),
        },
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = int(line)?;
            if n < 0 {
                (Value::Null, after)
            } else {
                let kind = buf[0];
                let items = if kind == b'%' || kind == b'|' { n as usize * 2 } else { n as usize };
                let mut vals = Vec::with_capacity(items.min(4096));
                let mut pos = after;
                for _ in 0..items {
                    match parse_value_depth(&buf[pos..], depth + 1)? {
                        None => return Ok(None),
                        Some((v, used)) => {
                            vals.push(v);
                            pos += used;
                        }
                    }
                }
                if kind == b'|' {
                    // Attributes annotate the value that follows; keep the value.
                    return match parse_value_depth(&buf[pos..], depth + 1)? {
                        None => Ok(None),
                        Some((v, used)) => Ok(Some((v, pos + used))),
                    };
                }
                let v = match kind {
                    b'*' => Value::Array(vals),
                    b'~' => Value::Set(vals),
                    b'>' => Value::Push(vals),
                    _ => {
                        let mut pairs = Vec::with_capacity(vals.len() / 2);
                        let mut it = vals.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            pairs.push((k, v));
                        }
                        Value::Map(pairs)
                    }
                };
                (v, pos)
            }
        }
        other => return Err(format!("unknown reply type byte {:?}", other as char)),
    };
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut out = Vec::new();
        let mut pos = 0;
        let mut req = Request::default();
        loop {
            match parse_request(&input[pos..], RequestLimits::default(), &mut req)? {
                Parsed::Incomplete { .. } => return Ok(out),
                Parsed::Complete { consumed } => {
                    let buf = &input[pos..];
                    out.push((0..req.args.len()).map(|i| req.arg(buf, i).to_vec()).collect());
                    pos += consumed;
                }
            }
        }
    }

    #[test]
    fn multibulk_and_pipelines() {
        let got = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI").unwrap();
        assert_eq!(got, vec![vec![b"GET".to_vec(), b"k".to_vec()], vec![b"PING".to_vec()]]);
    }

    #[test]
    fn inline_quotes_and_escapes() {
        let got = parse_all(b"set \"a b\" 'c\\'d' \"\\x41\\n\"\r\nping\n").unwrap();
        assert_eq!(got[0], vec![b"set".to_vec(), b"a b".to_vec(), b"c'd".to_vec(), b"A\n".to_vec()]);
        assert_eq!(got[1], vec![b"ping".to_vec()]);
        assert_eq!(parse_all(b"set \"abc\r\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(parse_all(b"set \"abc\"x\r\n"), Err(ProtocolError::UnbalancedQuotes));
    }

    #[test]
    fn bad_lengths() {
        assert_eq!(parse_all(b"*-5\r\n").unwrap(), vec![Vec::<Vec<u8>>::new()]);
        assert_eq!(parse_all(b"*1\r\n$2147483648\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(parse_all(b"*1\r\n$-1\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(parse_all(b"*abc\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(parse_all(b"*3000000000\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(parse_all(b"*1\r\n:1\r\n"), Err(ProtocolError::ExpectedDollar(b':')));
        let big = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(parse_all(&big), Err(ProtocolError::TooBigInline));
    }

    #[test]
    fn huge_count_allocates_nothing_up_front() {
        let mut req = Request::default();
        let r = parse_request(b"*2000000000\r\n$1\r\na\r\n", RequestLimits::default(), &mut req).unwrap();
        assert_eq!(r, Parsed::Incomplete { hint: 0 });
        assert!(req.args.capacity() <= 1024);
    }

    #[test]
    fn string2ll_rules() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b"007"), None);
        assert_eq!(parse_i64(b"+7"), None);
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
    }

    #[test]
    fn reply_values() {
        let (v, n) = parse_value(b"%1\r\n+a\r\n~2\r\n:1\r\n$-1\r\nrest").unwrap().unwrap();
        assert_eq!(n, 21);
        assert_eq!(v, Value::Map(vec![(Value::Simple(b"a".to_vec()), Value::Set(vec![Value::Int(1), Value::Null]))]));
        assert_eq!(parse_value(b"$5\r\nab").unwrap(), None);
    }
}
