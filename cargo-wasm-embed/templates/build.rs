fn main() {
    // The runtime's link.x includes memory.x from the linker's search path.
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    // Builds the guests listed in Cargo.toml and writes their bindings into OUT_DIR.
    wasm_embed_build::build();
}
