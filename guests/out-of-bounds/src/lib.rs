//! A misbehaving guest: it reads an address far outside its linear memory.
#![no_std]

/// Reads the last word of the 4 GiB address space.
#[unsafe(no_mangle)]
extern "C" fn read_far() -> u32 {
    unsafe { core::ptr::read_volatile(0xFFFF_FFF0 as *const u32) }
}

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
