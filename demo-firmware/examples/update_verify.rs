//! How long an update takes to verify: every check of a 20 KiB package for the add
//! guest (its bytes are padding: verifying never runs them), timed with the board's
//! counter. Under QEMU's `-icount shift=0` one tick is 40 instructions; the size report
//! (`./x size`) runs it so and prints the figure.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use demo_firmware::{TICKS_PER_MS, exit, guests, say, ticks};
use wasm_embed::update::{Package, Version};

/// Signed with the build's development key (build.rs).
static PACKAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/verify-20k.update"));

#[entry]
fn main() -> ! {
    demo_firmware::init();
    let start = ticks();
    let verified = Package::verify(PACKAGE, &guests::add::UPDATABLE, &guests::UPDATE_KEY, Version::ZERO);
    let elapsed = ticks().wrapping_sub(start);
    match verified {
        Ok(_) => {
            // 1 ns of virtual time per instruction: ticks at 25 MHz are 40 instructions.
            let instructions = u64::from(elapsed) * 1_000_000 / TICKS_PER_MS;
            say!("verified a {}-byte package in {instructions} instructions", PACKAGE.len());
            exit(true)
        }
        Err(error) => {
            say!("error: {error}");
            exit(false)
        }
    }
}
