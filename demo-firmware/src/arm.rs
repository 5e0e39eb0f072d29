//! The Arm cores (Cortex-M4, Cortex-M3 and the Armv6-M image on QEMU's MPS2 boards; the
//! Cortex-M33 on mps2-an505): ending the run, faults, and the board's counter.

// cortex-m provides the critical section that the heap and semihosting lock with.
use cortex_m as _;
use cortex_m_rt::ExceptionFrame;
use cortex_m_semihosting::{debug, hprintln};

/// Ends the run with `EXIT_SUCCESS` or `EXIT_FAILURE`.
pub fn exit(success: bool) -> ! {
    debug::exit(if success { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    // Only reached on a board without a debugger attached.
    loop {
        cortex_m::asm::wfi();
    }
}

// Every fault enters here and ends the QEMU run with a failure instead of hanging it. The
// handler first moves to a stack of its own, since the main stack may be the one that
// overflowed (src/stack.rs), and hands the stack pointer of the fault to `fault`. Thumb-1
// instructions only, so that the ARMv6-M image assembles it too.
core::arch::global_asm!(
    ".global HardFault",
    ".type HardFault, %function",
    ".thumb_func",
    "HardFault:",
    "    mov r0, sp",
    "    ldr r1, ={stack}+{size}",
    "    mov sp, r1",
    "    bl {fault}",
    stack = sym crate::stack::FAULT_STACK,
    size = const crate::stack::FAULT_STACK_SIZE,
    fault = sym fault,
);

/// What the fault was, in one line: the stack reaching its guard, the heap running out
/// (an abort), or another fault at the program counter the exception frame holds.
unsafe extern "C" fn fault(sp: usize) -> ! {
    if crate::stack::overflowed(sp, fault_address()) {
        crate::stack::report_overflow();
    } else if !crate::heap::report_exhaustion() {
        // SAFETY: away from the guard, `sp` points at the frame the core stored.
        let frame = unsafe { &*(sp as *const ExceptionFrame) };
        hprintln!("error: hard fault at pc {:#010x}", frame.pc());
    }
    exit(false)
}

/// The data address of a MemManage fault, where the core records one (Armv7-M and
/// Armv8-M Mainline: CFSR.MMARVALID, MMFAR); ARMv6-M records none.
fn fault_address() -> Option<usize> {
    #[cfg(not(armv6m))]
    {
        const CFSR: *const u32 = 0xE000_ED28 as *const u32;
        const MMFAR: *const u32 = 0xE000_ED34 as *const u32;
        // SAFETY: both are System Control Block registers every Armv7-M and Armv8-M
        // Mainline core has.
        unsafe { (CFSR.read_volatile() & (1 << 7) != 0).then(|| MMFAR.read_volatile() as usize) }
    }
    #[cfg(armv6m)]
    None
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

/// Armv6-M and Armv7-M (PMSAv7): MPU_RBAR takes the base with VALID and region 0, and
/// MPU_RASR the region's word.
#[cfg(not(board = "an505"))]
macro_rules! board_guard {
    () => {
        concat!(
            "    ldr r1, =0xE000ED9C\n",
            "    movs r2, #0x10\n",
            "    orrs r2, r0\n",
            "    str r2, [r1]\n",
            "    ldr r2, ={region}\n",
            "    str r2, [r1, #4]\n",
        )
    };
}

/// Armv8-M (PMSAv8): region 0 through MPU_RNR, MPU_RBAR the base with AP 0b10 (read-only,
/// privileged) and XN, MPU_RLAR the limit (the base of the last 32-byte block) with
/// attribute 0 and ENABLE; MPU_MAIR0's attribute 0, UNKNOWN at reset, made normal memory,
/// non-cacheable.
#[cfg(board = "an505")]
macro_rules! board_guard {
    () => {
        concat!(
            "    ldr r1, =0xE000EDC0\n",
            "    movs r2, #0x44\n",
            "    str r2, [r1]\n",
            "    ldr r1, =0xE000ED98\n",
            "    movs r2, #0\n",
            "    str r2, [r1]\n",
            "    movs r2, #5\n",
            "    orrs r2, r0\n",
            "    str r2, [r1, #4]\n",
            "    ldr r2, ={region}\n",
            "    adds r2, r0, r2\n",
            "    movs r3, #1\n",
            "    orrs r2, r3\n",
            "    str r2, [r1, #8]\n",
        )
    };
}

#[cfg(armv6m)]
macro_rules! unaligned_trap {
    () => {
        concat!(
            "    ldr r0, =0xE000ED14\n",
            "    ldr r1, [r0]\n",
            "    movs r2, #8\n",
            "    orrs r1, r2\n",
            "    str r1, [r0]\n",
        )
    };
}

#[cfg(not(armv6m))]
macro_rules! unaligned_trap {
    () => {
        ""
    };
}

// Before anything else runs (cortex-m-rt calls `__pre_init` before it initialises RAM):
// - the stack's guard (src/stack.rs): MPU region 0 over the GUARD_SIZE bytes between the
//   statics and the stack, aligned to its size, no access and no execution, and the MPU on with the
//   default map for everything else. Armv8-M's MPU describes a region by base and limit
//   and has no "no access": a read-only region faults the stack's writes.
// - on an ARMv6-M image, SCB.CCR.UNALIGN_TRP: the MPS2 board's Cortex-M3 executes every
//   ARMv6-M instruction but would carry out an unaligned load or store that a Cortex-M0+
//   faults on, and with the bit set faults too, so the image behaves here as on the chip.
// Thumb-1 instructions only, for the ARMv6-M image.
core::arch::global_asm!(
    ".global __pre_init",
    ".type __pre_init, %function",
    ".thumb_func",
    "__pre_init:",
    // r0: the guard's base, aligned to its size by the link (build.rs).
    "    ldr r0, =__stack_guard",
    board_guard!(),
    // MPU_CTRL: ENABLE, PRIVDEFENA.
    "    ldr r1, =0xE000ED94",
    "    movs r2, #5",
    "    str r2, [r1]",
    "    dsb",
    "    isb",
    unaligned_trap!(),
    "    bx lr",
    region = const GUARD_REGION,
);

/// MPU_RASR of the guard: XN, AP 0 (no access), SIZE (log2 of the size, minus one), ENABLE.
#[cfg(not(board = "an505"))]
const GUARD_REGION: usize = 1 << 28 | (crate::stack::GUARD_SIZE.trailing_zeros() as usize - 1) << 1 | 1;
/// The guard's limit in MPU_RLAR, from its base: the base of its last 32-byte block.
#[cfg(board = "an505")]
const GUARD_REGION: usize = crate::stack::GUARD_SIZE - 32;

