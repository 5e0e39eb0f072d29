//! What the build's integration tests share: paths, builders, prebuilt guests.
#![allow(dead_code)]

use std::path::PathBuf;

use wasm_embed::{Guest, Target};
use wasm_embed_build::{Builder, Output};

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
