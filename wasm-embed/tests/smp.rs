//! MCUmgr's SMP on the host: requests framed as a serial client frames them, answered by
//! the server over real update slots. A package uploads in pieces and goes on trial; each
//! refusal comes back as an error reply whose text is its one line; bad frames, bad CBOR
//! and pieces out of order get error replies and change nothing.

mod common;

use base64::Engine as _;
use common::nor::Nor;
use common::{ADD, guest, settings};
use minicbor::{Decoder, Encoder};
use sha2::Digest;
use wasm_embed::smp::{BUF_SIZE, Event, Image, Server, serial};
use wasm_embed::update::{PackageBuilder, SecretKey, SlotState, Slots, Updatable, Version};

const INTERFACE: &str = "import host.extra: () -> i32\nexport add_with_extra: (i32, i32) -> i32\n";
const SLOT: usize = 4 * 4096;

fn key() -> SecretKey {
    SecretKey::from_seed([1; 32])
}

fn slots() -> Slots<Nor> {
    let guest = guest("add", ADD, settings());
    let updatable: &'static Updatable = Box::leak(Box::new(Updatable::new(guest, Version::new(0, 1, 0), INTERFACE)));
    let flash = Nor::new(2 * SLOT);
    let mapped = flash.memory;
    // SAFETY: the stand-in is mapped at its buffer for good and written only through
    // these slots.
    unsafe { Slots::new(flash, 0..2 * SLOT as u32, mapped, updatable, key().public_key()) }.unwrap()
}

/// The add guest's package at `version`, adding `bonus`.
fn package(version: Version, bonus: i32) -> Vec<u8> {
    let wat = ADD.replace("i32.add call $extra i32.add", &format!("i32.add call $extra i32.add i32.const {bonus} i32.add"));
    let cwasm = wasm_embed::precompile(&settings(), &wat::parse_str(&wat).unwrap()).unwrap();
    let unsigned = PackageBuilder {
        name: "add",
        version,
        settings: settings(),
        component: false,
        interface: INTERFACE,
        cwasm: &cwasm,
    }
    .unsigned(&key().public_key())
    .unwrap();
    key().sign(&unsigned).unwrap()
}

/// An SMP request: the header (version 2, as smpclient sends) and `body`.
fn request(op: u8, group: u16, id: u8, sequence: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![(1 << 3) | op, 0];
    packet.extend_from_slice(&(body.len() as u16).to_be_bytes());
    packet.extend_from_slice(&group.to_be_bytes());
    packet.push(sequence);
    packet.push(id);
    packet.extend_from_slice(body);
    packet
}

/// A CBOR map built with `fill`, which writes `pairs` key-value pairs.
fn map(pairs: u64, fill: impl FnOnce(&mut Encoder<&mut Vec<u8>>)) -> Vec<u8> {
    let mut body = Vec::new();
    let mut e = Encoder::new(&mut body);
    e.map(pairs).unwrap();
    fill(&mut e);
    body
}

/// `packet` framed as MCUmgr's serial transport frames it, written here from its
/// description rather than with the server's own encoder: base64 of the length, the
/// packet and its CRC-16/XMODEM, in lines of `line` characters.
fn frame(packet: &[u8], line: usize) -> Vec<u8> {
    let crc = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM).checksum(packet);
    let mut raw = ((packet.len() + 2) as u16).to_be_bytes().to_vec();
    raw.extend_from_slice(packet);
    raw.extend_from_slice(&crc.to_be_bytes());
    let text = base64::engine::general_purpose::STANDARD.encode(&raw);
    let mut out = Vec::new();
    for (i, piece) in text.as_bytes().chunks(line).enumerate() {
        out.extend_from_slice(if i == 0 { &[6, 9] } else { &[4, 20] });
        out.extend_from_slice(piece);
        out.push(b'\n');
    }
    out
}

/// The server and one image, talked to through the serial framing in both directions.
struct Device {
    server: Server,
    decoder: serial::Decoder,
    slots: Slots<Nor>,
    sequence: u8,
    events: Vec<Event>,
}

/// A reply: its header's op, group, sequence and command, and its CBOR body.
struct Reply {
    header: [u8; 8],
    body: Vec<u8>,
}

impl Reply {
    /// The reply's map as `key=value` lines, for comparing.
    fn fields(&self) -> Vec<String> {
        let mut d = Decoder::new(&self.body);
        let n = d.map().unwrap().unwrap();
        (0..n).map(|_| format!("{}={}", d.str().unwrap(), value(&mut d))).collect()
    }

    /// The error's `rc` and `rsn`, if it is one.
    fn error(&self) -> Option<(u64, String)> {
        let fields = self.fields();
        let get = |key: &str| fields.iter().find_map(|f| f.strip_prefix(&format!("{key}=")).map(str::to_owned));
        Some((get("rc")?.parse().unwrap(), get("rsn")?.trim_matches('"').to_owned()))
    }
}

/// A CBOR value as text: numbers, booleans, quoted text, bytes in hex, arrays of maps.
fn value(d: &mut Decoder<'_>) -> String {
    use minicbor::data::Type;
    match d.datatype().unwrap() {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => d.u64().unwrap().to_string(),
        Type::Bool => d.bool().unwrap().to_string(),
        Type::String => format!("{:?}", d.str().unwrap()),
        Type::Bytes => d.bytes().unwrap().iter().map(|b| format!("{b:02x}")).collect(),
        Type::Array => {
            let n = d.array().unwrap().unwrap();
            let items: Vec<String> = (0..n)
                .map(|_| {
                    let m = d.map().unwrap().unwrap();
                    let pairs: Vec<String> = (0..m).map(|_| format!("{}={}", d.str().unwrap(), value(d))).collect();
                    format!("{{{}}}", pairs.join(" "))
                })
                .collect();
            items.join(" ")
        }
        other => panic!("unexpected {other:?}"),
    }
}

impl Device {
    fn new() -> Device {
        Device {
            server: Server::new(),
            decoder: serial::Decoder::new(BUF_SIZE),
            slots: slots(),
            sequence: 0,
            events: Vec::new(),
        }
    }

    /// Feeds `bytes` to the device as its UART would; returns the replies it sends.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Reply> {
        let mut wire = Vec::new();
        let mut response = Vec::new();
        for &byte in bytes {
            match self.decoder.push(byte) {
                None => continue,
                Some(Ok(packet)) => {
                    let packet = packet.to_vec();
                    let event = self.server.handle(&packet, &mut [&mut self.slots as &mut dyn Image], &mut response);
                    self.events.push(event);
                }
                Some(Err(damaged)) => self.server.damaged(damaged, &mut response),
            }
            if !response.is_empty() {
                serial::encode(&response, |line| {
                    assert!(line.len() <= 127, "a line of {} bytes", line.len());
                    wire.extend_from_slice(line)
                });
            }
        }
        // Decoded as a client decodes them, each line's base64 on its own.
        let mut replies = Vec::new();
        let mut raw = Vec::new();
        for line in wire.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if line.starts_with(&[6, 9]) {
                raw.clear();
            }
            raw.extend(base64::engine::general_purpose::STANDARD.decode(&line[2..]).unwrap());
            let len = u16::from_be_bytes([raw[0], raw[1]]) as usize;
            if raw.len() == len + 2 {
                let packet = &raw[2..raw.len() - 2];
                let crc = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM).checksum(packet);
                assert_eq!(crc.to_be_bytes(), raw[raw.len() - 2..], "the reply's CRC");
                replies.push(Reply {
                    header: packet[..8].try_into().unwrap(),
                    body: packet[8..].to_vec(),
                });
            }
        }
        replies
    }

    /// Sends one request and returns its one reply, checking that the reply answers it.
    fn ask(&mut self, op: u8, group: u16, id: u8, body: &[u8]) -> Reply {
        self.sequence = self.sequence.wrapping_add(1);
        let replies = self.feed(&frame(&request(op, group, id, self.sequence, body), 124));
        assert_eq!(replies.len(), 1, "one reply");
        let reply = replies.into_iter().next().unwrap();
        assert_eq!(reply.header[0] & 0b111, op + 1, "the reply's op");
        assert_eq!(u16::from_be_bytes([reply.header[4], reply.header[5]]), group);
        assert_eq!((reply.header[6], reply.header[7]), (self.sequence, id));
        assert_eq!(u16::from_be_bytes([reply.header[2], reply.header[3]]) as usize, reply.body.len());
        reply
    }

    /// Uploads `package` to image 0 in pieces of `piece` bytes, as smpclient does (with
    /// the SHA-256 it sends, which the device does not check); returns the last reply.
    fn upload(&mut self, package: &[u8], piece: usize) -> Reply {
        let sha = sha2::Sha256::digest(package);
        let mut off = 0;
        loop {
            let data = &package[off..(off + piece).min(package.len())];
            let body = if off == 0 {
                map(5, |e| {
                    e.str("image").unwrap().u32(0).unwrap().str("len").unwrap().u64(package.len() as u64).unwrap();
                    e.str("off").unwrap().u32(0).unwrap().str("sha").unwrap().bytes(&sha).unwrap();
                    e.str("data").unwrap().bytes(data).unwrap();
                })
            } else {
                map(2, |e| {
                    e.str("off").unwrap().u64(off as u64).unwrap().str("data").unwrap().bytes(data).unwrap();
                })
            };
            let reply = self.ask(2, 1, 1, &body);
            if reply.error().is_some() {
                return reply;
            }
            let next = reply.fields().iter().find_map(|f| f.strip_prefix("off=").map(|n| n.parse::<usize>().unwrap()));
            off = next.expect("an offset");
            if off == package.len() {
                return reply;
            }
        }
    }

    /// Sends `package` from `off` to its end in pieces of 400 bytes, each at its
    /// offset; returns the last reply.
    fn rest_of(&mut self, package: &[u8], off: usize) -> Reply {
        let mut reply = None;
        for off in (off..package.len()).step_by(400) {
            let body = map(2, |e| {
                let data = &package[off..(off + 400).min(package.len())];
                e.str("off").unwrap().u64(off as u64).unwrap().str("data").unwrap().bytes(data).unwrap();
            });
            reply = Some(self.ask(2, 1, 1, &body));
        }
        reply.expect("something left to send")
    }

    fn state(&mut self) -> Vec<String> {
        self.ask(0, 1, 0, &map(0, |_| ())).fields()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_serial_framing_reads_and_writes_what_mcumgr_clients_send() {
    // smp's documented encoding of "Hello, world!" (its `smp.packet.encode`).
    let mut decoder = serial::Decoder::new(BUF_SIZE);
    let mut got = None;
    for &byte in b"\x06\tAA9IZWxsbywgd29ybGQhet4=\n" {
        if let Some(packet) = decoder.push(byte) {
            got = Some(packet.unwrap().to_vec());
        }
    }
    assert_eq!(got.as_deref(), Some(&b"Hello, world!"[..]));
    let mut wire = Vec::new();
    serial::encode(b"Hello, world!", |line| wire.extend_from_slice(line));
    assert_eq!(wire, b"\x06\tAA9IZWxsbywgd29ybGQhet4=\n");
    // Lines of 4 characters, console text between frames, and a carriage return.
    let mut input = b"boot: hello\n".to_vec();
    input.extend(frame(b"a longer packet, in many lines", 4));
    input.extend_from_slice(b"\r\n");
    let mut decoder = serial::Decoder::new(BUF_SIZE);
    let packets: Vec<Vec<u8>> = input.iter().filter_map(|&b| decoder.push(b).map(|p| p.unwrap().to_vec())).collect();
    assert_eq!(packets, [b"a longer packet, in many lines".to_vec()]);
    // A long packet goes out in lines of at most 127 bytes that a client reads back.
    let long: Vec<u8> = (0..=255u8).cycle().take(500).collect();
    let mut wire = Vec::new();
    serial::encode(&long, |line| {
        assert!(line.len() <= 127);
        wire.extend_from_slice(line)
    });
    let mut decoder = serial::Decoder::new(BUF_SIZE);
    let packets: Vec<Vec<u8>> = wire.iter().filter_map(|&b| decoder.push(b).map(|p| p.unwrap().to_vec())).collect();
    assert_eq!(packets, [long]);
}

#[test]
fn a_package_uploads_in_pieces_goes_on_trial_and_is_confirmed_over_smp() {
    let mut device = Device::new();
    // The parameters a client reads first, and echo.
    assert_eq!(device.ask(0, 0, 6, &map(0, |_| ())).fields(), [format!("buf_size={BUF_SIZE}"), "buf_count=1".into()]);
    let echo = device.ask(2, 0, 0, &map(1, |e| {
        let _ = e.str("d").unwrap().str("hello").unwrap();
    }));
    assert_eq!(echo.fields(), ["r=\"hello\""]);
    // Before any upload: the guest built into the image runs, and has no hash.
    assert_eq!(
        device.state(),
        ["images={image=0 slot=0 version=\"0.1.0\" bootable=true active=true confirmed=true}"]
    );

    let update = package(Version::new(1, 0, 0), 100);
    let last = device.upload(&update, 200);
    assert_eq!(last.fields(), [format!("off={}", update.len())]);
    assert!(matches!(device.events.last(), Some(Event::Installed { image: 0, version }) if *version == Version::new(1, 0, 0)));
    assert_eq!(device.slots.state(0), SlotState::Pending);
    let hash = hex(&sha2::Sha512::digest(&update));
    let built_in = "{image=0 slot=0 version=\"0.1.0\" bootable=true active=true confirmed=true}";
    assert_eq!(
        device.state(),
        [format!(
            "images={built_in} {{image=0 slot=1 version=\"1.0.0\" hash={hash} bootable=true pending=true \
             confirmed=false active=false}}"
        )]
    );

    // The firmware loads it (on trial); `confirm` with no hash confirms it.
    let current = device.slots.current().unwrap();
    let engine = wasm_embed::engine(current.settings()).unwrap();
    drop(current.load(&engine).unwrap());
    let confirm = map(1, |e| {
        let _ = e.str("confirm").unwrap().bool(true).unwrap();
    });
    let reply = device.ask(2, 1, 0, &confirm);
    assert!(reply.error().is_none(), "{:?}", reply.fields());
    assert_eq!(device.slots.state(0), SlotState::Confirmed);

    // A second upload lists as slot 1 beside what runs; a test of it leaves it pending;
    // `confirm` with its hash is refused until it has run on trial.
    let newer = package(Version::new(1, 1, 0), 200);
    device.upload(&newer, 97);
    let newer_hash = sha2::Sha512::digest(&newer);
    assert_eq!(
        device.state(),
        [format!(
            "images={{image=0 slot=0 version=\"1.0.0\" hash={hash} bootable=true pending=false confirmed=true \
             active=true}} {{image=0 slot=1 version=\"1.1.0\" hash={} bootable=true pending=true confirmed=false \
             active=false}}",
            hex(&newer_hash)
        )]
    );
    let test = map(2, |e| {
        e.str("hash").unwrap().bytes(&newer_hash).unwrap().str("confirm").unwrap().bool(false).unwrap();
    });
    assert!(device.ask(2, 1, 0, &test).error().is_none());
    assert_eq!(device.slots.state(1), SlotState::Pending);
    let confirm_newer = map(2, |e| {
        e.str("hash").unwrap().bytes(&newer_hash).unwrap().str("confirm").unwrap().bool(true).unwrap();
    });
    assert_eq!(
        device.ask(2, 1, 0, &confirm_newer).error(),
        Some((
            6,
            "this package has not run yet; a package is confirmed once it has run on trial (test it, reset or let \
             the firmware load it, then confirm)"
                .to_owned()
        ))
    );
    assert_eq!(device.slots.state(1), SlotState::Pending);
    // Once it runs on trial, its hash confirms it.
    let current = device.slots.current().unwrap();
    assert!(current.is_trial());
    drop(current.load(&wasm_embed::engine(current.settings()).unwrap()).unwrap());
    assert!(device.ask(2, 1, 0, &confirm_newer).error().is_none());
    assert_eq!(device.slots.state(1), SlotState::Confirmed);

    // Reset: replied to, then left to the firmware.
    let reply = device.ask(2, 0, 5, &map(0, |_| ()));
    assert_eq!(reply.fields(), Vec::<String>::new());
    assert!(matches!(device.events.last(), Some(Event::Reset)));
}

#[test]
fn a_trial_the_firmware_reverted_cannot_be_confirmed_over_smp() {
    let mut device = Device::new();
    // A guest whose call traps: it fails the firmware's self-test.
    let traps = {
        let wat = ADD.replace("local.get 0 local.get 1 i32.add", "unreachable");
        let cwasm = wasm_embed::precompile(&settings(), &wat::parse_str(&wat).unwrap()).unwrap();
        let unsigned = PackageBuilder {
            name: "add",
            version: Version::new(2, 0, 0),
            settings: settings(),
            component: false,
            interface: INTERFACE,
            cwasm: &cwasm,
        }
        .unsigned(&key().public_key())
        .unwrap();
        key().sign(&unsigned).unwrap()
    };
    device.upload(&traps, 300);
    let current = device.slots.current().unwrap();
    assert!(current.is_trial());
    drop(current.load(&wasm_embed::engine(current.settings()).unwrap()).unwrap());
    device.slots.revert();
    let hash = sha2::Sha512::digest(&traps);
    for body in [
        map(1, |e| {
            let _ = e.str("confirm").unwrap().bool(true).unwrap();
        }),
        map(2, |e| {
            let _ = e.str("hash").unwrap().bytes(&hash).unwrap().str("confirm").unwrap().bool(true).unwrap();
        }),
    ] {
        let reply = device.ask(2, 1, 0, &body);
        assert_eq!(device.slots.state(0), SlotState::Reverted, "{:?}", reply.fields());
    }
    assert_eq!(device.slots.current().unwrap().slot(), None, "the built-in guest runs");
    // And an image number beyond the list, however large, is no image.
    let body = map(4, |e| {
        e.str("image").unwrap().u64(1 << 32).unwrap().str("len").unwrap().u32(100).unwrap();
        e.str("off").unwrap().u32(0).unwrap().str("data").unwrap().bytes(b"WEPK").unwrap();
    });
    assert_eq!(device.ask(2, 1, 1, &body).error().map(|e| e.0), Some(5));
}

#[test]
fn every_refusal_comes_back_as_its_line_and_nothing_is_installed() {
    let mut device = Device::new();
    let older = package(Version::new(0, 0, 9), 1);
    let mut flipped = package(Version::new(1, 0, 0), 100);
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let stranger = {
        let other = SecretKey::from_seed([2; 32]);
        let good = package(Version::new(1, 0, 0), 100);
        let fields = wasm_embed::update::Package::read_unverified(&good).unwrap();
        let unsigned = PackageBuilder {
            name: "add",
            version: fields.version(),
            settings: *fields.settings(),
            component: false,
            interface: INTERFACE,
            cwasm: fields.cwasm(),
        }
        .unsigned(&other.public_key())
        .unwrap();
        other.sign(&unsigned).unwrap()
    };
    for (bytes, rc, line) in [
        (
            older,
            11,
            "update for guest `add` refused: version 0.0.9 is older than 0.1.0, the lowest this device accepts \
             (rollback); send a package of version 0.1.0 or newer",
        ),
        (
            flipped,
            11,
            "update for guest `add` refused: bad signature, the package was changed after it was signed; send the \
             package as `cargo wasm-embed sign` wrote it",
        ),
        (
            stranger,
            11,
            "update for guest `add` refused: signed with a key this firmware does not know; sign it with the key \
             whose public half the firmware was built with (Builder::update_key)",
        ),
    ] {
        // The sha the client announces is the one of what it sends.
        let reply = device.upload(&bytes, 150);
        assert_eq!(reply.error(), Some((rc, line.to_owned())));
        assert!(matches!(device.events.last(), Some(Event::Refused { image: 0, error }) if error.to_string() == line));
        assert_eq!(device.slots.state(0), SlotState::Empty);
        assert_eq!(device.slots.state(1), SlotState::Empty);
    }
    // An image the device does not have.
    let body = map(4, |e| {
        e.str("image").unwrap().u32(3).unwrap().str("len").unwrap().u32(100).unwrap();
        e.str("off").unwrap().u32(0).unwrap().str("data").unwrap().bytes(b"WEPK").unwrap();
    });
    assert_eq!(
        device.ask(2, 1, 1, &body).error(),
        Some((5, "this device updates images 0 to 0 only".to_owned()))
    );
}

#[test]
fn bad_frames_bad_cbor_and_pieces_out_of_order_get_error_replies_and_change_nothing() {
    let mut device = Device::new();
    let update = package(Version::new(1, 0, 0), 100);
    // The first piece.
    let first = map(4, |e| {
        e.str("len").unwrap().u64(update.len() as u64).unwrap().str("off").unwrap().u32(0).unwrap();
        e.str("image").unwrap().u32(0).unwrap().str("data").unwrap().bytes(&update[..100]).unwrap();
    });
    assert_eq!(device.ask(2, 1, 1, &first).fields(), ["off=100"]);
    // A piece at the wrong offset: an error, and the upload stays where it was.
    let skipping = map(2, |e| {
        let _ = e.str("off").unwrap().u32(150).unwrap().str("data").unwrap().bytes(&update[150..200]).unwrap();
    });
    assert_eq!(
        device.ask(2, 1, 1, &skipping).error(),
        Some((3, "the piece is at offset 150, the upload is at 100; send from there".to_owned()))
    );
    // Bytes that are no CBOR map, and a map whose fields have the wrong types.
    assert_eq!(
        device.ask(2, 1, 1, b"\xff\x00garbage").error(),
        Some((3, "image upload takes a map with `off` and `data` (and `len` at offset 0)".to_owned()))
    );
    let wrong_types = map(2, |e| {
        let _ = e.str("off").unwrap().str("100").unwrap().str("data").unwrap().u32(7).unwrap();
    });
    assert_eq!(device.ask(2, 1, 1, &wrong_types).error().map(|e| e.0), Some(3));
    // A frame whose CRC is wrong: an error reply under its header; a frame whose header
    // is cut short: no reply at all.
    let mut damaged = frame(&request(2, 1, 1, 77, &skipping), 124);
    damaged[10] = if damaged[10] == b'A' { b'B' } else { b'A' };
    let replies = device.feed(&damaged);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].header[6], 77);
    assert_eq!(
        replies[0].error(),
        Some((9, "the frame was damaged in transit: its CRC does not match; send it again".to_owned()))
    );
    assert!(device.feed(&frame(&[1, 2, 3], 124)).is_empty());
    // An unknown command.
    assert_eq!(device.ask(0, 9, 1, &map(0, |_| ())).error().map(|e| e.0), Some(8));
    // Nothing changed: the upload goes on from 100 and installs.
    assert_eq!(device.rest_of(&update, 100).fields(), [format!("off={}", update.len())]);
    let rest = map(2, |e| {
        let _ = e.str("off").unwrap().u32(100).unwrap().str("data").unwrap().bytes(&update[100..200]).unwrap();
    });
    assert_eq!(device.slots.state(0), SlotState::Pending);
    // A piece after the upload ended.
    assert_eq!(
        device.ask(2, 1, 1, &rest).error(),
        Some((6, "no upload under way; start one at offset 0".to_owned()))
    );
}
