//! A guest that computes over data the host writes into its memory: the host asks for
//! the input buffer's address, writes up to `CAPACITY` bytes there, then calls a kernel
//! with the length. The speed benchmark uses the same kernels.
#![no_std]

const CAPACITY: usize = 1024;

static mut INPUT: [u8; CAPACITY] = [0; CAPACITY];

fn input(len: u32) -> &'static mut [u8] {
    let len = (len as usize).min(CAPACITY);
    // SAFETY: a guest is single-threaded, and no other reference to INPUT is alive.
    unsafe { &mut (&mut *core::ptr::addr_of_mut!(INPUT))[..len] }
}

/// Where the host writes the input.
#[unsafe(no_mangle)]
extern "C" fn input_buffer() -> *mut u8 {
    core::ptr::addr_of_mut!(INPUT).cast()
}

/// How many bytes the input buffer holds.
#[unsafe(no_mangle)]
extern "C" fn input_capacity() -> usize {
    CAPACITY
}

/// CRC-32 (IEEE 802.3) of the first `len` input bytes, bit by bit.
#[unsafe(no_mangle)]
extern "C" fn crc32(len: u32) -> u32 {
    let mut crc = !0u32;
    for &byte in input(len).iter() {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Sorts the first `len` input bytes in place (insertion sort: no allocation, small
/// code) and returns how many of them were already in place.
#[unsafe(no_mangle)]
extern "C" fn sort(len: u32) -> u32 {
    let bytes = input(len);
    let mut moved = 0;
    for i in 1..bytes.len() {
        let mut j = i;
        while j > 0 && bytes[j - 1] > bytes[j] {
            bytes.swap(j - 1, j);
            j -= 1;
        }
        moved += u32::from(j != i);
    }
    bytes.len() as u32 - moved
}

/// Counts the words in the first `len` input bytes with a small state machine: a word
/// is a run of letters or digits; a number (only digits) counts in the upper half.
#[unsafe(no_mangle)]
extern "C" fn count_words(len: u32) -> u32 {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Between,
        Number,
        Word,
    }
    let (mut words, mut numbers) = (0u32, 0u32);
    let mut state = State::Between;
    for &byte in input(len).iter() {
        let next = match (state, byte) {
            (State::Between | State::Number, b'0'..=b'9') => State::Number,
            (_, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z') => State::Word,
            _ => State::Between,
        };
        if next == State::Between && state != State::Between {
            if state == State::Number { numbers += 1 } else { words += 1 }
        }
        state = next;
    }
    match state {
        State::Number => numbers += 1,
        State::Word => words += 1,
        State::Between => {}
    }
    (numbers << 16) | words
}

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
