//! Number and string conversions with the exact leniency of the C library
//! functions Valkey's config code uses, so the same inputs are accepted.

use std::io;

/// `strtoll`-style parse of the whole input in `radix`: leading C blanks and
/// a sign are allowed, and an input without digits reads as 0 only when it is
/// empty (the end pointer then already sits on the terminator). Returns the
/// value, saturated on overflow, and whether it overflowed; `None` when bytes
/// are left over.
pub(super) fn strtoll(s: &[u8], radix: u32) -> Option<(i64, bool)> {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let negative = i < s.len() && s[i] == b'-';
    if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
        i += 1;
    }
    let start = i;
    let mut magnitude: u128 = 0;
    while i < s.len() {
        let Some(d) = (s[i] as char).to_digit(radix) else { break };
        magnitude = (magnitude * radix as u128 + d as u128).min(1 << 64);
        i += 1;
    }
    if i == start {
        return s.is_empty().then_some((0, false));
    }
    if i != s.len() {
        return None;
    }
    let limit = if negative { 1u128 << 63 } else { (1u128 << 63) - 1 };
    let overflow = magnitude > limit;
    let magnitude = magnitude.min(limit);
    let value = if negative { (magnitude as i128).wrapping_neg() as i64 } else { magnitude as i64 };
    Some((value, overflow))
}

/// Valkey's memory value syntax: digits with an optional unit, `k`/`m`/`g`
/// powers of 1000 and `kb`/`mb`/`gb` (and `b`) powers of 1024, any case.
/// Like Valkey, an empty number reads as 0 and overflow is not detected.
pub(super) fn memtoull(s: &[u8]) -> Option<u64> {
    if s.first() == Some(&b'-') {
        return None;
    }
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let unit = s[digits..].to_ascii_lowercase();
    let mul: u64 = match unit.as_slice() {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1024 * 1024,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if digits >= 128 {
        return None;
    }
    let value =
        s[..digits].iter().try_fold(0u64, |v, c| v.checked_mul(10)?.checked_add((c - b'0') as u64)).unwrap_or(u64::MAX);
    Some(value.wrapping_mul(mul))
}

/// Valkey's `string2d`: the whole input must be a C double, with no leading
/// blank, not NaN, and not out of range.
pub(super) fn string2d(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s[0].is_ascii_whitespace() || s.contains(&0) {
        return None;
    }
    let text = std::ffi::CString::new(s).ok()?;
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `text` is a valid NUL-terminated string that outlives the
    // call, and `end` is a valid place for strtod to store its end pointer.
    let value = unsafe { libc::strtod(text.as_ptr(), &mut end) };
    // SAFETY: strtod leaves `end` inside `text` (at most on its terminator).
    let consumed = unsafe { end.offset_from(text.as_ptr()) } as usize;
    if consumed != s.len() || value.is_nan() || out_of_range(s, value) {
        return None;
    }
    Some(value)
}

/// Whether strtod would have reported ERANGE for `text`: an infinite result
/// from digits (not from spelling "inf"), or zero from a nonzero mantissa.
fn out_of_range(text: &[u8], value: f64) -> bool {
    let unsigned = text.strip_prefix(b"-").or_else(|| text.strip_prefix(b"+")).unwrap_or(text);
    if value.is_infinite() {
        return !unsigned.to_ascii_lowercase().starts_with(b"inf");
    }
    if value != 0.0 {
        return false;
    }
    let lower = unsigned.to_ascii_lowercase();
    let (mantissa, exponent_mark) = match lower.strip_prefix(b"0x") {
        Some(hex) => (hex, b'p'),
        None => (lower.as_slice(), b'e'),
    };
    mantissa.iter().take_while(|&&c| c != exponent_mark).any(|c| c.is_ascii_hexdigit() && *c != b'0')
}

/// Formats a double as `%f` with the trailing zeros (and dot) trimmed.
pub(super) fn trimmed_double(v: f64) -> String {
    let mut s = format!("{v:.6}");
    if s.contains('.') {
        let keep = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(keep);
    }
    s
}

/// Quotes a string the way Valkey writes values into a rewritten config
/// file: double quotes, C escapes, `\xHH` for other non-printable bytes.
pub(super) fn repr(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &c in s {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(c as char),
            _ => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push('"');
    out
}

/// Whether setlocale(LC_COLLATE, name) would accept `name` ("" picks the
/// environment's), checked without touching the process locale.
pub(super) fn is_valid_collate_locale(name: &[u8]) -> bool {
    let Ok(name) = std::ffi::CString::new(name) else { return false };
    // SAFETY: `name` is a valid NUL-terminated string for the call, and a
    // locale newlocale() returns is freed exactly once.
    unsafe {
        let locale = libc::newlocale(libc::LC_COLLATE_MASK, name.as_ptr(), std::ptr::null_mut());
        if locale.is_null() {
            return false;
        }
        libc::freelocale(locale);
    }
    true
}

/// Trims the blanks Valkey trims from both ends of a config line.
pub(super) fn trim_line(line: &[u8]) -> &[u8] {
    let blank = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let start = line.iter().position(|c| !blank(c)).unwrap_or(line.len());
    let end = line.iter().rposition(|c| !blank(c)).map_or(start, |i| i + 1);
    &line[start..end]
}

/// The `strerror` text of an I/O error, as Valkey prints it.
pub(super) fn os_error_text(e: &io::Error) -> String {
    let text = e.to_string();
    match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) => text[..at].to_string(),
        _ => text,
    }
}
