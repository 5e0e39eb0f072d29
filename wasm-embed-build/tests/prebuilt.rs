//! Guests given as prebuilt `.wasm` files: a module written here as text, and a C guest
//! compiled by clang, each built by the library, loaded and called; and each way a
//! prebuilt file can be wrong, refused with one line (invalid wasm and unsupported
//! features are in bad_input.rs).

mod common;

use common::{builder, built_guest, module_file};
use std::path::{Path, PathBuf};
use std::process::Command;

use wasm_embed::__private::{Context, GuestInstance};
use wasm_embed_build::{Error, Memory};
use wasmtime::{Caller, Extern, Func};


/// A sensor filter as a toolchain other than rustc might leave it: its memory and
/// `__heap_base` laid out by a linker, a `name` section with parameter names, an import
/// whose module is not a Rust name, and exports that are not Rust identifiers.
const SENSOR: &str = r#"(module
  (import "sensor-bus" "read" (func $read (param $channel i32) (result i32)))
  (memory (export "memory") 1)
  (global $stack_pointer (mut i32) (i32.const 1024))
  (global (export "__heap_base") i32 (i32.const 1040))
  (data (i32.const 1024) "wasm-embed")
  (func (export "sum-readings") (param $channels i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $channels)))
        (local.set $sum (i32.add (local.get $sum) (call $read (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $sum))
  (func (export "label_byte") (param $index i32) (result i32)
    (i32.load8_u offset=1024 (local.get $index))))"#;

#[test]
fn a_prebuilt_module_is_stripped_optimized_sized_precompiled_and_called() {
    let wasm = module_file("prebuilt", "sensor-filter.wasm", SENSOR);
    let output = builder("prebuilt").guest(wasm.to_str().unwrap()).try_compile().unwrap();
    assert_eq!(output.nested_builds, 0, "a prebuilt guest needs no cargo");
    let built = &output.guests[0];
    // Named after its file; its memory cut to the linker's layout (`__heap_base`).
    assert_eq!(built.name, "sensor_filter");
    assert_eq!(built.memory, Memory::Exact { bytes: 1040 });
    assert_eq!(built.sizes.compiled, std::fs::read(&wasm).unwrap().len());
    assert!(built.sizes.optimized <= built.sizes.stripped && built.sizes.stripped < built.sizes.compiled);
    // The file itself is what reruns the build.
    assert!(built.inputs.contains(&wasm.canonicalize().unwrap()), "{:?}", built.inputs);
    // Names that are not Rust identifiers are renamed, and the build says how.
    assert_eq!(
        output.warnings,
        ["guest `sensor_filter`: export `sum-readings` is not a Rust identifier; its binding is `sum_readings`"]
    );

    let module = std::fs::read_to_string(&output.module).unwrap();
    for line in [
        "/// Guest `sensor_filter`, prebuilt, from `",
        "pub mod sensor_filter {",
        "pub trait SensorBus {",
        "fn read(&mut self, memory: GuestMemory<'_>, channel: u32) -> Result<u32, Error>;",
        "pub fn sum_readings(&mut self, channels: u32) -> Result<u32, Error> {",
        "pub fn label_byte(&mut self, index: u32) -> Result<u32, Error> {",
    ] {
        assert!(module.contains(line), "{line}\n{module}");
    }

    let guest = built_guest(&output, "sensor_filter");
    let module = guest.load(&wasm_embed::engine(guest.settings()).unwrap()).unwrap();
    let read = |store: &mut _| {
        [Func::wrap(store, |mut caller: Caller<'_, Context<u32>>, channel: u32| {
            *caller.data_mut().host() += 1;
            channel * 10
        })
        .into()]
    };
    let mut sensor = GuestInstance::new(guest, &module, 0u32, read).unwrap();
    let sum = sensor.func::<u32, u32>("sum-readings").unwrap();
    assert_eq!(sensor.call(&sum, 4).unwrap(), 60);
    assert_eq!(*sensor.host(), 4);
    let label = sensor.func::<u32, u32>("label_byte").unwrap();
    let text: Vec<u8> = (0..10).map(|i| sensor.call(&label, i).unwrap() as u8).collect();
    assert_eq!(text, b"wasm-embed");
    // 1040 bytes of memory: the byte at 1039 is the last, 1040 is out of bounds.
    assert!(sensor.call(&label, 15).is_ok());
    assert!(sensor.call(&label, 16).is_err());
}

/// The on-device check's regression: data and no function. The stack bound must cover
/// the startup code that copies the data in, or instantiating it panics in Wasmtime.
#[test]
fn a_module_with_data_and_no_function_gets_the_stack_its_startup_code_needs() {
    let wat = std::fs::read_to_string(common::repo().join("pipeline-check/regressions/data-and-no-function.wat")).unwrap();
    let wasm = module_file("startup-only", "startup_only.wasm", &wat);
    let output = builder("startup-only").guest(wasm.to_str().unwrap()).try_compile().unwrap();
    let wasm_embed_build::Stack::Bounded { bytes } = output.guests[0].stack else {
        panic!("{:?}", output.guests[0].stack)
    };
    // The startup trampoline saves 16 registers: more than 128 bytes.
    assert!(bytes > 128, "{bytes}");
    let guest = built_guest(&output, "startup_only");
    let module = guest.load(&wasm_embed::engine(guest.settings()).unwrap()).unwrap();
    let mut instance = GuestInstance::new(guest, &module, (), |_: &mut _| -> [Extern; 0] { [] }).unwrap();
    assert_eq!(instance.memory().read(1324u32, 1u32).unwrap(), [0x0f]);
}

#[test]
fn a_prebuilt_module_without_heap_base_keeps_its_pages_with_a_warning_that_says_how_to_link_it() {
    let wasm = module_file(
        "prebuilt-pages",
        "counter.wasm",
        r#"(module (memory 1) (func (export "bump") (result i32)
             (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
             (i32.load (i32.const 0))))"#,
    );
    let output = builder("prebuilt-pages").guest(wasm.to_str().unwrap()).try_compile().unwrap();
    assert!(matches!(output.guests[0].memory, Memory::Standard { .. }), "{:?}", output.guests[0].memory);
    assert_eq!(
        output.warnings,
        [
            "guest `counter` keeps 64 KiB memory pages because it does not export __heap_base, the end of its \
             stack and data (link it with `--export=__heap_base`, for clang `-Wl,--export=__heap_base`, to give it \
             exact memory); each page costs the firmware 64 KiB of heap"
        ]
    );
    let guest = built_guest(&output, "counter");
    let module = guest.load(&wasm_embed::engine(guest.settings()).unwrap()).unwrap();
    let mut counter = GuestInstance::new(guest, &module, (), |_| -> [Extern; 0] { [] }).unwrap();
    let bump = counter.func::<(), u32>("bump").unwrap();
    assert_eq!((counter.call(&bump, ()).unwrap(), counter.call(&bump, ()).unwrap()), (1, 2));
}

/// The build error for the prebuilt guest `file`, written with `bytes`.
fn build_error(test: &str, file: &str, bytes: &[u8]) -> (Error, PathBuf) {
    let path = common::out_dir(&format!("{test}-input")).join(file);
    std::fs::write(&path, bytes).unwrap();
    let error = builder(test).guest(path.to_str().unwrap()).try_compile().unwrap_err();
    assert_eq!(error.to_string().lines().count(), 1, "{error}");
    (error, path)
}

#[test]
fn a_missing_file_a_file_that_is_not_wasm_and_clashing_names_are_one_line_each() {
    let error = builder("prebuilt-missing").guest("vendor/no-such-module.wasm").try_compile().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "prebuilt guest `vendor/no-such-module.wasm` not found: {} does not exist; give the path of a .wasm \
             file relative to the firmware's Cargo.toml",
            common::repo().join("vendor/no-such-module.wasm").display()
        )
    );
    common::quoted_in_docs("prebuilt.md", &error.to_string());

    let (error, path) = build_error("prebuilt-not-wasm", "notes.wasm", b"#!/bin/sh\necho not a module\n");
    assert_eq!(
        error.to_string(),
        format!(
            "guest `notes`: {} is not a WebAssembly module (it does not start with `\\0asm`); give the .wasm file \
             the guest's toolchain produced",
            path.canonicalize().unwrap().display()
        )
    );

    let clash = wat::parse_str(
        r#"(module (func (export "read-all") (result i32) i32.const 1) (func (export "read.all") (result i32) i32.const 2))"#,
    )
    .unwrap();
    let (error, _) = build_error("prebuilt-clash", "clash.wasm", &clash);
    assert_eq!(
        error.to_string(),
        "guest `clash`: `read-all` and `read.all` would both be `read_all` in its bindings (a name that is not a \
         Rust identifier has each other character replaced by `_`); rename one of them in the guest"
    );
}

/// clang, if this machine has it with a wasm32 linker.
fn clang() -> Option<PathBuf> {
    let works = Command::new("clang").arg("--version").output().is_ok_and(|o| o.status.success());
    let linker = Command::new("wasm-ld").arg("--version").output().is_ok_and(|o| o.status.success());
    (works && linker).then(|| PathBuf::from("clang"))
}

/// guests/c-filter/filter.c compiled as its README says.
fn compile_c_guest(clang: &Path, out: &Path) -> PathBuf {
    let wasm = out.join("filter.wasm");
    let source = common::repo().join("guests/c-filter/filter.c");
    let status = Command::new(clang)
        .args(["--target=wasm32", "-mcpu=mvp", "-O2", "-nostdlib", "-Wl,--no-entry"])
        .args(["-Wl,--export=__heap_base", "-Wl,--stack-first", "-Wl,-z,stack-size=1024", "-o"])
        .arg(&wasm)
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success(), "clang failed on {}", source.display());
    wasm
}

#[test]
fn a_c_guest_built_by_clang_runs_when_clang_is_installed() {
    let Some(clang) = clang() else {
        println!("the C guest is not tested: clang and wasm-ld were not found (apt-get install clang lld)");
        return;
    };
    let wasm = compile_c_guest(&clang, &common::out_dir("c-guest-input"));
    let output = builder("c-guest").guest(wasm.to_str().unwrap()).try_compile().unwrap();
    let built = &output.guests[0];
    assert_eq!(built.name, "filter");
    // wasm-ld lays out a 1 KiB stack, then the statics, so the guest gets 1-byte pages.
    let Memory::Exact { bytes } = built.memory else { panic!("{:?}", built.memory) };
    assert!((1024..2048).contains(&bytes), "{bytes}");
    let module = std::fs::read_to_string(&output.module).unwrap();
    assert!(module.contains("pub trait Env {"), "{module}");

    let guest = built_guest(&output, "filter");
    let module = guest.load(&wasm_embed::engine(guest.settings()).unwrap()).unwrap();
    let report = |store: &mut _| {
        [Func::wrap(store, |mut caller: Caller<'_, Context<Vec<u32>>>, average: u32| {
            caller.data_mut().host().push(average);
        })
        .into()]
    };
    let mut filter = GuestInstance::new(guest, &module, Vec::new(), report).unwrap();
    let add_sample = filter.func::<u32, u32>("filter").unwrap();
    let averages: Vec<u32> = [10, 20, 30, 40].iter().map(|&s| filter.call(&add_sample, s).unwrap()).collect();
    assert_eq!(averages, [10, 15, 20, 25]);
    assert_eq!(filter.host(), &averages);

    let buffer = filter.func::<(), u32>("buffer").unwrap();
    let at = filter.call(&buffer, ()).unwrap();
    filter.memory().write(at, b"abcde").unwrap();
    let fletcher16 = filter.func::<u32, u32>("fletcher16").unwrap();
    // Fletcher-16 of "abcde" is 0xC8F0.
    assert_eq!(filter.call(&fletcher16, 5).unwrap(), 0xC8F0);
}

#[test]
fn a_guest_taken_off_the_list_leaves_no_files_in_out_dir_and_the_firmwares_own_stay() {
    let keep = module_file("leftovers", "keep.wasm", r#"(module (func (export "one") (result i32) i32.const 1))"#);
    let drop = module_file("leftovers-dropped", "dropped.wasm", r#"(module (func (export "two") (result i32) i32.const 2))"#);
    builder("leftovers").guest(keep.to_str().unwrap()).guest(drop.to_str().unwrap()).compile();
    let out = common::out_dir_path("leftovers");
    // What a firmware's build script writes beside the guests (its memory map).
    std::fs::write(out.join("memory.x"), "MEMORY {}").unwrap();
    let files = |name: &str| -> Vec<String> {
        let mut found: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.starts_with(&format!("{name}.")))
            .collect();
        found.sort();
        found
    };
    assert!(files("dropped").contains(&"dropped.cwasm".to_owned()), "{:?}", files("dropped"));
    // The same build without it, into the same OUT_DIR.
    let mut again = wasm_embed_build::Builder::new();
    again
        .manifest_dir(common::repo())
        .out_dir(&out)
        .guest_target_dir(common::guest_target_dir())
        .target(wasm_embed::Target::this_machine())
        .guest(keep.to_str().unwrap());
    again.compile();
    assert_eq!(files("dropped"), Vec::<String>::new());
    assert!(files("keep").contains(&"keep.cwasm".to_owned()), "{:?}", files("keep"));
    assert!(out.join("memory.x").is_file());
}
