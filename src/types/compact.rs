//! One word for a collection that is either small or big.
//!
//! A small collection is a run of bytes in one of Valkey's compact layouts
//! (a listpack, or for sets an intset); a big one is some structure `B`
//! (a hash table, a quicklist...). [`Compact`] keeps either behind a single
//! tagged pointer: to an allocation of exactly the bytes, aligned to 8 so
//! that the low pointer bits are free, or, with the low bit set, to a boxed
//! `B`. The bytes carry their own length in their header, so no length word
//! is needed either. A small collection therefore costs its bytes and
//! nothing more, like the listpack behind a Valkey object, and a key's
//! [`crate::value::Value`] stays two words wide. Small collections are the
//! most numerous values there are: a separate header allocation for each
//! (a `Box<Set>` sized for the biggest representation) used to cost more
//! than the bytes themselves.
//!
//! Reads borrow the bytes in place ([`Compact::form`]). A change to a small
//! collection goes through an owned copy of its listpack and stores the
//! result back at its new exact size ([`ListpackMut::modify`]), the way
//! Valkey reallocates a listpack on every change; an intset is replaced
//! whole. All the unsafe code of the collection types is in this module.

use std::alloc::Layout;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::ptr::NonNull;

use ferrokey_formats::listpack::{Listpack, ListpackRef};

/// Set on a pointer to the boxed big form.
const BIG_TAG: usize = 0b01;
/// Set on a pointer to intset bytes; listpack bytes have neither tag.
const INTSET_TAG: usize = 0b10;
/// Small allocations are aligned so that both tag bits are free.
const BYTES_ALIGN: usize = 8;
/// Shortest valid listpack: its header and terminator.
const LISTPACK_MIN: usize = 7;
/// An intset's header: member width and member count, u32 LE each.
const INTSET_HEADER: usize = 8;
/// Spare room in the scratch copy a change works on, so that a change
/// adding an entry or two does not reallocate the copy as well.
const SCRATCH_ROOM: usize = 64;

/// Whether a [`Compact`] may hold an intset: [`Intsets`] for sets, and
/// `Infallible` (the default) for the other collections, for which
/// [`Form::Intset`] then cannot be built, so their matches leave it out.
pub trait IntsetsAllowed: Copy {
    /// The value [`Form::Intset`] carries, when intsets are allowed.
    const WITNESS: Option<Self>;
}

/// Marks a [`Compact`] whose small form may also be an intset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intsets;

impl IntsetsAllowed for Intsets {
    const WITNESS: Option<Intsets> = Some(Intsets);
}

impl IntsetsAllowed for Infallible {
    const WITNESS: Option<Infallible> = None;
}

/// A small or big collection in one word (see the module documentation).
pub struct Compact<B, I: IntsetsAllowed = Infallible> {
    tagged: NonNull<u8>,
    /// Owns either the bytes or a boxed `B`.
    owns: PhantomData<(Box<B>, I)>,
}

/// A collection's form, borrowed.
pub enum Form<'a, B, I = Infallible> {
    Listpack(ListpackRef<'a>),
    /// The bytes of an intset (header included); only a set has one.
    Intset(&'a [u8], I),
    Big(&'a B),
}

/// A collection's form, borrowed for a change.
pub enum FormMut<'a, B, I: IntsetsAllowed = Infallible> {
    Listpack(ListpackMut<'a, B, I>),
    /// An intset is changed by replacing it: these are its bytes to read.
    Intset(&'a [u8], I),
    Big(&'a mut B),
}

/// A small collection's listpack, borrowed for a change.
pub struct ListpackMut<'a, B, I: IntsetsAllowed = Infallible>(&'a mut Compact<B, I>);

fn bytes_layout(len: usize) -> Layout {
    Layout::from_size_align(len, BYTES_ALIGN).expect("small collection layout")
}

/// The length a listpack header declares (its first four bytes).
fn listpack_len(header: [u8; 4]) -> usize {
    u32::from_le_bytes(header) as usize
}

/// The length an intset header declares: the header and `count` members of
/// `width` bytes (None if that does not fit in memory).
fn intset_len(header: [u8; INTSET_HEADER]) -> Option<usize> {
    let width = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    width.checked_mul(count)?.checked_add(INTSET_HEADER)
}

impl<B, I: IntsetsAllowed> Compact<B, I> {
    /// A small collection holding a copy of `lp`'s bytes.
    pub fn listpack(lp: ListpackRef<'_>) -> Self {
        let bytes = lp.as_bytes();
        // The length is read back from the header: it must be the truth.
        assert!(
            bytes.len() >= LISTPACK_MIN && listpack_len([bytes[0], bytes[1], bytes[2], bytes[3]]) == bytes.len(),
            "listpack header does not match its length"
        );
        Compact { tagged: copy_to_new_allocation(bytes), owns: PhantomData }
    }

    /// A big collection.
    pub fn big(big: B) -> Self {
        const { assert!(std::mem::align_of::<B>() > BIG_TAG, "the tag bit must be free in a box pointer") };
        let ptr = Box::into_raw(Box::new(big)) as *mut u8;
        let tagged = NonNull::new(ptr.map_addr(|a| a | BIG_TAG)).expect("box pointers are not null");
        Compact { tagged, owns: PhantomData }
    }

    pub fn is_big(&self) -> bool {
        self.tagged.as_ptr().addr() & BIG_TAG != 0
    }

    fn is_intset(&self) -> bool {
        self.tagged.as_ptr().addr() & INTSET_TAG != 0
    }

    fn big_ptr(&self) -> *mut B {
        self.tagged.as_ptr().map_addr(|a| a & !BIG_TAG) as *mut B
    }

    fn bytes_ptr(&self) -> *mut u8 {
        self.tagged.as_ptr().map_addr(|a| a & !INTSET_TAG)
    }

    /// The small form's bytes (only when not big).
    fn bytes(&self) -> &[u8] {
        debug_assert!(!self.is_big());
        let ptr = self.bytes_ptr();
        // SAFETY: an untagged or intset-tagged pointer points to an
        // allocation that holds exactly the bytes its header declares: the
        // constructors checked it, and the bytes only change as a whole
        // (`ListpackMut::store`), again to bytes whose header is checked.
        unsafe {
            let len = if self.is_intset() {
                intset_len(*(ptr as *const [u8; INTSET_HEADER])).expect("checked when stored")
            } else {
                listpack_len(*(ptr as *const [u8; 4]))
            };
            std::slice::from_raw_parts(ptr, len)
        }
    }

    /// The form, borrowed for reading.
    pub fn form(&self) -> Form<'_, B, I> {
        if self.is_big() {
            // SAFETY: a big-tagged pointer came from Box<B>::into_raw and
            // the box lives as long as `self`.
            return Form::Big(unsafe { &*self.big_ptr() });
        }
        if let (true, Some(witness)) = (self.is_intset(), I::WITNESS) {
            return Form::Intset(self.bytes(), witness);
        }
        Form::Listpack(ListpackRef::from_trusted(self.bytes()))
    }

    /// The form, borrowed for a change.
    pub fn form_mut(&mut self) -> FormMut<'_, B, I> {
        if self.is_big() {
            // SAFETY: as in `form`, and `&mut self` makes the access exclusive.
            return FormMut::Big(unsafe { &mut *self.big_ptr() });
        }
        if let (true, Some(witness)) = (self.is_intset(), I::WITNESS) {
            return FormMut::Intset(self.bytes(), witness);
        }
        FormMut::Listpack(ListpackMut(self))
    }
}

impl<B> Compact<B, Intsets> {
    /// A small set holding a copy of an intset's bytes (Valkey's layout:
    /// member width and count as u32 LE, then the members).
    pub fn intset(bytes: &[u8]) -> Self {
        let declared = bytes.first_chunk::<INTSET_HEADER>().and_then(|h| intset_len(*h));
        assert_eq!(declared, Some(bytes.len()), "intset header does not match its length");
        let ptr = copy_to_new_allocation(bytes);
        let tagged = NonNull::new(ptr.as_ptr().map_addr(|a| a | INTSET_TAG)).expect("tagging keeps it non-null");
        Compact { tagged, owns: PhantomData }
    }
}

/// Copies `bytes` (never empty) into an allocation of exactly their size.
fn copy_to_new_allocation(bytes: &[u8]) -> NonNull<u8> {
    let layout = bytes_layout(bytes.len());
    // SAFETY: the layout is not zero-sized (callers pass a whole header at
    // least), and the allocation is filled before anything reads it.
    unsafe {
        let Some(ptr) = NonNull::new(std::alloc::alloc(layout)) else { std::alloc::handle_alloc_error(layout) };
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len());
        ptr
    }
}

impl<B, I: IntsetsAllowed> ListpackMut<'_, B, I> {
    /// The listpack as it is.
    pub fn view(&self) -> ListpackRef<'_> {
        ListpackRef::from_trusted(self.0.bytes())
    }

    /// Changes the listpack through an owned copy, then stores the result
    /// back in place of the old bytes at its exact size.
    pub fn modify<R>(&mut self, change: impl FnOnce(&mut Listpack) -> R) -> R {
        let old = self.0.bytes();
        let mut scratch = Vec::with_capacity(old.len() + SCRATCH_ROOM);
        scratch.extend_from_slice(old);
        let mut lp = Listpack::from_trusted_bytes(scratch);
        let result = change(&mut lp);
        self.store(lp.as_bytes());
        result
    }

    /// Puts `new` (a whole listpack) in place of the current bytes,
    /// resizing their allocation.
    fn store(&mut self, new: &[u8]) {
        assert!(
            new.len() >= LISTPACK_MIN && listpack_len([new[0], new[1], new[2], new[3]]) == new.len(),
            "listpack header does not match its length"
        );
        let old_len = self.0.bytes().len();
        let ptr = self.0.tagged.as_ptr();
        // SAFETY: an untagged pointer owns an allocation of `old_len` bytes
        // made with `bytes_layout`; realloc keeps its alignment, so the
        // pointer stays untagged, and the new allocation is exactly
        // `new.len()` bytes, all written before anything reads them.
        unsafe {
            let resized =
                if new.len() == old_len { ptr } else { std::alloc::realloc(ptr, bytes_layout(old_len), new.len()) };
            let Some(resized) = NonNull::new(resized) else { std::alloc::handle_alloc_error(bytes_layout(new.len())) };
            std::ptr::copy_nonoverlapping(new.as_ptr(), resized.as_ptr(), new.len());
            self.0.tagged = resized;
        }
    }
}

impl<B, I: IntsetsAllowed> Drop for Compact<B, I> {
    fn drop(&mut self) {
        if self.is_big() {
            // SAFETY: the tagged pointer owns the box it came from.
            unsafe { drop(Box::from_raw(self.big_ptr())) };
        } else {
            let layout = bytes_layout(self.bytes().len());
            // SAFETY: allocated by `copy_to_new_allocation` (or resized by
            // `store`) with this same layout.
            unsafe { std::alloc::dealloc(self.bytes_ptr(), layout) };
        }
    }
}

impl<B: Clone, I: IntsetsAllowed> Clone for Compact<B, I> {
    fn clone(&self) -> Self {
        if self.is_big() {
            // SAFETY: as in `form`.
            return Compact::big(unsafe { &*self.big_ptr() }.clone());
        }
        let tag = self.tagged.as_ptr().addr() & INTSET_TAG;
        let ptr = copy_to_new_allocation(self.bytes());
        Compact { tagged: NonNull::new(ptr.as_ptr().map_addr(|a| a | tag)).expect("non-null"), owns: PhantomData }
    }
}

impl<B: std::fmt::Debug, I: IntsetsAllowed> std::fmt::Debug for Compact<B, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.form() {
            Form::Listpack(lp) => f.debug_tuple("Listpack").field(&lp).finish(),
            Form::Intset(bytes, _) => f.debug_tuple("Intset").field(&bytes).finish(),
            Form::Big(big) => big.fmt(f),
        }
    }
}

// SAFETY: a Compact owns what its pointer points to exclusively, like a
// Box<B> or a Box<[u8]>.
unsafe impl<B: Send, I: IntsetsAllowed> Send for Compact<B, I> {}
unsafe impl<B: Sync, I: IntsetsAllowed> Sync for Compact<B, I> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(lp: ListpackRef<'_>) -> Vec<Vec<u8>> {
        lp.iter().map(|(_, item)| item.to_vec()).collect()
    }

    #[test]
    fn one_word_whatever_the_form() {
        assert_eq!(std::mem::size_of::<Compact<Vec<u8>>>(), 8);
        assert_eq!(std::mem::size_of::<Option<Compact<Vec<u8>, Intsets>>>(), 8);
    }

    #[test]
    fn listpack_changes_are_stored_at_their_exact_size() {
        let mut c: Compact<Vec<u8>> = Compact::listpack(Listpack::new().view());
        for word in [&b"a"[..], b"hello", b"12345"] {
            let FormMut::Listpack(mut lp) = c.form_mut() else { panic!("small") };
            lp.modify(|lp| lp.push_back(word));
        }
        let copy = c.clone();
        let FormMut::Listpack(mut lp) = c.form_mut() else { panic!("small") };
        lp.modify(|lp| lp.delete_at(lp.first().unwrap(), 2));
        let Form::Listpack(lp) = c.form() else { panic!("small") };
        assert_eq!(items(lp), vec![b"12345".to_vec()]);
        assert_eq!(lp.total_bytes(), Listpack::from_items([&b"12345"[..]]).total_bytes());
        let Form::Listpack(lp) = copy.form() else { panic!("small") };
        assert_eq!(items(lp), vec![b"a".to_vec(), b"hello".to_vec(), b"12345".to_vec()]);
    }

    #[test]
    fn big_and_intset_forms_round_trip() {
        let mut c: Compact<Vec<u8>, Intsets> = Compact::intset(&[2, 0, 0, 0, 1, 0, 0, 0, 7, 0]);
        assert!(matches!(c.form(), Form::Intset(&[2, 0, 0, 0, 1, 0, 0, 0, 7, 0], _)));
        assert!(matches!(c.clone().form(), Form::Intset(b, _) if b.len() == 10));
        c = Compact::big(vec![1, 2, 3]);
        assert!(c.is_big());
        if let FormMut::Big(v) = c.form_mut() {
            v.push(4);
        }
        assert!(matches!(c.clone().form(), Form::Big(v) if v == &[1, 2, 3, 4]));
    }

    #[test]
    #[should_panic(expected = "intset header")]
    fn refuses_bytes_whose_header_lies() {
        let _ = Compact::<(), Intsets>::intset(&[2, 0, 0, 0, 5, 0, 0, 0, 7, 0]);
    }
}
