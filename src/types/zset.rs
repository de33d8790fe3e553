//! A sorted set: a listpack of member/score pairs while small, a skiplist with a member index past zset-max-listpack-entries/value.
//!
//! SCAFFOLD: the representation is being written by the zset family's
//! engineer; this file only fixes the names the rest of the server uses.

use ferrokey_formats::listpack::Listpack;

#[derive(Clone, Debug, Default)]
pub struct ZSet {
    items: Listpack,
}

impl ZSet {
    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        "listpack"
    }

    /// Number of elements (fields, members).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// An estimate of the heap memory held (MEMORY USAGE, INFO).
    pub fn heap_size(&self) -> usize {
        self.items.total_bytes()
    }
}
