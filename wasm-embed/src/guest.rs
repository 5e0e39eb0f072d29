use core::ptr::NonNull;

use wasmtime::{AsContextMut, Engine, Extern, Instance, Linker, Module, Store, TypedFunc, WasmParams, WasmResults};

use crate::{Error, Settings};

/// CRC-32 (ISO-HDLC, as zlib and Ethernet use) without a lookup table: a load checks a
/// few KiB once, so 1 KiB of table in flash would buy little.
const CRC32: crc::Crc<u32, crc::NoTable> = crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// The checksum [`Guest::with_checksum`] expects: CRC-32 (ISO-HDLC) of `bytes`.
pub const fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// Aligns a `.cwasm` in flash. Wasmtime reads it in place and does not require
/// alignment, but an aligned ELF image lets it read headers without copying, and the
/// padding costs at most 15 bytes.
#[repr(C, align(16))]
pub struct Aligned<B: ?Sized>(pub B);

/// A precompiled guest in the firmware image, as emitted by `wasm-embed-build`.
#[derive(Clone, Copy, Debug)]
pub struct Guest {
    name: &'static str,
    /// `None` when the build skipped the guest.
    cwasm: Option<&'static [u8]>,
    /// The CRC-32 the build recorded, checked before Wasmtime reads a byte.
    checksum: Option<u32>,
    settings: Settings,
}

impl Guest {
    /// Describes a `.cwasm` embedded in the firmware.
    ///
    /// # Safety
    /// `cwasm` must be the output of [`Engine::precompile_module`] (as `wasm-embed-build`
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
    pub const unsafe fn new(name: &'static str, cwasm: &'static [u8], settings: Settings) -> Guest {
        Guest {
            name,
            cwasm: Some(cwasm),
            checksum: None,
            settings,
        }
    }

    /// Checks the `.cwasm` against `crc32` (see [`crc32`]) every time it is loaded, so a
    /// damaged flash image is refused instead of run. It costs about 74 Cortex-M4
    /// instructions per byte of `.cwasm` at load (`./x speed`), nothing per call: the
    /// CRC is computed without a lookup table, which would be several times faster but
    /// cost 1 KiB of flash.
    pub const fn with_checksum(self, crc32: u32) -> Guest {
        Guest {
            checksum: Some(crc32),
            ..self
        }
    }

    /// A guest whose build was skipped (`WASM_EMBED_SKIP`, rust-analyzer or clippy):
    /// the firmware still type-checks, and loading it returns [`Error::NotBuilt`].
    pub const fn skipped(name: &'static str, settings: Settings) -> Guest {
        Guest {
            name,
            cwasm: None,
            checksum: None,
            settings,
        }
    }

    /// The guest crate's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The precompiled image, as it sits in flash (empty if the build skipped it).
    pub fn cwasm(&self) -> &'static [u8] {
        self.cwasm.unwrap_or_default()
    }

    /// The settings its `.cwasm` was precompiled with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Loads the guest for `engine`, running its code in place from flash: only the
    /// metadata is decoded onto the heap.
    ///
    /// Load each guest once and share the `Module`: Wasmtime registers loaded code by
    /// its address, and a second module loaded from the same flash bytes while the
    /// first is alive makes Wasmtime 48 panic.
    pub fn module(&self, engine: &Engine) -> Result<Module, Error> {
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
        let image = NonNull::from(cwasm);
        // SAFETY: `new`'s contract says the bytes came from Wasmtime's precompiler (and
        // the checksum, if given, that they are still those bytes), and
        // a `&'static [u8]` in flash outlives the module and is never written.
        unsafe { Module::deserialize_raw(engine, image) }.map_err(|cause| Error::Incompatible {
            guest: self.name,
            cause,
        })
    }

    /// Instantiates a loaded guest with `imports` in the order the guest declares them
    /// (as `Module::imports` lists them). It allocates nothing for name lookup, unlike
    /// [`Guest::instantiate_linked`].
    pub fn instantiate<T: 'static>(
        &self,
        store: &mut Store<T>,
        module: &Module,
        imports: &[Extern],
    ) -> Result<Instance, Error> {
        Instance::new(store, module, imports).map_err(|cause| Error::Instantiate {
            guest: self.name,
            cause,
        })
    }

    /// Instantiates a loaded guest, resolving its imports by name from `linker`. The
    /// linker's name tables cost about 500 bytes of heap for one import (`./x size --levers`).
    pub fn instantiate_linked<T: 'static>(
        &self,
        store: &mut Store<T>,
        linker: &Linker<T>,
        module: &Module,
    ) -> Result<Instance, Error> {
        linker
            .instantiate(store, module)
            .map_err(|cause| Error::Instantiate {
                guest: self.name,
                cause,
            })
    }

    /// Looks up an exported function with the given Rust signature.
    pub fn func<Params: WasmParams, Results: WasmResults>(
        &self,
        store: impl AsContextMut,
        instance: &Instance,
        name: &'static str,
    ) -> Result<GuestFunc<Params, Results>, Error> {
        let func = instance
            .get_typed_func(store, name)
            .map_err(|cause| Error::Export {
                guest: self.name,
                name,
                cause,
            })?;
        Ok(GuestFunc {
            guest: self.name,
            name,
            func,
        })
    }
}

/// An exported guest function with a checked signature.
pub struct GuestFunc<Params, Results> {
    guest: &'static str,
    name: &'static str,
    func: TypedFunc<Params, Results>,
}

impl<Params: WasmParams, Results: WasmResults> GuestFunc<Params, Results> {
    /// Calls the function; a trap or a failing host function comes back as
    /// [`Error::Call`], and the store stays usable.
    pub fn call(&self, store: impl AsContextMut, params: Params) -> Result<Results, Error> {
        self.func
            .call(store, params)
            .map_err(|cause| Error::call(self.guest, self.name, cause))
    }
}
