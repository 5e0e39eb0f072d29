//! Stage 2: build a guest crate for `wasm32v1-none` with a nested `cargo build`.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::Message;

use crate::Error;
use crate::locate::GuestCrate;

pub const WASM_TARGET: &str = "wasm32v1-none";

/// How guests are compiled.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// The `cargo` to run: the one running the outer build, so the toolchain matches.
    pub cargo: PathBuf,
    /// The inner build's own target (and build) directory.
    pub target_dir: PathBuf,
    /// Bytes of shadow stack the linker reserves at the start of linear memory.
    pub stack_size: u32,
    /// Bytes of linear memory the guest starts with; a multiple of the 64 KiB page.
    pub initial_memory: u32,
    /// Keep the `name` section (function names) in the `.wasm`.
    pub keep_names: bool,
}

/// A guest's `.wasm` as rustc left it, and the source files that went into it.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub wasm: PathBuf,
    pub sources: Vec<PathBuf>,
}

/// Builds `guest` in release mode with the smallest settings the pinned nightly has.
pub fn compile(guest: &GuestCrate, options: &CompileOptions) -> Result<Compiled, Error> {
    let mut command = command(guest, options);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            program: options.cargo.clone(),
            source,
        })?;
    // Read stderr on its own thread so neither pipe can fill up and stall cargo.
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut wasm = None;
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    for message in Message::parse_stream(stdout).flatten() {
        if let Message::CompilerArtifact(artifact) = message
            && artifact.target.name.replace('-', "_") == guest.name
            && let Some(file) = artifact.filenames.iter().find(|f| f.extension() == Some("wasm"))
        {
            wasm = Some(PathBuf::from(file.clone()));
        }
    }
    let status = child.wait().map_err(|source| Error::Spawn {
        program: options.cargo.clone(),
        source,
    })?;
    let stderr = stderr.join().unwrap_or_default();
    let wasm = match wasm {
        Some(wasm) if status.success() => wasm,
        _ => {
            return Err(Error::Compile {
                guest: guest.name.clone(),
                messages: diagnostics(&stderr),
            });
        }
    };
    let dep_info = wasm.with_extension("d");
    let text = std::fs::read_to_string(&dep_info).map_err(crate::error::io(&dep_info))?;
    Ok(Compiled {
        sources: parse_dep_info(&text),
        wasm,
    })
}

fn command(guest: &GuestCrate, options: &CompileOptions) -> Command {
    let mut command = Command::new(&options.cargo);
    scrub_environment(&mut command);
    let profile = |key: &str, value: &str| format!("profile.release.{key}={value}");
    command
        .current_dir(&guest.workspace_root)
        .arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(&guest.manifest_path)
        .args(["--package", &guest.package, "--lib", "--target", WASM_TARGET])
        .arg("--target-dir")
        .arg(&options.target_dir)
        // Its own build directory too: one inherited from the outer build's
        // configuration would make the two builds wait on each other's lock.
        .arg("--config")
        .arg(format!("build.build-dir={}", toml_string(&options.target_dir)))
        .args(["--message-format", "json-render-diagnostics"])
        .args([
            "-Zbuild-std=core,alloc,panic_abort",
            "-Zbuild-std-features=optimize_for_size",
            "-Zpanic-immediate-abort",
        ]);
    for setting in [
        profile("opt-level", "\"z\""),
        profile("lto", "\"fat\""),
        profile("codegen-units", "1"),
        profile("debug", "false"),
        profile("strip", if options.keep_names { "\"debuginfo\"" } else { "\"symbols\"" }),
        profile("panic", "\"immediate-abort\""),
    ] {
        command.arg("--config").arg(setting);
    }
    let rustflags = [
        "-Zlocation-detail=none".to_owned(),
        format!("-Clink-arg=-zstack-size={}", options.stack_size),
        format!("-Clink-arg=--initial-memory={}", options.initial_memory),
    ];
    command.env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"));
    command
}

/// Removes what the outer build sets for its own target and would otherwise leak into
/// the guest's build: flags, wrappers, target selection, features, cfgs and profile.
fn scrub_environment(command: &mut Command) {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_BUILD_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
        // The outer build's jobserver cannot be inherited through std::process.
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "OPT_LEVEL",
        "PROFILE",
        "DEBUG",
        "NUM_JOBS",
        "CARGO_PRIMARY_PACKAGE",
    ];
    const PREFIXES: &[&str] = &["CARGO_FEATURE_", "CARGO_CFG_", "CARGO_PROFILE_", "CARGO_PKG_", "CARGO_MANIFEST_"];
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p)) {
            command.env_remove(key);
        }
    }
}

/// A path as a TOML string for `--config` (Rust's string escapes are TOML's for paths).
fn toml_string(path: &Path) -> String {
    format!("{:?}", path.to_string_lossy())
}

/// What cargo and rustc said, without the progress lines.
fn diagnostics(stderr: &str) -> String {
    const PROGRESS: &[&str] = &[
        "Compiling", "Checking", "Finished", "Updating", "Downloading", "Downloaded", "Locking",
        "Adding", "Blocking", "Fresh", "Building",
    ];
    stderr
        .lines()
        .filter(|line| {
            let word = line.trim_start().split(' ').next().unwrap_or("");
            !(line.starts_with(' ') && PROGRESS.contains(&word))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The prerequisites of the first rule of a Makefile-style dep-info file: the files
/// whose change changes the artifact.
pub fn parse_dep_info(text: &str) -> Vec<PathBuf> {
    let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else {
        return Vec::new();
    };
    // Paths are separated by spaces; a space inside a path is written `\ `.
    let Some((_, prerequisites)) = split_rule(line) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut chars = prerequisites.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' => {
                if !current.is_empty() {
                    paths.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        paths.push(PathBuf::from(current));
    }
    paths
}

/// Splits `target: prerequisites` at the first colon that is followed by a space (a
/// Windows drive letter's colon is not).
fn split_rule(line: &str) -> Option<(&str, &str)> {
    let at = line.find(": ")?;
    Some((&line[..at], &line[at + 2..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_keeps_escaped_spaces_and_ignores_later_rules() {
        let text = "/t/add.wasm: /src/lib.rs /my\\ dir/mod.rs\n\n/src/lib.rs:\n";
        assert_eq!(
            parse_dep_info(text),
            [PathBuf::from("/src/lib.rs"), PathBuf::from("/my dir/mod.rs")]
        );
    }

    #[test]
    fn diagnostics_drop_progress_but_keep_errors() {
        let stderr = "   Compiling add v0.1.0 (/g)\nerror[E0425]: cannot find value `x`\n  --> src/lib.rs:3:5\n";
        assert_eq!(
            diagnostics(stderr),
            "error[E0425]: cannot find value `x`\n  --> src/lib.rs:3:5"
        );
    }
}
