//! Paths shared by the integration tests.
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

/// A hand-written module equal in interface to guests/add, for tests that need a wasm
/// but not the guest build.
pub fn wat_add() -> Vec<u8> {
    wat::parse_str(
        r#"(module
             (import "host" "extra" (func $extra (result i32)))
             (func (export "add_with_extra") (param i32 i32) (result i32)
               local.get 0 local.get 1 i32.add call $extra i32.add))"#,
    )
    .unwrap()
}

/// `cwasm` as another Wasmtime major version (47) would have written it: Wasmtime's own
/// output with only the version record it checks first changed.
pub fn from_wasmtime_47(mut cwasm: Vec<u8>) -> Vec<u8> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(&*cwasm).unwrap();
    let section = file.section_by_name(".wasmtime.engine").unwrap().file_range().unwrap().0 as usize;
    // A format byte, then the length-prefixed version (`engine/serialization.rs`): the
    // major version alone, as Wasmtime 48 and later write it.
    assert_eq!(&cwasm[section..section + 2], b"\x00\x02");
    assert!(cwasm[section + 2..section + 4].iter().all(u8::is_ascii_digit));
    cwasm[section + 2..section + 4].copy_from_slice(b"47");
    cwasm
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
pub fn built_guest(output: &Output, name: &str) -> Guest {
    let built = output.guests.iter().find(|g| g.name == name).unwrap();
    let name: &'static str = Box::leak(built.name.clone().into_boxed_str());
    // SAFETY: the precompiler's output for these settings.
    unsafe { Guest::new(name, leak(std::fs::read(&built.cwasm).unwrap()), output.settings) }
}
