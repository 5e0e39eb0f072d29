//! Run precompiled WebAssembly guests on microcontrollers with Wasmtime.
//!
//! `wasm-embed-build` turns guest crates into `.cwasm` files at build time and emits a
//! module of [`Guest`] constants; this crate loads them in place from flash and runs them.
//! Both sides take their Wasmtime configuration from [`Settings::config`], so a `.cwasm`
//! can never be built with settings the firmware's engine would refuse.
//!
//! ```ignore
//! wasm_embed::include_guests!();
//!
//! let engine = wasm_embed::engine(&guests::SETTINGS)?;
//! let module = guests::add::GUEST.module(&engine)?;
//! ```
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod config;
mod error;
mod guest;
mod instance;
mod memory;
#[cfg(feature = "platform")]
mod platform;

#[cfg(feature = "compile")]
pub use config::{precompile, validate};
pub use config::{Profile, Settings, Target, engine};
pub use error::{Error, Fault};
pub use guest::{Aligned, Guest, GuestFunc, crc32};
pub use instance::{Context, GuestInstance, memory_and_host};
pub use memory::GuestMemory;
pub use wasmtime;

/// Includes the Rust module that `wasm-embed-build` wrote into `OUT_DIR`, as `mod guests`.
#[macro_export]
macro_rules! include_guests {
    () => {
        #[allow(dead_code)]
        pub mod guests {
            include!(concat!(env!("OUT_DIR"), "/wasm-embed-guests.rs"));
        }
    };
}
