//! The Arm cores (Cortex-M4, Cortex-M3 and the Armv6-M image on QEMU's MPS2 boards; the
//! Cortex-M33 on mps2-an505): ending the run, and the board's counter. Faults are
//! wasm-embed's (`stack-guard`), which hands them to `stack::on_fault`.

// cortex-m provides the critical section that the heap and semihosting lock with.
use cortex_m as _;
use cortex_m_semihosting::debug;

/// Ends the run with `EXIT_SUCCESS` or `EXIT_FAILURE`.
pub fn exit(success: bool) -> ! {
    debug::exit(if success { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    // Only reached on a board without a debugger attached.
    loop {
        cortex_m::asm::wfi();
    }
}

/// The MPS2 FPGA's free-running counter (prescaler 0 after reset: one tick per 25 MHz
/// clock), which QEMU derives from its virtual clock; on mps2-an505 at the Secure alias
/// of its FPGA I/O block, the state the firmware runs in.
#[cfg(not(board = "an505"))]
pub const COUNTER: *const u32 = 0x4002_8018 as *const u32;
#[cfg(board = "an505")]
pub const COUNTER: *const u32 = 0x5030_2018 as *const u32;

/// The board's free-running counter, for timing: a u32 that wraps.
pub fn ticks() -> u32 {
    // SAFETY: COUNTER is a read-only device register on QEMU's MPS2 boards.
    unsafe { COUNTER.read_volatile() }
}

/// [`ticks`] per millisecond: 25 MHz.
pub const TICKS_PER_MS: u64 = 25_000;

// On an ARMv6-M image, before anything else runs (cortex-m-rt calls `__pre_init` before
// it initialises RAM), SCB.CCR.UNALIGN_TRP: the MPS2 board's Cortex-M3 executes every
// ARMv6-M instruction but would carry out an unaligned load or store that a Cortex-M0+
// faults on, and with the bit set faults too, so the image behaves here as on the chip.
#[cfg(armv6m)]
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
