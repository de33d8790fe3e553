//! The buffered input under the AOF readers: a `BufRead` that can also look
//! ahead a few bytes without consuming them (the RDB magic at offset 0, a
//! whole count line), and that counts the file offset.

use std::io::{self, BufRead, Read};

/// Buffer size: large reads, and room for the longest line looked ahead
/// (an annotation line, at most 1024 bytes).
const CAPACITY: usize = 64 * 1024;

/// An AOF file being read. It is also what an RDB preamble is read from
/// ([`super::AofReader::into_rdb`]): it implements `BufRead`, and the
/// offset keeps counting across the hand-over.
pub struct AofInput<R> {
    inner: R,
    buf: Box<[u8]>,
    /// Unread bytes are `buf[pos..filled]`.
    pos: usize,
    filled: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// The source returned end of file (it is not asked again).
    at_eof: bool,
}

impl<R: Read> AofInput<R> {
    pub fn new(inner: R) -> Self {
        AofInput { inner, buf: vec![0; CAPACITY].into_boxed_slice(), pos: 0, filled: 0, base: 0, at_eof: false }
    }

    /// Offset of the next unread byte from the start of the input.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The bytes read from the source and not consumed yet (maybe none).
    pub fn available(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// Makes at least `n` bytes available (fewer only at end of input) and
    /// returns them all. `n` must not exceed the buffer (a few KiB at most
    /// are ever asked).
    pub(crate) fn ensure(&mut self, n: usize) -> io::Result<&[u8]> {
        debug_assert!(n <= CAPACITY);
        let n = n.min(CAPACITY);
        if self.filled - self.pos < n && self.pos + n > self.buf.len() {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.base += self.pos as u64;
            self.filled -= self.pos;
            self.pos = 0;
        }
        while self.filled - self.pos < n && !self.at_eof {
            match self.inner.read(&mut self.buf[self.filled..]) {
                Ok(0) => self.at_eof = true,
                Ok(got) => self.filled += got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(self.available())
    }

    /// Reads up to and including the first `\n` among the next `max` bytes.
    /// Returns the number of bytes of that line (with its `\n`) available
    /// in [`AofInput::available`], or `None` when there is no `\n` there:
    /// then either `max` bytes or all that is left of the input (fewer)
    /// are available.
    pub(crate) fn find_line(&mut self, max: usize) -> io::Result<Option<usize>> {
        let mut searched = 0;
        loop {
            let avail = self.available();
            let limit = avail.len().min(max);
            if let Some(i) = memchr::memchr(b'\n', &avail[searched..limit]) {
                return Ok(Some(searched + i + 1));
            }
            if limit == max {
                return Ok(None);
            }
            searched = limit;
            let before = avail.len();
            if self.ensure(before + 1)?.len() == before {
                return Ok(None);
            }
        }
    }
}

impl<R: Read> Read for AofInput<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for AofInput<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.filled {
            self.base += self.filled as u64;
            self.pos = 0;
            self.filled = 0;
            self.ensure(1)?;
        }
        Ok(self.available())
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.filled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that hands out one byte per read, the worst case for
    /// look-ahead.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || out.is_empty() {
                return Ok(0);
            }
            out[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn looks_ahead_across_short_reads() {
        let mut input = AofInput::new(Trickle(b"REDIS0011rest\nmore"));
        assert_eq!(input.ensure(5).unwrap(), b"REDIS");
        assert_eq!(input.offset(), 0);
        assert_eq!(input.find_line(100).unwrap(), Some(14));
        input.consume(14);
        assert_eq!(input.offset(), 14);
        assert_eq!(input.find_line(100).unwrap(), None);
        assert_eq!(input.available(), b"more");
        let mut rest = Vec::new();
        input.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"more");
        assert_eq!(input.offset(), 18);
        assert!(input.ensure(1).unwrap().is_empty());
    }

    #[test]
    fn line_search_stops_at_the_limit() {
        let mut input = AofInput::new(&b"abcdef\n"[..]);
        assert_eq!(input.find_line(3).unwrap(), None);
        assert_eq!(input.find_line(7).unwrap(), Some(7));
    }
}
