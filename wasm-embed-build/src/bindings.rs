//! The `bindings` stage: typed Rust bindings for a guest. The functions and their wasm types come
//! from the guest's final wasm; parameter names and integer signedness come from its
//! Rust source where the two agree. A skipped build, which has no wasm, takes them from
//! the source alone, so the firmware still type-checks.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::Error;

/// A wasm value type. Guests built for `wasm32v1-none` use no others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValType {
    I32,
    I64,
    F32,
    F64,
}

impl ValType {
    fn wat(self) -> &'static str {
        match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
        }
    }

    /// The Rust type a value of this type has when the source does not say.
    fn rust(self) -> &'static str {
        match self {
            ValType::I32 => "u32",
            ValType::I64 => "u64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
        }
    }
}

/// A parameter or result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The parameter's name in the guest's source, if known.
    pub name: Option<String>,
    pub wasm: ValType,
    /// The Rust type the binding uses: `u32`, `i32`, `u64`, `i64`, `f32` or `f64`.
    pub rust: &'static str,
    /// Whether the guest's source declares it a pointer or reference; `None` when there
    /// is no source to say (a prebuilt module).
    pub pointer: Option<bool>,
}

/// An imported or exported function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// The import module (`host`); empty for an export.
    pub module: String,
    pub name: String,
    pub params: Vec<Value>,
    pub results: Vec<Value>,
}

impl Function {
    fn same_wasm_type(&self, other: &Function) -> bool {
        let types = |values: &[Value]| values.iter().map(|v| v.wasm).collect::<Vec<_>>();
        types(&self.params) == types(&other.params) && types(&self.results) == types(&other.results)
    }

    /// `(i32, i32) -> i32`
    pub(crate) fn wasm_signature(&self) -> String {
        let list = |values: &[Value]| values.iter().map(|v| v.wasm.wat()).collect::<Vec<_>>().join(", ");
        let results = match self.results.len() {
            0 => "()".to_owned(),
            1 => list(&self.results),
            _ => format!("({})", list(&self.results)),
        };
        format!("({}) -> {results}", list(&self.params))
    }

    /// A host import that receives a guest pointer gets the guest's memory, and can fail
    /// on a bad one: where the guest's source declares a pointer or reference parameter,
    /// or, without a source to say (a prebuilt module), where any parameter is an `i32`,
    /// as a wasm32 pointer is.
    fn takes_memory(&self) -> bool {
        !self.module.is_empty() && self.params.iter().any(|p| p.pointer.unwrap_or(p.wasm == ValType::I32))
    }
}

/// What a guest imports and exports, in the order its wasm declares them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    pub imports: Vec<Function>,
    pub exports: Vec<Function>,
}

/// Reads the functions a guest's wasm imports and exports, with the names its `name`
/// section gives their parameters, if it has one (a prebuilt module often does).
pub fn from_wasm(guest: &str, wasm: &[u8]) -> Result<Interface, Error> {
    use wasmparser::{ExternalKind, KnownCustom, Name, Payload, TypeRef};
    let invalid = |e: wasmparser::BinaryReaderError| Error::Parse {
        guest: guest.to_owned(),
        message: e.to_string(),
    };
    let mut types: Vec<wasmparser::FuncType> = Vec::new();
    // The type of every function, imported ones first, as wasm numbers them.
    let mut functions: Vec<u32> = Vec::new();
    // Each import and export as (function index, function).
    let mut imports: Vec<(u32, Function)> = Vec::new();
    let mut exports: Vec<(u32, Function)> = Vec::new();
    let mut local_names: std::collections::HashMap<u32, Vec<(u32, String)>> = Default::default();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    types.push(ty.map_err(invalid)?);
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    let TypeRef::Func(index) = import.ty else {
                        return Err(Error::UnsupportedImport {
                            guest: guest.to_owned(),
                            import: format!("{}.{}", import.module, import.name),
                        });
                    };
                    let ty = types.get(index as usize).ok_or_else(|| bad_index(guest))?;
                    imports.push((functions.len() as u32, function(guest, import.module, import.name, ty)?));
                    functions.push(index);
                }
            }
            Payload::FunctionSection(reader) => {
                for index in reader {
                    functions.push(index.map_err(invalid)?);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    if export.kind != ExternalKind::Func {
                        continue;
                    }
                    let ty = functions
                        .get(export.index as usize)
                        .and_then(|&index| types.get(index as usize))
                        .ok_or_else(|| bad_index(guest))?;
                    exports.push((export.index, function(guest, "", export.name, ty)?));
                }
            }
            Payload::CustomSection(section) => {
                // Names are a help, never a reason to fail: a damaged name section is ignored.
                if let KnownCustom::Name(reader) = section.as_known() {
                    for name in reader.into_iter().flatten() {
                        if let Name::Local(map) = name {
                            for naming in map.into_iter().flatten() {
                                let names = naming.names.into_iter().flatten().map(|n| (n.index, n.name.to_owned()));
                                local_names.insert(naming.index, names.collect());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // A function's first locals are its parameters.
    let named = |(index, mut f): (u32, Function)| {
        for (local, name) in local_names.get(&index).into_iter().flatten() {
            if let Some(param) = f.params.get_mut(*local as usize) {
                param.name = Some(name.clone());
            }
        }
        f
    };
    Ok(Interface {
        imports: imports.into_iter().map(named).collect(),
        exports: exports.into_iter().map(named).collect(),
    })
}

fn bad_index(guest: &str) -> Error {
    Error::Parse {
        guest: guest.to_owned(),
        message: "a function refers to a type that does not exist".to_owned(),
    }
}

fn function(guest: &str, module: &str, name: &str, ty: &wasmparser::FuncType) -> Result<Function, Error> {
    let value = |ty: &wasmparser::ValType| {
        let wasm = match ty {
            wasmparser::ValType::I32 => ValType::I32,
            wasmparser::ValType::I64 => ValType::I64,
            wasmparser::ValType::F32 => ValType::F32,
            wasmparser::ValType::F64 => ValType::F64,
            other => {
                return Err(Error::Parse {
                    guest: guest.to_owned(),
                    message: format!("`{name}` uses the value type {other}, which the firmware's engine does not enable"),
                });
            }
        };
        Ok(Value {
            name: None,
            wasm,
            rust: wasm.rust(),
            pointer: None,
        })
    };
    Ok(Function {
        module: module.to_owned(),
        name: name.to_owned(),
        params: ty.params().iter().map(value).collect::<Result<_, _>>()?,
        results: ty.results().iter().map(value).collect::<Result<_, _>>()?,
    })
}

/// The `extern "C"` functions a guest's Rust source exports (`#[unsafe(no_mangle)]`,
/// `export_name`) and imports (`extern "C"` blocks, `#[link(wasm_import_module)]`),
/// from every `.rs` file beside its library root. Files that do not parse, and types
/// a wasm value cannot have, are left out: this only names what the wasm confirms.
pub fn from_source(lib_path: &Path) -> Interface {
    let mut interface = Interface::default();
    let Some(dir) = lib_path.parent() else {
        return interface;
    };
    for file in rust_files(dir) {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let Ok(parsed) = syn::parse_file(&text) else { continue };
        collect(&parsed.items, &mut interface);
    }
    interface
}

/// The files the bindings read, for Cargo to watch.
pub fn source_files(lib_path: &Path) -> Vec<PathBuf> {
    lib_path.parent().map(rust_files).unwrap_or_default()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn collect(items: &[syn::Item], interface: &mut Interface) {
    for item in items {
        match item {
            syn::Item::Fn(f) if is_c_abi(f.sig.abi.as_ref()) => {
                let name = attribute_value(&f.attrs, "export_name")
                    .or_else(|| has_attribute(&f.attrs, "no_mangle").then(|| f.sig.ident.to_string()));
                if let Some(function) = name.and_then(|name| from_signature(String::new(), name, &f.sig)) {
                    interface.exports.push(function);
                }
            }
            syn::Item::ForeignMod(block) if is_c_abi(Some(&block.abi)) => {
                let module = attribute_value(&block.attrs, "wasm_import_module").unwrap_or_else(|| "env".to_owned());
                for item in &block.items {
                    if let syn::ForeignItem::Fn(f) = item {
                        let name = attribute_value(&f.attrs, "link_name").unwrap_or_else(|| f.sig.ident.to_string());
                        if let Some(function) = from_signature(module.clone(), name, &f.sig) {
                            interface.imports.push(function);
                        }
                    }
                }
            }
            syn::Item::Mod(module) => {
                if let Some((_, items)) = &module.content {
                    collect(items, interface);
                }
            }
            _ => {}
        }
    }
}

fn is_c_abi(abi: Option<&syn::Abi>) -> bool {
    abi.is_some_and(|abi| abi.name.as_ref().is_none_or(|name| name.value() == "C"))
}

fn has_attribute(attrs: &[syn::Attribute], name: &str) -> bool {
    use quote::ToTokens;
    attrs.iter().any(|attr| {
        let text = attr.meta.to_token_stream().to_string();
        text == name || text.replace(' ', "") == format!("unsafe({name})")
    })
}

/// `"v"` from `#[name = "v"]`, `#[unsafe(name = "v")]` or `#[link(name = "v")]`.
fn attribute_value(attrs: &[syn::Attribute], name: &str) -> Option<String> {
    use quote::ToTokens;
    attrs.iter().find_map(|attr| {
        let text = attr.meta.to_token_stream().to_string();
        let after = &text[text.find(name)? + name.len()..];
        let after = after.trim_start().strip_prefix('=')?.trim_start().strip_prefix('"')?;
        Some(after[..after.find('"')?].to_owned())
    })
}

fn from_signature(module: String, name: String, sig: &syn::Signature) -> Option<Function> {
    let mut params = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        let syn::FnArg::Typed(arg) = input else { return None };
        let (wasm, rust) = rust_value(&arg.ty)?;
        let name = match &*arg.pat {
            syn::Pat::Ident(ident) => ident.ident.to_string(),
            _ => format!("arg{index}"),
        };
        let pointer = Some(matches!(*arg.ty, syn::Type::Ptr(_) | syn::Type::Reference(_)));
        params.push(Value { name: Some(name), wasm, rust, pointer });
    }
    let results = match &sig.output {
        syn::ReturnType::Default => Vec::new(),
        syn::ReturnType::Type(_, ty) if matches!(**ty, syn::Type::Never(_)) => Vec::new(),
        syn::ReturnType::Type(_, ty) => {
            let (wasm, rust) = rust_value(ty)?;
            vec![Value { name: None, wasm, rust, pointer: Some(false) }]
        }
    };
    Some(Function {
        module,
        name,
        params,
        results,
    })
}

/// The wasm type a Rust value has on wasm32, and the Rust type the binding gives it.
fn rust_value(ty: &syn::Type) -> Option<(ValType, &'static str)> {
    match ty {
        syn::Type::Ptr(_) | syn::Type::Reference(_) => Some((ValType::I32, "u32")),
        syn::Type::Path(path) if path.qself.is_none() => match path.path.get_ident()?.to_string().as_str() {
            "u8" | "u16" | "u32" | "usize" | "bool" | "char" => Some((ValType::I32, "u32")),
            "i8" | "i16" | "i32" | "isize" => Some((ValType::I32, "i32")),
            "u64" => Some((ValType::I64, "u64")),
            "i64" => Some((ValType::I64, "i64")),
            "f32" => Some((ValType::F32, "f32")),
            "f64" => Some((ValType::F64, "f64")),
            _ => None,
        },
        _ => None,
    }
}

/// The wasm's interface, with names and signedness from `source` for each function
/// whose wasm type the source's signature agrees with.
pub fn merge(wasm: Interface, source: &Interface) -> Interface {
    let named = |functions: Vec<Function>, from: &[Function]| {
        functions
            .into_iter()
            .map(|f| {
                from.iter()
                    .find(|s| s.module == f.module && s.name == f.name && s.same_wasm_type(&f))
                    .cloned()
                    .unwrap_or(f)
            })
            .collect()
    };
    Interface {
        imports: named(wasm.imports, &source.imports),
        exports: named(wasm.exports, &source.exports),
    }
}

/// Names the generated items use, which a generated name must not take.
const TAKEN: [&str; 11] = [
    "Caller", "Context", "Error", "Func", "GuestFunc", "GuestInstance", "GuestMemory", "GuestModule", "GUEST", "CWASM", "WASM",
];

/// The handle's own methods, which an export's method must not take (it gets a `_`).
const HANDLE_METHODS: [&str; 6] = ["new", "new_async", "host", "host_mut", "memory", "set_fuel_per_call"];

/// Whether handles get async methods and async import traits (the `async` feature).
const ASYNC: bool = cfg!(feature = "async");

/// The Rust code that goes inside the guest's module: one trait per import module and
/// the guest's typed handle.
pub fn bindings(guest: &str, interface: &Interface) -> String {
    let mut traits: Vec<(String, String, Vec<&Function>)> = Vec::new();
    for import in &interface.imports {
        match traits.iter_mut().find(|(module, ..)| *module == import.module) {
            Some((.., functions)) => functions.push(import),
            None => traits.push((import.module.clone(), String::new(), vec![import])),
        }
    }
    let mut taken: Vec<String> = TAKEN.iter().map(|s| s.to_string()).collect();
    for (module, name, _) in &mut traits {
        *name = unique(camel_case(module), "Imports", &mut taken);
    }
    let handle = unique(camel_case(guest), "Guest", &mut taken);
    let bounds: String = traits.iter().map(|(_, name, _)| format!("{name} + ")).collect();
    let async_traits: Vec<String> = match ASYNC {
        true => traits.iter().map(|(_, name, _)| unique(format!("Async{name}"), "Imports", &mut taken)).collect(),
        false => Vec::new(),
    };
    let async_bounds: String = async_traits.iter().map(|name| format!("{name} + ")).collect();

    let mut code = String::new();
    for (module, name, functions) in &traits {
        let _ = writeln!(
            code,
            "    /// The functions guest `{guest}` imports from the wasm module `{module}`: implement\n    \
             /// it for the host that [`{handle}::new`] takes.\n    \
             pub trait {name} {{"
        );
        for (index, f) in functions.iter().enumerate() {
            if index > 0 {
                code.push('\n');
            }
            let method = method_name(&f.name);
            let params = typed_params(f);
            let _ = write!(code, "        /// Import `{module}.{}`, wasm type `{}`.", f.name, f.wasm_signature());
            if f.takes_memory() {
                let _ = writeln!(
                    code,
                    " It gets the\n        \
                     /// guest's memory, to read or write what a pointer argument points to."
                );
                let signature = format!(
                    "        fn {method}(&mut self, memory: GuestMemory<'_>{params}) -> Result<{}, Error>;",
                    rust_results(f)
                );
                code.push_str(&wrap_signature(&signature));
            } else {
                code.push('\n');
                let returns = match f.results.is_empty() {
                    true => String::new(),
                    false => format!(" -> {}", rust_results(f)),
                };
                code.push_str(&wrap_signature(&format!("        fn {method}(&mut self{params}){returns};")));
            }
            code.push('\n');
        }
        code.push_str("    }\n\n");
    }
    for ((module, _, functions), name) in traits.iter().zip(&async_traits) {
        let _ = writeln!(
            code,
            "    /// The functions guest `{guest}` imports from the wasm module `{module}`, for async\n    \
             /// calls: implement it for the host that [`{handle}::new_async`] takes. The guest waits\n    \
             /// while a method's future runs, and the executor runs other tasks whenever it is\n    \
             /// pending. The futures must be `Send` (Wasmtime's bound), and an `Err` ends the call\n    \
             /// with `Fault::Import`.\n    \
             pub trait {name} {{"
        );
        for (index, f) in functions.iter().enumerate() {
            if index > 0 {
                code.push('\n');
            }
            let memory = if f.takes_memory() { ", memory: GuestMemory<'_>" } else { "" };
            let _ = writeln!(code, "        /// Import `{module}.{}`, wasm type `{}`.", f.name, f.wasm_signature());
            let signature = format!(
                "        fn {}(&mut self{memory}{}) -> impl ::core::future::Future<Output = Result<{}, Error>> + ::core::marker::Send;",
                method_name(&f.name),
                typed_params(f),
                rust_results(f)
            );
            code.push_str(&wrap_signature(&signature));
            code.push('\n');
        }
        code.push_str("    }\n\n");
    }

    // By name: the same order whether the interface came from the wasm or the source.
    let mut sorted: Vec<&Function> = interface.exports.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let exports: Vec<(String, &Function)> = {
        let mut used: Vec<String> = HANDLE_METHODS.iter().map(|m| m.to_string()).collect();
        sorted.into_iter().map(|f| (unique(method_name(&f.name), "_", &mut used), f)).collect()
    };
    let async_methods: Vec<String> = {
        let mut used: Vec<String> = HANDLE_METHODS.iter().map(|m| m.to_string()).collect();
        used.extend(exports.iter().map(|(method, _)| method.clone()));
        exports.iter().map(|(method, _)| unique(format!("{method}_async"), "_", &mut used)).collect()
    };
    let _ = writeln!(
        code,
        "    /// Guest `{guest}`, instantiated with the host `H` that serves its imports, in a store\n    \
         /// of its own: its methods are the guest's exports. Dropping it frees all of the\n    \
         /// guest's memory.\n    \
         pub struct {handle}<H: 'static> {{\n        \
         instance: GuestInstance<H>,"
    );
    for (method, f) in &exports {
        let _ = writeln!(code, "        {method}: GuestFunc<{}, {}>,", tuple(&f.params), rust_results(f));
    }
    code.push_str("    }\n\n");
    let trait_names: Vec<&str> = traits.iter().map(|(_, name, _)| name.as_str()).collect();
    let _ = writeln!(
        code,
        "    impl<H: {bounds}'static> {handle}<H> {{\n        \
         /// Instantiates guest `{guest}` from its module (`GUEST.load(&engine)`), with `host`\n        \
         /// serving its imports.\n        \
         pub fn new(module: &GuestModule, host: H) -> Result<Self, Error> {{"
    );
    code.push_str(&constructor(handle.as_str(), interface, &traits, &trait_names, &exports, false));
    for (method, f) in &exports {
        let (params, args) = call_params(f);
        let _ = writeln!(code, "\n        /// Calls export `{}`, wasm type `{}`.", f.name, f.wasm_signature());
        let signature = format!("        pub fn {method}(&mut self{params}) -> Result<{}, Error> {{", rust_results(f));
        code.push_str(&wrap_signature(&signature));
        let _ = writeln!(code, "\n            self.instance.call(&self.{method}, {args})\n        }}");
    }
    if ASYNC {
        let async_names: Vec<&str> = async_traits.iter().map(String::as_str).collect();
        let _ = writeln!(
            code,
            "    }}\n\n    \
             impl<H: {async_bounds}::core::marker::Send + 'static> {handle}<H> {{\n        \
             /// Instantiates guest `{guest}` for async calls: its imports may await, and its\n        \
             /// calls yield to the executor every `SETTINGS.fuel_yield_interval` units of fuel.\n        \
             /// Only the `*_async` methods run it.\n        \
             pub async fn new_async(module: &GuestModule, host: H) -> Result<Self, Error> {{"
        );
        code.push_str(&constructor(handle.as_str(), interface, &traits, &async_names, &exports, true));
        for ((method, f), name) in exports.iter().zip(&async_methods) {
            let (params, args) = call_params(f);
            let _ = writeln!(
                code,
                "\n        /// Calls export `{}`, wasm type `{}`, as a future:\n        \
                 /// pending while an import awaits or the guest yields.",
                f.name,
                f.wasm_signature()
            );
            let signature = format!("        pub async fn {name}(&mut self{params}) -> Result<{}, Error> {{", rust_results(f));
            code.push_str(&wrap_signature(&signature));
            let _ = writeln!(code, "\n            self.instance.call_async(&self.{method}, {args}).await\n        }}");
        }
    }
    let _ = write!(
        code,
        "    }}\n\n    \
         impl<H: 'static> {handle}<H> {{\n        \
         /// The host that serves the guest's imports.\n        \
         pub fn host(&self) -> &H {{\n            self.instance.host()\n        }}\n\n        \
         /// The host that serves the guest's imports.\n        \
         pub fn host_mut(&mut self) -> &mut H {{\n            self.instance.host_mut()\n        }}\n\n        \
         /// The guest's memory, bounds-checked: write the guest's input at a pointer it gives,\n        \
         /// or read its output.\n        \
         pub fn memory(&mut self) -> GuestMemory<'_> {{\n            self.instance.memory()\n        }}\n\n        \
         /// Changes the fuel each later call may burn (`None`: unbounded); an error if the build\n        \
         /// compiled no fuel checks (`Builder::fuel` in build.rs).\n        \
         pub fn set_fuel_per_call(&mut self, fuel: Option<u64>) -> Result<(), Error> {{\n            \
         self.instance.set_fuel_per_call(fuel)\n        }}\n    }}\n"
    );
    code
}

/// The body of `new` (or `new_async`): the guest instantiated with one closure per
/// import, each calling the host trait's method, and every export looked up.
fn constructor(
    handle: &str,
    interface: &Interface,
    traits: &[(String, String, Vec<&Function>)],
    trait_names: &[&str],
    exports: &[(String, &Function)],
    asynchronous: bool,
) -> String {
    let mut code = String::new();
    let (new, wait) = if asynchronous { ("new_async", ".await") } else { ("new", "") };
    // Looking up the exports needs it mutable; a guest with none would warn.
    let binding = if exports.is_empty() { "instance" } else { "mut instance" };
    if interface.imports.is_empty() {
        let _ = write!(
            code,
            "            let imports = |_: &mut _| -> [::wasm_embed::__private::wasmtime::Extern; 0] {{ [] }};\n            \
             let {binding} = GuestInstance::{new}(&GUEST, module, host, imports){wait}?;\n",
        );
    } else {
        let _ = write!(code, "            let {binding} = GuestInstance::{new}(&GUEST, module, host, |store| {{\n                [\n");
        for f in &interface.imports {
            let index = traits.iter().position(|(module, ..)| *module == f.module).unwrap();
            let trait_name = trait_names[index];
            let method = method_name(&f.name);
            let names = param_names(f);
            let args: String = names.iter().map(|n| format!(", {n}")).collect();
            let call = match f.takes_memory() {
                true => format!(
                    "let (memory, host) = ::wasm_embed::__private::memory_and_host(&mut caller);\n\
                     <H as {trait_name}>::{method}(host, memory{args})"
                ),
                false => format!("<H as {trait_name}>::{method}(caller.data_mut().host(){args})"),
            };
            let (head, body) = if asynchronous {
                let pattern = match names.len() {
                    1 => format!("({},)", names[0]),
                    _ => format!("({})", names.join(", ")),
                };
                let types = match f.params.len() {
                    1 => format!("({},)", f.params[0].rust),
                    _ => format!("({})", f.params.iter().map(|p| p.rust).collect::<Vec<_>>().join(", ")),
                };
                (
                    format!("Func::wrap_async(&mut *store, |mut caller: Caller<'_, Context<H>>, {pattern}: {types}| {{"),
                    format!(
                        "::wasm_embed::__private::Box::new(async move {{\n    \
                         {}\n        .await\n        .map_err(::wasm_embed::__private::wasmtime::Error::new)\n}})",
                        call.replace('\n', "\n    ")
                    ),
                )
            } else {
                let closure_params: String =
                    f.params.iter().zip(&names).map(|(p, n)| format!(", {n}: {}", p.rust)).collect();
                let body = match f.takes_memory() {
                    true => format!("{call}.map_err(::wasm_embed::__private::wasmtime::Error::new)"),
                    false => call,
                };
                (format!("Func::wrap(&mut *store, |mut caller: Caller<'_, Context<H>>{closure_params}| {{"), body)
            };
            let _ = writeln!(code, "                    {head}");
            for line in body.lines() {
                let _ = writeln!(code, "                        {line}");
            }
            code.push_str("                    })\n                    .into(),\n");
        }
        let _ = write!(code, "                ]\n            }}){wait}?;\n");
    }
    let _ = writeln!(code, "            Ok({handle} {{");
    for (method, f) in exports {
        let _ = writeln!(code, "                {method}: instance.func({:?})?,", f.name);
    }
    code.push_str("                instance,\n            })\n        }\n");
    code
}

/// An export method's parameters (`, a: u32, b: u32`) and the tuple it passes (`(a, b)`).
fn call_params(f: &Function) -> (String, String) {
    let names = param_names(f);
    let params = f.params.iter().zip(&names).map(|(p, n)| format!(", {n}: {}", p.rust)).collect();
    let args = match names.len() {
        1 => names[0].clone(),
        _ => format!("({})", names.join(", ")),
    };
    (params, args)
}

/// The `use` lines the bindings need, so that the generated code has no unused import.
pub fn uses(interface: &Interface) -> String {
    let imports = !interface.imports.is_empty();
    let select = |names: &[(&'static str, bool)]| -> Vec<&'static str> {
        names.iter().filter_map(|&(name, used)| used.then_some(name)).collect()
    };
    let list = |names: &[&str]| match names {
        [one] => one.to_string(),
        _ => format!("{{{}}}", names.join(", ")),
    };
    let mut lines = String::new();
    let wasmtime = select(&[("Caller", imports), ("Func", imports)]);
    if !wasmtime.is_empty() {
        let _ = writeln!(lines, "    use ::wasm_embed::__private::wasmtime::{};", list(&wasmtime));
    }
    let private = select(&[("Context", imports), ("GuestFunc", !interface.exports.is_empty()), ("GuestInstance", true)]);
    let _ = writeln!(lines, "    use ::wasm_embed::__private::{};", list(&private));
    let _ = writeln!(lines, "    use ::wasm_embed::{{Error, GuestMemory, GuestModule}};");
    lines
}

/// Breaks a one-line signature ending in `;` or ` {` over lines, one parameter each,
/// when it is wider than rustfmt's 100 columns, the way rustfmt does.
fn wrap_signature(line: &str) -> String {
    if line.len() <= 100 {
        return line.to_owned();
    }
    let indent = &line[..line.len() - line.trim_start().len()];
    let open = line.find('(').unwrap();
    // Parameters are numbers and memory, never parenthesised; the result may be `()`.
    let close = open + line[open..].find(')').unwrap();
    let mut out = format!("{}\n", &line[..=open]);
    for param in line[open + 1..close].split(", ") {
        let _ = writeln!(out, "{indent}    {param},");
    }
    let _ = write!(out, "{indent}{}", &line[close..]);
    out
}

/// Each parameter's name in the bindings: its name in the guest (made an identifier), or
/// `arg` and its position where it has none, or shares one.
fn param_names(f: &Function) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (i, p) in f.params.iter().enumerate() {
        let name = match p.name.as_deref().map(|n| n.trim_start_matches('_')) {
            Some(name) if !name.is_empty() => method_name(name),
            _ => format!("arg{i}"),
        };
        names.push(if names.contains(&name) { format!("arg{i}") } else { name });
    }
    names
}

fn typed_params(f: &Function) -> String {
    param_names(f).iter().zip(&f.params).map(|(n, p)| format!(", {n}: {}", p.rust)).collect()
}

fn tuple(values: &[Value]) -> String {
    match values {
        [one] => one.rust.to_owned(),
        _ => format!("({})", values.iter().map(|v| v.rust).collect::<Vec<_>>().join(", ")),
    }
}

fn rust_results(f: &Function) -> String {
    tuple(&f.results)
}

/// The name a guest's import or export has in its bindings: the name itself when it is a
/// Rust identifier (a keyword is written raw, `r#type`), or else the name with every
/// character but ASCII letters, digits and `_` replaced by `_`, and a `_` in front of a
/// leading digit (`do-it.now` is `do_it_now`, `2x` is `_2x`).
fn method_name(name: &str) -> String {
    identifier(&name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_"))
}

/// Whether `name` is its own binding: no character had to be replaced.
fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The module name of a prebuilt guest from its file name (`coremark-minimal.wasm` is
/// `coremark_minimal`): lower case, as Rust modules are, and never a keyword, since it
/// also names the `.cwasm` file.
pub fn module_name(stem: &str) -> String {
    let name = method_name(&stem.to_ascii_lowercase());
    match name.strip_prefix("r#") {
        Some(keyword) => format!("{keyword}_"),
        None => name,
    }
}

/// The build warnings for a guest's names that are not Rust identifiers, each saying
/// what the name is in the bindings; an error if two names would become the same.
pub fn check_names(guest: &str, interface: &Interface) -> Result<Vec<String>, Error> {
    let clash = |first: &str, second: &str, binding: String| Error::NameClash {
        guest: guest.to_owned(),
        first: first.to_owned(),
        second: second.to_owned(),
        binding,
    };
    let mut warnings = Vec::new();
    // Exports share the handle; each import module's functions share its trait.
    let mut groups: Vec<(&str, Vec<&Function>)> = vec![("export", interface.exports.iter().collect())];
    let mut traits: Vec<(String, &str)> = Vec::new();
    for f in &interface.imports {
        if let Some((_, functions)) = groups.iter_mut().skip(1).find(|(_, g)| g[0].module == f.module) {
            functions.push(f);
            continue;
        }
        let name = camel_case(&f.module);
        if let Some((_, first)) = traits.iter().find(|(t, _)| *t == name) {
            return Err(clash(&format!("import module {first}"), &format!("import module {}", f.module), name));
        }
        traits.push((name, &f.module));
        groups.push(("import", vec![f]));
    }
    for (kind, functions) in groups {
        let mut seen: Vec<(String, String)> = Vec::new();
        for f in functions {
            let binding = method_name(&f.name);
            let label = if f.module.is_empty() { f.name.clone() } else { format!("{}.{}", f.module, f.name) };
            if let Some((_, first)) = seen.iter().find(|(b, _)| *b == binding) {
                return Err(clash(first, &label, binding));
            }
            if !is_identifier(&f.name) {
                warnings.push(format!("guest `{guest}`: {kind} `{label}` is not a Rust identifier; its binding is `{binding}`"));
            }
            seen.push((binding, label));
        }
    }
    Ok(warnings)
}

/// A name as a Rust identifier: a raw one for a keyword.
fn identifier(name: &str) -> String {
    let name = if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{name}")
    } else {
        name.to_owned()
    };
    match name.as_str() {
        "self" | "Self" | "super" | "crate" => format!("{name}_"),
        "as" | "async" | "await" | "break" | "const" | "continue" | "dyn" | "else" | "enum" | "extern" | "false"
        | "fn" | "for" | "gen" | "if" | "impl" | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub"
        | "ref" | "return" | "static" | "struct" | "trait" | "true" | "type" | "unsafe" | "use" | "where" | "while"
        | "yield" | "abstract" | "become" | "box" | "do" | "final" | "macro" | "override" | "priv" | "try"
        | "typeof" | "unsized" | "virtual" => format!("r#{name}"),
        _ => name,
    }
}

/// `out_of_bounds` as `OutOfBounds`.
pub(crate) fn camel_case(name: &str) -> String {
    let mut out = String::new();
    for word in name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        out.extend(chars.next().map(|c| c.to_ascii_uppercase()));
        out.push_str(chars.as_str());
    }
    identifier(&out)
}

/// `name`, or `name` with `suffix` (and a number) if it is taken; marks it taken.
fn unique(name: String, suffix: &str, taken: &mut Vec<String>) -> String {
    let mut candidate = name.clone();
    let mut n = 1;
    while taken.contains(&candidate) {
        candidate = if n == 1 { format!("{name}{suffix}") } else { format!("{name}{suffix}{n}") };
        n += 1;
    }
    taken.push(candidate.clone());
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the on-device check: a long signature returning `()` was cut at the
    /// result's parenthesis, and the firmware did not compile.
    #[test]
    fn a_long_signature_wraps_its_parameters_whatever_it_returns() {
        let params = ", a: u64, b: u64, c: u64, d: u64, e: u64, f: u64, g: u64";
        for result in ["()", "u32"] {
            let line = format!("        pub fn export12(&mut self{params}) -> Result<{result}, Error> {{");
            let expected = format!(
                "        pub fn export12(\n            &mut self,\n{}        ) -> Result<{result}, Error> {{",
                params.split(", ").skip(1).map(|p| format!("            {p},\n")).collect::<String>()
            );
            assert_eq!(wrap_signature(&line), expected);
        }
    }

    #[test]
    fn names_become_rust_identifiers() {
        assert_eq!(camel_case("out_of_bounds"), "OutOfBounds");
        assert_eq!(camel_case("wasi_snapshot_preview1"), "WasiSnapshotPreview1");
        assert_eq!(method_name("type"), "r#type");
        assert_eq!(method_name("do-it.now"), "do_it_now");
        assert_eq!(method_name("2x"), "_2x");
        let mut taken = vec!["Error".to_owned()];
        assert_eq!(unique("Error".into(), "Imports", &mut taken), "ErrorImports");
        assert_eq!(unique("Error".into(), "Imports", &mut taken), "ErrorImports2");
    }

    #[test]
    fn source_names_are_used_only_where_the_wasm_type_agrees() {
        let source = r#"
            #[link(wasm_import_module = "host")]
            unsafe extern "C" { fn log(ptr: *const u8, len: usize); }
            #[unsafe(no_mangle)]
            extern "C" fn add(a: i32, b: i32) -> i32 { a + b }
            #[unsafe(export_name = "renamed")]
            extern "C" fn inner(value: u64) {}
            #[unsafe(no_mangle)]
            extern "C" fn changed(x: u32) -> u32 { x }
        "#;
        let mut from_rust = Interface::default();
        collect(&syn::parse_file(source).unwrap().items, &mut from_rust);
        let wasm = wat::parse_str(
            r#"(module
                (import "host" "log" (func (param i32 i32)))
                (func (export "add") (param i32 i32) (result i32) local.get 0)
                (func (export "renamed") (param i64))
                (func (export "changed") (param i64) (result i64) local.get 0))"#,
        )
        .unwrap();
        let merged = merge(from_wasm("g", &wasm).unwrap(), &from_rust);
        let names = |f: &Function| f.params.iter().map(|p| p.name.clone().unwrap_or_default()).collect::<Vec<_>>();
        assert_eq!(names(&merged.imports[0]), ["ptr", "len"]);
        assert_eq!(merged.exports[0].params[0].rust, "i32");
        assert_eq!(names(&merged.exports[1]), ["value"]);
        // The source says u32, the wasm i64: the wasm wins and the name is not trusted.
        assert_eq!(names(&merged.exports[2]), [""]);
        assert_eq!(merged.exports[2].params[0].rust, "u64");
    }
}
