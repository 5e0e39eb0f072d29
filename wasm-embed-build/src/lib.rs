//! Build WebAssembly guests into a firmware, from its `build.rs`.
//!
//! The common case needs no configuration. List the guest crates in the firmware's
//! `Cargo.toml`:
//!
//! ```toml
//! [package.metadata.wasm-embed]
//! guests = ["../guests/add"]
//! ```
//!
//! and call [`build`] from `build.rs`:
//!
//! ```no_run
//! fn main() {
//!     wasm_embed_build::build();
//! }
//! ```
//!
//! Each guest goes through the stages in order, each a module of this crate:
//! [`locate`] (find the crate, check it is a `cdylib`), [`compile`] (nested
//! `cargo build` for `wasm32v1-none` with build-std), [`strip`] (custom sections),
//! [`optimize`] (`wasm-opt -Oz`), [`pages`] (linear memory cut to exactly what the
//! guest uses, in 1-byte pages), [`stack`] (the most Pulley stack a call into the guest
//! can use, read from its compiled code), [`precompile`] (Wasmtime, with the
//! configuration the runtime also uses; an unchanged guest's `.cwasm` is reused) and
//! [`emit`] (the `.cwasm` files and a Rust module of
//! [`wasm_embed::Guest`]s, included with `wasm_embed::include_guests!()`) and
//! [`report`] (the sizes of every stage, as JSON).
//! Guests of one workspace are compiled by one nested cargo, which shares the outer
//! build's jobserver. Cargo is told to rerun the build script only when a file the
//! guest's build read changes.

pub mod bindings;
mod cargo;
pub mod compile;
pub mod emit;
mod error;
pub mod locate;
pub mod optimize;
pub mod pages;
pub mod precompile;
pub mod report;
mod reuse;
pub mod stack;
pub mod strip;

use std::path::{Path, PathBuf};

pub use emit::Sizes;
pub use error::Error;
pub use wasm_embed::{Profile, Settings, Target};

use compile::CompileOptions;
use emit::Precompiled;
use locate::{Located, Source};

const PAGE: u32 = 64 * 1024;

/// Bytes of seed 001's add guest built by each kind of toolchain, measured with this
/// library (README), for the warning a stable build prints.
const NIGHTLY_ADD_WASM: usize = 102;
const STABLE_ADD_WASM: usize = 141;

/// The Pulley stack for a guest whose depth cannot be bounded.
const DEFAULT_PULLEY_STACK: usize = 4 * 1024;

/// Builds the guests listed in the firmware's `[package.metadata.wasm-embed]`, for use
/// as the whole of a `build.rs`. On failure it reports the error to Cargo and exits, so
/// the build stops with one clear message.
pub fn build() -> Output {
    Builder::new().run()
}

/// Reports `error` to Cargo and ends the build script.
pub fn fail(error: &Error) -> ! {
    cargo::fail(error)
}

/// Configures how guests are built, in the manner of `cc::Build`.
#[derive(Clone, Debug)]
pub struct Builder {
    guests: Vec<String>,
    manifest_dir: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    target: Option<Target>,
    guest_target_dir: Option<PathBuf>,
    stack_size: u32,
    initial_memory: u32,
    profile: Profile,
    max_wasm_stack: Option<usize>,
    toolchain: Option<String>,
    exact_memory: bool,
    skip: Option<bool>,
    fuel: Option<u64>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

/// What [`Builder::build`] produced.
#[derive(Clone, Debug)]
pub struct Output {
    /// The emitted Rust module.
    pub module: PathBuf,
    /// The settings the guests were precompiled with.
    pub settings: Settings,
    pub guests: Vec<BuiltGuest>,
    /// How many nested `cargo build`s ran: one per guest workspace.
    pub nested_builds: usize,
    /// The build's warnings, as Cargo shows them beside the build (a guest that keeps
    /// 64 KiB pages, a name that is not a Rust identifier, ...).
    pub warnings: Vec<String>,
}

/// One guest that went through the pipeline.
#[derive(Clone, Debug)]
pub struct BuiltGuest {
    pub name: String,
    pub sizes: Sizes,
    /// What the `pages` stage did to its linear memory.
    pub memory: pages::Memory,
    /// The most Pulley stack a call into it can use.
    pub stack: stack::Stack,
    /// Whether the last build's `.cwasm` was reused, the wasm and settings being the same.
    pub cwasm_reused: bool,
    /// The `.cwasm` file in the output directory.
    pub cwasm: PathBuf,
    /// The files whose change rebuilds this guest.
    pub inputs: Vec<PathBuf>,
}

impl Builder {
    /// A builder with the defaults: guests from the firmware's metadata (unless some are
    /// added with [`Builder::guest`]), output to `OUT_DIR`, and the `.cwasm` format of the
    /// firmware's target.
    pub fn new() -> Builder {
        Builder {
            guests: Vec::new(),
            manifest_dir: None,
            out_dir: None,
            target: None,
            guest_target_dir: None,
            stack_size: 4 * 1024,
            initial_memory: PAGE,
            profile: Profile::Size,
            max_wasm_stack: None,
            toolchain: None,
            exact_memory: true,
            skip: None,
            fuel: None,
        }
    }

    /// Skip building the guests and emit stubs whose loading fails with a clear error, so
    /// the firmware still type-checks (default: skip when `WASM_EMBED_SKIP` is set to
    /// anything but `0`, or under rust-analyzer or clippy).
    pub fn skip(&mut self, skip: bool) -> &mut Builder {
        self.skip = Some(skip);
        self
    }

    /// Bytes of shadow stack the linker gives each guest (default 4 KiB). It lives in
    /// the guest's linear memory, below its static data.
    pub fn stack_size(&mut self, bytes: u32) -> &mut Builder {
        self.stack_size = bytes;
        self
    }

    /// Bytes of linear memory the linker declares (default 64 KiB, one page); a multiple
    /// of 64 KiB that holds the stack. The `pages` stage then cuts it to what is used.
    pub fn initial_memory(&mut self, bytes: u32) -> &mut Builder {
        self.initial_memory = bytes;
        self
    }

    /// Optimize for size (the default) or keep names, address maps and symbols for
    /// debugging: `Builder::new().profile(Profile::Debug).run()`.
    pub fn profile(&mut self, profile: Profile) -> &mut Builder {
        self.profile = profile;
        self
    }

    /// Whether the `pages` stage cuts each guest's memory to its stack and data in 1-byte
    /// pages (default: yes). Off, guests keep whole 64 KiB pages.
    pub fn exact_memory(&mut self, exact: bool) -> &mut Builder {
        self.exact_memory = exact;
        self
    }

    /// Bytes of Pulley stack each guest call may use, allocated from the firmware's heap
    /// with each store; a deeper call traps. Default: the deepest any guest can reach,
    /// read from its compiled code, or 4 KiB when a guest recurses or calls through a
    /// table. A guest whose known depth exceeds a value set here is a build error.
    pub fn max_wasm_stack(&mut self, bytes: usize) -> &mut Builder {
        self.max_wasm_stack = Some(bytes);
        self
    }

    /// Bounds every call into a guest by `fuel` (about one unit per Wasm instruction): a
    /// guest that loops forever then traps with "out of fuel" instead of hanging the
    /// firmware. It compiles fuel checks into every guest, which makes them larger and
    /// slower (`./x size --levers`). A firmware can change the bound per guest at run time
    /// with `set_fuel_per_call`.
    pub fn fuel(&mut self, fuel: u64) -> &mut Builder {
        self.fuel = Some(fuel);
        self
    }

    /// Builds guests with this rustup toolchain (say `nightly-2026-05-20`) rather than
    /// the one building the firmware: a firmware on stable can have nightly's smaller
    /// guests. It needs the `rust-src` component.
    pub fn toolchain(&mut self, name: impl Into<String>) -> &mut Builder {
        self.toolchain = Some(name.into());
        self
    }

    /// Like [`Builder::build`], but for the whole of a `build.rs`: on failure it reports
    /// the error to Cargo and exits.
    pub fn run(&self) -> Output {
        self.build().unwrap_or_else(|error| fail(&error))
    }

    /// Adds a guest: the path of its crate (relative to the firmware's directory) or the
    /// name of a package in the firmware's workspace.
    pub fn guest(&mut self, spec: impl Into<String>) -> &mut Builder {
        self.guests.push(spec.into());
        self
    }

    /// The directory relative paths are resolved against and whose `Cargo.toml` is read
    /// for metadata (default: `CARGO_MANIFEST_DIR`).
    pub fn manifest_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Builder {
        self.manifest_dir = Some(dir.into());
        self
    }

    /// Where the `.cwasm` files and the module go (default: `OUT_DIR`).
    pub fn out_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Builder {
        self.out_dir = Some(dir.into());
        self
    }

    /// The `.cwasm` format (default: from the firmware's pointer width).
    pub fn target(&mut self, target: Target) -> &mut Builder {
        self.target = Some(target);
        self
    }

    /// The nested guest build's target directory (default: `wasm-embed/` beside the
    /// firmware's own target directory, so the guests' `core` is built once).
    pub fn guest_target_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Builder {
        self.guest_target_dir = Some(dir.into());
        self
    }

    /// Runs every stage for every guest, writes the module and, inside a build script,
    /// tells Cargo which files to watch.
    pub fn build(&self) -> Result<Output, Error> {
        let mut cargo = cargo::Directives::new(cargo::var_os("TARGET").is_some() && cargo::var_os("OUT_DIR").is_some());
        let in_build_script = cargo.in_build_script();
        let manifest_dir = match &self.manifest_dir {
            Some(dir) => dir.clone(),
            None => env_path("CARGO_MANIFEST_DIR")?,
        };
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => env_path("OUT_DIR")?,
        };
        let target = match self.target {
            Some(target) => target,
            None => firmware_target()?,
        };
        let settings = Settings {
            profile: self.profile,
            fuel: self.fuel,
            ..Settings::new(target)
        };
        let keep_names = self.profile == Profile::Debug;
        check_memory(self.stack_size, self.initial_memory)?;
        let skip = match self.skip {
            Some(skip) => skip.then(|| "Builder::skip".to_owned()),
            None => skip_reason(cargo::var),
        };
        let mut watched = Vec::new();
        let specs = if self.guests.is_empty() {
            let manifest = manifest_dir.join("Cargo.toml");
            watched.push(manifest.clone());
            guests_from_metadata(&manifest)?
        } else {
            self.guests.clone()
        };
        let toolchain = match (&skip, &self.toolchain) {
            (Some(_), _) => None,
            (None, Some(name)) => Some(compile::Toolchain::rustup(name)?),
            (None, None) => Some(compile::Toolchain::current()?),
        };
        if let Some(toolchain) = toolchain.as_ref().filter(|t| !t.nightly) {
            cargo.warning(format!(
                "guests are built with `{}`, a stable toolchain, against the prebuilt {} library: \
                 they come out larger (seed 001's add guest: {STABLE_ADD_WASM} B of wasm instead of {NIGHTLY_ADD_WASM}); \
                 for the small build install a nightly with rust-src and call Builder::toolchain(\"nightly\")",
                toolchain.name,
                compile::WASM_TARGET
            ));
        }
        // A skipped build compiles nothing, so it needs no toolchain for wasm.
        let options = toolchain.map(|toolchain| CompileOptions {
            toolchain,
            cargo_flags: if in_build_script { compile::outer_cargo_flags() } else { Vec::new() },
            target_dir: match &self.guest_target_dir {
                Some(dir) => dir.clone(),
                None => default_guest_target_dir(&out_dir),
            },
            stack_size: self.stack_size,
            initial_memory: self.initial_memory,
            keep_names,
        });
        std::fs::create_dir_all(&out_dir).map_err(error::io(&out_dir))?;

        let mut located: Vec<Located> = Vec::new();
        for spec in &specs {
            let guest = locate::locate(spec, &manifest_dir)?;
            if located.iter().any(|g| g.name == guest.name) {
                return Err(Error::DuplicateGuest { name: guest.name });
            }
            located.push(guest);
        }
        let (compiled, nested_builds) = match &options {
            Some(options) => compile_all(&located, options, &settings)?,
            None => (vec![None; located.len()], 0),
        };
        let mut guests: Vec<(Located, Option<Prepared>)> = Vec::new();
        for (guest, compiled) in located.into_iter().zip(compiled) {
            let prepared = match compiled {
                Some(compiled) => Some(self.prepare(&guest, compiled, &settings, &out_dir, &mut cargo)?),
                None => None,
            };
            guests.push((guest, prepared));
        }
        let settings = Settings {
            max_wasm_stack: self.pulley_stack(&guests, &mut cargo)?,
            ..settings
        };

        let mut built = Vec::new();
        let mut precompiled: Vec<Precompiled> = Vec::new();
        for (guest, prepared) in guests {
            let Some(prepared) = prepared else {
                precompiled.push(Precompiled {
                    max_wasm_stack: settings.max_wasm_stack,
                    interface: skipped_interface(&guest),
                    origin: origin(&guest),
                    name: guest.name,
                    images: None,
                    sizes: Sizes::default(),
                });
                continue;
            };
            let (cwasm, cwasm_reused) = reuse::reuse_or(&out_dir, &format!("{}.cwasm", guest.name), &prepared.key(&settings), || {
                precompile::precompile(&guest.name, &settings, &prepared.wasm)
            })?;
            let sizes = Sizes {
                cwasm: cwasm.len(),
                ..prepared.sizes
            };
            let max_wasm_stack = self.stack_of(&prepared.stack);
            built.push(BuiltGuest {
                name: guest.name.clone(),
                sizes,
                memory: prepared.memory,
                stack: prepared.stack,
                cwasm_reused,
                cwasm: out_dir.join(format!("{}.cwasm", guest.name)),
                inputs: prepared.inputs,
            });
            precompiled.push(Precompiled {
                max_wasm_stack,
                origin: origin(&guest),
                name: guest.name,
                images: Some(emit::Images {
                    wasm: prepared.wasm,
                    cwasm,
                }),
                sizes,
                interface: prepared.interface,
            });
        }
        let module = emit::emit(&out_dir, &settings, &precompiled)?;
        report::report(&out_dir, &settings, &built)?;
        if let Some(reason) = &skip {
            cargo.warning(format!("guests not built ({reason}): loading one returns an error; unset it to build them"));
        }
        watched.extend(built.iter().flat_map(|g| g.inputs.iter().cloned()));
        Ok(Output {
            module,
            settings,
            guests: built,
            nested_builds,
            warnings: cargo.finish(&watched),
        })
    }

    /// Every stage after compilation up to precompilation, for one guest: its final wasm
    /// and what it needs.
    fn prepare(
        &self,
        guest: &Located,
        compiled: compile::Compiled,
        settings: &Settings,
        out_dir: &Path,
        cargo: &mut cargo::Directives,
    ) -> Result<Prepared, Error> {
        let name = &guest.name;
        let keep_names = self.profile == Profile::Debug;
        let wasm = compiled.wasm;
        let stripped = strip::strip(name, &wasm, keep_names)?;
        let optimized = optimize::optimize(name, &stripped, out_dir, keep_names)?;
        let (sized, memory) = if self.exact_memory {
            pages::shrink_memory(name, &optimized)?
        } else {
            let reason = "Builder::exact_memory is off";
            (optimized.clone(), pages::Memory::Standard { reason })
        };
        if let (pages::Memory::Standard { reason }, true) = (&memory, self.exact_memory) {
            // Only a module not laid out by Rust's linker settings lacks `__heap_base`.
            let hint = if guest.krate().is_none() && *reason == pages::NO_HEAP_BASE {
                " (link it with `--export=__heap_base`, for clang `-Wl,--export=__heap_base`, to give it exact memory)"
            } else {
                ""
            };
            cargo.warning(format!(
                "guest `{name}` keeps 64 KiB memory pages because {reason}{hint}; each page costs the firmware 64 KiB of heap"
            ));
        }
        let key = Prepared::key_for(&sized, settings);
        let (stack, _) = reuse::reuse_or(out_dir, &format!("{name}.stack"), &key, || {
            stack::pulley_stack(name, settings, &sized).map(|s| s.to_string().into_bytes())
        })?;
        // Only a damaged file from an earlier build fails to parse: work it out again.
        let stack = match String::from_utf8_lossy(&stack).parse() {
            Ok(stack) => stack,
            Err(_) => stack::pulley_stack(name, settings, &sized)?,
        };
        // The final wasm says what the firmware must provide and may call (wasm-opt drops
        // unused imports); names come from the guest's Rust source, or from the `name`
        // section of a prebuilt module as it was given.
        let names = match guest.krate() {
            Some(krate) => bindings::from_source(&krate.lib_path),
            None => bindings::from_wasm(name, &wasm)?,
        };
        let interface = bindings::merge(bindings::from_wasm(name, &sized)?, &names);
        let mut inputs = compiled.sources;
        if let Some(krate) = guest.krate() {
            inputs.extend(bindings::source_files(&krate.lib_path));
            inputs.push(krate.manifest_path.clone());
            inputs.push(krate.workspace_root.join("Cargo.toml"));
            inputs.push(krate.workspace_root.join("Cargo.lock"));
        }
        for warning in bindings::check_names(name, &interface)? {
            cargo.warning(warning);
        }
        inputs.sort();
        inputs.dedup();
        Ok(Prepared {
            sizes: Sizes {
                compiled: wasm.len(),
                stripped: stripped.len(),
                optimized: optimized.len(),
                cwasm: 0,
            },
            wasm: sized,
            memory,
            stack,
            inputs,
            interface,
        })
    }

    /// The Pulley stack the engine gives each call: what the user set, or else the
    /// deepest any guest can reach, or the default when some guest's depth is unknown.
    fn pulley_stack(&self, guests: &[(Located, Option<Prepared>)], cargo: &mut cargo::Directives) -> Result<usize, Error> {
        let needs = guests
            .iter()
            .filter_map(|(guest, prepared)| Some((&guest.name, &prepared.as_ref()?.stack)));
        let mut deepest = 16;
        for (name, stack) in needs {
            match (stack, self.max_wasm_stack) {
                (&stack::Stack::Bounded { bytes }, Some(given)) if bytes > given => {
                    return Err(Error::StackTooSmall {
                        guest: name.clone(),
                        needs: bytes,
                        given,
                    });
                }
                (stack::Stack::Unbounded { reason }, None) => {
                    cargo.warning(format!(
                        "guest `{name}` gets the default {DEFAULT_PULLEY_STACK} bytes of Pulley stack because \
                         its depth cannot be bounded: {reason}; set Builder::max_wasm_stack to choose"
                    ));
                }
                _ => {}
            }
            deepest = deepest.max(self.stack_of(stack));
        }
        Ok(deepest)
    }

    /// The Pulley stack one guest gets in an engine of its own (`GUEST.settings()`):
    /// Wasmtime does not check `max_wasm_stack` when it loads a `.cwasm`, so each guest's
    /// engine can allocate only what that guest needs.
    fn stack_of(&self, stack: &stack::Stack) -> usize {
        match (stack, self.max_wasm_stack) {
            (_, Some(given)) => given,
            // Pulley rounds its stack up to 16 bytes; Wasmtime refuses 0.
            (&stack::Stack::Bounded { bytes }, None) => bytes.next_multiple_of(16).max(16),
            (stack::Stack::Unbounded { .. }, None) => DEFAULT_PULLEY_STACK,
        }
    }
}

/// A guest after every stage but precompilation.
#[derive(Clone, Debug)]
struct Prepared {
    wasm: Vec<u8>,
    sizes: Sizes,
    memory: pages::Memory,
    stack: stack::Stack,
    inputs: Vec<PathBuf>,
    interface: bindings::Interface,
}

impl Prepared {
    /// What a precompiled artifact of `wasm` depends on: its bytes, the settings, the
    /// Wasmtime version and configuration, and this library's own code (through the
    /// build script's binary, which Cargo relinks when any of it changes).
    fn key_for(wasm: &[u8], settings: &Settings) -> Vec<u8> {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut hasher = DefaultHasher::new();
        if let Ok(engine) = wasm_embed::engine(settings) {
            engine.precompile_compatibility_hash().hash(&mut hasher);
        }
        let binary = std::env::current_exe().and_then(std::fs::metadata).and_then(|m| m.modified());
        let mut key = format!("{settings:?} {:x} {binary:?}\n", hasher.finish()).into_bytes();
        key.extend_from_slice(wasm);
        key
    }

    fn key(&self, settings: &Settings) -> Vec<u8> {
        Prepared::key_for(&self.wasm, settings)
    }
}

/// Why guests should not be built in this build, if they should not: the user asked, or
/// the build only checks the firmware (rust-analyzer sets its binary as `RUSTC_WRAPPER`,
/// clippy sets `clippy-driver` as `RUSTC_WORKSPACE_WRAPPER`).
fn skip_reason(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let file_name = |name: &str| {
        var(name).map(|path| Path::new(&path).file_name().unwrap_or_default().to_string_lossy().into_owned())
    };
    if var("WASM_EMBED_SKIP").is_some_and(|v| !v.is_empty() && v != "0") {
        Some("WASM_EMBED_SKIP is set".to_owned())
    } else if var("RA_RUSTC_WRAPPER").is_some() || file_name("RUSTC_WRAPPER").is_some_and(|f| f.starts_with("rust-analyzer")) {
        Some("rust-analyzer is checking the firmware".to_owned())
    } else if file_name("RUSTC_WORKSPACE_WRAPPER").is_some_and(|f| f.starts_with("clippy-driver")) {
        Some("clippy is checking the firmware".to_owned())
    } else {
        None
    }
}

/// Refuses a stack and initial memory that rust-lld would reject with a less helpful
/// message (seed 001's `--initial-memory=65356` among them).
fn check_memory(stack_size: u32, initial_memory: u32) -> Result<(), Error> {
    if initial_memory == 0 || initial_memory % PAGE != 0 {
        let up = initial_memory.div_ceil(PAGE).max(1) * PAGE;
        return Err(Error::BadMemory {
            message: format!(
                "initial memory {initial_memory} is not a multiple of the 64 KiB Wasm page (65536); use {up}"
            ),
        });
    }
    if stack_size >= initial_memory {
        return Err(Error::BadMemory {
            message: format!(
                "a stack of {stack_size} bytes does not fit in {initial_memory} bytes of initial memory; \
                 raise initial_memory or lower stack_size"
            ),
        });
    }
    Ok(())
}

/// Stage 2 for every guest: one nested cargo per workspace of guest crates, in the order
/// the guests are listed, and every prebuilt `.wasm` read; each guest's wasm checked for
/// the firmware's engine. Also how many nested builds ran.
fn compile_all(
    located: &[Located],
    options: &CompileOptions,
    settings: &Settings,
) -> Result<(Vec<Option<compile::Compiled>>, usize), Error> {
    let mut compiled: Vec<Option<compile::Compiled>> = vec![None; located.len()];
    let mut roots: Vec<&Path> = Vec::new();
    for krate in located.iter().filter_map(Located::krate) {
        if !roots.contains(&krate.workspace_root.as_path()) {
            roots.push(&krate.workspace_root);
        }
    }
    for &root in &roots {
        let indices: Vec<usize> = (0..located.len())
            .filter(|&i| located[i].krate().is_some_and(|k| k.workspace_root == root))
            .collect();
        let group: Vec<locate::GuestCrate> = indices.iter().filter_map(|&i| located[i].krate().cloned()).collect();
        for (index, built) in indices.into_iter().zip(compile::compile(&group, options)?) {
            compile::check(&located[index].name, &built.wasm, settings)?;
            compiled[index] = Some(built);
        }
    }
    for (guest, slot) in located.iter().zip(&mut compiled) {
        if let Source::Wasm(path) = &guest.source {
            *slot = Some(compile::Compiled {
                wasm: compile::read_prebuilt(&guest.name, path, settings)?,
                sources: vec![path.clone()],
            });
        }
    }
    Ok((compiled, roots.len()))
}

/// What a skipped build's bindings come from: a crate's Rust source, or a prebuilt file
/// itself, which needs no build to read.
fn skipped_interface(guest: &Located) -> bindings::Interface {
    match &guest.source {
        Source::Crate(krate) => bindings::from_source(&krate.lib_path),
        Source::Wasm(path) => std::fs::read(path)
            .ok()
            .and_then(|wasm| bindings::from_wasm(&guest.name, &wasm).ok())
            .unwrap_or_default(),
    }
}

/// Where a guest came from, for the emitted module's documentation.
fn origin(guest: &Located) -> String {
    match &guest.source {
        Source::Crate(krate) => format!("built from `{}`", krate.manifest_path.display()),
        Source::Wasm(path) => format!("prebuilt, from `{}`", path.display()),
    }
}

fn env_path(variable: &'static str) -> Result<PathBuf, Error> {
    cargo::var_os(variable)
        .map(PathBuf::from)
        .ok_or(Error::NotInBuildScript { variable })
}

/// The `.cwasm` format for the target Cargo is building the firmware for.
fn firmware_target() -> Result<Target, Error> {
    let variable = |name: &'static str| cargo::var(name).ok_or(Error::NotInBuildScript { variable: name });
    let width: u32 = variable("CARGO_CFG_TARGET_POINTER_WIDTH")?.parse().unwrap_or(0);
    let little = variable("CARGO_CFG_TARGET_ENDIAN")? == "little";
    Target::for_pointer_width(width)
        .filter(|_| little)
        .ok_or_else(|| Error::UnsupportedTarget {
            triple: cargo::var("TARGET").unwrap_or_default(),
        })
}

/// `<target dir>/wasm-embed`, found by walking up from `OUT_DIR` to the directory Cargo
/// marks with `CACHEDIR.TAG`; `OUT_DIR/guest-target` if there is none.
fn default_guest_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map_or_else(|| out_dir.join("guest-target"), |dir| dir.join("wasm-embed"))
}

/// Reads `guests = [...]` from `[package.metadata.wasm-embed]` of `manifest`.
fn guests_from_metadata(manifest: &Path) -> Result<Vec<String>, Error> {
    let bad = |message: &str| Error::BadMetadata {
        manifest: manifest.to_owned(),
        message: message.to_owned(),
    };
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(manifest)
        .no_deps()
        .exec()
        .map_err(|e| bad(&e.to_string()))?;
    let package = metadata
        .packages
        .iter()
        .find(|p| p.manifest_path.as_std_path() == manifest)
        .or_else(|| metadata.root_package())
        .ok_or_else(|| bad("it is not a package manifest"))?;
    let Some(section) = package.metadata.get("wasm-embed") else {
        return Err(Error::NoGuests {
            manifest: manifest.to_owned(),
        });
    };
    let guests = section
        .get("guests")
        .and_then(|g| g.as_array())
        .ok_or_else(|| bad("`guests` is missing or not a list"))?;
    let guests: Vec<String> = guests
        .iter()
        .map(|g| g.as_str().map(str::to_owned).ok_or_else(|| bad("every entry of `guests` must be a string")))
        .collect::<Result<_, _>>()?;
    if guests.is_empty() {
        return Err(Error::NoGuests {
            manifest: manifest.to_owned(),
        });
    }
    Ok(guests)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn guests_are_skipped_on_request_and_under_rust_analyzer_and_clippy() {
        assert_eq!(skip_reason(env(&[])), None);
        assert_eq!(skip_reason(env(&[("WASM_EMBED_SKIP", "0")])), None);
        assert_eq!(skip_reason(env(&[("WASM_EMBED_SKIP", "1")])).as_deref(), Some("WASM_EMBED_SKIP is set"));
        assert_eq!(
            skip_reason(env(&[("RUSTC_WRAPPER", "/home/me/.vscode/rust-analyzer")])).as_deref(),
            Some("rust-analyzer is checking the firmware")
        );
        assert_eq!(
            skip_reason(env(&[("RUSTC_WORKSPACE_WRAPPER", "/r/toolchains/n/bin/clippy-driver")])).as_deref(),
            Some("clippy is checking the firmware")
        );
        assert_eq!(skip_reason(env(&[("RUSTC_WRAPPER", "/usr/bin/sccache")])), None);
    }

    #[test]
    fn memory_the_linker_would_reject_is_refused_first() {
        assert!(check_memory(4096, 65536).is_ok());
        let seed = check_memory(4096, 65356).unwrap_err().to_string();
        assert_eq!(
            seed,
            "wasm-embed-build: initial memory 65356 is not a multiple of the 64 KiB Wasm page (65536); use 65536"
        );
        let stack = check_memory(70000, 65536).unwrap_err().to_string();
        assert!(stack.contains("a stack of 70000 bytes does not fit in 65536 bytes"), "{stack}");
        assert!(stack.ends_with("raise initial_memory or lower stack_size"), "{stack}");
    }
}
