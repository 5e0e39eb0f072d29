//! A guest that computes: CRC-32 (IEEE 802.3) over the bytes 0, 1, 2, … (wrapping at
//! 256), with a lookup table that lives in its static data, so its linear memory holds
//! data and not only a stack.
#![no_std]

const POLYNOMIAL: u32 = 0xEDB8_8320;

static TABLE: [u32; 256] = table();

const fn table() -> [u32; 256] {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLYNOMIAL } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// The CRC-32 of `len` bytes counting up from 0.
#[unsafe(no_mangle)]
extern "C" fn crc32_sequence(len: u32) -> u32 {
    let mut crc = !0u32;
    for i in 0..len {
        let byte = i as u8;
        crc = TABLE[usize::from((crc as u8) ^ byte)] ^ (crc >> 8);
    }
    !crc
}

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
