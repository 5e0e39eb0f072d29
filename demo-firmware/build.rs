use std::borrow::BorrowMut;
use std::path::{Path, PathBuf};

fn main() {
    // The board the target stands for, and its directory (its memory map, its specifics):
    // QEMU's MPS2 boards for the Armv6-M and Armv7-M cores, mps2-an505 for the Armv8-M
    // Cortex-M33, `virt` for RISC-V. The code tells them apart by `cfg(board = ...)`.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let board = match () {
        _ if target.starts_with("riscv32") => "riscv",
        _ if target.starts_with("thumbv8m") => "an505",
        _ => "mps2",
    };
    println!("cargo::rustc-check-cfg=cfg(board, values(\"mps2\", \"an505\", \"riscv\"))");
    println!("cargo::rustc-cfg=board=\"{board}\"");
    // An ARMv6-M image runs on the MPS2 board's Cortex-M3, which must then fault on an
    // unaligned access as a Cortex-M0+ does (src/arm.rs).
    println!("cargo::rustc-check-cfg=cfg(armv6m)");
    if target.starts_with("thumbv6m") {
        println!("cargo::rustc-cfg=armv6m");
    }
    // cortex-m-rt's and riscv-rt's link.x find memory.x on the linker's search path. The
    // RISC-V map gets a name of its own, given with `-T` (.cargo/config.toml).
    let memory = format!("{board}/memory.x");
    let linked_as = if board == "riscv" { "riscv-memory.x" } else { "memory.x" };
    std::fs::copy(&memory, out.join(linked_as)).expect("each board's memory.x is in its directory");
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

/// The packages examples/update.rs is sent over SMP (the end-to-end test sends them with
/// `smpmgr`), written beside the build's own `add.update` as `add-<what>.update`; what the
/// size report's add examples receive over their UART, written beside the firmware's
/// binaries where `qemu-run.sh` finds them (`examples/add_updatable` ->
/// `add_updatable.uart`); and the package examples/update_verify.rs times.
fn update_example_input(builder: &wasm_embed_build::Builder, output: &wasm_embed_build::Output, out: &Path) {
    // A build that skipped its guests, or a copy of this firmware without the add guest.
    let Some(add) = output.guests.iter().find(|g| g.name == "add") else {
        return;
    };
    let updates = add.update.as_ref().and_then(|p| p.parent()).expect("packages have a directory");
    // The firmware's own settings, so that only what each package changes differs.
    let newest = add_package(builder, out, "0.3.0", &add_plus(200, "add_with_extra"), "0.3.0");
    let mut flipped = newest.clone();
    // In the .cwasm, after the signed header: the signature holds, the digest does not.
    let last = flipped.len() - 100;
    flipped[last] ^= 0x10;
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
    let mut other_fuel = wasm_embed_build::Builder::new();
    other_fuel.development_update_key();
    if output.settings.fuel.is_none() {
        other_fuel.fuel(1_000);
    }
    let traps = add_plus(400, "add_with_extra").replace("i32.const 400 i32.add", "unreachable");
    for (name, bytes) in [
        ("0.2.0", add_package(builder, out, "0.2.0", &add_plus(100, "add_with_extra"), "0.2.0")),
        ("0.3.0", newest.clone()),
        ("0.3.0-flipped", flipped),
        ("0.3.0-other-key", other_key),
        ("0.4.0-other-fuel", add_package(&other_fuel, out, "other-fuel", &add_plus(100, "add_with_extra"), "0.4.0")),
        ("0.4.0-add-twice", add_package(builder, out, "add-twice", &add_plus(100, "add_twice"), "0.4.0")),
        ("0.4.0-traps", add_package(builder, out, "traps", &traps, "0.4.0")),
        ("0.5.0", add_package(builder, out, "0.5.0", &add_plus(500, "add_with_extra"), "0.5.0")),
    ] {
        write_if_changed(&updates.join(format!("add-{name}.update")), &bytes);
    }
    // The add example with updates (examples/add_updatable.rs) gets the add guest's own
    // package, so that it runs the very guest the add example runs, from a slot; the
    // one with SMP (examples/add_smp.rs) gets it as an SMP upload.
    let own = std::fs::read(add.update.as_ref().expect("signed with the development key")).expect("written");
    let mut stream = Vec::new();
    let mut frame = frame_writer(&mut stream);
    frame(1, 0, "the add guest 0.1.0", &own);
    frame(0, 0, "", &[]);
    drop(frame);
    write_if_changed(&updates.join("add_updatable.uart"), &stream);
    write_if_changed(&updates.join("add_smp.uart"), &smp_upload(&own));
    // A package of about 20 KiB for the add guest, what examples/update_verify.rs times:
    // the add guest with 17,296 bytes of data, through the pipeline like any other.
    let mut large = builder.clone();
    large.exact_memory(false);
    let data = "\\a5".repeat(17_296);
    // It reads a byte of the data, or wasm-opt would drop the memory and the data.
    let wat = add_plus(0, "add_with_extra")
        .replace("(func (export", &format!("(memory 1) (data (i32.const 16) \"{data}\")\n  (func (export"))
        .replace("i32.const 0 i32.add", "i32.const 16 i32.load8_u i32.add");
    let large = add_package(&large, out, "verify-20k", &wat, "0.6.0");
    write_if_changed(&out.join("verify-20k.update"), &large);
    write_if_changed(&updates.join("add-0.6.0-20k.update"), &large);
}

/// `package` as the SMP image uploads a client sends over a UART, in pieces of 256
/// bytes, framed as MCUmgr's serial transport frames them.
fn smp_upload(package: &[u8]) -> Vec<u8> {
    let mut stream = Vec::new();
    for (sequence, off) in (0..package.len()).step_by(256).enumerate() {
        let data = &package[off..(off + 256).min(package.len())];
        let mut body = Vec::new();
        let mut e = minicbor::Encoder::new(&mut body);
        let map = if off == 0 { 4 } else { 2 };
        e.map(map).and_then(|e| e.str("off")?.u64(off as u64)?.str("data")?.bytes(data)).expect("to a Vec");
        if off == 0 {
            e.str("image").and_then(|e| e.u32(0)?.str("len")?.u64(package.len() as u64)).expect("to a Vec");
        }
        // Write (2), version 2, the image group (1), upload (1).
        let mut request = vec![2 | 1 << 3, 0];
        request.extend_from_slice(&(body.len() as u16).to_be_bytes());
        request.extend_from_slice(&1u16.to_be_bytes());
        request.extend_from_slice(&[sequence as u8, 1]);
        request.extend_from_slice(&body);
        wasm_embed::smp::serial::encode(&request, |line| stream.extend_from_slice(line));
    }
    stream
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
