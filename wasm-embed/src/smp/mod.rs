//! Guest updates through MCUmgr's Simple Management Protocol (SMP), so that the tools
//! firmware engineers already use to update Zephyr and MCUboot devices (`smpmgr`,
//! `mcumgr`, nRF Connect Device Manager) install guest packages.
//!
//! Each updatable guest is an SMP image, numbered by its place in the list the firmware
//! gives [`Server::handle`]. What is served:
//!
//! - image upload (group 1, command 1): `image`, `len`, `off` and `data`; the package
//!   goes through [`Slots::install`](crate::update::Slots::install), so every check of
//!   an update applies, and each refusal is an error reply whose `rsn` is the refusal's
//!   one line. A whole upload is pending: the next load runs it on trial. The `sha` a
//!   client sends is not checked: the package's signature and digest are;
//! - image state (group 1, command 0): read lists per image slot 0, what runs (a
//!   package, or the guest built into the image, which has no hash), and slot 1, the
//!   newest other package; each with its version, the SHA-512 of the package (MCUboot's
//!   SHA-512 image hash; ed25519's own hash, so the device carries one) and its flags. Write with `confirm` confirms the guest on trial (with
//!   no hash, every guest on trial); a test of a pending package leaves it pending. A
//!   package is confirmed only once it has run on trial: MCUboot's permanent upgrade,
//!   `confirm` with the hash of a package that never ran, is refused;
//! - reset (group 0, command 5): replied to, then [`Event::Reset`] for the firmware,
//!   which resets when it is ready;
//! - echo (group 0, command 0) and MCUmgr parameters (group 0, command 6).
//!
//! Anything else is an error reply naming what is not supported. A request that does
//! not decode, or an upload piece at another offset than the next, is an error reply and
//! changes nothing. [`serial`] frames packets for a UART; a BLE or UDP transport carries
//! them as they are.

pub mod serial;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use crate::update::{Installed, SlotState, Slots, UpdateError, Updatable, Version};

/// The longest SMP packet (header and CBOR) the server takes: MCUmgr's `buf_size`, which
/// clients read with the parameters command and fill when they upload.
pub const BUF_SIZE: usize = 512;

const OS: u16 = 0;
const IMAGE: u16 = 1;
const HEADER: usize = 8;

/// MCUmgr's general error codes, as the reply's `rc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rc {
    /// Unknown error.
    Unknown = 1,
    /// Too large for the device's memory.
    NoMemory = 2,
    /// A value in the request is wrong.
    Invalid = 3,
    /// No such image or slot.
    NotFound = 5,
    /// The state of the device does not allow it now.
    BadState = 6,
    /// Not supported.
    NotSupported = 8,
    /// Damaged.
    Corrupt = 9,
    /// Blocked by something under way.
    Busy = 10,
    /// Refused: the package is not one this device accepts.
    AccessDenied = 11,
}

/// What a request did that the firmware acts on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Nothing for the firmware to do.
    None,
    /// An upload began: `len` bytes for image `image`.
    Receiving {
        /// The image, as the firmware's list numbers it.
        image: usize,
        /// The package's length, as announced.
        len: usize,
    },
    /// An upload finished: the package is pending in image `image`'s slots.
    Installed {
        /// The image, as the firmware's list numbers it.
        image: usize,
        /// The package's version.
        version: Version,
    },
    /// An update was refused or could not be stored; the reply carried its line.
    Refused {
        /// The image, as the firmware's list numbers it.
        image: usize,
        /// Why.
        error: UpdateError,
    },
    /// Image state write confirmed or tested what the firmware runs next.
    StateChanged,
    /// The client asked for a reset: reset once the reply is sent.
    Reset,
    /// The client sent an echo (a terminal checking the link, say), with its text.
    Echoed {
        /// The text echoed.
        text: String,
    },
}

/// An image as SMP sees it: a guest's [`Slots`], whatever the flash driver. The server
/// takes a list of them.
pub trait Image {
    /// The guest these slots update.
    fn updatable(&self) -> &'static Updatable;
    /// A slot's package and state.
    fn installed(&self, slot: usize) -> Option<Installed<'_>>;
    /// Starts an upload of `len` bytes.
    fn start(&mut self, len: usize) -> Result<(), UpdateError>;
    /// The bytes an upload under way was given so far, and its announced length.
    fn progress(&mut self) -> Option<(usize, usize)>;

    /// The next bytes of the upload under way.
    fn write(&mut self, bytes: &[u8]) -> Result<(), UpdateError>;
    /// Ends the upload under way.
    fn finish(&mut self) -> Result<Version, UpdateError>;
    /// Confirms the guest on trial.
    fn confirm(&mut self) -> Result<Version, UpdateError>;
}

impl<F: embedded_storage::nor_flash::NorFlash> Image for Slots<F> {
    fn updatable(&self) -> &'static Updatable {
        Slots::updatable(self)
    }

    fn installed(&self, slot: usize) -> Option<Installed<'_>> {
        Slots::installed(self, slot)
    }

    fn start(&mut self, len: usize) -> Result<(), UpdateError> {
        self.install(len).map(drop)
    }

    fn progress(&mut self) -> Option<(usize, usize)> {
        self.resume().map(|install| (install.received(), install.len()))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), UpdateError> {
        match self.resume() {
            Some(mut install) => install.write(bytes),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<Version, UpdateError> {
        let name = self.updatable().guest().name();
        match self.resume() {
            Some(install) => install.finish(),
            None => Err(UpdateError::WrongLength {
                guest: name,
                announced: 0,
                given: 0,
            }),
        }
    }

    fn confirm(&mut self) -> Result<Version, UpdateError> {
        Slots::confirm(self)
    }
}

/// An upload under way.
struct Upload {
    image: usize,
    len: usize,
}

/// The SMP server: what it keeps between requests is the upload under way.
pub struct Server {
    upload: Option<Upload>,
}

impl Default for Server {
    fn default() -> Server {
        Server::new()
    }
}

/// A reply's CBOR body, and whether it is an error.
struct Reply {
    body: Vec<u8>,
}

impl Reply {
    fn error(rc: Rc, reason: &str) -> Reply {
        let mut body = Vec::new();
        let mut e = Encoder::new(&mut body);
        let _ = e.map(2).and_then(|e| e.str("rc")?.u32(rc as u32)?.str("rsn")?.str(reason));
        Reply { body }
    }

    fn ok(fill: impl FnOnce(&mut Encoder<&mut Vec<u8>>) -> Result<(), minicbor::encode::Error<core::convert::Infallible>>) -> Reply {
        let mut body = Vec::new();
        let _ = fill(&mut Encoder::new(&mut body));
        Reply { body }
    }
}

type Encoded = Result<(), minicbor::encode::Error<core::convert::Infallible>>;

impl Server {
    /// A server with no upload under way.
    pub const fn new() -> Server {
        Server { upload: None }
    }

    /// Answers `request` (an SMP packet: the 8-byte header and its CBOR) for `images`,
    /// writing the reply packet into `response`; returns what the firmware must act on.
    pub fn handle(&mut self, request: &[u8], images: &mut [&mut dyn Image], response: &mut Vec<u8>) -> Event {
        response.clear();
        let Some(header) = request.get(..HEADER) else {
            return Event::None;
        };
        let (op, group, id) = (header[0] & 0b111, u16::from_be_bytes([header[4], header[5]]), header[7]);
        let body = &request[HEADER..];
        let declared = u16::from_be_bytes([header[2], header[3]]) as usize;
        let (reply, event) = if declared != body.len() {
            (Reply::error(Rc::Invalid, "the header's length is not the packet's; send the request again"), Event::None)
        } else {
            match (group, id, op) {
                (OS, 0, 2) => self.echo(body),
                (OS, 5, 2) => (Reply::ok(|e| e.map(0).map(drop)), Event::Reset),
                (OS, 6, 0) => (
                    Reply::ok(|e| {
                        e.map(2)?.str("buf_size")?.u32(BUF_SIZE as u32)?.str("buf_count")?.u32(1)?;
                        Ok(())
                    }),
                    Event::None,
                ),
                (IMAGE, 0, 0) => (state_reply(images), Event::None),
                (IMAGE, 0, 2) => self.state_write(body, images),
                (IMAGE, 1, 2) => self.upload(body, images),
                _ => (
                    Reply::error(
                        Rc::NotSupported,
                        "this device serves image upload and state, reset, echo and MCUmgr parameters only",
                    ),
                    Event::None,
                ),
            }
        };
        response.extend_from_slice(header);
        response[0] = (header[0] & !0b111) | (op | 1);
        response[1] = 0;
        response[2..4].copy_from_slice(&(reply.body.len() as u16).to_be_bytes());
        response.extend_from_slice(&reply.body);
        event
    }

    /// The reply to a frame the serial decoder found damaged, if its header came through.
    pub fn damaged(&mut self, damaged: serial::Damaged<'_>, response: &mut Vec<u8>) {
        response.clear();
        let Some(header) = damaged.start.get(..HEADER) else {
            return;
        };
        let mut reason = String::from("the frame was damaged in transit: ");
        reason += damaged.reason;
        reason += "; send it again";
        let reply = Reply::error(Rc::Corrupt, &reason);
        response.extend_from_slice(header);
        response[0] = (header[0] & !0b111) | ((header[0] & 0b111) | 1);
        response[1] = 0;
        response[2..4].copy_from_slice(&(reply.body.len() as u16).to_be_bytes());
        response.extend_from_slice(&reply.body);
    }

    fn echo(&self, body: &[u8]) -> (Reply, Event) {
        let mut text = None;
        let read = fields(body, |key, d| {
            if key == "d" {
                text = Some(d.str()?);
            } else {
                skip(d)?;
            }
            Ok(())
        });
        match (read, text) {
            (Ok(()), Some(text)) => (
                Reply::ok(|e| e.map(1)?.str("r")?.str(text).map(drop)),
                Event::Echoed { text: text.into() },
            ),
            _ => (Reply::error(Rc::Invalid, "echo takes a map with the text `d`"), Event::None),
        }
    }

    fn state_write(&mut self, body: &[u8], images: &mut [&mut dyn Image]) -> (Reply, Event) {
        let (mut hash, mut confirm) = (None, false);
        let read = fields(body, |key, d| {
            match key {
                "hash" => hash = Some(d.bytes()?),
                "confirm" => confirm = d.bool()?,
                _ => skip(d)?,
            }
            Ok(())
        });
        if read.is_err() {
            return (Reply::error(Rc::Invalid, "image state write takes a map of `hash` and `confirm`"), Event::None);
        }
        let Some(hash) = hash else {
            if !confirm {
                return (Reply::error(Rc::Invalid, "a test needs the `hash` of the image to test"), Event::None);
            }
            // Confirm what runs: every guest on trial.
            for (image, slots) in images.iter_mut().enumerate() {
                if let Err(error) = slots.confirm() {
                    return refused(image, error);
                }
            }
            return (state_reply(images), Event::StateChanged);
        };
        let found = images.iter().enumerate().find_map(|(image, slots)| {
            (0..2).find_map(|slot| {
                let installed = slots.installed(slot)?;
                (sha512(installed.bytes)[..] == *hash).then_some((image, slot, installed.state))
            })
        });
        let Some((image, slot, state)) = found else {
            return (Reply::error(Rc::NotFound, "no slot holds a package with this hash; upload it first"), Event::None);
        };
        let result = match (state, confirm) {
            (SlotState::Reverted, _) => {
                return (
                    Reply::error(Rc::BadState, "this package was tried and not confirmed, and never runs again; upload it again"),
                    Event::None,
                );
            }
            (SlotState::Pending, true) => {
                return (
                    Reply::error(
                        Rc::BadState,
                        "this package has not run yet; a package is confirmed once it has run on trial (test it, \
                         reset or let the firmware load it, then confirm)",
                    ),
                    Event::None,
                );
            }
            (SlotState::Trial, true) => images[image].confirm().map(drop),
            (SlotState::Confirmed, false) if !images[image].installed(slot).is_some_and(|i| i.active) => {
                return (
                    Reply::error(Rc::AccessDenied, "this package is older than what runs; it runs again only as a fallback"),
                    Event::None,
                );
            }
            // Pending already runs on trial next; a trial or a confirmed package runs.
            _ => Ok(()),
        };
        match result {
            Ok(()) => (state_reply(images), Event::StateChanged),
            Err(error) => refused(image, error),
        }
    }

    fn upload(&mut self, body: &[u8], images: &mut [&mut dyn Image]) -> (Reply, Event) {
        let (mut off, mut data, mut image, mut len) = (None, None, None, None);
        let read = fields(body, |key, d| {
            match key {
                "off" => off = Some(d.u64()?),
                "data" => data = Some(d.bytes()?),
                "image" => image = Some(d.u64()?),
                "len" => len = Some(d.u64()?),
                _ => skip(d)?,
            }
            Ok(())
        });
        let (Ok(()), Some(off), Some(data)) = (read, off, data) else {
            return (
                Reply::error(Rc::Invalid, "image upload takes a map with `off` and `data` (and `len` at offset 0)"),
                Event::None,
            );
        };
        let mut started = None;
        if off == 0 {
            let index = usize::try_from(image.unwrap_or(0)).unwrap_or(usize::MAX);
            let Some(slots) = images.get_mut(index) else {
                let reason = alloc::format!("this device updates images 0 to {} only", images.len().saturating_sub(1));
                return (Reply::error(Rc::NotFound, &reason), Event::None);
            };
            let Some(len) = len else {
                return (Reply::error(Rc::Invalid, "the first piece of an upload carries its `len`"), Event::None);
            };
            self.upload = None;
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if let Err(error) = slots.start(len) {
                return refused(index, error);
            }
            self.upload = Some(Upload { image: index, len });
            started = Some(Event::Receiving { image: index, len });
        }
        let Some(upload) = self.upload.as_mut() else {
            return (Reply::error(Rc::BadState, "no upload under way; start one at offset 0"), Event::None);
        };
        let index = upload.image;
        let slots = &mut images[index];
        let Some((received, _)) = slots.progress() else {
            self.upload = None;
            return (Reply::error(Rc::BadState, "no upload under way; start one at offset 0"), Event::None);
        };
        if off != received as u64 {
            let reason = alloc::format!("the piece is at offset {off}, the upload is at {received}; send from there");
            return (Reply::error(Rc::Invalid, &reason), Event::None);
        }
        if let Err(error) = slots.write(data) {
            self.upload = None;
            return refused(index, error);
        }
        let received = received + data.len();
        if received == upload.len {
            return self.finish(images);
        }
        let reply = Reply::ok(|e| e.map(1)?.str("off")?.u64(received as u64).map(drop));
        (reply, started.unwrap_or(Event::None))
    }

    fn finish(&mut self, images: &mut [&mut dyn Image]) -> (Reply, Event) {
        let upload = self.upload.take().expect("an upload under way");
        match images[upload.image].finish() {
            Ok(version) => (
                Reply::ok(|e| e.map(1)?.str("off")?.u64(upload.len as u64).map(drop)),
                Event::Installed {
                    image: upload.image,
                    version,
                },
            ),
            Err(error) => refused(upload.image, error),
        }
    }
}

/// The reply for `error`, and the event that carries it to the firmware.
fn refused(image: usize, error: UpdateError) -> (Reply, Event) {
    let rc = match &error {
        UpdateError::Malformed { .. } | UpdateError::Truncated { .. } | UpdateError::WrongLength { .. } => Rc::Invalid,
        UpdateError::UnknownKey { .. } | UpdateError::BadSignature { .. } | UpdateError::Older { .. } => Rc::AccessDenied,
        UpdateError::OtherGuest { .. }
        | UpdateError::OtherWasmtime { .. }
        | UpdateError::OtherSettings { .. }
        | UpdateError::OtherInterface { .. } => Rc::NotSupported,
        UpdateError::TooLarge { .. } => Rc::NoMemory,
        UpdateError::SlotInUse { .. } | UpdateError::OnTrial { .. } => Rc::Busy,
        UpdateError::AlreadyInstalled { .. } | UpdateError::NotLoaded { .. } | UpdateError::NotPending { .. } => {
            Rc::BadState
        }
        UpdateError::Load(_) => Rc::Corrupt,
        _ => Rc::Unknown,
    };
    (Reply::error(rc, &error.to_string()), Event::Refused { image, error })
}

/// The image state reply: per image, slot 0 (what runs) and slot 1 (the newest other
/// package).
fn state_reply(images: &[&mut dyn Image]) -> Reply {
    /// One entry: an image's slot 0 or slot 1, `None` for the guest built into the image.
    type Entry<'a> = (usize, u32, Option<Installed<'a>>);
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for (image, slots) in images.iter().enumerate() {
        let installed: Vec<Installed<'_>> = (0..2).filter_map(|slot| slots.installed(slot)).collect();
        entries.push((image, 0, installed.iter().find(|i| i.active).copied()));
        let other = installed.iter().filter(|i| !i.active).max_by_key(|i| i.package.version());
        if let Some(other) = other {
            entries.push((image, 1, Some(*other)));
        }
    }
    Reply::ok(|e| {
        e.map(1)?.str("images")?.array(entries.len() as u64)?;
        for (image, slot, installed) in &entries {
            match installed {
                Some(installed) => entry(e, *image, *slot, installed)?,
                None => {
                    let version = images[*image].updatable().version().to_string();
                    e.map(6)?.str("image")?.u64(*image as u64)?.str("slot")?.u32(0)?.str("version")?.str(&version)?;
                    e.str("bootable")?.bool(true)?.str("active")?.bool(true)?.str("confirmed")?.bool(true)?;
                }
            }
        }
        Ok(())
    })
}

fn entry(e: &mut Encoder<&mut Vec<u8>>, image: usize, slot: u32, installed: &Installed<'_>) -> Encoded {
    let version = installed.package.version().to_string();
    e.map(8)?.str("image")?.u64(image as u64)?.str("slot")?.u32(slot)?.str("version")?.str(&version)?;
    e.str("hash")?.bytes(&sha512(installed.bytes))?;
    e.str("bootable")?.bool(installed.state != SlotState::Reverted)?;
    e.str("pending")?.bool(installed.state == SlotState::Pending)?;
    e.str("confirmed")?.bool(installed.state == SlotState::Confirmed)?;
    e.str("active")?.bool(installed.active)?;
    Ok(())
}

fn sha512(bytes: &[u8]) -> [u8; 64] {
    crate::update::sha512(bytes)
}

/// Skips a value of the kinds a request's fields have (numbers, booleans, text and byte
/// strings, null): MCUmgr's requests are flat maps, and a general skip of nested values
/// costs more flash than the whole server.
fn skip(d: &mut Decoder<'_>) -> Result<(), minicbor::decode::Error> {
    match d.datatype()? {
        Type::Bool => d.bool().map(drop),
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => d.u64().map(drop),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 => d.i64().map(drop),
        Type::Bytes => d.bytes().map(drop),
        Type::String => d.str().map(drop),
        Type::Null => d.null().map(drop),
        _ => Err(minicbor::decode::Error::message("a field of a kind MCUmgr's requests do not have")),
    }
}

/// Reads a request's map, calling `field` with each key and the decoder at its value.
fn fields<'b>(
    body: &'b [u8],
    mut field: impl FnMut(&str, &mut Decoder<'b>) -> Result<(), minicbor::decode::Error>,
) -> Result<(), minicbor::decode::Error> {
    let mut d = Decoder::new(body);
    match d.map()? {
        Some(n) => {
            for _ in 0..n {
                let key = d.str()?;
                field(key, &mut d)?;
            }
        }
        None => {
            while d.datatype()? != Type::Break {
                let key = d.str()?;
                field(key, &mut d)?;
            }
            d.set_position(d.position() + 1);
        }
    }
    if d.position() != body.len() {
        return Err(minicbor::decode::Error::message("bytes after the map"));
    }
    Ok(())
}
