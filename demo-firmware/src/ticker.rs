//! A periodic interrupt for the examples that need one on top of the main program
//! (examples/atomics.rs, examples/interrupt_overflow.rs): SysTick on the Arm cores, the
//! CLINT's machine timer on RISC-V. Its handler runs on the main stack, as any interrupt
//! does. Under the `tasks` feature the RISC-V timer is embassy-time's (riscv/time.rs).
//! An example that uses it names its handler with [`crate::ticker_interrupt!`], so that
//! no other program links one.

use core::sync::atomic::{AtomicUsize, Ordering};

static HANDLER: AtomicUsize = AtomicUsize::new(0);
/// RISC-V's timer is set again for each interrupt; SysTick reloads by itself.
#[cfg(target_arch = "riscv32")]
static PERIOD: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Calls `handler` from an interrupt every `period` clock cycles (Arm, at most 2^24) or
/// ticks of `mtime` (RISC-V, 10 MHz).
pub fn start(period: u32, handler: fn()) {
    HANDLER.store(handler as usize, Ordering::Relaxed);
    #[cfg(target_arch = "riscv32")]
    PERIOD.store(period, Ordering::Relaxed);
    board::start(period);
}

/// Stops the interrupt.
pub fn stop() {
    board::stop();
}

#[doc(hidden)]
pub fn tick() {
    let handler = HANDLER.load(Ordering::Relaxed);
    if handler != 0 {
        // SAFETY: `start` stored a `fn()` there.
        let handler: fn() = unsafe { core::mem::transmute::<usize, fn()>(handler) };
        handler();
    }
}

#[cfg(target_arch = "arm")]
mod board {
    use cortex_m::peripheral::syst::SystClkSource;

    fn syst() -> cortex_m::peripheral::SYST {
        // SAFETY: only this module uses SysTick, from the one thread and its handler.
        unsafe { cortex_m::Peripherals::steal() }.SYST
    }

    pub fn start(period: u32) {
        let mut syst = syst();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(period);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
    }

    pub fn stop() {
        let mut syst = syst();
        syst.disable_interrupt();
        syst.disable_counter();
    }
}

#[cfg(target_arch = "riscv32")]
#[doc(hidden)]
pub mod board {
    use core::sync::atomic::Ordering;

    const MTIME: *const u32 = 0x0200_BFF8 as *const u32;
    const MTIMECMP: *mut u32 = 0x0200_4000 as *mut u32;

    /// The machine timer, due `period` ticks of `mtime` from now.
    fn arm(period: u32) {
        // SAFETY: the CLINT's timer registers on QEMU's `virt`; the high word of mtime
        // does not change in the few ticks these examples run.
        unsafe {
            let now = MTIME.read_volatile();
            MTIMECMP.add(1).write_volatile(u32::MAX);
            MTIMECMP.write_volatile(now.wrapping_add(period));
            MTIMECMP.add(1).write_volatile(MTIME.add(1).read_volatile());
        }
    }

    pub fn start(period: u32) {
        arm(period);
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

    /// The interrupt's work, then the timer due again.
    #[doc(hidden)]
    pub fn tick() {
        super::tick();
        arm(super::PERIOD.load(Ordering::Relaxed));
    }
}

/// The timer's interrupt handler, in the example that uses [`start`].
#[cfg(target_arch = "arm")]
#[macro_export]
macro_rules! ticker_interrupt {
    () => {
        #[cortex_m_rt::exception]
        fn SysTick() {
            $crate::ticker::tick();
        }
    };
}

/// The timer's interrupt handler, in the example that uses [`start`].
#[cfg(target_arch = "riscv32")]
#[macro_export]
macro_rules! ticker_interrupt {
    () => {
        #[riscv_rt::core_interrupt(riscv::interrupt::Interrupt::MachineTimer)]
        fn machine_timer() {
            $crate::ticker::board::tick();
        }
    };
}
