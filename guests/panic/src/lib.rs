//! A misbehaving guest: it panics. A guest's panic handler executes `unreachable`, which
//! the host sees as a trap.
#![no_std]

/// Divides, and panics on zero instead of trapping.
#[unsafe(no_mangle)]
extern "C" fn checked_divide(a: u32, b: u32) -> u32 {
    match a.checked_div(b) {
        Some(quotient) => quotient,
        None => panic!("division by zero"),
    }
}

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
