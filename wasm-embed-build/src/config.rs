//! What a build is asked to do: the [`Builder`], its defaults from Cargo's environment,
//! and the firmware's `[package.metadata.wasm-embed]`. It resolves all of them into a
//! [`Plan`] that the pipeline carries out.

use std::path::{Path, PathBuf};

use wasm_embed::{Profile, Settings, Target};

use crate::cargo::{self, Directives};
use crate::compile::{self, CompileOptions};
use crate::pipeline::{self, Plan};
use crate::{Error, Output};

const PAGE: u32 = 64 * 1024;

/// Bytes of the add example's guest built by each kind of toolchain, for the warning a
/// stable build prints: `cargo test -p wasm-embed-build --test pipeline a_stable --
/// --nocapture` prints them.
const NIGHTLY_ADD_WASM: usize = 122;
const STABLE_ADD_WASM: usize = 141;

/// Builds the guests listed in the firmware's `[package.metadata.wasm-embed]` with the
/// defaults, for use as the whole of a `build.rs`. On failure it reports the error to
/// Cargo in one line and ends the build script.
pub fn build() -> Output {
    Builder::new().compile()
}

/// Configures how guests are built, in the manner of `cc::Build`: every setting has a
/// default taken from Cargo's environment, so `Builder::new().compile()` is what
/// [`build`] does.
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
    fuel_yield_interval: Option<u64>,
    async_stack_size: Option<usize>,
    update_key: Option<PathBuf>,
    development_key: bool,
    update_dir: Option<PathBuf>,
    versions: Vec<(String, String)>,
    cargo_metadata: bool,
    stack_guard_size: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
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
            fuel_yield_interval: None,
            async_stack_size: None,
            update_key: None,
            development_key: false,
            update_dir: None,
            versions: Vec::new(),
            cargo_metadata: true,
            stack_guard_size: crate::stack_guard::DEFAULT_SIZE,
        }
    }

    /// Whether to tell Cargo, inside a build script, which files and variables rerun it
    /// and what to warn about (default: yes), as `cc::Build::cargo_metadata` does. Off
    /// for a second build in the same script whose inputs the script itself writes:
    /// Cargo would take them for changed at every build.
    pub fn cargo_metadata(&mut self, emit: bool) -> &mut Builder {
        self.cargo_metadata = emit;
        self
    }

    /// Lets the firmware install updates of its guests signed with the key whose public
    /// half is in `public_key_file` (`cargo wasm-embed keygen` makes the pair; the
    /// metadata's `update-key = "path"` does the same). The build then writes an update
    /// package per guest (see [`Builder::update_dir`]), and the emitted module holds
    /// `guests::UPDATE_KEY` and each guest's `UPDATABLE`, which need wasm-embed's
    /// `update` feature. Packages are signed by `cargo wasm-embed sign`, or by the build
    /// itself when `WASM_EMBED_SIGNING_KEY` names the secret key file (for development:
    /// the secret key is read, never copied anywhere).
    pub fn update_key(&mut self, public_key_file: impl Into<PathBuf>) -> &mut Builder {
        self.update_key = Some(public_key_file.into());
        self
    }

    /// Turns on updates with a development key pair of this build's own, made on first
    /// use in the target directory (`target/<triple>/wasm-embed/development-key/`), never committed:
    /// every package is signed with it, so an update example runs with no set-up. A
    /// release uses [`Builder::update_key`] and `cargo wasm-embed sign` instead.
    pub fn development_update_key(&mut self) -> &mut Builder {
        self.development_key = true;
        self
    }

    /// Where update packages go (default: `wasm-embed-updates/` beside the firmware's
    /// binary, `target/<triple>/<profile>/wasm-embed-updates`).
    pub fn update_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Builder {
        self.update_dir = Some(dir.into());
        self
    }

    /// The version `guest`'s update package records (`major.minor.patch`), instead of
    /// its crate's; a prebuilt guest otherwise gets the firmware's version.
    pub fn guest_version(&mut self, guest: impl Into<String>, version: impl Into<String>) -> &mut Builder {
        self.versions.push((guest.into(), version.into()));
        self
    }

    /// Adds a guest, as `guests` in the metadata lists one: the path of a guest crate's
    /// directory (relative to the firmware's directory), the name of a package in the
    /// firmware's workspace, or the path of a prebuilt `.wasm` file.
    pub fn guest(&mut self, spec: impl Into<String>) -> &mut Builder {
        self.guests.push(spec.into());
        self
    }

    /// Bounds every call into a guest by `fuel`: a guest that loops forever then traps
    /// with "out of fuel" instead of hanging the firmware. Wasmtime's default costs apply
    /// (one unit per Wasm instruction but `nop`, `drop` and the block structure, and one
    /// per function entered). It compiles fuel checks into every guest, which makes
    /// them larger and slower; the firmware can change the bound per guest at run time
    /// (`set_fuel_per_call` on its handle).
    pub fn fuel(&mut self, fuel: u64) -> &mut Builder {
        self.fuel = Some(fuel);
        self
    }

    /// Async calls (`*_async` on a handle made with `new_async`) give the executor back
    /// control after every `fuel` units of fuel, and go on at the next poll: a time slice
    /// for other tasks. A call still ends in "out of fuel" at [`Builder::fuel`], which this
    /// needs. The smaller, the more often other tasks run, and the more of the guest's
    /// time goes to switching stacks (docs/async.md in the repository gives the cost). Off by
    /// default: an async call then gives control back only where an import awaits. Needs
    /// the `async` feature.
    #[cfg(feature = "async")]
    pub fn fuel_yield_interval(&mut self, fuel: u64) -> &mut Builder {
        self.fuel_yield_interval = Some(fuel);
        self
    }

    /// Bytes of native stack each async call runs on (its fiber), from the heap, kept with
    /// the guest's handle: Wasmtime's frames, Pulley's interpreter, the futures of the
    /// imports the guest awaits and the interrupts that arrive while it runs (not the
    /// guest's own stack, which is the Pulley stack).
    /// Default 4 KiB, the smallest Wasmtime makes; an import whose future keeps large
    /// buffers needs more. Needs the `async` feature.
    #[cfg(feature = "async")]
    pub fn async_stack_size(&mut self, bytes: usize) -> &mut Builder {
        self.async_stack_size = Some(bytes);
        self
    }

    /// Optimize for size (the default), or keep names, address maps and symbols so that
    /// a trap names the guest's function: `Builder::new().profile(Profile::Debug)`.
    pub fn profile(&mut self, profile: Profile) -> &mut Builder {
        self.profile = profile;
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

    /// Whether each guest's memory is cut to its stack and data, in 1-byte pages
    /// (default: yes). Off, guests keep whole 64 KiB pages.
    pub fn exact_memory(&mut self, exact: bool) -> &mut Builder {
        self.exact_memory = exact;
        self
    }

    /// Bytes of shadow stack the linker gives each guest crate (default 4 KiB). It lives
    /// in the guest's linear memory, below its static data.
    pub fn stack_size(&mut self, bytes: u32) -> &mut Builder {
        self.stack_size = bytes;
        self
    }

    /// Bytes of linear memory the linker declares for each guest crate (default 64 KiB,
    /// one page): a multiple of 64 KiB that holds the stack. The build then cuts the
    /// memory to what is used.
    pub fn initial_memory(&mut self, bytes: u32) -> &mut Builder {
        self.initial_memory = bytes;
        self
    }

    /// Builds guest crates with this rustup toolchain (say `nightly-2026-05-20`) rather
    /// than the one building the firmware: a firmware on stable can have nightly's
    /// smaller guests. It needs the `rust-src` component.
    pub fn toolchain(&mut self, name: impl Into<String>) -> &mut Builder {
        self.toolchain = Some(name.into());
        self
    }

    /// Skip building the guests and emit stubs whose loading fails with a clear error, so
    /// the firmware still type-checks (default: skip when `WASM_EMBED_SKIP` is set to
    /// anything but `0`, or under rust-analyzer or clippy).
    pub fn skip(&mut self, skip: bool) -> &mut Builder {
        self.skip = Some(skip);
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

    /// The `.cwasm` format (default: from the firmware's pointer width and endianness).
    pub fn target(&mut self, target: Target) -> &mut Builder {
        self.target = Some(target);
        self
    }

    /// The guest crates' own target directory (default: `wasm-embed/` inside the
    /// firmware's target directory, so their `core` is built once for all firmwares).
    pub fn guest_target_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Builder {
        self.guest_target_dir = Some(dir.into());
        self
    }

    /// Bytes of the main stack's guard (default 4096), which the build links when the
    /// firmware's wasm-embed has the `stack-guard` feature: a power of two of at least
    /// 256, larger than the firmware's largest stack frame.
    pub fn stack_guard_size(&mut self, bytes: usize) -> &mut Builder {
        self.stack_guard_size = bytes;
        self
    }

    /// Builds every guest and writes the module, for the whole of a `build.rs`: on
    /// failure it reports the error to Cargo in one line and ends the build script.
    pub fn compile(&self) -> Output {
        self.try_compile().unwrap_or_else(|error| cargo::fail(&error))
    }

    /// Builds every guest and writes the module; inside a build script it also tells
    /// Cargo which files and variables to watch.
    pub fn try_compile(&self) -> Result<Output, Error> {
        let mut cargo = Directives::new(self.cargo_metadata && in_build_script());
        let plan = self.plan(&mut cargo)?;
        // Cargo sets the variable for the firmware's build script when its wasm-embed has
        // `stack-guard`.
        if in_build_script() && cargo::var_os("DEP_WASM_EMBED_STACK_GUARD").is_some() {
            let arch = cargo::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
            let script = crate::stack_guard::write(&plan.out_dir, &arch, self.stack_guard_size)?;
            cargo.link_script(&script);
        }
        pipeline::run(plan, cargo)
    }

    /// This configuration with every default resolved.
    fn plan(&self, cargo: &mut Directives) -> Result<Plan, Error> {
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
        check_memory(self.stack_size, self.initial_memory)?;
        check_async(self.fuel, self.fuel_yield_interval, self.async_stack_size)?;
        let skip = match self.skip {
            Some(skip) => skip.then(|| "Builder::skip".to_owned()),
            None => skip_reason(cargo::var),
        };
        let mut watched = Vec::new();
        // The metadata's `update-key` counts whether the guests come from it or from
        // `Builder::guest`: a firmware that names its guests in build.rs still gets the
        // key its Cargo.toml names.
        let manifest = manifest_dir.join("Cargo.toml");
        let (listed, metadata_key) = match self.guests.is_empty() || manifest.is_file() {
            true => {
                watched.push(manifest.clone());
                read_metadata(&manifest, !self.guests.is_empty())?
            }
            false => (Vec::new(), None),
        };
        let specs = match self.guests.is_empty() {
            true if listed.is_empty() => return Err(Error::NoGuests { manifest }),
            true => listed,
            false => self.guests.clone(),
        };
        let update_key = self.update_key.clone().or(metadata_key.map(|key| manifest_dir.join(key)));
        let updates = match (update_key, self.development_key) {
            (Some(path), _) => Some(self.updates(&path, None, &out_dir, &mut watched)?),
            (None, true) => {
                let (public, secret) = crate::package::development_key(&default_guest_target_dir(&out_dir))?;
                if cargo::var("PROFILE").as_deref() == Some("release") {
                    cargo.warning(format!(
                        "a release build whose guests accept updates signed with the development key in {}: \
                         anyone with this target directory can sign them; build releases with Builder::update_key \
                         and sign with `cargo wasm-embed sign`",
                        secret.parent().unwrap_or(&secret).display()
                    ));
                }
                let mut updates = self.updates(&public, Some(secret), &out_dir, &mut watched)?;
                updates.development = true;
                Some(updates)
            }
            (None, false) => None,
        };
        let toolchain = match (&skip, &self.toolchain) {
            (Some(_), _) => None,
            (None, Some(name)) => Some(compile::Toolchain::rustup(name)?),
            (None, None) => Some(compile::Toolchain::current()?),
        };
        if let Some(toolchain) = toolchain.as_ref().filter(|t| !t.nightly) {
            cargo.warning(format!(
                "guests are built with `{}`, a stable toolchain, against the prebuilt {} library: \
                 they come out larger (the add example's guest: {STABLE_ADD_WASM} B of wasm instead of \
                 {NIGHTLY_ADD_WASM}); for the small build install a nightly with rust-src and call \
                 Builder::toolchain(\"nightly\")",
                toolchain.name,
                compile::WASM_TARGET
            ));
        }
        if let Some(reason) = &skip {
            cargo.warning(format!("guests not built ({reason}): loading one returns an error; unset it to build them"));
        }
        // A skipped build compiles nothing, so it needs no toolchain for wasm.
        let compile = toolchain.map(|toolchain| CompileOptions {
            toolchain,
            cargo_flags: if in_build_script() { compile::outer_cargo_flags() } else { Vec::new() },
            target_dir: self.guest_target_dir.clone().unwrap_or_else(|| default_guest_target_dir(&out_dir)),
            stack_size: self.stack_size,
            initial_memory: self.initial_memory,
            keep_names: self.profile == Profile::Debug,
        });
        Ok(Plan {
            specs,
            manifest_dir,
            out_dir,
            settings: Settings {
                profile: self.profile,
                fuel: self.fuel,
                fuel_yield_interval: self.fuel_yield_interval,
                async_stack_size: self.async_stack_size.unwrap_or(Settings::new(target).async_stack_size),
                ..Settings::new(target)
            },
            compile,
            exact_memory: self.exact_memory,
            max_wasm_stack: self.max_wasm_stack,
            updates,
            watched,
        })
    }

    /// Updates for the public key in `key_file`.
    /// `signing` is the development key's secret file, which wins over the variable.
    fn updates(
        &self,
        key_file: &Path,
        signing: Option<PathBuf>,
        out_dir: &Path,
        watched: &mut Vec<PathBuf>,
    ) -> Result<crate::package::Updates, Error> {
        watched.push(key_file.to_owned());
        let key = crate::package::public_key(key_file)?;
        let signing = match signing.or_else(|| cargo::var_os(crate::package::SIGNING_KEY_VARIABLE).filter(|p| !p.is_empty()).map(PathBuf::from)) {
            Some(path) => {
                watched.push(path.clone());
                Some(crate::package::signing_key(&path, &key)?)
            }
            None => None,
        };
        Ok(crate::package::Updates {
            key,
            signing,
            development: false,
            dir: self.update_dir.clone().unwrap_or_else(|| default_update_dir(out_dir)),
            versions: self.versions.clone(),
            default_version: cargo::var("CARGO_PKG_VERSION").unwrap_or_else(|| "0.0.0".to_owned()),
        })
    }
}

/// `target/<triple>/<profile>/wasm-embed-updates`, beside the firmware's binary, when
/// `out_dir` is Cargo's `<profile>/build/<package>/out`; else inside `out_dir`.
fn default_update_dir(out_dir: &Path) -> PathBuf {
    let profile = out_dir
        .parent()
        .and_then(Path::parent)
        .filter(|build| build.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent);
    profile.unwrap_or(out_dir).join("wasm-embed-updates")
}

/// Whether this runs inside a build script.
fn in_build_script() -> bool {
    cargo::var_os("TARGET").is_some() && cargo::var_os("OUT_DIR").is_some()
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

/// Refuses async settings that Wasmtime would reject at run time, or that could never
/// run a guest.
fn check_async(fuel: Option<u64>, interval: Option<u64>, stack: Option<usize>) -> Result<(), Error> {
    let message = match (fuel, interval, stack) {
        (_, Some(0), _) => "a yield interval of 0 fuel would never run the guest; give Builder::fuel_yield_interval at least 1".to_owned(),
        (None, Some(interval), _) => format!(
            "Builder::fuel_yield_interval({interval}) counts fuel, and fuel is off; call Builder::fuel too"
        ),
        (_, _, Some(bytes)) if bytes < 4096 => format!(
            "an async stack of {bytes} bytes is below Wasmtime's smallest fiber (4096); give Builder::async_stack_size at least 4096"
        ),
        _ => return Ok(()),
    };
    Err(Error::BadAsync { message })
}

/// Refuses a stack and initial memory that rust-lld would reject with a less helpful
/// message (`--initial-memory=65356`, one digit short of a page, among them).
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

/// Reads `guests = [...]` and `update-key` from `[package.metadata.wasm-embed]` of
/// `manifest`. With `guests_given`, a manifest that is no package (a workspace's) has
/// nothing to add rather than being an error.
fn read_metadata(manifest: &Path, guests_given: bool) -> Result<(Vec<String>, Option<String>), Error> {
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
        .or_else(|| metadata.root_package());
    let package = match package {
        Some(package) => package,
        None if guests_given => return Ok((Vec::new(), None)),
        None => return Err(bad("it is not a package manifest")),
    };
    let update_key = match package.metadata.get("wasm-embed").and_then(|s| s.get("update-key")) {
        Some(key) => Some(key.as_str().ok_or_else(|| bad("`update-key` must be the path of a public key file"))?.to_owned()),
        None => None,
    };
    let guests = match package.metadata.get("wasm-embed") {
        Some(section) => guests_of(section, |feature| {
            cargo::var_os(&format!("CARGO_FEATURE_{}", feature.to_uppercase().replace('-', "_"))).is_some()
        })
        .map_err(|message| bad(&message))?,
        None => Vec::new(),
    };
    Ok((guests, update_key))
}

/// The guests a `[package.metadata.wasm-embed]` section lists: `guests`, then those
/// under each of its `features` that `feature_on` says the firmware turned on.
fn guests_of(section: &serde_json::Value, feature_on: impl Fn(&str) -> bool) -> Result<Vec<String>, String> {
    let strings = |list: &serde_json::Value, what: &str| -> Result<Vec<String>, String> {
        list.as_array()
            .ok_or_else(|| format!("`{what}` is not a list"))?
            .iter()
            .map(|g| g.as_str().map(str::to_owned).ok_or_else(|| format!("every entry of `{what}` must be a string")))
            .collect()
    };
    if section.get("guests").is_none() && section.get("features").is_none() {
        return Err("`guests` is missing".to_owned());
    }
    let mut guests = match section.get("guests") {
        Some(list) => strings(list, "guests")?,
        None => Vec::new(),
    };
    // A guest that only some builds need (a component guest needs the `component-model`
    // features) is listed under the firmware's feature that turns it on.
    if let Some(features) = section.get("features") {
        let features = features.as_object().ok_or("`features` is not a table of feature = [guests]")?;
        for (feature, list) in features {
            let listed = strings(list, &format!("features.{feature}"))?;
            if feature_on(feature) {
                guests.extend(listed);
            }
        }
    }
    Ok(guests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "async")]
    #[test]
    fn async_settings_that_cannot_work_are_one_line_errors_naming_the_fix() {
        let error = |builder: &mut Builder| {
            let dir = std::env::temp_dir();
            builder.manifest_dir(&dir).out_dir(&dir).target(Target::Pulley32);
            builder.try_compile().unwrap_err().to_string()
        };
        assert_eq!(
            error(Builder::new().fuel_yield_interval(2_000)),
            "wasm-embed-build: Builder::fuel_yield_interval(2000) counts fuel, and fuel is off; call Builder::fuel too"
        );
        assert_eq!(
            error(Builder::new().fuel(1_000).fuel_yield_interval(0)),
            "wasm-embed-build: a yield interval of 0 fuel would never run the guest; \
             give Builder::fuel_yield_interval at least 1"
        );
        assert_eq!(
            error(Builder::new().async_stack_size(1024)),
            "wasm-embed-build: an async stack of 1024 bytes is below Wasmtime's smallest fiber (4096); \
             give Builder::async_stack_size at least 4096"
        );
        assert!(check_async(Some(1_000), Some(100), Some(4096)).is_ok());
    }

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
        let one_digit_short = check_memory(4096, 65356).unwrap_err().to_string();
        assert_eq!(
            one_digit_short,
            "wasm-embed-build: initial memory 65356 is not a multiple of the 64 KiB Wasm page (65536); use 65536"
        );
        let stack = check_memory(70000, 65536).unwrap_err().to_string();
        assert!(stack.contains("a stack of 70000 bytes does not fit in 65536 bytes"), "{stack}");
        assert!(stack.ends_with("raise initial_memory or lower stack_size"), "{stack}");
    }

    #[test]
    fn guests_under_a_feature_are_built_only_when_the_firmware_turns_it_on() {
        let section = serde_json::json!({
            "guests": ["../guests/add"],
            "features": { "component": ["../guests/sensor-filter"] },
        });
        assert_eq!(guests_of(&section, |_| false).unwrap(), ["../guests/add"]);
        assert_eq!(
            guests_of(&section, |feature| feature == "component").unwrap(),
            ["../guests/add", "../guests/sensor-filter"]
        );
        let only_features = serde_json::json!({ "features": { "component": ["c"] } });
        assert_eq!(guests_of(&only_features, |_| true).unwrap(), ["c"]);
        let wrong = serde_json::json!({ "guests": ["a"], "features": { "component": "c" } });
        assert_eq!(guests_of(&wrong, |_| true).unwrap_err(), "`features.component` is not a list");
        assert_eq!(guests_of(&serde_json::json!({}), |_| true).unwrap_err(), "`guests` is missing");
        let error = Error::BadMetadata {
            manifest: "fw/Cargo.toml".into(),
            message: "`features.component` is not a list".into(),
        };
        assert_eq!(
            error.to_string(),
            "wasm-embed-build: `[package.metadata.wasm-embed]` in fw/Cargo.toml is invalid: `features.component` is \
             not a list; expected `guests = [\"path/to/guest\", \"package-name\"]`, and under \
             `[package.metadata.wasm-embed.features]` a list like it per firmware feature"
        );
    }
}
