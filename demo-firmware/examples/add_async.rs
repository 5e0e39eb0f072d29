//! The add example under embassy: the add guest instantiated for async calls, its `extra`
//! import an `async fn` that awaits a timer before it answers. The size report
//! (`./x size`) measures its flash and peak heap beside the blocking add example's.
#![no_std]
#![no_main]

use demo_firmware::{exit, guests, heap, say};
use embassy_executor::Spawner;
use embassy_time::Timer;
use wasm_embed::Error;

/// What the host gives the guest through its `host.extra` import, after a wait.
struct Host;

impl guests::add::AsyncHost for Host {
    async fn extra(&mut self) -> Result<u32, Error> {
        Timer::after_micros(100).await;
        Ok(42)
    }
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    demo_firmware::init();
    demo_firmware::time::init();
    let fiber = guests::add::GUEST.settings().async_stack_size;
    match run().await {
        Ok((sum, used)) => {
            say!("add_with_extra(1, 2) = {sum}");
            say!("fiber stack: {used} of {fiber} bytes used");
            say!("peak heap: {} bytes", heap::peak());
            exit(true)
        }
        Err(error) => {
            say!("error: {error}");
            exit(false)
        }
    }
}

/// The sum, and how much of its fiber stack the call used, measured by the stack's paint
/// while the guest's handle, which keeps the stack, is alive.
async fn run() -> Result<(u32, usize), Error> {
    let guest = &guests::add::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    let mut add = guests::add::Add::new_async(&module, Host).await?;
    let sum = add.add_with_extra_async(1, 2).await?;
    let used = wasm_embed::fiber_stack_peak().expect("the guest's store keeps its fiber stack");
    Ok((sum, used))
}
