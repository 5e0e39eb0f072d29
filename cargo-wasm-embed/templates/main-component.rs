#![no_std]
#![no_main]

// The component's bindings pass strings and lists as `String` and `Vec`.
extern crate alloc;

// The board's entry point, `println!`, exit and panic handler.
#[macro_use]
mod board;

use alloc::string::String;
use embedded_alloc::LlffHeap;
use guests::checksum::{Checksum, wit};

// `mod guests`: per guest, its `.cwasm`, its handle and its world's bindings (`wit`).
wasm_embed::include_guests!();

/// Wasmtime allocates each guest's component, store and memory from this heap.
#[global_allocator]
static HEAP: LlffHeap = LlffHeap::empty();
const HEAP_SIZE: usize = 64 * 1024;
static mut ARENA: [u8; HEAP_SIZE] = [0; HEAP_SIZE];

/// What the guest's world imports: the trait `wit::ChecksumImports`.
struct Board;

impl wit::ChecksumImports for Board {
    fn log(&mut self, message: String) {
        println!("guest says: {message}");
    }
}

#[board::entry]
fn main() -> ! {
    board::init();
    // SAFETY: once, before the first allocation; nothing else uses ARENA.
    unsafe { HEAP.init(&raw mut ARENA as usize, HEAP_SIZE) }
    let success = match run() {
        Ok(checksum) => {
            println!("checksum = {checksum:#06x}");
            true
        }
        Err(error) => {
            println!("error: {error}");
            false
        }
    };
    board::exit(success)
}

fn run() -> Result<u32, wasm_embed::Error> {
    let guest = &guests::checksum::GUEST;
    // An engine with just the Pulley stack this guest needs.
    let engine = wasm_embed::engine(guest.settings())?;
    // Loaded once, in place from flash.
    let component = guest.load_component(&engine)?;
    // A store of its own; dropping it frees all of the guest's memory.
    let mut checksum = Checksum::new(&component, Board)?;
    // The first argument names the export in error messages.
    checksum.call("checksum", |world, store| world.call_checksum(store, b"123456789"))
}
