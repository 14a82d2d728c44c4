#!/usr/bin/env bash
# TDX RTMRs against independent computations (issue 16: not only `cvmforge measure tdx`, the same library):
#   1. RTMR1's kernel event (PE Authenticode SHA-384) on the real Debian bzImage vs Python pefile, unmodified and
#      with QEMU <= 10.1's header patch at several memory sizes (scripts/tdx-rtmr1-check.sh, 6 cases);
#   2. the RTMR1-3 that the demo image's manifest records, replayed from its files with hashlib and pefile only
#      (scripts/tdx-manifest-replay.py, 3 cases).
# Prints the two parts' lines and their sum as `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${CVMFORGE_BIN:-target/release/cvmforge}
work=build/tdx-rtmr1
mkdir -p "$work"

scripts/tdx-rtmr1-check.sh "$CVMFORGE_TEST_KERNEL" | tee "$work/check.log"
"$bin" build recipes/demo.yaml -o "$work/demo" --force > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
"$work/venv/bin/python" scripts/tdx-manifest-replay.py "$work/demo" | tee "$work/replay.log"

count() { sed -n "s/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p" "$1" | tail -n 1; }
read -r p1 f1 <<< "$(count "$work/check.log")"
read -r p2 f2 <<< "$(count "$work/replay.log")"
passed=$(( ${p1:-0} + ${p2:-0} ))
failed=$(( ${f1:-1} + ${f2:-1} ))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "${p1:-0}" -eq 6 ] && [ "${p2:-0}" -ge 3 ]
