//! The update package: its format, the checks that precede any use of it, and (with the
//! `package` feature) how the build and `cargo wasm-embed sign` write it.
//!
//! All numbers little-endian. A package is a signed header, then the `.cwasm`:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | `WEPK` |
//! | 4..6 | format, 2 |
//! | 6..8 | header length `H`, signature included: a multiple of 16, so the `.cwasm` after it stays aligned; at most 4,096 |
//! | 8..12 | the `.cwasm`'s length |
//! | 12..20 | key ID: the first 8 bytes of the signer's public key |
//! | 20 | kind: 0 a core module, 1 a component |
//! | 21 | target: 0 pulley32, 1 pulley64 |
//! | 22 | profile: 0 size, 1 debug |
//! | 23 | fuel: 0 off, 1 on |
//! | 24..28 | Pulley stack the guest needs, bytes |
//! | 28..36 | fuel per call |
//! | 36..48 | version: major, minor, patch, each at most 2,097,151 |
//! | 48 | name length |
//! | 49 | Wasmtime version length |
//! | 50..52 | interface length |
//! | 52..84 | the `.cwasm`'s digest: the first 32 bytes of its SHA-512 |
//! | 84.. | name, Wasmtime version, interface (UTF-8), zero padding |
//! | H-64..H | ed25519 signature over bytes 0..H-64 |
//! | H.. | the `.cwasm` |
//!
//! The signature covers the header, and the header the `.cwasm`'s digest (SHA-512, the
//! hash ed25519 already needs, so a device carries one hash function): so an install
//! checks the signer, the guest, its settings, interface and version from the first `H`
//! bytes, before it erases anything, and the `.cwasm` against the digest as it streams
//! in. An unsigned package (`<guest>.update.unsigned`) has zeros where the signature
//! goes.
//!
//! The interface is the guest's imports in order (the typed handle passes them by
//! position) and its exports by name, one per line, `import host.extra: () -> i32`. It is
//! carried whole rather than as a digest so that a refusal can name what differs.

use alloc::string::String;
use core::fmt;

use super::{UpdateError, Updatable, WASMTIME_VERSION};
use crate::guest::Kind;
use crate::{Profile, Settings, Target};

const MAGIC: &[u8; 4] = b"WEPK";
const FORMAT: u16 = 2;
/// The fixed part of the header, before the strings.
const FIXED: usize = 84;
/// The `.cwasm` starts at a multiple of this within the package.
const ALIGN: usize = 16;
const SIGNATURE: usize = 64;
const KEY_ID: usize = 8;
const DIGEST: core::ops::Range<usize> = 52..84;
/// The bytes that say how long the header and the `.cwasm` are.
pub(super) const PREAMBLE: usize = 12;
/// The longest header a device takes: an install holds the header in RAM until its
/// signature is checked.
pub(super) const MAX_HEADER: usize = 4096;
/// The shortest header: the fixed fields and the signature, aligned.
pub(super) const MIN_HEADER: usize = (FIXED + SIGNATURE).next_multiple_of(ALIGN);

/// A guest's version, compared as semantic versions are (pre-release tags aside): an
/// update is refused if it is below the lowest version the firmware still accepts.
///
/// Each part is at most [`Version::MAX_PART`], so that a version fits one 64-bit
/// anti-rollback counter exactly ([`Version::to_u64`]); the build refuses a guest
/// version beyond it, and a device a package that claims one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl Version {
    /// `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version { major, minor, patch }
    }

    /// The lowest version: a floor that accepts any update.
    pub const ZERO: Version = Version::new(0, 0, 0);

    /// The largest part a version may have: 21 bits, three of which fill 63 bits.
    pub const MAX_PART: u32 = (1 << 21) - 1;

    /// Reads `1.2.3`; `None` for anything else: a pre-release tag such as `1.2.3-rc.1`
    /// (which has no place in an anti-rollback order), or a part above
    /// [`Version::MAX_PART`] (a date such as `20241105.0.0`).
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.').map(|part| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u32>().ok())
                .flatten()
        });
        let version = Version::new(parts.next()??, parts.next()??, parts.next()??);
        (parts.next().is_none() && version.fits()).then_some(version)
    }

    /// Whether every part is at most [`Version::MAX_PART`].
    pub const fn fits(self) -> bool {
        self.major <= Self::MAX_PART && self.minor <= Self::MAX_PART && self.patch <= Self::MAX_PART
    }

    /// The version as one number that orders as versions do, for a firmware that keeps
    /// its anti-rollback floor in a 64-bit counter; `None` if a part is above
    /// [`Version::MAX_PART`], which no package a device accepts has.
    pub const fn to_u64(self) -> Option<u64> {
        if !self.fits() {
            return None;
        }
        Some(((self.major as u64) << 42) | ((self.minor as u64) << 21) | self.patch as u64)
    }

    /// The version [`Version::to_u64`] made; `None` for a number it cannot make.
    pub const fn from_u64(n: u64) -> Option<Version> {
        const MASK: u64 = Version::MAX_PART as u64;
        if n >> 63 != 0 {
            return None;
        }
        Some(Version::new((n >> 42 & MASK) as u32, (n >> 21 & MASK) as u32, (n & MASK) as u32))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The ed25519 public key a firmware accepts updates from. The build emits it
/// (`guests::UPDATE_KEY`); the secret half never leaves the machine that signs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The key's 32 bytes, as `cargo wasm-embed keygen` writes them (in hex).
    pub const fn new(bytes: [u8; 32]) -> PublicKey {
        PublicKey(bytes)
    }

    /// The key's bytes.
    pub const fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn id(&self) -> &[u8] {
        &self.0[..KEY_ID]
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        hex(f, &self.0)?;
        write!(f, ")")
    }
}

fn hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// The SHA-512 of `bytes`: ed25519's own hash, already in every firmware that verifies.
pub(crate) fn sha512(bytes: &[u8]) -> [u8; 64] {
    ed25519_compact::sha512::Hash::hash(bytes)
}

/// A `.cwasm`'s digest as a package records it: the first 32 bytes of its SHA-512.
pub(crate) fn digest(cwasm: &[u8]) -> [u8; 32] {
    sha512(cwasm)[..32].try_into().expect("SHA-512 is 64 bytes")
}

/// How a package's bytes divide, from its first [`PREAMBLE`] bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Layout {
    /// The header's length, signature included.
    pub header: usize,
    /// The `.cwasm`'s length.
    pub cwasm: usize,
}

impl Layout {
    /// The package's whole length (`usize::MAX` for a preamble whose lengths overflow:
    /// no announced length matches it).
    pub fn len(&self) -> usize {
        self.header.saturating_add(self.cwasm)
    }

    /// Reads the preamble: the magic, the format and the lengths, each in range.
    pub fn read(guest: &'static str, preamble: &[u8]) -> Result<Layout, UpdateError> {
        let malformed = |reason| UpdateError::Malformed { guest, reason };
        if preamble.len() < 8 || &preamble[..4] != MAGIC {
            return Err(malformed("it does not start as a wasm-embed update package does"));
        }
        if u16::from_le_bytes([preamble[4], preamble[5]]) != FORMAT {
            return Err(malformed("its format is not the one this firmware reads (2)"));
        }
        if preamble.len() < PREAMBLE {
            return Err(UpdateError::Truncated {
                guest,
                len: preamble.len(),
                expected: MIN_HEADER,
            });
        }
        let header = u16::from_le_bytes([preamble[6], preamble[7]]) as usize;
        if header % ALIGN != 0 || !(MIN_HEADER..=MAX_HEADER).contains(&header) {
            return Err(malformed("its header length is out of range"));
        }
        let cwasm = u32::from_le_bytes(preamble[8..12].try_into().unwrap()) as usize;
        Ok(Layout { header, cwasm })
    }
}

/// A header whose signature verified and whose every check passed: what the package
/// holds but for the `.cwasm`, borrowed from where the header lies.
#[derive(Clone, Copy, Debug)]
pub(super) struct Header<'a> {
    pub layout: Layout,
    pub name: &'a str,
    pub version: Version,
    pub wasmtime: &'a str,
    pub settings: Settings,
    pub component: bool,
    pub interface: &'a str,
    pub digest: [u8; 32],
    pub signature: [u8; SIGNATURE],
}

impl<'a> Header<'a> {
    /// Checks `header` (exactly the header's bytes) as an update of `guest` signed with
    /// `key`, at version `floor` or above. Nothing but the lengths and the key ID is read
    /// before the signature is verified.
    pub fn verify(
        header: &'a [u8],
        layout: Layout,
        guest: &Updatable,
        key: &PublicKey,
        floor: Version,
    ) -> Result<Header<'a>, UpdateError> {
        let name = guest.guest().name();
        check_signature(name, header, key)?;
        let header = parse(header, layout).map_err(|reason| UpdateError::Malformed { guest: name, reason })?;
        header.check(guest, floor)?;
        Ok(header)
    }

    /// The checks after the signature: that it is this guest, for this firmware's engine
    /// and handle, and not older than `floor`.
    fn check(&self, updatable: &Updatable, floor: Version) -> Result<(), UpdateError> {
        let guest = updatable.guest();
        let name = guest.name();
        if self.name != name {
            return Err(UpdateError::OtherGuest {
                guest: name,
                package: self.name.into(),
            });
        }
        if self.wasmtime != WASMTIME_VERSION {
            return Err(UpdateError::OtherWasmtime {
                guest: name,
                package: self.wasmtime.into(),
            });
        }
        let firmware = guest.settings();
        let differs = |setting, package, firmware| UpdateError::OtherSettings {
            guest: name,
            setting,
            package,
            firmware,
        };
        let built_in_component = Kind::of(guest.cwasm()) == Some(Kind::Component);
        if self.component != built_in_component {
            let kind = |component| if component { "a component" } else { "a core module" };
            return Err(differs("kind", kind(self.component), kind(built_in_component)));
        }
        if self.settings.target != firmware.target {
            return Err(differs("target", self.settings.target.triple(), firmware.target.triple()));
        }
        if self.settings.profile != firmware.profile {
            let profile = |p| if p == Profile::Size { "Size" } else { "Debug" };
            return Err(differs("profile", profile(self.settings.profile), profile(firmware.profile)));
        }
        if self.settings.fuel.is_some() != firmware.fuel.is_some() {
            let fuel = |on: bool| if on { "on" } else { "off" };
            return Err(differs("fuel", fuel(self.settings.fuel.is_some()), fuel(firmware.fuel.is_some())));
        }
        // The first line that differs: imports in order, then exports by name.
        let (mut ours, mut theirs) = (updatable.interface().lines(), self.interface.lines());
        loop {
            match (theirs.next(), ours.next()) {
                (None, None) => break,
                (its, mine) if its == mine => {}
                (its, mine) => {
                    return Err(UpdateError::OtherInterface {
                        guest: name,
                        package: its.map(String::from),
                        firmware: mine.map(String::from),
                    });
                }
            }
        }
        if self.version < floor {
            return Err(UpdateError::Older {
                guest: name,
                package: self.version,
                floor,
            });
        }
        Ok(())
    }

    /// The package with `cwasm` as its `.cwasm`, once it matches the signed digest.
    pub fn with_cwasm(self, guest: &'static str, cwasm: &'a [u8], digest: [u8; 32]) -> Result<Package<'a>, UpdateError> {
        if digest != self.digest || cwasm.len() != self.layout.cwasm {
            return Err(UpdateError::BadSignature { guest });
        }
        Ok(Package { header: self, cwasm })
    }
}

/// A package whose every check passed: what it holds, borrowed from where it lies.
#[derive(Clone, Copy, Debug)]
pub struct Package<'a> {
    header: Header<'a>,
    cwasm: &'a [u8],
}

impl<'a> Package<'a> {
    /// Checks `bytes` as an update of `guest` signed with `key`, at version `floor` or
    /// above, and returns what it holds; an error names the first check that failed.
    /// Nothing but the lengths and the key ID is read before the signature is verified.
    pub fn verify(bytes: &'a [u8], guest: &Updatable, key: &PublicKey, floor: Version) -> Result<Package<'a>, UpdateError> {
        let name = guest.guest().name();
        let layout = whole(name, bytes)?;
        let (header, cwasm) = bytes.split_at(layout.header);
        let header = Header::verify(header, layout, guest, key, floor)?;
        header.with_cwasm(name, cwasm, digest(cwasm))
    }

    /// Reads a package's fields without checking its signature or anything else: for
    /// tools that show what a file holds (`cargo wasm-embed inspect`), never for loading.
    #[cfg(feature = "package")]
    pub fn read_unverified(bytes: &'a [u8]) -> Result<Package<'a>, &'static str> {
        let layout = whole("", bytes).map_err(|_| "not a whole wasm-embed update package")?;
        let (header, cwasm) = bytes.split_at(layout.header);
        Ok(Package {
            header: parse(header, layout)?,
            cwasm,
        })
    }

    /// Checks only that `bytes` is a whole package signed with `key` and that its
    /// `.cwasm` is the one signed: for tools, never for loading, which needs every check
    /// of [`Package::verify`].
    #[cfg(feature = "package")]
    pub fn check_signature(bytes: &[u8], key: &PublicKey) -> Result<(), alloc::string::String> {
        let explain = |error| match error {
            UpdateError::UnknownKey { .. } => "it was signed with another key".into(),
            UpdateError::BadSignature { .. } => "it was changed after it was signed".into(),
            other => alloc::format!("{other}"),
        };
        let layout = whole("", bytes).map_err(explain)?;
        let (header, cwasm) = bytes.split_at(layout.header);
        check_signature("", header, key).map_err(explain)?;
        let header = parse(header, layout).map_err(alloc::string::String::from)?;
        header.with_cwasm("", cwasm, digest(cwasm)).map(drop).map_err(explain)
    }

    /// The guest it updates.
    pub fn name(&self) -> &'a str {
        self.header.name
    }

    /// Its version.
    pub fn version(&self) -> Version {
        self.header.version
    }

    /// The Wasmtime version that precompiled it.
    pub fn wasmtime(&self) -> &'a str {
        self.header.wasmtime
    }

    /// The settings it was precompiled with, its own Pulley stack bound among them: build
    /// the engine that runs it from these.
    pub fn settings(&self) -> &Settings {
        &self.header.settings
    }

    /// Whether it holds a component rather than a core module.
    pub fn is_component(&self) -> bool {
        self.header.component
    }

    /// Its imports and exports, one per line.
    pub fn interface(&self) -> &'a str {
        self.header.interface
    }

    /// Its `.cwasm`'s digest, as its signed header records it: the first 32 bytes of the
    /// `.cwasm`'s SHA-512.
    pub fn cwasm_digest(&self) -> &[u8; 32] {
        &self.header.digest
    }

    /// The precompiled guest.
    pub fn cwasm(&self) -> &'a [u8] {
        self.cwasm
    }

    /// The settings to run it with: how it was compiled, and how the firmware runs its
    /// guest (a package does not carry those, and the firmware's own choice holds for
    /// its update too).
    pub(super) fn run_settings(&self, firmware: &Settings) -> Settings {
        Settings {
            fuel_yield_interval: firmware.fuel_yield_interval,
            async_stack_size: firmware.async_stack_size,
            ..self.header.settings
        }
    }

    pub(super) fn signature(&self) -> &[u8; SIGNATURE] {
        &self.header.signature
    }
}

/// The layout of `bytes`, once its preamble says it is a whole package of exactly
/// `bytes.len()` bytes.
fn whole(guest: &'static str, bytes: &[u8]) -> Result<Layout, UpdateError> {
    let layout = Layout::read(guest, bytes)?;
    let expected = layout.len();
    if bytes.len() != expected {
        return Err(UpdateError::Truncated {
            guest,
            len: bytes.len(),
            expected,
        });
    }
    Ok(layout)
}

/// Checks the key ID and the signature at the end of `header`.
fn check_signature(guest: &'static str, header: &[u8], key: &PublicKey) -> Result<(), UpdateError> {
    if &header[12..12 + KEY_ID] != key.id() {
        return Err(UpdateError::UnknownKey { guest });
    }
    let (signed, signature) = header.split_at(header.len() - SIGNATURE);
    let bad = |_| UpdateError::BadSignature { guest };
    let signature = ed25519_compact::Signature::from_slice(signature).map_err(bad)?;
    ed25519_compact::PublicKey::new(key.0).verify(signed, &signature).map_err(bad)
}

/// Reads a header's fields (`header` is exactly its bytes).
fn parse(header: &[u8], layout: Layout) -> Result<Header<'_>, &'static str> {
    let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
    let (name_len, wasmtime_len) = (header[48] as usize, header[49] as usize);
    let interface_len = u16::from_le_bytes([header[50], header[51]]) as usize;
    let strings = header[FIXED..header.len() - SIGNATURE]
        .get(..name_len + wasmtime_len + interface_len)
        .ok_or("its strings overrun its header")?;
    let text = |range: core::ops::Range<usize>| core::str::from_utf8(&strings[range]).map_err(|_| "a string in it is not UTF-8");
    let name = text(0..name_len)?;
    let wasmtime = text(name_len..name_len + wasmtime_len)?;
    let interface = text(name_len + wasmtime_len..strings.len())?;
    let target = match header[21] {
        0 => Target::Pulley32,
        1 => Target::Pulley64,
        _ => return Err("its target is unknown"),
    };
    let profile = match header[22] {
        0 => Profile::Size,
        1 => Profile::Debug,
        _ => return Err("its profile is unknown"),
    };
    let fuel = match header[23] {
        0 => None,
        1 => Some(u64::from_le_bytes(header[28..36].try_into().unwrap())),
        _ => return Err("its fuel setting is unknown"),
    };
    let component = match header[20] {
        0 => false,
        1 => true,
        _ => return Err("its kind is unknown"),
    };
    let version = Version::new(u32_at(36), u32_at(40), u32_at(44));
    if !version.fits() {
        return Err("its version has a part above 2097151, which no anti-rollback counter holds");
    }
    Ok(Header {
        layout,
        name,
        version,
        wasmtime,
        settings: Settings {
            target,
            profile,
            max_wasm_stack: u32_at(24) as usize,
            fuel,
            ..Settings::new(target)
        },
        component,
        interface,
        digest: header[DIGEST].try_into().unwrap(),
        signature: header[header.len() - SIGNATURE..].try_into().unwrap(),
    })
}

/// What a package records, for writing one: the build writes each guest's, and
/// `cargo wasm-embed sign` signs it.
#[cfg(feature = "package")]
#[derive(Clone, Debug)]
pub struct PackageBuilder<'a> {
    /// The guest's name, as the firmware's emitted module knows it.
    pub name: &'a str,
    /// The guest's version.
    pub version: Version,
    /// The settings its `.cwasm` was precompiled with, and the Pulley stack it needs.
    pub settings: Settings,
    /// Whether `cwasm` holds a component.
    pub component: bool,
    /// Its imports and exports, one per line, as [`Updatable::interface`] has them.
    pub interface: &'a str,
    /// The precompiled guest.
    pub cwasm: &'a [u8],
}

#[cfg(feature = "package")]
impl PackageBuilder<'_> {
    /// The package without its signature, for the key `key`: what [`sign`] signs.
    ///
    /// [`sign`]: SecretKey::sign
    pub fn unsigned(&self, key: &PublicKey) -> Result<alloc::vec::Vec<u8>, &'static str> {
        let too_long = |what| move |_| what;
        let name_len = u8::try_from(self.name.len()).map_err(too_long("the guest's name is over 255 bytes"))?;
        let wasmtime_len = WASMTIME_VERSION.len() as u8;
        let interface_len =
            u16::try_from(self.interface.len()).map_err(too_long("the guest's interface is over 65,535 bytes"))?;
        let header =
            (FIXED + self.name.len() + WASMTIME_VERSION.len() + self.interface.len() + SIGNATURE).next_multiple_of(ALIGN);
        if header > MAX_HEADER {
            return Err("its name and interface take over 4,096 bytes, more than a device holds while it checks them");
        }
        let cwasm_len = u32::try_from(self.cwasm.len()).map_err(too_long("the .cwasm is over 4 GiB"))?;
        let stack = u32::try_from(self.settings.max_wasm_stack).map_err(too_long("the Pulley stack is over 4 GiB"))?;
        if !self.version.fits() {
            return Err("its version has a part above 2097151, which no anti-rollback counter holds");
        }
        let mut out = alloc::vec::Vec::with_capacity(header + self.cwasm.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&(header as u16).to_le_bytes());
        out.extend_from_slice(&cwasm_len.to_le_bytes());
        out.extend_from_slice(key.id());
        out.push(self.component.into());
        out.push(match self.settings.target {
            Target::Pulley32 => 0,
            Target::Pulley64 => 1,
        });
        out.push(match self.settings.profile {
            Profile::Size => 0,
            Profile::Debug => 1,
        });
        out.push(self.settings.fuel.is_some().into());
        out.extend_from_slice(&stack.to_le_bytes());
        out.extend_from_slice(&self.settings.fuel.unwrap_or(0).to_le_bytes());
        for part in [self.version.major, self.version.minor, self.version.patch] {
            out.extend_from_slice(&part.to_le_bytes());
        }
        out.push(name_len);
        out.push(wasmtime_len);
        out.extend_from_slice(&interface_len.to_le_bytes());
        out.extend_from_slice(&digest(self.cwasm));
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(WASMTIME_VERSION.as_bytes());
        out.extend_from_slice(self.interface.as_bytes());
        // Zero padding, then zeros where the signature goes.
        out.resize(header, 0);
        out.extend_from_slice(self.cwasm);
        Ok(out)
    }
}

/// An ed25519 signing key. It belongs in a file only its owner reads, never in the
/// firmware's sources, `OUT_DIR` or image.
#[cfg(feature = "package")]
pub struct SecretKey {
    pair: ed25519_compact::KeyPair,
}

#[cfg(feature = "package")]
impl SecretKey {
    /// The key made from 32 random bytes (`cargo wasm-embed keygen` takes them from the
    /// operating system).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey {
            pair: ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed)),
        }
    }

    /// Its public half, which the firmware embeds.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.pair.pk)
    }

    /// Signs `unsigned` ([`PackageBuilder::unsigned`]'s bytes, or a file the build
    /// wrote) and returns the whole package; refuses bytes that are not an unsigned
    /// package made for this key.
    pub fn sign(&self, unsigned: &[u8]) -> Result<alloc::vec::Vec<u8>, &'static str> {
        let layout = whole("", unsigned).map_err(|error| match error {
            UpdateError::Truncated { .. } => "it is truncated: its header records another length",
            _ => "it is not a wasm-embed update package",
        })?;
        if unsigned[12..12 + KEY_ID] != self.pair.pk[..KEY_ID] {
            return Err("it was built for another key (Builder::update_key names the public key it is for)");
        }
        let (header, cwasm) = unsigned.split_at(layout.header);
        let fields = parse(header, layout)?;
        if fields.signature != [0; SIGNATURE] {
            return Err("it is signed already");
        }
        if digest(cwasm) != fields.digest {
            return Err("its .cwasm is not the one its header records");
        }
        let signed = header.len() - SIGNATURE;
        let mut out = unsigned.to_vec();
        out[signed..layout.header].copy_from_slice(&*self.pair.sk.sign(&header[..signed], None));
        Ok(out)
    }

    /// The key file's text: `wasm-embed secret key ` and the seed in hex.
    pub fn to_file_text(&self) -> alloc::string::String {
        alloc::format!("{SECRET_PREFIX}{}\n", to_hex(&*self.pair.sk.seed()))
    }
}

#[cfg(feature = "package")]
impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(for {:?})", self.public_key())
    }
}

#[cfg(feature = "package")]
impl PublicKey {
    /// The key file's text: `wasm-embed public key ` and the key in hex.
    pub fn to_file_text(&self) -> alloc::string::String {
        alloc::format!("{PUBLIC_PREFIX}{}\n", to_hex(&self.0))
    }
}

#[cfg(feature = "package")]
const PUBLIC_PREFIX: &str = "wasm-embed public key ";
#[cfg(feature = "package")]
const SECRET_PREFIX: &str = "wasm-embed secret key ";

/// Why a key file could not be read.
#[cfg(feature = "package")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFileError {
    /// A secret key was given where a public one belongs: it would end up in the image.
    SecretGivenAsPublic,
    /// A public key was given where the secret one is needed to sign.
    PublicGivenAsSecret,
    /// Not a key file `cargo wasm-embed keygen` writes.
    NotAKey,
}

#[cfg(feature = "package")]
impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyFileError::SecretGivenAsPublic => {
                "it holds a secret key, which must never be built into a firmware; give the .pub file beside it"
            }
            KeyFileError::PublicGivenAsSecret => "it holds a public key, which cannot sign; give the secret key file",
            KeyFileError::NotAKey => {
                "it is not a key file of `cargo wasm-embed keygen` (`wasm-embed public key <64 hex digits>`)"
            }
        })
    }
}

/// Makes a key pair from the operating system's random bytes and writes it: the secret
/// key to `secret`, readable by its owner only (an existing file there is an error, never
/// overwritten), and the public key to `public`. `cargo wasm-embed keygen` and the
/// build's development key both make theirs here.
#[cfg(feature = "package")]
pub fn create_key_files(secret: &std::path::Path, public: &std::path::Path) -> std::io::Result<PublicKey> {
    use std::io::Write;
    let mut seed = [0; 32];
    getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(alloc::format!("no random bytes for a key: {e}")))?;
    let key = SecretKey::from_seed(seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(secret)?.write_all(key.to_file_text().as_bytes())?;
    std::fs::write(public, key.public_key().to_file_text())?;
    Ok(key.public_key())
}

/// Reads a public key file.
#[cfg(feature = "package")]
pub fn read_public_key(text: &str) -> Result<PublicKey, KeyFileError> {
    let text = text.trim();
    if text.starts_with(SECRET_PREFIX) {
        return Err(KeyFileError::SecretGivenAsPublic);
    }
    let hex = text.strip_prefix(PUBLIC_PREFIX).ok_or(KeyFileError::NotAKey)?;
    from_hex(hex).map(PublicKey).ok_or(KeyFileError::NotAKey)
}

/// Reads a secret key file.
#[cfg(feature = "package")]
pub fn read_secret_key(text: &str) -> Result<SecretKey, KeyFileError> {
    let text = text.trim();
    if text.starts_with(PUBLIC_PREFIX) {
        return Err(KeyFileError::PublicGivenAsSecret);
    }
    let hex = text.strip_prefix(SECRET_PREFIX).ok_or(KeyFileError::NotAKey)?;
    from_hex(hex).map(SecretKey::from_seed).ok_or(KeyFileError::NotAKey)
}

#[cfg(feature = "package")]
fn to_hex(bytes: &[u8]) -> alloc::string::String {
    bytes.iter().map(|b| alloc::format!("{b:02x}")).collect()
}

#[cfg(feature = "package")]
fn from_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0; 32];
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(core::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}
