//! DUMP / RESTORE payloads as Valkey 8 makes them:
//!
//! ```text
//! <object type: 1 byte> <value body, as in an RDB file>
//! <RDB version: 2 bytes LE (11)> <CRC-64 of all the bytes before: 8 bytes LE>
//! ```
//!
//! The body follows the RDB string rule with Valkey's `rdbcompression`
//! setting (on by default), so a payload made here from a value in the same
//! encoding is byte-identical to Valkey's DUMP of it. The reader's
//! [`decode_dump_payload`](super::decode_dump_payload) reads it back.

use super::consts::RDB_VERSION_VALKEY8;
use super::writer::{payload_from_value, EncodingLimits, Payload, RdbWriter, WriterOptions};
use super::{Encoding, RdbValue};
use crate::crc64::crc64;

/// The RDB version Valkey 8 puts in the payload footer.
pub const DUMP_RDB_VERSION: u16 = RDB_VERSION_VALKEY8 as u16;

/// Append the payload of `value` to `out`, with or without LZF compression
/// of long strings.
pub fn write_dump_payload<B: AsRef<[u8]>>(out: &mut Vec<u8>, value: &Payload<B>, compression: bool) {
    let start = out.len();
    let mut w = RdbWriter::new(&mut *out, WriterOptions { compression, checksum: false });
    // Writing to memory cannot fail.
    let _ = w.write_type(value.rdb_type()).and_then(|_| w.value(value));
    out.extend_from_slice(&DUMP_RDB_VERSION.to_le_bytes());
    let crc = crc64(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// The DUMP payload of `value` as Valkey 8 with its default
/// `rdbcompression yes` makes it.
pub fn dump_payload<B: AsRef<[u8]>>(value: &Payload<B>) -> Vec<u8> {
    dump_payload_with(value, true)
}

/// The DUMP payload of `value`, compressing long strings only when
/// `compression` (Valkey's `rdbcompression`).
pub fn dump_payload_with<B: AsRef<[u8]>>(value: &Payload<B>, compression: bool) -> Vec<u8> {
    let mut out = Vec::new();
    write_dump_payload(&mut out, value, compression);
    out
}

/// The DUMP payload of a decoded value, encoded as Valkey 8 would hold it
/// (see [`payload_from_value`]).
pub fn dump_value(value: &RdbValue, encoding: Option<Encoding>, limits: &EncodingLimits) -> Vec<u8> {
    dump_payload(&payload_from_value(value, encoding, limits))
}
