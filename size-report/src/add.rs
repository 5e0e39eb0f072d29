//! The main report: the add example beside the runtime comparison, its code by crate, its
//! guests and their `.cwasm`s, and (with `--levers`) what each size lever saves.

use serde_json::{Value, json};

use crate::elf::sections_of;
use crate::format::{group, signed};
use crate::measure::{Compared, Edit, Measurement, edit};

/// demo-firmware built without one lever.
pub(crate) struct Lever {
    pub(crate) name: &'static str,
    pub(crate) edits: &'static [Edit],
}

const NO_IMMEDIATE_ABORT: Edit = edit("Cargo.toml", "panic = \"immediate-abort\"", "panic = \"abort\"");

/// Pulley's SIMD opcodes back in the interpreter.
pub(crate) const WITH_SIMD: Edit = edit(".cargo/config.toml", "\"--cfg\", \"pulley_disable_interp_simd\",", "");

/// Whole 64 KiB pages for every guest instead of exactly its stack and data.
pub(crate) const WITH_64_KIB_PAGES: Edit = edit("build.rs", "Builder::new().fuel(", "Builder::new().exact_memory(false).fuel(");

pub(crate) const LEVERS: &[Lever] = &[
    Lever {
        name: "immediate-abort panics (vs `panic = \"abort\"`)",
        edits: &[NO_IMMEDIATE_ABORT],
    },
    Lever {
        name: "build-std of core and alloc (needed by immediate-abort; vs the prebuilt ones)",
        edits: &[
            NO_IMMEDIATE_ABORT,
            edit(".cargo/config.toml", "build-std = [\"core\", \"alloc\"]", ""),
            edit(".cargo/config.toml", "build-std-features = [\"optimize_for_size\"]", ""),
        ],
    },
    Lever {
        name: "`-Zlocation-detail=none`",
        edits: &[edit(".cargo/config.toml", "\"-Z\", \"location-detail=none\",", "")],
    },
    Lever {
        name: "`-Zfmt-debug=none` (`{:?}` writes nothing)",
        edits: &[edit(".cargo/config.toml", "\"-Z\", \"fmt-debug=none\",", "")],
    },
    Lever {
        name: "opt-level \"z\" (vs \"s\") for every crate",
        edits: &[edit("Cargo.toml", "opt-level = \"z\"", "opt-level = \"s\"")],
    },
    Lever {
        name: "opt-level \"z\" (vs \"s\") for wasmtime only",
        edits: &[edit(
            "Cargo.toml",
            "[profile.release]\n",
            "[profile.release.package.wasmtime]\nopt-level = \"s\"\n\n[profile.release]\n",
        )],
    },
    Lever {
        name: "pulley-interpreter at opt-level 3, for speed (vs \"z\"; a cost: negative)",
        edits: &[edit(
            "Cargo.toml",
            "[profile.release.package.pulley-interpreter]\nopt-level = 3\n",
            "[profile.release.package.pulley-interpreter]\nopt-level = \"z\"\n",
        )],
    },
    Lever {
        name: "fat LTO (vs none)",
        edits: &[edit("Cargo.toml", "lto = \"fat\"", "lto = false")],
    },
    Lever {
        name: "one codegen unit (vs 16)",
        edits: &[edit("Cargo.toml", "codegen-units = 1", "codegen-units = 16")],
    },
    Lever {
        name: "`--cfg pulley_disable_interp_simd`",
        edits: &[WITH_SIMD],
    },
    Lever {
        name: "Wasm features the guests do not use off on both sides (vs Wasmtime's defaults)",
        edits: &[edit("../wasm-embed/src/config.rs", "config.wasm_features(WasmFeatures::all(), false);", "")],
    },
    Lever {
        name: "1-byte pages: memory = stack + data (vs 64 KiB pages)",
        edits: &[WITH_64_KIB_PAGES],
    },
    Lever {
        name: "Pulley stack sized to the guest's code (vs a fixed 4 KiB)",
        edits: &[edit("build.rs", "Builder::new().fuel(", "Builder::new().max_wasm_stack(4 * 1024).fuel(")],
    },
    Lever {
        name: "fuel checks, which stop a guest that loops forever (a cost: negative)",
        edits: &[edit("build.rs", ".fuel(1_000_000)", "")],
    },
    Lever {
        name: "size profile: no names, address maps, debug symbols in the .cwasm (vs debug profile)",
        edits: &[edit("build.rs", "Builder::new().fuel(", "Builder::new().profile(wasm_embed_build::Profile::Debug).fuel(")],
    },
];

/// The original runtime comparison's measurements on the nRF52840-DK under Ariel OS
/// (wasmi, Wasmtime, wasm-interpreter), flashed bytes.
pub(crate) const COMPARISON: [(&str, [u64; 4]); 3] = [
    ("wasmi", [511_300, 5_676, 79_544, 580_000]),
    ("Wasmtime, as that comparison built it", [264_548, 5_764, 54_916, 316_000]),
    ("wasm-interpreter", [162_272, 5_668, 16_940, 176_000]),
];

fn print_compared(compared: &[Compared]) -> Result<(), String> {
    println!("\n## .cwasm beside Wasmtime's own smallest flags\n");
    println!(
        "The flags of Wasmtime's guide \"Building a minimal *.cwasm\" (Wasmtime's defaults, `pulley32`, no address \
         map, no symbols, no copy-on-write image, no fuel) applied to the same optimized wasm, which keeps its 64 KiB \
         pages; this pipeline's flags without fuel (its 1-byte pages, Wasm features, bounds); and the `.cwasm` the \
         firmware embeds, with fuel checks.\n"
    );
    println!("| guest | Wasmtime's guide | ours, fuel off | ours, fuel off vs the guide | ours, fuel on (embedded) | what fuel adds |");
    println!("|---|---:|---:|---:|---:|---:|");
    for c in compared {
        let (guide, off) = (c.wasmtime_guide.len() as i64, c.fuel_off.len() as i64);
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            c.guest,
            group(guide as u64),
            group(off as u64),
            signed(off - guide),
            group(c.shipped),
            signed(c.shipped as i64 - off),
        );
    }
    // Where the difference is, section by section, for the largest guest.
    if let Some(c) = compared.iter().max_by_key(|c| c.wasmtime_guide.len()) {
        let (guide, ours) = (sections_of(&c.wasmtime_guide)?, sections_of(&c.fuel_off)?);
        println!("\n### {}.cwasm by section: Wasmtime's guide vs ours with fuel off\n", c.guest);
        println!("| section | Wasmtime's guide | ours, fuel off |\n|---|---:|---:|");
        let mut names: Vec<&String> = guide.iter().chain(&ours).map(|(n, _)| n).collect();
        names.dedup();
        let mut seen = Vec::new();
        for name in names {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let of = |list: &[(String, u64)]| list.iter().find(|(n, _)| n == name).map_or("–".to_owned(), |(_, b)| group(*b));
            println!("| `{name}` | {} | {} |", of(&guide), of(&ours));
        }
    }
    Ok(())
}

pub(crate) fn print_markdown(base: &Measurement, levers: &[(&str, Measurement)]) -> Result<(), String> {
    let s = &base.sections;
    println!(
        "## The add example (thumbv7em-none-eabihf) beside the runtime comparison on the nRF52840-DK (Ariel OS)\n"
    );
    println!("| bytes | wasm-embed | {} |", COMPARISON.map(|(name, _)| name).join(" | "));
    println!("|---|---:|{}", "---:|".repeat(COMPARISON.len()));
    let row = |label: &str, ours: u64, column: Option<usize>| {
        let theirs: Vec<String> = COMPARISON.iter().map(|(_, v)| column.map_or("–".into(), |i| group(v[i]))).collect();
        println!("| {label} | {} | {} |", group(ours), theirs.join(" | "));
    };
    row(".text", s[".text"], Some(0));
    row(".bss", s[".bss"] - base.heap_arena, Some(1));
    row(".rodata", s[".rodata"], Some(2));
    row(".data", s[".data"], None);
    row("flash (vectors + .text + .rodata + .data)", base.flash, Some(3));
    println!(
        "\n.bss leaves out the firmware's {} B heap arena. Peak heap while the guest was loaded, \
         instantiated and called: **{} B**. Static RAM (.data + .bss without the arena): {} B.\n",
        group(base.heap_arena),
        group(base.peak_heap),
        group(s[".data"] + s[".bss"] - base.heap_arena),
    );
    if let Some((used, size)) = base.peak_stack {
        println!(
            "Peak main stack, measured by painting: **{} B** of its {} B. The stack's guard (wasm-embed's \
             `stack-guard`) is 4 KiB below it, aligned to its size; the fault handler's own 1 KiB stack is among the \
             statics.\n",
            group(used),
            group(size),
        );
    }
    println!("## Code and read-only data by crate (top 15)\n");
    println!("| crate | bytes |\n|---|---:|");
    for (name, bytes) in base.crates.iter().take(15) {
        println!("| {name} | {} |", group(*bytes));
    }
    println!("\n## Guests\n");
    println!("| guest | wasm from rustc | stripped | wasm-opt | .cwasm | linear memory | Pulley stack |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for guest in base.guests["guests"].as_array().into_iter().flatten() {
        let n = |key: &str| guest[key].as_u64().map_or("–".into(), group);
        let memory = match guest["memory_bytes"].as_u64() {
            Some(bytes) => format!("{} B", group(bytes)),
            None => guest["memory"].as_str().unwrap_or("?").to_owned(),
        };
        let stack = match guest["pulley_stack"].as_u64() {
            Some(bytes) => format!("{} B", group(bytes)),
            None => "unbounded".to_owned(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {memory} | {stack} |",
            guest["name"].as_str().unwrap_or("?"),
            n("wasm_compiled"),
            n("wasm_stripped"),
            n("wasm_optimized"),
            n("cwasm"),
        );
    }
    println!(
        "\nAn engine made for one guest allocates that guest's Pulley stack per store (its need rounded up \
         to 16, or 4 KiB when unbounded); one engine for every guest would allocate {} B.",
        base.guests["max_wasm_stack"].as_u64().map_or("?".into(), group)
    );
    for (guest, sections) in &base.cwasm_sections {
        println!("\n### What is in {guest}.cwasm\n");
        println!("| section | bytes |\n|---|---:|");
        for (name, bytes) in sections {
            println!("| `{name}` | {} |", group(*bytes));
        }
    }
    print_compared(&base.compared)?;
    if !levers.is_empty() {
        println!("\n## What each lever saves (built without it, minus the default build)\n");
        println!("| lever | flash saved | peak heap saved | .cwasm saved |\n|---|---:|---:|---:|");
        for (name, without) in levers {
            let cwasm = |m: &Measurement| m.guests["guests"][0]["cwasm"].as_i64().unwrap_or(0);
            println!(
                "| {name} | {} | {} | {} |",
                signed(without.flash as i64 - base.flash as i64),
                signed(without.peak_heap as i64 - base.peak_heap as i64),
                signed(cwasm(without) - cwasm(base)),
            );
        }
    }
    Ok(())
}

pub(crate) fn to_json(base: &Measurement, levers: &[(&str, Measurement)]) -> Value {
    let one = |m: &Measurement| {
        json!({
            "sections": m.sections,
            "flash": m.flash,
            "heap_arena": m.heap_arena,
            "peak_heap": m.peak_heap,
            "firmware_output": m.output,
            "crates": m.crates.iter().map(|(n, b)| json!({"crate": n, "bytes": b})).collect::<Vec<_>>(),
            "guests": m.guests,
            "cwasm_sections": m.cwasm_sections,
            "cwasm_compared": m.compared.iter().map(|c| json!({
                "guest": c.guest,
                "wasmtime_guide": c.wasmtime_guide.len(),
                "fuel_off": c.fuel_off.len(),
                "shipped": c.shipped,
            })).collect::<Vec<_>>(),
        })
    };
    json!({
        "firmware": one(base),
        "without_lever": levers.iter().map(|(name, m)| json!({"lever": name, "measurement": one(m)})).collect::<Vec<_>>(),
    })
}
