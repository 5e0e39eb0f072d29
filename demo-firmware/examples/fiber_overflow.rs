//! What a firmware sees when an async call's fiber stack overflows: the add guest's `extra`
//! import is a future that goes on the fiber's stack until it is within 64 bytes of its
//! end and then calls a function whose locals reach past it, into the canary wasm-embed
//! keeps below every fiber stack. On the Arm cores, where the MPU guards the canary
//! (`stack-guard`), the first write into it faults: the guard's handler prints its one
//! line and whether the canary is still as painted, and the run ends. On RISC-V, the call
//! ends in one line naming the guest, the stack and how far it went, never with its
//! result, and the same guest's next call, with a future that fits, runs.
#![no_std]
#![no_main]

use demo_firmware::{exit, guests, say};
use embassy_executor::Spawner;
use wasm_embed::Error;

/// The host behind the add guest's `host.extra` import.
struct Host {
    too_deep: bool,
}

impl guests::add::AsyncHost for Host {
    async fn extra(&mut self) -> Result<u32, Error> {
        Ok(if self.too_deep { dive(0) } else { 42 })
    }
}

/// What wasm-embed paints the canary below each fiber stack with.
const CANARY_PAINT: u32 = 0xC0DE_CAFE;

/// Goes deeper until the word 64 bytes below its locals is the canary's paint.
#[inline(never)]
fn dive(depth: u32) -> u32 {
    let locals = core::hint::black_box([depth; 8]);
    let below = (locals.as_ptr() as usize - 64) & !3;
    // SAFETY: the fiber's stack block goes on below the locals, through the canary.
    let word = unsafe { (below as *const u32).read_volatile() };
    let deeper = if word == CANARY_PAINT {
        overrun()
    } else {
        dive(depth + 1)
    };
    core::hint::black_box(deeper.wrapping_add(locals[depth as usize % 8]))
}

/// 64 bytes of locals, every one written: with less room than that left, they reach the
/// canary.
#[inline(never)]
fn overrun() -> u32 {
    let mut locals = [0u32; 16];
    for (at, word) in locals.iter_mut().enumerate() {
        // SAFETY: a word of the array above.
        unsafe { core::ptr::write_volatile(word, at as u32) };
    }
    core::hint::black_box(&locals).iter().sum()
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    demo_firmware::init();
    demo_firmware::time::init();
    match run().await {
        Ok(()) => exit(true),
        Err(error) => {
            say!("error: {error}");
            exit(false)
        }
    }
}

async fn run() -> Result<(), Error> {
    let guest = &guests::add::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    let mut add = guests::add::Add::new_async(&module, Host { too_deep: true }).await?;
    match add.add_with_extra_async(1, 2).await {
        Ok(sum) => say!("error: the call returned {sum} though its fiber stack overflowed"),
        Err(error) => say!("{error}"),
    }
    add.host_mut().too_deep = false;
    say!(
        "the same guest's next call: add_with_extra(1, 2) = {}",
        add.add_with_extra_async(1, 2).await?
    );
    Ok(())
}
