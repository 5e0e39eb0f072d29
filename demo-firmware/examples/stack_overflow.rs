//! What a firmware sees when its main stack overflows: the add guest's `extra` import
//! calls a host function that recurses without bound. The stack reaches its guard
//! (src/stack.rs), the fault handler prints one line naming the overflow and whether the
//! memory below the guard is as painted, and the run fails; nothing below the stack is
//! overwritten on the way.
#![no_std]
#![no_main]

use demo_firmware::{exit, guests, say, stack};

/// The host behind the add guest's `host.extra` import.
struct Host;

impl guests::add::Host for Host {
    fn extra(&mut self) -> u32 {
        stack::recurse_without_bound(0)
    }
}

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    demo_firmware::init();
    stack::watch_below_guard();
    match run() {
        Ok(sum) => say!("error: the call returned {sum} instead of overflowing the stack"),
        Err(error) => say!("error: the call ended in an error instead of overflowing the stack: {error}"),
    }
    exit(false)
}

fn run() -> Result<u32, wasm_embed::Error> {
    let guest = &guests::add::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    let mut add = guests::add::Add::new(&module, Host)?;
    add.add_with_extra(1, 2)
}
