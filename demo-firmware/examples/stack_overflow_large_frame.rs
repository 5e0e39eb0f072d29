//! A frame larger than the stack's guard, where the stack has just enough room left for
//! a small one: the add guest's `extra` import recurses until its stack is within 128
//! bytes of the guard, then calls a function whose 3 KiB frame (as large as Wasmtime's
//! `Engine::new`'s) it writes only at the bottom. That write must land in the guard, not
//! step over it into the statics: the fault handler prints the overflow's line and whether
//! the memory below the guard is as painted, and the run fails.
#![no_std]
#![no_main]

use demo_firmware::{exit, guests, say, stack};

/// The host behind the add guest's `host.extra` import.
struct Host;

impl guests::add::Host for Host {
    fn extra(&mut self) -> u32 {
        toward_guard(0)
    }
}

/// Bytes of stack, above the guard, at which the recursion calls [`large_frame`].
const ROOM_LEFT: usize = 128;

/// Recurses, 64 bytes of locals a call, until the stack is within [`ROOM_LEFT`] bytes of
/// its guard.
#[inline(never)]
fn toward_guard(depth: u32) -> u32 {
    let mut locals = [depth; 16];
    core::hint::black_box(&mut locals);
    let room = &raw const locals as usize - stack::guard().end;
    let below = if room > ROOM_LEFT { toward_guard(depth + 1) } else { large_frame() };
    below.wrapping_add(locals[depth as usize % 16])
}

/// A 3 KiB frame of which only the lowest word is written, as a callee's arguments or a
/// buffer filled from its start would be.
#[inline(never)]
fn large_frame() -> u32 {
    let mut frame = core::mem::MaybeUninit::<[u32; 768]>::uninit();
    // SAFETY: the first word of the frame's own array.
    unsafe { frame.as_mut_ptr().cast::<u32>().write_volatile(1) };
    core::hint::black_box(&mut frame);
    1
}

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    demo_firmware::init();
    stack::watch_below_guard();
    match run() {
        Ok(sum) => say!("error: the call returned {sum}: the large frame stepped over the guard"),
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
