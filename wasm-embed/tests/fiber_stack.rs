//! The fiber stacks async calls run on: an import whose future goes deeper than its fiber
//! ends the call with a fiber overflow, in one line, never with its result, and the next
//! call runs; the stack's use is measured by its paint. A test binary of its own: the
//! canaries are checked across every stack alive in the process, so the tests here take
//! turns.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{guest, load, run, settings};
use wasm_embed::__private::{Context, GuestInstance};
use wasm_embed::{FIBER_STACK_CANARY, Fault, Settings, fiber_stack_peak};
use wasmtime::{Caller, Func};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What the canary below each fiber stack is painted with (src/fiber_stack.rs).
const CANARY_PAINT: u32 = 0xC0DE_CAFE;

/// A fiber of 256 KiB: room for this host's unoptimized frames, small enough to dive to
/// its end quickly.
fn fiber() -> Settings {
    Settings {
        async_stack_size: 256 * 1024,
        ..settings()
    }
}

/// The add guest for async calls, its `extra` import a future that, while `too_deep` is
/// set, goes on the fiber's stack until it is within 64 bytes of the canary and then calls
/// a function whose locals reach into it: a future slightly too deep for its fiber.
fn add_async(too_deep: bool) -> GuestInstance<bool> {
    let add = guest("add", common::ADD, fiber());
    let module = load(add).unwrap();
    let instantiate = GuestInstance::new_async(add, &module, too_deep, |store| {
        let extra = Func::wrap_async(store, |mut caller: Caller<'_, Context<bool>>, (): ()| {
            Box::new(async move {
                let too_deep = *caller.data_mut().host();
                let extra = if too_deep { dive(0) } else { 42 };
                // Suspends once after the dive, so the overflow is found while the call is
                // pending.
                PendingOnce(false).await;
                Ok(extra)
            })
        });
        [extra.into()]
    });
    run(instantiate).0.unwrap()
}

/// Pending once, then ready.
struct PendingOnce(bool);

impl std::future::Future for PendingOnce {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// How deep the first dive went: every later one goes exactly as deep, so that it
/// overflows by exactly as much, whatever the canary shows.
static DIVE_DEPTH: AtomicU32 = AtomicU32::new(0);

/// Goes deeper until the word 64 bytes below its locals is the canary's paint (the first
/// time; then to the same depth).
#[inline(never)]
fn dive(depth: u32) -> u32 {
    let locals = std::hint::black_box([depth; 8]);
    let below = (locals.as_ptr() as usize - 64) & !3;
    // SAFETY: the fiber's stack block goes on below the locals, through the canary.
    let word = unsafe { (below as *const u32).read_volatile() };
    let at_the_end = match DIVE_DEPTH.load(Ordering::Relaxed) {
        0 => word == CANARY_PAINT,
        first => depth == first,
    };
    let deeper = if at_the_end {
        DIVE_DEPTH.store(depth, Ordering::Relaxed);
        overrun()
    } else {
        dive(depth + 1)
    };
    std::hint::black_box(deeper.wrapping_add(locals[depth as usize % 8]))
}

/// 64 bytes of locals, every one written: with less room than that left, they reach the
/// canary.
#[inline(never)]
fn overrun() -> u32 {
    let mut locals = [0u32; 16];
    for (at, word) in locals.iter_mut().enumerate() {
        unsafe { std::ptr::write_volatile(word, at as u32) };
    }
    std::hint::black_box(&locals).iter().sum()
}

#[test]
fn an_import_too_deep_for_its_fiber_ends_the_call_with_a_fiber_overflow_in_one_line_and_the_next_call_runs()
 {
    let _turn = ONE_AT_A_TIME.lock().unwrap();
    let mut add = add_async(true);
    let func = add.func::<(u32, u32), u32>("add_with_extra").unwrap();
    // The overflow is found at the end of the poll that suspended: the call ends there,
    // and dropping it resumes the fiber to unwind on the stack as it is.
    let (result, pending) = run(add.call_async(&func, (1, 2)));
    assert_eq!(pending, 0, "the call ended at the first poll that overflowed");
    let error = result.expect_err("a call whose fiber overflowed returned its result");
    let Some(Fault::FiberStackOverflow { size, by }) = error.fault() else {
        panic!("not a fiber overflow: {error}");
    };
    assert_eq!(size, 256 * 1024);
    assert!(by > 0 && by < FIBER_STACK_CANARY, "{by} bytes");
    assert_eq!(
        error.to_string(),
        format!(
            "guest `add` failed in `add_with_extra`: it overflowed its fiber stack of 262144 bytes by {by} bytes, \
             into the {FIBER_STACK_CANARY} bytes kept below it; raise Builder::async_stack_size in build.rs, or make its \
             imports' futures less deep"
        )
    );

    // The same store's next call runs on the same stack: when its future overflows it by
    // just as much, that call ends with the overflow too, never with its result.
    let (result, _) = run(add.call_async(&func, (1, 2)));
    let again = result.expect_err("a second overflow of the same stack returned its result");
    assert_eq!(again.fault(), Some(Fault::FiberStackOverflow { size, by }), "{again}");
    // And a call whose future fits runs on it.
    *add.host_mut() = false;
    assert_eq!(run(add.call_async(&func, (1, 2))).0.unwrap(), 45);
    // So does another guest's.
    let mut other = add_async(false);
    let func = other.func::<(u32, u32), u32>("add_with_extra").unwrap();
    assert_eq!(run(other.call_async(&func, (1, 2))).0.unwrap(), 45);
}

#[test]
fn a_fiber_stacks_use_is_measured_by_its_paint() {
    let _turn = ONE_AT_A_TIME.lock().unwrap();
    assert_eq!(fiber_stack_peak(), None, "no async call has a stack yet");
    let mut add = add_async(false);
    let func = add.func::<(u32, u32), u32>("add_with_extra").unwrap();
    assert_eq!(run(add.call_async(&func, (1, 2))).0.unwrap(), 45);
    let after_one = fiber_stack_peak().expect("the store keeps its stack");
    assert!(after_one > 0 && after_one < 256 * 1024, "{after_one} bytes");
    *add.host_mut() = true;
    // Diving to the canary uses the whole stack, which is the settings' size.
    let _ = run(add.call_async(&func, (1, 2)));
    assert_eq!(fiber_stack_peak(), Some(256 * 1024));
    drop(add);
    assert_eq!(fiber_stack_peak(), None, "the stack went with its store");
}
