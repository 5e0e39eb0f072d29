use std::borrow::BorrowMut;
use std::path::{Path, PathBuf};

fn main() {
    // cortex-m-rt's and riscv-rt's link.x find memory.x on the linker's search path; the
    // RISC-V board's is in riscv/.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let riscv = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "riscv32");
    // The RISC-V map gets a name of its own: the linker looks for `-T` scripts in the
    // firmware's directory first, where the Arm memory.x is.
    let (memory, linked_as) = if riscv { ("riscv/memory.x", "riscv-memory.x") } else { ("memory.x", "memory.x") };
    std::fs::copy(memory, out.join(linked_as)).expect("memory.x is beside build.rs");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={memory}");

    // Builds, strips, optimizes and precompiles the guests listed in Cargo.toml. Fuel
    // bounds every call, so the guest that loops forever is stopped.
    compile(wasm_embed_build::Builder::new().fuel(1_000_000), &out);
}

/// Builds the guests: the ones listed in Cargo.toml or, with the `generated-modules`
/// feature (the on-device check), every `.wasm` in the directory `GENERATED_MODULES`
/// names instead, listed in `generated-modules.rs` for examples/generated.rs. It takes
/// the builder as the one chain in `main` hands it over, a value or a reference: the
/// tests and the size report edit that chain.
fn compile(mut builder: impl BorrowMut<wasm_embed_build::Builder>, out: &Path) {
    let builder = builder.borrow_mut();
    // Under embassy, an async call gives the executor back control after every 2,000
    // units of fuel (examples/embassy.rs prints what a slice takes).
    #[cfg(feature = "embassy")]
    builder.fuel_yield_interval(2_000);
    let generated = std::env::var_os("CARGO_FEATURE_GENERATED_MODULES").is_some();
    if generated {
        for module in generated_modules() {
            builder.guest(module.to_str().expect("the directory's path is UTF-8"));
        }
    } else {
        // Every guest gets a signed update package, for examples/update.rs.
        builder.development_update_key();
    }
    let output = builder.compile();
    if !generated {
        update_example_input(builder, &output, out);
    }
    if generated {
        // By the names the build gave them, which the emitted module uses.
        let mut list = String::from("/// The generated modules, in file-name order.\n");
        list += "pub static GENERATED: &[&wasm_embed::Guest] = &[\n";
        for guest in &output.guests {
            list += &format!("    &demo_firmware::guests::{}::GUEST,\n", guest.name);
        }
        list += "];\n";
        std::fs::write(out.join("generated-modules.rs"), list).expect("OUT_DIR is writable");
    }
}

/// The `.wasm` files in the directory `GENERATED_MODULES` names, in file-name order.
fn generated_modules() -> Vec<PathBuf> {
    println!("cargo:rerun-if-env-changed=GENERATED_MODULES");
    let Some(dir) = std::env::var_os("GENERATED_MODULES") else {
        panic!(
            "the generated-modules feature needs GENERATED_MODULES, a directory of .wasm files \
             (pipeline-check's on-device test writes them)"
        );
    };
    let mut modules: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!("GENERATED_MODULES={}: {e}; set it to a directory of .wasm files", Path::new(&dir).display())
        })
        .map(|entry| entry.expect("the directory lists").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
        .collect();
    modules.sort();
    modules
}

/// The add guest with `bonus` added to its result: an update that changes what it
/// computes, and keeps its interface.
fn add_plus(bonus: u32, export: &str) -> String {
    format!(
        r#"(module
  (import "host" "extra" (func $extra (result i32)))
  (func (export "{export}") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add call $extra i32.add i32.const {bonus} i32.add))"#
    )
}

/// Builds `wat` as a prebuilt guest named `add` at `version`, with `builder`'s settings
/// changed by `settings`, and returns its signed update package.
fn add_package(builder: &wasm_embed_build::Builder, out: &Path, variant: &str, wat: &str, version: &str) -> Vec<u8> {
    let dir = out.join("update-example").join(variant);
    std::fs::create_dir_all(&dir).expect("OUT_DIR is writable");
    let wasm = dir.join("add.wasm");
    let bytes = wat::parse_str(wat).expect("the variants are valid text");
    // Rewritten only when it changes: the build reruns when a guest file changes.
    write_if_changed(&wasm, &bytes);
    // This script writes the variant's file, so Cargo must not watch it: it would look
    // changed at every build.
    let output = builder
        .clone()
        .cargo_metadata(false)
        .guest(wasm.to_str().expect("OUT_DIR is UTF-8"))
        .out_dir(&dir)
        .update_dir(&dir)
        .guest_version("add", version)
        .compile();
    let add = output.guests.iter().find(|g| g.name == "add").expect("the variant is named after its file");
    std::fs::read(add.update.as_ref().expect("signed with the development key")).expect("just written")
}

/// What the update examples receive over their UART (see [`frame_writer`]; kinds: 0 the
/// end, 1 install, 2 install and cut the power after `cut` flash operations, 3 install
/// and cut the power while the slot's marker is written), written beside the firmware's
/// binaries where `qemu-run.sh` finds them (`examples/update` -> `update.uart`); and the
/// package examples/update_verify.rs times.
fn update_example_input(builder: &wasm_embed_build::Builder, output: &wasm_embed_build::Output, out: &Path) {
    // A build that skipped its guests, or a copy of this firmware without the add guest.
    let Some(add) = output.guests.iter().find(|g| g.name == "add") else {
        return;
    };
    // The firmware's own settings, so that only what each step changes differs.
    let newer = add_package(builder, out, "0.2.0", &add_plus(100, "add_with_extra"), "0.2.0");
    let newest = add_package(builder, out, "0.3.0", &add_plus(200, "add_with_extra"), "0.3.0");
    let other_exports = add_package(builder, out, "other-exports", &add_plus(100, "add_twice"), "0.4.0");
    let mut other_fuel = wasm_embed_build::Builder::new();
    other_fuel.development_update_key();
    if output.settings.fuel.is_none() {
        other_fuel.fuel(1_000);
    }
    let other_settings = add_package(&other_fuel, out, "other-settings", &add_plus(100, "add_with_extra"), "0.4.0");
    let mut flipped = newest.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    // The same package signed with a key the firmware was not built with.
    let stranger = wasm_embed::update::SecretKey::from_seed([0x5e; 32]);
    let fields = wasm_embed::update::Package::read_unverified(&newest).expect("the build wrote it");
    let other_key = stranger
        .sign(
            &wasm_embed::update::PackageBuilder {
                name: fields.name(),
                version: fields.version(),
                settings: *fields.settings(),
                component: fields.is_component(),
                interface: fields.interface(),
                cwasm: fields.cwasm(),
            }
            .unsigned(&stranger.public_key())
            .expect("the fields fit"),
        )
        .expect("made for this key");
    // The built-in guest's own package, 0.1.0, sent again once 0.2.0 runs: a replay.
    let replayed = std::fs::read(add.update.as_ref().expect("signed with the development key")).expect("written");

    let mut stream = Vec::new();
    let mut frame = frame_writer(&mut stream);
    frame(1, 0, "the add guest 0.2.0", &newer);
    frame(1, 0, "0.3.0 with one flipped byte", &flipped);
    frame(1, 0, "0.3.0 signed with another key", &other_key);
    frame(1, 0, "the built-in 0.1.0 again (a replay)", &replayed);
    frame(1, 0, "0.4.0 precompiled with other fuel settings", &other_settings);
    frame(1, 0, "0.4.0 whose export is add_twice", &other_exports);
    for cut in [1, 5, 9, 20, 40] {
        frame(2, cut, &format!("0.3.0, the power cut after {cut} flash operations"), &newest);
    }
    frame(3, 0, "0.3.0, the power cut while its marker is written", &newest);
    frame(1, 0, "the add guest 0.3.0", &newest);
    frame(0, 0, "", &[]);
    drop(frame);
    let updates = add.update.as_ref().and_then(|p| p.parent()).expect("packages have a directory");
    write_if_changed(&updates.join("update.uart"), &stream);
    // The add example with updates (examples/add_updatable.rs) gets the add guest's own
    // package, so that it runs the very guest the add example runs, from a slot.
    let mut stream = Vec::new();
    let mut frame = frame_writer(&mut stream);
    frame(1, 0, "the add guest 0.1.0", &replayed);
    frame(0, 0, "", &[]);
    drop(frame);
    write_if_changed(&updates.join("add_updatable.uart"), &stream);
    // A package of about 20 KiB for the add guest, what examples/update_verify.rs times:
    // the add guest with 17,296 bytes of data, through the pipeline like any other.
    let mut large = builder.clone();
    large.exact_memory(false);
    let data = "\\a5".repeat(17_296);
    // It reads a byte of the data, or wasm-opt would drop the memory and the data.
    let wat = add_plus(0, "add_with_extra")
        .replace("(func (export", &format!("(memory 1) (data (i32.const 16) \"{data}\")\n  (func (export"))
        .replace("i32.const 0 i32.add", "i32.const 16 i32.load8_u i32.add");
    write_if_changed(&out.join("verify-20k.update"), &add_package(&large, out, "verify-20k", &wat, "0.5.0"));
}

fn write_if_changed(path: &Path, bytes: &[u8]) {
    if std::fs::read(path).ok().as_deref() != Some(bytes) {
        std::fs::write(path, bytes).expect("the build's directories are writable");
    }
}


/// Writes frames of the UART stream examples/update.rs describes into `stream`: four zero
/// bytes (a byte the UART holds when the power goes is lost: padding, not the frame's),
/// `WEUP`, kind, label length, `cut`, payload length, label, payload.
fn frame_writer(stream: &mut Vec<u8>) -> impl FnMut(u8, u16, &str, &[u8]) + '_ {
    move |kind, cut, label, payload| {
        stream.extend_from_slice(&[0; 4]);
        stream.extend_from_slice(b"WEUP");
        stream.push(kind);
        stream.push(u8::try_from(label.len()).expect("short labels"));
        stream.extend_from_slice(&cut.to_le_bytes());
        stream.extend_from_slice(&u32::try_from(payload.len()).expect("small packages").to_le_bytes());
        stream.extend_from_slice(label.as_bytes());
        stream.extend_from_slice(payload);
    }
}
