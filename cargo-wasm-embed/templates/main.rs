#![no_std]
#![no_main]

// The board's entry point, `println!`, exit and panic handler.
#[macro_use]
mod board;

use embedded_alloc::LlffHeap;
use wasm_embed::{Error, GuestMemory};

// `mod guests`: per guest, its `.cwasm`, its handle and a trait per import module.
wasm_embed::include_guests!();

/// Wasmtime allocates each guest's module, store and memory from this heap.
#[global_allocator]
static HEAP: LlffHeap = LlffHeap::empty();
const HEAP_SIZE: usize = 64 * 1024;
static mut ARENA: [u8; HEAP_SIZE] = [0; HEAP_SIZE];

/// What the guest imports from the module `env`: the trait `Env`.
struct Board;

impl guests::checksum::Env for Board {
    // The guest's source passes a pointer, so this import gets its memory, bounds-checked.
    fn log(&mut self, memory: GuestMemory<'_>, text: u32, len: u32) -> Result<(), Error> {
        println!("guest says: {}", memory.read_str(text, len)?);
        Ok(())
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

fn run() -> Result<u32, Error> {
    let guest = &guests::checksum::GUEST;
    // An engine with just the Pulley stack this guest needs.
    let engine = wasm_embed::engine(guest.settings())?;
    // Loaded once, in place from flash.
    let module = guest.load(&engine)?;
    // A store of its own; dropping it frees all of the guest's memory.
    let mut checksum = guests::checksum::Checksum::new(&module, Board)?;
    // The firmware writes the guest's input where the guest says.
    let input = checksum.input()?;
    checksum.memory().write(input, b"123456789")?;
    checksum.checksum(9)
}
