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

/// What a SCAN-family command iterates: it decides which options apply.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ScanTarget {
    /// SCAN, with the type names its TYPE option knows.
    Keyspace {
        types: &'static [&'static str],
    },
    Hash,
    Set,
    SortedSet,
}

/// The options of SCAN, HSCAN, SSCAN and ZSCAN, read with Valkey's one
/// parser for all four, in its order of checks.
pub struct ScanOptions<'a> {
    pub count: usize,
    /// None when there is nothing to filter (no MATCH, or MATCH `*`).
    pub pattern: Option<&'a [u8]>,
    /// SCAN's TYPE, as the known type name it matched.
    pub type_name: Option<&'static str>,
    /// HSCAN NOVALUES.
    pub no_values: bool,
    /// ZSCAN NOSCORES.
    pub no_scores: bool,
}

/// Reads the options that follow the cursor (`args[first..]`).
pub fn parse_scan_options<'a>(
    args: &[&'a [u8]],
    first: usize,
    target: ScanTarget,
) -> Result<ScanOptions<'a>, crate::command::CmdError> {
    use crate::command::errors;
    let mut options = ScanOptions { count: 10, pattern: None, type_name: None, no_values: false, no_scores: false };
    let mut i = first;
    while i < args.len() {
        let option = c_str(args[i]);
        let has_value = args.len() - i >= 2;
        if option.eq_ignore_ascii_case(b"count") && has_value {
            let n = parse_i64(args[i + 1]).ok_or(errors::NOT_INTEGER)?;
            if n < 1 {
                return Err(errors::SYNTAX.into());
            }
            options.count = usize::try_from(n).unwrap_or(usize::MAX);
            i += 2;
        } else if option.eq_ignore_ascii_case(b"match") && has_value {
            // "*" matches everything: no filtering at all.
            options.pattern = Some(args[i + 1]).filter(|p| *p != b"*");
            i += 2;
        } else if let (true, true, ScanTarget::Keyspace { types }) =
            (option.eq_ignore_ascii_case(b"type"), has_value, target)
        {
            let given = args[i + 1];
            let Some(name) = types.iter().find(|name| given.eq_ignore_ascii_case(name.as_bytes())) else {
                return Err(format!("ERR unknown type name '{}'", c_string_lossy(given)).into());
            };
            options.type_name = Some(name);
            i += 2;
        } else if option.eq_ignore_ascii_case(b"novalues") {
            if target != ScanTarget::Hash {
                return Err("ERR NOVALUES option can only be used in HSCAN".into());
            }
            options.no_values = true;
            i += 1;
        } else if option.eq_ignore_ascii_case(b"noscores") {
            if target != ScanTarget::SortedSet {
                return Err("ERR NOSCORES option can only be used in ZSCAN".into());
            }
            options.no_scores = true;
            i += 1;
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    Ok(options)
}
