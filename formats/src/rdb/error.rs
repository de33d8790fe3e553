//! The error type of the RDB reader: what went wrong, at which byte of the
//! file, and for which key when a key was being read.

use std::fmt;
use std::io;

use super::consts::rdb_type_name;
use super::escape_bytes;

/// Why a file was refused.
#[derive(Debug)]
pub enum RdbErrorKind {
    /// Reading the underlying source failed.
    Io(io::Error),
    /// The file ends before the structure being read is complete.
    Truncated,
    /// The file does not start with `REDIS` (or `VALKEY`) and a version.
    BadMagic,
    /// The version number is outside what this reader handles.
    UnsupportedVersion(u32),
    /// A byte where an opcode or object type was expected is neither.
    UnknownType(u8),
    /// An object type the reader knows but refuses (module values, Redis 7.4
    /// hash-field-expiry hashes).
    UnsupportedType { rdb_type: u8, name: &'static str },
    /// Some other construct the reader refuses (module aux data, pre-GA
    /// function format).
    Unsupported(String),
    /// The bytes are structurally invalid.
    Corrupt(String),
    /// The CRC-64 footer does not match the file's contents.
    ChecksumMismatch { stored: u64, computed: u64 },
}

/// An RDB reading error, with the byte offset where it was detected and,
/// when a key was being read, that key and its type.
#[derive(Debug)]
pub struct RdbError {
    /// Byte offset in the file (from its first byte) where the problem was
    /// found: the failing read's position, or the start of the embedded blob
    /// (ziplist, listpack, ...) that failed validation.
    pub offset: u64,
    /// The key being read, when known.
    pub key: Option<Vec<u8>>,
    /// The object type of the key being read, when known.
    pub rdb_type: Option<u8>,
    pub kind: RdbErrorKind,
}

impl RdbError {
    pub fn new(offset: u64, kind: RdbErrorKind) -> Self {
        RdbError { offset, key: None, rdb_type: None, kind }
    }

    pub(crate) fn corrupt(offset: u64, reason: impl Into<String>) -> Self {
        Self::new(offset, RdbErrorKind::Corrupt(reason.into()))
    }

    /// Attach key context unless already present.
    pub(crate) fn with_key(mut self, key: &[u8], rdb_type: u8) -> Self {
        if self.key.is_none() {
            self.key = Some(key.to_vec());
        }
        if self.rdb_type.is_none() {
            self.rdb_type = Some(rdb_type);
        }
        self
    }

    /// True when the file simply ends too early.
    pub fn is_truncation(&self) -> bool {
        matches!(self.kind, RdbErrorKind::Truncated)
    }

    /// The reason alone, without offset or key.
    pub fn reason(&self) -> String {
        match &self.kind {
            RdbErrorKind::Io(e) => format!("I/O error: {e}"),
            RdbErrorKind::Truncated => "unexpected end of file".to_string(),
            RdbErrorKind::BadMagic => "wrong signature: not an RDB file".to_string(),
            RdbErrorKind::UnsupportedVersion(v) => format!("can't handle RDB format version {v}"),
            RdbErrorKind::UnknownType(t) => format!("unknown RDB opcode or object type {t}"),
            RdbErrorKind::UnsupportedType { rdb_type, name } => {
                let what = match rdb_type {
                    6 | 7 => ": module values are not supported",
                    22..=25 => ": hash-field expiry (Redis 7.4) is not supported",
                    _ => "",
                };
                format!("unsupported RDB object type {rdb_type} ({name}){what}")
            }
            RdbErrorKind::Unsupported(s) => s.clone(),
            RdbErrorKind::Corrupt(s) => s.clone(),
            RdbErrorKind::ChecksumMismatch { stored, computed } => {
                format!("wrong RDB checksum: file says {stored:016x}, contents give {computed:016x}")
            }
        }
    }
}

impl fmt::Display for RdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[offset {}] {}", self.offset, self.reason())?;
        if let Some(key) = &self.key {
            write!(f, " (key '{}'", escape_bytes(key))?;
            if let Some(t) = self.rdb_type {
                write!(f, ", type {} {}", t, rdb_type_name(t).unwrap_or("UNKNOWN"))?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

impl std::error::Error for RdbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            RdbErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}
