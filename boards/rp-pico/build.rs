use std::path::PathBuf;

fn main() {
    // cortex-m-rt's link.x includes memory.x from the linker's search path.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::copy("memory.x", out.join("memory.x")).expect("memory.x is beside build.rs");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    // Builds, strips, optimizes and precompiles the guests listed in Cargo.toml. Fuel
    // bounds every call: a guest stuck in a loop returns an error instead of hanging the
    // board.
    wasm_embed_build::Builder::new().fuel(1_000_000).compile();
}
