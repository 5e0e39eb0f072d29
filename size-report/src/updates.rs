//! The updates report: the add example with wasm-embed's `update` and `smp` features, the
//! verifier's speed and an upload through `smpmgr`.

use std::path::Path;
use std::process::Command;

use crate::cargo::{cargo, repo};
use crate::elf::static_ram;
use crate::format::{group, signed};
use crate::measure::{Measurement, Variant, measure_example};
use crate::speed;

/// The add example with updates and with SMP beside the add example, the verifier's
/// speed, and an upload's through `smpmgr`.
pub(crate) struct Updates {
    pub(crate) firmware: Measurement,
    pub(crate) smp: Measurement,
    /// The update example receiving a package of about 20 KiB from `smpmgr`: its bytes
    /// and the milliseconds from its first request to its last.
    pub(crate) upload_bytes: u64,
    pub(crate) upload_ms: u64,
    /// The add guest's update package and its `.cwasm`, bytes.
    pub(crate) package: u64,
    pub(crate) cwasm: u64,
    /// Verifying a package of about 20 KiB (examples/update_verify.rs): its size, and
    /// the instructions it took under `-icount shift=0`.
    pub(crate) verify_bytes: u64,
    pub(crate) verify_instructions: u64,
}

pub(crate) fn measure_updates(base: &Measurement) -> Result<Updates, String> {
    let firmware = measure_example(&Variant::original(), "add_updatable", &[])?;
    let smp = measure_example(&Variant::original(), "add_smp", &[])?;
    let (upload_bytes, upload_ms) = smp_upload()?;
    let add_cwasm = base.out_dir.join("add.cwasm");
    let package = base
        .out_dir
        .ancestors()
        .nth(3)
        .map(|profile| profile.join("wasm-embed-updates/add.update"))
        .ok_or("the build's output directory is not inside a target directory")?;
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).map_err(|e| format!("{}: {e}", path.display()));
    let built = cargo(&Variant::original().dir, &["build", "--release", "--example", "update_verify"])?;
    let executable = built.executables.last().ok_or("cargo reported no executable")?;
    let printed = speed::qemu(executable)?;
    // `verified a 20480-byte package in 5136360 instructions`
    let figures: Vec<u64> = printed
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [verify_bytes, verify_instructions] = figures[..] else {
        return Err(format!("examples/update_verify.rs printed no figures:\n{printed}"));
    };
    Ok(Updates {
        firmware,
        smp,
        upload_bytes,
        upload_ms,
        package: size(&package)?,
        cwasm: size(&add_cwasm)?,
        verify_bytes,
        verify_instructions,
    })
}

/// Runs the update example in QEMU, its UART a pty, and has `smpmgr` (smpmgr's defaults:
/// lines of 127 bytes, requests as large as the device's 512-byte buffer) upload the
/// 20 KiB package into it: the bytes, and the time the firmware measured from the
/// upload's first request to its last (QEMU runs it in real time, without `-icount`).
fn smp_upload() -> Result<(u64, u64), String> {
    use std::io::BufRead;
    let demo = repo().join("demo-firmware");
    let built = cargo(&demo, &["build", "--release", "--features", "tasks", "--example", "update"])?;
    let executable = built.executables.last().ok_or("cargo reported no executable")?;
    let package = executable
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("wasm-embed-updates/add-0.6.0-20k.update"))
        .ok_or("the example is not inside a target directory")?;
    let smpmgr = repo().join("target/tools/smpmgr/bin/smpmgr");
    let mut qemu = Command::new(demo.join("qemu-run.sh"))
        .args(["mps2-an386", "cortex-m4"])
        .arg(executable)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run qemu-run.sh: {e}"))?;
    let mut lines = std::io::BufReader::new(qemu.stdout.take().ok_or("no stdout")?).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let pty = first
        .strip_prefix("char device redirected to ")
        .and_then(|rest| rest.split(' ').next())
        .ok_or_else(|| format!("QEMU did not name the UART's pty: {first}"))?;
    for args in [&["image", "upload", "--format", "any", &package.to_string_lossy()][..], &["os", "echo", "exit"]] {
        let output = Command::new(&smpmgr)
            .args(["--timeout", "10", "--port", pty])
            .args(args)
            .output()
            .map_err(|e| format!("could not run {} (./x size installs it): {e}", smpmgr.display()))?;
        if !output.status.success() {
            let _ = qemu.kill();
            return Err(format!("smpmgr {} failed:\n{}", args.join(" "), String::from_utf8_lossy(&output.stdout)));
        }
    }
    let printed: Vec<String> = lines.map_while(Result::ok).collect();
    let _ = qemu.wait();
    // `received add 0.6.0 (20496 bytes in 2034 ms): pending`
    printed
        .iter()
        .find_map(|line| {
            let (bytes, ms) = line.strip_prefix("received add 0.6.0 (")?.strip_suffix(" ms): pending")?.split_once(" bytes in ")?;
            Some((bytes.parse().ok()?, ms.parse().ok()?))
        })
        .ok_or_else(|| format!("the update example printed no upload time:\n{}", printed.join("\n")))
}

pub(crate) fn print_updates(base: &Measurement, updates: &Updates) {
    let (m, smp) = (&updates.firmware, &updates.smp);
    println!("\n## Updates: wasm-embed's `update` and `smp` features (thumbv7em-none-eabihf)\n");
    println!("| firmware | flash | static RAM (.data + .bss) | peak heap |");
    println!("|---|---:|---:|---:|");
    let row = |label: &str, m: &Measurement| {
        println!("| {label} | {} | {} | {} |", group(m.flash), group(static_ram(m)), group(m.peak_heap));
    };
    let difference = |label: &str, m: &Measurement, from: &Measurement| {
        println!(
            "| {label} | {} | {} | {} |",
            signed(m.flash as i64 - from.flash as i64),
            signed(static_ram(m) as i64 - static_ram(from) as i64),
            signed(m.peak_heap as i64 - from.peak_heap as i64)
        );
    };
    row("add example", base);
    row("add example with updates: installs the add guest's package into a flash slot, runs it there, confirms it", m);
    difference("the `update` feature (verifier, slots, test-and-confirm, install; and the example's UART reader and flash stand-in)", m, base);
    row("the same, the package arriving as SMP image uploads", smp);
    difference("the `smp` feature (server, CBOR, serial framing, SHA-256 of uploads)", smp, m);
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let feature = m.flash as i64 - base.flash as i64;
    let smp_flash = smp.flash as i64 - m.flash as i64;
    let overhead = updates.package as i64 - updates.cwasm as i64;
    // One instruction a cycle at 64 MHz: an nRF52840's Cortex-M4 without wait states.
    let ms = updates.verify_instructions as f64 / 64_000.0;
    let rate = updates.upload_bytes as f64 / updates.upload_ms.max(1) as f64;
    println!(
        "\nFlash for `update`: {} B, target ≤ 24,576 B: {}. For `smp` on top: {} B, target ≤ 8,192 B: {}. \
         Verifying a {}-byte package: {} instructions (QEMU `-icount shift=0`), {ms:.1} ms at 64 MHz and one \
         instruction a cycle, target ≤ 100 ms: {}. The add guest's package: {} B beside its {} B .cwasm, {} B more, \
         target ≤ 256 B: {}. `smpmgr image upload` of a {}-byte package into the update example in QEMU (its \
         UART a pty, smpmgr's default line length, the device's 512-byte requests): {} ms from the first request \
         to the last, {rate:.1} KB/s.",
        signed(feature),
        met(feature <= 24 * 1024),
        signed(smp_flash),
        met(smp_flash <= 8 * 1024),
        group(updates.verify_bytes),
        group(updates.verify_instructions),
        met(ms <= 100.0),
        group(updates.package),
        group(updates.cwasm),
        overhead,
        met(overhead <= 256),
        group(updates.upload_bytes),
        group(updates.upload_ms),
    );
}
