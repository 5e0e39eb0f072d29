//! Floating point across a guest's yields. The floats guest computes with f32 and f64
//! in a loop that yields every interval of fuel; its result must equal the blocking
//! call's. On a core with an FPU (the Cortex-M4F) the host also keeps s16-s31 live
//! across every poll, as the AAPCS lets any caller: an assembly routine loads them with
//! a pattern of its own before each poll and counts the registers that differ after it.
//!
//! The same check runs twice: through Wasmtime's own async call (the minimal
//! reproduction: its Arm stack switch saves r4-r11 and lr, not s16-s31), and through
//! the guest's handle, whose calls keep each side's s16-s31 (wasm-embed's
//! `src/fiber.rs`).
//!
//! `cargo run --release --features embassy --example float_yields` (Cortex-M4); with
//! `--target riscv32imac-unknown-none-elf` it checks the results alone (no FPU).
#![no_std]
#![no_main]

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use demo_firmware::{exit, guests, heap, say};
use wasm_embed::Error;

/// Iterations of the guest's loop: about 40 yields.
const N: u32 = 5_000;

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    heap::init();
    match run() {
        Ok(ok) => exit(ok),
        Err(error) => {
            say!("error: {error}");
            exit(false)
        }
    }
}

fn run() -> Result<bool, Error> {
    let guest = &guests::floats::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    let expected = guests::floats::Floats::new(&module, ())?.floats(N)?;
    say!("blocking: floats({N}) = {expected}");

    let mut floats = poll_to_end(guests::floats::Floats::new_async(&module, ()), &mut |poll| poll()).0?;
    let mut lost = 0;
    let (result, polls) = poll_to_end(floats.floats_async(N), &mut |poll| {
        lost += poll_keeping_floats(poll);
    });
    let result = result?;
    let mut ok = result == expected;
    say!(
        "through the handle: floats({N}) = {result} after {polls} polls ({})",
        if ok { "equal" } else { "DIFFERS" }
    );
    if cfg!(all(target_arch = "arm", target_feature = "fpregs")) {
        say!("through the handle: {lost} of {polls} polls lost the caller's s16-s31");
        ok &= lost == 0;
        match reproduction(&module, expected) {
            Ok(lost) => say!("through Wasmtime's call_async alone: {lost} of the polls lost the caller's s16-s31"),
            Err(error) => say!("error: {error}"),
        }
        ok &= fiber_side_floats()?;
    }
    say!("peak heap: {} bytes", heap::peak());
    Ok(ok)
}

/// The call through Wasmtime's API alone, with the yield interval the handle's store
/// gets: how many polls came back with other s16-s31.
fn reproduction(module: &wasm_embed::GuestModule, expected: i64) -> wasmtime::Result<u32> {
    use wasm_embed::__private::wasmtime::{Instance, Store};
    let raw = wasm_embed::__private::module_of(module);
    let mut store = Store::new(raw.engine(), ());
    store.set_fuel(u64::MAX)?;
    store.fuel_async_yield_interval(guests::SETTINGS.fuel_yield_interval)?;
    let instance = poll_to_end(Instance::new_async(&mut store, raw, &[]), &mut |poll| poll()).0?;
    let func = instance.get_typed_func::<u32, i64>(&mut store, "floats")?;
    let mut lost = 0;
    let (result, polls) = poll_to_end(func.call_async(&mut store, N), &mut |poll| {
        lost += poll_keeping_floats(poll);
    });
    if result? != expected {
        say!("through Wasmtime's call_async alone: the result differs");
    }
    say!("through Wasmtime's call_async alone: {polls} polls");
    Ok(lost)
}

use wasm_embed::__private::wasmtime;

/// The add guest's `extra`, whose future leaves s16-s31 changed when it is pending, as a
/// frame on the fiber that keeps floats in them across the switch would: the first poll
/// is pending, the second gives 42.
#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
struct FiberFloats(bool);

#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
impl Future for FiberFloats {
    type Output = u32;

    fn poll(mut self: core::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.0 {
            return Poll::Ready(42);
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        // Deliberately not declared as clobbered: the values stay in s16-s31 when the
        // fiber suspends, which is all a frame below it on the fiber could ever do.
        // SAFETY: nothing in this function keeps a value in s16-s31 (it has no floats).
        unsafe { core::arch::asm!("vmov.f32 s16, #-2.0", "vmov.f32 s24, #-2.0", "vmov.f32 s31, #-2.0") };
        Poll::Pending
    }
}

#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
struct Host;

#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
impl guests::add::AsyncHost for Host {
    fn extra(&mut self) -> impl Future<Output = Result<u32, Error>> + Send {
        async { Ok(FiberFloats(false).await) }
    }
}

/// What the caller's s16-s31 look like after polls during which the fiber holds other
/// values in them: through Wasmtime's call_async alone (the reproduction) and through
/// the guest's handle.
#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
fn fiber_side_floats() -> Result<bool, Error> {
    use wasm_embed::__private::wasmtime::{Caller, Func, Instance, Store};
    let guest = &guests::add::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let module = guest.load(&engine)?;
    let raw = wasm_embed::__private::module_of(&module);
    let mut store = Store::new(raw.engine(), ());
    store.set_fuel(u64::MAX).map_err(Error::Engine)?;
    let extra = Func::wrap_async(&mut store, |_: Caller<'_, ()>, (): ()| Box::new(FiberFloats(false)));
    let instance = poll_to_end(Instance::new_async(&mut store, raw, &[extra.into()]), &mut |poll| poll()).0;
    let instance = instance.map_err(Error::Engine)?;
    let func = instance.get_typed_func::<(u32, u32), u32>(&mut store, "add_with_extra").map_err(Error::Engine)?;
    let mut raw_lost = 0;
    let (sum, polls) = poll_to_end(func.call_async(&mut store, (1, 2)), &mut |poll| {
        raw_lost += poll_keeping_floats(poll);
    });
    let sum = sum.map_err(Error::Engine)?;
    say!("fiber keeping floats, Wasmtime's call_async alone: {sum} after {polls} polls, {raw_lost} of s16-s31 lost");
    drop(store);

    let mut add = poll_to_end(guests::add::Add::new_async(&module, Host), &mut |poll| poll()).0?;
    let mut lost = 0;
    let (sum, polls) = poll_to_end(add.add_with_extra_async(1, 2), &mut |poll| {
        lost += poll_keeping_floats(poll);
    });
    say!("fiber keeping floats, through the handle: {} after {polls} polls, {lost} of s16-s31 lost", sum?);
    Ok(lost == 0)
}

extern crate alloc;
use alloc::boxed::Box;

/// Polls `future` until it is ready, each poll through `around`: its output and the
/// number of polls.
fn poll_to_end<F: Future>(future: F, around: &mut dyn FnMut(&mut dyn FnMut())) -> (F::Output, u32) {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    let mut polls = 0;
    loop {
        polls += 1;
        let mut result = None;
        around(&mut || result = Some(future.as_mut().poll(&mut cx)));
        if let Some(Poll::Ready(output)) = result {
            return (output, polls);
        }
    }
}

/// Runs `poll` with s16-s31 holding a pattern of this poll's own, as a caller that keeps
/// floats in them would: the number of them that came back changed.
#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
fn poll_keeping_floats(poll: &mut dyn FnMut()) -> u32 {
    use core::sync::atomic::{AtomicU32, Ordering};
    static SEED: AtomicU32 = AtomicU32::new(0x3f80_0000);
    extern "C" fn trampoline(poll: *mut u8) {
        // SAFETY: the pointer is the `&mut &mut dyn FnMut()` below, alive for the call.
        let poll = unsafe { &mut *poll.cast::<&mut dyn FnMut()>() };
        poll();
    }
    unsafe extern "C" {
        fn check_float_registers(poll: extern "C" fn(*mut u8), state: *mut u8, seed: u32) -> u32;
    }
    let seed = SEED.fetch_add(0x0001_0003, Ordering::Relaxed);
    let mut poll = poll;
    // SAFETY: the routine keeps the AAPCS and calls `trampoline` with `state` once.
    unsafe { check_float_registers(trampoline, (&raw mut poll).cast(), seed) }
}

#[cfg(not(all(target_arch = "arm", target_feature = "fpregs")))]
fn poll_keeping_floats(poll: &mut dyn FnMut()) -> u32 {
    poll();
    0
}

// check_float_registers(poll, state, seed): sets s16-s31 to seed, seed+1, ..., seed+15,
// calls poll(state), and returns how many of s16-s31 no longer hold their value. It
// saves and restores d8-d15 itself, as a callee must.
#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
core::arch::global_asm!(
    ".section .text.check_float_registers,\"ax\",%progbits",
    ".global check_float_registers",
    ".type check_float_registers,%function",
    // Module-level assembly does not see the target's FPU: name the one every
    // thumbv7em-none-eabihf core has (FPv4-SP, s0-s31).
    ".fpu fpv4-sp-d16",
    ".thumb_func",
    "check_float_registers:",
    "push {{r4, r5, r6, r7, r8, lr}}",
    "vpush {{d8-d15}}",
    "sub sp, sp, #64",
    "mov r4, r2",
    "mov r5, r1",
    "mov r6, r0",
    "movs r1, #0",
    "1:",
    "add r7, r4, r1",
    "str r7, [sp, r1, lsl #2]",
    "adds r1, r1, #1",
    "cmp r1, #16",
    "bne 1b",
    "vldmia sp, {{s16-s31}}",
    "mov r0, r5",
    "blx r6",
    "vstmia sp, {{s16-s31}}",
    "movs r0, #0",
    "movs r1, #0",
    "2:",
    "ldr r7, [sp, r1, lsl #2]",
    "add r8, r4, r1",
    "cmp r7, r8",
    "it ne",
    "addne r0, r0, #1",
    "adds r1, r1, #1",
    "cmp r1, #16",
    "bne 2b",
    "add sp, sp, #64",
    "vpop {{d8-d15}}",
    "pop {{r4, r5, r6, r7, r8, pc}}",
    ".size check_float_registers, . - check_float_registers",
);
