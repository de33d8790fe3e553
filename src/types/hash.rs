//! A hash: a listpack of field/value pairs while small, a hash table past hash-max-listpack-entries/value.
//!
//! SCAFFOLD: the representation is being written by the hash family's
//! engineer; this file only fixes the names the rest of the server uses.

use ferrokey_formats::listpack::Listpack;

#[derive(Clone, Debug, Default)]
pub struct Hash {
    items: Listpack,
}

impl Hash {
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
