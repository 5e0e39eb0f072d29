//! A NOR flash stand-in for the update tests.

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use std::ptr::NonNull;

/// The stand-in's erase block.
pub const SECTOR: usize = 4096;

/// A NOR flash in RAM, as a chip behaves: erase sets a sector to 0xFF, and each 32-bit
/// word is written once between erases (as on ECC flash, and as nothing in the slots
/// needs more); an access past the end fails. After `budget` operations the power goes:
/// the operation in flight does half of its work and fails, and so does every later one.
pub struct Nor {
    pub memory: NonNull<u8>,
    len: usize,
    pub budget: usize,
    pub erase_works: bool,
    /// Erase blocks erased so far.
    pub erases: usize,
}

impl Nor {
    pub fn new(len: usize) -> Nor {
        let words: &'static mut [u128] = Box::leak(vec![u128::MAX; len / 16].into_boxed_slice());
        Nor {
            memory: NonNull::new(words.as_mut_ptr().cast()).unwrap(),
            len,
            budget: usize::MAX,
            erase_works: true,
            erases: 0,
        }
    }

    /// The same chip after a restart: what it holds survives.
    pub fn restart(&self) -> Nor {
        Nor { budget: usize::MAX, ..*self }
    }

    pub fn bytes(&self) -> &mut [u8] {
        // SAFETY: the leaked buffer lives for good; tests touch it from one thread.
        unsafe { std::slice::from_raw_parts_mut(self.memory.as_ptr(), self.len) }
    }

    /// Spends one operation; `false` when the power is gone.
    fn spend(&mut self) -> bool {
        let alive = self.budget > 0;
        self.budget = self.budget.saturating_sub(1);
        alive
    }
}

impl ErrorType for Nor {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for Nor {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let offset = offset as usize;
        let end = offset.checked_add(bytes.len()).filter(|&end| end <= self.len).ok_or(NorFlashErrorKind::OutOfBounds)?;
        bytes.copy_from_slice(&self.bytes()[offset..end]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.len
    }
}

impl NorFlash for Nor {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let (from, to) = (from as usize, to as usize);
        if from % SECTOR != 0 || to % SECTOR != 0 {
            return Err(NorFlashErrorKind::NotAligned);
        }
        if from > to || to > self.len {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        for sector in (from..to).step_by(SECTOR) {
            let alive = self.spend();
            self.erases += 1;
            if !self.erase_works {
                continue;
            }
            let end = if alive { sector + SECTOR } else { sector + SECTOR / 2 };
            self.bytes()[sector..end].fill(0xff);
            if !alive {
                return Err(NorFlashErrorKind::Other);
            }
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let offset = offset as usize;
        if offset % 4 != 0 || bytes.len() % 4 != 0 {
            return Err(NorFlashErrorKind::NotAligned);
        }
        let end = offset.checked_add(bytes.len()).filter(|&end| end <= self.len).ok_or(NorFlashErrorKind::OutOfBounds)?;
        // A word written twice is the caller's bug: refused before anything changes.
        if self.bytes()[offset..end].chunks(4).zip(bytes.chunks(4)).any(|(cell, new)| new != [0xff; 4] && cell != [0xff; 4]) {
            return Err(NorFlashErrorKind::Other);
        }
        let alive = self.spend();
        let done = if alive { bytes.len() } else { bytes.len() / 2 };
        for (cell, byte) in self.bytes()[offset..].iter_mut().zip(&bytes[..done]) {
            *cell &= byte;
        }
        if alive { Ok(()) } else { Err(NorFlashErrorKind::Other) }
    }
}

