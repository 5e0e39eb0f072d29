//! Loading a guest: a good `.cwasm` loads in place once; a damaged, foreign or skipped
//! one, a second load and a module handed to the wrong guest are error values, each one
//! line naming the guest, the cause and the fix.

mod common;

use common::{ADD, embedded, from_wasmtime_47, guest, leak, load, settings};
use wasm_embed::__private::{GuestInstance, crc32};
use wasm_embed::{Error, Guest, Profile, Settings, Target};
use wasmtime::Func;

/// Calls `add_with_extra(1, 2)` with `host.extra` returning 42.
fn call_add(guest: &'static Guest) -> Result<u32, Error> {
    let module = load(guest)?;
    let mut add = GuestInstance::new(guest, &module, (), |store| [Func::wrap(store, || 42u32).into()])?;
    let func = add.func::<(u32, u32), u32>("add_with_extra")?;
    add.call(&func, (1, 2))
}

#[test]
fn a_guest_loads_in_place_and_runs() {
    let add = guest("add", ADD, settings());
    assert_eq!(call_add(add).unwrap(), 45);
    // The module's code is the `.cwasm` in "flash", not a copy.
    assert_eq!(add.name(), "add");
    assert!(add.cwasm().starts_with(b"\x7fELF"));
}

#[test]
fn a_guest_is_loaded_once_and_its_module_shared_until_every_user_is_gone() {
    let add = guest("add", ADD, settings());
    let engine = wasm_embed::engine(add.settings()).unwrap();
    let module = add.load(&engine).unwrap();
    // A second load while the first module lives would make Wasmtime panic.
    let error = add.load(&engine).err().expect("a second load must be refused");
    assert!(matches!(error, Error::AlreadyLoaded { guest: "add" }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "guest `add` is loaded already, and Wasmtime cannot run two modules from the same flash bytes at once; \
         clone the GuestModule you have, or drop it (and its handles) before loading again"
    );
    // Another engine does not change that: the code is registered by its address.
    let other = wasm_embed::engine(add.settings()).unwrap();
    assert!(matches!(add.load(&other), Err(Error::AlreadyLoaded { .. })));

    // Clones and instances share the one module; the guest can be loaded again only
    // once all of them are gone.
    let clone = module.clone();
    let mut instance = GuestInstance::new(add, &clone, (), |store| [Func::wrap(store, || 1u32).into()]).unwrap();
    drop((module, clone));
    assert!(matches!(add.load(&engine), Err(Error::AlreadyLoaded { .. })));
    let func = instance.func::<(u32, u32), u32>("add_with_extra").unwrap();
    assert_eq!(instance.call(&func, (1, 2)).unwrap(), 4);
    drop(instance);
    let again = add.load(&engine).unwrap();
    assert!(std::ptr::eq(again.guest(), add));
}

#[test]
fn a_module_handed_to_another_guests_handle_is_refused() {
    let add = guest("add", ADD, settings());
    let other = guest("other", ADD, settings());
    let module = load(other).unwrap();
    let error = GuestInstance::new(add, &module, (), |store| [Func::wrap(store, || 1u32).into()])
        .err()
        .expect("the handle must check whose module it was given");
    assert_eq!(
        error.to_string(),
        "guest `add`'s handle was given guest `other`'s module; load guests::add::GUEST for it"
    );
}

#[test]
fn a_skipped_guest_fails_to_load_with_a_clear_error() {
    let skipped: &'static Guest = Box::leak(Box::new(Guest::skipped("add", settings())));
    assert!(skipped.cwasm().is_empty());
    let error = load(skipped).err().unwrap();
    assert_eq!(
        error.to_string(),
        "guest `add` was not built: its build was skipped (WASM_EMBED_SKIP, rust-analyzer or clippy); \
         build the firmware with `cargo build` and WASM_EMBED_SKIP unset"
    );
}

fn wat_add() -> Vec<u8> {
    wat::parse_str(ADD).unwrap()
}

#[test]
fn a_truncated_cwasm_is_refused_at_every_length() {
    let cwasm = wasm_embed::precompile(&settings(), &wat_add()).unwrap();
    let crc = crc32(&cwasm);
    for len in 0..cwasm.len() {
        let error = load(embedded("add", cwasm[..len].to_vec(), crc, settings())).err().unwrap();
        assert!(matches!(error, Error::Corrupt { .. }), "length {len}: {error}");
        // Wasmtime's own checks refuse it too: its section table is at the end.
        // SAFETY: Wasmtime checks the ELF header and section table, which truncation
        // breaks, before it trusts anything.
        let unchecked = Box::leak(Box::new(unsafe { Guest::new("add", leak(cwasm[..len].to_vec()), settings()) }));
        let error = load(unchecked).err().unwrap();
        assert!(matches!(error, Error::Incompatible { .. }), "length {len}: {error}");
    }
    let message = load(embedded("add", cwasm[..1000].to_vec(), crc, settings())).err().unwrap().to_string();
    assert_eq!(
        message,
        format!(
            "guest `add`: its .cwasm is damaged (CRC-32 {:#010x}, the build recorded {crc:#010x}); \
             it was not loaded: flash the firmware image again",
            crc32(&cwasm[..1000])
        )
    );
    assert_eq!(call_add(embedded("add", cwasm, crc, settings())).unwrap(), 45);
}

#[test]
fn every_flipped_bit_and_random_damage_is_refused_before_wasmtime_reads_the_cwasm() {
    let cwasm = wasm_embed::precompile(&settings(), &wat_add()).unwrap();
    let crc = crc32(&cwasm);
    let corrupt = |damaged: Vec<u8>| matches!(load(embedded("add", damaged, crc, settings())), Err(Error::Corrupt { .. }));
    for bit in 0..cwasm.len() * 8 {
        let mut damaged = cwasm.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert!(corrupt(damaged), "bit {bit}");
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
            let start = next(cwasm.len() - 4);
            for byte in &mut damaged[start..start + 1 + next(4)] {
                *byte = byte.wrapping_add(1 + next(255) as u8);
            }
        }
        if damaged != cwasm {
            assert!(corrupt(damaged), "case {case}");
        }
    }
}

/// This machine's native target, which Cranelift compiles for.
fn native_target() -> String {
    format!("{}-unknown-{}-gnu", std::env::consts::ARCH, std::env::consts::OS)
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
        config.target(&native_target()).unwrap();
        wasmtime::Engine::new(&config).unwrap().precompile_module(&wasm).unwrap()
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
        let error = load(embedded("foreign", cwasm, crc, settings())).err().expect(what);
        assert!(matches!(error, Error::Incompatible { .. }), "{what}: {error}");
        let message = error.to_string();
        assert!(message.starts_with("guest `foreign`: its .cwasm does not match this firmware's engine ("), "{what}: {message}");
        assert!(message.contains(cause), "{what}: {message}");
        assert!(message.ends_with("using the emitted guests::SETTINGS"), "{what}: {message}");
        assert_eq!(message.lines().count(), 1, "{what}: {message}");
    }
}
