//! A component guest on the device: the sensor filter, whose WIT world
//! (guests/sensor-filter/wit) passes strings, lists, records and results both ways. The
//! firmware implements the world's imports as a Rust trait and calls its exports with
//! Rust types; a trapping call is contained, and a new instance carries on.
//!
//! `cargo run --release --example sensor --features component`
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use demo_firmware::{exit, guests, heap};
use guests::sensor_filter::SensorFilter;
use guests::sensor_filter::wit::{FilterImports, Reading, Summary};

/// The firmware's side of the world: a calibration table, samples buffered since the
/// last reading, and the summaries the guest published.
#[derive(Default)]
struct Firmware {
    published: Vec<Summary>,
}

impl FilterImports for Firmware {
    fn calibration(&mut self, sensor: String) -> Result<i32, String> {
        match sensor.as_str() {
            "inlet" => Ok(-3),
            "outlet" => Ok(10),
            _ => Err(format!("sensor `{sensor}` is not in the table")),
        }
    }

    fn history(&mut self, sensor: String) -> Vec<u8> {
        if sensor == "inlet" { vec![40, 250, 44] } else { Vec::new() }
    }

    fn publish(&mut self, summary: Summary) -> Result<(), String> {
        self.published.push(summary);
        Ok(())
    }
}

#[entry]
fn main() -> ! {
    demo_firmware::init();
    match run() {
        Ok(()) => {
            hprintln!("peak heap: {} bytes", heap::peak());
            exit(true)
        }
        Err(error) => {
            hprintln!("error: {error}");
            exit(false)
        }
    }
}

fn run() -> Result<(), wasm_embed::Error> {
    let guest = &guests::sensor_filter::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let component = guest.load_component(&engine)?;
    let mut filter = SensorFilter::new(&component, Firmware::default())?;

    filter_and_print(&mut filter, "inlet", &[10, 20, 201, 30])?;
    filter_and_print(&mut filter, "attic", &[1])?;
    hprintln!("summaries published: {}", filter.host().published.len());

    // A trap ends this instance's life, not the firmware's.
    match filter.call("fault", |world, store| world.call_fault(store, 1)) {
        Ok(code) => hprintln!("fault(1) returned {code}, but it should have trapped"),
        Err(error) => hprintln!("contained: {error}"),
    }
    drop(filter);
    let mut filter = SensorFilter::new(&component, Firmware::default())?;
    filter_and_print(&mut filter, "outlet", &[5, 6, 7])
}

/// Filters one reading and prints the summary, or the guest's reason for none.
fn filter_and_print(filter: &mut SensorFilter<Firmware>, sensor: &str, samples: &[u8]) -> Result<(), wasm_embed::Error> {
    let reading = Reading { sensor: sensor.into(), samples: samples.to_vec() };
    match filter.call("filter", |world, store| world.call_filter(store, &reading))? {
        Ok(summary) => {
            hprintln!(
                "filter({sensor}, {}) = kept {}, mean {}, peak {}",
                List(samples),
                List(&summary.kept),
                summary.mean,
                summary.peak
            );
            // The generated records compare with `==`.
            if filter.host().published.last() != Some(&summary) {
                hprintln!("the guest returned another summary than it published");
            }
        }
        Err(why) => hprintln!("filter({sensor}, {}) = error: {why}", List(samples)),
    }
    Ok(())
}

/// Bytes as `[1, 2, 3]`, written out: the firmware builds with `-Zfmt-debug=none`, under
/// which `{:?}` writes nothing.
struct List<'a>(&'a [u8]);

impl core::fmt::Display for List<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("[")?;
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{byte}")?;
        }
        f.write_str("]")
    }
}
