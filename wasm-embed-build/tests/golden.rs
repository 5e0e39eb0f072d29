//! The emitted module, compared with the golden files in `tests/golden/`, as prost-build
//! keeps its expected output: every change to the generated code shows up as a diff of
//! those files. Run with `UPDATE_GOLDEN=1` to rewrite them after a deliberate change.
//!
//! What depends on the machine rather than on the code generator is replaced by a name:
//! the output and repository directories, each `.cwasm`'s checksum and the sizes.

mod common;

use std::path::Path;

use common::{builder, module_file};
use wasm_embed_build::{Builder, Profile};

/// A prebuilt guest that imports from two modules, one of them not a Rust name, with and
/// without an `i32` that may be a pointer.
const SENSORS: &str = r#"(module
  (import "env" "now" (func $now (result i64)))
  (import "sensor-bus" "read" (func $read (param $channel i32) (result i32)))
  (import "sensor-bus" "calibrate" (func $calibrate (param $gain f32)))
  (memory (export "memory") 1)
  (global (export "__heap_base") i32 (i32.const 64))
  (func (export "sample") (param $channel i32) (result i32)
    (call $calibrate (f32.const 1.5))
    (drop (call $now))
    (call $read (local.get $channel))))"#;

/// The guests whose bindings show each shape: an import without pointers (add), one
/// with (log), exports that return pointers and no imports (compute), two imports of
/// one module (blinky), and a prebuilt module importing from two.
fn guests(test: &str) -> Builder {
    let sensors = module_file(test, "sensors.wasm", SENSORS);
    let mut builder = builder(test);
    for guest in ["guests/add", "guests/log", "guests/compute", "guests/blinky", sensors.to_str().unwrap()] {
        builder.guest(guest);
    }
    builder.fuel(1_000_000);
    builder
}

/// `module` with what depends on the machine named instead.
fn normalized(module: &str, out_dir: &Path) -> String {
    let mut text = module
        .replace(&out_dir.display().to_string(), "$OUT_DIR")
        .replace(&common::out_dir_path("").display().to_string(), "$TEST_DIR/")
        .replace(&common::repo().display().to_string(), "$REPO");
    while let Some(at) = text.find(".with_checksum(0x") {
        let start = at + ".with_checksum(".len();
        text.replace_range(start..start + 10, "CHECKSUM");
    }
    let text = text
        .lines()
        .map(|line| match line.split_once(": usize = ") {
            Some((name, _)) if name.trim_start().starts_with("pub const ") => format!("{name}: usize = SIZE;"),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    rustfmt(&text)
}

/// `text` as rustfmt lays it out: where lines break depends on how long the names that
/// replaced the directories are, not on where this clone is.
fn rustfmt(text: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let rustfmt = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let mut child = Command::new(rustfmt)
        .args(["--edition", "2024"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "rustfmt failed on the normalized module");
    String::from_utf8(output.stdout).unwrap()
}

/// Compares the module `builder` emits with `tests/golden/<file>`, and checks that it is
/// as rustfmt would write it.
fn assert_golden(builder: &Builder, test: &str, file: &str) {
    let output = builder.try_compile().unwrap();
    let check = std::process::Command::new(std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into()))
        .args(["--edition", "2024", "--check"])
        .arg(&output.module)
        .output()
        .unwrap();
    assert!(check.status.success(), "not rustfmt-clean:\n{}", String::from_utf8_lossy(&check.stdout));
    let module = std::fs::read_to_string(&output.module).unwrap();
    let actual = normalized(&module, &common::out_dir_path(test));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    if actual != expected {
        let line = actual.lines().zip(expected.lines()).position(|(a, e)| a != e).unwrap_or(0);
        panic!(
            "the generated module differs from {} from line {}:\n  now:    {}\n  golden: {}\n\
             if the change is meant, rerun with UPDATE_GOLDEN=1 and review the diff",
            golden.display(),
            line + 1,
            actual.lines().nth(line).unwrap_or("(end)"),
            expected.lines().nth(line).unwrap_or("(end)"),
        );
    }
}

#[test]
fn the_module_for_guests_of_every_shape_is_the_golden_one() {
    assert_golden(&guests("golden-guests"), "golden-guests", "guests.rs");
}

#[test]
fn the_module_for_skipped_guests_is_the_golden_one() {
    let mut builder = guests("golden-skipped");
    builder.skip(true);
    assert_golden(&builder, "golden-skipped", "skipped.rs");
}

#[test]
fn the_module_for_the_debug_profile_is_the_golden_one() {
    let mut builder = builder("golden-debug");
    builder.guest("guests/add").profile(Profile::Debug);
    assert_golden(&builder, "golden-debug", "debug.rs");
}
