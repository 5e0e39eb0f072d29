//! wasm-embed on the nRF52840-DK: runs the add example's guest once, then the `blinky` guest,
//! which lights LEDs 1 to 4 in turn and runs backwards while button 1 is held. The log
//! goes over RTT with defmt; `cargo run --release` shows it.
#![no_std]
#![no_main]

use core::convert::Infallible;
use core::ptr::NonNull;

use cortex_m_rt::entry;
use defmt::{error, info};
use defmt_rtt as _;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{InputPin, OutputPin};
use nrf52840_hal::gpio::{Input, Level, Output, Pin, PullUp, PushPull, p0};
use nrf52840_hal::nvmc::Nvmc;
use nrf52840_hal::{Delay, pac};
use panic_probe as _;
use wasm_embed::Error;
use wasm_embed::update::{Slots, UpdateError, Version};

wasm_embed::include_guests!();

/// The add guest's two update slots: the last 128 KiB of flash, which memory.x keeps
/// out of the image. The NVMC erases 4 KiB pages and writes 32-bit words.
const UPDATES: usize = 0x000E_0000;
const UPDATES_LEN: usize = 128 * 1024;

/// Time between two steps of the running light.
const TICK_MS: u32 = 200;

/// The DK's user LEDs and buttons, in the order printed on the board (LED1 to LED4,
/// BUTTON1 to BUTTON4). All are active low.
struct Dk {
    leds: [Pin<Output<PushPull>>; 4],
    buttons: [Pin<Input<PullUp>>; 4],
}

impl Dk {
    fn new(port: p0::Parts) -> Dk {
        Dk {
            leds: [
                port.p0_13.into_push_pull_output(Level::High).degrade(),
                port.p0_14.into_push_pull_output(Level::High).degrade(),
                port.p0_15.into_push_pull_output(Level::High).degrade(),
                port.p0_16.into_push_pull_output(Level::High).degrade(),
            ],
            buttons: [
                port.p0_11.into_pullup_input().degrade(),
                port.p0_12.into_pullup_input().degrade(),
                port.p0_24.into_pullup_input().degrade(),
                port.p0_25.into_pullup_input().degrade(),
            ],
        }
    }

    fn held(&mut self, button: u32) -> bool {
        // An nRF GPIO read cannot fail (its error type is Infallible).
        self.buttons.get_mut(button as usize).is_some_and(|pin| pin.is_low().unwrap_or(false))
    }
}

/// The add guest's host function.
struct Extra;

impl guests::add::Host for Extra {
    fn extra(&mut self) -> u32 {
        42
    }
}

impl guests::blinky::Board for Dk {
    fn set_led(&mut self, led: u32, on: u32) {
        // A guest naming an LED the board lacks changes nothing.
        if let Some(pin) = self.leds.get_mut(led as usize) {
            let _ = if on == 1 { pin.set_low() } else { pin.set_high() };
        }
    }

    fn button(&mut self, button: u32) -> u32 {
        self.held(button) as u32
    }
}

#[entry]
fn main() -> ! {
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
    let peripherals = pac::Peripherals::take().expect("taken once, at start-up");
    let core = pac::CorePeripherals::take().expect("taken once, at start-up");
    let dk = Dk::new(p0::Parts::new(peripherals.P0));
    let mut delay = Delay::new(core.SYST);
    // SAFETY: memory.x keeps these pages out of the image, and only the NVMC driver the
    // slots own writes them.
    let storage = unsafe { core::slice::from_raw_parts_mut(UPDATES as *mut u8, UPDATES_LEN) };
    let mapped = NonNull::new(UPDATES as *mut u8).expect("not null");
    // SAFETY: the CPU reads the NVMC's pages where they lie, for good.
    let slots = unsafe {
        Slots::new(Nvmc::new(peripherals.NVMC, storage), 0..UPDATES_LEN as u32, mapped, &guests::add::UPDATABLE, guests::UPDATE_KEY)
    };
    match slots.and_then(|mut slots| run_add(&mut slots)) {
        Ok((version, sum)) => info!("add {} (image or update slot): add_with_extra(1, 2) = {}", defmt::Display2Format(&version), sum),
        Err(failure) => error!("{}", defmt::Display2Format(&failure)),
    }
    info!("heap in use after the add guest: {} bytes", heap::used());
    let Err(failure) = run(dk, &mut delay);
    // One line saying what failed and what to do (the error's own words), then the board
    // idles rather than resetting into the same failure.
    error!("{}", defmt::Display2Format(&failure));
    loop {
        cortex_m::asm::wfi();
    }
}

/// Runs the add guest from the newest update slot that passes every check, else the
/// one built into the image; a new one on trial, confirmed once its call returns. A
/// transport (USB, BLE, RTT) would feed `Slots::install`; this board keeps no
/// anti-rollback floor of its own yet, so any signed version from the image's own on is
/// accepted.
fn run_add(slots: &mut Slots<Nvmc<pac::NVMC>>) -> Result<(Version, u32), UpdateError> {
    let current = slots.current()?;
    let version = current.version();
    let engine = wasm_embed::engine(current.settings())?;
    let module = current.load(&engine)?;
    let sum = guests::add::Add::new(&module, Extra).and_then(|mut add| add.add_with_extra(1, 2))?;
    slots.confirm()?;
    Ok((version, sum))
}

fn run(dk: Dk, delay: &mut Delay) -> Result<Infallible, Error> {
    let guest = &guests::blinky::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    let mut blinky = guests::blinky::Blinky::new(&module, dk)?;
    info!("blinky: LEDs 1 to 4 light in turn; hold button 1 to run them backwards");
    info!("heap in use with blinky loaded: {} bytes", heap::used());
    let mut held = false;
    let mut tick: u32 = 0;
    loop {
        let lit = blinky.step(tick)?;
        let now = blinky.host_mut().held(0);
        if now != held || tick < 4 {
            info!("tick {}: LED{} on, button 1 {}", tick, lit + 1, if now { "held" } else { "released" });
            held = now;
        }
        tick = tick.wrapping_add(1);
        delay.delay_ms(TICK_MS);
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
