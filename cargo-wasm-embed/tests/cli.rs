//! `cargo wasm-embed` as a user runs it: keys made, a package the build wrote signed
//! and inspected, and every mistake one line on stderr with exit code 1 (2 for usage).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wasm_embed::update::{PackageBuilder, Version, read_public_key};
use wasm_embed::{Settings, Target};

fn cargo_wasm_embed(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cargo-wasm-embed"))
        .current_dir(dir)
        .arg("wasm-embed")
        .args(args)
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The one line an error prints, after checking that it is one line and exit code 1.
fn error_line(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr.trim_end().to_owned()
}

/// An unsigned package as the build writes it for the key in `public`.
fn unsigned_package(dir: &Path, public: &Path) -> PathBuf {
    let key = read_public_key(&std::fs::read_to_string(public).unwrap()).unwrap();
    let bytes = PackageBuilder {
        name: "add",
        version: Version::new(1, 2, 3),
        settings: Settings::new(Target::Pulley32),
        component: false,
        interface: "import host.extra: () -> i32\nexport add_with_extra: (i32, i32) -> i32\n",
        cwasm: b"\x7fELF stands in for the .cwasm",
    }
    .unsigned(&key)
    .unwrap();
    let path = dir.join("add.update.unsigned");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn keys_are_made_and_a_package_is_signed_and_inspected() {
    let dir = scratch("sign");
    let made = cargo_wasm_embed(&dir, &["keygen", "release"]);
    assert!(made.status.success(), "{made:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("release.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret key is its owner's alone");
    }
    assert!(std::fs::read_to_string(dir.join("release.pub")).unwrap().starts_with("wasm-embed public key "));

    unsigned_package(&dir, &dir.join("release.pub"));
    let signed = cargo_wasm_embed(&dir, &["sign", "--key", "release.key", "add.update.unsigned"]);
    assert!(signed.status.success(), "{signed:?}");
    assert_eq!(String::from_utf8_lossy(&signed.stdout), "signed add.update.unsigned into add.update\n");

    let shown = cargo_wasm_embed(&dir, &["inspect", "add.update", "--key", "release.pub"]);
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8(shown.stdout).unwrap();
    for line in [
        "guest:     add",
        "version:   1.2.3",
        "kind:      core module",
        "wasmtime:  48.0.8",
        "settings:  target pulley32, profile Size, fuel off, Pulley stack 4096 B",
        "  export add_with_extra: (i32, i32) -> i32",
        "signature: verifies with release.pub",
    ] {
        assert!(text.lines().any(|l| l == line), "`{line}` missing from:\n{text}");
    }
}

#[test]
fn every_mistake_is_one_line_and_exit_code_1() {
    let dir = scratch("mistakes");
    assert!(cargo_wasm_embed(&dir, &["keygen", "a"]).status.success());
    assert!(cargo_wasm_embed(&dir, &["keygen", "b"]).status.success());
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["keygen", "a"])),
        "error: a.key exists already; choose another name, or move it away first"
    );
    unsigned_package(&dir, &dir.join("a.pub"));
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["sign", "--key", "a.pub", "add.update.unsigned"])),
        "error: a.pub: it holds a public key, which cannot sign; give the secret key file"
    );
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["sign", "--key", "b.key", "add.update.unsigned"])),
        "error: add.update.unsigned cannot be signed: it was built for another key (Builder::update_key names \
         the public key it is for)"
    );
    assert!(cargo_wasm_embed(&dir, &["sign", "--key", "a.key", "add.update.unsigned"]).status.success());
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["sign", "--key", "a.key", "add.update", "-o", "again.update"])),
        "error: add.update cannot be signed: it is signed already"
    );
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["inspect", "add.update", "--key", "b.pub"])),
        "error: add.update: the signature does not verify with b.pub: it was signed with another key"
    );
    let mut tampered = std::fs::read(dir.join("add.update")).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    std::fs::write(dir.join("tampered.update"), tampered).unwrap();
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["inspect", "tampered.update", "--key", "a.pub"])),
        "error: tampered.update: the signature does not verify with a.pub: it was changed after it was signed"
    );
    std::fs::write(dir.join("guest.cwasm"), b"\x7fELF").unwrap();
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["inspect", "guest.cwasm"])),
        "error: guest.cwasm is not a signed wasm-embed update package: not a whole wasm-embed update package"
    );
    assert_eq!(cargo_wasm_embed(&dir, &["frobnicate"]).status.code(), Some(2));
    for verb in ["keygen", "sign", "inspect"] {
        let help = cargo_wasm_embed(&dir, &[verb, "--help"]);
        assert!(help.status.success() && !help.stdout.is_empty(), "{verb} --help");
    }
}
