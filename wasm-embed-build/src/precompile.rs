//! Stage 5: compile the wasm ahead of time into the `.cwasm` the firmware runs.

use wasm_embed::Settings;

use crate::Error;

pub fn precompile(guest: &str, settings: &Settings, wasm: &[u8]) -> Result<Vec<u8>, Error> {
    wasm_embed::precompile(settings, wasm).map_err(|source| Error::Precompile {
        guest: guest.to_owned(),
        source,
    })
}
