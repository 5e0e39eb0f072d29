#!/bin/sh
# Runs a firmware on one of QEMU's Arm boards: qemu-run.sh MACHINE CPU FIRMWARE.
# Semihosting carries the firmware's output and exit code back. What a host sends the
# board's first UART comes from FIRMWARE.uart in the update directory beside the
# binaries, when the build wrote one (the update example's packages); else the UART is
# left unconnected.
machine=$1 cpu=$2 firmware=$3
input="$(dirname "$firmware")/../wasm-embed-updates/$(basename "$firmware").uart"
if [ -f "$input" ]; then
    exec qemu-system-arm -machine "$machine" -cpu "$cpu" -nographic -monitor none \
        -chardev stdio,id=uart,signal=off -serial chardev:uart \
        -semihosting-config enable=on,target=native -kernel "$firmware" < "$input"
fi
exec qemu-system-arm -machine "$machine" -cpu "$cpu" -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$firmware"
