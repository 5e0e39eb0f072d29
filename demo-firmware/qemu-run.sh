#!/bin/sh
# Runs a firmware on one of QEMU's boards: qemu-run.sh MACHINE CPU FIRMWARE, where
# MACHINE is an Arm MPS2 board or `virt` (RISC-V). Semihosting carries the firmware's
# output and exit code back. What a host sends the board's first UART comes from
# FIRMWARE.uart in the update directory beside the binaries, when the build wrote one
# (the update example's packages); else the UART is left unconnected. The embassy
# examples run with `-icount shift=4`: one instruction every 16 ns, so their time is that
# of a 62.5 MHz core that runs an instruction a cycle, whatever the host's speed.
machine=$1 cpu=$2 firmware=$3
case $machine in
    virt) set -- qemu-system-riscv32 -machine virt -bios none ;;
    *) set -- qemu-system-arm -machine "$machine" -cpu "$cpu" ;;
esac
case $(basename "$firmware") in
    embassy | add_async | float_yields) set -- "$@" -icount shift=4,sleep=off ;;
esac
set -- "$@" -nographic -monitor none -semihosting-config enable=on,target=native -kernel "$firmware"
input="$(dirname "$firmware")/../wasm-embed-updates/$(basename "$firmware").uart"
if [ -f "$input" ]; then
    exec "$@" -chardev stdio,id=uart,signal=off -serial chardev:uart < "$input"
fi
exec "$@" -serial none
