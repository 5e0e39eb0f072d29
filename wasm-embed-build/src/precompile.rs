//! Compile the guest's final wasm ahead of time into the `.cwasm` the firmware runs,
//! with the one Wasmtime configuration both sides use.

use wasm_embed::Settings;

use crate::Error;

pub fn precompile(
    guest: &str,
    settings: &Settings,
    wasm: &[u8],
    component: bool,
) -> Result<Vec<u8>, Error> {
    #[cfg(feature = "component-model")]
    let precompiled = match component {
        true => wasm_embed::precompile_component(settings, wasm),
        false => wasm_embed::precompile(settings, wasm),
    };
    #[cfg(not(feature = "component-model"))]
    let precompiled = {
        debug_assert!(!component, "no component is made without the feature");
        wasm_embed::precompile(settings, wasm)
    };
    precompiled.map_err(|e| Error::Precompile {
        guest: guest.to_owned(),
        message: format!("{e:#}"),
    })
}

/// What a precompiled artifact of `wasm` depends on: its bytes, the settings, Wasmtime's
/// version and configuration (its compatibility hash), and this library's own code,
/// through the modification time of the build script's binary, which Cargo relinks
/// whenever any of it changes. A build compares the key in full with the last one's.
pub(crate) fn key(wasm: &[u8], settings: &Settings) -> Vec<u8> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    if let Ok(engine) = wasm_embed::engine(settings) {
        engine.precompile_compatibility_hash().hash(&mut hasher);
    }
    let binary = std::env::current_exe().and_then(std::fs::metadata).and_then(|m| m.modified());
    let mut key = format!("{settings:?} {:x} {binary:?}\n", hasher.finish()).into_bytes();
    key.extend_from_slice(wasm);
    key
}
