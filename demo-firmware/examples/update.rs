//! Guests replaced while the firmware runs, through MCUmgr's SMP on the board's UART, so
//! `smpmgr` (or `mcumgr`, or nRF Connect Device Manager) installs them. Two embassy tasks:
//! one runs the add guest in a loop, the other serves SMP. An upload that passes every
//! check is pending; the guest task loads it at its next call, on trial, and confirms it
//! once it has run for a second without a fault, or reverts it at its first fault; a
//! reset before it is confirmed reverts it too. Refused uploads come back to the client
//! as their one line, and a reset during an upload leaves the last confirmed guest
//! running.
//!
//! `cargo run --release --features tasks --example update`, then, from another
//! terminal, `smpmgr --port <the pty QEMU names> upgrade --format any <package>` with a
//! package the build wrote to `target/thumbv7em-none-eabihf/release/wasm-embed-updates/`
//! (signed with the build's development key). `smpmgr os echo exit` ends the example.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicBool, Ordering};

use demo_firmware::flash::Flash;
use demo_firmware::uart::Uart;
use demo_firmware::{exit, guests, heap, say};
use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::{Duration, Instant, Timer};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use wasm_embed::smp::{BUF_SIZE, Event, Image, Server, serial};
use wasm_embed::update::{Slots, UpdateError, Version};

/// Each slot: 8 erase pages of 4 KiB. Then a page for the lowest accepted version.
const SLOT: u32 = 32 * 1024;
const FLOOR: u32 = 2 * SLOT;
const FLASH: usize = (FLOOR + 4096) as usize;

/// The add guest's slots, shared by the two tasks of the one executor; no task holds
/// them across an await.
type Shared = Mutex<NoopRawMutex, RefCell<Slots<Flash>>>;

/// Set by the SMP task, acted on by the guest task at its next call.
static RESET: AtomicBool = AtomicBool::new(false);
static END: AtomicBool = AtomicBool::new(false);

struct Host;

impl guests::add::Host for Host {
    fn extra(&mut self) -> u32 {
        42
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    demo_firmware::init();
    demo_firmware::time::init();
    demo_firmware::uart::enable_interrupt();
    // SAFETY: the only Flash, over the region its module reserves.
    let flash = unsafe { Flash::new(FLASH) };
    let mapped = flash.mapped();
    // SAFETY: the stand-in is mapped at its base for good and written only through it.
    let slots = unsafe { Slots::new(flash, 0..FLOOR, mapped, &guests::add::UPDATABLE, guests::UPDATE_KEY) };
    let mut slots = slots.unwrap_or_else(|error| fail(&error));
    let floor = read_floor(&mut slots);
    slots.set_floor(floor);
    if guests::UPDATE_KEY_IS_DEVELOPMENT {
        say!("updates are accepted from the build's development key: a development build");
    }
    let slots: &'static Shared = Box::leak(Box::new(Mutex::new(RefCell::new(slots))));
    spawner.spawn(smp(slots).unwrap());
    spawner.spawn(guest(slots).unwrap());
}

/// How long a guest on trial must run without a fault before the firmware confirms it.
const TRIAL: Duration = Duration::from_secs(1);

/// The add guest the task runs: its handle, its version, and since when it is on trial.
struct Running {
    generation: u32,
    add: guests::add::Add<Host>,
    version: Version,
    trial_since: Option<Instant>,
}

/// Runs the add guest in a loop, loading again whenever the slots change. A guest on
/// trial is confirmed once it has run for [`TRIAL`] without a fault, and reverted at its
/// first fault; a reset or the end that SMP asks for waits until a trial is decided.
#[embassy_executor::task]
async fn guest(slots: &'static Shared) {
    let mut running: Option<Running> = None;
    loop {
        let generation = slots.lock(|slots| slots.borrow().generation());
        if running.as_ref().map(|r| r.generation) != Some(generation) {
            // The old handle goes first: its slot may be the one an install needs next.
            drop(running.take());
            running = slots.lock(|slots| start(&mut slots.borrow_mut()));
        }
        if let Some(guest) = &mut running {
            match (guest.add.add_with_extra(1, 2), guest.trial_since) {
                (Ok(_), Some(since)) if since.elapsed() >= TRIAL => slots.lock(|slots| {
                    let mut slots = slots.borrow_mut();
                    let confirmed = slots.confirm().unwrap_or_else(|error| fail(&error));
                    write_floor(&mut *slots, confirmed);
                    say!("add {} ran {} ms on trial without a fault: confirmed", guest.version, TRIAL.as_millis());
                    guest.trial_since = None;
                    guest.generation = slots.generation();
                }),
                (Ok(_), _) => {}
                (Err(error), Some(_)) => {
                    say!("add {} failed on trial: {error}", guest.version);
                    slots.lock(|slots| slots.borrow_mut().revert());
                    say!("reverted: the previous guest runs again");
                }
                (Err(error), None) => fail(&error),
            }
        }
        let deciding = running.as_ref().is_some_and(|r| r.trial_since.is_some());
        // The reply goes out first: the UART sends what the SMP task wrote meanwhile.
        if RESET.load(Ordering::Relaxed) && !deciding {
            say!("reset, as SMP asked");
            Timer::after_millis(50).await;
            cortex_m::peripheral::SCB::sys_reset();
        }
        if END.load(Ordering::Relaxed) && !deciding {
            drop(running.take());
            Timer::after_millis(50).await;
            let floor = slots.lock(|slots| slots.borrow().floor());
            say!("done: the lowest version accepted is {floor}, peak heap {} bytes", heap::peak());
            exit(true);
        }
        Timer::after_millis(10).await;
    }
}

/// Loads what the slots say runs now and calls it once.
fn start(slots: &mut Slots<Flash>) -> Option<Running> {
    let loaded = (|| -> Result<_, UpdateError> {
        let current = slots.current()?;
        let from = match current.slot() {
            Some(slot) => alloc::format!("slot {slot}"),
            None => String::from("the image"),
        };
        let (version, trial) = (current.version(), current.is_trial());
        let engine = wasm_embed::engine(current.settings())?;
        let module = current.load(&engine)?;
        let add = guests::add::Add::new(&module, Host)?;
        Ok((from, version, trial, add))
    })();
    let (from, version, trial, mut add) = loaded.unwrap_or_else(|error| fail(&error));
    let on_trial = if trial { " on trial" } else { "" };
    match add.add_with_extra(1, 2) {
        Ok(sum) => say!("running add {version} from {from}{on_trial}: add_with_extra(1, 2) = {sum}"),
        Err(error) if trial => {
            say!("add {version} failed on trial from {from}: {error}");
            slots.revert();
            say!("reverted: the previous guest runs again");
            return None;
        }
        Err(error) => fail(&error),
    }
    // Confirmed elsewhere (by SMP, say): the floor follows.
    if !trial && version > slots.floor() {
        write_floor(slots, version);
    }
    Some(Running {
        generation: slots.generation(),
        add,
        version,
        trial_since: trial.then(Instant::now),
    })
}

/// Serves SMP on the UART.
#[embassy_executor::task]
async fn smp(slots: &'static Shared) {
    let uart = Uart::new();
    let mut decoder = serial::Decoder::new(BUF_SIZE);
    let mut server = Server::new();
    let mut response = Vec::with_capacity(BUF_SIZE);
    let mut receiving = (0, Instant::now());
    loop {
        let byte = uart.receive().await;
        let event = match decoder.push(byte) {
            None => continue,
            Some(Ok(request)) => slots.lock(|slots| {
                let mut slots = slots.borrow_mut();
                server.handle(request, &mut [&mut *slots as &mut dyn Image], &mut response)
            }),
            Some(Err(damaged)) => {
                server.damaged(damaged, &mut response);
                Event::None
            }
        };
        serial::encode(&response, |line| uart.write(line));
        match event {
            Event::Receiving { len, .. } => {
                receiving = (len, Instant::now());
                say!("receiving a package of {len} bytes for add over SMP");
            }
            Event::Installed { version, .. } => {
                // From the first request's arrival to the last one's check: the time
                // the client, the UART and the checks take.
                let ms = receiving.1.elapsed().as_millis();
                say!("received add {version} ({} bytes in {ms} ms): pending", receiving.0);
            }
            Event::Refused { error, .. } => say!("{error}"),
            Event::Reset => RESET.store(true, Ordering::Relaxed),
            Event::Echoed { text } if text == "exit" => END.store(true, Ordering::Relaxed),
            _ => {}
        }
    }
}

fn fail(error: &dyn core::fmt::Display) -> ! {
    say!("error: {error}");
    exit(false)
}

/// The lowest version the device accepts, kept in its own flash page (outside the update
/// partition) as a log of 16-byte records (`WEFL`, the version as a u64, a check word
/// over both its halves), the last whole one counting: a record torn by a power cut is
/// passed over, and the one before it holds. When the page is full it is erased and the
/// floor written again (a power cut between the two loses it; a product keeps two pages,
/// or OTP, or a secure element).
fn read_floor(slots: &mut Slots<Flash>) -> Version {
    let mut flash = slots.flash();
    let mut floor = None;
    let mut record = [0; 16];
    let mut blank = true;
    for at in (FLOOR..FLOOR + 4096).step_by(16) {
        flash.read(at, &mut record).unwrap_or_else(|e| fail(&e));
        if record == [0xff; 16] {
            break;
        }
        blank = false;
        let value = u64::from_le_bytes(record[4..12].try_into().unwrap());
        if &record[..4] == b"WEFL" && u32::from_le_bytes(record[12..].try_into().unwrap()) == check(value) {
            floor = Version::from_u64(value).or(floor);
        }
    }
    // A page that is neither blank nor a log (QEMU's RAM starts as zeros): format it.
    if floor.is_none() && !blank {
        flash.erase(FLOOR, FLOOR + 4096).unwrap_or_else(|e| fail(&e));
    }
    floor.unwrap_or(Version::ZERO)
}

/// A record's check word: both halves of the value, inverted.
fn check(value: u64) -> u32 {
    !(value as u32 ^ (value >> 32) as u32)
}

/// Raises the floor to `floor`, in flash and in the slots.
fn write_floor(slots: &mut Slots<Flash>, floor: Version) {
    slots.set_floor(floor);
    let mut flash = slots.flash();
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
    let value = floor.to_u64().expect("a verified version fits the counter");
    record[..4].copy_from_slice(b"WEFL");
    record[4..12].copy_from_slice(&value.to_le_bytes());
    record[12..].copy_from_slice(&check(value).to_le_bytes());
    flash.write(at, &record).unwrap_or_else(|e| fail(&e));
}
