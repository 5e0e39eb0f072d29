//! Runs a generated module and prints what it did, one line at a time: the same code on
//! the emulated device (pulley32, the firmware's `generated` example) and on the host
//! (pulley64, `pipeline-check/tests/on_device.rs`), so their outputs are compared as text.
//! The host's second oracle, wasmi, prints the same lines from its own run with
//! [`Host`], [`argument`] and the formatting helpers here.
//!
//! The lines, per module: `instantiate ok` (or its trap or error); per exported function
//! in name order, `call NAME = RESULTS` or `call NAME trap: KIND` or `call NAME host
//! error`, each followed by `; host N calls HASH`, the number and FNV-1a hash of the
//! host calls it made; then every exported global's value, and every exported memory
//! and table as its size and hash.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use wasmtime::{Engine, Extern, ExternType, Linker, Module, Ref, Store, Trap, Val, ValType};

/// The host every generated module may import from: `pipeline-check`'s `HOST_IMPORTS`.
/// It hashes every call it gets, so that a run prints a line per call into the guest
/// rather than one per host call.
#[derive(Default)]
pub struct Host {
    next: i32,
    calls: u32,
    hash: Fnv,
}

/// Why the host's `fail` import failed: an odd argument.
#[derive(Debug)]
pub struct Refused(pub i32);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host refused {}", self.0)
    }
}

impl core::error::Error for Refused {}

impl Host {
    fn called(&mut self, import: u8, bytes: &[u8]) {
        self.calls += 1;
        self.hash.write(&[import]);
        self.hash.write(bytes);
    }

    /// `host.record(i32)`.
    pub fn record(&mut self, x: i32) {
        self.called(0, &x.to_le_bytes());
    }

    /// `host.next() -> i32`: a sequence, so a call skipped or repeated shows.
    pub fn next(&mut self) -> i32 {
        self.called(1, &[]);
        self.next = self.next.wrapping_mul(31).wrapping_add(7);
        self.next
    }

    /// `host.mix(i64, f64) -> i64`.
    pub fn mix(&mut self, a: i64, b: f64) -> i64 {
        self.called(2, &a.to_le_bytes());
        self.hash.write(&b.to_bits().to_le_bytes());
        a ^ b.to_bits() as i64
    }

    /// `host.fail(i32) -> i32`: fails on odd input, so a host error must reach the caller
    /// the same way everywhere.
    pub fn fail(&mut self, x: i32) -> Result<i32, Refused> {
        self.called(3, &x.to_le_bytes());
        if x % 2 != 0 { Err(Refused(x)) } else { Ok(x / 2) }
    }

    /// The calls since the last `take`, as they end a call's line.
    pub fn take(&mut self) -> impl fmt::Display + use<> {
        let (calls, hash) = (self.calls, self.hash.0);
        *self = Host { next: self.next, ..Host::default() };
        Calls { calls, hash }
    }
}

struct Calls {
    calls: u32,
    hash: u32,
}

impl fmt::Display for Calls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host {} calls {:#010x}", self.calls, self.hash)
    }
}

/// FNV-1a, 32 bits: small enough for the device, and any changed byte changes it.
#[derive(Clone, Copy)]
pub struct Fnv(u32);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0x811c_9dc5)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
    }

    pub fn of(bytes: &[u8]) -> u32 {
        let mut fnv = Fnv::default();
        fnv.write(bytes);
        fnv.0
    }
}

/// A number a function takes or returns, as the lines print it (floats as their bits).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::I32(v) => write!(f, "i32 {v}"),
            Number::I64(v) => write!(f, "i64 {v}"),
            Number::F32(bits) => write!(f, "f32 {bits:#010x}"),
            Number::F64(bits) => write!(f, "f64 {bits:#018x}"),
        }
    }
}

/// The kinds of number guests' functions take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    I32,
    I64,
    F32,
    F64,
}

/// The argument at `position` of a `kind` parameter: small, large, negative and boundary
/// values in turn. Function `n` in name order gets positions `3n`, `3n + 1`...
pub fn argument(kind: Kind, position: usize) -> Number {
    const VALUES: [i64; 10] = [0, 1, -1, 7, 0x7fff_ffff, i32::MIN as i64, 65535, 65536, 100, -100];
    let value = VALUES[position % VALUES.len()];
    match kind {
        Kind::I32 => Number::I32(value as i32),
        Kind::I64 => Number::I64(value.wrapping_mul(0x1_0000_0001)),
        Kind::F32 => Number::F32((value as f32).to_bits()),
        Kind::F64 => Number::F64((value as f64 / 3.0).to_bits()),
    }
}

/// [`argument`] as Wasmtime's value of type `ty`, a number type.
pub fn wasmtime_argument(ty: &ValType, position: usize) -> Val {
    value(argument(kind(ty), position))
}

/// The line for a memory of `bytes`, or a table whose entries are `set` or null.
pub fn memory_line(name: &str, bytes: &[u8]) -> impl fmt::Display {
    fmt::from_fn(move |f| write!(f, "memory {name} {} bytes {:#010x}", bytes.len(), Fnv::of(bytes)))
}

pub fn table_line(name: &str, set: &[bool]) -> impl fmt::Display {
    let bytes: Vec<u8> = set.iter().map(|&set| u8::from(set)).collect();
    let count = set.iter().filter(|&&set| set).count();
    fmt::from_fn(move |f| write!(f, "table {name} {} entries {count} set {:#010x}", bytes.len(), Fnv::of(&bytes)))
}

/// Runs `module` under `engine` and hands each line to `out`: every export called once
/// with the arguments [`argument`] gives, with `fuel` (if the engine meters fuel) for
/// each call. A stack overflow is printed like any trap: the bound differs between
/// pulley32 and pulley64, so the comparison leaves out a module where either overflowed.
pub fn run(engine: &Engine, module: &Module, fuel: Option<u64>, out: &mut dyn FnMut(fmt::Arguments<'_>)) {
    let mut store = Store::new(engine, Host::default());
    let mut linker = Linker::new(engine);
    let defined = linker
        .func_wrap("host", "record", |mut caller: wasmtime::Caller<'_, Host>, x: i32| caller.data_mut().record(x))
        .and_then(|l| l.func_wrap("host", "next", |mut caller: wasmtime::Caller<'_, Host>| caller.data_mut().next()))
        .and_then(|l| {
            l.func_wrap("host", "mix", |mut caller: wasmtime::Caller<'_, Host>, a: i64, b: f64| {
                caller.data_mut().mix(a, b)
            })
        })
        .and_then(|l| {
            l.func_wrap("host", "fail", |mut caller: wasmtime::Caller<'_, Host>, x: i32| {
                caller.data_mut().fail(x).map_err(wasmtime::Error::msg)
            })
        });
    if let Err(error) = defined {
        return out(format_args!("error: the host's imports: {error}"));
    }
    if let Some(fuel) = fuel {
        // Instantiation runs the start function, whose fuel comes from the same budget.
        let _ = store.set_fuel(fuel);
    }
    let instance = match linker.instantiate(&mut store, module) {
        Ok(instance) => {
            let calls = store.data_mut().take();
            out(format_args!("instantiate ok; {calls}"));
            instance
        }
        Err(error) => {
            let calls = store.data_mut().take();
            return out(format_args!("instantiate {}; {calls}", Failure(&error)));
        }
    };
    let mut exports: Vec<(String, ExternType)> =
        module.exports().map(|export| (String::from(export.name()), export.ty())).collect();
    exports.sort_by(|a, b| a.0.cmp(&b.0));
    let mut functions = 0;
    for (name, ty) in &exports {
        let ExternType::Func(ty) = ty else { continue };
        let func = instance.get_func(&mut store, name).expect("an exported function is there");
        let params: Vec<Val> = ty
            .params()
            .enumerate()
            .map(|(i, ty)| wasmtime_argument(&ty, functions * 3 + i))
            .collect();
        functions += 1;
        let mut results = alloc::vec![Val::I32(0); ty.results().len()];
        if let Some(fuel) = fuel {
            let _ = store.set_fuel(fuel);
        }
        let called = func.call(&mut store, &params, &mut results);
        let calls = store.data_mut().take();
        match called {
            Ok(()) => {
                let mut line = String::new();
                for result in &results {
                    let _ = write!(line, " {}", number(result));
                }
                out(format_args!("call {name} ={line}; {calls}"));
            }
            Err(error) => out(format_args!("call {name} {}; {calls}", Failure(&error))),
        }
    }
    for (name, _) in &exports {
        match instance.get_export(&mut store, name) {
            Some(Extern::Global(global)) => out(format_args!("global {name} = {}", number(&global.get(&mut store)))),
            Some(Extern::Memory(memory)) => out(format_args!("{}", memory_line(name, memory.data(&store)))),
            Some(Extern::Table(table)) => {
                let set: Vec<bool> = (0..table.size(&store))
                    .map(|i| matches!(table.get(&mut store, i), Some(Ref::Func(Some(_)))))
                    .collect();
                out(format_args!("{}", table_line(name, &set)));
            }
            _ => {}
        }
    }
}

/// A trap's name as Wasmtime's `Debug` writes it, spelled out: firmwares build with
/// `-Zfmt-debug=none`, under which `{:?}` writes nothing. The traps a core module can
/// raise; the rest (the Component Model's, GC's) are `other`.
fn trap_name(trap: &Trap) -> &'static str {
    match trap {
        Trap::StackOverflow => "StackOverflow",
        Trap::MemoryOutOfBounds => "MemoryOutOfBounds",
        Trap::HeapMisaligned => "HeapMisaligned",
        Trap::TableOutOfBounds => "TableOutOfBounds",
        Trap::IndirectCallToNull => "IndirectCallToNull",
        Trap::BadSignature => "BadSignature",
        Trap::IntegerOverflow => "IntegerOverflow",
        Trap::IntegerDivisionByZero => "IntegerDivisionByZero",
        Trap::BadConversionToInteger => "BadConversionToInteger",
        Trap::UnreachableCodeReached => "UnreachableCodeReached",
        Trap::Interrupt => "Interrupt",
        Trap::OutOfFuel => "OutOfFuel",
        Trap::NullReference => "NullReference",
        Trap::AllocationTooLarge => "AllocationTooLarge",
        Trap::DisabledOpcode => "DisabledOpcode",
        _ => "other",
    }
}

/// How a call or an instantiation failed: `trap: KIND` with Wasmtime's trap names, which
/// the wasmi oracle maps its own onto, or `host error` for the `fail` import's refusal.
struct Failure<'a>(&'a wasmtime::Error);

impl fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(trap) = self.0.downcast_ref::<Trap>() {
            write!(f, "trap: {}", trap_name(trap))
        } else if self.0.downcast_ref::<Refused>().is_some() {
            f.write_str("host error")
        } else {
            write!(f, "error: {}", self.0)
        }
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
        Number::F32(bits) => Val::F32(bits),
        Number::F64(bits) => Val::F64(bits),
    }
}

/// A number as the lines print it.
pub fn number(value: &Val) -> Number {
    match *value {
        Val::I32(v) => Number::I32(v),
        Val::I64(v) => Number::I64(v),
        Val::F32(bits) => Number::F32(bits),
        Val::F64(bits) => Number::F64(bits),
        _ => unreachable!("guests' values are numbers only"),
    }
}
