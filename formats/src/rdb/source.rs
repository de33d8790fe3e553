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

pub(crate) struct Source<R> {
    inner: R,
    pos: u64,
    crc: Crc64,
    hashing: bool,
}

impl<R: BufRead> Source<R> {
    pub fn new(inner: R) -> Self {
        Source { inner, pos: 0, crc: Crc64::new(), hashing: true }
    }

    pub fn pos(&self) -> u64 {
        self.pos
    }

    pub fn crc(&self) -> u64 {
        self.crc.value()
    }

    pub fn stop_hashing(&mut self) {
        self.hashing = false;
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    pub fn inner_ref(&self) -> &R {
        &self.inner
    }

    fn io_err(&self, e: io::Error) -> RdbError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            RdbError::new(self.pos, RdbErrorKind::Truncated)
        } else {
            RdbError::new(self.pos, RdbErrorKind::Io(e))
        }
    }

    /// Hand at most `max` bytes from the buffer to `sink`, consuming them.
    /// Returns how many were handed over; an error at end of input.
    fn take_some(&mut self, max: usize, sink: &mut dyn FnMut(&[u8])) -> Result<usize, RdbError> {
        loop {
            match self.inner.fill_buf() {
                Ok(buf) => {
                    if buf.is_empty() {
                        return Err(RdbError::new(self.pos, RdbErrorKind::Truncated));
                    }
                    let n = buf.len().min(max);
                    let chunk = &buf[..n];
                    if self.hashing {
                        self.crc.update(chunk);
                    }
                    sink(chunk);
                    self.inner.consume(n);
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err(e)),
            }
        }
    }

    pub fn read_exact(&mut self, out: &mut [u8]) -> Result<(), RdbError> {
        let mut done = 0;
        while done < out.len() {
            let want = out.len() - done;
            let mut got = 0;
            let dst = &mut out[done..];
            self.take_some(want, &mut |chunk| {
                dst[..chunk.len()].copy_from_slice(chunk);
                got = chunk.len();
            })?;
            done += got;
        }
        Ok(())
    }

    pub fn read_u8(&mut self) -> Result<u8, RdbError> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }

    pub fn read_array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
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
    /// bounded reservation).
    pub fn read_vec(&mut self, n: u64) -> Result<Vec<u8>, RdbError> {
        let mut v = Vec::with_capacity((n.min(PREALLOC_CAP as u64)) as usize);
        let mut remaining = n;
        while remaining > 0 {
            let want = remaining.min(usize::MAX as u64) as usize;
            let got = self.take_some(want, &mut |chunk| v.extend_from_slice(chunk))?;
            remaining -= got as u64;
        }
        Ok(v)
    }

    /// An RDB length field.
    pub fn read_len_field(&mut self) -> Result<Len, RdbError> {
        let at = self.pos;
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
        let at = self.pos;
        match self.read_len_field()? {
            Len::Plain(n) => Ok(n),
            Len::Special(e) => {
                Err(RdbError::corrupt(at, format!("string encoding {e} found where a length was expected")))
            }
        }
    }

    /// An RDB string with the way it was stored.
    pub fn read_string_enc(&mut self) -> Result<(Vec<u8>, StringEncoding), RdbError> {
        let at = self.pos;
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
                let data_at = self.pos;
                let compressed = self.read_vec(clen)?;
                if len > lzf::max_expansion(compressed.len()) as u64 {
                    return Err(RdbError::corrupt(
                        data_at,
                        format!("LZF string claims {len} bytes from {clen} compressed bytes"),
                    ));
                }
                let out = lzf::decompress(&compressed, len as usize)
                    .map_err(|e| RdbError::corrupt(data_at, format!("invalid LZF compressed string: {e}")))?;
                Ok((out, StringEncoding::Lzf))
            }
            Len::Special(e) => Err(RdbError::corrupt(at, format!("unknown RDB string encoding type {e}"))),
        }
    }

    pub fn read_string(&mut self) -> Result<Vec<u8>, RdbError> {
        Ok(self.read_string_enc()?.0)
    }
}
