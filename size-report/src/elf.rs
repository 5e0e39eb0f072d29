//! Reading ELF files: a firmware's sections, flash, static RAM and code by crate, and a
//! `.cwasm`'s sections.

use std::collections::BTreeMap;
use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, SectionKind};

use crate::measure::Measurement;

/// The sections a board's flash holds: Arm's vector table, riscv-rt's start-up code,
/// and on both the code, read-only data and the initial values of `.data`.
const FLASH_SECTIONS: [&str; 5] = [".vector_table", ".init.rust", ".text", ".rodata", ".data"];

/// Flash of an image: what a board's flash holds.
pub(crate) fn flash_of(sections: &BTreeMap<&'static str, u64>) -> u64 {
    FLASH_SECTIONS.iter().map(|s| sections[s]).sum()
}

/// The flash an image takes (every section it loads) and its static RAM (what it writes
/// or zeroes at start), whatever the board names its sections.
pub(crate) fn image_size(path: &Path) -> Result<(u64, u64), String> {
    use object::SectionFlags;
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = object::File::parse(&*data).map_err(|e| e.to_string())?;
    let (mut flash, mut ram) = (0, 0);
    for section in file.sections() {
        let SectionFlags::Elf { sh_flags } = section.flags() else { continue };
        if sh_flags & u64::from(object::elf::SHF_ALLOC) == 0 {
            continue;
        }
        match section.kind() {
            SectionKind::UninitializedData | SectionKind::UninitializedTls => ram += section.size(),
            _ if sh_flags & u64::from(object::elf::SHF_WRITE) != 0 => {
                flash += section.size();
                ram += section.size();
            }
            _ => flash += section.size(),
        }
    }
    Ok((flash, ram))
}

/// The sections of a `.cwasm` (an ELF file) by size, and what the ELF format itself
/// takes: headers, the section table and alignment padding.
pub(crate) fn sections_of(cwasm: &[u8]) -> Result<Vec<(String, u64)>, String> {
    let file = object::File::parse(cwasm).map_err(|e| format!(".cwasm: {e}"))?;
    let mut sections: Vec<(String, u64)> = file
        .sections()
        .filter_map(|s| Some((s.name().ok()?.to_owned(), s.file_range()?.1)))
        .filter(|(_, size)| *size > 0)
        .collect();
    sections.sort_by(|a, b| b.1.cmp(&a.1));
    let listed: u64 = sections.iter().map(|(_, size)| size).sum();
    sections.push(("(ELF header, section table, padding)".into(), cwasm.len() as u64 - listed));
    Ok(sections)
}

/// Section sizes, the heap arena's size and code + read-only data by crate.
pub(crate) fn elf(path: &Path) -> Result<(BTreeMap<&'static str, u64>, u64, Vec<(String, u64)>), String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = object::File::parse(&*data).map_err(|e| e.to_string())?;
    let mut sections = BTreeMap::new();
    for &name in FLASH_SECTIONS.iter().chain(&[".bss"]) {
        sections.insert(name, file.section_by_name(name).map_or(0, |s| s.size()));
    }
    let mut crates: BTreeMap<String, u64> = BTreeMap::new();
    let mut heap_arena = 0;
    for symbol in file.symbols() {
        let Some(index) = symbol.section_index() else { continue };
        let Ok(section) = file.section_by_index(index) else { continue };
        let name = format!("{:#}", rustc_demangle::demangle(symbol.name().unwrap_or("")));
        match section.kind() {
            SectionKind::Text | SectionKind::ReadOnlyData | SectionKind::ReadOnlyString => {
                *crates.entry(crate_of(&name)).or_default() += symbol.size();
            }
            SectionKind::UninitializedData if name.ends_with("heap::init::MEMORY") => heap_arena = symbol.size(),
            _ => {}
        }
    }
    let mut crates: Vec<_> = crates.into_iter().collect();
    crates.sort_by(|a, b| b.1.cmp(&a.1));
    Ok((sections, heap_arena, crates))
}

/// The crate a demangled symbol belongs to: the first path segment, looking through
/// `<T as Trait>` and references.
fn crate_of(symbol: &str) -> String {
    let path = symbol.trim_start_matches(['<', '&', '*']).trim_start_matches("mut ").trim_start_matches("dyn ");
    match path.split_once("::") {
        Some((first, _)) if first.chars().all(|c| c.is_alphanumeric() || c == '_') => first.to_owned(),
        _ if symbol.starts_with("__aeabi") || symbol.starts_with("mem") => "compiler_builtins".to_owned(),
        _ => "(other symbols)".to_owned(),
    }
}

/// `.data` and `.bss`: what the firmware's statics take of RAM (the heap arena among
/// them).
pub(crate) fn static_ram(m: &Measurement) -> u64 {
    statics(&m.sections)
}

/// `.data` and `.bss` of an image's sections, as [`elf`] reads them.
pub(crate) fn statics(sections: &BTreeMap<&'static str, u64>) -> u64 {
    sections[".data"] + sections[".bss"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_charged_to_the_crate_that_defines_them() {
        assert_eq!(crate_of("wasmtime::engine::Engine::new"), "wasmtime");
        assert_eq!(
            crate_of("<wasmtime_environ::tunables::OperatorCost as serde_core::de::Deserialize>::deserialize"),
            "wasmtime_environ"
        );
        assert_eq!(crate_of("<&mut alloc::vec::Vec<u8> as core::fmt::Debug>::fmt"), "alloc");
        assert_eq!(crate_of("__aeabi_memcpy4"), "compiler_builtins");
        assert_eq!(crate_of("Reset"), "(other symbols)");
    }
}
