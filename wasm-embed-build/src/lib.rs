//! Build WebAssembly guests into a firmware, from its `build.rs`.
//!
//! The common case needs no configuration. List the guests in the firmware's
//! `Cargo.toml` (a guest crate's directory, or a prebuilt `.wasm` file):
//!
//! ```toml
//! [package.metadata.wasm-embed]
//! guests = ["../guests/add"]
//! ```
//!
//! and call [`build`] from `build.rs`:
//!
//! ```no_run
//! fn main() {
//!     wasm_embed_build::build();
//! }
//! ```
//!
//! Each guest crate is compiled for `wasm32v1-none` (a prebuilt file is read), checked,
//! stripped, optimized with `wasm-opt -Oz`, given a memory of exactly its stack and data,
//! bounded in Pulley stack, precompiled by Wasmtime into a `.cwasm` with the configuration
//! the firmware's runtime also uses, and embedded. The build writes one Rust module into
//! `OUT_DIR`; the firmware includes it with `wasm_embed::include_guests!()` and gets, per
//! guest `my-guest`, a module `guests::my_guest` holding:
//!
//! - `GUEST`, the `.cwasm` in flash, to load once: `let module = GUEST.load(&engine)?`;
//! - `MyGuest<H>`, the guest's handle: `MyGuest::new(&module, host)?` instantiates it in
//!   a store of its own, and its methods are the guest's exports
//!   (`fn add(&mut self, a: u32, b: u32) -> Result<u32, wasm_embed::Error>`);
//! - a trait per wasm module the guest imports from (`env` is `Env`), which `H` must
//!   implement: a missing import does not compile. An import whose guest source takes a
//!   pointer also gets the guest's memory, bounds-checked, and returns a `Result`;
//! - `WASM`, the final wasm, and `size`, its size after each stage.
//!
//! Names that are not Rust identifiers have each other character replaced by `_`.
//! Anything beyond the common case goes through [`Builder`]. Every failure is an
//! [`Error`] whose message is one line naming the cause and the fix; inside a build
//! script, [`build`] and [`Builder::compile`] report it to Cargo and stop the build.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bindings;
mod cargo;
mod compile;
#[cfg(feature = "component-model")]
mod component;
mod config;
mod emit;
mod error;
mod files;
mod guest;
mod locate;
mod optimize;
mod package;
mod pages;
mod pipeline;
mod precompile;
mod report;
mod stack;
mod stack_guard;
mod strip;

use std::path::{Path, PathBuf};

pub use config::{Builder, build};
pub use error::Error;
pub use guest::Sizes;
pub use pages::Memory;
pub use stack::Stack;
pub use wasm_embed::{Profile, Settings, Target};

/// What a build produced.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Output {
    /// The emitted Rust module, which `wasm_embed::include_guests!()` includes.
    pub module: PathBuf,
    /// The settings the guests were precompiled with (`guests::SETTINGS`).
    pub settings: Settings,
    /// Every guest that was built, in the order listed; none when the build skipped them.
    pub guests: Vec<BuiltGuest>,
    /// How many nested `cargo build`s ran: one per workspace of guest crates.
    pub nested_builds: usize,
    /// The build's warnings, as Cargo shows them beside the build (a guest that keeps
    /// 64 KiB pages, a name that is not a Rust identifier, ...).
    pub warnings: Vec<String>,
}

/// One guest, built.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BuiltGuest {
    /// Its module's name in the emitted code (`guests::<name>`).
    pub name: String,
    /// Bytes of its wasm after each stage, and of its `.cwasm`.
    pub sizes: Sizes,
    /// What the build did to its linear memory.
    pub memory: Memory,
    /// The most Pulley stack a call into it can use.
    pub stack: Stack,
    /// Whether the last build's `.cwasm` was reused, nothing it depends on having changed.
    pub cwasm_reused: bool,
    /// The `.cwasm` file in the output directory.
    pub cwasm: PathBuf,
    /// Its update package, signed (with an update key and `WASM_EMBED_SIGNING_KEY`).
    pub update: Option<PathBuf>,
    /// Its update package before signing (with an update key), for
    /// `cargo wasm-embed sign`.
    pub unsigned_update: Option<PathBuf>,
    /// The files whose change rebuilds it.
    pub inputs: Vec<PathBuf>,
}

impl BuiltGuest {
    fn of(guest: &guest::Guest, out_dir: &Path) -> BuiltGuest {
        BuiltGuest {
            name: guest.name().to_owned(),
            sizes: guest.sizes,
            memory: guest.memory.clone(),
            stack: guest.stack.clone(),
            cwasm_reused: guest.cwasm_reused,
            cwasm: out_dir.join(format!("{}.cwasm", guest.name())),
            update: guest.update.as_ref().and_then(|u| u.signed.clone()),
            unsigned_update: guest.update.as_ref().map(|u| u.unsigned.clone()),
            inputs: guest.inputs.clone(),
        }
    }
}

/// The stages, for this repository's differential test of them: not an API.
#[doc(hidden)]
pub mod internal {
    use std::path::Path;

    use crate::guest::Guest;
    use crate::pipeline::{Context, STAGES};
    use crate::{Error, Memory, Settings};

    /// A module taken through the pipeline's stages after `compile`, one at a time, in
    /// the order every build runs them.
    pub struct Staged {
        guest: Guest,
        context: Context,
        next: usize,
    }

    impl Staged {
        /// `wasm` as a prebuilt guest named `name`, built with `settings`; `scratch` holds
        /// the stages' files.
        pub fn new(name: &str, wasm: &[u8], settings: Settings, scratch: &Path) -> Staged {
            let located = crate::locate::Located {
                name: name.to_owned(),
                source: crate::locate::Source::Wasm(scratch.join(format!("{name}.wasm"))),
            };
            let compiled = crate::compile::Compiled { wasm: wasm.to_vec(), sources: Vec::new() };
            Staged {
                guest: Guest::new(located, compiled),
                context: Context {
                    settings,
                    out_dir: scratch.to_owned(),
                    exact_memory: true,
                    max_wasm_stack: None,
                    cargo: crate::cargo::Directives::new(false),
                    updates: None,
                },
                next: 0,
            }
        }

        /// Runs the next stage: its name and what it returned, or `None` once every stage
        /// has run.
        pub fn next_stage(&mut self) -> Option<(&'static str, Result<(), Error>)> {
            let stage = STAGES.get(self.next)?;
            self.next += 1;
            Some((stage.name, (stage.run)(&mut self.guest, &mut self.context)))
        }

        /// The wasm as the last stage left it.
        pub fn wasm(&self) -> &[u8] {
            &self.guest.wasm
        }

        /// What the `pages` stage did to the memory.
        pub fn memory(&self) -> &Memory {
            &self.guest.memory
        }

        /// The `.cwasm`, once the `precompile` stage has run.
        pub fn cwasm(&self) -> Option<&[u8]> {
            self.guest.cwasm.as_deref()
        }
    }
}
