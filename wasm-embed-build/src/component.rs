//! Component guests: a guest crate with a WIT world (a `wit/` directory beside its
//! `Cargo.toml`) is built to a core module as any guest, which wit-bindgen marks with the
//! world it implements. Its world is read (`world`) before the strip stage drops it;
//! strip, wasm-opt and page size then work on the core module as for any guest, since
//! they keep its imports and exports (and so its canonical ABI); `wrap` makes the
//! component from the core module and the world in `wit/`, and the stack stage bounds
//! the component's Pulley stack from its compiled code.

use std::path::{Path, PathBuf};

use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::{Resolve, WorldId};

use crate::Error;

/// A component guest's world, from its `wit/` directory.
pub struct World {
    resolve: Resolve,
    world: WorldId,
    /// The WIT files, for the firmware's bindings and its rebuilds.
    pub files: Vec<PathBuf>,
    pub dir: PathBuf,
}

impl World {
    /// The world's name, which the firmware's bindings are generated for.
    pub fn name(&self) -> &str {
        &self.resolve.worlds[self.world].name
    }

    /// Whether the world imports functions, for which `bindgen!` makes an `…Imports`
    /// trait and an `add_to_linker`; a world that imports none gets neither.
    pub fn imports_functions(&self) -> bool {
        let world = &self.resolve.worlds[self.world];
        world.imports.values().any(|item| !matches!(item, wit_parser::WorldItem::Type { .. }))
    }

    /// The core exports (by the start of their names) this world's component never calls:
    /// the guest's allocator, when only numbers cross the world. wit-bindgen exports
    /// `cabi_realloc` whatever the world; the component would carry its code and
    /// trampolines into flash for nothing.
    pub fn unused_exports(&self) -> &'static [&'static str] {
        let world = &self.resolve.worlds[self.world];
        let only_numbers = world.imports.values().chain(world.exports.values()).all(|item| match item {
            wit_parser::WorldItem::Function(function) => {
                // More than 16 parameters are passed in memory the host allocates.
                function.params.len() <= 16
                    && function.params.iter().map(|param| &param.ty).chain(&function.result).all(is_number)
            }
            // Types declare nothing that is called; an interface is not looked into.
            wit_parser::WorldItem::Type { .. } => true,
            wit_parser::WorldItem::Interface { .. } => false,
        });
        // `cabi_realloc`, and wit-bindgen's own `cabi_realloc_wit_bindgen_<version>`.
        if only_numbers { &["cabi_realloc"] } else { &[] }
    }
}

/// Reads the world in `dir` and checks that the guest's wasm was built for it: the world
/// wit-bindgen recorded in the wasm must be the very world of `wit/`, or the firmware's
/// bindings (made from `wit/`) would not fit the guest.
pub fn world(guest: &str, dir: &Path, wasm: &[u8]) -> Result<World, Error> {
    let mismatch = |reason: String| Error::WitMismatch {
        guest: guest.to_owned(),
        dir: dir.to_owned(),
        reason,
    };
    let wit = |message: String| Error::Wit {
        guest: guest.to_owned(),
        dir: dir.to_owned(),
        message,
    };
    let mut resolve = Resolve::default();
    let (package, files) = resolve.push_path(dir).map_err(|e| wit(one_line(&e)))?;
    let world = match resolve.packages[package].worlds.len() {
        1 => *resolve.packages[package].worlds.values().next().expect("one world"),
        0 => return Err(wit("it declares no world".into())),
        n => return Err(wit(format!("it declares {n} worlds; keep the guest's one world there"))),
    };
    let (built, built_world) = built_world(wasm).map_err(|e| mismatch(one_line(&e)))?;
    let ours = encode(&resolve, world).map_err(|e| wit(one_line(&e)))?;
    let theirs = encode(&built, built_world).map_err(|e| mismatch(one_line(&e)))?;
    if ours != theirs {
        return Err(mismatch(difference(&resolve, world, &built, built_world)));
    }
    Ok(World {
        resolve,
        world,
        files: files.paths().map(Path::to_owned).collect(),
        dir: dir.to_owned(),
    })
}

/// An error and its causes on one line: wit-parser's point at the source over several.
fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}").lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The world wit-bindgen recorded in the guest's wasm: a custom section whose name
/// starts with `component-type`, itself a component that encodes the world.
fn built_world(wasm: &[u8]) -> anyhow::Result<(Resolve, WorldId)> {
    let mut worlds = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::CustomSection(section) = payload?
            && section.name().starts_with("component-type")
        {
            worlds.push(wit_parser::decoding::decode_world(section.data())?);
        }
    }
    match worlds.len() {
        1 => Ok(worlds.remove(0)),
        0 => anyhow::bail!(
            "its wasm records no WIT world (is it built with wit-bindgen's `generate!`?)"
        ),
        _ => anyhow::bail!("its wasm records {} WIT worlds, not one", worlds.len()),
    }
}

/// A world's type as the Component Model encodes it: names and types, not docs.
fn encode(resolve: &Resolve, world: WorldId) -> anyhow::Result<Vec<u8>> {
    wit_component::metadata::encode(resolve, world, StringEncoding::UTF8, None)
}

/// Which import or export of `wit/`'s world the guest's differs in.
fn difference(
    ours: &Resolve,
    our_world: WorldId,
    theirs: &Resolve,
    their_world: WorldId,
) -> String {
    let (a, b) = (&ours.worlds[our_world], &theirs.worlds[their_world]);
    if a.name != b.name {
        return format!("the guest implements world `{}`, not `{}`", b.name, a.name);
    }
    let names = |items: &wit_parser::IndexMap<wit_parser::WorldKey, wit_parser::WorldItem>,
                 resolve: &Resolve| {
        items
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect::<Vec<_>>()
    };
    for (what, mine, its) in [
        ("import", names(&a.imports, ours), names(&b.imports, theirs)),
        ("export", names(&a.exports, ours), names(&b.exports, theirs)),
    ] {
        if let Some(missing) = mine.iter().find(|n| !its.contains(n)) {
            return format!("the guest lacks the {what} `{missing}`");
        }
        if let Some(extra) = its.iter().find(|n| !mine.contains(n)) {
            return format!("the guest has an {what} `{extra}` that `wit/` does not declare");
        }
    }
    "the guest's world has the same names, but other types".into()
}

/// Whether a value of type `ty` is one number (or bool or char): lifted and lowered
/// without touching the guest's memory.
fn is_number(ty: &wit_parser::Type) -> bool {
    !matches!(ty, wit_parser::Type::String | wit_parser::Type::ErrorContext | wit_parser::Type::Id(_))
}

/// The component: the core module as the stages left it, with `world` for its type.
pub fn wrap(guest: &str, core: &[u8], world: &World) -> Result<Vec<u8>, Error> {
    let failed = |e: anyhow::Error| Error::Component {
        guest: guest.to_owned(),
        message: one_line(&e),
    };
    let mut module = core.to_vec();
    wit_component::embed_component_metadata(
        &mut module,
        &world.resolve,
        world.world,
        StringEncoding::UTF8,
    )
    .map_err(failed)?;
    // Wasmtime validates the component when it precompiles it, with the firmware's
    // features (custom page sizes among them, which wit-component's validator lacks).
    ComponentEncoder::default()
        .validate(false)
        .module(&module)
        .and_then(|mut encoder| encoder.encode())
        .map_err(failed)
}

/// The Rust a component guest gets in the emitted module: the host bindings Wasmtime's
/// `bindgen!` makes from its world (in `wit`), and a handle that instantiates it and
/// calls its exports with the fuel and errors of every guest.
pub fn handle(name: &str, world: &World) -> String {
    let handle = crate::bindings::camel_case(&name);
    let bindings = crate::bindings::camel_case(&world.name());
    let dir = &world.dir;
    let world_name = world.name();
    let imports = world.imports_functions();
    let mut code = blocking_handle(name, &handle, &bindings, dir, &world_name, imports);
    if cfg!(feature = "async") {
        code.push_str(&async_handle(name, &handle, &bindings, dir, &world_name, imports));
    }
    code
}

/// The host's bound and the closure that links its imports, in the bindings module
/// `module`: a world without function imports has no `…Imports` trait to bound by, and
/// nothing to link.
fn host_bound_and_link(module: &str, bindings: &str, imports: bool) -> (String, String) {
    if !imports {
        return (String::new(), "|_linker| Ok(())".to_owned());
    }
    let link = format!(
        "|linker| {{
                    {module}::{bindings}::add_to_linker::<_, ::wasm_embed::__private::wasmtime::component::HasSelf<H>>(
                        linker,
                        |context: &mut ::wasm_embed::__private::Context<H>| context.host(),
                    )
                }}"
    );
    (format!("{module}::{bindings}Imports + "), link)
}

/// The `wit` module and the blocking handle.
fn blocking_handle(name: &str, handle: &str, bindings: &str, dir: &Path, world_name: &str, imports: bool) -> String {
    let (bound, link) = host_bound_and_link("wit", bindings, imports);
    format!(
        r#"    /// The host bindings of the guest's WIT world `{world_name}` (`wit/` beside its
    /// `Cargo.toml`), made by Wasmtime's `bindgen!`: the world's records, variants and
    /// results as Rust types (comparable with `==`), `{bindings}Imports` for the
    /// firmware to implement, and `{bindings}`, whose `call_*` methods are the exports.
    pub mod wit {{
        ::wasm_embed::__private::wasmtime::component::bindgen!({{
            path: {dir:?},
            world: {world_name:?},
            wasmtime_crate: ::wasm_embed::__private::wasmtime,
            additional_derives: [PartialEq],
        }});
    }}

    /// Guest `{name}`, a component instantiated with the host `H` that serves its
    /// world's imports, in a store of its own. Dropping it frees all of its memory.
    pub struct {handle}<H: 'static> {{
        instance: ::wasm_embed::__private::ComponentInstance<H, wit::{bindings}>,
    }}

    impl<H: {bound}'static> {handle}<H> {{
        /// Instantiates guest `{name}` from its component
        /// (`GUEST.load_component(&engine)`), with `host` serving its imports.
        pub fn new(component: &::wasm_embed::GuestComponent, host: H) -> Result<Self, ::wasm_embed::Error> {{
            let instance = ::wasm_embed::__private::ComponentInstance::new(
                &GUEST,
                component,
                host,
                {link},
                |store, component, linker| wit::{bindings}::instantiate(store, component, linker),
            )?;
            Ok(Self {{ instance }})
        }}

        /// Calls the export `export` through `wit::{bindings}`'s `call_{{export}}` method,
        /// refuelled first when fuel is on: a trap or a failing import is an
        /// [`::wasm_embed::Error`], and the component must then be instantiated again.
        pub fn call<R>(
            &mut self,
            export: &'static str,
            call: impl FnOnce(
                &wit::{bindings},
                &mut ::wasm_embed::__private::wasmtime::Store<::wasm_embed::__private::Context<H>>,
            ) -> ::wasm_embed::__private::wasmtime::Result<R>,
        ) -> Result<R, ::wasm_embed::Error> {{
            self.instance.call(export, call)
        }}

        /// Changes the fuel each later call may burn (`None`: unbounded).
        pub fn set_fuel_per_call(&mut self, fuel: Option<u64>) -> Result<(), ::wasm_embed::Error> {{
            self.instance.set_fuel_per_call(fuel)
        }}

        /// The host that serves the guest's imports.
        pub fn host(&self) -> &H {{
            self.instance.host()
        }}

        /// The host that serves the guest's imports.
        pub fn host_mut(&mut self) -> &mut H {{
            self.instance.host_mut()
        }}
    }}
"#
    )
}

/// With the `async` feature: the `wit_async` module, whose bindings await, and the
/// handle `<Guest>Async` that instantiates and calls through them.
fn async_handle(name: &str, handle: &str, bindings: &str, dir: &Path, world_name: &str, imports: bool) -> String {
    let (bound, link) = host_bound_and_link("wit_async", bindings, imports);
    format!(
        r#"
    /// The host bindings of the guest's WIT world `{world_name}` for async calls, made by
    /// Wasmtime's `bindgen!` with async imports and exports: the world's types again (of
    /// their own), `{bindings}Imports` whose methods return `Send` futures of
    /// `wasmtime::Result` (an `Err` ends the call with `Fault::Import`), and `{bindings}`,
    /// whose `call_*` methods are futures.
    pub mod wit_async {{
        ::wasm_embed::__private::wasmtime::component::bindgen!({{
            path: {dir:?},
            world: {world_name:?},
            wasmtime_crate: ::wasm_embed::__private::wasmtime,
            additional_derives: [PartialEq],
            imports: {{ default: async | trappable }},
            exports: {{ default: async }},
        }});
    }}

    /// Guest `{name}` for async calls: a component instantiated with the host `H` that
    /// serves its world's imports through `wit_async`, in a store of its own. Its calls
    /// yield every `SETTINGS.fuel_yield_interval` units of fuel.
    pub struct {handle}Async<H: 'static> {{
        instance: ::wasm_embed::__private::ComponentInstance<H, wit_async::{bindings}>,
    }}

    impl<H: {bound}::core::marker::Send + 'static> {handle}Async<H> {{
        /// Instantiates guest `{name}` from its component
        /// (`GUEST.load_component(&engine)`), with `host` serving its imports.
        pub async fn new_async(component: &::wasm_embed::GuestComponent, host: H) -> Result<Self, ::wasm_embed::Error> {{
            let instance = ::wasm_embed::__private::ComponentInstance::new_async(
                &GUEST,
                component,
                host,
                {link},
                |store, component, linker| {{
                    ::wasm_embed::__private::Box::pin(wit_async::{bindings}::instantiate_async(store, component, linker))
                }},
            )
            .await?;
            Ok(Self {{ instance }})
        }}

        /// Calls the export `export` through `wit_async::{bindings}`'s `call_{{export}}`
        /// method, its future boxed (`|world, store| Box::pin(world.call_x(store, ..))`),
        /// refuelled first when fuel is on: a trap or a failing import is an
        /// [`::wasm_embed::Error`], and the component must then be instantiated again.
        pub async fn call_async<'a, R>(
            &'a mut self,
            export: &'static str,
            call: impl FnOnce(
                &'a wit_async::{bindings},
                &'a mut ::wasm_embed::__private::wasmtime::Store<::wasm_embed::__private::Context<H>>,
            ) -> ::wasm_embed::__private::BindingsFuture<'a, R>,
        ) -> Result<R, ::wasm_embed::Error> {{
            self.instance.call_async(export, call).await
        }}

        /// Changes the fuel each later call may burn (`None`: unbounded).
        pub fn set_fuel_per_call(&mut self, fuel: Option<u64>) -> Result<(), ::wasm_embed::Error> {{
            self.instance.set_fuel_per_call(fuel)
        }}

        /// The host that serves the guest's imports.
        pub fn host(&self) -> &H {{
            self.instance.host()
        }}

        /// The host that serves the guest's imports.
        pub fn host_mut(&mut self) -> &mut H {{
            self.instance.host_mut()
        }}
    }}
"#
    )
}
