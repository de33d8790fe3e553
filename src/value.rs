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
    EmbStr(ShortStr),
    /// Any other string, or one that was modified in place (APPEND, SETRANGE).
    /// Boxed so that `Value` stays two words wide: every key pays for the
    /// widest variant, and only long or edited strings pay for the box.
    RawStr(Box<Vec<u8>>),
    // Each collection is one tagged pointer (to its compact encoding's
    // bytes or to its boxed big form: see crate::types::compact), so that a
    // key's value stays two words wide without a box of its own.
    List(List),
    Hash(Hash),
    Set(Set),
    ZSet(ZSet),
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
            Value::EmbStr(b) => Some(Cow::Borrowed(&b[..])),
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
            Value::EmbStr(ShortStr::from(&bytes[..]))
        } else {
            Value::RawStr(Box::new(bytes))
        }
    }
}

/// An `embstr` value's bytes behind one thin pointer: the allocation holds
/// a length byte and then the bytes. A `Box<[u8]>` would be two words and
/// make every [`Value`] a word wider; short strings are the most common
/// values there are, so the length lives with the bytes instead.
pub struct ShortStr(std::ptr::NonNull<u8>);

impl ShortStr {
    fn layout(len: usize) -> std::alloc::Layout {
        std::alloc::Layout::array::<u8>(len + 1).expect("short string layout")
    }
}

impl From<&[u8]> for ShortStr {
    fn from(bytes: &[u8]) -> ShortStr {
        assert!(bytes.len() <= u8::MAX as usize, "short strings hold at most 255 bytes");
        let layout = ShortStr::layout(bytes.len());
        // SAFETY: a non-zero-sized layout; the allocation is filled with
        // the length byte and the bytes before anyone reads it.
        unsafe {
            let ptr = std::alloc::alloc(layout);
            let Some(ptr) = std::ptr::NonNull::new(ptr) else { std::alloc::handle_alloc_error(layout) };
            *ptr.as_ptr() = bytes.len() as u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr().add(1), bytes.len());
            ShortStr(ptr)
        }
    }
}

impl std::ops::Deref for ShortStr {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the first byte is the length of the bytes that follow it.
        unsafe {
            let len = *self.0.as_ptr() as usize;
            std::slice::from_raw_parts(self.0.as_ptr().add(1), len)
        }
    }
}

impl Drop for ShortStr {
    fn drop(&mut self) {
        let layout = ShortStr::layout(self.len());
        // SAFETY: allocated in `from` with this same layout.
        unsafe { std::alloc::dealloc(self.0.as_ptr(), layout) }
    }
}

impl Clone for ShortStr {
    fn clone(&self) -> ShortStr {
        ShortStr::from(&self[..])
    }
}

impl std::fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

// SAFETY: ShortStr owns its allocation exclusively, like a Box<[u8]>.
unsafe impl Send for ShortStr {}
unsafe impl Sync for ShortStr {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_keep_their_bytes() {
        for len in [0usize, 1, 7, 8, 44, 255] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let s = ShortStr::from(&bytes[..]);
            assert_eq!(&s[..], &bytes[..]);
            assert_eq!(&s.clone()[..], &bytes[..]);
        }
    }

    /// Every key pays for the widest variant: keep it at two words.
    #[test]
    fn value_stays_small() {
        assert_eq!(std::mem::size_of::<Value>(), 16);
        assert!(std::mem::size_of::<crate::db::Entry>() <= 32);
    }
}
