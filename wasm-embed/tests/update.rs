//! Updates in the field: a signed package installs into a flash slot through a NOR
//! flash that behaves as a chip does (erase to 0xFF, each word written once, writes
//! only clear bits, nothing past its end), runs in place through the built-in guest's
//! path on trial until it is confirmed, and every bad package is refused with one line,
//! leaving the last good guest to run, power cuts included.

mod common;

use common::nor::{Nor, SECTOR};
use common::{ADD, guest, settings};
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use wasm_embed::__private::GuestInstance;
use wasm_embed::update::{
    KeyFileError, Package, PackageBuilder, PublicKey, SecretKey, SlotState, Slots, UpdateError, Updatable, Version,
    WASMTIME_VERSION, read_public_key, read_secret_key,
};
use wasm_embed::{Guest, Profile, Settings, Target};
use wasmtime::Func;

const INTERFACE: &str = "import host.extra: () -> i32\nexport add_with_extra: (i32, i32) -> i32\n";
const SLOT: usize = 4 * SECTOR;
/// Where a slot's package starts: the marker and two flags of 16 bytes each.
const PACKAGE_OFFSET: usize = 48;

/// The add guest with `bonus` added to its result: what an update changes.
fn add_plus(bonus: i32) -> String {
    ADD.replace("i32.add call $extra i32.add", &format!("i32.add call $extra i32.add i32.const {bonus} i32.add"))
}

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

/// The built-in add guest, updatable at `version`.
fn updatable_at(version: Version) -> &'static Updatable {
    let guest = guest("add", ADD, settings());
    Box::leak(Box::new(Updatable::new(guest, version, INTERFACE)))
}

/// The built-in add guest, updatable at version 0.1.0.
fn updatable() -> &'static Updatable {
    updatable_at(Version::new(0, 1, 0))
}

struct Spec<'a> {
    wat: String,
    version: Version,
    settings: Settings,
    /// The settings the `.cwasm` is precompiled with, when they differ from what the
    /// header records.
    compiled_with: Option<Settings>,
    interface: &'a str,
    name: &'a str,
    component: bool,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            wat: add_plus(100),
            version: Version::new(1, 0, 0),
            settings: settings(),
            compiled_with: None,
            interface: INTERFACE,
            name: "add",
            component: false,
        }
    }
}

/// The package the build writes for `spec`, unsigned, for `key`'s public half.
fn unsigned(spec: &Spec, key: &SecretKey) -> Vec<u8> {
    let compiled_with = spec.compiled_with.unwrap_or(spec.settings);
    let cwasm = wasm_embed::precompile(&compiled_with, &wat::parse_str(&spec.wat).unwrap()).unwrap();
    PackageBuilder {
        name: spec.name,
        version: spec.version,
        settings: spec.settings,
        component: spec.component,
        interface: spec.interface,
        cwasm: &cwasm,
    }
    .unsigned(&key.public_key())
    .unwrap()
}

fn package(spec: &Spec) -> Vec<u8> {
    key(1).sign(&unsigned(spec, &key(1))).unwrap()
}

/// The add guest's package at `version`, adding `bonus`.
fn add_package(version: Version, bonus: i32) -> Vec<u8> {
    package(&Spec {
        wat: add_plus(bonus),
        version,
        ..Spec::default()
    })
}

fn firmware_key() -> PublicKey {
    key(1).public_key()
}

/// Two slots at the start of `flash`.
fn slots(flash: Nor, guest: &'static Updatable) -> Slots<Nor> {
    let mapped = flash.memory;
    // SAFETY: the test's flash is mapped at its buffer for good, and written only
    // through these slots.
    unsafe { Slots::new(flash, 0..2 * SLOT as u32, mapped, guest, firmware_key()) }.unwrap()
}

/// Installs `package` in pieces of 7 bytes, as a UART would deliver it.
fn install(slots: &mut Slots<Nor>, package: &[u8]) -> Result<Version, UpdateError> {
    let mut install = slots.install(package.len())?;
    for piece in package.chunks(7) {
        install.write(piece)?;
    }
    install.finish()
}

/// Loads what the slots say runs now and calls `add_with_extra(1, 2)` with `extra` 42.
fn run(slots: &mut Slots<Nor>) -> u32 {
    let current = slots.current().unwrap();
    let engine = wasm_embed::engine(current.settings()).unwrap();
    let module = current.load(&engine).unwrap();
    let guest: &'static Guest = module.guest();
    let mut add = GuestInstance::new(guest, &module, (), |store| [Func::wrap(store, || 42u32).into()]).unwrap();
    let func = add.func::<(u32, u32), u32>("add_with_extra").unwrap();
    add.call(&func, (1, 2)).unwrap()
}

/// Runs what the slots say and confirms it.
fn run_and_confirm(slots: &mut Slots<Nor>) -> u32 {
    let sum = run(slots);
    slots.confirm().unwrap();
    sum
}

/// Slots holding 1.0.0 (bonus 100) in slot 0 and 1.1.0 (bonus 200) in slot 1, both
/// confirmed: 1.1.0 runs, 1.0.0 is the fallback.
fn two_confirmed(guest: &'static Updatable) -> Slots<Nor> {
    let mut slots = slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &add_package(Version::new(1, 0, 0), 100)).unwrap();
    assert_eq!(run_and_confirm(&mut slots), 145);
    install(&mut slots, &add_package(Version::new(1, 1, 0), 200)).unwrap();
    assert_eq!(run_and_confirm(&mut slots), 245);
    slots
}

#[test]
fn a_signed_update_installs_in_pieces_runs_on_trial_in_place_and_stays_once_confirmed() {
    let guest = updatable();
    let nor = Nor::new(2 * SLOT);
    let memory = nor.memory;
    let mut slots = slots(nor, guest);
    // Empty slots: the guest built into the image runs.
    assert_eq!(slots.current().unwrap().slot(), None);
    assert_eq!(slots.current().unwrap().version(), Version::new(0, 1, 0));
    assert_eq!(run(&mut slots), 45);

    let update = add_package(Version::new(1, 0, 0), 100);
    assert_eq!(install(&mut slots, &update).unwrap(), Version::new(1, 0, 0));
    assert_eq!(slots.state(0), SlotState::Pending);
    let current = slots.current().unwrap();
    assert_eq!((current.slot(), current.version(), current.is_trial()), (Some(0), Version::new(1, 0, 0), true));
    // In place: the module's code is the slot's bytes.
    let engine = wasm_embed::engine(current.settings()).unwrap();
    let module = current.load(&engine).unwrap();
    let cwasm = wasm_embed::__private::module_of(&module).image_range();
    let slot = memory.as_ptr() as usize..memory.as_ptr() as usize + SLOT;
    assert!(slot.contains(&(cwasm.start as usize)), "the module runs from the slot, not a copy");
    drop(module);
    assert_eq!(slots.state(0), SlotState::Trial);
    assert_eq!(run(&mut slots), 145);
    assert_eq!(slots.confirm().unwrap(), Version::new(1, 0, 0));
    assert_eq!(slots.state(0), SlotState::Confirmed);

    // After a restart the confirmed guest runs, not on trial.
    let mut restarted = self::slots(flash(&mut slots).restart(), guest);
    assert!(!restarted.current().unwrap().is_trial());
    assert_eq!(run(&mut restarted), 145);

    // The next update goes to the other slot, and wins by its sequence number.
    install(&mut restarted, &add_package(Version::new(1, 1, 0), 200)).unwrap();
    assert_eq!(restarted.current().unwrap().slot(), Some(1));
    assert_eq!(run_and_confirm(&mut restarted), 245);
    let mut restarted = self::slots(flash(&mut restarted).restart(), guest);
    assert_eq!(run(&mut restarted), 245);
    assert_eq!(restarted.state(0), SlotState::Confirmed, "the fallback");
}

/// Clears the lowest set bit of the first byte at or after `at` that has one, as a
/// bit that fails in NOR flash does.
fn damage(bytes: &mut [u8], at: usize) {
    let byte = bytes[at..].iter_mut().find(|b| **b != 0).unwrap();
    *byte &= *byte - 1;
}

fn flash(slots: &mut Slots<Nor>) -> &mut Nor {
    // SAFETY: the tests change the stand-in's power budget and damage its bytes on
    // purpose; nothing runs from them while they do.
    unsafe { slots.flash_unchecked() }
}

#[test]
fn a_trial_that_is_not_confirmed_reverts_at_the_next_start_and_revert_falls_back_at_once() {
    let guest = updatable();
    let mut slots = slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &add_package(Version::new(1, 0, 0), 100)).unwrap();
    assert_eq!(run_and_confirm(&mut slots), 145);
    install(&mut slots, &add_package(Version::new(1, 1, 0), 200)).unwrap();
    assert_eq!(run(&mut slots), 245, "on trial");
    // The same start keeps trying it.
    assert_eq!(slots.current().unwrap().slot(), Some(1));
    assert_eq!(run(&mut slots), 245);
    // A restart before confirmation: the trial reverts for good.
    let mut restarted = self::slots(flash(&mut slots).restart(), guest);
    assert_eq!(restarted.state(1), SlotState::Reverted);
    assert_eq!(run(&mut restarted), 145);
    let mut again = self::slots(flash(&mut restarted).restart(), guest);
    assert_eq!(run(&mut again), 145);

    // Reverted at once, in the same start.
    install(&mut again, &add_package(Version::new(1, 2, 0), 300)).unwrap();
    assert_eq!(run(&mut again), 345);
    again.revert();
    assert_eq!(again.state(1), SlotState::Reverted);
    assert_eq!(run(&mut again), 145);
    // Confirming now confirms what runs: the previous guest.
    assert_eq!(again.confirm().unwrap(), Version::new(1, 0, 0));
}

#[test]
fn a_trial_is_confirmed_only_once_loaded_and_no_install_replaces_the_fallback_meanwhile() {
    let guest = updatable();
    let mut slots = slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &add_package(Version::new(1, 0, 0), 100)).unwrap();
    let current = slots.current().unwrap();
    assert!(current.is_trial());
    drop(current);
    assert_eq!(
        slots.confirm().unwrap_err().to_string(),
        "update for guest `add` not confirmed: the guest on trial in slot 0 was not loaded; load it from \
         Slots::current and test it before Slots::confirm"
    );
    let next = add_package(Version::new(1, 1, 0), 200);
    assert_eq!(
        slots.install(next.len()).err().unwrap().to_string(),
        "update for guest `add` not installed: the guest in slot 0 is on trial; confirm or revert it first \
         (Slots::confirm, Slots::revert)"
    );
    assert_eq!(run(&mut slots), 145);
    slots.confirm().unwrap();
    install(&mut slots, &next).unwrap();
}

#[test]
fn an_install_never_replaces_the_confirmed_fallback_while_a_newer_guest_is_untried() {
    let guest = updatable();
    let mut slots = slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &add_package(Version::new(1, 0, 0), 100)).unwrap();
    assert_eq!(run_and_confirm(&mut slots), 145);
    // 2.0.0 pending, never run; 3.0.0 replaces it, not the confirmed 1.0.0.
    install(&mut slots, &add_package(Version::new(2, 0, 0), 200)).unwrap();
    install(&mut slots, &add_package(Version::new(3, 0, 0), 300)).unwrap();
    assert_eq!((slots.state(0), slots.state(1)), (SlotState::Confirmed, SlotState::Pending));
    // It fails to be confirmed, at three starts: 1.0.0 runs still.
    assert_eq!(run(&mut slots), 345);
    for _ in 0..3 {
        slots = self::slots(flash(&mut slots).restart(), guest);
    }
    assert_eq!(run(&mut slots), 145);

    // The firmware starts a trial while an upload's header is still arriving: the header
    // is refused, and the fallback is not touched.
    let mut slots = self::slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &add_package(Version::new(1, 0, 0), 100)).unwrap();
    run_and_confirm(&mut slots);
    install(&mut slots, &add_package(Version::new(2, 0, 0), 200)).unwrap();
    let third = add_package(Version::new(3, 0, 0), 300);
    slots.install(third.len()).unwrap().write(&third[..5]).unwrap();
    assert_eq!(run(&mut slots), 245, "2.0.0 on trial");
    let error = slots.resume().unwrap().write(&third[5..]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "update for guest `add` not installed: the guest in slot 1 is on trial; confirm or revert it first \
         (Slots::confirm, Slots::revert)"
    );
    assert_eq!(slots.state(0), SlotState::Confirmed);
}

/// The length of `package`'s header, the bytes after which it is checked.
fn header_len(package: &[u8]) -> usize {
    usize::from(u16::from_le_bytes([package[6], package[7]]))
}

#[test]
fn an_upload_is_checked_again_at_its_end_against_trials_and_confirmations_made_meanwhile() {
    let guest = updatable();
    let older = add_package(Version::new(1, 5, 0), 150);
    let h = header_len(&older);

    // 2.0.0 pending; 1.5.0's header passes, then 2.0.0 goes on trial before the rest
    // arrives: the end of the upload is refused, and 2.0.0 keeps its trial.
    let mut slots = slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &add_package(Version::new(2, 0, 0), 200)).unwrap();
    slots.install(older.len()).unwrap().write(&older[..h]).unwrap();
    assert_eq!(run(&mut slots), 245, "2.0.0 on trial");
    let mut rest = slots.resume().unwrap();
    rest.write(&older[h..]).unwrap();
    assert_eq!(
        rest.finish().unwrap_err().to_string(),
        "update for guest `add` not installed: the guest in slot 0 is on trial; confirm or revert it first \
         (Slots::confirm, Slots::revert)"
    );
    assert_eq!(run(&mut slots), 245);

    // The same, 2.0.0 confirmed meanwhile: 1.5.0 is now below the newest confirmed
    // guest, refused at the end, and never runs.
    let mut slots = self::slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &add_package(Version::new(2, 0, 0), 200)).unwrap();
    slots.install(older.len()).unwrap().write(&older[..h]).unwrap();
    assert_eq!(run_and_confirm(&mut slots), 245);
    let mut rest = slots.resume().unwrap();
    rest.write(&older[h..]).unwrap();
    assert_eq!(
        rest.finish().unwrap_err().to_string(),
        "update for guest `add` refused: version 1.5.0 is older than 2.0.0, the lowest this device accepts \
         (rollback); send a package of version 2.0.0 or newer"
    );
    assert_eq!(run(&mut slots), 245);
    assert_eq!((slots.state(0), slots.state(1)), (SlotState::Confirmed, SlotState::Empty));
}

#[test]
fn confirm_returns_the_newest_confirmed_version_never_a_pending_one() {
    let guest = updatable();
    let mut slots = slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &add_package(Version::new(1, 0, 0), 100)).unwrap();
    assert_eq!(run(&mut slots), 145);
    assert_eq!(slots.confirm().unwrap(), Version::new(1, 0, 0));
    // 2.0.0 installed before the firmware confirms again: the floor it is told to
    // raise to stays 1.0.0, or the fallback would be passed over once 2.0.0 fails.
    install(&mut slots, &add_package(Version::new(2, 0, 0), 200)).unwrap();
    assert_eq!(slots.confirm().unwrap(), Version::new(1, 0, 0));
}

#[test]
fn an_upload_that_stops_after_its_header_costs_no_second_erase() {
    let guest = updatable();
    let mut slots = two_confirmed(guest);
    let next = add_package(Version::new(1, 2, 0), 300);
    let header = u16::from_le_bytes([next[6], next[7]]) as usize;
    let erases = flash(&mut slots).erases;
    // The install goes to slot 0, 1.0.0's: only its blocks that hold data need an erase.
    let used = flash(&mut slots).bytes()[..SLOT].chunks(SECTOR).filter(|block| block.iter().any(|&b| b != 0xff)).count();
    assert!(used >= 1);
    for _ in 0..3 {
        let mut install = slots.install(next.len()).unwrap();
        install.write(&next[..header]).unwrap();
        slots.cancel();
    }
    // The slot was erased once; the header never reached the flash, so the slot stayed
    // blank and the next uploads found nothing to erase.
    assert_eq!(flash(&mut slots).erases - erases, used);
    assert_eq!(run(&mut slots), 245);
    // A preamble whose lengths overflow is a length that no announced length matches.
    let mut huge = next[..12].to_vec();
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut install = slots.install(200).unwrap();
    assert!(matches!(install.write(&huge), Err(UpdateError::Truncated { .. })));
}

#[test]
fn a_signed_package_that_wasmtime_refuses_is_never_made_pending() {
    let guest = updatable();
    let mut slots = two_confirmed(guest);
    let before = flash(&mut slots).bytes()[..SLOT].to_vec();
    // Signed, and its header says what the firmware runs, but its .cwasm was compiled
    // for another target: a signer's mistake that Wasmtime catches, and the install with it.
    let other = if settings().target == Target::Pulley64 { Target::Pulley32 } else { Target::Pulley64 };
    let mismatched = package(&Spec {
        version: Version::new(1, 2, 0),
        compiled_with: Some(Settings::new(other)),
        ..Spec::default()
    });
    let error = install(&mut slots, &mismatched).unwrap_err();
    assert!(
        error.to_string().starts_with("verified update not loaded: guest `add`"),
        "{error}"
    );
    assert_ne!(flash(&mut slots).bytes()[..SLOT], before[..], "the header was signed: the slot was erased");
    assert_eq!(slots.state(0), SlotState::Empty, "no marker");
    assert_eq!(run(&mut slots), 245);
    let mut restarted = self::slots(flash(&mut slots).restart(), guest);
    assert_eq!(run(&mut restarted), 245);
}

/// What `Package::verify` says of `bytes` for the add guest and the firmware's key.
fn refusal(bytes: &[u8]) -> String {
    let guest = updatable();
    Package::verify(bytes, guest, &firmware_key(), Version::new(1, 1, 0))
        .err()
        .expect("a bad package must be refused")
        .to_string()
}

/// `unsigned` with its header changed by `edit`, then signed with the firmware's key
/// directly (`SecretKey::sign` refuses some of these): what a key holder could make,
/// which only the checks after the signature catch.
fn resigned(mut unsigned: Vec<u8>, edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    edit(&mut unsigned);
    let header = u16::from_le_bytes([unsigned[6], unsigned[7]]) as usize;
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([1; 32]));
    let signature = pair.sk.sign(&unsigned[..header - 64], None);
    unsigned[header - 64..header].copy_from_slice(&*signature);
    unsigned
}

#[test]
fn every_kind_of_bad_package_is_refused_with_one_line_and_changes_nothing() {
    let guest = updatable();
    let mut slots = two_confirmed(guest);
    let good = add_package(Version::new(1, 2, 0), 300);
    let header_len = u16::from_le_bytes([good[6], good[7]]) as usize;

    let mut flipped_header = good.clone();
    flipped_header[60] ^= 0x01;
    let mut flipped_code = good.clone();
    flipped_code[header_len + 100] ^= 0x01;
    let other_key = key(2).sign(&unsigned(&Spec::default(), &key(2))).unwrap();
    // Claims the firmware's key but is signed with another: caught by the signature.
    let mut forged = unsigned(&Spec::default(), &key(1));
    let by_other = key(2).sign(&unsigned(&Spec::default(), &key(2))).unwrap();
    forged[header_len - 64..header_len].copy_from_slice(&by_other[header_len - 64..header_len]);
    let older = add_package(Version::new(1, 0, 5), 100);
    let fuel = package(&Spec {
        settings: Settings {
            fuel: Some(1000),
            ..settings()
        },
        version: Version::new(1, 2, 0),
        ..Spec::default()
    });
    let other_target = resigned(unsigned(&Spec::default(), &key(1)), |bytes| bytes[21] ^= 1);
    let debug = resigned(unsigned(&Spec::default(), &key(1)), |bytes| bytes[22] = 1);
    let component = resigned(unsigned(&Spec::default(), &key(1)), |bytes| bytes[20] = 1);
    let mut other_format = good.clone();
    other_format[4] = 1;
    let date_version = resigned(unsigned(&Spec::default(), &key(1)), |bytes| {
        bytes[36..40].copy_from_slice(&20_241_105u32.to_le_bytes())
    });
    let other_export = package(&Spec {
        wat: add_plus(1).replace("add_with_extra", "add_twice"),
        interface: "import host.extra: () -> i32\nexport add_twice: (i32, i32) -> i32\n",
        version: Version::new(1, 2, 0),
        ..Spec::default()
    });
    let other_type = package(&Spec {
        interface: "import host.extra: () -> i32\nexport add_with_extra: (i32, i32) -> i64\n",
        version: Version::new(1, 2, 0),
        ..Spec::default()
    });
    let other_guest = package(&Spec {
        name: "log",
        version: Version::new(1, 2, 0),
        ..Spec::default()
    });
    let other_wasmtime = resigned(unsigned(&Spec::default(), &key(1)), |bytes| {
        let at = bytes.windows(WASMTIME_VERSION.len()).position(|w| w == WASMTIME_VERSION.as_bytes()).unwrap();
        bytes[at..at + 2].copy_from_slice(b"47");
    });
    let replay_of_running = add_package(Version::new(1, 1, 0), 200);
    let mut longer = good.clone();
    longer.push(0);

    let bad_signature = "update for guest `add` refused: bad signature, the package was changed after it was \
                         signed; send the package as `cargo wasm-embed sign` wrote it";
    // (what, package, its refusal, whether the install may erase the target slot first)
    let cases: Vec<(&str, Vec<u8>, String, bool)> = vec![
        ("a flipped byte in the header", flipped_header, bad_signature.into(), false),
        (
            "another key",
            other_key,
            "update for guest `add` refused: signed with a key this firmware does not know; sign it with the key \
             whose public half the firmware was built with (Builder::update_key)"
                .into(),
            false,
        ),
        ("another key under this key's ID", forged, bad_signature.into(), false),
        (
            "truncated",
            good[..good.len() - 100].to_vec(),
            format!(
                "update for guest `add` refused: truncated or malformed package ({} bytes, its header says {}); send \
                 the whole .update file",
                good.len() - 100,
                good.len()
            ),
            false,
        ),
        (
            "one byte too long",
            longer,
            format!(
                "update for guest `add` refused: truncated or malformed package ({} bytes, its header says {}); send \
                 the whole .update file",
                good.len() + 1,
                good.len()
            ),
            false,
        ),
        (
            "not a package",
            b"\x7fELF and then some bytes that are no package at all".repeat(4),
            "update for guest `add` refused: malformed package: it does not start as a wasm-embed update package \
             does; send the .update file the build or `cargo wasm-embed sign` wrote"
                .into(),
            false,
        ),
        (
            "another format version",
            other_format,
            "update for guest `add` refused: malformed package: its format is not the one this firmware reads (2); \
             send the .update file the build or `cargo wasm-embed sign` wrote"
                .into(),
            false,
        ),
        (
            "an older version than the one running (a replay)",
            older,
            "update for guest `add` refused: version 1.0.5 is older than 1.1.0, the lowest this device accepts \
             (rollback); send a package of version 1.1.0 or newer"
                .into(),
            false,
        ),
        (
            "the running package again (a replay)",
            replay_of_running,
            "update for guest `add` not installed: this package of version 1.1.0 is in slot 1 already; nothing to do"
                .into(),
            false,
        ),
        (
            "a version no counter holds",
            date_version,
            "update for guest `add` refused: malformed package: its version has a part above 2097151, which no \
             anti-rollback counter holds; send the .update file the build or `cargo wasm-embed sign` wrote"
                .into(),
            false,
        ),
        (
            "other fuel settings",
            fuel,
            "update for guest `add` refused: precompiled with fuel on, the firmware's engine with fuel off; build the \
             update with the firmware's build.rs settings"
                .into(),
            false,
        ),
        (
            "another target",
            other_target,
            format!(
                "update for guest `add` refused: precompiled with target {}, the firmware's engine with target {}; \
                 build the update with the firmware's build.rs settings",
                if settings().target == Target::Pulley64 { "pulley32" } else { "pulley64" },
                settings().target.triple()
            ),
            false,
        ),
        (
            "another profile",
            debug,
            "update for guest `add` refused: precompiled with profile Debug, the firmware's engine with profile \
             Size; build the update with the firmware's build.rs settings"
                .into(),
            false,
        ),
        (
            "another kind",
            component,
            "update for guest `add` refused: precompiled with kind a component, the firmware's engine with kind a \
             core module; build the update with the firmware's build.rs settings"
                .into(),
            false,
        ),
        (
            "another export",
            other_export,
            "update for guest `add` refused: another interface: the package has export `add_twice` where the \
             firmware has export `add_with_extra`; an update must keep the imports and exports the firmware was \
             built for, or ship with a new firmware"
                .into(),
            false,
        ),
        (
            "another type",
            other_type,
            "update for guest `add` refused: another interface: export `add_with_extra` is `(i32, i32) -> i64` in \
             the package, `(i32, i32) -> i32` in the firmware; an update must keep the imports and exports the \
             firmware was built for, or ship with a new firmware"
                .into(),
            false,
        ),
        (
            "another guest",
            other_guest,
            "update for guest `add` refused: the package is for guest `log`; install it in that guest's slots".into(),
            false,
        ),
        (
            "another Wasmtime",
            other_wasmtime,
            format!(
                "update for guest `add` refused: precompiled by Wasmtime 47{}, this firmware runs Wasmtime \
                 {WASMTIME_VERSION}; build the update with the wasm-embed-build version the firmware was built with",
                &WASMTIME_VERSION[2..]
            ),
            false,
        ),
        // Last: its header is whole and signed, so the install erases the slot first.
        ("a flipped byte in the code", flipped_code, bad_signature.into(), true),
    ];
    for (what, bytes, message, may_erase) in cases {
        if !what.contains("replay of") && !what.contains("running package") {
            assert_eq!(refusal(&bytes), message, "{what}");
        }
        let fallback = flash(&mut slots).bytes()[..SLOT].to_vec();
        let state = slots.state(0);
        let error = install(&mut slots, &bytes).err().unwrap_or_else(|| panic!("{what} was installed"));
        assert_eq!(error.to_string(), message, "{what}, installed");
        assert!(!message.contains('\n'));
        if !may_erase {
            assert!(flash(&mut slots).bytes()[..SLOT] == fallback[..], "{what}: the fallback slot was changed");
            assert_eq!(slots.state(0), state, "{what}");
        }
        // The refused package has no marker: the good update still runs, now and after a
        // restart.
        assert_eq!(slots.current().unwrap().version(), Version::new(1, 1, 0), "{what}");
        assert_eq!(run(&mut slots), 245, "{what}");
        let mut restarted = self::slots(flash(&mut slots).restart(), guest);
        assert_eq!(run(&mut restarted), 245, "{what}, restarted");
    }

    // Lengths the install itself refuses: a package too large for a slot, and bytes
    // beyond the announced length.
    let room = SLOT - PACKAGE_OFFSET;
    assert_eq!(
        slots.install(room + 1).err().unwrap().to_string(),
        format!(
            "update for guest `add` refused: {} bytes do not fit its {room}-byte slot; give the partition more flash",
            room + 1
        )
    );
    let mut short = slots.install(good.len() - 1).unwrap();
    let error = short.write(&good).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "update for guest `add` not installed: {} bytes were written of the {} announced; send the whole package \
             again",
            good.len(),
            good.len() - 1
        )
    );
    let mut unfinished = slots.install(good.len()).unwrap();
    unfinished.write(&good[..good.len() - 10]).unwrap();
    assert_eq!(
        unfinished.finish().unwrap_err().to_string(),
        format!(
            "update for guest `add` not installed: {} bytes were written of the {} announced; send the whole package \
             again",
            good.len() - 10,
            good.len()
        )
    );
    assert_eq!(run(&mut slots), 245);
    // And the good one installs after all that.
    install(&mut slots, &good).unwrap();
    assert_eq!(run(&mut slots), 345);
}

#[test]
fn no_package_older_than_the_image_s_own_guest_installs_or_runs() {
    // The image carries 2.0.0; a replayed, signed 1.0.0 is refused with empty slots.
    let mut slots = slots(Nor::new(2 * SLOT), updatable_at(Version::new(2, 0, 0)));
    let old = add_package(Version::new(1, 0, 0), 100);
    assert_eq!(
        install(&mut slots, &old).unwrap_err().to_string(),
        "update for guest `add` refused: version 1.0.0 is older than 2.0.0, the lowest this device accepts \
         (rollback); send a package of version 2.0.0 or newer"
    );
    assert_eq!(run(&mut slots), 45);

    // A device running 1.0.0 from a slot is reflashed with a firmware whose own guest is
    // 2.0.0: the image's guest runs, not the older package.
    let guest = updatable();
    let mut slots = self::slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &old).unwrap();
    assert_eq!(run_and_confirm(&mut slots), 145);
    let mut reflashed = self::slots(flash(&mut slots).restart(), updatable_at(Version::new(2, 0, 0)));
    assert_eq!(reflashed.current().unwrap().slot(), None);
    assert_eq!(run(&mut reflashed), 45);
}

#[test]
fn the_floor_passes_over_slots_below_it_and_a_damaged_slot_is_passed_over() {
    let guest = updatable();
    let mut slots = two_confirmed(guest);
    // With both slots whole: the floor alone decides.
    slots.set_floor(Version::new(1, 1, 0));
    assert_eq!(slots.current().unwrap().slot(), Some(1));
    slots.set_floor(Version::new(1, 1, 1));
    assert_eq!(slots.current().unwrap().slot(), None, "1.1.0 is below the floor");
    slots.set_floor(Version::new(1, 0, 0));
    assert_eq!(slots.current().unwrap().slot(), Some(1));
    // A floor only rises what installs: 1.0.5 is below what runs.
    assert!(matches!(install(&mut slots, &add_package(Version::new(1, 0, 5), 1)), Err(UpdateError::Older { .. })));

    // A bit of slot 1's code flips (bits only clear on NOR): slot 0 runs, then the
    // built-in guest once slot 0 is damaged too.
    assert_eq!(run(&mut slots), 245);
    damage(flash(&mut slots).bytes(), SLOT + 1500);
    assert_eq!(slots.current().unwrap().slot(), Some(0));
    assert_eq!(run(&mut slots), 145);
    damage(flash(&mut slots).bytes(), 1500);
    assert_eq!(slots.current().unwrap().slot(), None);
    assert_eq!(run(&mut slots), 45);
}

#[test]
fn a_marker_whose_crc_does_not_match_is_no_marker() {
    let guest = updatable();
    let mut slots = slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &add_package(Version::new(1, 0, 0), 100)).unwrap();
    assert_eq!(slots.state(0), SlotState::Pending);
    // A bit of the length cleared: still a length that fits the slot, still magic, so
    // only the CRC tells it from a marker.
    damage(flash(&mut slots).bytes(), 8);
    assert_eq!(slots.state(0), SlotState::Empty);
    assert!(slots.installed(0).is_none());
    assert_eq!(run(&mut slots), 45);
}

#[test]
fn a_power_cut_at_any_point_of_an_install_or_a_trial_leaves_the_last_confirmed_guest_to_run() {
    let guest = updatable();
    let first = add_package(Version::new(1, 0, 0), 100);
    let second = add_package(Version::new(2, 0, 0), 200);
    let fresh = || {
        let mut slots = slots(Nor::new(2 * SLOT), guest);
        install(&mut slots, &first).unwrap();
        assert_eq!(run_and_confirm(&mut slots), 145);
        slots
    };
    // How many flash operations a whole install, then a trial and its confirmation, take.
    let mut probe = fresh();
    let before = flash(&mut probe).budget;
    install(&mut probe, &second).unwrap();
    let installing = before - flash(&mut probe).budget;
    run_and_confirm(&mut probe);
    let operations = before - flash(&mut probe).budget;
    assert!(installing > 20 && operations == installing + 2, "{installing}, {operations}");

    for cut in 0..=operations {
        let mut slots = fresh();
        flash(&mut slots).budget = cut;
        let result = install(&mut slots, &second).and_then(|_| {
            let current = slots.current()?;
            let engine = wasm_embed::engine(current.settings())?;
            drop(current.load(&engine)?);
            slots.confirm()
        });
        // The restart: the chip keeps what it holds.
        let mut restarted = self::slots(flash(&mut slots).restart(), guest);
        let expected = if cut == operations {
            assert!(result.is_ok(), "cut after {cut} of {operations}: {result:?}");
            245
        } else {
            let error = result.expect_err("the power went");
            assert!(matches!(error, UpdateError::Flash { .. }), "{error}");
            145
        };
        assert_eq!(run(&mut restarted), expected, "cut after {cut} of {operations} operations");
        if cut == installing {
            // Installed, and the power went as its trial began: tried, not confirmed.
            assert_eq!(restarted.state(1), SlotState::Reverted);
        }
    }
}

#[test]
fn a_flash_that_does_not_erase_or_write_is_an_error_and_nothing_changes() {
    let guest = updatable();
    let good = add_package(Version::new(1, 0, 0), 100);
    let mut flash = Nor::new(2 * SLOT);
    flash.bytes()[100] = 0x12;
    flash.erase_works = false;
    let mut slots = slots(flash, guest);
    let error = install(&mut slots, &good).unwrap_err();
    assert_eq!(
        error.to_string(),
        "update for guest `add` not installed: its slot is not erased at 0x64 after an erase; the previous guest \
         still runs: check the flash driver's erase and the partition's bounds"
    );
    self::flash(&mut slots).erase_works = true;
    self::flash(&mut slots).budget = 5;
    let error = install(&mut slots, &good).err().unwrap();
    assert!(
        error.to_string().starts_with("update for guest `add` not installed: the flash failed to write at 0x"),
        "{error}"
    );
    assert_eq!(slots.current().unwrap().slot(), None);
    assert_eq!(run(&mut slots), 45);
}

#[test]
fn the_host_flash_stand_in_refuses_what_a_chip_refuses() {
    let mut nor = Nor::new(SECTOR);
    nor.write(0, &[0x0f; 4]).unwrap();
    assert_eq!(nor.write(0, &[0x03; 4]), Err(NorFlashErrorKind::Other), "a word written twice");
    assert_eq!(nor.write(SECTOR as u32 - 4, &[0; 8]), Err(NorFlashErrorKind::OutOfBounds), "past the end");
    assert_eq!(nor.erase(0, 2 * SECTOR as u32), Err(NorFlashErrorKind::OutOfBounds));
    assert_eq!(nor.bytes()[..4], [0x0f; 4]);
}

#[test]
fn a_partition_that_cannot_hold_two_slots_is_one_line_with_the_fix() {
    let fix = "give Slots::new a partition of an even number of the flash's erase pages, inside the flash, mapped at \
               a 16-byte-aligned address, on a flash whose write size is a power of two up to 64 bytes";
    for (partition, reason) in [
        (0..5 * SECTOR as u32, "its length is not an even number of the flash's erase blocks"),
        (100..2 * SECTOR as u32 + 100, "it does not start on an erase boundary of the flash"),
        (0..4 * SLOT as u32, "it ends beyond the flash's capacity"),
    ] {
        let flash = Nor::new(2 * SLOT);
        let mapped = flash.memory;
        // SAFETY: as in `slots`.
        let error = unsafe { Slots::new(flash, partition, mapped, updatable(), firmware_key()) }.err().unwrap();
        assert_eq!(error.to_string(), format!("update slots for guest `add` unusable: {reason}; {fix}"));
    }
    // A flash whose erase block is smaller than a slot's state and smallest package.
    struct Tiny(Nor);
    impl ErrorType for Tiny {
        type Error = NorFlashErrorKind;
    }
    impl ReadNorFlash for Tiny {
        const READ_SIZE: usize = 1;
        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            self.0.read(offset, bytes)
        }
        fn capacity(&self) -> usize {
            self.0.capacity()
        }
    }
    impl NorFlash for Tiny {
        const WRITE_SIZE: usize = 4;
        const ERASE_SIZE: usize = 64;
        fn erase(&mut self, _: u32, _: u32) -> Result<(), Self::Error> {
            unreachable!()
        }
        fn write(&mut self, _: u32, _: &[u8]) -> Result<(), Self::Error> {
            unreachable!()
        }
    }
    let flash = Nor::new(SECTOR);
    let mapped = flash.memory;
    // SAFETY: as in `slots`.
    let error = unsafe { Slots::new(Tiny(flash), 0..128, mapped, updatable(), firmware_key()) }.err().unwrap();
    assert_eq!(
        error.to_string(),
        format!("update slots for guest `add` unusable: a slot cannot hold its state and the smallest package; {fix}")
    );
}

#[test]
fn the_slot_a_live_module_runs_from_is_never_erased() {
    let guest = updatable();
    let mut slots = slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &add_package(Version::new(1, 0, 0), 100)).unwrap();
    let current = slots.current().unwrap();
    let engine = wasm_embed::engine(current.settings()).unwrap();
    let module = current.load(&engine).unwrap();
    slots.confirm().unwrap();
    // The next install goes to slot 1: allowed while slot 0 runs.
    install(&mut slots, &add_package(Version::new(1, 1, 0), 200)).unwrap();
    // Confirmed without a trial, but not below the floor.
    slots.set_floor(Version::new(1, 1, 1));
    assert!(matches!(slots.confirm_pending(1), Err(UpdateError::Older { .. })));
    slots.set_floor(Version::ZERO);
    slots.confirm_pending(1).unwrap();
    // The one after would erase slot 0, which still runs.
    let third = add_package(Version::new(1, 2, 0), 300);
    let error = install(&mut slots, &third).err().unwrap();
    assert_eq!(
        error.to_string(),
        "update for guest `add` not installed: the guest runs from slot 0, which the install would erase; drop its \
         handles and module first"
    );
    assert_eq!(slots.state(0), SlotState::Confirmed, "not erased");
    drop(module);
    install(&mut slots, &third).unwrap();
    assert_eq!(run(&mut slots), 345);
}

#[test]
fn safe_code_cannot_erase_or_write_the_partition_through_the_slots() {
    let guest = updatable();
    let flash = Nor::new(2 * SLOT + SECTOR);
    let mapped = flash.memory;
    // SAFETY: as in `slots`.
    let mut slots = unsafe { Slots::new(flash, 0..2 * SLOT as u32, mapped, guest, firmware_key()) }.unwrap();
    install(&mut slots, &add_package(Version::new(1, 0, 0), 100)).unwrap();
    let mut outside = slots.flash();
    for (what, result) in [
        ("erase", outside.erase(0, SECTOR as u32)),
        ("erase across its end", outside.erase(SLOT as u32, 2 * SLOT as u32 + SECTOR as u32)),
        ("write", outside.write(2 * SLOT as u32 - 4, &[0; 8])),
    ] {
        let error = result.expect_err(what);
        assert_eq!(embedded_storage::nor_flash::NorFlashError::kind(&error), NorFlashErrorKind::OutOfBounds, "{what}");
    }
    // Nor a range that ends before it starts.
    assert!(outside.erase(3 * SLOT as u32, 2 * SLOT as u32).is_err());
    // Outside it, the driver does what it is asked.
    outside.erase(2 * SLOT as u32, 2 * SLOT as u32 + SECTOR as u32).unwrap();
    outside.write(2 * SLOT as u32, &[1, 2, 3, 4]).unwrap();
    let mut read = [0; 4];
    outside.read(2 * SLOT as u32, &mut read).unwrap();
    assert_eq!(read, [1, 2, 3, 4]);
    assert_eq!(run(&mut slots), 145);
}

#[test]
fn random_bytes_and_mutations_of_a_valid_package_never_verify_and_never_panic() {
    let guest = updatable();
    let good = add_package(Version::new(1, 0, 0), 100);
    let key = firmware_key();
    assert!(Package::verify(&good, guest, &key, Version::ZERO).is_ok());
    // xorshift64*: deterministic, so a failure can be replayed.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let runs: usize = std::env::var("UPDATE_MUTATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(3000);
    for run in 0..runs {
        let mut bytes = good.clone();
        match next() % 6 {
            0 => {
                let at = next() as usize % bytes.len();
                bytes[at] ^= 1 << (next() % 8);
            }
            1 => bytes.truncate(next() as usize % bytes.len()),
            2 => {
                for _ in 0..1 + next() % 16 {
                    let at = next() as usize % bytes.len();
                    bytes[at] = next() as u8;
                }
            }
            3 => bytes.insert(next() as usize % bytes.len(), next() as u8),
            4 => bytes = (0..next() % 4096).map(|_| next() as u8).collect(),
            _ => {
                // Only the header's fields, which are read before the signature.
                let at = next() as usize % 64;
                bytes[at] = next() as u8;
            }
        }
        if bytes == good {
            continue;
        }
        assert!(
            Package::verify(&bytes, guest, &key, Version::ZERO).is_err(),
            "mutation {run} verified"
        );
    }
}

#[test]
fn key_files_say_which_half_they_hold_and_a_secret_is_never_taken_as_public() {
    let secret = key(7);
    let public = secret.public_key();
    assert_eq!(read_public_key(&public.to_file_text()).unwrap(), public);
    assert_eq!(read_secret_key(&secret.to_file_text()).unwrap().public_key(), public);
    assert_eq!(read_public_key(&secret.to_file_text()).err(), Some(KeyFileError::SecretGivenAsPublic));
    assert_eq!(read_secret_key(&public.to_file_text()).err().map(|e| e.to_string()).as_deref(), Some(
        "it holds a public key, which cannot sign; give the secret key file"
    ));
    assert_eq!(read_public_key("hello").err(), Some(KeyFileError::NotAKey));
    // Signing twice, or for another key, is refused.
    let body = unsigned(&Spec::default(), &secret);
    let signed = secret.sign(&body).unwrap();
    assert_eq!(secret.sign(&signed).err(), Some("it is signed already"));
    assert!(key(8).sign(&body).err().unwrap().starts_with("it was built for another key"));
    // So is an unsigned package whose .cwasm is not the one its header records.
    let mut swapped = body.clone();
    let last = swapped.len() - 1;
    swapped[last] ^= 1;
    assert_eq!(secret.sign(&swapped).err(), Some("its .cwasm is not the one its header records"));
}

#[test]
fn versions_order_as_semantic_versions_and_fit_a_64_bit_counter_exactly() {
    assert_eq!(Version::parse("1.2.3"), Some(Version::new(1, 2, 3)));
    assert_eq!(Version::parse("1.2.3-rc.1"), None);
    assert_eq!(Version::parse("1.2"), None);
    assert_eq!(Version::parse("20241105.0.0"), None, "a date as the major version does not fit");
    assert_eq!(Version::parse("2097151.2097151.2097151"), Some(Version::new(2_097_151, 2_097_151, 2_097_151)));
    assert!(Version::new(1, 10, 0) > Version::new(1, 9, 9));
    for v in [
        Version::new(0, 0, 1),
        Version::new(1, 10, 0),
        Version::new(7, 0, 65_535),
        Version::new(Version::MAX_PART, Version::MAX_PART, Version::MAX_PART),
    ] {
        assert_eq!(Version::from_u64(v.to_u64().unwrap()), Some(v));
    }
    assert_eq!(Version::new(20_241_105, 0, 0).to_u64(), None);
    assert_eq!(Version::from_u64(u64::MAX), None);
    assert!(Version::new(1, 10, 0).to_u64() > Version::new(1, 9, 9).to_u64());
    // The build cannot write such a package either.
    let cwasm = wasm_embed::precompile(&settings(), &wat::parse_str(ADD).unwrap()).unwrap();
    let too_new = PackageBuilder {
        name: "add",
        version: Version::new(20_241_105, 0, 0),
        settings: settings(),
        component: false,
        interface: INTERFACE,
        cwasm: &cwasm,
    };
    assert_eq!(
        too_new.unsigned(&firmware_key()).err(),
        Some("its version has a part above 2097151, which no anti-rollback counter holds")
    );
}

#[test]
fn a_package_records_its_cwasm_digest_and_a_verified_package_says_what_it_holds() {
    let guest = updatable();
    let bytes = add_package(Version::new(1, 0, 0), 100);
    let package = Package::verify(&bytes, guest, &firmware_key(), Version::ZERO).unwrap();
    let cwasm = wasm_embed::precompile(&settings(), &wat::parse_str(&add_plus(100)).unwrap()).unwrap();
    assert_eq!(package.cwasm(), &cwasm[..]);
    use sha2::Digest;
    assert_eq!(package.cwasm_digest()[..], sha2::Sha512::digest(&cwasm)[..32]);
    assert_eq!((package.name(), package.version(), package.wasmtime()), ("add", Version::new(1, 0, 0), WASMTIME_VERSION));
    assert_eq!(package.settings().profile, Profile::Size);
    assert!(bytes.len() - cwasm.len() <= 256, "{} bytes beyond the .cwasm", bytes.len() - cwasm.len());
}
