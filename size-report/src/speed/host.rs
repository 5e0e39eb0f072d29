//! The speed kernels on the machine running the report: natively, and the speed guest's
//! wasm under Pulley, Cranelift and wasmi.

use std::time::Instant;

use speed_kernels::{EXPECTED, SELF_CHECK_ITERATIONS, SELF_CHECK_SEED, Workspace};
use wasm_embed::{Settings, Target};

/// Iterations per call: the firmware's.
pub const ITERATIONS: u32 = 200;
/// Timed calls per runtime; the median is reported.
pub const CALLS: usize = 11;

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Nanoseconds per iteration for each runtime, after checking that each computes
/// `EXPECTED`.
pub fn measure(wasm: &[u8]) -> Result<Vec<(&'static str, f64)>, String> {
    let mut workspace = Workspace::new();
    let native = time("native", |seed, iterations| {
        Ok(speed_kernels::run(&mut workspace, std::hint::black_box(seed), std::hint::black_box(iterations)))
    })?;
    let pulley = {
        // The firmware's settings, for a 64-bit host; fuel on, as the demo ships it.
        let settings = Settings { fuel: Some(u64::MAX), ..Settings::new(Target::Pulley64) };
        let mut config = settings.config();
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        wasmtime_run("pulley", config, wasm, true)?
    };
    let cranelift = {
        let mut config = wasmtime::Config::new();
        config.wasm_custom_page_sizes(true).cranelift_opt_level(wasmtime::OptLevel::Speed);
        wasmtime_run("cranelift", config, wasm, false)?
    };
    let wasmi = {
        let mut config = wasmi::Config::default();
        config.wasm_custom_page_sizes(true);
        let engine = wasmi::Engine::new(&config);
        let module = wasmi::Module::new(&engine, wasm).map_err(|e| format!("wasmi: {e}"))?;
        let mut store = wasmi::Store::new(&engine, ());
        let instance = wasmi::Linker::new(&engine)
            .instantiate_and_start(&mut store, &module)
            .map_err(|e| format!("wasmi: {e}"))?;
        let run = instance.get_typed_func::<(u32, u32), u32>(&store, "run").map_err(|e| format!("wasmi: {e}"))?;
        time("wasmi", |seed, iterations| run.call(&mut store, (seed, iterations)).map_err(|e| format!("wasmi: {e}")))?
    };
    Ok(vec![("native", native), ("pulley", pulley), ("cranelift", cranelift), ("wasmi", wasmi)])
}

fn wasmtime_run(name: &'static str, config: wasmtime::Config, wasm: &[u8], fuel: bool) -> Result<f64, String> {
    let fail = |e: wasmtime::Error| format!("{name}: {e:?}");
    let engine = wasmtime::Engine::new(&config).map_err(fail)?;
    let module = wasmtime::Module::new(&engine, wasm).map_err(fail)?;
    let mut store = wasmtime::Store::new(&engine, ());
    if fuel {
        store.set_fuel(u64::MAX).map_err(fail)?;
    }
    let instance = wasmtime::Instance::new(&mut store, &module, &[]).map_err(fail)?;
    let run = instance.get_typed_func::<(u32, u32), u32>(&mut store, "run").map_err(fail)?;
    time(name, |seed, iterations| run.call(&mut store, (seed, iterations)).map_err(fail))
}

/// Checks `run` against the self-check, then returns the median nanoseconds per
/// iteration over `CALLS` timed calls.
fn time(name: &str, mut run: impl FnMut(u32, u32) -> Result<u32, String>) -> Result<f64, String> {
    let check = run(SELF_CHECK_SEED, SELF_CHECK_ITERATIONS)?;
    if check != EXPECTED {
        return Err(format!("{name} computed {check:#06x}, not the expected {EXPECTED:#06x}"));
    }
    let mut times = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let start = Instant::now();
        run(SELF_CHECK_SEED, ITERATIONS)?;
        times.push(start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS));
    }
    times.sort_by(f64::total_cmp);
    Ok(times[CALLS / 2])
}
