//! Writing the build's files: only when their content changes, so the firmware is not
//! recompiled for a guest that came out the same; and keeping the expensive artifacts
//! (Cranelift's output) of the last build, so a guest that was rebuilt but came out
//! byte-for-byte the same is not compiled again.

use std::path::Path;

use crate::Error;

/// Writes `contents` to `path` unless it holds them already.
pub(crate) fn write_if_changed(path: &Path, contents: &[u8]) -> Result<(), Error> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    std::fs::write(path, contents).map_err(crate::error::io(path))
}

/// The contents of `out_dir/file` if the last build made it from exactly `key`, or else
/// what `make` returns (then stored with its key). Also says whether it was reused.
pub(crate) fn reuse_or(
    out_dir: &Path,
    file: &str,
    key: &[u8],
    make: impl FnOnce() -> Result<Vec<u8>, Error>,
) -> Result<(Vec<u8>, bool), Error> {
    let artifact = out_dir.join(file);
    let key_file = out_dir.join(format!("{file}.key"));
    // The key is compared in full, not by hash, so a reuse is never a collision.
    if std::fs::read(&key_file).is_ok_and(|old| old == key)
        && let Ok(bytes) = std::fs::read(&artifact)
    {
        return Ok((bytes, true));
    }
    let bytes = make()?;
    // Artifact first: a build stopped between the two writes leaves an old key, which
    // does not match and so costs one recompile, never a wrong reuse.
    write_if_changed(&artifact, &bytes)?;
    write_if_changed(&key_file, key)?;
    Ok((bytes, false))
}
