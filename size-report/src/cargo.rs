//! The cargo driver: builds and runs demo-firmware, its variants and the boards' firmware
//! in demo-firmware's target directory, and reads what cargo reported.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// What one `cargo build` or `cargo run` in demo-firmware's target directory reported.
pub(crate) struct Cargo {
    /// The executables it built, in order.
    pub(crate) executables: Vec<PathBuf>,
    /// The output directory of the package's own build script (its guests' files).
    pub(crate) out_dir: Option<PathBuf>,
    /// What the program printed, for `cargo run`.
    pub(crate) program: String,
}

/// Runs `cargo args` in `dir`, sharing demo-firmware's target directory so the build
/// script's Wasmtime and binaryen are compiled once for every firmware and variant.
pub(crate) fn cargo(dir: &Path, args: &[&str]) -> Result<Cargo, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(dir)
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .env("CARGO_TARGET_DIR", repo().join("demo-firmware/target"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    let mut run = Cargo { executables: Vec::new(), out_dir: None, program: String::new() };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(message) if message.get("reason").is_some() => {
                if let Some(path) = message["executable"].as_str() {
                    run.executables.push(PathBuf::from(path));
                }
                if message["reason"] == "build-script-executed"
                    && message["package_id"].as_str().is_some_and(|id| id.contains(&*dir.to_string_lossy()))
                {
                    run.out_dir = message["out_dir"].as_str().map(PathBuf::from);
                }
            }
            _ => {
                run.program.push_str(line);
                run.program.push('\n');
            }
        }
    }
    if !output.status.success() {
        return Err(format!("`cargo {}` in {} failed ({}):\n{}", args.join(" "), dir.display(), output.status, run.program));
    }
    Ok(run)
}
