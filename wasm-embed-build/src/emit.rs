//! Write the `.cwasm` files and the Rust module that embeds them, with each guest's
//! typed bindings.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use wasm_embed::Settings;

use crate::Error;
use crate::files::write_if_changed;
use crate::guest::Guest;
use crate::locate::Source;
use crate::package::Updates;
use wasm_embed::update::Version;

/// The file name of the emitted module in `OUT_DIR` (see `wasm_embed::include_guests!`).
pub const MODULE_FILE: &str = "wasm-embed-guests.rs";

/// Writes `<name>.cwasm` and `<name>.wasm` for each guest and the module that includes
/// them (a firmware that never names a guest's `WASM` links none of it); returns the
/// module's path. Files whose content is unchanged are not rewritten, so the firmware
/// is not recompiled for a guest that came out the same.
pub fn emit(out_dir: &Path, settings: &Settings, guests: &[Guest], updates: Option<&Updates>) -> Result<PathBuf, Error> {
    let mut module = String::new();
    let _ = writeln!(
        module,
        "/// The settings every guest here was precompiled with: build the engine from these\n\
         /// (`wasm_embed::engine(&SETTINGS)`) and it accepts their `.cwasm`.\n\
         pub const SETTINGS: ::wasm_embed::Settings = {};\n",
        settings.to_rust()
    );
    if cfg!(feature = "async") {
        module.push_str("::wasm_embed::__require_async!();\n\n");
    }
    if let Some(updates) = updates {
        let _ = writeln!(
            module,
            "/// The public key updates must be signed with (`Builder::update_key`).\n\
             pub const UPDATE_KEY: ::wasm_embed::update::PublicKey = ::wasm_embed::update::PublicKey::new({:?});\n\n\
             /// Whether [`UPDATE_KEY`] is the build's own development key\n\
             /// (`Builder::development_update_key`), whose secret half lies in the target\n\
             /// directory: a firmware may refuse to ship, or say so at start.\n\
             pub const UPDATE_KEY_IS_DEVELOPMENT: bool = {};\n",
            updates.key.bytes(),
            updates.development
        );
    }
    for guest in guests {
        let name = guest.name();
        let stack = guest.pulley_stack;
        let image = match &guest.cwasm {
            Some(bytes) => {
                let cwasm = out_dir.join(format!("{name}.cwasm"));
                write_if_changed(&cwasm, bytes)?;
                let wasm = out_dir.join(format!("{name}.wasm"));
                write_if_changed(&wasm, &guest.wasm)?;
                format!(
                    r#"static CWASM: &::wasm_embed::__private::Aligned<[u8]> = &::wasm_embed::__private::Aligned(*include_bytes!({cwasm:?}));

    /// The guest's wasm after every build stage, the module its `.cwasm` was compiled
    /// from: for running it under another runtime. Not linked unless used.
    pub static WASM: &[u8] = include_bytes!({wasm:?});

    /// The precompiled guest, run in place from flash: load it once with
    /// `GUEST.load(&engine)`. An engine made from its settings
    /// (`wasm_embed::engine(GUEST.settings())`) gives it only the Pulley stack it needs.
    /// (`Guest::new` is sound here: the bytes are the pinned Wasmtime's
    /// `Engine::precompile_module` output, made by wasm-embed-build for these settings,
    /// and loading checks they are still those bytes.)
    pub static GUEST: ::wasm_embed::Guest = unsafe {{
        ::wasm_embed::Guest::new({name:?}, &CWASM.0, ::wasm_embed::Settings {{ max_wasm_stack: {stack}, ..super::SETTINGS }})
    }}
    .with_checksum({crc:#010x});"#,
                    crc = wasm_embed::__private::crc32(bytes)
                )
            }
            None => format!(
                "/// Not built: this build skipped the guests, so loading it returns an error.\n    \
                 pub static GUEST: ::wasm_embed::Guest = ::wasm_embed::Guest::skipped({name:?}, super::SETTINGS);\n\n    \
                 /// Not built: empty.\n    \
                 pub static WASM: &[u8] = &[];"
            ),
        };
        let crate::Sizes {
            compiled,
            stripped,
            optimized,
            cwasm: cwasm_size,
        } = guest.sizes;
        let updatable = match updates {
            Some(updates) => {
                let (version, interface) = match &guest.update {
                    Some(written) => (written.version, written.interface.clone()),
                    // A skipped build writes no package; the firmware still type-checks.
                    None => (
                        Version::parse(crate::package::version_of(&guest.located, updates)).unwrap_or(Version::ZERO),
                        crate::package::interface_text(&guest.interface),
                    ),
                };
                let Version { major, minor, patch } = version;
                format!(
                    "\n\n    /// The guest as updates see it: its version in this image, and the imports and\n    \
                     /// exports an update must keep. Give it to `wasm_embed::update::Slots::new`.\n    \
                     pub static UPDATABLE: ::wasm_embed::update::Updatable = ::wasm_embed::update::Updatable::new(\
                     &GUEST, ::wasm_embed::update::Version::new({major}, {minor}, {patch}), {interface:?});"
                )
            }
            None => String::new(),
        };
        let (bindings, uses) = match handle(guest) {
            Some(handle) => (handle, String::new()),
            None => (
                crate::bindings::bindings(name, &guest.interface),
                crate::bindings::uses(&guest.interface),
            ),
        };
        let _ = write!(
            module,
            r#"/// Guest `{name}`, {origin}.
#[allow(non_snake_case)]
pub mod {name} {{
{uses}
    {image}{updatable}

    /// Bytes of the guest after each build stage.
    pub mod size {{
        /// The wasm its toolchain produced (a prebuilt guest: the file).
        pub const COMPILED: usize = {compiled};
        /// After custom sections were removed.
        pub const STRIPPED: usize = {stripped};
        /// After wasm-opt (equal to `STRIPPED` when wasm-opt is off).
        pub const OPTIMIZED: usize = {optimized};
        /// The `.cwasm` in flash.
        pub const CWASM: usize = {cwasm_size};
    }}

{bindings}}}

"#,
            origin = match &guest.located.source {
                Source::Crate(krate) => format!("built from `{}`", krate.manifest_path.display()),
                Source::Wasm(path) => format!("prebuilt, from `{}`", path.display()),
            },
        );
    }
    let path = out_dir.join(MODULE_FILE);
    write_if_changed(&path, format(&module).as_bytes())?;
    remove_leftovers(out_dir, guests)?;
    Ok(path)
}

/// The guests the last build emitted, one name a line: what a later build with fewer
/// guests removes the files of.
const GUEST_LIST: &str = "wasm-embed-guests.list";

/// The files the build writes into `OUT_DIR` for a guest, after its name.
const GUEST_FILES: [&str; 7] =
    [".cwasm", ".cwasm.key", ".wasm", ".stack", ".stack.key", ".stripped.wasm", ".optimized.wasm"];

/// Deletes the files of guests the last build emitted and this one does not, so that a
/// guest taken off the list leaves nothing behind in `OUT_DIR`. Only names on the last
/// build's list are touched, never a file the firmware's own build script wrote.
fn remove_leftovers(out_dir: &Path, guests: &[Guest]) -> Result<(), Error> {
    let list = out_dir.join(GUEST_LIST);
    let before = std::fs::read_to_string(&list).unwrap_or_default();
    let now: Vec<&str> = guests.iter().map(Guest::name).collect();
    for gone in before.lines().filter(|name| !name.is_empty() && !now.contains(name)) {
        for suffix in GUEST_FILES {
            let _ = std::fs::remove_file(out_dir.join(format!("{gone}{suffix}")));
        }
    }
    write_if_changed(&list, (now.join("\n") + "\n").as_bytes())
}

/// A component guest's handle, with host bindings made from its world.
#[cfg(feature = "component-model")]
fn handle(guest: &Guest) -> Option<String> {
    let world = guest.world.as_ref()?;
    Some(crate::component::handle(guest.name(), world))
}

#[cfg(not(feature = "component-model"))]
fn handle(_guest: &Guest) -> Option<String> {
    None
}

/// The module formatted by the toolchain's rustfmt (`$RUSTFMT` or `rustfmt`), as bindgen
/// does; without one, as written, which is readable but wider.
fn format(module: &str) -> String {
    let module = format!("// @generated by wasm-embed-build; do not edit.\n\n{}\n", module.trim_end());
    let rustfmt = crate::cargo::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let child = Command::new(rustfmt)
        .args(["--edition", "2024", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return module };
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = module.clone();
    // Written from another thread: rustfmt may fill its output pipe before it has read
    // all of its input.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output();
    match (writer.join(), output) {
        (Ok(Ok(())), Ok(output)) if output.status.success() => String::from_utf8(output.stdout).unwrap_or(module),
        _ => module,
    }
}
