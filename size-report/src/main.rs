//! The size report: builds demo-firmware's `add` example (seed 001's firmware) for the
//! Cortex-M4, runs it in QEMU, and prints
//! as markdown (and writes as JSON) its flash and RAM beside seed 001's runtimes, its
//! code size by crate, each guest's size after every pipeline stage, and, with
//! `--levers`, what each size lever saves, measured by building without it.
//!
//! Usage: `cargo run -p size-report --release -- [--levers] [--json PATH]`
//! (or `./x size`). With `speed` as its argument it prints the speed table instead
//! (`./x speed`, see speed.rs): it builds its profiles the way the size levers are built.

mod speed;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSection, ObjectSymbol, SectionKind};
use serde_json::{Value, json};

/// A textual change to one of demo-firmware's files that turns a lever off.
struct Edit {
    file: &'static str,
    from: &'static str,
    to: &'static str,
}

/// demo-firmware built without one lever.
struct Lever {
    name: &'static str,
    edits: &'static [Edit],
}

const NO_IMMEDIATE_ABORT: Edit = Edit {
    file: "Cargo.toml",
    from: "panic = \"immediate-abort\"",
    to: "panic = \"abort\"",
};

/// Pulley's SIMD opcodes back in the interpreter.
const WITH_SIMD: Edit = Edit {
    file: ".cargo/config.toml",
    from: "\"--cfg\", \"pulley_disable_interp_simd\",",
    to: "",
};

/// Whole 64 KiB pages for every guest instead of exactly its stack and data.
const WITH_64_KIB_PAGES: Edit = Edit {
    file: "build.rs",
    from: "Builder::new().fuel(",
    to: "Builder::new().exact_memory(false).fuel(",
};

const LEVERS: &[Lever] = &[
    Lever {
        name: "immediate-abort panics (vs `panic = \"abort\"`)",
        edits: &[NO_IMMEDIATE_ABORT],
    },
    Lever {
        name: "build-std of core and alloc (needed by immediate-abort; vs the prebuilt ones)",
        edits: &[
            NO_IMMEDIATE_ABORT,
            Edit { file: ".cargo/config.toml", from: "build-std = [\"core\", \"alloc\"]", to: "" },
            Edit { file: ".cargo/config.toml", from: "build-std-features = [\"optimize_for_size\"]", to: "" },
        ],
    },
    Lever {
        name: "`-Zlocation-detail=none`",
        edits: &[Edit { file: ".cargo/config.toml", from: "\"-Z\", \"location-detail=none\",", to: "" }],
    },
    Lever {
        name: "opt-level \"z\" (vs \"s\") for every crate",
        edits: &[Edit { file: "Cargo.toml", from: "opt-level = \"z\"", to: "opt-level = \"s\"" }],
    },
    Lever {
        name: "opt-level \"z\" (vs \"s\") for wasmtime and pulley-interpreter only",
        edits: &[Edit {
            file: "Cargo.toml",
            from: "[profile.release]",
            to: "[profile.release.package.wasmtime]\nopt-level = \"s\"\n\
                 [profile.release.package.pulley-interpreter]\nopt-level = \"s\"\n\n[profile.release]",
        }],
    },
    Lever {
        name: "fat LTO (vs none)",
        edits: &[Edit { file: "Cargo.toml", from: "lto = \"fat\"", to: "lto = false" }],
    },
    Lever {
        name: "one codegen unit (vs 16)",
        edits: &[Edit { file: "Cargo.toml", from: "codegen-units = 1", to: "codegen-units = 16" }],
    },
    Lever {
        name: "`--cfg pulley_disable_interp_simd`",
        edits: &[WITH_SIMD],
    },
    Lever {
        name: "Wasm features the guests do not use off on both sides (vs Wasmtime's defaults)",
        edits: &[Edit {
            file: "../wasm-embed/src/config.rs",
            from: "config.wasm_features(WasmFeatures::all(), false);",
            to: "",
        }],
    },
    Lever {
        name: "1-byte pages: memory = stack + data (vs 64 KiB pages)",
        edits: &[WITH_64_KIB_PAGES],
    },
    Lever {
        name: "Pulley stack sized to the guest's code (vs a fixed 4 KiB)",
        edits: &[Edit {
            file: "build.rs",
            from: "Builder::new().fuel(",
            to: "Builder::new().max_wasm_stack(4 * 1024).fuel(",
        }],
    },
    Lever {
        name: "fuel checks, which stop a guest that loops forever (a cost: negative)",
        edits: &[Edit { file: "build.rs", from: ".fuel(1_000_000)", to: "" }],
    },
    Lever {
        name: "size profile: no names, address maps, debug symbols in the .cwasm (vs debug profile)",
        edits: &[Edit {
            file: "build.rs",
            from: "Builder::new().fuel(",
            to: "Builder::new().profile(wasm_embed_build::Profile::Debug).fuel(",
        }],
    },
];

/// Seed 001's measurements on the nRF52840-DK (wasmi, Wasmtime, wasm-interpreter).
const SEED: [(&str, [u64; 4]); 3] = [
    ("wasmi", [511_300, 5_676, 79_544, 580_000]),
    ("Wasmtime (seed 001)", [264_548, 5_764, 54_916, 316_000]),
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
    let base = measure(&repo().join("demo-firmware"), EXAMPLE).unwrap_or_else(|e| fail(&e));
    let mut lever_rows = Vec::new();
    if levers {
        for lever in LEVERS {
            eprintln!("size-report: building without {}", lever.name);
            let dir = variant(lever, EXAMPLE).unwrap_or_else(|e| fail(&e));
            let without = measure(&dir, &variant_example(lever, EXAMPLE)).unwrap_or_else(|e| fail(&e));
            lever_rows.push((lever.name, without));
        }
    }
    let mut boards = Vec::new();
    for board in BOARDS {
        eprintln!("size-report: building {}", board.name);
        boards.push((board, board_image(board).unwrap_or_else(|e| fail(&e))));
    }
    print_markdown(&base, &lever_rows);
    print_boards(&boards);
    let mut report = to_json(&base, &lever_rows);
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

/// A copy of demo-firmware with `lever`'s edits, under its own package name so its
/// outputs sit beside the real firmware's in the shared target directory. A lever that
/// edits the runtime crates (files named `../wasm-embed/...`) gets copies of both of them
/// and of the workspace root they inherit from, so the firmware and its build script use
/// the same edited crate: their Wasmtime settings must match.
fn variant(lever: &Lever, example: &str) -> Result<PathBuf, String> {
    let name = variant_name(lever, example);
    let dir = repo().join("target/size-report").join(&name);
    let with_crates = lever.edits.iter().any(|e| e.file.starts_with("../"));
    let firmware = if with_crates { dir.join("demo-firmware") } else { dir.clone() };
    let repo_path = repo().display().to_string();
    // (path relative to demo-firmware, as the lever names it; where the copy goes)
    // The example gets the variant's name: examples of one name from several packages
    // would overwrite each other in the shared target directory.
    let source = format!("examples/{example}.rs");
    let renamed = variant_example(lever, example);
    let mut files: Vec<(String, PathBuf)> = files_under(&repo().join("demo-firmware"))?
        .into_iter()
        .map(|f| {
            let to = if f == source { format!("examples/{renamed}.rs") } else { f.clone() };
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
    if let Some(edit) = lever.edits.iter().find(|e| !files.iter().any(|(f, _)| f == e.file)) {
        return Err(format!("demo-firmware/{} does not exist; update size-report's levers", edit.file));
    }
    for (file, path) in &files {
        let source = repo().join("demo-firmware").join(file);
        let mut text = std::fs::read_to_string(&source).map_err(|e| format!("{}: {e}", source.display()))?;
        match file.as_str() {
            "Cargo.toml" => {
                text = text.replace("name = \"demo-firmware\"", &format!("name = {name:?}"));
                text = text.replace(&format!("name = \"{example}\""), &format!("name = {renamed:?}"));
                let local = if with_crates { "\"../guests/" } else { "\"../" };
                text = text.replace(local, &format!("\"{repo_path}/{}", &local[4..]));
            }
            "../Cargo.toml" => text = text.replace(", \"size-report\"", ""),
            _ => {}
        }
        for edit in lever.edits.iter().filter(|e| e.file == file) {
            if !text.contains(edit.from) {
                return Err(format!("demo-firmware/{file} no longer contains `{}`; update size-report's levers", edit.from));
            }
            text = text.replace(edit.from, edit.to);
        }
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
        // Unchanged files keep their timestamps, so a warm rerun rebuilds nothing.
        if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(path, text).map_err(|e| e.to_string())?;
        }
    }
    Ok(firmware)
}

/// The program the report measures: seed 001's firmware, running the add guest.
const EXAMPLE: &str = "add";

/// The variant's package name: the example it measures and the lever.
fn variant_name(lever: &Lever, example: &str) -> String {
    let slug: String = lever.name.chars().filter(char::is_ascii_alphanumeric).take(24).collect();
    format!("{example}-{}", slug.to_ascii_lowercase())
}

fn variant_example(lever: &Lever, example: &str) -> String {
    format!("{example}-{}", variant_name(lever, example))
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

/// Builds and runs the firmware in `dir` (in demo-firmware's target directory) and
/// measures it.
fn measure(dir: &Path, example: &str) -> Result<Measurement, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(dir)
        .args(["run", "--release", "--example", example, "--message-format=json-render-diagnostics"])
        .env("CARGO_TARGET_DIR", repo().join("demo-firmware/target"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (mut executable, mut out_dir, mut firmware) = (None, None, String::new());
    for line in stdout.lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(message) if message.get("reason").is_some() => {
                if let Some(path) = message["executable"].as_str() {
                    executable = Some(PathBuf::from(path));
                }
                if message["reason"] == "build-script-executed"
                    && message["package_id"].as_str().is_some_and(|id| id.contains(&*dir.to_string_lossy()))
                {
                    out_dir = message["out_dir"].as_str().map(PathBuf::from);
                }
            }
            _ => {
                firmware.push_str(line);
                firmware.push('\n');
            }
        }
    }
    if !output.status.success() {
        return Err(format!("{} failed ({}):\n{firmware}", dir.display(), output.status));
    }
    let executable = executable.ok_or("cargo reported no executable")?;
    let out_dir = out_dir.ok_or("cargo reported no build-script output directory")?;
    let peak_heap = firmware
        .lines()
        .find_map(|l| l.strip_prefix("peak heap: ")?.strip_suffix(" bytes")?.parse().ok())
        .ok_or_else(|| format!("the firmware printed no peak heap:\n{firmware}"))?;
    let guests_path = out_dir.join("wasm-embed-report.json");
    let guests = std::fs::read_to_string(&guests_path).map_err(|e| format!("{}: {e}", guests_path.display()))?;
    let guests: Value = serde_json::from_str(&guests).map_err(|e| e.to_string())?;
    let mut cwasm_sections = Vec::new();
    for guest in guests["guests"].as_array().into_iter().flatten() {
        let name = guest["name"].as_str().unwrap_or("?").to_owned();
        let path = out_dir.join(format!("{name}.cwasm"));
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        cwasm_sections.push((name, sections_of(&bytes)?));
    }
    let (sections, heap_arena, crates) = elf(&executable)?;
    let flash = [".vector_table", ".text", ".rodata", ".data"].iter().map(|s| sections[s]).sum();
    Ok(Measurement {
        sections,
        flash,
        heap_arena,
        peak_heap,
        output: firmware,
        crates,
        guests,
        cwasm_sections,
    })
}

/// Builds `board`'s firmware (in demo-firmware's target directory, so the build script's
/// Wasmtime and binaryen are compiled once for all boards) and measures its image.
fn board_image(board: &Board) -> Result<BoardImage, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(repo().join(board.dir))
        .args(["build", "--release", "--bins", "--message-format=json-render-diagnostics"])
        .env("CARGO_TARGET_DIR", repo().join("demo-firmware/target"))
        .stderr(std::process::Stdio::inherit());
    if let Some(target) = board.target {
        command.args(["--target", target]);
    }
    let output = command.output().map_err(|e| format!("could not run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("building {} failed ({})", board.name, output.status));
    }
    let executable = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|message| message["executable"].as_str().map(PathBuf::from))
        .last()
        .ok_or_else(|| format!("cargo reported no executable for {}", board.name))?;
    let (sections, heap_arena, _) = elf(&executable)?;
    let flash = [".vector_table", ".text", ".rodata", ".data"].iter().map(|s| sections[s]).sum();
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
    for name in [".vector_table", ".text", ".rodata", ".data", ".bss"] {
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

fn print_markdown(base: &Measurement, levers: &[(&str, Measurement)]) {
    let s = &base.sections;
    println!("## demo-firmware (thumbv7em-none-eabihf) beside seed 001's runtimes\n");
    println!("| bytes | wasm-embed | {} |", SEED.map(|(name, _)| name).join(" | "));
    println!("|---|---:|{}", "---:|".repeat(SEED.len()));
    let row = |label: &str, ours: u64, seed: Option<usize>| {
        let seeds: Vec<String> = SEED.iter().map(|(_, v)| seed.map_or("–".into(), |i| group(v[i]))).collect();
        println!("| {label} | {} | {} |", group(ours), seeds.join(" | "));
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
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(259_932), "259,932");
        assert_eq!(signed(-12_038), "−12,038");
    }
}
