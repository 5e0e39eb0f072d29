//! Run WebAssembly guests on microcontrollers with Wasmtime, precompiled at build time
//! and loaded in place from flash.
//!
//! The firmware's `build.rs` calls `wasm_embed_build::build()`, which builds each guest
//! into a `.cwasm` and writes a module of typed bindings; [`include_guests!`] brings it
//! in as `mod guests`. Per guest `x` it holds `guests::x::GUEST` (the [`Guest`] in
//! flash), a handle type named after the guest whose methods are its exports, and a
//! trait per module it imports from, which the firmware implements:
//!
//! ```no_run
//! # // What `include_guests!()` brings in for the add guest, cut to its blocking call
//! # // (wasm-embed-build/tests/golden/guests.rs has the module in full); the real
//! # // `.cwasm` is only in a firmware's OUT_DIR, so this example is compiled, not run.
//! # mod guests {
//! #     pub mod add {
//! #         use wasm_embed::__private::wasmtime::{Caller, Func};
//! #         use wasm_embed::__private::{Context, GuestFunc, GuestInstance};
//! #         use wasm_embed::{Error, GuestModule, Settings, Target};
//! #         pub static GUEST: wasm_embed::Guest = unsafe { wasm_embed::Guest::new("add", &[], Settings::new(Target::Pulley32)) };
//! #         pub trait Host {
//! #             fn extra(&mut self) -> u32;
//! #         }
//! #         pub struct Add<H: 'static> {
//! #             instance: GuestInstance<H>,
//! #             add_with_extra: GuestFunc<(u32, u32), u32>,
//! #         }
//! #         impl<H: Host + 'static> Add<H> {
//! #             pub fn new(module: &GuestModule, host: H) -> Result<Self, Error> {
//! #                 let mut instance = GuestInstance::new(&GUEST, module, host, |store| {
//! #                     [Func::wrap(&mut *store, |mut caller: Caller<'_, Context<H>>| {
//! #                         <H as Host>::extra(caller.data_mut().host())
//! #                     })
//! #                     .into()]
//! #                 })?;
//! #                 Ok(Add { add_with_extra: instance.func("add_with_extra")?, instance })
//! #             }
//! #             pub fn add_with_extra(&mut self, a: u32, b: u32) -> Result<u32, Error> {
//! #                 self.instance.call(&self.add_with_extra, (a, b))
//! #             }
//! #         }
//! #     }
//! # }
//! # /*
//! wasm_embed::include_guests!();
//! # */
//!
//! struct Board;
//!
//! impl guests::add::Host for Board {       // the guest's imports from module `host`
//!     fn extra(&mut self) -> u32 {
//!         42
//!     }
//! }
//!
//! # fn main() -> Result<(), wasm_embed::Error> {
//! let guest = &guests::add::GUEST;
//! let engine = wasm_embed::engine(guest.settings())?;  // just the Pulley stack it needs
//! let module = guest.load(&engine)?;                   // in place from flash, once
//! let mut add = guests::add::Add::new(&module, Board)?; // a store of its own
//! let sum = add.add_with_extra(1, 2)?;                 // Result<u32, wasm_embed::Error>
//! # Ok(())
//! # }
//! ```
//!
//! Both sides take their Wasmtime configuration from [`Settings::config`], so a
//! `.cwasm` is never built with settings the firmware's engine would refuse. Every
//! failure is an [`Error`] whose message is one line; a guest that traps, loops forever
//! (with fuel on) or runs out of memory fails its call, and the firmware goes on.
//!
//! Cargo features: `platform` provides the symbols Wasmtime needs on bare metal (no OS,
//! one thread); `log-off` compiles out every `log` call, Wasmtime's among them, and so
//! yours too (Cargo applies a feature of `log` to the whole firmware); `std` is for a
//! host; `compile` is the precompiler `wasm-embed-build` uses; `component-model` loads
//! and runs component guests (a guest crate with a WIT world), at a cost in flash that
//! a firmware with core guests only does not pay; `update` installs signed guest
//! updates into flash slots and runs them ([`update`]), and `package` writes and signs
//! those packages on a host; `async` gives handles made by wasm-embed-build's `async`
//! feature calls that are futures, yield every `Settings::fuel_yield_interval` units of
//! fuel and await their imports (docs/async.md); `smp` serves those updates over
//! MCUmgr's SMP ([`smp`]); `emulated-cas` gives a core without compare-and-swap
//! (ARMv6-M, RV32 without A) the operations Wasmtime's `Arc` needs (its `cas` module,
//! built for those cores only).
#![no_std]
#![warn(missing_docs)]
// docs.rs shows which feature each item needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "emulated-cas")]
pub mod cas;
#[cfg(feature = "component-model")]
mod component;
mod config;
mod error;
#[cfg(feature = "async")]
mod fiber;
#[cfg(feature = "async")]
mod fiber_stack;
mod guest;
mod instance;
mod memory;
#[cfg(feature = "platform")]
mod platform;
#[cfg(feature = "smp")]
pub mod smp;
#[cfg(all(feature = "stack-guard", target_os = "none", any(target_arch = "arm", target_arch = "riscv32")))]
pub mod stack_guard;
#[cfg(feature = "update")]
pub mod update;

#[cfg(all(feature = "compile", feature = "component-model"))]
pub use config::precompile_component;
pub use config::{Profile, Settings, Target, engine};
#[cfg(feature = "compile")]
pub use config::{precompile, validate};
pub use error::{Error, Fault};
#[cfg(feature = "async")]
pub use fiber_stack::{CANARY as FIBER_STACK_CANARY, fiber_stack_peak};
#[cfg(feature = "component-model")]
pub use guest::GuestComponent;
pub use guest::{Guest, GuestModule, guest_being_set_up};
pub use memory::{GuestMemory, Pointer};
pub use wasmtime::Engine;

/// What an import of an async component guest returns (its `wit_async` bindings make
/// the imports fallible): `Err` ends the guest's call with [`Fault::Import`]. Wasmtime's
/// own `Result`, named here so that a firmware implements the bindings' traits without
/// depending on Wasmtime itself.
#[cfg(feature = "component-model")]
pub type ImportResult<T> = wasmtime::Result<T>;

/// The error of an [`ImportResult`]: `ImportError::msg("the sensor is gone")` makes one
/// (Wasmtime's `Error`).
#[cfg(feature = "component-model")]
pub use wasmtime::Error as ImportError;

/// What the module `wasm-embed-build` writes uses, and the on-device check's firmware
/// (`module_of`); not for firmware code.
/// The generated module of a build with wasm-embed-build's `async` feature calls this:
/// without wasm-embed's own `async` feature it stops the build with the fix.
#[doc(hidden)]
#[cfg(feature = "async")]
#[macro_export]
macro_rules! __require_async {
    () => {};
}

#[doc(hidden)]
#[cfg(not(feature = "async"))]
#[macro_export]
macro_rules! __require_async {
    () => {
        compile_error!(
            "the guests were built with wasm-embed-build's `async` feature, and wasm-embed's is off; \
             turn on the `async` feature of wasm-embed too"
        );
    };
}

#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "component-model")]
    pub use crate::component::ComponentInstance;
    #[cfg(all(feature = "component-model", feature = "async"))]
    pub use crate::component::BindingsFuture;
    pub use crate::guest::{Aligned, crc32, module_of};
    pub use crate::instance::{Context, GuestFunc, GuestInstance, memory_and_host};
    pub use alloc::boxed::Box;
    pub use wasmtime;
}

/// Includes the Rust module that `wasm-embed-build` wrote into `OUT_DIR`, as
/// `mod guests`.
#[macro_export]
macro_rules! include_guests {
    () => {
        #[allow(dead_code)]
        pub mod guests {
            include!(concat!(env!("OUT_DIR"), "/wasm-embed-guests.rs"));
        }
    };
}
