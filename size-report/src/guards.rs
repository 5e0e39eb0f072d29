//! What the guards cost, each measured by building without it:
//! - the main stack's guard (wasm-embed's `stack-guard`), on the project `cargo wasm-embed
//!   new` writes, as written and with the feature and board.rs's `install` taken out;
//! - the fiber stacks' MPU regions, on the async add example, as built and with
//!   wasm-embed's build script not turning them on (its paint check stays).

use std::path::Path;

use object::{Object, ObjectSymbol};
use serde_json::{Value, json};

use crate::boards::{boards, scaffold};
use crate::cargo::cargo;
use crate::elf::{elf, flash_of, static_ram, statics};
use crate::format::{group, signed};
use crate::measure::{Measurement, edit, measure_example, variant};

/// One guard on one core: the image with it and without it.
pub(crate) struct GuardCost {
    pub(crate) what: String,
    /// Flash and statics, with the guard and without.
    pub(crate) with: (u64, u64),
    pub(crate) without: (u64, u64),
    /// What the guard's section takes from the main stack's RAM: the guard, the bytes
    /// kept below it and the alignment between.
    pub(crate) from_stack: u64,
}

/// The QEMU boards whose scaffolded project shows the main stack's guard: an MPU and a PMP.
const MAIN_GUARD_BOARDS: [&str; 2] = ["qemu-m4", "qemu-riscv"];

/// Both guards' costs; `async_add` is the async add example as built (with its regions).
pub(crate) fn measure_guards(async_add: &Measurement) -> Result<Vec<GuardCost>, String> {
    let mut costs = Vec::new();
    for board in boards()?.into_iter().filter(|b| MAIN_GUARD_BOARDS.contains(&b.name.as_str())) {
        eprintln!("size-report: building `cargo wasm-embed new --board {}` with and without its stack guard", board.name);
        let guarded = scaffold(&board, "")?;
        let with = cargo(&guarded, &["build", "--release", "--bins"])?;
        let with = with.executables.last().ok_or("cargo reported no executable for the scaffold")?;
        let unguarded = scaffold(&board, "-unguarded")?;
        take_out_main_guard(&unguarded)?;
        let without = cargo(&unguarded, &["build", "--release", "--bins"])?;
        let without = without.executables.last().ok_or("cargo reported no executable for the scaffold")?;
        costs.push(GuardCost {
            what: format!("main stack's guard (`stack-guard`), `cargo wasm-embed new --board {}`", board.name),
            with: flash_and_statics(with)?,
            without: flash_and_statics(without)?,
            from_stack: taken_from_stack(with)?,
        });
    }
    eprintln!("size-report: building the async add example without the fiber stacks' MPU regions");
    let unguarded = variant(
        "async add without fiber MPU regions",
        &[edit("../wasm-embed/build.rs", "println!(\"cargo::rustc-cfg=wasm_embed_mpu_fibers\");", "")],
    )?;
    let with = async_add;
    let without = measure_example(&unguarded, &unguarded.example("add_async"), &["embassy"])?;
    let flash_and_ram = |m: &Measurement| (m.flash, static_ram(m));
    costs.push(GuardCost {
        what: "fiber stacks' MPU regions (`stack-guard` with `async`), the async add example on the Cortex-M4".into(),
        with: flash_and_ram(with),
        without: flash_and_ram(&without),
        from_stack: 0,
    });
    Ok(costs)
}

/// An image's flash and its statics (`.data` and `.bss`): neither the guard's section nor
/// the stack, which riscv-rt's `.stack` section counts.
fn flash_and_statics(executable: &Path) -> Result<(u64, u64), String> {
    let (sections, _, _) = elf(executable)?;
    Ok((flash_of(&sections), statics(&sections)))
}

/// The scaffold's project without the main stack's guard: the feature off in Cargo.toml,
/// and board.rs's `init` no longer installing it.
fn take_out_main_guard(dir: &Path) -> Result<(), String> {
    let stale = || "the scaffold's project no longer turns its guard on as size-report expects; update size-report/src/guards.rs";
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let without = text.replace(", \"stack-guard\"]", "]");
    if without == text {
        return Err(stale().into());
    }
    std::fs::write(&manifest, without).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let board = dir.join("src/board.rs");
    let text = std::fs::read_to_string(&board).map_err(|e| format!("{}: {e}", board.display()))?;
    let start = text.find("    let guarded = wasm_embed::stack_guard::install(").ok_or_else(stale)?;
    let check = start + text[start..].find("    if let Err(error) = guarded {").ok_or_else(stale)?;
    let end = check + text[check..].find("\n    }\n").ok_or_else(stale)? + "\n    }\n".len();
    let without = format!("{}{}", &text[..start], &text[end..]);
    std::fs::write(&board, without).map_err(|e| format!("{}: {e}", board.display()))
}

/// The guard's section (`.stack_guard`), which the stack's RAM gives up: from
/// `__stack_watch`, the bytes the link keeps below the guard, to the guard's end.
fn taken_from_stack(executable: &Path) -> Result<u64, String> {
    let data = std::fs::read(executable).map_err(|e| format!("{}: {e}", executable.display()))?;
    let file = object::File::parse(&*data).map_err(|e| e.to_string())?;
    let address = |name: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address())
            .ok_or_else(|| format!("{}: no symbol {name}", executable.display()))
    };
    Ok(address("__stack_guard_end")? - address("__stack_watch")?)
}

pub(crate) fn guards_json(costs: &[GuardCost]) -> Value {
    costs
        .iter()
        .map(|c| {
            json!({
                "guard": c.what,
                "flash": c.with.0 as i64 - c.without.0 as i64,
                "static_ram": c.with.1 as i64 - c.without.1 as i64,
                "main_stack": c.from_stack,
            })
        })
        .collect()
}

pub(crate) fn print_guards(costs: &[GuardCost]) {
    println!("\n## What the guards cost (built with each, minus built without it)\n");
    println!("| guard | flash | statics (`.data`, `.bss`) | RAM the main stack gives up |");
    println!("|---|---:|---:|---:|");
    for c in costs {
        let cost = |with: u64, without: u64| signed(with as i64 - without as i64);
        println!(
            "| {} | {} | {} | {} |",
            c.what,
            cost(c.with.0, c.without.0),
            cost(c.with.1, c.without.1),
            group(c.from_stack),
        );
    }
    println!(
        "\nWith the MPU regions, each fiber stack's heap block is aligned to its 256-byte canary instead \
         of 16 bytes: up to 240 B more of the heap per stack, which the peak heap the examples print \
         (the bytes asked for) does not show."
    );
}
