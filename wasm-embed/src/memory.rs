//! Bounds-checked access to a guest's linear memory, for host imports that take buffers.

use crate::Error;

/// A guest's linear memory, as a host import sees it. Every access is checked against
/// the memory's size; a pointer from the guest is never trusted.
pub struct GuestMemory<'a> {
    guest: &'static str,
    bytes: &'a mut [u8],
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
    pub fn read(&self, ptr: u32, len: u32) -> Result<&[u8], Error> {
        Ok(&self.bytes[self.range(ptr, len)?])
    }

    /// The `len` bytes at `ptr` as text.
    pub fn read_str(&self, ptr: u32, len: u32) -> Result<&str, Error> {
        core::str::from_utf8(self.read(ptr, len)?).map_err(|_| Error::NotUtf8 { guest: self.guest, ptr, len })
    }

    /// Copies `data` into the guest's memory at `ptr`.
    pub fn write(&mut self, ptr: u32, data: &[u8]) -> Result<(), Error> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let range = self.range(ptr, len)?;
        self.bytes[range].copy_from_slice(data);
        Ok(())
    }
}
