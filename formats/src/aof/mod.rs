//! Append-only files: the multi-part manifest ([`manifest`]), a streaming
//! reader of AOF files ([`AofReader`]), the encoding of what a server
//! appends ([`encode_command`], [`encode_timestamp`]), cutting a file
//! ([`truncate_to`]), and a model of valkey-check-aof's verdicts
//! ([`check`]).
//!
//! A multi-part AOF is a directory (`appenddirname`) holding a manifest
//! that lists a base file (an RDB file, or commands) and incr files
//! (commands), loaded in that order. An old single-file AOF
//! (`appendonly.aof` beside the RDB file) is commands, optionally after an
//! RDB preamble; [`AofReader`] reads both kinds of file.

pub mod check;
mod input;
pub mod manifest;
mod reader;

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

pub use input::AofInput;
pub use manifest::{
    base_file_name, incr_file_name, manifest_file_name, temp_incr_file_name, temp_manifest_file_name, AofFileType,
    AofInfo, Manifest, ManifestError, ManifestErrorKind, ManifestSetError,
};
pub use reader::{
    read_all, read_file, Annotation, AofCommand, AofContents, AofError, AofErrorKind, AofItem, AofReader,
    ANNOTATION_LINE_MAX,
};

/// Appends `args` as one multibulk command, the form an AOF stores.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    let mut number = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(number.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        let arg = arg.as_ref();
        out.push(b'$');
        out.extend_from_slice(number.format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends a `#TS:<unix seconds>` annotation (`aof-timestamp-enabled`).
pub fn encode_timestamp(out: &mut Vec<u8>, unix_seconds: i64) {
    out.extend_from_slice(b"#TS:");
    out.extend_from_slice(itoa::Buffer::new().format(unix_seconds).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Cuts the file at `path` to `offset` bytes and syncs it (valkey-check-aof
/// `--fix`, and a server loading a truncated file).
pub fn truncate_to(path: impl AsRef<Path>, offset: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(offset)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_what_valkey_writes() {
        let mut out = Vec::new();
        encode_timestamp(&mut out, 1795692615);
        encode_command(&mut out, &["SET", "k", ""]);
        assert_eq!(out, b"#TS:1795692615\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
