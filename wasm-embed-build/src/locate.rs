//! The `locate` stage: find a guest: a crate (checked to build a `.wasm`) or a prebuilt `.wasm`
//! file.

use std::path::{Path, PathBuf};

use cargo_metadata::{Metadata, MetadataCommand, Package, TargetKind};

use crate::Error;

/// The directory, beside a guest crate's `Cargo.toml`, whose WIT world makes it a
/// component guest.
pub(crate) const WIT_DIR: &str = "wit";

/// A guest crate, found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestCrate {
    /// Its package ID (what `cargo build -p` takes): the name alone is ambiguous when a
    /// dependency of another guest has the same name (the `log` guest and the `log`
    /// crate that wit-bindgen's macros use).
    pub package: String,
    /// Its library name, which names the `.wasm` and the emitted module.
    pub name: String,
    pub manifest_path: PathBuf,
    pub workspace_root: PathBuf,
    /// The library's root source file, where the bindings find parameter names.
    pub lib_path: PathBuf,
    /// Its WIT world's directory (`wit/` beside its manifest): a component guest.
    pub wit_dir: Option<PathBuf>,
    /// Its `Cargo.toml` version, which its update package records.
    pub version: String,
}

/// Where a guest's wasm comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A Rust crate, compiled for `wasm32v1-none` by the `compile` stage.
    Crate(GuestCrate),
    /// A `.wasm` file made by another toolchain (clang, Zig, TinyGo, AssemblyScript...)
    /// or a third party, taken as it is.
    Wasm(PathBuf),
}

/// A guest, found: its name in the emitted module and where its wasm comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The Rust module its bindings go in, and the stem of its `.cwasm`.
    pub name: String,
    pub source: Source,
}

impl Located {
    /// The guest's crate, if it is built from one.
    pub fn krate(&self) -> Option<&GuestCrate> {
        match &self.source {
            Source::Crate(krate) => Some(krate),
            Source::Wasm(_) => None,
        }
    }
}

/// Finds the guest `spec`: a path ending in `.wasm` (a prebuilt module), the path of a
/// crate directory (or its `Cargo.toml`), relative to `base`, or the name of a package
/// in the workspace whose manifest is `base/Cargo.toml`.
pub fn locate(spec: &str, base: &Path) -> Result<Located, Error> {
    if spec.ends_with(".wasm") {
        let path = base.join(spec);
        if !path.is_file() {
            return Err(Error::WasmNotFound { spec: spec.to_owned(), path });
        }
        let path = path.canonicalize().map_err(crate::error::io(&path))?;
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        return Ok(Located {
            name: crate::bindings::module_name(&stem),
            source: Source::Wasm(path),
        });
    }
    let krate = locate_crate(spec, base)?;
    Ok(Located {
        name: krate.name.clone(),
        source: Source::Crate(krate),
    })
}

fn locate_crate(spec: &str, base: &Path) -> Result<GuestCrate, Error> {
    let not_found = |reason: String| Error::GuestNotFound {
        spec: spec.to_owned(),
        reason,
    };
    if looks_like_path(spec, base) {
        let mut manifest = base.join(spec);
        if manifest.file_name().is_none_or(|name| name != "Cargo.toml") {
            manifest.push("Cargo.toml");
        }
        if !manifest.is_file() {
            return Err(not_found(format!("{} does not exist", manifest.display())));
        }
        let manifest = manifest.canonicalize().map_err(crate::error::io(&manifest))?;
        let metadata = metadata(&manifest).map_err(not_found)?;
        let package = metadata
            .packages
            .iter()
            .find(|p| p.manifest_path == manifest)
            .ok_or_else(|| {
                not_found(format!(
                    "{} is a virtual workspace manifest, not a crate",
                    manifest.display()
                ))
            })?;
        guest_crate(package, &metadata)
    } else {
        let metadata = metadata(&base.join("Cargo.toml")).map_err(not_found)?;
        let package = metadata
            .workspace_packages()
            .into_iter()
            .find(|p| p.name.as_str() == spec)
            .ok_or_else(|| not_found(format!("no package of that name in the workspace at {}", metadata.workspace_root)))?;
        guest_crate(package, &metadata)
    }
}

fn looks_like_path(spec: &str, base: &Path) -> bool {
    spec.contains(['/', '\\']) || spec.starts_with('.') || base.join(spec).is_dir()
}

fn metadata(manifest: &Path) -> Result<Metadata, String> {
    MetadataCommand::new()
        .manifest_path(manifest)
        .no_deps()
        .exec()
        .map_err(|e| format!("`cargo metadata` failed for {}: {e}", manifest.display()))
}

fn guest_crate(package: &Package, metadata: &Metadata) -> Result<GuestCrate, Error> {
    let lib = package
        .targets
        .iter()
        .find(|t| t.is_kind(TargetKind::CDyLib))
        .ok_or_else(|| Error::NotCdylib {
            // The name the guest's module would have had, as every other message uses.
            guest: package.name.replace('-', "_"),
            manifest: package.manifest_path.clone().into(),
        })?;
    Ok(GuestCrate {
        package: package.id.repr.clone(),
        name: lib.name.replace('-', "_"),
        manifest_path: package.manifest_path.clone().into(),
        workspace_root: metadata.workspace_root.clone().into(),
        lib_path: lib.src_path.clone().into(),
        version: package.version.to_string(),
        wit_dir: package.manifest_path.parent().and_then(|dir| {
            let wit = dir.join(WIT_DIR);
            wit.is_dir().then(|| wit.into())
        }),
    })
}
