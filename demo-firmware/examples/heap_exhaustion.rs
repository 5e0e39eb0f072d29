//! What a firmware sees when its heap runs out while a guest is set up. Where Wasmtime
//! returns the failure, one error line names the guest and the bytes asked for, and the
//! firmware goes on to run its next guest; where Wasmtime cannot go on (the store of a
//! second guest), the fault handler prints one line with the bytes and the heap in use.
//! Blocks taken from the heap first ("ballast") leave the guests the room a smaller heap
//! would.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use demo_firmware::{exit, guests, heap, say};
use wasm_embed::Error;

/// Bytes left to the guests in the first case: less than the 64 KiB page the `grow`
/// guest's memory needs.
const TOO_SMALL_FOR_GROW: usize = 48 * 1024;

/// Bytes left in the second case, with the add guest set up: not enough for the compute
/// guest beside it.
const ROOM_FOR_ONE: usize = 8 * 1024;

/// Takes all of the heap but about `left` bytes, for as long as it is kept, in as many
/// blocks as the blocks still in use have split the free space into.
fn ballast(left: usize) -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let _ = blocks.try_reserve(64);
    while let Some(mut want) = (heap::size() - heap::used()).checked_sub(left + 64) {
        let mut block = Vec::new();
        while want > 64 && block.try_reserve_exact(want).is_err() {
            want /= 2;
        }
        if block.capacity() == 0 || blocks.len() == blocks.capacity() {
            break;
        }
        blocks.push(block);
    }
    blocks
}

/// Bytes left in the last case: less than the store Wasmtime allocates for a guest.
const NO_ROOM: usize = 256;

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    demo_firmware::init();
    match run() {
        Ok(()) => exit(true),
        Err(error) => {
            say!("error: {error}");
            exit(false)
        }
    }
}

fn run() -> Result<(), Error> {
    // A heap too small for a guest's memory: Wasmtime returns the error.
    let left = ballast(TOO_SMALL_FOR_GROW);
    let grow = load(&guests::grow::GUEST)?;
    match guests::grow::Grow::new(&grow, ()) {
        Ok(_) => say!("grow: instantiated in {TOO_SMALL_FOR_GROW} bytes of heap"),
        Err(error) => say!("grow: {error}"),
    }
    drop(grow);
    drop(left);

    // The firmware goes on, and its next guest runs.
    let add_module = load(&guests::add::GUEST)?;
    let mut add = guests::add::Add::new(&add_module, Host)?;
    say!("add: add_with_extra(1, 2) = {}", add.add_with_extra(1, 2)?);

    // A heap with room for the add guest but not for a second guest's memory beside it:
    // Wasmtime returns the error, and the first guest still runs.
    let left = ballast(ROOM_FOR_ONE);
    let compute = load(&guests::compute::GUEST)?;
    match guests::compute::Compute::new(&compute, ()) {
        Ok(_) => say!("compute: instantiated beside add in {ROOM_FOR_ONE} bytes of heap"),
        Err(error) => say!("compute: {error}"),
    }
    say!("add: add_with_extra(1, 2) = {}", add.add_with_extra(1, 2)?);
    drop(left);

    // Not even room for the second guest's store: Wasmtime cannot go on without it, and
    // the fault handler says why.
    let _left = ballast(NO_ROOM);
    guests::compute::Compute::new(&compute, ())?;
    say!("compute: instantiated beside add in {NO_ROOM} bytes of heap");
    Ok(())
}

fn load(guest: &'static wasm_embed::Guest) -> Result<wasm_embed::GuestModule, Error> {
    guest.load(&wasm_embed::engine(guest.settings())?)
}

/// What the host gives the add guest through its `host.extra` import.
struct Host;

impl guests::add::Host for Host {
    fn extra(&mut self) -> u32 {
        42
    }
}
