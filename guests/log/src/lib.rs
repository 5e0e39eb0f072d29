//! A guest that formats text with `core::fmt` into a buffer in its own memory and hands
//! the host a pointer and a length through its `host.log` import.
#![no_std]

use core::fmt::Write;

#[link(wasm_import_module = "host")]
unsafe extern "C" {
    fn log(ptr: *const u8, len: usize);
}

/// Formats into a fixed buffer; text past its end is cut off.
struct Line {
    bytes: [u8; 96],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        let room = self.bytes.len() - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Logs one line about `n`.
#[unsafe(no_mangle)]
extern "C" fn hello(n: u32) {
    let mut line = Line { bytes: [0; 96], len: 0 };
    let _ = write!(line, "hello from the log guest: {n} squared is {}", n * n);
    unsafe { log(line.bytes.as_ptr(), line.len) };
}

/// Hands the host a buffer that ends past the guest's memory, as a buggy guest would.
#[unsafe(no_mangle)]
extern "C" fn bad_pointer() {
    unsafe { log(0xFFFF_FF00 as *const u8, 0x100) };
}

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
