fn main() {
    // esp-hal's linkall.x holds the chip's memory map. Builds, strips, optimizes and
    // precompiles the guests listed in Cargo.toml. Fuel bounds every call: a guest stuck
    // in a loop returns an error instead of hanging the board.
    wasm_embed_build::Builder::new().fuel(1_000_000).compile();
}
