//! embassy-time's driver for QEMU's RISC-V `virt` board: time and alarms from the CLINT's
//! 64-bit `mtime` (10 MHz) and hart 0's `mtimecmp`, through the machine timer interrupt,
//! as on any core with the standard RISC-V timer. One timer queue, in the driver.

use core::cell::RefCell;
use core::task::Waker;

use embassy_sync::blocking_mutex::CriticalSectionMutex;
use embassy_time_queue_utils::Queue;

const MTIME: *const u32 = 0x0200_BFF8 as *const u32;
const MTIMECMP: *mut u32 = 0x0200_4000 as *mut u32;
/// `mtime` ticks per embassy tick (1 MHz).
const PER_MICROSECOND: u64 = 10;

struct Board {
    queue: CriticalSectionMutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: Board = Board {
    queue: CriticalSectionMutex::new(RefCell::new(Queue::new())),
});

fn mtime() -> u64 {
    // SAFETY: MTIME is the CLINT's timer, read as two words: the high word again until
    // it did not change in between.
    unsafe {
        loop {
            let high = MTIME.add(1).read_volatile();
            let low = MTIME.read_volatile();
            if MTIME.add(1).read_volatile() == high {
                return u64::from(high) << 32 | u64::from(low);
            }
        }
    }
}

/// Interrupts at `mtime` `at` (never for `u64::MAX`); the high word is set out of reach
/// first, so no half-written compare value fires early.
fn set_mtimecmp(at: u64) {
    // SAFETY: hart 0's compare register; only this driver uses it.
    unsafe {
        MTIMECMP.add(1).write_volatile(u32::MAX);
        MTIMECMP.write_volatile(at as u32);
        MTIMECMP.add(1).write_volatile((at >> 32) as u32);
    }
}

impl Board {
    fn set_alarm(&self, at: u64) {
        set_mtimecmp(at.saturating_mul(PER_MICROSECOND));
    }

    fn alarm(&self) {
        self.queue.lock(|queue| {
            let next = queue.borrow_mut().next_expiration(mtime() / PER_MICROSECOND);
            self.set_alarm(next);
        });
    }
}

impl embassy_time_driver::Driver for Board {
    fn now(&self) -> u64 {
        mtime() / PER_MICROSECOND
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        self.queue.lock(|queue| {
            let mut queue = queue.borrow_mut();
            if queue.schedule_wake(at, waker) {
                let next = queue.next_expiration(mtime() / PER_MICROSECOND);
                self.set_alarm(next);
            }
        });
    }
}

/// Starts the timer interrupt: call it before the executor.
pub fn init() {
    set_mtimecmp(u64::MAX);
    // SAFETY: the handler below is ready for the machine timer interrupt.
    unsafe {
        riscv::register::mie::set_mtimer();
        riscv::interrupt::enable();
    }
}

#[riscv_rt::core_interrupt(riscv::interrupt::Interrupt::MachineTimer)]
fn machine_timer() {
    DRIVER.alarm();
}
