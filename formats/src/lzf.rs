//! LZF compression in the format of liblzf (used by RDB's `RDB_ENC_LZF`
//! strings and LZF-compressed quicklist nodes).
//!
//! The compressed stream is a sequence of chunks, each starting with a
//! control byte `c`:
//!
//! * `c < 32`: a literal run; the next `c + 1` bytes are copied as they are.
//! * `c >= 32`: a back reference. `n = c >> 5` (1..=7); if `n == 7` one more
//!   byte is added to it. The following byte, together with the low 5 bits of
//!   `c` as the high part, is the distance minus one (so 1..=8192 bytes back).
//!   `n + 2` bytes are copied from that distance (the source may overlap the
//!   bytes being produced, which repeats a pattern).
//!
//! Both functions here are written from that description; the decoder refuses
//! anything that does not produce exactly the announced length.

use std::fmt;

/// Longest literal run one control byte can announce.
const MAX_LITERAL: usize = 32;
/// Farthest a back reference can reach.
const MAX_DISTANCE: usize = 1 << 13;
/// Longest back reference: (7 + 255) + 2.
const MAX_MATCH: usize = 264;
/// Shortest back reference worth emitting.
const MIN_MATCH: usize = 3;

const HASH_BITS: u32 = 14;

/// Why a compressed buffer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LzfError {
    /// The input ends inside a chunk.
    TruncatedInput { at: usize },
    /// The output would exceed the announced length.
    OutputOverflow { at: usize },
    /// A back reference points before the start of the output.
    BadReference { at: usize },
    /// The input ended before producing the announced length.
    ShortOutput { produced: usize, expected: usize },
}

impl fmt::Display for LzfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LzfError::TruncatedInput { at } => {
                write!(f, "LZF data ends inside a chunk (input byte {at})")
            }
            LzfError::OutputOverflow { at } => {
                write!(f, "LZF data decompresses to more than the announced length (input byte {at})")
            }
            LzfError::BadReference { at } => {
                write!(f, "LZF back reference points before the start of the output (input byte {at})")
            }
            LzfError::ShortOutput { produced, expected } => {
                write!(f, "LZF data decompresses to {produced} bytes, {expected} announced")
            }
        }
    }
}

impl std::error::Error for LzfError {}

/// Decompress `input` into exactly `out.len()` bytes.
pub fn decompress_into(input: &[u8], out: &mut [u8]) -> Result<(), LzfError> {
    let mut ip = 0usize;
    let mut op = 0usize;
    let end = out.len();
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        let chunk_start = ip;
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if op + run > end {
                return Err(LzfError::OutputOverflow { at: chunk_start });
            }
            if ip + run > input.len() {
                return Err(LzfError::TruncatedInput { at: chunk_start });
            }
            out[op..op + run].copy_from_slice(&input[ip..ip + run]);
            ip += run;
            op += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                let Some(&extra) = input.get(ip) else {
                    return Err(LzfError::TruncatedInput { at: chunk_start });
                };
                len += extra as usize;
                ip += 1;
            }
            let Some(&low) = input.get(ip) else {
                return Err(LzfError::TruncatedInput { at: chunk_start });
            };
            ip += 1;
            let distance = (((ctrl & 0x1f) << 8) | low as usize) + 1;
            let count = len + 2;
            if op + count > end {
                return Err(LzfError::OutputOverflow { at: chunk_start });
            }
            if distance > op {
                return Err(LzfError::BadReference { at: chunk_start });
            }
            let from = op - distance;
            if distance >= count {
                out.copy_within(from..from + count, op);
            } else {
                // Overlapping copy: byte by byte repeats the pattern.
                for i in 0..count {
                    out[op + i] = out[from + i];
                }
            }
            op += count;
        }
    }
    if op != end {
        return Err(LzfError::ShortOutput { produced: op, expected: end });
    }
    Ok(())
}

/// Decompress `input`, which must expand to exactly `expected_len` bytes.
///
/// The output grows as it is produced (the announced length is only a
/// limit), so a corrupt length costs no more memory than the data really
/// expands to.
pub fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, LzfError> {
    let mut out: Vec<u8> = Vec::with_capacity(expected_len.min(input.len().saturating_mul(4).saturating_add(64)));
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        let chunk_start = ip;
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if out.len() + run > expected_len {
                return Err(LzfError::OutputOverflow { at: chunk_start });
            }
            if ip + run > input.len() {
                return Err(LzfError::TruncatedInput { at: chunk_start });
            }
            out.extend_from_slice(&input[ip..ip + run]);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                let Some(&extra) = input.get(ip) else {
                    return Err(LzfError::TruncatedInput { at: chunk_start });
                };
                len += extra as usize;
                ip += 1;
            }
            let Some(&low) = input.get(ip) else {
                return Err(LzfError::TruncatedInput { at: chunk_start });
            };
            ip += 1;
            let distance = (((ctrl & 0x1f) << 8) | low as usize) + 1;
            let count = len + 2;
            if out.len() + count > expected_len {
                return Err(LzfError::OutputOverflow { at: chunk_start });
            }
            if distance > out.len() {
                return Err(LzfError::BadReference { at: chunk_start });
            }
            let from = out.len() - distance;
            if distance >= count {
                out.extend_from_within(from..from + count);
            } else {
                for i in 0..count {
                    let b = out[from + i];
                    out.push(b);
                }
            }
        }
    }
    if out.len() != expected_len {
        return Err(LzfError::ShortOutput { produced: out.len(), expected: expected_len });
    }
    Ok(out)
}

/// The largest output `compressed_len` bytes of LZF data can possibly
/// produce (a 3-byte back reference yields 264 bytes). Anything announcing
/// more is certainly corrupt.
pub fn max_expansion(compressed_len: usize) -> usize {
    compressed_len.saturating_mul(MAX_MATCH / 3 + 1).saturating_add(MAX_LITERAL)
}

#[inline]
fn hash3(b: &[u8]) -> usize {
    let v = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
    (v.wrapping_mul(2654435761) >> (32 - HASH_BITS)) as usize
}

fn flush_literals(out: &mut Vec<u8>, lits: &[u8], limit: usize) -> bool {
    for chunk in lits.chunks(MAX_LITERAL) {
        if out.len() + 1 + chunk.len() > limit {
            return false;
        }
        out.push((chunk.len() - 1) as u8);
        out.extend_from_slice(chunk);
    }
    true
}

/// Compress `input` in liblzf's format. Returns `None` when the result would
/// be longer than `max_out` bytes (like liblzf returning 0), so a caller that
/// wants a gain passes `input.len() - 1` or less (RDB writers use
/// `len - 4` and store strings of 20 bytes or less as they are).
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    if input.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(max_out.min(input.len() + input.len() / 32 + 1));
    // Positions are stored plus one so 0 means "empty slot".
    let mut table = vec![0usize; 1 << HASH_BITS];
    let n = input.len();
    let mut ip = 0usize;
    let mut lit_start = 0usize;
    while ip + MIN_MATCH <= n {
        let h = hash3(&input[ip..]);
        let cand = table[h];
        table[h] = ip + 1;
        if cand != 0 {
            let r = cand - 1;
            let distance = ip - r;
            if distance <= MAX_DISTANCE && input[r..r + MIN_MATCH] == input[ip..ip + MIN_MATCH] {
                let max_len = MAX_MATCH.min(n - ip);
                let mut len = MIN_MATCH;
                while len < max_len && input[r + len] == input[ip + len] {
                    len += 1;
                }
                if !flush_literals(&mut out, &input[lit_start..ip], max_out) {
                    return None;
                }
                let off = distance - 1;
                let code = len - 2;
                if code < 7 {
                    if out.len() + 2 > max_out {
                        return None;
                    }
                    out.push(((code << 5) | (off >> 8)) as u8);
                } else {
                    if out.len() + 3 > max_out {
                        return None;
                    }
                    out.push(((7 << 5) | (off >> 8)) as u8);
                    out.push((code - 7) as u8);
                }
                out.push((off & 0xff) as u8);
                // Index a few positions inside the match so later data can
                // refer to them too.
                let stop = (ip + len).min(n.saturating_sub(MIN_MATCH - 1));
                let mut p = ip + 1;
                while p < stop {
                    table[hash3(&input[p..])] = p + 1;
                    p += 1;
                }
                ip += len;
                lit_start = ip;
                continue;
            }
        }
        ip += 1;
    }
    if !flush_literals(&mut out, &input[lit_start..], max_out) {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) {
        if let Some(c) = compress(data, data.len() + data.len() / 16 + 64) {
            let d = decompress(&c, data.len()).expect("decompress");
            assert_eq!(d, data);
            let mut buf = vec![0u8; data.len()];
            decompress_into(&c, &mut buf).expect("decompress_into");
            assert_eq!(buf, data);
        } else {
            assert!(data.is_empty());
        }
    }

    #[test]
    fn roundtrips() {
        roundtrip(b"");
        roundtrip(b"a");
        roundtrip(b"ab");
        roundtrip(b"abc");
        roundtrip(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        roundtrip(&[0u8; 100_000]);
        let mut x: u32 = 12345;
        let noise: Vec<u8> = (0..70_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        roundtrip(&noise);
        let text: Vec<u8> =
            b"the quick brown fox jumps over the lazy dog; ".iter().cycle().take(50_000).copied().collect();
        roundtrip(&text);
        // Mixed: repeats farther than the window.
        let mut mixed = noise[..9000].to_vec();
        mixed.extend_from_slice(&noise[..9000]);
        mixed.extend_from_slice(&text[..3000]);
        roundtrip(&mixed);
    }

    #[test]
    fn compresses_repetitive_data() {
        let data = vec![b'x'; 1000];
        let c = compress(&data, 996).unwrap();
        assert!(c.len() < 20, "{}", c.len());
    }

    #[test]
    fn refuses_when_no_gain() {
        let data: Vec<u8> = (0..=255u8).collect();
        assert!(compress(&data, data.len() - 4).is_none());
    }

    #[test]
    fn decoder_errors() {
        // literal run announcing 3 bytes with only 2 present
        assert!(matches!(decompress(&[2, b'a', b'b'], 3), Err(LzfError::TruncatedInput { .. })));
        // back reference with nothing produced yet
        assert!(matches!(decompress(&[0x20, 0x00], 3), Err(LzfError::BadReference { .. })));
        // too much output
        assert!(matches!(decompress(&[1, b'a', b'b'], 1), Err(LzfError::OutputOverflow { .. })));
        // too little output
        assert!(matches!(decompress(&[0, b'a'], 2), Err(LzfError::ShortOutput { .. })));
        // back reference missing its offset byte
        assert!(matches!(decompress(&[0, b'a', 0x20], 4), Err(LzfError::TruncatedInput { .. })));
        // long back reference missing its length byte
        assert!(matches!(decompress(&[0, b'a', 0xe0], 12), Err(LzfError::TruncatedInput { .. })));
    }

    #[test]
    fn known_vector() {
        // "aaaaaaaaaaaaaaaaaaaaa" (21 x 'a'): literal 'a', then a reference of
        // 20 bytes at distance 1 => 0xe0 (7<<5), 20-2-7 = 11, offset 0.
        let c = [0x00, b'a', 0xe0, 11, 0x00];
        assert_eq!(decompress(&c, 21).unwrap(), vec![b'a'; 21]);
    }
}
