//! libFuzzer's input goes to the SMP server on a device whose slot 0 holds a confirmed
//! package, after its first byte chooses how: as raw bytes on the UART; as well-framed
//! requests whose fields come from the input, so that the fuzzer reaches the handlers;
//! or as uploads of two validly signed newer packages whose pieces, offsets, state
//! writes, damaged frames and trials the input chooses, so that it reaches complete
//! installs. Nothing
//! may panic, and nothing may be erased or written outside slot 1, the slot an install
//! targets: not slot 0, which runs, nor the flash around the partition.
#![no_main]

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use libfuzzer_sys::fuzz_target;
use wasm_embed::smp::{BUF_SIZE, Image, Server, serial};
use wasm_embed::update::{PackageBuilder, SecretKey, Slots, Updatable, Version};
use wasm_embed::{Guest, Settings, Target};

const SECTOR: usize = 4096;
const SLOT: usize = 4 * SECTOR;
/// A guard sector, the two slots, a guard sector.
const FLASH: usize = SLOT * 2 + 2 * SECTOR;
const PARTITION: std::ops::Range<usize> = SECTOR..SECTOR + 2 * SLOT;
const TARGET: std::ops::Range<usize> = SECTOR + SLOT..SECTOR + 2 * SLOT;
const ADD: &str = r#"(module
  (import "host" "extra" (func $extra (result i32)))
  (func (export "add_with_extra") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add call $extra i32.add))"#;
const INTERFACE: &str = "import host.extra: () -> i32\nexport add_with_extra: (i32, i32) -> i32\n";

/// The device's flash, as the fuzzer finds it at each input: slot 0 confirmed.
struct Device {
    updatable: &'static Updatable,
    key: SecretKey,
    flash: Vec<u8>,
    /// Two newer packages, signed: what the third kind of input uploads.
    newer: [Vec<u8>; 2],
}

/// Off while the device is set up, when slot 0 is written.
static CHECKING: AtomicBool = AtomicBool::new(false);

static DEVICE: LazyLock<Device> = LazyLock::new(|| {
    let settings = Settings::new(Target::this_machine());
    let cwasm = wasm_embed::precompile(&settings, &wat::parse_str(ADD).unwrap()).unwrap();
    // SAFETY: Wasmtime's own output, unchanged.
    let guest: &'static Guest = Box::leak(Box::new(unsafe { Guest::new("add", Box::leak(cwasm.into_boxed_slice()), settings) }));
    let updatable = Box::leak(Box::new(Updatable::new(guest, Version::new(0, 1, 0), INTERFACE)));
    let key = SecretKey::from_seed([1; 32]);
    let package = |version| {
        let cwasm = wasm_embed::precompile(&settings, &wat::parse_str(ADD).unwrap()).unwrap();
        let unsigned = PackageBuilder {
            name: "add",
            version,
            settings,
            component: false,
            interface: INTERFACE,
            cwasm: &cwasm,
        }
        .unsigned(&key.public_key())
        .unwrap();
        key.sign(&unsigned).unwrap()
    };
    let newer = [package(Version::new(1, 1, 0)), package(Version::new(1, 2, 0))];
    let first = package(Version::new(1, 0, 0));
    let mut device = Device {
        updatable,
        newer,
        key,
        flash: vec![0xff; FLASH],
    };
    let mut slots = device.slots();
    let mut install = slots.install(first.len()).unwrap();
    install.write(&first).unwrap();
    install.finish().unwrap();
    slots.confirm_pending(0).unwrap();
    device.flash = slots_bytes();
    CHECKING.store(true, Ordering::Relaxed);
    device
});

/// The flash the device runs on: one buffer, copied from [`DEVICE`]'s at each input,
/// aligned as the slots want their partition mapped.
#[repr(align(16))]
struct Aligned([u8; FLASH]);
static mut MEMORY: Aligned = Aligned([0xff; FLASH]);

/// [`MEMORY`], whose one user at a time is the input being run.
fn memory() -> &'static mut [u8; FLASH] {
    // SAFETY: the fuzzer runs one input at a time, on one thread, and no reference made
    // here outlives the call that made it.
    unsafe { &mut (*(&raw mut MEMORY)).0 }
}

fn slots_bytes() -> Vec<u8> {
    memory().to_vec()
}

impl Device {
    fn slots(&self) -> Slots<Nor> {
        let memory = memory();
        memory.copy_from_slice(&self.flash);
        let mapped = std::ptr::NonNull::new(memory[PARTITION.start..].as_mut_ptr()).unwrap();
        let partition = PARTITION.start as u32..PARTITION.end as u32;
        // SAFETY: the buffer is mapped at its address for good and written only here.
        unsafe { Slots::new(Nor, partition, mapped, self.updatable, self.key.public_key()) }.unwrap()
    }
}

/// A NOR flash over [`MEMORY`] that fails the input when anything outside slot 1 is
/// erased or written.
struct Nor;

impl Nor {
    fn check(&self, from: usize, to: usize, what: &str) {
        assert!(
            !CHECKING.load(Ordering::Relaxed) ||
            TARGET.start <= from && to <= TARGET.end,
            "{what} of {from:#x}..{to:#x}, outside slot 1 ({:#x}..{:#x})",
            TARGET.start,
            TARGET.end
        );
    }
}

impl ErrorType for Nor {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for Nor {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = offset as usize;
        bytes.copy_from_slice(&memory()[at..at + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        FLASH
    }
}

impl NorFlash for Nor {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.check(from as usize, to as usize, "an erase");
        memory()[from as usize..to as usize].fill(0xff);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = offset as usize;
        self.check(at, at + bytes.len(), "a write");
        for (cell, byte) in memory()[at..at + bytes.len()].iter_mut().zip(bytes) {
            *cell &= byte;
        }
        Ok(())
    }
}

/// One request, framed.
fn frame(wire: &mut Vec<u8>, (op, group, id): (u8, u16, u8), sequence: u8, body: &[u8]) {
    let mut packet = vec![op | 1 << 3, 0];
    packet.extend_from_slice(&(body.len() as u16).to_be_bytes());
    packet.extend_from_slice(&group.to_be_bytes());
    packet.extend_from_slice(&[sequence, id]);
    packet.extend_from_slice(body);
    serial::encode(&packet, |line| wire.extend_from_slice(line));
}

/// What the third kind of input does, step by step.
enum Step {
    /// Bytes on the UART.
    Wire(Vec<u8>),
    /// The firmware asks what runs now, which starts the trial of a pending package.
    Current,
}

/// Uploads of the newer packages steered by the input: per step a size and an action
/// (the next piece of one package or the other; a piece at another offset; a state write
/// of the package's hash, a test or a confirmation; a frame with one byte damaged; the
/// firmware asking what runs).
fn uploads(data: &[u8], packages: &[Vec<u8>; 2]) -> Vec<Step> {
    use sha2::Digest;
    let mut steps = Vec::new();
    let mut offs = [0usize; 2];
    for (sequence, pair) in data.chunks(2).enumerate() {
        let [size, action] = pair else { break };
        let which = (action >> 7) as usize;
        let (package, off) = (&packages[which], &mut offs[which]);
        let hash = sha2::Sha256::digest(package);
        let size = (*size as usize * 4).clamp(1, 400);
        let mut body = Vec::new();
        let mut e = minicbor::Encoder::new(&mut body);
        let sequence = sequence as u8;
        let mut wire = Vec::new();
        match action % 5 {
            0 | 1 => {
                let at = if action % 5 == 0 { *off } else { off.wrapping_add(*action as usize) % package.len() };
                let piece = &package[at.min(package.len())..(at + size).min(package.len())];
                if at == 0 {
                    let _ = e.map(4).and_then(|e| e.str("len")?.u64(package.len() as u64)?.str("sha")?.bytes(&hash));
                } else {
                    let _ = e.map(2);
                }
                let _ = e.str("off").and_then(|e| e.u64(at as u64)?.str("data")?.bytes(piece));
                frame(&mut wire, (2, 1, 1), sequence, &body);
                if action % 5 == 0 {
                    *off = (at + piece.len()) % (package.len() + 1);
                }
            }
            2 => {
                let _ = e.map(2).and_then(|e| e.str("hash")?.bytes(&hash)?.str("confirm")?.bool(action & 8 != 0));
                frame(&mut wire, (2, 1, 0), sequence, &body);
            }
            3 => {
                let _ = e.map(2).and_then(|e| e.str("off")?.u64(*off as u64)?.str("data")?.bytes(&package[..size.min(package.len())]));
                frame(&mut wire, (2, 1, 1), sequence, &body);
                let at = 2 + (*action as usize % (wire.len() - 3));
                wire[at] ^= 1;
            }
            _ => {
                steps.push(Step::Current);
                continue;
            }
        }
        steps.push(Step::Wire(wire));
    }
    steps
}

/// Well-framed requests made of the input: per request a header byte choosing the
/// command, a length, and that many bytes of CBOR body.
fn requests(data: &[u8]) -> Vec<u8> {
    const COMMANDS: [(u8, u16, u8); 7] = [(2, 1, 1), (2, 1, 1), (2, 1, 1), (0, 1, 0), (2, 1, 0), (2, 0, 5), (0, 0, 6)];
    let mut wire = Vec::new();
    let mut rest = data;
    let mut sequence = 0u8;
    while let [choice, len, tail @ ..] = rest {
        let (op, group, id) = COMMANDS[*choice as usize % COMMANDS.len()];
        let (body, after) = tail.split_at((*len as usize * 4).min(tail.len()));
        frame(&mut wire, (op, group, id), sequence, body);
        sequence = sequence.wrapping_add(1);
        rest = after;
    }
    wire
}

fuzz_target!(|data: &[u8]| {
    let device = &*DEVICE;
    let mut slots = device.slots();
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let steps = match mode % 3 {
        0 => vec![Step::Wire(data.to_vec())],
        1 => vec![Step::Wire(requests(data))],
        _ => uploads(data, &device.newer),
    };
    let mut decoder = serial::Decoder::new(BUF_SIZE);
    let mut server = Server::new();
    let mut response = Vec::new();
    for step in steps {
        let wire = match step {
            Step::Wire(wire) => wire,
            Step::Current => {
                drop(slots.current().expect("the flash does not fail"));
                continue;
            }
        };
        for &byte in &wire {
            match decoder.push(byte) {
                None => continue,
                Some(Ok(request)) => {
                    server.handle(request, &mut [&mut slots as &mut dyn Image], &mut response);
                }
                Some(Err(damaged)) => server.damaged(damaged, &mut response),
            }
            assert!(response.is_empty() || response.len() >= 8, "a reply without its header");
        }
    }
    // Whatever happened, slot 0 still runs or a complete, signed upload in slot 1 does.
    let current = slots.current().expect("the flash does not fail");
    assert!(matches!(current.slot(), Some(0 | 1)), "slot 0 was lost");
});
