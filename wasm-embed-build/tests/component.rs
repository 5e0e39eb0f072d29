//! Component guests on the host: a guest crate with a WIT world, built by the library
//! into a component, precompiled, loaded by wasm-embed and called with each WIT type;
//! a guest built for another world; a component loaded as a core module and the
//! reverse.

mod common;

use common::{builder, built_guest};

use wasm_embed::__private::{ComponentInstance, Context};
use wasm_embed::{Error, Fault};
use wasmtime::component::HasSelf;

mod wit {
    wasmtime::component::bindgen!({ path: "../guests/sensor-filter/wit", world: "filter" });
}

use wit::{Filter, FilterImports, Reading, Summary};

mod add_world {
    wasmtime::component::bindgen!({ path: "../guests/add-component/wit", world: "add" });
}

struct Extra;

impl add_world::AddImports for Extra {
    fn extra(&mut self) -> u32 {
        42
    }
}

/// The firmware's side of the world: a calibration table, buffered samples, and a log
/// of what the guest published.
#[derive(Default)]
struct Firmware {
    published: Vec<Summary>,
    refuse: bool,
}

impl FilterImports for Firmware {
    fn calibration(&mut self, sensor: String) -> Result<i32, String> {
        match sensor.as_str() {
            "inlet" => Ok(-3),
            "outlet" => Ok(10),
            _ => Err(format!("sensor `{sensor}` is not in the table")),
        }
    }

    fn history(&mut self, sensor: String) -> Vec<u8> {
        if sensor == "inlet" {
            vec![40, 250, 44]
        } else {
            Vec::new()
        }
    }

    fn publish(&mut self, summary: Summary) -> Result<(), String> {
        if self.refuse {
            return Err("the queue is full".into());
        }
        self.published.push(summary);
        Ok(())
    }
}

fn stack_bytes(stack: &wasm_embed_build::Stack) -> usize {
    match stack {
        wasm_embed_build::Stack::Bounded { bytes } => *bytes,
        other => panic!("{other:?}"),
    }
}

fn reading(sensor: &str, samples: &[u8]) -> Reading {
    Reading {
        sensor: sensor.into(),
        samples: samples.to_vec(),
    }
}

type Instance = ComponentInstance<Firmware, Filter>;

fn instantiate(
    guest: &'static wasm_embed::Guest,
    component: &wasm_embed::GuestComponent,
) -> Instance {
    ComponentInstance::new(
        guest,
        component,
        Firmware::default(),
        |linker| {
            Filter::add_to_linker::<_, HasSelf<Firmware>>(
                linker,
                |context: &mut Context<Firmware>| context.host(),
            )
        },
        |store, component, linker| Filter::instantiate(store, component, linker),
    )
    .unwrap()
}

#[test]
fn a_component_guest_is_built_loaded_and_called_with_each_wit_type() {
    let output = builder("component")
        .guest("guests/sensor-filter")
        .fuel(1_000_000)
        .try_compile()
        .unwrap();
    let guest = built_guest(&output, "sensor_filter");
    // Bounded from the component's own Pulley code (its trampolines too), with room for
    // the host to enter `cabi_realloc` on top of the guest's frames: below the 4 KiB
    // an unbounded guest gets.
    let stack = &output.guests[0].stack;
    assert!(
        matches!(stack, wasm_embed_build::Stack::Bounded { bytes } if (64..4096).contains(bytes)),
        "{stack:?}"
    );
    assert_eq!(guest.settings().max_wasm_stack, stack_bytes(stack).next_multiple_of(16));
    let engine = wasm_embed::engine(guest.settings()).unwrap();
    let component = guest.load_component(&engine).unwrap();
    let mut filter = instantiate(guest, &component);

    // A record with a string and a list in; imports returning a result, a list, and
    // taking a record; a result with a record out.
    let summary = filter
        .call("filter", |w, store| {
            w.call_filter(store, &reading("inlet", &[10, 20, 201, 30]))
        })
        .unwrap()
        .unwrap();
    // 201 and 250 are glitches; the rest are calibrated by -3: 7, 17, 27, 37, 41.
    assert_eq!(summary.sensor, "inlet");
    assert_eq!(summary.kept, [7, 17, 27, 37, 41]);
    assert_eq!((summary.mean, summary.peak), (25, 41));
    let published: Vec<_> = filter
        .host()
        .published
        .iter()
        .map(|s| (&s.sensor, &s.kept))
        .collect();
    assert_eq!(published, [(&summary.sensor, &summary.kept)]);

    // The import's error string reaches the guest, and the guest's error the host.
    let error = filter
        .call("filter", |w, store| {
            w.call_filter(store, &reading("attic", &[1]))
        })
        .unwrap()
        .unwrap_err();
    assert_eq!(
        error,
        "no calibration for attic: sensor `attic` is not in the table"
    );
    let error = filter
        .call("filter", |w, store| {
            w.call_filter(store, &reading("outlet", &[255, 230]))
        })
        .unwrap()
        .unwrap_err();
    assert_eq!(error, "sensor outlet has no sample in range");
    filter.host_mut().refuse = true;
    let error = filter
        .call("filter", |w, store| {
            w.call_filter(store, &reading("outlet", &[1]))
        })
        .unwrap()
        .unwrap_err();
    assert_eq!(error, "the firmware refused the summary: the queue is full");
    assert_eq!(filter.host().published.len(), 1);

    // A trap is an error value with the fault kind and one line, as for core guests.
    assert_eq!(
        filter
            .call("fault", |w, store| w.call_fault(store, 0))
            .unwrap(),
        0
    );
    let trap = filter
        .call("fault", |w, store| w.call_fault(store, 7))
        .unwrap_err();
    assert_eq!(trap.fault(), Some(Fault::Unreachable));
    assert_eq!(
        trap.to_string(),
        "guest `sensor_filter` trapped in `fault`: it panicked or reached `unreachable`, a bug in the guest"
    );
    // The Component Model forbids entering it again; a new instance runs.
    assert!(
        filter
            .call("fault", |w, store| w.call_fault(store, 0))
            .is_err()
    );
    drop(filter);
    let mut filter = instantiate(guest, &component);
    assert_eq!(
        filter
            .call("fault", |w, store| w.call_fault(store, 0))
            .unwrap(),
        0
    );

    // The generated module's handle is made from the same world.
    let module = std::fs::read_to_string(&output.module).unwrap();
    assert!(
        module.contains("pub struct SensorFilter<H: 'static>"),
        "{module}"
    );
    assert!(module.contains("world: \"filter\""), "{module}");
}

#[test]
fn a_component_loaded_as_a_core_module_and_the_reverse_are_errors() {
    let output = builder("component-kinds")
        .guest("guests/sensor-filter")
        .guest("guests/add")
        .try_compile()
        .unwrap();
    let engine = wasm_embed::engine(&output.settings).unwrap();
    let component = built_guest(&output, "sensor_filter");
    let error = component.load(&engine).err().unwrap();
    assert!(
        matches!(
            error,
            Error::WrongKind {
                component: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "guest `sensor_filter`: its .cwasm holds a component, not a core module; load it with \
         Guest::load_component (wasm-embed's `component-model` feature)"
    );
    let module = built_guest(&output, "add");
    let error = module.load_component(&engine).err().unwrap();
    assert_eq!(
        error.to_string(),
        "guest `add`: its .cwasm holds a core module, not a component; load it with Guest::load"
    );
    // Neither refusal leaves the guest marked loaded.
    assert!(component.load_component(&engine).is_ok());
    assert!(module.load(&engine).is_ok());
}

/// A copy of the sensor-filter guest, built from its own WIT, beside a `wit/` that
/// `edit` changed: a guest and a firmware that disagree on the world.
fn guest_with_other_wit(test: &str, edit: impl Fn(&str) -> String) -> std::path::PathBuf {
    let dir = common::out_dir(&format!("{test}-guest"));
    let guest = dir.join("sensor-filter");
    let original = common::repo().join("guests/sensor-filter");
    std::fs::create_dir_all(guest.join("src")).unwrap();
    std::fs::create_dir_all(guest.join("wit")).unwrap();
    std::fs::create_dir_all(guest.join("built-against")).unwrap();
    let source = std::fs::read_to_string(original.join("src/lib.rs")).unwrap();
    std::fs::write(
        guest.join("src/lib.rs"),
        source.replace("path: \"wit\"", "path: \"built-against\""),
    )
    .unwrap();
    std::fs::copy(original.join("Cargo.toml"), guest.join("Cargo.toml")).unwrap();
    let wit = std::fs::read_to_string(original.join("wit/world.wit")).unwrap();
    std::fs::write(guest.join("built-against/world.wit"), &wit).unwrap();
    std::fs::write(guest.join("wit/world.wit"), edit(&wit)).unwrap();
    std::fs::copy(
        common::repo().join("guests/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"sensor-filter\"]\n\n[workspace.package]\n\
         edition = \"2024\"\nlicense = \"MIT\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    guest
}

#[test]
fn a_guest_built_for_another_wit_world_fails_the_build_with_one_line() {
    let cases: [(&str, fn(&str) -> String, &str); 2] = [
        (
            "wit-type",
            |wit| {
                wit.replace(
                    "fault: func(code: u32) -> u32",
                    "fault: func(code: u32) -> s64",
                )
            },
            "the guest's world has the same names, but other types",
        ),
        (
            "wit-export",
            |wit| wit.replace("export fault:", "export reset: func();\n    export fault:"),
            "the guest lacks the export `reset`",
        ),
    ];
    for (test, edit, reason) in cases {
        let guest = guest_with_other_wit(test, edit);
        let error = builder(test)
            .guest(guest.to_str().unwrap())
            .try_compile()
            .unwrap_err();
        let line = error.to_string();
        assert_eq!(
            line,
            format!(
                "guest `sensor_filter` does not match the WIT world in `{}`: {reason}; build the guest with \
                 wit-bindgen's `generate!` from that directory, and change the world there, not in the guest",
                guest.join("wit").display()
            )
        );
        assert!(!line.contains('\n'));
    }
}

#[test]
fn a_wit_directory_that_does_not_parse_fails_the_build_with_one_line() {
    let guest = guest_with_other_wit("wit-broken", |wit| wit.replace("record reading {", "record reading"));
    let error = builder("wit-broken").guest(guest.to_str().unwrap()).try_compile().unwrap_err();
    let line = error.to_string();
    let start = format!("guest `sensor_filter`: the WIT in `{}` is not one valid world: ", guest.join("wit").display());
    assert!(line.starts_with(&start), "{line}");
    assert!(line.ends_with("; fix the .wit files there"), "{line}");
    // wit-parser's own cause, on the one line.
    assert!(line.contains("expected '{', found an identifier"), "{line}");
    assert!(!line.contains('\n'), "{line}");
}

/// Only numbers cross the add guest's world, so its component needs no allocator: the
/// `cabi_realloc` exports wit-bindgen always makes go before wasm-opt, and their code
/// with them.
#[test]
fn a_component_guest_whose_world_passes_only_numbers_loses_its_allocator_and_still_runs() {
    let output = builder("component-add").guest("guests/add-component").try_compile().unwrap();
    let optimized = std::fs::read(common::out_dir_path("component-add").join("add_component.optimized.wasm")).unwrap();
    let mut exports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&optimized) {
        if let wasmparser::Payload::ExportSection(section) = payload.unwrap() {
            exports.extend(section.into_iter().map(|e| e.unwrap().name.to_owned()));
        }
    }
    assert!(exports.contains(&"add-with-extra".to_owned()), "{exports:?}");
    assert!(!exports.iter().any(|e| e.starts_with("cabi_realloc")), "{exports:?}");
    assert!(matches!(output.guests[0].stack, wasm_embed_build::Stack::Bounded { .. }), "{:?}", output.guests[0].stack);

    let guest = built_guest(&output, "add_component");
    let engine = wasm_embed::engine(guest.settings()).unwrap();
    let component = guest.load_component(&engine).unwrap();
    let mut add: ComponentInstance<Extra, add_world::Add> = ComponentInstance::new(
        guest,
        &component,
        Extra,
        |linker| add_world::Add::add_to_linker::<_, HasSelf<Extra>>(linker, |context: &mut Context<Extra>| context.host()),
        |store, component, linker| add_world::Add::instantiate(store, component, linker),
    )
    .unwrap();
    assert_eq!(add.call("add-with-extra", |w, store| w.call_add_with_extra(store, 1, 2)).unwrap(), 45);
}
