//! The speed benchmark as a guest: the same kernels the firmware runs natively, behind
//! one export, so Pulley, wasmi and native code do the same work.
#![no_std]

use speed_kernels::Workspace;

static mut WORKSPACE: Workspace = Workspace::new();

/// Runs the kernels `iterations` times on inputs derived from `seed`; returns their CRC.
#[unsafe(no_mangle)]
extern "C" fn run(seed: u32, iterations: u32) -> u32 {
    // SAFETY: a guest is single-threaded and nothing else refers to WORKSPACE.
    let workspace = unsafe { &mut *core::ptr::addr_of_mut!(WORKSPACE) };
    speed_kernels::run(workspace, seed, iterations)
}

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
