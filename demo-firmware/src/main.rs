//! Runs seed 001's guest on a Cortex-M4 and reports the result and the peak heap.
#![no_std]
#![no_main]

extern crate alloc;

mod heap;

// cortex-m provides the critical section that the heap and semihosting lock with.
use cortex_m as _;
use cortex_m_rt::{ExceptionFrame, entry, exception};
use cortex_m_semihosting::{debug, hprintln};
use wasm_embed::wasmtime::{Func, Store};

wasm_embed::include_guests!();

/// What the host gives the guest through its `host.extra` import.
const EXTRA: u32 = 42;

#[entry]
fn main() -> ! {
    heap::init();
    match run() {
        Ok(sum) => {
            hprintln!("add_with_extra(1, 2) = {sum}");
            hprintln!("peak heap: {} bytes", heap::peak());
            debug::exit(debug::EXIT_SUCCESS);
        }
        Err(error) => {
            hprintln!("error: {error}");
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    loop {}
}

fn run() -> Result<u32, wasm_embed::Error> {
    let guest = &guests::add::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.module(&engine)?;
    let mut store = Store::new(&engine, ());
    // The guest's one import, `host.extra`.
    let extra = Func::wrap(&mut store, || EXTRA);
    let instance = guest.instantiate(&mut store, &module, &[extra.into()])?;
    let add = guest.func::<(u32, u32), u32>(&mut store, &instance, "add_with_extra")?;
    add.call(&mut store, (1, 2))
}

// Any fault ends the QEMU run with a failure instead of hanging it.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("error: hard fault at pc {:#010x}", frame.pc());
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("error: firmware panicked: {}", info.message());
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
