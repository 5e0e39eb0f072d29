//! RISC-V (riscv32imac on QEMU's `virt` board): ending the run, and exceptions.

// riscv provides the critical section that the heap locks with.
use riscv as _;

/// Ends the run with `EXIT_SUCCESS` or `EXIT_FAILURE`.
pub fn exit(success: bool) -> ! {
    semihosting::process::exit(if success { 0 } else { 1 })
}

// Any exception ends the QEMU run with a failure instead of hanging it. A stack that
// reached its guard was caught before this, in `_pre_default_start_trap`.
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

// Before RAM is initialised (riscv-rt's `pre-init`): the stack's guard (src/stack.rs), PMP
// entry 0 over the GUARD_SIZE bytes between the statics and the stack (NAPOT), with
// no access. Locked, so that it binds machine mode, the mode the firmware runs in; a core
// with no matching entry lets machine mode reach everything else.
core::arch::global_asm!(
    ".pushsection .text.__pre_init, \"ax\"",
    ".global __pre_init",
    "__pre_init:",
    // t0: the guard's base, aligned to its size by the link (build.rs).
    "    la t0, __stack_guard",
    "    srli t0, t0, 2",
    "    ori t0, t0, {napot}",
    "    csrw pmpaddr0, t0",
    "    li t0, 0x98",
    "    csrw pmpcfg0, t0",
    "    ret",
    ".popsection",
    napot = const crate::stack::GUARD_SIZE / 8 - 1,
);

// Every trap enters here first (riscv-rt's `pre-default-start-trap`), before riscv-rt
// stores the registers on the stack: if the trap is an access fault in the guard, the
// stack has overflowed, and this moves to a stack of its own and reports it. Otherwise it
// goes on into riscv-rt with every register as it found it: t0 waits in mscratch, t1 in a
// static (traps do not nest here).
core::arch::global_asm!(
    ".pushsection .trap.start, \"ax\"",
    ".global _pre_default_start_trap",
    "_pre_default_start_trap:",
    "    csrw mscratch, t0",
    "    la t0, {saved}",
    "    sw t1, 0(t0)",
    // A load (5) or store (7) access fault
    "    csrr t0, mcause",
    "    li t1, 7",
    "    beq t0, t1, 1f",
    "    li t1, 5",
    "    bne t0, t1, 2f",
    // at an address in the guard.
    "1:  csrr t0, mtval",
    "    la t1, __stack_guard",
    "    sub t0, t0, t1",
    "    li t1, {size}",
    "    bltu t0, t1, 3f",
    "2:  la t0, {saved}",
    "    lw t1, 0(t0)",
    "    csrr t0, mscratch",
    "    j _pre_default_start_trap_ret",
    "3:  la sp, {stack}+{stack_size}",
    "    call {overflowed}",
    ".popsection",
    saved = sym SAVED_T1,
    size = const crate::stack::GUARD_SIZE,
    stack = sym crate::stack::FAULT_STACK,
    stack_size = const crate::stack::FAULT_STACK_SIZE,
    overflowed = sym overflowed,
);

/// Where the trap entry keeps t1 while it looks at the trap.
static mut SAVED_T1: u32 = 0;

/// The stack reached its guard: one line, and the run ends.
extern "C" fn overflowed() -> ! {
    crate::stack::report_overflow();
    exit(false)
}
