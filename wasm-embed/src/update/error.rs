use alloc::string::String;
use core::fmt;

use embedded_storage::nor_flash::NorFlashErrorKind;

use super::Version;

/// Why an update was refused, or could not be stored or loaded. Each variant's
/// `Display` is one line naming the guest, the cause and what to do. Nothing of a
/// refused package is ever loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum UpdateError {
    /// Not a package, or one whose fields are out of range.
    Malformed {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// What is wrong with the package, as a phrase for the message.
        reason: &'static str,
    },
    /// Shorter (or longer) than its header says.
    Truncated {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The package's length in bytes, as it was given.
        len: usize,
        /// The length its header records, signature included; or, for a package too short
        /// to hold a header, the least a package can be.
        expected: usize,
    },
    /// Signed by a key this firmware does not know.
    UnknownKey {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
    },
    /// The signature does not verify: the package was changed after it was signed.
    BadSignature {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
    },
    /// A package for another guest.
    OtherGuest {
        /// The name of the guest the package was offered to.
        guest: &'static str,
        /// The name of the guest the package is for, as its header records it.
        package: String,
    },
    /// Precompiled by another Wasmtime version.
    OtherWasmtime {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The Wasmtime version that precompiled the package, as its header records it.
        package: String,
    },
    /// Precompiled with settings this firmware's engine does not use.
    OtherSettings {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The setting that differs: `kind`, `target`, `profile` or `fuel`.
        setting: &'static str,
        /// The setting's value in the package.
        package: &'static str,
        /// The setting's value in the firmware's engine.
        firmware: &'static str,
    },
    /// Its imports or exports differ from those the firmware's typed handle was made for:
    /// the first import or export that differs, as each side lists it (`import
    /// host.extra: () -> i32`), `None` where that side has no more.
    OtherInterface {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The package's line that differs, `None` if the package lists no more.
        package: Option<String>,
        /// The firmware's line in its place, `None` if the firmware lists no more.
        firmware: Option<String>,
    },
    /// Below the lowest version the firmware still accepts: a rollback.
    Older {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The package's version.
        package: Version,
        /// The lowest version accepted: the firmware's floor, or during an install the
        /// version that runs now if it is higher.
        floor: Version,
    },
    /// Larger than a slot.
    TooLarge {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The package's length in bytes, as announced to the install.
        len: usize,
        /// The bytes a slot has room for: its size less the marker.
        slot: usize,
    },
    /// The install was given more or fewer bytes than it announced.
    WrongLength {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The package's length in bytes, as announced when the install began.
        announced: usize,
        /// The bytes given: already more than announced, or fewer when the install was
        /// finished.
        given: usize,
    },
    /// The flash driver failed.
    Flash {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// What the flash was asked to do: `erase` or `write`.
        operation: &'static str,
        /// Where in the flash, as the driver addresses it.
        offset: u32,
        /// The driver's error, as `embedded-storage` classifies it.
        kind: NorFlashErrorKind,
    },
    /// A slot still holds data after it was erased.
    NotErased {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// Where in the flash (as the driver addresses it) the first byte that is not
        /// erased lies, or the marker that did not read back as written.
        offset: u32,
    },
    /// The partition cannot hold two slots with this flash's sizes.
    Partition {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// What is wrong with the partition, as a phrase for the message.
        reason: &'static str,
    },
    /// The guest runs from the slot an install would erase.
    SlotInUse {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The slot's index, 0 or 1.
        slot: usize,
    },
    /// The same package is in a slot already: installing it again would only wear the
    /// flash.
    AlreadyInstalled {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The package's version.
        version: Version,
        /// The slot that holds it, 0 or 1.
        slot: usize,
    },
    /// An install while a guest is on trial: it could erase the confirmed fallback.
    OnTrial {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The slot on trial, 0 or 1.
        slot: usize,
    },
    /// A confirmation of a trial that was never loaded: a package that does not load
    /// is never confirmed.
    NotLoaded {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The slot on trial, 0 or 1.
        slot: usize,
    },
    /// [`Slots::confirm_pending`](super::Slots::confirm_pending) of a slot that is not
    /// pending.
    NotPending {
        /// The guest's name, as the generated `guests` module names it.
        guest: &'static str,
        /// The slot, 0 or 1.
        slot: usize,
    },
    /// Wasmtime refused the verified package, or the engine for it could not be made.
    Load(crate::Error),
}

/// A guest that failed to load or run: so a firmware function that loads an update and
/// calls it can use `?` on both kinds of error.
impl From<crate::Error> for UpdateError {
    fn from(error: crate::Error) -> UpdateError {
        UpdateError::Load(error)
    }
}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use UpdateError::*;
        match self {
            Malformed { guest, reason } => write!(
                f,
                "update for guest `{guest}` refused: malformed package: {reason}; send the .update file the build or \
                 `cargo wasm-embed sign` wrote"
            ),
            Truncated { guest, len, expected } => write!(
                f,
                "update for guest `{guest}` refused: truncated or malformed package ({len} bytes, its header says \
                 {expected}); send the whole .update file"
            ),
            UnknownKey { guest } => write!(
                f,
                "update for guest `{guest}` refused: signed with a key this firmware does not know; sign it with the \
                 key whose public half the firmware was built with (Builder::update_key)"
            ),
            BadSignature { guest } => write!(
                f,
                "update for guest `{guest}` refused: bad signature, the package was changed after it was signed; \
                 send the package as `cargo wasm-embed sign` wrote it"
            ),
            OtherGuest { guest, package } => write!(
                f,
                "update for guest `{guest}` refused: the package is for guest `{package}`; install it in that guest's \
                 slots"
            ),
            OtherWasmtime { guest, package } => write!(
                f,
                "update for guest `{guest}` refused: precompiled by Wasmtime {package}, this firmware runs Wasmtime \
                 {}; build the update with the wasm-embed-build version the firmware was built with",
                super::WASMTIME_VERSION
            ),
            OtherSettings {
                guest,
                setting,
                package,
                firmware,
            } => write!(
                f,
                "update for guest `{guest}` refused: precompiled with {setting} {package}, the firmware's engine \
                 with {setting} {firmware}; build the update with the firmware's build.rs settings"
            ),
            OtherInterface { guest, package, firmware } => {
                write!(f, "update for guest `{guest}` refused: another interface: ")?;
                // `import host.extra: () -> i32` as its kind, name and type.
                fn split(line: &str) -> (&str, &str, &str) {
                    let (kind, rest) = line.split_once(' ').unwrap_or(("item", line));
                    let (name, ty) = rest.split_once(": ").unwrap_or((rest, "?"));
                    (kind, name, ty)
                }
                match (package.as_deref().map(split), firmware.as_deref().map(split)) {
                    (Some(its), Some(mine)) if (its.0, its.1) == (mine.0, mine.1) => write!(
                        f,
                        "{} `{}` is `{}` in the package, `{}` in the firmware",
                        mine.0, mine.1, its.2, mine.2
                    ),
                    (Some(its), Some(mine)) => write!(
                        f,
                        "the package has {} `{}` where the firmware has {} `{}`",
                        its.0, its.1, mine.0, mine.1
                    ),
                    (None, Some(mine)) => write!(f, "the package lacks the firmware's {} `{}`", mine.0, mine.1),
                    (Some(its), None) => write!(f, "the package has {} `{}`, which the firmware does not", its.0, its.1),
                    (None, None) => write!(f, "they differ"),
                }?;
                f.write_str(
                    "; an update must keep the imports and exports the firmware was built for, or ship with a new firmware",
                )
            }
            Older { guest, package, floor } => write!(
                f,
                "update for guest `{guest}` refused: version {package} is older than {floor}, the lowest this device \
                 accepts (rollback); send a package of version {floor} or newer"
            ),
            TooLarge { guest, len, slot } => write!(
                f,
                "update for guest `{guest}` refused: {len} bytes do not fit its {slot}-byte slot; give the partition \
                 more flash"
            ),
            WrongLength { guest, announced, given } => write!(
                f,
                "update for guest `{guest}` not installed: {given} bytes were written of the {announced} announced; \
                 send the whole package again"
            ),
            Flash {
                guest,
                operation,
                offset,
                kind,
            } => write!(
                f,
                "update for guest `{guest}` not installed: the flash failed to {operation} at {offset:#x} ({kind}); \
                 the previous guest still runs: retry, and check the flash driver and partition"
            ),
            NotErased { guest, offset } => write!(
                f,
                "update for guest `{guest}` not installed: its slot is not erased at {offset:#x} after an erase; the \
                 previous guest still runs: check the flash driver's erase and the partition's bounds"
            ),
            Partition { guest, reason } => write!(
                f,
                "update slots for guest `{guest}` unusable: {reason}; give Slots::new a partition of an even number \
                 of the flash's erase pages, inside the flash, mapped at a 16-byte-aligned address, on a flash \
                 whose write size is a power of two up to 64 bytes"
            ),
            SlotInUse { guest, slot } => write!(
                f,
                "update for guest `{guest}` not installed: the guest runs from slot {slot}, which the install would \
                 erase; drop its handles and module first"
            ),
            AlreadyInstalled { guest, version, slot } => write!(
                f,
                "update for guest `{guest}` not installed: this package of version {version} is in slot {slot} \
                 already; nothing to do"
            ),
            OnTrial { guest, slot } => write!(
                f,
                "update for guest `{guest}` not installed: the guest in slot {slot} is on trial; confirm or revert it \
                 first (Slots::confirm, Slots::revert)"
            ),
            NotLoaded { guest, slot } => write!(
                f,
                "update for guest `{guest}` not confirmed: the guest on trial in slot {slot} was not loaded; load it \
                 from Slots::current and test it before Slots::confirm"
            ),
            NotPending { guest, slot } => write!(
                f,
                "update for guest `{guest}` not confirmed: slot {slot} holds no pending package; confirm the guest \
                 that runs with Slots::confirm"
            ),
            Load(error) => write!(f, "verified update not loaded: {error}"),
        }
    }
}

impl core::error::Error for UpdateError {}
