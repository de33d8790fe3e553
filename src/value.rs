//! The values a key can hold.
//!
//! Strings carry Valkey's three encodings because clients can observe them
//! through OBJECT ENCODING and because they decide how a value is written
//! to RDB files: `int` (a canonical 64-bit integer), `embstr` (short, never
//! modified in place) and `raw`. The collection types join this enum in
//! their own issues; every variant is `Send` and holds no `Rc`, so big
//! values can be dropped on another thread.

use std::borrow::Cow;

use crate::types::{hash::Hash, list::List, set::Set, stream::Stream, zset::ZSet};

/// Strings up to this length are stored as `embstr`, as Valkey does.
pub const EMBSTR_MAX: usize = 44;

#[derive(Clone, Debug)]
pub enum Value {
    /// A string that is a canonical i64 ("0", "-12", never "012" or "+1").
    Int(i64),
    /// A short string (at most [`EMBSTR_MAX`] bytes).
    EmbStr(Box<[u8]>),
    /// Any other string, or one that was modified in place (APPEND, SETRANGE).
    /// Boxed so that `Value` stays three words wide: every key pays for the
    /// widest variant, and only long or edited strings pay for the box.
    RawStr(Box<Vec<u8>>),
    // Collections are boxed so that a key's value stays three words wide;
    // a hash is already two words (a thin pointer to its listpack, or a box).
    List(Box<List>),
    Hash(Hash),
    Set(Box<Set>),
    ZSet(Box<ZSet>),
    Stream(Box<Stream>),
}

impl Value {
    /// Builds a string value from client bytes with the encoding Valkey's
    /// SET would pick for them.
    pub fn string(bytes: &[u8]) -> Value {
        if bytes.len() <= 20 {
            if let Some(n) = ferrokey_formats::resp::parse_i64(bytes) {
                return Value::Int(n);
            }
        }
        Value::short_or_raw(bytes)
    }

    /// A string that is never int-encoded (INCRBYFLOAT results, for example).
    pub fn short_or_raw(bytes: &[u8]) -> Value {
        if bytes.len() <= EMBSTR_MAX {
            Value::EmbStr(bytes.into())
        } else {
            Value::RawStr(Box::new(bytes.to_vec()))
        }
    }

    /// The type name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) | Value::EmbStr(_) | Value::RawStr(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// The encoding name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::EmbStr(_) => "embstr",
            Value::RawStr(_) => "raw",
            Value::List(l) => l.encoding_name(),
            Value::Hash(h) => h.encoding_name(),
            Value::Set(s) => s.encoding_name(),
            Value::ZSet(z) => z.encoding_name(),
            Value::Stream(s) => s.encoding_name(),
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::Int(_) | Value::EmbStr(_) | Value::RawStr(_))
    }

    /// The bytes of a string value (formatted for an int), or None for other types.
    pub fn string_bytes(&self) -> Option<Cow<'_, [u8]>> {
        match self {
            Value::Int(n) => Some(Cow::Owned(itoa::Buffer::new().format(*n).as_bytes().to_vec())),
            Value::EmbStr(b) => Some(Cow::Borrowed(b)),
            Value::RawStr(v) => Some(Cow::Borrowed(v.as_slice())),
            _ => None,
        }
    }

    /// Length in bytes of a string value.
    pub fn string_len(&self) -> Option<usize> {
        match self {
            Value::Int(n) => Some(itoa::Buffer::new().format(*n).len()),
            Value::EmbStr(b) => Some(b.len()),
            Value::RawStr(v) => Some(v.len()),
            _ => None,
        }
    }

    /// Turns a string into its `raw` form so it can be modified in place,
    /// as Valkey does before APPEND and SETRANGE.
    pub fn make_raw(&mut self) -> Option<&mut Vec<u8>> {
        match self {
            Value::RawStr(v) => Some(v),
            Value::Int(_) | Value::EmbStr(_) => {
                let bytes = self.string_bytes()?.into_owned();
                *self = Value::RawStr(Box::new(bytes));
                match self {
                    Value::RawStr(v) => Some(v),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// An estimate of the heap memory this value uses, for MEMORY USAGE and
    /// INFO memory.
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Int(_) => 0,
            Value::EmbStr(b) => b.len(),
            Value::RawStr(v) => v.capacity() + std::mem::size_of::<Vec<u8>>(),
            Value::List(l) => l.heap_size(),
            Value::Hash(h) => h.heap_size(),
            Value::Set(s) => s.heap_size(),
            Value::ZSet(z) => z.heap_size(),
            Value::Stream(s) => s.heap_size(),
        }
    }

    /// [`Value::string`] for bytes already in a vector (read from a file),
    /// which becomes the value's storage instead of being copied.
    pub fn string_from_vec(mut bytes: Vec<u8>) -> Value {
        if bytes.len() <= 20 {
            if let Some(n) = ferrokey_formats::resp::parse_i64(&bytes) {
                return Value::Int(n);
            }
        }
        bytes.shrink_to_fit();
        if bytes.len() <= EMBSTR_MAX {
            Value::EmbStr(bytes.into_boxed_slice())
        } else {
            Value::RawStr(Box::new(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key pays for the widest variant: keep it at three words.
    #[test]
    fn value_stays_small() {
        assert!(std::mem::size_of::<Value>() <= 24, "{}", std::mem::size_of::<Value>());
        assert!(std::mem::size_of::<crate::db::Entry>() <= 40);
    }
}
