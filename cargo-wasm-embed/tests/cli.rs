//! `cargo wasm-embed` as a user runs it: keys made, a package the build wrote signed
//! and inspected, and every mistake one line on stderr with exit code 1 (2 for usage).

mod common;

use common::{cargo_wasm_embed, error_line, usage_error_line};
use std::path::{Path, PathBuf};

use wasm_embed::update::{PackageBuilder, Version, WASMTIME_VERSION, read_public_key};
use wasm_embed::{Settings, Target};

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An unsigned package of `cwasm` as the build writes it for the key in `public`.
fn unsigned_package(dir: &Path, public: &Path, cwasm: &[u8]) -> PathBuf {
    let key = read_public_key(&std::fs::read_to_string(public).unwrap()).unwrap();
    let bytes = PackageBuilder {
        name: "add",
        version: Version::new(1, 2, 3),
        settings: Settings::new(Target::Pulley32),
        component: false,
        interface: "import host.extra: () -> i32\nexport add_with_extra: (i32, i32) -> i32\n",
        cwasm,
    }
    .unsigned(&key)
    .unwrap();
    let path = dir.join("add.update.unsigned");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `cargo wasm-embed sign` with `answer` typed at its question.
fn sign_answering(dir: &Path, answer: &str, args: &[&str]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-wasm-embed"))
        .current_dir(dir)
        .arg("wasm-embed")
        .arg("sign")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn keys_are_made_and_a_package_is_shown_signed_once_confirmed_and_inspected() {
    let dir = scratch("sign");
    // Into a directory that does not exist yet, as the docs say it.
    let made = cargo_wasm_embed(&dir, &["keygen", "keys/release"]);
    assert!(made.status.success(), "{made:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("keys/release.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret key is its owner's alone");
    }
    let public = std::fs::read_to_string(dir.join("keys/release.pub")).unwrap();
    assert!(public.starts_with("wasm-embed public key "));

    let cwasm = std::fs::read(precompiled(&dir)).unwrap();
    unsigned_package(&dir, &dir.join("keys/release.pub"), &cwasm);
    // What it is about to sign, shown first; nothing signed without a yes.
    let shown = [
        "guest:     add".to_owned(),
        "version:   1.2.3".to_owned(),
        "interface:".to_owned(),
        "  import host.extra: () -> i32".to_owned(),
        "  export add_with_extra: (i32, i32) -> i32".to_owned(),
        format!("cwasm:     {} B, SHA-256 {}", cwasm.len(), hex(&sha256(&cwasm))),
        format!("key:       {}", public.trim().trim_start_matches("wasm-embed public key ")),
    ]
    .join("\n");
    for answer in ["n\n", "", "maybe\n"] {
        let declined = sign_answering(&dir, answer, &["--key", "keys/release.key", "add.update.unsigned"]);
        assert_eq!(declined.status.code(), Some(1), "{declined:?}");
        assert_eq!(String::from_utf8_lossy(&declined.stdout), format!("{shown}\n"));
        assert_eq!(
            String::from_utf8_lossy(&declined.stderr),
            "sign it? [y/N] error: add.update.unsigned not signed: not confirmed; answer y, or pass --yes\n"
        );
        assert!(!dir.join("add.update").exists(), "signed after {answer:?}");
    }
    let signed = sign_answering(&dir, "y\n", &["--key", "keys/release.key", "add.update.unsigned"]);
    assert!(signed.status.success(), "{signed:?}");
    assert_eq!(
        String::from_utf8_lossy(&signed.stdout),
        format!("{shown}\nsigned add.update.unsigned into add.update\n")
    );
    let again = cargo_wasm_embed(&dir, &["sign", "--yes", "--key", "keys/release.key", "add.update.unsigned", "-o", "b.update"]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(std::fs::read(dir.join("b.update")).unwrap(), std::fs::read(dir.join("add.update")).unwrap());

    let shown = cargo_wasm_embed(&dir, &["inspect", "add.update", "--key", "keys/release.pub"]);
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8(shown.stdout).unwrap();
    for line in [
        "guest:     add",
        "version:   1.2.3",
        "kind:      core module",
        &format!("wasmtime:  {WASMTIME_VERSION}"),
        "settings:  target pulley32, profile Size, fuel off, Pulley stack 4096 B",
        "  export add_with_extra: (i32, i32) -> i32",
        &format!("cwasm:     SHA-256 {}", hex(&sha256(&cwasm))),
        "signature: verifies with keys/release.pub",
    ] {
        assert!(text.lines().any(|l| l == line), "`{line}` missing from:\n{text}");
    }
    // The sizes by section of the .cwasm it carries.
    assert!(text.lines().any(|l| l == "sections:"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("  .text ")), "{text}");
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
    // The signing errors come before anything reads the .cwasm.
    unsigned_package(&dir, &dir.join("a.pub"), b"\x7fELF stands in for the .cwasm");
    assert_eq!(
        error_line(&cargo_wasm_embed(
            &dir,
            &["sign", "--key", "a.pub", "add.update.unsigned"]
        )),
        "error: a.pub: it holds a public key, which cannot sign; give the secret key file"
    );
    assert_eq!(
        error_line(&cargo_wasm_embed(
            &dir,
            &["sign", "--key", "b.key", "add.update.unsigned"]
        )),
        "error: add.update.unsigned cannot be signed: it was built for another key (Builder::update_key names \
         the public key it is for)"
    );
    assert!(
        cargo_wasm_embed(&dir, &["sign", "--yes", "--key", "a.key", "add.update.unsigned"])
            .status
            .success()
    );
    assert_eq!(
        error_line(&cargo_wasm_embed(
            &dir,
            &["sign", "--yes", "--key", "a.key", "add.update", "-o", "again.update"]
        )),
        "error: add.update cannot be signed: it is signed already"
    );
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["inspect", "add.update", "--key", "b.pub"])),
        "error: add.update: the signature does not verify with b.pub: it was signed with another key"
    );
    let line = error_line(&cargo_wasm_embed(&dir, &["inspect", "add.update"]));
    assert!(
        line.starts_with("error: add.update: the .cwasm it carries does not read as an ELF file ("),
        "{line}"
    );
    let mut tampered = std::fs::read(dir.join("add.update")).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    std::fs::write(dir.join("tampered.update"), tampered).unwrap();
    assert_eq!(
        error_line(&cargo_wasm_embed(
            &dir,
            &["inspect", "tampered.update", "--key", "a.pub"]
        )),
        "error: tampered.update: the signature does not verify with a.pub: it was changed after it was signed"
    );
    std::fs::write(dir.join("guest.cwasm"), b"\x7fELF").unwrap();
    let line = error_line(&cargo_wasm_embed(&dir, &["inspect", "guest.cwasm"]));
    assert!(
        line.starts_with("error: guest.cwasm is not a .cwasm: its ELF header does not read ("),
        "{line}"
    );
    std::fs::write(dir.join("notes.txt"), b"hello").unwrap();
    assert_eq!(
        error_line(&cargo_wasm_embed(&dir, &["inspect", "notes.txt"])),
        "error: notes.txt is neither a .cwasm nor a wasm-embed update package; give inspect a file the build wrote \
         (<guest>.cwasm in OUT_DIR, or <guest>.update)"
    );
    // A whole update package, cut short.
    let signed = std::fs::read(dir.join("add.update")).unwrap();
    std::fs::write(dir.join("short.update"), &signed[..signed.len() / 2]).unwrap();
    let line = error_line(&cargo_wasm_embed(&dir, &["inspect", "short.update"]));
    assert!(
        line.starts_with("error: short.update is not a signed wasm-embed update package: "),
        "{line}"
    );
    let line = usage_error_line(&cargo_wasm_embed(&dir, &["frobnicate"]));
    assert!(
        line.starts_with("error: unrecognized subcommand 'frobnicate'") && line.ends_with("; see --help"),
        "{line}"
    );
    for verb in ["keygen", "sign", "inspect"] {
        let help = cargo_wasm_embed(&dir, &[verb, "--help"]);
        assert!(help.status.success() && !help.stdout.is_empty(), "{verb} --help");
    }
}

/// A guest built by the library for a 32-bit device: its `.cwasm`.
fn precompiled(dir: &Path) -> PathBuf {
    let wasm = dir.join("sensor.wasm");
    std::fs::write(
        &wasm,
        wat::parse_str(
            r#"(module
              (import "env" "read" (func (param i32) (result i32)))
              (memory (export "memory") 1)
              (global $sp (mut i32) (i32.const 1024))
              (global (export "__heap_base") i32 (i32.const 1024))
              (func (export "sum") (param i32 i32) (result i32) local.get 0 call 0 local.get 1 i32.add)
              (func (export "mean") (param f32) (result f64) local.get 0 f64.promote_f32))"#,
        )
        .unwrap(),
    )
    .unwrap();
    let output = wasm_embed_build::Builder::new()
        .manifest_dir(&dir)
        .out_dir(dir.join("out"))
        .guest_target_dir(dir.join("guests"))
        .target(Target::Pulley32)
        .fuel(1_000)
        .guest(wasm.to_str().unwrap())
        .try_compile()
        .unwrap();
    output.guests[0].cwasm.clone()
}

/// A `.cwasm` for a 32-bit device, inspected on this 64-bit host, where Wasmtime itself
/// would refuse to load it.
#[test]
fn a_cwasm_for_a_32_bit_device_shows_its_wasmtime_settings_sections_imports_and_exports() {
    let dir = scratch("cwasm");
    let cwasm = &precompiled(&dir);
    let shown = cargo_wasm_embed(&dir, &["inspect", cwasm.to_str().unwrap()]);
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8(shown.stdout).unwrap();
    let size = std::fs::metadata(cwasm).unwrap().len();
    for line in [
        format!("file:      {}, {size} B", cwasm.display()),
        "kind:      core module".to_owned(),
        // Wasmtime records its major version only.
        format!("wasmtime:  {}", WASMTIME_VERSION.split('.').next().unwrap()),
        "target:    pulley32-unknown-unknown-elf".to_owned(),
        "  env.read: func(i32) -> i32".to_owned(),
        "  sum: func(i32, i32) -> i32".to_owned(),
        "  mean: func(f32) -> f64".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "`{line}` missing from:\n{text}");
    }
    assert!(text.lines().any(|l| l.starts_with("settings:  fuel on, ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("  memory: memory of ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("  .text ")), "{text}");
}
