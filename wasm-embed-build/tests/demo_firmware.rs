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

    // The second core: the same firmware and guests on a Cortex-M3 (no FPU, no DSP
    // instructions), built for thumbv7m-none-eabi and run on QEMU's mps2-an385, print the
    // very same lines, heap figures included.
    let output = cargo_in(&demo, &["run", "--release", "--target", "thumbv7m-none-eabi"]);
    let m3 = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "Cortex-M3 firmware failed: {m3}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(m3, stdout, "the Cortex-M3 printed other lines than the Cortex-M4");

    // RISC-V: the same firmware and guests built for riscv32imac-unknown-none-elf and run
    // on QEMU's `virt` board print the very same lines too. Nothing in the runtime names
    // the core: the pipeline picks pulley32 from the target's pointer width.
    let output = cargo_in(&demo, &["run", "--release", "--target", "riscv32imac-unknown-none-elf"]);
    let riscv = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "RISC-V firmware failed: {riscv}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(riscv, stdout, "the RISC-V core printed other lines than the Cortex-M4");

    // The add example, the firmware the size report measures.
    let output = cargo_in(&demo, &["run", "--release", "--example", "add"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "add_with_extra(1, 2) = 45", "{stdout}");
    assert!(lines[1].starts_with("peak heap: ") && lines.len() == 2, "{stdout}");

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

/// Guests under embassy on both cores: a guest computing while a ticker runs, two guests
/// in two tasks, an import awaiting a timer and a channel; each yielding result equals
/// the blocking call's, and the guest that loops forever still ends at its fuel bound.
/// (The lateness figures are `./x size`'s to report, not this test's to judge.)
#[test]
fn guests_yield_under_embassy_on_both_cores_and_compute_what_blocking_calls_do() {
    let demo = common::repo().join("demo-firmware");
    for target in ["thumbv7em-none-eabihf", "riscv32imac-unknown-none-elf"] {
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
        assert!(lines[3].starts_with("one guest: worst tick lateness "), "{target}: {stdout}");
        assert_eq!(lines[4], "add_with_extra(1, 2) = 45, its import awaited a timer and a channel", "{target}");
        assert_eq!(lines[5], "two guests: crc32 = 0x5d3de8ed in 372 polls (equal to the blocking call's)", "{target}");
        assert_eq!(
            lines[6],
            "two guests: spin: guest `spin` ran out of fuel in `spin`: it probably loops forever; \
             fix the guest, or give calls more fuel (Builder::fuel in build.rs)",
            "{target}"
        );
        assert!(lines[7].starts_with("two guests: worst tick lateness "), "{target}: {stdout}");
        assert!(lines[8].starts_with("peak heap: "), "{target}: {stdout}");
    }

    let output = cargo_in(&demo, &["run", "--release", "--features", "embassy", "--example", "add_async"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "add_with_extra(1, 2) = 45", "{stdout}");
    assert!(lines[1].starts_with("fiber stack: ") && lines[1].ends_with(" of 4096 bytes used"), "{stdout}");
}

/// Floats across yields on the Cortex-M4F: the guest's f32 and f64 work gives the blocking
/// result across 67 yields; the caller's s16-s31 survive every poll through the handle;
/// and the reproduction: a fiber that holds other values in s16-s31 when it suspends
/// hands them to the caller through Wasmtime's call_async alone (its Arm switch saves
/// r4-r11 and lr only), and not through the handle.
#[test]
fn floats_survive_guest_yields_on_the_cortex_m4f_and_the_switchs_loss_is_reproduced() {
    let demo = common::repo().join("demo-firmware");
    let output = cargo_in(&demo, &["run", "--release", "--features", "embassy", "--example", "float_yields"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..7],
        [
            "blocking: floats(5000) = 9094513829",
            "through the handle: floats(5000) = 9094513829 after 68 polls (equal)",
            "through the handle: 0 of 68 polls lost the caller's s16-s31",
            "through Wasmtime's call_async alone: 67 polls",
            "through Wasmtime's call_async alone: 0 of the polls lost the caller's s16-s31",
            "fiber keeping floats, Wasmtime's call_async alone: 45 after 2 polls, 3 of s16-s31 lost",
            "fiber keeping floats, through the handle: 45 after 3 polls, 0 of s16-s31 lost",
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
    let text = std::fs::read_to_string(&main).unwrap().replace(
        "    heap::init();\n",
        "    heap::init();\n    \
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
    let text = std::fs::read_to_string(&main).unwrap().replace(
        "    heap::init();\n",
        "    heap::init();\n    \
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

#[test]
fn the_update_example_installs_over_the_uart_refuses_bad_packages_and_survives_power_cuts() {
    let demo = common::repo().join("demo-firmware");
    let output = cargo_in(&demo, &["run", "--release", "--example", "update"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let still = "still running add 0.2.0 from slot 0: add_with_extra(1, 2) = 145";
    let restarted = "start: running add 0.2.0 from slot 0: add_with_extra(1, 2) = 145";
    let mut expected = vec![
        "start: running add 0.1.0 from the image: add_with_extra(1, 2) = 45".to_owned(),
        "received the add guest 0.2.0 (2776 bytes)".to_owned(),
        "installed add 0.2.0: running add 0.2.0 from slot 0: add_with_extra(1, 2) = 145".to_owned(),
        "received 0.3.0 with one flipped byte (2776 bytes)".to_owned(),
        "update for guest `add` refused: bad signature, the package was changed after it was signed; send the \
         package as `cargo wasm-embed sign` wrote it"
            .to_owned(),
        still.to_owned(),
        "received 0.3.0 signed with another key (2776 bytes)".to_owned(),
        "update for guest `add` refused: signed with a key this firmware does not know; sign it with the key whose \
         public half the firmware was built with (Builder::update_key)"
            .to_owned(),
        still.to_owned(),
        "received the built-in 0.1.0 again (a replay) (2784 bytes)".to_owned(),
        "update for guest `add` refused: version 0.1.0 is older than 0.2.0, the lowest this device accepts \
         (rollback); send a package of version 0.2.0 or newer"
            .to_owned(),
        still.to_owned(),
        "received 0.4.0 precompiled with other fuel settings (2576 bytes)".to_owned(),
        "update for guest `add` refused: precompiled with fuel off, the firmware's engine with fuel on; build the \
         update with the firmware's build.rs settings"
            .to_owned(),
        still.to_owned(),
        "received 0.4.0 whose export is add_twice (2752 bytes)".to_owned(),
        "update for guest `add` refused: another interface: the package has export `add_twice` where the firmware \
         has export `add_with_extra`; an update must keep the imports and exports the firmware was built for, or \
         ship with a new firmware"
            .to_owned(),
        still.to_owned(),
    ];
    // Slot 1 starts at 0x8000: its pages are erased from there, 4 KiB each, then the
    // package is written 64 bytes at a time after the slot's 16-byte marker.
    for (cut, what) in [
        (1, "erase at 0x9000"),
        (5, "erase at 0xd000"),
        (9, "write at 0x8050"),
        (20, "write at 0x8310"),
        (40, "write at 0x8810"),
    ] {
        expected.push(format!("received 0.3.0, the power cut after {cut} flash operations (2776 bytes)"));
        expected.push(format!("power cut during the {what}"));
        expected.push(restarted.to_owned());
    }
    expected.extend(
        [
            "received 0.3.0, the power cut while its marker is written (2776 bytes)",
            "power cut during the marker's write at 0x8000",
            restarted,
            "received the add guest 0.3.0 (2776 bytes)",
            "installed add 0.3.0: running add 0.3.0 from slot 1: add_with_extra(1, 2) = 245",
            "done: the lowest version accepted is 0.3.0",
        ]
        .map(str::to_owned),
    );
    // Package sizes move with Wasmtime and the guest: compare them as N.
    let sizes = |line: &str| match line.rsplit_once(" (") {
        Some((text, rest)) if rest.ends_with(" bytes)") => format!("{text} (N bytes)"),
        _ => line.to_owned(),
    };
    let lines: Vec<String> = stdout.lines().map(sizes).collect();
    let expected: Vec<String> = expected.iter().map(|l| sizes(l)).collect();
    assert_eq!(lines, expected, "{stdout}");

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
