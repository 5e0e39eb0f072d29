//! Part of `emit`: a machine-readable account of what the pipeline produced, written
//! beside the module as `wasm-embed-report.json`, for tracking sizes across builds.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wasm_embed::Settings;

use crate::Error;
use crate::files::write_if_changed;
use crate::guest::Guest;
use crate::pages::Memory;

/// The file name of the report in the output directory.
pub const REPORT_FILE: &str = "wasm-embed-report.json";

pub fn report(out_dir: &Path, settings: &Settings, guests: &[&Guest]) -> Result<PathBuf, Error> {
    let guests: Vec<Value> = guests
        .iter()
        .map(|guest| {
            let (memory, memory_bytes) = match &guest.memory {
                Memory::None => ("none", Some(0)),
                Memory::Exact { bytes } => ("exact", Some(*bytes)),
                Memory::Standard { .. } => ("64 KiB pages", None),
            };
            json!({
                "name": guest.name(),
                "wasm_compiled": guest.sizes.compiled,
                "wasm_stripped": guest.sizes.stripped,
                "wasm_optimized": guest.sizes.optimized,
                "cwasm": guest.sizes.cwasm,
                "memory": memory,
                "memory_bytes": memory_bytes,
                "pulley_stack": match &guest.stack {
                    crate::stack::Stack::Bounded { bytes } => Some(*bytes),
                    crate::stack::Stack::Unbounded { .. } => None,
                },
            })
        })
        .collect();
    let report = json!({
        "target": settings.target.triple(),
        "profile": format!("{:?}", settings.profile),
        "max_wasm_stack": settings.max_wasm_stack,
        "guests": guests,
    });
    let path = out_dir.join(REPORT_FILE);
    let text = serde_json::to_string_pretty(&report).expect("JSON values always serialize");
    write_if_changed(&path, text.as_bytes())?;
    Ok(path)
}
