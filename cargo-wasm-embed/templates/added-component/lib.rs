#![no_std]

wit_bindgen::generate!({ path: "wit", world: "{guest}" });

struct Component;

impl Guest for Component {
    fn add(a: u32, b: u32) -> u32 {
        a.wrapping_add(b)
    }
}

export!(Component);

/// wit-bindgen's runtime links `alloc`; only numbers cross this world, so this allocator
/// has nothing to give (an allocation would trap). Give it a real one when strings or
/// lists cross.
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
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
