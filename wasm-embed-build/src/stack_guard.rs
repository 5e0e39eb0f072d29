//! The main stack's guard in the firmware's link: when the firmware's wasm-embed has
//! `stack-guard` (Cargo passes that on as `DEP_WASM_EMBED_STACK_GUARD`), a linker script
//! that puts the guard between the statics and the stack, so that the stack ends where
//! the guard begins, for `wasm_embed::stack_guard` to protect.

use std::path::{Path, PathBuf};

use crate::Error;

/// The guard's size unless `Builder::stack_guard_size` says otherwise: larger than the
/// largest frame in a firmware with Wasmtime, `Engine::new`'s (3,148 B on the
/// Cortex-M4, 3,200 B on RISC-V).
pub(crate) const DEFAULT_SIZE: usize = 4096;

/// Bytes left unowned just below the guard, at `__stack_watch`: a firmware can paint them
/// and, after an overflow, check that the stack did not step over the guard into them.
const WATCH: usize = 256;

/// The file name of the script, in `OUT_DIR`.
const SCRIPT: &str = "wasm-embed-stack-guard.x";

/// Writes the linker script for a guard of `size` bytes into `out_dir`, for the target
/// architecture `arch` (Cargo's `CARGO_CFG_TARGET_ARCH`), and returns its path.
pub(crate) fn write(out_dir: &Path, arch: &str, size: usize) -> Result<PathBuf, Error> {
    if !size.is_power_of_two() || size < 256 {
        return Err(Error::BadStackGuard {
            message: format!(
                "a stack guard of {size} bytes cannot be one MPU or PMP region; give Builder::stack_guard_size a \
                 power of two of at least 256 (4096 by default)"
            ),
        });
    }
    // The statics end with cortex-m-rt's `.uninit` and riscv-rt's (empty) `.heap`. The
    // stack ends at riscv-rt's `__estack`, which the assertion checks, so that a change
    // in riscv-rt fails the link rather than the device. cortex-m-rt sets `_stack_end` to
    // where the link is after `.uninit`, which a memory.x that inserts a flash section
    // there moves into flash (the RP2350's block loop does): the script sets it instead.
    let (after, placement) = match arch {
        "arm" => (
            ".uninit",
            "_stack_end = __stack_guard_end;\n\
             ASSERT(__stack_guard >= __euninit && __stack_guard_end <= _stack_start, \
             \"wasm-embed: the stack's guard is not between the statics and the stack; link with cortex-m-rt 0.7\");\n",
        ),
        "riscv32" => (
            ".heap",
            "ASSERT(__estack == __stack_guard_end, \
             \"wasm-embed: the stack's guard is not where the stack ends; link with riscv-rt 0.18\");\n\
             ASSERT(_max_hart_id == 0, \
             \"wasm-embed: the stack's guard is for one hart (its trap entry keeps a register in one static)\");\n",
        ),
        _ => {
            return Err(Error::BadStackGuard {
                message: format!(
                    "wasm-embed's `stack-guard` knows cortex-m-rt's and riscv-rt's memory layout, not a firmware for \
                     {arch}; turn the feature off"
                ),
            });
        }
    };
    // riscv-rt names its memory by aliases; the stack's is where the guard goes.
    let region = if arch == "riscv32" { "REGION_STACK" } else { "RAM" };
    let script = format!(
        "/* Written by wasm-embed-build: the main stack's guard (wasm_embed::stack_guard). */\n\
         SECTIONS\n{{\n  .stack_guard (NOLOAD) : ALIGN(4)\n  {{\n    __stack_watch = .;\n    \
         . = ALIGN(. + {WATCH}, {size});\n    __stack_guard = .;\n    . += {size};\n    __stack_guard_end = .;\n  \
         }} > {region}\n}}\n\
         INSERT AFTER {after};\n\
         ASSERT(__stack_guard % {size} == 0, \"wasm-embed: the stack's guard is not aligned to its size\");\n\
         {placement}"
    );
    let path = out_dir.join(SCRIPT);
    std::fs::write(&path, script).map_err(|source| Error::Io { path: path.clone(), source })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_is_a_power_of_two_of_at_least_256_bytes() {
        let dir = std::env::temp_dir();
        for size in [0, 128, 3000] {
            let error = write(&dir, "arm", size).unwrap_err().to_string();
            assert_eq!(
                error,
                format!(
                    "wasm-embed-build: a stack guard of {size} bytes cannot be one MPU or PMP region; give \
                     Builder::stack_guard_size a power of two of at least 256 (4096 by default)"
                )
            );
        }
        assert_eq!(
            write(&dir, "xtensa", 4096).unwrap_err().to_string(),
            "wasm-embed-build: wasm-embed's `stack-guard` knows cortex-m-rt's and riscv-rt's memory layout, not a \
             firmware for xtensa; turn the feature off"
        );
    }
}
