//! `cargo wasm-embed new` and `add-guest` as a user runs them: every QEMU board's project
//! built and run in QEMU with its output and exit code checked, guests added and built
//! into it, the guide's files equal to what `new` writes, and each mistake one line.

mod common;
#[path = "../../wasm-embed-build/tests/common/image.rs"]
mod image;

use common::{cargo_wasm_embed, error_line, usage_error_line};
use image::image_size;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// An empty directory of this test's own, to make projects in.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scaffold").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn succeeds(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `new` for `board`, depending on this checkout by path, as the tests must before the
/// crates are published.
fn new_project(name: &str, board: &str, extra: &[&str]) -> PathBuf {
    // Names of their own: the projects share a target directory.
    let dir = scratch(name).join(name);
    let repo = repo();
    let mut args = vec![
        "new",
        dir.to_str().unwrap(),
        "--board",
        board,
        "--wasm-embed-path",
        repo.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let stdout = succeeds(&cargo_wasm_embed(&repo, &args));
    assert!(stdout.starts_with(&format!("wrote {name} for ")), "{stdout}");
    // The versions of the crates the repository's firmware for the same board (or kind
    // of board) uses, so that this build shares its compiled Wasmtime, Cranelift and
    // binaryen (Cargo drops what it does not need).
    let like = match board {
        "esp32-c6" => "boards/esp32-c3".to_owned(),
        _ => boards().into_iter().find(|b| b.name == board).and_then(|b| b.firmware).unwrap_or("demo-firmware".into()),
    };
    std::fs::copy(repo.join(like).join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    dir
}

/// An entry of the board list, as far as these tests read it.
struct BoardEntry {
    name: String,
    qemu: bool,
    firmware: Option<String>,
    target: String,
    flash: u64,
    ram: u64,
}

/// The board list `new` offers (boards.toml).
fn boards() -> Vec<BoardEntry> {
    let text = std::fs::read_to_string(repo().join("cargo-wasm-embed/boards.toml")).unwrap();
    let document: toml_edit::DocumentMut = text.parse().unwrap();
    document["board"]
        .as_array_of_tables()
        .unwrap()
        .iter()
        .filter(|b| b.contains_key("template"))
        .map(|b| BoardEntry {
            name: b["name"].as_str().unwrap().to_owned(),
            qemu: b.contains_key("qemu"),
            firmware: b.get("firmware").and_then(|f| f.as_str()).map(str::to_owned),
            target: b["target"].as_str().unwrap().to_owned(),
            flash: b["flash"].as_integer().unwrap() as u64,
            ram: b["ram"].as_integer().unwrap() as u64,
        })
        .collect()
}

/// Cargo in `dir`, in demo-firmware's target directory: one copy of the host's Wasmtime
/// and binaryen for every firmware the tests build. A new project's own code and the
/// crates it depends on by path compile without a warning: the user's first build would
/// show them (Cargo's line per crate, "`wasm-embed` (lib) generated 1 warning"). Notes on
/// registry crates, such as a future incompatibility, are not theirs to mend.
fn cargo(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", repo().join("demo-firmware/target"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warned = |l: &str| l.starts_with("warning: `") && l.contains(") generated ");
    assert!(!stderr.lines().any(warned), "{}: {stderr}", dir.display());
    output
}

const CHECKSUM_OUTPUT: &str = "guest says: checksum computed\nchecksum = 0x906e\n";

fn runs_in_qemu(name: &str, board: &str, extra: &[&str]) -> PathBuf {
    let dir = new_project(name, board, extra);
    let output = cargo(&dir, &["run", "--release"]);
    assert_eq!(succeeds(&output), CHECKSUM_OUTPUT);
    // The guest, a workspace of its own, gets its lock file.
    assert!(dir.join("guests/checksum/Cargo.lock").is_file());
    dir
}

#[test]
fn the_cortex_m4_project_runs_in_qemu_and_takes_a_guest_crate_a_component_and_a_prebuilt_file() {
    let dir = runs_in_qemu("m4-firmware", "qemu-m4", &[]);
    // A guest crate, listed and built: the generated module has its handle.
    let stdout = succeeds(&cargo_wasm_embed(&dir, &["add-guest", "adder"]));
    assert_eq!(
        stdout,
        "added guests/adder to Cargo.toml: the next build makes it `guests::adder`\n"
    );
    // A prebuilt file, copied beside it.
    let wasm = dir.parent().unwrap().join("doubler.wasm");
    std::fs::write(
        &wasm,
        wat::parse_str(r#"(module (func (export "double") (param i32) (result i32) local.get 0 i32.const 2 i32.mul))"#)
            .unwrap(),
    )
    .unwrap();
    succeeds(&cargo_wasm_embed(
        &dir,
        &["add-guest", "doubler", "--wasm", wasm.to_str().unwrap()],
    ));
    // A component, into a firmware of core modules: both crates get the feature it needs.
    assert_eq!(
        succeeds(&cargo_wasm_embed(&dir, &["add-guest", "summer", "--component"])),
        "added guests/summer to Cargo.toml: the next build makes it `guests::summer`\nnote: a component's bindings \
         pass strings and lists as `alloc`'s String and Vec: add `extern crate alloc;` to src/main.rs to name them\n"
    );
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(
            r#"guests = ["guests/checksum", "guests/adder", "guests/doubler.wasm", "guests/summer"]"#
        ),
        "{manifest}"
    );
    assert_eq!(manifest.matches(r#""component-model""#).count(), 2, "{manifest}");
    // The firmware calls them, as a user would next.
    let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap().replace(
        "    checksum.checksum(9)\n",
        "    let sum = guests::adder::Adder::new(&guests::adder::GUEST.load(&engine)?, ())?.add(2, 3)?;\n    \
         let double = guests::doubler::Doubler::new(&guests::doubler::GUEST.load(&engine)?, ())?.double(21)?;\n    \
         let mut summer = guests::summer::Summer::new(&guests::summer::GUEST.load_component(&engine)?, ())?;\n    \
         let total = summer.call(\"add\", |world, store| world.call_add(store, 4, 5))?;\n    \
         println!(\"add(2, 3) = {sum}, double(21) = {double}, summer's add(4, 5) = {total}\");\n    \
         checksum.checksum(9)\n",
    );
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
    let output = cargo(&dir, &["run", "--release"]);
    assert_eq!(
        succeeds(&output),
        "add(2, 3) = 5, double(21) = 42, summer's add(4, 5) = 9\nguest says: checksum computed\nchecksum = 0x906e\n"
    );
    // The stack's guard, which `new` turns on: a call that recurses without bound stops
    // at it with one line, and the run fails.
    let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap().replace(
        "fn run() -> Result<u32, Error> {\n",
        "fn run() -> Result<u32, Error> {\n    println!(\"depth {}\", deep(0));\n",
    ) + "\nfn deep(depth: u32) -> u32 {\n    let mut frame = [depth; 32];\n    core::hint::black_box(&mut frame);\n    \
       if core::hint::black_box(depth) == u32::MAX {\n        return 0;\n    }\n    \
       deep(depth + 1).wrapping_add(frame[depth as usize % 32])\n}\n";
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
    let output = cargo(&dir, &["run", "--release"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let line = stdout.trim_end();
    assert!(
        line.starts_with("error: the stack overflowed: it grew through its ")
            && line.ends_with("; give it more RAM (a smaller heap) or make the calls that ran less deep")
            && !line.contains('\n'),
        "{stdout}"
    );
}

#[test]
fn every_board_s_project_runs_in_qemu_or_builds_and_fits_its_chip() {
    let boards = boards();
    assert!(boards.len() >= 11, "{} boards", boards.len());
    // The Cortex-M4 project is the test above's; the nRF52840-DK's, below.
    for board in boards.iter().filter(|b| b.name != "qemu-m4" && b.name != "nrf52840-dk") {
        let name = format!("{}-firmware", board.name);
        if board.qemu {
            runs_in_qemu(&name, &board.name, &[]);
            continue;
        }
        // Its runner is the board's: it builds, and fits the chip.
        let dir = new_project(&name, &board.name, &[]);
        succeeds(&cargo(&dir, &["build", "--release"]));
        let elf = repo().join("demo-firmware/target").join(&board.target).join("release").join(&name);
        let (flash, ram) = image_size(&elf);
        assert!(flash <= board.flash && ram <= board.ram, "{}: {flash} B of flash, {ram} B of RAM", board.name);
        assert!(flash > 100_000, "{}: {flash} B of flash is not a firmware with Wasmtime", board.name);
    }
}

#[test]
fn the_component_project_runs_in_qemu_and_takes_a_second_component() {
    let dir = runs_in_qemu("component-firmware", "qemu-m4", &["--component"]);
    // Its main.rs has `extern crate alloc` already: no note.
    assert_eq!(
        succeeds(&cargo_wasm_embed(&dir, &["add-guest", "adder", "--component"])),
        "added guests/adder to Cargo.toml: the next build makes it `guests::adder`\n"
    );
    let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap().replace(
        "    // The first argument",
        "    let mut adder = guests::adder::Adder::new(&guests::adder::GUEST.load_component(&engine)?, ())?;\n    \
         let sum = adder.call(\"add\", |world, store| world.call_add(store, 2, 3))?;\n    \
         println!(\"add(2, 3) = {sum}\");\n    // The first argument",
    );
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
    let output = cargo(&dir, &["run", "--release"]);
    assert_eq!(
        succeeds(&output),
        "add(2, 3) = 5\nguest says: checksum computed\nchecksum = 0x906e\n"
    );
    // What the build wrote for the component, shown with its WIT types.
    let cwasm = newest_output("component-firmware", "checksum.cwasm");
    let shown = succeeds(&cargo_wasm_embed(&dir, &["inspect", cwasm.to_str().unwrap()]));
    for line in [
        "kind:      component",
        "target:    pulley32-unknown-unknown-elf",
        "  log: func(message: string)",
        "  checksum: func(data: list<u8>) -> u32",
    ] {
        assert!(shown.lines().any(|l| l == line), "`{line}` missing from:\n{shown}");
    }
}

/// The newest `file` the build script of `package` wrote into its OUT_DIR.
fn newest_output(package: &str, file: &str) -> PathBuf {
    let build = repo().join("demo-firmware/target/thumbv7em-none-eabihf/release/build");
    std::fs::read_dir(&build)
        .unwrap()
        .map(|entry| entry.unwrap().path().join("out").join(file))
        .filter(|path| {
            let build_dir = path.parent().unwrap().parent().unwrap().file_name().unwrap();
            path.is_file() && build_dir.to_str().unwrap().starts_with(&format!("{package}-"))
        })
        .max_by_key(|path| std::fs::metadata(path).unwrap().modified().unwrap())
        .unwrap_or_else(|| panic!("no {file} in {}", build.display()))
}

#[test]
fn the_nrf52840_dk_project_builds_for_probe_rs_and_defmt() {
    // It cannot run here: it builds, and its runner is the board's.
    let dir = new_project("nrf-firmware", "nrf52840-dk", &[]);
    succeeds(&cargo(&dir, &["build", "--release"]));
    let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
    assert!(
        config.contains(r#"runner = "probe-rs run --chip nRF52840_xxAA""#),
        "{config}"
    );
    assert!(config.contains(r#""-C", "link-arg=-Tdefmt.x","#), "{config}");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("defmt-rtt = \"1\"") && manifest.contains("panic-probe"),
        "{manifest}"
    );
}

/// The guide's files: every fenced block whose info string names one
/// (```toml title="my-firmware/Cargo.toml"), as (path, text).
fn guide_files(guide: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some((_, title)) = line.strip_prefix("```").and_then(|info| info.split_once(" title=\"")) else {
            continue;
        };
        let text: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        files.push((title.trim_end_matches('"').to_owned(), text.join("\n") + "\n"));
    }
    files
}

/// The files of a project, relative to its parent, in a stable order.
fn project_files(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(next) = dirs.pop() {
        for path in std::fs::read_dir(&next).unwrap().map(|e| e.unwrap().path()) {
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path
                    .strip_prefix(dir.parent().unwrap())
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                files.push((name, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_guide_shows_the_files_new_writes() {
    // As a user outside this repository gets it: the crates by version.
    let dir = scratch("guide").join("my-firmware");
    succeeds(&cargo_wasm_embed(
        dir.parent().unwrap(),
        &["new", "my-firmware", "--board", "qemu-m4"],
    ));
    let written = project_files(&dir);
    let guide_path = repo().join("docs/guide.md");
    let mut guide = std::fs::read_to_string(&guide_path).unwrap();
    if std::env::var_os("UPDATE_GUIDE").is_some() {
        // Rewriting the guide passes by construction: never where the tests are the gate.
        assert!(std::env::var_os("CI").is_none(), "UPDATE_GUIDE is set in CI, where the guide must be checked, not rewritten");
        // Rewrites each titled block from what `new` wrote, as golden files are updated.
        for (path, text) in guide_files(&guide) {
            if let Some((_, now)) = written.iter().find(|(p, _)| *p == path) {
                guide = guide.replacen(
                    &format!("title=\"{path}\"\n{text}"),
                    &format!("title=\"{path}\"\n{now}"),
                    1,
                );
            }
        }
        std::fs::write(&guide_path, &guide).unwrap();
    }
    let shown = guide_files(&guide);
    for (path, text) in &written {
        if path.ends_with(".gitignore") {
            continue;
        }
        let Some((_, shown)) = shown.iter().find(|(p, _)| p == path) else {
            panic!("docs/guide.md shows no {path}")
        };
        assert_eq!(
            shown, text,
            "docs/guide.md shows another {path} than `new` writes (UPDATE_GUIDE=1 rewrites it)"
        );
    }
    for (path, _) in &shown {
        assert!(
            written.iter().any(|(p, _)| p == path),
            "docs/guide.md shows {path}, which `new` does not write"
        );
    }
    assert!(
        guide.contains(&format!("prints\n\n```\n{CHECKSUM_OUTPUT}```")),
        "the guide shows other output than the project prints"
    );
}

#[test]
fn every_mistake_is_one_line_and_exit_code_1() {
    let dir = scratch("mistakes");
    std::fs::create_dir(dir.join("taken")).unwrap();
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["new", "taken", "--board", "qemu-m4"])),
        "error: taken exists already; give `new` a directory that does not exist yet"
    );
    assert_eq!(
        usage_error_line(&cargo_wasm_embed(&dir, &["new", "fresh", "--board", "arduino-uno"])),
        format!(
            "error: invalid value 'arduino-uno' for '--board <BOARD>' [possible values: {}]; see --help",
            boards().iter().map(|b| b.name.as_str()).collect::<Vec<_>>().join(", ")
        )
    );
    assert_eq!(
        error_line(&cargo_wasm_embed(
            &dir,
            &["new", "fresh", "--board", "qemu-m4", "--wasm-embed-path", "nowhere"]
        )),
        format!(
            "error: {} is not a clone of wasm-embed (no wasm-embed/Cargo.toml and wasm-embed-build/Cargo.toml); give \
             --wasm-embed-path the repository's top directory",
            dir.join("nowhere").display()
        )
    );
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["add-guest", "filter"])),
        "error: the current directory is not a wasm-embed firmware (no Cargo.toml with [package.metadata.wasm-embed]); \
         run add-guest in the firmware's directory"
    );
    std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"app\"\n").unwrap();
    assert!(error_line(&cargo_wasm_embed(&dir, &["add-guest", "filter"])).contains("is not a wasm-embed firmware"));
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"app\"\n[package.metadata.wasm-embed]\nguests = []\n",
    )
    .unwrap();
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["add-guest", "../filter"])),
        "error: `../filter` is not a guest name; use lowercase letters, digits, `-` and `_`, starting with a letter"
    );
    std::fs::write(dir.join("text.wasm"), "not wasm").unwrap();
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["add-guest", "filter", "--wasm", "text.wasm"])),
        "error: text.wasm is not a .wasm file (no wasm magic); give --wasm a WebAssembly binary"
    );
    succeeds(&cargo_wasm_embed(&dir, &["add-guest", "filter"]));
    let guests_before = tree(&dir.join("guests"));
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["add-guest", "filter"])),
        "error: guests/filter exists already; choose another guest name"
    );
    // Another kind of guest that would become the same module.
    let wasm = wat::parse_str("(module)").unwrap();
    std::fs::write(dir.join("empty.wasm"), wasm).unwrap();
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["add-guest", "filter", "--wasm", "empty.wasm"])),
        "error: guests/filter is `guests::filter` already; choose another guest name"
    );
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["add-guest", "my_filter", "--component"])),
        "error: `my_filter` cannot name a component guest: it names its WIT world, which takes lowercase words \
         joined by `-`, each starting with a letter, and no WIT keyword; such as `my-filter`"
    );
    assert!(
        error_line(&cargo_wasm_embed(&dir, &["add-guest", "list", "--component"]))
            .ends_with("and no WIT keyword; such as `my-filter`")
    );
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["add-guest", "type"])),
        "error: `type` is a Rust keyword, which cannot name a guest's module; choose another name"
    );
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["add-guest", "Filter"])),
        "error: `Filter` is not a guest name; use lowercase letters, digits, `-` and `_`, starting with a letter"
    );
    // Nothing was half-written by the failed attempts: the manifest lists the one guest,
    // and guests/ holds what it held, byte for byte.
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("guests = [\"guests/filter\"]"), "{manifest}");
    assert_eq!(tree(&dir.join("guests")), guests_before);
}

/// Every file under `dir` with its bytes, and every directory, by path.
fn tree(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            entries.push((path.clone(), None));
            entries.extend(tree(&path));
        } else {
            entries.push((path.clone(), Some(std::fs::read(&path).unwrap())));
        }
    }
    entries.sort();
    entries
}

#[test]
fn every_verb_has_help() {
    for verb in ["new", "add-guest", "inspect", "keygen", "sign"] {
        let stdout = succeeds(&cargo_wasm_embed(&repo(), &[verb, "--help"]));
        assert!(stdout.contains("Usage: cargo wasm-embed"), "{verb}: {stdout}");
    }
    let version = succeeds(&cargo_wasm_embed(&repo(), &["--version"]));
    assert_eq!(version, format!("cargo-wasm-embed {}\n", env!("CARGO_PKG_VERSION")));
    // No verb: the help, on stderr, as a usage error.
    let bare = cargo_wasm_embed(&repo(), &[]);
    assert_eq!(bare.status.code(), Some(2), "{bare:?}");
    assert!(String::from_utf8_lossy(&bare.stderr).contains("Commands:"), "{bare:?}");
}
