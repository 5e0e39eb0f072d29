//! The host's two runs of a module the device runs: Wasmtime's Pulley built for this
//! machine (pulley64), with `observe`'s very code, and wasmi, which shares no code with
//! Wasmtime and prints the same lines from its own run.

use std::fmt;

use observe::{Host, Kind, Number, Refused, argument, memory_line, table_line};
use wasmi::{Caller, Engine, Extern, ExternType, Linker, Module, Store, Val, ValType};

/// Fuel for each call: demo-firmware's build.rs gives its guests this much.
pub const FUEL_PER_CALL: u64 = 1_000_000;

/// The lines `observe::run` prints for `cwasm`, precompiled for this machine with
/// [`crate::device_settings`].
pub fn pulley(cwasm: &[u8]) -> Vec<String> {
    let engine = wasm_embed::engine(&crate::device_settings()).expect("the device settings make an engine");
    // SAFETY: the precompiler's output, just made by the same Wasmtime.
    let module = unsafe { wasmtime::Module::deserialize(&engine, cwasm) }.expect("the precompiled module loads");
    let mut lines = Vec::new();
    observe::run(&engine, &module, Some(FUEL_PER_CALL), &mut |line| lines.push(line.to_string()));
    lines
}

/// `Refused` as wasmi carries a host's error.
#[derive(Debug)]
struct HostRefused(Refused);

impl fmt::Display for HostRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl wasmi::errors::HostError for HostRefused {}

/// The lines wasmi's run of `wasm` prints: the same as `observe::run`'s for the same
/// behaviour. wasmi meters no fuel here: the generated modules stop by themselves, and a
/// call that ran out of fuel under Pulley would show as a difference.
pub fn wasmi(wasm: &[u8]) -> Vec<String> {
    let mut config = wasmi::Config::default();
    config.wasm_custom_page_sizes(true);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, wasm).expect("wasmi validates what Wasmtime validated");
    let mut store = Store::new(&engine, Host::default());
    let mut linker = Linker::<Host>::new(&engine);
    linker
        .func_wrap("host", "record", |mut caller: Caller<'_, Host>, x: i32| caller.data_mut().record(x))
        .and_then(|l| l.func_wrap("host", "next", |mut caller: Caller<'_, Host>| caller.data_mut().next()))
        .and_then(|l| {
            l.func_wrap("host", "mix", |mut caller: Caller<'_, Host>, a: i64, b: f64| caller.data_mut().mix(a, b))
        })
        .and_then(|l| {
            l.func_wrap("host", "fail", |mut caller: Caller<'_, Host>, x: i32| {
                caller.data_mut().fail(x).map_err(|refused| wasmi::Error::host(HostRefused(refused)))
            })
        })
        .expect("the host's functions are defined once each");
    let mut lines = Vec::new();
    let instance = match linker.instantiate_and_start(&mut store, &module) {
        Ok(instance) => {
            lines.push(format!("instantiate ok; {}", store.data_mut().take()));
            instance
        }
        Err(error) => {
            lines.push(format!("instantiate {}; {}", failure(&error), store.data_mut().take()));
            return lines;
        }
    };
    let mut exports: Vec<(String, ExternType)> =
        module.exports().map(|export| (export.name().to_owned(), export.ty().clone())).collect();
    exports.sort_by(|a, b| a.0.cmp(&b.0));
    let mut functions = 0;
    for (name, ty) in &exports {
        let ExternType::Func(ty) = ty else { continue };
        let func = instance.get_func(&store, name).expect("an exported function is there");
        let params: Vec<Val> = ty
            .params()
            .iter()
            .enumerate()
            .map(|(i, ty)| value(argument(kind(ty), functions * 3 + i)))
            .collect();
        functions += 1;
        let mut results = vec![Val::I32(0); ty.results().len()];
        let called = func.call(&mut store, &params, &mut results);
        let calls = store.data_mut().take();
        lines.push(match called {
            Ok(()) => {
                let results: String = results.iter().map(|result| format!(" {}", number(result))).collect();
                format!("call {name} ={results}; {calls}")
            }
            Err(error) => format!("call {name} {}; {calls}", failure(&error)),
        });
    }
    for (name, _) in &exports {
        match instance.get_export(&store, name) {
            Some(Extern::Global(global)) => lines.push(format!("global {name} = {}", number(&global.get(&store)))),
            Some(Extern::Memory(memory)) => lines.push(memory_line(name, memory.data(&store)).to_string()),
            Some(Extern::Table(table)) => {
                let set: Vec<bool> = (0..table.size(&store))
                    .map(|i| match table.get(&store, i) {
                        Some(wasmi::Ref::Func(func)) => !func.is_null(),
                        _ => false,
                    })
                    .collect();
                lines.push(table_line(name, &set).to_string());
            }
            _ => {}
        }
    }
    lines
}

/// As `observe` prints a failure: wasmi's trap codes have Wasmtime's names.
fn failure(error: &wasmi::Error) -> String {
    if let Some(code) = error.as_trap_code() {
        format!("trap: {code:?}")
    } else if error.downcast_ref::<HostRefused>().is_some() {
        "host error".to_owned()
    } else {
        format!("error: {error}")
    }
}

fn kind(ty: &ValType) -> Kind {
    match ty {
        ValType::I32 => Kind::I32,
        ValType::I64 => Kind::I64,
        ValType::F32 => Kind::F32,
        ValType::F64 => Kind::F64,
        _ => unreachable!("guests' functions take numbers only"),
    }
}

fn value(number: Number) -> Val {
    match number {
        Number::I32(v) => Val::I32(v),
        Number::I64(v) => Val::I64(v),
        Number::F32(bits) => Val::F32(wasmi::F32::from_bits(bits)),
        Number::F64(bits) => Val::F64(wasmi::F64::from_bits(bits)),
    }
}

fn number(value: &Val) -> Number {
    match value {
        Val::I32(v) => Number::I32(*v),
        Val::I64(v) => Number::I64(*v),
        Val::F32(v) => Number::F32(v.to_bits()),
        Val::F64(v) => Number::F64(v.to_bits()),
        _ => unreachable!("guests' values are numbers only"),
    }
}
