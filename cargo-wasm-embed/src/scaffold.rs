//! `new` and `add-guest`: a firmware and its guests, written from the templates in
//! `templates/`.

use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, InlineTable, Item, Value};

/// The board list: every board and core wasm-embed runs on (the tests and `./x size`
/// read the same file).
const BOARDS: &str = include_str!("../boards.toml");

/// A board `new` writes a firmware for: an entry of `boards.toml`.
#[derive(Clone, Debug)]
pub struct Board {
    name: String,
    description: String,
    /// The Rust target's name.
    target: String,
    /// Whether the target is a spec of `targets/` (a core without compare-and-swap).
    spec: bool,
    /// QEMU's machine and CPU, for the boards QEMU runs.
    qemu: Option<(String, String)>,
    /// The kind of firmware: which template files.
    template: String,
    /// The chip's name for probe-rs.
    chip: String,
}

/// Every board of `boards.toml`, in its order.
pub fn boards() -> Vec<Board> {
    let document: DocumentMut = BOARDS.parse().expect("boards.toml is TOML");
    let text = |board: &toml_edit::Table, key: &str| board.get(key).and_then(Item::as_str).unwrap_or("").to_owned();
    document["board"]
        .as_array_of_tables()
        .expect("boards.toml lists [[board]]s")
        .iter()
        .map(|board| Board {
            name: text(board, "name"),
            description: text(board, "description"),
            target: text(board, "target"),
            spec: board.get("spec").and_then(Item::as_bool).unwrap_or(false),
            qemu: board.get("qemu").and_then(Item::as_array).map(|pair| {
                let part = |i: usize| pair.get(i).and_then(Value::as_str).unwrap_or("").to_owned();
                (part(0), part(1))
            }),
            template: text(board, "template"),
            chip: text(board, "chip"),
        })
        .collect()
}

/// The `--board` values, for clap.
pub fn board_names() -> clap::builder::PossibleValuesParser {
    // clap keeps possible values as `&'static str`; the list is read once per run.
    let names: Vec<&'static str> = boards().into_iter().map(|b| &*Box::leak(b.name.into_boxed_str())).collect();
    clap::builder::PossibleValuesParser::new(names)
}

impl Board {
    /// The board named `name`, which clap checked is one.
    pub fn named(name: &str) -> Board {
        boards().into_iter().find(|b| b.name == name).expect("clap accepts only the boards' names")
    }

    /// `.cargo/config.toml`: the target, the runner and the flags.
    fn cargo_config(&self) -> String {
        let template = match self.template.as_str() {
            "qemu-arm" | "qemu-an505" | "qemu-armv6m" => include_str!("../templates/config-qemu-arm.toml.in"),
            "qemu-riscv" => include_str!("../templates/config-qemu-riscv.toml.in"),
            "nrf52840-dk" => include_str!("../templates/config-nrf52840-dk.toml.in"),
            "rp2350" | "rp2040" => include_str!("../templates/config-rp.toml.in"),
            "esp32c3" | "esp32c6" => include_str!("../templates/config-esp.toml.in"),
            other => unreachable!("boards.toml names a template `{other}` the scaffold lacks"),
        };
        self.fill(template)
    }

    /// `memory.x`, for the boards whose runtime crate takes it from the firmware.
    fn memory_map(&self) -> Option<&'static str> {
        match self.template.as_str() {
            "qemu-arm" | "qemu-armv6m" => Some(include_str!("../templates/memory-mps2.x")),
            "qemu-an505" => Some(include_str!("../templates/memory-an505.x")),
            "qemu-riscv" => Some(include_str!("../templates/memory-virt.x")),
            "nrf52840-dk" => Some(include_str!("../templates/memory-nrf52840.x")),
            "rp2350" => Some(include_str!("../templates/memory-rp2350.x")),
            "rp2040" => Some(include_str!("../templates/memory-rp2040.x")),
            _ => None,
        }
    }

    /// `build.rs`: it copies memory.x where the linker finds it, if the board has one.
    fn build_script(&self) -> &'static str {
        match self.memory_map() {
            Some(_) => include_str!("../templates/build.rs"),
            None => include_str!("../templates/build-esp.rs"),
        }
    }

    /// `src/board.rs`: the entry point, `println!`, exit and the panic handler.
    fn module(&self) -> String {
        let template = match self.template.as_str() {
            "qemu-arm" | "qemu-an505" => include_str!("../templates/board-qemu-arm.rs"),
            "qemu-armv6m" => include_str!("../templates/board-qemu-armv6m.rs"),
            "qemu-riscv" => include_str!("../templates/board-qemu-riscv.rs"),
            "nrf52840-dk" => include_str!("../templates/board-nrf52840-dk.rs"),
            "rp2350" | "rp2040" => include_str!("../templates/board-rp.rs"),
            _ => include_str!("../templates/board-esp.rs"),
        };
        self.fill(template)
    }

    /// The runtime, critical-section and output crates, as manifest lines.
    fn dependencies(&self) -> String {
        let semihosting_arm = r#"cortex-m = { version = "0.7", features = ["critical-section-single-core"] }
cortex-m-rt = "0.7"
cortex-m-semihosting = "0.6"
"#;
        let rp = |chip: &str| {
            format!(
                r#"# The chip's boot code, clocks and critical section (its hardware spinlock, safe on
# both cores).
embassy-rp = {{ version = "0.10", features = ["{chip}", "critical-section-impl"] }}
cortex-m = {{ version = "0.7", features = ["inline-asm"] }}
cortex-m-rt = "0.7"
defmt = "1"
defmt-rtt = "1"
panic-probe = {{ version = "1", features = ["print-defmt"] }}
"#
            )
        };
        let esp = |chip: &str| {
            format!(
                r#"esp-hal = {{ version = "1.2", features = ["{chip}"] }}
esp-bootloader-esp-idf = {{ version = "0.6", features = ["{chip}"] }}
esp-println = {{ version = "0.18", features = ["{chip}"] }}
esp-backtrace = {{ version = "0.20", features = ["{chip}", "panic-handler", "println"] }}
"#
            )
        };
        match self.template.as_str() {
            "qemu-arm" | "qemu-an505" | "qemu-armv6m" => semihosting_arm.to_owned(),
            "qemu-riscv" => r#"riscv = { version = "0.16", features = ["critical-section-single-hart"] }
riscv-rt = { version = "0.18", features = ["single-hart"] }
semihosting = { version = "0.1", features = ["stdio"] }
"#
            .to_owned(),
            "nrf52840-dk" => r#"cortex-m = { version = "0.7", features = ["critical-section-single-core"] }
cortex-m-rt = "0.7"
defmt = "1"
defmt-rtt = "1"
panic-probe = { version = "1", features = ["print-defmt"] }
"#
            .to_owned(),
            "rp2350" => rp("rp235xa"),
            "rp2040" => rp("rp2040"),
            other => esp(other),
        }
    }

    /// The release profile's panic line: a trap instruction where nothing prints it, a
    /// message where esp-backtrace does.
    fn panic_profile(&self) -> &'static str {
        if self.template.starts_with("esp32") {
            "# esp-backtrace prints where a panic happened.\npanic = \"abort\"\n"
        } else {
            "# A panic is a trap instruction: no formatting code, no messages in flash.\npanic = \"immediate-abort\"\n"
        }
    }

    /// The features of wasm-embed this board needs beyond the common ones: the main
    /// stack's guard, except under esp-hal, which has its own; and on a core without
    /// compare-and-swap, the operations emulated.
    fn runtime_features(&self) -> Vec<&'static str> {
        let mut features = Vec::new();
        if !self.template.starts_with("esp32") {
            features.push("stack-guard");
        }
        if self.spec {
            features.push("emulated-cas");
        }
        features
    }

    /// Whether `cargo run` runs it in QEMU, rather than flashing a board.
    pub fn runs_in_qemu(&self) -> bool {
        self.qemu.is_some()
    }

    fn fill(&self, template: &str) -> String {
        let (machine, cpu) = self.qemu.clone().unwrap_or_default();
        let target_file = if self.spec { format!("targets/{}.json", self.target) } else { self.target.clone() };
        let json_spec = if self.spec {
            "# The target spec in targets/ (a core without compare-and-swap; docs/boards.md in\n\
             # wasm-embed's repository says why).\njson-target-spec = true\n"
        } else {
            ""
        };
        let rp_link = if self.template == "rp2040" {
            "  # The second-stage boot loader's place, from embassy-rp.\n  \"-C\", \"link-arg=-Tlink-rp.x\",\n"
        } else {
            ""
        };
        template
            .replace("{target_file}", &target_file)
            .replace("{target}", &self.target)
            .replace("{machine}", &machine)
            .replace("{cpu}", &cpu)
            .replace("{chip}", &self.chip)
            .replace("{description}", &self.description)
            .replace("{json_spec}", json_spec)
            .replace("{rp_link}", rp_link)
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
pub fn new(dir: &Path, board: &Board, component: bool, crates: &Crates) -> Result<(), String> {
    if dir.exists() {
        return Err(format!(
            "{} exists already; give `new` a directory that does not exist yet",
            dir.display()
        ));
    }
    let name = package_name(dir)?;
    let mut runtime = vec!["platform", "log-off"];
    runtime.extend(board.runtime_features());
    let build: &[&str] = if component {
        runtime.push("component-model");
        &["component-model"]
    } else {
        &[]
    };
    let manifest = include_str!("../templates/Cargo.toml.in")
        .replace("{name}", &name)
        .replace("{guest}", FIRST_GUEST)
        .replace("{wasm_embed}", &crates.dependency("wasm-embed", &runtime))
        .replace("{wasm_embed_build}", &crates.dependency("wasm-embed-build", build))
        .replace("{board_dependencies}", &board.dependencies())
        .replace("{panic_profile}", board.panic_profile());
    let main = if component {
        include_str!("../templates/main-component.rs")
    } else {
        include_str!("../templates/main.rs")
    };
    let mut files = vec![
        ("Cargo.toml".to_owned(), manifest),
        (
            "rust-toolchain.toml".to_owned(),
            board.fill(include_str!("../templates/rust-toolchain.toml.in")),
        ),
        (".cargo/config.toml".to_owned(), board.cargo_config()),
        ("build.rs".to_owned(), board.build_script().to_owned()),
        ("src/main.rs".to_owned(), main.to_owned()),
        ("src/board.rs".to_owned(), board.module()),
        (".gitignore".to_owned(), include_str!("../templates/gitignore").to_owned()),
    ];
    if let Some(memory) = board.memory_map() {
        files.insert(3, ("memory.x".to_owned(), memory.to_owned()));
    }
    if board.spec {
        files.push((format!("targets/{}.json", board.target), target_spec(&board.target).to_owned()));
    }
    let files: Vec<(&str, String)> = files.iter().map(|(path, text)| (path.as_str(), text.clone())).collect();
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
    let run = if board.runs_in_qemu() {
        "`cargo run --release` builds it and runs it in QEMU"
    } else {
        "with the board connected, `cargo run --release` flashes it and prints its log"
    };
    println!("wrote {name} for {} in {}: {run}", board.name, dir.display());
    Ok(())
}

/// The target spec of a core without compare-and-swap: rustc's own, with
/// `"atomic-cas": true`.
fn target_spec(target: &str) -> &'static str {
    match target {
        "thumbv6m-none-eabi" => include_str!("../targets/thumbv6m-none-eabi.json"),
        "riscv32imc-unknown-none-elf" => include_str!("../targets/riscv32imc-unknown-none-elf.json"),
        other => unreachable!("boards.toml names a target spec `{other}` the scaffold lacks"),
    }
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
