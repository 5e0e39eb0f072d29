//! End to end: demo-firmware built for thumbv7em-none-eabihf, with guests/add built by
//! its build script, run in QEMU's Cortex-M4 board; its output and exit code checked.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[test]
fn demo_firmware_prints_the_guests_result_in_qemu_and_exits_0() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(common::repo().join("demo-firmware"))
        .args(["run", "--release"])
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "firmware failed: {}\n{stdout}\n{stderr}", output.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], "add_with_extra(1, 2) = 45");
    let peak: usize = lines[1]
        .strip_prefix("peak heap: ")
        .and_then(|rest| rest.strip_suffix(" bytes"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("second line is the peak heap: {stdout}"));
    // With 1-byte pages the guest's linear memory no longer costs a 64 KiB page; what
    // remains is Pulley's stack and Wasmtime's bookkeeping.
    assert!((1024..64 * 1024).contains(&peak), "{peak}");

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
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(common::repo().join("demo-firmware"))
        .args(["build", "--release", "--verbose"])
        .output()
        .expect("cargo runs");
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
    for file in ["memory.x", "Cargo.lock", "src/main.rs", "src/heap.rs", ".cargo/config.toml"] {
        std::fs::create_dir_all(copy.join(file).parent().unwrap()).unwrap();
        std::fs::copy(source.join(file), copy.join(file)).unwrap();
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
    let output = cargo_in(&copy, &["build", "--release"]);
    assert!(!output.status.success(), "the build must fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn firmware_with_the_debug_profile_runs_the_guest_in_qemu() {
    let copy = firmware_copy(
        "debug-profile",
        |manifest| manifest,
        |build_rs| {
            let one_line = "wasm_embed_build::Builder::new().profile(wasm_embed_build::Profile::Debug).run();";
            let edited = build_rs.replace("wasm_embed_build::build();", one_line);
            assert_ne!(edited, build_rs);
            edited
        },
    );
    let output = cargo_in(&copy, &["run", "--release"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.lines().next(), Some("add_with_extra(1, 2) = 45"), "{stdout}");
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
        .find(|l| l.starts_with("error: not-cdylib-guest@0.1.0: guest `not-cdylib` is not a cdylib"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("add `[lib] crate-type = [\"cdylib\"]` to"), "{line}");
}
