//! The size report: builds demo-firmware's `add` example (the add example's firmware) for the
//! Cortex-M4, runs it in QEMU, and prints
//! as markdown (and writes as JSON) its flash and RAM beside the runtimes of the original
//! comparison on the nRF52840-DK (Ariel OS), its
//! code size by crate, each guest's size after every pipeline stage, and, with
//! `--levers`, what each size lever saves, measured by building without it.
//!
//! Usage: `cargo run -p size-report --release -- [--levers] [--json PATH]`
//! (or `./x size`). With `speed` as its argument it prints the speed table instead
//! (`./x speed`, see speed.rs): it builds its profiles the way the size levers are built.

mod speed;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSection, ObjectSymbol, SectionKind};
use serde_json::{Value, json};

/// A textual change to one of demo-firmware's files that turns a lever off.
#[derive(Clone)]
struct Edit {
    file: &'static str,
    from: &'static str,
    to: Cow<'static, str>,
}

/// An edit known when this program is compiled.
const fn edit(file: &'static str, from: &'static str, to: &'static str) -> Edit {
    Edit { file, from, to: Cow::Borrowed(to) }
}

/// demo-firmware built without one lever.
struct Lever {
    name: &'static str,
    edits: &'static [Edit],
}

/// A copy of demo-firmware with edits, built in demo-firmware's target directory under
/// a package name of its own; each of its examples is renamed after it too, since
/// examples of one name from several packages would overwrite each other there.
struct Variant {
    dir: PathBuf,
    name: String,
}

impl Variant {
    /// demo-firmware itself.
    fn original() -> Variant {
        Variant { dir: repo().join("demo-firmware"), name: String::new() }
    }

    /// What the example `example` is called in this variant.
    fn example(&self, example: &str) -> String {
        if self.name.is_empty() { example.to_owned() } else { format!("{example}-{}", self.name) }
    }
}

const NO_IMMEDIATE_ABORT: Edit = edit("Cargo.toml", "panic = \"immediate-abort\"", "panic = \"abort\"");

/// Pulley's SIMD opcodes back in the interpreter.
const WITH_SIMD: Edit = edit(".cargo/config.toml", "\"--cfg\", \"pulley_disable_interp_simd\",", "");

/// Whole 64 KiB pages for every guest instead of exactly its stack and data.
const WITH_64_KIB_PAGES: Edit = edit("build.rs", "Builder::new().fuel(", "Builder::new().exact_memory(false).fuel(");

const LEVERS: &[Lever] = &[
    Lever {
        name: "immediate-abort panics (vs `panic = \"abort\"`)",
        edits: &[NO_IMMEDIATE_ABORT],
    },
    Lever {
        name: "build-std of core and alloc (needed by immediate-abort; vs the prebuilt ones)",
        edits: &[
            NO_IMMEDIATE_ABORT,
            edit(".cargo/config.toml", "build-std = [\"core\", \"alloc\"]", ""),
            edit(".cargo/config.toml", "build-std-features = [\"optimize_for_size\"]", ""),
        ],
    },
    Lever {
        name: "`-Zlocation-detail=none`",
        edits: &[edit(".cargo/config.toml", "\"-Z\", \"location-detail=none\",", "")],
    },
    Lever {
        name: "`-Zfmt-debug=none` (`{:?}` writes nothing)",
        edits: &[edit(".cargo/config.toml", "\"-Z\", \"fmt-debug=none\",", "")],
    },
    Lever {
        name: "opt-level \"z\" (vs \"s\") for every crate",
        edits: &[edit("Cargo.toml", "opt-level = \"z\"", "opt-level = \"s\"")],
    },
    Lever {
        name: "opt-level \"z\" (vs \"s\") for wasmtime only",
        edits: &[edit(
            "Cargo.toml",
            "[profile.release]\n",
            "[profile.release.package.wasmtime]\nopt-level = \"s\"\n\n[profile.release]\n",
        )],
    },
    Lever {
        name: "pulley-interpreter at opt-level 3, for speed (vs \"z\"; a cost: negative)",
        edits: &[edit(
            "Cargo.toml",
            "[profile.release.package.pulley-interpreter]\nopt-level = 3\n",
            "[profile.release.package.pulley-interpreter]\nopt-level = \"z\"\n",
        )],
    },
    Lever {
        name: "fat LTO (vs none)",
        edits: &[edit("Cargo.toml", "lto = \"fat\"", "lto = false")],
    },
    Lever {
        name: "one codegen unit (vs 16)",
        edits: &[edit("Cargo.toml", "codegen-units = 1", "codegen-units = 16")],
    },
    Lever {
        name: "`--cfg pulley_disable_interp_simd`",
        edits: &[WITH_SIMD],
    },
    Lever {
        name: "Wasm features the guests do not use off on both sides (vs Wasmtime's defaults)",
        edits: &[edit("../wasm-embed/src/config.rs", "config.wasm_features(WasmFeatures::all(), false);", "")],
    },
    Lever {
        name: "1-byte pages: memory = stack + data (vs 64 KiB pages)",
        edits: &[WITH_64_KIB_PAGES],
    },
    Lever {
        name: "Pulley stack sized to the guest's code (vs a fixed 4 KiB)",
        edits: &[edit("build.rs", "Builder::new().fuel(", "Builder::new().max_wasm_stack(4 * 1024).fuel(")],
    },
    Lever {
        name: "fuel checks, which stop a guest that loops forever (a cost: negative)",
        edits: &[edit("build.rs", ".fuel(1_000_000)", "")],
    },
    Lever {
        name: "size profile: no names, address maps, debug symbols in the .cwasm (vs debug profile)",
        edits: &[edit("build.rs", "Builder::new().fuel(", "Builder::new().profile(wasm_embed_build::Profile::Debug).fuel(")],
    },
];

/// The original runtime comparison's measurements on the nRF52840-DK under Ariel OS
/// (wasmi, Wasmtime, wasm-interpreter), flashed bytes.
const COMPARISON: [(&str, [u64; 4]); 3] = [
    ("wasmi", [511_300, 5_676, 79_544, 580_000]),
    ("Wasmtime, as that comparison built it", [264_548, 5_764, 54_916, 316_000]),
    ("wasm-interpreter", [162_272, 5_668, 16_940, 176_000]),
];

/// A firmware image for one board: where it is built from and with which target.
struct Board {
    name: &'static str,
    dir: &'static str,
    target: Option<&'static str>,
    /// The chip's flash and RAM, which the image must fit.
    chip: (u64, u64),
}

/// Every board the repository builds a firmware for; all are nRF52840-sized, since QEMU's
/// boards have more of both at the same addresses.
const BOARDS: &[Board] = &[
    Board {
        name: "demo-firmware, every guest: QEMU mps2-an386 (Cortex-M4)",
        dir: "demo-firmware",
        target: None,
        chip: (1 << 20, 256 << 10),
    },
    Board {
        name: "demo-firmware, every guest: QEMU mps2-an385 (Cortex-M3, thumbv7m-none-eabi)",
        dir: "demo-firmware",
        target: Some("thumbv7m-none-eabi"),
        chip: (1 << 20, 256 << 10),
    },
    Board {
        name: "demo-firmware, every guest: QEMU virt (RISC-V, riscv32imac-unknown-none-elf)",
        dir: "demo-firmware",
        target: Some("riscv32imac-unknown-none-elf"),
        chip: (1 << 20, 256 << 10),
    },
    Board {
        name: "boards/nrf52840-dk: add and blinky guests, defmt over RTT",
        dir: "boards/nrf52840-dk",
        target: None,
        chip: (1 << 20, 256 << 10),
    },
];

/// One board's image: flash, static RAM (.data + .bss), and the heap arena within it.
struct BoardImage {
    flash: u64,
    ram: u64,
    heap_arena: u64,
}

/// What one build of the firmware measured.
struct Measurement {
    sections: BTreeMap<&'static str, u64>,
    flash: u64,
    heap_arena: u64,
    peak_heap: u64,
    output: String,
    crates: Vec<(String, u64)>,
    guests: Value,
    /// Per guest, the sections of its `.cwasm` and their sizes.
    cwasm_sections: Vec<(String, Vec<(String, u64)>)>,
    /// Per guest, its `.cwasm` made by other flags (see [`Compared`]); only for the
    /// default build.
    compared: Vec<Compared>,
    /// Where the build put its guests' files.
    out_dir: PathBuf,
}

/// One guest's `.cwasm` three ways: with the flags of Wasmtime's guide "Building a
/// minimal *.cwasm" (Wasmtime's defaults, `pulley32`, no address map, no symbols, no
/// copy-on-write image) from the same optimized wasm with its 64 KiB pages; with this
/// pipeline's flags and fuel off; and as the firmware embeds it (fuel on).
struct Compared {
    guest: String,
    wasmtime_guide: Vec<u8>,
    fuel_off: Vec<u8>,
    shipped: u64,
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("speed") {
        return speed::main();
    }
    let mut args = std::env::args().skip(1);
    let mut levers = false;
    let mut json_path = repo().join("target/size-report.json");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--levers" => levers = true,
            "--json" => json_path = args.next().map(PathBuf::from).unwrap_or_else(|| fail("--json needs a path")),
            other => fail(&format!("unknown argument `{other}`; use [--levers] [--json PATH]")),
        }
    }
    let mut base = measure(&Variant::original()).unwrap_or_else(|e| fail(&e));
    base.compared = compare_cwasm(&base.out_dir, &base.guests).unwrap_or_else(|e| fail(&e));
    let mut components = Vec::new();
    for (label, example, guest) in COMPONENT_EXAMPLES {
        eprintln!("size-report: building the {label}");
        let measured = measure_example(&Variant::original(), example, &["component"]).unwrap_or_else(|e| fail(&e));
        components.push((label, guest, measured));
    }
    eprintln!("size-report: building the add example with updates");
    let updates = measure_updates(&base).unwrap_or_else(|e| fail(&e));
    eprintln!("size-report: building the async add example and the embassy example");
    let guests_async = measure_async().unwrap_or_else(|e| fail(&e));
    let mut lever_rows = Vec::new();
    if levers {
        for lever in LEVERS {
            eprintln!("size-report: building without {}", lever.name);
            let variant = variant(&format!("add {}", lever.name), lever.edits).unwrap_or_else(|e| fail(&e));
            lever_rows.push((lever.name, measure(&variant).unwrap_or_else(|e| fail(&e))));
        }
    }
    let mut boards = Vec::new();
    for board in BOARDS {
        eprintln!("size-report: building {}", board.name);
        boards.push((board, board_image(board).unwrap_or_else(|e| fail(&e))));
    }
    print_markdown(&base, &lever_rows).unwrap_or_else(|e| fail(&e));
    print_components(&base, &components);
    print_updates(&base, &updates);
    print_async(&base, &guests_async);
    print_boards(&boards);
    let mut report = to_json(&base, &lever_rows);
    report["components"] = components
        .iter()
        .map(|(label, guest, m)| {
            json!({
                "firmware": label,
                "flash": m.flash,
                "peak_heap": m.peak_heap,
                "cwasm": guest_figure(m, guest, "cwasm"),
            })
        })
        .collect();
    report["updates"] = json!({
        "flash": updates.firmware.flash,
        "feature_flash": updates.firmware.flash as i64 - base.flash as i64,
        "static_ram": static_ram(&updates.firmware),
        "feature_static_ram": static_ram(&updates.firmware) as i64 - static_ram(&base) as i64,
        "peak_heap": updates.firmware.peak_heap,
        "feature_peak_heap": updates.firmware.peak_heap as i64 - base.peak_heap as i64,
        "package": updates.package,
        "cwasm": updates.cwasm,
        "verify_package_bytes": updates.verify_bytes,
        "verify_instructions": updates.verify_instructions,
    });
    report["async"] = json!({
        "flash": guests_async.add.flash,
        "peak_heap": guests_async.add.peak_heap,
        "fiber_stack": guests_async.fiber,
        "fiber_stack_used": guests_async.fiber_used,
        "lateness": guests_async.lateness.iter().map(|(core, phase, late, slice)| {
            json!({"core": core, "phase": phase, "worst_lateness_us": late, "longest_slice_us": slice})
        }).collect::<Vec<_>>(),
    });
    report["boards"] = boards
        .iter()
        .map(|(board, image)| {
            json!({
                "board": board.name,
                "flash": image.flash,
                "ram": image.ram,
                "heap_arena": image.heap_arena,
                "chip_flash": board.chip.0,
                "chip_ram": board.chip.1,
            })
        })
        .collect();
    std::fs::write(&json_path, serde_json::to_string_pretty(&report).unwrap())
        .unwrap_or_else(|e| fail(&format!("{}: {e}", json_path.display())));
    eprintln!("size-report: wrote {}", json_path.display());
}

fn fail(message: &str) -> ! {
    eprintln!("size-report: {message}");
    std::process::exit(1);
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// A copy of demo-firmware with `edits`, named after `name`, under target/size-report.
/// A variant that edits the runtime crates (files named `../wasm-embed/...`) gets copies
/// of both of them and of the workspace root they inherit from, so the firmware and its
/// build script use the same edited crate: their Wasmtime settings must match.
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

fn variant(name: &str, edits: &[Edit]) -> Result<Variant, String> {
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
                if file == "Cargo.toml" || file.starts_with("src/") {
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
        }
    }
    Ok(variant)
}

/// The program the report measures: the add example, the firmware the original
/// comparison measured, running the add guest.
const EXAMPLE: &str = "add";

/// The firmwares with component guests, measured beside the add example: the add guest
/// as a component, and the sensor filter whose world passes strings, lists, records and
/// results. Label, example, guest.
const COMPONENT_EXAMPLES: [(&str, &str, &str); 2] =
    [("add example, component", "add-component", "add_component"), ("sensor filter, component", "sensor", "sensor_filter")];

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

/// What one `cargo build` or `cargo run` in demo-firmware's target directory reported.
struct Cargo {
    /// The executables it built, in order.
    executables: Vec<PathBuf>,
    /// The output directory of the package's own build script (its guests' files).
    out_dir: Option<PathBuf>,
    /// What the program printed, for `cargo run`.
    program: String,
}

/// Runs `cargo args` in `dir`, sharing demo-firmware's target directory so the build
/// script's Wasmtime and binaryen are compiled once for every firmware and variant.
fn cargo(dir: &Path, args: &[&str]) -> Result<Cargo, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(dir)
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .env("CARGO_TARGET_DIR", repo().join("demo-firmware/target"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    let mut run = Cargo { executables: Vec::new(), out_dir: None, program: String::new() };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(message) if message.get("reason").is_some() => {
                if let Some(path) = message["executable"].as_str() {
                    run.executables.push(PathBuf::from(path));
                }
                if message["reason"] == "build-script-executed"
                    && message["package_id"].as_str().is_some_and(|id| id.contains(&*dir.to_string_lossy()))
                {
                    run.out_dir = message["out_dir"].as_str().map(PathBuf::from);
                }
            }
            _ => {
                run.program.push_str(line);
                run.program.push('\n');
            }
        }
    }
    if !output.status.success() {
        return Err(format!("`cargo {}` in {} failed ({}):\n{}", args.join(" "), dir.display(), output.status, run.program));
    }
    Ok(run)
}

/// The sections a board's flash holds: Arm's vector table, riscv-rt's start-up code,
/// and on both the code, read-only data and the initial values of `.data`.
const FLASH_SECTIONS: [&str; 5] = [".vector_table", ".init.rust", ".text", ".rodata", ".data"];

/// Flash of an image: what a board's flash holds.
fn flash_of(sections: &BTreeMap<&'static str, u64>) -> u64 {
    FLASH_SECTIONS.iter().map(|s| sections[s]).sum()
}

/// Builds and runs the `add` example of `variant` (in demo-firmware's target directory)
/// and measures it.
fn measure(variant: &Variant) -> Result<Measurement, String> {
    measure_example(variant, &variant.example(EXAMPLE), &[])
}

/// Builds and runs the example `example` of `variant`, with Cargo's `features` on, and
/// measures it.
fn measure_example(variant: &Variant, example: &str, features: &[&str]) -> Result<Measurement, String> {
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
fn compare_cwasm(out_dir: &Path, report: &Value) -> Result<Vec<Compared>, String> {
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
fn guest_report(out_dir: &Path) -> Result<Value, String> {
    let path = out_dir.join("wasm-embed-report.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Builds `board`'s firmware and measures its image.
fn board_image(board: &Board) -> Result<BoardImage, String> {
    let mut args = vec!["build", "--release", "--bins"];
    if let Some(target) = board.target {
        args.extend(["--target", target]);
    }
    let run = cargo(&repo().join(board.dir), &args)?;
    let executable = run.executables.last().ok_or_else(|| format!("cargo reported no executable for {}", board.name))?;
    let (sections, heap_arena, _) = elf(executable)?;
    let flash = flash_of(&sections);
    let ram = sections[".data"] + sections[".bss"];
    if flash > board.chip.0 || ram > board.chip.1 {
        return Err(format!("{} does not fit its chip: {flash} B flash, {ram} B RAM", board.name));
    }
    Ok(BoardImage { flash, ram, heap_arena })
}

fn print_boards(boards: &[(&Board, BoardImage)]) {
    println!("\n## Every board's image\n");
    println!("| firmware | flash | of the chip's | RAM (.data + .bss) | heap arena in it | of the chip's |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (board, image) in boards {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            board.name,
            group(image.flash),
            group(board.chip.0),
            group(image.ram),
            group(image.heap_arena),
            group(board.chip.1),
        );
    }
}

/// The sections of a `.cwasm` (an ELF file) by size, and what the ELF format itself
/// takes: headers, the section table and alignment padding.
fn sections_of(cwasm: &[u8]) -> Result<Vec<(String, u64)>, String> {
    let file = object::File::parse(cwasm).map_err(|e| format!(".cwasm: {e}"))?;
    let mut sections: Vec<(String, u64)> = file
        .sections()
        .filter_map(|s| Some((s.name().ok()?.to_owned(), s.file_range()?.1)))
        .filter(|(_, size)| *size > 0)
        .collect();
    sections.sort_by(|a, b| b.1.cmp(&a.1));
    let listed: u64 = sections.iter().map(|(_, size)| size).sum();
    sections.push(("(ELF header, section table, padding)".into(), cwasm.len() as u64 - listed));
    Ok(sections)
}

/// Section sizes, the heap arena's size and code + read-only data by crate.
fn elf(path: &Path) -> Result<(BTreeMap<&'static str, u64>, u64, Vec<(String, u64)>), String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = object::File::parse(&*data).map_err(|e| e.to_string())?;
    let mut sections = BTreeMap::new();
    for &name in FLASH_SECTIONS.iter().chain(&[".bss"]) {
        sections.insert(name, file.section_by_name(name).map_or(0, |s| s.size()));
    }
    let mut crates: BTreeMap<String, u64> = BTreeMap::new();
    let mut heap_arena = 0;
    for symbol in file.symbols() {
        let Some(index) = symbol.section_index() else { continue };
        let Ok(section) = file.section_by_index(index) else { continue };
        let name = format!("{:#}", rustc_demangle::demangle(symbol.name().unwrap_or("")));
        match section.kind() {
            SectionKind::Text | SectionKind::ReadOnlyData | SectionKind::ReadOnlyString => {
                *crates.entry(crate_of(&name)).or_default() += symbol.size();
            }
            SectionKind::UninitializedData if name.ends_with("heap::init::MEMORY") => heap_arena = symbol.size(),
            _ => {}
        }
    }
    let mut crates: Vec<_> = crates.into_iter().collect();
    crates.sort_by(|a, b| b.1.cmp(&a.1));
    Ok((sections, heap_arena, crates))
}

/// The crate a demangled symbol belongs to: the first path segment, looking through
/// `<T as Trait>` and references.
fn crate_of(symbol: &str) -> String {
    let path = symbol.trim_start_matches(['<', '&', '*']).trim_start_matches("mut ").trim_start_matches("dyn ");
    match path.split_once("::") {
        Some((first, _)) if first.chars().all(|c| c.is_alphanumeric() || c == '_') => first.to_owned(),
        _ if symbol.starts_with("__aeabi") || symbol.starts_with("mem") => "compiler_builtins".to_owned(),
        _ => "(other symbols)".to_owned(),
    }
}

fn print_compared(compared: &[Compared]) -> Result<(), String> {
    println!("\n## .cwasm beside Wasmtime's own smallest flags\n");
    println!(
        "The flags of Wasmtime's guide \"Building a minimal *.cwasm\" (Wasmtime's defaults, `pulley32`, no address \
         map, no symbols, no copy-on-write image, no fuel) applied to the same optimized wasm, which keeps its 64 KiB \
         pages; this pipeline's flags without fuel (its 1-byte pages, Wasm features, bounds); and the `.cwasm` the \
         firmware embeds, with fuel checks.\n"
    );
    println!("| guest | Wasmtime's guide | ours, fuel off | ours, fuel off vs the guide | ours, fuel on (embedded) | what fuel adds |");
    println!("|---|---:|---:|---:|---:|---:|");
    for c in compared {
        let (guide, off) = (c.wasmtime_guide.len() as i64, c.fuel_off.len() as i64);
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            c.guest,
            group(guide as u64),
            group(off as u64),
            signed(off - guide),
            group(c.shipped),
            signed(c.shipped as i64 - off),
        );
    }
    // Where the difference is, section by section, for the largest guest.
    if let Some(c) = compared.iter().max_by_key(|c| c.wasmtime_guide.len()) {
        let (guide, ours) = (sections_of(&c.wasmtime_guide)?, sections_of(&c.fuel_off)?);
        println!("\n### {}.cwasm by section: Wasmtime's guide vs ours with fuel off\n", c.guest);
        println!("| section | Wasmtime's guide | ours, fuel off |\n|---|---:|---:|");
        let mut names: Vec<&String> = guide.iter().chain(&ours).map(|(n, _)| n).collect();
        names.dedup();
        let mut seen = Vec::new();
        for name in names {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let of = |list: &[(String, u64)]| list.iter().find(|(n, _)| n == name).map_or("–".to_owned(), |(_, b)| group(*b));
            println!("| `{name}` | {} | {} |", of(&guide), of(&ours));
        }
    }
    Ok(())
}

fn print_markdown(base: &Measurement, levers: &[(&str, Measurement)]) -> Result<(), String> {
    let s = &base.sections;
    println!(
        "## The add example (thumbv7em-none-eabihf) beside the runtime comparison on the nRF52840-DK (Ariel OS)\n"
    );
    println!("| bytes | wasm-embed | {} |", COMPARISON.map(|(name, _)| name).join(" | "));
    println!("|---|---:|{}", "---:|".repeat(COMPARISON.len()));
    let row = |label: &str, ours: u64, column: Option<usize>| {
        let theirs: Vec<String> = COMPARISON.iter().map(|(_, v)| column.map_or("–".into(), |i| group(v[i]))).collect();
        println!("| {label} | {} | {} |", group(ours), theirs.join(" | "));
    };
    row(".text", s[".text"], Some(0));
    row(".bss", s[".bss"] - base.heap_arena, Some(1));
    row(".rodata", s[".rodata"], Some(2));
    row(".data", s[".data"], None);
    row("flash (vectors + .text + .rodata + .data)", base.flash, Some(3));
    println!(
        "\n.bss leaves out the firmware's {} B heap arena. Peak heap while the guest was loaded, \
         instantiated and called: **{} B**. Static RAM (.data + .bss without the arena): {} B.\n",
        group(base.heap_arena),
        group(base.peak_heap),
        group(s[".data"] + s[".bss"] - base.heap_arena),
    );
    println!("## Code and read-only data by crate (top 15)\n");
    println!("| crate | bytes |\n|---|---:|");
    for (name, bytes) in base.crates.iter().take(15) {
        println!("| {name} | {} |", group(*bytes));
    }
    println!("\n## Guests\n");
    println!("| guest | wasm from rustc | stripped | wasm-opt | .cwasm | linear memory | Pulley stack |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for guest in base.guests["guests"].as_array().into_iter().flatten() {
        let n = |key: &str| guest[key].as_u64().map_or("–".into(), group);
        let memory = match guest["memory_bytes"].as_u64() {
            Some(bytes) => format!("{} B", group(bytes)),
            None => guest["memory"].as_str().unwrap_or("?").to_owned(),
        };
        let stack = match guest["pulley_stack"].as_u64() {
            Some(bytes) => format!("{} B", group(bytes)),
            None => "unbounded".to_owned(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {memory} | {stack} |",
            guest["name"].as_str().unwrap_or("?"),
            n("wasm_compiled"),
            n("wasm_stripped"),
            n("wasm_optimized"),
            n("cwasm"),
        );
    }
    println!(
        "\nAn engine made for one guest allocates that guest's Pulley stack per store (its need rounded up \
         to 16, or 4 KiB when unbounded); one engine for every guest would allocate {} B.",
        base.guests["max_wasm_stack"].as_u64().map_or("?".into(), group)
    );
    for (guest, sections) in &base.cwasm_sections {
        println!("\n### What is in {guest}.cwasm\n");
        println!("| section | bytes |\n|---|---:|");
        for (name, bytes) in sections {
            println!("| `{name}` | {} |", group(*bytes));
        }
    }
    print_compared(&base.compared)?;
    if !levers.is_empty() {
        println!("\n## What each lever saves (built without it, minus the default build)\n");
        println!("| lever | flash saved | peak heap saved | .cwasm saved |\n|---|---:|---:|---:|");
        for (name, without) in levers {
            let cwasm = |m: &Measurement| m.guests["guests"][0]["cwasm"].as_i64().unwrap_or(0);
            println!(
                "| {name} | {} | {} | {} |",
                signed(without.flash as i64 - base.flash as i64),
                signed(without.peak_heap as i64 - base.peak_heap as i64),
                signed(cwasm(without) - cwasm(base)),
            );
        }
    }
    Ok(())
}

/// `key` of `guest`'s entry in a measured build's guest report.
fn guest_figure(m: &Measurement, guest: &str, key: &str) -> Option<u64> {
    m.guests["guests"].as_array()?.iter().find(|g| g["name"] == guest)?[key].as_u64()
}

/// The add example as a core module beside the firmwares with one component guest, and
/// the Component Model targets.
fn print_components(base: &Measurement, components: &[(&str, &str, Measurement)]) {
    println!("\n## Component guests (thumbv7em-none-eabihf, built with `--features component`)\n");
    println!("| firmware | flash | peak heap | guest's .cwasm | its linear memory | its Pulley stack |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |label: &str, m: &Measurement, guest: &str| {
        let figure = |key| guest_figure(m, guest, key).map_or("?".into(), group);
        println!(
            "| {label} | {} | {} | {} | {} | {} |",
            group(m.flash),
            group(m.peak_heap),
            figure("cwasm"),
            figure("memory_bytes"),
            figure("pulley_stack")
        );
    };
    row("add example, core module", base, "add");
    for (label, guest, m) in components {
        row(label, m, guest);
    }
    for (label, _, m) in components {
        let met = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "\n{label}: flash {} B, target ≤ {} B (Wasmtime's figure in the Ariel OS comparison): {}; \
             peak heap {} B, target ≤ 16,384 B: {}.",
            group(m.flash),
            group(COMPARISON[1].1[3]),
            met(m.flash <= COMPARISON[1].1[3]),
            group(m.peak_heap),
            met(m.peak_heap <= 16 * 1024),
        );
    }
}

/// The add example with updates beside the add example, and the verifier's speed.
struct Updates {
    firmware: Measurement,
    /// The add guest's update package and its `.cwasm`, bytes.
    package: u64,
    cwasm: u64,
    /// Verifying a package of about 20 KiB (examples/update_verify.rs): its size, and
    /// the instructions it took under `-icount shift=0`.
    verify_bytes: u64,
    verify_instructions: u64,
}

fn measure_updates(base: &Measurement) -> Result<Updates, String> {
    let firmware = measure_example(&Variant::original(), "add_updatable", &[])?;
    let add_cwasm = base.out_dir.join("add.cwasm");
    let package = base
        .out_dir
        .ancestors()
        .nth(3)
        .map(|profile| profile.join("wasm-embed-updates/add.update"))
        .ok_or("the build's output directory is not inside a target directory")?;
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).map_err(|e| format!("{}: {e}", path.display()));
    let built = cargo(&Variant::original().dir, &["build", "--release", "--example", "update_verify"])?;
    let executable = built.executables.last().ok_or("cargo reported no executable")?;
    let printed = speed::qemu(executable)?;
    // `verified a 20480-byte package in 5136360 instructions`
    let figures: Vec<u64> = printed
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [verify_bytes, verify_instructions] = figures[..] else {
        return Err(format!("examples/update_verify.rs printed no figures:\n{printed}"));
    };
    Ok(Updates {
        firmware,
        package: size(&package)?,
        cwasm: size(&add_cwasm)?,
        verify_bytes,
        verify_instructions,
    })
}

/// `.data` and `.bss`: what the firmware's statics take of RAM (the heap arena among
/// them).
fn static_ram(m: &Measurement) -> u64 {
    m.sections[".data"] + m.sections[".bss"]
}

fn print_updates(base: &Measurement, updates: &Updates) {
    let m = &updates.firmware;
    println!("\n## Updates: wasm-embed's `update` feature (thumbv7em-none-eabihf)\n");
    println!("| firmware | flash | static RAM (.data + .bss) | peak heap |");
    println!("|---|---:|---:|---:|");
    println!("| add example | {} | {} | {} |", group(base.flash), group(static_ram(base)), group(base.peak_heap));
    println!(
        "| add example with updates: installs the add guest's package into a flash slot, runs it there | {} | {} | {} |",
        group(m.flash),
        group(static_ram(m)),
        group(m.peak_heap)
    );
    let feature = m.flash as i64 - base.flash as i64;
    println!(
        "| the feature (verifier, slots, install; and the example's UART and flash stand-in) | {} | {} | {} |",
        signed(feature),
        signed(static_ram(m) as i64 - static_ram(base) as i64),
        signed(m.peak_heap as i64 - base.peak_heap as i64)
    );
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let overhead = updates.package as i64 - updates.cwasm as i64;
    // One instruction a cycle at 64 MHz: an nRF52840's Cortex-M4 without wait states.
    let ms = updates.verify_instructions as f64 / 64_000.0;
    println!(
        "\nFlash for the feature: {} B, target ≤ 16,384 B: {}. Verifying a {}-byte package: {} instructions \
         (QEMU `-icount shift=0`), {ms:.1} ms at 64 MHz and one instruction a cycle, target ≤ 100 ms: {}. \
         The add guest's package: {} B beside its {} B .cwasm, {} B more, target ≤ 256 B: {}.",
        signed(feature),
        met(feature <= 16 * 1024),
        group(updates.verify_bytes),
        group(updates.verify_instructions),
        met(ms <= 100.0),
        group(updates.package),
        group(updates.cwasm),
        overhead,
        met(overhead <= 256),
    );
}

/// The add example under embassy (examples/add_async.rs), and the embassy example's
/// ticker on both cores.
struct Async {
    add: Measurement,
    /// The fiber stack's size and the bytes of it the call wrote.
    fiber: u64,
    fiber_used: u64,
    /// Per core and phase: the ticker's worst lateness and the longest slice, in µs.
    lateness: Vec<(&'static str, String, u64, u64)>,
}

fn measure_async() -> Result<Async, String> {
    let add = measure_example(&Variant::original(), "add_async", &["embassy"])?;
    // `fiber stack: 864 of 4096 bytes used`
    let [fiber_used, fiber] = numbers_after(&add.output, "fiber stack: ")[..] else {
        return Err(format!("examples/add_async.rs printed no fiber stack:\n{}", add.output));
    };
    let mut lateness = Vec::new();
    for (core, target) in [("Cortex-M4", "thumbv7em-none-eabihf"), ("RISC-V", "riscv32imac-unknown-none-elf")] {
        let args = ["run", "--release", "--features", "embassy", "--example", "embassy", "--target", target];
        let run = cargo(&Variant::original().dir, &args)?;
        for line in run.program.lines().filter(|l| l.contains("worst tick lateness")) {
            let phase = line.split(':').next().unwrap_or("?").to_owned();
            if let [late, slice] = numbers_after(line, ": ")[..] {
                lateness.push((core, phase, late, slice));
            }
        }
    }
    Ok(Async {
        add,
        fiber,
        fiber_used,
        lateness,
    })
}

/// The numbers in the first line of `text` that has `prefix`, after it.
fn numbers_after(text: &str, prefix: &str) -> Vec<u64> {
    let Some(line) = text.lines().find_map(|l| l.split_once(prefix).map(|(_, rest)| rest)) else {
        return Vec::new();
    };
    line.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect()
}

fn print_async(base: &Measurement, a: &Async) {
    let m = &a.add;
    println!("\n## Async: wasm-embed's `async` feature under embassy\n");
    println!("| firmware (thumbv7em-none-eabihf) | flash | peak heap |");
    println!("|---|---:|---:|");
    println!("| add example | {} | {} |", group(base.flash), group(base.peak_heap));
    println!(
        "| async add example: embassy executor and time driver, the add guest through `new_async` and \
         `add_with_extra_async`, its import awaiting a timer | {} | {} |",
        group(m.flash),
        group(m.peak_heap)
    );
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "\nThe async add example: {} B of flash, target ≤ 290,000 B: {}; {} B of peak heap for its one guest, \
         fiber stack included, target ≤ 16,384 B: {}. Its call used {} of the fiber's {} B \
         (`Settings::async_stack_size`).",
        group(m.flash),
        met(m.flash <= 290_000),
        group(m.peak_heap),
        met(m.peak_heap <= 16 * 1024),
        group(a.fiber_used),
        group(a.fiber),
    );
    println!(
        "\nThe embassy example (QEMU `-icount shift=4`: a 62.5 MHz core, one instruction a cycle; a yield \
         every 2,000 units of fuel): a task ticking every millisecond beside the guests.\n"
    );
    println!("| core | guests computing | worst tick lateness (µs) | longest slice without a yield (µs) | tick within one slice |");
    println!("|---|---|---:|---:|---|");
    for (core, phase, late, slice) in &a.lateness {
        println!("| {core} | {phase} | {} | {} | {} |", group(*late), group(*slice), if late <= slice { "yes" } else { "NO" });
    }
}

fn to_json(base: &Measurement, levers: &[(&str, Measurement)]) -> Value {
    let one = |m: &Measurement| {
        json!({
            "sections": m.sections,
            "flash": m.flash,
            "heap_arena": m.heap_arena,
            "peak_heap": m.peak_heap,
            "firmware_output": m.output,
            "crates": m.crates.iter().map(|(n, b)| json!({"crate": n, "bytes": b})).collect::<Vec<_>>(),
            "guests": m.guests,
            "cwasm_sections": m.cwasm_sections,
            "cwasm_compared": m.compared.iter().map(|c| json!({
                "guest": c.guest,
                "wasmtime_guide": c.wasmtime_guide.len(),
                "fuel_off": c.fuel_off.len(),
                "shipped": c.shipped,
            })).collect::<Vec<_>>(),
        })
    };
    json!({
        "firmware": one(base),
        "without_lever": levers.iter().map(|(name, m)| json!({"lever": name, "measurement": one(m)})).collect::<Vec<_>>(),
    })
}

/// 123456 as "123,456".
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn signed(n: i64) -> String {
    let text = group(n.unsigned_abs());
    if n < 0 { format!("−{text}") } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_charged_to_the_crate_that_defines_them() {
        assert_eq!(crate_of("wasmtime::engine::Engine::new"), "wasmtime");
        assert_eq!(
            crate_of("<wasmtime_environ::tunables::OperatorCost as serde_core::de::Deserialize>::deserialize"),
            "wasmtime_environ"
        );
        assert_eq!(crate_of("<&mut alloc::vec::Vec<u8> as core::fmt::Debug>::fmt"), "alloc");
        assert_eq!(crate_of("__aeabi_memcpy4"), "compiler_builtins");
        assert_eq!(crate_of("Reset"), "(other symbols)");
    }

    #[test]
    fn a_variants_examples_are_renamed_with_their_paths() {
        let variant = Variant { dir: PathBuf::new(), name: "v".into() };
        let manifest = "[package]\nname = \"demo-firmware\"\n\n[[example]]\nname = \"add-component\"\npath = \"examples/add_component.rs\"\n\n[[example]]\nname = \"speed\"\n";
        assert_eq!(
            rename_examples(manifest, &variant),
            "[package]\nname = \"demo-firmware\"\n\n[[example]]\nname = \"add-component-v\"\npath = \"examples/add_component-v.rs\"\n\n[[example]]\nname = \"speed-v\"\n"
        );
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(259_932), "259,932");
        assert_eq!(signed(-12_038), "−12,038");
    }
}
