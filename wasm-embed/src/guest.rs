//! A guest precompiled into the firmware image, and loading it in place.

use alloc::sync::Arc;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use wasmtime::{Engine, Module};

use crate::{Error, Settings};

/// CRC-32 (ISO-HDLC, as zlib and Ethernet use) without a lookup table: a load checks a
/// few KiB once, so 1 KiB of table in flash would buy little.
const CRC32: crc::Crc<u32, crc::NoTable> = crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// The checksum the build records for a `.cwasm`: CRC-32 (ISO-HDLC) of its bytes.
#[doc(hidden)]
pub const fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// Aligns a `.cwasm` in flash. Wasmtime reads it in place and does not require
/// alignment, but an aligned ELF image lets it read headers without copying, and the
/// padding costs at most 15 bytes.
#[doc(hidden)]
#[repr(C, align(16))]
pub struct Aligned<B: ?Sized>(pub B);

/// A guest precompiled into the firmware image: `guests::<name>::GUEST`, which
/// `wasm_embed::include_guests!()` brings in. Load it with [`Guest::load`] and hand the
/// [`GuestModule`] to the guest's handle (`guests::add::Add::new(&module, host)`).
#[derive(Debug)]
pub struct Guest {
    name: &'static str,
    /// `None` when the build skipped the guest.
    cwasm: Option<&'static [u8]>,
    /// The CRC-32 the build recorded, checked before Wasmtime reads a byte.
    checksum: Option<u32>,
    settings: Settings,
    /// Whether a [`GuestModule`] of this guest is alive. Wasmtime registers code it runs
    /// in place by its address, and a second live module made from the same flash bytes
    /// makes it panic; so a guest is loaded once, and its module shared.
    loaded: AtomicBool,
    /// Where the loaded module's bytes start: the embedded `.cwasm`, or an update's in a
    /// flash slot, which must not be erased while the module runs from it.
    running_at: AtomicUsize,
}

impl Guest {
    /// Describes a `.cwasm` embedded in the firmware. The emitted module calls this; a
    /// firmware never needs to.
    ///
    /// # Safety
    /// `cwasm` must be the output of `Engine::precompile_module` (as `wasm-embed-build`
    /// produces it), unchanged. What Wasmtime's `Module::deserialize_raw` checks and what
    /// it trusts (`engine/serialization.rs` and `code_memory.rs` in Wasmtime 48):
    ///
    /// - checked, refused with [`Error::Incompatible`]: the ELF header and its section
    ///   table, Wasmtime's module flag, the `.wasmtime.engine` section's format byte, the
    ///   Wasmtime version that made it, the target (pulley32/pulley64), and every compiler
    ///   flag, tunable and Wasm feature that changes the code (fuel, memory layout, ...);
    /// - trusted: everything else, above all the Pulley bytecode and the module metadata
    ///   (function offsets, signatures, data segments). Pulley does not verify bytecode,
    ///   so a flipped bit there can read or write anywhere.
    ///
    /// So a `.cwasm` of another version, target or configuration is an error value, but
    /// a damaged one is undefined behaviour unless [`Guest::with_checksum`] is given the
    /// checksum the build recorded, as the emitted guests are: then a flipped bit, a
    /// burst of up to 32 damaged bits, and all but one in 2^32 of any other damage
    /// (truncation included) is an [`Error::Corrupt`] before Wasmtime reads the bytes.
    #[doc(hidden)]
    pub const unsafe fn new(name: &'static str, cwasm: &'static [u8], settings: Settings) -> Guest {
        Guest {
            name,
            cwasm: Some(cwasm),
            checksum: None,
            settings,
            loaded: AtomicBool::new(false),
            running_at: AtomicUsize::new(0),
        }
    }

    /// Checks the `.cwasm` against `crc32` every time it is loaded, so a damaged flash
    /// image is refused instead of run. It costs about 74 Cortex-M4 instructions per byte
    /// of `.cwasm` at load, nothing per call: the CRC is computed without a lookup table,
    /// which would be several times faster but cost 1 KiB of flash.
    #[doc(hidden)]
    pub const fn with_checksum(self, crc32: u32) -> Guest {
        Guest {
            checksum: Some(crc32),
            ..self
        }
    }

    /// A guest whose build was skipped (`WASM_EMBED_SKIP`, rust-analyzer or clippy): the
    /// firmware still type-checks, and loading it returns [`Error::NotBuilt`].
    #[doc(hidden)]
    pub const fn skipped(name: &'static str, settings: Settings) -> Guest {
        Guest {
            name,
            cwasm: None,
            checksum: None,
            settings,
            loaded: AtomicBool::new(false),
            running_at: AtomicUsize::new(0),
        }
    }

    /// Where the bytes of the module loaded now start, if one is alive.
    #[cfg(feature = "update")]
    pub(crate) fn running_at(&self) -> Option<usize> {
        self.loaded
            .load(Ordering::Acquire)
            .then(|| self.running_at.load(Ordering::Acquire))
    }

    /// The guest's name: its crate's library name, or its `.wasm` file's stem.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The precompiled image, as it sits in flash (empty if the build skipped it).
    pub fn cwasm(&self) -> &'static [u8] {
        self.cwasm.unwrap_or_default()
    }

    /// The settings its `.cwasm` was precompiled with; an engine made from them
    /// (`wasm_embed::engine(guest.settings())`) loads it with just the Pulley stack it
    /// needs.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Loads the guest for `engine`, running its code in place from flash: only its
    /// metadata is decoded onto the heap.
    ///
    /// A guest is loaded once: while its module (or a clone, or an instance made from
    /// it) is alive, loading it again is [`Error::AlreadyLoaded`], since Wasmtime cannot
    /// run two modules from the same flash bytes at once. Clone the [`GuestModule`] to
    /// share it.
    pub fn load(&'static self, engine: &Engine) -> Result<GuestModule, Error> {
        let cwasm = self.claim(self.embedded()?, Kind::Module)?;
        // SAFETY: `new`'s contract says the bytes came from Wasmtime's precompiler (and
        // the checksum, if given, that they are still those bytes), and a
        // `&'static [u8]` in flash outlives the module and is never written.
        unsafe { self.load_module(engine, cwasm) }
    }

    /// Loads `cwasm` (the built-in `.cwasm`, or a verified update's) as this guest.
    ///
    /// # Safety
    /// `cwasm` was claimed, is Wasmtime's precompiler output for this guest, unchanged,
    /// and is neither written nor freed while the module lives.
    pub(crate) unsafe fn load_module(&'static self, engine: &Engine, cwasm: NonNull<[u8]>) -> Result<GuestModule, Error> {
        let _setting_up = SettingUp::new(self);
        // SAFETY: the caller's contract is `deserialize_raw`'s.
        let module = unsafe { Module::deserialize_raw(engine, cwasm) };
        self.loaded(module).map(|loaded| GuestModule { loaded })
    }

    /// Loads a component guest (one built from a crate with a WIT world) for `engine`,
    /// in place from flash, as [`Guest::load`] does a core module; loading it with
    /// [`Guest::load`], or a core module with this, is [`Error::WrongKind`].
    #[cfg(feature = "component-model")]
    pub fn load_component(&'static self, engine: &Engine) -> Result<GuestComponent, Error> {
        let cwasm = self.claim(self.embedded()?, Kind::Component)?;
        // SAFETY: as in `load`: `Engine::precompile_component`'s bytes, unchanged, in
        // flash for the life of the firmware.
        unsafe { self.load_component_from(engine, cwasm) }
    }

    /// Loads `cwasm` (the built-in `.cwasm`, or a verified update's) as this component
    /// guest.
    ///
    /// # Safety
    /// As [`Guest::load_module`]'s.
    #[cfg(feature = "component-model")]
    pub(crate) unsafe fn load_component_from(
        &'static self,
        engine: &Engine,
        cwasm: NonNull<[u8]>,
    ) -> Result<GuestComponent, Error> {
        let _setting_up = SettingUp::new(self);
        // SAFETY: the caller's contract is `deserialize_raw`'s.
        let component = unsafe { wasmtime::component::Component::deserialize_raw(engine, cwasm) };
        self.loaded(component)
            .map(|loaded| GuestComponent { loaded })
    }

    /// The embedded `.cwasm`, once it is known to be undamaged.
    fn embedded(&self) -> Result<&'static [u8], Error> {
        let cwasm = self.cwasm.ok_or(Error::NotBuilt { guest: self.name })?;
        if let Some(expected) = self.checksum {
            let found = crc32(cwasm);
            if found != expected {
                return Err(Error::Corrupt {
                    guest: self.name,
                    expected,
                    found,
                });
            }
        }
        Ok(cwasm)
    }

    /// `cwasm`, of the kind asked for, if the guest is not loaded already; marks it
    /// loaded from there.
    pub(crate) fn claim(&'static self, cwasm: &'static [u8], kind: Kind) -> Result<NonNull<[u8]>, Error> {
        if let Some(found) = Kind::of(cwasm)
            && found != kind
        {
            return Err(Error::WrongKind {
                guest: self.name,
                component: found == Kind::Component,
            });
        }
        if self.loaded.swap(true, Ordering::Acquire) {
            return Err(Error::AlreadyLoaded { guest: self.name });
        }
        self.running_at.store(cwasm.as_ptr() as usize, Ordering::Release);
        Ok(NonNull::from(cwasm))
    }

    /// Keeps what Wasmtime loaded, or lets the guest be loaded again if it failed.
    fn loaded<T>(&'static self, code: wasmtime::Result<T>) -> Result<Arc<Loaded<T>>, Error> {
        match code {
            Ok(code) => Ok(Arc::new(Loaded {
                guest: self,
                code: ManuallyDrop::new(code),
            })),
            Err(cause) => {
                self.loaded.store(false, Ordering::Release);
                Err(Error::Incompatible { guest: self.name, cause })
            }
        }
    }
}

/// What a `.cwasm` holds. Wasmtime refuses the other kind too, but only as an
/// "incompatible object file format", which does not say what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Module,
    Component,
}

impl Kind {
    /// Read from the `e_flags` of the `.cwasm`'s ELF header, where Wasmtime marks it
    /// (`EF_WASMTIME_MODULE`, `EF_WASMTIME_COMPONENT` in its `obj.rs`); `None` for
    /// bytes that are not such an image, which Wasmtime then refuses itself.
    pub(crate) fn of(cwasm: &[u8]) -> Option<Kind> {
        const E_FLAGS: usize = 48;
        let flags = cwasm.get(E_FLAGS..E_FLAGS + 4)?;
        if !cwasm.starts_with(b"\x7fELF") {
            return None;
        }
        match u32::from_le_bytes(flags.try_into().ok()?) & 0b11 {
            0b01 => Some(Kind::Module),
            0b10 => Some(Kind::Component),
            _ => None,
        }
    }
}

/// A guest loaded for an engine, its code still in flash. Give it to the guest's handle
/// (`guests::add::Add::new(&module, host)`); clones share it. The guest can be loaded
/// again once every clone, and every handle made from it, is gone.
#[derive(Clone)]
pub struct GuestModule {
    loaded: Arc<Loaded<Module>>,
}

impl GuestModule {
    /// The guest it was loaded from.
    pub fn guest(&self) -> &'static Guest {
        self.loaded.guest
    }

    pub(crate) fn module(&self) -> &Module {
        &self.loaded.code
    }
}

/// The Wasmtime module behind `module`, for the firmware that calls generated modules'
/// exports by name (the on-device differential check), which no typed handle can.
#[doc(hidden)]
pub fn module_of(module: &GuestModule) -> &Module {
    module.module()
}

/// A component guest loaded for an engine, its code still in flash: what
/// [`GuestModule`] is for a core module. Give it to the guest's handle; clones share
/// it.
#[cfg(feature = "component-model")]
#[derive(Clone)]
pub struct GuestComponent {
    loaded: Arc<Loaded<wasmtime::component::Component>>,
}

#[cfg(feature = "component-model")]
impl GuestComponent {
    /// The guest it was loaded from.
    pub fn guest(&self) -> &'static Guest {
        self.loaded.guest
    }

    pub(crate) fn component(&self) -> &wasmtime::component::Component {
        &self.loaded.code
    }
}

/// A loaded module or component, and the guest to mark unloaded when it goes.
struct Loaded<T> {
    guest: &'static Guest,
    code: ManuallyDrop<T>,
}

impl<T> Drop for Loaded<T> {
    fn drop(&mut self) {
        // The code first: it leaves Wasmtime's registry with it (handles hold this
        // `Loaded` after their store, which holds the code's other references).
        // SAFETY: dropped once, here, and not used after.
        unsafe { ManuallyDrop::drop(&mut self.code) };
        self.guest.loaded.store(false, Ordering::Release);
    }
}

/// The guest being loaded or instantiated now. Where Wasmtime cannot go on without an
/// allocation that failed it aborts, and the firmware's fault handler has only this to
/// say which guest it was setting up.
static SETTING_UP: AtomicPtr<Guest> = AtomicPtr::new(core::ptr::null_mut());

/// The name of the guest being loaded or instantiated now, if one is: for a fault handler
/// that reports an abort, such as the heap running out inside Wasmtime.
pub fn guest_being_set_up() -> Option<&'static str> {
    // SAFETY: only `SettingUp` stores here, a `&'static Guest` or null.
    unsafe { SETTING_UP.load(Ordering::Relaxed).as_ref() }.map(Guest::name)
}

/// Marks `guest` as being set up until it is dropped, then restores what was marked
/// before. A load and a store, not a swap: a core without compare-and-swap needs none.
pub(crate) struct SettingUp(*mut Guest);

impl SettingUp {
    pub(crate) fn new(guest: &'static Guest) -> SettingUp {
        let before = SETTING_UP.load(Ordering::Relaxed);
        SETTING_UP.store(core::ptr::from_ref(guest).cast_mut(), Ordering::Relaxed);
        SettingUp(before)
    }
}

impl Drop for SettingUp {
    fn drop(&mut self) {
        SETTING_UP.store(self.0, Ordering::Relaxed);
    }
}
