//! Two flash slots per guest, written through `embedded-storage`'s `NorFlash`, with
//! MCUboot's test-and-confirm.
//!
//! A slot starts with three units of the flash's write size (16 bytes at least): a
//! marker, then two flags, each written once, then the package. An install takes the
//! slot the guest does not run from; it checks the package's signed header before it
//! erases anything, writes the package as it arrives, verifies it where it lies, checks
//! that Wasmtime loads it, and writes the marker last: magic, a sequence number one above
//! the other slot's, the package's length and a CRC-32 of those. The package is then
//! *pending*. The next [`Slots::current`] runs it on *trial* (it writes the trial flag
//! first); the firmware *confirms* it once it has proven itself (the confirmed flag),
//! or reverts it. A slot whose trial flag is written and whose confirmed flag is not is
//! reverted unless it is the trial of this very start: so a trial that is not confirmed
//! when the device restarts is reverted, and the previous guest runs again, as MCUboot
//! reverts an unconfirmed image. A power cut before the marker is whole leaves the slot without a
//! valid marker, so the previous guest runs.

use alloc::vec::Vec;
use core::cell::Cell;
use core::ops::Range;
use core::ptr::NonNull;

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

use super::package::{Header, Layout, MIN_HEADER, PREAMBLE};
use super::{Package, PublicKey, UpdateError, Updatable, Version};
use crate::guest::{Kind, crc32};
use crate::{Engine, GuestModule, Settings};

const MARKER_MAGIC: &[u8; 4] = b"WES2";
const MARKER: usize = 16;
/// Bytes gathered before a write: a multiple of any write size up to it.
const CHUNK: usize = 64;
/// What each flag unit holds once written. The trial flag counts as set when any bit of
/// it is programmed (a torn write included), the confirmed flag only when it reads back
/// whole: a power cut while a flag is written errs towards the previous guest.
const TRIAL: &[u8; 16] = b"wasm-embed trial";
const CONFIRMED: &[u8; 16] = b"wasm-embed confm";

/// A marker that checked out: which install wrote the slot, and how long its package is.
#[derive(Clone, Copy, Debug)]
struct Marker {
    sequence: u32,
    len: usize,
}

/// Where a slot is in test-and-confirm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotState {
    /// No package: erased, never written, or an install that did not finish.
    Empty,
    /// Installed and verified, not run yet: [`Slots::current`] tries it next.
    Pending,
    /// Being tried since this start: [`Slots::confirm`] it, or it reverts at the next
    /// start.
    Trial,
    /// Confirmed: it runs at every start while it is the newest.
    Confirmed,
    /// Tried and not confirmed, or reverted: it never runs again.
    Reverted,
}

/// A slot's package and state, for reporting (MCUmgr's image state, a shell command).
#[derive(Clone, Copy, Debug)]
pub struct Installed<'s> {
    /// The slot, 0 or 1.
    pub slot: usize,
    /// Its state.
    pub state: SlotState,
    /// Whether the guest runs from it now: its live module's code is there, or, with no
    /// module alive, [`Slots::current`] last chose it.
    pub active: bool,
    /// Its package, checked (signature, digest, this guest, its settings and
    /// interface), at any version.
    pub package: Package<'s>,
    /// The package's bytes as they lie in flash.
    pub bytes: &'s [u8],
}

/// The two update slots of one guest in a flash partition, and the key its updates
/// must be signed with.
pub struct Slots<F> {
    flash: F,
    guest: &'static Updatable,
    key: PublicKey,
    /// The partition, as the flash driver addresses it.
    partition: Range<u32>,
    slot_size: usize,
    /// Where the CPU reads the partition's first byte.
    mapped: NonNull<u8>,
    /// The lowest version the firmware accepts, as it gave it.
    floor: Version,
    /// The slot this start is trying, and whether it was loaded.
    trial: Option<usize>,
    trial_loaded: Cell<bool>,
    /// What [`Slots::current`] last chose: a slot, or `None` for the built-in guest.
    chosen: Option<usize>,
    session: Option<Session>,
    generation: u32,
}

impl<F: NorFlash> Slots<F> {
    /// Uses `partition` of `flash` (offsets as the driver takes them) as two slots for
    /// `guest`'s updates, accepting packages signed with `key`.
    ///
    /// The partition starts on an erase boundary, is an even number of erase blocks
    /// (each slot holds four write units of state and a package), and the flash's write
    /// size is a power of two up to 64 bytes.
    ///
    /// # Safety
    /// `mapped` is the 16-byte-aligned address at which the CPU reads flash offset
    /// `partition.start`, and the partition's bytes stay mapped there for the rest of the
    /// program; nothing but `flash`, through these slots, writes them. Guests run in
    /// place from there, and every check reads the flash there, not through the driver:
    /// - behind a cache (ESP32's MMU, RP2040's XIP, STM32 with an ART or I-cache), the
    ///   driver invalidates the cached lines of what it erases or writes before it
    ///   returns, or the CPU may run and verify stale bytes;
    /// - on flash with ECC (STM32L4, STM32H7), where reading a word whose write was torn
    ///   by a power cut faults, the firmware handles that fault or the board keeps the
    ///   supply up through a write (the markers and flags are read at every start).
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
        if len / 2 < Self::package_offset() + MIN_HEADER {
            return Err(unusable("a slot cannot hold its state and the smallest package"));
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
            slot_size: len / 2,
            partition,
            mapped,
            floor: Version::ZERO,
            trial: None,
            trial_loaded: Cell::new(false),
            chosen: None,
            session: None,
            generation: 0,
        })
    }

    /// One unit of state: the marker, or a flag.
    fn unit() -> usize {
        MARKER.max(F::WRITE_SIZE)
    }

    /// Where a slot's package starts: after the marker and the two flags, at a multiple
    /// of 16, so the `.cwasm` in it is aligned.
    fn package_offset() -> usize {
        (3 * Self::unit()).next_multiple_of(16)
    }

    /// The bytes of slot `slot` as the CPU reads them.
    fn slot(&self, slot: usize) -> &'static [u8] {
        // SAFETY: `new`'s contract: the partition is mapped for good. Installs write
        // only a slot no live module, `Current` or `Installed` reads from (`&mut self`,
        // and the running guest's address is checked).
        unsafe { core::slice::from_raw_parts(self.mapped.as_ptr().add(slot * self.slot_size), self.slot_size) }
    }

    fn flag(&self, slot: usize, index: usize) -> &'static [u8] {
        let unit = Self::unit();
        &self.slot(slot)[index * unit..(index + 1) * unit]
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

    /// Where slot `slot` is in test-and-confirm, as its marker and flags say.
    pub fn state(&self, slot: usize) -> SlotState {
        if slot > 1 || self.marker(slot).is_none() {
            return SlotState::Empty;
        }
        if self.flag(slot, 2).starts_with(CONFIRMED) {
            SlotState::Confirmed
        } else if self.flag(slot, 1).iter().all(|&b| b == 0xff) {
            SlotState::Pending
        } else if self.trial == Some(slot) {
            SlotState::Trial
        } else {
            SlotState::Reverted
        }
    }

    /// The package in `slot` per its marker, checked with `floor` as the lowest version.
    fn verified(&self, slot: usize, marker: Marker, floor: Version) -> Result<Package<'static>, UpdateError> {
        let start = Self::package_offset();
        Package::verify(&self.slot(slot)[start..start + marker.len], self.guest, &self.key, floor)
    }

    /// The lowest version that runs or installs: the firmware's floor, and never below
    /// the guest built into the image, so a package older than the image's own guest
    /// (a replay, or one left in a slot when the firmware was reflashed with a newer
    /// guest) neither installs nor runs.
    pub fn floor(&self) -> Version {
        self.floor.max(self.guest.version())
    }

    /// Sets the lowest version the firmware accepts, which it keeps where it chooses (a
    /// counter in flash, OTP, a secure element) and raises once a new guest is
    /// confirmed. Slots below it are passed over and packages below it refused.
    pub fn set_floor(&mut self, floor: Version) {
        self.floor = floor;
        self.generation = self.generation.wrapping_add(1);
    }

    /// The slot [`Slots::current`] would run and its package: the newest slot that is
    /// pending, on trial in this start, or confirmed, whose package passes every check
    /// at [`Slots::floor`]; `None` for the guest built into the image. Each candidate's
    /// signature is verified again, so a slot damaged since its install is passed over.
    fn choice(&self) -> Option<(usize, Package<'static>)> {
        self.newest(&[SlotState::Pending, SlotState::Trial, SlotState::Confirmed])
    }

    /// The newest slot in one of `states` whose package passes every check at
    /// [`Slots::floor`], and its package.
    fn newest(&self, states: &[SlotState]) -> Option<(usize, Package<'static>)> {
        let floor = self.floor();
        self.marked()
            .filter(|&(slot, _)| states.contains(&self.state(slot)))
            .find_map(|(slot, marker)| self.verified(slot, marker, floor).ok().map(|package| (slot, package)))
    }

    /// What the guest runs now: the newest slot that is pending, on trial or confirmed
    /// and passes every check at [`Slots::floor`], else the guest built into the image.
    /// A pending slot goes on trial here (its trial flag is written first): confirm it
    /// with [`Slots::confirm`] once it has proven itself, or it reverts at the next start.
    ///
    /// The guest built into the image runs when no slot qualifies, even below the
    /// floor: it came with the firmware, whose own anti-rollback is the boot loader's,
    /// and a device with no guest to run would be worse.
    pub fn current(&mut self) -> Result<Current<'_>, UpdateError> {
        let from = self.choice();
        self.chosen = from.map(|(slot, _)| slot);
        if let Some((slot, _)) = from
            && self.state(slot) == SlotState::Pending
        {
            self.write_flag(slot, 1, TRIAL)?;
            self.trial = Some(slot);
            self.trial_loaded.set(false);
        }
        let firmware = self.guest.guest().settings();
        Ok(Current {
            guest: self.guest,
            settings: from.map_or(*firmware, |(_, package)| package.run_settings(firmware)),
            from,
            trial: match from {
                Some((slot, _)) if self.trial == Some(slot) => Some(&self.trial_loaded),
                _ => None,
            },
        })
    }

    /// Confirms the guest on trial once it has been loaded: it runs at every start from
    /// now on. Returns the version that runs, confirmed, for the firmware to raise its
    /// floor to. With nothing on trial it confirms nothing and returns that version too.
    pub fn confirm(&mut self) -> Result<Version, UpdateError> {
        let name = self.guest.guest().name();
        if let Some(slot) = self.trial {
            if !self.trial_loaded.get() {
                return Err(UpdateError::NotLoaded { guest: name, slot });
            }
            self.write_flag(slot, 2, CONFIRMED)?;
            self.trial = None;
            self.generation = self.generation.wrapping_add(1);
        }
        // The newest confirmed guest, never a pending one installed meanwhile: a floor
        // raised to an untried version would pass over the confirmed fallback once that
        // version fails its trial.
        Ok(self.newest(&[SlotState::Confirmed]).map_or(self.guest.version(), |(_, package)| package.version()))
    }

    /// Reverts the guest on trial: it never runs again, and the next
    /// [`Slots::current`] runs the previous guest. With nothing on trial it does
    /// nothing. Its trial flag, already written, says so at every start; a live module
    /// of it keeps running until it is dropped, and no install erases its slot before
    /// then.
    pub fn revert(&mut self) {
        if self.trial.take().is_some() {
            self.generation = self.generation.wrapping_add(1);
        }
    }

    /// Confirms a pending slot without a trial, as MCUmgr's `confirm` with an image's
    /// hash does (MCUboot's permanent upgrade). The install already checked that
    /// Wasmtime loads it; what it does is untested until it runs.
    pub fn confirm_pending(&mut self, slot: usize) -> Result<(), UpdateError> {
        let name = self.guest.guest().name();
        if slot > 1 || self.state(slot) != SlotState::Pending {
            return Err(UpdateError::NotPending { guest: name, slot });
        }
        let marker = self.marker(slot).ok_or(UpdateError::NotPending { guest: name, slot })?;
        self.verified(slot, marker, self.floor())?;
        self.write_flag(slot, 2, CONFIRMED)?;
        self.generation = self.generation.wrapping_add(1);
        Ok(())
    }

    /// A number that changes whenever what [`Slots::current`] runs may have changed (an
    /// install finished, a trial confirmed or reverted, the floor set): a task that
    /// keeps a guest loaded compares it to know when to load again.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The package in `slot` and its state, if it holds one that checks out (at any
    /// version): for reports such as MCUmgr's image state.
    pub fn installed(&self, slot: usize) -> Option<Installed<'_>> {
        let marker = self.marker(slot.min(1)).filter(|_| slot <= 1)?;
        let package = self.verified(slot, marker, Version::ZERO).ok()?;
        let start = Self::package_offset();
        Some(Installed {
            slot,
            state: self.state(slot),
            active: self.running() == Some(slot),
            package,
            bytes: &self.slot(slot)[start..start + marker.len],
        })
    }

    /// The slot the guest runs from now: the one its live module's code lies in, or with
    /// no module alive the one [`Slots::current`] last chose; `None` for the guest built
    /// into the image.
    pub fn running(&self) -> Option<usize> {
        match self.guest.guest().running_at() {
            Some(at) => (0..2).find(|&slot| self.slot(slot).as_ptr_range().contains(&(at as *const u8))),
            None => self.chosen,
        }
    }

    /// The guest these slots update.
    pub fn updatable(&self) -> &'static Updatable {
        self.guest
    }

    /// Starts installing a package of `len` bytes. Write it with [`Install::write`] as it
    /// arrives, then [`Install::finish`]. Nothing is erased until the package's signed
    /// header has arrived and passed every check; then the install takes the slot that
    /// does not hold the newest confirmed guest (the fallback) nor a live module, so a
    /// power cut at any point leaves that guest to run at the next start. Refused while a
    /// guest is on trial (confirm or revert it first), and below [`Slots::floor`] or the
    /// version of the newest confirmed guest.
    pub fn install(&mut self, len: usize) -> Result<Install<'_, F>, UpdateError> {
        self.session = None;
        let name = self.guest.guest().name();
        let room = self.slot_size - Self::package_offset();
        if len > room {
            return Err(UpdateError::TooLarge { guest: name, len, slot: room });
        }
        if len < MIN_HEADER {
            return Err(UpdateError::Truncated {
                guest: name,
                len,
                expected: MIN_HEADER,
            });
        }
        if let Some(slot) = self.trial {
            return Err(UpdateError::OnTrial { guest: name, slot });
        }
        self.session = Some(Session {
            len,
            received: 0,
            head: Vec::new(),
            head_len: PREAMBLE,
            layout: None,
            target: None,
            pending: [0xff; CHUNK],
            pending_len: 0,
            written: 0,
        });
        Ok(Install { slots: self })
    }

    /// Where an install goes now, and the lowest version it may have: never the slot of
    /// the newest confirmed guest that qualifies (the fallback), whose version the
    /// install must reach; else not the slot a live module runs from; else the slot with
    /// the older marker or none. A pending package that was never tried is replaced
    /// rather than the fallback.
    fn target(&self) -> (usize, Version) {
        let floor = self.floor();
        match (self.newest(&[SlotState::Confirmed]), self.running()) {
            (Some((slot, package)), _) => (1 - slot, floor.max(package.version())),
            (None, Some(running)) => (1 - running, floor),
            (None, None) => (self.marked().next().map_or(0, |(slot, _)| 1 - slot), floor),
        }
    }

    /// Drops the install under way, if any: its slot is left without a marker, so its
    /// package never runs.
    pub fn cancel(&mut self) {
        self.session = None;
    }

    /// The install under way, to go on with it: for a transport that delivers a package
    /// in separate requests (MCUmgr's image upload). `None` once it finished or failed.
    pub fn resume(&mut self) -> Option<Install<'_, F>> {
        self.session.as_ref()?;
        Some(Install { slots: self })
    }

    /// The flash outside the partition, for a firmware that shares the driver with
    /// other data: erasing or writing inside the partition is refused, so no safe code
    /// can change the bytes a guest runs from.
    pub fn flash(&mut self) -> OutsidePartition<'_, F> {
        OutsidePartition {
            flash: &mut self.flash,
            partition: self.partition.clone(),
        }
    }

    /// The flash driver itself.
    ///
    /// # Safety
    /// Nothing erases or writes the partition through it: a guest may be running from a
    /// slot, and the slots' state is theirs to write.
    pub unsafe fn flash_unchecked(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Writes flag `index` (1 trial, 2 confirmed) of `slot`.
    fn write_flag(&mut self, slot: usize, index: usize, flag: &[u8; 16]) -> Result<(), UpdateError> {
        let mut bytes = [0xff; CHUNK];
        bytes[..16].copy_from_slice(flag);
        let at = self.offset(slot, index * Self::unit());
        self.flash
            .write(at, &bytes[..Self::unit()])
            .map_err(flash_error(self.guest.guest().name(), "write", at))
    }

    fn offset(&self, slot: usize, in_slot: usize) -> u32 {
        offset(&self.partition, self.slot_size, slot, in_slot)
    }
}

/// Where byte `in_slot` of slot `slot` is, as the flash driver addresses it.
fn offset(partition: &Range<u32>, slot_size: usize, slot: usize, in_slot: usize) -> u32 {
    partition.start + (slot * slot_size + in_slot) as u32
}

fn flash_error<E: NorFlashError>(guest: &'static str, operation: &'static str, offset: u32) -> impl FnOnce(E) -> UpdateError {
    move |error| UpdateError::Flash {
        guest,
        operation,
        offset,
        kind: error.kind(),
    }
}

/// An install's progress, kept by the slots between the pieces of a package.
struct Session {
    len: usize,
    /// Bytes given so far.
    received: usize,
    /// The package's first bytes: its header, and then the `.cwasm` up to the slot's next
    /// multiple of [`CHUNK`]. Kept in RAM and written last, just before the marker, so an
    /// upload that stops early leaves the slot blank but for the `.cwasm` it wrote, and
    /// the next needs no erase of a slot that still is.
    head: Vec<u8>,
    /// How many bytes `head` takes: the preamble until it is read.
    head_len: usize,
    /// How the package divides, once its preamble arrived.
    layout: Option<Layout>,
    /// Where it goes, once the header passed every check (and the slot was erased).
    target: Option<Target>,
    /// Bytes of the `.cwasm` after `head` not yet written, so that every write is a whole
    /// number of write units.
    pending: [u8; CHUNK],
    pending_len: usize,
    /// Bytes after `head` written to the slot.
    written: usize,
}

/// The slot a checked header goes to, the floor it was checked against, and the
/// sequence number its marker gets.
#[derive(Clone, Copy)]
struct Target {
    slot: usize,
    floor: Version,
    sequence: u32,
}

/// An install under way. Dropping it before [`Install::finish`] leaves the slot without
/// a marker, so the previous guest still runs; [`Slots::resume`] takes it up again.
/// Any error ends it.
pub struct Install<'s, F: NorFlash> {
    slots: &'s mut Slots<F>,
}

impl<F: NorFlash> Install<'_, F> {
    /// How many bytes of the package it was given so far.
    pub fn received(&self) -> usize {
        self.session().received
    }

    /// How many bytes the package has, as announced.
    pub fn len(&self) -> usize {
        self.session().len
    }

    /// Whether the package was announced empty (it is then refused).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot it writes, once its header has been checked.
    pub fn slot(&self) -> Option<usize> {
        self.session().target.map(|target| target.slot)
    }

    fn session(&self) -> &Session {
        self.slots.session.as_ref().expect("an Install exists only with a session")
    }

    fn session_mut(&mut self) -> &mut Session {
        self.slots.session.as_mut().expect("an Install exists only with a session")
    }

    /// Writes the next bytes of the package; a package larger than free RAM installs in
    /// pieces of any size. The slot is erased when the header is whole and has passed
    /// every check.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), UpdateError> {
        let result = self.try_write(bytes);
        if result.is_err() {
            self.slots.session = None;
        }
        result
    }

    fn try_write(&mut self, mut bytes: &[u8]) -> Result<(), UpdateError> {
        let name = self.slots.guest.guest().name();
        let offset = Slots::<F>::package_offset();
        let session = self.session_mut();
        let given = session.received.saturating_add(bytes.len());
        if given > session.len {
            return Err(UpdateError::WrongLength {
                guest: name,
                announced: session.len,
                given,
            });
        }
        session.received = given;
        while !bytes.is_empty() && self.session().head.len() < self.session().head_len {
            let session = self.session_mut();
            let take = bytes.len().min(session.head_len - session.head.len());
            session.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if session.layout.is_none() && session.head.len() == PREAMBLE {
                let layout = Layout::read(name, &session.head)?;
                if layout.len() != session.len {
                    return Err(UpdateError::Truncated {
                        guest: name,
                        len: session.len,
                        expected: layout.len(),
                    });
                }
                session.layout = Some(layout);
                session.head_len = ((offset + layout.header).next_multiple_of(CHUNK) - offset).min(session.len);
            }
            if let Some(layout) = session.layout
                && session.target.is_none()
                && session.head.len() >= layout.header
            {
                self.check_header(layout)?;
            }
        }
        self.put(bytes)
    }

    /// The header is whole: checks it against where it would go now, then erases that
    /// slot's blocks that are not blank.
    fn check_header(&mut self, layout: Layout) -> Result<(), UpdateError> {
        let slots = &*self.slots;
        let name = slots.guest.guest().name();
        // Again, as the firmware may have started a trial since the install began.
        if let Some(slot) = slots.trial {
            return Err(UpdateError::OnTrial { guest: name, slot });
        }
        let (slot, floor) = slots.target();
        let session = slots.session.as_ref().expect("a session");
        let header = Header::verify(&session.head[..layout.header], layout, slots.guest, &slots.key, floor)?;
        // The same package as one a slot holds: nothing to do, and a replay must not
        // wear the flash out.
        for held in 0..2 {
            if let Some(installed) = slots.installed(held)
                && installed.state != SlotState::Reverted
                && installed.package.signature() == &header.signature
            {
                return Err(UpdateError::AlreadyInstalled {
                    guest: name,
                    version: header.version,
                    slot: held,
                });
            }
        }
        let range = slots.slot(slot).as_ptr_range();
        if let Some(at) = slots.guest.guest().running_at()
            && range.contains(&(at as *const u8))
        {
            return Err(UpdateError::SlotInUse { guest: name, slot });
        }
        let sequence = slots.marked().map(|(_, m)| m.sequence).max().unwrap_or(0).wrapping_add(1);
        let (start, erase, bytes) = (slots.offset(slot, 0), F::ERASE_SIZE, slots.slot(slot));
        for block in (0..bytes.len()).step_by(erase) {
            if bytes[block..block + erase].iter().any(|&b| b != 0xff) {
                let from = start + block as u32;
                self.slots
                    .flash
                    .erase(from, from + erase as u32)
                    .map_err(flash_error(name, "erase", from))?;
            }
        }
        if let Some(at) = self.slots.slot(slot).iter().position(|&b| b != 0xff) {
            return Err(UpdateError::NotErased {
                guest: name,
                offset: start + at as u32,
            });
        }
        self.session_mut().target = Some(Target { slot, floor, sequence });
        Ok(())
    }

    /// Queues `bytes` of the checked package after its head for writing.
    fn put(&mut self, mut bytes: &[u8]) -> Result<(), UpdateError> {
        while !bytes.is_empty() {
            let session = self.session_mut();
            let take = bytes.len().min(CHUNK - session.pending_len);
            session.pending[session.pending_len..session.pending_len + take].copy_from_slice(&bytes[..take]);
            session.pending_len += take;
            bytes = &bytes[take..];
            if session.pending_len == CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Writes what is pending, padded with erased bytes to the write size.
    fn flush(&mut self) -> Result<(), UpdateError> {
        let name = self.slots.guest.guest().name();
        let session = self.slots.session.as_mut().expect("a session");
        let target = session.target.expect("bytes after the head come after the header's check");
        let len = session.pending_len.next_multiple_of(F::WRITE_SIZE);
        session.pending[session.pending_len..len].fill(0xff);
        let in_slot = Slots::<F>::package_offset() + session.head_len + session.written;
        let at = offset(&self.slots.partition, self.slots.slot_size, target.slot, in_slot);
        self.slots
            .flash
            .write(at, &session.pending[..len])
            .map_err(flash_error(name, "write", at))?;
        session.written += session.pending_len;
        session.pending_len = 0;
        Ok(())
    }

    /// Writes the last bytes and the head, verifies the whole package where it now lies,
    /// checks that Wasmtime loads it, and only then writes the marker that makes it
    /// pending; returns its version. A package that fails a check is left without a
    /// marker, so it never runs.
    pub fn finish(mut self) -> Result<Version, UpdateError> {
        let result = self.try_finish();
        self.slots.session = None;
        if result.is_ok() {
            self.slots.generation = self.slots.generation.wrapping_add(1);
        }
        result
    }

    fn try_finish(&mut self) -> Result<Version, UpdateError> {
        let name = self.slots.guest.guest().name();
        let session = self.session();
        let Some(target) = session.target.filter(|_| session.received == session.len) else {
            return Err(UpdateError::WrongLength {
                guest: name,
                announced: session.len,
                given: session.received,
            });
        };
        // Again, as the firmware may have started a trial or confirmed a newer guest
        // while the package arrived (an upload spans requests): it must pass as if it
        // had arrived now.
        if let Some(slot) = self.slots.trial {
            return Err(UpdateError::OnTrial { guest: name, slot });
        }
        let floor = self.slots.target().1.max(target.floor);
        if self.session().pending_len > 0 {
            self.flush()?;
        }
        let session = self.slots.session.as_mut().expect("a session");
        let head_len = session.head.len().next_multiple_of(F::WRITE_SIZE);
        session.head.resize(head_len, 0xff);
        let at = offset(&self.slots.partition, self.slots.slot_size, target.slot, Slots::<F>::package_offset());
        self.slots
            .flash
            .write(at, &session.head)
            .map_err(flash_error(name, "write", at))?;
        let marker = Marker {
            sequence: target.sequence,
            len: session.len,
        };
        let package = self.slots.verified(target.slot, marker, floor)?;
        loads(self.slots.guest, &package).map_err(UpdateError::Load)?;
        let mut bytes = [0xff; CHUNK];
        bytes[..4].copy_from_slice(MARKER_MAGIC);
        bytes[4..8].copy_from_slice(&marker.sequence.to_le_bytes());
        bytes[8..12].copy_from_slice(&(marker.len as u32).to_le_bytes());
        let crc = crc32(&bytes[..12]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        let at = self.slots.offset(target.slot, 0);
        self.slots
            .flash
            .write(at, &bytes[..Slots::<F>::unit()])
            .map_err(flash_error(name, "write", at))?;
        if self.slots.marker(target.slot).is_none() {
            return Err(UpdateError::NotErased { guest: name, offset: at });
        }
        Ok(package.version())
    }
}

/// Whether Wasmtime loads `package` for an engine made from its settings: a package
/// whose `.cwasm` does not match what its header says is never made pending. The
/// module is dropped at once; it is not the guest's, which may be running from the
/// other slot.
fn loads(updatable: &Updatable, package: &Package<'static>) -> Result<(), crate::Error> {
    let guest = updatable.guest();
    let engine = crate::engine(&package.run_settings(guest.settings()))?;
    let cwasm = NonNull::from(package.cwasm());
    let incompatible = |cause| crate::Error::Incompatible {
        guest: guest.name(),
        cause,
    };
    // SAFETY: the bytes passed every check, the signature over them among them, and
    // stay mapped and unwritten while the module lives (it is dropped here).
    if package.is_component() {
        #[cfg(feature = "component-model")]
        unsafe { wasmtime::component::Component::deserialize_raw(&engine, cwasm) }.map_err(incompatible)?;
    } else {
        unsafe { wasmtime::Module::deserialize_raw(&engine, cwasm) }.map_err(incompatible)?;
    }
    Ok(())
}

/// What a guest runs: the package in a slot that passed every check, or the guest built
/// into the image. It borrows the slots, so no install can erase what it points to.
pub struct Current<'s> {
    guest: &'static Updatable,
    from: Option<(usize, Package<'static>)>,
    settings: Settings,
    /// Set when the package on trial loads.
    trial: Option<&'s Cell<bool>>,
}

impl Current<'_> {
    /// The slot it runs from; `None` for the guest built into the image.
    pub fn slot(&self) -> Option<usize> {
        self.from.as_ref().map(|(slot, _)| *slot)
    }

    /// Whether it runs on trial: [`Slots::confirm`] it once it has proven itself.
    pub fn is_trial(&self) -> bool {
        self.trial.is_some()
    }

    /// Its version.
    pub fn version(&self) -> Version {
        self.from.as_ref().map_or(self.guest.version(), |(_, package)| package.version())
    }

    /// The settings to build its engine from (`wasm_embed::engine(current.settings())`):
    /// an update may need another Pulley stack than the built-in guest.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Loads it, in place from flash, as [`crate::Guest::load`] loads the built-in guest:
    /// the module goes to the same typed handle (`guests::add::Add::new(&module, host)`).
    pub fn load(&self, engine: &Engine) -> Result<GuestModule, UpdateError> {
        let guest = self.guest.guest();
        let module = match &self.from {
            None => guest.load(engine),
            Some((_, package)) => guest.claim(package.cwasm(), Kind::Module).and_then(|cwasm| {
                // SAFETY: every check passed, the signature over these very bytes
                // among them; they stay mapped, and no install erases the slot a live
                // module runs from.
                unsafe { guest.load_module(engine, cwasm) }
            }),
        };
        self.loaded(module)
    }

    /// Loads a component guest, as [`Current::load`] does a core module.
    #[cfg(feature = "component-model")]
    pub fn load_component(&self, engine: &Engine) -> Result<crate::GuestComponent, UpdateError> {
        let guest = self.guest.guest();
        let component = match &self.from {
            None => guest.load_component(engine),
            Some((_, package)) => guest.claim(package.cwasm(), Kind::Component).and_then(|cwasm| {
                // SAFETY: as in `load`.
                unsafe { guest.load_component_from(engine, cwasm) }
            }),
        };
        self.loaded(component)
    }

    fn loaded<T>(&self, code: Result<T, crate::Error>) -> Result<T, UpdateError> {
        let code = code.map_err(UpdateError::Load)?;
        if let Some(loaded) = self.trial {
            loaded.set(true);
        }
        Ok(code)
    }
}

/// The flash outside the update partition ([`Slots::flash`]): reads anywhere, erases and
/// writes outside the partition only.
pub struct OutsidePartition<'a, F> {
    flash: &'a mut F,
    partition: Range<u32>,
}

impl<F: NorFlash> OutsidePartition<'_, F> {
    fn outside(&self, from: u32, to: u32) -> Result<(), GuardError<F::Error>> {
        if from > to {
            return Err(GuardError::Reversed);
        }
        if from < self.partition.end && to > self.partition.start {
            return Err(GuardError::InPartition);
        }
        Ok(())
    }
}

/// An error of [`OutsidePartition`]: the driver's, or an erase or write that reached into
/// the update partition.
#[derive(Debug)]
pub enum GuardError<E> {
    /// The flash driver's error.
    Flash(E),
    /// The operation reached into the update partition, which only the slots write.
    InPartition,
    /// The range ends before it starts.
    Reversed,
}

impl<E: core::fmt::Display> core::fmt::Display for GuardError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GuardError::Flash(error) => error.fmt(f),
            GuardError::InPartition => f.write_str("the update partition is the update slots' to write"),
            GuardError::Reversed => f.write_str("the range ends before it starts"),
        }
    }
}

impl<E: NorFlashError> NorFlashError for GuardError<E> {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            GuardError::Flash(error) => error.kind(),
            GuardError::InPartition | GuardError::Reversed => NorFlashErrorKind::OutOfBounds,
        }
    }
}

impl<F: NorFlash> ErrorType for OutsidePartition<'_, F> {
    type Error = GuardError<F::Error>;
}

impl<F: NorFlash> ReadNorFlash for OutsidePartition<'_, F> {
    const READ_SIZE: usize = F::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.flash.read(offset, bytes).map_err(GuardError::Flash)
    }

    fn capacity(&self) -> usize {
        self.flash.capacity()
    }
}

impl<F: NorFlash> NorFlash for OutsidePartition<'_, F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.outside(from, to)?;
        self.flash.erase(from, to).map_err(GuardError::Flash)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let end = u32::try_from(bytes.len()).ok().and_then(|len| offset.checked_add(len)).ok_or(GuardError::Reversed)?;
        self.outside(offset, end)?;
        self.flash.write(offset, bytes).map_err(GuardError::Flash)
    }
}
