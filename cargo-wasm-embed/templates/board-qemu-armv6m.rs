//! What is particular to the board: ARMv6-M code (a Cortex-M0/M0+ part's) on QEMU's
//! {machine}, a {cpu}, which executes every ARMv6-M instruction; set up to fault on an
//! unaligned access as an M0+ does. Semihosting carries the output and the exit code to
//! the host.

// cortex-m provides the critical section the heap and semihosting lock with.
use cortex_m as _;
pub use cortex_m_rt::entry;
use cortex_m_semihosting::debug;

/// Prints a line on the host's terminal.
macro_rules! println {
    ($($arg:tt)*) => {
        cortex_m_semihosting::hprintln!($($arg)*)
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
    debug::exit(if success { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    loop {}
}

// Before anything else runs (cortex-m-rt calls `__pre_init` before it initialises RAM),
// SCB.CCR.UNALIGN_TRP: an unaligned load or store faults, as on the chip.
core::arch::global_asm!(
    ".global __pre_init",
    ".type __pre_init, %function",
    ".thumb_func",
    "__pre_init:",
    "    ldr r0, =0xE000ED14",
    "    ldr r1, [r0]",
    "    movs r2, #8",
    "    orrs r1, r2",
    "    str r1, [r0]",
    "    bx lr",
);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(false)
}
