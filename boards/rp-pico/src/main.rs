//! wasm-embed on the Raspberry Pi Pico (RP2040, Cortex-M0+) with embassy-rp: runs the add
//! example's guest once, then the `blinky` guest on every tick of an embassy timer. The
//! board has one LED (GP25), which shows the running light's first step; LEDs on GP2, GP3
//! and GP4 show the others, and a button from GP15 to ground runs it backwards. The log
//! goes over RTT with defmt; `cargo run --release` shows it.
#![no_std]
#![no_main]

use defmt::{error, info};
use defmt_rtt as _;
use embassy_executor::Spawner;
use embassy_rp::gpio::{Input, Level, Output, Pull};
use embassy_time::Timer;
use panic_probe as _;
use wasm_embed::Error;

wasm_embed::include_guests!();

/// Time between two steps of the running light.
const TICK_MS: u64 = 200;

/// The board's LED and the three on the breadboard, in the running light's order, and the
/// button (active low, with the pin's pull-up).
struct Pico {
    leds: [Output<'static>; 4],
    button: Input<'static>,
}

/// The add guest's host function.
struct Extra;

impl guests::add::Host for Extra {
    fn extra(&mut self) -> u32 {
        42
    }
}

impl guests::blinky::Board for Pico {
    fn set_led(&mut self, led: u32, on: u32) {
        // A guest naming an LED the board lacks changes nothing.
        if let Some(pin) = self.leds.get_mut(led as usize) {
            pin.set_level(if on == 1 { Level::High } else { Level::Low });
        }
    }

    fn button(&mut self, button: u32) -> u32 {
        (button == 0 && self.button.is_low()) as u32
    }
}

#[embassy_executor::main(executor = "embassy_rp::executor::Executor", entry = "cortex_m_rt::entry")]
async fn main(_spawner: Spawner) {
    // The main stack's guard first (wasm-embed's `stack-guard`): a stack that overflows
    // then logs one line and resets the chip instead of overwriting the heap (`probe-rs
    // run` stops at the fault first and shows where it was).
    let guarded = wasm_embed::stack_guard::install(|fault| {
        error!("{}", defmt::Display2Format(fault));
        cortex_m::peripheral::SCB::sys_reset()
    });
    if let Err(failure) = guarded {
        defmt::panic!("{}", defmt::Display2Format(&failure));
    }
    heap::init();
    let p = embassy_rp::init(Default::default());
    let pico = Pico {
        leds: [
            Output::new(p.PIN_25, Level::Low),
            Output::new(p.PIN_2, Level::Low),
            Output::new(p.PIN_3, Level::Low),
            Output::new(p.PIN_4, Level::Low),
        ],
        button: Input::new(p.PIN_15, Pull::Up),
    };
    match add() {
        Ok(sum) => info!("add: add_with_extra(1, 2) = {}", sum),
        Err(failure) => error!("{}", defmt::Display2Format(&failure)),
    }
    info!("heap in use after the add guest: {} bytes", heap::used());
    let Err(failure) = blinky(pico).await;
    // One line saying what failed and what to do, then the board idles rather than
    // resetting into the same failure.
    error!("{}", defmt::Display2Format(&failure));
}

fn add() -> Result<u32, Error> {
    let guest = &guests::add::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    guests::add::Add::new(&module, Extra)?.add_with_extra(1, 2)
}

async fn blinky(pico: Pico) -> Result<core::convert::Infallible, Error> {
    let guest = &guests::blinky::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    let mut blinky = guests::blinky::Blinky::new(&module, pico)?;
    info!("blinky: the LEDs light in turn; hold the button to run them backwards");
    info!("heap in use with blinky loaded: {} bytes", heap::used());
    let mut tick: u32 = 0;
    loop {
        let lit = blinky.step(tick)?;
        if tick < 4 {
            info!("tick {}: LED {} on", tick, lit);
        }
        tick = tick.wrapping_add(1);
        Timer::after_millis(TICK_MS).await;
    }
}

/// The heap Wasmtime allocates from.
mod heap {
    use embedded_alloc::LlffHeap;

    /// Bytes of RAM for the heap: both guests together need well under a quarter of it.
    const SIZE: usize = 64 * 1024;

    #[global_allocator]
    static HEAP: LlffHeap = LlffHeap::empty();

    /// Gives the heap its memory; call it first.
    pub fn init() {
        static mut MEMORY: [u8; SIZE] = [0; SIZE];
        // SAFETY: called once, before the first allocation; MEMORY is used by nothing else.
        unsafe { HEAP.init(&raw mut MEMORY as usize, SIZE) }
    }

    /// Bytes allocated now.
    pub fn used() -> usize {
        HEAP.used()
    }
}
