//! Generated modules on the device: runs every module the build was given (see
//! `GENERATED_MODULES` in build.rs) as its guest, through the same load as any guest,
//! and prints what each did with `observe`'s lines, which pipeline-check's on-device
//! test compares with the host's Pulley and with wasmi. The first line says the fuel
//! each call gets, which the host must give too; each module's lines start with
//! `module NAME` and end with its peak heap, which the comparison leaves out.
#![no_std]
#![no_main]

use demo_firmware::{exit, guests, heap, say};

include!(concat!(env!("OUT_DIR"), "/generated-modules.rs"));

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    demo_firmware::init();
    match guests::SETTINGS.fuel {
        Some(fuel) => say!("fuel per call {fuel}"),
        None => say!("fuel off"),
    }
    for guest in GENERATED {
        say!("module {}", guest.name());
        heap::reset_peak();
        // An engine per guest, as a firmware makes one: with the Pulley stack the build
        // bounded for this guest.
        let loaded = wasm_embed::engine(guest.settings()).and_then(|engine| Ok((guest.load(&engine)?, engine)));
        match loaded {
            Ok((module, engine)) => {
                let module = wasm_embed::__private::module_of(&module);
                observe::run(&engine, module, guest.settings().fuel, &mut |line| say!("{line}"));
            }
            Err(error) => say!("error: {error}"),
        }
        say!("peak heap {} bytes", heap::peak());
    }
    say!("done: {} modules", GENERATED.len());
    exit(true)
}
