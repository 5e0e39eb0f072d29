//! An interrupt that overflows the main stack on top of a guest call: the spin guest,
//! which loops until its fuel runs out, is called, and while it runs a timer interrupt's
//! handler recurses without bound. Interrupts run on the main stack, so it reaches its
//! guard (src/stack.rs): the fault handler prints the overflow's line and whether the
//! memory below the guard is as painted, and the run fails.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, Ordering};

use demo_firmware::{exit, guests, say, stack, ticker};

/// Whether the guest call is running: the interrupt overflows the stack only then.
static IN_CALL: AtomicBool = AtomicBool::new(false);

fn interrupt() {
    if IN_CALL.load(Ordering::Relaxed) {
        stack::recurse_without_bound(0);
    }
}

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    demo_firmware::init();
    stack::watch_below_guard();
    match run() {
        Ok(()) => say!("error: the guest call ended before the interrupt overflowed the stack"),
        Err(error) => say!("error: {error}"),
    }
    exit(false)
}

fn run() -> Result<(), wasm_embed::Error> {
    let guest = &guests::spin::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    let mut spin = guests::spin::Spin::new(&module, ())?;
    // Every 2 ms: 50,000 cycles of the Arm boards' 25 MHz clock, 20,000 ticks of `virt`'s
    // 10 MHz mtime. The call runs for longer.
    ticker::start(if cfg!(target_arch = "arm") { 50_000 } else { 20_000 }, interrupt);
    IN_CALL.store(true, Ordering::Relaxed);
    let ended = spin.spin();
    IN_CALL.store(false, Ordering::Relaxed);
    ticker::stop();
    ended.map(drop)
}

demo_firmware::ticker_interrupt!();
