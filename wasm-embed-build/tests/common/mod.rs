//! What the build's integration tests share: paths, builders, prebuilt guests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use wasm_embed::{Guest, Target};
use wasm_embed_build::{Builder, Output};

// One reading of an image's size for this crate's tests and cargo-wasm-embed's, which
// includes the file by path.
mod image;
#[allow(unused_imports)]
pub use image::image_size;

/// The repository's top directory.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// One guest target directory for every test, so `core` is built for wasm once.
pub fn guest_target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guests")
}

/// A fresh output directory for one test.
pub fn out_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("out").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The output directory `out_dir(test)` made, without clearing it.
pub fn out_dir_path(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("out").join(test)
}

/// Bytes that live as long as a guest needs them to (`Guest::new` takes `&'static`).
pub fn leak(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

/// Writes `wat` as the binary module `file` in `test`'s own input directory: a prebuilt
/// guest.
pub fn module_file(test: &str, file: &str, wat: &str) -> PathBuf {
    let path = out_dir(&format!("{test}-input")).join(file);
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path
}

/// A builder for guests of this repository, writing into `test`'s own output directory
/// and compiling for this machine's Pulley.
pub fn builder(test: &str) -> Builder {
    let mut builder = Builder::new();
    builder
        .manifest_dir(repo())
        .out_dir(out_dir(test))
        .guest_target_dir(guest_target_dir())
        .target(Target::this_machine());
    builder
}

/// The guest `name` that `output` built, as the emitted module describes it.
pub fn built_guest(output: &Output, name: &str) -> &'static Guest {
    let built = output.guests.iter().find(|g| g.name == name).unwrap();
    let name: &'static str = Box::leak(built.name.clone().into_boxed_str());
    // SAFETY: the precompiler's output for these settings.
    let guest = unsafe { Guest::new(name, leak(std::fs::read(&built.cwasm).unwrap()), output.settings) };
    Box::leak(Box::new(guest))
}

/// An entry of the board list (`cargo-wasm-embed/boards.toml`), as far as the tests read it.
pub struct Board {
    pub name: String,
    pub target: String,
    /// Built for the target spec of that name in `cargo-wasm-embed/targets/`.
    pub spec: bool,
    pub flash: u64,
    pub ram: u64,
    /// demo-firmware runs on this core.
    pub demo: bool,
    /// This repository's firmware for the board.
    pub firmware: Option<String>,
}

impl Board {
    /// What `cargo --target` takes for it: its name, or its spec's path.
    pub fn target_argument(&self) -> String {
        if self.spec {
            repo().join("cargo-wasm-embed/targets").join(format!("{}.json", self.target)).display().to_string()
        } else {
            self.target.clone()
        }
    }
}

/// The board list.
pub fn boards() -> Vec<Board> {
    let text = std::fs::read_to_string(repo().join("cargo-wasm-embed/boards.toml")).unwrap();
    let list: toml::Table = text.parse().unwrap();
    list["board"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| Board {
            name: b["name"].as_str().unwrap().to_owned(),
            target: b["target"].as_str().unwrap().to_owned(),
            spec: b.get("spec").and_then(|v| v.as_bool()).unwrap_or(false),
            flash: b["flash"].as_integer().unwrap() as u64,
            ram: b["ram"].as_integer().unwrap() as u64,
            demo: b.get("demo").and_then(|v| v.as_bool()).unwrap_or(false),
            firmware: b.get("firmware").and_then(|v| v.as_str()).map(str::to_owned),
        })
        .collect()
}

/// The atomic instructions in the image at `path` that a core without compare-and-swap
/// lacks (LDREX/STREX on Arm; AMO, LR and SC on RISC-V), as llvm-objdump (the toolchain's
/// llvm-tools, which `./x` installs) prints them.
pub fn atomic_instructions(path: &Path) -> Vec<String> {
    let sysroot = std::process::Command::new("rustc").args(["--print", "sysroot"]).output().unwrap();
    let sysroot = String::from_utf8(sysroot.stdout).unwrap();
    let host = std::process::Command::new("rustc").args(["--print", "host-tuple"]).output().unwrap();
    let host = String::from_utf8(host.stdout).unwrap();
    let objdump = Path::new(sysroot.trim()).join("lib/rustlib").join(host.trim()).join("bin/llvm-objdump");
    let output = std::process::Command::new(&objdump)
        .arg("-d")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; `./x setup` installs llvm-tools", objdump.display()));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| {
            let mnemonic = line.split('\t').nth(2).unwrap_or("").trim();
            ["ldrex", "strex", "amo", "lr.w", "sc.w"].iter().any(|a| mnemonic.starts_with(a))
        })
        .map(str::to_owned)
        .collect()
}

/// `page` (under docs/) quotes the build error `message` as a line of its own, as cargo
/// prints it (`error: …`), with the repository's path written `…`.
pub fn quoted_in_docs(page: &str, message: &str) {
    let text = std::fs::read_to_string(repo().join("docs").join(page)).unwrap();
    let line = format!("error: {}", message.replace(&repo().display().to_string(), "…"));
    assert!(text.lines().any(|l| l == line), "docs/{page} does not quote: {line}");
}
