#![no_std]

/// a + b: each export is a method of the guest's handle in the firmware.
#[unsafe(no_mangle)]
extern "C" fn add(a: u32, b: u32) -> u32 {
    a.wrapping_add(b)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
