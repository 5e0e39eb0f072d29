fn main() {
    // esp-hal's linkall.x holds the chip's memory map: nothing to copy.
    // Builds the guests listed in Cargo.toml and writes their bindings into OUT_DIR.
    wasm_embed_build::build();
}
