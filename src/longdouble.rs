//! Decimal arithmetic in C's `long double`, for INCRBYFLOAT and HINCRBYFLOAT.
//!
//! Valkey adds these increments in `long double` (80-bit extended precision
//! on x86-64) and prints the sum with 17 decimals, trailing zeros removed.
//! Rust has no such type, so the parsing, the addition and the formatting
//! happen in `src/native/longdouble.c` (compiled by `build.rs`); this module
//! is its safe face.

use std::os::raw::{c_char, c_int};

extern "C" {
    fn ferrokey_ld_add(
        a: *const c_char,
        alen: usize,
        b: *const c_char,
        blen: usize,
        out: *mut c_char,
        outlen: usize,
    ) -> c_int;
    fn ferrokey_ld_classify(text: *const c_char, len: usize) -> c_int;
}

/// Room for the longest sum: the largest finite `long double` has 4933
/// integer digits, plus a sign, a point and 17 decimals.
const OUT_CAPACITY: usize = 5200;

/// Why an addition produced no number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddError {
    /// The first operand is not a number.
    FirstInvalid,
    /// The second operand is not a number.
    SecondInvalid,
    /// The sum is NaN or infinite.
    NotFinite,
}

/// What a text holds as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Finite,
    Infinite,
}

/// Adds two numbers given as text and returns the sum as Valkey prints it
/// ("10.6", "5000", "0.30000000000000001"). Texts are parsed strictly: no
/// blanks, no trailing bytes, no NaN, no overflow; "inf" parses.
pub fn add(a: &[u8], b: &[u8]) -> Result<Vec<u8>, AddError> {
    let mut out = vec![0u8; OUT_CAPACITY];
    // SAFETY: each pointer comes with the length of the buffer it points
    // into; the C side reads at most `alen`/`blen` bytes and writes at most
    // `outlen` bytes.
    let n = unsafe {
        ferrokey_ld_add(a.as_ptr().cast(), a.len(), b.as_ptr().cast(), b.len(), out.as_mut_ptr().cast(), out.len())
    };
    match n {
        -1 => Err(AddError::FirstInvalid),
        -2 => Err(AddError::SecondInvalid),
        // The buffer fits any finite sum, so "no room" cannot happen; were
        // it to, refusing the value is the safe answer.
        n if n < 0 => Err(AddError::NotFinite),
        n => {
            out.truncate(n as usize);
            Ok(out)
        }
    }
}

/// Whether a text is a number under the same strict rules as [`add`], and
/// whether it is finite (HINCRBYFLOAT refuses an infinite increment).
pub fn classify(text: &[u8]) -> Option<Class> {
    // SAFETY: the C side reads at most `len` bytes from the pointer.
    match unsafe { ferrokey_ld_classify(text.as_ptr().cast(), text.len()) } {
        1 => Some(Class::Finite),
        2 => Some(Class::Infinite),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> Result<String, AddError> {
        add(a.as_bytes(), b.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn sums_print_like_valkey() {
        assert_eq!(sum("10.5", "0.1").unwrap(), "10.6");
        assert_eq!(sum("0", "3.0e3").unwrap(), "3000");
        assert_eq!(sum("5000", "-5000").unwrap(), "0");
        assert_eq!(sum("-0.0", "0").unwrap(), "0");
        assert_eq!(sum("1", "-1.5").unwrap(), "-0.5");
        assert_eq!(sum("0.1", "0.2").unwrap(), "0.3");
    }

    #[test]
    fn strict_parsing() {
        assert_eq!(sum(" 1", "1"), Err(AddError::FirstInvalid));
        assert_eq!(sum("1", "1 "), Err(AddError::SecondInvalid));
        assert_eq!(sum("1", "nan"), Err(AddError::SecondInvalid));
        assert_eq!(sum("1", "1e99999"), Err(AddError::SecondInvalid));
        assert_eq!(sum("1", ""), Err(AddError::SecondInvalid));
        assert_eq!(sum("1", "1\0"), Err(AddError::SecondInvalid));
        assert_eq!(sum("1", "inf"), Err(AddError::NotFinite));
        assert_eq!(classify(b"inf"), Some(Class::Infinite));
        assert_eq!(classify(b"-1.5e10"), Some(Class::Finite));
        assert_eq!(classify(b"abc"), None);
    }

    #[test]
    fn huge_sums_fit() {
        let big = sum("1.1e4932", "0").unwrap();
        // As Valkey prints it: 4933 integer digits, no fraction left.
        assert_eq!(big.len(), 4933);
        assert!(big.starts_with("1099999999999999999974373107528"));
        assert_eq!(sum("1.1e4932", "1.1e4932"), Err(AddError::NotFinite));
    }
}
