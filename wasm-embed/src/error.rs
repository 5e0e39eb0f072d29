use core::fmt;

/// Why a guest could not be loaded or run. Each variant's `Display` is one line that
/// names the cause and what to do about it.
#[derive(Debug)]
pub enum Error {
    /// Wasmtime refused the configuration (a wasm-embed bug, or a Wasmtime built with
    /// Cargo features this configuration cannot use).
    Engine(wasmtime::Error),
    /// Wasmtime refused to precompile the guest (the wasm is invalid or uses a feature
    /// the firmware's engine does not enable).
    Precompile(wasmtime::Error),
    /// The `.cwasm` was made with other settings or another Wasmtime version.
    Incompatible {
        guest: &'static str,
        cause: wasmtime::Error,
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
    /// The guest trapped (or a host function failed) during a call.
    Call {
        guest: &'static str,
        function: &'static str,
        cause: wasmtime::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Engine(cause) => write!(
                f,
                "Wasmtime rejected wasm-embed's configuration: {cause}; \
                 use the wasmtime version and features wasm-embed pins"
            ),
            Error::Precompile(cause) => write!(
                f,
                "the guest's wasm cannot be precompiled: {cause:#}; it must be valid wasm32v1-none \
                 code (WebAssembly 1.0 with mutable globals), which is what the firmware's engine enables"
            ),
            Error::Incompatible { guest, cause } => write!(
                f,
                "guest `{guest}`: its .cwasm does not match this firmware's engine ({cause}); \
                 rebuild it with wasm-embed-build of the same version, using the emitted guests::SETTINGS"
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
                cause,
            } => write!(f, "guest `{guest}` failed in `{function}`: {cause:#}"),
        }
    }
}

impl core::error::Error for Error {}
