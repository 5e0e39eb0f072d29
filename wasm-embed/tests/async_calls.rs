//! Async calls (the `async` feature): a call is a future that yields every so much fuel
//! and still ends in "out of fuel" at its bound; imports await; what a yielding call
//! computes equals what a blocking call does; each misuse is one line.

mod common;

use std::future::Future;
use std::task::{Context as TaskContext, Poll};

use common::{guest, load, run, settings};
use wasm_embed::__private::{Context, GuestInstance};
use wasm_embed::{Error, Fault, Guest, Settings};
use wasmtime::{Caller, Extern, Func};

/// The device's settings, with a fiber deep enough for this host's unoptimized frames
/// (4 KiB, the device's default, overflows here).
fn host_fiber() -> Settings {
    Settings {
        async_stack_size: 1 << 20,
        ..settings()
    }
}

fn yielding(fuel: u64, interval: u64) -> Settings {
    Settings {
        fuel: Some(fuel),
        fuel_yield_interval: Some(interval),
        ..host_fiber()
    }
}

fn alone_async(guest: &'static Guest) -> GuestInstance<()> {
    let module = load(guest).unwrap();
    run(GuestInstance::new_async(guest, &module, (), |_| -> [Extern; 0] { [] })).0.unwrap()
}

const SPIN: &str = r#"(module (func (export "spin") (result i32) (loop $forever (br $forever)) (i32.const 0)))"#;

/// f32 and f64 work in a loop long enough to yield many times: the sum of
/// 1/(i+1) in f64 and of sqrt(i) in f32, for i below `n`, both folded into an i64.
const FLOATS: &str = r#"(module
  (func (export "floats") (param $n i32) (result i64)
    (local $i i32) (local $harmonic f64) (local $roots f32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $harmonic (f64.add (local.get $harmonic)
        (f64.div (f64.const 1) (f64.convert_i32_u (i32.add (local.get $i) (i32.const 1))))))
      (local.set $roots (f32.add (local.get $roots) (f32.sqrt (f32.convert_i32_u (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i64.add
      (i64.trunc_f64_s (f64.mul (local.get $harmonic) (f64.const 1e9)))
      (i64.trunc_f32_s (local.get $roots)))))"#;

#[test]
fn a_yielding_call_gives_control_back_every_interval_and_still_runs_out_of_fuel() {
    let spin = guest("spin", SPIN, yielding(100_000, 1_000));
    let mut instance = alone_async(spin);
    let func = instance.func::<(), u32>("spin").unwrap();
    let (result, pending) = run(instance.call_async(&func, ()));
    let error = result.unwrap_err();
    assert_eq!(error.fault(), Some(Fault::OutOfFuel));
    assert_eq!(
        error.to_string(),
        "guest `spin` ran out of fuel in `spin`: it probably loops forever; fix the guest, \
         or give calls more fuel (Builder::fuel in build.rs)"
    );
    // 100,000 units in slices of 1,000: the call gave control back once before it
    // started (so that no poll runs the end of one call and the start of the next), and
    // before each slice after the first.
    assert_eq!(pending, 100);

    // Each call gets its bound afresh.
    let (result, pending) = run(instance.call_async(&func, ()));
    assert_eq!(result.unwrap_err().fault(), Some(Fault::OutOfFuel));
    assert_eq!(pending, 100);
}

#[test]
fn floats_computed_across_yields_equal_the_blocking_result() {
    let blocking_guest = guest("floats", FLOATS, Settings { fuel: Some(u64::MAX), ..settings() });
    let module = load(blocking_guest).unwrap();
    let mut blocking = GuestInstance::new(blocking_guest, &module, (), |_| -> [Extern; 0] { [] }).unwrap();
    let func = blocking.func::<u32, i64>("floats").unwrap();
    let expected = blocking.call(&func, 20_000).unwrap();
    let (mut harmonic, mut roots) = (0f64, 0f32);
    for i in 0..20_000u32 {
        harmonic += 1.0 / f64::from(i + 1);
        roots += (i as f32).sqrt();
    }
    assert_eq!(expected, (harmonic * 1e9) as i64 + roots as i64, "the sums as Rust computes them");

    let mut yielding = alone_async(guest("floats", FLOATS, yielding(u64::MAX, 500)));
    let func = yielding.func::<u32, i64>("floats").unwrap();
    let (result, pending) = run(yielding.call_async(&func, 20_000));
    assert_eq!(result.unwrap(), expected);
    assert!(pending > 500, "{pending} yields");
}

/// The add guest's host, for async calls: `extra` awaits a value that is ready only
/// after some polls (a timer, a channel), or fails.
struct Waiting {
    polls_before_ready: usize,
    extra: Result<u32, &'static str>,
}

/// A future that is pending `n` times and then ready: what awaiting a timer looks like to
/// the guest's call.
struct After(usize);

impl Future for After {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn add_async(settings: Settings, host: Waiting) -> GuestInstance<Waiting> {
    let add = guest("add", common::ADD, settings);
    let module = load(add).unwrap();
    let instantiate = GuestInstance::new_async(add, &module, host, |store| {
        let extra = Func::wrap_async(store, |mut caller: Caller<'_, Context<Waiting>>, (): ()| {
            Box::new(async move {
                let host = caller.data_mut().host();
                After(host.polls_before_ready).await;
                host.extra.map_err(|reason| wasmtime::Error::new(Error::ImportFailed { reason }))
            })
        });
        [extra.into()]
    });
    run(instantiate).0.unwrap()
}

#[test]
fn an_import_awaits_while_the_guest_waits_and_its_failure_is_an_import_fault() {
    let host = Waiting {
        polls_before_ready: 3,
        extra: Ok(42),
    };
    let mut add = add_async(host_fiber(), host);
    let func = add.func::<(u32, u32), u32>("add_with_extra").unwrap();
    let (sum, pending) = run(add.call_async(&func, (1, 2)));
    assert_eq!(sum.unwrap(), 45);
    assert_eq!(pending, 3);

    add.host_mut().extra = Err("the sensor channel is closed");
    let (error, _) = run(add.call_async(&func, (1, 2)));
    let error = error.unwrap_err();
    assert_eq!(error.fault(), Some(Fault::Import));
    assert_eq!(
        error.to_string(),
        "guest `add` failed in `add_with_extra`: its import failed: the host could not serve it: \
         the sensor channel is closed"
    );
    quoted_in_docs(&error);
    // The store goes on working.
    add.host_mut().extra = Ok(1);
    assert_eq!(run(add.call_async(&func, (1, 2))).0.unwrap(), 4);
}

#[test]
fn blocking_and_async_calls_each_refuse_the_other_kind_of_instance_in_one_line() {
    let host = Waiting {
        polls_before_ready: 0,
        extra: Ok(42),
    };
    let mut add = add_async(yielding(10_000, 100), host);
    let func = add.func::<(u32, u32), u32>("add_with_extra").unwrap();
    let error = add.call(&func, (1, 2)).unwrap_err();
    assert!(matches!(error, Error::NeedsAwait { .. }));
    assert_eq!(
        error.to_string(),
        "guest `add` was instantiated for async calls (new_async), so its export `add_with_extra` cannot \
         be called blocking; await the export's `_async` method, or instantiate it with `new`"
    );
    quoted_in_docs(&error);

    let spin = guest("spin", SPIN, yielding(10_000, 100));
    let module = load(spin).unwrap();
    let mut blocking = GuestInstance::new(spin, &module, (), |_| -> [Extern; 0] { [] }).unwrap();
    let func = blocking.func::<(), u32>("spin").unwrap();
    let (error, pending) = run(blocking.call_async(&func, ()));
    let error = error.unwrap_err();
    assert_eq!(pending, 0);
    assert!(matches!(error, Error::NotAsync { .. }));
    assert_eq!(
        error.to_string(),
        "guest `spin` was instantiated for blocking calls (new), so its export `spin` cannot be awaited; \
         instantiate it with `new_async`, or call the export's blocking method"
    );
    quoted_in_docs(&error);
}

/// docs/async.md quotes `error` as the code prints it, a line of its own.
fn quoted_in_docs(error: &Error) {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/async.md")).unwrap();
    let message = error.to_string();
    assert!(page.lines().any(|line| line == message), "docs/async.md does not quote: {message}");
}

#[test]
fn the_engine_makes_fibers_of_the_settings_size_not_wasmtimes_2_mib() {
    let settings = Settings {
        async_stack_size: 16 * 1024,
        ..settings()
    };
    let engine = wasm_embed::engine(&settings).unwrap();
    assert_eq!(engine.get_async_stack_size(), 16 * 1024);
    // Never below the Pulley stack, which Wasmtime refuses.
    let deep = Settings {
        max_wasm_stack: 64 * 1024,
        ..settings
    };
    assert_eq!(wasm_embed::engine(&deep).unwrap().get_async_stack_size(), 64 * 1024);
    assert_eq!(wasm_embed::engine(&Settings::new(settings.target)).unwrap().get_async_stack_size(), 4096);
}
