//! End to end: demo-firmware built for thumbv7em-none-eabihf, with every guest built by
//! its build script, run in QEMU's Cortex-M4 board; its output and exit code checked. The
//! same firmware built for thumbv7m-none-eabi runs on QEMU's Cortex-M3 board, and built for
//! riscv32imac-unknown-none-elf on QEMU's RISC-V `virt` board.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use object::{Object, ObjectSection, ObjectSymbol};

#[test]
fn demo_firmware_runs_every_guest_in_qemu_survives_the_misbehaving_ones_and_exits_0() {
    let demo = common::repo().join("demo-firmware");
    let output = cargo_in(&demo, &["run", "--release"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "firmware failed: {}\n{stdout}\n{stderr}", output.status);
    // Every line, with the heap figures (which change with Wasmtime) replaced by N.
    let mut peaks = Vec::new();
    let lines: Vec<String> = stdout
        .lines()
        .map(|line| match line.split_once(": peak heap ") {
            Some((guest, rest)) => {
                peaks.push(rest.trim_end_matches(" bytes").parse::<usize>().expect(line));
                format!("{guest}: peak heap N bytes")
            }
            None => line.to_owned(),
        })
        .collect();
    let log_memory = lines[3].split("outside its ").nth(1).and_then(|r| r.split('-').next()).expect(&stdout);
    let expected = [
        "add: add_with_extra(1, 2) = 45".to_owned(),
        "add: peak heap N bytes".to_owned(),
        "log: hello from the log guest: 7 squared is 49".to_owned(),
        format!(
            "log: guest `log` failed in `bad_pointer`: its import failed: guest `log` passed a buffer of 256 bytes \
             at 0xffffff00, outside its {log_memory}-byte memory; the guest must pass a pointer into its own memory"
        ),
        "log: peak heap N bytes".to_owned(),
        "compute: crc32 = 0x9e866a9a (same as native), 9 words and 2 numbers, sort left 5 of 51 bytes in place".to_owned(),
        "compute: peak heap N bytes".to_owned(),
        "spin: guest `spin` ran out of fuel in `spin`: it probably loops forever; fix the guest, \
         or give calls more fuel (Builder::fuel in build.rs)"
            .to_owned(),
        "spin: peak heap N bytes".to_owned(),
        "out_of_bounds: guest `out_of_bounds` trapped in `read_far`: out-of-bounds memory access, a bug in the guest"
            .to_owned(),
        "out_of_bounds: peak heap N bytes".to_owned(),
        "panic: guest `panic` trapped in `checked_divide`: it panicked or reached `unreachable`, a bug in the guest"
            .to_owned(),
        "panic: peak heap N bytes".to_owned(),
        "recursion: guest `recursion` trapped in `triangle`: stack overflow, its calls went deeper than the \
         Pulley stack; bound its recursion, or raise Builder::max_wasm_stack in build.rs"
            .to_owned(),
        "recursion: peak heap N bytes".to_owned(),
        "grow: guest `grow` trapped in `grow` after memory.grow from 65536 to 131072 bytes was refused: \
         a guest's memory is fixed at build time; make it allocate statically"
            .to_owned(),
        "grow: peak heap N bytes".to_owned(),
    ];
    assert_eq!(lines[..lines.len() - 1], expected, "{stdout}");
    // With 1-byte pages a guest's linear memory is its stack and data, not 64 KiB: only
    // the guest that grows its memory keeps a 64 KiB page.
    let (grow, others) = peaks.split_last().unwrap();
    assert!(others.iter().all(|&peak| (1024..32 * 1024).contains(&peak)), "{peaks:?}");
    assert!(*grow > 64 * 1024, "{peaks:?}");
    // Every guest gives back all it took; what stays is Wasmtime's registry of loaded
    // code, made once, with the first module.
    let numbers: Vec<usize> = lines.last().unwrap().split(' ').filter_map(|w| w.parse().ok()).collect();
    assert!(lines.last().unwrap().starts_with("heap in use: "), "{stdout}");
    let [start, after_first, after_last] = numbers[..] else { panic!("{stdout}") };
    assert_eq!(after_first, after_last, "{stdout}");
    assert!(after_first - start <= 512, "{stdout}");

    // Every other core of the board list (boards.toml): the same firmware and guests
    // print the very same lines, heap figures included. A Cortex-M3 (no FPU, no DSP
    // instructions); a Cortex-M33 in its Secure state; an rv32imac core, where nothing in
    // the runtime names the core (the pipeline picks pulley32 from the target's pointer
    // width); and the two cores without compare-and-swap, ARMv6-M code and RV32IMC, each
    // built for its target spec: the RV32IMC runs on a `virt` whose A extension is off,
    // so any AMO instruction would trap, and neither image holds one (nor LDREX/STREX).
    for core in common::boards().iter().filter(|b| b.demo && b.name != "qemu-m4") {
        let output = cargo_in(&demo, &["run", "--release", "--target", &core.target_argument()]);
        let printed = String::from_utf8_lossy(&output.stdout);
        let name = &core.name;
        assert!(output.status.success(), "{name} failed: {printed}\n{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(printed, stdout, "{name} printed other lines than the Cortex-M4");
        if core.spec {
            let elf = demo.join("target").join(&core.target).join("release/demo-firmware");
            assert_eq!(common::atomic_instructions(&elf), Vec::<String>::new(), "{name}");
        }
    }

    // The add example, the firmware the size report measures.
    let output = cargo_in(&demo, &["run", "--release", "--example", "add"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "add_with_extra(1, 2) = 45", "{stdout}");
    assert!(lines[1].starts_with("peak heap: ") && lines.len() == 3, "{stdout}");
    // Measured by painting: loading and calling the guest went some KiB deep (Wasmtime's
    // largest frames alone are 3 KiB), well within the stack.
    let (used, size) = lines[2]
        .strip_prefix("peak main stack: ")
        .and_then(|rest| rest.strip_suffix(" bytes"))
        .and_then(|rest| rest.split_once(" of its "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let (used, size) = (used.parse::<usize>().unwrap(), size.parse::<usize>().unwrap());
    assert!((4096..size / 2).contains(&used), "{stdout}");

    // Building again with nothing changed neither reruns the build script nor rebuilds
    // the guest.
    let stderr = build_demo_verbosely();
    assert!(stderr.contains("Fresh demo-firmware"), "{stderr}");
    assert!(!stderr.contains("build-script-build`"), "the build script ran again: {stderr}");

    // Editing the firmware's own source (its timestamp is enough for Cargo) recompiles
    // the firmware but builds no guest: the build script does not run.
    let main = common::repo().join("demo-firmware/src/main.rs");
    let file = std::fs::File::options().write(true).open(&main).unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    drop(file);
    let stderr = build_demo_verbosely();
    assert!(stderr.contains("Compiling demo-firmware"), "{stderr}");
    assert!(!stderr.contains("build-script-build`"), "the build script ran for a firmware edit: {stderr}");
}

/// `cargo build --release --verbose` of demo-firmware, which must succeed; its stderr.
fn build_demo_verbosely() -> String {
    let output = cargo_in(&common::repo().join("demo-firmware"), &["build", "--release", "--verbose"]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

/// A copy of demo-firmware named `name`, with its manifest and build script edited,
/// to be built in demo-firmware's own target directory so only the firmware crate and
/// its build script are compiled (its own name keeps their outputs apart from the real
/// firmware's).
fn firmware_copy(name: &str, manifest: impl Fn(String) -> String, build_rs: impl Fn(String) -> String) -> PathBuf {
    let repo = common::repo();
    let source = repo.join("demo-firmware");
    let copy = common::out_dir(name);
    for file in firmware_files(&source) {
        std::fs::create_dir_all(copy.join(&file).parent().unwrap()).unwrap();
        std::fs::copy(source.join(&file), copy.join(&file)).unwrap();
    }
    let text = std::fs::read_to_string(source.join("Cargo.toml"))
        .unwrap()
        .replace("name = \"demo-firmware\"", &format!("name = {name:?}"))
        .replace("path = \"../", &format!("path = \"{}/", repo.display()))
        .replace("\"../guests/", &format!("\"{}/guests/", repo.display()));
    std::fs::write(copy.join("Cargo.toml"), manifest(text)).unwrap();
    let text = std::fs::read_to_string(source.join("build.rs")).unwrap();
    std::fs::write(copy.join("build.rs"), build_rs(text)).unwrap();
    copy
}

/// The firmware's files, relative to its directory, without its build output.
fn firmware_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(next) = dirs.pop() {
        for path in std::fs::read_dir(&next).unwrap().map(|e| e.unwrap().path()) {
            if path.is_dir() && !path.ends_with("target") {
                dirs.push(path);
            } else if path.is_file() {
                files.push(path.strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    files
}

fn cargo_in(dir: &Path, args: &[&str]) -> Output {
    cargo_with_env(dir, args, &[])
}

fn cargo_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", common::repo().join("demo-firmware/target"))
        .envs(env.iter().copied())
        .output()
        .expect("cargo runs")
}

#[test]
fn skipped_guests_still_link_and_the_firmware_reports_one_error_line_and_fails() {
    let copy = firmware_copy("skipped-guests", |manifest| manifest, |build_rs| build_rs);
    let output = cargo_with_env(&copy, &["run", "--release"], &[("WASM_EMBED_SKIP", "1")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("guests not built (WASM_EMBED_SKIP is set)"), "{stderr}");
    assert!(!output.status.success(), "a firmware without its guest must fail: {stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("error: guest `add` was not built: its build was skipped"), "{stdout}");
}

/// Builds a copy of the firmware whose metadata lists `guest`; returns cargo's stderr.
fn build_firmware_with_guest(name: &str, guest: &str) -> String {
    let copy = firmware_copy(
        name,
        |manifest| manifest.replace(&format!("\"{}/guests/add\"", common::repo().display()), &format!("{guest:?}")),
        |build_rs| build_rs,
    );
    // As users often have it; with it, Cargo would add a note about the build script's
    // backtraces under the error if the profile built the script without debug info.
    let output = cargo_with_env(&copy, &["build", "--release"], &[("RUST_BACKTRACE", "1")]);
    assert!(!output.status.success(), "the build must fail");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("BUILD_OVERRIDE_DEBUG"), "{stderr}");
    stderr
}

/// The speed benchmark's self-check: the same kernels natively, under Pulley and under
/// wasmi must give `speed_kernels::EXPECTED` and the same timed result. (The figures
/// come from `./x speed`, which runs QEMU with `-icount shift=0`; here only that each
/// runtime reports a count.)
#[test]
fn the_speed_benchmark_computes_the_same_results_natively_under_pulley_and_under_wasmi() {
    let demo = common::repo().join("demo-firmware");
    let output = cargo_in(&demo, &["run", "--release", "--features", "speed-bench", "--example", "speed"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("speed: 200 iterations, seed 0x5eed0001"), "{stdout}");
    let runtimes: Vec<&str> = lines[1..].iter().filter_map(|l| l.split_once(": load ").map(|(r, _)| r)).collect();
    assert_eq!(runtimes, ["native", "pulley", "wasmi"], "{stdout}");
    let result_of = |line: &str| line.split("result ").nth(1).and_then(|r| r.split(',').next()).map(str::to_owned);
    let native = result_of(lines[1]).expect(&stdout);
    for line in &lines[1..] {
        assert_eq!(result_of(line).as_deref(), Some(native.as_str()), "{stdout}");
        assert!(line.ends_with("self-check ok"), "{stdout}");
        let run: u64 = line.split("run ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).expect(line);
        assert!(run > 0, "{stdout}");
    }
}

/// The component guests on the device: the sensor filter's world carries a string, a
/// list, records and results both ways, a trap is contained and a new instance runs;
/// the add guest as a component gives the add example's sum.
#[test]
fn component_guests_run_in_qemu_with_each_wit_type_and_a_trap_is_contained() {
    let demo = common::repo().join("demo-firmware");
    let output = cargo_in(&demo, &["run", "--release", "--features", "component", "--example", "sensor"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..5],
        [
            // 201 and 250 (from the firmware's history) are dropped, the rest calibrated by -3.
            "filter(inlet, [10, 20, 201, 30]) = kept [7, 17, 27, 37, 41], mean 25, peak 41",
            "filter(attic, [1]) = error: no calibration for attic: sensor `attic` is not in the table",
            "summaries published: 1",
            "contained: guest `sensor_filter` trapped in `fault`: it panicked or reached `unreachable`, a bug in the guest",
            "filter(outlet, [5, 6, 7]) = kept [15, 16, 17], mean 16, peak 17",
        ],
        "{stdout}"
    );
    assert!(lines[5].starts_with("peak heap: "), "{stdout}");
    assert_eq!(lines.len(), 6, "{stdout}");

    let output = cargo_in(&demo, &["run", "--release", "--features", "component", "--example", "add-component"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("add-with-extra(1, 2) = 45\npeak heap: "), "{stdout}");

    // The same component under embassy: its import awaits a timer, its export is a future.
    let args = ["run", "--release", "--features", "component,embassy", "--example", "add-component-async"];
    let output = cargo_in(&demo, &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("add-with-extra(1, 2) = 45\npeak heap: "), "{stdout}");
}

/// Guests under embassy on both cores: a guest computing while a ticker runs (and ticks),
/// two guests in two tasks, an import awaiting a timer and a channel (and waiting on
/// each); each yielding result equals the blocking call's, and the guest that loops
/// forever yields every slice and still ends at its fuel bound.
/// (The lateness figures are `./x size`'s to report, not this test's to judge.)
#[test]
fn guests_yield_under_embassy_on_every_core_with_fibers_and_compute_what_blocking_calls_do() {
    let demo = common::repo().join("demo-firmware");
    // The Cortex-M4, the rv32imac core and RV32IMC, which has no compare-and-swap. Not
    // ARMv6-M: async calls run on Wasmtime's fibers, whose Arm stack switch is Thumb-2
    // assembly (`push {r4-r11, lr}`), which an ARMv6-M core does not have.
    let rv32imc = common::boards().into_iter().find(|b| b.name == "qemu-riscv-imc").unwrap().target_argument();
    for target in ["thumbv7em-none-eabihf", "riscv32imac-unknown-none-elf", &rv32imc] {
        let args = ["run", "--release", "--features", "embassy", "--example", "embassy", "--target", target];
        let output = cargo_in(&demo, &args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{target}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 9, "{target}: {stdout}");
        assert_eq!(lines[0], "yield interval: 2000 units of fuel, calls bounded at 1000000", "{target}");
        assert_eq!(lines[1], "blocking: crc32 = 0x5d3de8ed", "{target}");
        // 4 checksums of 1 KiB, each about 90 slices of 2,000 units of fuel and a yield
        // before it starts.
        assert_eq!(lines[2], "one guest: crc32 = 0x5d3de8ed in 372 polls (equal to the blocking call's)", "{target}");
        // The ticker ran all along (a phase is milliseconds long, a tick 1 ms): the
        // lateness is of ticks that happened.
        assert!(ticks(lines[3]) >= 10, "{target}: {stdout}");
        // The import's future waited for each: the 1 ms timer, then the sensor's reading,
        // sent 3 ms after the sensor task started.
        let waits = lines[4]
            .strip_prefix("add_with_extra(1, 2) = 45 in ")
            .and_then(|rest| rest.strip_suffix(" us for the channel"))
            .and_then(|rest| rest.split_once(" polls, its import waited "))
            .and_then(|(polls, rest)| Some((polls, rest.split_once(" us for the timer and ")?)))
            .unwrap_or_else(|| panic!("{target}: {stdout}"));
        let (polls, (timer, channel)) = (waits.0.parse::<u32>().unwrap(), waits.1);
        let (timer, channel) = (timer.parse::<u64>().unwrap(), channel.parse::<u64>().unwrap());
        assert!(polls >= 3 && timer >= 1_000 && channel >= 1_000, "{target}: {stdout}");
        assert_eq!(lines[5], "two guests: crc32 = 0x5d3de8ed in 372 polls (equal to the blocking call's)", "{target}");
        // 1,000,000 units of fuel in slices of 2,000, and the yield before the call: the
        // spin guest gave the other tasks the core 500 times.
        assert_eq!(
            lines[6],
            "two guests: spin in 501 polls: guest `spin` ran out of fuel in `spin`: it probably loops forever; \
             fix the guest, or give calls more fuel (Builder::fuel in build.rs)",
            "{target}"
        );
        assert!(ticks(lines[7]) >= 10, "{target}: {stdout}");
        assert!(lines[8].starts_with("peak heap: "), "{target}: {stdout}");
    }

    let output = cargo_in(&demo, &["run", "--release", "--features", "embassy", "--example", "add_async"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "add_with_extra(1, 2) = 45", "{stdout}");
    let used = lines[1]
        .strip_prefix("fiber stack: ")
        .and_then(|rest| rest.strip_suffix(" of 4096 bytes used"))
        .unwrap_or_else(|| panic!("{stdout}"));
    // Measured by the stack's paint: the call went through the guest and its import.
    assert!((256..4096).contains(&used.parse::<usize>().unwrap()), "{stdout}");
}

/// An async call's fiber stack that overflows, on the Cortex-M4, M3 and M33 and on RISC-V: the import's
/// future goes to within 64 bytes of the stack's end and then past it, into the canary
/// below. On the Arm cores the MPU guards the canary (`stack-guard`): the first write
/// into it faults, the guard's handler prints one line, the canary is still as painted,
/// and the run fails. On RISC-V, where a PMP entry that binds machine mode cannot be
/// freed until reset, the paint check finds it after the poll: the call ends in one line
/// with how far it went (within the canary, so nothing beside the stack was written),
/// never with its result, and the guest's next call runs.
#[test]
fn a_fiber_stack_that_overflows_is_stopped_by_the_mpu_or_ends_its_call_in_one_line() {
    let demo = common::repo().join("demo-firmware");
    let async_md = std::fs::read_to_string(common::repo().join("docs/async.md")).unwrap();
    let quoted = |line: &str| assert!(async_md.lines().any(|quoted| quoted.trim() == line), "docs/async.md does not quote: {line}");
    // Armv7-M's MPU on the M4 and M3, Armv8-M's on the M33.
    for target in ["thumbv7em-none-eabihf", "thumbv7m-none-eabi", "thumbv8m.main-none-eabihf"] {
        let args = ["run", "--release", "--features", "embassy", "--example", "fiber_overflow", "--target", target];
        let output = cargo_in(&demo, &args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{target}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            [
                "error: an async call overflowed its fiber stack of 4096 bytes: the MPU stopped it in the 256 bytes kept \
                 below it; raise Builder::async_stack_size in build.rs, or make its imports' futures less deep",
                "the 256 bytes below the fiber stack: as painted",
            ],
            "{target}"
        );
        quoted(lines[0]);
    }
    // RISC-V, where the paint check stands in for a region (docs/async.md says why); the
    // RV32IMC runs the same code.
    let target = "riscv32imac-unknown-none-elf";
    let args = ["run", "--release", "--features", "embassy", "--example", "fiber_overflow", "--target", target];
    let output = cargo_in(&demo, &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{target}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{target}: {stdout}");
    let by = lines[0]
        .strip_prefix("guest `add` failed in `add_with_extra`: it overflowed its fiber stack of 4096 bytes by ")
        .and_then(|rest| {
            rest.strip_suffix(
                " bytes, into the 256 bytes kept below it; raise Builder::async_stack_size in build.rs, \
                 or make its imports' futures less deep",
            )
        })
        .unwrap_or_else(|| panic!("{target}: {stdout}"));
    assert!((1..256).contains(&by.parse::<usize>().unwrap()), "{target}: {stdout}");
    quoted(lines[0]);
    assert_eq!(lines[1], "the same guest's next call: add_with_extra(1, 2) = 45", "{target}");
}

/// The ticks a lateness line counted, once it is known to be one.
fn ticks(line: &str) -> u32 {
    let ticks = line
        .split_once(": worst tick lateness ")
        .and_then(|(_, rest)| rest.strip_suffix(" ticks"))
        .and_then(|rest| rest.rsplit_once(" us, over "))
        .unwrap_or_else(|| panic!("not a lateness line: {line}"))
        .1;
    ticks.parse().unwrap()
}

/// Floats across yields on the Cortex-M4F: the guest's f32 and f64 work gives the blocking
/// result across 67 yields; and a fiber that holds values of its own in s16-s31 when it
/// suspends and while it is dropped: through Wasmtime's call_async alone (its Arm switch
/// saves r4-r11 and lr only) the caller's and the fiber's values leak into each other
/// (the reproduction), through the handle neither loses one, when the call runs to its
/// end and when it is dropped while suspended; and the same through a component guest's
/// handle, whose async calls take wasm-embed's component path.
#[test]
fn floats_survive_guest_yields_on_the_cortex_m4f_and_the_switchs_loss_is_reproduced() {
    let demo = common::repo().join("demo-firmware");
    let output = cargo_in(&demo, &["run", "--release", "--features", "embassy,component", "--example", "float_yields"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..8],
        [
            "blocking: floats(5000) = 9094513829",
            "through the handle: floats(5000) = 9094513829 after 68 polls (equal)",
            "fiber keeping floats, Wasmtime's call_async alone: 45 after 2 polls, 6 of the caller's s16-s31 lost, \
             3 of the fiber's 3",
            "dropped while suspended, Wasmtime's call_async alone: 6 of the caller's s16-s31 lost",
            "fiber keeping floats, through the handle: 45 after 3 polls, 0 of the caller's s16-s31 lost, 0 of the \
             fiber's 3",
            "dropped while suspended, through the handle: 0 of the caller's s16-s31 lost",
            "component fiber keeping floats, through the handle: 45 after 3 polls, 0 of the caller's s16-s31 lost, \
             0 of the fiber's 3",
            "component dropped while suspended, through the handle: 0 of the caller's s16-s31 lost",
        ],
        "{stdout}"
    );
}

#[test]
fn firmware_with_the_debug_profile_runs_the_guest_in_qemu() {
    let copy = firmware_copy(
        "debug-profile",
        |manifest| manifest,
        |build_rs| {
            let one_line = "Builder::new().profile(wasm_embed_build::Profile::Debug).fuel(";
            let edited = build_rs.replace("Builder::new().fuel(", one_line);
            assert_ne!(edited, build_rs);
            edited
        },
    );
    let output = cargo_in(&copy, &["run", "--release"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.lines().next(), Some("add: add_with_extra(1, 2) = 45"), "{stdout}");
    // The debug profile's traps carry a backtrace that names the guest's function.
    let panic = stdout.find("panic: guest `panic` trapped in `checked_divide`").expect(&stdout);
    let backtrace: Vec<&str> = stdout[panic..].lines().skip(1).take(2).collect();
    assert_eq!(backtrace[0], "error while executing at wasm backtrace:", "{stdout}");
    assert!(backtrace[1].ends_with("panic.wasm!checked_divide"), "{stdout}");
}

#[test]
fn a_firmware_that_leaves_out_a_guests_import_does_not_compile() {
    let copy = firmware_copy("missing-import", |manifest| manifest, |build_rs| build_rs);
    let main = copy.join("src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap();
    let start = text.find("impl guests::add::Host for Board {").unwrap();
    let end = start + text[start..].find("\n}\n").unwrap() + 3;
    std::fs::write(&main, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let output = cargo_in(&copy, &["build", "--release"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("error[E0277]: the trait bound `Board: demo_firmware::guests::add::Host` is not satisfied"),
        "{stderr}"
    );
    assert!(stderr.contains("required by a bound in `demo_firmware::guests::add::Add::<H>::new`"), "{stderr}");

    // A component guest's imports are a trait from its WIT world: leaving one out of
    // the firmware's implementation does not compile either.
    let sensor = copy.join("examples/sensor.rs");
    let text = std::fs::read_to_string(&sensor).unwrap();
    let start = text.find("    fn publish(").unwrap();
    let end = start + text[start..].find("\n    }\n").unwrap() + 7;
    std::fs::write(&sensor, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let output = cargo_in(&copy, &["build", "--release", "--features", "component", "--example", "sensor"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("error[E0046]: not all trait items implemented, missing: `publish`"), "{stderr}");
}

#[test]
fn firmware_build_fails_with_one_clear_line_for_a_missing_guest() {
    let stderr = build_firmware_with_guest("missing-guest", "../no-such-guest");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: missing-guest@0.1.0: guest `../no-such-guest` not found"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("no-such-guest/Cargo.toml does not exist"), "{line}");
    assert!(line.contains("give the path of the guest crate's directory"), "{line}");
}

#[test]
fn firmware_build_fails_with_one_clear_line_for_a_guest_that_is_not_a_cdylib() {
    let fixture = common::fixture("not-cdylib");
    let stderr = build_firmware_with_guest("not-cdylib-guest", fixture.to_str().unwrap());
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: not-cdylib-guest@0.1.0: guest `not_cdylib` is not a cdylib"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("add `[lib] crate-type = [\"cdylib\"]` to"), "{line}");
}

/// The first line of demo-firmware's `main`, after which the tests below add theirs.
const FIRST_IN_MAIN: &str = "    demo_firmware::init();\n";

#[test]
fn a_new_guest_with_a_new_import_takes_a_crate_a_manifest_line_and_a_trait_impl() {
    // The new crate, as docs/guide.md shows it.
    let guest = common::out_dir("blink-guest");
    std::fs::create_dir_all(guest.join("src")).unwrap();
    std::fs::write(
        guest.join("Cargo.toml"),
        "[package]\nname = \"blink\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        guest.join("src/lib.rs"),
        r#"#![no_std]
#[link(wasm_import_module = "led")]
unsafe extern "C" {
    fn set_led(on: u32);
}
#[unsafe(no_mangle)]
extern "C" fn blink(times: u32) {
    for i in 0..times * 2 {
        unsafe { set_led(i % 2) };
    }
}
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
"#,
    )
    .unwrap();
    // One line in the firmware's manifest.
    let copy = firmware_copy(
        "new-guest",
        |manifest| manifest.replace("guests = [\n", &format!("guests = [\n  {:?},\n", guest.display().to_string())),
        |build_rs| build_rs,
    );
    // One trait impl, and the call.
    let main = copy.join("src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap();
    assert!(text.contains(FIRST_IN_MAIN), "demo-firmware's main.rs no longer starts with {FIRST_IN_MAIN:?}");
    let text = text.replace(
        FIRST_IN_MAIN,
        "    demo_firmware::init();\n    \
         let guest = &guests::blink::GUEST;\n    \
         let engine = wasm_embed::engine(guest.settings()).unwrap();\n    \
         let module = guest.load(&engine).unwrap();\n    \
         guests::blink::Blink::new(&module, Board).unwrap().blink(2).unwrap();\n",
    ) + "\nimpl guests::blink::Led for Board {\n    \
         fn set_led(&mut self, on: u32) {\n        \
         say!(\"led {}\", if on == 1 { \"on\" } else { \"off\" });\n    }\n}\n";
    std::fs::write(&main, text).unwrap();
    let output = cargo_in(&copy, &["run", "--release"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().take(5).collect();
    assert_eq!(lines, ["led off", "led on", "led off", "led on", "add: add_with_extra(1, 2) = 45"], "{stdout}");
}

#[test]
fn a_prebuilt_wasm_listed_in_the_manifest_runs_in_qemu_and_a_new_file_rebuilds_it() {
    // A module another toolchain made, kept in the firmware's own directory.
    let module = |answer: u32| {
        wat::parse_str(format!(
            r#"(module
                 (import "env" "scale" (func $scale (param i32) (result i32)))
                 (func (export "answer") (result i32) (call $scale (i32.const {answer}))))"#
        ))
        .unwrap()
    };
    let copy = firmware_copy(
        "prebuilt-guest",
        |manifest| manifest.replace("guests = [\n", "guests = [\n  \"vendor/answer.wasm\",\n"),
        |build_rs| build_rs,
    );
    std::fs::create_dir_all(copy.join("vendor")).unwrap();
    std::fs::write(copy.join("vendor/answer.wasm"), module(21)).unwrap();
    let main = copy.join("src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap();
    assert!(text.contains(FIRST_IN_MAIN), "demo-firmware's main.rs no longer starts with {FIRST_IN_MAIN:?}");
    let text = text.replace(
        FIRST_IN_MAIN,
        "    demo_firmware::init();\n    \
         let guest = &guests::answer::GUEST;\n    \
         let engine = wasm_embed::engine(guest.settings()).unwrap();\n    \
         let module = guest.load(&engine).unwrap();\n    \
         say!(\"answer: {}\", guests::answer::Answer::new(&module, Board).unwrap().answer().unwrap());\n",
    ) + "\nimpl guests::answer::Env for Board {\n    \
         fn scale(&mut self, _memory: GuestMemory<'_>, value: u32) -> Result<u32, Error> {\n        \
         Ok(value * 2)\n    }\n}\n";
    std::fs::write(&main, text).unwrap();
    let run = |expected: &str| {
        let output = cargo_in(&copy, &["run", "--release"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(stdout.lines().next(), Some(expected), "{stdout}");
    };
    run("answer: 42");
    // Cargo watches the file: a new one is built into the next image.
    std::fs::write(copy.join("vendor/answer.wasm"), module(50)).unwrap();
    run("answer: 100");
}

/// On the cores without compare-and-swap, wasm-embed's `__sync_*` functions race a timer
/// interrupt that changes the same words: none of its updates is lost (QEMU runs one
/// instruction per block, so the interrupt lands inside the operations too).
#[test]
fn atomic_operations_on_cores_without_compare_and_swap_hold_against_an_interrupt() {
    let demo = common::repo().join("demo-firmware");
    for core in common::boards().iter().filter(|b| b.demo && b.spec) {
        let output = cargo_in(&demo, &["run", "--release", "--example", "atomics", "--target", &core.target_argument()]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}: {stdout}\n{}", core.name, String::from_utf8_lossy(&output.stderr));
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(lines[0].starts_with("atomics: 50000 rounds in the main loop, "), "{}: {stdout}", core.name);
        let interrupts: u32 = lines[0].split(", ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!(interrupts > 1000, "{}: {interrupts} interrupts", core.name);
        assert_eq!(lines.last(), Some(&"no update lost"), "{}: {stdout}", core.name);
        let elf = demo.join("target").join(&core.target).join("release/examples/atomics");
        let symbols = std::fs::read(&elf).unwrap();
        let elf = object::File::parse(&*symbols).unwrap();
        // The operations are wasm-embed's, not instructions the core lacks.
        assert!(elf.symbols().any(|s| s.name() == Ok("__sync_val_compare_and_swap_4")), "{}", core.name);
    }
}

/// A heap that runs out while guests are set up, on the Cortex-M4, M3, M33 and RISC-V:
/// where Wasmtime returns the failure, the error names the guest and the bytes and the
/// firmware goes on with its other guest; where Wasmtime cannot go on (a store it must
/// allocate), the fault handler's one line says the heap ran out and which guest was
/// being set up, and the run fails.
#[test]
fn a_heap_that_runs_out_ends_in_one_line_and_the_firmware_goes_on_where_wasmtime_lets_it() {
    let demo = common::repo().join("demo-firmware");
    let instantiation = |guest: &str, bytes: u32| {
        format!(
            "{guest}: guest `{guest}` could not be instantiated: failed to allocate {bytes:#x} bytes ({bytes:#x} minimum + \
             0x0 memory_reservation_for_growth): memory allocation failed because the memory allocator returned an error; \
             leave heap for its memory and Pulley stack"
        )
    };
    for target in ["thumbv7em-none-eabihf", "thumbv7m-none-eabi", "thumbv8m.main-none-eabihf", "riscv32imac-unknown-none-elf"] {
        let output = cargo_in(&demo, &["run", "--release", "--example", "heap_exhaustion", "--target", target]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{target}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 5, "{target}: {stdout}");
        assert_eq!(lines[0], instantiation("grow", 0x10000), "{target}");
        assert_eq!(lines[1], "add: add_with_extra(1, 2) = 45", "{target}");
        assert_eq!(lines[2], instantiation("compute", 0x1400), "{target}");
        assert_eq!(lines[3], "add: add_with_extra(1, 2) = 45", "{target}");
        let (size, in_use) = lines[4]
            .strip_prefix("error: the heap ran out while guest `compute` was set up: ")
            .and_then(|rest| rest.strip_suffix(" bytes in use; give the heap more RAM, or set fewer guests up at once"))
            .and_then(|rest| rest.split_once(" bytes could not be allocated with "))
            .unwrap_or_else(|| panic!("{target}: {stdout}"));
        let (in_use, heap) = in_use.split_once(" of its ").unwrap();
        let (size, in_use, heap): (usize, usize, usize) = (size.parse().unwrap(), in_use.parse().unwrap(), heap.parse().unwrap());
        assert!(size > 0 && in_use + size > heap - 512 && heap == 196_608, "{target}: {stdout}");
        // docs/boards.md quotes both kinds of line as the firmware prints them.
        let boards_md = std::fs::read_to_string(common::repo().join("docs/boards.md")).unwrap();
        for line in [lines[2], lines[4]] {
            assert!(boards_md.lines().any(|quoted| quoted.trim() == line), "docs/boards.md does not quote: {line}");
        }
    }
}

/// On every core, a host function called from a guest's import that recurses without
/// bound; one that nearly fills the stack and then calls a function whose frame, 3 KiB,
/// is larger than the room left; and an interrupt handler that recurses without bound on
/// top of a guest call: the stack reaches its guard rather than stepping over it, the
/// fault handler's one line names the overflow, the memory below the guard is as painted,
/// and the run fails.
#[test]
fn a_main_stack_that_overflows_faults_at_its_guard_in_one_line_and_overwrites_nothing() {
    let demo = common::repo().join("demo-firmware");
    // Every example on the Cortex-M4, M3 and M33 and RISC-V (the guard programmed three
    // ways: PMSAv7, PMSAv8, PMP); the recursing import also on ARMv6-M and RV32IMC, whose
    // guard is programmed as the M3's and RV32IMAC's.
    let every = ["stack_overflow", "stack_overflow_large_frame", "interrupt_overflow"];
    let runs = ["qemu-m4", "qemu-m3", "qemu-m33", "qemu-riscv"]
        .into_iter()
        .flat_map(|core| every.map(|example| (core, example)))
        .chain(["qemu-m0", "qemu-riscv-imc"].map(|core| (core, "stack_overflow")));
    for (core, example) in runs {
        let core = common::boards().into_iter().find(|b| b.name == core).unwrap();
        let output = cargo_in(&demo, &["run", "--release", "--example", example, "--target", &core.target_argument()]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let name = format!("{} {example}", core.name);
        assert_eq!(output.status.code(), Some(1), "{name}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{name}: {stdout}");
        let (size, guard) = lines[0]
            .strip_prefix("the stack: ")
            .and_then(|rest| rest.split_once(" bytes above its guard at "))
            .unwrap_or_else(|| panic!("{name}: {stdout}"));
        assert!(size.parse::<usize>().unwrap() > 32 * 1024, "{name}: {stdout}");
        assert_eq!(
            lines[1],
            format!(
                "error: the stack overflowed: it grew through its {size} bytes to the guard at {guard}; give it more RAM \
                 (a smaller heap) or make the calls that ran less deep"
            ),
            "{name}"
        );
        let watched = lines[2]
            .strip_prefix("the ")
            .and_then(|rest| rest.strip_suffix(" bytes below the guard: as painted"))
            .unwrap_or_else(|| panic!("{name}: {stdout}"));
        assert!(watched.parse::<usize>().unwrap() >= 256, "{name}: {stdout}");
        if name == "qemu-m4 stack_overflow" {
            let boards_md = std::fs::read_to_string(common::repo().join("docs/boards.md")).unwrap();
            assert!(boards_md.lines().any(|quoted| quoted.trim() == lines[1]), "docs/boards.md does not quote: {}", lines[1]);
        }
    }
}

/// Every board firmware in the board list builds, fits its chip, holds both guests and
/// logs over its board's channel.
#[test]
fn every_board_firmware_builds_and_fits_its_chip() {
    for board in common::boards().iter().filter(|b| b.firmware.is_some()) {
        let dir = common::repo().join(board.firmware.as_ref().unwrap());
        let output = cargo_in(&dir, &["build", "--release", "--message-format=json-render-diagnostics"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}: {}", board.name, String::from_utf8_lossy(&output.stderr));
        let executable = stdout
            .lines()
            .filter_map(|line| line.split_once("\"executable\":\"")?.1.split_once('"').map(|(path, _)| path))
            .last()
            .unwrap_or_else(|| panic!("cargo reported no executable: {stdout}"));
        let (flash, ram) = common::image_size(Path::new(executable));
        assert!((100_000..board.flash).contains(&flash), "{}: flash {flash} B of {}", board.name, board.flash);
        assert!(ram < board.ram, "{}: RAM {ram} B of {}", board.name, board.ram);
        let data = std::fs::read(executable).unwrap();
        let elf = object::File::parse(&*data).unwrap();
        let symbols: Vec<String> =
            elf.symbols().filter_map(|s| Some(format!("{:#}", rustc_demangle::demangle(s.name().ok()?)))).collect();
        let package = dir.file_name().unwrap().to_str().unwrap().replace('-', "_");
        for guest in ["add", "blinky"] {
            let path = format!("{package}_firmware::guests::{guest}::");
            assert!(symbols.iter().any(|s| s.starts_with(&path)), "{}: guest {guest} is not in the image", board.name);
        }
        if board.spec {
            assert_eq!(common::atomic_instructions(Path::new(executable)), Vec::<String>::new(), "{}", board.name);
        }
        // The main stack's guard: wasm-embed's, linked where the stack ends and protected
        // by the code that takes the fault; on the ESP32-C3, esp-hal's watched word.
        let address = |name: &str| elf.symbols().find(|s| s.name() == Ok(name)).map(|s| s.address());
        if board.name.starts_with("esp32") {
            assert!(address("__stack_chk_guard").is_some(), "{}: no esp-hal stack guard", board.name);
        } else {
            let guard = address("__stack_guard").unwrap_or_else(|| panic!("{}: no stack guard", board.name));
            assert_eq!(guard % 4096, 0, "{}: guard at {guard:#x}", board.name);
            assert_eq!(address("__stack_guard_end"), Some(guard + 4096), "{}", board.name);
            assert!(address("HardFault").is_some() && symbols.iter().any(|s| s.starts_with("wasm_embed::stack_guard::")), "{}: no fault handler of wasm-embed's", board.name);
        }
    }
}

#[test]
fn the_nrf52840_dk_firmware_builds_and_fits_the_chip() {
    // It cannot be flashed here; building it proves the board's HAL, defmt and both
    // guests link into an image the nRF52840 holds.
    let board = common::repo().join("boards/nrf52840-dk");
    let output = cargo_in(&board, &["build", "--release", "--message-format=json-render-diagnostics"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let executable = stdout
        .lines()
        .filter_map(|line| line.split_once("\"executable\":\"")?.1.split_once('"').map(|(path, _)| path))
        .last()
        .unwrap_or_else(|| panic!("cargo reported no executable: {stdout}"));
    let data = std::fs::read(executable).unwrap();
    let elf = object::File::parse(&*data).unwrap();
    let size = |name: &str| elf.section_by_name(name).map_or(0, |section| section.size());
    let flash = size(".vector_table") + size(".text") + size(".rodata") + size(".data");
    let ram = size(".data") + size(".bss");
    assert!((100_000..1 << 20).contains(&flash), "flash {flash} B");
    assert!((64 << 10..256 << 10).contains(&ram), "RAM {ram} B");
    // probe-rs decodes the log from the ELF's defmt table, and the HAL's interrupt
    // vectors follow the core's 16.
    assert!(size(".defmt") > 0, "no defmt log strings");
    assert!(size(".vector_table") > 16 * 4, "no device interrupt vectors");
    // Both guests are embedded.
    let symbols: Vec<String> =
        elf.symbols().filter_map(|s| Some(format!("{:#}", rustc_demangle::demangle(s.name().ok()?)))).collect();
    for guest in ["add", "blinky"] {
        let path = format!("nrf52840_dk_firmware::guests::{guest}::");
        assert!(symbols.iter().any(|s| s.starts_with(&path)), "guest {guest} is not in the image");
    }
    // The add guest's update slots (the chip's NVMC through its HAL's NorFlash) take the
    // last 128 KiB: the image ends before them, and it verifies packages there.
    assert!(flash < 0xE_0000, "flash {flash} B runs into the update slots at 0xe0000");
    for code in ["ed25519_compact::", "wasm_embed::update::"] {
        assert!(symbols.iter().any(|s| s.contains(code)), "no {code} in the image");
    }
}

/// The update example in QEMU: what it prints, line by line, as it prints it; its UART
/// as a pseudo-terminal; QEMU's monitor, to cut the power.
struct UpdateDevice {
    qemu: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line so far, for failure messages.
    seen: std::cell::RefCell<Vec<String>>,
    pty: String,
    monitor: PathBuf,
    smpmgr: PathBuf,
}

impl UpdateDevice {
    /// The update example at `elf` on QEMU's `machine` with `cpu`.
    fn start(demo: &Path, elf: &Path, machine: &str, cpu: &str) -> UpdateDevice {
        use std::io::BufRead;
        let smpmgr = common::repo().join("target/tools/smpmgr/bin/smpmgr");
        assert!(
            smpmgr.is_file(),
            "{} is missing: `./x test` installs smpmgr there (or run ./x setup)",
            smpmgr.display()
        );
        let monitor = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("update-monitor.sock");
        let _ = std::fs::remove_file(&monitor);
        let mut qemu = Command::new(demo.join("qemu-run.sh"))
            .args([machine, cpu])
            .arg(elf)
            .env("QEMU_MONITOR", &monitor)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("qemu-run.sh starts");
        // QEMU names the pty on stdout or on stderr, depending on its monitor: both are
        // read, line by line, as they come.
        let (send, lines) = std::sync::mpsc::channel();
        let stderr = qemu.stderr.take().unwrap();
        let stdout = qemu.stdout.take().unwrap();
        let forward = |stream: Box<dyn std::io::Read + Send>, send: std::sync::mpsc::Sender<String>| {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        break;
                    }
                }
            })
        };
        forward(Box::new(stderr), send.clone());
        forward(Box::new(stdout), send);
        let first = lines.recv_timeout(std::time::Duration::from_secs(60)).expect("QEMU starts");
        let pty = first
            .strip_prefix("char device redirected to ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("QEMU did not name the UART's pty first: {first}"))
            .to_owned();
        UpdateDevice {
            qemu,
            lines,
            seen: Default::default(),
            pty,
            monitor,
            smpmgr,
        }
    }

    /// The next `n` lines the firmware prints, the time an upload took as N.
    fn next(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let line = self.lines.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_else(|_| {
                    panic!("the firmware printed no line for a minute after:\n{}", self.seen.borrow().join("\n"))
                });
                self.seen.borrow_mut().push(line.clone());
                match line.split_once(" bytes in ") {
                    Some((start, rest)) if rest.ends_with(" ms): pending") => format!("{start} bytes in N ms): pending"),
                    _ => line,
                }
            })
            .collect()
    }

    /// What the firmware printed so far, for a failure message.
    fn log(&self) -> String {
        let mut seen = self.seen.borrow_mut();
        seen.extend(self.lines.try_iter());
        seen.join("\n")
    }

    /// Runs `smpmgr --port <pty> <args>`: its exit code and all it printed. Each reply
    /// may take 10 s, not smpmgr's 2: QEMU shares the machine with other tests.
    fn smpmgr(&self, args: &[&str]) -> (Option<i32>, String) {
        let output = Command::new(&self.smpmgr)
            .env("COLUMNS", "400")
            .args(["--timeout", "10", "--port", &self.pty])
            .args(args)
            .output()
            .expect("smpmgr runs");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.code(), text)
    }

    /// Resets the board through QEMU's monitor, as a power cut would: the flash keeps
    /// what it holds, in whatever state the operation under way left it.
    fn cut_power(&self) {
        use std::io::{Read, Write};
        let mut monitor = std::os::unix::net::UnixStream::connect(&self.monitor).expect("QEMU's monitor listens");
        // The monitor takes a command once it has shown its prompt, and has run it when
        // it shows the next one.
        let prompt = |monitor: &mut std::os::unix::net::UnixStream| {
            let mut seen = Vec::new();
            let mut byte = [0];
            while !seen.ends_with(b"(qemu) ") {
                monitor.read_exact(&mut byte).expect("QEMU's monitor answers");
                seen.push(byte[0]);
            }
        };
        prompt(&mut monitor);
        monitor.write_all(b"system_reset\n").unwrap();
        prompt(&mut monitor);
    }
}

/// The update example built as ARMv6-M code (embassy's executor and time driver, guests
/// called blocking; no compare-and-swap, so wasm-embed's) on mps2-an385: `smpmgr`
/// upgrades it, a refusal comes back as its line, and it ends when asked.
#[test]
fn the_update_example_on_a_core_without_compare_and_swap_takes_a_guest_from_smpmgr() {
    let demo = common::repo().join("demo-firmware");
    let core = common::boards().into_iter().find(|b| b.name == "qemu-m0").unwrap();
    let args = ["build", "--release", "--features", "tasks", "--example", "update", "--target", &core.target_argument()];
    let built = cargo_in(&demo, &args);
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let release = demo.join("target").join(&core.target).join("release");
    let package = |name: &str| release.join(format!("wasm-embed-updates/add-{name}.update"));
    let device = UpdateDevice::start(&demo, &release.join("examples/update"), "mps2-an385", "cortex-m3");
    let development = "updates are accepted from the build's development key: a development build";
    assert_eq!(device.next(2), [development, "running add 0.1.0 from the image: add_with_extra(1, 2) = 45"]);
    let (code, text) = device.smpmgr(&["upgrade", "--format", "any", package("0.2.0").to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}\nthe firmware printed:\n{}", device.log());
    let len = std::fs::metadata(package("0.2.0")).unwrap().len();
    assert_eq!(
        device.next(7),
        [
            format!("receiving a package of {len} bytes for add over SMP"),
            format!("received add 0.2.0 ({len} bytes in N ms): pending"),
            "running add 0.2.0 from slot 0 on trial: add_with_extra(1, 2) = 145".into(),
            "add 0.2.0 ran 1000 ms on trial without a fault: confirmed".into(),
            "reset, as SMP asked".into(),
            development.into(),
            "running add 0.2.0 from slot 0: add_with_extra(1, 2) = 145".into(),
        ]
    );
    let (code, text) = device.smpmgr(&["image", "upload", "--format", "any", package("0.3.0-other-key").to_str().unwrap()]);
    assert_eq!(code, Some(1), "{text}");
    let line = device.next(2).pop().unwrap();
    assert!(line.starts_with("update for guest `add` refused: signed with a key this firmware does not know"), "{line}");
    let (code, text) = device.smpmgr(&["os", "echo", "exit"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(device.next(1)[0].starts_with("done: the lowest version accepted is 0.2.0, peak heap "));
    let mut qemu = device.qemu;
    assert!(qemu.wait().unwrap().success());
}

/// The image states `smpmgr image state-read` printed, one `ImageState(...)` each, as
/// their fields.
fn image_states(text: &str) -> Vec<String> {
    text.split("ImageState(")
        .skip(1)
        .map(|state| state[..state.rfind(')').unwrap()].split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// MCUmgr's image hash as smpmgr prints it: the package's SHA-512.
fn sha512_upper(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha512::digest(bytes).iter().map(|b| format!("{b:02X}")).collect()
}

#[test]
fn the_update_example_takes_guests_from_smpmgr_while_it_runs_refuses_bad_ones_and_reverts_untested_ones() {
    let demo = common::repo().join("demo-firmware");
    let built = cargo_in(&demo, &["build", "--release", "--features", "tasks", "--example", "update"]);
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let elf = demo.join("target/thumbv7em-none-eabihf/release/examples/update");
    let updates = demo.join("target/thumbv7em-none-eabihf/release/wasm-embed-updates");
    let package = |name: &str| updates.join(format!("add-{name}.update"));
    let device = UpdateDevice::start(&demo, &elf, "mps2-an386", "cortex-m4");
    let development = "updates are accepted from the build's development key: a development build";
    let receiving = |name: &str| {
        let len = std::fs::metadata(package(name)).unwrap().len();
        format!("receiving a package of {len} bytes for add over SMP")
    };
    let received = |name: &str| {
        let len = std::fs::metadata(package(name)).unwrap().len();
        let version = name.split('-').next().unwrap();
        format!("received add {version} ({len} bytes in N ms): pending")
    };
    assert_eq!(device.next(2), [development, "running add 0.1.0 from the image: add_with_extra(1, 2) = 45"]);
    let (code, text) = device.smpmgr(&["image", "state-read"]);
    assert_eq!(code, Some(0), "{text}\nthe firmware printed:\n{}", device.log());
    assert_eq!(
        image_states(&text),
        ["slot=0, version='0.1.0', image=0, hash=None, bootable=True, pending=None, confirmed=True, active=True, \
          permanent=None"]
    );

    // `upgrade`: the upload, then a reset. The guest task switches at its next call, on
    // trial, and confirms the guest after a second without a fault; the reset waits for
    // that, and finds the new guest confirmed.
    let (code, text) = device.smpmgr(&["upgrade", "--format", "any", package("0.2.0").to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}\nthe firmware printed:\n{}", device.log());
    assert_eq!(
        device.next(7),
        [
            receiving("0.2.0").as_str(),
            received("0.2.0").as_str(),
            "running add 0.2.0 from slot 0 on trial: add_with_extra(1, 2) = 145",
            "add 0.2.0 ran 1000 ms on trial without a fault: confirmed",
            "reset, as SMP asked",
            development,
            "running add 0.2.0 from slot 0: add_with_extra(1, 2) = 145",
        ]
    );

    // Every refusal comes back to smpmgr as its line; nothing changes.
    let own = std::fs::read(updates.join("add.update")).unwrap();
    std::fs::write(package("0.1.0-replayed"), &own).unwrap();
    for (name, line) in [
        (
            "0.3.0-flipped",
            "update for guest `add` refused: bad signature, the package was changed after it was signed; send the \
             package as `cargo wasm-embed sign` wrote it",
        ),
        (
            "0.3.0-other-key",
            "update for guest `add` refused: signed with a key this firmware does not know; sign it with the key \
             whose public half the firmware was built with (Builder::update_key)",
        ),
        (
            "0.1.0-replayed",
            "update for guest `add` refused: version 0.1.0 is older than 0.2.0, the lowest this device accepts \
             (rollback); send a package of version 0.2.0 or newer",
        ),
        (
            "0.4.0-other-fuel",
            "update for guest `add` refused: precompiled with fuel off, the firmware's engine with fuel on; build \
             the update with the firmware's build.rs settings",
        ),
        (
            "0.4.0-add-twice",
            "update for guest `add` refused: another interface: the package has export `add_twice` where the \
             firmware has export `add_with_extra`; an update must keep the imports and exports the firmware was \
             built for, or ship with a new firmware",
        ),
    ] {
        let (code, text) = device.smpmgr(&["image", "upload", "--format", "any", package(name).to_str().unwrap()]);
        assert_eq!(code, Some(1), "{name}: {text}");
        // Python quotes the reply's `rsn` with ' or, when it holds one, with ".
        let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let shown = flat(&text);
        assert!(
            shown.contains(&flat(&format!("rsn='{line}'"))) || shown.contains(&flat(&format!("rsn=\"{line}\""))),
            "{name}: {text}"
        );
        assert_eq!(device.next(2), [receiving(name).as_str(), line], "{name}");
    }

    // An upload without a reset: the next call runs it, on trial, and confirms it.
    let upload = |name: &str| {
        let (code, text) = device.smpmgr(&["image", "upload", "--format", "any", package(name).to_str().unwrap()]);
        assert_eq!(code, Some(0), "{name}: {text}\nthe firmware printed:\n{}", device.log());
    };
    upload("0.3.0");
    assert_eq!(
        device.next(4),
        [
            receiving("0.3.0").as_str(),
            received("0.3.0").as_str(),
            "running add 0.3.0 from slot 1 on trial: add_with_extra(1, 2) = 245",
            "add 0.3.0 ran 1000 ms on trial without a fault: confirmed",
        ]
    );
    let (code, text) = device.smpmgr(&["image", "state-read"]);
    assert_eq!(code, Some(0), "{text}");
    let hash = |name: &str| sha512_upper(&std::fs::read(package(name)).unwrap());
    assert_eq!(
        image_states(&text),
        [
            format!(
                "slot=0, version='0.3.0', image=0, hash=HashBytes('{}'), bootable=True, pending=False, \
                 confirmed=True, active=True, permanent=None",
                hash("0.3.0")
            ),
            format!(
                "slot=1, version='0.2.0', image=0, hash=HashBytes('{}'), bootable=True, pending=False, \
                 confirmed=True, active=False, permanent=None",
                hash("0.2.0")
            ),
        ]
    );

    // A guest that faults on trial is reverted at once.
    upload("0.4.0-traps");
    assert_eq!(
        device.next(5),
        [
            receiving("0.4.0-traps").as_str(),
            received("0.4.0-traps").as_str(),
            "add 0.4.0 failed on trial from slot 0: guest `add` trapped in `add_with_extra`: it panicked or reached \
             `unreachable`, a bug in the guest",
            "reverted: the previous guest runs again",
            "running add 0.3.0 from slot 1: add_with_extra(1, 2) = 245",
        ]
    );
    let (_, text) = device.smpmgr(&["image", "state-read"]);
    let states = image_states(&text);
    assert!(states[1].starts_with("slot=1, version='0.4.0'") && states[1].contains("bootable=False"), "{states:?}");

    // A trial that is not confirmed when the power goes reverts at the next start.
    upload("0.5.0");
    assert_eq!(
        device.next(3),
        [receiving("0.5.0").as_str(), received("0.5.0").as_str(), "running add 0.5.0 from slot 0 on trial: add_with_extra(1, 2) = 545"]
    );
    device.cut_power();
    assert_eq!(device.next(2), [development, "running add 0.3.0 from slot 1: add_with_extra(1, 2) = 245"]);

    // The power goes in the middle of an upload, at three moments: the last confirmed
    // guest runs after each, and the upload never completes.
    for delay in [0, 15, 30] {
        let smpmgr = device.smpmgr.clone();
        let pty = device.pty.clone();
        let file = package("0.5.0");
        let upload = std::thread::spawn(move || {
            Command::new(smpmgr)
                .args(["--port", &pty, "image", "upload", "--format", "any"])
                .arg(file)
                .output()
                .unwrap()
        });
        assert_eq!(device.next(1), [receiving("0.5.0")]);
        std::thread::sleep(std::time::Duration::from_millis(delay));
        device.cut_power();
        assert_eq!(
            device.next(2),
            [development, "running add 0.3.0 from slot 1: add_with_extra(1, 2) = 245"],
            "cut {delay} ms into the upload"
        );
        let output = upload.join().unwrap();
        assert!(!output.status.success(), "the upload cut {delay} ms in completed");
    }
    // The reverted 0.5.0 uploads again, and this time its trial runs its course.
    upload("0.5.0");
    assert_eq!(
        device.next(4),
        [
            receiving("0.5.0").as_str(),
            received("0.5.0").as_str(),
            "running add 0.5.0 from slot 0 on trial: add_with_extra(1, 2) = 545",
            "add 0.5.0 ran 1000 ms on trial without a fault: confirmed",
        ]
    );

    // The end, asked for with an echo: the firmware exits 0.
    let (code, text) = device.smpmgr(&["os", "echo", "exit"]);
    assert_eq!(code, Some(0), "{text}\nthe firmware printed:\n{}", device.log());
    let last = device.next(1).remove(0);
    assert!(last.starts_with("done: the lowest version accepted is 0.5.0, peak heap "), "{last}");
    let mut qemu = device.qemu;
    assert!(qemu.wait().unwrap().success());

    // The development key signed every package; its secret half is in no byte of the
    // image, nor of the emitted module.
    let key = std::fs::read_to_string(demo.join("target/thumbv7em-none-eabihf/wasm-embed/development-key/update.key")).unwrap();
    let secret = wasm_embed::update::read_secret_key(&key).unwrap();
    let hex = key.trim().rsplit(' ').next().unwrap().to_owned();
    let seed: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    let elf = std::fs::read(demo.join("target/thumbv7em-none-eabihf/release/examples/update")).unwrap();
    assert!(!elf.windows(32).any(|w| w == seed), "the secret key is in the image");
    assert!(!elf.windows(64).any(|w| w == hex.as_bytes()), "the secret key is in the image");
    // Its public half is, as the emitted UPDATE_KEY.
    assert!(elf.windows(32).any(|w| w == secret.public_key().bytes()), "the public key is not in the image");
}
