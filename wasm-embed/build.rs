fn main() {
    // What the firmware's build script (wasm-embed-build) reads as DEP_WASM_EMBED_STACK_GUARD:
    // with `stack-guard`, it links the guard that `wasm_embed::stack_guard` protects.
    if std::env::var_os("CARGO_FEATURE_STACK_GUARD").is_some() {
        println!("cargo::metadata=stack_guard=1");
    }
    // Armv8-M's MPU (PMSAv8) is programmed otherwise than Armv6-M's and Armv7-M's, and
    // ARMv6-M records no fault address: both from the target's name, as Arm's target
    // features are not stable.
    println!("cargo::rustc-check-cfg=cfg(wasm_embed_armv8m, wasm_embed_armv6m, wasm_embed_mpu_fibers)");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv8m") {
        println!("cargo::rustc-cfg=wasm_embed_armv8m");
    }
    if target.starts_with("thumbv6m") {
        println!("cargo::rustc-cfg=wasm_embed_armv6m");
    }
    // With `stack-guard` on a bare-metal Arm core, the MPU guards fiber stacks' canaries
    // too (src/fiber_stack.rs, src/stack_guard.rs).
    let cfg = |name: &str, value: &str| std::env::var(name).is_ok_and(|v| v == value);
    let bare_metal_arm = cfg("CARGO_CFG_TARGET_OS", "none") && cfg("CARGO_CFG_TARGET_ARCH", "arm");
    if std::env::var_os("CARGO_FEATURE_STACK_GUARD").is_some() && bare_metal_arm {
        println!("cargo::rustc-cfg=wasm_embed_mpu_fibers");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
