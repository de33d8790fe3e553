//! A stream: entries by id, consumer groups with their pending entries.
//!
//! SCAFFOLD: the representation is being written by the streams family's
//! engineer; this file only fixes the names the rest of the server uses.

#[derive(Clone, Debug, Default)]
pub struct Stream {
    length: usize,
}

impl Stream {
    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        "stream"
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// An estimate of the heap memory held (MEMORY USAGE, INFO).
    pub fn heap_size(&self) -> usize {
        0
    }
}
