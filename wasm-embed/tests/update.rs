//! Updates in the field: a signed package installs into a flash slot through a NOR
//! flash that behaves as a chip does (erase to 0xFF, writes only clear bits), runs in
//! place through the built-in guest's path, and every bad package is refused with one
//! line, leaving the last good guest to run, power cuts included.

mod common;

use common::{ADD, guest, settings};
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use std::ptr::NonNull;
use wasm_embed::__private::GuestInstance;
use wasm_embed::update::{
    KeyFileError, Package, PackageBuilder, PublicKey, SecretKey, Slots, UpdateError, Updatable, Version,
    read_public_key, read_secret_key,
};
use wasm_embed::{Guest, Settings};
use wasmtime::Func;

const INTERFACE: &str = "import host.extra: () -> i32\nexport add_with_extra: (i32, i32) -> i32\n";
const SECTOR: usize = 4096;
const SLOT: usize = 4 * SECTOR;

/// The add guest with `bonus` added to its result: what an update changes.
fn add_plus(bonus: i32) -> String {
    ADD.replace("i32.add call $extra i32.add", &format!("i32.add call $extra i32.add i32.const {bonus} i32.add"))
}

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

/// The built-in add guest, updatable at version 0.1.0.
fn updatable() -> &'static Updatable {
    let guest = guest("add", ADD, settings());
    Box::leak(Box::new(Updatable::new(guest, Version::new(0, 1, 0), INTERFACE)))
}

struct Spec<'a> {
    wat: String,
    version: Version,
    settings: Settings,
    interface: &'a str,
    name: &'a str,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            wat: add_plus(100),
            version: Version::new(1, 0, 0),
            settings: settings(),
            interface: INTERFACE,
            name: "add",
        }
    }
}

/// The package the build writes for `spec`, unsigned, for `key`'s public half.
fn unsigned(spec: &Spec, key: &SecretKey) -> Vec<u8> {
    let cwasm = wasm_embed::precompile(&spec.settings, &wat::parse_str(&spec.wat).unwrap()).unwrap();
    PackageBuilder {
        name: spec.name,
        version: spec.version,
        settings: spec.settings,
        component: false,
        interface: spec.interface,
        cwasm: &cwasm,
    }
    .unsigned(&key.public_key())
    .unwrap()
}

fn package(spec: &Spec) -> Vec<u8> {
    key(1).sign(&unsigned(spec, &key(1))).unwrap()
}

fn firmware_key() -> PublicKey {
    key(1).public_key()
}

/// A NOR flash in RAM, as a chip behaves: erase sets a sector to 0xFF, a write can only
/// clear bits. After `budget` operations the power goes: the operation in flight does
/// half of its work and fails, and so does every later one.
struct Nor {
    memory: NonNull<u8>,
    len: usize,
    budget: usize,
    erase_works: bool,
}

impl Nor {
    fn new(len: usize) -> Nor {
        let words: &'static mut [u128] = Box::leak(vec![u128::MAX; len / 16].into_boxed_slice());
        Nor {
            memory: NonNull::new(words.as_mut_ptr().cast()).unwrap(),
            len,
            budget: usize::MAX,
            erase_works: true,
        }
    }

    /// The same chip after a restart: what it holds survives.
    fn restart(&self) -> Nor {
        Nor { budget: usize::MAX, ..*self }
    }

    fn bytes(&self) -> &mut [u8] {
        // SAFETY: the leaked buffer lives for good; tests touch it from one thread.
        unsafe { std::slice::from_raw_parts_mut(self.memory.as_ptr(), self.len) }
    }

    /// Spends one operation; `false` when the power is gone.
    fn spend(&mut self) -> bool {
        let alive = self.budget > 0;
        self.budget = self.budget.saturating_sub(1);
        alive
    }
}

impl ErrorType for Nor {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for Nor {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let offset = offset as usize;
        bytes.copy_from_slice(&self.bytes()[offset..offset + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.len
    }
}

impl NorFlash for Nor {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        assert!(from as usize % SECTOR == 0 && to as usize % SECTOR == 0, "unaligned erase");
        for sector in (from as usize..to as usize).step_by(SECTOR) {
            let alive = self.spend();
            if !self.erase_works {
                continue;
            }
            let end = if alive { sector + SECTOR } else { sector + SECTOR / 2 };
            self.bytes()[sector..end].fill(0xff);
            if !alive {
                return Err(NorFlashErrorKind::Other);
            }
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let offset = offset as usize;
        assert!(offset % 4 == 0 && bytes.len() % 4 == 0, "unaligned write");
        let alive = self.spend();
        let done = if alive { bytes.len() } else { bytes.len() / 2 };
        for (cell, byte) in self.bytes()[offset..].iter_mut().zip(&bytes[..done]) {
            *cell &= byte;
        }
        if alive { Ok(()) } else { Err(NorFlashErrorKind::Other) }
    }
}

/// Two slots at the start of `flash`.
fn slots(flash: Nor, guest: &'static Updatable) -> Slots<Nor> {
    let mapped = flash.memory;
    // SAFETY: the test's flash is mapped at its buffer for good, and written only
    // through these slots.
    unsafe { Slots::new(flash, 0..2 * SLOT as u32, mapped, guest, firmware_key()) }.unwrap()
}

/// Installs `package` in pieces of 7 bytes, as a UART would deliver it.
fn install(slots: &mut Slots<Nor>, package: &[u8], floor: Version) -> Result<Version, UpdateError> {
    let mut install = slots.install(package.len(), floor)?;
    for piece in package.chunks(7) {
        install.write(piece)?;
    }
    install.finish()
}

/// Loads what the slots say runs now and calls `add_with_extra(1, 2)` with `extra` 42.
fn run(slots: &Slots<Nor>, floor: Version) -> u32 {
    let current = slots.current(floor);
    let engine = wasm_embed::engine(current.settings()).unwrap();
    let module = current.load(&engine).unwrap();
    let guest: &'static Guest = module.guest();
    let mut add = GuestInstance::new(guest, &module, (), |store| [Func::wrap(store, || 42u32).into()]).unwrap();
    let func = add.func::<(u32, u32), u32>("add_with_extra").unwrap();
    add.call(&func, (1, 2)).unwrap()
}

#[test]
fn a_signed_update_installs_in_pieces_and_runs_in_place_where_the_built_in_guest_ran() {
    let guest = updatable();
    let flash = Nor::new(2 * SLOT);
    let memory = flash.memory;
    let mut slots = slots(flash, guest);
    // Empty slots: the guest built into the image runs.
    assert_eq!(slots.current(Version::ZERO).slot(), None);
    assert_eq!(slots.current(Version::ZERO).version(), Version::new(0, 1, 0));
    assert_eq!(run(&slots, Version::ZERO), 45);

    let update = package(&Spec::default());
    assert_eq!(install(&mut slots, &update, Version::ZERO).unwrap(), Version::new(1, 0, 0));
    let current = slots.current(Version::ZERO);
    assert_eq!((current.slot(), current.version()), (Some(0), Version::new(1, 0, 0)));
    assert_eq!(run(&slots, Version::ZERO), 145);

    // In place: the module's code is the slot's bytes.
    let engine = wasm_embed::engine(current.settings()).unwrap();
    let module = current.load(&engine).unwrap();
    let cwasm = wasm_embed::__private::module_of(&module).image_range();
    let slot = memory.as_ptr() as usize..memory.as_ptr() as usize + SLOT;
    assert!(slot.contains(&(cwasm.start as usize)), "the module runs from the slot, not a copy");
    drop(module);

    // The next update goes to the other slot, and wins by its sequence number.
    let newer = package(&Spec {
        wat: add_plus(200),
        version: Version::new(1, 1, 0),
        ..Spec::default()
    });
    install(&mut slots, &newer, Version::ZERO).unwrap();
    assert_eq!(slots.current(Version::ZERO).slot(), Some(1));
    assert_eq!(run(&slots, Version::ZERO), 245);

    // After a restart the newest still runs.
    let restarted = self::slots(slots.flash().restart(), guest);
    assert_eq!(run(&restarted, Version::ZERO), 245);
}

/// What `Package::verify` says of `bytes` for the add guest and the firmware's key.
fn refusal(bytes: &[u8]) -> String {
    let guest = updatable();
    Package::verify(bytes, guest, &firmware_key(), Version::new(1, 0, 0))
        .err()
        .expect("a bad package must be refused")
        .to_string()
}

#[test]
fn every_kind_of_bad_package_is_refused_with_one_line_and_the_good_update_still_runs() {
    let guest = updatable();
    let mut slots = slots(Nor::new(2 * SLOT), guest);
    let good = package(&Spec::default());
    install(&mut slots, &good, Version::ZERO).unwrap();
    let floor = Version::new(1, 0, 0);

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x01;
    let other_key = key(2).sign(&unsigned(&Spec::default(), &key(2))).unwrap();
    // Claims the firmware's key but is signed with another: caught by the signature.
    let mut forged = unsigned(&Spec::default(), &key(1));
    let signature = key(2).sign(&unsigned(&Spec::default(), &key(2))).unwrap();
    forged.extend_from_slice(&signature[signature.len() - 64..]);
    let older = package(&Spec {
        version: Version::new(0, 9, 0),
        ..Spec::default()
    });
    let fuel = package(&Spec {
        settings: Settings {
            fuel: Some(1000),
            ..settings()
        },
        ..Spec::default()
    });
    let other_export = package(&Spec {
        wat: add_plus(1).replace("add_with_extra", "add_twice"),
        interface: "import host.extra: () -> i32\nexport add_twice: (i32, i32) -> i32\n",
        ..Spec::default()
    });
    let other_type = package(&Spec {
        interface: "import host.extra: () -> i32\nexport add_with_extra: (i32, i32) -> i64\n",
        ..Spec::default()
    });
    let other_guest = package(&Spec {
        name: "log",
        ..Spec::default()
    });
    let mut other_wasmtime = unsigned(&Spec::default(), &key(1));
    let at = other_wasmtime.windows(6).position(|w| w == b"48.0.8").unwrap();
    other_wasmtime[at..at + 6].copy_from_slice(b"47.0.1");
    let other_wasmtime = key(1).sign(&other_wasmtime).unwrap();

    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "one flipped byte",
            flipped,
            "update for guest `add` refused: bad signature, the package was changed after it was signed; send the \
             package as `cargo wasm-embed sign` wrote it"
                .into(),
        ),
        (
            "another key",
            other_key,
            "update for guest `add` refused: signed with a key this firmware does not know; sign it with the key \
             whose public half the firmware was built with (Builder::update_key)"
                .into(),
        ),
        (
            "another key under this key's ID",
            forged,
            "update for guest `add` refused: bad signature, the package was changed after it was signed; send the \
             package as `cargo wasm-embed sign` wrote it"
                .into(),
        ),
        (
            "truncated",
            good[..good.len() - 100].to_vec(),
            format!(
                "update for guest `add` refused: truncated or malformed package ({} bytes, its header says {}); send \
                 the whole .update file",
                good.len() - 100,
                good.len()
            ),
        ),
        (
            "not a package",
            b"\x7fELF and then some bytes that are no package at all".repeat(4),
            "update for guest `add` refused: malformed package: it does not start as a wasm-embed update package \
             does; send the .update file the build or `cargo wasm-embed sign` wrote"
                .into(),
        ),
        (
            "an older version (a replay)",
            older,
            "update for guest `add` refused: version 0.9.0 is older than 1.0.0, the lowest this device accepts \
             (rollback); send a package of version 1.0.0 or newer"
                .into(),
        ),
        (
            "other settings",
            fuel,
            "update for guest `add` refused: precompiled with fuel on, the firmware's engine with fuel off; build the \
             update with the firmware's build.rs settings"
                .into(),
        ),
        (
            "another export",
            other_export,
            "update for guest `add` refused: another interface: the package has export `add_twice` where the \
             firmware has export `add_with_extra`; an update must keep the imports and exports the firmware was \
             built for, or ship with a new firmware"
                .into(),
        ),
        (
            "another type",
            other_type,
            "update for guest `add` refused: another interface: export `add_with_extra` is `(i32, i32) -> i64` in \
             the package, `(i32, i32) -> i32` in the firmware; an update must keep the imports and exports the \
             firmware was built for, or ship with a new firmware"
                .into(),
        ),
        (
            "another guest",
            other_guest,
            "update for guest `add` refused: the package is for guest `log`; install it in that guest's slots".into(),
        ),
        (
            "another Wasmtime",
            other_wasmtime,
            "update for guest `add` refused: precompiled by Wasmtime 47.0.1, this firmware runs Wasmtime 48.0.8; \
             build the update with the wasm-embed-build version the firmware was built with"
                .into(),
        ),
    ];
    for (what, bytes, message) in cases {
        assert_eq!(refusal(&bytes), message, "{what}");
        let error = install(&mut slots, &bytes, floor).err().unwrap_or_else(|| panic!("{what} was installed"));
        assert_eq!(error.to_string(), message, "{what}, installed");
        assert!(!message.contains('\n'));
        // The refused package has no marker: the good update still runs.
        assert_eq!(slots.current(floor).version(), Version::new(1, 0, 0), "{what}");
        assert_eq!(run(&slots, floor), 145, "{what}");
    }
}

#[test]
fn a_power_cut_at_any_point_of_an_install_leaves_the_last_good_guest_to_run() {
    let guest = updatable();
    let first = package(&Spec::default());
    let second = package(&Spec {
        wat: add_plus(200),
        version: Version::new(2, 0, 0),
        ..Spec::default()
    });
    // How many flash operations a whole install takes.
    let mut probe = slots(Nor::new(2 * SLOT), guest);
    install(&mut probe, &first, Version::ZERO).unwrap();
    let before = probe.flash().budget;
    install(&mut probe, &second, Version::ZERO).unwrap();
    let operations = before - probe.flash().budget;
    assert!(operations > 20, "{operations}");

    for cut in 0..=operations {
        let mut slots = slots(Nor::new(2 * SLOT), guest);
        install(&mut slots, &first, Version::ZERO).unwrap();
        slots.flash().budget = cut;
        let result = install(&mut slots, &second, Version::ZERO);
        // The restart: the chip keeps what it holds.
        let restarted = self::slots(slots.flash().restart(), guest);
        let expected = if cut == operations {
            assert!(result.is_ok(), "cut after {cut} of {operations}: {result:?}");
            245
        } else {
            let error = result.expect_err("the power went");
            assert!(matches!(error, UpdateError::Flash { .. }), "{error}");
            145
        };
        assert_eq!(run(&restarted, Version::ZERO), expected, "cut after {cut} of {operations} operations");
    }
}

#[test]
fn a_flash_that_does_not_erase_or_write_is_an_error_and_nothing_changes() {
    let guest = updatable();
    let good = package(&Spec::default());
    let mut flash = Nor::new(2 * SLOT);
    flash.bytes()[100] = 0x12;
    flash.erase_works = false;
    let mut slots = slots(flash, guest);
    let error = slots.install(good.len(), Version::ZERO).err().unwrap();
    assert_eq!(
        error.to_string(),
        "update for guest `add` not installed: its slot is not erased at 0x64 after an erase; the previous guest \
         still runs: check the flash driver's erase and the partition's bounds"
    );
    slots.flash().erase_works = true;
    slots.flash().budget = 5;
    let error = install(&mut slots, &good, Version::ZERO).err().unwrap();
    assert!(
        error.to_string().starts_with("update for guest `add` not installed: the flash failed to write at 0x"),
        "{error}"
    );
    assert_eq!(slots.current(Version::ZERO).slot(), None);
}

#[test]
fn a_slot_damaged_after_its_install_is_passed_over() {
    let guest = updatable();
    let mut slots = slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &package(&Spec::default()), Version::ZERO).unwrap();
    let second = package(&Spec {
        wat: add_plus(200),
        version: Version::new(1, 1, 0),
        ..Spec::default()
    });
    install(&mut slots, &second, Version::ZERO).unwrap();
    assert_eq!(run(&slots, Version::ZERO), 245);
    // A bit of slot 1's code flips (bits only clear on NOR): slot 0 runs, then the
    // built-in guest once slot 0 is damaged too.
    slots.flash().bytes()[SLOT + 1500] ^= 0x01;
    assert_eq!(slots.current(Version::ZERO).slot(), Some(0));
    assert_eq!(run(&slots, Version::ZERO), 145);
    slots.flash().bytes()[1500] ^= 0xff;
    assert_eq!(slots.current(Version::ZERO).slot(), None);
    assert_eq!(run(&slots, Version::ZERO), 45);
    // The floor passes over slots below it too.
    assert_eq!(slots.current(Version::new(3, 0, 0)).slot(), None);
}

#[test]
fn a_partition_that_cannot_hold_two_slots_is_one_line_with_the_fix() {
    let flash = Nor::new(2 * SLOT);
    let mapped = flash.memory;
    // SAFETY: as in `slots`.
    let error = unsafe { Slots::new(flash, 0..5 * SECTOR as u32, mapped, updatable(), firmware_key()) }.err().unwrap();
    assert_eq!(
        error.to_string(),
        "update slots for guest `add` unusable: its length is not an even number of the flash's erase blocks; give \
         Slots::new a partition of an even number of the flash's erase pages, inside the flash, mapped at a \
         16-byte-aligned address"
    );
}

#[test]
fn the_slot_a_live_module_runs_from_is_never_erased() {
    let guest = updatable();
    let mut slots = slots(Nor::new(2 * SLOT), guest);
    install(&mut slots, &package(&Spec::default()), Version::ZERO).unwrap();
    let current = slots.current(Version::ZERO);
    let engine = wasm_embed::engine(current.settings()).unwrap();
    let module = current.load(&engine).unwrap();
    // The next install goes to slot 1: allowed while slot 0 runs.
    let second = package(&Spec {
        version: Version::new(1, 1, 0),
        ..Spec::default()
    });
    install(&mut slots, &second, Version::ZERO).unwrap();
    // The one after would erase slot 0, which still runs.
    let third = package(&Spec {
        version: Version::new(1, 2, 0),
        ..Spec::default()
    });
    let error = slots.install(third.len(), Version::ZERO).err().unwrap();
    assert_eq!(
        error.to_string(),
        "update for guest `add` not installed: the guest runs from slot 0, which the install would erase; drop its \
         handles and module first"
    );
    drop(module);
    install(&mut slots, &third, Version::ZERO).unwrap();
    assert_eq!(slots.current(Version::ZERO).version(), Version::new(1, 2, 0));
}

#[test]
fn random_bytes_and_mutations_of_a_valid_package_never_verify_and_never_panic() {
    let guest = updatable();
    let good = package(&Spec::default());
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
}

#[test]
fn versions_order_as_semantic_versions_and_survive_a_64_bit_counter() {
    assert_eq!(Version::parse("1.2.3"), Some(Version::new(1, 2, 3)));
    assert_eq!(Version::parse("1.2.3-rc.1"), None);
    assert_eq!(Version::parse("1.2"), None);
    assert!(Version::new(1, 10, 0) > Version::new(1, 9, 9));
    for v in [Version::new(0, 0, 1), Version::new(1, 10, 0), Version::new(7, 0, 65_535)] {
        assert_eq!(Version::from_u64(v.to_u64()), v);
    }
    assert!(Version::new(1, 10, 0).to_u64() > Version::new(1, 9, 9).to_u64());
}
