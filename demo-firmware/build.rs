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
    let generated = std::env::var_os("CARGO_FEATURE_GENERATED_MODULES").is_some();
    if generated {
        for module in generated_modules() {
            builder.guest(module.to_str().expect("the directory's path is UTF-8"));
        }
    }
    let output = builder.compile();
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
