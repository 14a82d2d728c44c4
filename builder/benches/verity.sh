#!/usr/bin/env bash
# Benchmark: the dm-verity hash tree of a data volume, cvmforge (`benches/verity.rs`, `format::verity::write_tree` on
# all CPUs) against `veritysetup format --no-superblock` (Debian cryptsetup-bin) on the same data, for 1 GiB and 4 GiB;
# both trees must have the same root hash and bytes. Then the machine's SHA-256 limit (`openssl speed -evp sha256`,
# 4 KiB blocks, one process per CPU).
#
# Usage: builder/benches/verity.sh [SIZES_GIB...]   (default: 1 4). Data under build/bench-verity (BENCH_DIR moves it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_DIR:-$ROOT/build/bench-verity}
SIZES=("${@:-1 4}")
read -r -a SIZES <<< "${SIZES[*]}"
for tool in veritysetup openssl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "verity bench: FAIL: $tool is not installed" >&2; exit 1; }
done
mkdir -p "$WORK"
cd "$ROOT"
bench_bin=$(cargo bench --locked -p cvmforge --bench verity --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -n 1)
[ -x "$bench_bin" ] || { echo "verity bench: FAIL: could not build benches/verity.rs" >&2; exit 1; }
cargo build -q --release --locked -p cvmforge
threads=$(nproc)
salt=$(printf '5a%.0s' $(seq 32))

# timed LABEL CMD...: runs CMD under /usr/bin/time -v; sets wall (s) and rss (MiB).
timed() {
  local label=$1; shift
  /usr/bin/time -v "$@" > "$WORK/$label.out" 2> "$WORK/$label.time"
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s}' "$WORK/$label.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$WORK/$label.time")
}

echo "verity bench: $threads CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-28s %8s %8s %10s\n' size tool "wall s" "RSS MiB" "MB/s"
for gib in "${SIZES[@]}"; do
  data=$WORK/data-${gib}G
  if [ ! -f "$data" ] || [ "$(stat -c %s "$data")" != $((gib << 30)) ]; then
    # Incompressible and fast to make: AES-CTR of zeros, a fixed key.
    head -c $((gib << 30)) /dev/zero | openssl enc -aes-128-ctr -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000000 > "$data.tmp"
    mv "$data.tmp" "$data"
  fi
  cat "$data" > /dev/null  # both tools read from the page cache
  bytes=$((gib << 30))
  timed "cvmforge-$gib" "$bench_bin" tree "$data" "$WORK/tree-ours" "$threads"
  ours_root=$(cat "$WORK/cvmforge-$gib.out")
  printf '%-6s %-28s %8.2f %8s %10.0f\n' "${gib}G" "cvmforge ($threads threads)" "$wall" "$rss" "$(awk -v b="$bytes" -v w="$wall" 'BEGIN { print b / w / 1e6 }')"
  ours_wall=$wall
  rm -f "$WORK/tree-theirs"
  timed "veritysetup-$gib" veritysetup format --no-superblock --format=1 --hash=sha256 --data-block-size=4096 \
    --hash-block-size=4096 --salt="$salt" "$data" "$WORK/tree-theirs"
  theirs_root=$(sed -n 's/^Root hash:[[:space:]]*//p' "$WORK/veritysetup-$gib.out")
  printf '%-6s %-28s %8.2f %8s %10.0f\n' "${gib}G" "veritysetup format" "$wall" "$rss" "$(awk -v b="$bytes" -v w="$wall" 'BEGIN { print b / w / 1e6 }')"
  if [ "$ours_root" != "$theirs_root" ] || ! cmp -s "$WORK/tree-ours" "$WORK/tree-theirs"; then
    echo "verity bench: FAIL: the trees differ (cvmforge $ours_root, veritysetup $theirs_root)" >&2
    exit 1
  fi
  echo "       same root hash and tree bytes; cvmforge/veritysetup wall ratio $(awk -v a="$ours_wall" -v b="$wall" 'BEGIN { printf "%.2f", a / b }')"
done

# The SHA-256 limit: 4 KiB blocks, one openssl process per CPU, 3 s.
limit=0
for _ in $(seq "$threads"); do
  openssl speed -seconds 3 -bytes 4096 -evp sha256 2>/dev/null | awk '/^sha256/ {print $2}' > "$WORK/speed.$_" &
done
wait
for f in "$WORK"/speed.*; do
  # openssl prints thousands of bytes per second, e.g. `1234567.89k`.
  limit=$(awk -v l="$limit" '{ sub(/k$/, "", $1); print l + $1 * 1000 / 1e6 }' "$f")
done
rm -f "$WORK"/speed.*
printf 'SHA-256 limit (openssl speed -evp sha256, 4 KiB, %s processes): %.0f MB/s\n' "$threads" "$limit"
