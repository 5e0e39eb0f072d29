//! `inspect` on a `.cwasm`: what Wasmtime recorded in it, read with Wasmtime's own types
//! (`wasmtime-environ`, the version the build precompiles with), so that a `.cwasm` for
//! a 32-bit device can be read on a 64-bit host, where Wasmtime would refuse to load it.

use object::{Object, ObjectSection};
use wasm_embed::update::WASMTIME_VERSION;
use wasmtime_environ::component::{ComponentArtifacts, ComponentTypes, InterfaceType, TypeDef};
use wasmtime_environ::obj::{ELF_WASM_ENGINE, ELF_WASMTIME_INFO};
use wasmtime_environ::{
    CompiledFunctionsTable, CompiledModuleInfo, EntityType, FlagValue, ModuleTypes, Tunables, WasmFuncType,
};

/// The ELF file Wasmtime writes starts like every ELF file.
pub const CWASM_MAGIC: &[u8] = b"\x7fELF";

/// What `.wasmtime.engine` holds after the version: Wasmtime's compatibility record, in
/// the order Wasmtime serializes it.
#[derive(serde::Deserialize)]
struct EngineRecord<'a> {
    target: String,
    #[serde(borrow)]
    shared_flags: Vec<(&'a str, FlagValue<'a>)>,
    #[serde(borrow)]
    isa_flags: Vec<(&'a str, FlagValue<'a>)>,
    tunables: Tunables,
    features: u64,
}

/// Prints what the `.cwasm` in `bytes` holds.
pub fn cwasm(name: &str, bytes: &[u8]) -> Result<(), String> {
    let file = parse(bytes).map_err(|e| format!("{name} is not a .cwasm: its ELF header does not read ({e})"))?;
    let section = |wanted: &str| {
        file.section_by_name(wanted)
            .and_then(|s| s.data().ok())
            .ok_or_else(|| format!("{name} is an ELF file but not a Wasmtime .cwasm (no {wanted} section)"))
    };
    let (version, record) = engine_section(section(ELF_WASM_ENGINE)?).ok_or_else(|| {
        format!("{name}: its {ELF_WASM_ENGINE} section is not in the form Wasmtime {WASMTIME_VERSION} writes; inspect it with the cargo-wasm-embed of its Wasmtime version")
    })?;
    let record: EngineRecord = postcard::from_bytes(record).map_err(|e| {
        format!("{name}: its engine record does not read ({e}); made by Wasmtime {version}, read by {WASMTIME_VERSION}")
    })?;
    let component = matches!(file.flags(), object::FileFlags::Elf { e_flags, .. } if e_flags & wasmtime_environ::obj::EF_WASMTIME_COMPONENT != 0);
    println!("file:      {name}, {} B", bytes.len());
    println!("kind:      {}", if component { "component" } else { "core module" });
    // Wasmtime records its major version alone: a .cwasm loads in any release of it.
    println!("wasmtime:  {version}");
    println!("target:    {}", record.target);
    let t = &record.tunables;
    println!(
        "settings:  fuel {}, epoch interruption {}, signals-based traps {}, memory reservation {} B, guard {} B, \
         memory may move {}",
        on_off(t.consume_fuel),
        on_off(t.epoch_interruption),
        on_off(t.signals_based_traps),
        t.memory_reservation,
        t.memory_guard_size,
        yes_no(t.memory_may_move)
    );
    let flags: Vec<String> = record
        .shared_flags
        .iter()
        .chain(&record.isa_flags)
        .filter_map(flag)
        .collect();
    println!("compiler:  {}", flags.join(", "));
    let features = wasmtime_environ::wasmparser::WasmFeatures::from_bits_truncate(record.features);
    let names: Vec<String> = features.iter_names().map(|(name, _)| name.to_lowercase()).collect();
    println!("features:  {}", names.join(" "));
    print_sections(&file);
    let info = section(ELF_WASMTIME_INFO)?;
    if component {
        let artifacts: ComponentArtifacts =
            postcard::from_bytes(info).map_err(|e| format!("{name}: its component record does not read: {e}"))?;
        print_component(&artifacts);
    } else {
        let (info, _, types): (CompiledModuleInfo, CompiledFunctionsTable, ModuleTypes) =
            postcard::from_bytes(info).map_err(|e| format!("{name}: its module record does not read: {e}"))?;
        print_module(&info, &types);
    }
    Ok(())
}

/// The `.cwasm` in `bytes`, as an ELF file, or why it does not read as one.
pub fn parse(bytes: &[u8]) -> Result<object::File<'_>, object::Error> {
    object::File::parse(bytes)
}

/// Prints the sizes of a `.cwasm`'s sections.
pub fn print_sections(file: &object::File<'_>) {
    println!("sections:");
    for section in file.sections() {
        if section.size() > 0 {
            println!("  {:<24} {:>8} B", section.name().unwrap_or("?"), section.size());
        }
    }
}

/// The version string and the record after it: a format byte, then a length-prefixed
/// version.
fn engine_section(data: &[u8]) -> Option<(&str, &[u8])> {
    let (&format, data) = data.split_first()?;
    let (&len, data) = data.split_first()?;
    if format != 0 || data.len() < usize::from(len) {
        return None;
    }
    let (version, record) = data.split_at(usize::from(len));
    Some((std::str::from_utf8(version).ok()?, record))
}

fn flag((name, value): &(&str, FlagValue)) -> Option<String> {
    match value {
        FlagValue::Enum(v) => Some(format!("{name}={v}")),
        FlagValue::Num(n) => Some(format!("{name}={n}")),
        FlagValue::Bool(true) => Some((*name).to_owned()),
        FlagValue::Bool(false) => None,
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn yes_no(yes: bool) -> &'static str {
    if yes { "yes" } else { "no" }
}

fn print_module(info: &CompiledModuleInfo, types: &ModuleTypes) {
    let module = &info.module;
    let describe = |ty: EntityType| match ty {
        EntityType::Function(index) => function(types[index.unwrap_module_type_index()].unwrap_func()),
        EntityType::Memory(memory) => {
            let page = 1u64 << memory.page_size_log2;
            let bytes = memory.limits.min * page;
            match memory.limits.max {
                Some(max) if max == memory.limits.min => format!("memory of {bytes} B (fixed)"),
                Some(max) => format!("memory of {bytes} B, at most {} B", max * page),
                None => format!("memory of {bytes} B, growable"),
            }
        }
        EntityType::Global(global) => format!(
            "global {}{}",
            if global.mutability { "mut " } else { "" },
            global.wasm_ty
        ),
        EntityType::Table(table) => format!("table of {} {}", table.limits.min, table.ref_type),
        EntityType::Tag(_) => "tag".to_owned(),
    };
    println!("imports:");
    for (module_name, field, ty) in module.imports() {
        println!("  {module_name}.{field}: {}", describe(ty));
    }
    println!("exports:");
    for (name, index) in module.exports.iter() {
        println!("  {}: {}", &module.strings[*name], describe(module.type_of(*index)));
    }
}

fn function(ty: &WasmFuncType) -> String {
    let list =
        |types: &[wasmtime_environ::WasmValType]| types.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    match ty.results() {
        [] => format!("func({})", list(ty.params())),
        [one] => format!("func({}) -> {one}", list(ty.params())),
        many => format!("func({}) -> ({})", list(ty.params()), list(many)),
    }
}

fn print_component(artifacts: &ComponentArtifacts) {
    let types = &artifacts.types;
    let component = &types[artifacts.ty];
    for (title, items) in [("imports", &component.imports), ("exports", &component.exports)] {
        println!("{title}:");
        for (name, item) in items {
            println!("  {name}: {}", definition(types, &item.ty));
        }
    }
}

fn definition(types: &ComponentTypes, ty: &TypeDef) -> String {
    match ty {
        TypeDef::ComponentFunc(index) => {
            let func = &types[*index];
            let params: Vec<String> = func
                .param_names
                .iter()
                .zip(types[func.params].types.iter())
                .map(|(name, ty)| format!("{name}: {}", interface(types, ty)))
                .collect();
            let results: Vec<String> = types[func.results]
                .types
                .iter()
                .map(|ty| interface(types, ty))
                .collect();
            match results.as_slice() {
                [] => format!("func({})", params.join(", ")),
                [one] => format!("func({}) -> {one}", params.join(", ")),
                _ => format!("func({}) -> ({})", params.join(", "), results.join(", ")),
            }
        }
        TypeDef::ComponentInstance(index) => {
            let names: Vec<&str> = types[*index].exports.keys().map(String::as_str).collect();
            format!("instance {{ {} }}", names.join(", "))
        }
        TypeDef::Interface(ty) => format!("type {}", interface(types, ty)),
        TypeDef::Resource(_) => "resource".to_owned(),
        other => format!("{other:?}"),
    }
}

/// A component type written as WIT writes it.
fn interface(types: &ComponentTypes, ty: &InterfaceType) -> String {
    match ty {
        InterfaceType::Bool => "bool".into(),
        InterfaceType::S8 => "s8".into(),
        InterfaceType::U8 => "u8".into(),
        InterfaceType::S16 => "s16".into(),
        InterfaceType::U16 => "u16".into(),
        InterfaceType::S32 => "s32".into(),
        InterfaceType::U32 => "u32".into(),
        InterfaceType::S64 => "s64".into(),
        InterfaceType::U64 => "u64".into(),
        InterfaceType::Float32 => "f32".into(),
        InterfaceType::Float64 => "f64".into(),
        InterfaceType::Char => "char".into(),
        InterfaceType::String => "string".into(),
        InterfaceType::List(index) => format!("list<{}>", interface(types, &types[*index].element)),
        InterfaceType::Option(index) => format!("option<{}>", interface(types, &types[*index].ty)),
        InterfaceType::Result(index) => {
            let result = &types[*index];
            let side = |ty: &Option<InterfaceType>| ty.as_ref().map_or("_".to_owned(), |ty| interface(types, ty));
            format!("result<{}, {}>", side(&result.ok), side(&result.err))
        }
        InterfaceType::Tuple(index) => {
            let items: Vec<String> = types[*index].types.iter().map(|ty| interface(types, ty)).collect();
            format!("tuple<{}>", items.join(", "))
        }
        InterfaceType::Record(index) => {
            let fields: Vec<String> = types[*index]
                .fields
                .iter()
                .map(|f| format!("{}: {}", f.name, interface(types, &f.ty)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        InterfaceType::Enum(index) => format!("enum {{ {} }}", names(&types[*index].names)),
        InterfaceType::Flags(index) => format!("flags {{ {} }}", names(&types[*index].names)),
        InterfaceType::Variant(index) => {
            let cases: Vec<String> = types[*index]
                .cases
                .iter()
                .map(|(name, ty)| match ty {
                    Some(ty) => format!("{name}({})", interface(types, ty)),
                    None => name.clone(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        other => format!("{other:?}"),
    }
}

fn names<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    names.into_iter().map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// `bytes` in lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `bytes`, as `sha256sum` prints it.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
