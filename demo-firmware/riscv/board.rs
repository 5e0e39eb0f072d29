//! RISC-V (riscv32imac on QEMU's `virt` board): ending the run, and exceptions.

// riscv provides the critical section that the heap locks with.
use riscv as _;

/// Ends the run with `EXIT_SUCCESS` or `EXIT_FAILURE`.
pub fn exit(success: bool) -> ! {
    semihosting::process::exit(if success { 0 } else { 1 })
}

// Any exception ends the QEMU run with a failure instead of hanging it.
#[unsafe(export_name = "ExceptionHandler")]
fn exception(frame: &riscv_rt::TrapFrame) -> ! {
    let cause = riscv::register::mcause::read().bits();
    let pc = riscv::register::mepc::read();
    semihosting::println!("error: exception {cause} at pc {pc:#010x} (ra {:#010x})", frame.ra);
    exit(false)
}
