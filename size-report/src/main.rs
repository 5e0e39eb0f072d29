//! The size report: builds demo-firmware's `add` example (the add example's firmware) for the
//! Cortex-M4, runs it in QEMU, and prints
//! as markdown (and writes as JSON) its flash and RAM beside the runtimes of the original
//! comparison on the nRF52840-DK (Ariel OS), its
//! code size by crate, each guest's size after every pipeline stage, and, with
//! `--levers`, what each size lever saves, measured by building without it.
//!
//! Usage: `cargo run -p size-report --release -- [--levers] [--json PATH]`
//! (or `./x size`). With `speed` as its argument it prints the speed table instead
//! (`./x speed`, see speed.rs): it builds its profiles the way the size levers are built.

mod add;
mod boards;
mod cargo;
mod components;
mod elf;
mod embassy;
mod format;
mod guards;
mod measure;
mod speed;
mod updates;

use std::path::PathBuf;

use serde_json::json;

use crate::add::{LEVERS, print_markdown, to_json};
use crate::boards::{boards_json, measure_boards, print_boards};
use crate::cargo::repo;
use crate::components::{COMPONENT_EXAMPLES, print_components};
use crate::elf::static_ram;
use crate::embassy::{measure_async, print_async};
use crate::guards::{guards_json, measure_guards, print_guards};
use crate::measure::{Variant, compare_cwasm, guest_figure, measure, measure_example, variant};
use crate::updates::{measure_updates, print_updates};

fn main() {
    if std::env::args().nth(1).as_deref() == Some("speed") {
        return speed::main();
    }
    let mut args = std::env::args().skip(1);
    let mut levers = false;
    let mut json_path = repo().join("target/size-report.json");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--levers" => levers = true,
            "--json" => json_path = args.next().map(PathBuf::from).unwrap_or_else(|| fail("--json needs a path")),
            other => fail(&format!("unknown argument `{other}`; use [--levers] [--json PATH]")),
        }
    }
    let mut base = measure(&Variant::original()).unwrap_or_else(|e| fail(&e));
    base.compared = compare_cwasm(&base.out_dir, &base.guests).unwrap_or_else(|e| fail(&e));
    let mut components = Vec::new();
    for (label, example, guest) in COMPONENT_EXAMPLES {
        eprintln!("size-report: building the {label}");
        let measured = measure_example(&Variant::original(), example, &["component"]).unwrap_or_else(|e| fail(&e));
        components.push((label, guest, measured));
    }
    eprintln!("size-report: building the add example with updates");
    let updates = measure_updates(&base).unwrap_or_else(|e| fail(&e));
    eprintln!("size-report: building the async add example and the embassy example");
    let guests_async = measure_async().unwrap_or_else(|e| fail(&e));
    let mut lever_rows = Vec::new();
    if levers {
        for lever in LEVERS {
            eprintln!("size-report: building without {}", lever.name);
            let variant = variant(&format!("add {}", lever.name), lever.edits).unwrap_or_else(|e| fail(&e));
            lever_rows.push((lever.name, measure(&variant).unwrap_or_else(|e| fail(&e))));
        }
    }
    let guards = measure_guards(&guests_async.add).unwrap_or_else(|e| fail(&e));
    let boards = measure_boards().unwrap_or_else(|e| fail(&e));
    print_markdown(&base, &lever_rows).unwrap_or_else(|e| fail(&e));
    print_components(&base, &components);
    print_updates(&base, &updates);
    print_async(&base, &guests_async);
    print_guards(&guards);
    print_boards(&boards);
    let mut report = to_json(&base, &lever_rows);
    report["components"] = components
        .iter()
        .map(|(label, guest, m)| {
            json!({
                "firmware": label,
                "flash": m.flash,
                "peak_heap": m.peak_heap,
                "cwasm": guest_figure(m, guest, "cwasm"),
            })
        })
        .collect();
    report["updates"] = json!({
        "flash": updates.firmware.flash,
        "feature_flash": updates.firmware.flash as i64 - base.flash as i64,
        "static_ram": static_ram(&updates.firmware),
        "feature_static_ram": static_ram(&updates.firmware) as i64 - static_ram(&base) as i64,
        "peak_heap": updates.firmware.peak_heap,
        "feature_peak_heap": updates.firmware.peak_heap as i64 - base.peak_heap as i64,
        "package": updates.package,
        "cwasm": updates.cwasm,
        "verify_package_bytes": updates.verify_bytes,
        "verify_instructions": updates.verify_instructions,
        "smp_flash": updates.smp.flash,
        "smp_feature_flash": updates.smp.flash as i64 - updates.firmware.flash as i64,
        "upload_bytes": updates.upload_bytes,
        "upload_ms": updates.upload_ms,
    });
    report["async"] = json!({
        "flash": guests_async.add.flash,
        "peak_heap": guests_async.add.peak_heap,
        "fiber_stack": guests_async.fiber,
        "fiber_stack_used": guests_async.fiber_used,
        "lateness": guests_async.lateness.iter().map(|(core, phase, late, slice)| {
            json!({"core": core, "phase": phase, "worst_lateness_us": late, "longest_slice_us": slice})
        }).collect::<Vec<_>>(),
    });
    report["guards"] = guards_json(&guards);
    report["boards"] = boards_json(&boards);
    std::fs::write(&json_path, serde_json::to_string_pretty(&report).unwrap())
        .unwrap_or_else(|e| fail(&format!("{}: {e}", json_path.display())));
    eprintln!("size-report: wrote {}", json_path.display());
}

fn fail(message: &str) -> ! {
    eprintln!("size-report: {message}");
    std::process::exit(1);
}
