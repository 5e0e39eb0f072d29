//! The demo: runs every guest in turn on a Cortex-M4 (or, built for thumbv7m-none-eabi, a
//! Cortex-M3; built for riscv32imac-unknown-none-elf, a RISC-V core), each in an engine and store of its own. Well-behaved guests print their
//! results; each misbehaving one prints the one line its trap produces, and the firmware
//! goes on. After each guest it prints the peak heap the guest took, and at the end that
//! every byte of it came back.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use demo_firmware::{exit, guests, heap, say};
use wasm_embed::{Error, Guest, GuestMemory, GuestModule};

/// The host side of the guests' imports.
struct Board;

impl guests::add::Host for Board {
    fn extra(&mut self) -> u32 {
        42
    }
}

impl guests::log::Host for Board {
    fn log(&mut self, memory: GuestMemory<'_>, ptr: u32, len: u32) -> Result<(), Error> {
        say!("log: {}", memory.read_str(ptr, len)?);
        Ok(())
    }
}

/// The data the compute guest works on.
const TEXT: &[u8] = b"the quick brown fox jumps over 13 lazy dogs 7 times";

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    demo_firmware::init();
    let before = heap::used();
    let mut after_first = None;
    let steps: [(&'static Guest, fn(&GuestModule) -> Result<String, Error>); 8] = [
        (&guests::add::GUEST, add),
        (&guests::log::GUEST, log),
        (&guests::compute::GUEST, compute),
        (&guests::spin::GUEST, |m| Ok(format!("{}", guests::spin::Spin::new(m, ())?.spin()?))),
        (&guests::out_of_bounds::GUEST, |m| {
            Ok(format!("{}", guests::out_of_bounds::OutOfBounds::new(m, ())?.read_far()?))
        }),
        (&guests::panic::GUEST, |m| Ok(format!("{}", guests::panic::Panic::new(m, ())?.checked_divide(1, 0)?))),
        (&guests::recursion::GUEST, |m| {
            Ok(format!("{}", guests::recursion::Recursion::new(m, ())?.triangle(100_000)?))
        }),
        (&guests::grow::GUEST, |m| Ok(format!("{}", guests::grow::Grow::new(m, ())?.grow(1)?))),
    ];
    for (guest, step) in steps {
        heap::reset_peak();
        if let Err(error) = run(guest, step) {
            say!("error: {error}");
            exit(false);
        }
        say!("{}: peak heap {} bytes", guest.name(), heap::peak() - before);
        after_first.get_or_insert(heap::used());
    }
    // Wasmtime keeps one allocation for the program's life: its global registry of
    // loaded code, made when the first module is loaded. Everything else a guest took
    // must come back when it is dropped.
    let after_first = after_first.unwrap_or(before);
    say!(
        "heap in use: {before} bytes at start, {after_first} after the first guest (Wasmtime's code registry), {} after the last",
        heap::used()
    );
    exit(heap::used() == after_first)
}

/// Loads `guest` in an engine with just the stack it needs and runs `step`. A guest that
/// fails prints one line and the demo goes on; a guest that cannot be loaded (a skipped
/// build, a `.cwasm` from other settings) stops it.
fn run(guest: &'static Guest, step: fn(&GuestModule) -> Result<String, Error>) -> Result<(), Error> {
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    match step(&module) {
        Ok(result) => say!("{}: {result}", guest.name()),
        Err(error) => {
            say!("{}: {error}", guest.name());
            // The debug profile's traps carry the guest's stack, with its functions' names.
            if let Some(backtrace) = error.backtrace() {
                say!("{backtrace}");
            }
        }
    }
    Ok(())
}

fn add(module: &GuestModule) -> Result<String, Error> {
    let sum = guests::add::Add::new(module, Board)?.add_with_extra(1, 2)?;
    Ok(format!("add_with_extra(1, 2) = {sum}"))
}

fn log(module: &GuestModule) -> Result<String, Error> {
    let mut log = guests::log::Log::new(module, Board)?;
    log.hello(7)?;
    // A guest that hands the host a pointer outside its memory gets an error, not the
    // host's memory.
    match log.bad_pointer() {
        Ok(()) => Ok("bad_pointer() was not refused".into()),
        Err(error) => Ok(format!("{error}")),
    }
}

fn compute(module: &GuestModule) -> Result<String, Error> {
    let mut compute = guests::compute::Compute::new(module, ())?;
    let buffer = compute.input_buffer()?;
    let len = TEXT.len() as u32;
    compute.memory().write(buffer, TEXT)?;
    let crc = compute.crc32(len)?;
    let native = crc32(TEXT);
    let counts = compute.count_words(len)?;
    let in_place = compute.sort(len)?;
    Ok(format!(
        "crc32 = {crc:#010x} ({}), {} words and {} numbers, sort left {in_place} of {len} bytes in place",
        if crc == native { "same as native" } else { "NATIVE DIFFERS" },
        counts & 0xFFFF,
        counts >> 16,
    ))
}

/// CRC-32 computed by the firmware itself, to check the guest's.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
