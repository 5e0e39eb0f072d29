//! The add example with updates through MCUmgr's SMP: the add example with updates
//! (examples/add_updatable.rs), but the package (the add guest's own, 0.1.0) arrives as
//! SMP image uploads over the UART, which the SMP server decodes, answers and installs.
//! The size report (`./x size`) measures it beside the other two: the difference is what
//! SMP costs on top of the `update` feature.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use cortex_m_rt::entry;
use demo_firmware::flash::Flash;
use demo_firmware::uart::Uart;
use demo_firmware::{exit, guests, heap, say};
use wasm_embed::smp::{BUF_SIZE, Event, Image, Server, serial};
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
    let mut decoder = serial::Decoder::new(BUF_SIZE);
    let mut server = Server::new();
    let mut response = Vec::new();
    // Requests until the upload ends, or the UART goes quiet.
    while let Some(byte) = uart.byte() {
        let event = match decoder.push(byte) {
            None => continue,
            Some(Ok(request)) => server.handle(request, &mut [&mut slots as &mut dyn Image], &mut response),
            Some(Err(damaged)) => {
                server.damaged(damaged, &mut response);
                Event::None
            }
        };
        serial::encode(&response, |line| uart.write(line));
        match event {
            Event::Installed { .. } => break,
            Event::Refused { error, .. } => return Err(error),
            _ => {}
        }
    }
    let current = slots.current()?;
    let engine = wasm_embed::engine(current.settings())?;
    let module = current.load(&engine)?;
    let mut add = guests::add::Add::new(&module, Host)?;
    let sum = add.add_with_extra(1, 2)?;
    slots.confirm()?;
    Ok(sum)
}
