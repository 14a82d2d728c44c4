#!/usr/bin/env bash
# Benchmark: `cvmforge measure tdx` (MRTD of a 4 MiB TDVF, RTMR1 of a 12 MiB kernel, RTMR2 with a 64 MiB initrd, the
# LoadOptions layout detected from the firmware) against `openssl dgst -sha384` over the same three files: the
# floor of reading and SHA-384-hashing the same bytes. Prints the median wall times of interleaved runs and the ratio.
#
# Usage: builder/benches/measure-tdx.sh [--check] [RUNS]     (default 11 runs; --check exits 1 above the 1.3x target)
# Inputs: build/firmware/OVMF.inteltdx.ms.fd and build/demo/vmlinuz (scripts/setup.sh), padded to 12 MiB; a 64 MiB
# initrd of random bytes, made once under build/bench-tdx/ (BENCH_DIR moves it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHECK=0
if [[ ${1:-} == --check ]]; then CHECK=1; shift; fi
RUNS=${1:-11}
TARGET=1.3
WORK=${BENCH_DIR:-$ROOT/build/bench-tdx}
FIRMWARE=$ROOT/build/firmware/OVMF.inteltdx.ms.fd
KERNEL=$ROOT/build/demo/vmlinuz
for f in "$FIRMWARE" "$KERNEL"; do
    [[ -f $f ]] || { echo "measure-tdx bench: FAIL: $f is missing (run scripts/setup.sh)" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "measure-tdx bench: FAIL: openssl is not installed" >&2; exit 1; }
mkdir -p "$WORK"
(cd "$ROOT" && cargo build -q --release --locked -p cvmforge)
BIN=$ROOT/target/release/cvmforge
cp "$FIRMWARE" "$WORK/tdvf.fd"
cp "$KERNEL" "$WORK/kernel12" && truncate -s 12M "$WORK/kernel12"
[[ -f $WORK/initrd64 && $(stat -c %s "$WORK/initrd64") == 67108864 ]] || head -c 64M /dev/urandom > "$WORK/initrd64"

measure=("$BIN" measure tdx --firmware "$WORK/tdvf.fd" --kernel "$WORK/kernel12" --initrd "$WORK/initrd64"
    --append console=ttyS0)
floor=(openssl dgst -sha384 "$WORK/tdvf.fd" "$WORK/kernel12" "$WORK/initrd64")

# The layout must really be detected (no --cmdline-layout), or the benchmark measures the wrong thing.
"${measure[@]}" | grep -q 'cmdline layout: prefix (detected from the firmware' ||
    { echo "measure-tdx bench: FAIL: the layout was not detected from the firmware" >&2; exit 1; }

wall_ms() { # command... -> milliseconds of wall time
    local t0 t1
    t0=$(date +%s%N)
    "$@" > /dev/null
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

cvm=() ssl=()
for ((i = 0; i < RUNS; i++)); do # interleaved, so that a load change hits both
    cvm+=("$(wall_ms "${measure[@]}")")
    ssl+=("$(wall_ms "${floor[@]}")")
done
(( ${#cvm[@]} == RUNS && RUNS > 0 )) || { echo "measure-tdx bench: FAIL: no runs" >&2; exit 1; }
CVM=$(printf '%s\n' "${cvm[@]}" | median)
SSL=$(printf '%s\n' "${ssl[@]}" | median)
RATIO=$(awk -v a="$CVM" -v b="$SSL" 'BEGIN {printf "%.2f", a / b}')
echo "runs: $RUNS (interleaved); load average: $(cut -d' ' -f1-3 /proc/loadavg); CPUs: $(nproc)"
echo "cvmforge measure tdx (layout detected): median ${CVM} ms  [${cvm[*]}]"
echo "openssl dgst -sha384 (same 80 MiB):     median ${SSL} ms  [${ssl[*]}]"
echo "ratio: ${RATIO}x (target <= ${TARGET}x)"
if (( CHECK )) && awk -v r="$RATIO" -v t="$TARGET" 'BEGIN {exit !(r > t)}'; then
    echo "measure-tdx bench: FAIL: ${RATIO}x is above the ${TARGET}x target" >&2
    exit 1
fi
