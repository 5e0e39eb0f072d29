//! The add example: the firmware of the original runtime comparison, which runs the `add` guest once and reports the result, the peak
//! heap and the peak use of the main stack (by painting). The size report (`./x size`) measures this program.
#![no_std]
#![no_main]

use demo_firmware::{exit, guests, heap, say, stack};

/// What the host gives the guest through its `host.extra` import.
struct Host;

impl guests::add::Host for Host {
    fn extra(&mut self) -> u32 {
        42
    }
}

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    stack::paint_free();
    demo_firmware::init();
    match run() {
        Ok(sum) => {
            say!("add_with_extra(1, 2) = {sum}");
            say!("peak heap: {} bytes", heap::peak());
            say!("peak main stack: {} of its {} bytes", stack::peak_use(), stack::size());
            exit(true)
        }
        Err(error) => {
            say!("error: {error}");
            exit(false)
        }
    }
}

fn run() -> Result<u32, wasm_embed::Error> {
    let guest = &guests::add::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    let mut add = guests::add::Add::new(&module, Host)?;
    add.add_with_extra(1, 2)
}
