//! The boards report, from the board list (`cargo-wasm-embed/boards.toml`): every core
//! demo-firmware runs on (its whole image, and the add example's flash and peak heap),
//! every board firmware of this repository, and every other board as `cargo wasm-embed
//! new` writes it, each beside its chip's flash and RAM.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::cargo::{cargo, repo};
use crate::elf::{elf, image_size};
use crate::format::group;

/// An entry of the board list, as the report reads it.
pub(crate) struct Board {
    pub(crate) name: String,
    description: String,
    target: String,
    spec: bool,
    /// The chip's flash and RAM, which the image must fit.
    pub(crate) chip: (u64, u64),
    demo: bool,
    firmware: Option<String>,
}

impl Board {
    /// What `cargo --target` takes for it.
    fn target_argument(&self) -> String {
        if self.spec {
            repo().join("cargo-wasm-embed/targets").join(format!("{}.json", self.target)).display().to_string()
        } else {
            self.target.clone()
        }
    }
}

/// The board list.
pub(crate) fn boards() -> Result<Vec<Board>, String> {
    let path = repo().join("cargo-wasm-embed/boards.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let list: toml::Table = text.parse().map_err(|e| format!("{}: {e}", path.display()))?;
    let boards = list["board"].as_array().ok_or("boards.toml lists no [[board]]")?;
    let text = |b: &toml::Value, key: &str| b.get(key).and_then(toml::Value::as_str).unwrap_or("").to_owned();
    let number = |b: &toml::Value, key: &str| b.get(key).and_then(toml::Value::as_integer).unwrap_or(0) as u64;
    Ok(boards
        .iter()
        .map(|b| Board {
            name: text(b, "name"),
            description: text(b, "description"),
            target: text(b, "target"),
            spec: b.get("spec").and_then(toml::Value::as_bool).unwrap_or(false),
            chip: (number(b, "flash"), number(b, "ram")),
            demo: b.get("demo").and_then(toml::Value::as_bool).unwrap_or(false),
            firmware: b.get("firmware").and_then(toml::Value::as_str).map(str::to_owned),
        })
        .collect())
}

/// One image: what it is, its flash and static RAM, the heap arena within that RAM, and
/// for the add example its peak heap.
pub(crate) struct BoardImage {
    what: String,
    flash: u64,
    ram: u64,
    heap_arena: u64,
    peak_heap: Option<u64>,
}

/// Every board's images: per demo core, demo-firmware with every guest and the add
/// example; per real board, its firmware.
pub(crate) fn measure_boards() -> Result<Vec<(Board, Vec<BoardImage>)>, String> {
    let mut measured = Vec::new();
    for board in boards()? {
        eprintln!("size-report: building for {}", board.name);
        let mut images = Vec::new();
        if board.demo {
            let target = board.target_argument();
            let demo = repo().join("demo-firmware");
            let built = cargo(&demo, &["build", "--release", "--bins", "--target", &target])?;
            images.push(image("demo-firmware, every guest", built.executables.last(), None)?);
            let add = cargo(&demo, &["run", "--release", "--example", "add", "--target", &target])?;
            let peak = add
                .program
                .lines()
                .find_map(|l| l.strip_prefix("peak heap: ")?.strip_suffix(" bytes")?.parse().ok())
                .ok_or_else(|| format!("the add example printed no peak heap on {}:\n{}", board.name, add.program))?;
            images.push(image("the add example", add.executables.last(), Some(peak))?);
        }
        if let Some(firmware) = &board.firmware {
            let built = cargo(&repo().join(firmware), &["build", "--release", "--bins"])?;
            images.push(image(&format!("{firmware}: add and blinky guests"), built.executables.last(), None)?);
        }
        if !board.demo && board.firmware.is_none() {
            let dir = scaffold(&board, "")?;
            let built = cargo(&dir, &["build", "--release", "--bins"])?;
            let what = format!("`cargo wasm-embed new --board {}`: its first guest", board.name);
            images.push(image(&what, built.executables.last(), None)?);
        }
        for image in &images {
            if image.flash > board.chip.0 || image.ram > board.chip.1 {
                return Err(format!(
                    "{} on {} does not fit its chip: {} B flash, {} B RAM",
                    image.what, board.name, image.flash, image.ram
                ));
            }
        }
        measured.push((board, images));
    }
    Ok(measured)
}

fn image(what: &str, executable: Option<&PathBuf>, peak_heap: Option<u64>) -> Result<BoardImage, String> {
    let executable = executable.ok_or_else(|| format!("cargo reported no executable for {what}"))?;
    let (flash, ram) = image_size(executable)?;
    let (_, heap_arena, _) = elf(executable)?;
    Ok(BoardImage {
        what: what.to_owned(),
        flash,
        ram,
        heap_arena,
        peak_heap,
    })
}

/// The project `cargo wasm-embed new` writes for `board`, in the target directory under
/// the board's name and `suffix`, with the lock file of this repository's firmware of the
/// same kind (so that it shares its compiled crates).
pub(crate) fn scaffold(board: &Board, suffix: &str) -> Result<PathBuf, String> {
    let dir = repo().join("target/size-report/scaffold").join(format!("{}{suffix}-firmware", board.name));
    let _ = std::fs::remove_dir_all(&dir);
    let parent = dir.parent().expect("inside target/");
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let cargo_bin = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo_bin)
        .current_dir(repo())
        .args(["run", "--quiet", "-p", "cargo-wasm-embed", "--", "wasm-embed", "new"])
        .arg(&dir)
        .args(["--board", &board.name, "--wasm-embed-path"])
        .arg(repo())
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("could not run cargo-wasm-embed: {e}"))?;
    if !status.success() {
        return Err(format!("`cargo wasm-embed new --board {}` failed", board.name));
    }
    let like = if board.target.starts_with("riscv32") { "boards/esp32-c3" } else { "demo-firmware" };
    let lock = repo().join(like).join("Cargo.lock");
    std::fs::copy(&lock, dir.join("Cargo.lock")).map_err(|e| format!("{}: {e}", lock.display()))?;
    Ok(dir)
}

pub(crate) fn print_boards(boards: &[(Board, Vec<BoardImage>)]) {
    println!("\n## Every board's image\n");
    println!("Flash: every section the image loads; RAM: what it writes or zeroes at start, the heap arena in it.\n");
    println!("| board | image | flash | of the chip's | RAM | heap arena in it | of the chip's |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (board, images) in boards {
        for image in images {
            println!(
                "| `{}`: {} | {} | {} | {} | {} | {} | {} |",
                board.name,
                board.description,
                image.what,
                group(image.flash),
                group(board.chip.0),
                group(image.ram),
                group(image.heap_arena),
                group(board.chip.1),
            );
        }
    }
    println!("\n## The add example on every core\n");
    println!("| core | target | flash | peak heap |");
    println!("|---|---|---:|---:|");
    for (board, images) in boards {
        for image in images.iter().filter(|i| i.peak_heap.is_some()) {
            println!(
                "| `{}`: {} | `{}`{} | {} | {} |",
                board.name,
                board.description,
                board.target,
                if board.spec { " (spec)" } else { "" },
                group(image.flash),
                group(image.peak_heap.unwrap_or(0)),
            );
        }
    }
}

pub(crate) fn boards_json(boards: &[(Board, Vec<BoardImage>)]) -> Value {
    boards
        .iter()
        .flat_map(|(board, images)| {
            images.iter().map(move |image| {
                json!({
                    "board": board.name,
                    "image": image.what,
                    "flash": image.flash,
                    "ram": image.ram,
                    "heap_arena": image.heap_arena,
                    "peak_heap": image.peak_heap,
                    "chip_flash": board.chip.0,
                    "chip_ram": board.chip.1,
                })
            })
        })
        .collect()
}
