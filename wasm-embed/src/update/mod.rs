//! Guests replaced in the field: signed, versioned update packages, checked before a
//! byte of them is used, stored in two flash slots per guest and run in place.
//!
//! A `.cwasm` is code that can read and write all of the device's memory (Pulley does
//! not verify bytecode), so an update is refused unless every check passes, in this
//! order: its length and format, the signer's key, the ed25519 signature over its
//! header, the guest's name and kind, the Wasmtime version and settings it was
//! precompiled with, its interface (imports and exports with their types, which the
//! firmware's typed handle was generated for), its version against the lowest one the
//! firmware still accepts, and the `.cwasm` against the digest the signed header
//! records (SHA-512, ed25519's own hash). An install checks everything but the last before it erases a slot, and
//! checks that Wasmtime loads the package before it makes it pending. Each refusal is
//! an [`UpdateError`] whose message is one line.
//!
//! The build writes a package per guest (`wasm-embed-build`'s `Builder::update_key`
//! turns this on, and emits [`Updatable`] statics and the public key); [`Slots`] stores
//! them through any HAL's `embedded_storage::nor_flash::NorFlash`, and runs a new one on
//! trial until the firmware confirms it, as MCUboot does with firmware images.

mod error;
mod package;
mod slots;

pub use error::UpdateError;
#[cfg(feature = "package")]
pub use package::{
    KeyFileError, PackageBuilder, SecretKey, create_key_files, read_public_key, read_secret_key,
};
#[cfg(feature = "smp")]
pub(crate) use package::sha512;
pub use package::{Package, PublicKey, Version};
pub use slots::{Current, GuardError, Install, Installed, OutsidePartition, SlotState, Slots};

use crate::Guest;

/// The Wasmtime version both sides pin: a package made by another is refused by name
/// before Wasmtime is asked (which would say less). Wasmtime's own, so that the pin in the
/// workspace's Cargo.toml is the one place an upgrade changes.
pub const WASMTIME_VERSION: &str = wasmtime_environ::VERSION;

/// A guest that can be updated: the built-in guest, the interface its typed handle was
/// generated for, and its version in this image. The emitted module has one per guest
/// (`guests::add::UPDATABLE`) when the build was given an update key.
#[derive(Debug)]
pub struct Updatable {
    guest: &'static Guest,
    version: Version,
    interface: &'static str,
}

impl Updatable {
    /// The emitted module calls this; a firmware never needs to.
    #[doc(hidden)]
    pub const fn new(guest: &'static Guest, version: Version, interface: &'static str) -> Updatable {
        Updatable {
            guest,
            version,
            interface,
        }
    }

    /// The guest built into the image.
    pub fn guest(&self) -> &'static Guest {
        self.guest
    }

    /// The version of the guest built into the image.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Its imports (in order) and exports, one per line, as a package records them.
    pub fn interface(&self) -> &'static str {
        self.interface
    }
}
