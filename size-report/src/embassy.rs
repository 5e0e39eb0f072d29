//! The async report: the add example under embassy through wasm-embed's `async` feature,
//! and the embassy example's ticker beside the guests on both cores.

use crate::cargo::cargo;
use crate::format::group;
use crate::measure::{Measurement, Variant, measure_example};

/// The add example under embassy (examples/add_async.rs), and the embassy example's
/// ticker on both cores.
pub(crate) struct Async {
    pub(crate) add: Measurement,
    /// The fiber stack's size and the bytes of it the call wrote.
    pub(crate) fiber: u64,
    pub(crate) fiber_used: u64,
    /// Per core and phase: the ticker's worst lateness and the longest slice, in µs.
    pub(crate) lateness: Vec<(&'static str, String, u64, u64)>,
}

pub(crate) fn measure_async() -> Result<Async, String> {
    let add = measure_example(&Variant::original(), "add_async", &["embassy"])?;
    // `fiber stack: 864 of 4096 bytes used`
    let [fiber_used, fiber] = numbers_after(&add.output, "fiber stack: ")[..] else {
        return Err(format!("examples/add_async.rs printed no fiber stack:\n{}", add.output));
    };
    let mut lateness = Vec::new();
    for (core, target) in [("Cortex-M4", "thumbv7em-none-eabihf"), ("RISC-V", "riscv32imac-unknown-none-elf")] {
        let args = ["run", "--release", "--features", "embassy", "--example", "embassy", "--target", target];
        let run = cargo(&Variant::original().dir, &args)?;
        for line in run.program.lines().filter(|l| l.contains("worst tick lateness")) {
            let phase = line.split(':').next().unwrap_or("?").to_owned();
            if let [late, slice, ..] = numbers_after(line, ": ")[..] {
                lateness.push((core, phase, late, slice));
            }
        }
    }
    Ok(Async {
        add,
        fiber,
        fiber_used,
        lateness,
    })
}

/// The numbers in the first line of `text` that has `prefix`, after it.
fn numbers_after(text: &str, prefix: &str) -> Vec<u64> {
    let Some(line) = text.lines().find_map(|l| l.split_once(prefix).map(|(_, rest)| rest)) else {
        return Vec::new();
    };
    line.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect()
}

pub(crate) fn print_async(base: &Measurement, a: &Async) {
    let m = &a.add;
    println!("\n## Async: wasm-embed's `async` feature under embassy\n");
    println!("| firmware (thumbv7em-none-eabihf) | flash | peak heap |");
    println!("|---|---:|---:|");
    println!("| add example | {} | {} |", group(base.flash), group(base.peak_heap));
    println!(
        "| async add example: embassy executor and time driver, the add guest through `new_async` and \
         `add_with_extra_async`, its import awaiting a timer | {} | {} |",
        group(m.flash),
        group(m.peak_heap)
    );
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "\nThe async add example: {} B of flash, target ≤ 290,000 B: {}; {} B of peak heap for its one guest, \
         fiber stack included, target ≤ 16,384 B: {}. Its call used {} of the fiber's {} B \
         (`Settings::async_stack_size`).",
        group(m.flash),
        met(m.flash <= 290_000),
        group(m.peak_heap),
        met(m.peak_heap <= 16 * 1024),
        group(a.fiber_used),
        group(a.fiber),
    );
    println!(
        "\nThe embassy example (QEMU `-icount shift=4`: a 62.5 MHz core, one instruction a cycle; a yield \
         every 2,000 units of fuel): a task ticking every millisecond beside the guests.\n"
    );
    println!("| core | guests computing | worst tick lateness (µs) | longest slice without a yield (µs) | tick within one slice |");
    println!("|---|---|---:|---:|---|");
    for (core, phase, late, slice) in &a.lateness {
        println!("| {core} | {phase} | {} | {} | {} |", group(*late), group(*slice), if late <= slice { "yes" } else { "NO" });
    }
}
