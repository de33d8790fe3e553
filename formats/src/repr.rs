//! Valkey's quoted representation of a byte string (its `sdscatrepr`):
//! double quotes, C escapes for `\\ " \n \r \t \a \b`, printable ASCII as
//! is and `\xHH` for every other byte. The AOF manifest quotes file names
//! with it and MONITOR quotes arguments with it; valkey-cli's argument
//! splitter reads it back.

/// Appends `s` to `out`, quoted.
pub fn quote_into(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', c]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_valkey() {
        let mut out = Vec::new();
        quote_into(&mut out, b"v\x00\"\\\n\r\t\x07\x08\xc3\xa9 ~");
        assert_eq!(out, br#""v\x00\"\\\n\r\t\a\b\xc3\xa9 ~""#.to_vec());
    }

    #[test]
    fn splits_back_to_the_same_bytes() {
        let raw: Vec<u8> = (0..=255u8).collect();
        let mut line = Vec::new();
        quote_into(&mut line, &raw);
        assert_eq!(crate::resp::split_args(&line).unwrap(), vec![raw]);
    }
}
