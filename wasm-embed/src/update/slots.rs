//! Two flash slots per guest, written through `embedded-storage`'s `NorFlash`.
//!
//! Each slot starts with a 16-byte marker (padded to the flash's write size), then the
//! package. An install erases the slot the guest does not run from, writes the package
//! as it arrives, verifies it where it lies, and writes the marker last: magic, a
//! sequence number one above the other slot's, the package's length and a CRC-32 of
//! those. At start the newest slot whose marker and package pass every check runs; the
//! other slot, then the guest built into the image, are the fallbacks. A power cut
//! before the marker is whole leaves the slot without a valid marker, so the previous
//! guest runs.

use core::marker::PhantomData;
use core::ops::Range;
use core::ptr::NonNull;

use embedded_storage::nor_flash::{NorFlash, NorFlashError};

use super::{Package, PublicKey, UpdateError, Updatable, Version};
use crate::guest::{Kind, crc32};
use crate::{Engine, GuestModule, Settings};

const MARKER_MAGIC: &[u8; 4] = b"WEAC";
const MARKER: usize = 16;
/// Bytes gathered before a write: a multiple of any write size up to it.
const CHUNK: usize = 64;

/// A marker that checked out: which install wrote the slot, and how long its package is.
#[derive(Clone, Copy, Debug)]
struct Marker {
    sequence: u32,
    len: usize,
}

/// The two update slots of one guest in a flash partition, and the key its updates
/// must be signed with.
pub struct Slots<F> {
    flash: F,
    guest: &'static Updatable,
    key: PublicKey,
    /// The partition's offset in the flash driver's address space.
    start: u32,
    slot_size: usize,
    /// Where the CPU reads the partition's first byte.
    mapped: NonNull<u8>,
}

impl<F: NorFlash> Slots<F> {
    /// Uses `partition` of `flash` (offsets as the driver takes them) as two slots for
    /// `guest`'s updates, accepting packages signed with `key`.
    ///
    /// # Safety
    /// `mapped` is the address at which the CPU reads flash offset `partition.start`, and
    /// the partition's bytes stay mapped there for the rest of the program; nothing but
    /// `flash` (through these slots) writes them. Guests run in place from there.
    pub unsafe fn new(
        flash: F,
        partition: Range<u32>,
        mapped: NonNull<u8>,
        guest: &'static Updatable,
        key: PublicKey,
    ) -> Result<Slots<F>, UpdateError> {
        let name = guest.guest().name();
        let unusable = |reason| UpdateError::Partition { guest: name, reason };
        let len = partition.end.checked_sub(partition.start).ok_or(unusable("its end is before its start"))? as usize;
        if F::ERASE_SIZE == 0 || partition.start as usize % F::ERASE_SIZE != 0 {
            return Err(unusable("it does not start on an erase boundary of the flash"));
        }
        if len == 0 || len % (2 * F::ERASE_SIZE) != 0 {
            return Err(unusable("its length is not an even number of the flash's erase blocks"));
        }
        if F::WRITE_SIZE == 0 || F::WRITE_SIZE > CHUNK || CHUNK % F::WRITE_SIZE != 0 {
            return Err(unusable("the flash's write size is not a power of two up to 64 bytes"));
        }
        if partition.end as usize > flash.capacity() {
            return Err(unusable("it ends beyond the flash's capacity"));
        }
        if mapped.as_ptr() as usize % 16 != 0 {
            return Err(unusable("it is not mapped at a 16-byte-aligned address"));
        }
        Ok(Slots {
            flash,
            guest,
            key,
            start: partition.start,
            slot_size: len / 2,
            mapped,
        })
    }

    /// Where a slot's package starts: after the marker, at a multiple of the write size
    /// and of 16, so the `.cwasm` in it is aligned.
    fn package_offset() -> usize {
        MARKER.max(F::WRITE_SIZE).next_multiple_of(16)
    }

    /// The bytes of slot `slot` as the CPU reads them.
    fn slot(&self, slot: usize) -> &'static [u8] {
        // SAFETY: `new`'s contract: the partition is mapped for good. Installs write
        // only a slot no live module or `Current` reads from (`&mut self`, and the
        // running guest's address is checked).
        unsafe { core::slice::from_raw_parts(self.mapped.as_ptr().add(slot * self.slot_size), self.slot_size) }
    }

    fn marker(&self, slot: usize) -> Option<Marker> {
        let bytes = &self.slot(slot)[..MARKER];
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let len = word(8) as usize;
        (&bytes[..4] == MARKER_MAGIC
            && crc32(&bytes[..12]) == word(12)
            && len <= self.slot_size - Self::package_offset())
        .then_some(Marker {
            sequence: word(4),
            len,
        })
    }

    /// The slots with a valid marker, newest first.
    fn marked(&self) -> impl Iterator<Item = (usize, Marker)> + '_ {
        let markers = [self.marker(0), self.marker(1)];
        let newer_first = match markers {
            [Some(a), Some(b)] if b.sequence > a.sequence => [1, 0],
            _ => [0, 1],
        };
        newer_first.into_iter().filter_map(move |slot| markers[slot].map(|marker| (slot, marker)))
    }

    /// The package in `slot` per its marker, checked.
    fn verified(&self, slot: usize, marker: Marker, floor: Version) -> Result<Package<'static>, UpdateError> {
        let start = Self::package_offset();
        Package::verify(&self.slot(slot)[start..start + marker.len], self.guest, &self.key, floor)
    }

    /// What the guest runs now: the newest slot whose package passes every check with
    /// `floor` as the lowest version accepted, else the guest built into the image. Each
    /// candidate's signature is verified again, so a slot damaged since its install is
    /// passed over.
    pub fn current(&self, floor: Version) -> Current<'_> {
        let from = self
            .marked()
            .find_map(|(slot, marker)| self.verified(slot, marker, floor).ok().map(|package| (slot, package)));
        Current {
            guest: self.guest,
            from,
            slots: PhantomData,
        }
    }

    /// Starts installing a package of `len` bytes into the slot the guest does not run
    /// from now (so a power cut at any point leaves that guest to run at the next
    /// start): erases it and checks it is blank. Write the package with
    /// [`Install::write`] as it arrives, then [`Install::finish`].
    ///
    /// `floor` is the lowest version the device accepts, which the firmware keeps where
    /// it chooses (a counter in flash, OTP, a secure element): pass the same value to
    /// [`Slots::current`], and raise it to the installed version once the new guest
    /// proves itself. A package below the version that runs now is refused too.
    pub fn install(&mut self, len: usize, floor: Version) -> Result<Install<'_, F>, UpdateError> {
        let name = self.guest.guest().name();
        let room = self.slot_size - Self::package_offset();
        if len > room {
            return Err(UpdateError::TooLarge { guest: name, len, slot: room });
        }
        let running = self.current(floor);
        let (floor, target) = match &running.from {
            Some((slot, package)) => (floor.max(package.version()), 1 - slot),
            // Neither slot runs: reuse the one with an older or no marker.
            None => (floor, self.marked().next().map_or(0, |(slot, _)| 1 - slot)),
        };
        let sequence = self.marked().map(|(_, m)| m.sequence).max().unwrap_or(0).wrapping_add(1);
        let range = self.slot(target).as_ptr_range();
        if let Some(at) = self.guest.guest().running_at()
            && range.contains(&(at as *const u8))
        {
            return Err(UpdateError::SlotInUse { guest: name, slot: target });
        }
        let from = self.start + (target * self.slot_size) as u32;
        self.flash
            .erase(from, from + self.slot_size as u32)
            .map_err(flash_error(name, "erase", from))?;
        if let Some(at) = self.slot(target).iter().position(|&b| b != 0xff) {
            return Err(UpdateError::NotErased {
                guest: name,
                offset: from + at as u32,
            });
        }
        Ok(Install {
            slots: self,
            slot: target,
            len,
            written: 0,
            pending: [0xff; CHUNK],
            pending_len: 0,
            floor,
            sequence,
        })
    }

    /// The flash driver, for a firmware that shares it with other partitions.
    pub fn flash(&mut self) -> &mut F {
        &mut self.flash
    }
}

fn flash_error<E: NorFlashError>(guest: &'static str, operation: &'static str, offset: u32) -> impl FnOnce(E) -> UpdateError {
    move |error| UpdateError::Flash {
        guest,
        operation,
        offset,
        kind: error.kind(),
    }
}

/// An install under way: the slot is erased, and the package is written as it arrives.
/// Dropping it before [`Install::finish`] leaves the slot without a marker, so the
/// previous guest still runs.
pub struct Install<'s, F: NorFlash> {
    slots: &'s mut Slots<F>,
    slot: usize,
    len: usize,
    written: usize,
    /// Bytes not yet written, so that every write is a whole number of write units.
    pending: [u8; CHUNK],
    pending_len: usize,
    floor: Version,
    sequence: u32,
}

impl<F: NorFlash> Install<'_, F> {
    /// Writes the next bytes of the package; a package larger than free RAM installs in
    /// pieces of any size.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), UpdateError> {
        let name = self.slots.guest.guest().name();
        let given = self.written + self.pending_len + bytes.len();
        if given > self.len {
            return Err(UpdateError::WrongLength {
                guest: name,
                announced: self.len,
                given,
            });
        }
        while !bytes.is_empty() {
            let take = bytes.len().min(CHUNK - self.pending_len);
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&bytes[..take]);
            self.pending_len += take;
            bytes = &bytes[take..];
            if self.pending_len == CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Writes what is pending, padded with erased bytes to the write size.
    fn flush(&mut self) -> Result<(), UpdateError> {
        let len = self.pending_len.next_multiple_of(F::WRITE_SIZE);
        self.pending[self.pending_len..len].fill(0xff);
        let at = self.offset(Slots::<F>::package_offset() + self.written);
        let name = self.slots.guest.guest().name();
        self.slots
            .flash
            .write(at, &self.pending[..len])
            .map_err(flash_error(name, "write", at))?;
        self.written += self.pending_len;
        self.pending_len = 0;
        Ok(())
    }

    fn offset(&self, in_slot: usize) -> u32 {
        self.slots.start + (self.slot * self.slots.slot_size + in_slot) as u32
    }

    /// Writes the last bytes, verifies the whole package where it now lies, and only
    /// then writes the marker that makes it the guest to run; returns its version. A
    /// package that fails a check is left without a marker, so it never runs.
    pub fn finish(mut self) -> Result<Version, UpdateError> {
        let name = self.slots.guest.guest().name();
        if self.pending_len > 0 {
            self.flush()?;
        }
        if self.written != self.len {
            return Err(UpdateError::WrongLength {
                guest: name,
                announced: self.len,
                given: self.written,
            });
        }
        let marker = Marker {
            sequence: self.sequence,
            len: self.len,
        };
        let version = self.slots.verified(self.slot, marker, self.floor)?.version();
        let mut bytes = [0xff; CHUNK];
        bytes[..4].copy_from_slice(MARKER_MAGIC);
        bytes[4..8].copy_from_slice(&marker.sequence.to_le_bytes());
        bytes[8..12].copy_from_slice(&(marker.len as u32).to_le_bytes());
        let crc = crc32(&bytes[..12]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        let at = self.offset(0);
        self.slots
            .flash
            .write(at, &bytes[..MARKER.max(F::WRITE_SIZE)])
            .map_err(flash_error(name, "write", at))?;
        if self.slots.marker(self.slot).is_none() {
            return Err(UpdateError::NotErased { guest: name, offset: at });
        }
        Ok(version)
    }
}

/// What a guest runs: the package in a slot that passed every check, or the guest built
/// into the image. It borrows the slots, so no install can erase what it points to.
pub struct Current<'s> {
    guest: &'static Updatable,
    from: Option<(usize, Package<'static>)>,
    slots: PhantomData<&'s ()>,
}

impl Current<'_> {
    /// The slot it runs from; `None` for the guest built into the image.
    pub fn slot(&self) -> Option<usize> {
        self.from.as_ref().map(|(slot, _)| *slot)
    }

    /// Its version.
    pub fn version(&self) -> Version {
        self.from.as_ref().map_or(self.guest.version(), |(_, package)| package.version())
    }

    /// The settings to build its engine from (`wasm_embed::engine(current.settings())`):
    /// an update may need another Pulley stack than the built-in guest.
    pub fn settings(&self) -> &Settings {
        self.from
            .as_ref()
            .map_or(self.guest.guest().settings(), |(_, package)| package.settings())
    }

    /// Loads it, in place from flash, as [`crate::Guest::load`] loads the built-in guest:
    /// the module goes to the same typed handle (`guests::add::Add::new(&module, host)`).
    pub fn load(&self, engine: &Engine) -> Result<GuestModule, UpdateError> {
        let guest = self.guest.guest();
        match &self.from {
            None => guest.load(engine).map_err(UpdateError::Load),
            Some((_, package)) => {
                let cwasm = guest.claim(package.cwasm(), Kind::Module).map_err(UpdateError::Load)?;
                // SAFETY: every check passed, the signature over these very bytes
                // among them; they stay mapped, and no install erases the slot a live
                // module runs from.
                unsafe { guest.load_module(engine, cwasm) }.map_err(UpdateError::Load)
            }
        }
    }

    /// Loads a component guest, as [`Current::load`] does a core module.
    #[cfg(feature = "component-model")]
    pub fn load_component(&self, engine: &Engine) -> Result<crate::GuestComponent, UpdateError> {
        let guest = self.guest.guest();
        match &self.from {
            None => guest.load_component(engine).map_err(UpdateError::Load),
            Some((_, package)) => {
                let cwasm = guest.claim(package.cwasm(), Kind::Component).map_err(UpdateError::Load)?;
                // SAFETY: as in `load`.
                unsafe { guest.load_component_from(engine, cwasm) }.map_err(UpdateError::Load)
            }
        }
    }
}
