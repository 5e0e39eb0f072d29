use std::path::PathBuf;

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
    wasm_embed_build::Builder::new().fuel(1_000_000).compile();
}
