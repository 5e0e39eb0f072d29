//! A guest for a real board: a running light over the board's four LEDs that runs
//! backwards while button 1 is held. The firmware calls `step` on every tick; the guest
//! sees the board only through its `board` imports.
#![no_std]

#[link(wasm_import_module = "board")]
unsafe extern "C" {
    /// Turns LED `led` (0 to 3) on if `on` is 1, off if it is 0.
    fn set_led(led: u32, on: u32);
    /// 1 while button `button` (0 to 3) is held down, else 0.
    fn button(button: u32) -> u32;
}

const LEDS: u32 = 4;

/// Lights one LED for tick `tick` and turns the others off; returns the one lit.
#[unsafe(no_mangle)]
extern "C" fn step(tick: u32) -> u32 {
    let reversed = unsafe { button(0) } == 1;
    let lit = if reversed { LEDS - 1 - tick % LEDS } else { tick % LEDS };
    for led in 0..LEDS {
        unsafe { set_led(led, (led == lit) as u32) };
    }
    lit
}

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
