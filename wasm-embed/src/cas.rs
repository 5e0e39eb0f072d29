//! Compare-and-swap and the other atomic read-modify-write operations, for cores that
//! have none: ARMv6-M (Cortex-M0/M0+: RP2040, STM32G0/F0/L0, SAMD21, nRF51) and RISC-V
//! without the A extension (ESP32-C3, ESP32-C2).
//!
//! Wasmtime shares its code registry and engine through `alloc::sync::Arc`, which Rust
//! offers only on targets with compare-and-swap. Built for a target spec that says it
//! has it (`"atomic-cas": true`, the specs `cargo wasm-embed new` writes for these
//! cores), LLVM turns each such operation into a call of GCC's `__sync_*` functions,
//! which compiler_builtins does not provide on these targets. Here they are, each one
//! read, compute and write inside a `critical_section::with`: atomic against interrupts
//! on one core, and against the other core too where the firmware's critical-section
//! implementation is multicore-safe (embassy-rp's, on the RP2040). Atomic loads and
//! stores stay plain instructions.

use core::sync::atomic::{Ordering, compiler_fence};

/// One operation on the word at `ptr`: `f` takes what it holds and returns what to
/// store (`None`: leave it) and what to return.
///
/// # Safety
/// `ptr` is valid and aligned for `T`, and every access to it that races with this one
/// is atomic.
#[inline(always)]
unsafe fn update<T: Copy>(ptr: *mut T, f: impl FnOnce(T) -> (Option<T>, T)) -> T {
    critical_section::with(|_| {
        compiler_fence(Ordering::SeqCst);
        // SAFETY: the caller's contract; no interrupt or other core runs meanwhile.
        let current = unsafe { ptr.read_volatile() };
        let (store, result) = f(current);
        if let Some(value) = store {
            // SAFETY: as above.
            unsafe { ptr.write_volatile(value) };
        }
        compiler_fence(Ordering::SeqCst);
        result
    })
}

/// The `__sync_*` functions for one size: `$u` its unsigned type, `$i` its signed type.
macro_rules! sync {
    ($n:literal, $u:ty, $i:ty) => {
        paste_sync! { $n, $u, $i,
            val_compare_and_swap(old: $u, new: $u) => |current: $u| ((current == old).then_some(new), current);
            lock_test_and_set(value: $u) => |current: $u| (Some(value), current);
            fetch_and_add(value: $u) => |current: $u| (Some(current.wrapping_add(value)), current);
            fetch_and_sub(value: $u) => |current: $u| (Some(current.wrapping_sub(value)), current);
            fetch_and_and(value: $u) => |current: $u| (Some(current & value), current);
            fetch_and_or(value: $u) => |current: $u| (Some(current | value), current);
            fetch_and_xor(value: $u) => |current: $u| (Some(current ^ value), current);
            fetch_and_nand(value: $u) => |current: $u| (Some(!(current & value)), current);
            fetch_and_umax(value: $u) => |current: $u| (Some(current.max(value)), current);
            fetch_and_umin(value: $u) => |current: $u| (Some(current.min(value)), current);
            fetch_and_max(value: $u) => |current: $u| (Some((current as $i).max(value as $i) as $u), current);
            fetch_and_min(value: $u) => |current: $u| (Some((current as $i).min(value as $i) as $u), current);
        }
    };
}

/// Defines `__sync_<name>_<n>` for each operation.
macro_rules! paste_sync {
    ($n:literal, $u:ty, $i:ty, $($name:ident($($arg:ident: $t:ty),*) => $f:expr;)*) => {
        $(
            #[doc = concat!("GCC's `__sync_", stringify!($name), "_", $n, "`, in a critical section.")]
            ///
            /// # Safety
            /// `ptr` is valid and aligned, and every access to it that races with this one
            /// is atomic.
            #[unsafe(export_name = concat!("__sync_", stringify!($name), "_", $n))]
            pub unsafe extern "C" fn $name(ptr: *mut $u, $($arg: $t),*) -> $u {
                // SAFETY: the caller's contract.
                unsafe { update(ptr, $f) }
            }
        )*
    };
}

/// The 1-byte operations (`AtomicU8`, `AtomicBool`).
pub mod one {
    use super::update;
    sync!(1, u8, i8);
}

/// The 2-byte operations (`AtomicU16`).
pub mod two {
    use super::update;
    sync!(2, u16, i16);
}

/// The 4-byte operations (`AtomicU32`, `AtomicUsize`, `AtomicPtr`).
pub mod four {
    use super::update;
    sync!(4, u32, i32);
}
