//! Argument readings shared by several command families, where Valkey's C
//! code gives arguments a particular reading that clients can observe.

use ferrokey_formats::resp::parse_i64;

/// An argument as C code sees it: up to its first NUL byte. Valkey compares
/// option words and formats arguments into messages this way, so
/// `NX\0junk` is the option NX.
pub fn c_str(arg: &[u8]) -> &[u8] {
    arg.iter().position(|&c| c == 0).map_or(arg, |nul| &arg[..nul])
}

/// The bytes of an argument up to its first NUL, as the server prints
/// arguments into error messages.
pub fn c_string_lossy(arg: &[u8]) -> String {
    String::from_utf8_lossy(c_str(arg)).into_owned()
}

/// A SCAN-family cursor as Valkey reads it: a strict unsigned 64-bit
/// integer, or failing that, whatever C's `strtoull` reads entirely
/// (leading blanks, a sign, leading zeros; a negative number wraps
/// around). The argument is read as a C string, up to its first NUL.
pub fn parse_scan_cursor(arg: &[u8]) -> Option<u64> {
    let arg = c_str(arg);
    if let Some(n) = parse_i64(arg) {
        return u64::try_from(n).ok();
    }
    let is_c_space = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let start = arg.iter().position(|c| !is_c_space(c))?;
    let rest = &arg[start..];
    let (negative, digits) = match rest.first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add((d - b'0') as u64))?;
    Some(if negative { magnitude.wrapping_neg() } else { magnitude })
}
