//! A misbehaving guest: it asks for more linear memory than it was built with, and
//! panics when `memory.grow` says no, as a Rust allocator does.
#![no_std]

/// Grows the memory by `pages` 64 KiB pages and returns the old size in pages.
#[unsafe(no_mangle)]
extern "C" fn grow(pages: u32) -> u32 {
    match core::arch::wasm32::memory_grow(0, pages as usize) {
        usize::MAX => panic!("out of memory"),
        old => old as u32,
    }
}

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
