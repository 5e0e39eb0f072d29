//! Atomic read-modify-write operations racing an interrupt that changes the same words.
//! On a core without compare-and-swap (the ARMv6-M image, RV32IMC) they are wasm-embed's
//! `__sync_*` functions (its `emulated-cas` feature), on the others the core's own
//! instructions. The main loop adds, exchanges and toggles; a timer interrupt, every
//! few hundred instructions, does the same to the same words; at the end no update may be
//! lost. QEMU runs it one instruction per translation block (qemu-run.sh), so an interrupt
//! can arrive between any two instructions, inside an operation too.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU32, Ordering};

use demo_firmware::{exit, say, ticker};

/// Rounds of the main loop.
const ROUNDS: u32 = 50_000;

static ADDED: AtomicU32 = AtomicU32::new(0);
static EXCHANGED: AtomicU32 = AtomicU32::new(0);
static SMALL: AtomicU16 = AtomicU16::new(0);
static BYTES: AtomicU8 = AtomicU8::new(0);
static TOGGLED: AtomicBool = AtomicBool::new(false);
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);
static RUNNING: AtomicBool = AtomicBool::new(true);

/// One round's updates, the same from the main loop and from the interrupt.
fn round() {
    ADDED.fetch_add(1, Ordering::Relaxed);
    // A compare-and-swap loop, as Arc's reference count is kept.
    let mut seen = EXCHANGED.load(Ordering::Relaxed);
    while let Err(now) = EXCHANGED.compare_exchange(seen, seen.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed) {
        seen = now;
    }
    SMALL.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(1, Ordering::Relaxed);
    TOGGLED.fetch_xor(true, Ordering::Relaxed);
}

/// The timer interrupt's work.
fn interrupt() {
    if RUNNING.load(Ordering::Relaxed) {
        round();
        INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    demo_firmware::init();
    // Every 37 clock cycles on Arm, every tick of mtime on RISC-V.
    ticker::start(if cfg!(target_arch = "arm") { 37 } else { 1 }, interrupt);
    for _ in 0..ROUNDS {
        round();
    }
    RUNNING.store(false, Ordering::Relaxed);
    ticker::stop();
    let interrupts = INTERRUPTS.load(Ordering::Relaxed);
    let total = ROUNDS + interrupts;
    let results = [
        ("fetch_add (u32)", ADDED.load(Ordering::Relaxed), total),
        ("compare_exchange (u32)", EXCHANGED.load(Ordering::Relaxed), total),
        ("fetch_add (u16)", u32::from(SMALL.load(Ordering::Relaxed)), total % 65_536),
        ("fetch_add (u8)", u32::from(BYTES.load(Ordering::Relaxed)), total % 256),
        ("fetch_xor (bool)", u32::from(TOGGLED.load(Ordering::Relaxed)), total % 2),
    ];
    let mut ok = interrupts > 1_000;
    say!("atomics: {ROUNDS} rounds in the main loop, {interrupts} in the interrupt");
    for (what, got, expected) in results {
        say!("{what}: {got}, expected {expected}");
        ok &= got == expected;
    }
    say!("{}", if ok { "no update lost" } else { "UPDATES LOST" });
    exit(ok)
}

demo_firmware::ticker_interrupt!();
