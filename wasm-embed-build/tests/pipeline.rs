//! The pipeline on the host, through its public API: guests of this repository built by
//! the library, precompiled, loaded by wasm-embed and called; what each stage does to a
//! guest, and each way a build can be asked to do the wrong thing.

mod common;

use common::{builder, built_guest, module_file};

use wasm_embed::__private::GuestInstance;
use wasm_embed::{Guest, Profile, Settings};
use wasm_embed_build::{Error, Memory, Stack};
use wasmparser::{Parser, Payload, Validator, WasmFeatures};
use wasmtime::{Extern, Func};

/// Calls `add_with_extra(1, 2)` with `host.extra` returning 42.
fn call_add(guest: &'static Guest) -> Result<u32, wasm_embed::Error> {
    let module = guest.load(&wasm_embed::engine(guest.settings())?)?;
    let mut add = GuestInstance::new(guest, &module, (), |store| [Func::wrap(store, || 42u32).into()])?;
    let func = add.func::<(u32, u32), u32>("add_with_extra")?;
    add.call(&func, (1, 2))
}

/// Calls `export` of `guest`, which imports nothing.
fn call<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    guest: &'static Guest,
    export: &'static str,
    params: P,
) -> Result<R, wasm_embed::Error> {
    let module = guest.load(&wasm_embed::engine(guest.settings())?)?;
    let mut instance = GuestInstance::new(guest, &module, (), |_| -> [Extern; 0] { [] })?;
    let func = instance.func::<P, R>(export)?;
    instance.call(&func, params)
}

#[test]
fn add_guest_is_built_precompiled_loaded_and_returns_45() {
    let output = builder("add").guest("guests/add").try_compile().unwrap();
    assert_eq!(output.guests.len(), 1);
    let built = &output.guests[0];
    assert_eq!(built.name, "add");
    assert_eq!(std::fs::read(&built.cwasm).unwrap().len(), built.sizes.cwasm);
    assert_eq!(call_add(built_guest(&output, "add")).unwrap(), 45);

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
    // The guest's source and manifests are among the files that trigger a rebuild.
    for file in ["guests/add/src/lib.rs", "guests/add/Cargo.toml", "guests/Cargo.lock"] {
        assert!(built.inputs.contains(&common::repo().join(file)), "{file}: {:?}", built.inputs);
    }
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

/// The wasm the firmware's engine accepts: WebAssembly 1.0 with mutable globals, and
/// the custom page sizes the pages stage gives.
fn validate(wasm: &[u8]) {
    let features = WasmFeatures::FLOATS | WasmFeatures::MUTABLE_GLOBAL | WasmFeatures::CUSTOM_PAGE_SIZES;
    Validator::new_with_features(features).validate_all(wasm).unwrap();
}

#[test]
fn strip_removes_custom_sections_and_every_stage_keeps_the_wasm_valid() {
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1) (global (export "__heap_base") i32 (i32.const 8))
             (func (export "double") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2))))"#,
    )
    .unwrap();
    let decorated = with_custom_sections(&wasm, &["name", "producers", "target_features", ".debug_info"]);
    assert_eq!(custom_sections(&decorated).len(), 4);
    let path = common::out_dir("stages-input").join("double.wasm");
    std::fs::write(&path, &decorated).unwrap();
    let output = builder("stages").guest(path.to_str().unwrap()).try_compile().unwrap();
    let out = common::out_dir_path("stages");
    let (optimized, last) = (std::fs::read(out.join("double.optimized.wasm")).unwrap(), std::fs::read(out.join("double.wasm")).unwrap());
    for wasm in [&optimized, &last] {
        validate(wasm);
        assert_eq!(custom_sections(wasm), Vec::<String>::new());
    }
    let sizes = output.guests[0].sizes;
    assert!(sizes.optimized <= sizes.stripped && sizes.stripped < sizes.compiled, "{sizes:?}");
    assert_eq!(call::<u32, u32>(built_guest(&output, "double"), "double", 21).unwrap(), 42);
}

#[test]
fn guest_named_by_package_is_found_in_the_workspace() {
    let output = builder("by-package").manifest_dir(common::repo().join("guests")).guest("add").try_compile().unwrap();
    assert_eq!(output.guests[0].name, "add");
    assert!(output.guests[0].inputs.contains(&common::repo().join("guests/add/Cargo.toml")));
    let error = builder("no-package").manifest_dir(common::repo().join("guests")).guest("no-such-package").try_compile();
    let message = error.unwrap_err().to_string();
    assert!(message.starts_with("guest `no-such-package` not found: no package of that name in the workspace at "), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn missing_guest_path_names_the_path_and_the_fix() {
    let error = builder("missing").guest("guests/no-such-guest").try_compile().unwrap_err();
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
    let error = builder("not-cdylib").guest(fixture.to_str().unwrap()).try_compile().unwrap_err();
    let message = error.to_string();
    // By the name its module would have, as every other message calls a guest.
    assert!(message.starts_with("guest `not_cdylib` is not a cdylib"), "{message}");
    assert!(message.contains("add `[lib] crate-type = [\"cdylib\"]` to"), "{message}");
    assert!(message.contains("not-cdylib/Cargo.toml"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn guest_that_does_not_compile_shows_rustcs_message() {
    let fixture = common::fixture("broken");
    let error = builder("broken").guest(fixture.to_str().unwrap()).try_compile().unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("guest `broken` did not compile for wasm32v1-none:\n"), "{message}");
    assert!(message.contains("error[E0425]: cannot find value `undefined_value` in this scope"), "{message}");
    assert!(message.contains("src/lib.rs:5:5"), "{message}");
    assert!(!message.contains("   Compiling"), "progress lines are dropped: {message}");
}

#[test]
fn one_byte_pages_hold_exactly_the_stack_and_data_and_bounds_are_enforced() {
    let path = module_file(
        "data",
        "data.wasm",
        r#"(module
             (memory (export "memory") 1)
             (global $stack_pointer (mut i32) (i32.const 1024))
             (data (i32.const 1024) "hello")
             (global (export "__heap_base") i32 (i32.const 1029))
             (func (export "load") (param i32) (result i32) local.get 0 i32.load8_u))"#,
    );
    let output = builder("data").guest(path.to_str().unwrap()).try_compile().unwrap();
    assert_eq!(output.guests[0].memory, Memory::Exact { bytes: 1029 });
    // What only the pages stage needed is gone.
    let last = std::fs::read(common::out_dir_path("data").join("data.wasm")).unwrap();
    assert!(!String::from_utf8_lossy(&last).contains("__heap_base"));
    validate(&last);
    let guest = built_guest(&output, "data");
    assert_eq!(call::<u32, u32>(guest, "load", 1028).unwrap(), u32::from(b'o'));
    let error = call::<u32, u32>(guest, "load", 1029).unwrap_err().to_string();
    assert_eq!(error, "guest `data` trapped in `load`: out-of-bounds memory access, a bug in the guest");
}

#[test]
fn guest_that_grows_its_memory_keeps_64_kib_pages_and_still_runs() {
    let path = module_file(
        "grows",
        "grows.wasm",
        r#"(module (memory 1 2) (global (export "__heap_base") i32 (i32.const 8))
             (func (export "grow") (result i32) i32.const 1 memory.grow))"#,
    );
    let output = builder("grows").guest(path.to_str().unwrap()).try_compile().unwrap();
    assert_eq!(output.guests[0].memory, Memory::Standard { reason: "it uses memory.grow or memory.size" });
    assert_eq!(
        output.warnings,
        ["guest `grows` keeps 64 KiB memory pages because it uses memory.grow or memory.size; each page costs the \
          firmware 64 KiB of heap"]
    );
    // Memory is never reserved ahead or moved on a device, so growing fails the way Wasm
    // says it may, with -1, and the guest keeps running.
    assert_eq!(call::<(), i32>(built_guest(&output, "grows"), "grow", ()).unwrap(), -1);
}

#[test]
fn debug_profile_keeps_names_in_a_larger_cwasm_that_still_runs() {
    let output = builder("add-debug").guest("guests/add").profile(Profile::Debug).try_compile().unwrap();
    assert_eq!(output.settings.profile, Profile::Debug);
    let size_profile = builder("add-size").guest("guests/add").try_compile().unwrap();
    assert!(output.guests[0].sizes.cwasm > size_profile.guests[0].sizes.cwasm, "{:?}", output.guests[0].sizes);
    let optimized = std::fs::read(common::out_dir_path("add-debug").join("add.optimized.wasm")).unwrap();
    assert_eq!(custom_sections(&optimized), ["name"]);
    assert_eq!(call_add(built_guest(&output, "add")).unwrap(), 45);
}

#[test]
fn skipped_guests_are_stubs_that_name_the_reason_and_need_no_build() {
    let output = builder("skipped").guest("guests/add").skip(true).try_compile().unwrap();
    assert!(output.guests.is_empty());
    assert_eq!(output.nested_builds, 0);
    assert_eq!(output.warnings, ["guests not built (Builder::skip): loading one returns an error; unset it to build them"]);
    let module = std::fs::read_to_string(&output.module).unwrap();
    assert!(module.contains("::wasm_embed::Guest::skipped(\"add\", super::SETTINGS)"), "{module}");
    assert!(!module.contains("include_bytes!"), "{module}");
}

#[test]
fn pulley_stack_is_sized_to_the_guest_and_less_is_refused_at_build_time() {
    let output = builder("stack").guest("guests/add").try_compile().unwrap();
    let Stack::Bounded { bytes } = output.guests[0].stack else { panic!("{:?}", output.guests[0].stack) };
    // Entry trampoline, add_with_extra and the trampoline to the host's `extra`.
    assert!((64..1024).contains(&bytes), "{bytes}");
    assert_eq!(output.settings.max_wasm_stack, bytes.next_multiple_of(16));
    assert_eq!(call_add(built_guest(&output, "add")).unwrap(), 45);
    let error = builder("stack-small").guest("guests/add").max_wasm_stack(64).try_compile().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "guest `add` can use {bytes} bytes of Pulley stack but Builder::max_wasm_stack gives 64; \
             raise it to at least {bytes}, or remove the setting to size it automatically"
        )
    );
}

#[test]
fn recursion_and_table_calls_leave_the_pulley_stack_unbounded_and_call_chains_add_up() {
    let recursive = module_file(
        "recursive",
        "recursive.wasm",
        r#"(module (func $count (export "count") (param i32) (result i32)
             local.get 0 i32.eqz if (result i32) i32.const 0 else
             local.get 0 i32.const 1 i32.sub call $count i32.const 1 i32.add end))"#,
    );
    let table = module_file(
        "table",
        "table.wasm",
        r#"(module (type $t (func (result i32))) (table 1 funcref) (elem (i32.const 0) $one)
             (func $one (result i32) i32.const 1)
             (func (export "run") (param i32) (result i32) local.get 0 call_indirect (type $t)))"#,
    );
    let chain = module_file(
        "chain",
        "chain.wasm",
        r#"(module (func $c (result i32) i32.const 1) (func $b (result i32) call $c i32.const 1 i32.add)
             (func $a (export "a") (result i32) call $b i32.const 1 i32.add)
             (func (export "leaf") (result i32) i32.const 1))"#,
    );
    let output = builder("stacks")
        .guest(recursive.to_str().unwrap())
        .guest(table.to_str().unwrap())
        .guest(chain.to_str().unwrap())
        .try_compile()
        .unwrap();
    let Stack::Unbounded { reason } = &output.guests[0].stack else { panic!("recursion was bounded") };
    assert!(reason.ends_with("calls itself (recursion)"), "{reason}");
    assert_eq!(output.guests[1].stack, Stack::Unbounded { reason: "it calls functions through a table (call_indirect)".into() });
    assert_eq!(output.warnings.len(), 2, "{:?}", output.warnings);
    assert!(output.warnings[1].starts_with("guest `table` gets the default 4096 bytes of Pulley stack because its depth"));
    // With no imports the bound is exact: Pulley rounds its stack up to 16 bytes, and 16
    // fewer than the bound is too few.
    let Stack::Bounded { bytes } = output.guests[2].stack else { panic!("{:?}", output.guests[2].stack) };
    let cwasm = std::fs::read(&output.guests[2].cwasm).unwrap();
    let with_stack = |max_wasm_stack| {
        let settings = Settings { max_wasm_stack, ..output.settings };
        // SAFETY: the precompiler's output; the Pulley stack is not part of what
        // Wasmtime checks, only how much the engine allocates.
        let guest = unsafe { Guest::new("chain", common::leak(cwasm.clone()), settings) };
        call::<(), i32>(Box::leak(Box::new(guest)), "a", ()).map_err(|e| e.to_string())
    };
    assert_eq!(with_stack(bytes.next_multiple_of(16)), Ok(3));
    assert!(with_stack(bytes.next_multiple_of(16) - 16).unwrap_err().starts_with("guest `chain` trapped in `a`: stack overflow"));
}

#[test]
fn an_unchanged_guest_reuses_its_cwasm_and_a_settings_change_does_not() {
    let first = builder("reuse").guest("guests/add").try_compile().unwrap();
    assert!(!first.guests[0].cwasm_reused);
    let mut again = builder("reuse-again");
    again.out_dir(common::out_dir_path("reuse")).guest("guests/add");
    let second = again.try_compile().unwrap();
    assert!(second.guests[0].cwasm_reused);
    assert_eq!(std::fs::read(&second.guests[0].cwasm).unwrap().len(), first.guests[0].sizes.cwasm);
    let debug = again.profile(Profile::Debug).try_compile().unwrap();
    assert!(!debug.guests[0].cwasm_reused);
}

#[test]
fn a_stable_toolchain_builds_the_guest_without_build_std_and_it_still_runs() {
    let output = builder("stable").guest("guests/add").toolchain("stable").try_compile().unwrap();
    let nightly = builder("nightly").guest("guests/add").try_compile().unwrap();
    let (stable, nightly) = (output.guests[0].sizes.compiled, nightly.guests[0].sizes.compiled);
    assert!(stable > nightly, "{stable} vs {nightly}");
    assert!(output.warnings[0].starts_with("guests are built with `stable-"), "{:?}", output.warnings);
    assert_eq!(call_add(built_guest(&output, "add")).unwrap(), 45);
    println!("add guest: {stable} B of wasm on stable, {nightly} B on nightly");
}

#[test]
fn a_missing_toolchain_is_named_with_the_command_that_installs_it() {
    let error = builder("no-toolchain").guest("guests/add").toolchain("nightly-1999-01-01").try_compile().unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("the Rust toolchain `nightly-1999-01-01` that builds the guests is not installed ("), "{message}");
    assert!(
        message.ends_with("install it: rustup toolchain install nightly-1999-01-01 --profile minimal --component rust-src"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
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
    let output = builder("two-guests").guest("guests/add").guest("guests/crc").try_compile().unwrap();
    assert_eq!(output.nested_builds, 1);
    let names: Vec<&str> = output.guests.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["add", "crc"]);
    assert_eq!(call_add(built_guest(&output, "add")).unwrap(), 45);

    // The table is static data: the memory is cut to the stack and data, not 64 KiB.
    let Memory::Exact { bytes } = output.guests[1].memory else { panic!("{:?}", output.guests[1].memory) };
    assert!((1024..65536).contains(&bytes), "{bytes}");
    let guest = built_guest(&output, "crc");
    let module = guest.load(&wasm_embed::engine(guest.settings()).unwrap()).unwrap();
    let mut crc = GuestInstance::new(guest, &module, (), |_| -> [Extern; 0] { [] }).unwrap();
    let run = crc.func::<u32, u32>("crc32_sequence").unwrap();
    // The check value of CRC-32 over "123456789" is 0xCBF43926; over 0..=255 it is this.
    assert_eq!(crc32_sequence(256), 0x2905_8C73);
    for len in [0, 1, 255, 256, 1000] {
        assert_eq!(crc.call(&run, len).unwrap(), crc32_sequence(len), "len {len}");
    }
}

/// The DK's LEDs and button 1, simulated.
#[derive(Default)]
struct FakeBoard {
    leds: [bool; 4],
    button_1_held: bool,
}

#[test]
fn blinky_lights_one_led_per_step_and_runs_backwards_while_button_1_is_held() {
    let output = builder("blinky").guest("guests/blinky").try_compile().unwrap();
    let guest = built_guest(&output, "blinky");
    let module = guest.load(&wasm_embed::engine(guest.settings()).unwrap()).unwrap();
    // Its imports in the order the guest declares them, as the bindings pass them.
    let wasm = std::fs::read(common::out_dir_path("blinky").join("blinky.wasm")).unwrap();
    let mut order = Vec::new();
    for payload in Parser::new(0).parse_all(&wasm) {
        if let Payload::ImportSection(imports) = payload.unwrap() {
            order.extend(imports.into_imports().map(|i| i.map(|i| format!("{}.{}", i.module, i.name)).unwrap()));
        }
    }
    type Context = wasm_embed::__private::Context<FakeBoard>;
    let mut blinky = GuestInstance::new(guest, &module, FakeBoard::default(), |store| {
        let set_led = Func::wrap(&mut *store, |mut caller: wasmtime::Caller<'_, Context>, led: u32, on: u32| {
            caller.data_mut().host().leds[led as usize] = on == 1;
        });
        let button = Func::wrap(&mut *store, |mut caller: wasmtime::Caller<'_, Context>, button: u32| {
            u32::from(button == 0 && caller.data_mut().host().button_1_held)
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
