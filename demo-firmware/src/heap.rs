//! The heap Wasmtime allocates from, wrapped to count the peak in use.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

/// Bytes of RAM given to the heap; the rest of the 256 KiB is stack and statics.
const HEAP_SIZE: usize = 192 * 1024;

#[global_allocator]
static HEAP: CountingHeap = CountingHeap {
    heap: LlffHeap::empty(),
    used: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};

struct CountingHeap {
    heap: LlffHeap,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl CountingHeap {
    fn grew(&self, bytes: usize) {
        let used = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(used, Ordering::Relaxed);
    }

    fn shrank(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { self.heap.alloc(layout) };
        // Where the caller cannot go on without the block (a `Box::new`, not a
        // `try_reserve`), the panic that follows is a bare trap under `panic =
        // "immediate-abort"`: the fault handler learns from this why it came.
        LAST_FAILED.store(if ptr.is_null() { layout.size() } else { 0 }, Ordering::Relaxed);
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.heap.dealloc(ptr, layout) };
        self.shrank(layout.size());
    }

    // LlffHeap reallocates by allocating, copying and freeing, so both blocks are live
    // at once and the peak counts both.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { self.heap.realloc(ptr, layout, new_size) };
        LAST_FAILED.store(if new.is_null() { new_size } else { 0 }, Ordering::Relaxed);
        if !new.is_null() {
            self.grew(new_size);
            self.shrank(layout.size());
        }
        new
    }
}

/// The size of the last allocation, if it failed.
static LAST_FAILED: AtomicUsize = AtomicUsize::new(0);

/// Called by the fault handlers first: if the last allocation failed, the fault is the
/// trap of a caller that could not go on without it, and this prints the one line that
/// says so and returns true.
pub fn report_exhaustion() -> bool {
    let size = LAST_FAILED.load(Ordering::Relaxed);
    if size != 0 {
        let setting_up = wasm_embed::guest_being_set_up();
        crate::say!(
            "error: the heap ran out{}{}{}: {size} bytes could not be allocated with {} of its {HEAP_SIZE} bytes in use; \
             give the heap more RAM, or set fewer guests up at once",
            if setting_up.is_some() { " while guest `" } else { "" },
            setting_up.unwrap_or(""),
            if setting_up.is_some() { "` was set up" } else { "" },
            used()
        );
    }
    size != 0
}

/// Gives the heap its memory; call it first.
pub fn init() {
    static mut MEMORY: [u8; HEAP_SIZE] = [0; HEAP_SIZE];
    // SAFETY: called once, before the first allocation; MEMORY is used by nothing else.
    unsafe { HEAP.heap.init(&raw mut MEMORY as usize, HEAP_SIZE) }
}

/// The most bytes that were allocated at once since start-up, or since the last
/// [`reset_peak`].
pub fn peak() -> usize {
    HEAP.peak.load(Ordering::Relaxed)
}

/// Bytes of RAM the heap was given.
pub fn size() -> usize {
    HEAP_SIZE
}

/// Bytes allocated now.
pub fn used() -> usize {
    HEAP.used.load(Ordering::Relaxed)
}

/// Starts measuring a new peak from what is allocated now.
pub fn reset_peak() {
    HEAP.peak.store(used(), Ordering::Relaxed);
}
