//! The one definition of the Wasmtime configuration. The precompiler (`compile` feature)
//! and the firmware both call [`Settings::config`]; every setting Wasmtime checks when it
//! loads a `.cwasm` (`check_compatible` in its `engine/serialization.rs`) is set here.

use core::num::NonZeroUsize;

use wasmtime::{Config, Engine, WasmFeatures};

use crate::Error;

/// Frames of a trap's backtrace in the debug profile (Wasmtime's default).
const BACKTRACE_FRAMES: NonZeroUsize = NonZeroUsize::new(20).unwrap();

/// The code format a `.cwasm` holds. Cortex-M has no Cranelift back end, so devices run
/// Pulley, Wasmtime's portable interpreter, at the device's pointer width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// 32-bit little-endian devices (Cortex-M, RISC-V 32).
    Pulley32,
    /// 64-bit little-endian machines (a development host).
    Pulley64,
}

impl Target {
    /// The target triple Wasmtime knows this format by.
    pub const fn triple(self) -> &'static str {
        match self {
            Target::Pulley32 => "pulley32",
            Target::Pulley64 => "pulley64",
        }
    }

    /// The format for a machine with this pointer width, if Pulley supports it.
    pub const fn for_pointer_width(bits: u32) -> Option<Target> {
        match bits {
            32 => Some(Target::Pulley32),
            64 => Some(Target::Pulley64),
            _ => None,
        }
    }

    /// The format for the machine this crate is being compiled for.
    pub const fn this_machine() -> Target {
        #[cfg(target_pointer_width = "64")]
        {
            Target::Pulley64
        }
        #[cfg(not(target_pointer_width = "64"))]
        {
            Target::Pulley32
        }
    }
}

/// What a build optimizes for. Both sides take it from the emitted `guests::SETTINGS`, so
/// switching it in `build.rs` switches the firmware's engine with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// The smallest flash and RAM: no names, address maps or debug symbols.
    Size,
    /// Keeps the guest's function names, Wasm address maps and debug symbols, so a trap
    /// names the function and Wasm offset it happened at. A larger `.cwasm`.
    Debug,
}

/// What the precompiler and the firmware must agree on. `wasm-embed-build` emits this as
/// `guests::SETTINGS`, so the firmware builds its engine from the same values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    /// The code format of the `.cwasm` files.
    pub target: Target,
    /// Size or debuggability.
    pub profile: Profile,
    /// Bytes of Pulley stack a guest may use; a deeper call traps with "call stack
    /// exhausted". Pulley allocates it from the heap up front, so Wasmtime's default
    /// (512 KiB, twice the RAM of an nRF52840) is cut to 4 KiB unless a guest needs more.
    pub max_wasm_stack: usize,
    /// Fuel each call of a guest export may burn before it traps with "out of fuel":
    /// the only way to stop a guest that loops forever on a core without a timer-driven
    /// epoch. Wasmtime's default costs: one unit per Wasm instruction, but for `nop`,
    /// `drop` and the block structure (`block`, `loop`, `else`, `end`, `return`), and one
    /// per function entered. `None` compiles no fuel checks, which keeps code smaller and
    /// faster.
    pub fuel: Option<u64>,
    /// With the `async` feature: an async call gives the executor back control after
    /// every this many units of its fuel, and goes on where it stopped when polled again
    /// (a time slice: `./x size` gives the longest slice of 2,000 units on each core).
    /// The call still ends in "out of fuel" at [`fuel`](Self::fuel). `None`: async calls
    /// run to the end in one poll but for the imports they await. Needs fuel.
    pub fuel_yield_interval: Option<u64>,
    /// With the `async` feature: bytes of native stack an async call runs on (its fiber),
    /// allocated from the heap at the guest's first async call and kept with its handle.
    /// It holds Wasmtime's frames, Pulley's interpreter, the futures of the imports the
    /// guest awaits and the frames of interrupts that arrive meanwhile, not the guest's
    /// own stack (that is the Pulley stack,
    /// [`max_wasm_stack`](Self::max_wasm_stack)). Wasmtime's default is 2 MiB; this one is
    /// 4 KiB, the smallest fiber Wasmtime makes (`Builder::async_stack_size` in build.rs).
    /// The engine's is never below `max_wasm_stack`, which Wasmtime requires.
    pub async_stack_size: usize,
}

impl Settings {
    /// Settings for a device of the given code format.
    pub const fn new(target: Target) -> Settings {
        Settings {
            target,
            profile: Profile::Size,
            max_wasm_stack: 4 * 1024,
            fuel: None,
            fuel_yield_interval: None,
            async_stack_size: 4 * 1024,
        }
    }

    /// The Wasmtime configuration both sides use.
    pub fn config(&self) -> Config {
        let mut config = Config::new();
        // Pulley needs no executable memory, so the same code runs on any host; the
        // triple is a static name that Wasmtime always parses.
        config
            .target(self.target.triple())
            .expect("Pulley triples are always known to Wasmtime");
        // No virtual memory on a microcontroller: linear memory is a plain heap
        // allocation of exactly the size the guest declares, never reserved ahead,
        // never guarded, never moved, and bounds are checked in code, not by signals.
        config
            .memory_reservation(0)
            .memory_guard_size(0)
            .memory_reservation_for_growth(0)
            .memory_may_move(false)
            .guard_before_linear_memory(false)
            .signals_based_traps(false)
            // Copy-on-write images and lazy tables only make the .cwasm (and flash)
            // larger on a device that cannot use them.
            .memory_init_cow(false)
            .table_lazy_init(false)
            .max_wasm_stack(self.max_wasm_stack)
            .consume_fuel(self.fuel.is_some());
        let debug = self.profile == Profile::Debug;
        config.generate_address_map(debug).debug_symbols(debug);
        // A backtrace costs heap at every trap and walks Pulley frames that may be
        // half-built when a call overflows its stack in a trampoline; only the debug
        // profile, whose traps name functions, collects one.
        config.wasm_backtrace_max_frames(debug.then_some(BACKTRACE_FRAMES));
        // Spelled out rather than left to defaults that depend on which Wasmtime Cargo
        // features each side compiled in: exactly what `wasm32v1-none` emits.
        config.wasm_features(WasmFeatures::all(), false);
        config.wasm_features(guest_features(), true);
        config
    }
}

/// The Wasm features guests may use.
pub(crate) fn guest_features() -> WasmFeatures {
    // WebAssembly 1.0 (MVP) plus importable mutable globals: the `wasm32v1-none` target;
    // and custom page sizes, so a guest's memory is its stack and data, not 64 KiB.
    WasmFeatures::FLOATS | WasmFeatures::MUTABLE_GLOBAL | WasmFeatures::CUSTOM_PAGE_SIZES
}

/// Builds the engine that loads guests precompiled with `settings`.
///
/// With `async`, its fiber stacks are this crate's, checked for overflow around every
/// poll of a guest handle's async call: make async calls through the handles, not with
/// Wasmtime's `call_async` on this engine, whose polls nothing checks.
pub fn engine(settings: &Settings) -> Result<Engine, Error> {
    #[allow(unused_mut)]
    let mut config = settings.config();
    // Only the engine that runs guests turns components on: Wasmtime refuses a `.cwasm`
    // compiled with a feature its engine lacks, so a core module precompiled with them
    // on would not load in a firmware without this crate's `component-model` feature.
    #[cfg(feature = "component-model")]
    config.wasm_component_model(true);
    // Wasmtime wants the fiber at least as large as the Pulley stack, though Pulley's
    // stack is an allocation of its own.
    #[cfg(feature = "async")]
    config.async_stack_size(settings.async_stack_size.max(settings.max_wasm_stack));
    // Fiber stacks with a canary below them, checked after every poll: on a
    // microcontroller, and on the host the tests run on. Elsewhere on a host Wasmtime's
    // own stacks have guard pages (and the page size may not be 4 KiB, or custom stacks
    // be supported at all, as on Windows).
    #[cfg(all(feature = "async", any(not(feature = "std"), all(target_os = "linux", target_arch = "x86_64"))))]
    config.with_host_stack(alloc::sync::Arc::new(crate::fiber_stack::FiberStacks));
    Engine::new(&config).map_err(Error::Engine)
}

/// The engine that precompiles for `settings`.
#[cfg(feature = "compile")]
fn compiler(settings: &Settings) -> wasmtime::Result<Engine> {
    let mut config = settings.config();
    // Cranelift's level does not change what the code does (Wasmtime does not check it
    // when loading) but "speed" removes redundant Pulley ops, which is also smaller.
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    Engine::new(&config)
}

/// Precompiles a guest's wasm into `.cwasm` bytes that [`crate::Guest::load`] loads.
///
/// Fails if the wasm does not validate or uses a feature the firmware's engine will not
/// enable.
#[cfg(feature = "compile")]
pub fn precompile(settings: &Settings, wasm: &[u8]) -> wasmtime::Result<alloc::vec::Vec<u8>> {
    compiler(settings)?.precompile_module(wasm)
}

/// Precompiles a component (a core module that `wit-component` wrapped with its WIT
/// world) into `.cwasm` bytes that [`crate::Guest::load_component`] loads.
#[cfg(all(feature = "compile", feature = "component-model"))]
pub fn precompile_component(settings: &Settings, component: &[u8]) -> wasmtime::Result<alloc::vec::Vec<u8>> {
    let mut config = settings.config();
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config.wasm_component_model(true);
    Engine::new(&config)?.precompile_component(component)
}

/// Checks that `wasm` is a module the firmware's engine accepts: valid, and using only
/// the Wasm features it enables (Wasmtime's own validator, so its message names the
/// feature).
#[cfg(feature = "compile")]
pub fn validate(settings: &Settings, wasm: &[u8]) -> wasmtime::Result<()> {
    wasmtime::Module::validate(&compiler(settings)?, wasm)
}

#[cfg(feature = "compile")]
impl Settings {
    /// These settings as a Rust expression, for the module `wasm-embed-build` emits.
    /// Kept beside the struct so a new field cannot be forgotten there.
    pub fn to_rust(&self) -> alloc::string::String {
        let Settings {
            target,
            profile,
            max_wasm_stack,
            fuel,
            fuel_yield_interval,
            async_stack_size,
        } = self;
        alloc::format!(
            "::wasm_embed::Settings {{ target: ::wasm_embed::Target::{target:?}, \
             profile: ::wasm_embed::Profile::{profile:?}, max_wasm_stack: {max_wasm_stack}, fuel: {fuel:?}, \
             fuel_yield_interval: {fuel_yield_interval:?}, async_stack_size: {async_stack_size} }}"
        )
    }
}
