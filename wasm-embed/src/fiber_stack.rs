//! The stacks async calls run on. A microcontroller has no guard pages, so a fiber stack
//! that overflows would write into the heap blocks beside it without a fault. Each stack
//! this crate hands Wasmtime (`Config::with_host_stack`) is one heap block with
//! [`CANARY`] bytes below the part the fiber runs on, painted with a pattern; the whole
//! stack is painted too, so its deepest use can be read back. After every poll of an
//! async call the canaries are checked: one that changed further than was reported
//! before is an overflow, and the call ends with [`crate::Fault::FiberStackOverflow`]
//! instead of its result. The call's fiber is then dropped and its canary painted again:
//! Wasmtime gives the store's next call the same stack, and an overflow of that call, even
//! to the same depth, must be found too. The canary is painted again only when no other
//! call's poll or drop ran beside it ([`PollWindow`]), so that no fiber is in it.
//!
//! On the Arm cores with `stack-guard`, each canary is also an MPU region, read-only
//! (`stack_guard.rs`), while one is free: the first write into it faults, and the main
//! stack's guard handler reports it. What the paint check alone cannot do: catch an
//! overflow as it happens (it is found at the end of the poll). Neither sees a frame
//! larger than the canary that steps over it into the heap below. With calls polled on
//! two cores at once, or a guest's async call awaited inside another's import, another
//! call may be the one that finds it, and no canary is painted again: which call's fiber
//! is gone is then not known.

use alloc::alloc::{Layout, alloc, dealloc};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::ops::Range;

use critical_section::Mutex;
use wasmtime::{StackCreator, StackMemory};

/// Bytes below each fiber stack that catch an overflow: 256 on a microcontroller, a page
/// on a host (where the stack must start on one).
pub const CANARY: usize = 256_usize.next_multiple_of(ALIGN);

/// What the canary is painted with.
const CANARY_PAINT: u32 = 0xC0DE_CAFE;

/// What the part of the stack the fiber runs on is painted with, to measure its use.
const STACK_PAINT: u32 = 0x5A5A_5A5A;

/// How the stack's ends are aligned: 16 bytes, as Arm's and RISC-V's ABIs want; where
/// the MPU guards the canary, the canary's size, as an Armv6-M or Armv7-M region must be;
/// on the host the tests run on (config.rs says which), where Wasmtime's fibers check it,
/// a page.
const ALIGN: usize = if cfg!(feature = "std") {
    4096
} else if cfg!(wasm_embed_mpu_fibers) {
    256
} else {
    16
};

/// A stack alive now.
struct Live {
    /// Where its canary starts.
    canary: usize,
    /// Bytes of the stack above the canary.
    size: usize,
    /// How deep into the canary the overflow reported last went. The canary is painted
    /// again only once the fiber that overflowed is gone ([`settle`]): a fiber suspended
    /// in it keeps its registers there.
    reported: usize,
    /// Whether an MPU region guards the canary (on the core that set it).
    guarded: bool,
}

static LIVE: Mutex<RefCell<Vec<Live>>> = Mutex::new(RefCell::new(Vec::new()));

/// Windows of async calls open now, and how many have opened ([`PollWindow`]).
static WINDOWS: Mutex<Cell<(usize, usize)>> = Mutex::new(Cell::new((0, 0)));

/// A poll of an async call with its check, or a drop of one, counted while it runs:
/// fibers run only inside one (a poll resumes the call's fiber, a drop unwinds it). A
/// poll's check takes up the changes its fiber made, or ends the call; so outside the
/// windows, a canary changed further than was reported is a fiber's that is gone.
pub(crate) struct PollWindow {
    /// How many windows had opened with this one, if none was open when it did.
    first: Option<usize>,
}

impl PollWindow {
    pub(crate) fn open() -> PollWindow {
        critical_section::with(|cs| {
            let windows = WINDOWS.borrow(cs);
            let (open, opened) = windows.get();
            let opened = opened.wrapping_add(1);
            windows.set((open + 1, opened));
            PollWindow { first: (open == 0).then_some(opened) }
        })
    }

    /// Whether no other window was open at any time since this one opened (not another
    /// core's, nor one of a guest's async call awaited inside an import), and none can
    /// open while `cs` holds: then no other fiber runs.
    fn alone(&self, cs: critical_section::CriticalSection<'_>) -> bool {
        self.first == Some(WINDOWS.borrow(cs).get().1)
    }
}

impl Drop for PollWindow {
    fn drop(&mut self) {
        critical_section::with(|cs| {
            let windows = WINDOWS.borrow(cs);
            let (open, opened) = windows.get();
            windows.set((open - 1, opened));
        })
    }
}

/// Hands Wasmtime fiber stacks with a canary below them.
pub(crate) struct FiberStacks;

// SAFETY: each stack is a block of its own, aligned as Wasmtime wants, owned by the
// `FiberStack` until Wasmtime drops it.
unsafe impl StackCreator for FiberStacks {
    fn new_stack(&self, size: usize, _zeroed: bool) -> wasmtime::Result<Box<dyn StackMemory>> {
        // Painting replaces zeroing: no earlier contents stay in the block either way.
        // Not below 4 KiB, Wasmtime's own smallest.
        let size = size.max(4096).next_multiple_of(ALIGN);
        // Room in the list first, so that a full heap is this error rather than an abort.
        critical_section::with(|cs| LIVE.borrow_ref_mut(cs).try_reserve(1))
            .map_err(|_| wasmtime::format_err!("out of memory (failed to record a fiber stack)"))?;
        let layout = Layout::from_size_align(CANARY + size, ALIGN).map_err(wasmtime::Error::msg)?;
        // SAFETY: the layout is not empty.
        let base = unsafe { alloc(layout) };
        if base.is_null() {
            wasmtime::bail!("out of memory (failed to allocate {} bytes for a fiber stack)", layout.size());
        }
        let canary = base as usize..base as usize + CANARY;
        paint(canary.clone(), CANARY_PAINT);
        paint(canary.end..canary.end + size, STACK_PAINT);
        // The paint first: the region makes the canary read-only.
        let stack = FiberStack { base, size, region: guard_canary(canary.clone(), size) };
        let live = Live {
            canary: canary.start,
            size,
            reported: 0,
            guarded: stack.region.is_some(),
        };
        critical_section::with(|cs| LIVE.borrow_ref_mut(cs).push(live));
        Ok(Box::new(stack))
    }
}

/// Guards `canary` with an MPU region where there is one to spare (Arm, with
/// `stack-guard`), and returns it.
fn guard_canary(canary: Range<usize>, size: usize) -> Option<usize> {
    #[cfg(wasm_embed_mpu_fibers)]
    return crate::stack_guard::guard_fiber_canary(canary, size);
    #[cfg(not(wasm_embed_mpu_fibers))]
    {
        let _ = (canary, size);
        None
    }
}

/// Frees the region [`guard_canary`] returned; false on a core whose MPU does not hold
/// it (the other core of a dual-core chip), where the canary stays read-only.
fn release_canary(region: usize) -> bool {
    #[cfg(wasm_embed_mpu_fibers)]
    return crate::stack_guard::release_fiber_canary(region);
    #[cfg(not(wasm_embed_mpu_fibers))]
    {
        let _ = region;
        true
    }
}

fn paint(words: Range<usize>, with: u32) {
    for at in words.step_by(4) {
        // SAFETY: the callers pass words of a block they own.
        unsafe { (at as *mut u32).write_volatile(with) };
    }
}

/// Bytes from the start of `words` up to the first word that no longer holds `with`.
fn painted_from_bottom(words: Range<usize>, with: u32) -> usize {
    let (start, end) = (words.start, words.end);
    // SAFETY: the callers pass words of a live stack.
    words.step_by(4).find(|&at| unsafe { (at as *const u32).read_volatile() } != with).unwrap_or(end) - start
}

/// The first stack whose canary changed further than was reported before: an async
/// call's poll that ran on it overflowed it.
pub(crate) fn overflow() -> Option<FiberOverflow> {
    critical_section::with(|cs| {
        LIVE.borrow_ref_mut(cs).iter_mut().find_map(|live| {
            let by = depth(live);
            (by > live.reported).then(|| {
                live.reported = by;
                FiberOverflow { size: live.size, by, canary: live.canary }
            })
        })
    })
}

/// After the call whose check found `overflow` was dropped (its fiber unwound): measures
/// the canary again, as the unwinding may have gone deeper, and, when `window` was alone,
/// paints it again, so that the next overflow of its stack, to any depth, is found too.
pub(crate) fn settle(mut overflow: FiberOverflow, window: &PollWindow) -> FiberOverflow {
    critical_section::with(|cs| {
        let alone = window.alone(cs);
        if let Some(live) = LIVE.borrow_ref_mut(cs).iter_mut().find(|live| live.canary == overflow.canary) {
            overflow.by = overflow.by.max(depth(live));
            live.reported = overflow.by;
            if alone {
                paint_again(live);
            }
        }
    });
    overflow
}

/// After a call was dropped (its fiber unwound, perhaps into its canary), when `window`
/// was alone: paints again every canary changed into, further than was reported. Each is
/// a gone fiber's (see [`PollWindow`]): the dropped call's, which has no one to report to.
pub(crate) fn settle_drop(window: &PollWindow) {
    critical_section::with(|cs| {
        if window.alone(cs) {
            for live in LIVE.borrow_ref_mut(cs).iter_mut().filter(|live| depth(live) > live.reported) {
                paint_again(live);
            }
        }
    })
}

/// How far into `live`'s canary its stack has written.
fn depth(live: &Live) -> usize {
    CANARY - painted_from_bottom(live.canary..live.canary + CANARY, CANARY_PAINT)
}

/// Paints `live`'s canary again, no fiber being in it. Not one written through: it is left
/// for a check to report, with its line to restart. Nor one an MPU region guards, which
/// another core may have written without a fault, and which would fault here.
fn paint_again(live: &mut Live) {
    if depth(live) < CANARY && !live.guarded {
        paint(live.canary..live.canary + CANARY, CANARY_PAINT);
        live.reported = 0;
    }
}

/// The most bytes any fiber stack alive now has used, measured by its paint; `None`
/// while no async call has a stack.
pub fn fiber_stack_peak() -> Option<usize> {
    critical_section::with(|cs| {
        let live = LIVE.borrow_ref(cs);
        let used = |live: &Live| {
            let stack = live.canary + CANARY..live.canary + CANARY + live.size;
            live.size - painted_from_bottom(stack, STACK_PAINT)
        };
        live.iter().map(used).max()
    })
}

/// An async call's fiber stack overflowed: the call ends with this error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FiberOverflow {
    /// Bytes of the stack, above its canary.
    pub(crate) size: usize,
    /// How far below the stack the deepest write went; [`CANARY`] means through the
    /// canary, into the memory beside the block.
    pub(crate) by: usize,
    /// Where the canary starts.
    pub(crate) canary: usize,
}

impl fmt::Display for FiberOverflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let FiberOverflow { size, by, .. } = *self;
        if by < CANARY {
            write!(f, "overflowed its fiber stack of {size} bytes by {by} bytes, into the {CANARY} bytes kept below it")
        } else {
            write!(
                f,
                "overflowed its fiber stack of {size} bytes through the {CANARY} bytes kept below it, so the heap \
                 beside it may be overwritten: restart the firmware"
            )
        }
    }
}

impl core::error::Error for FiberOverflow {}

struct FiberStack {
    base: *mut u8,
    size: usize,
    /// The MPU region that guards the canary, if one does (Arm, with `stack-guard`).
    region: Option<usize>,
}

// SAFETY: the block is owned by this value alone, and its accessors only compute
// addresses; Wasmtime moves it between threads only with the store that runs on it.
unsafe impl Send for FiberStack {}
unsafe impl Sync for FiberStack {}

impl FiberStack {
    /// The [`CANARY`] bytes just below the stack.
    fn canary(&self) -> Range<usize> {
        self.base as usize..self.base as usize + CANARY
    }
}

// SAFETY: `top` is the end of the block, `range` the part above the canary, all in the
// block this value owns.
unsafe impl StackMemory for FiberStack {
    fn top(&self) -> *mut u8 {
        self.base.wrapping_add(CANARY + self.size)
    }

    fn range(&self) -> Range<usize> {
        self.base as usize + CANARY..self.base as usize + CANARY + self.size
    }

    fn guard_range(&self) -> Range<*mut u8> {
        let canary = self.canary();
        canary.start as *mut u8..canary.end as *mut u8
    }
}

impl Drop for FiberStack {
    fn drop(&mut self) {
        let canary = self.canary().start;
        critical_section::with(|cs| LIVE.borrow_ref_mut(cs).retain(|live| live.canary != canary));
        // Before the heap writes its records into the block. A block whose canary stays
        // read-only is never freed: the heap would fault writing them.
        if self.region.is_some_and(|region| !release_canary(region)) {
            return;
        }
        // SAFETY: allocated in `new_stack` with this layout.
        unsafe { dealloc(self.base, Layout::from_size_align_unchecked(CANARY + self.size, ALIGN)) }
    }
}
