//! Calling a guest: each way a call can go wrong is a fault of its own kind with one
//! line naming the guest, the function and the fix, and the guest's store goes on
//! working; fuel bounds each call; a guest's memory is reached only bounds-checked.

mod common;

use common::{guest, load, settings};
use wasm_embed::__private::{Context, GuestInstance};
use wasm_embed::{Error, Fault, Guest, Profile, Settings};
use wasmtime::{Caller, Extern, Func, Store};

/// `guest` instantiated with no imports and no host.
fn alone(guest: &'static Guest) -> GuestInstance<()> {
    GuestInstance::new(guest, &load(guest).unwrap(), (), |_| -> [Extern; 0] { [] }).unwrap()
}

/// Calls `export` twice: both calls must fail the same way (the store survives a trap).
fn fails<P: wasmtime::WasmParams + Copy, R: wasmtime::WasmResults>(
    instance: &mut GuestInstance<()>,
    export: &'static str,
    params: P,
) -> Error {
    let func = instance.func::<P, R>(export).unwrap();
    let first = instance.call(&func, params).err().expect("the call must fail");
    let second = instance.call(&func, params).err().expect("the call must fail again");
    assert_eq!(first.to_string(), second.to_string());
    assert_eq!(first.to_string().lines().count(), 1, "{first}");
    first
}

const SPIN: &str = r#"(module (func (export "spin") (result i32) (loop $forever (br $forever)) (i32.const 0)))"#;

const MISBEHAVING: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "read_far") (result i32) (i32.load (i32.const 1000000)))
  (func (export "checked_divide") (param i32 i32) (result i32)
    (if (i32.eqz (local.get 1)) (then unreachable))
    (i32.div_u (local.get 0) (local.get 1)))
  (func $triangle (export "triangle") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else (i32.add (local.get 0) (call $triangle (i32.sub (local.get 0) (i32.const 1)))))))
  (func (export "grow") (param i32) (result i32)
    ;; A Rust guest's allocator panics when memory.grow gives it nothing.
    (if (i32.eq (memory.grow (local.get 0)) (i32.const -1)) (then unreachable))
    (i32.const 1)))"#;

#[test]
fn each_misbehaving_guest_fails_with_its_own_fault_in_one_line_and_the_store_survives() {
    let fuel = Settings { fuel: Some(100_000), ..settings() };
    let error = fails::<(), u32>(&mut alone(guest("spin", SPIN, fuel)), "spin", ());
    assert_eq!(error.fault(), Some(Fault::OutOfFuel));
    assert_eq!(
        error.to_string(),
        "guest `spin` ran out of fuel in `spin`: it probably loops forever; fix the guest, \
         or give calls more fuel (Builder::fuel in build.rs)"
    );

    let mut guest = alone(guest("misbehaving", MISBEHAVING, fuel));
    let error = fails::<(), u32>(&mut guest, "read_far", ());
    assert_eq!(error.fault(), Some(Fault::OutOfBounds));
    assert_eq!(
        error.to_string(),
        "guest `misbehaving` trapped in `read_far`: out-of-bounds memory access, a bug in the guest"
    );

    let error = fails::<(u32, u32), u32>(&mut guest, "checked_divide", (1, 0));
    assert_eq!(error.fault(), Some(Fault::Unreachable));
    assert_eq!(
        error.to_string(),
        "guest `misbehaving` trapped in `checked_divide`: it panicked or reached `unreachable`, a bug in the guest"
    );
    let divide = guest.func::<(u32, u32), u32>("checked_divide").unwrap();
    assert_eq!(guest.call(&divide, (12, 4)).unwrap(), 3);

    let error = fails::<u32, u32>(&mut guest, "triangle", 100_000);
    assert_eq!(error.fault(), Some(Fault::StackOverflow));
    assert_eq!(
        error.to_string(),
        "guest `misbehaving` trapped in `triangle`: stack overflow, its calls went deeper than the Pulley stack; \
         bound its recursion, or raise Builder::max_wasm_stack in build.rs"
    );
    let triangle = guest.func::<u32, u32>("triangle").unwrap();
    assert_eq!(guest.call(&triangle, 10).unwrap(), 55);

    let error = fails::<u32, u32>(&mut guest, "grow", 1);
    assert_eq!(error.fault(), Some(Fault::MemoryLimit { size: 65536, requested: 131072 }));
    assert_eq!(
        error.to_string(),
        "guest `misbehaving` trapped in `grow` after memory.grow from 65536 to 131072 bytes was refused: \
         a guest's memory is fixed at build time; make it allocate statically"
    );
    // A refused growth explains only the trap that follows it.
    assert_eq!(fails::<(u32, u32), u32>(&mut guest, "checked_divide", (1, 0)).fault(), Some(Fault::Unreachable));
}

#[test]
fn fuel_bounds_each_call_and_the_firmware_can_change_the_bound() {
    let mut guest = alone(guest("misbehaving", MISBEHAVING, Settings { fuel: Some(100_000), ..settings() }));
    let triangle = guest.func::<u32, u32>("triangle").unwrap();
    // Each call gets the whole bound: a thousand calls of 40 recursions each.
    for _ in 0..1000 {
        assert_eq!(guest.call(&triangle, 40).unwrap(), 820);
    }
    guest.set_fuel_per_call(Some(10)).unwrap();
    assert_eq!(guest.call(&triangle, 10).unwrap_err().fault(), Some(Fault::OutOfFuel));
    guest.set_fuel_per_call(None).unwrap();
    assert_eq!(guest.call(&triangle, 10).unwrap(), 55);

    // A build without fuel has no checks to set.
    let mut unfuelled = alone(common::guest("unfuelled", MISBEHAVING, settings()));
    assert_eq!(
        unfuelled.set_fuel_per_call(Some(10)).unwrap_err().to_string(),
        "guest `unfuelled`: fuel is off in this build; turn it on with Builder::fuel in build.rs"
    );
}

/// A guest that sums `check(i)` over `0..n`, calling its import in a loop.
const CHECKED_SUM: &str = r#"(module
  (import "host" "check" (func $check (param i32) (result i32)))
  (func (export "sum_checked") (param $n i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $sum (i32.add (local.get $sum) (call $check (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $sum)))"#;

/// The host of [`CHECKED_SUM`]: it refuses values from `limit` on and counts its calls.
struct Checker {
    limit: u32,
    calls: u32,
}

#[derive(Debug)]
struct OverLimit(u32);

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sensor value {} is over the limit", self.0)
    }
}

impl std::error::Error for OverLimit {}

#[test]
fn a_failing_host_function_called_in_a_loop_fails_the_call_and_the_store_stays_usable() {
    let checked = guest("checked", CHECKED_SUM, settings());
    let module = load(checked).unwrap();
    let host = Checker { limit: 1000, calls: 0 };
    let mut instance = GuestInstance::new(checked, &module, host, |store: &mut Store<Context<Checker>>| {
        let check = Func::wrap(store, |mut caller: Caller<'_, Context<Checker>>, value: u32| {
            let host = caller.data_mut().host();
            host.calls += 1;
            if value >= host.limit {
                return Err(wasmtime::Error::new(OverLimit(value)));
            }
            Ok(value)
        });
        [check.into()]
    })
    .unwrap();
    let sum = instance.func::<u32, u32>("sum_checked").unwrap();
    assert_eq!(instance.call(&sum, 100).unwrap(), 4950);
    assert_eq!(instance.host().calls, 100);

    instance.host_mut().limit = 50;
    for round in 0..1000 {
        let error = instance.call(&sum, 100).expect_err("the import fails at 50");
        assert_eq!(error.fault(), Some(Fault::Import));
        assert_eq!(
            error.to_string(),
            "guest `checked` failed in `sum_checked`: its import failed: sensor value 50 is over the limit"
        );
        // The guest stopped at the first failure: 51 calls each round.
        assert_eq!(instance.host().calls, 100 + 51 * (round + 1));
    }
    instance.host_mut().limit = 1000;
    assert_eq!(instance.call(&sum, 100).unwrap(), 4950);
    assert_eq!(instance.call(&sum, 10).unwrap(), 45);
}

/// A guest that logs text it keeps in its memory, and can be told to pass a bad pointer.
const LOGGER: &str = r#"(module
  (import "host" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello")
  (func (export "hello") (call $log (i32.const 16) (i32.const 5)))
  (func (export "log_at") (param i32 i32) (call $log (local.get 0) (local.get 1)))
  (func (export "input") (result i32) (i32.const 256))
  (func (export "sum_input") (param i32) (result i32) (local $i i32) (local $sum i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get 0)))
      (local.set $sum (i32.add (local.get $sum) (i32.load8_u offset=256 (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $sum)))"#;

fn logger() -> GuestInstance<Vec<String>> {
    let logger = guest("logger", LOGGER, settings());
    GuestInstance::new(logger, &load(logger).unwrap(), Vec::new(), |store| {
        let log = Func::wrap(store, |mut caller: Caller<'_, Context<Vec<String>>>, ptr: u32, len: u32| {
            let (memory, lines) = wasm_embed::__private::memory_and_host(&mut caller);
            let text = memory.read_str(ptr, len).map_err(wasmtime::Error::new)?;
            lines.push(text.to_owned());
            Ok(())
        });
        [log.into()]
    })
    .unwrap()
}

#[test]
fn a_guests_memory_is_reached_only_inside_its_bounds() {
    let mut logger = logger();
    let hello = logger.func::<(), ()>("hello").unwrap();
    logger.call(&hello, ()).unwrap();
    assert_eq!(logger.host(), &["hello"]);

    // A bad pointer from the guest fails its call, never reads the firmware's memory.
    let log_at = logger.func::<(u32, u32), ()>("log_at").unwrap();
    let error = logger.call(&log_at, (0xffff_ff00, 256)).unwrap_err();
    assert_eq!(error.fault(), Some(Fault::Import));
    assert_eq!(
        error.to_string(),
        "guest `logger` failed in `log_at`: its import failed: guest `logger` passed a buffer of 256 bytes \
         at 0xffffff00, outside its 65536-byte memory; the guest must pass a pointer into its own memory"
    );
    let error = logger.call(&log_at, (65530, 7)).unwrap_err();
    assert!(error.to_string().contains("a buffer of 7 bytes at 0xfffa, outside its 65536-byte memory"), "{error}");
    logger.memory().write(300u32, &[0xff]).unwrap();
    let error = logger.call(&log_at, (300, 1)).unwrap_err();
    assert!(error.to_string().ends_with("passed 1 bytes at 0x12c as text, but they are not UTF-8; the guest must pass UTF-8"), "{error}");

    // The firmware writes a guest's input where the guest says, as a u32 or an i32.
    let input = logger.func::<(), i32>("input").unwrap();
    let at = logger.call(&input, ()).unwrap();
    logger.memory().write(at, &[1, 2, 3, 250]).unwrap();
    assert_eq!(logger.memory().read(at as u32, 4u32).unwrap(), [1, 2, 3, 250]);
    let sum = logger.func::<u32, u32>("sum_input").unwrap();
    assert_eq!(logger.call(&sum, 4).unwrap(), 256);
    assert_eq!(logger.memory().len(), 65536);
    let error = logger.memory().write(65535u32, &[0, 0]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "guest `logger` passed a buffer of 2 bytes at 0xffff, outside its 65536-byte memory; \
         the guest must pass a pointer into its own memory"
    );
    // The store is still usable.
    logger.call(&hello, ()).unwrap();
    assert_eq!(logger.host().len(), 2);
}

#[test]
fn the_debug_profile_keeps_a_trap_one_line_and_gives_the_guests_stack_apart() {
    let debug = Settings { profile: Profile::Debug, ..settings() };
    let wat = r#"(module $panicky
      (func $inner (export "checked_divide") (param i32 i32) (result i32)
        (if (i32.eqz (local.get 1)) (then unreachable))
        (i32.div_u (local.get 0) (local.get 1))))"#;
    let mut guest = alone(guest("panicky", wat, debug));
    let error = fails::<(u32, u32), u32>(&mut guest, "checked_divide", (1, 0));
    assert_eq!(
        error.to_string(),
        "guest `panicky` trapped in `checked_divide`: it panicked or reached `unreachable`, a bug in the guest"
    );
    let backtrace = error.backtrace().expect("the debug profile collects a backtrace").to_string();
    assert!(backtrace.contains("inner"), "{backtrace}");
    // The size profile collects none.
    let mut size = alone(common::guest("size", wat, settings()));
    assert!(fails::<(u32, u32), u32>(&mut size, "checked_divide", (1, 0)).backtrace().is_none());
}
