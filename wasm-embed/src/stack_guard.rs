//! The main stack's guard (the `stack-guard` feature), on the Cortex-M and RISC-V cores.
//!
//! cortex-m-rt and riscv-rt put the stack at the top of RAM, growing down towards the
//! statics, the heap that Wasmtime allocates from among them: an overflow would write over
//! Wasmtime's data without a fault. With this feature, the firmware's build script
//! (wasm-embed-build, which sees the feature) links a guard of
//! `Builder::stack_guard_size` bytes (4 KiB by default) between the statics and the stack,
//! so that the stack ends where the guard begins. [`install`], called first in `main`,
//! makes the guard a region nothing may write or execute:
//!
//! - Armv6-M and Armv7-M (PMSAv6, PMSAv7): MPU region 0, no access, with the default map
//!   for everything else (PRIVDEFENA);
//! - Armv8-M Mainline (PMSAv8): MPU region 0, read-only;
//! - RISC-V: PMP entry 0, no access, locked so that it binds machine mode, the mode a
//!   firmware runs in.
//!
//! A stack that grows into the guard faults at once. wasm-embed takes the fault (Arm:
//! it defines `HardFault`; RISC-V: riscv-rt's `_pre_default_start_trap`, before riscv-rt
//! stores anything on the stack), moves to a stack of its own, and calls the firmware's
//! handler with a [`MainFault`] whose `Display` is the one line to print. The handler
//! then stops or resets the device, as the firmware chooses.
//!
//! With `async` on Arm, the canary below each fiber stack is an MPU region too, read-only,
//! from region 1 up while regions are free: a fiber that overflows faults at its first
//! write below its stack, and the handler gets [`MainFault::FiberStackOverflow`].
//!
//! The guard catches a stack that grows by less than its size at a time: give it more
//! than the firmware's largest frame. Wasmtime's `Engine::new` takes 3,148 B on the
//! Cortex-M4 and 3,200 B on RISC-V, which steps over a 1 KiB guard.
//!
//! `cargo wasm-embed new` writes the call into the board's `init`: the handler prints
//! `error: {fault}` and ends the run, or on a board with defmt panics with the line.

use core::fmt;
use core::ops::Range;
use core::sync::atomic::{AtomicPtr, Ordering};

unsafe extern "C" {
    /// The guard's first byte and the byte after it (wasm-embed-build's linker fragment).
    static __stack_guard: u8;
    static __stack_guard_end: u8;
    /// The top of the main stack (cortex-m-rt, riscv-rt).
    static _stack_start: u8;
}

/// The guard's addresses: between the statics and the stack, aligned to its size.
pub fn guard() -> Range<usize> {
    &raw const __stack_guard as usize..&raw const __stack_guard_end as usize
}

/// Bytes the main stack has above its guard.
pub fn stack_size() -> usize {
    &raw const _stack_start as usize - guard().end
}

/// A fault the guard's handler reports, on a stack of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MainFault {
    /// The main stack grew through its `stack_size` bytes into the guard at `guard`.
    StackOverflow {
        /// Bytes of the stack above its guard.
        stack_size: usize,
        /// The guard's first address.
        guard: usize,
    },
    /// An async call's fiber stack grew into the canary below it, which the MPU guards
    /// (Arm, with `async`): the write faulted before it changed anything outside the
    /// stack's block.
    FiberStackOverflow {
        /// Bytes of the fiber stack above its canary.
        stack_size: usize,
        /// The canary's first address.
        canary: usize,
    },
    /// Any other hard fault (Arm only: on RISC-V, other traps go on into riscv-rt), at
    /// the program counter its exception frame holds.
    HardFault {
        /// Where the fault was taken.
        pc: usize,
    },
}

impl fmt::Display for MainFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MainFault::StackOverflow { stack_size, guard } => write!(
                f,
                "the stack overflowed: it grew through its {stack_size} bytes to the guard at {guard:#010x}; give it \
                 more RAM (a smaller heap) or make the calls that ran less deep"
            ),
            MainFault::FiberStackOverflow { stack_size, .. } => write!(
                f,
                "an async call overflowed its fiber stack of {stack_size} bytes: the MPU stopped it in the {} bytes \
                 kept below it; raise Builder::async_stack_size in build.rs, or make its imports' futures less deep",
                FIBER_CANARY
            ),
            MainFault::HardFault { pc } => write!(f, "hard fault at pc {pc:#010x}"),
        }
    }
}

/// Bytes of the canary below each fiber stack (only async calls have fiber stacks).
#[cfg(feature = "async")]
const FIBER_CANARY: usize = crate::FIBER_STACK_CANARY;
#[cfg(not(feature = "async"))]
const FIBER_CANARY: usize = 256;

/// The firmware's handler, as `install` was given it.
static ON_FAULT: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

#[cfg(all(feature = "async", wasm_embed_mpu_fibers))]
pub(crate) use arch::fibers::{guard as guard_fiber_canary, release as release_fiber_canary};

/// The core has no MPU (Arm) or PMP (RISC-V) to guard the stack with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NoGuard;

impl fmt::Display for NoGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("this core has no MPU or PMP to guard the stack with; turn off wasm-embed's `stack-guard` feature")
    }
}

impl core::error::Error for NoGuard {}

/// Makes the guard a region nothing may write, and hands every later [`MainFault`] to
/// `on_fault`, which must not return. Call it first in `main`: until then the stack is
/// unguarded.
///
/// It takes MPU region 0 (Arm), with the MPU's default map for everything else, or PMP
/// entry 0 (RISC-V), locked until reset. On Arm wasm-embed defines `HardFault`, so the
/// firmware must not define its own. A debugger that catches HardFault (`probe-rs run`
/// does by default) stops the core at the vector, before the handler's line. cortex-m-rt's
/// `heap_start()` is above the guard: a heap placed there is not guarded.
pub fn install(on_fault: fn(&MainFault) -> !) -> Result<(), NoGuard> {
    ON_FAULT.store(on_fault as *mut (), Ordering::Release);
    // The fault entry is only reachable from the vector table or riscv-rt: naming it here
    // links the object that defines it even without LTO.
    core::hint::black_box(arch::FAULT_ENTRY as usize);
    // SAFETY: the guard is memory the link gave nothing else (wasm-embed-build), aligned
    // to its size, a power of two: what the region below needs.
    unsafe { arch::protect(guard()) }
}

/// Calls the firmware's handler; with none installed, waits, as the guard cannot have
/// faulted before `install`.
fn report(fault: MainFault) -> ! {
    let handler = ON_FAULT.load(Ordering::Acquire);
    if handler.is_null() {
        loop {
            core::hint::spin_loop();
        }
    }
    // SAFETY: only `install` stores here, and it stores a `fn(&MainFault) -> !`.
    let handler: fn(&MainFault) -> ! = unsafe { core::mem::transmute(handler) };
    handler(&fault)
}

fn overflow() -> MainFault {
    MainFault::StackOverflow { stack_size: stack_size(), guard: guard().start }
}

/// Bytes of the stack the fault handler switches to: the main stack may be the one that
/// overflowed, so the handler cannot run on it.
const FAULT_STACK_SIZE: usize = 1024;

/// The fault handler's stack, 16-byte aligned as the RISC-V psABI and AAPCS want it.
#[repr(C, align(16))]
struct FaultStack([u8; FAULT_STACK_SIZE]);
static mut FAULT_STACK: FaultStack = FaultStack([0; FAULT_STACK_SIZE]);

#[cfg(target_arch = "arm")]
mod arch {
    use super::{FAULT_STACK, FAULT_STACK_SIZE, MainFault, guard, overflow, report};
    use core::ops::Range;

    unsafe extern "C" {
        fn HardFault();
    }
    pub(super) const FAULT_ENTRY: unsafe extern "C" fn() = HardFault;

    // Every fault enters here. It moves to a stack of its own first, since the main stack
    // may be the one that overflowed, and hands `fault` the stack pointer the core stored
    // the fault's frame on: the process stack's when EXC_RETURN's bit 2 says so (an RTOS
    // thread), else the main stack's. Thumb-1 instructions only, for ARMv6-M.
    core::arch::global_asm!(
        ".global HardFault",
        ".type HardFault, %function",
        ".thumb_func",
        "HardFault:",
        "    mov r0, sp",
        "    mov r1, lr",
        "    movs r2, #4",
        "    tst r1, r2",
        "    beq 1f",
        "    mrs r0, psp",
        "1:",
        "    ldr r1, ={stack}+{size}",
        "    mov sp, r1",
        "    bl {fault}",
        stack = sym FAULT_STACK,
        size = const FAULT_STACK_SIZE,
        fault = sym fault,
    );

    /// The stack reaching its guard, or another fault at the program counter its frame
    /// holds.
    unsafe extern "C" fn fault(sp: usize) -> ! {
        let guard = guard();
        // Entering the handler stores a frame below `sp`: when that faults, `sp` ends in
        // the guard, or at most 8 bytes above it (the 4 by which an ARMv6-M push can
        // exceed a frame, and the 4 the frame's 8-byte alignment can add).
        let within = |range: Range<usize>| {
            fault_address().is_some_and(|at| range.contains(&at)) || (range.start..range.end + 8).contains(&sp)
        };
        if within(guard) {
            report(overflow())
        }
        #[cfg(all(feature = "async", wasm_embed_mpu_fibers))]
        if let Some((canary, stack_size)) = fibers::guarded().find(|(canary, _)| within(canary.clone())) {
            report(MainFault::FiberStackOverflow { stack_size, canary: canary.start })
        }
        // SAFETY: away from the guard, `sp` points at the frame the core stored, whose
        // seventh word is the program counter.
        let pc = unsafe { (sp as *const u32).add(6).read_volatile() } as usize;
        report(MainFault::HardFault { pc })
    }

    /// The data address of a MemManage fault, where the core records one (Armv7-M and
    /// Armv8-M Mainline: CFSR.MMARVALID, MMFAR); ARMv6-M records none.
    fn fault_address() -> Option<usize> {
        #[cfg(not(wasm_embed_armv6m))]
        {
            const CFSR: *const u32 = 0xE000_ED28 as *const u32;
            const MMFAR: *const u32 = 0xE000_ED34 as *const u32;
            // SAFETY: System Control Block registers every Armv7-M and Armv8-M Mainline
            // core has.
            unsafe { (CFSR.read_volatile() & (1 << 7) != 0).then(|| MMFAR.read_volatile() as usize) }
        }
        #[cfg(wasm_embed_armv6m)]
        None
    }

    const MPU_TYPE: *const u32 = 0xE000_ED90 as *const u32;
    const MPU_CTRL: *mut u32 = 0xE000_ED94 as *mut u32;
    /// PMSAv6 and PMSAv7 select region 0 through MPU_RBAR's VALID bit; the fiber
    /// stacks' regions and PMSAv8 through this.
    #[cfg(any(wasm_embed_armv8m, all(feature = "async", wasm_embed_mpu_fibers)))]
    const MPU_RNR: *mut u32 = 0xE000_ED98 as *mut u32;
    const MPU_RBAR: *mut u32 = 0xE000_ED9C as *mut u32;
    /// MPU_RASR on PMSAv6 and PMSAv7, MPU_RLAR on PMSAv8.
    const MPU_RASR_OR_RLAR: *mut u32 = 0xE000_EDA0 as *mut u32;

    /// How many regions the MPU has (MPU_TYPE.DREGION): 0 without one.
    fn regions() -> usize {
        // SAFETY: MPU_TYPE is a read-only System Control Space register.
        (unsafe { MPU_TYPE.read_volatile() } >> 8 & 0xFF) as usize
    }

    /// Runs `f` with interrupts off, so that nothing selects another MPU region between
    /// its writes, and turns them back on only if they were on.
    fn interrupts_off<T>(f: impl FnOnce() -> T) -> T {
        let primask: u32;
        // SAFETY: reads PRIMASK and sets it; restored below.
        unsafe { core::arch::asm!("mrs {0}, PRIMASK", "cpsid i", out(reg) primask, options(nostack, preserves_flags)) };
        let result = f();
        if primask & 1 == 0 {
            // SAFETY: interrupts were on before.
            unsafe { core::arch::asm!("cpsie i", options(nostack, preserves_flags)) };
        }
        result
    }

    /// MPU_MAIR0's attribute 0, which PMSAv8 regions here use, made normal memory,
    /// write-back, as the default map makes SRAM: a canary read through a non-cacheable
    /// region on a core with a data cache would miss its paint. Attributes 1 to 3 are
    /// left as they are.
    #[cfg(wasm_embed_armv8m)]
    fn set_attribute_0() {
        const MPU_MAIR0: *mut u32 = 0xE000_EDC0 as *mut u32;
        // SAFETY: the MPU's attribute register, on every Armv8-M Mainline core.
        unsafe { MPU_MAIR0.write_volatile(MPU_MAIR0.read_volatile() & !0xFF | 0xFF) };
    }

    /// PMSAv6 and PMSAv7: MPU_RBAR takes the base with VALID and region 0; MPU_RASR,
    /// XN, AP 0 (no access), SIZE (log2 of the size, minus one) and ENABLE.
    #[cfg(not(wasm_embed_armv8m))]
    pub(super) unsafe fn protect(guard: Range<usize>) -> Result<(), super::NoGuard> {
        if regions() == 0 {
            return Err(super::NoGuard);
        }
        let size = guard.len().trailing_zeros() - 1;
        interrupts_off(|| {
            // SAFETY: the MPU's registers, which the core has.
            unsafe {
                MPU_RBAR.write_volatile(guard.start as u32 | 1 << 4);
                MPU_RASR_OR_RLAR.write_volatile(1 << 28 | size << 1 | 1);
            }
            enable();
        });
        Ok(())
    }

    /// PMSAv8: region 0 through MPU_RNR; MPU_RBAR the base with AP 0b10 (read-only,
    /// privileged: PMSAv8 has no "no access") and XN; MPU_RLAR the base of the last
    /// 32-byte block with attribute 0 and ENABLE.
    #[cfg(wasm_embed_armv8m)]
    pub(super) unsafe fn protect(guard: Range<usize>) -> Result<(), super::NoGuard> {
        if regions() == 0 {
            return Err(super::NoGuard);
        }
        interrupts_off(|| {
            set_attribute_0();
            // SAFETY: the MPU's registers, which the core has.
            unsafe {
                MPU_RNR.write_volatile(0);
                MPU_RBAR.write_volatile(guard.start as u32 | 0b10 << 1 | 1);
                MPU_RASR_OR_RLAR.write_volatile((guard.end - 32) as u32 | 1);
            }
            enable();
        });
        Ok(())
    }

    /// MPU_CTRL: ENABLE and PRIVDEFENA, so that the default map holds everywhere else.
    fn enable() {
        // SAFETY: as in `protect`; the barriers make the next access see the new map.
        unsafe {
            MPU_CTRL.write_volatile(0b101);
        }
        barrier();
    }

    /// Makes the next access see the MPU's new map.
    fn barrier() {
        // SAFETY: barriers only.
        unsafe { core::arch::asm!("dsb", "isb", options(nostack, preserves_flags)) }
    }

    /// The canaries below async calls' fiber stacks (`fiber_stack.rs`), each in an MPU
    /// region of its own above region 0, read-only: the paint check still reads them,
    /// and a fiber that overflows into one faults before it writes. A region is set
    /// when the stack is made and cleared before its block goes back to the heap.
    #[cfg(all(feature = "async", wasm_embed_mpu_fibers))]
    pub(crate) mod fibers {
        use super::{MPU_RASR_OR_RLAR, MPU_RBAR, MPU_RNR, barrier, interrupts_off, regions};
        use core::ops::Range;
        use core::sync::atomic::{AtomicUsize, Ordering};

        /// The most regions an MPU this runs on has (Armv8-M Mainline: up to 16).
        const REGIONS: usize = 16;

        /// Per region, the canary's first address (0: the region guards none) and the
        /// stack's size. Atomics, so that the fault handler reads them without a lock.
        static CANARY: [AtomicUsize; REGIONS] = [const { AtomicUsize::new(0) }; REGIONS];
        static SIZE: [AtomicUsize; REGIONS] = [const { AtomicUsize::new(0) }; REGIONS];

        /// Whether this core's MPU holds the main stack's guard in region 0: the core
        /// `install` ran on. Each core of a dual-core chip has an MPU of its own, and
        /// the regions here are the first core's.
        fn on_guarded_core() -> bool {
            // SAFETY: the MPU's registers; the caller has interrupts off, so nothing
            // selects another region before the next write.
            unsafe {
                MPU_RNR.write_volatile(0);
                MPU_RBAR.read_volatile() as usize & !0x1F == super::guard().start
                    && MPU_RASR_OR_RLAR.read_volatile() & 1 != 0
            }
        }

        /// Whether `region` is enabled, by whoever set it.
        fn enabled(region: usize) -> bool {
            // SAFETY: as in `on_guarded_core`.
            unsafe {
                MPU_RNR.write_volatile(region as u32);
                MPU_RASR_OR_RLAR.read_volatile() & 1 != 0
            }
        }

        /// Guards `canary`, below a fiber stack of `size` bytes, with a free region, and
        /// returns it; `None` when the main stack's guard is not installed on this core
        /// (the fault would reach no handler) or every region is taken, the firmware's
        /// own left alone: then only the paint check watches this canary.
        pub(crate) fn guard(canary: Range<usize>, size: usize) -> Option<usize> {
            if super::super::ON_FAULT.load(Ordering::Acquire).is_null() {
                return None;
            }
            interrupts_off(|| {
                if !on_guarded_core() {
                    return None;
                }
                let free = |&r: &usize| CANARY[r].load(Ordering::Relaxed) == 0 && !enabled(r);
                let region = (1..regions().min(REGIONS)).find(free)?;
                CANARY[region].store(canary.start, Ordering::Relaxed);
                SIZE[region].store(size, Ordering::Relaxed);
                // SAFETY: the MPU's registers, with interrupts off.
                unsafe { set(region, canary) };
                barrier();
                Some(region)
            })
        }

        /// Frees `region`, so that the canary's block may go back to the heap, which
        /// writes its own records into it; false on another core than the one that set
        /// it, whose MPU this core cannot change: the block must then never be freed.
        pub(crate) fn release(region: usize) -> bool {
            interrupts_off(|| {
                if !on_guarded_core() {
                    return false;
                }
                // SAFETY: as in `guard`. Clearing RASR's or RLAR's ENABLE turns the
                // region off.
                unsafe {
                    MPU_RNR.write_volatile(region as u32);
                    MPU_RASR_OR_RLAR.write_volatile(0);
                }
                barrier();
                CANARY[region].store(0, Ordering::Relaxed);
                true
            })
        }

        /// The canaries guarded now, with their stacks' sizes.
        pub(super) fn guarded() -> impl Iterator<Item = (Range<usize>, usize)> {
            (1..REGIONS).filter_map(|r| {
                let start = CANARY[r].load(Ordering::Relaxed);
                (start != 0).then(|| (start..start + crate::FIBER_STACK_CANARY, SIZE[r].load(Ordering::Relaxed)))
            })
        }

        /// PMSAv6 and PMSAv7: MPU_RBAR with VALID selects the region; MPU_RASR with XN,
        /// AP 0b101 (read-only, privileged), TEX 0b001 with C and B (normal memory,
        /// write-back, as the default map makes SRAM, so that a core with a data cache
        /// reads the paint it wrote), SIZE and ENABLE. The canary is aligned to its size
        /// (fiber_stack.rs).
        #[cfg(not(wasm_embed_armv8m))]
        unsafe fn set(region: usize, canary: Range<usize>) {
            let size = canary.len().trailing_zeros() - 1;
            // SAFETY: the caller's.
            unsafe {
                MPU_RBAR.write_volatile(canary.start as u32 | 1 << 4 | region as u32);
                MPU_RASR_OR_RLAR.write_volatile(1 << 28 | 0b101 << 24 | 0b001 << 19 | 1 << 17 | 1 << 16 | size << 1 | 1);
            }
        }

        /// PMSAv8: as region 0 of the main stack's guard (`protect`), read-only and XN,
        /// with attribute 0.
        #[cfg(wasm_embed_armv8m)]
        unsafe fn set(region: usize, canary: Range<usize>) {
            // SAFETY: the caller's.
            unsafe {
                MPU_RNR.write_volatile(region as u32);
                MPU_RBAR.write_volatile(canary.start as u32 | 0b10 << 1 | 1);
                MPU_RASR_OR_RLAR.write_volatile((canary.end - 32) as u32 | 1);
            }
        }
    }
}

#[cfg(target_arch = "riscv32")]
mod arch {
    use super::{FAULT_STACK, FAULT_STACK_SIZE, overflow, report};
    use core::ops::Range;

    // riscv-rt's trap entry, with its `pre-default-start-trap` feature, enters here first,
    // before it stores the registers on the stack: if the trap is a load or store access
    // fault at an address in the guard, the stack has overflowed, and this moves to a
    // stack of its own and reports it. Otherwise it goes on into riscv-rt with every
    // register as it found it: t0 waits in mscratch, t1 in a static (traps do not nest
    // here).
    core::arch::global_asm!(
        ".pushsection .trap.start, \"ax\"",
        ".global _pre_default_start_trap",
        "_pre_default_start_trap:",
        "    csrw mscratch, t0",
        "    la t0, {saved}",
        "    sw t1, 0(t0)",
        // A store (7) or load (5) access fault
        "    csrr t0, mcause",
        "    li t1, 7",
        "    beq t0, t1, 1f",
        "    li t1, 5",
        "    bne t0, t1, 2f",
        // at an address in the guard.
        "1:  csrr t0, mtval",
        "    la t1, __stack_guard",
        "    bltu t0, t1, 2f",
        "    la t1, __stack_guard_end",
        "    bltu t0, t1, 3f",
        "2:  la t0, {saved}",
        "    lw t1, 0(t0)",
        "    csrr t0, mscratch",
        "    j _pre_default_start_trap_ret",
        "3:  la sp, {stack}+{stack_size}",
        "    call {overflowed}",
        ".popsection",
        saved = sym SAVED_T1,
        stack = sym FAULT_STACK,
        stack_size = const FAULT_STACK_SIZE,
        overflowed = sym overflowed,
    );

    unsafe extern "C" {
        fn _pre_default_start_trap();
    }
    pub(super) const FAULT_ENTRY: unsafe extern "C" fn() = _pre_default_start_trap;

    /// Where the trap entry keeps t1 while it looks at the trap.
    static mut SAVED_T1: u32 = 0;

    extern "C" fn overflowed() -> ! {
        report(overflow())
    }

    /// PMP entry 0 over the guard (NAPOT), no access, locked so that it binds machine
    /// mode; a core with no matching entry lets machine mode reach everything else. The
    /// other entries that pmpcfg0 holds keep their settings. A core without PMP reads
    /// its address register back as 0 (one with a coarser grain than the guard's may
    /// clear its low bits, so only that is asked).
    pub(super) unsafe fn protect(guard: Range<usize>) -> Result<(), super::NoGuard> {
        let address = guard.start >> 2 | (guard.len() / 8 - 1);
        let written: usize;
        // SAFETY: the PMP's machine-mode CSRs, which the firmware, in machine mode, may
        // write; entry 0 is not locked yet, or this writes nothing.
        unsafe { core::arch::asm!("csrw pmpaddr0, {0}", "csrr {1}, pmpaddr0", in(reg) address, out(reg) written, options(nostack)) };
        if written == 0 {
            return Err(super::NoGuard);
        }
        // SAFETY: as above.
        unsafe {
            core::arch::asm!(
                "csrr {config}, pmpcfg0",
                "andi {config}, {config}, -256",
                "ori {config}, {config}, 0x98",
                "csrw pmpcfg0, {config}",
                config = out(reg) _,
                options(nostack),
            );
        }
        Ok(())
    }
}
