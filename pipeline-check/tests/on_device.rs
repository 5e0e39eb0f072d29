//! Generated modules on the emulated device: the code that ships, pulley32 on a 32-bit
//! core, runs what the host runs. Each module (pipeline-check's generator, with memory
//! sized for the device) is built by demo-firmware's build script as a guest, through
//! every stage, and run by its `generated` example on QEMU's Cortex-M4; the host runs the
//! same stages' output under Wasmtime's pulley64 and under wasmi, and all three must
//! print the same lines (see the `observe` crate for what they print).
//!
//! `DEVICE_CHECK_MODULES=N` runs another number of modules (default 330; seeds 0..);
//! `DEVICE_CHECK_RISCV=1` runs every batch on QEMU's RISC-V board too (by default only
//! the first).

use std::path::{Path, PathBuf};
use std::process::Command;

use arbitrary::Unstructured;
use pipeline_check::{device_settings, generate_for_device, input, oracle};
use wasm_embed_build::internal::Staged;

/// At least 300 compared in full: a few recurse until the stack runs out, and are
/// compared only up to that call.
const MODULES: usize = 330;

/// `.cwasm` bytes one firmware run takes (measured as pulley64's, a little larger than
/// the device's): with the ~260 KB the runtime and the example take, a batch's firmware
/// fits the nRF52840's 1 MiB of flash, which demo-firmware's memory.x holds it to.
const BATCH_CWASM_BYTES: usize = 600 * 1024;

fn modules() -> usize {
    std::env::var("DEVICE_CHECK_MODULES").map_or(MODULES, |n| n.parse().expect("DEVICE_CHECK_MODULES is a number"))
}

/// A generated module and what the host saw it do.
struct Prepared {
    name: String,
    /// The module as wasm-smith made it: the firmware's build stages it itself.
    wasm: Vec<u8>,
    cwasm_bytes: usize,
    /// What Wasmtime's pulley64 printed for the staged module.
    pulley: Vec<String>,
}

/// Module `seed` as the generator makes it for the device.
fn generated(seed: u64) -> (String, Vec<u8>) {
    let wasm = generate_for_device(&mut Unstructured::new(&input(seed)))
        .unwrap_or_else(|e| panic!("module {seed} could not be generated: {e}"));
    (format!("generated_{seed:05}"), wasm)
}

/// The modules a difference was once minimised to (`pipeline-check/regressions/*.wat`),
/// run in the first firmware run every time.
fn regressions() -> Vec<(String, Vec<u8>)> {
    let dir = repo().join("pipeline-check/regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "wat"))
        .map(|path| {
            let stem = path.file_stem().unwrap().to_str().unwrap().replace('-', "_");
            (format!("regression_{stem}"), wat::parse_file(path).unwrap_or_else(|e| panic!("{e}")))
        })
        .collect()
}

/// Module `name` through the stages for this machine, and its runs under pulley64 and
/// wasmi; `None` if the build refuses it (a module that could never be instantiated).
/// Pulley and wasmi must agree (see [`agree`] for a run that overflowed the stack).
fn prepare(name: String, wasm: Vec<u8>, scratch: &Path) -> Result<Option<Prepared>, String> {
    let mut staged = Staged::new(&name, &wasm, device_settings(), scratch);
    while let Some((stage, result)) = staged.next_stage() {
        match result {
            Ok(()) => {}
            Err(wasm_embed_build::Error::Uninstantiable { .. }) => return Ok(None),
            Err(error) => return Err(format!("module {name}: the {stage} stage failed: {error}")),
        }
    }
    let cwasm = staged.cwasm().expect("the last stage precompiled it");
    let pulley = oracle::pulley(cwasm);
    let wasmi = oracle::wasmi(staged.wasm());
    if !agree(&pulley, &wasmi) {
        let path = scratch.join(format!("{name}.wasm"));
        std::fs::write(&path, staged.wasm()).unwrap();
        return Err(format!(
            "module {name} ({}): Pulley on the host and wasmi differ:\n{}",
            path.display(),
            first_difference(&pulley, &wasmi)
        ));
    }
    Ok(Some(Prepared {
        name,
        wasm,
        cwasm_bytes: cwasm.len(),
        pulley,
    }))
}

/// The line at which a run overflowed the Pulley stack, if it did.
fn overflow(lines: &[String]) -> Option<usize> {
    lines.iter().position(|line| line.contains("trap: StackOverflow"))
}

/// Whether two runs printed the same; where either overflowed the Pulley stack, up to
/// that call: stacks of other sizes overflow at other depths, and what the module did
/// after that (its globals and memory) depends on where it stopped.
fn agree(expected: &[String], found: &[String]) -> bool {
    match overflow(expected).into_iter().chain(overflow(found)).min() {
        Some(at) => expected.get(..at) == found.get(..at),
        None => expected == found,
    }
}

fn first_difference(expected: &[String], found: &[String]) -> String {
    let at = expected.iter().zip(found).position(|(a, b)| a != b).unwrap_or(expected.len().min(found.len()));
    format!(
        "  line {at}: {:?}\n  became {:?}\n  (all: {expected:#?}\n   became {found:#?})",
        expected.get(at),
        found.get(at)
    )
}

/// The module's lines in a firmware's output, and its peak heap, by module name. The
/// firmware's fuel per call must be the host's.
fn device_runs(stdout: &str) -> Vec<(String, Vec<String>, usize)> {
    let mut lines = stdout.lines();
    let fuel = format!("fuel per call {}", oracle::FUEL_PER_CALL);
    assert_eq!(
        lines.next(),
        Some(fuel.as_str()),
        "the firmware's fuel differs from the host's: make oracle::FUEL_PER_CALL demo-firmware's Builder::fuel"
    );
    let mut runs: Vec<(String, Vec<String>, usize)> = Vec::new();
    for line in lines {
        if let Some(name) = line.strip_prefix("module ") {
            runs.push((name.to_owned(), Vec::new(), 0));
        } else if let Some(peak) = line.strip_prefix("peak heap ").and_then(|rest| rest.strip_suffix(" bytes")) {
            runs.last_mut().expect("a module's lines follow its name").2 = peak.parse().expect(line);
        } else if !line.starts_with("done: ") {
            runs.last_mut().unwrap_or_else(|| panic!("a line before any module: {line}")).1.push(line.to_owned());
        }
    }
    runs
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Bytes of flash the `generated` example built for `target` takes: what the linker
/// places in flash (vectors, code, read-only data, and the initial values of .data).
fn flash(target: &str) -> u64 {
    use object::{Object, ObjectSection};
    let path = repo().join("demo-firmware/target").join(target).join("release/examples/generated");
    let elf = std::fs::read(&path).unwrap();
    let elf = object::File::parse(&*elf).unwrap();
    [".vector_table", ".init.rust", ".text", ".rodata", ".data"]
        .iter()
        .filter_map(|name| elf.section_by_name(name))
        .map(|section| section.size())
        .sum()
}

/// Builds demo-firmware's `generated` example with the modules in `batch` and runs it
/// in QEMU (for `target`, or the Cortex-M4); its stdout.
fn run_firmware(batch: &Path, target: Option<&str>) -> String {
    let mut args = vec!["run", "--release", "--features", "generated-modules", "--example", "generated"];
    args.extend(target.map(|target| ["--target", target]).into_iter().flatten());
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(repo().join("demo-firmware"))
        .args(&args)
        // The demo's own target directory: the runtime is built once for every test.
        .env("CARGO_TARGET_DIR", repo().join("demo-firmware/target"))
        .env("GENERATED_MODULES", batch)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().filter_map(|line| line.strip_prefix("module ")).last().unwrap_or("none");
    assert!(
        output.status.success(),
        "the firmware with {} failed ({}) in module {last} (its wasm is in that directory):\n{stdout}\n{stderr}",
        batch.display(),
        output.status
    );
    // The emitted module compiles cleanly for every guest, one with no function too.
    assert!(!stderr.contains("wasm-embed-guests.rs"), "the emitted module has warnings:\n{stderr}");
    stdout
}

#[test]
fn generated_modules_run_alike_on_the_emulated_cortex_m4_on_the_host_and_under_wasmi() {
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("on-device");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let wanted = modules();

    // The host's side, on every core: a tenth more seeds than modules wanted, as the
    // build refuses a few.
    let seeds = (wanted + wanted / 10 + 4) as u64;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4) as u64;
    let mut prepared: Vec<Prepared> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                let scratch = &scratch;
                scope.spawn(move || {
                    let dir = scratch.join(format!("worker-{worker}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    (worker..seeds)
                        .step_by(threads as usize)
                        .filter_map(|seed| {
                            let (name, wasm) = generated(seed);
                            prepare(name, wasm, &dir).unwrap_or_else(|e| panic!("{e}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().expect("the host's runs agree")).collect()
    });
    prepared.sort_by(|a, b| a.name.cmp(&b.name));
    let refused = seeds as usize - prepared.len();
    assert!(prepared.len() >= wanted, "the build refused {refused} of {seeds} modules");
    prepared.truncate(wanted);
    let regressions: Vec<Prepared> = regressions()
        .into_iter()
        .map(|(name, wasm)| {
            prepare(name, wasm, &scratch).unwrap_or_else(|e| panic!("{e}")).expect("the build takes it")
        })
        .collect();
    let regression_count = regressions.len();
    prepared.splice(0..0, regressions);

    // Batches of modules, each a firmware that fits the nRF52840.
    let mut batches: Vec<Vec<&Prepared>> = vec![Vec::new()];
    let mut bytes = 0;
    for module in &prepared {
        if bytes + module.cwasm_bytes > BATCH_CWASM_BYTES {
            batches.push(Vec::new());
            bytes = 0;
        }
        bytes += module.cwasm_bytes;
        batches.last_mut().unwrap().push(module);
    }

    let riscv_everywhere = std::env::var_os("DEVICE_CHECK_RISCV").is_some();
    let (mut compared, mut overflows, mut calls, mut traps, mut host_calls, mut peak) = (0, 0, 0, 0, 0, 0);
    let mut largest_flash = 0;
    let mut differences = Vec::new();
    // The firmware runs them in file-name order.
    for batch in &mut batches {
        batch.sort_by(|a, b| a.name.cmp(&b.name));
    }
    for (index, batch) in batches.iter().enumerate() {
        let dir = scratch.join(format!("batch-{index}"));
        std::fs::create_dir_all(&dir).unwrap();
        for module in batch {
            std::fs::write(dir.join(format!("{}.wasm", module.name)), &module.wasm).unwrap();
        }
        let stdout = run_firmware(&dir, None);
        largest_flash = largest_flash.max(flash("thumbv7em-none-eabihf"));
        let runs = device_runs(&stdout);
        assert_eq!(runs.len(), batch.len(), "the firmware ran {} of {} modules:\n{stdout}", runs.len(), batch.len());
        for (module, (name, lines, heap)) in batch.iter().zip(&runs) {
            assert_eq!(*name, module.name, "{stdout}");
            peak = peak.max(*heap);
            if !agree(&module.pulley, lines) {
                let path = scratch.join(format!("{name}.wasm"));
                std::fs::write(&path, &module.wasm).unwrap();
                differences.push(format!(
                    "module {} ({}): the Cortex-M4 and the host differ:\n{}",
                    module.name,
                    path.display(),
                    first_difference(&module.pulley, lines)
                ));
                continue;
            }
            if overflow(lines).or(overflow(&module.pulley)).is_some() {
                overflows += 1;
                continue;
            }
            compared += 1;
            for line in lines {
                calls += usize::from(line.starts_with("call "));
                traps += usize::from(line.starts_with("call ") && line.contains(" trap: "));
                host_calls += line
                    .split("; host ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .map_or(0, |n| n.parse::<usize>().unwrap());
            }
        }
        // RISC-V's pulley32 is the same interpreter built for another core: the same
        // lines, heap figures included.
        if index == 0 || riscv_everywhere {
            let riscv = run_firmware(&dir, Some("riscv32imac-unknown-none-elf"));
            assert_eq!(riscv, stdout, "RISC-V printed other lines than the Cortex-M4 for batch {index}");
        }
        eprintln!("on-device: batch {index} of {} done ({} modules)", batches.len(), batch.len());
    }
    println!(
        "| modules | refused by the build | firmware runs | compared | compared up to a stack overflow | calls | traps \
         | host calls | largest peak heap | largest firmware flash |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    println!(
        "| {wanted} and {regression_count} regressions | {refused} | {} | {compared} | {overflows} | {calls} | {traps} \
         | {host_calls} | {peak} | {largest_flash} |",
        batches.len()
    );
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // What the nRF52840 has: memory.x stops a larger link, the heap a larger instance.
    assert!(largest_flash <= 1024 * 1024 && peak <= 192 * 1024, "{largest_flash} B flash, {peak} B heap");
    // The run proves something only if the modules did what can go wrong.
    // Modules that recurse until the 4 KiB Pulley stack runs out: pulley32 and pulley64
    // frames differ in size, so they stop at different depths. They must stay a few.
    assert!(overflows <= wanted / 10, "{overflows} of {wanted} modules overflowed the stack");
    if wanted >= MODULES {
        assert!(compared >= 300, "only {compared} modules compared in full");
    }
    assert!(calls >= wanted && traps > 0 && traps < calls && host_calls > 0, "{calls} calls, {traps} traps");
}
