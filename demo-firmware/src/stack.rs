//! The main stack's guard. The stack grows down from the top of RAM towards the statics,
//! the heap arena among them, where an overflow would overwrite Wasmtime's data without a
//! fault. So the link puts a guard of [`GUARD_SIZE`] bytes between the statics and the
//! stack (build.rs), a region nothing may write, set before RAM is initialised
//! (src/arm.rs: the MPU; riscv/board.rs: a locked PMP entry, which binds machine mode
//! too). A stack that grows into it faults at once, and the fault handler, on a stack of
//! its own, prints one line and stops the run.
//!
//! The guard catches a stack that grows by less than its size at a time: it is larger
//! than the firmware's largest frame (build.rs says which).

use core::ops::Range;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::say;

// GUARD_SIZE, from build.rs, which places the guard.
include!(concat!(env!("OUT_DIR"), "/stack-guard.rs"));

/// Bytes of the stack the fault handler switches to: the main stack may be the one that
/// overflowed, so the handler cannot run on it.
pub(crate) const FAULT_STACK_SIZE: usize = 1024;

/// The fault handler's stack, 16-byte aligned as the RISC-V psABI wants its stack pointer.
/// Only the handler's assembly uses it, by its address.
#[repr(C, align(16))]
pub(crate) struct FaultStack([u8; FAULT_STACK_SIZE]);
pub(crate) static mut FAULT_STACK: FaultStack = FaultStack([0; FAULT_STACK_SIZE]);

unsafe extern "C" {
    /// The memory between the statics and the guard, which nothing owns (build.rs).
    static __stack_watch: u8;
    /// The guard's first byte (build.rs).
    static __stack_guard: u8;
    /// The top of the stack.
    static _stack_start: u8;
}

/// The guard's addresses.
pub fn guard() -> Range<usize> {
    let start = &raw const __stack_guard as usize;
    start..start + GUARD_SIZE
}

/// Bytes the stack has above its guard.
pub fn size() -> usize {
    &raw const _stack_start as usize - guard().end
}

/// What [`paint_free`] paints the free part of the stack with.
const STACK_PAINT: u32 = 0xCCCC_CCCC;

/// Paints the stack below the caller's frame down to the guard, so that [`peak_use`]
/// can tell how deep it has gone since: call it first in `main`. What probe-rs reports
/// for a firmware linked with flip-link, measured on the device itself.
#[inline(never)]
pub fn paint_free() {
    let here = 0u8;
    // Clear of this function's own frame, which is below the caller's.
    let below = (core::hint::black_box(&raw const here) as usize - 256) & !3;
    for at in (guard().end..below).step_by(4) {
        // SAFETY: free stack, between the guard and this frame, which nothing uses yet.
        unsafe { (at as *mut u32).write_volatile(STACK_PAINT) };
    }
}

/// The most bytes of the stack in use at once since [`paint_free`]: from its top down to
/// the lowest word no longer as painted.
pub fn peak_use() -> usize {
    let top = &raw const _stack_start as usize;
    // SAFETY: the stack's own words, above the guard.
    let deepest = (guard().end..top).step_by(4).find(|&at| unsafe { (at as *const u32).read_volatile() } != STACK_PAINT);
    top - deepest.unwrap_or(top)
}

/// What [`watch_below_guard`] paints the memory below the guard with.
const PAINT: u8 = 0xA5;

static WATCHING: AtomicBool = AtomicBool::new(false);

/// The memory just below the guard, between it and the statics: nothing owns it.
fn below_guard() -> Range<usize> {
    &raw const __stack_watch as usize..guard().start
}

/// Bytes of memory below the guard that [`watch_below_guard`] paints.
pub fn watched() -> usize {
    below_guard().len()
}

/// Prints the stack's size and where its guard is, and paints the memory below the guard,
/// so that the report of an overflow says whether it is as painted: a stack that stepped
/// over the guard would have written it. What the stack overflow examples do first.
pub fn watch_below_guard() {
    say!("the stack: {} bytes above its guard at {:#010x}", size(), guard().start);
    for at in below_guard() {
        // SAFETY: the link reserves these bytes for this, and nothing else uses them.
        unsafe { (at as *mut u8).write_volatile(PAINT) };
    }
    WATCHING.store(true, Ordering::Relaxed);
}

/// Whether the memory below the guard is as [`watch_below_guard`] painted it.
fn below_guard_as_painted() -> bool {
    // SAFETY: as in `watch_below_guard`.
    below_guard().all(|at| unsafe { (at as *const u8).read_volatile() } == PAINT)
}

/// Whether a fault with the stack pointer at `sp`, or at the data address `address` where
/// the core reports one, was the stack reaching its guard. Entering the fault handler
/// stores a frame below `sp`: when that faults, `sp` ends in the guard, or at most the
/// 4 bytes above it by which an ARMv6-M push can exceed a frame. (RISC-V's
/// trap entry asks the same of the fault's address alone, before it touches the stack.)
#[cfg(target_arch = "arm")]
pub(crate) fn overflowed(sp: usize, address: Option<usize>) -> bool {
    let guard = guard();
    address.is_some_and(|at| guard.contains(&at)) || (guard.start..guard.end + 8).contains(&sp)
}

/// Prints the one line of a stack overflow (and, where watched, whether the memory below
/// the guard is as painted).
pub(crate) fn report_overflow() {
    let guard = guard();
    say!(
        "error: the stack overflowed: it grew through its {} bytes to the guard at {:#010x}; give it more RAM \
         (a smaller heap) or make the calls that ran less deep",
        size(),
        guard.start
    );
    if WATCHING.load(Ordering::Relaxed) {
        let same = below_guard_as_painted();
        say!("the {} bytes below the guard: {}", watched(), if same { "as painted" } else { "CHANGED" });
    }
}

/// Recurses without bound, 64 bytes of locals a call, until the stack reaches its guard:
/// what the stack overflow examples call.
#[inline(never)]
pub fn recurse_without_bound(depth: u32) -> u32 {
    let mut locals = [depth; 16];
    core::hint::black_box(&mut locals);
    if core::hint::black_box(depth) == u32::MAX {
        return 0;
    }
    recurse_without_bound(depth + 1).wrapping_add(locals[depth as usize % 16])
}
