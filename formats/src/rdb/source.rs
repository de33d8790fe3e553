//! Byte source of the reader: counts the offset, feeds the CRC-64, and reads
//! RDB lengths and strings without trusting the lengths it reads for
//! allocation (buffers grow as bytes actually arrive).

use std::io::{self, BufRead};

use super::consts::{ENC_INT16, ENC_INT32, ENC_INT8, ENC_LZF};
use super::error::{RdbError, RdbErrorKind};
use super::StringEncoding;
use crate::crc64::Crc64;
use crate::lzf;

/// Largest buffer reserved ahead of the data.
const PREALLOC_CAP: usize = 64 * 1024;

/// A length field: a plain length, or one of the special string encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Len {
    Plain(u64),
    Special(u8),
}

/// The error for a reader whose buffer lost bytes it had not been told to
/// consume (which `BufRead` does not allow).
fn buffer_shrank(pos: u64) -> RdbError {
    let e = io::Error::other("the input's buffer changed under the reader");
    RdbError::new(pos, RdbErrorKind::Io(e))
}

/// Reads from a `BufRead` without consuming as it goes: bytes are parsed
/// straight out of the reader's buffer (`parsed` bytes of it so far), and
/// handed back (consumed, and fed to the CRC-64 in one piece) only when the
/// buffer is used up, the checksummed part ends, or the reader is given
/// back. When every read consumed and hashed its own few bytes, the
/// checksum alone took an eighth of the time a server spent loading a file.
pub(crate) struct Source<R> {
    inner: R,
    /// Bytes of `inner`'s current buffer already parsed, not yet consumed.
    parsed: usize,
    /// Bytes consumed from `inner`.
    consumed: u64,
    crc: Crc64,
    hashing: bool,
}

impl<R: BufRead> Source<R> {
    pub fn new(inner: R) -> Self {
        Source { inner, parsed: 0, consumed: 0, crc: Crc64::new(), hashing: true }
    }

    pub fn pos(&self) -> u64 {
        self.consumed + self.parsed as u64
    }

    /// The CRC-64 of the bytes up to [`Source::stop_hashing`].
    pub fn crc(&self) -> u64 {
        self.crc.value()
    }

    /// Ends the checksummed part of the input at the current position.
    pub fn stop_hashing(&mut self) -> Result<(), RdbError> {
        self.hand_back()?;
        self.hashing = false;
        Ok(())
    }

    /// The reader, positioned right after the last byte parsed (what was
    /// parsed is consumed; the checksum no longer matters then).
    pub fn into_inner(mut self) -> R {
        self.inner.consume(self.parsed);
        self.inner
    }

    fn io_err(&self, e: io::Error) -> RdbError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            RdbError::new(self.pos(), RdbErrorKind::Truncated)
        } else {
            RdbError::new(self.pos(), RdbErrorKind::Io(e))
        }
    }

    /// The reader's buffer, filling it when it is empty.
    fn buffer(&mut self) -> Result<&[u8], RdbError> {
        loop {
            match self.inner.fill_buf() {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err(e)),
            }
        }
        // The call above succeeded, and a buffer is not refilled until it
        // has been consumed: this returns the same bytes.
        self.inner.fill_buf().map_err(|e| RdbError::new(self.consumed, RdbErrorKind::Io(e)))
    }

    /// Hashes and consumes the parsed part of the buffer.
    fn hand_back(&mut self) -> Result<(), RdbError> {
        if self.parsed == 0 {
            return Ok(());
        }
        let parsed = self.parsed;
        if self.hashing {
            // Nothing was consumed since these bytes were parsed, so the
            // buffer still holds them (no I/O happens here).
            match self.inner.fill_buf() {
                Ok(buf) => match buf.get(..parsed) {
                    Some(chunk) => self.crc.update(chunk),
                    None => return Err(buffer_shrank(self.pos())),
                },
                Err(e) => return Err(RdbError::new(self.consumed, RdbErrorKind::Io(e))),
            }
        }
        self.inner.consume(parsed);
        self.consumed += parsed as u64;
        self.parsed = 0;
        Ok(())
    }

    /// The unparsed bytes of the buffer: never empty (the buffer is handed
    /// back and refilled when it is all parsed); an error at end of input.
    fn unparsed(&mut self) -> Result<&[u8], RdbError> {
        if self.buffer()?.len() <= self.parsed {
            self.hand_back()?;
            if self.buffer()?.is_empty() {
                return Err(RdbError::new(self.pos(), RdbErrorKind::Truncated));
            }
        }
        let (parsed, pos) = (self.parsed, self.pos());
        match self.buffer()?.get(parsed..) {
            Some(unparsed) => Ok(unparsed),
            None => Err(buffer_shrank(pos)),
        }
    }

    pub fn read_exact(&mut self, out: &mut [u8]) -> Result<(), RdbError> {
        let mut done = 0;
        while done < out.len() {
            let avail = self.unparsed()?;
            let n = avail.len().min(out.len() - done);
            out[done..done + n].copy_from_slice(&avail[..n]);
            self.parsed += n;
            done += n;
        }
        Ok(())
    }

    #[inline]
    pub fn read_u8(&mut self) -> Result<u8, RdbError> {
        if let Ok(buf) = self.inner.fill_buf() {
            if let Some(&b) = buf.get(self.parsed) {
                self.parsed += 1;
                return Ok(b);
            }
        }
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }

    #[inline]
    pub fn read_array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        if let Ok(buf) = self.inner.fill_buf() {
            if let Some(bytes) = buf.get(self.parsed..self.parsed + N) {
                let mut b = [0u8; N];
                b.copy_from_slice(bytes);
                self.parsed += N;
                return Ok(b);
            }
        }
        let mut b = [0u8; N];
        self.read_exact(&mut b)?;
        Ok(b)
    }

    pub fn read_i64_le(&mut self) -> Result<i64, RdbError> {
        Ok(i64::from_le_bytes(self.read_array::<8>()?))
    }

    pub fn read_i32_le(&mut self) -> Result<i32, RdbError> {
        Ok(i32::from_le_bytes(self.read_array::<4>()?))
    }

    pub fn read_f64_le(&mut self) -> Result<f64, RdbError> {
        Ok(f64::from_le_bytes(self.read_array::<8>()?))
    }

    /// `n` bytes into a vector that grows as the bytes arrive, so a corrupt
    /// length cannot make us allocate more than the input holds (plus one
    /// bounded reservation). Bytes that are all in the buffer are copied in
    /// one go into a vector of exactly their size.
    pub fn read_vec(&mut self, n: u64) -> Result<Vec<u8>, RdbError> {
        if let Some(v) = self.with_buffered(n, |bytes| bytes.to_vec()) {
            return Ok(v);
        }
        let mut v = Vec::with_capacity((n.min(PREALLOC_CAP as u64)) as usize);
        let mut remaining = n;
        while remaining > 0 {
            let avail = self.unparsed()?;
            let take = avail.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
            v.extend_from_slice(&avail[..take]);
            self.parsed += take;
            remaining -= take as u64;
        }
        Ok(v)
    }

    /// Calls `f` on the next `n` bytes and consumes them if the buffer holds
    /// them all; `None` (nothing consumed) when it does not.
    fn with_buffered<T>(&mut self, n: u64, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
        let n = usize::try_from(n).ok()?;
        let buf = self.inner.fill_buf().ok()?;
        let bytes = buf.get(self.parsed..self.parsed.checked_add(n)?)?;
        let out = f(bytes);
        self.parsed += n;
        Some(out)
    }

    /// An RDB length field.
    pub fn read_len_field(&mut self) -> Result<Len, RdbError> {
        let at = self.pos();
        let b = self.read_u8()?;
        match b >> 6 {
            0 => Ok(Len::Plain((b & 0x3f) as u64)),
            1 => {
                let b2 = self.read_u8()?;
                Ok(Len::Plain((((b & 0x3f) as u64) << 8) | b2 as u64))
            }
            3 => Ok(Len::Special(b & 0x3f)),
            _ => match b {
                0x80 => Ok(Len::Plain(u32::from_be_bytes(self.read_array::<4>()?) as u64)),
                0x81 => Ok(Len::Plain(u64::from_be_bytes(self.read_array::<8>()?))),
                _ => Err(RdbError::corrupt(at, format!("unknown length encoding 0x{b:02x}"))),
            },
        }
    }

    /// A plain length (a special encoding here is corruption).
    pub fn read_len(&mut self) -> Result<u64, RdbError> {
        let at = self.pos();
        match self.read_len_field()? {
            Len::Plain(n) => Ok(n),
            Len::Special(e) => {
                Err(RdbError::corrupt(at, format!("string encoding {e} found where a length was expected")))
            }
        }
    }

    /// An RDB string with the way it was stored.
    pub fn read_string_enc(&mut self) -> Result<(Vec<u8>, StringEncoding), RdbError> {
        if let Some(bytes) = self.short_plain_string() {
            return Ok((bytes, StringEncoding::Raw));
        }
        let at = self.pos();
        match self.read_len_field()? {
            Len::Plain(n) => Ok((self.read_vec(n)?, StringEncoding::Raw)),
            Len::Special(ENC_INT8) => {
                let v = self.read_u8()? as i8 as i64;
                Ok((v.to_string().into_bytes(), StringEncoding::Int))
            }
            Len::Special(ENC_INT16) => {
                let v = i16::from_le_bytes(self.read_array::<2>()?) as i64;
                Ok((v.to_string().into_bytes(), StringEncoding::Int))
            }
            Len::Special(ENC_INT32) => {
                let v = self.read_i32_le()? as i64;
                Ok((v.to_string().into_bytes(), StringEncoding::Int))
            }
            Len::Special(ENC_LZF) => {
                let clen = self.read_len()?;
                let len = self.read_len()?;
                let data_at = self.pos();
                let decompress = |compressed: &[u8]| {
                    if len > lzf::max_expansion(compressed.len()) as u64 {
                        return Err(RdbError::corrupt(
                            data_at,
                            format!("LZF string claims {len} bytes from {clen} compressed bytes"),
                        ));
                    }
                    lzf::decompress(compressed, len as usize)
                        .map_err(|e| RdbError::corrupt(data_at, format!("invalid LZF compressed string: {e}")))
                };
                let out = match self.with_buffered(clen, decompress) {
                    Some(out) => out?,
                    None => decompress(&self.read_vec(clen)?)?,
                };
                Ok((out, StringEncoding::Lzf))
            }
            Len::Special(e) => Err(RdbError::corrupt(at, format!("unknown RDB string encoding type {e}"))),
        }
    }

    pub fn read_string(&mut self) -> Result<Vec<u8>, RdbError> {
        Ok(self.read_string_enc()?.0)
    }

    /// The common case of [`Source::read_string`] done in one step: a
    /// string of under 16 KiB stored as its bytes (a one or two byte
    /// length), all of it in the buffer. `None` (nothing consumed) for
    /// anything else.
    #[inline]
    fn short_plain_string(&mut self) -> Option<Vec<u8>> {
        let buf = self.inner.fill_buf().ok()?;
        let at = self.parsed;
        let first = *buf.get(at)?;
        let (len, header) = match first >> 6 {
            0 => ((first & 0x3f) as usize, 1),
            1 => ((((first & 0x3f) as usize) << 8) | *buf.get(at + 1)? as usize, 2),
            _ => return None,
        };
        let bytes = buf.get(at + header..at + header + len)?.to_vec();
        self.parsed += header + len;
        Some(bytes)
    }
}
