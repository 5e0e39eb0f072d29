//! The pipeline on the host: guests/add built by the library, precompiled, loaded by
//! wasm-embed and called; each stage checked on its own.

mod common;

use common::{builder, built_guest, leak, wat_add};

use std::process::Command;

use wasm_embed::wasmtime::{Caller, Extern, Func, Store, WasmParams, WasmResults};
use wasm_embed::{Context, Fault, Guest, GuestInstance, Profile, Settings, Target};
use wasm_embed_build::compile::{self, CompileOptions};
use wasm_embed_build::pages::{self, Memory};
use wasm_embed_build::stack::{self, Stack};
use wasm_embed_build::{Builder, Error, locate, optimize, strip};
use wasmparser::{Parser, Payload, Validator, WasmFeatures};


/// Calls `add_with_extra(1, 2)` with `host.extra` returning 42.
fn call_add(guest: &Guest) -> Result<u32, wasm_embed::Error> {
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.module(&engine)?;
    let mut store = Store::new(&engine, ());
    let extra = Func::wrap(&mut store, || 42u32);
    let instance = guest.instantiate(&mut store, &module, &[extra.into()])?;
    let add = guest.func::<(u32, u32), u32>(&mut store, &instance, "add_with_extra")?;
    add.call(&mut store, (1, 2))
}

#[test]
fn add_guest_is_built_precompiled_loaded_and_returns_45() {
    let output = builder("add").guest("guests/add").build().unwrap();
    assert_eq!(output.guests.len(), 1);
    let built = &output.guests[0];
    assert_eq!(built.name, "add");
    let cwasm = std::fs::read(&built.cwasm).unwrap();
    assert_eq!(cwasm.len(), built.sizes.cwasm);
    // SAFETY: the bytes are the precompiler's output for these settings.
    let guest = unsafe { Guest::new("add", leak(cwasm), output.settings) };
    assert_eq!(call_add(&guest).unwrap(), 45);

    // The emitted module embeds the same file with the same settings.
    let module = std::fs::read_to_string(&output.module).unwrap();
    assert!(module.contains("pub mod add {"), "{module}");
    assert!(module.contains(&format!("{:?}", built.cwasm.display().to_string())), "{module}");
    let compact = |text: &str| text.replace(char::is_whitespace, "").replace(",}", "}");
    assert!(compact(&module).contains(&compact(&output.settings.to_rust())), "{module}");
    assert!(module.contains(&format!("pub const CWASM: usize = {};", built.sizes.cwasm)));
    // It touches no memory at all: wasm-opt removed the unused stack pointer, so the
    // memory is cut to nothing.
    assert_eq!(built.memory, Memory::Exact { bytes: 0 });
    // The guest's own source is among the files that trigger a rebuild.
    let source = common::repo().join("guests/add/src/lib.rs");
    assert!(built.inputs.contains(&source), "{:?}", built.inputs);
}

fn custom_sections(wasm: &[u8]) -> Vec<String> {
    Parser::new(0)
        .parse_all(wasm)
        .filter_map(|payload| match payload.unwrap() {
            Payload::CustomSection(section) => Some(section.name().to_owned()),
            _ => None,
        })
        .collect()
}

/// Appends custom sections with an empty name map / producers list / payload, which is
/// where a linker puts them.
fn with_custom_sections(wasm: &[u8], names: &[&str]) -> Vec<u8> {
    let mut out = wasm.to_vec();
    for name in names {
        // An empty producers section still holds its field count.
        let payload: &[u8] = if *name == "producers" { &[0] } else { &[] };
        let mut body = vec![u8::try_from(name.len()).unwrap()];
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(payload);
        out.push(0); // custom section id
        out.push(u8::try_from(body.len()).unwrap());
        out.extend(body);
    }
    out
}

fn validate(wasm: &[u8]) {
    // What wasm32v1-none allows: MVP plus mutable globals (floats are part of the MVP).
    let features = WasmFeatures::FLOATS | WasmFeatures::MUTABLE_GLOBAL;
    Validator::new_with_features(features).validate_all(wasm).unwrap();
}

#[test]
fn each_stage_outputs_valid_wasm_and_strip_removes_custom_sections() {
    let guest = locate::locate("guests/add", &common::repo()).unwrap().krate().unwrap().clone();
    assert_eq!((guest.package.as_str(), guest.name.as_str()), ("add", "add"));
    let options = CompileOptions {
        toolchain: compile::Toolchain::current().unwrap(),
        cargo_flags: Vec::new(),
        target_dir: common::guest_target_dir(),
        stack_size: 4096,
        initial_memory: 65536,
        keep_names: false,
    };
    let compiled = compile::compile(std::slice::from_ref(&guest), &options).unwrap().remove(0);
    let wasm = compiled.wasm;
    validate(&wasm);

    // rustc's `strip = "symbols"` already leaves none, so add the kinds a guest built
    // with other settings carries.
    let decorated = with_custom_sections(&wasm, &["name", "producers", "target_features", ".debug_info"]);
    validate(&decorated);
    assert_eq!(custom_sections(&decorated).len(), 4);
    let stripped = strip::strip("add", &decorated, false).unwrap();
    validate(&stripped);
    assert_eq!(custom_sections(&stripped), Vec::<String>::new());
    assert_eq!(stripped.len(), strip::strip("add", &wasm, false).unwrap().len());

    let optimized = optimize::optimize("add", &stripped, &common::out_dir("stages"), false).unwrap();
    validate(&optimized);
    assert!(optimized.len() <= stripped.len());
    assert_eq!(custom_sections(&optimized), Vec::<String>::new());
}

#[test]
fn cwasm_made_with_other_settings_is_refused_with_a_clear_error() {
    let wasm = wat_add();
    let other = Settings::new(match Target::this_machine() {
        Target::Pulley64 => Target::Pulley32,
        Target::Pulley32 => Target::Pulley64,
    });
    let cwasm = wasm_embed::precompile(&other, &wasm).unwrap();
    // SAFETY: precompiler output, but deliberately labelled with the wrong settings.
    let guest = unsafe { Guest::new("add", leak(cwasm), Settings::new(Target::this_machine())) };
    let error = call_add(&guest).unwrap_err().to_string();
    assert!(error.starts_with("guest `add`: its .cwasm does not match this firmware's engine"), "{error}");
    assert!(error.contains("Module was compiled for architecture"), "{error}");
    assert!(error.contains("rebuild it with wasm-embed-build"), "{error}");
}

#[test]
fn hand_written_add_runs_through_precompile_and_load() {
    let settings = Settings::new(Target::this_machine());
    let cwasm = wasm_embed::precompile(&settings, &wat_add()).unwrap();
    // SAFETY: the precompiler's output for these settings.
    let guest = unsafe { Guest::new("wat", leak(cwasm), settings) };
    assert_eq!(call_add(&guest).unwrap(), 45);
}

#[test]
fn missing_guest_path_names_the_path_and_the_fix() {
    let error = builder("missing").guest("guests/no-such-guest").build().unwrap_err();
    assert!(matches!(error, Error::GuestNotFound { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with("guest `guests/no-such-guest` not found:"), "{message}");
    assert!(message.contains("guests/no-such-guest/Cargo.toml does not exist"), "{message}");
    assert!(message.contains("give the path of the guest crate's directory"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn guest_that_is_not_a_cdylib_names_the_crate_and_the_fix() {
    let fixture = common::fixture("not-cdylib");
    let error = builder("not-cdylib").guest(fixture.to_str().unwrap()).build().unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("guest `not-cdylib` is not a cdylib"), "{message}");
    assert!(message.contains("add `[lib] crate-type = [\"cdylib\"]` to"), "{message}");
    assert!(message.contains("not-cdylib/Cargo.toml"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn guest_that_does_not_compile_shows_rustcs_message() {
    let fixture = common::fixture("broken");
    let error = builder("broken").guest(fixture.to_str().unwrap()).build().unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("guest `broken` did not compile for wasm32v1-none:\n"), "{message}");
    assert!(message.contains("error[E0425]: cannot find value `undefined_value` in this scope"), "{message}");
    assert!(message.contains("src/lib.rs:5:5"), "{message}");
    assert!(!message.contains("   Compiling"), "progress lines are dropped: {message}");
}

#[test]
fn guest_named_by_package_is_found_in_the_workspace() {
    let guest = locate::locate("add", &common::repo().join("guests")).unwrap();
    assert_eq!(guest.krate().unwrap().manifest_path, common::repo().join("guests/add/Cargo.toml"));
    let error = locate::locate("no-such-package", &common::repo().join("guests")).unwrap_err();
    assert!(error.to_string().contains("no package of that name in the workspace"), "{error}");
}

/// Precompiles `wat` for this machine and instantiates it with no imports.
fn instantiate(name: &'static str, wasm: &[u8]) -> (Guest, wasm_embed::wasmtime::Store<()>, wasm_embed::wasmtime::Instance) {
    let settings = Settings::new(Target::this_machine());
    let cwasm = wasm_embed::precompile(&settings, wasm).unwrap();
    // SAFETY: the precompiler's output for these settings.
    let guest = unsafe { Guest::new(name, leak(cwasm), settings) };
    let engine = wasm_embed::engine(&settings).unwrap();
    let module = guest.module(&engine).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = guest.instantiate(&mut store, &module, &[]).unwrap();
    (guest, store, instance)
}

#[test]
fn one_byte_pages_hold_exactly_the_stack_and_data_and_bounds_are_enforced() {
    let wasm = wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (global $stack_pointer (mut i32) (i32.const 1024))
             (data (i32.const 1024) "hello")
             (global (export "__heap_base") i32 (i32.const 1029))
             (func (export "load") (param i32) (result i32) local.get 0 i32.load8_u))"#,
    )
    .unwrap();
    let (sized, memory) = pages::shrink_memory("data", &wasm).unwrap();
    assert_eq!(memory, Memory::Exact { bytes: 1029 });
    // What only this stage needed is gone.
    assert!(!String::from_utf8_lossy(&sized).contains("__heap_base"));

    // Without the linker's word, a module may use any of its memory: it keeps it all.
    let unlinked = wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (data (i32.const 1024) "hello")
             (func (export "store") (param i32) local.get 0 i32.const 1 i32.store8))"#,
    )
    .unwrap();
    let (kept, memory) = pages::shrink_memory("unlinked", &unlinked).unwrap();
    assert_eq!(memory, Memory::Standard { reason: "it does not export __heap_base, the end of its stack and data" });
    assert_eq!(kept, unlinked);
    let features = WasmFeatures::FLOATS | WasmFeatures::MUTABLE_GLOBAL | WasmFeatures::CUSTOM_PAGE_SIZES;
    Validator::new_with_features(features).validate_all(&sized).unwrap();

    let (guest, mut store, instance) = instantiate("data", &sized);
    let load = guest.func::<u32, u32>(&mut store, &instance, "load").unwrap();
    assert_eq!(load.call(&mut store, 1028).unwrap(), u32::from(b'o'));
    let error = load.call(&mut store, 1029).unwrap_err().to_string();
    assert_eq!(error, "guest `data` trapped in `load`: out-of-bounds memory access, a bug in the guest");
    // The store survives the trap.
    assert_eq!(load.call(&mut store, 1024).unwrap(), u32::from(b'h'));
}

#[test]
fn guest_that_grows_its_memory_keeps_64_kib_pages_and_still_runs() {
    let wasm = wat::parse_str(
        r#"(module
             (memory 1 2)
             (func (export "grow") (result i32) i32.const 1 memory.grow))"#,
    )
    .unwrap();
    let (sized, memory) = pages::shrink_memory("grows", &wasm).unwrap();
    assert_eq!(memory, Memory::Standard { reason: "it uses memory.grow or memory.size" });
    assert_eq!(sized, wasm);

    let (guest, mut store, instance) = instantiate("grows", &sized);
    let grow = guest.func::<(), i32>(&mut store, &instance, "grow").unwrap();
    // The documented behaviour: memory is never reserved ahead or moved on a device, so
    // growing fails the way Wasm says it may, with -1, and the guest keeps running.
    assert_eq!(grow.call(&mut store, ()).unwrap(), -1);
    assert_eq!(grow.call(&mut store, ()).unwrap(), -1);
}

#[test]
fn debug_profile_keeps_names_and_a_trap_names_the_function() {
    let output = builder("add-debug").guest("guests/add").profile(Profile::Debug).build().unwrap();
    assert_eq!(output.settings.profile, Profile::Debug);
    let built = &output.guests[0];
    let size_profile = builder("add-size").guest("guests/add").build().unwrap();
    assert!(built.sizes.cwasm > size_profile.guests[0].sizes.cwasm, "{:?}", built.sizes);
    let optimized = std::fs::read(common::out_dir_path("add-debug").join("add.optimized.wasm")).unwrap();
    assert_eq!(custom_sections(&optimized), ["name"]);
    // SAFETY: the precompiler's output for these settings.
    let guest = unsafe { Guest::new("add", leak(std::fs::read(&built.cwasm).unwrap()), output.settings) };
    assert_eq!(call_add(&guest).unwrap(), 45);

    // A trap reports the function it happened in by name.
    let wasm = wat::parse_str(r#"(module (func $explode (export "run") unreachable))"#).unwrap();
    let settings = Settings { profile: Profile::Debug, ..Settings::new(Target::this_machine()) };
    let cwasm = wasm_embed::precompile(&settings, &wasm).unwrap();
    // SAFETY: the precompiler's output for these settings.
    let guest = unsafe { Guest::new("trap", leak(cwasm), settings) };
    let engine = wasm_embed::engine(&settings).unwrap();
    let module = guest.module(&engine).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = guest.instantiate(&mut store, &module, &[]).unwrap();
    let run = guest.func::<(), ()>(&mut store, &instance, "run").unwrap();
    let error = run.call(&mut store, ()).unwrap_err().to_string();
    assert!(error.contains("explode"), "{error}");
    assert!(error.contains("unreachable"), "{error}");
}

#[test]
fn skipped_guests_type_check_and_fail_to_load_with_a_clear_error() {
    let output = builder("skipped").guest("guests/add").skip(true).build().unwrap();
    let module = std::fs::read_to_string(&output.module).unwrap();
    assert!(
        module.contains("pub static GUEST: ::wasm_embed::Guest = ::wasm_embed::Guest::skipped(\"add\", super::SETTINGS);"),
        "{module}"
    );
    assert!(!module.contains("include_bytes!"), "{module}");
    let guest = Guest::skipped("add", output.settings);
    let error = call_add(&guest).unwrap_err().to_string();
    assert!(error.starts_with("guest `add` was not built: its build was skipped"), "{error}");
    assert!(error.ends_with("build the firmware with `cargo build` and WASM_EMBED_SKIP unset"), "{error}");
}

/// `guest` with its engine given `max_wasm_stack` bytes of Pulley stack instead.
fn with_pulley_stack(guest: &Guest, max_wasm_stack: usize) -> Guest {
    let settings = Settings { max_wasm_stack, ..*guest.settings() };
    // A copy: Wasmtime registers loaded code by address, so one image cannot be loaded
    // by two engines at once.
    // SAFETY: the same precompiler output; the Pulley stack size is not part of what
    // Wasmtime checks, only how much the engine allocates.
    unsafe { Guest::new(guest.name(), leak(guest.cwasm().to_vec()), settings) }
}

#[test]
fn pulley_stack_is_sized_to_the_guest_and_less_is_refused_at_build_time() {
    let output = builder("stack").guest("guests/add").build().unwrap();
    let built = &output.guests[0];
    let Stack::Bounded { bytes } = built.stack else { panic!("{:?}", built.stack) };
    // Entry trampoline, add_with_extra and the trampoline to the host's `extra`.
    assert!((64..1024).contains(&bytes), "{bytes}");
    assert_eq!(output.settings.max_wasm_stack, bytes.next_multiple_of(16));
    // SAFETY: the precompiler's output for these settings.
    let guest = unsafe { Guest::new("add", leak(std::fs::read(&built.cwasm).unwrap()), output.settings) };
    assert_eq!(call_add(&guest).unwrap(), 45);
    // Asking for less than the guest can use is refused at build time.
    let error = builder("stack-small").guest("guests/add").max_wasm_stack(64).build().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "guest `add` can use {bytes} bytes of Pulley stack but Builder::max_wasm_stack gives 64; \
             raise it to at least {bytes}, or remove the setting to size it automatically"
        )
    );
}

#[test]
fn recursion_and_table_calls_leave_the_pulley_stack_unbounded() {
    let settings = Settings::new(Target::this_machine());
    let recursive = wat::parse_str(
        r#"(module (func $count (export "count") (param i32) (result i32)
             local.get 0 i32.eqz if (result i32) i32.const 0 else
             local.get 0 i32.const 1 i32.sub call $count i32.const 1 i32.add end))"#,
    )
    .unwrap();
    let Stack::Unbounded { reason } = stack::pulley_stack("recursive", &settings, &recursive).unwrap() else {
        panic!("recursion was bounded")
    };
    assert!(reason.ends_with("calls itself (recursion)"), "{reason}");

    let table = wat::parse_str(
        r#"(module (type $t (func (result i32))) (table 1 funcref) (elem (i32.const 0) $one)
             (func $one (result i32) i32.const 1)
             (func (export "run") (result i32) i32.const 0 call_indirect (type $t)))"#,
    )
    .unwrap();
    assert_eq!(
        stack::pulley_stack("table", &settings, &table).unwrap(),
        Stack::Unbounded { reason: "it calls functions through a table (call_indirect)".into() }
    );
    // Chains of direct calls add up, and with no imports the bound is exact: Pulley
    // rounds its stack up to 16 bytes, and 16 fewer than the bound is too few.
    let chain = wat::parse_str(
        r#"(module (func $c (result i32) i32.const 1) (func $b (result i32) call $c i32.const 1 i32.add)
             (func $a (export "a") (result i32) call $b i32.const 1 i32.add)
             (func (export "leaf") (result i32) i32.const 1))"#,
    )
    .unwrap();
    let Stack::Bounded { bytes } = stack::pulley_stack("chain", &settings, &chain).unwrap() else { panic!() };
    let (guest, mut store, instance) = instantiate("chain", &chain);
    let a = guest.func::<(), i32>(&mut store, &instance, "a").unwrap();
    assert_eq!(a.call(&mut store, ()).unwrap(), 3);
    let engine_with = |max| {
        let short = with_pulley_stack(&guest, max);
        let engine = wasm_embed::engine(short.settings()).unwrap();
        let module = short.module(&engine).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = short.instantiate(&mut store, &module, &[]).unwrap();
        let a = short.func::<(), i32>(&mut store, &instance, "a").unwrap();
        a.call(&mut store, ()).map_err(|e| e.to_string())
    };
    assert_eq!(engine_with(bytes.next_multiple_of(16)), Ok(3));
    assert!(engine_with(bytes.next_multiple_of(16) - 16).unwrap_err().starts_with("guest `chain` trapped in `a`: stack overflow"));
}

#[test]
fn an_unchanged_guest_reuses_its_cwasm_and_a_settings_change_does_not() {
    let first = builder("reuse").guest("guests/add").build().unwrap();
    assert!(!first.guests[0].cwasm_reused);
    let again = Builder::new()
        .manifest_dir(common::repo())
        .out_dir(common::out_dir_path("reuse"))
        .guest_target_dir(common::guest_target_dir())
        .target(Target::this_machine())
        .guest("guests/add")
        .clone();
    let second = again.clone().build().unwrap();
    assert!(second.guests[0].cwasm_reused);
    assert_eq!(std::fs::read(&second.guests[0].cwasm).unwrap().len(), first.guests[0].sizes.cwasm);
    let debug = again.clone().profile(Profile::Debug).build().unwrap();
    assert!(!debug.guests[0].cwasm_reused);
}

#[test]
fn a_stable_toolchain_builds_the_guest_without_build_std_and_it_still_runs() {
    let output = builder("stable").guest("guests/add").toolchain("stable").build().unwrap();
    let built = &output.guests[0];
    let nightly = builder("nightly").guest("guests/add").build().unwrap();
    assert!(built.sizes.compiled > nightly.guests[0].sizes.compiled, "{:?}", built.sizes);
    // SAFETY: the precompiler's output for these settings.
    let guest = unsafe { Guest::new("add", leak(std::fs::read(&built.cwasm).unwrap()), output.settings) };
    assert_eq!(call_add(&guest).unwrap(), 45);
    println!("add guest: {} B of wasm on stable, {} B on nightly", built.sizes.compiled, nightly.guests[0].sizes.compiled);
}

#[test]
fn a_missing_toolchain_is_named_with_the_command_that_installs_it() {
    let error = builder("no-toolchain").guest("guests/add").toolchain("nightly-1999-01-01").build().unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("the Rust toolchain `nightly-1999-01-01` that builds the guests is not installed ("), "{message}");
    assert!(
        message.ends_with("install it: rustup toolchain install nightly-1999-01-01 --profile minimal --component rust-src"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
}

/// A `rustc` that is the real one of `toolchain` but reports an empty sysroot named
/// `name`, as a toolchain without rust-src or the wasm target would look.
fn rustc_without_components(toolchain: &str, name: &str) -> std::path::PathBuf {
    let dir = common::out_dir(&format!("fake-{name}"));
    let sysroot = dir.join(name);
    std::fs::create_dir_all(sysroot.join("lib/rustlib")).unwrap();
    let real = std::process::Command::new("rustup").args(["which", "rustc", "--toolchain", toolchain]).output().unwrap();
    assert!(real.status.success(), "{real:?}");
    let script = dir.join("rustc");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ \"$*\" = \"--print sysroot\" ]; then echo {:?}; else exec {:?} \"$@\"; fi\n",
            sysroot.display().to_string(),
            String::from_utf8_lossy(&real.stdout).trim()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn a_toolchain_without_rust_src_or_the_wasm_target_says_what_to_add() {
    let nightly = std::fs::read_to_string(common::repo().join("rust-toolchain.toml")).unwrap();
    let nightly = nightly.split('"').nth(1).unwrap().to_owned();
    let rustc = rustc_without_components(&nightly, "nightly-without-src");
    let error = compile::Toolchain::find("cargo".into(), rustc).unwrap_err().to_string();
    assert_eq!(
        error,
        "guests cannot be built: the toolchain lacks the `rust-src` component, which build-std compiles `core` \
         for the guest from; install it: rustup component add rust-src --toolchain nightly-without-src"
    );
    let rustc = rustc_without_components("stable", "stable-without-wasm");
    let error = compile::Toolchain::find("cargo".into(), rustc).unwrap_err().to_string();
    assert_eq!(
        error,
        "guests cannot be built: the toolchain lacks the prebuilt `wasm32v1-none` standard library; \
         install it: rustup target add wasm32v1-none --toolchain stable-without-wasm"
    );
}

#[test]
fn the_outer_builds_locked_flag_reaches_the_guests_build() {
    let guest = locate::locate(common::fixture("unlocked").to_str().unwrap(), &common::repo()).unwrap().krate().unwrap().clone();
    let options = |cargo_flags: Vec<String>| CompileOptions {
        toolchain: compile::Toolchain::current().unwrap(),
        cargo_flags,
        target_dir: common::guest_target_dir(),
        stack_size: 4096,
        initial_memory: 65536,
        keep_names: false,
    };
    let flags = compile::cargo_flags(&["cargo".into(), "build".into(), "--locked".into()], None);
    assert_eq!(flags, ["--locked"]);
    let error = compile::compile(&[guest], &options(flags)).unwrap_err().to_string();
    assert!(error.starts_with("guest `unlocked` did not compile for wasm32v1-none:"), "{error}");
    assert!(error.contains("--locked was passed"), "{error}");
    assert!(!common::fixture("unlocked/Cargo.lock").exists());
}

/// CRC-32 bit by bit, to check the guests' own.
fn crc32(bytes: impl IntoIterator<Item = u8>) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// The CRC-32 of `len` bytes counting up from 0, as the crc guest computes it.
fn crc32_sequence(len: u32) -> u32 {
    crc32((0..len).map(|i| i as u8))
}

#[test]
fn guests_of_one_workspace_build_in_one_nested_cargo_and_each_runs() {
    let output = builder("two-guests").guest("guests/add").guest("guests/crc").build().unwrap();
    assert_eq!(output.nested_builds, 1);
    let names: Vec<&str> = output.guests.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["add", "crc"]);
    let load = |built: &wasm_embed_build::BuiltGuest| {
        let name: &'static str = Box::leak(built.name.clone().into_boxed_str());
        // SAFETY: the precompiler's output for these settings.
        unsafe { Guest::new(name, leak(std::fs::read(&built.cwasm).unwrap()), output.settings) }
    };
    assert_eq!(call_add(&load(&output.guests[0])).unwrap(), 45);

    // The table is static data: the memory is cut to the stack and data, not 64 KiB.
    let crc = &output.guests[1];
    let Memory::Exact { bytes } = crc.memory else { panic!("{:?}", crc.memory) };
    assert!((1024..65536).contains(&bytes), "{bytes}");
    let guest = load(crc);
    let engine = wasm_embed::engine(guest.settings()).unwrap();
    let module = guest.module(&engine).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = guest.instantiate(&mut store, &module, &[]).unwrap();
    let run = guest.func::<u32, u32>(&mut store, &instance, "crc32_sequence").unwrap();
    // The check value of CRC-32 over "123456789" is 0xCBF43926; over 0..=255 it is this.
    assert_eq!(crc32_sequence(256), 0x2905_8C73);
    for len in [0, 1, 255, 256, 1000] {
        assert_eq!(run.call(&mut store, len).unwrap(), crc32_sequence(len), "len {len}");
    }
}

#[test]
fn cwasm_from_another_wasmtime_version_is_refused_with_a_clear_error() {
    let settings = Settings::new(Target::this_machine());
    let cwasm = common::from_wasmtime_47(wasm_embed::precompile(&settings, &wat_add()).unwrap());
    // SAFETY: Wasmtime's own output with only its version record changed, which is what
    // it checks before trusting the rest.
    let guest = unsafe { Guest::new("other-version", leak(cwasm), settings) };
    let error = call_add(&guest).unwrap_err().to_string();
    assert!(error.starts_with("guest `other-version`: its .cwasm does not match this firmware's engine ("), "{error}");
    assert!(error.contains("incompatible version '47'"), "{error}");
    assert!(error.ends_with("using the emitted guests::SETTINGS"), "{error}");
    assert_eq!(error.lines().count(), 1, "{error}");
}

/// The guest `name` that `output` built, loaded from its `.cwasm`.

/// `guest` instantiated with no imports, in a store of its own.
fn no_imports(guest: &Guest) -> GuestInstance<()> {
    let engine = wasm_embed::engine(guest.settings()).unwrap();
    let module = guest.module(&engine).unwrap();
    GuestInstance::new(guest, &module, (), |_| -> [Extern; 0] { [] }).unwrap()
}

/// Calls `export` twice: both calls must fail the same way (the store survives a trap).
fn fails<P: WasmParams + Copy, R: WasmResults>(instance: &mut GuestInstance<()>, export: &'static str, params: P) -> wasm_embed::Error {
    let func = instance.func::<P, R>(export).unwrap();
    let first = instance.call(&func, params).err().expect("the call must fail");
    let second = instance.call(&func, params).err().expect("the call must fail again");
    assert_eq!(first.to_string(), second.to_string());
    first
}

fn fault(error: &wasm_embed::Error) -> Fault {
    match error {
        wasm_embed::Error::Call { fault, .. } => *fault,
        other => panic!("not a failed call: {other}"),
    }
}

#[test]
fn each_misbehaving_guest_fails_with_its_own_fault_in_one_line_and_the_store_survives() {
    let output = builder("misbehaving")
        .guest("guests/spin")
        .guest("guests/out-of-bounds")
        .guest("guests/panic")
        .guest("guests/recursion")
        .guest("guests/grow")
        .fuel(100_000)
        .build()
        .unwrap();
    assert_eq!(output.nested_builds, 1);
    assert_eq!(output.settings.fuel, Some(100_000));

    let error = fails::<(), u32>(&mut no_imports(&built_guest(&output, "spin")), "spin", ());
    assert_eq!(fault(&error), Fault::OutOfFuel);
    assert_eq!(
        error.to_string(),
        "guest `spin` ran out of fuel in `spin`: it probably loops forever; fix the guest, \
         or give calls more fuel (Builder::fuel in build.rs)"
    );

    let error = fails::<(), u32>(&mut no_imports(&built_guest(&output, "out_of_bounds")), "read_far", ());
    assert_eq!(fault(&error), Fault::OutOfBounds);
    assert_eq!(
        error.to_string(),
        "guest `out_of_bounds` trapped in `read_far`: out-of-bounds memory access, a bug in the guest"
    );

    let mut panic = no_imports(&built_guest(&output, "panic"));
    let error = fails::<(u32, u32), u32>(&mut panic, "checked_divide", (1, 0));
    assert_eq!(fault(&error), Fault::Unreachable);
    assert_eq!(
        error.to_string(),
        "guest `panic` trapped in `checked_divide`: it panicked or reached `unreachable`, a bug in the guest"
    );
    let divide = panic.func::<(u32, u32), u32>("checked_divide").unwrap();
    assert_eq!(panic.call(&divide, (12, 4)).unwrap(), 3);

    let mut recursion = no_imports(&built_guest(&output, "recursion"));
    let error = fails::<u32, u32>(&mut recursion, "triangle", 100_000);
    assert_eq!(fault(&error), Fault::StackOverflow);
    assert!(error.to_string().starts_with("guest `recursion` trapped in `triangle`: stack overflow"), "{error}");
    let triangle = recursion.func::<u32, u32>("triangle").unwrap();
    assert_eq!(recursion.call(&triangle, 10).unwrap(), 55);
    // Fuel is per call and can be changed at run time.
    recursion.set_fuel_per_call(Some(10)).unwrap();
    assert_eq!(fault(&recursion.call(&triangle, 10).unwrap_err()), Fault::OutOfFuel);
    recursion.set_fuel_per_call(None).unwrap();
    assert_eq!(recursion.call(&triangle, 10).unwrap(), 55);

    let grow = output.guests.iter().find(|g| g.name == "grow").unwrap();
    assert_eq!(grow.memory, Memory::Standard { reason: "it uses memory.grow or memory.size" });
    let error = fails::<u32, u32>(&mut no_imports(&built_guest(&output, "grow")), "grow", 1);
    assert_eq!(fault(&error), Fault::MemoryLimit { size: 65536, requested: 131072 });
    assert_eq!(
        error.to_string(),
        "guest `grow` trapped in `grow` after memory.grow from 65536 to 131072 bytes was refused: \
         a guest's memory is fixed at build time; make it allocate statically"
    );
}

#[test]
fn fuel_asked_of_a_build_without_it_is_a_clear_error() {
    let output = builder("no-fuel").guest("guests/add").build().unwrap();
    assert_eq!(output.settings.fuel, None);
    let guest = built_guest(&output, "add");
    let engine = wasm_embed::engine(guest.settings()).unwrap();
    let module = guest.module(&engine).unwrap();
    let mut add = GuestInstance::new(&guest, &module, (), |store| [Func::wrap(store, || 42u32).into()]).unwrap();
    let error = add.set_fuel_per_call(Some(10)).unwrap_err().to_string();
    assert_eq!(error, "guest `add`: fuel is off in this build; turn it on with Builder::fuel in build.rs");
    let func = add.func::<(u32, u32), u32>("add_with_extra").unwrap();
    assert_eq!(add.call(&func, (1, 2)).unwrap(), 45);
}

/// A host for the log guest that keeps what it was given.
fn log_import(store: &mut Store<Context<Vec<String>>>) -> [Extern; 1] {
    let log = Func::wrap(store, |mut caller: Caller<'_, Context<Vec<String>>>, ptr: u32, len: u32| {
        let (memory, lines) = wasm_embed::memory_and_host(&mut caller);
        let text = memory.read_str(ptr, len).map_err(wasm_embed::wasmtime::Error::new)?;
        lines.push(text.to_owned());
        Ok(())
    });
    [log.into()]
}

#[test]
fn guests_compute_over_host_data_and_log_through_a_bounds_checked_memory() {
    let output = builder("log-compute").guest("guests/log").guest("guests/compute").build().unwrap();

    let guest = built_guest(&output, "log");
    let engine = wasm_embed::engine(guest.settings()).unwrap();
    let module = guest.module(&engine).unwrap();
    let mut log = GuestInstance::new(&guest, &module, Vec::new(), log_import).unwrap();
    let hello = log.func::<u32, ()>("hello").unwrap();
    log.call(&hello, 7).unwrap();
    assert_eq!(log.host(), &["hello from the log guest: 7 squared is 49"]);
    let bad_pointer = log.func::<(), ()>("bad_pointer").unwrap();
    let error = log.call(&bad_pointer, ()).unwrap_err();
    assert_eq!(fault(&error), Fault::Import);
    let size = log.memory().len();
    assert_eq!(
        error.to_string(),
        format!(
            "guest `log` failed in `bad_pointer`: its import failed: guest `log` passed a buffer of 256 bytes \
             at 0xffffff00, outside its {size}-byte memory; the guest must pass a pointer into its own memory"
        )
    );
    // The store is still usable.
    log.call(&hello, 3).unwrap();
    assert_eq!(log.host().len(), 2);

    let mut compute = no_imports(&built_guest(&output, "compute"));
    let text = b"the quick brown fox jumps over 13 lazy dogs 7 times";
    let buffer = compute.func::<(), u32>("input_buffer").unwrap();
    let buffer = compute.call(&buffer, ()).unwrap();
    compute.memory().write(buffer, text).unwrap();
    let len = text.len() as u32;
    let guest_crc32 = compute.func::<u32, u32>("crc32").unwrap();
    let expected = crc32(text.iter().copied());
    assert_eq!(compute.call(&guest_crc32, len).unwrap(), expected);
    let count_words = compute.func::<u32, u32>("count_words").unwrap();
    assert_eq!(compute.call(&count_words, len).unwrap(), (2 << 16) | 9);
    let sort = compute.func::<u32, u32>("sort").unwrap();
    compute.call(&sort, len).unwrap();
    let mut sorted = text.to_vec();
    sorted.sort();
    assert_eq!(compute.memory().read(buffer, len).unwrap(), &sorted[..]);
    // Memory access from the host is checked too.
    let memory = compute.memory();
    let end = memory.len() as u32;
    assert!(memory.read(end - 4, 4).is_ok());
    assert_eq!(
        memory.read(end - 4, 5).unwrap_err().to_string(),
        format!(
            "guest `compute` passed a buffer of 5 bytes at {:#x}, outside its {end}-byte memory; \
             the guest must pass a pointer into its own memory",
            end - 4
        )
    );
}

#[test]
fn generated_bindings_are_typed_documented_and_rustfmt_clean() {
    let output = builder("bindings").guest("guests/add").guest("guests/log").guest("guests/spin").build().unwrap();
    let module = std::fs::read_to_string(&output.module).unwrap();
    for expected in [
        "pub trait Host {",
        "/// Import `host.extra`, wasm type `() -> i32`.",
        "fn extra(&mut self) -> u32;",
        "pub struct Add<H: 'static> {",
        "impl<H: Host + 'static> Add<H> {",
        "/// Calls export `add_with_extra`, wasm type `(i32, i32) -> i32`.",
        "pub fn add_with_extra(&mut self, a: u32, b: u32) -> Result<u32, Error> {",
        "fn log(&mut self, memory: GuestMemory<'_>, ptr: u32, len: u32) -> Result<(), Error>;",
        "pub fn hello(&mut self, n: u32) -> Result<(), Error> {",
        "impl<H: 'static> Spin<H> {",
        "pub fn spin(&mut self) -> Result<u32, Error> {",
    ] {
        assert!(module.contains(expected), "missing `{expected}` in:\n{module}");
    }
    let rustfmt = Command::new("rustfmt")
        .args(["--check", "--edition", "2024"])
        .arg(&output.module)
        .output()
        .expect("rustfmt runs (rustup component add rustfmt)");
    assert!(rustfmt.status.success(), "{}", String::from_utf8_lossy(&rustfmt.stdout));

    // A skipped build has no wasm: the bindings come from the guests' sources alone, and
    // are the same.
    let skipped = builder("bindings-skipped").guest("guests/add").guest("guests/log").guest("guests/spin").skip(true).build().unwrap();
    let skipped = std::fs::read_to_string(&skipped.module).unwrap();
    let signatures = |module: &str| -> Vec<String> {
        let items = module.lines().map(str::trim_start);
        items.filter(|l| ["pub trait", "pub struct", "pub fn", "fn "].iter().any(|p| l.starts_with(p))).map(String::from).collect()
    };
    assert_eq!(signatures(&skipped), signatures(&module));
    assert!(signatures(&module).len() > 10);
}

/// The four LEDs and button 1 of a board, as the blinky guest sees them.
#[derive(Default)]
struct FakeBoard {
    leds: [bool; 4],
    button_1_held: bool,
}

#[test]
fn blinky_lights_one_led_per_step_and_runs_backwards_while_button_1_is_held() {
    let output = builder("blinky").guest("guests/blinky").build().unwrap();
    let guest = built_guest(&output, "blinky");
    let engine = wasm_embed::engine(guest.settings()).unwrap();
    let module = guest.module(&engine).unwrap();
    let order: Vec<String> = module.imports().map(|import| format!("{}.{}", import.module(), import.name())).collect();
    let mut blinky = GuestInstance::new(&guest, &module, FakeBoard::default(), |store| {
        let set_led = Func::wrap(&mut *store, |mut caller: Caller<'_, Context<FakeBoard>>, led: u32, on: u32| {
            wasm_embed::memory_and_host(&mut caller).1.leds[led as usize] = on == 1;
        });
        let button = Func::wrap(&mut *store, |mut caller: Caller<'_, Context<FakeBoard>>, button: u32| {
            u32::from(button == 0 && wasm_embed::memory_and_host(&mut caller).1.button_1_held)
        });
        order
            .iter()
            .map(|name| match name.as_str() {
                "board.set_led" => set_led.into(),
                "board.button" => button.into(),
                other => panic!("blinky imports {other}"),
            })
            .collect::<Vec<Extern>>()
    })
    .unwrap();
    let step = blinky.func::<u32, u32>("step").unwrap();
    let lit = |board: &FakeBoard| board.leds.iter().map(|&on| u8::from(on)).collect::<Vec<_>>();
    for (tick, held, expected) in [(0, false, 0), (1, false, 1), (5, false, 1), (0, true, 3), (1, true, 2), (7, true, 0)] {
        blinky.host_mut().button_1_held = held;
        assert_eq!(blinky.call(&step, tick).unwrap(), expected, "tick {tick}, button held {held}");
        let mut leds = vec![0; 4];
        leds[expected as usize] = 1;
        assert_eq!(lit(blinky.host()), leds, "tick {tick}, button held {held}");
    }
}
