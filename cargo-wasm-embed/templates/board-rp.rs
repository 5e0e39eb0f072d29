//! What is particular to the board: {description}, with embassy-rp (its boot code, clocks
//! and critical section). Output goes over RTT with defmt, which `probe-rs run` prints; a
//! panic prints through panic-probe.

pub use cortex_m_rt::entry;
use defmt_rtt as _;
use panic_probe as _;

/// Sets the chip's clocks up; the peripherals embassy-rp returns are for the firmware's
/// own drivers (pins, UART, flash) when it grows some.
pub fn init() {
    let _peripherals = embassy_rp::init(Default::default());
}

/// Prints a line on the host's terminal, through probe-rs.
macro_rules! println {
    ($($arg:tt)*) => {
        defmt::println!("{}", defmt::Display2Format(&format_args!($($arg)*)))
    };
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
