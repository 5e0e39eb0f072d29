//! A misbehaving guest: its recursion goes as deep as the host asks, past any stack.
#![no_std]

/// 1 + 2 + … + `n`, one call per term.
#[unsafe(no_mangle)]
extern "C" fn triangle(n: u32) -> u32 {
    if n == 0 {
        return 0;
    }
    // black_box keeps LLVM from turning the recursion into a loop.
    core::hint::black_box(triangle(n - 1)).wrapping_add(n)
}

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
