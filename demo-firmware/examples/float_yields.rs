//! Floating point across a guest's yields. The floats guest computes with f32 and f64
//! in a loop that yields every interval of fuel; its result must equal the blocking
//! call's. (Pulley keeps a guest's floats in memory, so that alone cannot show the
//! registers being switched.)
//!
//! On a core with an FPU (the Cortex-M4F) the AAPCS makes s16-s31 callee-saved, but
//! Wasmtime's Arm stack switch saves r4-r11 and lr only. So the host keeps s16-s31 live
//! across every poll, as any caller may (an assembly routine loads them with a pattern of
//! its own before each poll and counts the registers that differ after it), and the add
//! guest's async import is a future that holds values of its own in s16, s24 and s31
//! across its suspension, and again while it is dropped, as a frame on the fiber that
//! keeps floats would. Through Wasmtime's own async call the two sides' values leak into
//! each other (the reproduction); through the guest's handle (wasm-embed's
//! `src/fiber.rs`) neither side loses a register, when the call runs to its end and when
//! it is dropped while suspended.
//!
//! With the `component` feature it does the same through a component guest's handle.
//!
//! `cargo run --release --features embassy,component --example float_yields`
//! (Cortex-M4); with `--target riscv32imac-unknown-none-elf` it checks the results alone
//! (no FPU).
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
    demo_firmware::init();
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
    let (result, polls) = poll_to_end(floats.floats_async(N), &mut |poll| poll());
    let result = result?;
    let mut ok = result == expected;
    say!(
        "through the handle: floats({N}) = {result} after {polls} polls ({})",
        if ok { "equal" } else { "DIFFERS" }
    );
    #[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
    {
        ok &= fiber_side_floats()?;
        #[cfg(feature = "component")]
        {
            ok &= component_side_floats()?;
        }
    }
    say!("peak heap: {} bytes", heap::peak());
    Ok(ok)
}


/// The bits of -2.0f32, what a frame on the fiber holds in s16, s24 and s31.
#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
const FIBER_VALUE: u32 = 0xC000_0000;

/// Whether [`FiberFloats`] has suspended the fiber.
#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
static SUSPENDED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// How many of s16, s24 and s31 no longer held [`FIBER_VALUE`] when the fiber resumed.
#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
static FIBER_LOST: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Puts [`FIBER_VALUE`] in s16, s24 and s31, deliberately not declared as clobbered: the
/// values stay there when the fiber suspends or ends, which is all a frame on the fiber
/// that keeps floats could ever do.
#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
#[inline(always)]
fn hold_fiber_floats() {
    // SAFETY: the callers keep no value of their own in s16-s31 (they have no floats).
    unsafe { core::arch::asm!("vmov.f32 s16, #-2.0", "vmov.f32 s24, #-2.0", "vmov.f32 s31, #-2.0") };
}

/// The add guest's `extra`: a future that holds floats in s16, s24 and s31 across its
/// suspension (the first poll is pending, the second checks them and gives 42) and while
/// it is dropped.
#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
struct FiberFloats(bool);

#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
impl Future for FiberFloats {
    type Output = u32;

    fn poll(mut self: core::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.0 {
            let (s16, s24, s31): (u32, u32, u32);
            // SAFETY: reads three registers into general ones.
            unsafe {
                core::arch::asm!("vmov {}, s16", "vmov {}, s24", "vmov {}, s31", out(reg) s16, out(reg) s24, out(reg) s31)
            };
            let lost = [s16, s24, s31].iter().filter(|&&bits| bits != FIBER_VALUE).count();
            FIBER_LOST.store(lost as u32, core::sync::atomic::Ordering::Relaxed);
            return Poll::Ready(42);
        }
        self.0 = true;
        SUSPENDED.store(true, core::sync::atomic::Ordering::Relaxed);
        cx.waker().wake_by_ref();
        hold_fiber_floats();
        Poll::Pending
    }
}

#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
impl Drop for FiberFloats {
    fn drop(&mut self) {
        hold_fiber_floats();
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

/// The fiber holding floats of its own, through Wasmtime's call_async alone (the
/// reproduction) and through the guest's handle: a call run to its end, and a call
/// dropped while suspended. How many of the caller's s16-s31 and of the fiber's three
/// were lost; through the handle, none may be.
#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
fn fiber_side_floats() -> Result<bool, Error> {
    use core::sync::atomic::Ordering;
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
    let mut lost = 0;
    let (sum, polls) = poll_to_end(func.call_async(&mut store, (1, 2)), &mut |poll| {
        lost += poll_keeping_floats(poll);
    });
    let sum = sum.map_err(Error::Engine)?;
    let fiber_lost = FIBER_LOST.load(Ordering::Relaxed);
    say!(
        "fiber keeping floats, Wasmtime's call_async alone: {sum} after {polls} polls, {lost} of the caller's s16-s31 \
         lost, {fiber_lost} of the fiber's 3"
    );
    let lost = poll_then_drop(func.call_async(&mut store, (1, 2)));
    say!("dropped while suspended, Wasmtime's call_async alone: {lost} of the caller's s16-s31 lost");
    drop(store);

    let mut add = poll_to_end(guests::add::Add::new_async(&module, Host), &mut |poll| poll()).0?;
    let mut lost = 0;
    FIBER_LOST.store(u32::MAX, Ordering::Relaxed);
    let (sum, polls) = poll_to_end(add.add_with_extra_async(1, 2), &mut |poll| {
        lost += poll_keeping_floats(poll);
    });
    let fiber_lost = FIBER_LOST.load(Ordering::Relaxed);
    say!(
        "fiber keeping floats, through the handle: {} after {polls} polls, {lost} of the caller's s16-s31 lost, \
         {fiber_lost} of the fiber's 3",
        sum?
    );
    let dropped_lost = poll_then_drop(add.add_with_extra_async(1, 2));
    say!("dropped while suspended, through the handle: {dropped_lost} of the caller's s16-s31 lost");
    Ok(lost == 0 && fiber_lost == 0 && dropped_lost == 0)
}

/// The same through a component guest's handle (the add guest as a WIT component), whose
/// async calls go through wasm-embed's component path (`src/component.rs`): its `extra`
/// import is the future that holds floats.
#[cfg(all(feature = "component", target_arch = "arm", target_feature = "fpregs"))]
fn component_side_floats() -> Result<bool, Error> {
    use core::sync::atomic::Ordering;
    use guests::add_component::{AddComponentAsync, wit_async};

    struct ComponentHost;

    impl wit_async::AddImports for ComponentHost {
        async fn extra(&mut self) -> wasm_embed::ImportResult<u32> {
            Ok(FiberFloats(false).await)
        }
    }

    let guest = &guests::add_component::GUEST;
    let engine = wasm_embed::engine(guest.settings())?;
    let component = guest.load_component(&engine)?;
    let mut add = poll_to_end(AddComponentAsync::new_async(&component, ComponentHost), &mut |poll| poll()).0?;
    let mut lost = 0;
    FIBER_LOST.store(u32::MAX, Ordering::Relaxed);
    let call = add.call_async("add-with-extra", |world, store| Box::pin(world.call_add_with_extra(store, 1, 2)));
    let (sum, polls) = poll_to_end(call, &mut |poll| {
        lost += poll_keeping_floats(poll);
    });
    let fiber_lost = FIBER_LOST.load(Ordering::Relaxed);
    say!(
        "component fiber keeping floats, through the handle: {} after {polls} polls, {lost} of the caller's s16-s31 \
         lost, {fiber_lost} of the fiber's 3",
        sum?
    );
    let call = add.call_async("add-with-extra", |world, store| Box::pin(world.call_add_with_extra(store, 1, 2)));
    let dropped_lost = poll_then_drop(call);
    say!("component dropped while suspended, through the handle: {dropped_lost} of the caller's s16-s31 lost");
    Ok(lost == 0 && fiber_lost == 0 && dropped_lost == 0)
}

/// Polls `future` until its import has suspended the fiber, then drops it, each with
/// s16-s31 held by the caller: how many of them came back changed.
#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
fn poll_then_drop<F: Future>(future: F) -> u32 {
    use core::sync::atomic::Ordering;
    let mut future = Some(Box::pin(future));
    let mut cx = Context::from_waker(Waker::noop());
    let mut lost = 0;
    SUSPENDED.store(false, Ordering::Relaxed);
    while !SUSPENDED.load(Ordering::Relaxed) {
        lost += poll_keeping_floats(&mut || {
            if let Some(future) = future.as_mut() {
                let _ = future.as_mut().poll(&mut cx);
            }
        });
    }
    lost + poll_keeping_floats(&mut || drop(future.take()))
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
