//! Async calls run on a Wasmtime fiber, and every poll of one switches stacks. On a core
//! with a floating-point unit (thumbv7em-none-eabihf: Cortex-M4F, M7) the AAPCS makes
//! s16–s31 callee-saved, but Wasmtime 48's Arm switch (`wasmtime-internal-fiber`'s
//! `stackswitch/arm.rs`) saves only r4–r11 and lr. So a poll can return with the fiber's
//! s16–s31 in place of the caller's, and the fiber can resume with the caller's in place
//! of its own. `KeepFloats` gives each side its own: around every poll it saves the
//! caller's s16–s31, loads the fiber's (as the fiber last left them), and after the poll
//! stores the fiber's and loads the caller's again; dropping a suspended call (which
//! resumes the fiber to unwind it) goes through the same swap. This holds as long as no
//! frame between the swap and Wasmtime's switch, on either side, keeps a value of its own
//! in s16–s31 across the switch (Wasmtime's and the executor's frames there do not use
//! them). `examples/float_yields.rs` in demo-firmware shows the loss without it and
//! checks it is gone with it.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
pub(crate) use arm::KeepFloats;

/// An async call's future: polled through [`KeepFloats`], and after every poll the fiber
/// stacks' canaries checked (src/fiber_stack.rs). A poll that overflowed its stack ends
/// the call with that error, whatever the call returned: the call is dropped there, and
/// its canary painted again if no other call's poll ran beside it.
pub(crate) struct FiberCall<F>(Option<KeepFloats<F>>);

impl<T, F: Future<Output = wasmtime::Result<T>>> FiberCall<F> {
    pub(crate) fn new(future: F) -> Self {
        FiberCall(Some(KeepFloats::new(future)))
    }
}

impl<T, F: Future<Output = wasmtime::Result<T>>> Future for FiberCall<F> {
    type Output = wasmtime::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: the field is never moved out of the pinned wrapper; `set` drops it in place.
        let mut call = unsafe { self.map_unchecked_mut(|this| &mut this.0) };
        let Some(future) = call.as_mut().as_pin_mut() else {
            panic!("an async call was polled after it ended");
        };
        // The poll, the check, and the drop that unwinds the fiber, in one window.
        let window = crate::fiber_stack::PollWindow::open();
        let result = future.poll(cx);
        let Some(overflow) = crate::fiber_stack::overflow() else {
            return result;
        };
        call.set(None);
        Poll::Ready(Err(wasmtime::Error::new(crate::fiber_stack::settle(overflow, &window))))
    }
}

impl<F> Drop for FiberCall<F> {
    fn drop(&mut self) {
        // Dropping a call that is suspended resumes its fiber to unwind: in a window, as a
        // poll is. Assigning drops the call in place, as its pinning asks.
        let window = crate::fiber_stack::PollWindow::open();
        self.0 = None;
        crate::fiber_stack::settle_drop(&window);
    }
}

/// Elsewhere the switch saves every callee-saved register (or there are no float
/// registers): the future as it is.
#[cfg(not(all(target_arch = "arm", target_feature = "fpregs")))]
pub(crate) struct KeepFloats<F>(F);

#[cfg(not(all(target_arch = "arm", target_feature = "fpregs")))]
impl<F: Future> KeepFloats<F> {
    pub(crate) fn new(future: F) -> Self {
        KeepFloats(future)
    }
}

#[cfg(not(all(target_arch = "arm", target_feature = "fpregs")))]
impl<F: Future> Future for KeepFloats<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the field is never moved out of the pinned wrapper.
        unsafe { self.map_unchecked_mut(|this| &mut this.0) }.poll(cx)
    }
}

#[cfg(all(target_arch = "arm", target_feature = "fpregs"))]
mod arm {
    use super::*;

    use core::mem::ManuallyDrop;

    /// A fiber's future with the fiber's own s16–s31 kept beside it between polls.
    pub(crate) struct KeepFloats<F> {
        /// Dropped in `Drop`, through the same swap: dropping a call that is suspended
        /// resumes its fiber to unwind it.
        future: ManuallyDrop<F>,
        /// d8–d15 (s16–s31) as the fiber left them at its last suspension.
        fiber: [u64; 8],
        started: bool,
    }

    impl<F: Future> KeepFloats<F> {
        pub(crate) fn new(future: F) -> Self {
            KeepFloats {
                future: ManuallyDrop::new(future),
                fiber: [0; 8],
                started: false,
            }
        }
    }

    /// What the trampoline needs, behind one pointer.
    struct Poll1<'a, 'b, F: Future> {
        future: Pin<&'a mut F>,
        cx: &'a mut Context<'b>,
        result: Option<Poll<F::Output>>,
    }

    extern "C" fn poll_once<F: Future>(state: *mut u8) {
        // SAFETY: `poll_keeping_floats` passes the `Poll1` it was given, alive and unaliased.
        let state = unsafe { &mut *state.cast::<Poll1<'_, '_, F>>() };
        state.result = Some(state.future.as_mut().poll(state.cx));
    }

    impl<F: Future> Future for KeepFloats<F> {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            // SAFETY: `future` stays pinned in place; the other fields are plain data.
            let this = unsafe { self.get_unchecked_mut() };
            let future = unsafe { Pin::new_unchecked(&mut *this.future) };
            let fiber = this.fiber.as_mut_ptr();
            if !this.started {
                // A fiber that has not run holds nothing yet: it starts with the caller's.
                this.started = true;
                // SAFETY: stores d8-d15 into the 64 bytes `fiber` points to.
                unsafe {
                    core::arch::asm!("vstmia {0}, {{d8-d15}}", in(reg) fiber, options(nostack, preserves_flags));
                }
            }
            let mut state = Poll1 {
                future,
                cx,
                result: None,
            };
            // SAFETY: `state` outlives the call, `fiber` is 64 bytes, and the function
            // keeps the AAPCS: it returns with the caller's s16-s31 and r4-r11.
            unsafe {
                wasm_embed_poll_keeping_floats(
                    poll_once::<F>,
                    (&raw mut state).cast(),
                    fiber,
                );
            }
            state.result.expect("poll_once always sets the result")
        }
    }

    extern "C" fn drop_once<F>(future: *mut u8) {
        // SAFETY: `Drop` passes the wrapped future, which is dropped here once and never
        // used again.
        unsafe { core::ptr::drop_in_place(future.cast::<F>()) }
    }

    impl<F> Drop for KeepFloats<F> {
        fn drop(&mut self) {
            let future: *mut F = &mut *self.future;
            if !self.started {
                // No fiber yet: nothing to switch to.
                // SAFETY: the future is dropped once, here.
                unsafe { ManuallyDrop::drop(&mut self.future) };
                return;
            }
            // SAFETY: as in `poll`; the routine calls `drop_once` with `future` once.
            unsafe { wasm_embed_poll_keeping_floats(drop_once::<F>, future.cast(), self.fiber.as_mut_ptr()) }
        }
    }

    unsafe extern "C" {
        fn wasm_embed_poll_keeping_floats(poll: extern "C" fn(*mut u8), state: *mut u8, fiber: *mut u64);
    }

    // Saves the caller's d8-d15 on its own stack, loads the fiber's from `fiber`, polls,
    // stores what the fiber left into `fiber`, and restores the caller's. r4 (callee-saved,
    // and the switch keeps it) holds `fiber` across the poll. 72 bytes pushed keep the
    // stack 8-byte aligned.
    core::arch::global_asm!(
        ".section .text.wasm_embed_poll_keeping_floats,\"ax\",%progbits",
        ".global wasm_embed_poll_keeping_floats",
        ".type wasm_embed_poll_keeping_floats,%function",
        // Module-level assembly does not see the target's FPU: name the one every
        // thumbv7em-none-eabihf core has (FPv4-SP, s0-s31).
        ".fpu fpv4-sp-d16",
        ".thumb_func",
        "wasm_embed_poll_keeping_floats:",
        "push {{r4, lr}}",
        "vpush {{d8-d15}}",
        "mov r4, r2",
        "vldmia r4, {{d8-d15}}",
        "mov r3, r0",
        "mov r0, r1",
        "blx r3",
        "vstmia r4, {{d8-d15}}",
        "vpop {{d8-d15}}",
        "pop {{r4, pc}}",
        ".size wasm_embed_poll_keeping_floats, . - wasm_embed_poll_keeping_floats",
    );
}
