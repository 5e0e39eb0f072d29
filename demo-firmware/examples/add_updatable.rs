//! The add example with updates: the same program, but the add guest can be replaced
//! in the field. It installs the package that arrives over the UART (the add guest's
//! own, 0.1.0) into a flash slot and runs it from there. The size report (`./x size`) measures it beside
//! the add example: the difference is what the `update` feature costs, verifier and
//! storage.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use demo_firmware::flash::Flash;
use demo_firmware::uart::Uart;
use demo_firmware::{exit, guests, heap, say};
use wasm_embed::update::{Slots, UpdateError};

/// Two slots of 8 erase pages each.
const SLOTS: u32 = 64 * 1024;

struct Host;

impl guests::add::Host for Host {
    fn extra(&mut self) -> u32 {
        42
    }
}

#[entry]
fn main() -> ! {
    demo_firmware::init();
    match run() {
        Ok(sum) => {
            say!("add_with_extra(1, 2) = {sum}");
            say!("peak heap: {} bytes", heap::peak());
            exit(true)
        }
        Err(error) => {
            say!("{error}");
            exit(false)
        }
    }
}

fn run() -> Result<u32, UpdateError> {
    let uart = Uart::new();
    // SAFETY: the only Flash, over the region its module reserves.
    let flash = unsafe { Flash::new(SLOTS as usize) };
    let mapped = flash.mapped();
    // SAFETY: the stand-in is mapped at its base for good and written only through it.
    let mut slots = unsafe { Slots::new(flash, 0..SLOTS, mapped, &guests::add::UPDATABLE, guests::UPDATE_KEY)? };
    if let Some(frame) = uart.frame().filter(|frame| frame.kind == 1) {
        uart.install(&mut slots, frame.len as usize)?;
    }
    let current = slots.current()?;
    let engine = wasm_embed::engine(current.settings())?;
    let module = current.load(&engine)?;
    let mut add = guests::add::Add::new(&module, Host)?;
    let sum = add.add_with_extra(1, 2)?;
    slots.confirm()?;
    Ok(sum)
}
