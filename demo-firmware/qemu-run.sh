#!/bin/sh
# Runs a firmware on one of QEMU's boards: qemu-run.sh MACHINE CPU FIRMWARE, where
# MACHINE is an Arm MPS2 board or `virt` (RISC-V, CPU `rv32` or `rv32,a=false`). Semihosting carries the firmware's
# output and exit code back. The board's first UART:
# - for the update example, a pseudo-terminal, which QEMU names on stderr ("char device
#   redirected to /dev/pts/N"): point `smpmgr --port` at it;
# - else, what FIRMWARE.uart in the update directory beside the binaries holds, when the
#   build wrote one (the size report's add examples' packages);
# - else unconnected.
# QEMU_MONITOR, when set, is a Unix socket path for QEMU's monitor (the update test cuts
# the power through it). The embassy examples run with `-icount shift=4`: one instruction
# every 16 ns, so their time is that of a 62.5 MHz core that runs an instruction a cycle,
# whatever the host's speed.
machine=$1 cpu=$2 firmware=$3
case $machine in
    virt) set -- qemu-system-riscv32 -machine virt -cpu "$cpu" -bios none ;;
    *) set -- qemu-system-arm -machine "$machine" -cpu "$cpu" ;;
esac
case $(basename "$firmware") in
    embassy | add_async | float_yields) set -- "$@" -icount shift=4,sleep=off ;;
    # One instruction per translation block, so that an interrupt can arrive between any
    # two instructions (QEMU takes them between blocks); QEMU 8 renamed the option.
    atomics)
        if [ "$("$1" --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')" -lt 8 ]; then
            set -- "$@" -singlestep
        else
            set -- "$@" -accel tcg,one-insn-per-tb=on
        fi
        set -- "$@" -icount shift=0 ;;
esac
if [ -n "${QEMU_MONITOR:-}" ]; then
    set -- "$@" -monitor "unix:$QEMU_MONITOR,server=on,wait=off"
else
    set -- "$@" -monitor none
fi
set -- "$@" -nographic -semihosting-config enable=on,target=native -kernel "$firmware"
if [ "$(basename "$firmware")" = update ]; then
    exec "$@" -chardev pty,id=uart -serial chardev:uart
fi
input="$(dirname "$firmware")/../wasm-embed-updates/$(basename "$firmware").uart"
if [ -f "$input" ]; then
    exec "$@" -chardev stdio,id=uart,signal=off -serial chardev:uart < "$input"
fi
exec "$@" -serial none
