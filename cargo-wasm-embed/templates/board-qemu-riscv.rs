//! What is particular to the board: QEMU's `virt` board, a {target} core.
//! Semihosting carries the output and the exit code to the host.

// riscv provides the critical section the heap locks with.
use riscv as _;
pub use riscv_rt::entry;

/// Sets the board up before anything else runs: nothing to do on this one.
pub fn init() {}

/// Prints a line on the host's terminal.
macro_rules! println {
    ($($arg:tt)*) => {
        semihosting::println!($($arg)*)
    };
}

/// Ends the run: QEMU exits with 0 on success, 1 otherwise.
pub fn exit(success: bool) -> ! {
    semihosting::process::exit(if success { 0 } else { 1 })
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(false)
}
