//! `new` and `add-guest`: a firmware and its guests, written from the templates in
//! `templates/`.

use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, InlineTable, Item, Value};

/// A board the scaffold knows: its target, its runtime crates and how it prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Board {
    /// QEMU's mps2-an386: a Cortex-M4F, run with `cargo run --release`.
    #[value(name = "qemu-m4")]
    QemuM4,
    /// QEMU's mps2-an385: a Cortex-M3 (no FPU), run with `cargo run --release`.
    #[value(name = "qemu-m3")]
    QemuM3,
    /// QEMU's `virt` board with a riscv32imac core, run with `cargo run --release`.
    #[value(name = "qemu-riscv")]
    QemuRiscv,
    /// Nordic's nRF52840-DK, flashed and logged by `probe-rs run`.
    #[value(name = "nrf52840-dk")]
    Nrf52840Dk,
}

impl Board {
    fn target(self) -> &'static str {
        match self {
            Board::QemuM4 | Board::Nrf52840Dk => "thumbv7em-none-eabihf",
            Board::QemuM3 => "thumbv7m-none-eabi",
            Board::QemuRiscv => "riscv32imac-unknown-none-elf",
        }
    }

    /// `.cargo/config.toml`: the target, the runner and the flags.
    fn cargo_config(self) -> String {
        let template = match self {
            Board::QemuM4 | Board::QemuM3 => include_str!("../templates/config-qemu-arm.toml.in"),
            Board::QemuRiscv => include_str!("../templates/config-qemu-riscv.toml.in"),
            Board::Nrf52840Dk => include_str!("../templates/config-nrf52840-dk.toml.in"),
        };
        self.fill(template)
    }

    fn memory_map(self) -> &'static str {
        match self {
            Board::QemuM4 | Board::QemuM3 => include_str!("../templates/memory-mps2.x"),
            Board::QemuRiscv => include_str!("../templates/memory-virt.x"),
            Board::Nrf52840Dk => include_str!("../templates/memory-nrf52840.x"),
        }
    }

    /// `src/board.rs`: the entry point, `println!`, exit and the panic handler.
    fn module(self) -> String {
        let template = match self {
            Board::QemuM4 | Board::QemuM3 => include_str!("../templates/board-qemu-arm.rs"),
            Board::QemuRiscv => include_str!("../templates/board-qemu-riscv.rs"),
            Board::Nrf52840Dk => include_str!("../templates/board-nrf52840-dk.rs"),
        };
        self.fill(template)
    }

    /// The runtime, critical-section and output crates, as manifest lines.
    fn dependencies(self) -> &'static str {
        match self {
            Board::QemuM4 | Board::QemuM3 => {
                r#"cortex-m = { version = "0.7", features = ["critical-section-single-core"] }
cortex-m-rt = "0.7"
cortex-m-semihosting = "0.6"
"#
            }
            Board::QemuRiscv => {
                r#"riscv = { version = "0.16", features = ["critical-section-single-hart"] }
riscv-rt = { version = "0.18", features = ["single-hart"] }
semihosting = { version = "0.1", features = ["stdio"] }
"#
            }
            Board::Nrf52840Dk => {
                r#"cortex-m = { version = "0.7", features = ["critical-section-single-core"] }
cortex-m-rt = "0.7"
defmt = "1"
defmt-rtt = "1"
panic-probe = { version = "1", features = ["print-defmt"] }
"#
            }
        }
    }

    fn fill(self, template: &str) -> String {
        let (machine, cpu) = match self {
            Board::QemuM4 => ("mps2-an386", "cortex-m4"),
            Board::QemuM3 => ("mps2-an385", "cortex-m3"),
            Board::QemuRiscv => ("virt", "rv32"),
            Board::Nrf52840Dk => ("nRF52840-DK", "cortex-m4"),
        };
        template
            .replace("{target}", self.target())
            .replace("{machine}", machine)
            .replace("{cpu}", cpu)
    }
}

/// Where the project takes the wasm-embed crates from.
pub enum Crates {
    /// crates.io, by version: what a user outside this repository gets.
    Published,
    /// A clone of the repository, by path (with the version, as Cargo wants for a path
    /// dependency that may be published).
    Checkout(PathBuf),
}

impl Crates {
    /// The manifest value that depends on crate `name` with `features`.
    fn dependency(&self, name: &str, features: &[&str]) -> String {
        let version = env!("CARGO_PKG_VERSION");
        if matches!(self, Crates::Published) && features.is_empty() {
            return Value::from(version).to_string();
        }
        let mut table = InlineTable::new();
        table.insert("version", version.into());
        if let Crates::Checkout(dir) = self {
            table.insert("path", dir.join(name).display().to_string().into());
        }
        if !features.is_empty() {
            table.insert("features", Value::Array(features.iter().copied().collect()));
        }
        table.fmt();
        table.to_string()
    }
}

/// The first guest's name.
const FIRST_GUEST: &str = "checksum";

/// `cargo wasm-embed new`: a firmware in `dir` for `board`, with a first guest.
pub fn new(dir: &Path, board: Board, component: bool, crates: &Crates) -> Result<(), String> {
    if dir.exists() {
        return Err(format!(
            "{} exists already; give `new` a directory that does not exist yet",
            dir.display()
        ));
    }
    let name = package_name(dir)?;
    let (runtime, build) = if component {
        (
            &["platform", "log-off", "component-model"][..],
            &["component-model"][..],
        )
    } else {
        (&["platform", "log-off"][..], &[][..])
    };
    let manifest = include_str!("../templates/Cargo.toml.in")
        .replace("{name}", &name)
        .replace("{guest}", FIRST_GUEST)
        .replace("{wasm_embed}", &crates.dependency("wasm-embed", runtime))
        .replace("{wasm_embed_build}", &crates.dependency("wasm-embed-build", build))
        .replace("{board_dependencies}", board.dependencies());
    let main = if component {
        include_str!("../templates/main-component.rs")
    } else {
        include_str!("../templates/main.rs")
    };
    let files = [
        ("Cargo.toml", manifest),
        (
            "rust-toolchain.toml",
            board.fill(include_str!("../templates/rust-toolchain.toml.in")),
        ),
        (".cargo/config.toml", board.cargo_config()),
        ("memory.x", board.memory_map().to_owned()),
        ("build.rs", include_str!("../templates/build.rs").to_owned()),
        ("src/main.rs", main.to_owned()),
        ("src/board.rs", board.module()),
        (".gitignore", include_str!("../templates/gitignore").to_owned()),
    ];
    write_files(dir, &files)?;
    write_guest(
        &dir.join("guests").join(FIRST_GUEST),
        FIRST_GUEST,
        if component {
            GuestKind::Component
        } else {
            GuestKind::Checksum
        },
    )?;
    let run = match board {
        Board::Nrf52840Dk => "with the board connected, `cargo run --release` flashes it and prints its log",
        _ => "`cargo run --release` builds it and runs it in QEMU",
    };
    let board = clap::ValueEnum::to_possible_value(&board).expect("every board has a name");
    println!("wrote {name} for {} in {}: {run}", board.get_name(), dir.display());
    Ok(())
}

/// What a new guest crate holds.
enum GuestKind {
    /// The first guest: a CRC-16 with an import.
    Checksum,
    /// The first guest as a component.
    Component,
    /// A guest `add-guest` adds: one export to start from.
    Plain,
    /// A component `add-guest` adds.
    PlainComponent,
}

fn write_guest(dir: &Path, name: &str, kind: GuestKind) -> Result<(), String> {
    let (manifest, lib, world) = match kind {
        GuestKind::Checksum => (
            include_str!("../templates/guest/Cargo.toml.in"),
            include_str!("../templates/guest/lib.rs"),
            None,
        ),
        GuestKind::Component => (
            include_str!("../templates/guest-component/Cargo.toml.in"),
            include_str!("../templates/guest-component/lib.rs"),
            Some(include_str!("../templates/guest-component/world.wit")),
        ),
        GuestKind::Plain => (
            include_str!("../templates/added-guest/Cargo.toml.in"),
            include_str!("../templates/added-guest/lib.rs"),
            None,
        ),
        GuestKind::PlainComponent => (
            include_str!("../templates/added-component/Cargo.toml.in"),
            include_str!("../templates/added-component/lib.rs"),
            Some(include_str!("../templates/added-component/world.wit")),
        ),
    };
    // A component's world is named after the guest.
    let fill = |template: &str| template.replace("{guest}", name);
    let mut files = vec![("Cargo.toml", fill(manifest)), ("src/lib.rs", fill(lib))];
    if let Some(world) = world {
        files.push(("wit/world.wit", fill(world)));
    }
    write_files(dir, &files)
}

/// What `add-guest` adds.
pub enum NewGuest {
    Crate,
    Component,
    Prebuilt(PathBuf),
}

/// `cargo wasm-embed add-guest`: a guest in `guests/` of the firmware in `dir` (the
/// current directory, which messages name it as), listed in its manifest.
pub fn add_guest(dir: &Path, name: &str, guest: NewGuest) -> Result<(), String> {
    let manifest_path = dir.join("Cargo.toml");
    let not_firmware = || {
        "the current directory is not a wasm-embed firmware (no Cargo.toml with [package.metadata.wasm-embed]); \
         run add-guest in the firmware's directory"
            .to_owned()
    };
    let text = std::fs::read_to_string(&manifest_path).map_err(|_| not_firmware())?;
    let mut manifest: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| format!("Cargo.toml: {}", e.message()))?;
    let Some(metadata) = manifest
        .get_mut("package")
        .and_then(|p| p.get_mut("metadata"))
        .and_then(|m| m.get_mut("wasm-embed"))
        .and_then(Item::as_table_like_mut)
    else {
        return Err(not_firmware());
    };
    // The name becomes a Rust module, `guests::<name>`, as the build names it.
    let is_module_name = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !is_module_name {
        return Err(format!(
            "`{name}` is not a guest name; use lowercase letters, digits, `-` and `_`, starting with a letter"
        ));
    }
    if RUST_KEYWORDS.contains(&name) {
        return Err(format!("`{name}` is a Rust keyword, which cannot name a guest's module; choose another name"));
    }
    if matches!(guest, NewGuest::Component) && !is_wit_name(name) {
        let suggestion = name.replace('_', "-");
        let example = if is_wit_name(&suggestion) { suggestion.as_str() } else { "my-filter" };
        return Err(format!(
            "`{name}` cannot name a component guest: it names its WIT world, which takes lowercase words joined by \
             `-`, each starting with a letter, and no WIT keyword; such as `{example}`"
        ));
    }
    let entry = match guest {
        NewGuest::Prebuilt(_) => format!("guests/{name}.wasm"),
        _ => format!("guests/{name}"),
    };
    if dir.join(&entry).exists() {
        return Err(format!("{entry} exists already; choose another guest name"));
    }
    let guests = metadata
        .entry("guests")
        .or_insert(Item::Value(Value::Array(Array::new())));
    let Some(list) = guests.as_array_mut() else {
        return Err("Cargo.toml: `guests` in [package.metadata.wasm-embed] is not a list".to_owned());
    };
    let module = module_name(&entry);
    if let Some(taken) = list.iter().filter_map(|e| e.as_str()).find(|e| module_name(e) == module) {
        return Err(format!("{taken} is `guests::{module}` already; choose another guest name"));
    }
    list.push(entry.as_str());
    let component = matches!(guest, NewGuest::Component);
    match guest {
        NewGuest::Crate => write_guest(&dir.join(&entry), name, GuestKind::Plain)?,
        NewGuest::Component => {
            write_guest(&dir.join(&entry), name, GuestKind::PlainComponent)?;
            enable_components(&mut manifest);
        }
        NewGuest::Prebuilt(file) => {
            let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if !bytes.starts_with(b"\0asm") {
                return Err(format!(
                    "{} is not a .wasm file (no wasm magic); give --wasm a WebAssembly binary",
                    file.display()
                ));
            }
            write_files(dir, &[(entry.as_str(), bytes)])?;
        }
    }
    std::fs::write(&manifest_path, manifest.to_string()).map_err(|e| format!("cannot write Cargo.toml: {e}"))?;
    println!("added {entry} to Cargo.toml: the next build makes it `guests::{module}`");
    let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap_or_default();
    if component && !main.contains("extern crate alloc") {
        println!(
            "note: a component's bindings pass strings and lists as `alloc`'s String and Vec: add `extern crate \
             alloc;` to src/main.rs to name them"
        );
    }
    Ok(())
}

/// The module a guest list entry becomes: its file or directory name, lower case, with
/// `_` for each character a Rust name cannot hold (the build's rule for a prebuilt file;
/// a crate's is its package name, which is the directory's for the guests this writes).
fn module_name(entry: &str) -> String {
    let file = entry.rsplit('/').next().unwrap_or(entry);
    let stem = file.strip_suffix(".wasm").unwrap_or(file);
    stem.to_ascii_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_")
}

/// Whether `name` can name a WIT world: lowercase words, each starting with a letter,
/// joined by `-`, and not one of WIT's keywords.
fn is_wit_name(name: &str) -> bool {
    name.split('-').all(|word| {
        word.starts_with(|c: char| c.is_ascii_lowercase())
            && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    }) && !WIT_KEYWORDS.contains(&name)
}

/// Rust's keywords, strict and reserved: a module cannot take one as its name.
const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate", "do", "dyn", "else",
    "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod",
    "move", "mut", "override", "priv", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true",
    "try", "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// WIT's keywords, which a world cannot take as its name without a `%`.
const WIT_KEYWORDS: &[&str] = &[
    "as", "async", "bool", "borrow", "char", "constructor", "enum", "error-context", "export", "f32", "f64", "flags",
    "float32", "float64", "func", "future", "import", "include", "interface", "list", "option", "own", "package",
    "record", "resource", "result", "s16", "s32", "s64", "s8", "static", "stream", "string", "tuple", "type", "u16",
    "u32", "u64", "u8", "use", "variant", "with", "world",
];

/// Turns on the `component-model` feature of both crates, which component guests need.
fn enable_components(manifest: &mut DocumentMut) {
    for (table, name) in [
        ("dependencies", "wasm-embed"),
        ("build-dependencies", "wasm-embed-build"),
    ] {
        let Some(dependency) = manifest.get_mut(table).and_then(|t| t.get_mut(name)) else {
            continue;
        };
        if let Some(version) = dependency.as_str().map(str::to_owned) {
            let mut inline = InlineTable::new();
            inline.insert("version", version.into());
            *dependency = Item::Value(Value::InlineTable(inline));
        }
        let Some(dependency) = dependency.as_table_like_mut() else {
            continue;
        };
        let features = dependency
            .entry("features")
            .or_insert(Item::Value(Value::Array(Array::new())));
        if let Some(features) = features.as_array_mut() {
            if !features.iter().any(|f| f.as_str() == Some("component-model")) {
                features.push("component-model");
            }
        }
    }
}

/// The package name a directory gives, or why it gives none.
fn package_name(dir: &Path) -> Result<String, String> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "`{}` does not name a package; end the path in letters, digits, `-` and `_`, starting with a letter",
            dir.display()
        ))
    }
}

fn write_files(dir: &Path, files: &[(&str, impl AsRef<[u8]>)]) -> Result<(), String> {
    for (path, contents) in files {
        let path = dir.join(path);
        let parent = path.parent().expect("a file in the project");
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        std::fs::write(&path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
