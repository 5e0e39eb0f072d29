use std::fmt;
use std::path::PathBuf;

/// Why a guest could not be turned into an embedded `.cwasm`. `Display` gives one line
/// naming the cause and the fix (plus rustc's own messages when a guest does not
/// compile).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An environment variable that only Cargo sets is missing: the builder runs outside
    /// a build script without having been told where to write.
    NotInBuildScript { variable: &'static str },
    /// The firmware names no guests.
    NoGuests { manifest: PathBuf },
    /// `[package.metadata.wasm-embed]` is malformed.
    BadMetadata { manifest: PathBuf, message: String },
    /// No guest crate at the path, or no package of that name.
    GuestNotFound { spec: String, reason: String },
    /// No file at the path of a prebuilt `.wasm` guest.
    WasmNotFound { spec: String, path: PathBuf },
    /// A prebuilt guest's file is not a WebAssembly module.
    NotWasm { guest: String, path: PathBuf },
    /// The guest's wasm uses a Wasm feature the firmware's engine does not enable.
    UnsupportedFeature { guest: String, message: String },
    /// Two of a guest's imports or exports would have the same name in its bindings.
    NameClash { guest: String, first: String, second: String, binding: String },
    /// The guest crate builds no `cdylib`, so there is no `.wasm` to embed.
    NotCdylib { guest: String, manifest: PathBuf },
    /// Two guests would get the same module name in the emitted file.
    DuplicateGuest { name: String },
    /// The guest's stack or initial memory cannot be linked.
    BadMemory { message: String },
    /// The rustup toolchain asked for is not installed.
    ToolchainMissing { toolchain: String, message: String },
    /// The toolchain lacks a component or target that building guests needs.
    ComponentMissing { what: String, fix: String },
    /// A program could not be started.
    Spawn { program: PathBuf, source: std::io::Error },
    /// The guest's nested `cargo build` failed; `messages` is what cargo and rustc said.
    Compile { guest: String, messages: String },
    /// A stage could not parse the guest's wasm.
    Parse { guest: String, message: String },
    /// An active data or element segment lies outside its memory or table, so the guest
    /// could never be instantiated.
    Uninstantiable { guest: String, segment: String },
    /// The guest imports something other than a function.
    UnsupportedImport { guest: String, import: String },
    /// binaryen's wasm-opt failed.
    Optimize { guest: String, message: String },
    /// Wasmtime refused to precompile the guest.
    Precompile { guest: String, message: String },
    /// A component guest's `wit/` directory does not hold one valid WIT world.
    Wit { guest: String, dir: PathBuf, message: String },
    /// A component guest's wasm was built for another WIT world than its `wit/`
    /// directory holds.
    WitMismatch { guest: String, dir: PathBuf, reason: String },
    /// wit-component could not make a component of the guest's core module.
    Component { guest: String, message: String },
    /// A guest crate has a WIT world, but this build of wasm-embed-build cannot make
    /// components.
    ComponentsOff { guest: String },
    /// A guest can use more Pulley stack than `Builder::max_wasm_stack` gives it.
    StackTooSmall { guest: String, needs: usize, given: usize },
    /// The firmware's target has a pointer width that Pulley does not support.
    UnsupportedTarget { triple: String },
    /// The update key, or the signing key, cannot be used.
    UpdateKey { path: PathBuf, message: String },
    /// A guest's version cannot be recorded in an update package.
    BadVersion { guest: String, version: String },
    /// A guest's update package cannot be written.
    Package { guest: String, message: String },
    /// The async settings cannot work (`Builder::fuel_yield_interval`,
    /// `Builder::async_stack_size`).
    BadAsync { message: String },
    /// Reading or writing a file failed.
    Io { path: PathBuf, source: std::io::Error },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotInBuildScript { variable } => write!(
                f,
                "wasm-embed-build: `{variable}` is not set; call it from a build script (build.rs), \
                 or set the out_dir and target on the Builder"
            ),
            Error::NoGuests { manifest } => write!(
                f,
                "wasm-embed-build: no guests to build; list them in {} as \
                 `[package.metadata.wasm-embed] guests = [\"path/to/guest\"]`, or call Builder::guest",
                manifest.display()
            ),
            Error::BadMetadata { manifest, message } => write!(
                f,
                "wasm-embed-build: `[package.metadata.wasm-embed]` in {} is invalid: {message}; \
                 expected `guests = [\"path/to/guest\", \"package-name\"]`, and under \
                 `[package.metadata.wasm-embed.features]` a list like it per firmware feature",
                manifest.display()
            ),
            Error::GuestNotFound { spec, reason } => write!(
                f,
                "guest `{spec}` not found: {reason}; give the path of the guest crate's directory \
                 (relative to the firmware's Cargo.toml) or the name of a package in the firmware's workspace"
            ),
            Error::WasmNotFound { spec, path } => write!(
                f,
                "prebuilt guest `{spec}` not found: {} does not exist; give the path of a .wasm file \
                 relative to the firmware's Cargo.toml",
                path.display()
            ),
            Error::NotWasm { guest, path } => write!(
                f,
                "guest `{guest}`: {} is not a WebAssembly module (it does not start with `\\0asm`); \
                 give the .wasm file the guest's toolchain produced",
                path.display()
            ),
            Error::UnsupportedFeature { guest, message } => write!(
                f,
                "guest `{guest}` uses a WebAssembly feature the firmware's engine does not enable: {message}; \
                 build it for WebAssembly 1.0 with mutable globals (Rust: wasm32v1-none; clang: -mcpu=mvp)"
            ),
            Error::NameClash { guest, first, second, binding } => write!(
                f,
                "guest `{guest}`: `{first}` and `{second}` would both be `{binding}` in its bindings \
                 (a name that is not a Rust identifier has each other character replaced by `_`); \
                 rename one of them in the guest"
            ),
            Error::NotCdylib { guest, manifest } => write!(
                f,
                "guest `{guest}` is not a cdylib, so it builds no .wasm; add `[lib] crate-type = [\"cdylib\"]` to {}",
                manifest.display()
            ),
            Error::DuplicateGuest { name } => write!(
                f,
                "guest `{name}` is listed twice (or two guests have the same library name); list each guest once"
            ),
            Error::BadMemory { message } | Error::BadAsync { message } => write!(f, "wasm-embed-build: {message}"),
            Error::ToolchainMissing { toolchain, message } => write!(
                f,
                "the Rust toolchain `{toolchain}` that builds the guests is not installed ({message}); \
                 install it: rustup toolchain install {toolchain} --profile minimal --component rust-src"
            ),
            Error::ComponentMissing { what, fix } => {
                write!(f, "guests cannot be built: the toolchain lacks {what}; install it: {fix}")
            }
            Error::Spawn { program, source } => write!(
                f,
                "could not run `{}`: {source}; check that it is installed and on PATH",
                program.display()
            ),
            Error::Compile { guest, messages } => write!(
                f,
                "guest `{guest}` did not compile for wasm32v1-none:\n{}",
                messages.trim_end()
            ),
            Error::UnsupportedImport { guest, import } => write!(
                f,
                "guest `{guest}` imports `{import}`, which is not a function; a guest may import only \
                 functions (its memory, tables and globals are its own)"
            ),
            Error::Uninstantiable { guest, segment } => write!(
                f,
                "guest `{guest}` could never be instantiated: {segment}; check the guest's link \
                 arguments (--initial-memory, --global-base, --table-base)"
            ),
            Error::Parse { guest, message } => write!(
                f,
                "guest `{guest}`: its .wasm is not valid WebAssembly ({message}); check the toolchain that produced it"
            ),
            Error::Optimize { guest, message } => write!(
                f,
                "guest `{guest}`: wasm-opt failed: {message}; build without the `wasm-opt` feature of wasm-embed-build to skip it"
            ),
            Error::Precompile { guest, message } => write!(
                f,
                "guest `{guest}`: Wasmtime could not precompile it: {message}; this is a bug in \
                 wasm-embed-build or Wasmtime, since the guest passed validation: please report it"
            ),
            Error::Wit { guest, dir, message } => write!(
                f,
                "guest `{guest}`: the WIT in `{}` is not one valid world: {message}; fix the .wit files there",
                dir.display()
            ),
            Error::WitMismatch { guest, dir, reason } => write!(
                f,
                "guest `{guest}` does not match the WIT world in `{}`: {reason}; build the guest with \
                 wit-bindgen's `generate!` from that directory, and change the world there, not in the guest",
                dir.display()
            ),
            Error::Component { guest, message } => write!(
                f,
                "guest `{guest}`: its core module could not be made a component: {message}; \
                 its exports must be those wit-bindgen generated for its world"
            ),
            Error::ComponentsOff { guest } => write!(
                f,
                "guest `{guest}` has a WIT world (a `wit/` directory), but components are off; \
                 turn on wasm-embed-build's `component-model` feature (and wasm-embed's) in Cargo.toml"
            ),
            Error::StackTooSmall { guest, needs, given } => write!(
                f,
                "guest `{guest}` can use {needs} bytes of Pulley stack but Builder::max_wasm_stack gives {given}; \
                 raise it to at least {needs}, or remove the setting to size it automatically"
            ),
            Error::UnsupportedTarget { triple } => write!(
                f,
                "target `{triple}` is neither 32- nor 64-bit little-endian, which Pulley needs; \
                 set the target on the Builder explicitly"
            ),
            Error::UpdateKey { path, message } => write!(f, "wasm-embed-build: key file {}: {message}", path.display()),
            Error::BadVersion { guest, version } => write!(
                f,
                "guest `{guest}`: version `{version}` cannot order updates; give it a plain `major.minor.patch` \
                 (its Cargo.toml version, or Builder::guest_version for a prebuilt guest)"
            ),
            Error::Package { guest, message } => write!(
                f,
                "guest `{guest}`: its update package cannot be written: {message}; shorten what it names"
            ),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
