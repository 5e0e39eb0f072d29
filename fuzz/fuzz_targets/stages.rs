//! libFuzzer's input becomes a generated module (see pipeline-check), which goes through
//! strip, wasm-opt, the page-size change and precompilation; each stage's output must
//! behave as its input did, or the build must refuse a module that could never run.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// wasm-opt works on files: one directory per fuzzing process.
fn scratch() -> &'static PathBuf {
    static SCRATCH: OnceLock<PathBuf> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wasm-embed-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    if let Err(difference) = pipeline_check::check(data, scratch(), "fuzz") {
        panic!("{difference}");
    }
});
