use core::fmt;

/// Why a guest could not be loaded or run. Each variant's `Display` is one line that
/// names the guest, the cause and what to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Wasmtime refused the configuration (a wasm-embed bug, or a Wasmtime built with
    /// Cargo features this configuration cannot use).
    Engine(wasmtime::Error),
    /// The `.cwasm` was made with other settings or another Wasmtime version.
    Incompatible {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// Why Wasmtime refused the `.cwasm`.
        cause: wasmtime::Error,
    },
    /// The `.cwasm` in flash is not the one the build made: its CRC-32 differs.
    Corrupt {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The CRC-32 the build recorded for the `.cwasm`.
        expected: u32,
        /// The CRC-32 of the `.cwasm` as it is in flash.
        found: u32,
    },
    /// The build skipped the guest, so there is nothing to run.
    NotBuilt {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
    },
    /// A component was loaded as a core module, or a core module as a component.
    WrongKind {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// `true` if the `.cwasm` holds a component, `false` if it holds a core module.
        component: bool,
    },
    /// The guest is loaded already: share its module instead.
    AlreadyLoaded {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
    },
    /// A guest's handle was given the module of another guest.
    OtherGuest {
        /// The name of the guest whose handle was being made.
        guest: &'static str,
        /// The name of the guest the module given was loaded for.
        module: &'static str,
    },
    /// Instantiation failed: not enough memory for the guest, or a missing import.
    Instantiate {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// What Wasmtime reported: the allocation that failed, the import it could not
        /// link, or a trap in the guest's start function.
        cause: wasmtime::Error,
    },
    /// The guest has no export of that name and type.
    Export {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The export's name, as the firmware asked for it.
        name: &'static str,
        /// Why Wasmtime refused it: no such export, or its type differs from the call's
        /// Rust types.
        cause: wasmtime::Error,
    },
    /// The guest trapped (or a host function failed) during a call. The store stays
    /// usable, and the rest of the firmware is unaffected.
    Call {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The name of the export that was called.
        function: &'static str,
        /// What went wrong, for a firmware that reacts to it (see [`Error::fault`]).
        fault: Fault,
        /// Wasmtime's error: the trap (with the guest's backtrace in the debug profile),
        /// or the error a host import returned.
        cause: wasmtime::Error,
    },
    /// A guest handed a host import a buffer that is not inside its memory.
    BadPointer {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// Where the buffer starts: an offset in the guest's linear memory.
        ptr: u32,
        /// The buffer's length in bytes.
        len: u32,
        /// The size of the guest's linear memory in bytes.
        memory: usize,
    },
    /// A guest handed a host import text that is not UTF-8.
    NotUtf8 {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// Where the text starts: an offset in the guest's linear memory.
        ptr: u32,
        /// The text's length in bytes.
        len: u32,
    },
    /// Fuel was asked of a build that compiled no fuel checks.
    FuelOff {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
    },
    /// A blocking call of a guest instantiated for async calls (`new_async`): its imports
    /// may await, which a blocking call cannot.
    #[cfg(feature = "async")]
    NeedsAwait {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The name of the export that was called.
        function: &'static str,
    },
    /// An async call of a guest instantiated for blocking calls (`new`): its imports
    /// cannot await and its calls would never yield.
    #[cfg(feature = "async")]
    NotAsync {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The name of the export that was called.
        function: &'static str,
    },
    /// What a host's import returns when it cannot do what the guest asked: the call
    /// ends with [`Fault::Import`] and this reason.
    #[cfg(feature = "async")]
    ImportFailed {
        /// Why the host could not do it, as a phrase for the message.
        reason: &'static str,
    },
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
    MemoryLimit {
        /// The memory's size in bytes when the guest asked for more.
        size: usize,
        /// The size in bytes the guest asked the memory to grow to.
        requested: usize,
    },
    /// An async call's fiber stack overflowed (`Settings::async_stack_size`): the canary
    /// below the stack changed. The call's result is not used.
    #[cfg(feature = "async")]
    FiberStackOverflow {
        /// Bytes of the fiber stack.
        size: usize,
        /// How far below the stack the deepest write went: 256 bytes (the canary) or more
        /// means the heap beside it may be overwritten.
        by: usize,
    },
    /// A host import returned an error.
    Import,
    /// Any other trap (division by zero, a bad indirect call, ...) or failure.
    Other,
}

impl Fault {
    pub(crate) fn of(cause: &wasmtime::Error) -> Fault {
        #[cfg(feature = "async")]
        if let Some(&crate::fiber_stack::FiberOverflow { size, by, .. }) = cause.downcast_ref() {
            return Fault::FiberStackOverflow { size, by };
        }
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
    /// What went wrong in a failed call; `None` for any other error.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            Error::Call { fault, .. } => Some(*fault),
            _ => None,
        }
    }

    /// The guest's stack at the trap, with its functions' names: only a build with the
    /// debug profile (`Builder::profile(Profile::Debug)`) collects one.
    pub fn backtrace(&self) -> Option<&wasmtime::WasmBacktrace> {
        match self {
            Error::Call { cause, .. } => cause.downcast_ref(),
            _ => None,
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
            Error::WrongKind { guest, component: true } => write!(
                f,
                "guest `{guest}`: its .cwasm holds a component, not a core module; load it with \
                 Guest::load_component (wasm-embed's `component-model` feature)"
            ),
            Error::WrongKind { guest, component: false } => write!(
                f,
                "guest `{guest}`: its .cwasm holds a core module, not a component; load it with Guest::load"
            ),
            Error::AlreadyLoaded { guest } => write!(
                f,
                "guest `{guest}` is loaded already, and Wasmtime cannot run two modules from the same flash \
                 bytes at once; clone the GuestModule you have, or drop it (and its handles) before loading again"
            ),
            Error::OtherGuest { guest, module } => write!(
                f,
                "guest `{guest}`'s handle was given guest `{module}`'s module; load guests::{guest}::GUEST for it"
            ),
            #[cfg(feature = "async")]
            Error::Instantiate { guest, cause } if cause.downcast_ref::<crate::fiber_stack::FiberOverflow>().is_some() => {
                write!(
                    f,
                    "guest `{guest}` could not be instantiated: it {}; raise Builder::async_stack_size in build.rs",
                    OneLine(cause)
                )
            }
            Error::Instantiate { guest, cause } => write!(
                f,
                "guest `{guest}` could not be instantiated: {}; leave heap for its memory and Pulley stack",
                OneLine(cause)
            ),
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
                    #[cfg(feature = "async")]
                    Fault::FiberStackOverflow { .. } => write!(
                        f,
                        "failed in `{function}`: it {}; raise Builder::async_stack_size in build.rs, or make its \
                         imports' futures less deep",
                        OneLine(cause)
                    ),
                    Fault::Import => write!(f, "failed in `{function}`: its import failed: {}", OneLine(cause)),
                    Fault::Other => write!(f, "failed in `{function}`: {}", OneLine(cause)),
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
                "guest `{guest}` passed {len} bytes at {ptr:#x} as text, but they are not UTF-8; \
                 the guest must pass UTF-8"
            ),
            #[cfg(feature = "async")]
            Error::NeedsAwait { guest, function } => write!(
                f,
                "guest `{guest}` was instantiated for async calls (new_async), so its export `{function}` \
                 cannot be called blocking; await the export's `_async` method, or instantiate it with `new`"
            ),
            #[cfg(feature = "async")]
            Error::NotAsync { guest, function } => write!(
                f,
                "guest `{guest}` was instantiated for blocking calls (new), so its export `{function}` \
                 cannot be awaited; instantiate it with `new_async`, or call the export's blocking method"
            ),
            #[cfg(feature = "async")]
            Error::ImportFailed { reason } => write!(f, "the host could not serve it: {reason}"),
            Error::FuelOff { guest } => write!(
                f,
                "guest `{guest}`: fuel is off in this build; turn it on with Builder::fuel in build.rs"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// A Wasmtime error and its causes on one line: `outer: inner: innermost`, without the
/// backtrace Wasmtime appends to a trap in the debug profile (see [`Error::backtrace`]).
struct OneLine<'a>(&'a wasmtime::Error);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        // Wasmtime attaches the backtrace as the outermost context of the trap.
        let skip = usize::from(self.0.downcast_ref::<wasmtime::WasmBacktrace>().is_some());
        for cause in self.0.chain().skip(skip) {
            let text = alloc::format!("{cause}");
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                if !first {
                    f.write_str(": ")?;
                }
                f.write_str(line.trim())?;
                first = false;
            }
        }
        Ok(())
    }
}
