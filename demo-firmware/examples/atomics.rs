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

use demo_firmware::{exit, heap, say};

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
    heap::init();
    timer::start();
    for _ in 0..ROUNDS {
        round();
    }
    RUNNING.store(false, Ordering::Relaxed);
    timer::stop();
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

#[cfg(target_arch = "arm")]
mod timer {
    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m_rt::exception;

    fn syst() -> cortex_m::peripheral::SYST {
        // SAFETY: only this module uses SysTick, from the one thread and its handler.
        unsafe { cortex_m::Peripherals::steal() }.SYST
    }

    /// SysTick every 37 clock cycles.
    pub fn start() {
        let mut syst = syst();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(37);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
    }

    pub fn stop() {
        let mut syst = syst();
        syst.disable_interrupt();
        syst.disable_counter();
    }

    #[exception]
    fn SysTick() {
        super::interrupt();
    }
}

#[cfg(target_arch = "riscv32")]
mod timer {
    const MTIME: *const u32 = 0x0200_BFF8 as *const u32;
    const MTIMECMP: *mut u32 = 0x0200_4000 as *mut u32;

    /// The machine timer, due a tick of `mtime` (10 MHz) from now.
    fn arm() {
        // SAFETY: the CLINT's timer registers on QEMU's `virt`; the high word of mtime
        // does not change in the few ticks this example runs.
        unsafe {
            let now = MTIME.read_volatile();
            MTIMECMP.add(1).write_volatile(u32::MAX);
            MTIMECMP.write_volatile(now.wrapping_add(1));
            MTIMECMP.add(1).write_volatile(MTIME.add(1).read_volatile());
        }
    }

    pub fn start() {
        arm();
        // SAFETY: the handler below is ready.
        unsafe {
            riscv::register::mie::set_mtimer();
            riscv::interrupt::enable();
        }
    }

    pub fn stop() {
        // SAFETY: masks the timer again.
        unsafe { riscv::register::mie::clear_mtimer() };
    }

    #[cfg(not(feature = "tasks"))]
    #[riscv_rt::core_interrupt(riscv::interrupt::Interrupt::MachineTimer)]
    fn machine_timer() {
        super::interrupt();
        arm();
    }
}
