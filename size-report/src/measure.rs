//! Measuring a firmware: demo-firmware or a copy of it with edits (a variant), built and
//! run in QEMU, its image read and its guests' reports and `.cwasm`s collected.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cargo::{cargo, repo};
use crate::elf::{elf, flash_of, sections_of};

/// A textual change to one of demo-firmware's files that turns a lever off.
#[derive(Clone)]
pub(crate) struct Edit {
    pub(crate) file: &'static str,
    pub(crate) from: &'static str,
    pub(crate) to: Cow<'static, str>,
}

/// An edit known when this program is compiled.
pub(crate) const fn edit(file: &'static str, from: &'static str, to: &'static str) -> Edit {
    Edit { file, from, to: Cow::Borrowed(to) }
}

/// A copy of demo-firmware with edits, built in demo-firmware's target directory under
/// a package name of its own; each of its examples is renamed after it too, since
/// examples of one name from several packages would overwrite each other there.
pub(crate) struct Variant {
    pub(crate) dir: PathBuf,
    name: String,
}

impl Variant {
    /// demo-firmware itself.
    pub(crate) fn original() -> Variant {
        Variant { dir: repo().join("demo-firmware"), name: String::new() }
    }

    /// What the example `example` is called in this variant.
    pub(crate) fn example(&self, example: &str) -> String {
        if self.name.is_empty() { example.to_owned() } else { format!("{example}-{}", self.name) }
    }
}

/// What one build of the firmware measured.
pub(crate) struct Measurement {
    pub(crate) sections: BTreeMap<&'static str, u64>,
    pub(crate) flash: u64,
    pub(crate) heap_arena: u64,
    pub(crate) peak_heap: u64,
    /// The main stack's peak use and its size, where the firmware printed them.
    pub(crate) peak_stack: Option<(u64, u64)>,
    pub(crate) output: String,
    pub(crate) crates: Vec<(String, u64)>,
    pub(crate) guests: Value,
    /// Per guest, the sections of its `.cwasm` and their sizes.
    pub(crate) cwasm_sections: Vec<(String, Vec<(String, u64)>)>,
    /// Per guest, its `.cwasm` made by other flags (see [`Compared`]); only for the
    /// default build.
    pub(crate) compared: Vec<Compared>,
    /// Where the build put its guests' files.
    pub(crate) out_dir: PathBuf,
}

/// One guest's `.cwasm` three ways: with the flags of Wasmtime's guide "Building a
/// minimal *.cwasm" (Wasmtime's defaults, `pulley32`, no address map, no symbols, no
/// copy-on-write image) from the same optimized wasm with its 64 KiB pages; with this
/// pipeline's flags and fuel off; and as the firmware embeds it (fuel on).
pub(crate) struct Compared {
    pub(crate) guest: String,
    pub(crate) wasmtime_guide: Vec<u8>,
    pub(crate) fuel_off: Vec<u8>,
    pub(crate) shipped: u64,
}

/// demo-firmware's manifest with each `[[example]]`'s name and path renamed as
/// [`Variant::example`] renames them.
fn rename_examples(manifest: &str, variant: &Variant) -> String {
    let mut in_example = false;
    let mut out = String::new();
    for line in manifest.lines() {
        if line.starts_with('[') {
            in_example = line == "[[example]]";
        }
        let value = |key: &str| line.strip_prefix(key)?.strip_prefix(" = \"")?.strip_suffix('"');
        match (in_example, value("name"), value("path").and_then(|p| p.strip_prefix("examples/")?.strip_suffix(".rs"))) {
            (true, Some(name), _) => out.push_str(&format!("name = {:?}", variant.example(name))),
            (true, _, Some(file)) => out.push_str(&format!("path = \"examples/{}.rs\"", variant.example(file))),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A copy of demo-firmware with `edits`, named after `name`, under target/size-report.
/// A variant that edits the runtime crates (files named `../wasm-embed/...`) gets copies
/// of both of them and of the workspace root they inherit from, so the firmware and its
/// build script use the same edited crate: their Wasmtime settings must match.
pub(crate) fn variant(name: &str, edits: &[Edit]) -> Result<Variant, String> {
    // Readable, and unique: names that share their first words differ in the hash.
    let slug: String = name.chars().filter(char::is_ascii_alphanumeric).take(24).collect();
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let name = format!("{}-{hash:08x}", slug.to_ascii_lowercase());
    let dir = repo().join("target/size-report").join(&name);
    let with_crates = edits.iter().any(|e| e.file.starts_with("../"));
    let firmware = if with_crates { dir.join("demo-firmware") } else { dir.clone() };
    let variant = Variant { dir: firmware.clone(), name };
    let repo_path = repo().display().to_string();
    // (path relative to demo-firmware, as the edits name it; where the copy goes)
    let mut files: Vec<(String, PathBuf)> = files_under(&repo().join("demo-firmware"))?
        .into_iter()
        .map(|f| {
            let to = match f.strip_prefix("examples/").and_then(|e| e.strip_suffix(".rs")) {
                Some(example) => format!("examples/{}.rs", variant.example(example)),
                None => f.clone(),
            };
            (f, firmware.join(to))
        })
        .collect();
    if with_crates {
        for file in ["Cargo.toml", "Cargo.lock"] {
            files.push((format!("../{file}"), dir.join(file)));
        }
        for krate in RUNTIME_CRATES {
            for file in files_under(&repo().join(krate))? {
                if file == "Cargo.toml" || file == "build.rs" || file.starts_with("src/") {
                    files.push((format!("../{krate}/{file}"), dir.join(krate).join(&file)));
                }
            }
        }
    }
    if let Some(edit) = edits.iter().find(|e| !files.iter().any(|(f, _)| f == e.file)) {
        return Err(format!("demo-firmware/{} does not exist; update size-report's levers", edit.file));
    }
    for (file, path) in &files {
        let source = repo().join("demo-firmware").join(file);
        let mut text = std::fs::read_to_string(&source).map_err(|e| format!("{}: {e}", source.display()))?;
        match file.as_str() {
            "Cargo.toml" => {
                text = text.replace("name = \"demo-firmware\"", &format!("name = {:?}", variant.name));
                text = rename_examples(&text, &variant);
                // Crates no lever edits stay where they are; with the runtime crates
                // copied beside it, the copy's paths to those keep pointing at the copies.
                let locals: &[&str] = if with_crates { &["\"../guests/", "\"../pipeline-check/"] } else { &["\"../"] };
                for local in locals {
                    text = text.replace(local, &format!("\"{repo_path}/{}", &local[4..]));
                }
            }
            "../Cargo.toml" => text = text.replace(", \"size-report\"", ""),
            _ => {}
        }
        for edit in edits.iter().filter(|e| e.file == file) {
            if !text.contains(edit.from) {
                return Err(format!("demo-firmware/{file} no longer contains `{}`; update size-report's levers", edit.from));
            }
            text = text.replace(edit.from, &edit.to);
        }
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
        // Unchanged files keep their timestamps, so a warm rerun rebuilds nothing.
        if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(path, text).map_err(|e| e.to_string())?;
            // The runner, qemu-run.sh, stays executable.
            let permissions = std::fs::metadata(&source).map_err(|e| e.to_string())?.permissions();
            std::fs::set_permissions(path, permissions).map_err(|e| e.to_string())?;
        }
    }
    Ok(variant)
}

/// The runtime crates a lever may edit.
const RUNTIME_CRATES: [&str; 2] = ["wasm-embed", "wasm-embed-build"];

/// The files of a crate, relative to it, leaving out build output.
fn files_under(root: &Path) -> Result<Vec<String>, String> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                files.push(relative);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The program the report measures: the add example, the firmware the original
/// comparison measured, running the add guest.
const EXAMPLE: &str = "add";

/// Builds and runs the `add` example of `variant` (in demo-firmware's target directory)
/// and measures it.
pub(crate) fn measure(variant: &Variant) -> Result<Measurement, String> {
    measure_example(variant, &variant.example(EXAMPLE), &[])
}

/// Builds and runs the example `example` of `variant`, with Cargo's `features` on, and
/// measures it.
pub(crate) fn measure_example(variant: &Variant, example: &str, features: &[&str]) -> Result<Measurement, String> {
    let features = features.join(",");
    let mut args = vec!["run", "--release", "--example", example];
    if !features.is_empty() {
        args.extend(["--features", &features]);
    }
    let run = cargo(&variant.dir, &args)?;
    let executable = run.executables.last().ok_or("cargo reported no executable")?;
    let out_dir = run.out_dir.ok_or("cargo reported no build-script output directory")?;
    let firmware = run.program;
    let peak_heap = firmware
        .lines()
        .find_map(|l| l.strip_prefix("peak heap: ")?.strip_suffix(" bytes")?.parse().ok())
        .ok_or_else(|| format!("the firmware printed no peak heap:\n{firmware}"))?;
    let peak_stack = firmware.lines().find_map(|l| {
        let (used, size) = l.strip_prefix("peak main stack: ")?.strip_suffix(" bytes")?.split_once(" of its ")?;
        Some((used.parse().ok()?, size.parse().ok()?))
    });
    let guests = guest_report(&out_dir)?;
    let mut cwasm_sections = Vec::new();
    for guest in guests["guests"].as_array().into_iter().flatten() {
        let name = guest["name"].as_str().unwrap_or("?").to_owned();
        let path = out_dir.join(format!("{name}.cwasm"));
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        cwasm_sections.push((name, sections_of(&bytes)?));
    }
    let (sections, heap_arena, crates) = elf(executable)?;
    Ok(Measurement {
        flash: flash_of(&sections),
        sections,
        heap_arena,
        peak_heap,
        peak_stack,
        output: firmware,
        crates,
        compared: Vec::new(),
        out_dir,
        guests,
        cwasm_sections,
    })
}

/// Each guest's `.cwasm` made with Wasmtime's guide's flags and with ours without fuel,
/// from the files the pipeline left in `out_dir`.
pub(crate) fn compare_cwasm(out_dir: &Path, report: &Value) -> Result<Vec<Compared>, String> {
    use wasmtime::{Config, Engine};
    let read = |file: String| std::fs::read(out_dir.join(&file)).map_err(|e| format!("{file}: {e}"));
    let mut guide = Config::new();
    guide.target("pulley32").map_err(|e| e.to_string())?;
    guide.generate_address_map(false).debug_symbols(false).memory_init_cow(false);
    let guide = Engine::new(&guide).map_err(|e| e.to_string())?;
    let fuel_off = wasm_embed::Settings { fuel: None, ..wasm_embed::Settings::new(wasm_embed::Target::Pulley32) };
    let mut compared = Vec::new();
    for guest in report["guests"].as_array().into_iter().flatten() {
        let name = guest["name"].as_str().unwrap_or("?");
        compared.push(Compared {
            guest: name.to_owned(),
            wasmtime_guide: guide
                .precompile_module(&read(format!("{name}.optimized.wasm"))?)
                .map_err(|e| format!("{name}: {e}"))?,
            fuel_off: wasm_embed::precompile(&fuel_off, &read(format!("{name}.wasm"))?).map_err(|e| format!("{name}: {e}"))?,
            shipped: guest["cwasm"].as_u64().unwrap_or(0),
        });
    }
    Ok(compared)
}

/// The pipeline's report of a build (`wasm-embed-report.json` in its output directory).
pub(crate) fn guest_report(out_dir: &Path) -> Result<Value, String> {
    let path = out_dir.join("wasm-embed-report.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `key` of `guest`'s entry in a measured build's guest report.
pub(crate) fn guest_figure(m: &Measurement, guest: &str, key: &str) -> Option<u64> {
    m.guests["guests"].as_array()?.iter().find(|g| g["name"] == guest)?[key].as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variants_examples_are_renamed_with_their_paths() {
        let variant = Variant { dir: PathBuf::new(), name: "v".into() };
        let manifest = "[package]\nname = \"demo-firmware\"\n\n[[example]]\nname = \"add-component\"\npath = \"examples/add_component.rs\"\n\n[[example]]\nname = \"speed\"\n";
        assert_eq!(
            rename_examples(manifest, &variant),
            "[package]\nname = \"demo-firmware\"\n\n[[example]]\nname = \"add-component-v\"\npath = \"examples/add_component-v.rs\"\n\n[[example]]\nname = \"speed-v\"\n"
        );
    }
}
