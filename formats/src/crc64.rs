//! CRC-64 as used by RDB files: the "Jones" polynomial, reflected input and
//! output, initial value 0 and no final xor (`CRC-64/REDIS` in the CRC
//! catalogue). The RDB footer stores this checksum little-endian; it covers
//! every byte of the file from the magic up to and including the EOF opcode.
//!
//! Check value: `crc64(b"123456789") == 0xe9c6d914c4b8d9ca`.

use crc::{Crc, Digest, Table, CRC_64_REDIS};

static CRC64_REDIS: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// One-shot CRC-64/REDIS of `data`.
pub fn crc64(data: &[u8]) -> u64 {
    CRC64_REDIS.checksum(data)
}

/// Incremental CRC-64/REDIS: feed bytes in any number of pieces.
#[derive(Clone)]
pub struct Crc64 {
    digest: Digest<'static, u64, Table<16>>,
}

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crc64({:016x})", self.value())
    }
}

impl Crc64 {
    /// A fresh checksum (value 0).
    pub fn new() -> Self {
        Crc64 { digest: CRC64_REDIS.digest() }
    }

    /// Add `data` to the checksum.
    pub fn update(&mut self, data: &[u8]) {
        self.digest.update(data);
    }

    /// The checksum of everything fed so far (the state is kept, more bytes
    /// may follow).
    pub fn value(&self) -> u64 {
        self.digest.clone().finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
        assert_eq!(crc64(b""), 0);
    }

    #[test]
    fn incremental_matches_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for split in [0usize, 1, 5, 16, 17, 4999, 9999, 10_000] {
            let mut c = Crc64::new();
            c.update(&data[..split]);
            let mid = c.value();
            assert_eq!(mid, crc64(&data[..split]));
            c.update(&data[split..]);
            assert_eq!(c.value(), crc64(&data));
        }
    }
}
