//! The Arm cores (Cortex-M4, Cortex-M3): ending the run, and faults.

// cortex-m provides the critical section that the heap and semihosting lock with.
use cortex_m as _;
use cortex_m_rt::{ExceptionFrame, exception};
use cortex_m_semihosting::{debug, hprintln};

/// Ends the run with `EXIT_SUCCESS` or `EXIT_FAILURE`.
pub fn exit(success: bool) -> ! {
    debug::exit(if success { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    // Only reached on a board without a debugger attached.
    loop {
        cortex_m::asm::wfi();
    }
}

// Any fault ends the QEMU run with a failure instead of hanging it.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("error: hard fault at pc {:#010x}", frame.pc());
    exit(false)
}

/// The board's free-running counter, for timing: the MPS2 FPGA's, which QEMU derives from
/// its virtual clock. A u32 that wraps.
pub fn ticks() -> u32 {
    const COUNTER: *const u32 = 0x4002_8018 as *const u32;
    // SAFETY: COUNTER is a read-only device register on QEMU's MPS2 boards.
    unsafe { COUNTER.read_volatile() }
}

/// [`ticks`] per millisecond: 25 MHz.
pub const TICKS_PER_MS: u64 = 25_000;
