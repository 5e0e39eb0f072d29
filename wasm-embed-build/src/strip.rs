//! Stage 3: drop every custom section (`name`, `producers`, `target_features`, DWARF).
//! Wasmtime ignores them at run time, but they would ride along into the `.cwasm`.

use walrus::ModuleConfig;

use crate::Error;

pub fn strip(guest: &str, wasm: &[u8]) -> Result<Vec<u8>, Error> {
    let mut module = parse(guest, wasm)?;
    let ids: Vec<_> = module.customs.iter().map(|(id, _)| id).collect();
    for id in ids {
        module.customs.delete(id);
    }
    Ok(module.emit_wasm())
}

/// Parses a guest's wasm with walrus, set to write back no name, producers or DWARF
/// sections of its own.
pub(crate) fn parse(guest: &str, wasm: &[u8]) -> Result<walrus::Module, Error> {
    ModuleConfig::new()
        .generate_name_section(false)
        .generate_producers_section(false)
        .generate_dwarf(false)
        .parse(wasm)
        .map_err(|e| Error::Parse {
            guest: guest.to_owned(),
            message: format!("{e:#}"),
        })
}
