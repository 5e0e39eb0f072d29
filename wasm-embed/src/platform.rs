//! The symbols Wasmtime asks a bare-metal platform for (no OS, no virtual memory, no
//! signals). Only thread-local storage remains: Wasmtime keeps the innermost active
//! call's state in slot 0 (slot 1 is for component-model async, which is not built in).
//! A microcontroller firmware runs guests on one thread, so a static per slot is its TLS.
//!
//! The signatures follow `wasmtime-platform.h` of the pinned Wasmtime. The older
//! one-argument form links without complaint but corrupts the call chain.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

const SLOTS: usize = 2;

static TLS: [AtomicPtr<u8>; SLOTS] = [const { AtomicPtr::new(ptr::null_mut()) }; SLOTS];

#[unsafe(no_mangle)]
extern "C" fn wasmtime_tls_get(slot: usize) -> *mut u8 {
    TLS.get(slot)
        .map_or(ptr::null_mut(), |cell| cell.load(Ordering::Relaxed))
}

#[unsafe(no_mangle)]
extern "C" fn wasmtime_tls_set(slot: usize, value: *mut u8) {
    if let Some(cell) = TLS.get(slot) {
        cell.store(value, Ordering::Relaxed);
    }
}
