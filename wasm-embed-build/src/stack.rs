//! The `stack` stage: how many bytes of Pulley stack a call into the guest can use at most, so the
//! firmware allocates exactly that instead of a guess (Pulley allocates the whole stack
//! from the heap when a store is made).
//!
//! The bound comes from the Pulley code itself: the guest is compiled once more with
//! symbols, each function's frame is read from its prologue, and the deepest path
//! through its direct calls is summed, starting at the trampolines the host enters by.
//! A guest whose depth cannot be known (recursion, calls through a table) gets no bound.

use std::collections::HashMap;

use object::{Object, ObjectSection, ObjectSymbol};
use pulley_interpreter::decode::Decoder;
use pulley_interpreter::disas::Disassembler;
use wasmparser::{Operator, Payload};
use wasm_embed::{Profile, Settings, Target};

use crate::Error;

/// What a guest needs of the Pulley stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stack {
    /// No call into the guest uses more than this many bytes.
    Bounded {
        /// The bound in bytes; for a component guest, twice the deepest call, since the host
        /// may enter it once more (its `cabi_realloc`) on top of its frames.
        bytes: usize,
    },
    /// The depth depends on the input, for this reason.
    Unbounded {
        /// Why, in one clause (`it calls functions through a table (call_indirect)`, or a
        /// function that calls itself or whose Pulley code could not be read).
        reason: String,
    },
}

/// The deepest Pulley stack a call into `wasm` can reach under `settings`; for a
/// component guest, a call into `component`, the component made from `wasm`.
pub fn pulley_stack(guest: &str, settings: &Settings, wasm: &[u8], component: Option<&[u8]>) -> Result<Stack, Error> {
    let invalid = |message: String| Error::Parse {
        guest: guest.to_owned(),
        message,
    };
    if let Some(reason) = unbounded_in_wasm(wasm).map_err(invalid)? {
        return Ok(Stack::Unbounded { reason });
    }
    // Symbols do not change the code, only add its function names and offsets.
    let symbolized = Settings {
        profile: Profile::Debug,
        ..*settings
    };
    let cwasm = crate::precompile::precompile(guest, &symbolized, component.unwrap_or(wasm), component.is_some())?;
    // Code this reader does not understand is not the guest's fault: the guest then gets
    // the default stack, with the build warning that names this reason.
    Ok(match functions(&cwasm, pointer_bytes(settings.target)) {
        // A component's lowering trampolines reach the host through `call_indirect_host`,
        // and the host may enter the guest again on top of the guest's frames: to hand it
        // a string or list an import returns, it calls the guest's `cabi_realloc`. Imports
        // do not nest (the Component Model forbids re-entering a component), so that is
        // one more entry at most, no deeper than the deepest.
        Ok(functions) => match (deepest_entry(&functions), component) {
            (Stack::Bounded { bytes }, Some(_)) => Stack::Bounded { bytes: 2 * bytes },
            (stack, _) => stack,
        },
        Err(why) => Stack::Unbounded {
            reason: format!("its compiled Pulley code could not be read ({why})"),
        },
    })
}

/// Every function of a symbolized `.cwasm`, read.
fn functions(cwasm: &[u8], pointer: usize) -> Result<Vec<Function>, String> {
    let object = object::File::parse(cwasm).map_err(|e| e.to_string())?;
    let text = object.section_by_name(".text").ok_or("the .cwasm has no .text")?;
    let code = text.data().map_err(|e| e.to_string())?;
    let mut functions = Vec::new();
    for symbol in object.symbols().filter(|s| s.size() > 0) {
        let name = symbol.name().map_err(|e| e.to_string())?.to_owned();
        let start = (symbol.address() - text.address()) as usize;
        let bytes = code
            .get(start..start + symbol.size() as usize)
            .ok_or_else(|| format!("symbol {name} lies outside .text"))?;
        functions.push(Function::read(name, start, bytes, pointer)?);
    }
    Ok(functions)
}

fn pointer_bytes(target: Target) -> usize {
    match target {
        Target::Pulley32 => 4,
        Target::Pulley64 => 8,
    }
}

/// What the wasm alone says makes the depth unknowable: a call through a table could
/// reach any function, including the caller.
fn unbounded_in_wasm(wasm: &[u8]) -> Result<Option<String>, String> {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Payload::CodeSectionEntry(body) = payload.map_err(|e| e.to_string())? else {
            continue;
        };
        let mut operators = body.get_operators_reader().map_err(|e| e.to_string())?;
        while !operators.eof() {
            if let Operator::CallIndirect { .. } | Operator::ReturnCallIndirect { .. } | Operator::CallRef { .. } =
                operators.read().map_err(|e| e.to_string())?
            {
                return Ok(Some("it calls functions through a table (call_indirect)".to_owned()));
            }
        }
    }
    Ok(None)
}

/// One compiled function: its frame and whom it calls.
#[derive(Debug)]
struct Function {
    name: String,
    /// Its offset in `.text`, which direct calls target.
    start: usize,
    /// Bytes its prologue takes from the stack: saved registers, spills, outgoing
    /// arguments, and the return address and frame pointer.
    frame: usize,
    /// `.text` offsets of the functions it calls directly.
    calls: Vec<usize>,
    /// Whether it calls through a register. With no tables in the wasm, that is only
    /// an import or a Wasmtime builtin, both reached through host-facing trampolines.
    calls_indirect: bool,
    /// Why its frame cannot be read, if it cannot.
    unreadable: Option<String>,
}

impl Function {
    fn read(name: String, start: usize, code: &[u8], pointer: usize) -> Result<Function, String> {
        let mut disassembler = Disassembler::new(code);
        disassembler.offsets(false).hexdump(false).br_tables(false);
        Decoder::decode_all(&mut disassembler).map_err(|e| format!("{name}: {e:?}"))?;
        let mut function = Function {
            name,
            start,
            frame: 0,
            calls: Vec::new(),
            calls_indirect: false,
            unreadable: None,
        };
        for line in disassembler.disas().lines() {
            let (op, operands) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            let amount = || operands.split(',').next().and_then(|a| a.trim().parse::<usize>().ok());
            let mut grow = |bytes: Option<usize>| match bytes {
                Some(bytes) => function.frame += bytes,
                None => function.unreadable = Some(format!("an unreadable frame size in `{line}`")),
            };
            match op {
                "push_frame" => grow(Some(2 * pointer)),
                "push_frame_save" => grow(amount().map(|amount| amount + 2 * pointer)),
                "stack_alloc32" => grow(amount()),
                "call" | "call1" | "call2" | "call3" | "call4" => {
                    // The disassembler prints the target relative to the function.
                    let target = operands
                        .split("target = 0x")
                        .nth(1)
                        .and_then(|t| u64::from_str_radix(t.trim(), 16).ok());
                    match target {
                        Some(t) => function.calls.push(start.wrapping_add(t as usize)),
                        None => function.unreadable = Some(format!("an unreadable call `{line}`")),
                    }
                }
                "call_indirect" => function.calls_indirect = true,
                // The host's own stack, not Pulley's.
                "call_indirect_host" => {}
                _ if operands.starts_with("sp,") && !op.contains("store") => {
                    function.unreadable = Some(format!("`{line}` moves the stack pointer"));
                }
                _ => {}
            }
        }
        Ok(function)
    }

    fn faces_host(&self) -> bool {
        !self.name.starts_with("wasm[")
    }
}

/// The deepest stack over every trampoline the host can enter the guest by: each export's,
/// and the one instantiation enters the module's startup code by (`module_start[0]::Array`),
/// which Wasmtime compiles to copy data segments into memory. A module with data and no
/// exported function has only that one; the bound must cover it, or Wasmtime panics where
/// it would trap (a Pulley stack overflow in an entry trampoline, before the trampoline
/// has recorded where a trap returns to).
fn deepest_entry(functions: &[Function]) -> Stack {
    let by_start: HashMap<usize, usize> = functions.iter().enumerate().map(|(i, f)| (f.start, i)).collect();
    let mut depths: Vec<Option<Result<usize, String>>> = vec![None; functions.len()];
    let mut bytes = 0;
    for (index, function) in functions.iter().enumerate() {
        if function.name.contains("array_to_wasm_trampoline") || function.name.ends_with("::Array") {
            match depth(index, functions, &by_start, &mut depths, &mut Vec::new()) {
                Ok(depth) => bytes = bytes.max(depth),
                Err(reason) => return Stack::Unbounded { reason },
            }
        }
    }
    Stack::Bounded { bytes }
}

fn depth(
    index: usize,
    functions: &[Function],
    by_start: &HashMap<usize, usize>,
    memo: &mut Vec<Option<Result<usize, String>>>,
    path: &mut Vec<usize>,
) -> Result<usize, String> {
    if let Some(known) = &memo[index] {
        return known.clone();
    }
    let function = &functions[index];
    if path.contains(&index) {
        return Err(format!("{} calls itself (recursion)", function.name));
    }
    if let Some(reason) = &function.unreadable {
        return Err(format!("{} has {reason}", function.name));
    }
    path.push(index);
    let mut callees: Vec<usize> = Vec::new();
    for target in &function.calls {
        match by_start.get(target) {
            Some(&callee) => callees.push(callee),
            None => {
                path.pop();
                return Err(format!("{} calls {target:#x}, which is no known function", function.name));
            }
        }
    }
    if function.calls_indirect {
        callees.extend((0..functions.len()).filter(|&i| functions[i].faces_host()));
    }
    let mut deepest = 0;
    let mut result = Ok(());
    for callee in callees {
        match depth(callee, functions, by_start, memo, path) {
            Ok(d) => deepest = deepest.max(d),
            Err(reason) => {
                result = Err(reason);
                break;
            }
        }
    }
    path.pop();
    let known = result.map(|()| function.frame + deepest);
    memo[index] = Some(known.clone());
    known
}

/// As stored beside the `.cwasm` between builds: `bounded <bytes>` or `unbounded <why>`.
impl std::fmt::Display for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stack::Bounded { bytes } => write!(f, "bounded {bytes}"),
            Stack::Unbounded { reason } => write!(f, "unbounded {reason}"),
        }
    }
}

impl std::str::FromStr for Stack {
    type Err = String;

    fn from_str(text: &str) -> Result<Stack, String> {
        match text.split_once(' ') {
            Some(("bounded", bytes)) => bytes
                .parse()
                .map(|bytes| Stack::Bounded { bytes })
                .map_err(|e| format!("stack bound `{bytes}`: {e}")),
            Some(("unbounded", reason)) => Ok(Stack::Unbounded {
                reason: reason.to_owned(),
            }),
            _ => Err(format!("unreadable stack bound `{text}`")),
        }
    }
}
