//! The `package` stage: a guest's update package, for a firmware built with an update
//! key. The build writes it unsigned (for `cargo wasm-embed sign` on the machine that
//! keeps the key) and, when `WASM_EMBED_SIGNING_KEY` names a key file, signed too.

use std::path::{Path, PathBuf};

use wasm_embed::Settings;
use wasm_embed::update::{
    PackageBuilder, PublicKey, SecretKey, Version, create_key_files, read_public_key, read_secret_key,
};

use crate::Error;
use crate::bindings::Interface;
use crate::files::write_if_changed;

/// The variable naming the secret key file a development build signs with.
pub const SIGNING_KEY_VARIABLE: &str = "WASM_EMBED_SIGNING_KEY";

/// Updates, as the build was asked for them.
pub(crate) struct Updates {
    /// The key the firmware accepts updates from.
    pub key: PublicKey,
    /// The key a development build signs with.
    pub signing: Option<SecretKey>,
    /// Whether `key` is the build's own development key.
    pub development: bool,
    /// Where the packages go.
    pub dir: PathBuf,
    /// Versions given for guests by name, which win over their crates'.
    pub versions: Vec<(String, String)>,
    /// The version of a prebuilt guest given none: the firmware's.
    pub default_version: String,
}

/// A guest's update package, written.
#[derive(Clone, Debug)]
pub(crate) struct Written {
    pub version: Version,
    /// Its imports and exports as the firmware checks them.
    pub interface: String,
    pub unsigned: PathBuf,
    pub signed: Option<PathBuf>,
}

/// Reads the public key file `path`: a secret key there is refused, since the key
/// goes into the image.
pub(crate) fn public_key(path: &Path) -> Result<PublicKey, Error> {
    let text = std::fs::read_to_string(path).map_err(crate::error::io(path))?;
    read_public_key(&text).map_err(|e| Error::UpdateKey {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The development key pair in `<target_dir>/development-key/`, made with the
/// operating system's random bytes if it is not there yet: the public and the secret
/// key file.
pub(crate) fn development_key(target_dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let dir = target_dir.join("development-key");
    let (public, secret) = (dir.join("update.pub"), dir.join("update.key"));
    if !public.is_file() || !secret.is_file() {
        std::fs::create_dir_all(&dir).map_err(crate::error::io(&dir))?;
        // Half a pair is of no use: make a whole new one.
        let _ = std::fs::remove_file(&secret);
        create_key_files(&secret, &public).map_err(crate::error::io(&secret))?;
    }
    Ok((public, secret))
}

/// Reads the secret key file `path`, which must be the other half of `public`.
pub(crate) fn signing_key(path: &Path, public: &PublicKey) -> Result<SecretKey, Error> {
    let text = std::fs::read_to_string(path).map_err(crate::error::io(path))?;
    let bad = |message: String| Error::UpdateKey {
        path: path.to_owned(),
        message,
    };
    let key = read_secret_key(&text).map_err(|e| bad(e.to_string()))?;
    if key.public_key() != *public {
        return Err(bad(format!(
            "{SIGNING_KEY_VARIABLE} names a key whose public half is not the firmware's update key; \
             name the secret key made with it by `cargo wasm-embed keygen`"
        )));
    }
    Ok(key)
}

/// The interface an update must keep: the imports in order (the typed handle passes
/// them by position), then the exports by name, one per line.
pub(crate) fn interface_text(interface: &Interface) -> String {
    let mut exports: Vec<_> = interface.exports.iter().collect();
    exports.sort_by(|a, b| a.name.cmp(&b.name));
    let mut text = String::new();
    for import in &interface.imports {
        text += &format!("import {}.{}: {}\n", import.module, import.name, import.wasm_signature());
    }
    for export in exports {
        text += &format!("export {}: {}\n", export.name, export.wasm_signature());
    }
    text
}

/// The version `guest`'s package records: the one given for it by name, else its
/// crate's, else (a prebuilt guest) the firmware's.
pub(crate) fn version_of<'a>(guest: &'a crate::locate::Located, updates: &'a Updates) -> &'a str {
    match updates.versions.iter().find(|(name, _)| *name == guest.name) {
        Some((_, version)) => version,
        None => guest.krate().map_or(&updates.default_version, |krate| &krate.version),
    }
}

/// What a guest's package records, and the package itself.
pub(crate) struct Contents<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// Its own Pulley stack included.
    pub settings: Settings,
    pub component: bool,
    pub interface: &'a Interface,
    pub cwasm: &'a [u8],
}

/// Writes `<dir>/<name>.update.unsigned` and, with a signing key, `<dir>/<name>.update`.
pub(crate) fn package(contents: &Contents, updates: &Updates) -> Result<Written, Error> {
    let name = contents.name;
    let version = Version::parse(contents.version).ok_or_else(|| Error::BadVersion {
        guest: name.to_owned(),
        version: contents.version.to_owned(),
    })?;
    let interface = interface_text(contents.interface);
    let failed = |message: &str| Error::Package {
        guest: name.to_owned(),
        message: message.to_owned(),
    };
    let unsigned = PackageBuilder {
        name,
        version,
        settings: contents.settings,
        component: contents.component,
        interface: &interface,
        cwasm: contents.cwasm,
    }
    .unsigned(&updates.key)
    .map_err(failed)?;
    std::fs::create_dir_all(&updates.dir).map_err(crate::error::io(&updates.dir))?;
    let unsigned_path = updates.dir.join(format!("{name}.update.unsigned"));
    write_if_changed(&unsigned_path, &unsigned)?;
    let signed_path = updates.dir.join(format!("{name}.update"));
    let signed = match &updates.signing {
        Some(key) => {
            write_if_changed(&signed_path, &key.sign(&unsigned).map_err(failed)?)?;
            Some(signed_path)
        }
        None => {
            // A signed package of an older build would no longer match.
            let _ = std::fs::remove_file(&signed_path);
            None
        }
    };
    Ok(Written {
        version,
        interface,
        unsigned: unsigned_path,
        signed,
    })
}
