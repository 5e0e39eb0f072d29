//! What is particular to the board: QEMU's `virt` board, a {target} core.
//! Semihosting carries the output and the exit code to the host.

// riscv provides the critical section the heap locks with.
use riscv as _;
pub use riscv_rt::entry;

/// Prints a line on the host's terminal.
macro_rules! println {
    ($($arg:tt)*) => {
        semihosting::println!($($arg)*)
    };
}

/// Sets the board up before anything else runs: the main stack's guard (wasm-embed's
/// `stack-guard`), so that a stack that overflows stops the firmware with one line
/// instead of overwriting the heap.
pub fn init() {
    let guarded = wasm_embed::stack_guard::install(|fault| {
        println!("error: {fault}");
        exit(false)
    });
    if let Err(error) = guarded {
        println!("error: {error}");
        exit(false);
    }
}

/// Ends the run: QEMU exits with 0 on success, 1 otherwise.
pub fn exit(success: bool) -> ! {
    semihosting::process::exit(if success { 0 } else { 1 })
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(false)
}
