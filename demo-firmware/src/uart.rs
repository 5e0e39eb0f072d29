//! The board's first UART: QEMU's mps2 boards have a CMSDK APB UART there. The update
//! examples get their packages through it: the size report's add examples in frames of
//! their own, the update example as MCUmgr's SMP, which it receives under embassy with
//! the UART's receive interrupt (UART0 RX, interrupt 0) and answers on its transmitter.

use alloc::string::String;
use alloc::vec;

use embedded_storage::nor_flash::NorFlash;
use wasm_embed::update::{Slots, UpdateError, Version};


use crate::{exit, say};

/// The board's first UART (QEMU's mps2: a CMSDK APB UART), receiving.
pub struct Uart;

/// One step of what the host sends.
pub struct Frame {
    /// 0 the end, 1 install, 2 install and cut the power after `cut` flash
    /// operations, 3 install and cut the power while the slot's marker is written.
    pub kind: u8,
    pub cut: u16,
    /// The payload's length: it follows, for the caller to read.
    pub len: u32,
    pub label: String,
}

impl Default for Uart {
    fn default() -> Uart {
        Uart::new()
    }
}

const BASE: usize = 0x4000_4000;
const DATA: *mut u32 = BASE as *mut u32;
const STATE: *const u32 = (BASE + 0x04) as *const u32;
const CTRL: *mut u32 = (BASE + 0x08) as *mut u32;
#[cfg(feature = "tasks")]
const INTCLEAR: *mut u32 = (BASE + 0x0C) as *mut u32;
const BAUDDIV: *mut u32 = (BASE + 0x10) as *mut u32;
const TX_FULL: u32 = 1 << 0;
const RX_FULL: u32 = 1 << 1;
const TX_ENABLE: u32 = 1 << 0;
const RX_ENABLE: u32 = 1 << 1;
#[cfg(feature = "tasks")]
const RX_INTERRUPT_ENABLE: u32 = 1 << 3;
#[cfg(feature = "tasks")]
const RX_INTERRUPT: u32 = 1 << 1;

impl Uart {
    pub fn new() -> Uart {
        // SAFETY: the UART's control and baud-divider registers; transmit and receive on.
        unsafe {
            BAUDDIV.write_volatile(16);
            CTRL.write_volatile(TX_ENABLE | RX_ENABLE);
        }
        Uart
    }

    /// Sends `bytes`, waiting while the transmitter is full.
    pub fn write(&self, bytes: &[u8]) {
        for &byte in bytes {
            // SAFETY: the UART's state and data registers.
            unsafe {
                while STATE.read_volatile() & TX_FULL != 0 {}
                DATA.write_volatile(u32::from(byte));
            }
        }
    }

    /// The next byte, as soon as one arrives: the task sleeps until the receive
    /// interrupt.
    #[cfg(feature = "tasks")]
    pub async fn receive(&self) -> u8 {
        core::future::poll_fn(|context| {
            // SAFETY: the UART's registers; the interrupt handler only clears its flag and
            // the interrupt enable.
            unsafe {
                if STATE.read_volatile() & RX_FULL != 0 {
                    return core::task::Poll::Ready(DATA.read_volatile() as u8);
                }
                RECEIVED.register(context.waker());
                CTRL.write_volatile(CTRL.read_volatile() | RX_INTERRUPT_ENABLE);
                // A byte that arrived before the interrupt was on raises none.
                if STATE.read_volatile() & RX_FULL != 0 {
                    CTRL.write_volatile(CTRL.read_volatile() & !RX_INTERRUPT_ENABLE);
                    return core::task::Poll::Ready(DATA.read_volatile() as u8);
                }
            }
            core::task::Poll::Pending
        })
        .await
    }

    /// The next byte, or `None` if none comes for a long while.
    pub fn byte(&self) -> Option<u8> {
        for _ in 0..50_000_000u32 {
            // SAFETY: the UART's state and data registers.
            unsafe {
                if STATE.read_volatile() & RX_FULL != 0 {
                    return Some(DATA.read_volatile() as u8);
                }
            }
        }
        None
    }

    pub fn read(&self, bytes: &mut [u8]) {
        for byte in bytes {
            *byte = self.byte().unwrap_or_else(|| {
                say!("error: the UART went quiet in the middle of a package");
                exit(false)
            });
        }
    }

    pub fn skip(&self, mut len: usize) {
        while len > 0 {
            let mut piece = [0; 64];
            let n = len.min(64);
            self.read(&mut piece[..n]);
            len -= n;
        }
    }

    /// The next frame: after a power cut the rest of the package that was arriving is
    /// still on the line, so this looks for the next frame's `WEUP`.
    pub fn frame(&self) -> Option<Frame> {
        let mut window = [0u8; 4];
        while &window != b"WEUP" {
            window.rotate_left(1);
            window[3] = self.byte()?;
        }
        let mut header = [0; 8];
        self.read(&mut header);
        let mut label = vec![0; header[1] as usize];
        self.read(&mut label);
        Some(Frame {
            kind: header[0],
            cut: u16::from_le_bytes([header[2], header[3]]),
            len: u32::from_le_bytes(header[4..8].try_into().unwrap()),
            label: String::from_utf8(label).unwrap_or_default(),
        })
    }

    /// Installs a package of `len` bytes as it arrives; on an error, the rest of it is read
    /// and dropped so that the next frame is found.
    pub fn install<F: NorFlash>(&self, slots: &mut Slots<F>, len: usize) -> Result<Version, UpdateError> {
        let mut install = match slots.install(len) {
            Ok(install) => install,
            Err(error) => {
                self.skip(len);
                return Err(error);
            }
        };
        // A package larger than free RAM installs too: 256 bytes at a time.
        let mut chunk = vec![0; 256];
        let mut left = len;
        while left > 0 {
            let piece = &mut chunk[..left.min(256)];
            self.read(piece);
            left -= piece.len();
            if let Err(error) = install.write(piece) {
                self.skip(left);
                return Err(error);
            }
        }
        install.finish()
    }
}

/// Wakes the task waiting in [`Uart::receive`].
#[cfg(feature = "tasks")]
static RECEIVED: embassy_sync::waitqueue::AtomicWaker = embassy_sync::waitqueue::AtomicWaker::new();

/// The UART's receive interrupt on the MPS2 boards.
#[cfg(feature = "tasks")]
pub const RECEIVE_INTERRUPT: u16 = 0;

/// The receive interrupt: a byte arrived. The waiting task reads it.
#[cfg(feature = "tasks")]
pub fn on_receive() {
    // SAFETY: the UART's control and interrupt-clear registers.
    unsafe {
        CTRL.write_volatile(CTRL.read_volatile() & !RX_INTERRUPT_ENABLE);
        INTCLEAR.write_volatile(RX_INTERRUPT);
    }
    RECEIVED.wake();
}

/// Lets the receive interrupt through the NVIC: call it once, before the first
/// [`Uart::receive`].
#[cfg(feature = "tasks")]
pub fn enable_interrupt() {
    #[derive(Clone, Copy)]
    struct Receive;
    // SAFETY: the MPS2 boards' UART0 receive interrupt.
    unsafe impl cortex_m::interrupt::InterruptNumber for Receive {
        fn number(self) -> u16 {
            RECEIVE_INTERRUPT
        }
    }
    // SAFETY: its handler (`on_receive`, through the time driver's DefaultHandler) is
    // ready.
    unsafe { cortex_m::peripheral::NVIC::unmask(Receive) };
}
