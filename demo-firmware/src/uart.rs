//! The board's first UART, receiving what a host sends: QEMU's mps2 boards have a CMSDK
//! APB UART there. The update examples get their packages through it, in frames.

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

impl Uart {
    const BASE: usize = 0x4000_4000;

    pub fn new() -> Uart {
        // SAFETY: the UART's control and baud-divider registers; receive on.
        unsafe {
            ((Self::BASE + 0x10) as *mut u32).write_volatile(16);
            ((Self::BASE + 0x08) as *mut u32).write_volatile(0b10);
        }
        Uart
    }

    /// The next byte, or `None` if none comes for a long while.
    pub fn byte(&self) -> Option<u8> {
        for _ in 0..50_000_000u32 {
            // SAFETY: the UART's state and data registers.
            unsafe {
                if ((Self::BASE + 0x04) as *const u32).read_volatile() & 0b10 != 0 {
                    return Some(((Self::BASE) as *const u32).read_volatile() as u8);
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
    pub fn install<F: NorFlash>(&self, slots: &mut Slots<F>, len: usize, floor: Version) -> Result<Version, UpdateError> {
        let mut install = match slots.install(len, floor) {
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
