//! MCUmgr's serial framing: an SMP packet travels as lines of at most 127 bytes, the
//! first starting 0x06 0x09 and the others 0x04 0x14, each ending in a newline, whose
//! base64 text is the packet's length (big-endian, CRC included), the packet and a
//! CRC-16/XMODEM of the packet. Lines that start otherwise (a console sharing the UART)
//! are skipped.

use alloc::vec::Vec;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const START: [u8; 2] = [0x06, 0x09];
const CONTINUE: [u8; 2] = [0x04, 0x14];
/// The longest line, newline included.
pub const MAX_LINE: usize = 127;
/// Raw bytes per line: 93 encode to 124 base64 characters, which with the delimiter and
/// the newline make a line of 127 bytes.
const RAW_PER_LINE: usize = 93;
const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// Turns the bytes a UART receives into SMP packets.
pub struct Decoder {
    line: [u8; MAX_LINE + 1],
    line_len: usize,
    /// The line in progress is too long: it is dropped at its newline.
    overlong: bool,
    /// The packet in progress: the length, the packet, the CRC, as decoded so far.
    packet: Vec<u8>,
    /// Whether a start line began the packet in progress.
    started: bool,
    /// The longest packet taken, CRC and length excluded.
    capacity: usize,
    /// The last call returned the packet: clear it at the next byte.
    returned: bool,
}

/// A whole frame whose CRC does not match, or whose length is beyond what the decoder
/// takes: its first bytes, so that a reply can name its header if they hold one.
#[derive(Debug)]
pub struct Damaged<'a> {
    /// The frame's first bytes (the SMP header, if it came through).
    pub start: &'a [u8],
    /// Why it was refused, as a phrase for the reply.
    pub reason: &'static str,
}

impl Decoder {
    /// A decoder for packets of up to `capacity` bytes (MCUmgr's `buf_size`).
    pub fn new(capacity: usize) -> Decoder {
        Decoder {
            line: [0; MAX_LINE + 1],
            line_len: 0,
            overlong: false,
            packet: Vec::new(),
            started: false,
            capacity,
            returned: false,
        }
    }

    /// Takes the next byte; returns the packet it completes, or the frame it completes
    /// that was damaged.
    pub fn push(&mut self, byte: u8) -> Option<Result<&[u8], Damaged<'_>>> {
        if self.returned {
            self.returned = false;
            self.reset();
        }
        if byte != b'\n' {
            if self.line_len == self.line.len() {
                self.overlong = true;
            } else {
                self.line[self.line_len] = byte;
                self.line_len += 1;
            }
            return None;
        }
        let (len, overlong) = (self.line_len, self.overlong);
        self.line_len = 0;
        self.overlong = false;
        // A carriage return before the newline, as some terminals send.
        let len = if len > 0 && self.line[len - 1] == b'\r' { len - 1 } else { len };
        if overlong || len < 2 {
            self.reset();
            return None;
        }
        match [self.line[0], self.line[1]] {
            START => {
                self.reset();
                self.started = true;
            }
            CONTINUE if self.started => {}
            _ => return None,
        }
        let mut raw = [0u8; RAW_PER_LINE + 3];
        let Ok(n) = STANDARD.decode_slice(&self.line[2..len], &mut raw) else {
            self.reset();
            return None;
        };
        self.packet.extend_from_slice(&raw[..n]);
        if self.packet.len() < 2 {
            return None;
        }
        let expected = 2 + u16::from_be_bytes([self.packet[0], self.packet[1]]) as usize;
        if expected < 4 || expected > self.capacity + 4 {
            self.returned = true;
            let start = self.packet.len().min(10);
            return Some(Err(Damaged {
                start: &self.packet[2..start.max(2)],
                reason: "its length is beyond what this device takes",
            }));
        }
        if self.packet.len() < expected {
            return None;
        }
        self.returned = true;
        let body = &self.packet[2..expected - 2];
        let crc = u16::from_be_bytes([self.packet[expected - 2], self.packet[expected - 1]]);
        if self.packet.len() != expected || CRC.checksum(body) != crc {
            return Some(Err(Damaged {
                start: &body[..body.len().min(8)],
                reason: "its CRC does not match",
            }));
        }
        Some(Ok(body))
    }

    fn reset(&mut self) {
        self.packet.clear();
        self.started = false;
    }
}

/// Writes `packet` as the lines of one frame, a line at a time, to `write`.
pub fn encode(packet: &[u8], mut write: impl FnMut(&[u8])) {
    let len = u16::try_from(packet.len() + 2).expect("SMP packets are under 64 KiB");
    let crc = CRC.checksum(packet).to_be_bytes();
    let len = len.to_be_bytes();
    let raw = len.iter().chain(packet).chain(&crc).copied();
    let mut chunk = [0u8; RAW_PER_LINE];
    let mut line = [0u8; MAX_LINE];
    let mut first = true;
    let mut raw = raw.peekable();
    while raw.peek().is_some() {
        let mut n = 0;
        for byte in raw.by_ref().take(RAW_PER_LINE) {
            chunk[n] = byte;
            n += 1;
        }
        line[..2].copy_from_slice(if first { &START } else { &CONTINUE });
        first = false;
        let text = STANDARD
            .encode_slice(&chunk[..n], &mut line[2..MAX_LINE - 1])
            .expect("93 bytes encode to 124 characters");
        line[2 + text] = b'\n';
        write(&line[..3 + text]);
    }
}
