//! A misbehaving guest: it never returns. Only fuel stops it.
#![no_std]

/// Counts forever.
#[unsafe(no_mangle)]
extern "C" fn spin() -> u32 {
    let mut count = 0u32;
    loop {
        // Volatile, so the loop stays a loop that does work.
        count = unsafe { core::ptr::read_volatile(&count) }.wrapping_add(1);
    }
}

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
