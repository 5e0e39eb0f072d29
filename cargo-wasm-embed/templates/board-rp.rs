//! What is particular to the board: {description}, with embassy-rp (its boot code, clocks
//! and critical section). Output goes over RTT with defmt, which `probe-rs run` prints; a
//! panic prints through panic-probe.

pub use cortex_m_rt::entry;
use defmt_rtt as _;
use panic_probe as _;

/// Prints a line on the host's terminal, through probe-rs.
macro_rules! println {
    ($($arg:tt)*) => {
        defmt::println!("{}", defmt::Display2Format(&format_args!($($arg)*)))
    };
}

/// Sets the board up before anything else runs: the main stack's guard (wasm-embed's
/// `stack-guard`), so that a stack that overflows logs one line and resets the chip
/// instead of overwriting the heap (`probe-rs run` stops at the fault first and shows
/// where it was); then the chip's clocks. The peripherals embassy-rp returns are for the
/// firmware's own drivers (pins, UART, flash) when it grows some.
pub fn init() {
    let guarded = wasm_embed::stack_guard::install(|fault| {
        println!("error: {fault}");
        cortex_m::peripheral::SCB::sys_reset()
    });
    if let Err(error) = guarded {
        println!("error: {error}");
        exit(false);
    }
    let _peripherals = embassy_rp::init(Default::default());
}

/// Ends the run: a breakpoint stops `probe-rs run`, whose exit code says whether the
/// firmware failed.
pub fn exit(success: bool) -> ! {
    if !success {
        defmt::panic!("the guest failed");
    }
    loop {
        cortex_m::asm::bkpt();
    }
}
