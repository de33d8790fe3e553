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

use std::cell::RefCell;
use std::fmt;

/// Longest literal run one control byte can announce.
const MAX_LITERAL: usize = 32;
/// Longest back reference: (7 + 255) + 2.
const MAX_MATCH: usize = 264;

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

// Compression, byte for byte as liblzf 3.6 (as Valkey builds it) compresses,
// so RDB files and DUMP payloads are identical to Valkey's.

const LZF_HLOG: u32 = 16;
const LZF_SLOTS: usize = 1 << LZF_HLOG;
const LZF_MAX_LIT: usize = 32;
const LZF_MAX_OFF: usize = 1 << 13;
const LZF_MAX_REF: usize = 256 + 8;

/// liblzf's hash slot of the three bytes at a position (VERY_FAST variant
/// with a 16-bit table). Only these three bytes matter: the higher bytes of
/// liblzf's rolling value fall outside the mask.
#[inline]
fn lzf_slot(b0: u8, b1: u8, b2: u8) -> usize {
    let front = ((b0 as u32) << 8) | b1 as u32;
    let back = ((b1 as u32) << 8) | b2 as u32;
    (front.wrapping_sub(back.wrapping_mul(5)) & (LZF_SLOTS as u32 - 1)) as usize
}

/// A reusable hash table: a slot is valid only when stamped with the
/// current call's generation, so nothing needs clearing between calls.
struct LzfTable {
    generation: u32,
    slots: Vec<(u32, usize)>,
}

thread_local! {
    static LZF_TABLE: RefCell<LzfTable> = const { RefCell::new(LzfTable { generation: 0, slots: Vec::new() }) };
}

/// Compress `input` into at most `out_limit` bytes exactly as liblzf's
/// `lzf_compress(input, len, out, out_limit)` does, or `None` where it
/// returns 0 (the output would not fit, or an empty input or limit).
///
/// Valkey compresses a string of `len > 20` bytes with `out_limit = len - 4`
/// (so a gain of at least 5 bytes) and a quicklist node in memory with
/// `out_limit = len` (keeping it only if it gains 8 bytes).
pub fn compress(input: &[u8], out_limit: usize) -> Option<Vec<u8>> {
    if input.is_empty() || out_limit == 0 {
        return None;
    }
    LZF_TABLE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut table) => {
            if table.slots.is_empty() {
                table.slots = vec![(0, 0); LZF_SLOTS];
            }
            table.generation = table.generation.wrapping_add(1);
            if table.generation == 0 {
                // Stamps wrapped around: start over with a clean table.
                table.slots.iter_mut().for_each(|s| *s = (0, 0));
                table.generation = 1;
            }
            let generation = table.generation;
            compress_with(&mut table.slots, generation, input, out_limit)
        }
        Err(_) => {
            let mut slots = vec![(0u32, 0usize); LZF_SLOTS];
            compress_with(&mut slots, 1, input, out_limit)
        }
    })
}

fn compress_with(slots: &mut [(u32, usize)], generation: u32, input: &[u8], out_limit: usize) -> Option<Vec<u8>> {
    let n = input.len();
    let end = out_limit;
    // One spare byte: a literal run's control byte may be reserved at `end`
    // (never written through: the next write fails the bounds checks).
    let mut out = vec![0u8; end + 1];
    // `op` is the next output byte; the control byte of the open literal run
    // sits at `op - lit - 1`.
    let mut op = 1usize;
    let mut lit = 0usize;
    let mut ip = 0usize;

    let lookup = |slots: &mut [(u32, usize)], at: usize| -> usize {
        let slot = lzf_slot(input[at], input[at + 1], input[at + 2]);
        let (stamp, pos) = slots[slot];
        slots[slot] = (generation, at);
        if stamp == generation {
            pos
        } else {
            0
        }
    };
    let remember = |slots: &mut [(u32, usize)], at: usize| {
        let slot = lzf_slot(input[at], input[at + 1], input[at + 2]);
        slots[slot] = (generation, at);
    };

    while ip + 2 < n {
        let cand = lookup(slots, ip);
        // A candidate at position 0 never counts (liblzf requires the
        // reference to lie strictly after the start of the input).
        let is_match = cand > 0
            && ip - cand - 1 < LZF_MAX_OFF
            && input[cand] == input[ip]
            && input[cand + 1] == input[ip + 1]
            && input[cand + 2] == input[ip + 2];
        if !is_match {
            if op >= end {
                return None;
            }
            out[op] = input[ip];
            op += 1;
            ip += 1;
            lit += 1;
            if lit == LZF_MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
            continue;
        }

        let off = ip - cand - 1;
        let maxlen = (n - ip - 2).min(LZF_MAX_REF);
        let no_lit = (lit == 0) as usize;
        if op + 4 >= end && op - no_lit + 4 >= end {
            return None;
        }
        // Close the literal run (dropping its control byte when empty).
        out[op - lit - 1] = (lit as u8).wrapping_sub(1);
        op -= no_lit;

        // Extend the match. liblzf first compares 16 more bytes without
        // looking at the limit when more than 16 remain, then goes on one by
        // one up to the limit.
        let mut len = 2usize;
        let mut stopped = false;
        if maxlen > 16 {
            for _ in 0..16 {
                len += 1;
                if input[cand + len] != input[ip + len] {
                    stopped = true;
                    break;
                }
            }
        }
        if !stopped {
            loop {
                len += 1;
                if len >= maxlen || input[cand + len] != input[ip + len] {
                    break;
                }
            }
        }

        // `len` bytes match; the back reference stores len - 2.
        let code = len - 2;
        if code < 7 {
            out[op] = ((off >> 8) + (code << 5)) as u8;
            op += 1;
        } else {
            out[op] = ((off >> 8) + (7 << 5)) as u8;
            out[op + 1] = (code - 7) as u8;
            op += 2;
        }
        out[op] = off as u8;
        op += 1;
        // Open a new literal run.
        lit = 0;
        op += 1;

        ip += len;
        if ip + 2 >= n {
            break;
        }
        // Hash the last two positions the match covered.
        remember(slots, ip - 2);
        remember(slots, ip - 1);
    }

    if op + 3 > end {
        return None;
    }
    while ip < n {
        out[op] = input[ip];
        op += 1;
        ip += 1;
        lit += 1;
        if lit == LZF_MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= (lit == 0) as usize;
    out.truncate(op);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) {
        if let Some(c) = compress(data, data.len() + data.len() / 16 + 64) {
            let d = decompress(&c, data.len()).expect("decompress");
            assert_eq!(d, data);
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
