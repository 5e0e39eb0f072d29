//! CoreMark on the Cortex-M4 (or, built for riscv32imac-unknown-none-elf, a RISC-V
//! core): EEMBC's CPU benchmark, as a prebuilt wasm module, run under
//! Wasmtime's Pulley exactly as this firmware ships it, then as the very same wasm under
//! wasmi. `./x speed` builds it from a copy of this firmware whose guest list adds the
//! module (`coremark-minimal.wasm`, from the shared benchmark inputs beside the
//! repository), runs it in QEMU with `-icount shift=0` and turns its lines into a table.
//!
//! The module asks the host for the time (`env.clock_ms`) and returns its score:
//! iterations per second of that clock. The clock here is the board's counter (the MPS2
//! FPGA's at 25 MHz, the RISC-V `virt` board's `mtime` at 10 MHz), which QEMU derives
//! from its virtual clock; under `-icount shift=0` that clock
//! advances 1 ns per executed instruction, so a second of it is 10^9 instructions and
//! the score is iterations per 10^9 instructions, whatever the host is doing.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::{String, ToString};

use demo_firmware::{TICKS_PER_MS, exit, guests, say, ticks};

/// Milliseconds since the first reading, kept in 64 bits across the 32-bit counter's
/// wrap (every 172 s on the MPS2 boards, 429 s on `virt`), which CoreMark's 10 to 20 s between its two readings never reach
/// twice.
struct Clock {
    last: u32,
    ticks: u64,
}

impl Clock {
    fn new() -> Clock {
        Clock { last: ticks(), ticks: 0 }
    }

    fn ms(&mut self) -> u64 {
        let now = ticks();
        self.ticks += u64::from(now.wrapping_sub(self.last));
        self.last = now;
        self.ticks / TICKS_PER_MS
    }
}

impl guests::coremark_minimal::Env for Clock {
    fn clock_ms(&mut self) -> u64 {
        self.ms()
    }
}

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    demo_firmware::init();
    let fuel = guests::SETTINGS.fuel.is_some();
    say!("coremark: fuel {}, score in iterations per 10^9 instructions (-icount shift=0)", if fuel { "on" } else { "off" });
    let mut ok = true;
    // Each score is printed as soon as it is known.
    let runtimes: [(&str, fn(bool) -> Result<f32, String>); 2] = [("pulley", |_| under_pulley()), ("wasmi", under_wasmi)];
    for (runtime, run) in runtimes {
        match run(fuel) {
            // CoreMark reports a score below 1 when its own self-check failed.
            Ok(score) if score >= 1.0 => say!("{runtime}: score {score:.1}"),
            Ok(score) => {
                ok = false;
                say!("{runtime}: score {score:.3}: CoreMark's self-check failed");
            }
            Err(error) => {
                ok = false;
                say!("error: {runtime}: {error}");
            }
        }
    }
    exit(ok)
}

fn under_pulley() -> Result<f32, String> {
    let guest = &guests::coremark_minimal::GUEST;
    let engine = wasm_embed::engine(guest.settings()).map_err(|e| e.to_string())?;
    let module = guest.load(&engine).map_err(|e| e.to_string())?;
    let mut coremark = guests::coremark_minimal::CoremarkMinimal::new(&module, Clock::new()).map_err(|e| e.to_string())?;
    // The firmware bounds every call with fuel; CoreMark keeps the checks (they are what
    // ships) but runs without a bound.
    if guest.settings().fuel.is_some() {
        coremark.set_fuel_per_call(None).map_err(|e| e.to_string())?;
    }
    coremark.run().map_err(|e| e.to_string())
}

fn under_wasmi(fuel: bool) -> Result<f32, String> {
    fn fail(error: impl core::fmt::Display) -> String {
        error.to_string()
    }
    let mut config = wasmi::Config::default();
    // As Pulley's firmware does: when its calls are metered, so are wasmi's.
    config.consume_fuel(fuel);
    let engine = wasmi::Engine::new(&config);
    let module = wasmi::Module::new(&engine, guests::coremark_minimal::WASM).map_err(fail)?;
    let mut store = wasmi::Store::new(&engine, Clock::new());
    if fuel {
        store.set_fuel(u64::MAX).map_err(fail)?;
    }
    let mut linker = wasmi::Linker::new(&engine);
    linker
        .func_wrap("env", "clock_ms", |mut caller: wasmi::Caller<'_, Clock>| caller.data_mut().ms() as i64)
        .map_err(fail)?;
    let instance = linker.instantiate_and_start(&mut store, &module).map_err(fail)?;
    let run = instance.get_typed_func::<(), f32>(&store, "run").map_err(fail)?;
    run.call(&mut store, ()).map_err(fail)
}
