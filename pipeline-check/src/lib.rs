//! Differential checks of wasm-embed-build's stages. A generated module, limited to what
//! guests may use (WebAssembly 1.0 with mutable globals, as `wasm32v1-none` emits), goes
//! through the very stages, in the very order, a guest goes through after it is compiled
//! (strip, wasm-opt, the page-size change, the stack bound, the bindings and
//! precompilation). Each module a stage hands on is run on the host with the same inputs
//! as the one it was given: every export's results and traps, what the host's imports
//! were called with, and the final globals, memories and tables must be equal.
//!
//! `tests/generated_modules.rs` runs it over a fixed set of seeds in `./x test`; the fuzz
//! target in `fuzz/` runs it over whatever libFuzzer finds (`./x fuzz`).

use std::fmt;
use std::path::Path;

use arbitrary::Unstructured;
use wasmtime::{
    Caller, Engine, Linker, Module, Ref, Store, Trap, Val,
};
use wasm_embed::{Settings, Target};
use wasm_embed_build::Memory;
use wasm_embed_build::internal::Staged;

pub mod oracle;

/// Work one instance may do, in loop iterations and calls (wasm-smith's termination
/// fuel): generated code loops forever as often as not.
const FUEL: u32 = 1_000;

/// The engine every variant runs in: the device's settings on this machine, with a
/// Pulley stack deep enough that inlining cannot turn a deep call chain into an
/// overflow on one side only.
pub fn settings() -> Settings {
    Settings {
        max_wasm_stack: 1 << 20,
        ..Settings::new(Target::this_machine())
    }
}

/// The settings the firmware's guests are built with (demo-firmware's build.rs), for this
/// machine: what the device runs, as pulley64.
pub fn device_settings() -> Settings {
    Settings {
        fuel: Some(oracle::FUEL_PER_CALL),
        ..Settings::new(Target::this_machine())
    }
}

/// What wasm-smith may generate: exactly the features the firmware's engine enables
/// (the pipeline refuses anything else at build time, which a test checks), imports from
/// a fixed host, and everything exported so the final state can be read.
fn config() -> wasm_smith::Config {
    wasm_smith::Config {
        available_imports: Some(wat::parse_str(HOST_IMPORTS).expect("the host's imports are valid WAT")),
        bulk_memory_enabled: false,
        canonicalize_nans: true,
        compact_imports_enabled: false,
        custom_page_sizes_enabled: false,
        exceptions_enabled: false,
        export_everything: true,
        extended_const_enabled: false,
        gc_enabled: false,
        generate_custom_sections: true,
        max_data_segments: 8,
        max_funcs: 16,
        max_globals: 12,
        max_instructions: 80,
        max_memory32_bytes: 4 * 65536,
        max_table_elements: 64,
        max_types: 16,
        memory64_enabled: false,
        multi_value_enabled: false,
        reference_types_enabled: false,
        relaxed_simd_enabled: false,
        saturating_float_to_int_enabled: false,
        sign_extension_ops_enabled: false,
        simd_enabled: false,
        tail_call_enabled: false,
        threads_enabled: false,
        wide_arithmetic_enabled: false,
        ..wasm_smith::Config::default()
    }
}

/// The host every module may import from; [`observe`] provides it. Functions only, as
/// for a guest (the build refuses any other import).
const HOST_IMPORTS: &str = r#"(module
  (import "host" "record" (func (param i32)))
  (import "host" "next" (func (result i32)))
  (import "host" "mix" (func (param i64 f64) (result i64)))
  (import "host" "fail" (func (param i32) (result i32))))"#;

/// The linker's end of data, which the page-size stage relies on (see
/// [`with_heap_base`]).
const HEAP_BASE: &str = "__heap_base";

/// A module from `u`: wasm-smith's, made to terminate, and for half of them given a
/// `__heap_base`, as the compile stage asks the linker for, so the page-size stage
/// gives them 1-byte pages.
pub fn generate(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    generate_with(config(), u)
}

/// A module for the emulated device, as [`generate`] makes them but for its memory: one
/// 64 KiB page at most, with a declared maximum, so that an instance fits the nRF52840's
/// 192 KiB heap beside Wasmtime, and a `memory.grow` fails alike on every side instead of
/// wherever a heap runs out.
pub fn generate_for_device(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let config = wasm_smith::Config {
        max_memory32_bytes: 65536,
        memory_max_size_required: true,
        ..config()
    };
    generate_with(config, u)
}

fn generate_with(config: wasm_smith::Config, u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    // Most with a memory, as most guests have one; the rest show that a module without
    // one passes through unchanged.
    let config = wasm_smith::Config {
        min_memories: u32::from(u.ratio(3u8, 4u8)?),
        ..config
    };
    let mut module = wasm_smith::Module::new(config, u)?;
    module
        .ensure_termination(FUEL)
        .expect("wasm-smith generated every function body itself");
    let wasm = with_identifier_names(&module.to_bytes());
    Ok(if u.arbitrary()? { with_heap_base(&wasm) } else { wasm })
}

/// Bytes wasm-smith draws one module from.
const INPUT: usize = 4096;

/// The input for module `seed`: splitmix64's stream, so a failure names a seed that
/// reproduces it.
pub fn input(seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut bytes = Vec::with_capacity(INPUT);
    while bytes.len() < INPUT {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes
}

/// `wasm` with its exports named `export0`, `export1`...: wasm-smith's names are any
/// Unicode, which the bindings stage would map onto the same Rust names (a build error,
/// tested elsewhere); what a module computes does not depend on them.
fn with_identifier_names(wasm: &[u8]) -> Vec<u8> {
    let mut module = walrus::Module::from_buffer(wasm).expect("wasm-smith's modules parse");
    for (index, export) in module.exports.iter_mut().enumerate() {
        export.name = format!("export{index}");
    }
    module.emit_wasm()
}

/// `wasm` with `__heap_base` exported at the end of its one memory. A linker puts it at
/// the end of the stack and static data a guest's code uses; a generated module may use
/// any of its memory, so the end of it is the only honest value.
pub fn with_heap_base(wasm: &[u8]) -> Vec<u8> {
    let mut module = walrus::Module::from_buffer(wasm).expect("wasm-smith's modules parse");
    let [memory] = module.memories.iter().collect::<Vec<_>>()[..] else {
        return wasm.to_vec();
    };
    if memory.import.is_some() {
        return wasm.to_vec();
    }
    let end = memory.initial * 65536;
    let end = walrus::ConstExpr::Value(walrus::ir::Value::I32(end as i32));
    let global = module.globals.add_local(walrus::ValType::I32, false, false, end);
    module.exports.add(HEAP_BASE, global);
    module.emit_wasm()
}

/// What a module is made of, counted by the test so that it cannot pass on trivial
/// modules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    pub data_segments: bool,
    pub memory_grow: bool,
    pub table: bool,
    pub globals: bool,
    pub imports: bool,
    pub custom_sections: bool,
    /// The page-size stage gave it 1-byte pages.
    pub one_byte_pages: bool,
}

/// What checking one module found.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub shape: Shape,
    /// Instantiation succeeded (otherwise the variants had to fail the same way).
    pub instantiated: bool,
    /// Exported functions called, in each variant.
    pub calls: usize,
    /// Of those, calls that trapped or whose host import failed.
    pub traps: usize,
    /// Stage outputs run and compared (a stage that changed nothing is not rerun).
    pub compared: usize,
    /// The build refused it as a module that could never be instantiated (and it
    /// indeed fails to instantiate).
    pub refused: bool,
    /// wasm-opt reordered two instructions that can both trap, so a call that trapped
    /// before still traps, with the other one's trap.
    pub other_trap: bool,
    /// A variant overflowed the Pulley stack, whose use inlining changes: not compared.
    pub stack_overflow: bool,
}

/// A stage changed what the module computes, or failed on a valid module.
#[derive(Debug)]
pub struct Difference {
    pub stage: &'static str,
    pub detail: String,
    /// The module the failing stage was given, for reproducing it.
    pub input: Vec<u8>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} stage changed the module: {}", self.stage, self.detail)
    }
}

/// Runs `original` through every stage and compares each output's behaviour with its
/// input's. `scratch` is a directory for wasm-opt's files; `name` keeps concurrent
/// checks' files apart.
pub fn check_module(original: &[u8], scratch: &Path, name: &str) -> Result<Outcome, Difference> {
    let settings = settings();
    let engine = wasm_embed::engine(&settings).expect("the device settings make an engine");
    let reference = observe(&engine, &compile(&engine, original));
    let mut outcome = Outcome {
        instantiated: reference.instantiated.is_ok(),
        calls: reference.calls.len(),
        traps: reference.calls.iter().filter(|(_, result)| result.is_err()).count(),
        ..Outcome::default()
    };
    let mut staged = Staged::new(name, original, settings, scratch);
    let mut previous = (original.to_vec(), reference);
    while let Some((stage, result)) = staged.next_stage() {
        match result {
            Ok(()) => {}
            // Refusing a module is right only if it could never run.
            Err(wasm_embed_build::Error::Uninstantiable { .. }) if stage == "strip" && !outcome.instantiated => {
                outcome.shape = shape(original, &Memory::None);
                outcome.refused = true;
                return Ok(outcome);
            }
            Err(error) => {
                return Err(Difference {
                    stage,
                    detail: error.to_string(),
                    input: previous.0,
                });
            }
        }
        let observed = match staged.cwasm() {
            // SAFETY: the precompiler's output, just made by the same Wasmtime.
            Some(cwasm) => {
                let loaded = unsafe { Module::deserialize(&engine, cwasm) }.expect("the precompiled module loads");
                observe(&engine, &loaded)
            }
            None if staged.wasm() == &previous.0[..] => continue,
            None => observe(&engine, &compile(&engine, staged.wasm())),
        };
        outcome.compared += 1;
        if observed.overflowed() || previous.1.overflowed() {
            outcome.stack_overflow = true;
            return Ok(outcome);
        }
        if let Some(detail) = previous.1.difference(&observed) {
            // binaryen may reorder two instructions that can both trap (Wasm code cannot
            // tell which trap ended it), so after wasm-opt the same call may report
            // another trap; everything else must still match.
            let reordered_traps = stage == "optimize"
                && previous.1.without_trap_kinds().difference(&observed.without_trap_kinds()).is_none();
            if !reordered_traps {
                return Err(Difference {
                    stage,
                    detail,
                    input: previous.0,
                });
            }
            outcome.other_trap = true;
        }
        if staged.cwasm().is_some() {
            break;
        }
        previous = (staged.wasm().to_vec(), observed);
    }
    outcome.shape = shape(original, staged.memory());
    Ok(outcome)
}

/// Generates a module from `data` and checks it: the fuzz target's body. `None` when
/// `data` was too short to make a module.
pub fn check(data: &[u8], scratch: &Path, name: &str) -> Result<Option<Outcome>, Difference> {
    let Ok(module) = generate(&mut Unstructured::new(data)) else {
        return Ok(None);
    };
    check_module(&module, scratch, name).map(Some)
}

fn compile(engine: &Engine, wasm: &[u8]) -> Module {
    Module::new(engine, wasm).expect("every stage's output validates for the device's engine")
}

fn shape(wasm: &[u8], memory: &Memory) -> Shape {
    use wasmparser::{Operator, Parser, Payload};
    let mut shape = Shape {
        one_byte_pages: matches!(memory, Memory::Exact { .. }),
        ..Shape::default()
    };
    let (mut globals, mut heap_base) = (0, false);
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.expect("wasm-smith's modules parse") {
            Payload::DataSection(section) => shape.data_segments |= section.count() > 0,
            Payload::TableSection(section) => shape.table |= section.count() > 0,
            // Beyond the termination fuel's global and `__heap_base`.
            Payload::GlobalSection(section) => globals = section.count(),
            Payload::ExportSection(section) => {
                heap_base = section.into_iter().any(|e| e.is_ok_and(|e| e.name == HEAP_BASE));
            }
            Payload::ImportSection(section) => shape.imports |= section.count() > 0,
            Payload::CustomSection(_) => shape.custom_sections = true,
            Payload::CodeSectionEntry(body) => {
                let mut reader = body.get_operators_reader().expect("function bodies parse");
                while !reader.eof() {
                    shape.memory_grow |= matches!(reader.read(), Ok(Operator::MemoryGrow { .. }));
                }
            }
            _ => {}
        }
    }
    shape.globals = globals > 1 + u32::from(heap_base);
    shape
}

/// Everything a run of a module showed the outside world.
#[derive(Debug, PartialEq)]
struct Observation {
    instantiated: Result<(), String>,
    /// Each exported function in name order, with its results or its trap.
    calls: Vec<(String, Result<Vec<String>, String>)>,
    /// The host imports' calls, in order.
    host: Vec<String>,
    globals: Vec<(String, String)>,
    memories: Vec<(String, Vec<u8>)>,
    /// Which table entries hold a function.
    tables: Vec<(String, Vec<bool>)>,
}

impl Observation {
    /// The observation with every trap just "trap".
    fn without_trap_kinds(&self) -> Observation {
        let plain = |result: &Result<Vec<String>, String>| match result {
            Err(error) if error.starts_with("trap: ") => Err("trap".to_owned()),
            other => other.clone(),
        };
        Observation {
            instantiated: self.instantiated.clone(),
            calls: self.calls.iter().map(|(name, result)| (name.clone(), plain(result))).collect(),
            host: self.host.clone(),
            globals: self.globals.clone(),
            memories: self.memories.clone(),
            tables: self.tables.clone(),
        }
    }

    fn overflowed(&self) -> bool {
        let overflow = format!("trap: {}", Trap::StackOverflow);
        self.calls.iter().any(|(_, result)| result.as_ref().err() == Some(&overflow))
            || self.instantiated.as_ref().err() == Some(&overflow)
    }

    /// How `after` differs from `self`. A memory may end earlier after the page-size
    /// stage, but only where it held zeros no code can reach: the stage gives 1-byte
    /// pages only to modules whose code never asks the size of its memory.
    fn difference(&self, after: &Observation) -> Option<String> {
        let Observation {
            instantiated,
            calls,
            host,
            globals,
            memories,
            tables,
        } = self;
        if *instantiated != after.instantiated {
            return Some(format!("instantiation {instantiated:?} became {:?}", after.instantiated));
        }
        for (before, after) in calls.iter().zip(&after.calls) {
            if before != after {
                return Some(format!("call {before:?} became {after:?}"));
            }
        }
        if calls.len() != after.calls.len() {
            return Some(format!("{} exported functions became {}", calls.len(), after.calls.len()));
        }
        if *host != after.host {
            return Some(format!("host calls {host:?} became {:?}", after.host));
        }
        if *globals != after.globals {
            return Some(format!("globals {globals:?} became {:?}", after.globals));
        }
        if *tables != after.tables {
            return Some(format!("tables {tables:?} became {:?}", after.tables));
        }
        if memories.len() != after.memories.len() {
            return Some(format!("{} memories became {}", memories.len(), after.memories.len()));
        }
        for ((name, before), (_, after)) in memories.iter().zip(&after.memories) {
            let common = before.len().min(after.len());
            if let Some(at) = (0..common).find(|&i| before[i] != after[i]) {
                return Some(format!("memory `{name}` byte {at}: {} became {}", before[at], after[at]));
            }
            if after.len() > before.len() || before[common..].iter().any(|&b| b != 0) {
                return Some(format!(
                    "memory `{name}` of {} bytes became {} bytes, losing data",
                    before.len(),
                    after.len()
                ));
            }
        }
        None
    }
}

/// The host's side of [`HOST_IMPORTS`]: it logs every call.
#[derive(Default)]
struct Host {
    log: Vec<String>,
    next: i32,
}

/// Instantiates `module` against the host and calls every exported function once, in
/// name order, with arguments fixed by their position.
fn observe(engine: &Engine, module: &Module) -> Observation {
    let mut store = Store::new(engine, Host::default());
    let mut linker = Linker::new(engine);
    linker
        .func_wrap("host", "record", |mut caller: Caller<'_, Host>, x: i32| {
            caller.data_mut().log.push(format!("record {x}"));
        })
        .and_then(|l| {
            l.func_wrap("host", "next", |mut caller: Caller<'_, Host>| {
                let host = caller.data_mut();
                host.next = host.next.wrapping_mul(31).wrapping_add(7);
                host.next
            })
        })
        .and_then(|l| {
            l.func_wrap("host", "mix", |mut caller: Caller<'_, Host>, a: i64, b: f64| {
                caller.data_mut().log.push(format!("mix {a} {:#x}", b.to_bits()));
                a ^ b.to_bits() as i64
            })
        })
        .and_then(|l| {
            // Fails on odd input: a host error must reach the caller the same way.
            l.func_wrap("host", "fail", |mut caller: Caller<'_, Host>, x: i32| {
                caller.data_mut().log.push(format!("fail {x}"));
                if x % 2 != 0 {
                    Err(wasmtime::Error::msg(format!("host refused {x}")))
                } else {
                    Ok(x / 2)
                }
            })
        })
        .expect("the host's functions are defined once each");

    let mut observation = Observation {
        instantiated: Ok(()),
        calls: Vec::new(),
        host: Vec::new(),
        globals: Vec::new(),
        memories: Vec::new(),
        tables: Vec::new(),
    };
    let instance = match linker.instantiate(&mut store, module) {
        Ok(instance) => instance,
        Err(error) => {
            observation.instantiated = Err(describe(&error));
            observation.host = std::mem::take(&mut store.data_mut().log);
            return observation;
        }
    };
    let mut exports: Vec<_> = module
        .exports()
        .map(|e| e.name().to_owned())
        .filter(|name| name != HEAP_BASE)
        .collect();
    exports.sort();
    for (index, name) in exports.iter().enumerate() {
        let Some(func) = instance.get_func(&mut store, name) else { continue };
        let ty = func.ty(&store);
        let params: Vec<Val> =
            ty.params().enumerate().map(|(i, ty)| observe::wasmtime_argument(&ty, index * 3 + i)).collect();
        let mut results = vec![Val::I32(0); ty.results().len()];
        let outcome = func
            .call(&mut store, &params, &mut results)
            .map(|()| results.iter().map(show).collect())
            .map_err(|error| describe(&error));
        observation.calls.push((name.clone(), outcome));
    }
    for name in &exports {
        if let Some(global) = instance.get_global(&mut store, name) {
            observation.globals.push((name.clone(), show(&global.get(&mut store))));
        }
        if let Some(memory) = instance.get_memory(&mut store, name) {
            observation.memories.push((name.clone(), memory.data(&store).to_vec()));
        }
        if let Some(table) = instance.get_table(&mut store, name) {
            let entries = (0..table.size(&store))
                .map(|i| matches!(table.get(&mut store, i), Some(Ref::Func(Some(_)))))
                .collect();
            observation.tables.push((name.clone(), entries));
        }
    }
    observation.host = std::mem::take(&mut store.data_mut().log);
    observation
}

fn show(value: &Val) -> String {
    observe::number(value).to_string()
}

fn describe(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<Trap>() {
        Some(trap) => format!("trap: {trap}"),
        None => format!("error: {error}"),
    }
}
