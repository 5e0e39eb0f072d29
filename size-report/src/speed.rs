//! The speed report (`./x speed`): CoreMark and this project's own kernels on QEMU's
//! Cortex-M4 under `-icount shift=0`, under Pulley and under wasmi side by side, in four
//! builds (both interpreters at the firmware's opt-level "z" and at 3, fuel on and off),
//! then what each speed lever does to both benchmarks, to flash and to the `.cwasm`.
//!
//! Every figure is a count of executed instructions, which QEMU makes exact and
//! repeatable: `-icount shift=0` advances its virtual clock 1 ns per instruction, and
//! the firmware reads the MPS2 FPGA's counter, which QEMU derives from that clock.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::add::{WITH_64_KIB_PAGES, WITH_SIMD};
use crate::cargo::{cargo, repo};
use crate::elf::{elf, flash_of};
use crate::fail;
use crate::format::group;
use crate::measure::{Edit, edit, guest_report, variant};

mod host;

/// CoreMark 1.0 as wasm3's project compiled it, kept beside the repository (it is not
/// ours to commit): a user's clone has no such folder, and the CoreMark rows are skipped.
const COREMARK: &str = "../shared/bench/coremark-minimal.wasm";

/// Published CoreMark scores on real chips (the benchmark's README cites them).
const PUBLISHED: &[(&str, &str, f64)] = &[
    ("Wasmtime 38 Pulley, interpreter SIMD off (Ariel OS comparison)", "nRF52840, 64 MHz", 5.05),
    ("wasmi 0.51 (Ariel OS comparison)", "nRF52840, 64 MHz", 4.81),
    ("WAMR fast interpreter (Ariel OS comparison)", "nRF52840, 64 MHz", 3.83),
    ("WAMR classic interpreter (Ariel OS comparison)", "nRF52840, 64 MHz", 1.77),
    ("wasm-interpreter (Ariel OS comparison)", "nRF52840, 64 MHz", 0.22),
    ("Wasefire, Wasmtime 35 Pulley", "nRF52840, 64 MHz", 4.18),
    ("wasm3", "nRF52832, 64 MHz", 3.94),
];

/// The instruction counts scaled to a 64 MHz core (the nRF52840's) retiring one
/// instruction per cycle: an estimate for reading, not a measurement of the chip.
const CLOCK_HZ: u64 = 64_000_000;

/// wasmi's crates at opt-level 3, as demo-firmware ships pulley-interpreter.
const WASMI_AT_O3: Edit = edit(
    "Cargo.toml",
    "[profile.release]\n",
    "[profile.release.package.wasmi]\nopt-level = 3\n[profile.release.package.wasmi_core]\nopt-level = 3\n\
     [profile.release.package.wasmi_ir]\nopt-level = 3\n\n[profile.release]\n",
);

/// pulley-interpreter at the firmware's opt-level "z", like every other crate.
const PULLEY_AT_Z: Edit = edit(
    "Cargo.toml",
    "[profile.release.package.pulley-interpreter]\nopt-level = 3\n",
    "[profile.release.package.pulley-interpreter]\nopt-level = \"z\"\n",
);

const NO_FUEL: Edit = edit("build.rs", ".fuel(1_000_000)", "");

/// A fuel cost table (`Config::operator_cost`, on both sides) that charges one unit per
/// branch (`br`, `br_if`, `br_table`) and call, and nothing for the rest: a loop repeats
/// only through a branch and recursion only through a call, so every guest that would
/// run forever still runs out, while Wasmtime emits no fuel add for a block whose cost is
/// 0. Measured here, and not shipped: Wasmtime records the table in every `.cwasm` and
/// decodes it onto the heap, which costs more than the speed it buys.
const BRANCH_AND_CALL_FUEL: Edit = edit(
    "../wasm-embed/src/config.rs",
    "            .consume_fuel(self.fuel.is_some());\n",
    "            .consume_fuel(self.fuel.is_some());\n\
     if self.fuel.is_some() {\n\
         let mut cost = wasmtime::OperatorCost::new();\n\
         macro_rules! free {\n\
             ($( @$p:ident $op:ident $({ $($a:ident: $t:ty),* })? => $v:ident ($($ann:tt)*) )*) => { $( cost.$op = 0; )* };\n\
         }\n\
         wasmtime::wasmparser::for_each_operator!(free);\n\
         (cost.Br, cost.BrIf, cost.BrTable, cost.Call, cost.CallIndirect) = (1, 1, 1, 1, 1);\n\
         config.operator_cost(cost);\n\
     }\n",
);

/// The table above names Wasm's operators through the wasmparser Wasmtime itself uses.
const WASMPARSER_REEXPORTED: Edit = edit(
    "../wasm-embed/Cargo.toml",
    "features = [\"runtime\", \"pulley\"]",
    "features = [\"runtime\", \"pulley\", \"reexport-wasmparser\"]",
);

/// A build of demo-firmware the benchmarks run in.
struct Profile {
    name: &'static str,
    edits: &'static [Edit],
}

/// The builds both interpreters are compared in, at the same opt level: the third is
/// the firmware as it ships (its Pulley), with wasmi given the same treatment.
const PROFILES: [Profile; 4] = [
    Profile { name: "both interpreters at opt-level z, fuel on", edits: &[PULLEY_AT_Z] },
    Profile { name: "both interpreters at opt-level z, fuel off", edits: &[PULLEY_AT_Z, NO_FUEL] },
    Profile { name: "both interpreters at opt-level 3 (Pulley as shipped), fuel on", edits: &[WASMI_AT_O3] },
    Profile { name: "both interpreters at opt-level 3, fuel off", edits: &[WASMI_AT_O3, NO_FUEL] },
];

/// The profile that is the firmware as it ships.
const SHIPPED: usize = 2;

/// The speed levers, each changed from the shipped build. Those that are a profile above
/// are measured there; the rest get a build of their own.
enum LeverBuild {
    Profile(usize),
    Edits(&'static [Edit]),
}

const LEVERS: &[(&str, LeverBuild)] = &[
    ("pulley-interpreter at opt-level z (vs 3)", LeverBuild::Profile(0)),
    (
        "fuel charged only per branch and call, what can repeat (vs Wasmtime's default costs)",
        LeverBuild::Edits(&[WASMI_AT_O3, BRANCH_AND_CALL_FUEL, WASMPARSER_REEXPORTED]),
    ),
    (
        "1-byte-page memories with a maximum: a constant bound, unfused bounds checks (vs no maximum)",
        LeverBuild::Edits(&[
            WASMI_AT_O3,
            edit("../wasm-embed-build/src/pages.rs", "memory.maximum = None;", "memory.maximum = Some(bytes);"),
        ]),
    ),
    ("Pulley's SIMD opcodes (vs `--cfg pulley_disable_interp_simd`)", LeverBuild::Edits(&[WASMI_AT_O3, WITH_SIMD])),
    ("64 KiB pages (vs 1-byte pages)", LeverBuild::Edits(&[WASMI_AT_O3, WITH_64_KIB_PAGES])),
    ("no fuel checks (nothing stops a guest that loops forever)", LeverBuild::Profile(3)),
];

/// One runtime's line from the kernels' firmware.
struct Run {
    runtime: String,
    load: u64,
    run: u64,
    self_check: bool,
}

/// What one build measured.
struct Measured {
    /// The speed guest's wasm and `.cwasm` are beside it.
    out_dir: PathBuf,
    iterations: u64,
    kernels: Vec<Run>,
    /// CoreMark's score under Pulley and wasmi, when the module is here.
    coremark: Option<(f64, f64)>,
    pulley_code: u64,
    wasmi_code: u64,
    /// Flash of the add example built the same way.
    add_flash: u64,
}

pub fn main() {
    let coremark = repo().join(COREMARK);
    let coremark = match coremark.is_file() {
        true => Some(coremark),
        false => {
            eprintln!(
                "speed: CoreMark rows skipped: {} is not here (the benchmark inputs sit beside the repository, not in it)",
                coremark.display()
            );
            None
        }
    };
    let mut profiles = Vec::new();
    for profile in &PROFILES {
        eprintln!("speed: building and running {}", profile.name);
        profiles.push(build_and_run(profile.name, profile.edits, coremark.as_deref()).unwrap_or_else(|e| fail(&e)));
    }
    let mut levers = Vec::new();
    for (name, build) in LEVERS {
        let measured = match build {
            LeverBuild::Profile(_) => None,
            LeverBuild::Edits(edits) => {
                eprintln!("speed: building and running the shipped firmware with {name}");
                Some(build_and_run(name, edits, coremark.as_deref()).unwrap_or_else(|e| fail(&e)))
            }
        };
        levers.push((*name, build, measured));
    }
    if let Some(path) = &coremark {
        let mut cores = Vec::new();
        for core in &CORES {
            eprintln!("speed: building and running CoreMark on the {}", core.name);
            cores.push((core.name, core_coremark(core, path).unwrap_or_else(|e| fail(&e))));
        }
        print_coremark(&profiles, &cores);
    }
    print_levers(&profiles, &levers);
    print_kernels(&profiles);
    let shipped = &profiles[SHIPPED].out_dir;
    let cwasm = shipped.join("speed.cwasm");
    print_mix(&std::fs::read(&cwasm).unwrap_or_else(|e| fail(&format!("{}: {e}", cwasm.display()))))
        .unwrap_or_else(|e| fail(&e));
    let wasm = shipped.join("speed.wasm");
    let wasm = std::fs::read(&wasm).unwrap_or_else(|e| fail(&format!("{}: {e}", wasm.display())));
    eprintln!("speed: timing the same kernels on this host");
    print_host(&host::measure(&wasm).unwrap_or_else(|e| fail(&e)));
    let all = profiles.iter().chain(levers.iter().filter_map(|(_, _, m)| m.as_ref()));
    if all.flat_map(|m| &m.kernels).any(|r| !r.self_check) {
        fail("a self-check failed: a runtime computed something else than the native kernels");
    }
}

/// A copy of demo-firmware with `edits` (and, when CoreMark is here, the module in its
/// guest list): its add example's flash, its kernels and CoreMark, run in QEMU.
fn build_and_run(name: &str, edits: &[Edit], coremark: Option<&Path>) -> Result<Measured, String> {
    let mut edits = edits.to_vec();
    edits.extend(coremark.map(with_coremark));
    let variant = variant(&format!("speed {name}"), &edits)?;
    let features = if coremark.is_some() { "coremark" } else { "speed-bench" };
    let built = cargo(&variant.dir, &["build", "--release", "--features", features, "--examples"])?;
    let example = |name: &str| {
        let wanted = variant.example(name);
        built
            .executables
            .iter()
            .find(|e| e.file_name().is_some_and(|f| f.to_string_lossy() == wanted))
            .cloned()
            .ok_or_else(|| format!("cargo built no example {wanted}"))
    };
    let out_dir = built.out_dir.ok_or("cargo reported no build-script output directory")?;
    let (sections, _, _) = elf(&example("add")?)?;
    let add_flash = flash_of(&sections);

    let speed = example("speed")?;
    let stdout = qemu(&speed)?;
    let iterations = stdout
        .lines()
        .find_map(|l| l.strip_prefix("speed: ")?.split_once(' ')?.0.parse().ok())
        .ok_or_else(|| format!("the kernels' firmware printed no iteration count:\n{stdout}"))?;
    let kernels = stdout.lines().filter_map(parse_run).collect::<Vec<_>>();
    if kernels.len() != 3 {
        return Err(format!("expected native, pulley and wasmi lines:\n{stdout}"));
    }
    let (_, _, crates) = elf(&speed)?;
    let code_of = |name: &str| crates.iter().filter(|(c, _)| c.starts_with(name)).map(|(_, size)| size).sum();
    let coremark = match coremark {
        Some(_) => Some(scores(&qemu(&example("coremark")?)?)?),
        None => None,
    };
    Ok(Measured {
        out_dir,
        iterations,
        kernels,
        coremark,
        pulley_code: code_of("pulley_interpreter"),
        wasmi_code: code_of("wasmi"),
        add_flash,
    })
}

/// The edit that adds the CoreMark module at `path` to a firmware's guests.
fn with_coremark(path: &Path) -> Edit {
    Edit {
        file: "Cargo.toml",
        from: "guests = [\n",
        to: Cow::Owned(format!("guests = [\n  {:?},\n", path.display().to_string())),
    }
}

/// `runtime`'s CoreMark score, as the CoreMark firmware printed it.
fn score(stdout: &str, runtime: &str) -> Result<f64, String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{runtime}: score "))?.parse().ok())
        .ok_or_else(|| format!("CoreMark printed no {runtime} score:\n{stdout}"))
}

/// Pulley's and wasmi's CoreMark scores.
fn scores(stdout: &str) -> Result<(f64, f64), String> {
    Ok((score(stdout, "pulley")?, score(stdout, "wasmi")?))
}

/// A core CoreMark runs on besides the Cortex-M4: its Rust target (a spec's path for a
/// core without compare-and-swap), its QEMU board, and what its memory map must give.
struct Core {
    /// The variant's directory name.
    id: &'static str,
    name: &'static str,
    target: fn() -> String,
    qemu: &'static [&'static str],
    edits: &'static [Edit],
}

/// CoreMark's firmware carries wasmi at opt-level 3 and CoreMark with its 64 KiB pages
/// besides every guest: on RISC-V that is more than the nRF52840-sized 1 MiB of flash
/// (by 132 KB), so this build alone gets 2 MiB of the board's RAM for it.
const RISCV_BENCH_FLASH: Edit = edit(
    "riscv/memory.x",
    "FLASH : ORIGIN = 0x80000000, LENGTH = 1M\n  RAM : ORIGIN = 0x80100000",
    "FLASH : ORIGIN = 0x80000000, LENGTH = 2M\n  RAM : ORIGIN = 0x80200000",
);

/// The cores of `./x speed`'s CoreMark table beside the Cortex-M4.
const CORES: [Core; 3] = [
    Core {
        id: "m33",
        name: "Cortex-M33 (mps2-an505, thumbv8m.main-none-eabihf)",
        target: || "thumbv8m.main-none-eabihf".to_owned(),
        qemu: &["qemu-system-arm", "-machine", "mps2-an505", "-cpu", "cortex-m33"],
        edits: &[],
    },
    Core {
        id: "riscv",
        name: "RISC-V rv32imac (virt, riscv32imac-unknown-none-elf)",
        target: || "riscv32imac-unknown-none-elf".to_owned(),
        qemu: &["qemu-system-riscv32", "-machine", "virt", "-cpu", "rv32", "-bios", "none"],
        edits: &[RISCV_BENCH_FLASH],
    },
    Core {
        id: "riscv-imc",
        name: "RISC-V rv32imc, no compare-and-swap (virt with a=false, its target spec)",
        target: || repo().join("cargo-wasm-embed/targets/riscv32imc-unknown-none-elf.json").display().to_string(),
        qemu: &["qemu-system-riscv32", "-machine", "virt", "-cpu", "rv32,a=false", "-bios", "none"],
        edits: &[RISCV_BENCH_FLASH],
    },
];

/// CoreMark in the firmware as it ships, built for `core` and run on its QEMU board
/// under `-icount shift=0`: Pulley's score, and wasmi's or the line it failed with.
fn core_coremark(core: &Core, coremark: &Path) -> Result<(f64, Result<f64, String>), String> {
    let mut edits = PROFILES[SHIPPED].edits.to_vec();
    edits.push(with_coremark(coremark));
    edits.extend_from_slice(core.edits);
    let variant = variant(&format!("speed {}", core.id), &edits)?;
    let example = variant.example("coremark");
    let target = (core.target)();
    let built = cargo(&variant.dir, &["build", "--release", "--features", "coremark", "--example", &example, "--target", &target])?;
    let executable = built.executables.last().ok_or_else(|| format!("cargo built no CoreMark firmware for {}", core.name))?;
    // wasmi fails on RISC-V (see docs/speed.md) after Pulley's score is printed: the run
    // then exits with failure, and Pulley's score still counts.
    let (_, stdout) = run_qemu(core.qemu, executable)?;
    let wasmi = score(&stdout, "wasmi").map_err(|_| {
        stdout.lines().find(|l| l.starts_with("error")).unwrap_or("no score").to_owned()
    });
    Ok((score(&stdout, "pulley")?, wasmi))
}

/// QEMU's Cortex-M4 board, run under `-icount shift=0` (1 ns of virtual time per executed
/// instruction), as every core is.
pub(crate) const QEMU_M4: &[&str] = &["qemu-system-arm", "-machine", "mps2-an386", "-cpu", "cortex-m4"];

/// Runs `executable` on QEMU's Cortex-M4; what it printed, if it exited with success.
pub(crate) fn qemu(executable: &Path) -> Result<String, String> {
    match run_qemu(QEMU_M4, executable)? {
        (true, stdout) => Ok(stdout),
        (false, stdout) => Err(format!("{} failed:\n{stdout}", executable.display())),
    }
}

/// Runs `executable` on the QEMU board `board` (its program and machine arguments):
/// whether it exited with success, and what it printed.
fn run_qemu(board: &[&str], executable: &Path) -> Result<(bool, String), String> {
    let output = Command::new(board[0])
        .args(&board[1..])
        .args(["-nographic", "-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel"])
        .arg(executable)
        .output()
        .map_err(|e| format!("could not run {}: {e}", board[0]))?;
    Ok((output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned()))
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

fn print_coremark(profiles: &[Measured], cores: &[(&str, (f64, Result<f64, String>))]) {
    println!("## CoreMark on the Cortex-M4 (QEMU mps2-an386) and on the other cores, `-icount shift=0`\n");
    println!(
        "CoreMark 1.0 (`coremark-minimal.wasm`, wasm3's build) as a prebuilt guest: the same bytes, after this \
         pipeline, under Pulley and under wasmi 2.0. Score = iterations per 10^9 executed instructions (CoreMark's \
         own score, its clock being QEMU's instruction count); at 64 MHz = that score for a 64 MHz core retiring \
         one instruction per cycle. With fuel on, each call is metered in both runtimes (and never runs out).\n"
    );
    println!("| build | Pulley | wasmi | Pulley vs wasmi | Pulley at 64 MHz | wasmi at 64 MHz |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, pulley: f64, wasmi: Option<f64>| match wasmi {
        Some(wasmi) => println!(
            "| {name} | {pulley:.1} | {wasmi:.1} | {:.2}× | {:.2} | {:.2} |",
            pulley / wasmi,
            at_64_mhz(pulley),
            at_64_mhz(wasmi)
        ),
        None => println!("| {name} | {pulley:.1} | failed (below) | – | {:.2} | – |", at_64_mhz(pulley)),
    };
    for (profile, m) in PROFILES.iter().zip(profiles) {
        let Some((pulley, wasmi)) = m.coremark else { continue };
        row(profile.name, pulley, Some(wasmi));
    }
    for (core, (pulley, wasmi)) in cores {
        row(&format!("{core}, as shipped: opt-level 3, fuel on"), *pulley, wasmi.as_ref().ok().copied());
    }
    println!(
        "\nThe rows below the Cortex-M4's are the same firmware and module built for each core: their scores are per \
         10^9 of that core's instructions, which are not the Cortex-M4's, so each compares the two runtimes on its \
         core, not the cores."
    );
    for (core, (_, wasmi)) in cores {
        if let Err(line) = wasmi {
            println!("\nwasmi on the {core} did not finish; the firmware printed: `{line}`.");
        }
    }
    println!("\nPublished CoreMark scores on real chips, for scale:\n");
    println!("| runtime | chip | score |");
    println!("|---|---|---:|");
    for (runtime, chip, score) in PUBLISHED {
        println!("| {runtime} | {chip} | {score:.2} |");
    }
    println!();
}

fn at_64_mhz(score: f64) -> f64 {
    score * CLOCK_HZ as f64 / 1e9
}

/// Instructions per iteration of the kernels under `runtime`.
fn per_iteration(m: &Measured, runtime: &str) -> u64 {
    m.kernels.iter().find(|r| r.runtime == runtime).map_or(0, |r| r.run / m.iterations.max(1))
}

fn print_levers(profiles: &[Measured], levers: &[(&str, &LeverBuild, Option<Measured>)]) {
    let shipped = &profiles[SHIPPED];
    let cwasm = |m: &Measured, guest: &str| -> String {
        let report = guest_report(&m.out_dir).ok();
        let size = report.as_ref().and_then(|r| {
            r["guests"].as_array()?.iter().find(|g| g["name"] == guest)?["cwasm"].as_u64()
        });
        size.map_or("–".to_owned(), group)
    };
    println!("## Speed levers, each changed from the shipped firmware\n");
    println!(
        "The shipped firmware: everything at opt-level z but pulley-interpreter at 3, fuel on (Wasmtime's \
         default costs), 1-byte pages without a maximum, Pulley's SIMD opcodes compiled out. Each row is that \
         build with one lever changed. CoreMark: Pulley's score (higher is faster). Kernels: Pulley's instructions \
         per iteration (lower is faster). Flash: the add example.\n"
    );
    println!("| build | CoreMark | kernels | add example flash | speed.cwasm | coremark_minimal.cwasm |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, m: &Measured| {
        let coremark = m.coremark.map_or("–".to_owned(), |(pulley, _)| format!("{pulley:.1}"));
        println!(
            "| {name} | {coremark} | {} | {} | {} | {} |",
            group(per_iteration(m, "pulley")),
            group(m.add_flash),
            cwasm(m, "speed"),
            cwasm(m, "coremark_minimal"),
        );
    };
    row("as shipped", shipped);
    for (name, build, measured) in levers {
        let m = match (build, measured) {
            (LeverBuild::Profile(index), _) => &profiles[*index],
            (LeverBuild::Edits(_), Some(m)) => m,
            (LeverBuild::Edits(_), None) => continue,
        };
        row(name, m);
    }
    println!();
}

fn print_kernels(profiles: &[Measured]) {
    let iterations = profiles.first().map_or(0, |m| m.iterations);
    println!("## The kernels on the Cortex-M4 (QEMU mps2-an386, `-icount shift=0`)\n");
    println!(
        "{iterations} iterations of `guests/speed-kernels` (lists, matrices, a state machine, CRC), the same \
         source natively and as the `speed` guest. Instructions executed, counted by QEMU; \
         iterations/s assumes a 64 MHz core retiring one instruction per cycle.\n"
    );
    println!(
        "| build | runtime | load (instructions) | per iteration (instructions) | iterations/s at 64 MHz | time vs native | speed vs wasmi | interpreter code (B) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (profile, m) in PROFILES.iter().zip(profiles) {
        let (native, wasmi) = (per_iteration(m, "native").max(1), per_iteration(m, "wasmi").max(1));
        for run in &m.kernels {
            let per = per_iteration(m, &run.runtime).max(1);
            let code = match run.runtime.as_str() {
                "pulley" => group(m.pulley_code),
                "wasmi" => group(m.wasmi_code),
                _ => "".to_owned(),
            };
            println!(
                "| {} | {} | {} | {} | {} | {:.1}× | {:.2}× | {code} |",
                profile.name,
                run.runtime,
                group(run.load),
                group(per),
                group(CLOCK_HZ / per),
                per as f64 / native as f64,
                wasmi as f64 / per as f64,
            );
        }
    }
    println!(
        "\n\"speed vs wasmi\" above 1 means faster than wasmi in the same build. \
         Self-check: every runtime's result equals the native one and `speed_kernels::EXPECTED`."
    );
}

/// The Pulley instructions of the speed guest as the shipped firmware compiles it, most
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
    println!("\n## The speed guest's Pulley code (as shipped), by instruction\n");
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
    println!("\n## The kernels on this host ({}, {} cores)\n", std::env::consts::ARCH, host::cores());
    println!(
        "The same wasm (the shipped build's) and kernels, {} iterations per call; the median of {} calls \
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
