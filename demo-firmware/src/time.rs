//! embassy-time's driver for QEMU's MPS2 boards (mps2-an386, the Cortex-M4; mps2-an505,
//! the Cortex-M33): time from the FPGA's free-running 25 MHz counter, alarms from the
//! first CMSDK APB timer (TIMER0), the parts an MPS2 board has. One timer queue, in the driver.

use core::cell::RefCell;
use core::task::Waker;

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use cortex_m_rt::exception;
use embassy_sync::blocking_mutex::CriticalSectionMutex;
use embassy_time_queue_utils::Queue;

/// The FPGA counter: 25 MHz, 32 bits.
const COUNTER: *const u32 = crate::COUNTER;
/// CMSDK APB TIMER0: a 32-bit down-counter at 25 MHz that interrupts at zero; on
/// mps2-an505 at the Secure alias, the state the firmware runs in.
#[cfg(not(board = "an505"))]
const TIMER0: usize = 0x4000_0000;
#[cfg(board = "an505")]
const TIMER0: usize = 0x5000_0000;
const CTRL: *mut u32 = TIMER0 as *mut u32;
const VALUE: *mut u32 = (TIMER0 + 0x4) as *mut u32;
const RELOAD: *mut u32 = (TIMER0 + 0x8) as *mut u32;
const INTCLEAR: *mut u32 = (TIMER0 + 0xC) as *mut u32;
const ENABLE: u32 = 1 << 0;
const INTERRUPT_ENABLE: u32 = 1 << 3;
/// Counter ticks per embassy tick (1 MHz).
const PER_MICROSECOND: u64 = 25;
/// The longest alarm set at once, even with no timer due: the counter wraps every 171 s,
/// and each alarm reads it, so at least one read per wrap keeps the 64-bit time right.
const LONGEST_ALARM: u64 = 60_000_000;

#[derive(Clone, Copy)]
struct Timer0;

// SAFETY: TIMER0's interrupt: 8 on the MPS2 boards with a Cortex-M3 or M4, 3 on
// mps2-an505's SSE-200.
unsafe impl InterruptNumber for Timer0 {
    fn number(self) -> u16 {
        if cfg!(board = "an505") { 3 } else { 8 }
    }
}

struct Board {
    /// The counter's last reading and how often it wrapped before it.
    clock: CriticalSectionMutex<RefCell<(u32, u32)>>,
    queue: CriticalSectionMutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: Board = Board {
    clock: CriticalSectionMutex::new(RefCell::new((0, 0))),
    queue: CriticalSectionMutex::new(RefCell::new(Queue::new())),
});

impl Board {
    fn ticks(&self) -> u64 {
        self.clock.lock(|clock| {
            let mut clock = clock.borrow_mut();
            // SAFETY: a read-only device register.
            let now = unsafe { COUNTER.read_volatile() };
            if now < clock.0 {
                clock.1 += 1;
            }
            clock.0 = now;
            (u64::from(clock.1) << 32 | u64::from(now)) / PER_MICROSECOND
        })
    }

    /// Sets TIMER0 to interrupt at `at`, or within [`LONGEST_ALARM`] (`u64::MAX`: no timer).
    fn set_alarm(&self, at: u64) {
        // SAFETY: TIMER0's registers; only this driver uses the timer.
        unsafe {
            CTRL.write_volatile(0);
            INTCLEAR.write_volatile(1);
            // With no timer due, still wake within LONGEST_ALARM to read the counter.
            let now = self.ticks();
            if at <= now {
                NVIC::pend(Timer0);
                return;
            }
            let ticks = ((at - now).min(LONGEST_ALARM) * PER_MICROSECOND) as u32;
            RELOAD.write_volatile(ticks);
            VALUE.write_volatile(ticks);
            CTRL.write_volatile(ENABLE | INTERRUPT_ENABLE);
        }
    }

    fn alarm(&self) {
        self.queue.lock(|queue| {
            let next = queue.borrow_mut().next_expiration(self.ticks());
            self.set_alarm(next);
        });
    }
}

impl embassy_time_driver::Driver for Board {
    fn now(&self) -> u64 {
        self.ticks()
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        self.queue.lock(|queue| {
            let mut queue = queue.borrow_mut();
            if queue.schedule_wake(at, waker) {
                let next = queue.next_expiration(self.ticks());
                self.set_alarm(next);
            }
        });
    }
}

/// Starts the clock: call it before the executor.
pub fn init() {
    DRIVER.ticks();
    // SAFETY: the timer's handler is ready, and no critical section is open.
    unsafe { NVIC::unmask(Timer0) };
}

#[exception]
unsafe fn DefaultHandler(interrupt: i16) {
    if interrupt == Timer0.number() as i16 {
        DRIVER.alarm();
    } else if interrupt == crate::uart::RECEIVE_INTERRUPT as i16 {
        crate::uart::on_receive();
    } else {
        crate::say!("error: unexpected interrupt {interrupt}");
        crate::exit(false);
    }
}
