//! Bad input is refused, never run: damaged and foreign `.cwasm` bytes handed to the
//! runtime, invalid or unsupported wasm handed to the build, and host functions that fail
//! under a guest that keeps calling them. Each is an error value with one clear line.

mod common;

use common::{from_wasmtime_47, leak, wat_add};
use wasm_embed::wasmtime::{Caller, Func, Store};
use wasm_embed::{Context, Error, Fault, Guest, GuestInstance, Profile, Settings, Target, crc32};

fn settings() -> Settings {
    Settings::new(Target::this_machine())
}

/// `cwasm` as the emitted code embeds it: with the checksum the build recorded, `crc`.
fn embedded(name: &'static str, cwasm: Vec<u8>, crc: u32, settings: Settings) -> Guest {
    // SAFETY: only `crc`'s bytes are trusted, and loading checks `cwasm` against it
    // before Wasmtime reads it.
    unsafe { Guest::new(name, leak(cwasm), settings) }.with_checksum(crc)
}

fn load(guest: &Guest) -> Result<(), Error> {
    let engine = wasm_embed::engine(guest.settings())?;
    guest.module(&engine).map(drop)
}

fn is_corrupt(result: Result<(), Error>) -> bool {
    matches!(result, Err(Error::Corrupt { .. }))
}

#[test]
fn a_truncated_cwasm_is_refused_at_every_length() {
    let cwasm = wasm_embed::precompile(&settings(), &wat_add()).unwrap();
    let crc = crc32(&cwasm);
    for len in 0..cwasm.len() {
        let guest = embedded("add", cwasm[..len].to_vec(), crc, settings());
        let error = load(&guest).expect_err("a truncated .cwasm must not load");
        assert!(matches!(error, Error::Corrupt { .. }), "length {len}: {error}");
        // Wasmtime's own checks refuse it too: its section table is at the end.
        // SAFETY: Wasmtime checks the ELF header and section table, which truncation
        // breaks, before it trusts anything.
        let unchecked = unsafe { Guest::new("add", leak(cwasm[..len].to_vec()), settings()) };
        let error = load(&unchecked).expect_err("a truncated .cwasm must not load");
        assert!(matches!(error, Error::Incompatible { .. }), "length {len}: {error}");
    }
    let guest = embedded("add", cwasm[..1000].to_vec(), crc, settings());
    let message = load(&guest).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "guest `add`: its .cwasm is damaged (CRC-32 {:#010x}, the build recorded {crc:#010x}); \
             it was not loaded: flash the firmware image again",
            crc32(&cwasm[..1000])
        )
    );
    // The whole file loads and runs.
    assert!(load(&embedded("add", cwasm, crc, settings())).is_ok());
}

#[test]
fn every_flipped_bit_and_random_damage_is_refused_before_wasmtime_reads_the_cwasm() {
    let cwasm = wasm_embed::precompile(&settings(), &wat_add()).unwrap();
    let crc = crc32(&cwasm);
    for bit in 0..cwasm.len() * 8 {
        let mut damaged = cwasm.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert!(is_corrupt(load(&embedded("add", damaged, crc, settings()))), "bit {bit}");
    }
    // Two to eight bits anywhere, and bursts of bytes overwritten.
    let mut state = 0x5EED_u64;
    let mut next = |below: usize| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize % below
    };
    for case in 0..2000 {
        let mut damaged = cwasm.clone();
        if case % 2 == 0 {
            for _ in 0..2 + next(7) {
                let bit = next(cwasm.len() * 8);
                damaged[bit / 8] ^= 1 << (bit % 8);
            }
        } else {
            let start = next(cwasm.len() - 16);
            for byte in &mut damaged[start..start + 1 + next(16)] {
                *byte = next(256) as u8;
            }
        }
        if damaged == cwasm {
            continue;
        }
        assert!(is_corrupt(load(&embedded("add", damaged, crc, settings()))), "case {case}");
    }
}

#[test]
fn a_foreign_cwasm_with_a_matching_checksum_is_refused_by_wasmtimes_checks() {
    let wasm = wat_add();
    let other_target = Settings::new(match Target::this_machine() {
        Target::Pulley64 => Target::Pulley32,
        Target::Pulley32 => Target::Pulley64,
    });
    let native = {
        let mut config = settings().config();
        config.target(&target_lexicon_host()).unwrap();
        wasm_embed::wasmtime::Engine::new(&config).unwrap().precompile_module(&wasm).unwrap()
    };
    let cases: [(&str, Vec<u8>, &str); 7] = [
        ("other target", wasm_embed::precompile(&other_target, &wasm).unwrap(), "Module was compiled for architecture"),
        ("native code", native, "Module was compiled for architecture"),
        (
            "fuel on",
            wasm_embed::precompile(&Settings { fuel: Some(1000), ..settings() }, &wasm).unwrap(),
            "fuel support",
        ),
        (
            "debug profile",
            wasm_embed::precompile(&Settings { profile: Profile::Debug, ..settings() }, &wasm).unwrap(),
            "debug symbols",
        ),
        (
            "other version",
            from_wasmtime_47(wasm_embed::precompile(&settings(), &wasm).unwrap()),
            "incompatible version '47'",
        ),
        ("plain wasm", wasm.clone(), "failed to parse precompiled artifact as an ELF"),
        ("nothing", Vec::new(), "failed to parse precompiled artifact as an ELF"),
    ];
    for (what, cwasm, cause) in cases {
        let crc = crc32(&cwasm);
        let error = load(&embedded("foreign", cwasm, crc, settings())).expect_err(what);
        assert!(matches!(error, Error::Incompatible { .. }), "{what}: {error}");
        let message = error.to_string();
        assert!(message.starts_with("guest `foreign`: its .cwasm does not match this firmware's engine ("), "{what}: {message}");
        assert!(message.contains(cause), "{what}: {message}");
        assert!(message.ends_with("using the emitted guests::SETTINGS"), "{what}: {message}");
        assert_eq!(message.lines().count(), 1, "{what}: {message}");
    }
}

/// This machine's native target, which Cranelift compiles for.
fn target_lexicon_host() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

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
    ];
    for (guest, wat, feature) in cases {
        let wasm = wat::parse_str(wat).unwrap();
        let error = wasm_embed_build::compile::check(guest, &wasm, &settings()).expect_err(guest).to_string();
        let expected = match guest {
            "invalid" => format!("guest `{guest}`: its .wasm is not valid WebAssembly ("),
            _ => format!("guest `{guest}` uses a WebAssembly feature the firmware's engine does not enable: "),
        };
        assert!(error.starts_with(&expected), "{error}");
        assert!(error.to_lowercase().contains(&feature.to_lowercase()), "{guest}: {error}");
        if guest != "invalid" {
            assert!(error.ends_with("build it for WebAssembly 1.0 with mutable globals (Rust: wasm32v1-none; clang: -mcpu=mvp)"), "{error}");
        }
        assert_eq!(error.lines().count(), 1, "{error}");
    }
}

/// A guest that sums `check(i)` over `0..n`, calling its import in a loop.
const CHECKED_SUM: &str = r#"(module
  (import "host" "check" (func $check (param i32) (result i32)))
  (func (export "sum_checked") (param $n i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $sum (i32.add (local.get $sum) (call $check (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $sum)))"#;

/// The host of [`CHECKED_SUM`]: it refuses values from `limit` on and counts its calls.
struct Checker {
    limit: u32,
    calls: u32,
}

#[derive(Debug)]
struct OverLimit(u32);

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sensor value {} is over the limit", self.0)
    }
}

impl std::error::Error for OverLimit {}

#[test]
fn a_failing_host_function_called_in_a_loop_fails_the_call_and_the_store_stays_usable() {
    let cwasm = wasm_embed::precompile(&settings(), &wat::parse_str(CHECKED_SUM).unwrap()).unwrap();
    let crc = crc32(&cwasm);
    let guest = embedded("checked", cwasm, crc, settings());
    let engine = wasm_embed::engine(guest.settings()).unwrap();
    let module = guest.module(&engine).unwrap();
    let host = Checker { limit: 1000, calls: 0 };
    let mut instance = GuestInstance::new(&guest, &module, host, |store: &mut Store<Context<Checker>>| {
        let check = Func::wrap(store, |mut caller: Caller<'_, Context<Checker>>, value: u32| {
            let host = caller.data_mut().host();
            host.calls += 1;
            if value >= host.limit {
                return Err(wasm_embed::wasmtime::Error::new(OverLimit(value)));
            }
            Ok(value)
        });
        [check.into()]
    })
    .unwrap();
    let sum = instance.func::<u32, u32>("sum_checked").unwrap();
    assert_eq!(instance.call(&sum, 100).unwrap(), 4950);
    assert_eq!(instance.host().calls, 100);

    instance.host_mut().limit = 50;
    for round in 0..1000 {
        let error = instance.call(&sum, 100).expect_err("the import fails at 50");
        assert!(matches!(error, Error::Call { fault: Fault::Import, .. }), "{error}");
        assert_eq!(
            error.to_string(),
            "guest `checked` failed in `sum_checked`: its import failed: sensor value 50 is over the limit"
        );
        // The guest stopped at the first failure: 51 calls each round.
        assert_eq!(instance.host().calls, 100 + 51 * (round + 1));
    }
    instance.host_mut().limit = 1000;
    assert_eq!(instance.call(&sum, 100).unwrap(), 4950);
    assert_eq!(instance.call(&sum, 10).unwrap(), 45);
}
