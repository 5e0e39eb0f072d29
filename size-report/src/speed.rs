//! The speed table (`./x speed`): builds demo-firmware's `speed` example in each speed
//! profile, runs it in QEMU with `-icount shift=0`, and prints how many instructions the
//! same kernels take natively, as the `speed` guest under Pulley, and under wasmi.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::{Edit, Lever, WITH_64_KIB_PAGES, WITH_SIMD, elf, fail, group, repo, variant, variant_example};

mod host;

const EXAMPLE: &str = "speed";

/// The interpreters' crates at opt-level 3, the rest of the firmware still at "z".
const INTERPRETERS_AT_O3: Edit = Edit {
    file: "Cargo.toml",
    from: "[profile.release]",
    to: "[profile.release.package.pulley-interpreter]\nopt-level = 3\n\
         [profile.release.package.wasmi]\nopt-level = 3\n\
         [profile.release.package.wasmi_core]\nopt-level = 3\n\
         [profile.release.package.wasmi_ir]\nopt-level = 3\n\n[profile.release]",
};

/// The profiles the table compares; the first is demo-firmware as it is.
const PROFILES: &[Lever] = &[
    Lever {
        name: "size (the default: opt-level z, fuel checks on)",
        edits: &[],
    },
    Lever {
        name: "size, with Pulley's SIMD opcodes (no `--cfg pulley_disable_interp_simd`)",
        edits: &[WITH_SIMD],
    },
    Lever {
        name: "size, with 64 KiB pages (vs 1-byte pages)",
        edits: &[WITH_64_KIB_PAGES],
    },
    Lever {
        name: "speed: Pulley's and wasmi's interpreters at opt-level 3",
        edits: &[INTERPRETERS_AT_O3],
    },
    Lever {
        name: "speed, and no fuel checks (nothing stops a guest that loops forever)",
        edits: &[INTERPRETERS_AT_O3, Edit { file: "build.rs", from: ".fuel(1_000_000)", to: "" }],
    },
];

/// One runtime's line from the firmware.
struct Run {
    runtime: String,
    load: u64,
    run: u64,
    self_check: bool,
}

/// One profile's runs, and the interpreters' code size in that build.
struct Measured {
    /// The speed guest's wasm, as this profile's pipeline made it.
    wasm: PathBuf,
    iterations: u64,
    runs: Vec<Run>,
    pulley_code: u64,
    wasmi_code: u64,
}

pub fn main() {
    let mut measured = Vec::new();
    for profile in PROFILES {
        eprintln!("speed: building and running the {} profile", profile.name);
        let (dir, example) = if profile.edits.is_empty() {
            (repo().join("demo-firmware"), EXAMPLE.to_owned())
        } else {
            (variant(profile, EXAMPLE).unwrap_or_else(|e| fail(&e)), variant_example(profile, EXAMPLE))
        };
        measured.push((profile.name, measure(&dir, &example).unwrap_or_else(|e| fail(&e))));
    }
    print(&measured);
    let cwasm = measured[0].1.wasm.with_extension("cwasm");
    print_mix(&std::fs::read(&cwasm).unwrap_or_else(|e| fail(&format!("{}: {e}", cwasm.display()))))
        .unwrap_or_else(|e| fail(&e));
    let wasm = &measured[0].1.wasm;
    let wasm = std::fs::read(wasm).unwrap_or_else(|e| fail(&format!("{}: {e}", wasm.display())));
    eprintln!("speed: timing the same kernels on this host");
    print_host(&host::measure(&wasm).unwrap_or_else(|e| fail(&e)));
    if measured.iter().any(|(_, m)| m.runs.iter().any(|r| !r.self_check)) {
        fail("a self-check failed: a runtime computed something else than the native kernels");
    }
}

/// Builds the example in `dir` and runs it under `-icount shift=0`.
fn measure(dir: &Path, example: &str) -> Result<Measured, String> {
    let (executable, out_dir) = build(dir, example)?;
    let output = Command::new("qemu-system-arm")
        .args(["-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel"])
        .arg(&executable)
        .output()
        .map_err(|e| format!("could not run qemu-system-arm: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("{} failed ({}):\n{stdout}", executable.display(), output.status));
    }
    let iterations = stdout
        .lines()
        .find_map(|l| l.strip_prefix("speed: ")?.split_once(' ')?.0.parse().ok())
        .ok_or_else(|| format!("the firmware printed no iteration count:\n{stdout}"))?;
    let runs = stdout.lines().filter_map(parse_run).collect::<Vec<_>>();
    if runs.len() != 3 {
        return Err(format!("expected native, pulley and wasmi lines:\n{stdout}"));
    }
    let (_, _, crates) = elf(&executable)?;
    let code_of = |name: &str| crates.iter().filter(|(c, _)| c.starts_with(name)).map(|(_, size)| size).sum();
    Ok(Measured {
        wasm: out_dir.join("speed.wasm"),
        iterations,
        runs,
        pulley_code: code_of("pulley_interpreter"),
        wasmi_code: code_of("wasmi"),
    })
}

/// `pulley: load 1 instructions, run 2 instructions, result 0x3c4d, self-check ok`
fn parse_run(line: &str) -> Option<Run> {
    let (runtime, rest) = line.split_once(": load ")?;
    let (load, rest) = rest.split_once(" instructions, run ")?;
    let (run, rest) = rest.split_once(" instructions, ")?;
    Some(Run {
        runtime: runtime.to_owned(),
        load: load.parse().ok()?,
        run: run.parse().ok()?,
        self_check: rest.ends_with("self-check ok"),
    })
}

/// Builds `example` in `dir`; returns the executable and the build script's output
/// directory (where the guests' wasm and `.cwasm` are).
fn build(dir: &Path, example: &str) -> Result<(PathBuf, PathBuf), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(dir)
        .args(["build", "--release", "--features", "speed-bench", "--example", example])
        .arg("--message-format=json-render-diagnostics")
        .env("CARGO_TARGET_DIR", repo().join("demo-firmware/target"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("building {example} in {} failed", dir.display()));
    }
    let (mut executable, mut out_dir) = (None, None);
    for message in String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
        if let Some(path) = message["executable"].as_str() {
            executable = Some(PathBuf::from(path));
        }
        if message["reason"] == "build-script-executed"
            && message["package_id"].as_str().is_some_and(|id| id.contains(&*dir.to_string_lossy()))
        {
            out_dir = message["out_dir"].as_str().map(PathBuf::from);
        }
    }
    Ok((
        executable.ok_or("cargo reported no executable")?,
        out_dir.ok_or("cargo reported no build-script output directory")?,
    ))
}

/// The instruction counts scaled to a 64 MHz core (the nRF52840's) retiring one
/// instruction per cycle: an estimate for reading, not a measurement of the chip.
const CLOCK_HZ: u64 = 64_000_000;

fn print(measured: &[(&str, Measured)]) {
    let iterations = measured.first().map_or(0, |(_, m)| m.iterations);
    println!("## Speed on the Cortex-M4 (QEMU mps2-an386, `-icount shift=0`)\n");
    println!(
        "{iterations} iterations of `guests/speed-kernels` (lists, matrices, a state machine, CRC), the same \
         source natively and as the `speed` guest. Instructions executed, counted by QEMU; \
         iterations/s assumes a 64 MHz core retiring one instruction per cycle.\n"
    );
    println!(
        "| profile | runtime | load (instructions) | per iteration (instructions) | iterations/s at 64 MHz | time vs native | speed vs wasmi | interpreter code (B) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (profile, m) in measured {
        let per = |run: &Run| run.run / m.iterations.max(1);
        let of = |name: &str| m.runs.iter().find(|r| r.runtime == name).map(per).unwrap_or(0).max(1);
        let (native, wasmi) = (of("native"), of("wasmi"));
        for run in &m.runs {
            let code = match run.runtime.as_str() {
                "pulley" => group(m.pulley_code),
                "wasmi" => group(m.wasmi_code),
                _ => "".to_owned(),
            };
            println!(
                "| {profile} | {} | {} | {} | {} | {:.1}× | {:.2}× | {code} |",
                run.runtime,
                group(run.load),
                group(per(run)),
                group(CLOCK_HZ / per(run).max(1)),
                per(run) as f64 / native as f64,
                wasmi as f64 / per(run).max(1) as f64,
            );
        }
    }
    println!(
        "\n\"speed vs wasmi\" above 1 means faster than wasmi in the same profile. \
         Self-check: every runtime's result equals the native one and `speed_kernels::EXPECTED`."
    );
}

/// The Pulley instructions of the speed guest as the size profile compiles it, most
/// frequent first: a static count, which shows what the interpreter spends its time on.
fn print_mix(cwasm: &[u8]) -> Result<(), String> {
    use object::{Object, ObjectSection};
    use pulley_interpreter::decode::Decoder;
    use pulley_interpreter::disas::Disassembler;

    let file = object::File::parse(cwasm).map_err(|e| e.to_string())?;
    let text = file.section_by_name(".text").ok_or("speed.cwasm has no .text")?;
    let mut disassembler = Disassembler::new(text.data().map_err(|e| e.to_string())?);
    disassembler.offsets(false).hexdump(false).br_tables(false);
    Decoder::decode_all(&mut disassembler).map_err(|e| format!("speed.cwasm: {e:?}"))?;
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for line in disassembler.disas().lines() {
        if let Some(op) = line.split_whitespace().next() {
            *counts.entry(op.to_owned()).or_default() += 1;
        }
    }
    let total: u64 = counts.values().sum();
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    println!("\n## The speed guest's Pulley code (size profile), by instruction\n");
    println!("{total} instructions in all; the 12 most frequent:\n");
    println!("| instruction | count | share |");
    println!("|---|---:|---:|");
    for (op, count) in counts.iter().take(12) {
        println!("| `{op}` | {count} | {:.1}% |", *count as f64 * 100.0 / total as f64);
    }
    Ok(())
}

/// How long each runtime takes per iteration on this host, in nanoseconds.
fn print_host(runs: &[(&str, f64)]) {
    let of = |name: &str| runs.iter().find(|(r, _)| *r == name).map_or(1.0, |(_, ns)| *ns);
    let (native, wasmi) = (of("native"), of("wasmi"));
    println!("\n## Speed on this host ({}, {} cores)\n", std::env::consts::ARCH, host::cores());
    println!(
        "The same wasm (the size profile's) and kernels, {} iterations per call; the median of {} calls \
         after one warm-up call, timed with `std::time::Instant`. Pulley runs the firmware's settings \
         (fuel checks on) compiled for pulley64; Cranelift compiles the same wasm to native code.\n",
        host::ITERATIONS,
        host::CALLS
    );
    println!("| runtime | per iteration (µs) | time vs native | speed vs wasmi |");
    println!("|---|---:|---:|---:|");
    for (runtime, ns) in runs {
        println!("| {runtime} | {:.2} | {:.1}× | {:.2}× |", ns / 1000.0, ns / native, wasmi / ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_line_is_read_back() {
        let run = parse_run("pulley: load 126480 instructions, run 593579600 instructions, result 0x3c4d, self-check ok")
            .unwrap();
        assert_eq!((run.runtime.as_str(), run.load, run.run, run.self_check), ("pulley", 126_480, 593_579_600, true));
        let failed = parse_run("wasmi: load 1 instructions, run 2 instructions, result 0x0001, self-check FAILED").unwrap();
        assert!(!failed.self_check);
        assert!(parse_run("speed: 200 iterations, seed 0x5eed0001").is_none());
    }
}
