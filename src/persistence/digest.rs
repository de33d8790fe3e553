//! DEBUG DIGEST and DEBUG DIGEST-VALUE: Valkey's order-aware SHA-1 digest
//! of the dataset, computed the same way so the same data gives the same
//! hex string on both servers (and across a save and reload here).
//!
//! Unordered collections (keys, set members, hash fields, sorted set
//! members) are XORed together; ordered ones (list elements, stream
//! entries) are "mixed": the running digest is hashed again after each
//! element, so order counts.

use ferrokey_formats::listpack::Item;

use crate::db::{Db, Entry, NO_EXPIRE};
use crate::server::ServerState;
use crate::value::Value;

type Digest = [u8; 20];

/// SHA-1 (FIPS 180-4), which the digest is defined with. Whole blocks
/// are hashed straight from `data`; only the padded tail is copied.
fn sha1(data: &[u8]) -> Digest {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut blocks = data.chunks_exact(64);
    for block in &mut blocks {
        sha1_block(&mut h, block);
    }
    let rest = blocks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_len = if rest.len() < 56 { 64 } else { 128 };
    let bit_len = (data.len() as u64).wrapping_mul(8);
    tail[tail_len - 8..tail_len].copy_from_slice(&bit_len.to_be_bytes());
    for block in tail[..tail_len].chunks_exact(64) {
        sha1_block(&mut h, block);
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

fn sha1_block(h: &mut [u32; 5], block: &[u8]) {
    let mut w = [0u32; 80];
    for (i, word) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    }
    for i in 16..80 {
        w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
    }
    let [mut a, mut b, mut c, mut d, mut e] = *h;
    for (i, &wi) in w.iter().enumerate() {
        let (f, k) = match i {
            0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
            20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
            40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
            _ => (b ^ c ^ d, 0xCA62_C1D6),
        };
        let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(wi);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = t;
    }
    for (slot, v) in h.iter_mut().zip([a, b, c, d, e]) {
        *slot = slot.wrapping_add(v);
    }
}

/// digest ^= SHA1(data): order does not matter.
fn xor_in(digest: &mut Digest, data: &[u8]) {
    for (d, h) in digest.iter_mut().zip(sha1(data)) {
        *d ^= h;
    }
}

/// digest = SHA1(digest ^ SHA1(data)): order matters.
fn mix_in(digest: &mut Digest, data: &[u8]) {
    xor_in(digest, data);
    *digest = sha1(digest);
}

fn mix_item(digest: &mut Digest, item: Item<'_>) {
    item.with_bytes(|b| mix_in(digest, b));
}

/// A score as Valkey's fpconv_dtoa prints it for the digest.
fn score_text(score: f64) -> Vec<u8> {
    if score == 0.0 {
        return if score.is_sign_negative() { b"-0".to_vec() } else { b"0".to_vec() };
    }
    if score.is_infinite() || score.is_nan() || score.fract() != 0.0 {
        // Non-integral values print the same digits in both forms.
        return ferrokey_formats::rdb::score_to_listpack_string(score);
    }
    // An integral value: its shortest digits and power of ten, laid out
    // as fpconv does (plain up to 7 trailing zeros, else scientific).
    let sci = format!("{:e}", score.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i64 = exp.parse().unwrap_or(0);
    let ndigits = digits.len() as i64;
    let k = exp - (ndigits - 1);
    let mut out = String::new();
    if score < 0.0 {
        out.push('-');
    }
    if k >= 0 && exp < ndigits + 7 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', k as usize));
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!("e+{exp}"));
    }
    out.into_bytes()
}

/// The digest of one value (with its expiry flag), as DEBUG DIGEST-VALUE
/// reports it.
fn value_digest(entry: &Entry, digest: &mut Digest) {
    let value = &entry.value;
    let type_code: u32 = match value {
        Value::Int(_) | Value::EmbStr(_) | Value::RawStr(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    };
    mix_in(digest, &type_code.to_be_bytes());
    match value {
        Value::Int(_) | Value::EmbStr(_) | Value::RawStr(_) => {
            if let Some(bytes) = value.string_bytes() {
                mix_in(digest, &bytes);
            }
        }
        Value::List(list) => list.iter().for_each(|item| mix_item(digest, item)),
        Value::Set(set) => set.iter().for_each(|item| item.with_bytes(|b| xor_in(digest, b))),
        Value::ZSet(zset) => {
            for (member, score) in zset.iter() {
                let mut element = [0u8; 20];
                mix_item(&mut element, member);
                mix_in(&mut element, &score_text(score));
                xor_in(digest, &element);
            }
        }
        Value::Hash(hash) => {
            for (field, v) in hash.iter() {
                let mut element = [0u8; 20];
                mix_item(&mut element, field);
                mix_item(&mut element, v);
                xor_in(digest, &element);
            }
        }
        Value::Stream(stream) => {
            let all = stream.entries.range(crate::types::stream::MIN_ID, crate::types::stream::MAX_ID, false);
            for entry in all {
                mix_in(digest, format!("{}.{}", entry.id.ms, entry.id.seq).as_bytes());
                for (field, v) in entry.fields() {
                    mix_item(digest, field);
                    mix_item(digest, v);
                }
            }
        }
    }
    if entry.expire_at != NO_EXPIRE {
        xor_in(digest, b"!!expire!!");
    }
}

fn hex(digest: &Digest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// DEBUG DIGEST-VALUE for one key: forty zeros when it does not exist.
/// Keys are seen as stored, even when their time is up (as Valkey does).
pub fn key_digest(db: &Db, key: &[u8]) -> String {
    let mut digest = [0u8; 20];
    if let Some(entry) = db.peek(key) {
        value_digest(entry, &mut digest);
    }
    hex(&digest)
}

/// DEBUG DIGEST: the whole dataset, every database by number.
pub fn dataset_digest(st: &ServerState) -> String {
    let mut total = [0u8; 20];
    for (index, db) in st.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        mix_in(&mut total, &(index as u32).to_be_bytes());
        for (key, entry) in db.iter() {
            let mut digest = [0u8; 20];
            mix_in(&mut digest, key);
            value_digest(entry, &mut digest);
            xor_in(&mut total, &digest);
        }
    }
    hex(&total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_known_answers() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(&sha1(long)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
        assert_eq!(hex(&sha1(&[b'a'; 64])), "0098ba824b5c16427bd7a1122a5a442a25ec644d");
        assert_eq!(hex(&sha1(&[b'a'; 1000])), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
    }

    #[test]
    fn integral_scores_print_as_fpconv() {
        assert_eq!(score_text(1.0), b"1");
        assert_eq!(score_text(-25.0), b"-25");
        assert_eq!(score_text(10_000_000.0), b"10000000");
        assert_eq!(score_text(100_000_000.0), b"1e+8");
        assert_eq!(score_text(1.5), b"1.5");
    }
}
