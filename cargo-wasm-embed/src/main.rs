//! `cargo wasm-embed`: start a firmware that runs WebAssembly guests, add guests to it,
//! look inside what the build wrote, and sign guest updates away from the build machine.
//!
//! - `cargo wasm-embed new <dir> --board <board>` writes a firmware and a first guest:
//!   on the QEMU boards `cargo run --release` in `<dir>` builds and runs them;
//! - `cargo wasm-embed add-guest <name>`, in a firmware's directory, adds a guest crate
//!   (a component with `--component`, a prebuilt file with `--wasm <file>`) and lists it
//!   in the firmware's manifest;
//! - `cargo wasm-embed inspect <file> [--key <name>.pub]` shows what a `.cwasm` or an
//!   update package holds, and whether a package's signature verifies;
//! - `cargo wasm-embed keygen <name>` writes `<name>.key` (the secret key, readable by
//!   its owner only) and `<name>.pub` (the public key the firmware is built with);
//! - `cargo wasm-embed sign --key <name>.key <guest>.update.unsigned` shows what a
//!   package the build wrote holds, asks (unless `--yes`), and signs it into
//!   `<guest>.update`;
//!
//! Errors are one line on stderr; the exit code is 0 on success, 1 on an error, 2 on
//! bad usage (an unknown verb, board or option).

// clap makes the verbs' doc comments their --help text, where `<NAME>` is the usage's
// placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod inspect;
mod scaffold;

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use scaffold::{Board, Crates, NewGuest};
use wasm_embed::update::{Package, PublicKey, create_key_files, read_public_key, read_secret_key};

#[derive(Parser)]
#[command(name = "cargo", bin_name = "cargo")]
enum Cargo {
    /// WebAssembly guests in a firmware: start one, add guests, inspect what the build
    /// wrote, sign updates.
    #[command(
        name = "wasm-embed",
        version,
        subcommand_required = true,
        arg_required_else_help = true
    )]
    WasmEmbed(WasmEmbed),
}

#[derive(Args)]
struct WasmEmbed {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Writes a firmware for a board and a first guest into a new directory.
    New {
        /// The directory to create; its name is the firmware's package name.
        dir: PathBuf,
        /// The board the firmware is for (the list: `boards.toml` in the crate).
        #[arg(long, value_parser = scaffold::board_names())]
        board: String,
        /// Makes the first guest a component guest (a WIT world).
        #[arg(long)]
        component: bool,
        /// Depends on the wasm-embed crates of this clone of the repository, by path,
        /// instead of on crates.io.
        #[arg(long, value_name = "CLONE")]
        wasm_embed_path: Option<PathBuf>,
    },
    /// Adds a guest to the firmware in the current directory and lists it in its
    /// Cargo.toml.
    AddGuest {
        /// The guest's name: its crate, or its file `guests/<NAME>.wasm`.
        name: String,
        /// A component guest (a WIT world in its `wit/`).
        #[arg(long, conflicts_with = "wasm")]
        component: bool,
        /// A prebuilt WebAssembly module, copied into `guests/`.
        #[arg(long, value_name = "FILE")]
        wasm: Option<PathBuf>,
    },
    /// Makes an ed25519 key pair for signing guest updates: <NAME>.key (secret, owner
    /// only) and <NAME>.pub (for Builder::update_key).
    Keygen {
        /// Path and stem of the two files, e.g. `keys/update`.
        name: PathBuf,
    },
    /// Signs an update package the build wrote (`<guest>.update.unsigned`), after showing
    /// what it holds and asking.
    Sign {
        /// The secret key file `keygen` wrote.
        #[arg(long)]
        key: PathBuf,
        /// Signs without asking (for scripts that checked the package another way).
        #[arg(long)]
        yes: bool,
        /// The unsigned package.
        package: PathBuf,
        /// Where the signed package goes (default: the input without `.unsigned`).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Shows what a `.cwasm` or an update package holds; checks a package's signature.
    Inspect {
        /// The `.cwasm` or the update package.
        file: PathBuf,
        /// The public key file to check a package's signature with.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = match Cargo::try_parse() {
        Ok(Cargo::WasmEmbed(args)) => args,
        // --help, --version, and the help shown when no verb is given.
        Err(error) if !error.use_stderr() || error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            error.exit()
        }
        Err(error) => {
            eprintln!("{}", usage_line(&error.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let result = match args.verb {
        Verb::Keygen { name } => keygen(&name),
        Verb::Sign {
            key,
            yes,
            package,
            output,
        } => sign(&key, &package, output, yes),
        Verb::New {
            dir,
            board,
            component,
            wasm_embed_path,
        } => {
            let crates = match wasm_embed_path {
                Some(clone) => checkout(&clone),
                None => Ok(Crates::Published),
            };
            crates.and_then(|crates| scaffold::new(&dir, &Board::named(&board), component, &crates))
        }
        Verb::AddGuest { name, component, wasm } => {
            let guest = match (component, wasm) {
                (_, Some(file)) => NewGuest::Prebuilt(file),
                (true, None) => NewGuest::Component,
                (false, None) => NewGuest::Crate,
            };
            scaffold::add_guest(Path::new("."), &name, guest)
        }
        Verb::Inspect { file, key } => inspect(&file, key.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// clap's usage error as one line: its message and the values it suggests, without the
/// usage and the pointer to --help it adds below them.
fn usage_line(rendered: &str) -> String {
    let kept: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .collect();
    format!("{}; see --help", kept.join(" "))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn read_text(path: &Path) -> Result<String, String> {
    String::from_utf8(read(path)?).map_err(|_| format!("{} is not a key file (not text)", path.display()))
}

fn keygen(name: &Path) -> Result<(), String> {
    let secret_path = name.with_extension("key");
    let public_path = name.with_extension("pub");
    for path in [&secret_path, &public_path] {
        if path.exists() {
            return Err(format!(
                "{} exists already; choose another name, or move it away first",
                path.display()
            ));
        }
    }
    if let Some(dir) = secret_path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    create_key_files(&secret_path, &public_path)
        .map_err(|e| format!("cannot write the key pair to {}: {e}", secret_path.display()))?;
    println!(
        "wrote {} (secret: keep it off the build machine and out of version control) and {} (give it to \
         Builder::update_key, or `update-key` in [package.metadata.wasm-embed])",
        secret_path.display(),
        public_path.display()
    );
    Ok(())
}

fn sign(key: &Path, package: &Path, output: Option<PathBuf>, yes: bool) -> Result<(), String> {
    let secret = read_secret_key(&read_text(key)?).map_err(|e| format!("{}: {e}", key.display()))?;
    let output = match output {
        Some(output) => output,
        None => match package.to_str().and_then(|p| p.strip_suffix(".unsigned")) {
            Some(stem) => PathBuf::from(stem),
            None => {
                return Err(format!(
                    "{} does not end in `.unsigned`; say where the signed package goes with -o",
                    package.display()
                ));
            }
        },
    };
    let unsigned = read(package)?;
    let cannot = |reason: &str| format!("{} cannot be signed: {reason}", package.display());
    // Signed first, so that nothing is shown of a file that is no package for this key;
    // written only once confirmed.
    let signed = secret.sign(&unsigned).map_err(cannot)?;
    let fields = Package::read_unverified(&unsigned).map_err(cannot)?;
    println!("guest:     {}", fields.name());
    println!("version:   {}", fields.version());
    println!("interface:");
    for line in fields.interface().lines() {
        println!("  {line}");
    }
    println!("cwasm:     {} B, SHA-256 {}", fields.cwasm().len(), inspect::hex(&inspect::sha256(fields.cwasm())));
    println!("key:       {}", inspect::hex(secret.public_key().bytes()));
    if !yes && !confirmed("sign it? [y/N] ")? {
        return Err(format!("{} not signed: not confirmed; answer y, or pass --yes", package.display()));
    }
    std::fs::write(&output, signed).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    println!("signed {} into {}", package.display(), output.display());
    Ok(())
}

/// Asks `question` on stderr and reads the answer from stdin: only `y` or `yes` says yes,
/// and so does nothing else (a closed stdin included).
fn confirmed(question: &str) -> Result<bool, String> {
    use std::io::Write;
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| format!("cannot read the answer: {e}"))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// The clone `--wasm-embed-path` names, made absolute so the project can move.
fn checkout(clone: &Path) -> Result<Crates, String> {
    let clone = std::path::absolute(clone).map_err(|e| format!("{}: {e}", clone.display()))?;
    if !clone.join("wasm-embed/Cargo.toml").is_file() || !clone.join("wasm-embed-build/Cargo.toml").is_file() {
        return Err(format!(
            "{} is not a clone of wasm-embed (no wasm-embed/Cargo.toml and wasm-embed-build/Cargo.toml); give \
             --wasm-embed-path the repository's top directory",
            clone.display()
        ));
    }
    Ok(Crates::Checkout(clone))
}

fn inspect(path: &Path, key: Option<&Path>) -> Result<(), String> {
    let bytes = read(path)?;
    if bytes.starts_with(inspect::CWASM_MAGIC) {
        if key.is_some() {
            return Err(format!(
                "{} is a .cwasm, which carries no signature; --key is for update packages",
                path.display()
            ));
        }
        return inspect::cwasm(&path.display().to_string(), &bytes);
    }
    if !bytes.starts_with(b"WEPK") {
        return Err(format!(
            "{} is neither a .cwasm nor a wasm-embed update package; give inspect a file the build wrote \
             (<guest>.cwasm in OUT_DIR, or <guest>.update)",
            path.display()
        ));
    }
    let package = Package::read_unverified(&bytes)
        .map_err(|reason| format!("{} is not a signed wasm-embed update package: {reason}", path.display()))?;
    // A package that fails its signature is not read any further.
    let verified_with = match key {
        Some(key) => {
            let public: PublicKey =
                read_public_key(&read_text(key)?).map_err(|e| format!("{}: {e}", key.display()))?;
            Package::check_signature(&bytes, &public).map_err(|reason| {
                format!(
                    "{}: the signature does not verify with {}: {reason}",
                    path.display(),
                    key.display()
                )
            })?;
            Some(key)
        }
        None => None,
    };
    // Read before anything is printed, so that a package it fails for prints only the error.
    let cwasm = inspect::parse(package.cwasm()).map_err(|e| {
        format!("{}: the .cwasm it carries does not read as an ELF file ({e})", path.display())
    })?;
    let settings = package.settings();
    println!("guest:     {}", package.name());
    println!("version:   {}", package.version());
    println!(
        "kind:      {}",
        if package.is_component() {
            "component"
        } else {
            "core module"
        }
    );
    println!("wasmtime:  {}", package.wasmtime());
    println!(
        "settings:  target {}, profile {:?}, fuel {}, Pulley stack {} B",
        settings.target.triple(),
        settings.profile,
        settings
            .fuel
            .map_or("off".to_owned(), |fuel| format!("{fuel} per call")),
        settings.max_wasm_stack
    );
    println!(
        "size:      {} B: .cwasm {} B, header and signature {} B",
        bytes.len(),
        package.cwasm().len(),
        bytes.len() - package.cwasm().len()
    );
    println!("cwasm:     SHA-256 {}", inspect::hex(&inspect::sha256(package.cwasm())));
    inspect::print_sections(&cwasm);
    println!("interface:");
    for line in package.interface().lines() {
        println!("  {line}");
    }
    match verified_with {
        Some(key) => println!("signature: verifies with {}", key.display()),
        None => println!("signature: not checked (give --key <name>.pub)"),
    }
    Ok(())
}
