use core::fmt;

/// Why a guest could not be loaded or run. Each variant's `Display` is one line that
/// names the cause and what to do about it.
#[derive(Debug)]
pub enum Error {
    /// Wasmtime refused the configuration (a wasm-embed bug, or a Wasmtime built with
    /// Cargo features this configuration cannot use).
    Engine(wasmtime::Error),
    /// The `.cwasm` was made with other settings or another Wasmtime version.
    Incompatible {
        guest: &'static str,
        cause: wasmtime::Error,
    },
    /// The `.cwasm` in flash is not the one the build made: its CRC-32 differs.
    Corrupt {
        guest: &'static str,
        expected: u32,
        found: u32,
    },
    /// The build skipped the guest, so there is nothing to run.
    NotBuilt { guest: &'static str },
    /// Instantiation failed: a missing import, or not enough memory for the guest.
    Instantiate {
        guest: &'static str,
        cause: wasmtime::Error,
    },
    /// The guest has no export of that name and type.
    Export {
        guest: &'static str,
        name: &'static str,
        cause: wasmtime::Error,
    },
    /// The guest trapped (or a host function failed) during a call. The store stays
    /// usable, and the rest of the firmware is unaffected.
    Call {
        guest: &'static str,
        function: &'static str,
        fault: Fault,
        cause: wasmtime::Error,
    },
    /// A guest handed a host import a buffer that is not inside its memory.
    BadPointer {
        guest: &'static str,
        ptr: u32,
        len: u32,
        memory: usize,
    },
    /// A guest handed a host import text that is not UTF-8.
    NotUtf8 { guest: &'static str, ptr: u32, len: u32 },
    /// Fuel was asked of a build that compiled no fuel checks.
    FuelOff { guest: &'static str },
}

/// What went wrong in a failed call, for a firmware that reacts to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The call burnt its fuel: the guest probably loops forever.
    OutOfFuel,
    /// The guest read or wrote outside its linear memory.
    OutOfBounds,
    /// The guest panicked or executed `unreachable`.
    Unreachable,
    /// The guest's calls went deeper than the Pulley stack (`max_wasm_stack`).
    StackOverflow,
    /// The guest trapped after its `memory.grow` was refused: linear memory is fixed.
    MemoryLimit { size: usize, requested: usize },
    /// A host import returned an error.
    Import,
    /// Any other trap (division by zero, a bad indirect call, ...) or failure.
    Other,
}

impl Fault {
    fn of(cause: &wasmtime::Error) -> Fault {
        match cause.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::OutOfFuel) => Fault::OutOfFuel,
            Some(wasmtime::Trap::MemoryOutOfBounds) => Fault::OutOfBounds,
            Some(wasmtime::Trap::UnreachableCodeReached) => Fault::Unreachable,
            Some(wasmtime::Trap::StackOverflow) => Fault::StackOverflow,
            Some(_) => Fault::Other,
            // A typed call fails without a trap only when a host function returned an
            // error, whatever its type (wasm_embed's own, or the firmware's).
            None => Fault::Import,
        }
    }
}

impl Error {
    /// A failed call of `guest`'s export `function`, classified.
    pub(crate) fn call(guest: &'static str, function: &'static str, cause: wasmtime::Error) -> Error {
        Error::Call {
            guest,
            function,
            fault: Fault::of(&cause),
            cause,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Engine(cause) => write!(
                f,
                "Wasmtime rejected wasm-embed's configuration: {cause}; \
                 use the wasmtime version and features wasm-embed pins"
            ),
            Error::Incompatible { guest, cause } => write!(
                f,
                "guest `{guest}`: its .cwasm does not match this firmware's engine ({cause}); \
                 rebuild it with wasm-embed-build of the same version, using the emitted guests::SETTINGS"
            ),
            Error::Corrupt { guest, expected, found } => write!(
                f,
                "guest `{guest}`: its .cwasm is damaged (CRC-32 {found:#010x}, the build recorded {expected:#010x}); \
                 it was not loaded: flash the firmware image again"
            ),
            Error::NotBuilt { guest } => write!(
                f,
                "guest `{guest}` was not built: its build was skipped (WASM_EMBED_SKIP, rust-analyzer or clippy); \
                 build the firmware with `cargo build` and WASM_EMBED_SKIP unset"
            ),
            Error::Instantiate { guest, cause } => {
                write!(
                    f,
                    "guest `{guest}` could not be instantiated: {cause:#}; give each of its imports, \
                     in the order the guest declares them, and leave heap for its memory and Pulley stack"
                )
            }
            Error::Export { guest, name, cause } => write!(
                f,
                "guest `{guest}` has no usable export `{name}`: {cause}; \
                 check the name and the Rust types of the call"
            ),
            Error::Call {
                guest,
                function,
                fault,
                cause,
            } => {
                write!(f, "guest `{guest}` ")?;
                match fault {
                    Fault::OutOfFuel => write!(
                        f,
                        "ran out of fuel in `{function}`: it probably loops forever; \
                         fix the guest, or give calls more fuel (Builder::fuel in build.rs)"
                    ),
                    Fault::OutOfBounds => write!(
                        f,
                        "trapped in `{function}`: out-of-bounds memory access, a bug in the guest"
                    ),
                    Fault::Unreachable => write!(
                        f,
                        "trapped in `{function}`: it panicked or reached `unreachable`, a bug in the guest"
                    ),
                    Fault::StackOverflow => write!(
                        f,
                        "trapped in `{function}`: stack overflow, its calls went deeper than the \
                         Pulley stack; bound its recursion, or raise Builder::max_wasm_stack in build.rs"
                    ),
                    Fault::MemoryLimit { size, requested } => write!(
                        f,
                        "trapped in `{function}` after memory.grow from {size} to {requested} bytes was \
                         refused: a guest's memory is fixed at build time; make it allocate statically"
                    ),
                    Fault::Import => write!(f, "failed in `{function}`: its import failed: {cause:#}"),
                    Fault::Other => write!(f, "failed in `{function}`: {cause:#}"),
                }?;
                // The debug profile collects a backtrace that names the guest's functions.
                match cause.downcast_ref::<wasmtime::WasmBacktrace>() {
                    Some(backtrace) if *fault != Fault::Other => write!(f, "\n{backtrace}"),
                    _ => Ok(()),
                }
            }
            Error::BadPointer {
                guest,
                ptr,
                len,
                memory,
            } => write!(
                f,
                "guest `{guest}` passed a buffer of {len} bytes at {ptr:#x}, outside its {memory}-byte memory; \
                 the guest must pass a pointer into its own memory"
            ),
            Error::NotUtf8 { guest, ptr, len } => write!(
                f,
                "guest `{guest}` passed {len} bytes at {ptr:#x} as text, but they are not UTF-8"
            ),
            Error::FuelOff { guest } => write!(
                f,
                "guest `{guest}`: fuel is off in this build; turn it on with Builder::fuel in build.rs"
            ),
        }
    }
}

impl core::error::Error for Error {}
