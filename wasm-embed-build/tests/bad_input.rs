//! Wasm the firmware's engine would refuse is refused by the build first, each case in
//! one line naming the guest and the feature. (Damaged and foreign `.cwasm` bytes, which
//! the runtime refuses, are wasm-embed's own tests.)

mod common;

use common::builder;

#[test]
fn invalid_wasm_and_each_unsupported_feature_is_a_build_error_naming_the_guest_and_the_feature() {
    let cases = [
        ("invalid", "(module (func (result i32) i64.const 1))", "type mismatch"),
        ("simd", "(module (func (result v128) i32.const 1 i32x4.splat))", "SIMD"),
        ("sign_extension", "(module (func (param i32) (result i32) local.get 0 i32.extend8_s))", "sign extension"),
        ("saturating", "(module (func (param f32) (result i32) local.get 0 i32.trunc_sat_f32_s))", "saturating float"),
        ("bulk_memory", "(module (memory 1) (func i32.const 0 i32.const 0 i32.const 0 memory.copy))", "bulk memory"),
        ("multi_value", "(module (func (result i32 i32) i32.const 1 i32.const 2))", "multi-value"),
        ("reference_types", "(module (func (result funcref) ref.null func))", "reference types"),
        ("tail_calls", "(module (func $f return_call $f))", "tail calls"),
        ("threads", "(module (memory 1 1 shared))", "threads"),
        ("memory64", "(module (memory i64 1))", "memory64"),
        ("custom_pages", "(module (memory 1 (pagesize 1)))", "custom page sizes"),
    ];
    for (guest, wat, feature) in cases {
        let path = common::module_file("features", &format!("{guest}.wasm"), wat);
        let error = builder(guest).guest(path.to_str().unwrap()).try_compile().expect_err(guest).to_string();
        let expected = match guest {
            "invalid" => format!("guest `{guest}`: its .wasm is not valid WebAssembly ("),
            _ => format!("guest `{guest}` uses a WebAssembly feature the firmware's engine does not enable: "),
        };
        assert!(error.starts_with(&expected), "{error}");
        assert!(error.to_lowercase().contains(&feature.to_lowercase()), "{guest}: {error}");
        // A feature only a flag turns on names the flag, which -mcpu=mvp does not undo; one
        // the default CPU has on names both causes.
        let flag = match guest {
            "simd" => Some("(clang: -msimd128; Rust: -C target-feature=+simd128): drop the flag, and build"),
            "threads" => Some("(clang: -matomics; Rust: -C target-feature=+atomics): drop the flag, and build"),
            "tail_calls" => Some("(clang: -mtail-call; Rust: -C target-feature=+tail-call): drop the flag, and build"),
            "sign_extension" => Some(
                "the toolchains' default wasm32 CPU turns it on, and so does a flag (clang: -msign-ext; Rust: -C \
                 target-feature=+sign-ext): drop the flag if it was given, and build",
            ),
            "bulk_memory" => Some("and so does a flag (clang: -mbulk-memory; Rust: -C target-feature=+bulk-memory)"),
            "invalid" | "memory64" | "custom_pages" => None,
            _ => Some("the toolchains' default wasm32 CPU turns it on, and so does a flag ("),
        };
        if let Some(flag) = flag {
            assert!(error.contains(flag), "{guest}: {error}");
        }
        if guest != "invalid" {
            assert!(
                error.ends_with("build it for WebAssembly 1.0 with mutable globals (Rust: wasm32v1-none; clang: -mcpu=mvp)"),
                "{error}"
            );
        }
        assert_eq!(error.lines().count(), 1, "{error}");
        if guest == "simd" {
            common::quoted_in_docs("prebuilt.md", &error);
        }
    }
}
