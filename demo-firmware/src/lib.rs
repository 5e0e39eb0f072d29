//! What every program on this board shares: the counted heap, the embedded guests,
//! printing, and ending the run (semihosting carries the output and the exit code back to
//! QEMU's host). What differs between the Arm cores and RISC-V is in `src/arm.rs` and
//! `riscv/board.rs`.
#![no_std]

extern crate alloc;

pub mod flash;
pub mod heap;
pub mod stack;
#[cfg(any(target_arch = "arm", not(feature = "tasks")))]
pub mod ticker;
#[cfg(target_arch = "arm")]
pub mod uart;

#[cfg_attr(target_arch = "arm", path = "arm.rs")]
#[cfg_attr(target_arch = "riscv32", path = "../riscv/board.rs")]
mod board;

pub use board::{TICKS_PER_MS, exit, ticks};
#[cfg(target_arch = "arm")]
pub use board::COUNTER;

/// embassy-time's driver for the board's timer (the `embassy` feature).
#[cfg(feature = "tasks")]
#[cfg_attr(target_arch = "arm", path = "time.rs")]
#[cfg_attr(target_arch = "riscv32", path = "../riscv/time.rs")]
pub mod time;

wasm_embed::include_guests!();

/// Guards the main stack and gives the heap its memory: what every program calls first.
pub fn init() {
    if let Err(error) = wasm_embed::stack_guard::install(stack::on_fault) {
        say!("error: {error}");
        exit(false);
    }
    heap::init();
}

/// Prints one line to the host through semihosting, on either core.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::__board::println!($($arg)*) };
}

#[doc(hidden)]
pub mod __board {
    #[cfg(target_arch = "arm")]
    pub use cortex_m_semihosting::hprintln as println;
    #[cfg(target_arch = "riscv32")]
    pub use semihosting::println;
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    say!("error: firmware panicked: {}", info.message());
    exit(false)
}
