//! Guests updated in the field: the add guest built into the image runs, then packages
//! arrive over the board's UART as they would from a host or a radio. A newer add guest
//! is installed into a flash slot and runs in place; a damaged package, one signed with
//! another key, a replayed older one, one precompiled with other settings and one whose
//! export differs are each refused in one line while the good update goes on running;
//! the power is cut at several points of an install, and after each restart the last
//! good guest runs. `cargo run --release --example update`: the build signs every
//! package with a development key of its own, and `qemu-run.sh` connects what it wrote
//! (`update.uart`) to the UART.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;

use cortex_m_rt::entry;
use demo_firmware::flash::Flash;
use demo_firmware::uart::Uart;
use demo_firmware::{exit, guests, heap, say};
use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use wasm_embed::update::{Slots, UpdateError, Version};

/// Each slot: 8 erase pages of 4 KiB. Then a page for the lowest accepted version.
const SLOT: u32 = 32 * 1024;
const FLOOR: u32 = 2 * SLOT;
const FLASH: usize = (FLOOR + 4096) as usize;

struct Host;

impl guests::add::Host for Host {
    fn extra(&mut self) -> u32 {
        42
    }
}

#[entry]
fn main() -> ! {
    heap::init();
    let uart = Uart::new();
    // SAFETY: the only Flash, over the region its module reserves.
    let flash = unsafe { Flash::new(FLASH) };
    let mapped = flash.mapped();
    // SAFETY: the stand-in is mapped at BASE for good and written only through it.
    let slots = unsafe { Slots::new(PowerCut::new(flash), 0..FLOOR, mapped, &guests::add::UPDATABLE, guests::UPDATE_KEY) };
    let mut slots = slots.unwrap_or_else(|error| fail(&error));
    let mut floor = read_floor(slots.flash());
    say!("start: {}", run(&slots, floor));
    loop {
        let Some(frame) = uart.frame() else {
            say!("error: no package arrived over the UART; run this example with `cargo run --release --example update`");
            exit(false)
        };
        if frame.kind == 0 {
            say!("done: the lowest version accepted is {floor}");
            exit(true)
        }
        say!("received {} ({} bytes)", frame.label, frame.len);
        match frame.kind {
            2 => slots.flash().cut = Cut::After(frame.cut),
            3 => slots.flash().cut = Cut::AtMarker,
            _ => {}
        }
        match uart.install(&mut slots, frame.len as usize, floor) {
            Ok(version) => {
                // A real device would raise the floor once the new guest has proven
                // itself; this one raises it at once.
                floor = version;
                write_floor(slots.flash(), floor);
                say!("installed add {version}: {}", run(&slots, floor));
            }
            Err(error) => {
                say!("{error}");
                say!("still {}", run(&slots, floor));
            }
        }
    }
}

/// Loads what runs now and calls it.
fn run(slots: &Slots<PowerCut>, floor: Version) -> String {
    let current = slots.current(floor);
    let from = match current.slot() {
        Some(slot) => alloc::format!("slot {slot}"),
        None => String::from("the image"),
    };
    let result = (|| -> Result<u32, UpdateError> {
        let engine = wasm_embed::engine(current.settings()).map_err(UpdateError::Load)?;
        let module = current.load(&engine)?;
        let mut add = guests::add::Add::new(&module, Host).map_err(UpdateError::Load)?;
        add.add_with_extra(1, 2).map_err(UpdateError::Load)
    })();
    match result {
        Ok(sum) => alloc::format!("running add {} from {from}: add_with_extra(1, 2) = {sum}", current.version()),
        Err(error) => fail(&error),
    }
}

fn fail(error: &dyn core::fmt::Display) -> ! {
    say!("error: {error}");
    exit(false)
}

/// The lowest version the device accepts, kept in its own flash page as a log of
/// 16-byte records (`WEFL`, the version as a u64, a check word), the last one counting;
/// a firmware may as well keep it in OTP or a secure element.
fn read_floor(flash: &mut PowerCut) -> Version {
    let mut floor = Version::ZERO;
    let mut record = [0; 16];
    for at in (FLOOR..FLOOR + 4096).step_by(16) {
        flash.read(at, &mut record).unwrap_or_else(|e| fail(&e));
        let value = u64::from_le_bytes(record[4..12].try_into().unwrap());
        match &record[..4] {
            b"WEFL" if u32::from_le_bytes(record[12..].try_into().unwrap()) == !(value as u32) => {
                floor = Version::from_u64(value);
            }
            [0xff, 0xff, 0xff, 0xff] => break,
            // Never formatted (QEMU's RAM starts as zeros, a chip erased): format it.
            _ => {
                flash.erase(FLOOR, FLOOR + 4096).unwrap_or_else(|e| fail(&e));
                return floor;
            }
        }
    }
    floor
}

fn write_floor(flash: &mut PowerCut, floor: Version) {
    let mut record = [0xff; 16];
    let mut at = FLOOR;
    while at < FLOOR + 4096 {
        flash.read(at, &mut record).unwrap_or_else(|e| fail(&e));
        if record == [0xff; 16] {
            break;
        }
        at += 16;
    }
    if at == FLOOR + 4096 {
        flash.erase(FLOOR, FLOOR + 4096).unwrap_or_else(|e| fail(&e));
        at = FLOOR;
    }
    let value = floor.to_u64();
    record[..4].copy_from_slice(b"WEFL");
    record[4..12].copy_from_slice(&value.to_le_bytes());
    record[12..].copy_from_slice(&(!(value as u32)).to_le_bytes());
    flash.write(at, &record).unwrap_or_else(|e| fail(&e));
}

/// When the power goes during the next install.
#[derive(Clone, Copy, PartialEq)]
enum Cut {
    Never,
    /// After this many erases and writes succeeded.
    After(u16),
    /// While a slot's marker (its first word) is written.
    AtMarker,
}

/// The flash with a power supply that fails on request: the operation under way does
/// half its work, then the core resets. What the flash holds survives, as on a chip.
struct PowerCut {
    flash: Flash,
    cut: Cut,
}

impl PowerCut {
    fn new(flash: Flash) -> PowerCut {
        PowerCut { flash, cut: Cut::Never }
    }

    /// Whether the power goes now, counting this operation.
    fn fails(&mut self, marker: bool) -> bool {
        match &mut self.cut {
            Cut::Never => false,
            Cut::AtMarker => marker,
            Cut::After(0) => true,
            Cut::After(n) => {
                *n -= 1;
                false
            }
        }
    }

    fn power_off(what: &str, at: u32) -> ! {
        say!("power cut during the {what} at {at:#x}");
        cortex_m::peripheral::SCB::sys_reset()
    }
}

impl ErrorType for PowerCut {
    type Error = <Flash as ErrorType>::Error;
}

impl ReadNorFlash for PowerCut {
    const READ_SIZE: usize = Flash::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.flash.read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.flash.capacity()
    }
}

impl NorFlash for PowerCut {
    const WRITE_SIZE: usize = Flash::WRITE_SIZE;
    const ERASE_SIZE: usize = Flash::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        for page in (from..to).step_by(Self::ERASE_SIZE) {
            if self.fails(false) {
                // Half a page erased: the rest keeps what it held.
                self.flash.erase(page, page + Self::ERASE_SIZE as u32 / 2).ok();
                Self::power_off("erase", page);
            }
            self.flash.erase(page, page + Self::ERASE_SIZE as u32)?;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if self.fails(offset % SLOT == 0) {
            let half = (bytes.len() / 2).next_multiple_of(Self::WRITE_SIZE).min(bytes.len());
            self.flash.write(offset, &bytes[..half]).ok();
            Self::power_off(if offset % SLOT == 0 { "marker's write" } else { "write" }, offset);
        }
        self.flash.write(offset, bytes)
    }
}
