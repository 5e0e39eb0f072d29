//! What every program on this board shares: the counted heap, the embedded guests, and
//! ending the run (semihosting carries the exit code back to QEMU's host).
#![no_std]

extern crate alloc;

pub mod heap;

// cortex-m provides the critical section that the heap and semihosting lock with.
use cortex_m as _;
use cortex_m_rt::{ExceptionFrame, exception};
use cortex_m_semihosting::{debug, hprintln};

wasm_embed::include_guests!();

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

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("error: firmware panicked: {}", info.message());
    exit(false)
}
