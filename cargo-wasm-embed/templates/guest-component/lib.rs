#![no_std]

extern crate alloc;

use alloc::vec::Vec;

// The world in wit/: `Guest` is the trait of its exports, `log` its import.
wit_bindgen::generate!({ path: "wit", world: "checksum" });

struct Checksum;

impl Guest for Checksum {
    fn checksum(data: Vec<u8>) -> u32 {
        const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);
        log("checksum computed");
        u32::from(CRC16.checksum(&data))
    }
}

export!(Checksum);

/// The list the firmware passes is allocated here: 4 KiB, fixed at build time.
#[global_allocator]
static ALLOCATOR: talc::TalcLock<spinning_top::RawSpinlock, talc::source::Claim> = talc::TalcLock::new(unsafe {
    static mut ARENA: [u8; 4096] = [0; 4096];
    talc::source::Claim::array(&raw mut ARENA)
});

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
