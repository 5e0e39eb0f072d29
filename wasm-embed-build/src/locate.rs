//! Stage 1: find a guest crate and check that it builds a `.wasm`.

use std::path::{Path, PathBuf};

use cargo_metadata::{Metadata, MetadataCommand, Package, TargetKind};

use crate::Error;

/// A guest crate, found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestCrate {
    /// Its package name (what `cargo build -p` takes).
    pub package: String,
    /// Its library name, which names the `.wasm` and the emitted module.
    pub name: String,
    pub manifest_path: PathBuf,
    pub workspace_root: PathBuf,
    /// The library's root source file, where the bindings find parameter names.
    pub lib_path: PathBuf,
}

/// Finds the guest `spec`: the path of a crate directory (or its `Cargo.toml`), relative
/// to `base`, or the name of a package in the workspace whose manifest is
/// `base/Cargo.toml`.
pub fn locate(spec: &str, base: &Path) -> Result<GuestCrate, Error> {
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
            guest: package.name.to_string(),
            manifest: package.manifest_path.clone().into(),
        })?;
    Ok(GuestCrate {
        package: package.name.to_string(),
        name: lib.name.replace('-', "_"),
        manifest_path: package.manifest_path.clone().into(),
        workspace_root: metadata.workspace_root.clone().into(),
        lib_path: lib.src_path.clone().into(),
    })
}
