//! The main stack's guard. The stack grows down from the top of RAM towards the statics,
//! the heap arena among them, where an overflow would overwrite Wasmtime's data without a
//! fault. So the lowest [`GUARD_SIZE`] bytes the stack may reach are a region nothing may
//! write, set before RAM is initialised (src/arm.rs: the MPU; riscv/board.rs: a locked PMP
//! entry, which binds machine mode too). A stack that grows into it faults at once, and the
//! fault handler, on a stack of its own, prints one line and stops the run.
//!
//! The guard catches a stack that grows by less than its size at a time: a function whose
//! frame is larger than the guard could step over it.

use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::say;

/// Bytes of the guard: a power of two, as the Armv7-M MPU and a NAPOT PMP region need.
/// Not larger than every frame: Wasmtime's `Engine::new` takes 3,148 B of stack on the
/// Cortex-M4 and 3,200 B on RISC-V, so a stack that reaches the guard inside it can step
/// over it (docs/boards.md).
pub const GUARD_SIZE: usize = 1024;

/// Bytes of the stack the fault handler switches to: the main stack may be the one that
/// overflowed, so the handler cannot run on it.
pub(crate) const FAULT_STACK_SIZE: usize = 1024;

/// The fault handler's stack. Only the handler's assembly uses it, by its address.
pub(crate) static mut FAULT_STACK: [u64; FAULT_STACK_SIZE / 8] = [0; FAULT_STACK_SIZE / 8];

unsafe extern "C" {
    /// The lowest address the stack may reach: the end of the statics (cortex-m-rt's
    /// `_stack_end`, riscv-rt's `__estack`).
    #[cfg_attr(target_arch = "arm", link_name = "_stack_end")]
    #[cfg_attr(target_arch = "riscv32", link_name = "__estack")]
    static STACK_END: u8;
    /// The top of the stack.
    static _stack_start: u8;
}

/// The guard's addresses: above the statics, aligned to its size.
pub fn guard() -> Range<usize> {
    let end = &raw const STACK_END as usize;
    let start = (end + GUARD_SIZE - 1) & !(GUARD_SIZE - 1);
    start..start + GUARD_SIZE
}

/// Bytes the stack has above its guard.
pub fn size() -> usize {
    &raw const _stack_start as usize - guard().end
}

/// Bytes below the guard that [`watch_below_guard`] checks.
pub const WATCHED: usize = 256;

static WATCHING: AtomicBool = AtomicBool::new(false);
static WATCHED_SUM: AtomicU32 = AtomicU32::new(0);

/// Records the bytes just below the guard (the top of the statics), so that the report of
/// an overflow says whether they are as they were: a test that nothing but the guard was
/// reached.
pub fn watch_below_guard() {
    WATCHED_SUM.store(below_guard_sum(), Ordering::Relaxed);
    WATCHING.store(true, Ordering::Relaxed);
}

/// FNV-1a over the [`WATCHED`] bytes below the guard.
fn below_guard_sum() -> u32 {
    let start = guard().start - WATCHED;
    (start..start + WATCHED).fold(0x811c_9dc5, |sum, at| {
        // SAFETY: the statics end below the guard, so these bytes are RAM.
        let byte = unsafe { (at as *const u8).read_volatile() };
        (sum ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// Whether a fault with the stack pointer at `sp`, or at the data address `address` where
/// the core reports one, was the stack reaching its guard. Entering the fault handler
/// stores a frame below `sp`, which then lies in the guard or just above it. (RISC-V's
/// trap entry asks the same of the fault's address alone, before it touches the stack.)
#[cfg(target_arch = "arm")]
pub(crate) fn overflowed(sp: usize, address: Option<usize>) -> bool {
    let guard = guard();
    address.is_some_and(|at| guard.contains(&at)) || (guard.start..guard.end + 128).contains(&sp)
}

/// Prints the one line of a stack overflow (and, where watched, whether the bytes below
/// the guard are unchanged).
pub(crate) fn report_overflow() {
    let guard = guard();
    say!(
        "error: the stack overflowed: it grew through its {} bytes to the guard at {:#010x}; give it more RAM \
         (a smaller heap) or make the calls that ran less deep",
        size(),
        guard.start
    );
    if WATCHING.load(Ordering::Relaxed) {
        let same = below_guard_sum() == WATCHED_SUM.load(Ordering::Relaxed);
        say!("the {WATCHED} bytes below the guard: {}", if same { "unchanged" } else { "CHANGED" });
    }
}
