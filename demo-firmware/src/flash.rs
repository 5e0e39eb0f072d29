//! QEMU's stand-in for a NOR flash such as the nRF52840's NVMC: a RAM region that keeps
//! its contents across a reset, used only through `embedded-storage`'s `NorFlash` with
//! the nRF52840's sizes and NOR's rules. An erase sets a 4 KiB page to 0xFF, a write is
//! whole 32-bit words, each written once between erases (as ECC flash demands; the
//! nRF52840 allows two), and the CPU reads the region in place, as it reads flash. So the
//! update storage above it is the code a device runs; on the nRF52840-DK the HAL's NVMC
//! driver takes this one's place.

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

/// Where the stand-in lies: QEMU's mps2 boards have 4 MiB of RAM at address 0 of which
/// the firmware's image, linked for the nRF52840, uses the first 1 MiB.
pub const BASE: usize = 0x0010_0000;

/// A NOR flash of `len` bytes at [`BASE`].
pub struct Flash {
    len: usize,
}

/// An operation outside the flash, or not aligned to its erase or write size.
#[derive(Debug)]
pub struct Error(NorFlashErrorKind);

// Written out, not `{:?}`: the firmware builds with `-Zfmt-debug=none`.
impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "flash: {}", self.0)
    }
}

impl NorFlashError for Error {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

impl Flash {
    /// # Safety
    /// Only one `Flash` exists, and nothing else writes `BASE..BASE + len`.
    pub unsafe fn new(len: usize) -> Flash {
        Flash { len }
    }

    /// Where the CPU reads offset 0.
    pub fn mapped(&self) -> core::ptr::NonNull<u8> {
        core::ptr::NonNull::new(BASE as *mut u8).expect("BASE is not null")
    }

    fn check(&self, from: u32, len: usize, align: usize) -> Result<*mut u8, Error> {
        let from = from as usize;
        if from % align != 0 || len % align != 0 {
            return Err(Error(NorFlashErrorKind::NotAligned));
        }
        if from.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(Error(NorFlashErrorKind::OutOfBounds));
        }
        Ok((BASE + from) as *mut u8)
    }
}

impl ErrorType for Flash {
    type Error = Error;
}

impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Error> {
        let from = self.check(offset, bytes.len(), 1)?;
        for (i, byte) in bytes.iter_mut().enumerate() {
            // SAFETY: inside the region `new`'s caller handed over.
            *byte = unsafe { from.add(i).read_volatile() };
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.len
    }
}

impl NorFlash for Flash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Error> {
        let len = (to as usize).checked_sub(from as usize).ok_or(Error(NorFlashErrorKind::OutOfBounds))?;
        let start = self.check(from, len, Self::ERASE_SIZE)?.cast::<u32>();
        for word in 0..len / 4 {
            // SAFETY: inside the region, word-aligned (BASE and `from` are).
            unsafe { start.add(word).write_volatile(u32::MAX) };
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Error> {
        let start = self.check(offset, bytes.len(), Self::WRITE_SIZE)?.cast::<u32>();
        let words = || bytes.chunks_exact(4).map(|word| u32::from_le_bytes(word.try_into().expect("4 bytes")));
        // SAFETY: inside the region, word-aligned.
        if words().enumerate().any(|(i, word)| word != u32::MAX && unsafe { start.add(i).read_volatile() } != u32::MAX) {
            return Err(Error(NorFlashErrorKind::Other));
        }
        for (i, word) in bytes.chunks_exact(4).enumerate() {
            let word = u32::from_le_bytes(word.try_into().expect("4 bytes"));
            // SAFETY: inside the region, word-aligned. NOR programming only clears bits.
            unsafe {
                let cell = start.add(i);
                cell.write_volatile(cell.read_volatile() & word);
            }
        }
        Ok(())
    }
}
