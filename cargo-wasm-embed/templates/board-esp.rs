//! What is particular to the board: {description}, with esp-hal. Output goes over the
//! USB serial port, which `espflash flash --monitor` shows; a panic prints where it
//! happened, through esp-backtrace.

use esp_backtrace as _;
pub use esp_hal::main as entry;

// The application descriptor the ESP-IDF second-stage boot loader checks.
esp_bootloader_esp_idf::esp_app_desc!();

/// Sets the chip's clocks and watchdogs up; the peripherals esp-hal returns are for the
/// firmware's own drivers (pins, UART, flash) when it grows some. esp-hal guards the main
/// stack itself: a write to the word it keeps near the stack's end stops the firmware
/// with a panic that names it (its `stack-guard-monitoring`, on by default).
pub fn init() {
    let _peripherals = esp_hal::init(esp_hal::Config::default());
}

/// Prints a line on the host's terminal, through the USB serial port.
macro_rules! println {
    ($($arg:tt)*) => {
        esp_println::println!($($arg)*)
    };
}

/// Ends the run: the board idles, its last line saying how it went.
pub fn exit(success: bool) -> ! {
    println!("{}", if success { "done" } else { "the guest failed" });
    loop {
        core::hint::spin_loop();
    }
}
