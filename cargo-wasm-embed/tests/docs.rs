//! README.md and docs/: every relative link leads to a file (and a heading) that exists,
//! and every repository path they name in backticks exists.

mod common;

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// README.md and every page in docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The text outside fenced code blocks, line by line: links and paths in code blocks are
/// the user's project, not this repository.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The anchors GitHub gives a page's headings.
fn anchors(text: &str) -> Vec<String> {
    prose(text)
        .into_iter()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| {
            heading
                .trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// Every `](target)` of a line.
fn links(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| line[at + 2..].split_once(')').map(|(target, _)| target))
        .collect()
}

/// Every `code` span of a line.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// Whether a code span names a file or directory of this repository: a relative path
/// with a `/`, not one of the user's project, a build output or a pattern.
fn names_repository_path(span: &str) -> bool {
    let user_or_output = [
        "my-firmware/",
        "target/",
        "../shared/",
        "guests::",
        "OUT_DIR",
        "src/",
        "wit/",
        "keys/",
        ".cargo/",
    ];
    span.contains('/')
        && !span.contains(|c: char| c.is_whitespace() || "<>…*${}:=\"'()|,".contains(c))
        && !span.starts_with('/')
        && !span.starts_with('-')
        && !user_or_output.iter().any(|prefix| span.starts_with(prefix))
        && span
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.')
}

#[test]
fn every_relative_link_and_named_path_in_readme_and_docs_exists() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        let name = page.strip_prefix(repo()).unwrap().display().to_string();
        for line in prose(&text) {
            for target in links(line) {
                if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
                let file_path = if file.is_empty() { page.clone() } else { dir.join(file) };
                if !file_path.exists() {
                    broken.push(format!("{name}: link to {target}: no such file"));
                } else if !anchor.is_empty() && file_path.extension().is_some_and(|e| e == "md") {
                    let linked = std::fs::read_to_string(&file_path).unwrap();
                    if !anchors(&linked).iter().any(|a| a == anchor) {
                        broken.push(format!("{name}: link to {target}: no such heading"));
                    }
                }
            }
            for span in code_spans(line) {
                if names_repository_path(span) && !exists_from(span, &[&repo(), dir]) {
                    broken.push(format!("{name}: `{span}`: no such path in the repository"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

fn exists_from(path: &str, dirs: &[&Path]) -> bool {
    dirs.iter().any(|dir| dir.join(path).exists())
}

#[test]
fn readme_is_a_front_page() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines < 250,
        "README.md has {lines} lines; the long sections belong in docs/"
    );
    for page in [
        "guide",
        "boards",
        "components",
        "prebuilt",
        "updates",
        "async",
        "size",
        "speed",
        "trust",
    ] {
        assert!(
            readme.contains(&format!("(docs/{page}.md)")),
            "README.md does not link docs/{page}.md"
        );
    }
}

/// What a Rust code block in README.md or docs/ is, as the word after ```` ```rust ````
/// says, so that a test can compile it where it belongs.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// `title="my-firmware/…"`: a file of the guide's project, compared with what `cargo
    /// wasm-embed new` writes by scaffold.rs, whose projects build and run.
    GuideFile,
    /// `guest=<name>`: the whole `src/lib.rs` of a guest crate.
    Guest(String),
    /// `firmware`: items of a firmware's module.
    Firmware,
    /// `firmware-fragment`: statements of a firmware function, with the names the
    /// context below gives it.
    FirmwareFragment,
    /// `build.rs`: a firmware's whole build script.
    BuildScript,
    /// `build.rs-fragment`: statements of a build script's `main`.
    BuildScriptFragment,
    /// `excerpt=<path>`: lines that a file of this repository holds as they are (and
    /// that the tests building that file compile).
    Excerpt(String),
}

/// A Rust code block of a page.
#[derive(Debug)]
struct Block {
    place: String,
    kind: Kind,
    text: String,
}

/// Every ```` ```rust ```` block of README.md and docs/, its indentation (in a list)
/// taken off.
fn rust_blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    for page in pages() {
        let name = page.strip_prefix(repo()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&page).unwrap();
        let mut lines = text.lines().enumerate();
        while let Some((number, line)) = lines.next() {
            let indent = line.len() - line.trim_start().len();
            let Some(info) = line.trim_start().strip_prefix("```rust") else { continue };
            let place = format!("{name}:{}", number + 1);
            let kind = match info.trim() {
                info if info.starts_with("title=\"my-firmware/") => Kind::GuideFile,
                "firmware" => Kind::Firmware,
                "firmware-fragment" => Kind::FirmwareFragment,
                "build.rs" => Kind::BuildScript,
                "build.rs-fragment" => Kind::BuildScriptFragment,
                info => match info.split_once('=') {
                    Some(("guest", name)) => Kind::Guest(name.to_owned()),
                    Some(("excerpt", path)) => Kind::Excerpt(path.to_owned()),
                    _ => panic!(
                        "{place}: a Rust block says what it is after ```rust (firmware, firmware-fragment, \
                         build.rs, build.rs-fragment, guest=<name>, excerpt=<path>), not `{info}`"
                    ),
                },
            };
            let body: Vec<&str> = lines
                .by_ref()
                .map(|(_, line)| line)
                .take_while(|line| line.trim_start() != "```")
                .map(|line| line.get(indent..).unwrap_or(line.trim_start()))
                .collect();
            blocks.push(Block { place, kind, text: body.join("\n") + "\n" });
        }
    }
    blocks
}

#[test]
fn every_rust_block_says_what_it_is_and_every_excerpt_is_in_its_file() {
    let blocks = rust_blocks();
    assert!(blocks.len() >= 15, "{} Rust blocks", blocks.len());
    for block in &blocks {
        if let Kind::Excerpt(path) = &block.kind {
            let file = std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{}: {path}: {e}", block.place));
            assert!(file.contains(&block.text), "{}: the block is not in {path} as it is", block.place);
        }
    }
}

/// What the fragments take as given: a board, a host, the guide's guest and its input,
/// the update slots and an install's chunk. Not in the docs because every firmware has
/// its own.
const CONTEXT: &str = r#"//! What the docs' blocks take as given.
#![allow(dead_code, unused_imports)]

pub use alloc::boxed::Box;
pub use core::ptr::NonNull;
pub use embassy_time::Timer;
pub use embedded_alloc::LlffHeap;
pub use wasm_embed::{Engine, Error, GuestComponent, GuestMemory, GuestModule};
pub(crate) use crate::guests;

/// The firmware's board.
pub struct Board;
/// A component's host.
pub struct Host;

impl guests::checksum::Env for Board {
    fn log(&mut self, _memory: GuestMemory<'_>, _text: u32, _len: u32) -> Result<(), Error> {
        Ok(())
    }
}

impl guests::add::Host for Board {
    fn extra(&mut self) -> u32 {
        42
    }
}

/// What another task feeds an import with.
pub static READINGS: embassy_sync::channel::Channel<embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex, u32, 4> =
    embassy_sync::channel::Channel::new();

/// What drives the board's LED.
pub mod board {
    pub fn led(_on: bool) {}
}

/// A HAL's flash driver.
pub struct Flash;

impl embedded_storage::nor_flash::ErrorType for Flash {
    type Error = core::convert::Infallible;
}

impl embedded_storage::nor_flash::ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, _offset: u32, _bytes: &mut [u8]) -> Result<(), Self::Error> {
        Ok(())
    }
    fn capacity(&self) -> usize {
        0
    }
}

impl embedded_storage::nor_flash::NorFlash for Flash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, _from: u32, _to: u32) -> Result<(), Self::Error> {
        Ok(())
    }
    fn write(&mut self, _offset: u32, _bytes: &[u8]) -> Result<(), Self::Error> {
        Ok(())
    }
}
"#;

/// The parameters a firmware fragment gets: what the page's prose has made by then.
const FRAGMENT_PARAMETERS: &str = "engine: &Engine, component: &GuestComponent, \
    checksum: &mut guests::checksum::Checksum<Board>, input: u32, \
    slots: &mut wasm_embed::update::Slots<Flash>, len: usize, chunk: &[u8]";

#[test]
fn every_rust_block_in_readme_and_docs_compiles_where_it_says_it_belongs() {
    let blocks = rust_blocks();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("docs-firmware");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };

    // The guests the blocks name: the guide's checksum (its block) and blink (its block),
    // the repository's add, add-component and sensor-filter, and the C filter built with
    // the command prebuilt.md gives.
    let guide = std::fs::read_to_string(repo().join("docs/guide.md")).unwrap();
    let guide_file = |fence: &str, path: &str| {
        guide
            .split(&format!("```{fence} title=\"my-firmware/{path}\"\n"))
            .nth(1)
            .and_then(|rest| rest.split("\n```").next())
            .map(|text| format!("{text}\n"))
            .unwrap_or_else(|| panic!("docs/guide.md shows no {path}"))
    };
    write("guests/checksum/Cargo.toml", &guide_file("toml", "guests/checksum/Cargo.toml"));
    write("guests/checksum/src/lib.rs", &guide_file("rust", "guests/checksum/src/lib.rs"));
    let guest_crate = |name: &str, lib: &str| {
        write(
            &format!("guests/{name}/Cargo.toml"),
            &format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\n\
                 crate-type = [\"cdylib\"]\n\n[workspace]\n"
            ),
        );
        write(&format!("guests/{name}/src/lib.rs"), lib);
    };
    let mut guests = vec!["guests/checksum".to_owned()];
    for block in &blocks {
        if let Kind::Guest(name) = &block.kind {
            guest_crate(name, &block.text);
            guests.push(format!("guests/{name}"));
        }
    }
    for repository_guest in ["add", "add-component", "sensor-filter"] {
        guests.push(repo().join("guests").join(repository_guest).display().to_string());
    }
    guests.push(c_filter(&dir).display().to_string());
    // And the guest the guide adds by a hyphenated name, named in the module as the guide
    // says it is.
    let prose = guide.split_whitespace().collect::<Vec<_>>().join(" ");
    let (added, module) = prose
        .split_once("(`add-guest ")
        .and_then(|(_, rest)| rest.split_once("` makes `guests::"))
        .and_then(|(added, rest)| Some((added.to_owned(), rest.split_once('`')?.0.to_owned())))
        .expect("docs/guide.md says what module a hyphenated guest's name makes");

    // The firmware: every firmware block a module of its own, every fragment a function
    // in one; and one build script for the build.rs blocks, never called.
    let keys = dir.join("keys/update");
    let output = common::cargo_wasm_embed(&dir, &["keygen", keys.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    write(
        "Cargo.toml",
        &format!(
            r#"[package]
name = "docs-firmware"
version = "0.1.0"
edition = "2024"
publish = false

[package.metadata.wasm-embed]
guests = {guests:?}
update-key = "keys/update.pub"

[dependencies]
wasm-embed = {{ path = {wasm_embed:?}, features = ["platform", "update", "component-model", "async"] }}
embedded-storage = "0.3"
embedded-alloc = {{ version = "0.7", default-features = false, features = ["llff"] }}
cortex-m = {{ version = "0.7", features = ["critical-section-single-core"] }}
cortex-m-rt = "0.7"
cortex-m-semihosting = "0.6"
embassy-executor = {{ version = "0.10", features = ["platform-cortex-m", "executor-thread"] }}
embassy-time = "0.5"
embassy-sync = "0.8"

[build-dependencies]
wasm-embed-build = {{ path = {wasm_embed_build:?}, features = ["component-model", "async"] }}

[workspace]
"#,
            wasm_embed = repo().join("wasm-embed"),
            wasm_embed_build = repo().join("wasm-embed-build"),
        ),
    );
    let mut main = format!(
        "#![no_std]\n#![no_main]\n\nextern crate alloc;\n\nwasm_embed::include_guests!();\n\nmod context;\n\n\
         use guests::{module} as _;\n\n\
         #[cortex_m_rt::entry]\nfn main() -> ! {{\n    loop {{}}\n}}\n\n\
         #[panic_handler]\nfn panic(_: &core::panic::PanicInfo) -> ! {{\n    loop {{}}\n}}\n",
    );
    let mut build = String::from(
        "fn main() {\n    wasm_embed_build::Builder::new().fuel(1_000_000).fuel_yield_interval(2_000).compile();\n}\n",
    );
    let mut compiled = 0;
    for (index, block) in blocks.iter().enumerate() {
        let wrapped = match block.kind {
            Kind::Firmware => format!("{}\n", block.text),
            Kind::FirmwareFragment => format!(
                "#[allow(unreachable_code, redundant_semicolons)]\nasync fn fragment({FRAGMENT_PARAMETERS}) \
                 -> Result<(), Box<dyn core::error::Error>> {{\n{}\n;\nOk(())\n}}\n",
                block.text
            ),
            Kind::BuildScript => block.text.clone(),
            Kind::BuildScriptFragment => format!("fn fragment() {{\n{}\n}}\n", block.text),
            _ => continue,
        };
        let context = match block.kind {
            Kind::BuildScript | Kind::BuildScriptFragment => "",
            _ => "use crate::context::*;\n",
        };
        let module = format!(
            "\n// {}\n#[allow(dead_code, unused)]\nmod block_{index} {{\n{context}{wrapped}}}\n",
            block.place
        );
        match block.kind {
            Kind::BuildScript | Kind::BuildScriptFragment => build.push_str(&module),
            _ => main.push_str(&module),
        }
        compiled += 1;
    }
    assert!(compiled >= 10, "{compiled} blocks");
    write("src/main.rs", &main);
    write("src/context.rs", CONTEXT);
    write("build.rs", &build);
    std::fs::copy(repo().join("demo-firmware/Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let output = common::cargo_wasm_embed(&dir, &["add-guest", &added]);
    assert!(output.status.success(), "{output:?}");

    let output = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(&dir)
        .args(["check", "--release", "--target", "thumbv7em-none-eabihf", "--message-format", "short"])
        .env("CARGO_TARGET_DIR", repo().join("demo-firmware/target"))
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the docs' blocks do not compile (each module names its page and line):\n{errors}\n{}",
        dir.join("src/main.rs").display()
    );
}

/// guests/c-filter/filter.c compiled with the command docs/prebuilt.md gives, or, without
/// clang, a module with the same imports and exports written as text.
fn c_filter(dir: &Path) -> PathBuf {
    let wasm = dir.join("guests/filter.wasm");
    let page = std::fs::read_to_string(repo().join("docs/prebuilt.md")).unwrap();
    let command = page
        .split("```sh\nclang ")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("docs/prebuilt.md gives the clang command")
        .replace("\\\n", " ");
    let arguments: Vec<String> = command
        .split_whitespace()
        .map(|argument| match argument {
            "filter.wasm" => wasm.display().to_string(),
            "filter.c" => repo().join("guests/c-filter/filter.c").display().to_string(),
            other => other.to_owned(),
        })
        .collect();
    match std::process::Command::new("clang").args(&arguments).status() {
        Ok(status) => assert!(status.success(), "clang {}", arguments.join(" ")),
        Err(_) => {
            println!("clang was not found (apt-get install clang lld): filter.wasm is written as text");
            let text = r#"(module
                (import "env" "report" (func (param i32)))
                (memory (export "memory") 1)
                (global (export "__heap_base") i32 (i32.const 2048))
                (func (export "filter") (param i32) (result i32) local.get 0)
                (func (export "buffer") (result i32) i32.const 1024)
                (func (export "fletcher16") (param i32) (result i32) i32.const 0))"#;
            std::fs::write(&wasm, wat::parse_str(text).unwrap()).unwrap();
        }
    }
    wasm
}

#[test]
fn trust_md_tells_of_every_regression_the_on_device_check_found() {
    let trust = std::fs::read_to_string(repo().join("docs/trust.md")).unwrap();
    let mut found: Vec<String> = std::fs::read_dir(repo().join("pipeline-check/regressions"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".wat"))
        .collect();
    found.sort();
    let words = ["none", "one", "two", "three", "four", "five", "six"];
    assert!(
        trust.contains(&format!("It found {}:", words[found.len()])),
        "docs/trust.md does not say the check found {}",
        words[found.len()]
    );
    for name in &found {
        assert!(trust.contains(&format!("`pipeline-check/regressions/{name}`")), "docs/trust.md does not tell of {name}");
    }
}
