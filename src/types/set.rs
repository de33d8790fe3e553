//! A set: an intset, a listpack, or a hash table, by Valkey's thresholds.
//!
//! SCAFFOLD: the representation is being written by the set family's
//! engineer; this file only fixes the names the rest of the server uses.

use ferrokey_formats::listpack::Listpack;

#[derive(Clone, Debug, Default)]
pub struct Set {
    items: Listpack,
}

impl Set {
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
