//! The speed benchmark on the Cortex-M4: the same kernels (`guests/speed-kernels`) run
//! natively, as the `speed` guest under Wasmtime's Pulley exactly as this firmware ships
//! it, and as the same wasm under wasmi. `./x speed` runs it in QEMU with
//! `-icount shift=0` and turns its lines into a table.
//!
//! Time is read from the MPS2 FPGA's COUNTER register, which QEMU derives from its
//! virtual clock at 25 MHz. Under `-icount shift=0` that clock advances exactly 1 ns per
//! executed instruction, so one tick is 40 instructions, whatever the host is doing.
#![no_std]
#![no_main]

extern crate alloc;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use demo_firmware::{COUNTER, exit, guests};
use speed_kernels::{EXPECTED, SELF_CHECK_ITERATIONS, SELF_CHECK_SEED, Workspace};

/// Iterations of the timed run: long enough that the 40-instruction tick is noise.
const ITERATIONS: u32 = 200;

/// The board's counter ticks at 25 MHz: under `-icount shift=0`, 40 instructions a tick.
const INSTRUCTIONS_PER_TICK: u64 = 40;

fn instructions<T>(work: impl FnOnce() -> T) -> (T, u64) {
    // SAFETY: COUNTER is a read-only device register on this board.
    let start = unsafe { COUNTER.read_volatile() };
    let result = work();
    let end = unsafe { COUNTER.read_volatile() };
    (result, u64::from(end.wrapping_sub(start)) * INSTRUCTIONS_PER_TICK)
}

/// One way of running the kernels: loaded (untimed setup excluded), then the self-check,
/// then the timed run.
struct Row {
    name: &'static str,
    load: u64,
    check: u32,
    result: u32,
    run: u64,
}

#[entry]
fn main() -> ! {
    demo_firmware::init();
    hprintln!("speed: {ITERATIONS} iterations, seed {SELF_CHECK_SEED:#x}, instructions from -icount shift=0");
    let rows = [native(), pulley(), wasmi()];
    let mut ok = true;
    let native_result = rows[0].as_ref().map_or(0, |row| row.result);
    for row in &rows {
        match row {
            Ok(row) => {
                let check = if row.check == EXPECTED && row.result == native_result { "ok" } else { "FAILED" };
                ok &= check == "ok";
                hprintln!(
                    "{}: load {} instructions, run {} instructions, result {:#06x}, self-check {}",
                    row.name,
                    row.load,
                    row.run,
                    row.result,
                    check
                );
            }
            Err(error) => {
                ok = false;
                hprintln!("error: {error}");
            }
        }
    }
    exit(ok)
}

fn native() -> Result<Row, alloc::string::String> {
    let mut workspace = Workspace::new();
    // black_box: the inputs are not constants to the optimizer, as they are not to a guest.
    let check = speed_kernels::run(&mut workspace, core::hint::black_box(SELF_CHECK_SEED), SELF_CHECK_ITERATIONS);
    let (result, run) = instructions(|| {
        speed_kernels::run(&mut workspace, core::hint::black_box(SELF_CHECK_SEED), core::hint::black_box(ITERATIONS))
    });
    Ok(Row {
        name: "native",
        load: 0,
        check,
        result,
        run,
    })
}

fn pulley() -> Result<Row, alloc::string::String> {
    use alloc::string::ToString;
    let guest = &guests::speed::GUEST;
    let (loaded, load) = instructions(|| -> Result<_, wasm_embed::Error> {
        let engine = wasm_embed::engine(guest.settings())?;
        let module = guest.load(&engine)?;
        guests::speed::Speed::new(&module, ())
    });
    let mut speed = loaded.map_err(|error| error.to_string())?;
    // The demo bounds every call with fuel; the benchmark keeps the checks (they are what
    // ships) but lifts the bound.
    if guest.settings().fuel.is_some() {
        speed.set_fuel_per_call(None).map_err(|error| error.to_string())?;
    }
    let check = speed.run(SELF_CHECK_SEED, SELF_CHECK_ITERATIONS).map_err(|error| error.to_string())?;
    let (result, run) = instructions(|| speed.run(SELF_CHECK_SEED, ITERATIONS));
    Ok(Row {
        name: "pulley",
        load,
        check,
        result: result.map_err(|error| error.to_string())?,
        run,
    })
}

fn wasmi() -> Result<Row, alloc::string::String> {
    use alloc::format;
    let (loaded, load) = instructions(|| -> Result<_, wasmi::Error> {
        let mut config = wasmi::Config::default();
        // The pipeline gives the guest 1-byte pages.
        config.wasm_custom_page_sizes(true);
        // As Pulley's firmware does: when its calls are metered, so are wasmi's, with
        // fuel enough never to run out.
        let fuel = guests::SETTINGS.fuel.is_some();
        config.consume_fuel(fuel);
        let engine = wasmi::Engine::new(&config);
        let module = wasmi::Module::new(&engine, guests::speed::WASM)?;
        let mut store = wasmi::Store::new(&engine, ());
        if fuel {
            store.set_fuel(u64::MAX)?;
        }
        let instance = wasmi::Linker::new(&engine).instantiate_and_start(&mut store, &module)?;
        let run = instance.get_typed_func::<(u32, u32), u32>(&store, "run")?;
        Ok((store, run))
    });
    let (mut store, run_func) = loaded.map_err(|error| format!("wasmi: {error}"))?;
    let check = run_func
        .call(&mut store, (SELF_CHECK_SEED, SELF_CHECK_ITERATIONS))
        .map_err(|error| format!("wasmi: {error}"))?;
    let (result, run) = instructions(|| run_func.call(&mut store, (SELF_CHECK_SEED, ITERATIONS)));
    Ok(Row {
        name: "wasmi",
        load,
        check,
        result: result.map_err(|error| format!("wasmi: {error}"))?,
        run,
    })
}
