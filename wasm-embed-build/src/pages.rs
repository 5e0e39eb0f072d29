//! Stage 5: give the guest's linear memory a 1-byte page size (the custom-page-sizes
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
    /// Resized to this many 1-byte pages, its minimum and maximum.
    Exact { bytes: u64 },
    /// Kept in 64 KiB pages, for this reason.
    Standard { reason: &'static str },
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
    if uses_memory_size_or_grow(&module) {
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
    let bytes = data_end.max(highest_address);
    let memory = module.memories.get_mut(id);
    memory.page_size_log2 = Some(0);
    memory.initial = bytes;
    memory.maximum = Some(bytes);
    Ok((module.emit_wasm(), Memory::Exact { bytes }))
}

fn uses_memory_size_or_grow(module: &walrus::Module) -> bool {
    struct Finder(bool);
    impl<'a> Visitor<'a> for Finder {
        fn visit_instr(&mut self, instr: &'a Instr, _: &'a InstrLocId) {
            self.0 |= matches!(instr, Instr::MemoryGrow(_) | Instr::MemorySize(_));
        }
    }
    let mut finder = Finder(false);
    for (_, function) in module.funcs.iter_local() {
        dfs_in_order(&mut finder, function, function.entry_block());
    }
    finder.0
}
