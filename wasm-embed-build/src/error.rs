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
    NotInBuildScript {
        /// The variable's name, such as `OUT_DIR` or `CARGO_CFG_TARGET_POINTER_WIDTH`.
        variable: &'static str,
    },
    /// The firmware names no guests.
    NoGuests {
        /// The firmware's `Cargo.toml`, where the guests would be listed.
        manifest: PathBuf,
    },
    /// `[package.metadata.wasm-embed]` is malformed.
    BadMetadata {
        /// The manifest whose `[package.metadata.wasm-embed]` is wrong.
        manifest: PathBuf,
        /// Why, in one clause (or `cargo metadata`'s error); the Display adds the form
        /// expected.
        message: String,
    },
    /// No guest crate at the path, or no package of that name.
    GuestNotFound {
        /// The guest as listed: a crate's directory or `Cargo.toml`, or a package's name.
        spec: String,
        /// Why, in one clause (no `Cargo.toml` there, a virtual manifest, no package of
        /// that name, or `cargo metadata`'s error); the Display adds what to give.
        reason: String,
    },
    /// No file at the path of a prebuilt `.wasm` guest.
    WasmNotFound {
        /// The guest as listed: a path ending in `.wasm`.
        spec: String,
        /// That path joined to the firmware's manifest directory, where there is no file.
        path: PathBuf,
    },
    /// A prebuilt guest's file is not a WebAssembly module.
    NotWasm {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// The prebuilt file, which does not start with the `\0asm` magic.
        path: PathBuf,
    },
    /// The guest's wasm uses a Wasm feature the firmware's engine does not enable.
    UnsupportedFeature {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// Wasmtime's validator's error, causes included, or why a custom page size is
        /// refused; the Display adds the flag that turned the feature on, if it knows it,
        /// and the target to build for.
        message: String,
    },
    /// Two of a guest's imports or exports would have the same name in its bindings.
    NameClash {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// The name met first: an export's, an import's as `module.name`, or
        /// `import module <module>` when two import modules would get one trait.
        first: String,
        /// The name met second, written as `first` is.
        second: String,
        /// The Rust name both would become: a method's, or an import module's trait's.
        binding: String,
    },
    /// The guest crate builds no `cdylib`, so there is no `.wasm` to embed.
    NotCdylib {
        /// The guest's package name with `-` replaced by `_`, as its module would be named.
        guest: String,
        /// The guest crate's `Cargo.toml`, where `[lib] crate-type` belongs.
        manifest: PathBuf,
    },
    /// Two guests would get the same module name in the emitted file.
    DuplicateGuest {
        /// The module name the two guests share.
        name: String,
    },
    /// The guest's stack or initial memory cannot be linked.
    BadMemory {
        /// What is wrong and the fix; the Display only prefixes `wasm-embed-build:`.
        message: String,
    },
    /// The rustup toolchain asked for is not installed.
    ToolchainMissing {
        /// The toolchain's name, such as `nightly-2026-05-20`.
        toolchain: String,
        /// What `rustup which` said on stderr, on one line.
        message: String,
    },
    /// The toolchain lacks a component or target that building guests needs.
    ComponentMissing {
        /// What is missing, as a noun phrase (the `rust-src` component, or the prebuilt
        /// `wasm32v1-none` standard library).
        what: String,
        /// The rustup command that installs it.
        fix: String,
    },
    /// A program could not be started.
    Spawn {
        /// The program: `rustup`, or the toolchain's rustc or cargo.
        program: PathBuf,
        /// The error from starting it or waiting for it; when rustc ran and failed, its
        /// arguments and what it said on stderr.
        source: std::io::Error,
    },
    /// The guest's nested `cargo build` failed; `messages` is what cargo and rustc said.
    Compile {
        /// The names of the guests the nested build left without a `.wasm` (the one that
        /// failed and those cargo stopped; all of them if it left none), joined by
        /// `` `, ` `` so that the Display quotes each.
        guest: String,
        /// What cargo and rustc wrote to stderr, without cargo's progress lines.
        messages: String,
    },
    /// A stage could not parse the guest's wasm.
    Parse {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// The parser's or validator's error, or what in the wasm a stage could not read.
        message: String,
    },
    /// An active data or element segment lies outside its memory or table, so the guest
    /// could never be instantiated.
    Uninstantiable {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// Which segment ends past its memory or table, in one clause (`its data segment
        /// of 8 bytes at 0x10000 ends past its 65536-byte memory`).
        segment: String,
    },
    /// The guest imports something other than a function.
    UnsupportedImport {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// The import that is not a function, as `module.name`.
        import: String,
    },
    /// binaryen's wasm-opt failed.
    Optimize {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// wasm-opt's error.
        message: String,
    },
    /// Wasmtime refused to precompile the guest.
    Precompile {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// Wasmtime's error, causes included.
        message: String,
    },
    /// A component guest's `wit/` directory does not hold one valid WIT world.
    Wit {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// The guest's `wit/` directory.
        dir: PathBuf,
        /// Why, in one clause: wit-parser's error on one line, or that it declares no
        /// world or several.
        message: String,
    },
    /// A component guest's wasm was built for another WIT world than its `wit/`
    /// directory holds.
    WitMismatch {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// The guest's `wit/` directory.
        dir: PathBuf,
        /// How the world built into the wasm differs from that directory's, or why it
        /// could not be read, in one clause.
        reason: String,
    },
    /// wit-component could not make a component of the guest's core module.
    Component {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// wit-component's error, on one line.
        message: String,
    },
    /// A guest crate has a WIT world, but this build of wasm-embed-build cannot make
    /// components.
    ComponentsOff {
        /// The guest's name, as the generated module names it.
        guest: String,
    },
    /// A guest can use more Pulley stack than `Builder::max_wasm_stack` gives it.
    StackTooSmall {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// Bytes of Pulley stack a call into it can use at most.
        needs: usize,
        /// Bytes `Builder::max_wasm_stack` gives it.
        given: usize,
    },
    /// The firmware's target has a pointer width that Pulley does not support.
    UnsupportedTarget {
        /// The firmware's target triple (Cargo's `TARGET`; empty if it is not set).
        triple: String,
    },
    /// The update key, or the signing key, cannot be used.
    UpdateKey {
        /// The key file: the update key's public one or the signing key's secret one.
        path: PathBuf,
        /// Why, in one clause: what is wrong with the key in it, or that the secret key is
        /// not the update key's other half.
        message: String,
    },
    /// A guest's version cannot be recorded in an update package.
    BadVersion {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// The version given for it (its crate's, `Builder::guest_version`'s, or the
        /// firmware's for a prebuilt guest), which is not a plain `major.minor.patch` with
        /// each part at most 2,097,151.
        version: String,
    },
    /// A guest's update package cannot be written.
    Package {
        /// The guest's name, as the generated module names it.
        guest: String,
        /// What the package format refused, in one clause (such as a name over 255 bytes).
        message: String,
    },
    /// The async settings cannot work (`Builder::fuel_yield_interval`,
    /// `Builder::async_stack_size`).
    BadAsync {
        /// What is wrong and the fix; the Display only prefixes `wasm-embed-build:`.
        message: String,
    },
    /// The main stack's guard cannot be linked (`Builder::stack_guard_size`, or a target
    /// whose runtime crate the guard does not know).
    BadStackGuard {
        /// What is wrong and the fix; the Display only prefixes `wasm-embed-build:`.
        message: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The file or directory read or written.
        path: PathBuf,
        /// The error the operation gave.
        source: std::io::Error,
    },
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
            Error::UnsupportedFeature { guest, message } => {
                write!(f, "guest `{guest}` uses a WebAssembly feature the firmware's engine does not enable: {message}; ")?;
                match enabling_flag(message) {
                    // A flag that turns a feature on wins over -mcpu=mvp, so naming the
                    // target alone would not fix it.
                    Some((flag, false)) => write!(f, "it was compiled with that feature on ({flag}): drop the flag, and ")?,
                    Some((flag, true)) => {
                        write!(f, "the toolchains' default wasm32 CPU turns it on, and so does a flag ({flag}): drop the flag if it was given, and ")?
                    }
                    None => {}
                }
                write!(f, "build it for WebAssembly 1.0 with mutable globals (Rust: wasm32v1-none; clang: -mcpu=mvp)")
            }
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
            Error::BadMemory { message } | Error::BadAsync { message } | Error::BadStackGuard { message } => write!(f, "wasm-embed-build: {message}"),
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
                "guest `{guest}`: version `{version}` cannot order updates; give it a plain `major.minor.patch`, each \
                 part at most 2097151 (its Cargo.toml version, or Builder::guest_version for a prebuilt guest)"
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

/// The compiler flags that turn on the feature Wasmtime's validator names in `message`,
/// and whether clang's and Rust's default wasm32 CPU has it on without any flag.
fn enabling_flag(message: &str) -> Option<(&'static str, bool)> {
    let message = message.to_lowercase();
    let flags = [
        ("simd", "clang: -msimd128; Rust: -C target-feature=+simd128", false),
        ("sign extension", "clang: -msign-ext; Rust: -C target-feature=+sign-ext", true),
        ("saturating float", "clang: -mnontrapping-fptoint; Rust: -C target-feature=+nontrapping-fptoint", true),
        ("bulk memory", "clang: -mbulk-memory; Rust: -C target-feature=+bulk-memory", true),
        ("multi-value", "clang: -mmultivalue; Rust: -C target-feature=+multivalue", true),
        ("reference types", "clang: -mreference-types; Rust: -C target-feature=+reference-types", true),
        ("tail calls", "clang: -mtail-call; Rust: -C target-feature=+tail-call", false),
        ("threads", "clang: -matomics; Rust: -C target-feature=+atomics", false),
    ];
    flags
        .into_iter()
        .find(|(feature, _, _)| message.contains(feature))
        .map(|(_, flag, by_default)| (flag, by_default))
}
