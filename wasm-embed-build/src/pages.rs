//! The `pages` stage: give the guest's linear memory a 1-byte page size (the custom-page-sizes
//! proposal) and exactly the bytes its stack and static data need, instead of whole
//! 64 KiB pages, which the firmware would otherwise allocate from its heap.
//!
//! It runs after `optimize` because binaryen cannot parse such a memory.

use walrus::ir::{Instr, InstrLocId, Visitor, dfs_in_order};
use walrus::ir::Value;
use walrus::{ConstExpr, DataKind, GlobalKind, ValType};

use crate::Error;

/// What happened to the guest's memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Memory {
    /// The guest has no memory of its own.
    None,
    /// Resized to this many 1-byte pages, its minimum (and what the firmware allocates).
    Exact {
        /// The memory's size in bytes, which is also its number of pages (0 when its code
        /// never touches memory and it has no data).
        bytes: u64,
    },
    /// Kept in 64 KiB pages, for this reason.
    Standard {
        /// Why, as a clause that follows "because" (`it uses memory.grow or memory.size`).
        reason: &'static str,
    },
}

/// Resizes the guest's memory; a guest that grows or measures its memory keeps 64 KiB
/// pages, because allocators written for them would break. Either way a guest's memory
/// never grows on the device: it is allocated at its initial size, never reserved ahead
/// and never moved, so `memory.grow` returns -1 (failure, as Wasm allows).
pub fn shrink_memory(guest: &str, wasm: &[u8]) -> Result<(Vec<u8>, Memory), Error> {
    let mut module = crate::strip::parse(guest, wasm)?;
    let keep = |reason| Ok((wasm.to_vec(), Memory::Standard { reason }));
    let memory = match module.memories.iter().collect::<Vec<_>>()[..] {
        [] => return Ok((wasm.to_vec(), Memory::None)),
        [memory] => memory,
        _ => return keep("it has more than one memory"),
    };
    if memory.import.is_some() {
        return keep("its memory is imported");
    }
    if memory.memory64 || memory.shared || memory.page_size_log2.is_some() {
        return keep("its memory is 64-bit, shared or already has a custom page size");
    }
    let uses = memory_use(&module);
    if uses.grows {
        return keep("it uses memory.grow or memory.size");
    }
    let id = memory.id();
    let current = memory.initial * 65536;
    let data_end = module
        .data
        .iter()
        .filter_map(|data| match &data.kind {
            DataKind::Active {
                offset: ConstExpr::Value(Value::I32(offset)),
                ..
            } => Some(u64::from(*offset as u32) + data.value.len() as u64),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    // The linker puts the shadow stack first and initialises its pointer (and
    // `__data_end`/`__heap_base`, if kept) with addresses inside the memory: the memory
    // must reach the highest of them.
    let highest_address = module
        .globals
        .iter()
        .filter(|g| g.ty == ValType::I32)
        .filter_map(|g| match g.kind {
            GlobalKind::Local(ConstExpr::Value(Value::I32(value))) => Some(u64::from(value as u32)),
            _ => None,
        })
        .filter(|&address| address <= current)
        .max()
        .unwrap_or(0);
    // The linker's end of stack, data and zeroed statics (`--export=__heap_base`, which
    // the compile stage asks for): wasm-opt may fold the stack pointer into constant
    // addresses and zeroed statics have no data segment, so neither shows otherwise.
    // Without it nothing says which addresses the code may use: a module that is not
    // laid out by a linker may use any of its memory (the differential test found
    // modules whose code reaches past every data segment and global).
    let Some(heap_base) = module.exports.iter().find(|e| e.name == HEAP_BASE).map(|e| e.id()) else {
        return keep(NO_HEAP_BASE);
    };
    let linked_end = match module.exports.get(heap_base).item {
        walrus::ExportItem::Global(global) => match module.globals.get(global).kind {
            GlobalKind::Local(ConstExpr::Value(Value::I32(value))) => u64::from(value as u32),
            _ => return keep("its __heap_base is not a constant"),
        },
        _ => return keep("its __heap_base is not a global"),
    };
    // Only this stage needed it; it would cost the .cwasm an export.
    module.exports.delete(heap_base);
    walrus::passes::gc::run(&mut module);
    // A guest whose code never touches memory needs none, whatever the linker reserved.
    let bytes = if uses.touches || data_end > 0 {
        data_end.max(highest_address).max(linked_end)
    } else {
        0
    };
    let memory = module.memories.get_mut(id);
    memory.page_size_log2 = Some(0);
    memory.initial = bytes;
    // No maximum, rather than one equal to the minimum: with min == max Wasmtime knows
    // the bound at compile time and Pulley checks each access with four instructions
    // (add, compare with the constant, select a null address, load); with no maximum the
    // bound is read from the memory's definition and each access is one bounds-checked
    // `*_g32` load or store. The allocation stays exactly the minimum either way: the
    // engine reserves nothing for growth and never moves a memory, so `memory.grow` past
    // it fails (and a guest given 1-byte pages never calls it).
    memory.maximum = None;
    Ok((module.emit_wasm(), Memory::Exact { bytes }))
}

/// The global holding the end of the linker's layout, exported for this stage.
pub const HEAP_BASE: &str = "__heap_base";

/// Why a module without [`HEAP_BASE`] keeps its pages.
pub const NO_HEAP_BASE: &str = "it does not export __heap_base, the end of its stack and data";

/// How a module's code uses its memory.
#[derive(Default)]
struct MemoryUse {
    /// `memory.grow` or `memory.size`.
    grows: bool,
    /// Any load, store or bulk memory instruction.
    touches: bool,
}

impl<'a> Visitor<'a> for MemoryUse {
    fn visit_instr(&mut self, instr: &'a Instr, _: &'a InstrLocId) {
        self.grows |= matches!(instr, Instr::MemoryGrow(_) | Instr::MemorySize(_));
        self.touches |= matches!(
            instr,
            Instr::Load(_)
                | Instr::Store(_)
                | Instr::LoadSimd(_)
                | Instr::MemoryInit(_)
                | Instr::MemoryCopy(_)
                | Instr::MemoryFill(_)
                | Instr::AtomicRmw(_)
                | Instr::Cmpxchg(_)
                | Instr::AtomicNotify(_)
                | Instr::AtomicWait(_)
        );
    }
}

fn memory_use(module: &walrus::Module) -> MemoryUse {
    let mut uses = MemoryUse::default();
    for (_, function) in module.funcs.iter_local() {
        dfs_in_order(&mut uses, function, function.entry_block());
    }
    uses
}
