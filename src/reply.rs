//! The reply writer: commands append RESP2 or RESP3 straight into the
//! connection's output buffer, choosing the encoding from the protocol the
//! client negotiated with HELLO.

use ferrokey_formats::resp::Value;

/// An output buffer plus the protocol version its client speaks.
pub struct Reply {
    pub buf: Vec<u8>,
    pub resp3: bool,
    /// Replies are counted so that dispatch can tell whether a command
    /// answered at all (MULTI queuing and CLIENT REPLY rely on it later).
    pub errors: u64,
}

impl Reply {
    pub fn new(resp3: bool) -> Reply {
        Reply { buf: Vec::with_capacity(16 * 1024), resp3, errors: 0 }
    }

    #[inline]
    fn header(&mut self, kind: u8, n: i64) {
        self.buf.push(kind);
        let mut tmp = itoa::Buffer::new();
        self.buf.extend_from_slice(tmp.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// A status reply; `s` must not contain CR or LF.
    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A status reply built from bytes (verbatim status from user data is
    /// sanitised: CR/LF become spaces so the stream stays parseable).
    pub fn simple_bytes(&mut self, s: &[u8]) {
        self.buf.push(b'+');
        self.buf.extend(s.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error reply. `msg` carries its code ("ERR ...", "WRONGTYPE ...");
    /// newlines are replaced, as the server does, to keep the stream valid.
    pub fn error(&mut self, msg: &str) {
        self.errors += 1;
        self.buf.push(b'-');
        self.buf.extend(msg.bytes().map(|c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
        self.buf.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    #[inline]
    pub fn bulk(&mut self, data: &[u8]) {
        self.header(b'$', data.len() as i64);
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn bulk_str(&mut self, s: &str) {
        self.bulk(s.as_bytes());
    }

    /// An integer sent as a bulk string (GET of an int-encoded value).
    pub fn bulk_int(&mut self, n: i64) {
        let mut tmp = itoa::Buffer::new();
        self.bulk(tmp.format(n).as_bytes());
    }

    /// The null bulk string: `$-1` in RESP2, `_` in RESP3.
    #[inline]
    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    /// The null array: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }

    #[inline]
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// A map of `n` pairs: `%n` in RESP3, a flat array of 2n in RESP2.
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'%', n as i64);
        } else {
            self.header(b'*', 2 * n as i64);
        }
    }

    /// A set: `~n` in RESP3, an array in RESP2.
    pub fn set(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'~', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    /// A push message (pub/sub, invalidation): `>n` in RESP3, an array in RESP2.
    pub fn push(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'>', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.buf.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }

    /// A double already formatted the server's way: `,text` in RESP3, a bulk string in RESP2.
    pub fn double_text(&mut self, text: &[u8]) {
        if self.resp3 {
            self.buf.push(b',');
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    /// A verbatim string (INFO, CLIENT LIST, ...): `=len\r\ntxt:...` in RESP3, a bulk string in RESP2.
    pub fn verbatim(&mut self, data: &[u8]) {
        if self.resp3 {
            self.header(b'=', data.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(data);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(data);
        }
    }

    /// An array of bulk strings.
    pub fn bulk_array<'a, I: IntoIterator<Item = &'a [u8]>>(&mut self, items: I)
    where
        I::IntoIter: ExactSizeIterator,
    {
        let it = items.into_iter();
        self.array(it.len());
        for item in it {
            self.bulk(item);
        }
    }

    /// Writes a RESP3-typed value tree (from the command table) in this
    /// client's protocol: maps flatten and sets become arrays under RESP2.
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Simple(s) => self.simple_bytes(s),
            Value::Error(e) => self.error(&String::from_utf8_lossy(e)),
            Value::Int(n) => self.int(*n),
            Value::Bulk(b) => self.bulk(b),
            Value::Null => self.null(),
            Value::Array(items) => {
                self.array(items.len());
                items.iter().for_each(|i| self.value(i));
            }
            Value::Set(items) => {
                self.set(items.len());
                items.iter().for_each(|i| self.value(i));
            }
            Value::Push(items) => {
                self.push(items.len());
                items.iter().for_each(|i| self.value(i));
            }
            Value::Map(pairs) => {
                self.map(pairs.len());
                for (k, v) in pairs {
                    self.value(k);
                    self.value(v);
                }
            }
            Value::Double(d) => self.double_text(d),
            Value::Bool(b) => self.boolean(*b),
            Value::Verbatim(v) => self.verbatim(v.get(4..).unwrap_or(v)),
            Value::BigNumber(n) => self.bulk(n),
            Value::BulkError(e) => self.error(&String::from_utf8_lossy(e)),
        }
    }

    /// The reply of a container's HELP subcommand: a header naming the
    /// command as the client typed it (upper-cased), the given lines, and
    /// the HELP entry itself, each as a status line.
    pub fn help(&mut self, command: &[u8], lines: &[&str]) {
        self.array(lines.len() + 3);
        let mut header = command.to_ascii_uppercase();
        header.extend_from_slice(b" <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
        self.simple_bytes(&header);
        for line in lines {
            self.simple(line);
        }
        self.simple("HELP");
        self.simple("    Print this help.");
    }

    /// [`Reply::error`] for a message of any bytes (scripts raise errors
    /// that need not be UTF-8); CR and LF become spaces the same way.
    pub fn error_bytes(&mut self, msg: &[u8]) {
        self.errors += 1;
        self.buf.push(b'-');
        self.buf.extend(msg.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
        self.buf.extend_from_slice(b"\r\n");
    }
}
