//! The `strip` stage: drop custom sections (`producers`, `target_features`, DWARF, and `name`
//! unless names are kept). Wasmtime ignores them at run time, but they would ride along
//! into the `.cwasm`.

use walrus::ir::Value;
use walrus::{ConstExpr, DataKind, ElementItems, ElementKind, ModuleConfig};

use crate::Error;

/// Strips `wasm`. With `keep_names`, the `name` section stays, so traps can name the
/// guest's functions (the debug profile). The exports whose names start with one in
/// `unused` go, and the code only they reached. A guest that could never be
/// instantiated is refused here, as the first stage that reads it (see
/// [`check_segments`]).
pub fn strip(guest: &str, wasm: &[u8], keep_names: bool, unused: &[&str]) -> Result<Vec<u8>, Error> {
    let mut module = parse_with(guest, wasm, keep_names)?;
    check_segments(guest, &module)?;
    let ids: Vec<_> = module.customs.iter().map(|(id, _)| id).collect();
    for id in ids {
        module.customs.delete(id);
    }
    let unused_export = |e: &&walrus::Export| unused.iter().any(|u| e.name.starts_with(u));
    let exports: Vec<_> = module.exports.iter().filter(unused_export).map(|e| e.id()).collect();
    if !exports.is_empty() {
        for id in exports {
            module.exports.delete(id);
        }
        walrus::passes::gc::run(&mut module);
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

/// Refuses a module whose active data or element segment lies outside its memory or
/// table. Wasmtime would refuse to instantiate it on the device, but wasm-opt does not
/// keep that failure: it refuses some such modules with a bare "failed to validate" and
/// silently drops empty segments from others, turning a broken guest into one that
/// seems to work. A guest imports only functions, so its offsets are constants.
pub fn check_segments(guest: &str, module: &walrus::Module) -> Result<(), Error> {
    let outside = |segment: String| {
        Err(Error::Uninstantiable {
            guest: guest.to_owned(),
            segment,
        })
    };
    for data in module.data.iter() {
        let DataKind::Active {
            memory,
            offset: ConstExpr::Value(Value::I32(offset)),
        } = data.kind
        else {
            continue;
        };
        let memory = module.memories.get(memory);
        let bytes = memory.initial << memory.page_size_log2.unwrap_or(16);
        let end = u64::from(offset as u32) + data.value.len() as u64;
        if end > bytes {
            return outside(format!(
                "its data segment of {} bytes at {:#x} ends past its {bytes}-byte memory",
                data.value.len(),
                offset as u32
            ));
        }
    }
    for element in module.elements.iter() {
        let ElementKind::Active {
            table,
            offset: ConstExpr::Value(Value::I32(offset)),
        } = element.kind
        else {
            continue;
        };
        let entries = match &element.items {
            ElementItems::Functions(functions) => functions.len(),
            ElementItems::Expressions(_, expressions) => expressions.len(),
        };
        let size = module.tables.get(table).initial;
        if u64::from(offset as u32) + entries as u64 > size {
            return outside(format!(
                "its element segment of {entries} entries at {} ends past its {size}-entry table",
                offset as u32
            ));
        }
    }
    Ok(())
}
