#!/usr/bin/env bash
# Cross-checks cvmforge's RTMR1 kernel event (PE/COFF Authenticode SHA-384) on a real bzImage against an independent
# computation with Python `pefile` (in its own venv under build/), unmodified (QEMU >= 10.2) and with QEMU <= 10.1's
# setup-header patch for 1, 2, 3, 8 and 64 GiB of RAM.
#
# Usage: scripts/tdx-rtmr1-check.sh [KERNEL]      (or CVMFORGE_TEST_KERNEL=/boot/vmlinuz-...)
# Prints `N passed, N failed`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KERNEL=${1:-${CVMFORGE_TEST_KERNEL:-}}
if [[ -z "$KERNEL" || ! -f "$KERNEL" ]]; then
    echo "usage: $0 KERNEL (or set CVMFORGE_TEST_KERNEL); kernel \`$KERNEL\` not found" >&2
    exit 2
fi
WORK=$ROOT/build/tdx-rtmr1
mkdir -p "$WORK"
VENV=$WORK/venv
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import pefile' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q pefile
fi
CVMFORGE=${CVMFORGE_BIN:-$ROOT/target/debug/cvmforge}
if [[ -z "${CVMFORGE_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build -q -p cvmforge)
fi
FW=$WORK/OVMF.inteltdx.ms.fd
[[ -f "$FW" ]] || xz -dc "$ROOT/tests/fixtures/firmware/OVMF.inteltdx.ms.fd.xz" > "$FW"
INITRD=$WORK/initrd.bin
head -c 5000000 /dev/zero > "$INITRD"
INITRD_SIZE=$(stat -c %s "$INITRD")

PASSED=0
FAILED=0
kernel_event() { # extra cvmforge args...
    "$CVMFORGE" --json measure tdx --firmware "$FW" --kernel "$KERNEL" --initrd "$INITRD" --explain "$@" \
        | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["events"][0]["digest"])'
}
# A value is a SHA-384 digest: 96 lowercase hex digits. Two empty values (both tools failed) are not a match.
is_digest() { [[ "$1" =~ ^[0-9a-f]{96}$ ]]; }
check() {
    if ! is_digest "$2" || ! is_digest "$3"; then
        echo "  FAIL $1: not a SHA-384 digest: cvmforge \`$2\`, pefile \`$3\`"; FAILED=$((FAILED + 1))
    elif [[ "$2" == "$3" ]]; then echo "  ok   $1 $2"; PASSED=$((PASSED + 1));
    else echo "  FAIL $1: cvmforge \`$2\`, pefile \`$3\`"; FAILED=$((FAILED + 1)); fi
}
echo "kernel: $KERNEL"
check "unmodified (QEMU >= 10.2)" "$(kernel_event)" "$("$VENV/bin/python" "$ROOT/scripts/tdx-authenticode-pefile.py" "$KERNEL")"
for gib in 1 2 3 8 64; do
    mem=$((gib << 30))
    check "QEMU 10.1 patched, ${gib} GiB" "$(kernel_event --qemu-version 10.1 --memory "${gib}G")" \
        "$("$VENV/bin/python" "$ROOT/scripts/tdx-authenticode-pefile.py" "$KERNEL" "$mem" "$INITRD_SIZE")"
done
EXPECTED=6
[[ $((PASSED + FAILED)) -eq $EXPECTED ]] || { echo "  FAIL ran $((PASSED + FAILED)) checks, expected $EXPECTED"; FAILED=$((FAILED + 1)); }
echo "$PASSED passed, $FAILED failed"
[[ "$FAILED" == 0 && "$PASSED" -gt 0 ]]
