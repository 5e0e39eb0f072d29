//! f32 and f64 work in one long loop: an async call of it yields many times, and what it
//! returns must not depend on where it yielded.
#![no_std]

/// The sum of 1/(i+1) in f64 (times 10^9) and of i/(i+3) in f32, for i below `n`.
#[unsafe(no_mangle)]
extern "C" fn floats(n: u32) -> i64 {
    let (mut harmonic, mut ratios) = (0f64, 0f32);
    for i in 0..n {
        harmonic += 1.0 / f64::from(i + 1);
        ratios += i as f32 / (i as f32 + 3.0);
    }
    (harmonic * 1e9) as i64 + ratios as i64
}

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
