//! What the subcommand's tests share: running it, and reading its one error line.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `cargo wasm-embed <args>` in `dir`, as cargo runs the subcommand.
pub fn cargo_wasm_embed(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cargo-wasm-embed"))
        .current_dir(dir)
        .arg("wasm-embed")
        .args(args)
        .output()
        .unwrap()
}

/// The one line an error prints, after checking that it is one line, exit code 1, and
/// that nothing was printed before it.
pub fn error_line(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr.trim_end().to_owned()
}

/// The one line a usage error prints, after checking that it is one line and exit code 2.
pub fn usage_error_line(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr.trim_end().to_owned()
}
