//! wasm-embed on an ESP32-C3 board (the ESP32-C3-DevKit-RUST-1: a plain LED on GPIO7, the
//! BOOT button on GPIO9) with esp-hal: runs the add example's guest once, then the
//! `blinky` guest every 200 ms; the LED shows the running light's first step, LEDs on
//! GPIO4, GPIO5 and GPIO6 show the others, and holding BOOT runs it backwards. It prints
//! over the USB serial port; `cargo run --release` flashes it and shows what it prints.
#![no_std]
#![no_main]

use esp_backtrace as _;
use esp_hal::delay::Delay;
use esp_hal::gpio::{Input, InputConfig, Level, Output, OutputConfig, Pull};
use esp_println::println;
use wasm_embed::Error;

esp_bootloader_esp_idf::esp_app_desc!();

wasm_embed::include_guests!();

/// Time between two steps of the running light.
const TICK_MS: u32 = 200;

/// The board's LED and three on GPIO4 to GPIO6, in the running light's order, and the
/// BOOT button (active low, with the pin's pull-up).
struct Board {
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

impl guests::blinky::Board for Board {
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

#[esp_hal::main]
fn main() -> ! {
    heap::init();
    let p = esp_hal::init(esp_hal::Config::default());
    let output = || OutputConfig::default();
    let board = Board {
        leds: [
            Output::new(p.GPIO7, Level::Low, output()),
            Output::new(p.GPIO4, Level::Low, output()),
            Output::new(p.GPIO5, Level::Low, output()),
            Output::new(p.GPIO6, Level::Low, output()),
        ],
        button: Input::new(p.GPIO9, InputConfig::default().with_pull(Pull::Up)),
    };
    match add() {
        Ok(sum) => println!("add: add_with_extra(1, 2) = {sum}"),
        Err(failure) => println!("{failure}"),
    }
    println!("heap in use after the add guest: {} bytes", heap::used());
    let Err(failure) = blinky(board);
    // One line saying what failed and what to do, then the board idles rather than
    // resetting into the same failure.
    println!("{failure}");
    loop {
        core::hint::spin_loop();
    }
}

fn add() -> Result<u32, Error> {
    let guest = &guests::add::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    guests::add::Add::new(&module, Extra)?.add_with_extra(1, 2)
}

fn blinky(board: Board) -> Result<core::convert::Infallible, Error> {
    let guest = &guests::blinky::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    let mut blinky = guests::blinky::Blinky::new(&module, board)?;
    println!("blinky: the LEDs light in turn; hold BOOT to run them backwards");
    println!("heap in use with blinky loaded: {} bytes", heap::used());
    let delay = Delay::new();
    let mut tick: u32 = 0;
    loop {
        let lit = blinky.step(tick)?;
        if tick < 4 {
            println!("tick {tick}: LED {lit} on");
        }
        tick = tick.wrapping_add(1);
        delay.delay_millis(TICK_MS);
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
