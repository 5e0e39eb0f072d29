#![no_std]

/// Where the firmware writes the bytes to check.
static mut INPUT: [u8; 256] = [0; 256];

// What the guest asks of the firmware: the firmware implements it as a Rust trait.
#[link(wasm_import_module = "env")]
unsafe extern "C" {
    /// The firmware's log: `len` bytes of text at `text`.
    fn log(text: *const u8, len: usize);
}

/// Where the firmware writes its input.
#[unsafe(no_mangle)]
extern "C" fn input() -> *mut u8 {
    (&raw mut INPUT).cast()
}

/// The CRC-16 of the first `len` bytes of the input.
#[unsafe(no_mangle)]
extern "C" fn checksum(len: usize) -> u32 {
    const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);
    // SAFETY: the guest runs one call at a time; nothing else holds INPUT.
    let input = unsafe { &*&raw const INPUT };
    let message = "checksum computed";
    unsafe { log(message.as_ptr(), message.len()) };
    u32::from(CRC16.checksum(&input[..len.min(input.len())]))
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
