//! A list: a listpack while small, a quicklist (a chain of listpacks) past list-max-listpack-size.
//!
//! SCAFFOLD: the representation is being written by the list family's
//! engineer; this file only fixes the names the rest of the server uses.

use ferrokey_formats::listpack::Listpack;

#[derive(Clone, Debug, Default)]
pub struct List {
    items: Listpack,
}

impl List {
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
