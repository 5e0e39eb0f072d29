//! Stage 3: drop custom sections (`producers`, `target_features`, DWARF, and `name`
//! unless names are kept). Wasmtime ignores them at run time, but they would ride along
//! into the `.cwasm`.

use walrus::ModuleConfig;

use crate::Error;

/// Strips `wasm`. With `keep_names`, the `name` section stays, so traps can name the
/// guest's functions (the debug profile).
pub fn strip(guest: &str, wasm: &[u8], keep_names: bool) -> Result<Vec<u8>, Error> {
    let mut module = parse_with(guest, wasm, keep_names)?;
    let ids: Vec<_> = module.customs.iter().map(|(id, _)| id).collect();
    for id in ids {
        module.customs.delete(id);
    }
    Ok(module.emit_wasm())
}

/// Parses a guest's wasm with walrus for a later stage; it writes back the names the
/// wasm has, and adds no producers or DWARF sections of its own.
pub(crate) fn parse(guest: &str, wasm: &[u8]) -> Result<walrus::Module, Error> {
    parse_with(guest, wasm, true)
}

fn parse_with(guest: &str, wasm: &[u8], names: bool) -> Result<walrus::Module, Error> {
    ModuleConfig::new()
        .generate_name_section(names)
        .generate_producers_section(false)
        .generate_dwarf(false)
        .parse(wasm)
        .map_err(|e| Error::Parse {
            guest: guest.to_owned(),
            message: format!("{e:#}"),
        })
}
