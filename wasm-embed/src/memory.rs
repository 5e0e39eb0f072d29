//! Bounds-checked access to a guest's linear memory: for host imports that take
//! buffers, and for a firmware that hands a guest its input.

use crate::Error;

/// A guest's linear memory. Every access is checked against the memory's size; a
/// pointer from the guest is never trusted. A host import that takes a pointer gets it
/// as a parameter; a firmware gets it from a guest's handle (`guest.memory()`) to write
/// a guest's input where the guest says, or read its output.
///
/// Pointers are wasm32 addresses: `u32`, or `i32` as a guest that declares them so
/// returns them (the same bits).
pub struct GuestMemory<'a> {
    guest: &'static str,
    bytes: &'a mut [u8],
}

/// A wasm32 address or length as a guest passes it: `u32`, or `i32` with the same bits.
pub trait Pointer: Copy + sealed::Sealed {
    /// The address as an unsigned 32-bit offset into the guest's memory.
    fn offset(self) -> u32;
}

impl Pointer for u32 {
    fn offset(self) -> u32 {
        self
    }
}

impl Pointer for i32 {
    fn offset(self) -> u32 {
        self as u32
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u32 {}
    impl Sealed for i32 {}
}

impl<'a> GuestMemory<'a> {
    pub(crate) fn new(guest: &'static str, bytes: &'a mut [u8]) -> GuestMemory<'a> {
        GuestMemory { guest, bytes }
    }

    /// The memory's size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the guest has no memory.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn range(&self, ptr: u32, len: u32) -> Result<core::ops::Range<usize>, Error> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).filter(|&end| end <= self.bytes.len());
        end.map(|end| start..end).ok_or(Error::BadPointer {
            guest: self.guest,
            ptr,
            len,
            memory: self.bytes.len(),
        })
    }

    /// The `len` bytes at `ptr`.
    pub fn read(&self, ptr: impl Pointer, len: impl Pointer) -> Result<&[u8], Error> {
        Ok(&self.bytes[self.range(ptr.offset(), len.offset())?])
    }

    /// The `len` bytes at `ptr` as text.
    pub fn read_str(&self, ptr: impl Pointer, len: impl Pointer) -> Result<&str, Error> {
        let (ptr, len) = (ptr.offset(), len.offset());
        core::str::from_utf8(self.read(ptr, len)?).map_err(|_| Error::NotUtf8 { guest: self.guest, ptr, len })
    }

    /// Copies `data` into the guest's memory at `ptr`.
    pub fn write(&mut self, ptr: impl Pointer, data: &[u8]) -> Result<(), Error> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let range = self.range(ptr.offset(), len)?;
        self.bytes[range].copy_from_slice(data);
        Ok(())
    }
}
