//! A component guest: its interface is the WIT world in `wit/`, and wit-bindgen makes
//! the Rust side of it. The firmware passes a reading (a record with a string and a
//! list), the guest calls back into the firmware (strings, lists, a record and results
//! both ways) and returns a summary or an error.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

wit_bindgen::generate!({ path: "wit", world: "filter" });

/// Samples above this are glitches of the sensor, not readings.
const MAX_SAMPLE: u8 = 200;

struct Filter;

impl Guest for Filter {
    fn filter(reading: Reading) -> Result<Summary, String> {
        let offset = calibration(&reading.sensor).map_err(|why| concat(&["no calibration for ", &reading.sensor, ": ", &why]))?;
        let mut kept = Vec::new();
        for sample in reading.samples.iter().chain(history(&reading.sensor).iter()) {
            if *sample <= MAX_SAMPLE {
                kept.push((i32::from(*sample) + offset).clamp(0, 255) as u8);
            }
        }
        if kept.is_empty() {
            return Err(concat(&["sensor ", &reading.sensor, " has no sample in range"]));
        }
        let sum: u32 = kept.iter().map(|&s| u32::from(s)).sum();
        let summary = Summary {
            mean: (sum / kept.len() as u32) as u8,
            peak: kept.iter().copied().max().unwrap_or(0),
            sensor: reading.sensor,
            kept,
        };
        publish(&summary).map_err(|why| concat(&["the firmware refused the summary: ", &why]))?;
        Ok(summary)
    }

    fn fault(code: u32) -> u32 {
        if code != 0 {
            core::arch::wasm32::unreachable();
        }
        code
    }
}

export!(Filter);

/// Joins text without `core::fmt`, which would triple the guest's size.
fn concat(parts: &[&str]) -> String {
    parts.concat()
}

#[global_allocator]
static ALLOCATOR: talc::TalcLock<spinning_top::RawSpinlock, talc::source::Claim> = talc::TalcLock::new(unsafe {
    static mut ARENA: [u8; 4096] = [0; 4096];
    talc::source::Claim::array(&raw mut ARENA)
});

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
