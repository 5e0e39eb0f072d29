//! The main stack's guard, from wasm-embed's `stack-guard`: the stack grows down from the
//! top of RAM towards the statics, the heap arena among them, where an overflow would
//! overwrite Wasmtime's data without a fault. So the link puts a guard of 4 KiB between
//! the statics and the stack (wasm-embed-build), a region nothing may write, which
//! [`crate::init`] protects first (the MPU; on RISC-V a locked PMP entry, which binds
//! machine mode too). A stack that grows into it faults at once, and the fault handler,
//! on a stack of its own, prints one line and stops the run.

use core::ops::Range;
use core::sync::atomic::{AtomicBool, Ordering};

use wasm_embed::stack_guard::MainFault;
pub use wasm_embed::stack_guard::{guard, stack_size as size};

use crate::say;

unsafe extern "C" {
    /// The memory between the statics and the guard, which nothing owns (wasm-embed-build).
    static __stack_watch: u8;
    /// The top of the stack.
    static _stack_start: u8;
}

/// What the guard's handler does, on a stack of its own: one line, and the run ends. An
/// abort for want of heap is a hard fault too, and its own line says more.
pub(crate) fn on_fault(fault: &MainFault) -> ! {
    let overflowed = matches!(fault, MainFault::StackOverflow { .. });
    if !matches!(fault, MainFault::HardFault { .. }) || !crate::heap::report_exhaustion() {
        say!("error: {fault}");
    }
    if overflowed && WATCHING.load(Ordering::Relaxed) {
        let same = below_guard_as_painted();
        say!("the {} bytes below the guard: {}", watched(), if same { "as painted" } else { "CHANGED" });
    }
    #[cfg(feature = "embassy")]
    if let MainFault::FiberStackOverflow { canary, .. } = *fault {
        // What wasm-embed paints a fiber stack's canary with: the MPU stopped the first
        // write into it.
        const CANARY_PAINT: u32 = 0xC0DE_CAFE;
        let canary = canary..canary + wasm_embed::FIBER_STACK_CANARY;
        // SAFETY: the canary's block is alive: the fiber that overflowed into it runs on it.
        let same = canary.clone().step_by(4).all(|at| unsafe { (at as *const u32).read_volatile() } == CANARY_PAINT);
        say!("the {} bytes below the fiber stack: {}", canary.len(), if same { "as painted" } else { "CHANGED" });
    }
    crate::exit(false)
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
