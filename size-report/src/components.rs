//! The component report: the firmwares with component guests beside the add example as a
//! core module, and the Component Model targets.

use crate::add::COMPARISON;
use crate::format::group;
use crate::measure::{Measurement, guest_figure};

/// The firmwares with component guests, measured beside the add example: the add guest
/// as a component, and the sensor filter whose world passes strings, lists, records and
/// results. Label, example, guest.
pub(crate) const COMPONENT_EXAMPLES: [(&str, &str, &str); 2] =
    [("add example, component", "add-component", "add_component"), ("sensor filter, component", "sensor", "sensor_filter")];

/// The add example as a core module beside the firmwares with one component guest, and
/// the Component Model targets.
pub(crate) fn print_components(base: &Measurement, components: &[(&str, &str, Measurement)]) {
    println!("\n## Component guests (thumbv7em-none-eabihf, built with `--features component`)\n");
    println!("| firmware | flash | peak heap | guest's .cwasm | its linear memory | its Pulley stack |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |label: &str, m: &Measurement, guest: &str| {
        let figure = |key| guest_figure(m, guest, key).map_or("?".into(), group);
        println!(
            "| {label} | {} | {} | {} | {} | {} |",
            group(m.flash),
            group(m.peak_heap),
            figure("cwasm"),
            figure("memory_bytes"),
            figure("pulley_stack")
        );
    };
    row("add example, core module", base, "add");
    for (label, guest, m) in components {
        row(label, m, guest);
    }
    for (label, _, m) in components {
        let met = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "\n{label}: flash {} B, target ≤ {} B (Wasmtime's figure in the Ariel OS comparison): {}; \
             peak heap {} B, target ≤ 16,384 B: {}.",
            group(m.flash),
            group(COMPARISON[1].1[3]),
            met(m.flash <= COMPARISON[1].1[3]),
            group(m.peak_heap),
            met(m.peak_heap <= 16 * 1024),
        );
    }
}
