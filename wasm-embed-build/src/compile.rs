//! The `compile` stage: build a guest crate for `wasm32v1-none` with a nested `cargo build`, or read
//! a prebuilt `.wasm`; either way, check the wasm is what the firmware's engine runs.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::Message;
use wasm_embed::Settings;

use crate::Error;
use crate::locate::GuestCrate;

pub const WASM_TARGET: &str = "wasm32v1-none";

/// The Rust toolchain that builds guests, checked for what the build needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toolchain {
    pub cargo: PathBuf,
    pub rustc: PathBuf,
    /// Its name for `rustup` commands in messages (the sysroot's directory name).
    pub name: String,
    /// Whether it accepts `-Z` flags, and so can build `core` for the guest with
    /// build-std and immediate-abort panics. A stable one links the prebuilt library.
    pub nightly: bool,
}

impl Toolchain {
    /// The toolchain the firmware is being built with: Cargo's own `cargo` and `rustc`.
    pub fn current() -> Result<Toolchain, Error> {
        let var = |name: &str, default: &str| crate::cargo::var_os(name).map_or_else(|| default.into(), PathBuf::from);
        Toolchain::find(var("CARGO", "cargo"), var("RUSTC", "rustc"))
    }

    /// A toolchain installed with rustup, such as `nightly-2026-05-20`.
    pub fn rustup(name: &str) -> Result<Toolchain, Error> {
        let which = |tool: &str| -> Result<PathBuf, Error> {
            let output = Command::new("rustup")
                .args(["which", tool, "--toolchain", name])
                // Name the missing toolchain rather than fetch it in the middle of a build.
                .env("RUSTUP_AUTO_INSTALL", "0")
                .output()
                .map_err(|source| Error::Spawn { program: "rustup".into(), source })?;
            if !output.status.success() {
                return Err(Error::ToolchainMissing {
                    toolchain: name.to_owned(),
                    message: String::from_utf8_lossy(&output.stderr).trim().replace('\n', " "),
                });
            }
            Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        };
        Toolchain::find(which("cargo")?, which("rustc")?)
    }

    /// Asks `rustc` what it is, and checks that it has what building a guest needs:
    /// `rust-src` on nightly, the prebuilt `wasm32v1-none` library on stable.
    pub fn find(cargo: PathBuf, rustc: PathBuf) -> Result<Toolchain, Error> {
        let ask = |args: &[&str]| -> Result<String, Error> {
            let output = Command::new(&rustc)
                .args(args)
                .output()
                .map_err(|source| Error::Spawn { program: rustc.clone(), source })?;
            if !output.status.success() {
                // Its own complaint, on one line, in place of the I/O error.
                let said = String::from_utf8_lossy(&output.stderr).trim().replace('\n', " ");
                let source = std::io::Error::other(format!("`{}` failed: {said}", args.join(" ")));
                return Err(Error::Spawn { program: rustc.clone(), source });
            }
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        };
        let version = ask(&["-vV"])?;
        let sysroot = PathBuf::from(ask(&["--print", "sysroot"])?);
        let release = version.lines().find_map(|l| l.strip_prefix("release: ")).unwrap_or_default();
        let toolchain = Toolchain {
            name: sysroot.file_name().map_or_else(|| release.to_owned(), |n| n.to_string_lossy().into_owned()),
            nightly: release.contains("nightly") || release.contains("dev"),
            cargo,
            rustc,
        };
        let rustlib = sysroot.join("lib/rustlib");
        if toolchain.nightly && !rustlib.join("src/rust/library/core/Cargo.toml").is_file() {
            return Err(Error::ComponentMissing {
                what: "the `rust-src` component, which build-std compiles `core` for the guest from".into(),
                fix: format!("rustup component add rust-src --toolchain {}", toolchain.name),
            });
        }
        if !toolchain.nightly && !rustlib.join(WASM_TARGET).is_dir() {
            return Err(Error::ComponentMissing {
                what: format!("the prebuilt `{WASM_TARGET}` standard library"),
                fix: format!("rustup target add {WASM_TARGET} --toolchain {}", toolchain.name),
            });
        }
        Ok(toolchain)
    }
}

/// How guests are compiled.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// The toolchain to build with (by default the one building the firmware).
    pub toolchain: Toolchain,
    /// `--offline`, `--locked` or `--frozen`, as the outer build was given them.
    pub cargo_flags: Vec<String>,
    /// The inner build's own target (and build) directory.
    pub target_dir: PathBuf,
    /// Bytes of shadow stack the linker reserves at the start of linear memory.
    pub stack_size: u32,
    /// Bytes of linear memory the guest starts with; a multiple of the 64 KiB page.
    pub initial_memory: u32,
    /// Keep the `name` section (function names) in the `.wasm`.
    pub keep_names: bool,
}

/// A guest's wasm as its toolchain left it, and the files it was made from.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub wasm: Vec<u8>,
    pub sources: Vec<PathBuf>,
}

/// Reads a prebuilt guest's wasm, and checks it as the wasm of a built guest is.
pub fn read_prebuilt(guest: &str, path: &Path, settings: &Settings) -> Result<Vec<u8>, Error> {
    let wasm = std::fs::read(path).map_err(crate::error::io(path))?;
    if !wasm.starts_with(b"\0asm") {
        return Err(Error::NotWasm {
            guest: guest.to_owned(),
            path: path.to_owned(),
        });
    }
    check(guest, &wasm, settings)?;
    Ok(wasm)
}

/// Refuses wasm the firmware's engine would refuse, before any stage rewrites it: first
/// wasm that is not valid with every feature on (a broken module), then wasm that uses
/// a feature the engine does not enable, named by Wasmtime's own validator.
pub fn check(guest: &str, wasm: &[u8], settings: &Settings) -> Result<(), Error> {
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(wasm)
        .map_err(|e| Error::Parse {
            guest: guest.to_owned(),
            message: e.to_string(),
        })?;
    let unsupported = |message: String| Error::UnsupportedFeature {
        guest: guest.to_owned(),
        message,
    };
    wasm_embed::validate(settings, wasm).map_err(|e| unsupported(format!("{e:#}")))?;
    // The engine runs custom page sizes, but the build's own wasm tools cannot read them
    // (binaryen and walrus refuse such a memory), and the page-size stage sets them.
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let Ok(wasmparser::Payload::MemorySection(memories)) = payload {
            if memories.into_iter().flatten().any(|memory| memory.page_size_log2.is_some()) {
                return Err(unsupported(
                    "custom page sizes (its memory sets a page size, which the build's wasm tools cannot \
                     read: give it 64 KiB pages and the build sizes its memory itself)"
                        .to_owned(),
                ));
            }
        }
    }
    Ok(())
}

/// Builds guests of one workspace in release mode with the smallest settings the
/// toolchain has, in one nested cargo, so their common dependencies (`core` among them)
/// are built once and cargo schedules them together on the shared jobserver.
pub fn compile(guests: &[GuestCrate], options: &CompileOptions) -> Result<Vec<Compiled>, Error> {
    let Some(first) = guests.first() else {
        return Ok(Vec::new());
    };
    assert!(
        guests.iter().all(|g| g.workspace_root == first.workspace_root),
        "compile takes the guests of one workspace"
    );
    let names: Vec<&str> = guests.iter().map(|g| g.name.as_str()).collect();
    let mut command = command(guests, options);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            program: options.toolchain.cargo.clone(),
            source,
        })?;
    // Read stderr on its own thread so neither pipe can fill up and stall cargo.
    let stderr = BufReader::new(child.stderr.take().expect("stderr is piped"));
    let label = names.join("`, `");
    let stderr = std::thread::spawn(move || {
        // Cargo shows a build script's output only after it ends, so the progress of a
        // long first build (all of `core`) goes to the terminal itself, if there is one.
        let mut terminal = progress_terminal();
        let mut text = String::new();
        for line in stderr.lines().map_while(Result::ok) {
            if let (Some(terminal), Some(progress)) = (terminal.as_mut(), progress_line(&label, &line)) {
                let _ = writeln!(terminal, "{progress}");
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut wasm: Vec<Option<PathBuf>> = vec![None; guests.len()];
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    for message in Message::parse_stream(stdout).flatten() {
        if let Message::CompilerArtifact(artifact) = message
            && let Some(index) = names.iter().position(|n| artifact.target.name.replace('-', "_") == *n)
            && let Some(file) = artifact.filenames.iter().find(|f| f.extension() == Some("wasm"))
        {
            wasm[index] = Some(PathBuf::from(file.clone()));
        }
    }
    let status = child.wait().map_err(|source| Error::Spawn {
        program: options.toolchain.cargo.clone(),
        source,
    })?;
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() || wasm.iter().any(Option::is_none) {
        // Cargo stops at the first failure, so the guests left without a .wasm are the
        // one that failed and those it stopped.
        let unbuilt: Vec<&str> = names.iter().zip(&wasm).filter(|(_, w)| w.is_none()).map(|(n, _)| *n).collect();
        let guest = if unbuilt.is_empty() { names.join("`, `") } else { unbuilt.join("`, `") };
        return Err(Error::Compile {
            guest,
            messages: diagnostics(&stderr),
        });
    }
    wasm.into_iter()
        .flatten()
        .map(|wasm| {
            let dep_info = wasm.with_extension("d");
            let text = std::fs::read_to_string(&dep_info).map_err(crate::error::io(&dep_info))?;
            Ok(Compiled {
                sources: parse_dep_info(&text),
                wasm: std::fs::read(&wasm).map_err(crate::error::io(&wasm))?,
            })
        })
        .collect()
}

fn command(guests: &[GuestCrate], options: &CompileOptions) -> Command {
    let guest = &guests[0];
    let toolchain = &options.toolchain;
    let mut command = Command::new(&toolchain.cargo);
    scrub_environment(&mut command);
    command.env("RUSTC", &toolchain.rustc);
    let profile = |key: &str, value: &str| format!("profile.release.{key}={value}");
    command
        .current_dir(&guest.workspace_root)
        .arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(&guest.manifest_path)
        .args(guests.iter().flat_map(|g| ["--package", g.package.as_str()]))
        .args(["--lib", "--target", WASM_TARGET])
        .arg("--target-dir")
        .arg(&options.target_dir)
        // Its own build directory too: one inherited from the outer build's
        // configuration would make the two builds wait on each other's lock.
        .arg("--config")
        .arg(format!("build.build-dir={}", toml_string(&options.target_dir)))
        .args(["--message-format", "json-render-diagnostics"])
        .args(&options.cargo_flags);
    if toolchain.nightly {
        command.args([
            "-Zbuild-std=core,alloc,panic_abort",
            "-Zbuild-std-features=optimize_for_size",
            "-Zpanic-immediate-abort",
        ]);
    }
    let panic = if toolchain.nightly { "\"immediate-abort\"" } else { "\"abort\"" };
    for setting in [
        profile("opt-level", "\"z\""),
        profile("lto", "\"fat\""),
        profile("codegen-units", "1"),
        profile("debug", "false"),
        profile("strip", if options.keep_names { "\"debuginfo\"" } else { "\"symbols\"" }),
        profile("panic", panic),
    ] {
        command.arg("--config").arg(setting);
    }
    let mut rustflags = vec![
        format!("-Clink-arg=-zstack-size={}", options.stack_size),
        format!("-Clink-arg=--initial-memory={}", options.initial_memory),
        // The end of stack, data and zeroed statics, for the `pages` stage.
        format!("-Clink-arg=--export={}", crate::pages::HEAP_BASE),
    ];
    if toolchain.nightly {
        rustflags.push("-Zlocation-detail=none".to_owned());
    }
    command.env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"));
    command
}

/// The outer build's `--offline`, `--locked` and `--frozen`, for the inner one. Cargo
/// tells a build script none of them, so they are read from the command line of the
/// `cargo` that runs it (on Linux; elsewhere only `CARGO_NET_OFFLINE` is seen, which the
/// inner build inherits anyway).
pub fn outer_cargo_flags() -> Vec<String> {
    #[cfg(target_os = "linux")]
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", std::os::unix::process::parent_id())).unwrap_or_default();
    #[cfg(not(target_os = "linux"))]
    let cmdline = Vec::new();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    cargo_flags(&args, crate::cargo::var("CARGO_NET_OFFLINE").as_deref())
}

/// The flags among a `cargo` command line's own arguments (those before `--`) that the
/// guest's build must share.
pub fn cargo_flags(args: &[String], net_offline: Option<&str>) -> Vec<String> {
    let own = args.iter().take_while(|a| *a != "--");
    let mut flags: Vec<String> = own
        .filter(|a| matches!(a.as_str(), "--offline" | "--locked" | "--frozen"))
        .cloned()
        .collect();
    if matches!(net_offline, Some("true" | "1")) && !flags.iter().any(|f| f == "--offline") {
        flags.push("--offline".to_owned());
    }
    flags.sort();
    flags.dedup();
    flags
}

/// Variables of the outer build's own target that a guest build must not see.
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
    "CARGO_BUILD_RUSTC",
    // The inner cargo takes its job tokens from the outer build's jobserver through
    // CARGO_MAKEFLAGS (whose descriptors a build script inherits and passes on), not
    // from a `make` further out.
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

/// Removes what the outer build sets for its own target and would otherwise leak into
/// the guest's build: flags, wrappers, target selection, features, cfgs and profile.
fn scrub_environment(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if leaks_into_guest_build(key) {
            command.env_remove(key);
        }
    }
}

fn leaks_into_guest_build(key: &str) -> bool {
    EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

/// A path as a TOML string for `--config` (Rust's string escapes are TOML's for paths).
fn toml_string(path: &Path) -> String {
    format!("{:?}", path.to_string_lossy())
}

/// Where the inner build's progress goes, unless `WASM_EMBED_PROGRESS=0`: the terminal
/// the user watches the outer build on; without one (CI, an IDE), the build script's
/// stderr, which Cargo streams as it comes with `cargo build -vv`.
fn progress_terminal() -> Option<Box<dyn Write + Send>> {
    if crate::cargo::var("WASM_EMBED_PROGRESS").is_some_and(|v| v == "0") {
        return None;
    }
    match std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        Ok(terminal) => Some(Box::new(terminal)),
        Err(_) => Some(Box::new(std::io::stderr())),
    }
}

/// A line of the inner cargo's progress as the user sees it beside the outer build's,
/// or `None` for lines that are not progress (diagnostics come with the error).
fn progress_line(guest: &str, line: &str) -> Option<String> {
    is_progress(line).then(|| format!("   wasm-embed: guest `{guest}`: {}", line.trim_start()))
}

/// Whether cargo wrote `line` to report progress (indented status words), not a
/// diagnostic.
fn is_progress(line: &str) -> bool {
    const PROGRESS: &[&str] = &[
        "Compiling", "Checking", "Finished", "Updating", "Downloading", "Downloaded", "Locking",
        "Adding", "Blocking", "Fresh", "Building",
    ];
    let word = line.trim_start().split(' ').next().unwrap_or("");
    line.starts_with(' ') && PROGRESS.contains(&word)
}

/// What cargo and rustc said, without the progress lines.
fn diagnostics(stderr: &str) -> String {
    stderr.lines().filter(|line| !is_progress(line)).collect::<Vec<_>>().join("\n")
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

    /// Scratch space for these tests, inside the clone (unit tests have no
    /// `CARGO_TARGET_TMPDIR`).
    fn scratch() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/tmp/compile"))
    }

    /// A `rustc` that is `toolchain`'s real one but reports an empty sysroot named
    /// `name`, as a toolchain without rust-src or the wasm target would look.
    fn rustc_without_components(toolchain: &str, name: &str) -> PathBuf {
        let real = Command::new("rustup").args(["which", "rustc", "--toolchain", toolchain]).output().unwrap();
        assert!(real.status.success(), "{real:?}");
        let dir = scratch().join(format!("fake-{name}"));
        let sysroot = dir.join(name);
        std::fs::create_dir_all(sysroot.join("lib/rustlib")).unwrap();
        let script = dir.join("rustc");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nif [ \"$*\" = \"--print sysroot\" ]; then echo {:?}; else exec {:?} \"$@\"; fi\n",
                sysroot.display().to_string(),
                String::from_utf8_lossy(&real.stdout).trim()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn a_toolchain_without_rust_src_or_the_wasm_target_says_what_to_add() {
        let pinned = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../rust-toolchain.toml")).unwrap();
        let nightly = pinned.split('"').nth(1).unwrap();
        let rustc = rustc_without_components(nightly, "nightly-without-src");
        let error = Toolchain::find("cargo".into(), rustc).unwrap_err().to_string();
        assert_eq!(
            error,
            "guests cannot be built: the toolchain lacks the `rust-src` component, which build-std compiles `core` \
             for the guest from; install it: rustup component add rust-src --toolchain nightly-without-src"
        );
        let rustc = rustc_without_components("stable", "stable-without-wasm");
        let error = Toolchain::find("cargo".into(), rustc).unwrap_err().to_string();
        assert_eq!(
            error,
            "guests cannot be built: the toolchain lacks the prebuilt `wasm32v1-none` standard library; \
             install it: rustup target add wasm32v1-none --toolchain stable-without-wasm"
        );
    }

    #[test]
    fn the_outer_builds_locked_flag_reaches_the_guests_build() {
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let fixture = base.join("tests/fixtures/unlocked");
        let located = crate::locate::locate(fixture.to_str().unwrap(), &base).unwrap();
        let guest = located.krate().unwrap().clone();
        let flags = cargo_flags(&["cargo".into(), "build".into(), "--locked".into()], None);
        assert_eq!(flags, ["--locked"]);
        let options = CompileOptions {
            toolchain: Toolchain::current().unwrap(),
            cargo_flags: flags,
            target_dir: scratch().join("guests"),
            stack_size: 4096,
            initial_memory: 65536,
            keep_names: false,
        };
        let error = compile(&[guest], &options).unwrap_err().to_string();
        assert!(error.starts_with("guest `unlocked` did not compile for wasm32v1-none:"), "{error}");
        assert!(error.contains("--locked was passed"), "{error}");
        assert!(!fixture.join("Cargo.lock").exists());
    }

    #[test]
    fn dep_info_keeps_escaped_spaces_and_ignores_later_rules() {
        let text = "/t/add.wasm: /src/lib.rs /my\\ dir/mod.rs\n\n/src/lib.rs:\n";
        assert_eq!(
            parse_dep_info(text),
            [PathBuf::from("/src/lib.rs"), PathBuf::from("/my dir/mod.rs")]
        );
    }

    #[test]
    fn offline_and_locked_flags_of_the_outer_build_are_passed_on() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(cargo_flags(&args(&["cargo", "build", "--release"]), None), Vec::<String>::new());
        assert_eq!(cargo_flags(&args(&["cargo", "build", "--frozen"]), None), ["--frozen"]);
        assert_eq!(cargo_flags(&args(&["cargo", "run", "--locked", "--offline"]), None), ["--locked", "--offline"]);
        // What follows `--` belongs to the program `cargo run` starts.
        assert_eq!(cargo_flags(&args(&["cargo", "run", "--", "--locked"]), None), Vec::<String>::new());
        assert_eq!(cargo_flags(&args(&["cargo", "build"]), Some("true")), ["--offline"]);
        assert_eq!(cargo_flags(&args(&["cargo", "build", "--offline"]), Some("1")), ["--offline"]);
    }

    #[test]
    fn progress_lines_are_shown_with_the_guests_name_and_diagnostics_are_not() {
        assert_eq!(
            progress_line("add", "   Compiling core v0.0.0 (/r/library/core)").as_deref(),
            Some("   wasm-embed: guest `add`: Compiling core v0.0.0 (/r/library/core)")
        );
        assert_eq!(progress_line("add", "error[E0425]: cannot find value `x`"), None);
        assert_eq!(progress_line("add", "warning: unused variable"), None);
    }

    #[test]
    fn the_outer_builds_flags_are_scrubbed_but_its_jobserver_is_passed_on() {
        for key in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_FEATURE_STD", "CARGO_CFG_TARGET_OS", "TARGET", "MAKEFLAGS"] {
            assert!(leaks_into_guest_build(key), "{key}");
        }
        for key in ["CARGO_MAKEFLAGS", "CARGO_NET_OFFLINE", "CARGO_HOME", "RUSTUP_TOOLCHAIN", "PATH"] {
            assert!(!leaks_into_guest_build(key), "{key}");
        }
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
