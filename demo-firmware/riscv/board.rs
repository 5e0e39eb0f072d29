//! RISC-V (riscv32imac on QEMU's `virt` board): ending the run, and exceptions.

// riscv provides the critical section that the heap locks with.
use riscv as _;

/// Ends the run with `EXIT_SUCCESS` or `EXIT_FAILURE`.
pub fn exit(success: bool) -> ! {
    semihosting::process::exit(if success { 0 } else { 1 })
}

// Any exception ends the QEMU run with a failure instead of hanging it. A stack that
// reached its guard was caught before this, by wasm-embed's `stack-guard`.
#[unsafe(export_name = "ExceptionHandler")]
fn exception(frame: &riscv_rt::TrapFrame) -> ! {
    let cause = riscv::register::mcause::read().bits();
    let pc = riscv::register::mepc::read();
    let value = riscv::register::mtval::read();
    if !crate::heap::report_exhaustion() {
        semihosting::println!("error: exception {cause} at pc {pc:#010x} (mtval {value:#010x}, ra {:#010x})", frame.ra);
    }
    exit(false)
}

/// The board's free-running counter, for timing: the low word of the CLINT's `mtime`,
/// which QEMU derives from its virtual clock. A u32 that wraps.
pub fn ticks() -> u32 {
    const MTIME: *const u32 = 0x0200_BFF8 as *const u32;
    // SAFETY: MTIME is a read-only view of the timer on QEMU's `virt` board.
    unsafe { MTIME.read_volatile() }
}

/// [`ticks`] per millisecond: 10 MHz.
pub const TICKS_PER_MS: u64 = 10_000;
