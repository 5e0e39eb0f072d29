//! The add example with its guest as a component: the same sum, the interface a WIT
//! world (guests/add-component/wit). The size report (`./x size`) measures it beside the
//! add example to show what the Component Model costs.
//!
//! `cargo run --release --example add-component --features component`
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use demo_firmware::{exit, guests, heap};
use guests::add_component::{AddComponent, wit};

/// What the firmware gives the guest through its `extra` import.
struct Host;

impl wit::AddImports for Host {
    fn extra(&mut self) -> u32 {
        42
    }
}

#[entry]
fn main() -> ! {
    demo_firmware::init();
    match run() {
        Ok(sum) => {
            hprintln!("add-with-extra(1, 2) = {sum}");
            hprintln!("peak heap: {} bytes", heap::peak());
            exit(true)
        }
        Err(error) => {
            hprintln!("error: {error}");
            exit(false)
        }
    }
}

fn run() -> Result<u32, wasm_embed::Error> {
    let guest = &guests::add_component::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let component = guest.load_component(&engine)?;
    let mut add = AddComponent::new(&component, Host)?;
    add.call("add-with-extra", |world, store| world.call_add_with_extra(store, 1, 2))
}
