//! The record each guest carries through the pipeline's stages: what it is, and what
//! the stages have made of it so far. The stages depend on it, and it on the artifacts
//! they make; none of them depends on the pipeline that runs them.

use std::path::PathBuf;

use crate::bindings::Interface;
use crate::compile::Compiled;
use crate::locate::Located;
use crate::pages::Memory;
use crate::stack::Stack;

/// The Pulley stack for a guest whose depth cannot be bounded.
pub(crate) const DEFAULT_PULLEY_STACK: usize = 4 * 1024;

/// Bytes of a guest's wasm after each stage, and of its `.cwasm`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    /// As its toolchain left it (or the prebuilt file).
    pub compiled: usize,
    /// Without custom sections.
    pub stripped: usize,
    /// After wasm-opt (equal to `stripped` without the `wasm-opt` feature).
    pub optimized: usize,
    /// The `.cwasm` in flash.
    pub cwasm: usize,
}

/// One guest and what the stages have made of it so far.
pub(crate) struct Guest {
    pub located: Located,
    /// The wasm as its toolchain left it: the names of a prebuilt module's parameters
    /// are read from it.
    pub given: Vec<u8>,
    /// The wasm as the last stage left it.
    pub wasm: Vec<u8>,
    pub sizes: Sizes,
    pub memory: Memory,
    pub stack: Stack,
    /// The Pulley stack its engine gives it: what the user set, or what it needs.
    pub pulley_stack: usize,
    pub interface: Interface,
    /// A component guest's WIT world, read before the strip stage drops it.
    #[cfg(feature = "component-model")]
    pub world: Option<crate::component::World>,
    /// A component guest's component, made from its final core module.
    pub component: Option<Vec<u8>>,
    /// `None` until precompiled, and for a guest whose build was skipped.
    pub cwasm: Option<Vec<u8>>,
    pub cwasm_reused: bool,
    /// Its update package, when the build has an update key.
    pub update: Option<crate::package::Written>,
    /// The files whose change rebuilds it.
    pub inputs: Vec<PathBuf>,
}

impl Guest {
    pub(crate) fn new(located: Located, compiled: Compiled) -> Guest {
        Guest {
            located,
            sizes: Sizes {
                compiled: compiled.wasm.len(),
                ..Sizes::default()
            },
            given: compiled.wasm.clone(),
            wasm: compiled.wasm,
            memory: Memory::None,
            stack: Stack::Bounded { bytes: 0 },
            pulley_stack: DEFAULT_PULLEY_STACK,
            interface: Interface::default(),
            #[cfg(feature = "component-model")]
            world: None,
            component: None,
            cwasm: None,
            cwasm_reused: false,
            update: None,
            inputs: compiled.sources,
        }
    }

    pub fn name(&self) -> &str {
        &self.located.name
    }
}
