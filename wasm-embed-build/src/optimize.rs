//! The `optimize` stage: binaryen's `wasm-opt -Oz`, which shrinks what rustc and LLVM leave behind.

use std::path::Path;

use crate::Error;

/// Optimizes `wasm` for size. `scratch` is a directory for binaryen, which only works on
/// files.
#[cfg(feature = "wasm-opt")]
pub fn optimize(guest: &str, wasm: &[u8], scratch: &Path, keep_names: bool) -> Result<Vec<u8>, Error> {
    use wasm_opt::{Feature, OptimizationOptions};

    let input = scratch.join(format!("{guest}.stripped.wasm"));
    let output = scratch.join(format!("{guest}.optimized.wasm"));
    std::fs::write(&input, wasm).map_err(crate::error::io(&input))?;
    OptimizationOptions::new_optimize_for_size_aggressively()
        // Exactly what wasm32v1-none and the firmware's engine allow, so binaryen
        // introduces no instruction the engine would reject.
        .mvp_features_only()
        .enable_feature(Feature::MutableGlobals)
        // binaryen's "debug info" is the name section: kept for the debug profile.
        .debug_info(keep_names)
        .run(&input, &output)
        .map_err(|e| Error::Optimize {
            guest: guest.to_owned(),
            message: e.to_string(),
        })?;
    std::fs::read(&output).map_err(crate::error::io(&output))
}

/// Without the `wasm-opt` feature the guest passes through unchanged.
#[cfg(not(feature = "wasm-opt"))]
pub fn optimize(_guest: &str, wasm: &[u8], _scratch: &Path, _keep_names: bool) -> Result<Vec<u8>, Error> {
    Ok(wasm.to_vec())
}
