//! The pipeline: every guest goes through the same stages, in this order.
//!
//! 1. `locate`: find the guest, a crate (checked to build a `.wasm`) or a prebuilt file;
//! 2. `compile`: build guest crates for `wasm32v1-none` (one nested cargo per workspace)
//!    or read the prebuilt file; check the wasm is what the firmware's engine runs;
//!
//! then, one guest at a time, [`STAGES`]:
//!
//! 3. `strip`: drop custom sections (a component guest's WIT world is read from them
//!    first, and checked against its `wit/` directory);
//! 4. `optimize`: binaryen's `wasm-opt -Oz`;
//! 5. `pages`: linear memory cut to the guest's stack and data, in 1-byte pages;
//! 6. `bindings`: the guest's imports and exports, named, for its typed handle;
//! 7. `component`: a component guest's component, its core module typed by its world;
//! 8. `stack`: the most Pulley stack a call into the guest (or its component) can use;
//! 9. `precompile`: Wasmtime's `.cwasm`, reused when nothing it depends on changed;
//! 10. `package`: with an update key, the guest's update package;
//!
//! and last, for all of them:
//!
//! 11. `emit`: the `.cwasm` files, the Rust module that embeds them, and a JSON report.
//!
//! Each stage is a function from one artifact to the next in its own module, over the
//! record each guest carries through them (`guest.rs`); this module holds their order
//! and runs them.

use std::path::{Path, PathBuf};

use wasm_embed::{Profile, Settings};

use crate::bindings;
use crate::cargo::Directives;
use crate::compile::{self, CompileOptions, Compiled};
use crate::files::reuse_or;
use crate::guest::{DEFAULT_PULLEY_STACK, Guest, Sizes};
use crate::locate::{self, GuestCrate, Located, Source};
use crate::pages::{self, Memory};
use crate::stack::{self, Stack};
use crate::{Error, Output, optimize, precompile, strip};

/// A build with every default resolved: what the pipeline does.
pub(crate) struct Plan {
    /// The guests, as the metadata or [`Builder::guest`] name them.
    pub specs: Vec<String>,
    /// What relative guest paths are relative to.
    pub manifest_dir: PathBuf,
    pub out_dir: PathBuf,
    /// The settings every guest is precompiled with; the pipeline sets the Pulley stack.
    pub settings: Settings,
    /// How guest crates are compiled; `None` when the build skips the guests.
    pub compile: Option<CompileOptions>,
    pub exact_memory: bool,
    /// The Pulley stack the user chose, if any.
    pub max_wasm_stack: Option<usize>,
    /// With an update key: the key, and where packages go.
    pub updates: Option<crate::package::Updates>,
    /// Files whose change reruns the build, besides the guests' own (the manifest).
    pub watched: Vec<PathBuf>,
}

/// What the stages of one build share.
pub(crate) struct Context {
    pub settings: Settings,
    /// Where the `.cwasm` files, the module and the stages' scratch files go.
    pub out_dir: PathBuf,
    pub exact_memory: bool,
    /// The Pulley stack the user chose, if any.
    pub max_wasm_stack: Option<usize>,
    pub cargo: Directives,
    /// With an update key: the key, and where packages go.
    pub updates: Option<crate::package::Updates>,
}

impl Context {
    fn keep_names(&self) -> bool {
        self.settings.profile == Profile::Debug
    }
}

/// A stage every guest goes through once it has wasm.
pub(crate) struct Stage {
    pub name: &'static str,
    pub run: fn(&mut Guest, &mut Context) -> Result<(), Error>,
}

/// The stages after `compile`, in order. The differential test (`pipeline-check`) runs
/// this same list.
pub(crate) const STAGES: [Stage; 8] = [
    Stage { name: "strip", run: strip_stage },
    Stage { name: "optimize", run: optimize_stage },
    Stage { name: "pages", run: pages_stage },
    Stage { name: "bindings", run: bindings_stage },
    Stage { name: "component", run: component_stage },
    Stage { name: "stack", run: stack_stage },
    Stage { name: "precompile", run: precompile_stage },
    Stage { name: "package", run: package_stage },
];

fn strip_stage(guest: &mut Guest, context: &mut Context) -> Result<(), Error> {
    // A component guest's world is in custom sections, which go now.
    if let Some(dir) = guest.located.krate().and_then(|k| k.wit_dir.clone()) {
        read_world(guest, &dir)?;
    }
    let unused = unused_exports(guest);
    guest.wasm = strip::strip(&guest.located.name, &guest.wasm, context.keep_names(), unused)?;
    guest.sizes.stripped = guest.wasm.len();
    Ok(())
}

fn optimize_stage(guest: &mut Guest, context: &mut Context) -> Result<(), Error> {
    guest.wasm = optimize::optimize(&guest.located.name, &guest.wasm, &context.out_dir, context.keep_names())?;
    guest.sizes.optimized = guest.wasm.len();
    Ok(())
}

fn pages_stage(guest: &mut Guest, context: &mut Context) -> Result<(), Error> {
    if !context.exact_memory {
        guest.memory = Memory::Standard { reason: "Builder::exact_memory is off" };
        return Ok(());
    }
    let (wasm, memory) = pages::shrink_memory(&guest.located.name, &guest.wasm)?;
    if let Memory::Standard { reason } = &memory {
        // Only a module that Rust's linker settings did not lay out lacks `__heap_base`.
        let hint = match (&guest.located.source, *reason == pages::NO_HEAP_BASE) {
            (Source::Wasm(_), true) => {
                " (link it with `--export=__heap_base`, for clang `-Wl,--export=__heap_base`, to give it exact memory)"
            }
            _ => "",
        };
        context.cargo.warning(format!(
            "guest `{}` keeps 64 KiB memory pages because {reason}{hint}; each page costs the firmware 64 KiB of heap",
            guest.name()
        ));
    }
    guest.wasm = wasm;
    guest.memory = memory;
    Ok(())
}

fn stack_stage(guest: &mut Guest, context: &mut Context) -> Result<(), Error> {
    let name = &guest.located.name;
    let (settings, wasm, component) = (&context.settings, &guest.wasm, guest.component.as_deref());
    let key = precompile::key(component.unwrap_or(wasm), settings);
    let (stack, _) = reuse_or(&context.out_dir, &format!("{name}.stack"), &key, || {
        stack::pulley_stack(name, settings, wasm, component).map(|s| s.to_string().into_bytes())
    })?;
    // Only a damaged file from an earlier build fails to parse: work it out again.
    guest.stack = match String::from_utf8_lossy(&stack).parse() {
        Ok(stack) => stack,
        Err(_) => stack::pulley_stack(name, settings, wasm, component)?,
    };
    guest.pulley_stack = context.max_wasm_stack.unwrap_or_else(|| stack_of(&guest.stack));
    match (&guest.stack, context.max_wasm_stack) {
        (&Stack::Bounded { bytes }, Some(given)) if bytes > given => Err(Error::StackTooSmall {
            guest: name.clone(),
            needs: bytes,
            given,
        }),
        (Stack::Unbounded { reason }, None) => {
            context.cargo.warning(format!(
                "guest `{name}` gets the default {DEFAULT_PULLEY_STACK} bytes of Pulley stack because \
                 its depth cannot be bounded: {reason}; set Builder::max_wasm_stack to choose"
            ));
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Whether the guest is a component guest (a crate with a WIT world).
fn is_component(guest: &Guest) -> bool {
    guest.located.krate().is_some_and(|k| k.wit_dir.is_some())
}

#[cfg(feature = "component-model")]
fn read_world(guest: &mut Guest, dir: &Path) -> Result<(), Error> {
    let world = crate::component::world(guest.name(), dir, &guest.wasm)?;
    guest.inputs.extend(world.files.iter().cloned());
    guest.world = Some(world);
    Ok(())
}

#[cfg(feature = "component-model")]
fn unused_exports(guest: &Guest) -> &'static [&'static str] {
    guest.world.as_ref().map_or(&[], |world| world.unused_exports())
}

#[cfg(not(feature = "component-model"))]
fn unused_exports(_guest: &Guest) -> &'static [&'static str] {
    &[]
}

#[cfg(not(feature = "component-model"))]
fn read_world(guest: &mut Guest, _dir: &Path) -> Result<(), Error> {
    Err(Error::ComponentsOff {
        guest: guest.name().to_owned(),
    })
}

/// A component guest's component: the core module as the stages left it, typed by its
/// world. (Its bindings are generated from the world by Wasmtime's `bindgen!`.)
#[cfg(feature = "component-model")]
fn component_stage(guest: &mut Guest, _context: &mut Context) -> Result<(), Error> {
    if let Some(world) = &guest.world {
        guest.component = Some(crate::component::wrap(&guest.located.name, &guest.wasm, world)?);
    }
    Ok(())
}

/// Without the feature no guest has a world: `read_world` refused it.
#[cfg(not(feature = "component-model"))]
fn component_stage(_guest: &mut Guest, _context: &mut Context) -> Result<(), Error> {
    Ok(())
}

fn bindings_stage(guest: &mut Guest, context: &mut Context) -> Result<(), Error> {
    if is_component(guest) {
        return Ok(());
    }
    let name = &guest.located.name;
    // The final wasm says what the firmware must provide and may call (wasm-opt drops
    // unused imports); names come from the guest's Rust source, or from the `name`
    // section of a prebuilt module as it was given.
    let names = match &guest.located.source {
        Source::Crate(krate) => {
            guest.inputs.extend(bindings::source_files(&krate.lib_path));
            bindings::from_source(&krate.lib_path)
        }
        Source::Wasm(_) => bindings::from_wasm(name, &guest.given)?,
    };
    guest.interface = bindings::merge(bindings::from_wasm(name, &guest.wasm)?, &names);
    for warning in bindings::check_names(name, &guest.interface)? {
        context.cargo.warning(warning);
    }
    Ok(())
}

fn precompile_stage(guest: &mut Guest, context: &mut Context) -> Result<(), Error> {
    let name = &guest.located.name;
    let settings = &context.settings;
    let (wasm, component) = match &guest.component {
        Some(component) => (component, true),
        None => (&guest.wasm, false),
    };
    let key = precompile::key(wasm, settings);
    let (cwasm, reused) = reuse_or(&context.out_dir, &format!("{name}.cwasm"), &key, || {
        precompile::precompile(name, settings, wasm, component)
    })?;
    guest.sizes.cwasm = cwasm.len();
    guest.cwasm = Some(cwasm);
    guest.cwasm_reused = reused;
    Ok(())
}

fn package_stage(guest: &mut Guest, context: &mut Context) -> Result<(), Error> {
    let (Some(updates), Some(cwasm)) = (&context.updates, &guest.cwasm) else {
        return Ok(());
    };
    // A component's handle comes from its world; its core module's imports and
    // exports, lowered from that world, change with it.
    let lowered;
    let interface = match guest.component {
        Some(_) => {
            lowered = bindings::from_wasm(guest.name(), &guest.wasm)?;
            &lowered
        }
        None => &guest.interface,
    };
    guest.update = Some(crate::package::package(
        &crate::package::Contents {
            name: guest.name(),
            version: crate::package::version_of(&guest.located, updates),
            settings: Settings {
                max_wasm_stack: guest.pulley_stack,
                ..context.settings
            },
            component: guest.component.is_some(),
            interface,
            cwasm,
        },
        updates,
    )?);
    Ok(())
}

/// Carries out `plan`: every stage for every guest, then the module.
pub(crate) fn run(plan: Plan, cargo: Directives) -> Result<Output, Error> {
    let Plan {
        specs,
        manifest_dir,
        out_dir,
        settings,
        compile,
        exact_memory,
        max_wasm_stack,
        updates,
        mut watched,
    } = plan;
    std::fs::create_dir_all(&out_dir).map_err(crate::error::io(&out_dir))?;
    let mut located: Vec<Located> = Vec::new();
    for spec in &specs {
        let guest = locate::locate(spec, &manifest_dir)?;
        if located.iter().any(|g| g.name == guest.name) {
            return Err(Error::DuplicateGuest { name: guest.name });
        }
        located.push(guest);
    }
    // The Pulley stack does not change the code: every `.cwasm` is made with one value,
    // so that a change to one guest's need does not make the others' stale.
    let mut context = Context {
        settings: Settings {
            max_wasm_stack: DEFAULT_PULLEY_STACK,
            ..settings
        },
        out_dir,
        exact_memory,
        max_wasm_stack,
        cargo,
        updates,
    };
    let (compiled, nested_builds) = match &compile {
        Some(options) => compile_all(&located, options, &context.settings)?,
        None => (vec![None; located.len()], 0),
    };
    let mut guests = Vec::new();
    for (located, compiled) in located.into_iter().zip(compiled) {
        let guest = match compiled {
            Some(compiled) => {
                let mut guest = Guest::new(located, compiled);
                for stage in &STAGES {
                    (stage.run)(&mut guest, &mut context)?;
                }
                guest.inputs.sort();
                guest.inputs.dedup();
                guest
            }
            None => skipped(located),
        };
        guests.push(guest);
    }
    // One engine for every guest needs the deepest stack of them all; a skipped guest's
    // stub gets that too.
    let settings = Settings {
        max_wasm_stack: max_wasm_stack.unwrap_or_else(|| {
            guests
                .iter()
                .filter(|g| g.cwasm.is_some())
                .map(|g| g.pulley_stack)
                .max()
                .unwrap_or(16)
        }),
        ..context.settings
    };
    for guest in guests.iter_mut().filter(|g| g.cwasm.is_none()) {
        guest.pulley_stack = settings.max_wasm_stack;
    }
    let module = crate::emit::emit(&context.out_dir, &settings, &guests, context.updates.as_ref())?;
    let built: Vec<&Guest> = guests.iter().filter(|g| g.cwasm.is_some()).collect();
    crate::report::report(&context.out_dir, &settings, &built)?;
    for guest in &built {
        watched.extend(guest.inputs.iter().cloned());
    }
    Ok(Output {
        module,
        settings,
        guests: built.iter().map(|g| crate::BuiltGuest::of(g, &context.out_dir)).collect(),
        nested_builds,
        warnings: context.cargo.finish(&watched),
    })
}

/// The Pulley stack one guest gets in an engine of its own: Wasmtime does not check
/// `max_wasm_stack` when it loads a `.cwasm`, so each guest's engine can allocate only
/// what that guest needs. Pulley rounds its stack up to 16 bytes; Wasmtime refuses 0.
fn stack_of(stack: &Stack) -> usize {
    match stack {
        &Stack::Bounded { bytes } => bytes.next_multiple_of(16).max(16),
        Stack::Unbounded { .. } => DEFAULT_PULLEY_STACK,
    }
}

/// The `compile` stage for every guest: one nested cargo per workspace of guest crates,
/// in the order the guests are listed, and every prebuilt `.wasm` read; each guest's
/// wasm checked for the firmware's engine. Also how many nested builds ran.
fn compile_all(
    located: &[Located],
    options: &CompileOptions,
    settings: &Settings,
) -> Result<(Vec<Option<Compiled>>, usize), Error> {
    let mut compiled: Vec<Option<Compiled>> = vec![None; located.len()];
    let mut roots: Vec<&Path> = Vec::new();
    for krate in located.iter().filter_map(Located::krate) {
        if !roots.contains(&krate.workspace_root.as_path()) {
            roots.push(&krate.workspace_root);
        }
    }
    for &root in &roots {
        let indices: Vec<usize> = (0..located.len())
            .filter(|&i| located[i].krate().is_some_and(|k| k.workspace_root == root))
            .collect();
        let group: Vec<GuestCrate> = indices.iter().filter_map(|&i| located[i].krate().cloned()).collect();
        for (index, mut built) in indices.into_iter().zip(compile::compile(&group, options)?) {
            compile::check(&located[index].name, &built.wasm, settings)?;
            let krate = located[index].krate().expect("a guest built by cargo has a crate");
            built.sources.push(krate.manifest_path.clone());
            built.sources.push(krate.workspace_root.join("Cargo.toml"));
            built.sources.push(krate.workspace_root.join("Cargo.lock"));
            compiled[index] = Some(built);
        }
    }
    for (guest, slot) in located.iter().zip(&mut compiled) {
        if let Source::Wasm(path) = &guest.source {
            *slot = Some(Compiled {
                wasm: compile::read_prebuilt(&guest.name, path, settings)?,
                sources: vec![path.clone()],
            });
        }
    }
    Ok((compiled, roots.len()))
}

/// A guest whose build was skipped: its bindings come from a crate's Rust source, or
/// from a prebuilt file itself, which needs no build to read.
fn skipped(located: Located) -> Guest {
    let interface = match &located.source {
        Source::Crate(krate) => bindings::from_source(&krate.lib_path),
        Source::Wasm(path) => std::fs::read(path)
            .ok()
            .and_then(|wasm| bindings::from_wasm(&located.name, &wasm).ok())
            .unwrap_or_default(),
    };
    let mut guest = Guest::new(located, Compiled { wasm: Vec::new(), sources: Vec::new() });
    guest.sizes = Sizes::default();
    guest.interface = interface;
    guest
}
