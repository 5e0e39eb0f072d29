//! What the runtime's tests share: guests written as text, precompiled on the spot.
#![allow(dead_code)]

pub mod nor;

use wasm_embed::{Guest, GuestModule, Settings, Target};

/// The device's settings for this machine's Pulley.
pub fn settings() -> Settings {
    Settings::new(Target::this_machine())
}

/// Bytes that live as long as a guest needs them to (`Guest::new` takes `&'static`).
pub fn leak(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

/// `cwasm` as the emitted module embeds it: with the checksum `crc` the build recorded.
pub fn embedded(name: &'static str, cwasm: Vec<u8>, crc: u32, settings: Settings) -> &'static Guest {
    // SAFETY: only `crc`'s bytes are trusted, and loading checks `cwasm` against it
    // before Wasmtime reads it.
    let guest = unsafe { Guest::new(name, leak(cwasm), settings) }.with_checksum(crc);
    Box::leak(Box::new(guest))
}

/// The guest `name` written as `wat`, precompiled with `settings`, as the build embeds it.
pub fn guest(name: &'static str, wat: &str, settings: Settings) -> &'static Guest {
    let cwasm = wasm_embed::precompile(&settings, &wat::parse_str(wat).unwrap()).unwrap();
    let crc = wasm_embed::__private::crc32(&cwasm);
    embedded(name, cwasm, crc, settings)
}

/// `guest` loaded into an engine of its own.
pub fn load(guest: &'static Guest) -> Result<GuestModule, wasm_embed::Error> {
    guest.load(&wasm_embed::engine(guest.settings())?)
}

/// A guest with the add example's interface: `add_with_extra(a, b) = a + b + extra()`.
pub const ADD: &str = r#"(module
  (import "host" "extra" (func $extra (result i32)))
  (func (export "add_with_extra") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add call $extra i32.add))"#;

/// `cwasm` as another Wasmtime major version (47) would have written it: Wasmtime's own
/// output with only the version record it checks first changed.
pub fn from_wasmtime_47(mut cwasm: Vec<u8>) -> Vec<u8> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(&*cwasm).unwrap();
    let section = file.section_by_name(".wasmtime.engine").unwrap().file_range().unwrap().0 as usize;
    // A format byte, then the length-prefixed version (`engine/serialization.rs`): the
    // major version alone, as Wasmtime 48 and later write it.
    assert_eq!(&cwasm[section..section + 2], b"\x00\x02");
    assert!(cwasm[section + 2..section + 4].iter().all(u8::is_ascii_digit));
    cwasm[section + 2..section + 4].copy_from_slice(b"47");
    cwasm
}

/// Polls `future` to the end, as an executor would, counting the polls that were pending.
pub fn run<F: std::future::Future>(future: F) -> (F::Output, usize) {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut pending = 0;
    loop {
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(output) => return (output, pending),
            std::task::Poll::Pending => pending += 1,
        }
    }
}
