//! The add example's component under embassy: the add guest as a WIT component, its
//! `extra` import an `async fn` that awaits a timer, its export called as a future.
//!
//! `cargo run --release --features component,embassy --example add-component-async`
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;

use demo_firmware::{exit, guests, heap, say};
use embassy_executor::Spawner;
use embassy_time::Timer;
use guests::add_component::{AddComponentAsync, wit_async};

/// What the firmware gives the guest through its `extra` import, after a wait.
struct Host;

impl wit_async::AddImports for Host {
    async fn extra(&mut self) -> wasm_embed::ImportResult<u32> {
        Timer::after_micros(100).await;
        Ok(42)
    }
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    demo_firmware::init();
    demo_firmware::time::init();
    match run().await {
        Ok(sum) => {
            say!("add-with-extra(1, 2) = {sum}");
            say!("peak heap: {} bytes", heap::peak());
            exit(true)
        }
        Err(error) => {
            say!("error: {error}");
            exit(false)
        }
    }
}

async fn run() -> Result<u32, wasm_embed::Error> {
    let guest = &guests::add_component::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let component = guest.load_component(&engine)?;
    let mut add = AddComponentAsync::new_async(&component, Host).await?;
    add.call_async("add-with-extra", |world, store| Box::pin(world.call_add_with_extra(store, 1, 2)))
        .await
}
