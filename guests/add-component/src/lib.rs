//! The add example's guest as a component: the same sum, its interface a WIT world.
#![no_std]

wit_bindgen::generate!({ path: "wit", world: "add" });

struct Add;

impl Guest for Add {
    fn add_with_extra(a: u32, b: u32) -> u32 {
        a + b + extra()
    }
}

export!(Add);

/// Only numbers cross this world, so nothing allocates; wit-bindgen's runtime still links
/// `alloc`, which needs an allocator. This one has nothing to give: an allocation would
/// trap.
struct NoHeap;

unsafe impl core::alloc::GlobalAlloc for NoHeap {
    unsafe fn alloc(&self, _: core::alloc::Layout) -> *mut u8 {
        core::ptr::null_mut()
    }

    unsafe fn dealloc(&self, _: *mut u8, _: core::alloc::Layout) {}
}

#[global_allocator]
static NO_HEAP: NoHeap = NoHeap;

#[panic_handler]
fn panic_handler(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable();
}
